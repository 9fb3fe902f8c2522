/* ospab core: how many of something are in use right now, across every process of a
 * server: a total and a count per key (a client address), each with a cap. Anonymous
 * shared memory created before fork, guarded by a global mutex; meant for things that last
 * (a proxied live-push connection), not for every request.
 *
 * The per-key table is open addressing over 64-bit digests of the keys. An entry exists
 * only while its count is above zero, so with at least twice as many slots as the total
 * cap allows the table cannot fill up. */
#ifndef OSPAB_GAUGE_H
#define OSPAB_GAUGE_H

#include <apr_pools.h>
#include <apr_global_mutex.h>

typedef struct ospab_gauge_t ospab_gauge_t;

typedef enum {
    OSPAB_GAUGE_TAKEN = 0,      /* counted: give it back with ospab_gauge_release */
    OSPAB_GAUGE_FULL,           /* the total is at its cap */
    OSPAB_GAUGE_KEY_FULL        /* this key is at its cap (or the table has no room) */
} ospab_gauge_e;

/* slots: per-key entries (use at least twice the largest total cap). *mutex is read at
 * every use: a child's apr_global_mutex_child_init() may replace it. */
apr_status_t ospab_gauge_create(apr_pool_t *p, apr_size_t slots, apr_global_mutex_t **mutex,
                                ospab_gauge_t **out);

/* Takes one for key when the total stays within max_total and the key's count within
 * max_per_key (0: no cap). */
ospab_gauge_e ospab_gauge_take(ospab_gauge_t *g, const char *key, int max_total,
                               int max_per_key);
/* Gives back one taken for key. */
void ospab_gauge_release(ospab_gauge_t *g, const char *key);
/* The total in use now, and key's count (key may be NULL). */
int ospab_gauge_count(ospab_gauge_t *g, const char *key, int *per_key);

#endif
