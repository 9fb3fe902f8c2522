/* ospab core: suspension that bites (issue 13 item 4, docs/operations.md "Suspension").
 *
 * A suspended server (vps.status 'suspended': the billing site's sync, or an admin) keeps
 * that status whatever its guest does (ospab_vps_set_status leaves it alone), its guest is
 * stopped, and the customer's operations on it answer 403 until it is unsuspended, which
 * restores the state it had before (vps.suspended_status; 'running' starts the guest).
 * The record changes first, in the caller's transaction; the guest follows after the
 * commit (ospab_suspension_guest). When that cannot happen at once (another operation
 * running, Proxmox not answering), the agent stops a suspended server's running guest on
 * its next poll (ospab_suspension_enforce), so the record always wins. */
#include <string.h>

#include <apr_strings.h>

#include "ospab_server_int.h"
#include "ospab_events.h"
#include "ospab_json.h"
#include "ospab_util.h"
#include "ospab_resource.h"

#define SUSPENDED "suspended"

static int is_suspended(const char *status)
{
    return status && !strcmp(status, SUSPENDED);
}

/* The state unsuspending restores: the one before, when it is one a server can be left
 * in; a server suspended while it was being made (or before suspended_status existed)
 * comes back running, as it would have been. */
static const char *restored_status(const char *before)
{
    static const char *const kept[] = { "running", "stopped", "error", "missing", NULL };
    int i;

    for (i = 0; before && kept[i]; ++i) {
        if (!strcmp(before, kept[i])) {
            return kept[i];
        }
    }
    return "running";
}

int ospab_suspension_change(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                            const char *id, int on, json_t *details, const char **now_status)
{
    const char *now = ospab_time_db(p, a->now), *to, *from;
    ospab_row_t r = NULL;
    json_t *data;
    int n = 0;

    *now_status = NULL;
    if (ospab_db_select_one(db, p, "ospab_vps_suspended_status", 1, &id, &r) != APR_SUCCESS) {
        json_decref(details);
        return -1;
    }
    if (!r || is_suspended(r[0]) == on) {
        json_decref(details);
        *now_status = r ? r[0] : NULL;
        return 1;
    }
    from = r[0];
    if (on) {
        const char *args[2] = { now, id };

        to = SUSPENDED;
        if (ospab_db_exec(db, p, "ospab_vps_suspend", 2, args, &n) != APR_SUCCESS) {
            json_decref(details);
            return -1;
        }
    }
    else {
        const char *args[3];

        to = restored_status(r[1]);
        args[0] = to;
        args[1] = now;
        args[2] = id;
        if (ospab_db_exec(db, p, "ospab_vps_unsuspend", 3, args, &n) != APR_SUCCESS) {
            json_decref(details);
            return -1;
        }
    }
    if (n != 1) {
        /* the row lock is the caller's: nobody changed it in between */
        json_decref(details);
        return -1;
    }
    if (!details) {
        details = json_object();
    }
    json_object_set_new(details, on ? "before" : "restored", json_string(on ? from : to));
    data = json_pack("{s:I, s:I, s:s, s:s}", "serverId", (json_int_t)apr_atoi64(id),
                     "userId", (json_int_t)apr_atoi64(r[2] ? r[2] : "0"),
                     "status", to, "previous", from);
    if (!data || ospab_event_add(db, p, a->now, OSPAB_EVENT_STATUS, data) != APR_SUCCESS
        || ospab_audit(db, p, a, on ? "vps.suspend" : "vps.unsuspend", "vps", id, details)
           != APR_SUCCESS) {
        json_decref(data);
        return -1;
    }
    json_decref(data);
    *now_status = to;
    return 0;
}

/* {"action": action, "taskId": null, "error": why} */
static json_t *not_done(const char *action, const char *why)
{
    return json_pack("{s:s, s:n, s:s}", "action", action, "taskId", "error", why);
}

json_t *ospab_suspension_guest(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                               const ospab_actor_t *a, const char *id)
{
    const ospab_vps_t *v;
    const char *want, *action, *st, *task_id, *upid;
    ospab_pve_result_t pr;
    ospab_result_t res;
    ospab_row_t busy = NULL;
    apr_status_t rv;

    if (ospab_vps_load(db, p, "ospab_vps_get", id, &v) != APR_SUCCESS || !v) {
        return NULL;
    }
    if (!c || strcmp(v->hypervisor, "proxmox") || !v->node || !v->vmid
        || !(c = ospab_srv_for(db, p, c, v->node, NULL))) {
        return json_pack("{s:s, s:s}", "action", "none",
                         "reason", "no Proxmox guest the panel reaches");
    }
    if (is_suspended(v->status)) {
        want = "stopped";
        action = "stop";
    }
    else if (!strcmp(v->status, "running")) {
        want = "running";
        action = "start";
    }
    else {
        return json_pack("{s:s}", "action", "none");
    }
    /* an operation of ours still running changes the guest after this: it is the one
     * to wait for, whatever the guest is now */
    if (ospab_db_select_one(db, p, "ospab_task_active", 1, &id, &busy) != APR_SUCCESS) {
        return not_done(action, "database unavailable");
    }
    if (busy) {
        ospab_task_t t;

        ospab_row_fill(&ospab_task_active_row, busy, &t);
        return not_done(action, apr_psprintf(p, "operation '%s' is still running on this "
                                             "server; %s", t.action, is_suspended(v->status)
                                             ? "the agent stops the guest when it has ended"
                                             : "start the server when it has ended"));
    }
    if (ospab_srv_pve_call(c, p, a, "GET", ospab_srv_guest_path(p, v, "status", "current", NULL),
                           NULL, &pr) != APR_SUCCESS
        || !(st = json_string_value(json_object_get(pr.data, "status")))) {
        return not_done(action, is_suspended(v->status)
                        ? "Proxmox did not answer; the agent stops the guest on its next poll"
                        : "Proxmox did not answer; start the server again");
    }
    if (!strcmp(st, want)) {
        return json_pack("{s:s, s:s}", "action", "none", "guest", st);
    }
    memset(&res, 0, sizeof(res));
    if (ospab_task_begin(db, p, a, v, action, &task_id, &res)) {
        json_t *m = json_object_get(res.body, "error");

        return not_done(action, json_is_string(m) ? json_string_value(m) : "not possible now");
    }
    rv = ospab_srv_pve_call(c, p, a, "POST", ospab_srv_guest_path(p, v, "status", action, NULL),
                            NULL, &pr);
    if (ospab_task_started(db, p, a, task_id, rv, &pr, action, &upid, &res)) {
        json_t *m = json_object_get(res.body, "error");

        return not_done(action, json_is_string(m) ? json_string_value(m) : "Proxmox refused");
    }
    return json_pack("{s:s, s:s}", "action", action, "taskId", upid);
}

int ospab_suspension_enforce(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                             const ospab_actor_t *a, const char *id)
{
    json_t *g;
    int started;

    g = ospab_suspension_guest(db, p, c, a, id);
    started = g && json_is_string(json_object_get(g, "taskId"));
    json_decref(g);
    return started;
}

int ospab_srv_refuse_suspended(apr_pool_t *p, const ospab_principal_t *who,
                               const ospab_vps_t *v, const char *action, ospab_result_t *res)
{
    if (!is_suspended(v->status)) {
        return 0;
    }
    if (!who->admin) {
        ospab_result_error(p, res, 403, "this server is suspended: it cannot be managed until "
                           "it is unsuspended; please contact support", NULL);
        return 1;
    }
    if (action && (!strcmp(action, "start") || !strcmp(action, "restart")
                   || !strcmp(action, "reboot") || !strcmp(action, "reinstall"))) {
        ospab_result_error(p, res, 409, "this server is suspended: unsuspend it to start it",
                           NULL);
        return 1;
    }
    return 0;
}

void ospab_server_suspend(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                          const ospab_actor_t *a, const char *id, int on, const char *reason,
                          ospab_result_t *res)
{
    const char *st;
    ospab_row_t row;
    ospab_vps_t now;
    json_t *o, *g, *details = reason ? json_pack("{s:s}", "reason", reason) : NULL;
    int rc;

    memset(res, 0, sizeof(*res));
    if (ospab_db_begin(db, p) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_vps_lock", 1, &id, NULL) != APR_SUCCESS) {
        json_decref(details);
        ospab_result_db_failed(db, p, res);
        return;
    }
    rc = ospab_suspension_change(db, p, a, id, on, details, &st);
    if (rc < 0) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!st) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 404, "server not found", NULL);
        return;
    }
    if (rc == 1 && is_suspended(st) == on) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 409, on ? "the server is suspended already"
                                           : "the server is not suspended", NULL);
        return;
    }
    if (ospab_db_select_one(db, p, "ospab_vps_get", 1, &id, &row) != APR_SUCCESS || !row
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    ospab_row_fill(&ospab_vps_row, row, &now);
    o = json_pack("{s:s, s:s, s:o}", "status", "success",
                  "message", on ? "server suspended" : "server unsuspended",
                  "server", ospab_vps_json(p, now.cols));
    g = ospab_suspension_guest(db, p, c, a, id);
    json_object_set_new(o, "guest", g ? g : json_null());
    ospab_srv_ok_body(p, res, 200, o);
}
