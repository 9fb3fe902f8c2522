/* ospab core: the task machine of server management (ospab_task.h). */
#include <stddef.h>
#include <string.h>
#include <stdlib.h>

#include <apr_strings.h>

#include "ospab_server_int.h"
#include "ospab_json.h"
#include "ospab_util.h"
#include "ospab_events.h"
#include "ospab_ippool.h"
#include "ospab_mail.h"
#include "ospab_pve_errors.h"

/* A task queued longer than this without a UPID lost its follower (a crash between the
 * row and Proxmox's answer): it is taken again, or given up. */
#define QUEUED_TIMEOUT apr_time_from_sec(120)

/* ---- the rows ---------------------------------------------------------------------------- */

#define T(member) offsetof(ospab_task_t, member)

static const apr_size_t active_cols[] = {        /* ospab_task_active */
    T(id), T(upid), T(action), T(node), T(status), T(created_at), T(updated_at)
};
static const apr_size_t get_cols[] = {           /* ospab_task_get */
    T(id), T(vps_id), T(user_id), T(action), T(status), T(upid), T(exitstatus), T(error)
};
static const apr_size_t list_cols[] = {          /* ospab_task_list */
    T(id), T(action), T(status), T(upid), T(exitstatus), T(error), T(created_at),
    T(updated_at), T(finished_at)
};

const ospab_row_shape_t ospab_task_active_row =
    OSPAB_ROW_SHAPE(active_cols, ospab_task_t, OSPAB_ROW_NO_RAW);
const ospab_row_shape_t ospab_task_get_row =
    OSPAB_ROW_SHAPE(get_cols, ospab_task_t, OSPAB_ROW_NO_RAW);
const ospab_row_shape_t ospab_task_list_row =
    OSPAB_ROW_SHAPE(list_cols, ospab_task_t, OSPAB_ROW_NO_RAW);

/* ---- the machine ------------------------------------------------------------------------- */


/* Runs fn's writes in a transaction of their own unless the caller has one open. */
static int own_tx(ospab_db_t *db, apr_pool_t *p)
{
    if (db->trans) {
        return 0;
    }
    return ospab_db_begin(db, p) == APR_SUCCESS ? 1 : -1;
}

int ospab_task_finish(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                      const char *task_id, int ok, const char *exitstatus, const char *error)
{
    const char *now = ospab_time_db(p, a->now);
    const char *args[6] = { ok ? "ok" : "error", exitstatus, error, now, now, task_id };
    ospab_row_t r;
    ospab_task_t t;
    int tx = own_tx(db, p), n = 0;

    if (tx < 0) {
        return 0;
    }
    if (ospab_db_exec(db, p, "ospab_task_finish", 6, args, &n) == APR_SUCCESS && n == 1
        && ospab_db_select_one(db, p, "ospab_task_get", 1, &task_id, &r) == APR_SUCCESS && r
        && (ospab_row_fill(&ospab_task_get_row, r, &t), t.vps_id)) {
        /* "error" in the customer's words (browsers get it pushed), Proxmox's own as
         * "detail" (webhooks only) */
        json_t *data = json_pack("{s:I, s:I, s:I, s:s, s:s, s:s?, s:s?, s:s?}",
                                 "serverId", (json_int_t)apr_atoi64(t.vps_id),
                                 "userId", (json_int_t)apr_atoi64(t.user_id ? t.user_id : "0"),
                                 "taskId", (json_int_t)apr_atoi64(t.id),
                                 "action", t.action, "status", t.status, "upid", t.upid,
                                 "error", ospab_pve_error_text(p, t.error), "detail", t.error);

        if (!data || ospab_event_add(db, p, a->now, OSPAB_EVENT_TASK, data) != APR_SUCCESS) {
            n = 0;
        }
        json_decref(data);
    }
    if (tx && ospab_db_end(db, n == 1) != APR_SUCCESS) {
        n = 0;
    }
    return n == 1;
}

void ospab_task_continue(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                         const char *task_id, const char *upid, const char *action)
{
    const char *args[4] = { upid, action, ospab_time_db(p, a->now), task_id };

    ospab_db_exec(db, p, "ospab_task_continue", 4, args, NULL);
}

/* Sets the server's status and, when it changed, records server.status with it. */
void ospab_server_set_status(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a, const char *id,
                             const char *status)
{
    const char *args[3] = { status, ospab_time_db(p, a->now), id };
    ospab_row_t r = NULL;
    ospab_vps_t old;
    int tx = own_tx(db, p), good, n = 0;

    if (tx < 0) {
        return;
    }
    if (a->guard && !a->guard(a->guard_baton, db, p)) {
        if (tx) {
            ospab_db_end(db, 0);
        }
        return;
    }
    /* n = 0: the server is suspended, and stays so (lib/ospab_suspend.c) */
    good = ospab_db_select_one(db, p, "ospab_vps_status_of", 1, &id, &r) == APR_SUCCESS
           && ospab_db_exec(db, p, "ospab_vps_set_status", 3, args, &n) == APR_SUCCESS;
    if (good && r && n == 1 && (ospab_row_fill(&ospab_vps_status_row, r, &old), !old.status
                         || strcmp(old.status, status))) {
        json_t *data = json_pack("{s:I, s:I, s:s, s:s?}",
                                 "serverId", (json_int_t)apr_atoi64(id),
                                 "userId", (json_int_t)apr_atoi64(old.user_id ? old.user_id : "0"),
                                 "status", status, "previous", old.status);

        good = data && ospab_event_add(db, p, a->now, OSPAB_EVENT_STATUS, data) == APR_SUCCESS;
        json_decref(data);
    }
    if (tx) {
        ospab_db_end(db, good);
    }
}

/* The first IPv4 address of a running container (from /interfaces), or NULL. */
static const char *guest_ip(apr_pool_t *p, const ospab_server_conf_t *c,
                            const ospab_actor_t *a, const ospab_vps_t *v)
{
    ospab_pve_result_t pr;
    size_t i;

    if (strcmp(ospab_vps_kind(v), "lxc")
        || ospab_srv_pve_call(c, p, a, "GET",
                              ospab_srv_guest_path(p, v, "interfaces", NULL, NULL), NULL, &pr)
           != APR_SUCCESS) {
        return NULL;
    }
    for (i = 0; i < json_array_size(pr.data); ++i) {
        json_t *itf = json_array_get(pr.data, i);
        json_t *inet = json_object_get(itf, "inet");
        const char *name = json_string_value(json_object_get(itf, "name"));

        if (name && strcmp(name, "lo") && json_is_string(inet)) {
            char *ip = apr_pstrdup(p, json_string_value(inet));
            char *slash = strchr(ip, '/');

            if (slash) {
                *slash = '\0';
            }
            return ip;
        }
    }
    return NULL;
}

/* ---- tasks: the one-operation rule and the lazy follow-up ----------------------------------- */

/* The record says what the guest really is now, and its address when it runs. */
static void refresh_status(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                           const ospab_actor_t *a, const ospab_vps_t *v)
{
    ospab_pve_result_t pr;
    const char *st = "running";
    const char *ip;

    if (ospab_srv_pve_call(c, p, a, "GET",
                           ospab_srv_guest_path(p, v, "status", "current", NULL), NULL, &pr)
            == APR_SUCCESS
        && json_is_string(json_object_get(pr.data, "status"))) {
        st = json_string_value(json_object_get(pr.data, "status"));
    }
    ospab_server_set_status(db, p, a, v->id, st);
    if (!strcmp(st, "running") && (ip = guest_ip(p, c, a, v)) != NULL) {
        const char *args[3] = { ip, ospab_time_db(p, a->now), v->id };

        ospab_db_exec(db, p, "ospab_vps_set_ip", 3, args, NULL);
    }
}

/* Applies what a finished task means for its server. */
void ospab_task_apply(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                      const ospab_actor_t *a, const ospab_vps_t *v, const char *action, int ok)
{
    const char *id = v->id;

    if (!strcmp(action, "delete") || !strcmp(action, "delete:destroy")) {
        if (ok) {
            int tx = own_tx(db, p), good;
            json_t *data = json_pack("{s:I, s:I, s:s}", "serverId", (json_int_t)apr_atoi64(id),
                                     "userId", (json_int_t)apr_atoi64(v->user_id),
                                     "reason", "deleted");

            if (tx < 0) {
                json_decref(data);
                return;
            }
            good = data && ospab_event_add(db, p, a->now, OSPAB_EVENT_DELETED, data) == APR_SUCCESS
                   && ospab_vps_remove(db, p, id) == APR_SUCCESS;
            json_decref(data);
            if (tx) {
                ospab_db_end(db, good);
            }
        }
        else {
            ospab_server_set_status(db, p, a, id, "stopped");
        }
        return;
    }
    if (!ok) {
        if (!strcmp(action, "create")) {
            /* Proxmox removed the half-made container: its vmid is free again */
            const char *args[2] = { ospab_time_db(p, a->now), id };

            ospab_server_set_status(db, p, a, id, "error");
            ospab_db_exec(db, p, "ospab_vps_clear_vmid", 2, args, NULL);
            /* its addresses were never in use */
            ospab_ippool_release(db, p, id, a->now, 1);
        }
        else if (!strcmp(ospab_vps_kind(v), "qemu") && (!strncmp(action, "create:", 7)
                 || !strcmp(action, "reinstall:config") || !strcmp(action, "reinstall:resize")
                 || !strcmp(action, "reinstall:start"))) {
            /* a step after the clone: the half-made VM goes (lib/ospab_kvm.c); a
             * reinstalled server keeps its vmid and addresses for another try */
            ospab_kvm_discard(db, p, c, a, v, !strncmp(action, "reinstall", 9));
        }
        else if (!strcmp(action, "create:start") || !strcmp(action, "reinstall:start")
                 || !strcmp(action, "rollback:start")) {
            ospab_server_set_status(db, p, a, id, "stopped");
        }
        else if (!strcmp(action, "reinstall") || !strcmp(action, "reinstall:destroy")
                 || !strcmp(action, "delete:stop")) {
            /* the guest was not destroyed: it is what it was */
            refresh_status(db, p, c, a, v);
        }
        else if (!strcmp(action, "reinstall:create")) {
            /* Proxmox removed what it had begun; the server has no guest now */
            ospab_server_set_status(db, p, a, id, "error");
        }
        return;
    }
    if (!strcmp(action, "stop") || !strcmp(action, "shutdown")) {
        ospab_server_set_status(db, p, a, id, "stopped");
    }
    else if (!strcmp(action, "start") || !strcmp(action, "reboot")
             || !strcmp(action, "restart:start") || !strcmp(action, "create:start")
             || !strcmp(action, "reinstall:start")
             || !strcmp(action, "rollback") || !strcmp(action, "rollback:start")) {
        /* what the guest really is now (create starts it in a task of its own) */
        refresh_status(db, p, c, a, v);
        if (!strcmp(action, "create:start")) {
            const char *why;

            /* the owner hears of the new server once (a dedupe key), never of its password */
            ospab_mail_server_created(db, p, a->now, id, &why);
        }
    }
}

/* A conditional update that only one follower can win (in a transaction of its own):
 * 1 when this call changed exactly one row. */
static int claim(ospab_db_t *db, apr_pool_t *p, const char *label, int nargs,
                 const char **args)
{
    int n = 0;

    if (own_tx(db, p) != 1) {
        return 0;
    }
    if (ospab_db_exec(db, p, label, nargs, args, &n) != APR_SUCCESS) {
        n = 0;
    }
    return ospab_db_end(db, n == 1) == APR_SUCCESS && n == 1;
}

/* The second half of a two-step operation (restart = hard stop, then start; create =
 * create, then start): t is the row, already claimed by this follower (queued, no UPID,
 * action "<first>:start"). A start that Proxmox may have accepted before the previous
 * follower died is not sent twice: a guest that already runs finishes the row. */
static void start_second_half(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                              const ospab_actor_t *a, const ospab_vps_t *v, const char *task_id,
                              const char *action)
{
    ospab_pve_result_t st;

    if (ospab_srv_pve_call(c, p, a, "GET", ospab_srv_guest_path(p, v, "status", "current", NULL),
                           NULL, &st) == APR_SUCCESS
        && json_is_string(json_object_get(st.data, "status"))
        && !strcmp(json_string_value(json_object_get(st.data, "status")), "running")) {
        if (ospab_task_finish(db, p, a, task_id, 1, "OK", NULL)) {
            ospab_task_apply(db, p, c, a, v, action, 1);
        }
        return;
    }
    if (ospab_srv_pve_call(c, p, a, "POST", ospab_srv_guest_path(p, v, "status", "start", NULL),
                           NULL, &st) == APR_SUCCESS && json_is_string(st.data)) {
        ospab_task_continue(db, p, a, task_id, json_string_value(st.data), action);
        return;
    }
    if (st.outcome == OSPAB_PVE_UNREACHABLE || st.outcome == OSPAB_PVE_TIMEOUT) {
        return;     /* still claimed: taken again after QUEUED_TIMEOUT */
    }
    if (ospab_task_finish(db, p, a, task_id, 0, NULL, st.message ? st.message : "start failed")) {
        ospab_task_apply(db, p, c, a, v, action, 0);
    }
}

/* The step after action when its task ended well, NULL when the operation is done:
 * restart = stop, start; create = create, start (a container) or clone, config, resize,
 * start (a VM: lib/ospab_kvm.c); a rollback starts a guest that was running before. */
static const char *next_step(const ospab_vps_t *v, const char *action)
{
    int qemu = !strcmp(ospab_vps_kind(v), "qemu");

    if (!strcmp(action, "restart")) {
        return "restart:start";
    }
    if (!strcmp(action, "create")) {
        return qemu ? "create:config" : "create:start";
    }
    /* a container's reinstall starts with its destroy (force: stopped first by Proxmox),
     * a VM's with its stop */
    if (!strcmp(action, "reinstall")) {
        return qemu ? "reinstall:destroy" : "reinstall:create";
    }
    if (!strcmp(action, "reinstall:destroy")) {
        return "reinstall:create";
    }
    if (!strcmp(action, "delete:stop")) {
        return "delete:destroy";
    }
    if (!strcmp(action, "reinstall:create")) {
        return qemu ? "reinstall:config" : "reinstall:start";
    }
    if (!strcmp(action, "create:config") || !strcmp(action, "reinstall:config")) {
        return !strncmp(action, "create", 6) ? "create:resize" : "reinstall:resize";
    }
    if (!strcmp(action, "create:resize") || !strcmp(action, "reinstall:resize")) {
        return !strncmp(action, "create", 6) ? "create:start" : "reinstall:start";
    }
    if (!strcmp(action, "rollback") && v->status && !strcmp(v->status, "running")) {
        return "rollback:start";
    }
    return NULL;
}

apr_status_t ospab_task_set_params(ospab_db_t *db, apr_pool_t *p, const char *task_id,
                                   json_t *params)
{
    char *text = json_dumps(params, JSON_COMPACT);
    const char *args[2] = { text ? apr_pstrdup(p, text) : NULL, task_id };

    free(text);
    if (!args[0]) {
        return APR_ENOMEM;
    }
    return ospab_db_exec(db, p, "ospab_task_set_params", 2, args, NULL);
}

json_t *ospab_task_params(ospab_db_t *db, apr_pool_t *p, const char *task_id)
{
    const char *text = NULL;
    json_t *j;

    if (ospab_db_select_value(db, p, "ospab_task_params", 1, &task_id, &text) != APR_SUCCESS
        || !text || !(j = json_loads(text, 0, NULL))) {
        return NULL;
    }
    return ospab_json_own(p, j);
}

void ospab_task_run_step(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                         const ospab_actor_t *a, const ospab_vps_t *v, const char *task_id,
                         const char *action)
{
    const char *why, *step;
    ospab_kvm_step_e rc;

    while (action) {
        step = strchr(action, ':');
        step = step ? step + 1 : "";
        if (!strcmp(step, "start")) {
            start_second_half(db, p, c, a, v, task_id, action);
            return;
        }
        rc = !strcmp(step, "destroy") || !strcmp(step, "create")
             ? ospab_reinstall_step(db, p, c, a, v, task_id, action, &why)
             : ospab_kvm_step(db, p, c, a, v, task_id, action, &why);
        switch (rc) {
        case OSPAB_KVM_STEP_STARTED:
        case OSPAB_KVM_STEP_AGAIN:
        case OSPAB_KVM_STEP_DONE:
            return;
        case OSPAB_KVM_STEP_SKIPPED:
            action = next_step(v, action);
            continue;
        case OSPAB_KVM_STEP_FAILED:
            if (ospab_task_finish(db, p, a, task_id, 0, NULL, why)) {
                ospab_task_apply(db, p, c, a, v, action, 0);
            }
            return;
        }
    }
}

/* Asks Proxmox about the server's running tasks and finishes those that stopped; resumes a
 * second half whose follower died. Module and agent may follow the same task at once: the
 * conditional updates let exactly one of them apply each outcome. Failures to reach
 * Proxmox leave the tasks as they are. */
void ospab_task_follow_up(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                          const ospab_actor_t *a, const ospab_vps_t *v)
{
    apr_array_header_t *tasks;
    const char *id = v->id;
    const char *stale = ospab_time_db(p, a->now - QUEUED_TIMEOUT);
    int i;

    if (ospab_db_select(db, p, "ospab_task_active", 1, &id, &tasks, NULL) != APR_SUCCESS) {
        return;
    }
    for (i = 0; i < tasks->nelts; ++i) {
        ospab_task_t t;
        ospab_pve_result_t pr;
        ospab_upid_t u;
        const char *exitstatus, *second, *now = ospab_time_db(p, a->now);
        int ok;

        ospab_row_fill(&ospab_task_active_row, APR_ARRAY_IDX(tasks, i, ospab_row_t), &t);

        if (!t.upid) {
            if (strcmp(t.updated_at, stale) >= 0) {
                continue;   /* its owner is still asking Proxmox */
            }
            if (strchr(t.action, ':')) {
                const char *args[3] = { now, t.id, t.updated_at };

                if (claim(db, p, "ospab_task_reclaim_start", 3, args)) {
                    ospab_task_run_step(db, p, c, a, v, t.id, t.action);
                }
                continue;
            }
            ospab_task_finish(db, p, a, t.id, 0, NULL, "abandoned before Proxmox accepted it");
            continue;
        }
        /* the UPID names the node the task runs on (a clone's is the template's node) */
        if (ospab_upid_parse(p, t.upid, &u) != APR_SUCCESS) {
            u.node = t.node;
        }
        if (ospab_srv_pve_call(c, p, a, "GET",
                           ospab_pve_path(p, "nodes", u.node, "tasks", t.upid, "status", NULL),
                           NULL, &pr) != APR_SUCCESS) {
            continue;
        }
        if (!json_is_string(json_object_get(pr.data, "status"))
            || strcmp(json_string_value(json_object_get(pr.data, "status")), "stopped")) {
            continue;
        }
        exitstatus = json_string_value(json_object_get(pr.data, "exitstatus"));
        ok = exitstatus && (!strcmp(exitstatus, "OK") || !strncmp(exitstatus, "WARNINGS", 8));
        if (ok && (second = next_step(v, t.action)) != NULL) {
            /* the next step: restart and create start the guest (a VM's create configures
             * and grows it first); a rollback (Proxmox stops the guest for it) starts one
             * that was running before, as "restores the server to its previous state"
             * promises. The record still says what the server was: the agent leaves it
             * alone while a task runs. */
            const char *args[4] = { second, now, t.id, t.upid };

            if (claim(db, p, "ospab_task_claim_start", 4, args)) {
                ospab_task_run_step(db, p, c, a, v, t.id, second);
            }
            continue;
        }
        if (ospab_task_finish(db, p, a, t.id, ok, exitstatus, ok ? NULL : exitstatus)) {
            ospab_task_apply(db, p, c, a, v, t.action, ok);
        }
    }
}

void ospab_server_follow(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                         const ospab_actor_t *a, const char *id)
{
    const ospab_vps_t *v;

    if ((c->pve || c->clusters) && ospab_vps_load(db, p, "ospab_vps_get", id, &v) == APR_SUCCESS
        && v && v->node && v->vmid && (c = ospab_srv_for(db, p, c, v->node, NULL)) != NULL) {
        ospab_task_follow_up(db, p, c, a, v);
    }
}

int ospab_task_begin(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                     const ospab_vps_t *v, const char *action, const char **task_id,
                     ospab_result_t *res)
{
    const char *id = v->id;
    const char *now = ospab_time_db(p, a->now);
    const char *args[6];
    ospab_row_t busy;
    ospab_task_t b;

    if (ospab_db_begin(db, p) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_vps_lock", 1, &id, NULL) != APR_SUCCESS
        || ospab_db_select_one(db, p, "ospab_task_active", 1, &id, &busy) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    if (busy) {
        ospab_row_fill(&ospab_task_active_row, busy, &b);
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 409, apr_psprintf(p, "operation '%s' is still running on "
                           "this server%s%s", b.action, b.upid ? " (task " : "",
                           b.upid ? apr_pstrcat(p, b.upid, ")", NULL) : ""), NULL);
        return 1;
    }
    args[0] = id;
    args[1] = v->user_id;
    args[2] = v->node;
    args[3] = action;
    args[4] = now;
    args[5] = now;
    if (ospab_db_exec(db, p, "ospab_task_insert", 6, args, NULL) != APR_SUCCESS
        || ospab_db_last_id(db, p, task_id) != APR_SUCCESS
        || ospab_audit(db, p, a, apr_pstrcat(p, "vps.", action, NULL), "vps", id, NULL)
           != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    return 0;
}

int ospab_task_started(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a, const char *task_id,
                       apr_status_t rv, ospab_pve_result_t *pr, const char *what,
                       const char **upid, ospab_result_t *res)
{
    ospab_upid_t u;

    if (rv != APR_SUCCESS) {
        ospab_task_finish(db, p, a, task_id, 0, NULL, pr->message ? pr->message : "failed");
        ospab_srv_pve_failed(p, pr, what, res);
        return 1;
    }
    if (!json_is_string(pr->data)
        || ospab_upid_parse(p, json_string_value(pr->data), &u) != APR_SUCCESS) {
        ospab_task_finish(db, p, a, task_id, 0, NULL, "Proxmox did not return a task id");
        res->log = apr_psprintf(p, "Proxmox %s: no UPID in the answer", what);
        ospab_result_error(p, res, 502, "Proxmox gave an answer the panel cannot read", NULL);
        return 1;
    }
    *upid = json_string_value(pr->data);
    {
        const char *args[4] = { *upid, *upid, ospab_time_db(p, a->now), task_id };

        if (ospab_db_exec(db, p, "ospab_task_start", 4, args, NULL) != APR_SUCCESS) {
            ospab_result_db_failed(db, p, res);
            return 1;
        }
    }
    return 0;
}

int ospab_task_prepare(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t **c,
                       const ospab_principal_t *who, const ospab_actor_t *a, const char *id,
                       const char *action, const ospab_vps_t **v, const char **task_id,
                       ospab_result_t *res)
{
    if (ospab_vps_load_owned(db, p, who, id, v, res)
        || ospab_srv_refuse_suspended(p, who, *v, action, res)
        || ospab_srv_on_proxmox(db, p, c, *v, res)) {
        return 1;
    }
    ospab_task_follow_up(db, p, *c, a, *v);
    /* again: a finished task may have changed it, or deleted it */
    if (ospab_vps_load_owned(db, p, who, id, v, res)
        || ospab_srv_refuse_suspended(p, who, *v, action, res)) {
        return 1;
    }
    return ospab_task_begin(db, p, a, *v, action, task_id, res);
}
