/* ospab-agent: its Prometheus metrics (docs/monitoring.md). The threads count into one
 * process-wide set of atomic counters; the live-push event loop renders them for GET
 * /metrics on the metrics listener ([agent] metrics_listen). */
#ifndef AGENT_METRICS_H
#define AGENT_METRICS_H

#include <apr_atomic.h>
#include <apr_pools.h>
#include <apr_time.h>

#include "ospab_db.h"
#include "ospab_prom.h"
#include "agent_console.h"

typedef struct {
    volatile apr_uint64_t polls, poll_failures;         /* cluster polls, failed ones */
    volatile apr_uint64_t drift;                        /* records corrected from Proxmox */
    volatile apr_uint64_t suspension_stops;             /* suspended servers' guests stopped */
    volatile apr_uint64_t task_followups;               /* servers' running tasks asked after */
    volatile apr_uint64_t alerts;                       /* alerts opened */
    volatile apr_uint64_t db_conflict_retries;          /* transactions run again */
    volatile apr_uint64_t mail_sent, mail_retried, mail_failed;
    volatile apr_uint64_t webhook_delivered, webhook_retried, webhook_failed;
    volatile apr_uint32_t guests;                       /* guests seen in the last round */
    volatile apr_uint32_t mail_queued, webhook_queued;  /* pending or being sent */
    volatile apr_uint32_t mail_queue_known, webhook_queue_known;
    ospab_prom_shared_hist_t poll;                      /* one polling round's duration */
    int served;     /* a metrics listener exists (set before the workers start): without
                     * one, nothing that costs a query or an allocation is gathered */
} agent_metrics_t;

extern agent_metrics_t agent_metrics;

#define AGENT_COUNT(field) apr_atomic_inc64(&agent_metrics.field)

/* ospab_db_conflict_again, counted: 1 when the agent's transaction that failed on a write
 * conflict (Galera: another node's rows) is to run again. */
int agent_db_conflict_again(ospab_db_t *db, int *attempt);

/* The clusters this agent holds the lease of, by name, and those it does not: set by the
 * monitor thread after each round (names[i], held[i], n of them). */
void agent_metrics_leases(const char *const *names, const int *held, int n);
/* Counts a queue with the one-value statement label into *depth (*known set once it
 * worked); a failed count leaves the last one. Nothing without a metrics listener. */
void agent_metrics_queue(ospab_db_t *db, apr_pool_t *p, const char *label,
                         volatile apr_uint32_t *depth, volatile apr_uint32_t *known);
/* The text for GET /metrics, with the statistics of s, the live-push server serving it
 * (agent_sio_conf_t.metrics; on its service thread). */
struct agent_sio_t;
const char *agent_metrics_text(struct agent_sio_t *s, apr_pool_t *p, apr_size_t *len);
/* The console proxy whose figures /metrics shows too (NULL: none); before the listener. */
void agent_metrics_set_console(agent_console_t *c);

#endif
