/* ospab-agent: the rows the monitor's rounds share, from the statements' column order
 * (lib/ospab_sql_agent.c) to named members. The statements' own files load the rows only
 * they read (agent_alerts.c, agent_events.c, agent_leases.c). */
#include "agent_monitor_int.h"

/* id, user_id, name, status, node, vmid, kind */
void agent_vps_from_row(ospab_row_t r, agent_vps_t *v)
{
    v->id = r[0];
    v->user_id = r[1];
    v->name = r[2];
    v->status = r[3];
    v->node = r[4];
    v->vmid = r[5];
    v->kind = r[6];
    v->binding_note = NULL;
}

/* the columns of ospab_agent_vps_index, then binding_note */
void agent_vps_unbound_from_row(ospab_row_t r, agent_vps_t *v)
{
    agent_vps_from_row(r, v);
    v->binding_note = r[7];
}

/* vps_id */
const char *agent_active_server_from_row(ospab_row_t r)
{
    return r[0];
}
