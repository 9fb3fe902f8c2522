/* ospab core: shared-memory attempt counters. Keys are stored as 64-bit digests in an
 * open-addressing table with a bounded probe. A new key takes a free or expired slot of its
 * run, else the one with the fewest attempts; a counter at its limit is never evicted, so
 * flooding the table with fresh keys cannot make it forget an account under attack (when
 * every slot of the run is at its limit, the new key is refused until one expires). */
#include <string.h>

#include <apr_shm.h>

#include "ospab_ratelimit.h"
#include "ospab_util.h"

#define PROBE 16

typedef struct {
    apr_uint64_t key;       /* 0: free */
    apr_int64_t start;      /* window start, seconds */
    apr_uint32_t count;
} slot_t;

struct ospab_ratelimit_t {
    apr_shm_t *shm;
    apr_global_mutex_t **mutex;
    slot_t *slots;
    apr_size_t nslots;
};

apr_status_t ospab_ratelimit_create(apr_pool_t *p, apr_size_t slots,
                                    apr_global_mutex_t **mutex, ospab_ratelimit_t **out)
{
    ospab_ratelimit_t *rl = apr_pcalloc(p, sizeof(*rl));
    apr_status_t rv;

    rv = apr_shm_create(&rl->shm, slots * sizeof(slot_t), NULL, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rl->slots = apr_shm_baseaddr_get(rl->shm);
    memset(rl->slots, 0, slots * sizeof(slot_t));
    rl->nslots = slots;
    rl->mutex = mutex;
    *out = rl;
    return APR_SUCCESS;
}

/* The slot of key; with create, else a new one: free or expired, or the least used
 * below limit. NULL when key has none (create: every slot of the run is at its limit;
 * *wait then says when the first of them expires). Mutex held. */
static slot_t *find(ospab_ratelimit_t *rl, apr_uint64_t k, int create, apr_int64_t now,
                    int window, int limit, int *wait)
{
    apr_size_t i, at = (apr_size_t)(k % rl->nslots);
    slot_t *take = NULL, *s;
    apr_int64_t first_free = 0;

    for (i = 0; i < PROBE; ++i) {
        s = &rl->slots[(at + i) % rl->nslots];
        if (s->key == k) {
            return s;
        }
    }
    if (!create) {
        return NULL;
    }
    for (i = 0; i < PROBE; ++i) {
        s = &rl->slots[(at + i) % rl->nslots];
        if (s->key == 0 || s->start + window <= now) {
            take = s;
            break;
        }
        if (s->count < (apr_uint32_t)limit && (!take || s->count < take->count
                                               || (s->count == take->count
                                                   && s->start < take->start))) {
            take = s;
        }
        if (!first_free || s->start + window < first_free) {
            first_free = s->start + window;
        }
    }
    if (!take) {
        *wait = (int)(first_free - now);
        return NULL;
    }
    take->key = k;
    take->start = now;
    take->count = 0;
    return take;
}

int ospab_ratelimit_take(ospab_ratelimit_t *rl, const char *key, int limit, int window,
                         apr_time_t now)
{
    apr_int64_t t = apr_time_sec(now);
    slot_t *s;
    int wait = 0;

    if (apr_global_mutex_lock(*rl->mutex) != APR_SUCCESS) {
        return 0;
    }
    s = find(rl, ospab_key_hash64(key), 1, t, window, limit, &wait);
    if (!s) {
        apr_global_mutex_unlock(*rl->mutex);
        return wait > 0 ? wait : 1;
    }
    if (s->start + window <= t) {
        s->start = t;
        s->count = 0;
    }
    if (s->count >= (apr_uint32_t)limit) {
        wait = (int)(s->start + window - t);
    }
    else {
        ++s->count;
    }
    apr_global_mutex_unlock(*rl->mutex);
    return wait;
}

void ospab_ratelimit_give_back(ospab_ratelimit_t *rl, const char *key, int window,
                               apr_time_t now)
{
    apr_int64_t t = apr_time_sec(now);
    slot_t *s;

    if (apr_global_mutex_lock(*rl->mutex) != APR_SUCCESS) {
        return;
    }
    s = find(rl, ospab_key_hash64(key), 0, t, window, 0, NULL);
    if (s && s->start + window > t && s->count > 0) {
        --s->count;
    }
    apr_global_mutex_unlock(*rl->mutex);
}
