/* ospab-agent: the worker threads (agent_pool.c). Each worker owns one database connection
 * (apr_dbd, the module's statements) and runs its tick over and over: a tick does one round
 * of work and says when it wants to run again; agent_wake() or a stop ends the wait early.
 * A connection that stops answering is closed and opened again, with a growing delay while
 * the database is away. Stopping lets every worker finish its current tick. */
#ifndef AGENT_POOL_H
#define AGENT_POOL_H

#include "agent_ctx.h"

/* One worker: its name (for the log) and its tick. */
typedef struct {
    const char *name;
    agent_tick_fn *tick;
} agent_worker_t;

typedef struct agent_pool_t agent_pool_t;

/* The pool of n workers (copied) for ag, from ag->pool; not started yet. */
agent_pool_t *agent_pool_create(agent_t *ag, const agent_worker_t *workers, int n);
/* Clears ag->stopping and starts one thread per worker. */
apr_status_t agent_pool_start(agent_pool_t *pool);
/* Sets ag->stopping, wakes the workers and waits until every thread has ended; the pool
 * may be started again (a reload). */
void agent_pool_stop(agent_pool_t *pool);

#endif
