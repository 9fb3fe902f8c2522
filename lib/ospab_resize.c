/* ospab core: PUT /api/server/{id}/resize (OspabResize: within the tariff, free, off) and
 * the billing site's resize of a bound guest (a sync update's sizes). */
#include <string.h>
#include <stdlib.h>

#include <apr_strings.h>

#include "ospab_server_int.h"
#include "ospab_json.h"
#include "ospab_util.h"
#include "ospab_events.h"
#include "ospab_resource.h"
#include "ospab_catalog.h"

/* ---- resize ----------------------------------------------------------------------------- */

/* The sizes a customer asks for, checked against what the provider allows (OspabResize).
 * val[3] (cores, memory, disk; NULL: unchanged) may be filled in from a tariff the server
 * moves to (*tariff then names it). 0: go on; 1: res is set. */
static int resize_allowed(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                          const ospab_principal_t *who, const ospab_vps_t *v, const char **val,
                          const char *tariff_id, const ospab_tariff_t **tariff,
                          ospab_result_t *res)
{
    static const char *const names[3] = { "cores", "memory", "disk" };
    static const char *const units[3] = { "", " MB", " GB" };
    json_t *errors;
    const ospab_tariff_t *t = NULL;
    const char *bound[3];
    int i;

    *tariff = NULL;
    if (!who->admin && c->resize == OSPAB_RESIZE_OFF) {
        ospab_result_error(p, res, 403, "resizing is not available to customers: ask your "
                           "provider", NULL);
        return 1;
    }
    if (tariff_id) {
        /* a move to another tariff: its sizes, the disk only growing */
        if (ospab_tariff_load(db, p, "ospab_tariff_get", tariff_id, &t) != APR_SUCCESS) {
            ospab_result_db_failed(db, p, res);
            return 1;
        }
        errors = json_object();
        if (!t) {
            json_object_set_new(errors, "tariffId", json_string(apr_psprintf(p,
                                "tariff %s does not exist or is not available", tariff_id)));
        }
        else if (apr_atoi64(t->disk) < apr_atoi64(v->disk)) {
            json_object_set_new(errors, "tariffId", json_string(apr_psprintf(p,
                                "its disk (%s GB) is smaller than the server's (%s GB): disks "
                                "only grow", t->disk, v->disk)));
        }
        if (json_object_size(errors)) {
            ospab_result_error(p, res, 422, ospab_fields_summary(p, "resize", errors), errors);
            return 1;
        }
        json_decref(errors);
        val[0] = t->cores;
        val[1] = t->memory;
        val[2] = t->disk;
        *tariff = t;
        return 0;
    }
    if (who->admin || c->resize == OSPAB_RESIZE_FREE) {
        return 0;
    }
    /* within the server's own tariff */
    if (!v->tariff_id) {
        ospab_result_error(p, res, 403, "this server has no tariff to resize within: choose "
                           "one (tariffId) or ask your provider", NULL);
        return 1;
    }
    if (ospab_tariff_load(db, p, "ospab_tariff_get_any", v->tariff_id, &t) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    if (!t) {
        ospab_result_error(p, res, 403, "this server's tariff is gone: ask your provider",
                           NULL);
        return 1;
    }
    errors = json_object();
    bound[0] = t->cores;
    bound[1] = t->memory;
    bound[2] = t->disk;
    for (i = 0; i < 3; ++i) {
        if (val[i] && apr_atoi64(val[i]) > apr_atoi64(bound[i])) {
            json_object_set_new(errors, names[i], json_string(apr_psprintf(p,
                                "at most %s%s on tariff '%s': choose a larger tariff "
                                "(tariffId)", bound[i], units[i], t->name)));
        }
    }
    if (json_object_size(errors)) {
        ospab_result_error(p, res, 403, ospab_fields_summary(p, "resize", errors), errors);
        return 1;
    }
    json_decref(errors);
    return 0;
}

/* The new sizes (and tariff) in the record, with server.tariff for a move: one
 * transaction. */
static apr_status_t resize_record(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                                  const ospab_vps_t *v, const char **args,
                                  const ospab_tariff_t *tariff)
{
    const char *id = v->id;
    apr_status_t rv = ospab_db_begin(db, p);

    if (rv == APR_SUCCESS) {
        rv = ospab_db_exec(db, p, "ospab_vps_set_resources", 5, args, NULL);
    }
    if (rv == APR_SUCCESS && tariff) {
        const char *targs[3] = { tariff->id, args[3], id };
        json_t *data = json_pack("{s:I, s:I, s:I, s:o, s:I, s:I, s:I}",
                                 "serverId", (json_int_t)apr_atoi64(id),
                                 "userId", (json_int_t)apr_atoi64(v->user_id),
                                 "tariffId", (json_int_t)apr_atoi64(tariff->id),
                                 "previousTariffId", ospab_json_int_or_null(
                                                         v->tariff_id),
                                 "cores", (json_int_t)apr_atoi64(args[0]),
                                 "memory", (json_int_t)apr_atoi64(args[1]),
                                 "disk", (json_int_t)apr_atoi64(args[2]));

        rv = ospab_db_exec(db, p, "ospab_vps_set_tariff", 3, targs, NULL);
        if (rv == APR_SUCCESS) {
            rv = data ? ospab_event_add(db, p, a->now, OSPAB_EVENT_TARIFF, data) : APR_ENOMEM;
        }
        json_decref(data);
    }
    if (db->trans) {
        apr_status_t end = ospab_db_end(db, rv == APR_SUCCESS);

        rv = rv == APR_SUCCESS ? end : rv;
    }
    return rv;
}

static int resize_guest(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                        const ospab_principal_t *who, const ospab_actor_t *a, const char *id,
                        const char **val, const ospab_vps_t **vp, const char **upid,
                        json_t **pending, ospab_result_t *res);

void ospab_server_resize(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                         const ospab_principal_t *who, const ospab_actor_t *a, const char *id,
                         json_t *body, ospab_result_t *res)
{
    static const struct { const char *name; long long min, max; int col; } f[] = {
        { "cores", 1, 1024, OSPAB_VPS_CPU },
        { "memory", 128, 4194304, OSPAB_VPS_RAM },
        { "disk", 1, 1048576, OSPAB_VPS_DISK },
    };
    json_t *errors = json_object(), *data, *pending = NULL;
    const char *val[3] = { NULL, NULL, NULL };
    const char *key, *upid = NULL, *tariff_id = NULL;
    const char *args[5];
    const ospab_vps_t *v;
    const ospab_tariff_t *tariff;
    apr_int64_t n64;
    json_t *x;
    int i;

    memset(res, 0, sizeof(*res));
    if (!json_is_object(body)) {
        json_decref(errors);
        ospab_result_error(p, res, 400, "request body must be a JSON object", NULL);
        return;
    }
    json_object_foreach(body, key, x) {
        for (i = 0; i < 3 && strcmp(f[i].name, key); ++i) {
        }
        if (i == 3 && !strcmp(key, "tariffId")) {
            if (!ospab_srv_positive_int(x, &n64)) {
                json_object_set_new(errors, key, json_string("must be the id of a tariff"));
            }
            else {
                tariff_id = apr_psprintf(p, "%" APR_INT64_T_FMT, n64);
            }
        }
        else if (i == 3) {
            json_object_set_new(errors, ospab_text_ok(key, 1, 64) ? key : "(unprintable)",
                                json_string("unknown field"));
        }
        else if (!json_is_integer(x) || json_integer_value(x) < f[i].min
                 || json_integer_value(x) > f[i].max) {
            json_object_set_new(errors, key, json_string(apr_psprintf(p, "must be an integer "
                                "from %" APR_INT64_T_FMT " to %" APR_INT64_T_FMT,
                                (apr_int64_t)f[i].min, (apr_int64_t)f[i].max)));
        }
        else {
            val[i] = apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)json_integer_value(x));
        }
    }
    if (tariff_id && (val[0] || val[1] || val[2])) {
        json_object_set_new(errors, "tariffId", json_string("give either a tariff or sizes, "
                                                            "not both"));
    }
    if (json_object_size(errors)) {
        ospab_result_error(p, res, 400, ospab_fields_summary(p, "resize", errors), errors);
        return;
    }
    json_decref(errors);
    if (!val[0] && !val[1] && !val[2] && !tariff_id) {
        ospab_result_error(p, res, 400, "nothing to change: give cores, memory and/or disk, "
                           "or tariffId", NULL);
        return;
    }
    if (ospab_vps_load_owned(db, p, who, id, &v, res)
        || ospab_srv_refuse_suspended(p, who, v, "resize", res)
        || ospab_srv_on_proxmox(db, p, &c, v, res)
        || resize_allowed(db, p, c, who, v, val, tariff_id, &tariff, res)) {
        return;
    }
    if (val[2] && apr_atoi64(val[2]) < apr_atoi64(v->disk)) {
        ospab_result_error(p, res, 400, apr_psprintf(p, "disk can only grow (it has %s GB)",
                                                     v->disk), NULL);
        return;
    }
    if (resize_guest(db, p, c, who, a, id, val, &v, &upid, &pending, res)) {
        return;
    }
    args[0] = val[0] ? val[0] : v->cpu;
    args[1] = val[1] ? val[1] : v->ram;
    args[2] = val[2] ? val[2] : v->disk;
    args[3] = ospab_time_db(p, a->now);
    args[4] = id;
    if (resize_record(db, p, a, v, args, tariff) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    data = json_object();
    json_object_set_new(data, "cores", ospab_json_int_or_null(args[0]));
    json_object_set_new(data, "memory", ospab_json_int_or_null(args[1]));
    json_object_set_new(data, "disk", ospab_json_int_or_null(args[2]));
    if (tariff) {
        json_object_set_new(data, "tariffId", ospab_json_int_or_null(tariff->id));
    }
    json_object_set_new(data, "taskId", ospab_json_str_or_null(upid));
    if (pending) {
        /* hot-plug is off for them in the guest: Proxmox keeps them until its next start */
        json_object_set(data, "pending", pending);
        json_object_set_new(data, "note", json_string("the new cores/memory take effect when "
                                                      "the server is restarted"));
    }
    x = ospab_srv_success(NULL, NULL);
    json_object_set_new(x, "data", data);
    ospab_srv_ok_body(p, res, 200, x);
}

/* The sizes a running guest got as pending changes (its hot-plug does not take them:
 * they apply at its next start), as a JSON array of "cores"/"memory"; NULL when none. */
static json_t *pending_sizes(apr_pool_t *p, const ospab_server_conf_t *c, const ospab_actor_t *a,
                             const ospab_vps_t *v)
{
    ospab_pve_result_t pr;
    json_t *out = NULL;
    size_t i;

    if (ospab_srv_pve_call(c, p, a, "GET", ospab_srv_guest_path(p, v, "pending", NULL, NULL),
                           NULL, &pr) != APR_SUCCESS) {
        return NULL;
    }
    for (i = 0; i < json_array_size(pr.data); ++i) {
        json_t *e = json_array_get(pr.data, i);
        const char *key = json_string_value(json_object_get(e, "key"));

        if (key && (!strcmp(key, "cores") || !strcmp(key, "memory"))
            && json_object_get(e, "pending")) {
            if (!out) {
                out = ospab_json_own(p, json_array());
            }
            json_array_append_new(out, json_string(key));
        }
    }
    return out;
}

/* The disk a resize grows: a container's rootfs, a VM's boot disk (from its config). */
static const char *disk_of(apr_pool_t *p, const ospab_server_conf_t *c, const ospab_actor_t *a,
                           const ospab_vps_t *v)
{
    ospab_pve_result_t pr;
    const char *disk;

    if (!strcmp(ospab_vps_kind(v), "lxc")) {
        return "rootfs";
    }
    if (ospab_srv_pve_call(c, p, a, "GET", ospab_srv_guest_path(p, v, "config", NULL, NULL),
                           NULL, &pr) == APR_SUCCESS
        && (disk = ospab_kvm_boot_disk(p, pr.data)) != NULL) {
        return disk;
    }
    return "scsi0";
}

/* The guest gets the sizes (val: cores, memory, disk; NULL unchanged): one operation, a
 * synchronous config change and, for a bigger disk, a resize task (*upid). *v is the
 * record as it is now; *pending (when not NULL) the sizes a running guest takes only at
 * its next start. 0: done or started; 1: res is set. */
static int resize_guest(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                        const ospab_principal_t *who, const ospab_actor_t *a, const char *id,
                        const char **val, const ospab_vps_t **vp, const char **upid,
                        json_t **pending, ospab_result_t *res)
{
    ospab_pve_param_t conf_params[3];
    ospab_pve_result_t pr;
    const char *task_id;
    const ospab_vps_t *v = *vp;
    int n = 0;

    *upid = NULL;
    ospab_task_follow_up(db, p, c, a, v);
    if (ospab_vps_load_owned(db, p, who, id, vp, res)
        || ospab_srv_refuse_suspended(p, who, *vp, "resize", res)
        || ospab_task_begin(db, p, a, *vp, "resize", &task_id, res)) {
        return 1;
    }
    v = *vp;
    if (val[0]) {
        conf_params[n++] = (ospab_pve_param_t){ "cores", val[0] };
    }
    if (val[1]) {
        conf_params[n++] = (ospab_pve_param_t){ "memory", val[1] };
    }
    conf_params[n] = (ospab_pve_param_t){ NULL, NULL };
    if (n && ospab_srv_pve_call(c, p, a, "PUT", ospab_srv_guest_path(p, v, "config", NULL, NULL),
                            conf_params, &pr) != APR_SUCCESS) {
        ospab_task_finish(db, p, a, task_id, 0, NULL, pr.message);
        ospab_srv_pve_failed(p, &pr, "config", res);
        return 1;
    }
    if (n && pending && v->status && !strcmp(v->status, "running")) {
        *pending = pending_sizes(p, c, a, v);
    }
    if (val[2] && strcmp(val[2], v->disk)) {
        ospab_pve_param_t rp[] = { { "disk", disk_of(p, c, a, v) },
                                   { "size", apr_pstrcat(p, val[2], "G", NULL) },
                                   { NULL, NULL } };

        return ospab_task_started(db, p, a, task_id,
                                  ospab_srv_pve_call(c, p, a, "PUT", ospab_srv_guest_path(
                                                     p, v, "resize", NULL, NULL), rp, &pr),
                                  &pr, "resize", upid, res);
    }
    ospab_task_finish(db, p, a, task_id, 1, "OK", NULL);
    return 0;
}

int ospab_server_sync_resize(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                             const ospab_actor_t *a, const ospab_vps_t *v, const char **val,
                             const char **upid, ospab_result_t *res)
{
    ospab_principal_t who;
    const ospab_vps_t *cur = v;

    memset(res, 0, sizeof(*res));
    *upid = NULL;
    ospab_srv_billing(v, &who);
    if (ospab_srv_on_proxmox(db, p, &c, v, res)) {
        return 1;
    }
    if (val[2] && apr_atoi64(val[2]) < apr_atoi64(v->disk)) {
        json_t *f = json_object();

        json_object_set_new(f, "disk", json_string(apr_psprintf(p, "can only grow: the "
                            "server's disk has %s GB on Proxmox", v->disk)));
        ospab_result_error(p, res, 422, apr_psprintf(p, "invalid vps: disk: can only grow "
                           "(it has %s GB)", v->disk), f);
        return 1;
    }
    return resize_guest(db, p, c, &who, a, v->id, val, &cur, upid, NULL, res);
}
