/* ospab core: POST /api/server/{id}/reinstall (issue 14). The guest is made anew from an
 * OS entry of its kind, keeping its vmid, its network (net0, and a VM's cloud-init
 * addresses, as its config has them) and its resources; a new root password is shown
 * once. One task row follows the chain (ospab_task.c): a container is destroyed (force:
 * Proxmox stops it first) and created again, then started; a VM is stopped, destroyed,
 * cloned from the template, configured, grown, started. What the steps need is read from
 * the guest's config before anything is destroyed and kept in the row (tasks.params; the
 * password only as its SHA-512 crypt hash, which both pve-container and cloud-init take as
 * it is). Snapshots go with the old guest: a server that has some is reinstalled only when
 * the request says "confirm": true. */
#include <string.h>
#include <stdlib.h>

#include <apr_strings.h>

#include "ospab_server_int.h"
#include "ospab_json.h"
#include "ospab_util.h"
#include "ospab_fields.h"
#include "ospab_resource.h"
#include "ospab_pve_errors.h"
#include "ospab_sshkeys.h"

static const char *param(json_t *params, const char *name)
{
    return json_string_value(json_object_get(params, name));
}

/* A config value as text (Proxmox gives numbers as numbers), or fallback. */
static const char *conf_text(apr_pool_t *p, json_t *conf, const char *key, const char *fallback)
{
    json_t *v = json_object_get(conf, key);

    if (json_is_string(v)) {
        return json_string_value(v);
    }
    if (json_is_integer(v)) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)json_integer_value(v));
    }
    return fallback;
}

/* The snapshots a reinstall would take away (not "current"): their names, or NULL when
 * Proxmox could not be asked. */
static json_t *snapshots_of(apr_pool_t *p, const ospab_server_conf_t *c, const ospab_actor_t *a,
                            const ospab_vps_t *v, ospab_pve_result_t *pr)
{
    json_t *names;
    size_t i;

    if (ospab_srv_pve_call(c, p, a, "GET", ospab_srv_guest_path(p, v, "snapshot", NULL, NULL),
                           NULL, pr) != APR_SUCCESS) {
        return NULL;
    }
    names = ospab_json_own(p, json_array());
    for (i = 0; i < json_array_size(pr->data); ++i) {
        const char *name = json_string_value(json_object_get(json_array_get(pr->data, i),
                                                             "name"));

        if (name && strcmp(name, "current")) {
            json_array_append_new(names, json_string(name));
        }
    }
    return names;
}

/* The chain's parameters from the guest's config (conf) and the new OS. 0: *out; 1: res. */
static int reinstall_params(apr_pool_t *p, const ospab_server_conf_t *c, const ospab_actor_t *a,
                            const ospab_vps_t *v, const ospab_os_t *os, json_t *conf,
                            const char *hash, const char *ssh_keys, json_t **out,
                            ospab_result_t *res)
{
    const char *cores = conf_text(p, conf, "cores", v->cpu);
    const char *memory = conf_text(p, conf, "memory", v->ram);
    const char *net0 = conf_text(p, conf, "net0", NULL);

    if (!strcmp(ospab_vps_kind(v), "lxc")) {
        const char *rootfs = conf_text(p, conf, "rootfs", NULL), *colon;
        apr_int64_t gb = rootfs ? ospab_kvm_disk_gb(rootfs) : 0;

        if (!rootfs || !(colon = strchr(rootfs, ':')) || gb <= 0) {
            res->log = apr_psprintf(p, "reinstall: CT %s has no readable rootfs", v->vmid);
            ospab_result_error(p, res, 409, "the server's disk cannot be read on the "
                               "hypervisor: please contact support", NULL);
            return 1;
        }
        *out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:s, s:s?, s:s}",
                         "kind", "lxc", "ostemplate", os->template_,
                         "hostname", conf_text(p, conf, "hostname", v->name),
                         "cores", cores, "memory", memory,
                         "rootfs", apr_psprintf(p, "%.*s:%" APR_INT64_T_FMT,
                                                (int)(colon - rootfs), rootfs, gb),
                         "net0", net0, "nameserver", conf_text(p, conf, "nameserver", NULL),
                         "password", hash, "ssh-public-keys", ssh_keys,
                         "unprivileged", conf_text(p, conf, "unprivileged", "1"));
    }
    else {
        ospab_kvm_template_t t;
        ospab_kvm_sizes_t sizes;
        ospab_pve_result_t pr;
        const char *unfit, *disk = ospab_kvm_boot_disk(p, conf), *value;

        if (ospab_kvm_template(p, c, a, os->template_, &t, &pr) != APR_SUCCESS) {
            ospab_srv_pve_failed(p, &pr, "template", res);
            return 1;
        }
        if ((unfit = ospab_kvm_unfit(p, &t, v->node)) != NULL) {
            res->log = apr_psprintf(p, "reinstall of VM %s on %s: %s", v->vmid, v->node, unfit);
            ospab_result_error(p, res, 409, "this OS cannot be installed on this server now: "
                               "please contact support", NULL);
            return 1;
        }
        value = disk ? json_string_value(json_object_get(conf, disk)) : NULL;
        sizes.cores = cores;
        sizes.memory = memory;
        sizes.disk = apr_psprintf(p, "%" APR_INT64_T_FMT,
                                  value && ospab_kvm_disk_gb(value) > 0
                                  ? ospab_kvm_disk_gb(value) : apr_atoi64(v->disk));
        sizes.bootdisk = t.disk;
        *out = ospab_kvm_create_params(&sizes, net0, conf_text(p, conf, "ipconfig0", NULL),
                                       conf_text(p, conf, "nameserver", NULL), hash, ssh_keys);
        if (*out) {
            json_object_set_new(*out, "kind", json_string("qemu"));
            json_object_set_new(*out, "template", json_string(t.vmid));
            json_object_set_new(*out, "tnode", json_string(t.node));
            json_object_set_new(*out, "tdisk", json_string(t.disk));
            /* the new disks where the old boot disk was */
            json_object_set_new(*out, "storage", value && strchr(value, ':')
                                ? json_stringn(value, (size_t)(strchr(value, ':') - value))
                                : json_string(t.storage));
            json_object_set_new(*out, "name", json_string(conf_text(p, conf, "name", v->name)));
        }
    }
    if (!*out) {
        ospab_result_error(p, res, 500, "internal error", NULL);
        return 1;
    }
    ospab_json_own(p, *out);
    return 0;
}

/* The guest is gone already (a reinstall that failed after its destroy): the create step
 * at once. 0: *upid, the create's task; 1: res is set (the step failed). */
static int reinstall_now(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                         const ospab_actor_t *a, const ospab_vps_t *v, const char *task_id,
                         const char **upid, ospab_result_t *res)
{
    ospab_row_t row = NULL;
    ospab_task_t t;

    ospab_server_set_status(db, p, a, v->id, "creating");
    ospab_task_run_step(db, p, c, a, v, task_id, "reinstall:create");
    if (ospab_db_select_one(db, p, "ospab_task_get", 1, &task_id, &row) != APR_SUCCESS || !row) {
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    ospab_row_fill(&ospab_task_get_row, row, &t);
    if (!strcmp(t.status, "error") || !t.upid) {
        res->log = apr_psprintf(p, "reinstall of %s: %s", v->vmid, t.error ? t.error : "failed");
        ospab_result_error(p, res, 502, ospab_pve_error_text(p, t.error), NULL);
        return 1;
    }
    *upid = t.upid;
    return 0;
}

void ospab_server_reinstall(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                            const ospab_principal_t *who, const ospab_actor_t *a,
                            const char *id, json_t *body, ospab_result_t *res)
{
    const char *os_s, *task_id, *upid = NULL, *password, *hash, *ssh_keys = NULL, *now;
    const char *kind, *args[4];
    json_t *conf, *snaps, *params, *confirm, *o;
    const ospab_vps_t *v;
    const ospab_os_t *os;
    ospab_pve_result_t pr;
    apr_int64_t os_id;
    apr_status_t rv;
    int qemu, running;

    memset(res, 0, sizeof(*res));
    confirm = json_object_get(body, "confirm");
    if (!json_is_object(body) || !ospab_srv_positive_int(json_object_get(body, "osId"), &os_id)
        || (confirm && !json_is_boolean(confirm))) {
        json_t *f = json_object();

        if (!json_is_object(body)
            || !ospab_srv_positive_int(json_object_get(body, "osId"), &os_id)) {
            json_object_set_new(f, "osId", json_string("must be the id of an OS template"));
        }
        if (confirm && !json_is_boolean(confirm)) {
            json_object_set_new(f, "confirm", json_string("must be true or false"));
        }
        ospab_result_error(p, res, 400, ospab_fields_summary(p, "request", f), f);
        return;
    }
    if (ospab_vps_load_owned(db, p, who, id, &v, res)
        || ospab_srv_refuse_suspended(p, who, v, "reinstall", res)
        || ospab_srv_on_proxmox(db, p, &c, v, res)) {
        return;
    }
    os_s = apr_psprintf(p, "%" APR_INT64_T_FMT, os_id);
    if (ospab_os_load(db, p, os_s, &os) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    kind = ospab_vps_kind(v);
    qemu = !strcmp(kind, "qemu");
    if (!os || strcmp(os->kind ? os->kind : "lxc", kind)) {
        json_t *f = json_pack("{s:s}", "osId", os
                              ? apr_psprintf(p, "OS template %s is for %s servers, this one is "
                                             "a %s", os_s, os->kind, qemu ? "KVM server"
                                                                          : "container")
                              : apr_psprintf(p, "OS template %s does not exist", os_s));

        ospab_result_error(p, res, 422, ospab_fields_summary(p, "request", f), f);
        return;
    }
    ospab_task_follow_up(db, p, c, a, v);
    if (ospab_vps_load_owned(db, p, who, id, &v, res)) {
        return;
    }
    /* what the steps need, read while the guest is still there */
    if (ospab_srv_pve_call(c, p, a, "GET", ospab_srv_guest_path(p, v, "config", NULL, NULL),
                           NULL, &pr) != APR_SUCCESS) {
        ospab_srv_pve_failed(p, &pr, "config", res);
        return;
    }
    conf = pr.data;
    if (!(snaps = snapshots_of(p, c, a, v, &pr))) {
        ospab_srv_pve_failed(p, &pr, "snapshot list", res);
        return;
    }
    if (json_array_size(snaps) && !json_is_true(confirm)) {
        ospab_result_error(p, res, 409, apr_psprintf(p, "reinstalling deletes this server's "
                           "%" APR_SIZE_T_FMT " snapshot%s: send \"confirm\": true to go on",
                           (apr_size_t)json_array_size(snaps),
                           json_array_size(snaps) == 1 ? "" : "s"), NULL);
        return;
    }
    if (ospab_sshkeys_for_create(db, p, who->user_id, json_object_get(body, "sshKeyIds"),
                                 &ssh_keys, res)) {
        return;
    }
    password = ospab_server_new_password(p);
    if (ospab_password_crypt(p, password, "$6$", &hash) != APR_SUCCESS) {
        res->log = "reinstall: libcrypt has no SHA-512 crypt";
        ospab_result_error(p, res, 500, "internal error", NULL);
        return;
    }
    if (reinstall_params(p, c, a, v, os, conf, hash, ssh_keys, &params, res)
        || ospab_task_begin(db, p, a, v, "reinstall", &task_id, res)) {
        return;
    }
    now = ospab_time_db(p, a->now);
    args[0] = os->name;
    args[1] = os_s;
    args[2] = now;
    args[3] = v->id;
    if (ospab_task_set_params(db, p, task_id, params) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_vps_set_os", 4, args, NULL) != APR_SUCCESS) {
        ospab_task_finish(db, p, a, task_id, 0, NULL, "the database failed");
        ospab_result_db_failed(db, p, res);
        return;
    }
    running = v->status && !strcmp(v->status, "running");
    if (qemu && running) {
        rv = ospab_srv_pve_call(c, p, a, "POST",
                                ospab_srv_guest_path(p, v, "status", "stop", NULL), NULL, &pr);
    }
    else {
        rv = ospab_srv_pve_call(c, p, a, "DELETE", ospab_srv_guest_path(p, v, NULL, NULL, NULL),
                                ospab_srv_destroy_params(v), &pr);
        if (rv != APR_SUCCESS && pr.outcome == OSPAB_PVE_HTTP_ERROR && pr.message
            && strstr(pr.message, "does not exist")) {
            /* gone already (a reinstall that failed after its destroy): made anew */
            if (reinstall_now(db, p, c, a, v, task_id, &upid, res)) {
                return;
            }
        }
    }
    if (!upid) {
        if (ospab_task_started(db, p, a, task_id, rv, &pr, "reinstall", &upid, res)) {
            return;
        }
        if (qemu && !running) {
            /* the row is at its destroy already */
            ospab_task_continue(db, p, a, task_id, upid, "reinstall:destroy");
        }
        ospab_server_set_status(db, p, a, v->id, "creating");
    }
    o = ospab_srv_success("reinstall", upid);
    json_object_set_new(o, "rootPassword", json_string(password));
    json_object_set_new(o, "snapshotsDeleted", json_deep_copy(snaps));
    ospab_srv_ok_body(p, res, 200, o);
}

/* ---- the steps ----------------------------------------------------------------------------- */

ospab_kvm_step_e ospab_reinstall_step(ospab_db_t *db, apr_pool_t *p,
                                      const ospab_server_conf_t *c, const ospab_actor_t *a,
                                      const ospab_vps_t *v, const char *task_id,
                                      const char *action, const char **why)
{
    json_t *params = NULL;
    const char *step = strchr(action, ':');
    ospab_pve_result_t pr;
    apr_status_t rv;

    *why = NULL;
    step = step ? step + 1 : "";
    if (strcmp(step, "destroy") && !(params = ospab_task_params(db, p, task_id))) {
        *why = "the reinstall's settings are gone";
        return OSPAB_KVM_STEP_FAILED;
    }
    if (!strcmp(step, "destroy")) {
        rv = ospab_srv_pve_call(c, p, a, "DELETE", ospab_srv_guest_path(p, v, NULL, NULL, NULL),
                                ospab_srv_destroy_params(v), &pr);
        if (rv != APR_SUCCESS && pr.outcome == OSPAB_PVE_HTTP_ERROR && pr.message
            && strstr(pr.message, "does not exist")) {
            if (!strcmp(action, "delete:destroy")) {
                /* gone already: the delete is done */
                if (ospab_task_finish(db, p, a, task_id, 1, "OK", NULL)) {
                    ospab_task_apply(db, p, c, a, v, action, 1);
                }
                return OSPAB_KVM_STEP_DONE;
            }
            return OSPAB_KVM_STEP_SKIPPED;
        }
    }
    else if (!strcmp(step, "create") && !strcmp(param(params, "kind"), "lxc")) {
        const char *keys = param(params, "ssh-public-keys");
        ospab_pve_param_t cp[] = {
            { "vmid", v->vmid }, { "ostemplate", param(params, "ostemplate") },
            { "hostname", param(params, "hostname") }, { "cores", param(params, "cores") },
            { "memory", param(params, "memory") }, { "rootfs", param(params, "rootfs") },
            { "net0", param(params, "net0") }, { "nameserver", param(params, "nameserver") },
            { "password", param(params, "password") }, { "ssh-public-keys", keys },
            { "unprivileged", param(params, "unprivileged") }, { NULL, NULL }
        };

        rv = ospab_srv_pve_call(c, p, a, "POST", ospab_pve_path(p, "nodes", v->node, "lxc", NULL),
                                cp, &pr);
    }
    else if (!strcmp(step, "create")) {
        ospab_kvm_template_t t;

        memset(&t, 0, sizeof(t));
        t.vmid = param(params, "template");
        t.node = param(params, "tnode");
        t.disk = param(params, "tdisk");
        if (!t.vmid || !t.node) {
            *why = "the reinstall's settings are incomplete";
            return OSPAB_KVM_STEP_FAILED;
        }
        rv = ospab_kvm_clone(p, c, a, &t, v->node, param(params, "storage"), v->vmid,
                             param(params, "name"), &pr);
    }
    else {
        *why = apr_psprintf(p, "no step %s", action);
        return OSPAB_KVM_STEP_FAILED;
    }
    return ospab_kvm_step_started(db, p, a, task_id, action, rv, &pr, why);
}
