/* ospab-agent: what the parts of the agent share (agent_ctx.c): the running configuration,
 * the live-push server, the workers' stop flag and wake-up, database connections with the
 * module's statements prepared, and pushes to browsers. The worker threads that run the
 * ticks are agent_pool.c's; the daemon that starts and stops everything is agent_main.c. */
#ifndef AGENT_CTX_H
#define AGENT_CTX_H

#include <apr_pools.h>
#include <apr_thread_mutex.h>
#include <apr_thread_cond.h>
#include <apr_time.h>
#include <jansson.h>

#include "ospab_db.h"
#include "agent_conf.h"
#include "agent_sio.h"

typedef struct agent_t agent_t;

/* One round of a worker's work on its own connection. p is cleared after each tick.
 * Returns how long to wait before the next round (the worker may be woken earlier). */
typedef apr_interval_time_t agent_tick_fn(agent_t *ag, ospab_db_t *db, apr_pool_t *p);

struct agent_t {
    apr_pool_t *pool;
    agent_conf_t *conf;             /* replaced on SIGHUP while the workers are stopped */
    agent_sio_t *sio;               /* NULL when [websocket] is off */
    volatile int stopping;          /* workers end after their current tick */
    apr_thread_mutex_t *lock;
    apr_thread_cond_t *wake;        /* signalled on stop/reload and by agent_wake() */
    unsigned long wake_gen;         /* under lock: counts agent_wake() calls */
    void *monitor;                  /* agent_monitor.c's state (alert counters, backoff) */
    struct agent_console_t *console;    /* agent_console.c's state; NULL when it is off */
};

/* Opens a connection with the statements prepared. */
apr_status_t agent_db_open(agent_t *ag, apr_pool_t *p, ospab_db_t *db, const char **why);
/* The connection answers a prepared statement (after a failure: is it worth keeping?). */
int agent_db_usable(ospab_db_t *db, apr_pool_t *p);
/* Wakes every worker now (e.g. after the sio server saw a new room). */
void agent_wake(agent_t *ag);
/* Publishes to the live-push server if there is one; adds "sentAt" (ms since the epoch)
 * to data. */
void agent_publish(agent_t *ag, apr_int64_t server_id, const char *event, json_t *data);
/* The same with the compact form for the subscribers that asked for it (agent_sio.h). */
void agent_publish2(agent_t *ag, apr_int64_t server_id, const char *event, json_t *data,
                    json_t *compact);

#endif
