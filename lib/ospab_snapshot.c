/* ospab core: a server's snapshots on Proxmox: list, create, delete, rollback. */
#include <ctype.h>
#include <string.h>
#include <stdlib.h>

#include <apr_strings.h>

#include "ospab_server_int.h"
#include "ospab_json.h"
#include "ospab_util.h"

/* ---- snapshots ---------------------------------------------------------------------------- */

/* Proxmox snapshot name rule: ^[a-zA-Z][a-zA-Z0-9_-]+$, at most 40, not a reserved name. */
static int snapname_ok(const char *s)
{
    static const char *const reserved[] = { "current", "vzdump", "pending", NULL };
    const char *const *r;
    apr_size_t n = strlen(s), i;

    if (n < 2 || n > 40 || !isalpha((unsigned char)s[0])) {
        return 0;
    }
    for (i = 1; i < n; ++i) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-') {
            return 0;
        }
    }
    for (r = reserved; *r; ++r) {
        if (!strcasecmp(*r, s)) {
            return 0;
        }
    }
    return 1;
}

void ospab_server_snapshots(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                            const ospab_principal_t *who, const char *id, ospab_result_t *res)
{
    ospab_actor_t act = { .type = "user", .id = who->user_id, .now = apr_time_now() };
    const ospab_actor_t *a = &act;
    ospab_pve_result_t pr;
    const ospab_vps_t *v;
    json_t *list, *o;
    size_t i;

    memset(res, 0, sizeof(*res));
    if (ospab_vps_load_owned(db, p, who, id, &v, res)
        || ospab_srv_refuse_suspended(p, who, v, "snapshots", res)
        || ospab_srv_on_proxmox(db, p, &c, v, res)) {
        return;
    }
    if (ospab_srv_pve_call(c, p, a, "GET", ospab_srv_guest_path(p, v, "snapshot", NULL, NULL),
                           NULL, &pr) != APR_SUCCESS) {
        ospab_srv_pve_failed(p, &pr, "snapshots", res);
        return;
    }
    list = json_array();
    for (i = 0; i < json_array_size(pr.data); ++i) {
        json_t *s = json_array_get(pr.data, i), *e;
        const char *name = json_string_value(json_object_get(s, "name"));
        apr_int64_t t;

        if (!name || !strcmp(name, "current")) {
            continue;   /* "You are here", not a snapshot */
        }
        e = json_object();
        json_object_set_new(e, "name", json_string(name));
        json_object_set_new(e, "description",
                            json_is_string(json_object_get(s, "description"))
                            ? json_incref(json_object_get(s, "description")) : json_string(""));
        json_object_set_new(e, "snaptime", ospab_pve_int(json_object_get(s, "snaptime"), &t)
                                           ? json_integer((json_int_t)t) : json_null());
        json_array_append_new(list, e);
    }
    o = ospab_srv_success(NULL, NULL);
    json_object_set_new(o, "data", list);
    ospab_srv_ok_body(p, res, 200, o);
}

void ospab_server_snapshot_op(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                              const ospab_principal_t *who, const ospab_actor_t *a,
                              const char *id, const char *op, json_t *body,
                              ospab_result_t *res)
{
    const char *name = json_string_value(json_object_get(body, "snapname"));
    json_t *desc = json_object_get(body, "description");
    json_t *vmstate = json_object_get(body, "vmstate");
    const char *task_id, *upid, *method, *path, *action;
    ospab_pve_param_t params[4] = { { NULL, NULL }, { NULL, NULL }, { NULL, NULL },
                                    { NULL, NULL } };
    int n = 1;
    ospab_pve_result_t pr;
    const ospab_vps_t *v;
    json_t *o;

    memset(res, 0, sizeof(*res));
    if (!json_is_object(body) || !name || !snapname_ok(name)) {
        json_t *f = json_object();

        json_object_set_new(f, "snapname", json_string("must start with a letter, then "
                            "letters, digits, '-' or '_', 2 to 40 characters (not current, "
                            "vzdump, pending)"));
        ospab_result_error(p, res, 400, "invalid snapshot name", f);
        return;
    }
    if (desc && (!json_is_string(desc) || !ospab_text_ok(json_string_value(desc), 0, 255))) {
        json_t *f = json_object();

        json_object_set_new(f, "description", json_string("must be at most 255 printable "
                                                          "characters"));
        ospab_result_error(p, res, 400, "invalid snapshot description", f);
        return;
    }
    if (vmstate && (!json_is_boolean(vmstate) || strcmp(op, "create"))) {
        json_t *f = json_pack("{s:s}", "vmstate", "must be true or false, and only when "
                              "taking a snapshot");

        ospab_result_error(p, res, 400, "invalid vmstate", f);
        return;
    }
    if (json_is_true(vmstate)) {
        if (ospab_vps_load_owned(db, p, who, id, &v, res)) {
            return;
        }
        if (strcmp(ospab_vps_kind(v), "qemu")) {
            ospab_result_error(p, res, 400, "a container's snapshot has no RAM state: vmstate "
                               "is for KVM servers", NULL);
            return;
        }
    }
    action = !strcmp(op, "create") ? "snapshot" : !strcmp(op, "delete") ? "delsnapshot"
                                                                        : "rollback";
    if (ospab_task_prepare(db, p, &c, who, a, id, action, &v, &task_id, res)) {
        return;
    }
    if (!strcmp(op, "create")) {
        method = "POST";
        path = ospab_srv_guest_path(p, v, "snapshot", NULL, NULL);
        params[0] = (ospab_pve_param_t){ "snapname", name };
        if (desc) {
            params[n++] = (ospab_pve_param_t){ "description", json_string_value(desc) };
        }
        if (json_is_true(vmstate)) {
            /* the running VM's memory too (off by default: slower, and as big as its RAM) */
            params[n++] = (ospab_pve_param_t){ "vmstate", "1" };
        }
    }
    else if (!strcmp(op, "delete")) {
        method = "DELETE";
        path = ospab_srv_guest_path(p, v, "snapshot", name, NULL);
    }
    else {
        method = "POST";
        path = ospab_srv_guest_path(p, v, "snapshot", name, "rollback");
    }
    if (ospab_task_started(db, p, a, task_id,
                           ospab_srv_pve_call(c, p, a, method, path, params, &pr), &pr, action,
                           &upid, res)) {
        return;
    }
    o = ospab_srv_success(NULL, upid);
    if (!strcmp(op, "create")) {
        json_object_set_new(o, "snapname", json_string(name));
    }
    ospab_srv_ok_body(p, res, 200, o);
}
