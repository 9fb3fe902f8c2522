/* ospab-agent: the worker threads (see agent_pool.h). */
#include <apr_dbd.h>
#include <apr_thread_proc.h>

#include "agent_pool.h"

typedef struct {
    agent_worker_t spec;
    agent_t *ag;
    apr_thread_t *thread;
    unsigned long seen_wake;        /* the ag->wake_gen this worker has answered */
} worker_t;

struct agent_pool_t {
    agent_t *ag;
    worker_t *workers;
    int n;
};

agent_pool_t *agent_pool_create(agent_t *ag, const agent_worker_t *workers, int n)
{
    agent_pool_t *pool = apr_pcalloc(ag->pool, sizeof(*pool));
    int i;

    pool->ag = ag;
    pool->n = n;
    pool->workers = apr_pcalloc(ag->pool, sizeof(*pool->workers) * (apr_size_t)n);
    for (i = 0; i < n; ++i) {
        pool->workers[i].spec = workers[i];
        pool->workers[i].ag = ag;
    }
    return pool;
}

/* Waits up to t, or until woken or stopping. */
static void worker_wait(worker_t *w, apr_interval_time_t t)
{
    agent_t *ag = w->ag;
    apr_time_t until = apr_time_now() + t;

    apr_thread_mutex_lock(ag->lock);
    while (!ag->stopping && w->seen_wake == ag->wake_gen) {
        apr_time_t left = until - apr_time_now();

        if (left <= 0) {
            break;
        }
        apr_thread_cond_timedwait(ag->wake, ag->lock, left);
    }
    w->seen_wake = ag->wake_gen;
    apr_thread_mutex_unlock(ag->lock);
}

static void *APR_THREAD_FUNC worker_main(apr_thread_t *t, void *data)
{
    worker_t *w = data;
    agent_t *ag = w->ag;
    apr_pool_t *conn_pool, *tick_pool;
    apr_interval_time_t retry = apr_time_from_sec(1);
    ospab_db_t db;
    int open = 0;

    apr_pool_create(&conn_pool, NULL);
    apr_pool_create(&tick_pool, NULL);
    while (!ag->stopping) {
        apr_interval_time_t next;

        if (!open) {
            const char *why = NULL;

            apr_pool_clear(conn_pool);
            if (agent_db_open(ag, conn_pool, &db, &why) != APR_SUCCESS) {
                AGENT_ERROR("%s: %s (retry in %ds)", w->spec.name, why,
                            (int)apr_time_sec(retry));
                worker_wait(w, retry);
                retry = retry * 2 > apr_time_from_sec(60) ? apr_time_from_sec(60) : retry * 2;
                continue;
            }
            open = 1;
            retry = apr_time_from_sec(1);
        }
        db.errcode = 0;
        next = w->spec.tick(ag, &db, tick_pool);
        apr_pool_clear(tick_pool);
        if (db.trans) {
            ospab_db_end(&db, 0);
        }
        /* After a failed statement, a prepared one must still work: MariaDB may have
         * dropped the connection (restart, wait_timeout, KILL), and apr_dbd_mysql's
         * automatic reconnect brings the connection back without our statements. Then
         * the connection is opened again and everything prepared anew. */
        if (db.errcode != 0 && !agent_db_usable(&db, tick_pool)) {
            AGENT_WARN("%s: database connection lost, reconnecting", w->spec.name);
            apr_dbd_close(db.driver, db.handle);
            open = 0;
            next = 0;
        }
        apr_pool_clear(tick_pool);
        if (next > 0) {
            worker_wait(w, next);
        }
    }
    if (open) {
        apr_dbd_close(db.driver, db.handle);
    }
    apr_pool_destroy(tick_pool);
    apr_pool_destroy(conn_pool);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

apr_status_t agent_pool_start(agent_pool_t *pool)
{
    agent_t *ag = pool->ag;
    apr_threadattr_t *attr;
    int i;

    ag->stopping = 0;
    apr_threadattr_create(&attr, ag->pool);
    apr_threadattr_stacksize_set(attr, 1 << 20);
    for (i = 0; i < pool->n; ++i) {
        worker_t *w = &pool->workers[i];
        apr_status_t rv;

        w->seen_wake = ag->wake_gen;
        if ((rv = apr_thread_create(&w->thread, attr, worker_main, w, ag->pool))
                != APR_SUCCESS) {
            AGENT_ERROR("cannot start the %s thread", w->spec.name);
            return rv;
        }
    }
    return APR_SUCCESS;
}

void agent_pool_stop(agent_pool_t *pool)
{
    agent_t *ag = pool->ag;
    apr_status_t rv;
    int i;

    apr_thread_mutex_lock(ag->lock);
    ag->stopping = 1;
    apr_thread_cond_broadcast(ag->wake);
    apr_thread_mutex_unlock(ag->lock);
    for (i = 0; i < pool->n; ++i) {
        if (pool->workers[i].thread) {
            apr_thread_join(&rv, pool->workers[i].thread);
            pool->workers[i].thread = NULL;
        }
    }
}
