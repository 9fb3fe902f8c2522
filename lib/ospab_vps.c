/* ospab core: a vps row, typed (ospab_vps.h). */
#include <string.h>

#include <apr_strings.h>

#include "ospab_vps.h"
#include "ospab_resource.h"

void ospab_vps_from_row(ospab_row_t r, ospab_vps_t *v)
{
    v->id = r[OSPAB_VPS_ID];
    v->external_id = r[OSPAB_VPS_EXTERNAL_ID];
    v->name = r[OSPAB_VPS_NAME];
    v->status = r[OSPAB_VPS_STATUS];
    v->ip = r[OSPAB_VPS_IP];
    v->cpu = r[OSPAB_VPS_CPU];
    v->ram = r[OSPAB_VPS_RAM];
    v->disk = r[OSPAB_VPS_DISK];
    v->os = r[OSPAB_VPS_OS];
    v->user_id = r[OSPAB_VPS_USER_ID];
    v->hypervisor = r[OSPAB_VPS_HYPERVISOR];
    v->node = r[OSPAB_VPS_NODE];
    v->vmid = r[OSPAB_VPS_VMID];
    v->kind = r[OSPAB_VPS_KIND];
    v->tariff_id = r[OSPAB_VPS_TARIFF_ID];
    v->os_id = r[OSPAB_VPS_OS_ID];
    v->created_at = r[OSPAB_VPS_CREATED_AT];
    v->updated_at = r[OSPAB_VPS_UPDATED_AT];
    v->binding_note = r[OSPAB_VPS_BINDING_NOTE];
    v->cols = r;
}

void ospab_vps_status_from_row(ospab_row_t r, ospab_vps_t *v)
{
    memset(v, 0, sizeof(*v));
    v->status = r[0];
    v->user_id = r[1];
}

apr_status_t ospab_vps_load(ospab_db_t *db, apr_pool_t *p, const char *label,
                            const char *arg, const ospab_vps_t **v)
{
    ospab_row_t r = NULL;
    apr_status_t rv = ospab_db_select_one(db, p, label, 1, &arg, &r);
    ospab_vps_t *out;

    *v = NULL;
    if (rv != APR_SUCCESS || !r) {
        return rv;
    }
    out = apr_palloc(p, sizeof(*out));
    ospab_vps_from_row(r, out);
    *v = out;
    return APR_SUCCESS;
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

    for (i = 0; i < sizeof(steps) / sizeof(steps[0]); ++i) {
        if ((rv = ospab_db_exec(db, p, steps[i], 1, &id, NULL)) != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}
