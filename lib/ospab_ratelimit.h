/* ospab core: attempt counters shared by every process of a server (anonymous shared
 * memory created before fork, guarded by a global mutex). Fixed windows per key; a counter
 * that reached its limit is never evicted to make room for another key. */
#ifndef OSPAB_RATELIMIT_H
#define OSPAB_RATELIMIT_H

#include <apr_pools.h>
#include <apr_time.h>
#include <apr_global_mutex.h>

typedef struct ospab_ratelimit_t ospab_ratelimit_t;

/* slots: how many keys can be tracked at once (beyond, the least used counter below its
 * limit is evicted).
 * *mutex is read at every use: a child's apr_global_mutex_child_init() may replace it. */
apr_status_t ospab_ratelimit_create(apr_pool_t *p, apr_size_t slots,
                                    apr_global_mutex_t **mutex, ospab_ratelimit_t **rl);

/* Takes one attempt for key, atomically: 0 when it was within the limit (and is now
 * counted), else the seconds until key may try again (for Retry-After; nothing counted;
 * also when the table has no room that would not evict a counter at its limit).
 * Parallel attempts cannot all slip through between a check and a count. */
int ospab_ratelimit_take(ospab_ratelimit_t *rl, const char *key, int limit, int window,
                         apr_time_t now);
/* Gives back an attempt taken by ospab_ratelimit_take (the login succeeded). */
void ospab_ratelimit_give_back(ospab_ratelimit_t *rl, const char *key, int window,
                               apr_time_t now);

#endif
