/* ospab core: shared-memory concurrency counters (see ospab_gauge.h). */
#include <string.h>

#include <apr_shm.h>

#include "ospab_gauge.h"
#include "ospab_util.h"

typedef struct {
    apr_uint64_t key;           /* digest; 0: free */
    apr_uint32_t count;         /* > 0 while the slot is used */
} gauge_slot_t;

typedef struct {
    apr_uint32_t total;
    apr_uint32_t pad;
    gauge_slot_t slots[1];      /* nslots of them */
} gauge_shm_t;

struct ospab_gauge_t {
    apr_shm_t *shm;
    apr_global_mutex_t **mutex;
    gauge_shm_t *mem;
    apr_size_t nslots;
};

apr_status_t ospab_gauge_create(apr_pool_t *p, apr_size_t slots, apr_global_mutex_t **mutex,
                                ospab_gauge_t **out)
{
    ospab_gauge_t *g = apr_pcalloc(p, sizeof(*g));
    apr_size_t size = sizeof(gauge_shm_t) + (slots - 1) * sizeof(gauge_slot_t);
    apr_status_t rv;

    if (slots < 2) {
        return APR_EINVAL;
    }
    rv = apr_shm_create(&g->shm, size, NULL, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    g->mem = apr_shm_baseaddr_get(g->shm);
    memset(g->mem, 0, size);
    g->nslots = slots;
    g->mutex = mutex;
    *out = g;
    return APR_SUCCESS;
}

/* The slot of k, or (create) a free one; NULL when there is none. A slot is freed as soon
 * as its count drops to zero, so a free slot may sit inside another key's probe run and a
 * lookup cannot stop at the first one: the whole table is scanned, from k's home slot. The
 * table is small and only long-lived connections come here. */
static gauge_slot_t *find(ospab_gauge_t *g, apr_uint64_t k, int create)
{
    apr_size_t i, at = (apr_size_t)(k % g->nslots);
    gauge_slot_t *free_slot = NULL;

    for (i = 0; i < g->nslots; ++i) {
        gauge_slot_t *s = &g->mem->slots[(at + i) % g->nslots];

        if (s->key == k) {
            return s;
        }
        if (s->key == 0) {
            if (!free_slot) {
                free_slot = s;
            }
            if (!create) {
                continue;
            }
        }
    }
    if (create && free_slot) {
        free_slot->key = k;
        free_slot->count = 0;
        return free_slot;
    }
    return NULL;
}

ospab_gauge_e ospab_gauge_take(ospab_gauge_t *g, const char *key, int max_total,
                               int max_per_key)
{
    ospab_gauge_e rv = OSPAB_GAUGE_TAKEN;
    gauge_slot_t *s = NULL;

    if (apr_global_mutex_lock(*g->mutex) != APR_SUCCESS) {
        return OSPAB_GAUGE_FULL;
    }
    if (max_total > 0 && g->mem->total >= (apr_uint32_t)max_total) {
        rv = OSPAB_GAUGE_FULL;
    }
    else if (!(s = find(g, ospab_key_hash64(key), 1))) {
        rv = OSPAB_GAUGE_KEY_FULL;
    }
    else if (max_per_key > 0 && s->count >= (apr_uint32_t)max_per_key) {
        rv = OSPAB_GAUGE_KEY_FULL;
    }
    else {
        s->count++;
        g->mem->total++;
    }
    if (rv != OSPAB_GAUGE_TAKEN && s && s->count == 0) {
        s->key = 0;
    }
    apr_global_mutex_unlock(*g->mutex);
    return rv;
}

void ospab_gauge_release(ospab_gauge_t *g, const char *key)
{
    gauge_slot_t *s;

    if (apr_global_mutex_lock(*g->mutex) != APR_SUCCESS) {
        return;
    }
    s = find(g, ospab_key_hash64(key), 0);
    if (s && s->count > 0) {
        if (--s->count == 0) {
            s->key = 0;
        }
        if (g->mem->total > 0) {
            g->mem->total--;
        }
    }
    apr_global_mutex_unlock(*g->mutex);
}

int ospab_gauge_count(ospab_gauge_t *g, const char *key, int *per_key)
{
    gauge_slot_t *s;
    int total = 0;

    if (per_key) {
        *per_key = 0;
    }
    if (apr_global_mutex_lock(*g->mutex) != APR_SUCCESS) {
        return -1;
    }
    total = (int)g->mem->total;
    if (key && per_key && (s = find(g, ospab_key_hash64(key), 0)) != NULL) {
        *per_key = (int)s->count;
    }
    apr_global_mutex_unlock(*g->mutex);
    return total;
}
