/* ospab core: a vps row, typed (ospab_vps.h). */
#include <stddef.h>
#include <string.h>

#include <apr_strings.h>

#include "ospab_vps.h"
#include "ospab_ippool.h"

#define V(member) offsetof(ospab_vps_t, member)

/* VPS_COLS: the fields of ospab_vps_fields in order, then binding_note */
static const apr_size_t vps_cols[] = {
    V(id), V(external_id), V(name), V(status), V(ip), V(cpu), V(ram), V(disk), V(os),
    V(user_id), V(hypervisor), V(node), V(vmid), V(kind), V(tariff_id), V(os_id),
    V(created_at), V(updated_at), V(binding_note)
};
/* ospab_vps_status_of */
static const apr_size_t status_cols[] = { V(status), V(user_id) };
const ospab_row_shape_t ospab_vps_row = OSPAB_ROW_SHAPE(vps_cols, ospab_vps_t, V(cols));
const ospab_row_shape_t ospab_vps_status_row =
    OSPAB_ROW_SHAPE(status_cols, ospab_vps_t, OSPAB_ROW_NO_RAW);

apr_status_t ospab_vps_load(ospab_db_t *db, apr_pool_t *p, const char *label,
                            const char *arg, const ospab_vps_t **v)
{
    return ospab_db_load(db, p, label, 1, &arg, &ospab_vps_row, (void **)v);
}

int ospab_vps_load_owned(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                         const char *id, const ospab_vps_t **v, ospab_result_t *res)
{
    if (ospab_vps_load(db, p, "ospab_vps_get", id, v) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    if (!*v || (!who->admin && strcmp((*v)->user_id, who->user_id))) {
        ospab_result_error(p, res, 404, "server not found", NULL);
        return 1;
    }
    return 0;
}

const char *ospab_vps_kind(const ospab_vps_t *v)
{
    return v->kind && !strcmp(v->kind, "qemu") ? "qemu" : "lxc";
}

apr_status_t ospab_vps_remove(ospab_db_t *db, apr_pool_t *p, const char *id)
{
    static const char *const steps[] = { "ospab_vps_delete_metrics", "ospab_vps_delete_alerts",
                                         "ospab_vps_detach_tasks", "ospab_vps_delete" };
    apr_status_t rv;
    apr_size_t i;

    /* its addresses go back to their pools, resting for the pools' cooldown */
    if ((rv = ospab_ippool_release(db, p, id, apr_time_now(), 0)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < sizeof(steps) / sizeof(steps[0]); ++i) {
        if ((rv = ospab_db_exec(db, p, steps[i], 1, &id, NULL)) != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}
