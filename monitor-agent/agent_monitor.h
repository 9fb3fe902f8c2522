/* ospab-agent: the monitor thread's work (see agent_monitor.c). */
#ifndef AGENT_MONITOR_H
#define AGENT_MONITOR_H

#include "agent_ctx.h"

/* The monitor thread's tick. */
agent_tick_fn agent_monitor_tick;
/* Makes the Proxmox clients of ag->conf's clusters and the monitor's state. */
apr_status_t agent_monitor_setup(agent_t *ag);
/* Called with the workers stopped, before ag->conf becomes c: clients for c's clusters. */
void agent_monitor_reconfigure(agent_t *ag, agent_conf_t *c);
/* Gives up this agent's cluster leases (at shutdown, on the main thread's connection), so
 * another agent takes the clusters over at once instead of after the lease's expiry. */
void agent_monitor_release(agent_t *ag, ospab_db_t *db);
/* One full round now (poll, tasks, alerts) on db; prints a JSON summary on stdout. */
apr_status_t agent_monitor_once(agent_t *ag, ospab_db_t *db);

#endif
