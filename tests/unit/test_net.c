/* lib/ospab_net.h: addresses, networks and the client behind trusted proxies, as the live
 * push keys its per-address limits and sessions. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "tests.h"
#include "ospab_net.h"
#include "ospab_ippool.h"

START_TEST(addresses)
{
    static const unsigned char v4[16] = { 10, 1, 2, 3 };
    unsigned char b[16];
    int family = 0;

    ck_assert_int_eq(ospab_net_addr_parse("10.1.2.3", &family, b), 0);
    ck_assert_int_eq(family, AF_INET);
    ck_assert(!memcmp(b, v4, 16));
    /* an IPv4-mapped IPv6 address is the IPv4 address */
    memset(b, 0xff, sizeof(b));
    ck_assert_int_eq(ospab_net_addr_parse("::ffff:10.1.2.3", &family, b), 0);
    ck_assert_int_eq(family, AF_INET);
    ck_assert(!memcmp(b, v4, 16));
    ck_assert_int_eq(ospab_net_addr_parse("::1", &family, b), 0);
    ck_assert_int_eq(family, AF_INET6);
    ck_assert_int_eq(b[15], 1);
    ck_assert_int_eq(ospab_net_addr_parse("", &family, b), -1);
    ck_assert_int_eq(ospab_net_addr_parse("10.1.2", &family, b), -1);
    ck_assert_int_eq(ospab_net_addr_parse("10.1.2.3 ", &family, b), -1);
    ck_assert_int_eq(ospab_net_addr_parse("10.1.2.256", &family, b), -1);
    ck_assert_int_eq(ospab_net_addr_parse("fe80::1%eth0", &family, b), -1);
    ck_assert_int_eq(ospab_net_addr_parse("localhost", &family, b), -1);
}
END_TEST

START_TEST(networks)
{
    ospab_net_t n;
    char longer[128];

    ck_assert_int_eq(ospab_net_parse("10.0.0.0/8", &n), 0);
    ck_assert_int_eq(n.family, AF_INET);
    ck_assert_int_eq(n.bits, 8);
    ck_assert_int_eq(ospab_net_parse("10.0.0.1", &n), 0);
    ck_assert_int_eq(n.bits, 32);
    ck_assert_int_eq(ospab_net_parse("::1", &n), 0);
    ck_assert_int_eq(n.bits, 128);
    ck_assert_int_eq(ospab_net_parse("2001:db8::/32", &n), 0);
    ck_assert_int_eq(n.family, AF_INET6);
    ck_assert_int_eq(n.bits, 32);
    ck_assert_int_eq(ospab_net_parse("0.0.0.0/0", &n), 0);
    ck_assert_int_eq(n.bits, 0);
    /* a mapped network is an IPv4 one, with IPv4's bits */
    ck_assert_int_eq(ospab_net_parse("::ffff:10.0.0.0/8", &n), 0);
    ck_assert_int_eq(n.family, AF_INET);
    ck_assert_int_eq(ospab_net_parse("::ffff:10.0.0.0/104", &n), -1);
    ck_assert_int_eq(ospab_net_parse("10.0.0.0/33", &n), -1);
    ck_assert_int_eq(ospab_net_parse("::/129", &n), -1);
    ck_assert_int_eq(ospab_net_parse("10.0.0.0/", &n), -1);
    ck_assert_int_eq(ospab_net_parse("10.0.0.0/-1", &n), -1);
    ck_assert_int_eq(ospab_net_parse("10.0.0.0/8x", &n), -1);
    ck_assert_int_eq(ospab_net_parse("10.0.0.0/99999999999999999999", &n), -1);
    ck_assert_int_eq(ospab_net_parse("/8", &n), -1);
    memset(longer, '1', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    ck_assert_int_eq(ospab_net_parse(longer, &n), -1);
}
END_TEST

static int inside(const char *net, const char *addr)
{
    ospab_net_t n;
    unsigned char b[16];
    int family;

    ck_assert_int_eq(ospab_net_parse(net, &n), 0);
    ck_assert_int_eq(ospab_net_addr_parse(addr, &family, b), 0);
    return ospab_net_contains(&n, family, b);
}

START_TEST(contains)
{
    ck_assert(inside("10.0.0.0/8", "10.255.1.2"));
    ck_assert(!inside("10.0.0.0/8", "11.0.0.1"));
    ck_assert(inside("127.0.0.1", "127.0.0.1"));
    ck_assert(!inside("127.0.0.1", "127.0.0.2"));
    /* bits that do not end on a byte */
    ck_assert(inside("192.168.1.0/23", "192.168.0.5"));
    ck_assert(inside("192.168.1.0/23", "192.168.1.255"));
    ck_assert(!inside("192.168.1.0/23", "192.168.2.0"));
    ck_assert(inside("0.0.0.0/0", "203.0.113.9"));
    ck_assert(!inside("0.0.0.0/0", "::1"));            /* never across families */
    ck_assert(!inside("::/0", "10.0.0.1"));
    ck_assert(inside("::/0", "2001:db8::1"));
    ck_assert(inside("2001:db8::/33", "2001:db8:7fff::1"));
    ck_assert(!inside("2001:db8::/33", "2001:db8:8000::1"));
    ck_assert(inside("::1", "::1"));
    ck_assert(inside("10.0.0.0/8", "::ffff:10.9.9.9"));
}
END_TEST

START_TEST(lists)
{
    ospab_net_t *nets;
    const char *bad = NULL;
    int n = -1;

    ck_assert_int_eq(ospab_net_list_parse(test_pool, "127.0.0.1 ::1", &nets, &n, &bad), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(nets[1].family, AF_INET6);
    ck_assert_int_eq(ospab_net_list_parse(test_pool, "", &nets, &n, &bad), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(ospab_net_list_parse(test_pool, " 10.0.0.0/8,\t::1 ,,", &nets, &n, &bad), 0);
    ck_assert_int_eq(n, 2);
    /* more than the first allocation holds */
    ck_assert_int_eq(ospab_net_list_parse(test_pool, "1.0.0.1 1.0.0.2 1.0.0.3 1.0.0.4 1.0.0.5 "
                                          "1.0.0.6 1.0.0.7 1.0.0.8 1.0.0.9", &nets, &n, &bad),
                     0);
    ck_assert_int_eq(n, 9);
    ck_assert_int_eq(nets[0].net[3], 1);
    ck_assert_int_eq(nets[8].net[3], 9);
    ck_assert_int_eq(ospab_net_list_parse(test_pool, "127.0.0.1 bogus ::1", &nets, &n, &bad), -1);
    ck_assert_str_eq(bad, "bogus");
    ck_assert_int_eq(ospab_net_list_parse(test_pool, "10.0.0.0/8 10.0.0.0/40", &nets, &n, &bad),
                     -1);
    ck_assert_str_eq(bad, "10.0.0.0/40");
}
END_TEST

/* the key of a client at peer with X-Forwarded-For xff (NULL: none), proxies trusted */
static const char *key_of(const char *proxies, const char *peer, const char *xff)
{
    ospab_net_t *nets;
    const char *bad;
    char *key = apr_palloc(test_pool, OSPAB_NET_KEY_MAX);
    int n;

    ck_assert_int_eq(ospab_net_list_parse(test_pool, proxies, &nets, &n, &bad), 0);
    ospab_net_client_key(nets, n, peer, xff ? apr_pstrdup(test_pool, xff) : NULL, key,
                         OSPAB_NET_KEY_MAX);
    return key;
}

START_TEST(client_keys)
{
    const char *local = "127.0.0.1 ::1";
    char *many;
    int i;

    ck_assert_str_eq(key_of(local, NULL, NULL), "?");
    ck_assert_str_eq(key_of(local, "not an address", "1.2.3.4"), "?");
    ck_assert_str_eq(key_of(local, "127.0.0.1", NULL), "127.0.0.1");
    ck_assert_str_eq(key_of(local, "::ffff:127.0.0.1", NULL), "127.0.0.1");
    /* a peer that is not trusted is the client, whatever it writes */
    ck_assert_str_eq(key_of(local, "203.0.113.5", "198.51.100.7"), "203.0.113.5");
    /* a trusted one names the client: the right-most entry */
    ck_assert_str_eq(key_of(local, "127.0.0.1", "198.51.100.7"), "198.51.100.7");
    ck_assert_str_eq(key_of(local, "::1", "6.6.6.6, 198.51.100.7"), "198.51.100.7");
    ck_assert_str_eq(key_of(local, "127.0.0.1", " \t198.51.100.7 \t"), "198.51.100.7");
    /* ... or the right-most that is not a trusted proxy itself */
    ck_assert_str_eq(key_of("127.0.0.1 10.0.0.0/8", "127.0.0.1", "198.51.100.7, 10.0.0.2"),
                     "198.51.100.7");
    ck_assert_str_eq(key_of("127.0.0.1 10.0.0.0/8", "127.0.0.1", "10.0.0.3, 10.0.0.2"),
                     "10.0.0.3");
    /* an entry that is not an address ends the walk: the last good one stands */
    ck_assert_str_eq(key_of(local, "127.0.0.1", "198.51.100.7, unknown"), "127.0.0.1");
    ck_assert_str_eq(key_of(local, "127.0.0.1", ""), "127.0.0.1");
    ck_assert_str_eq(key_of("127.0.0.1 10.0.0.0/8", "127.0.0.1", "bogus, 10.0.0.2"),
                     "10.0.0.2");
    /* IPv6 clients by their /64 */
    ck_assert_str_eq(key_of(local, "2001:db8:1:2:3:4:5:6", NULL), "2001:db8:1:2::/64");
    ck_assert_str_eq(key_of(local, "::1", "2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
    ck_assert_str_eq(key_of(local, "::1", NULL), "::/64");
    /* only the last OSPAB_NET_XFF_KEEP entries count */
    many = apr_pstrdup(test_pool, "198.51.100.7");
    for (i = 0; i < 19; ++i) {
        many = apr_pstrcat(test_pool, many, ", 10.0.0.9", NULL);
    }
    ck_assert_str_eq(key_of("127.0.0.1 10.0.0.0/8", "127.0.0.1", many), "10.0.0.9");
}
END_TEST

/* IP pools (lib/ospab_ippool.c): ranges, their arithmetic and what a pool may be. */
START_TEST(pool_ranges)
{
    ospab_ip_t a, b;

    ck_assert(ospab_ip_parse("192.0.2.10", &a) && a.family == 4);
    ck_assert(ospab_ip_parse("192.0.2.200", &b));
    ck_assert_uint_eq(ospab_ip_span(&a, &b, 65536), 191);
    ck_assert_uint_eq(ospab_ip_span(&b, &a, 65536), 0);           /* reversed */
    ck_assert_uint_eq(ospab_ip_span(&a, &a, 65536), 1);
    ck_assert(ospab_ip_parse("10.0.0.0", &a) && ospab_ip_parse("10.1.0.0", &b));
    ck_assert_uint_eq(ospab_ip_span(&a, &b, 65536), 65537);       /* one too many */
    ck_assert(ospab_ip_parse("10.0.0.255", &a));
    ospab_ip_next(&a);                                             /* carries */
    ck_assert_str_eq(ospab_ip_text(test_pool, &a), "10.0.1.0");
    ck_assert(ospab_ip_parse("2001:db8::ffff", &a) && a.family == 6);
    ospab_ip_next(&a);
    ck_assert_str_eq(ospab_ip_text(test_pool, &a), "2001:db8::1:0");
    ck_assert(ospab_ip_parse("2001:db8::1", &a) && ospab_ip_parse("2001:db8::1:0", &b));
    ck_assert_uint_eq(ospab_ip_span(&a, &b, 65536), 65536);
    ck_assert(ospab_ip_parse("2001:db8:1::", &b));                 /* far beyond the limit */
    ck_assert_uint_eq(ospab_ip_span(&a, &b, 65536), 65537);
    ck_assert(ospab_ip_parse("192.0.2.1", &b));
    ck_assert_uint_eq(ospab_ip_span(&a, &b, 65536), 0);           /* families differ */
    ck_assert(ospab_ip_parse("192.0.2.1", &a) && ospab_ip_parse("192.0.3.1", &b));
    ck_assert(ospab_ip_same_net(&a, &b, 16) && !ospab_ip_same_net(&a, &b, 24));
    ck_assert(!ospab_ip_parse("192.0.2", &a) && !ospab_ip_parse(NULL, &a));
}
END_TEST

static int by_text(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The errors ospab_ippool_read finds in body (JSON text), as "field;" in sorted order. */
static const char *pool_errors(const char *text, ospab_ippool_spec_t *s)
{
    json_t *body = json_loads(text, 0, NULL), *e;
    const char *out = "";

    ck_assert_ptr_nonnull(body);
    e = ospab_ippool_read(test_pool, body, s);
    json_decref(body);
    if (e) {
        const char *k, *keys[16];
        json_t *v;
        int n = 0, i;

        json_object_foreach(e, k, v) {
            ck_assert(json_is_string(v) && n < 16);
            keys[n++] = apr_pstrdup(test_pool, k);
        }
        qsort(keys, (size_t)n, sizeof(keys[0]), by_text);
        for (i = 0; i < n; ++i) {
            out = apr_pstrcat(test_pool, out, keys[i], ";", NULL);
        }
        json_decref(e);
    }
    return out;
}

START_TEST(pool_rules)
{
    ospab_ippool_spec_t s;
    ospab_ip_lease_t l;

    ck_assert_str_eq(pool_errors("{\"name\":\"v4\",\"bridge\":\"vmbr0\",\"first\":"
                                 "\"192.0.2.10\",\"last\":\"192.0.2.20\",\"prefix\":24,"
                                 "\"gateway\":\"192.0.2.1\",\"dns\":\"1.1.1.1, 2606:4700::1111\"}",
                                 &s), "");
    ck_assert_str_eq(s.dns, "1.1.1.1 2606:4700::1111");
    ck_assert_int_eq(s.cooldown, 86400);
    ck_assert_ptr_null(s.node);
    ck_assert_str_eq(pool_errors("{\"name\":\"v4\",\"bridge\":\"vmbr0\",\"first\":"
                                 "\"192.0.2.10\",\"last\":\"2001:db8::1\",\"prefix\":24}", &s),
                     "last;");
    ck_assert_str_eq(pool_errors("{\"name\":\"v4\",\"bridge\":\"vmbr0\",\"first\":"
                                 "\"10.0.0.0\",\"last\":\"10.2.0.0\",\"prefix\":8}", &s), "last;");
    ck_assert_str_eq(pool_errors("{\"name\":\"v4\",\"bridge\":\"vmbr0\",\"first\":"
                                 "\"192.0.2.10\",\"last\":\"192.0.3.10\",\"prefix\":24}", &s),
                     "last;");
    ck_assert_str_eq(pool_errors("{\"name\":\"v4\",\"bridge\":\"vmbr0\",\"first\":"
                                 "\"192.0.2.10\",\"last\":\"192.0.2.20\",\"prefix\":64}", &s),
                     "prefix;");
    ck_assert_str_eq(pool_errors("{\"name\":\"v4\",\"bridge\":\"vm br0\",\"first\":"
                                 "\"192.0.2.10\",\"last\":\"192.0.2.20\",\"prefix\":24,"
                                 "\"gateway\":\"192.0.3.1\",\"dns\":\"one.one\"}", &s),
                     "bridge;dns;gateway;");
    ck_assert_str_eq(pool_errors("{\"bridge\":\"vmbr0\",\"first\":\"192.0.2.10\","
                                 "\"last\":\"192.0.2.20\",\"prefix\":24,\"mask\":1}", &s),
                     "mask;name;");
    memset(&l, 0, sizeof(l));
    ck_assert_str_eq(ospab_ippool_net0(test_pool, "vmbr0", &l), "name=eth0,bridge=vmbr0,ip=dhcp");
    l.ip4 = "192.0.2.10/24";
    l.gw4 = "192.0.2.1";
    l.ip6 = "2001:db8::10/64";
    ck_assert_str_eq(ospab_ippool_net0(test_pool, "vmbr1", &l), "name=eth0,bridge=vmbr1,"
                     "ip=192.0.2.10/24,gw=192.0.2.1,ip6=2001:db8::10/64");
}
END_TEST

Suite *ospab_net_suite(void)
{
    Suite *s = suite_create("net");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    tcase_add_test(tc, addresses);
    tcase_add_test(tc, networks);
    tcase_add_test(tc, contains);
    tcase_add_test(tc, lists);
    tcase_add_test(tc, client_keys);
    tcase_add_test(tc, pool_ranges);
    tcase_add_test(tc, pool_rules);
    suite_add_tcase(s, tc);
    return s;
}
