/* ospab core: Prometheus text exposition (see ospab_prom.h). */
#include <string.h>
#include <stdio.h>
#include <math.h>

#include <apr_atomic.h>
#include <apr_strings.h>

#include "ospab_prom.h"

const double ospab_prom_bounds[OSPAB_PROM_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};

/* the bounds in microseconds, for the hot path's comparisons */
static const apr_interval_time_t bounds_us[OSPAB_PROM_BUCKETS] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
    5000000, 10000000
};

int ospab_prom_bucket(apr_interval_time_t took)
{
    int i;

    for (i = 0; i < OSPAB_PROM_BUCKETS; i++) {
        if (took <= bounds_us[i]) {
            return i;
        }
    }
    return OSPAB_PROM_BUCKETS;
}

void ospab_prom_observe(ospab_prom_shared_hist_t *h, apr_interval_time_t took)
{
    if (took < 0) {
        took = 0;
    }
    apr_atomic_inc64(&h->buckets[ospab_prom_bucket(took)]);
    apr_atomic_add64(&h->sum_us, (apr_uint64_t)took);
}

void ospab_prom_read(ospab_prom_shared_hist_t *h, ospab_prom_hist_t *out)
{
    int i;

    out->count = 0;
    for (i = 0; i <= OSPAB_PROM_BUCKETS; i++) {
        out->buckets[i] = apr_atomic_read64(&h->buckets[i]);
        out->count += out->buckets[i];
    }
    out->sum_us = apr_atomic_read64(&h->sum_us);
}

struct ospab_prom_t {
    apr_pool_t *p;
    char *buf;
    apr_size_t len, cap;
};

ospab_prom_t *ospab_prom_make(apr_pool_t *p)
{
    ospab_prom_t *b = apr_pcalloc(p, sizeof(*b));

    b->p = p;
    b->cap = 8192;
    b->buf = apr_palloc(p, b->cap);
    b->buf[0] = '\0';
    return b;
}

static void put(ospab_prom_t *b, const char *s, apr_size_t n)
{
    if (b->len + n + 1 > b->cap) {
        apr_size_t cap = b->cap * 2;
        char *nb;

        while (b->len + n + 1 > cap) {
            cap *= 2;
        }
        nb = apr_palloc(b->p, cap);
        memcpy(nb, b->buf, b->len);
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void puts_(ospab_prom_t *b, const char *s)
{
    put(b, s, strlen(s));
}

void ospab_prom_family(ospab_prom_t *b, const char *name, const char *type, const char *help)
{
    const char *s;

    /* HELP escapes only backslash and newline; ours are literals without either */
    puts_(b, "# HELP ");
    puts_(b, name);
    put(b, " ", 1);
    for (s = help; *s; s++) {
        if (*s == '\\' || *s == '\n') {
            put(b, *s == '\\' ? "\\\\" : "\\n", 2);
        }
        else {
            put(b, s, 1);
        }
    }
    puts_(b, "\n# TYPE ");
    puts_(b, name);
    put(b, " ", 1);
    puts_(b, type);
    put(b, "\n", 1);
}

static void sample_name(ospab_prom_t *b, const char *name, const char *suffix,
                        const char *labels, const char *extra)
{
    puts_(b, name);
    if (suffix) {
        puts_(b, suffix);
    }
    if ((labels && *labels) || extra) {
        put(b, "{", 1);
        if (labels && *labels) {
            puts_(b, labels);
            if (extra) {
                put(b, ",", 1);
            }
        }
        if (extra) {
            puts_(b, extra);
        }
        put(b, "}", 1);
    }
    put(b, " ", 1);
}

void ospab_prom_u64(ospab_prom_t *b, const char *name, const char *labels, apr_uint64_t v)
{
    char num[32];
    int n = snprintf(num, sizeof(num), "%" APR_UINT64_T_FMT "\n", v);

    sample_name(b, name, NULL, labels, NULL);
    put(b, num, (apr_size_t)n);
}

void ospab_prom_one(ospab_prom_t *b, const char *name, const char *type, const char *help,
                    apr_uint64_t v)
{
    ospab_prom_family(b, name, type, help);
    ospab_prom_u64(b, name, NULL, v);
}

void ospab_prom_double(ospab_prom_t *b, const char *name, const char *labels, double v)
{
    char num[64];
    int n;

    if (isnan(v)) {
        n = snprintf(num, sizeof(num), "NaN\n");
    }
    else if (isinf(v)) {
        n = snprintf(num, sizeof(num), v > 0 ? "+Inf\n" : "-Inf\n");
    }
    else {
        n = snprintf(num, sizeof(num), "%.17g\n", v);
    }
    sample_name(b, name, NULL, labels, NULL);
    put(b, num, (apr_size_t)n);
}

void ospab_prom_hist(ospab_prom_t *b, const char *name, const char *labels,
                     const ospab_prom_hist_t *h)
{
    apr_uint64_t cum = 0;
    char le[32], num[40];
    int i, n;

    for (i = 0; i <= OSPAB_PROM_BUCKETS; i++) {
        cum += h->buckets[i];
        if (i < OSPAB_PROM_BUCKETS) {
            snprintf(le, sizeof(le), "le=\"%g\"", ospab_prom_bounds[i]);
        }
        else {
            apr_cpystrn(le, "le=\"+Inf\"", sizeof(le));
        }
        sample_name(b, name, "_bucket", labels, le);
        n = snprintf(num, sizeof(num), "%" APR_UINT64_T_FMT "\n", cum);
        put(b, num, (apr_size_t)n);
    }
    sample_name(b, name, "_sum", labels, NULL);
    n = snprintf(num, sizeof(num), "%.6f\n", (double)h->sum_us / 1e6);
    put(b, num, (apr_size_t)n);
    sample_name(b, name, "_count", labels, NULL);
    /* +Inf must equal _count: both from the same snapshot of the buckets */
    n = snprintf(num, sizeof(num), "%" APR_UINT64_T_FMT "\n", cum);
    put(b, num, (apr_size_t)n);
}

const char *ospab_prom_label(apr_pool_t *p, const char *key, const char *value)
{
    apr_size_t n = strlen(value), i, o = 0;
    char *out = apr_palloc(p, strlen(key) + 2 * n + 4);

    o = (apr_size_t)(apr_cpystrn(out, key, strlen(key) + 1) - out);
    out[o++] = '=';
    out[o++] = '"';
    for (i = 0; i < n; i++) {
        char c = value[i];

        if (c == '\\' || c == '"') {
            out[o++] = '\\';
            out[o++] = c;
        }
        else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        }
        else {
            out[o++] = c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

const char *ospab_prom_text(ospab_prom_t *b, apr_size_t *len)
{
    if (len) {
        *len = b->len;
    }
    return b->buf;
}

/* the segment after one of these names an object; what it becomes in the template */
static const struct {
    const char *after;
    const char *as;
} objects[] = {
    { "nodes", "{node}" }, { "lxc", "{vmid}" }, { "qemu", "{vmid}" },
    { "tasks", "{upid}" }, { "snapshot", "{snapname}" }, { "storage", "{storage}" },
    { "content", "{volume}" }, { "users", "{userid}" },
};

void ospab_prom_pve_endpoint(const char *path, char *out, apr_size_t n)
{
    const char *s = path ? path : "", *end = s + strcspn(s, "?#");
    const char *as = NULL;
    apr_size_t o = 0;

    if (!n) {
        return;
    }
    while (s < end) {
        const char *seg, *next;
        apr_size_t len, k;

        while (s < end && *s == '/') {
            s++;
        }
        if (s >= end) {
            break;
        }
        seg = s;
        next = memchr(seg, '/', (apr_size_t)(end - seg));
        if (!next) {
            next = end;
        }
        len = (apr_size_t)(next - seg);
        if (as) {
            seg = as;
            len = strlen(as);
            as = NULL;
        }
        else {
            for (k = 0; k < sizeof(objects) / sizeof(objects[0]); k++) {
                if (strlen(objects[k].after) == len && !memcmp(objects[k].after, seg, len)) {
                    as = objects[k].as;
                    break;
                }
            }
        }
        if (o + 1 + len >= n) {
            break;
        }
        out[o++] = '/';
        memcpy(out + o, seg, len);
        o += len;
        s = next;
    }
    if (o == 0 && n > 1) {
        out[o++] = '/';
    }
    out[o] = '\0';
}
