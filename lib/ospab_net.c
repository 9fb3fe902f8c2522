/* ospab core: client addresses behind trusted proxies (see ospab_net.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "ospab_net.h"

int ospab_net_addr_parse(const char *text, int *family, unsigned char bytes[16])
{
    struct in_addr a4;
    struct in6_addr a6;

    memset(bytes, 0, 16);
    if (inet_pton(AF_INET, text, &a4) == 1) {
        *family = AF_INET;
        memcpy(bytes, &a4, 4);
        return 0;
    }
    if (inet_pton(AF_INET6, text, &a6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&a6)) {
            *family = AF_INET;
            memcpy(bytes, &a6.s6_addr[12], 4);
        }
        else {
            *family = AF_INET6;
            memcpy(bytes, &a6, 16);
        }
        return 0;
    }
    return -1;
}

int ospab_net_parse(const char *text, ospab_net_t *n)
{
    char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
    long bits, max;

    if (strlen(text) >= sizeof(buf)) {
        return -1;
    }
    strcpy(buf, text);
    if ((slash = strchr(buf, '/')) != NULL) {
        *slash++ = '\0';
    }
    if (ospab_net_addr_parse(buf, &n->family, n->net)) {
        return -1;
    }
    max = n->family == AF_INET ? 32 : 128;
    n->bits = (int)max;
    if (slash) {
        errno = 0;
        bits = strtol(slash, &end, 10);
        if (errno || end == slash || *end || bits < 0 || bits > max) {
            return -1;
        }
        n->bits = (int)bits;
    }
    return 0;
}

int ospab_net_contains(const ospab_net_t *n, int family, const unsigned char *bytes)
{
    int full = n->bits / 8, rest = n->bits % 8;

    if (n->family != family || memcmp(n->net, bytes, (apr_size_t)full)) {
        return 0;
    }
    return !rest || ((n->net[full] ^ bytes[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

int ospab_net_list_parse(apr_pool_t *p, const char *text, ospab_net_t **out, int *n,
                         const char **bad)
{
    char *copy = apr_pstrdup(p, text), *last, *tok;
    int cap = 4;

    *n = 0;
    *out = apr_pcalloc(p, sizeof(**out) * (apr_size_t)cap);
    for (tok = apr_strtok(copy, " \t,", &last); tok; tok = apr_strtok(NULL, " \t,", &last)) {
        if (*n == cap) {
            ospab_net_t *more = apr_pcalloc(p, sizeof(*more) * (apr_size_t)cap * 2);

            memcpy(more, *out, sizeof(*more) * (apr_size_t)cap);
            *out = more;
            cap *= 2;
        }
        if (ospab_net_parse(tok, &(*out)[*n])) {
            *bad = tok;
            return -1;
        }
        ++*n;
    }
    return 0;
}

static int trusted_by(const ospab_net_t *trusted, int ntrusted, int family,
                      const unsigned char *b)
{
    int i;

    for (i = 0; i < ntrusted; ++i) {
        if (ospab_net_contains(&trusted[i], family, b)) {
            return 1;
        }
    }
    return 0;
}

void ospab_net_client_key(const ospab_net_t *trusted, int ntrusted, const char *peer,
                          char *xff, char *key, apr_size_t keysz)
{
    unsigned char b[16], x[16];
    int family, xfamily;

    if (!peer || ospab_net_addr_parse(peer, &family, b)) {
        apr_cpystrn(key, "?", keysz);
        return;
    }
    if (xff && trusted_by(trusted, ntrusted, family, b)) {
        char *ent[OSPAB_NET_XFF_KEEP], *last, *tok;
        int n = 0, i;

        /* the right-most entries are the ones that count (the ones further left are
         * whatever the client wrote; the right-most was written by the proxy we trust),
         * so a ring keeps the last OSPAB_NET_XFF_KEEP */
        for (tok = apr_strtok(xff, ",", &last); tok; tok = apr_strtok(NULL, ",", &last)) {
            ent[n++ % OSPAB_NET_XFF_KEEP] = tok;
        }
        for (i = n - 1; i >= 0 && i >= n - OSPAB_NET_XFF_KEEP; --i) {
            char *e, *v = ent[i % OSPAB_NET_XFF_KEEP];

            while (*v == ' ' || *v == '\t') {
                ++v;
            }
            e = v + strlen(v);
            while (e > v && (e[-1] == ' ' || e[-1] == '\t')) {
                *--e = '\0';
            }
            if (ospab_net_addr_parse(v, &xfamily, x)) {
                break;              /* not an address: the last good one stands */
            }
            family = xfamily;
            memcpy(b, x, sizeof(b));
            if (!trusted_by(trusted, ntrusted, family, b)) {
                break;
            }
        }
    }
    if (family == AF_INET) {
        inet_ntop(AF_INET, b, key, (socklen_t)keysz);
    }
    else {
        memset(b + 8, 0, 8);
        inet_ntop(AF_INET6, b, key, (socklen_t)(keysz - 4));
        apr_cpystrn(key + strlen(key), "/64", 4);
    }
}
