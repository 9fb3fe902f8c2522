/* ospab_prom: the text exposition format and Proxmox endpoint templates. */
#include <string.h>

#include <apr_strings.h>

#include "tests.h"
#include "ospab_prom.h"

static const char *endpoint(const char *path)
{
    char *out = apr_palloc(test_pool, 128);

    ospab_prom_pve_endpoint(path, out, 128);
    return out;
}

START_TEST(pve_endpoints)
{
    ck_assert_str_eq(endpoint("/nodes/pve1/lxc/101/status/start"),
                     "/nodes/{node}/lxc/{vmid}/status/start");
    ck_assert_str_eq(endpoint("/nodes/pve-2.dc/qemu/4242/snapshot/before-upgrade/rollback"),
                     "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback");
    ck_assert_str_eq(endpoint("/nodes/pve1/tasks/UPID%3Apve1%3A0000%3A/status"),
                     "/nodes/{node}/tasks/{upid}/status");
    ck_assert_str_eq(endpoint("/nodes/pve1/storage/local/content?content=vztmpl"),
                     "/nodes/{node}/storage/{storage}/content");
    ck_assert_str_eq(endpoint("/cluster/resources?type=vm"), "/cluster/resources");
    ck_assert_str_eq(endpoint("/nodes/pve1/lxc"), "/nodes/{node}/lxc");
    /* a node called like a keyword is still the node */
    ck_assert_str_eq(endpoint("/nodes/lxc/lxc/100/config"), "/nodes/{node}/lxc/{vmid}/config");
    ck_assert_str_eq(endpoint("//version/"), "/version");
    ck_assert_str_eq(endpoint(""), "/");
    ck_assert_str_eq(endpoint(NULL), "/");
    {
        char small[12];

        /* truncated at a segment boundary, never mid-name */
        ospab_prom_pve_endpoint("/nodes/pve1/lxc/101", small, sizeof(small));
        ck_assert_str_eq(small, "/nodes");
    }
}
END_TEST

START_TEST(buckets)
{
    ck_assert_int_eq(ospab_prom_bucket(0), 0);
    ck_assert_int_eq(ospab_prom_bucket(1000), 0);
    ck_assert_int_eq(ospab_prom_bucket(1001), 1);
    ck_assert_int_eq(ospab_prom_bucket(apr_time_from_sec(10)), OSPAB_PROM_BUCKETS - 1);
    ck_assert_int_eq(ospab_prom_bucket(apr_time_from_sec(11)), OSPAB_PROM_BUCKETS);
}
END_TEST

START_TEST(shared_histogram)
{
    ospab_prom_shared_hist_t sh;
    ospab_prom_hist_t h;

    memset(&sh, 0, sizeof(sh));
    ospab_prom_observe(&sh, 500);
    ospab_prom_observe(&sh, -7);                        /* a clock step: counted as 0 */
    ospab_prom_observe(&sh, apr_time_from_sec(60));
    ospab_prom_read(&sh, &h);
    ck_assert_uint_eq(h.count, 3);
    ck_assert_uint_eq(h.buckets[0], 2);
    ck_assert_uint_eq(h.buckets[OSPAB_PROM_BUCKETS], 1);
    ck_assert_uint_eq(h.sum_us, 500 + 60000000);
}
END_TEST

START_TEST(exposition)
{
    ospab_prom_t *b = ospab_prom_make(test_pool);
    ospab_prom_hist_t h;
    const char *text;
    apr_size_t len;
    int i;

    memset(&h, 0, sizeof(h));
    h.buckets[0] = 2;
    h.buckets[3] = 1;
    h.buckets[OSPAB_PROM_BUCKETS] = 1;
    h.sum_us = 12500000;
    ospab_prom_family(b, "x_seconds", "histogram", "a back\\slash\nand a line");
    ospab_prom_hist(b, "x_seconds", "route=\"/a\"", &h);
    ospab_prom_one(b, "y_total", "counter", "sevens", 7);
    ospab_prom_double(b, "z", ospab_prom_label(test_pool, "k", "q\"u\\o\nte"), 0.5);
    text = ospab_prom_text(b, &len);
    ck_assert_uint_eq(len, strlen(text));
    ck_assert_ptr_nonnull(strstr(text, "# HELP x_seconds a back\\\\slash\\nand a line\n"
                                       "# TYPE x_seconds histogram\n"));
    ck_assert_ptr_nonnull(strstr(text, "x_seconds_bucket{route=\"/a\",le=\"0.001\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(text, "x_seconds_bucket{route=\"/a\",le=\"0.0025\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(text, "x_seconds_bucket{route=\"/a\",le=\"0.01\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(text, "x_seconds_bucket{route=\"/a\",le=\"10\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(text, "x_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4\n"));
    ck_assert_ptr_nonnull(strstr(text, "x_seconds_sum{route=\"/a\"} 12.500000\n"));
    ck_assert_ptr_nonnull(strstr(text, "x_seconds_count{route=\"/a\"} 4\n"));
    ck_assert_ptr_nonnull(strstr(text, "# TYPE y_total counter\ny_total 7\n"));
    ck_assert_ptr_nonnull(strstr(text, "z{k=\"q\\\"u\\\\o\\nte\"} 0.5\n"));
    /* the buffer grows past its first size */
    for (i = 0; i < 2000; i++) {
        ospab_prom_u64(b, "many_total", "a=\"b\"", (apr_uint64_t)i);
    }
    text = ospab_prom_text(b, &len);
    ck_assert_uint_eq(len, strlen(text));
    ck_assert_ptr_nonnull(strstr(text, "many_total{a=\"b\"} 1999\n"));
}
END_TEST

Suite *ospab_prom_suite(void)
{
    Suite *s = suite_create("prom");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    tcase_add_test(tc, pve_endpoints);
    tcase_add_test(tc, buckets);
    tcase_add_test(tc, shared_histogram);
    tcase_add_test(tc, exposition);
    suite_add_tcase(s, tc);
    return s;
}
