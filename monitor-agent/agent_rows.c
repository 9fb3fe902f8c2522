/* ospab-agent: the rows the monitor's rounds share, from the statements' column order
 * (lib/ospab_sql_agent.c) to named members. The statements' own files load the rows only
 * they read (agent_alerts.c, agent_events.c, agent_leases.c). */
#include <stddef.h>

#include "agent_monitor_int.h"

#define V(member) offsetof(agent_vps_t, member)

/* ospab_agent_vps_index, _one: id, user_id, name, status, node, vmid, kind; _unbound: the
 * same, then binding_note */
static const apr_size_t vps_cols[] = {
    V(id), V(user_id), V(name), V(status), V(node), V(vmid), V(kind), V(binding_note)
};
static const ospab_row_shape_t vps_shape =
    { vps_cols, 7, sizeof(agent_vps_t), OSPAB_ROW_NO_RAW };
static const ospab_row_shape_t unbound_shape =
    OSPAB_ROW_SHAPE(vps_cols, agent_vps_t, OSPAB_ROW_NO_RAW);

void agent_vps_from_row(ospab_row_t r, agent_vps_t *v)
{
    ospab_row_fill(&vps_shape, r, v);
}

void agent_vps_unbound_from_row(ospab_row_t r, agent_vps_t *v)
{
    ospab_row_fill(&unbound_shape, r, v);
}

/* vps_id */
const char *agent_active_server_from_row(ospab_row_t r)
{
    return r[0];
}
