/* ospab core: the Prometheus text exposition format (0.0.4) — writing it, and the few
 * shapes both mod_ospab and ospab-agent count in: latency histograms with one fixed set of
 * buckets, and the template of a Proxmox API path ("/nodes/{node}/lxc/{vmid}/status/start")
 * so that an endpoint is one label value however many guests there are.
 *
 * Counting is the caller's (shared memory in Apache, atomics in the agent); this file only
 * turns numbers into text. Writers append to a buffer in a pool: meant for a scrape, not
 * for every request. */
#ifndef OSPAB_PROM_H
#define OSPAB_PROM_H

#include <apr_pools.h>
#include <apr_time.h>

/* Latency buckets in seconds (upper bounds; +Inf follows): 1 ms to 10 s. */
#define OSPAB_PROM_BUCKETS 13
extern const double ospab_prom_bounds[OSPAB_PROM_BUCKETS];

/* Which bucket a duration falls in: 0..OSPAB_PROM_BUCKETS (the last is +Inf only). */
int ospab_prom_bucket(apr_interval_time_t took);

/* One histogram's numbers, bucket counts not cumulative (the writer sums them). */
typedef struct {
    apr_uint64_t count;
    apr_uint64_t sum_us;                        /* microseconds */
    apr_uint64_t buckets[OSPAB_PROM_BUCKETS + 1];
} ospab_prom_hist_t;

/* A histogram several threads or processes add to (e.g. in shared memory): observe with
 * atomic additions, read into an ospab_prom_hist_t whose count is the buckets' sum, so a
 * reading stays consistent while others add. Zeroed memory is an empty one. */
typedef struct {
    volatile apr_uint64_t sum_us;
    volatile apr_uint64_t buckets[OSPAB_PROM_BUCKETS + 1];
} ospab_prom_shared_hist_t;

void ospab_prom_observe(ospab_prom_shared_hist_t *h, apr_interval_time_t took);
void ospab_prom_read(ospab_prom_shared_hist_t *h, ospab_prom_hist_t *out);

typedef struct ospab_prom_t ospab_prom_t;

ospab_prom_t *ospab_prom_make(apr_pool_t *p);
/* # HELP and # TYPE of a family; type "counter", "gauge" or "histogram". */
void ospab_prom_family(ospab_prom_t *b, const char *name, const char *type, const char *help);
/* A family of one unlabelled sample: # HELP, # TYPE and the value. */
void ospab_prom_one(ospab_prom_t *b, const char *name, const char *type, const char *help,
                    apr_uint64_t v);
/* One sample; labels is NULL or already escaped "k=\"v\",k2=\"v2\"" (ospab_prom_label). */
void ospab_prom_u64(ospab_prom_t *b, const char *name, const char *labels, apr_uint64_t v);
void ospab_prom_double(ospab_prom_t *b, const char *name, const char *labels, double v);
/* name_bucket{labels,le=...}, name_sum and name_count of h. */
void ospab_prom_hist(ospab_prom_t *b, const char *name, const char *labels,
                     const ospab_prom_hist_t *h);
/* key="value" with the value escaped as the format wants (\\, \", \n). */
const char *ospab_prom_label(apr_pool_t *p, const char *key, const char *value);
/* The text so far and its length. */
const char *ospab_prom_text(ospab_prom_t *b, apr_size_t *len);

/* Writes into out (size n, NUL-terminated, truncated if need be) the template of a Proxmox
 * API path as ospab_pve_path builds them (relative to /api2/json, query string ignored):
 * the values that name an object become {node}, {vmid}, {upid}, {snapname}, {storage},
 * {volume}, {userid}; everything else is kept. */
void ospab_prom_pve_endpoint(const char *path, char *out, apr_size_t n);

#endif
