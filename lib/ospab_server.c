/* ospab core: server management on Proxmox VE. */
#include <string.h>
#include <stdlib.h>
#include <ctype.h>

#include <apr_strings.h>
#include <apr_general.h>
#include <apr_escape.h>

#include "ospab_server.h"
#include "ospab_json.h"
#include "ospab_jsonw.h"
#include "ospab_util.h"
#include "ospab_events.h"
#include "ospab_mail.h"
#include "ospab_resource.h"
#include "ospab_pve_errors.h"

#define QUEUED_TIMEOUT apr_time_from_sec(120)

/* ---- small helpers ---------------------------------------------------------------------- */

static void ok_body(apr_pool_t *p, ospab_result_t *res, int status, json_t *body)
{
    res->status = status;
    res->body = ospab_json_own(p, body);
}

/* {"status":"success", "action"?:..., "taskId"?:...} */
static json_t *success(const char *action, const char *upid)
{
    json_t *o = json_object();

    json_object_set_new(o, "status", json_string("success"));
    if (action) {
        json_object_set_new(o, "action", json_string(action));
    }
    if (upid) {
        json_object_set_new(o, "taskId", json_string(upid));
    }
    return o;
}

/* Maps a failed Proxmox call to the answer the customer gets: the panel's words
 * (lib/ospab_pve_errors.c), never Proxmox's own, which go to the log. */
static void pve_failed(apr_pool_t *p, const ospab_pve_result_t *pr, const char *what,
                       ospab_result_t *res)
{
    const char *m = pr->message ? pr->message : "";
    const ospab_pve_error_t *e;

    res->log = apr_psprintf(p, "Proxmox %s: %s (HTTP %d)", what, m, pr->http_status);
    switch (pr->outcome) {
    case OSPAB_PVE_TIMEOUT:
        ospab_result_error(p, res, 504, "Proxmox did not answer in time", NULL);
        return;
    case OSPAB_PVE_UNREACHABLE:
        ospab_result_error(p, res, 502, "Proxmox is unreachable", NULL);
        return;
    case OSPAB_PVE_BAD_RESPONSE:
        ospab_result_error(p, res, 502, "Proxmox gave an answer the panel cannot read", NULL);
        return;
    default:
        break;
    }
    if ((e = ospab_pve_error_find(m)) != NULL) {
        if (e->expected) {
            res->log = NULL;
        }
        ospab_result_error(p, res, e->status, ospab_pve_error_text(p, m), NULL);
    }
    else if (pr->http_status == 400) {
        ospab_result_error(p, res, 400, "the hypervisor refused these settings; your provider "
                           "has the details", NULL);
    }
    else if (pr->http_status == 401 || pr->http_status == 403) {
        ospab_result_error(p, res, 502, "Proxmox refused the panel's credentials", NULL);
    }
    else if (pr->http_status >= 595) {
        ospab_result_error(p, res, 502, "the Proxmox node is unreachable", NULL);
    }
    else {
        ospab_result_error(p, res, 502, OSPAB_PVE_ERROR_GENERIC, NULL);
    }
}

/* Every Proxmox call of a request shares one budget: the configured total timeout counted
 * from the request's start, so no worker waits longer however many calls it makes. */
static apr_status_t pve_call(const ospab_server_conf_t *c, apr_pool_t *p,
                             const ospab_actor_t *a, const char *method, const char *path,
                             const ospab_pve_param_t *params, ospab_pve_result_t *res)
{
    return ospab_pve_call_until(c->pve, p, ospab_pve_deadline(c->pve, a->now), method, path,
                                params, res);
}

static const char *kind_of(ospab_row_t v)
{
    return v[OSPAB_VPS_KIND] && !strcmp(v[OSPAB_VPS_KIND], "qemu") ? "qemu" : "lxc";
}

/* "/nodes/<node>/<lxc|qemu>/<vmid>/<tail...>" */
static const char *guest_path(apr_pool_t *p, ospab_row_t v, const char *a, const char *b,
                              const char *c)
{
    return ospab_pve_path(p, "nodes", v[OSPAB_VPS_NODE], kind_of(v), v[OSPAB_VPS_VMID], a, b,
                          c, NULL);
}

/* The caller's server by id. 0: *row set; 1: res is set (404). */
static int load_owned(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                      const char *id, ospab_row_t *row, ospab_result_t *res)
{
    if (ospab_db_select_one(db, p, "ospab_vps_get", 1, &id, row) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    if (!*row || (!who->admin && strcmp((*row)[OSPAB_VPS_USER_ID], who->user_id))) {
        ospab_result_error(p, res, 404, "server not found", NULL);
        return 1;
    }
    return 0;
}

/* ---- records not linked to their guest yet (the agent's adoption) --------------------- */

/* The forms of vps.binding_note (ospab_server_binding_note) start so; the name follows. */
#define NOTE_MISSING "no guest named '"
#define NOTE_TAKEN   "the "             /* the guest(s) named '...' ... bound to ... */
#define NOTE_SEVERAL " guests are named '"
#define NOTE_TWINS   " servers are named '"

const char *ospab_server_binding_note(apr_pool_t *p, ospab_binding_e why, const char *name,
                                      int n, const char *guests, const char *servers)
{
    const char *bind = "bind the record with node and vmid in a sync update";

    switch (why) {
    case OSPAB_BINDING_MISSING:
        return apr_psprintf(p, NOTE_MISSING "%s' on the Proxmox clusters: give its guest "
                            "this name, or %s", name, bind);
    case OSPAB_BINDING_TAKEN:
        return n == 1
            ? apr_psprintf(p, "the guest named '%s' (%s) is bound to %s already: %s", name,
                           guests, servers, bind)
            : apr_psprintf(p, "the %d guests named '%s' (%s) are bound to %s already: %s", n,
                           name, guests, servers, bind);
    case OSPAB_BINDING_SEVERAL:
        return apr_psprintf(p, "%d" NOTE_SEVERAL "%s' (%s): %s", n, name, guests, bind);
    case OSPAB_BINDING_TWINS:
    default:
        return apr_psprintf(p, "%d" NOTE_TWINS "%s'%s%s%s and one guest (%s) waits: bind "
                            "each with node and vmid in a sync update", n, name,
                            servers ? " (" : "", servers ? servers : "", servers ? ")" : "",
                            guests);
    }
}

/* What a customer is told of a server the agent has not linked to its guest: the reason
 * of vps.binding_note in their words (guest locations and other servers stay out). */
static const char *unlinked_text(apr_pool_t *p, ospab_row_t v)
{
    const char *note = v[OSPAB_VPS_BINDING_NOTE], *name = v[OSPAB_VPS_NAME];
    const char *why = NULL, *digits;

    if (note) {
        for (digits = note; *digits >= '0' && *digits <= '9'; ++digits) {
        }
        if (!strncmp(note, NOTE_MISSING, strlen(NOTE_MISSING))) {
            why = apr_psprintf(p, "no guest named '%s' was found", name);
        }
        else if (!strncmp(note, NOTE_TAKEN, strlen(NOTE_TAKEN))) {
            why = apr_psprintf(p, "the guest named '%s' is linked to another server", name);
        }
        else if (digits > note && !strncmp(digits, NOTE_SEVERAL, strlen(NOTE_SEVERAL))) {
            why = apr_psprintf(p, "several guests are named '%s'", name);
        }
        else if (digits > note && !strncmp(digits, NOTE_TWINS, strlen(NOTE_TWINS))) {
            why = apr_psprintf(p, "more than one server is named '%s'", name);
        }
    }
    if (!why) {
        /* the agent has not looked yet (it links such servers within a poll or two) */
        return "this server is not linked to its guest on Proxmox yet: try again in a "
               "minute, and ask support if this lasts";
    }
    return apr_psprintf(p, "this server is not linked to its guest on Proxmox yet (%s): "
                        "ask support", why);
}

int ospab_server_adopt(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                       const ospab_adoption_t *ad, int *twins)
{
    const char *now = ospab_time_db(p, a->now);
    /* the guest's state, for the states it can tell (a suspended record stays so) */
    int take = ad->guest_status && (!strcmp(ad->guest_status, "running")
                                    || !strcmp(ad->guest_status, "stopped"))
               && (!strcmp(ad->status, "creating") || !strcmp(ad->status, "running")
                   || !strcmp(ad->status, "stopped"));
    const char *to = take ? ad->guest_status : ad->status;
    const char *args[8] = { ad->node, ad->vmid, ad->kind, to, now, ad->id, ad->name,
                            ad->status };
    const char *name = ad->name;
    ospab_row_t count = NULL;
    json_t *details;
    int n = 0, good;

    *twins = 0;
    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        return -1;
    }
    if (ospab_db_select_one(db, p, "ospab_agent_vps_unbound_named", 1, &name, &count)
        != APR_SUCCESS) {
        ospab_db_end(db, 0);
        return -1;
    }
    if (count && count[0] && apr_atoi64(count[0]) > 1) {
        /* another unbound record bears the name: which of them is the guest's? */
        ospab_db_end(db, 0);
        *twins = (int)apr_atoi64(count[0]);
        return 2;
    }
    if (ospab_db_exec(db, p, "ospab_agent_vps_adopt", 8, args, &n) != APR_SUCCESS) {
        int constraint = ospab_db_is_constraint(db);

        ospab_db_end(db, 0);
        return constraint ? 0 : -1;     /* bound to another record meanwhile: not now */
    }
    if (n != 1) {
        ospab_db_end(db, 0);
        return 0;                       /* bound, renamed or changed meanwhile */
    }
    details = json_pack("{s:{s:o, s:s}, s:{s:o, s:s}, s:{s:o, s:s}}",
                        "node", "from", ospab_json_str_or_null(ad->old_node), "to", ad->node,
                        "vmid", "from", ospab_json_str_or_null(ad->old_vmid), "to", ad->vmid,
                        "kind", "from", ospab_json_str_or_null(ad->old_kind), "to", ad->kind);
    if (details && strcmp(to, ad->status)) {
        json_object_set_new(details, "status", json_pack("{s:s, s:s}", "from", ad->status,
                                                         "to", to));
    }
    good = details && ospab_audit(db, p, a, "vps.adopt", "vps", ad->id, details) == APR_SUCCESS;
    if (good && strcmp(to, ad->status)) {
        json_t *data = json_pack("{s:I, s:I, s:s, s:s}",
                                 "serverId", (json_int_t)apr_atoi64(ad->id),
                                 "userId", (json_int_t)apr_atoi64(ad->user_id),
                                 "status", to, "previous", ad->status);

        good = data && ospab_event_add(db, p, a->now, OSPAB_EVENT_STATUS, data) == APR_SUCCESS;
        json_decref(data);
    }
    if (ospab_db_end(db, good) != APR_SUCCESS || !good) {
        return -1;
    }
    return 1;
}

/* Proxmox configured, a Proxmox server, provisioned. 0: fine; 1: res is set. */
static int on_proxmox(apr_pool_t *p, const ospab_server_conf_t *c, ospab_row_t v,
                      ospab_result_t *res)
{
    if (strcmp(v[OSPAB_VPS_HYPERVISOR], "proxmox")) {
        ospab_result_error(p, res, 501, apr_psprintf(p, "this server runs on %s: the panel "
                           "manages Proxmox servers only, ask support", v[OSPAB_VPS_HYPERVISOR]),
                           NULL);
        return 1;
    }
    if (!c->pve) {
        ospab_result_error(p, res, 503, "server management is not configured "
                           "(OspabProxmoxURL)", NULL);
        return 1;
    }
    if (!v[OSPAB_VPS_NODE] || !v[OSPAB_VPS_VMID]) {
        ospab_result_error(p, res, 409, unlinked_text(p, v), NULL);
        return 1;
    }
    return 0;
}

/* Runs fn's writes in a transaction of their own unless the caller has one open. */
static int own_tx(ospab_db_t *db, apr_pool_t *p)
{
    if (db->trans) {
        return 0;
    }
    return ospab_db_begin(db, p) == APR_SUCCESS ? 1 : -1;
}

/* Finishes a queued or running task and records task.finished with it. 1: this call
 * finished it; 0: it was already finished (another follower won) or the write failed. */
static int finish_task(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                       const char *task_id, int ok, const char *exitstatus, const char *error)
{
    const char *now = ospab_time_db(p, a->now);
    const char *args[6] = { ok ? "ok" : "error", exitstatus, error, now, now, task_id };
    ospab_row_t t;
    int tx = own_tx(db, p), n = 0;

    if (tx < 0) {
        return 0;
    }
    if (ospab_db_exec(db, p, "ospab_task_finish", 6, args, &n) == APR_SUCCESS && n == 1
        && ospab_db_select_one(db, p, "ospab_task_get", 1, &task_id, &t) == APR_SUCCESS && t
        && t[1]) {
        /* id vps_id user_id action status upid exitstatus error: "error" in the customer's
         * words (browsers get it pushed), Proxmox's own as "detail" (webhooks only) */
        json_t *data = json_pack("{s:I, s:I, s:I, s:s, s:s, s:s?, s:s?, s:s?}",
                                 "serverId", (json_int_t)apr_atoi64(t[1]),
                                 "userId", (json_int_t)apr_atoi64(t[2] ? t[2] : "0"),
                                 "taskId", (json_int_t)apr_atoi64(t[0]),
                                 "action", t[3], "status", t[4], "upid", t[5],
                                 "error", ospab_pve_error_text(p, t[7]), "detail", t[7]);

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

static void continue_task(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                          const char *task_id, const char *upid, const char *action)
{
    const char *args[4] = { upid, action, ospab_time_db(p, a->now), task_id };

    ospab_db_exec(db, p, "ospab_task_continue", 4, args, NULL);
}

/* Sets the server's status and, when it changed, records server.status with it. */
static void set_status(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a, const char *id,
                       const char *status)
{
    const char *args[3] = { status, ospab_time_db(p, a->now), id };
    ospab_row_t old = NULL;
    int tx = own_tx(db, p), good;

    if (tx < 0) {
        return;
    }
    good = ospab_db_select_one(db, p, "ospab_vps_status_of", 1, &id, &old) == APR_SUCCESS
           && ospab_db_exec(db, p, "ospab_vps_set_status", 3, args, NULL) == APR_SUCCESS;
    if (good && old && (!old[0] || strcmp(old[0], status))) {
        json_t *data = json_pack("{s:I, s:I, s:s, s:s?}",
                                 "serverId", (json_int_t)apr_atoi64(id),
                                 "userId", (json_int_t)apr_atoi64(old[1] ? old[1] : "0"),
                                 "status", status, "previous", old[0]);

        good = data && ospab_event_add(db, p, a->now, OSPAB_EVENT_STATUS, data) == APR_SUCCESS;
        json_decref(data);
    }
    if (tx) {
        ospab_db_end(db, good);
    }
}

/* The first IPv4 address of a running container (from /interfaces), or NULL. */
static const char *guest_ip(apr_pool_t *p, const ospab_server_conf_t *c,
                            const ospab_actor_t *a, ospab_row_t v)
{
    ospab_pve_result_t pr;
    size_t i;

    if (strcmp(kind_of(v), "lxc")
        || pve_call(c, p, a, "GET", guest_path(p, v, "interfaces", NULL, NULL), NULL,
                          &pr) != APR_SUCCESS) {
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

/* Applies what a finished task means for its server. */
static void apply_outcome(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                          const ospab_actor_t *a, ospab_row_t v, const char *action, int ok)
{
    const char *id = v[OSPAB_VPS_ID];

    if (!strcmp(action, "delete")) {
        if (ok) {
            int tx = own_tx(db, p);
            json_t *data = json_pack("{s:I, s:I, s:s}", "serverId", (json_int_t)apr_atoi64(id),
                                     "userId", (json_int_t)apr_atoi64(v[OSPAB_VPS_USER_ID]),
                                     "reason", "deleted");

            if (tx < 0) {
                json_decref(data);
                return;
            }
            ospab_event_add(db, p, a->now, OSPAB_EVENT_DELETED, data);
            json_decref(data);
            ospab_db_exec(db, p, "ospab_vps_delete_metrics", 1, &id, NULL);
            ospab_db_exec(db, p, "ospab_vps_delete_alerts", 1, &id, NULL);
            ospab_db_exec(db, p, "ospab_vps_detach_tasks", 1, &id, NULL);
            ospab_db_exec(db, p, "ospab_vps_delete", 1, &id, NULL);
            if (tx) {
                ospab_db_end(db, 1);
            }
        }
        else {
            set_status(db, p, a, id, "stopped");
        }
        return;
    }
    if (!ok) {
        if (!strcmp(action, "create")) {
            /* Proxmox removed the half-made container: its vmid is free again */
            const char *args[2] = { ospab_time_db(p, a->now), id };

            set_status(db, p, a, id, "error");
            ospab_db_exec(db, p, "ospab_vps_clear_vmid", 2, args, NULL);
        }
        else if (!strcmp(action, "create:start")) {
            set_status(db, p, a, id, "stopped");
        }
        return;
    }
    if (!strcmp(action, "stop") || !strcmp(action, "shutdown")) {
        set_status(db, p, a, id, "stopped");
    }
    else if (!strcmp(action, "start") || !strcmp(action, "reboot")
             || !strcmp(action, "restart:start") || !strcmp(action, "create:start")
             || !strcmp(action, "rollback") || !strcmp(action, "rollback:start")) {
        /* what the guest really is now (create starts it in a task of its own) */
        ospab_pve_result_t pr;
        const char *st = "running";
        const char *ip;

        if (pve_call(c, p, a, "GET", guest_path(p, v, "status", "current", NULL), NULL,
                           &pr) == APR_SUCCESS
            && json_is_string(json_object_get(pr.data, "status"))) {
            st = json_string_value(json_object_get(pr.data, "status"));
        }
        set_status(db, p, a, id, st);
        if (!strcmp(st, "running") && (ip = guest_ip(p, c, a, v)) != NULL) {
            const char *args[3] = { ip, ospab_time_db(p, a->now), id };

            ospab_db_exec(db, p, "ospab_vps_set_ip", 3, args, NULL);
        }
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
                              const ospab_actor_t *a, ospab_row_t v, const char *task_id,
                              const char *action)
{
    ospab_pve_result_t st;

    if (pve_call(c, p, a, "GET", guest_path(p, v, "status", "current", NULL), NULL, &st)
            == APR_SUCCESS
        && json_is_string(json_object_get(st.data, "status"))
        && !strcmp(json_string_value(json_object_get(st.data, "status")), "running")) {
        if (finish_task(db, p, a, task_id, 1, "OK", NULL)) {
            apply_outcome(db, p, c, a, v, action, 1);
        }
        return;
    }
    if (pve_call(c, p, a, "POST", guest_path(p, v, "status", "start", NULL), NULL, &st)
            == APR_SUCCESS && json_is_string(st.data)) {
        continue_task(db, p, a, task_id, json_string_value(st.data), action);
        return;
    }
    if (st.outcome == OSPAB_PVE_UNREACHABLE || st.outcome == OSPAB_PVE_TIMEOUT) {
        return;     /* still claimed: taken again after QUEUED_TIMEOUT */
    }
    if (finish_task(db, p, a, task_id, 0, NULL, st.message ? st.message : "start failed")
        && (!strcmp(action, "create:start") || !strcmp(action, "rollback:start"))) {
        set_status(db, p, a, v[OSPAB_VPS_ID], "stopped");
    }
}

/* Asks Proxmox about the server's running tasks and finishes those that stopped; resumes a
 * second half whose follower died. Module and agent may follow the same task at once: the
 * conditional updates let exactly one of them apply each outcome. Failures to reach
 * Proxmox leave the tasks as they are. */
static void follow_up(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                      const ospab_actor_t *a, ospab_row_t v)
{
    apr_array_header_t *tasks;
    const char *id = v[OSPAB_VPS_ID];
    const char *stale = ospab_time_db(p, a->now - QUEUED_TIMEOUT);
    int i;

    if (ospab_db_select(db, p, "ospab_task_active", 1, &id, &tasks, NULL) != APR_SUCCESS) {
        return;
    }
    for (i = 0; i < tasks->nelts; ++i) {
        /* id upid action node status created_at updated_at */
        ospab_row_t t = APR_ARRAY_IDX(tasks, i, ospab_row_t);
        ospab_pve_result_t pr;
        const char *exitstatus, *now = ospab_time_db(p, a->now);
        apr_size_t alen = strlen(t[2]);
        int ok;

        if (!t[1]) {
            if (strcmp(t[6], stale) >= 0) {
                continue;   /* its owner is still asking Proxmox */
            }
            if (alen > 6 && !strcmp(t[2] + alen - 6, ":start")) {
                const char *args[3] = { now, t[0], t[6] };

                if (claim(db, p, "ospab_task_reclaim_start", 3, args)) {
                    start_second_half(db, p, c, a, v, t[0], t[2]);
                }
                continue;
            }
            finish_task(db, p, a, t[0], 0, NULL, "abandoned before Proxmox accepted it");
            continue;
        }
        if (pve_call(c, p, a, "GET",
                           ospab_pve_path(p, "nodes", t[3], "tasks", t[1], "status", NULL),
                           NULL, &pr) != APR_SUCCESS) {
            continue;
        }
        if (!json_is_string(json_object_get(pr.data, "status"))
            || strcmp(json_string_value(json_object_get(pr.data, "status")), "stopped")) {
            continue;
        }
        exitstatus = json_string_value(json_object_get(pr.data, "exitstatus"));
        ok = exitstatus && (!strcmp(exitstatus, "OK") || !strncmp(exitstatus, "WARNINGS", 8));
        if (ok && (!strcmp(t[2], "restart") || !strcmp(t[2], "create")
                   || (!strcmp(t[2], "rollback") && v[OSPAB_VPS_STATUS]
                       && !strcmp(v[OSPAB_VPS_STATUS], "running")))) {
            /* the second half: restart and create start the guest; a rollback (Proxmox
             * stops the guest for it) starts one that was running before, as "restores
             * the server to its previous state" promises. The record still says what the
             * server was: the agent leaves it alone while a task runs. */
            const char *second = apr_pstrcat(p, t[2], ":start", NULL);
            const char *args[4] = { second, now, t[0], t[1] };

            if (claim(db, p, "ospab_task_claim_start", 4, args)) {
                start_second_half(db, p, c, a, v, t[0], second);
            }
            continue;
        }
        if (finish_task(db, p, a, t[0], ok, exitstatus, ok ? NULL : exitstatus)) {
            apply_outcome(db, p, c, a, v, t[2], ok);
        }
    }
}

void ospab_server_follow(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                         const ospab_actor_t *a, const char *id)
{
    ospab_row_t v;

    if (c->pve && ospab_db_select_one(db, p, "ospab_vps_get", 1, &id, &v) == APR_SUCCESS && v
        && v[OSPAB_VPS_NODE] && v[OSPAB_VPS_VMID]) {
        follow_up(db, p, c, a, v);
    }
}

/* Takes the server for one operation: inside a transaction that first locks the server's
 * row, no other operation may be queued or running. 0: *task_id set; 1: res is set. */
static int begin_op(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                    const ospab_principal_t *who, ospab_row_t v, const char *action,
                    const char **task_id, ospab_result_t *res)
{
    const char *id = v[OSPAB_VPS_ID];
    const char *now = ospab_time_db(p, a->now);
    const char *args[6];
    ospab_row_t busy;

    if (ospab_db_begin(db, p) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_vps_lock", 1, &id, NULL) != APR_SUCCESS
        || ospab_db_select_one(db, p, "ospab_task_active", 1, &id, &busy) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    if (busy) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 409, apr_psprintf(p, "operation '%s' is still running on "
                           "this server%s%s", busy[2], busy[1] ? " (task " : "",
                           busy[1] ? apr_pstrcat(p, busy[1], ")", NULL) : ""), NULL);
        return 1;
    }
    args[0] = id;
    args[1] = v[OSPAB_VPS_USER_ID];
    args[2] = v[OSPAB_VPS_NODE];
    args[3] = action;
    args[4] = now;
    args[5] = now;
    if (ospab_db_exec(db, p, "ospab_task_insert", 6, args, NULL) != APR_SUCCESS
        || ospab_db_last_id(db, p, task_id) != APR_SUCCESS
        || ospab_audit(db, p, a, apr_pstrcat(p, "vps.", action, NULL), "vps", id, NULL) != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    return 0;
}

/* Records the UPID Proxmox gave, or the refusal. 0: started; 1: res is set. */
static int started(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a, const char *task_id,
                   apr_status_t rv, ospab_pve_result_t *pr, const char *what,
                   const char **upid, ospab_result_t *res)
{
    ospab_upid_t u;

    if (rv != APR_SUCCESS) {
        finish_task(db, p, a, task_id, 0, NULL, pr->message ? pr->message : "failed");
        pve_failed(p, pr, what, res);
        return 1;
    }
    if (!json_is_string(pr->data)
        || ospab_upid_parse(p, json_string_value(pr->data), &u) != APR_SUCCESS) {
        finish_task(db, p, a, task_id, 0, NULL, "Proxmox did not return a task id");
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

/* Load, check, follow up, take the server. 0: ready; 1: res is set. */
static int prepare(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                   const ospab_principal_t *who, const ospab_actor_t *a, const char *id,
                   const char *action, ospab_row_t *v, const char **task_id,
                   ospab_result_t *res)
{
    if (load_owned(db, p, who, id, v, res) || on_proxmox(p, c, *v, res)) {
        return 1;
    }
    follow_up(db, p, c, a, *v);
    /* again: a finished task may have changed it, or deleted it */
    if (load_owned(db, p, who, id, v, res)) {
        return 1;
    }
    return begin_op(db, p, a, who, *v, action, task_id, res);
}

/* ---- power ------------------------------------------------------------------------------ */

void ospab_server_power(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                        const ospab_principal_t *who, const ospab_actor_t *a, const char *id,
                        const char *action, ospab_result_t *res)
{
    /* restart is a hard stop first (then the start, see follow_up) */
    const char *pve_action = !strcmp(action, "restart") ? "stop" : action;
    const char *task_id, *upid;
    ospab_pve_result_t pr;
    ospab_row_t v;
    apr_status_t rv;
    int only_start = 0;

    memset(res, 0, sizeof(*res));
    if (prepare(db, p, c, who, a, id, action, &v, &task_id, res)) {
        return;
    }

    rv = pve_call(c, p, a, "POST", guest_path(p, v, "status", pve_action, NULL), NULL,
                        &pr);
    if (rv != APR_SUCCESS && !strcmp(action, "restart") && pr.message
        && strstr(pr.message, "not running")) {
        /* restarting a stopped server: just start it */
        only_start = 1;
        rv = pve_call(c, p, a, "POST", guest_path(p, v, "status", "start", NULL), NULL,
                            &pr);
    }
    if (started(db, p, a, task_id, rv, &pr, action, &upid, res)) {
        return;
    }
    if (only_start) {
        /* the task row is the start half already */
        continue_task(db, p, a, task_id, upid, "restart");
    }
    ok_body(p, res, 200, success(action, upid));
}

/* ---- create ----------------------------------------------------------------------------- */

const char *ospab_server_new_password(apr_pool_t *p)
{
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    unsigned char raw[20];
    char *pw = apr_palloc(p, sizeof(raw) + 1);
    apr_size_t i, n = sizeof(alphabet) - 1;

    apr_generate_random_bytes(raw, sizeof(raw));
    for (i = 0; i < sizeof(raw); ++i) {
        /* 256 % 56 != 0: redraw the bytes that would bias the choice */
        while (raw[i] >= 256 - 256 % n) {
            apr_generate_random_bytes(&raw[i], 1);
        }
        pw[i] = alphabet[raw[i] % n];
    }
    pw[sizeof(raw)] = '\0';
    memset(raw, 0, sizeof(raw));
    return pw;
}

static int positive_int(json_t *v, apr_int64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        return 0;
    }
    *out = json_integer_value(v);
    return 1;
}

/* A customer's self-service creates stop at OspabServerQuota servers: checked before
 * Proxmox is asked, and again inside the create's transaction (db->trans) with the user's
 * row locked first, so parallel creates cannot all pass the count. 0: go on; 1: res is
 * set (and the transaction rolled back). */
static int over_quota(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                      const ospab_principal_t *who, ospab_result_t *res)
{
    const char *uid = who->user_id;
    ospab_row_t count = NULL;

    if (who->admin || c->server_quota <= 0) {
        return 0;
    }
    if ((db->trans && ospab_db_exec(db, p, "ospab_user_lock", 1, &uid, NULL) != APR_SUCCESS)
        || ospab_db_select_one(db, p, "ospab_vps_count_user", 1, &uid, &count)
           != APR_SUCCESS || !count) {
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    if (apr_atoi64(count[0]) >= c->server_quota) {
        if (db->trans) {
            ospab_db_end(db, 0);
        }
        ospab_result_error(p, res, 403, apr_psprintf(p, "you have %s servers, the most you "
                           "can order here (%d): delete one or ask your provider", count[0],
                           c->server_quota), NULL);
        return 1;
    }
    return 0;
}

void ospab_server_create(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                         const ospab_principal_t *who, const ospab_actor_t *a, json_t *body,
                         ospab_result_t *res)
{
    json_t *errors = json_object();
    apr_int64_t os_id = 0, tariff_id = 0, vmid;
    const char *args[17], *os_s, *tariff_s, *password, *now, *vps_id, *task_id, *upid;
    ospab_row_t os, tariff, v;
    ospab_pve_result_t pr;
    int attempt, i;

    memset(res, 0, sizeof(*res));
    if (!who->admin && !c->self_service) {
        json_decref(errors);
        ospab_result_error(p, res, 403, "ordering servers here is disabled: order on the main "
                           "site", NULL);
        return;
    }
    if (!json_is_object(body) || !positive_int(json_object_get(body, "osId"), &os_id)) {
        json_object_set_new(errors, "osId", json_string("must be the id of an OS template"));
    }
    if (!json_is_object(body) || !positive_int(json_object_get(body, "tariffId"), &tariff_id)) {
        json_object_set_new(errors, "tariffId", json_string("must be the id of a tariff"));
    }
    if (json_object_size(errors)) {
        ospab_result_error(p, res, 400, ospab_fields_summary(p, "request", errors), errors);
        return;
    }
    os_s = apr_psprintf(p, "%" APR_INT64_T_FMT, os_id);
    tariff_s = apr_psprintf(p, "%" APR_INT64_T_FMT, tariff_id);
    if (ospab_db_select_one(db, p, "ospab_os_get", 1, &os_s, &os) != APR_SUCCESS
        || ospab_db_select_one(db, p, "ospab_tariff_get", 1, &tariff_s, &tariff)
           != APR_SUCCESS) {
        json_decref(errors);
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!os) {
        json_object_set_new(errors, "osId", json_string(apr_psprintf(p, "OS template %s does "
                                                                     "not exist", os_s)));
    }
    if (!tariff) {
        json_object_set_new(errors, "tariffId", json_string(apr_psprintf(p, "tariff %s does "
                                                                         "not exist", tariff_s)));
    }
    if (json_object_size(errors)) {
        ospab_result_error(p, res, 422, ospab_fields_summary(p, "request", errors), errors);
        return;
    }
    json_decref(errors);
    if (!c->pve || !c->node) {
        ospab_result_error(p, res, 503, "server management is not configured "
                           "(OspabProxmoxURL, OspabProxmoxNode)", NULL);
        return;
    }
    if (over_quota(db, p, c, who, res)) {
        return;
    }
    password = ospab_server_new_password(p);
    /* Proxmox's next free vmid. Creates running at the same time get the same one until the
     * first container exists: whoever loses (our unique node+vmid, or Proxmox's "already
     * exists") takes the next number rather than asking again. */
    if (pve_call(c, p, a, "GET", "/cluster/nextid", NULL, &pr) != APR_SUCCESS) {
        pve_failed(p, &pr, "nextid", res);
        return;
    }
    if (!ospab_pve_int(pr.data, &vmid)) {
        res->log = "Proxmox nextid: not a number";
        ospab_result_error(p, res, 502, "Proxmox gave an answer the panel cannot read", NULL);
        return;
    }
    for (attempt = 0; attempt < 16; ++attempt, ++vmid) {
        ospab_pve_param_t params[12];

        now = ospab_time_db(p, a->now);
        for (i = 0; i < 17; ++i) {
            args[i] = NULL;
        }
        args[OSPAB_VPS_NAME - 1] = apr_psprintf(p, "ct%" APR_INT64_T_FMT, vmid);
        args[OSPAB_VPS_STATUS - 1] = "creating";
        args[OSPAB_VPS_CPU - 1] = tariff[3];
        args[OSPAB_VPS_RAM - 1] = tariff[4];
        args[OSPAB_VPS_DISK - 1] = tariff[5];
        args[OSPAB_VPS_OS - 1] = os[1];
        args[OSPAB_VPS_USER_ID - 1] = who->user_id;
        args[OSPAB_VPS_HYPERVISOR - 1] = "proxmox";
        args[OSPAB_VPS_NODE - 1] = c->node;
        args[OSPAB_VPS_VMID - 1] = apr_psprintf(p, "%" APR_INT64_T_FMT, vmid);
        args[OSPAB_VPS_KIND - 1] = "lxc";
        args[OSPAB_VPS_TARIFF_ID - 1] = tariff_s;
        args[OSPAB_VPS_OS_ID - 1] = os_s;
        args[OSPAB_VPS_CREATED_AT - 1] = args[OSPAB_VPS_UPDATED_AT - 1] = now;
        if (ospab_db_begin(db, p) != APR_SUCCESS) {
            ospab_result_db_failed(db, p, res);
            return;
        }
        if (over_quota(db, p, c, who, res)) {
            return;
        }
        if (ospab_db_exec(db, p, "ospab_vps_insert", 17, args, NULL) != APR_SUCCESS) {
            if (ospab_db_is_constraint(db)) {   /* vmid taken in our own table */
                ospab_db_end(db, 0);
                continue;
            }
            ospab_result_db_failed(db, p, res);
            return;
        }
        if (ospab_db_last_id(db, p, &vps_id) != APR_SUCCESS
            || ospab_db_select_one(db, p, "ospab_vps_get", 1, &vps_id, &v) != APR_SUCCESS || !v
            || ospab_db_end(db, 1) != APR_SUCCESS) {
            ospab_result_db_failed(db, p, res);
            return;
        }
        if (begin_op(db, p, a, who, v, "create", &task_id, res)) {
            return;
        }
        i = 0;
        params[i++] = (ospab_pve_param_t){ "vmid", v[OSPAB_VPS_VMID] };
        params[i++] = (ospab_pve_param_t){ "ostemplate", os[3] };
        params[i++] = (ospab_pve_param_t){ "hostname", v[OSPAB_VPS_NAME] };
        params[i++] = (ospab_pve_param_t){ "cores", tariff[3] };
        params[i++] = (ospab_pve_param_t){ "memory", tariff[4] };
        params[i++] = (ospab_pve_param_t){ "rootfs", apr_psprintf(p, "%s:%s", c->storage,
                                                                  tariff[5]) };
        params[i++] = (ospab_pve_param_t){ "net0", apr_psprintf(p, "name=eth0,bridge=%s,"
                                                                "ip=dhcp", c->bridge) };
        params[i++] = (ospab_pve_param_t){ "password", password };
        params[i++] = (ospab_pve_param_t){ "unprivileged", "1" };
        /* no start=1: Proxmox would start it in a task of its own whose UPID we never see;
         * the follow-up starts it and follows that task (create:start) */
        params[i] = (ospab_pve_param_t){ NULL, NULL };
        if (pve_call(c, p, a, "POST", ospab_pve_path(p, "nodes", c->node, "lxc", NULL),
                           params, &pr) != APR_SUCCESS) {
            /* nothing was created: the record goes again */
            finish_task(db, p, a, task_id, 0, NULL, pr.message ? pr.message : "failed");
            ospab_db_exec(db, p, "ospab_vps_detach_tasks", 1, &vps_id, NULL);
            ospab_db_exec(db, p, "ospab_vps_delete", 1, &vps_id, NULL);
            if (pr.outcome == OSPAB_PVE_HTTP_ERROR && pr.message
                && strstr(pr.message, "already exists")) {
                continue;
            }
            pve_failed(p, &pr, "create", res);
            return;
        }
        if (started(db, p, a, task_id, APR_SUCCESS, &pr, "create", &upid, res)) {
            return;
        }
        {
            /* seed 003's answer; the root password is shown this once and kept nowhere */
            json_t *o = json_object();

            json_object_set_new(o, "id", ospab_json_int_or_null(vps_id));
            json_object_set_new(o, "status", json_string("creating"));
            json_object_set_new(o, "proxmoxId", ospab_json_int_or_null(v[OSPAB_VPS_VMID]));
            json_object_set_new(o, "ipAddress", json_null());
            json_object_set_new(o, "rootPassword", json_string(password));
            json_object_set_new(o, "taskId", json_string(upid));
            ok_body(p, res, 201, o);
        }
        return;
    }
    res->log = "sixteen vmids in a row were taken";
    ospab_result_error(p, res, 409, "could not reserve a vmid, try again", NULL);
}

/* ---- delete ----------------------------------------------------------------------------- */

/* DELETE's answer when the record went at once, without a Proxmox task. */
static void deleted_now(apr_pool_t *p, ospab_result_t *res)
{
    json_t *o = json_object();

    json_object_set_new(o, "status", json_string("deleted"));
    json_object_set_new(o, "taskId", json_null());
    ok_body(p, res, 200, o);
}

void ospab_server_delete(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                         const ospab_principal_t *who, const ospab_actor_t *a, const char *id,
                         ospab_result_t *res)
{
    static const ospab_pve_param_t params[] = { { "purge", "1" }, { "force", "1" },
                                                { NULL, NULL } };
    const char *task_id, *upid;
    ospab_pve_result_t pr;
    ospab_row_t v;
    json_t *o;

    apr_status_t rv;

    memset(res, 0, sizeof(*res));
    if (load_owned(db, p, who, id, &v, res)) {
        return;
    }
    if (!strcmp(v[OSPAB_VPS_HYPERVISOR], "proxmox") && !v[OSPAB_VPS_VMID]
        && !strcmp(v[OSPAB_VPS_STATUS], "error")) {
        /* its create failed and Proxmox removed the container: only the record goes (a
         * record the billing site synced without a vmid is not ours to delete) */
        if (ospab_audit(db, p, a, "vps.delete", "vps", id, NULL) != APR_SUCCESS) {
            ospab_result_db_failed(db, p, res);
            return;
        }
        apply_outcome(db, p, c, a, v, "delete", 1);
        deleted_now(p, res);
        return;
    }
    if (prepare(db, p, c, who, a, id, "delete", &v, &task_id, res)) {
        return;
    }
    rv = pve_call(c, p, a, "DELETE", guest_path(p, v, NULL, NULL, NULL),
                  !strcmp(kind_of(v), "lxc") ? params : params + 1, &pr);
    if (rv != APR_SUCCESS && pr.outcome == OSPAB_PVE_HTTP_ERROR && pr.message
        && strstr(pr.message, "does not exist")) {
        /* gone from Proxmox already (deleted there by hand): the record follows */
        finish_task(db, p, a, task_id, 1, "OK", NULL);
        apply_outcome(db, p, c, a, v, "delete", 1);
        deleted_now(p, res);
        return;
    }
    if (started(db, p, a, task_id, rv, &pr, "delete", &upid, res)) {
        return;
    }
    set_status(db, p, a, id, "deleting");
    o = json_object();
    json_object_set_new(o, "status", json_string("deleted"));
    json_object_set_new(o, "taskId", json_string(upid));
    ok_body(p, res, 200, o);
}

/* ---- status ----------------------------------------------------------------------------- */

static const char *const timeframes[] = { "hour", "day", "week", "month", "year", NULL };

static json_t *usage(json_t *cur, const char *used_key, const char *max_key)
{
    double used = 0, max = 0;
    json_t *o = json_object();

    ospab_pve_double(json_object_get(cur, used_key), &used);
    ospab_pve_double(json_object_get(cur, max_key), &max);
    json_object_set_new(o, "used", json_integer((json_int_t)used));
    json_object_set_new(o, "max", json_integer((json_int_t)max));
    json_object_set_new(o, "usage", json_real(max > 0 ? ((long)(used * 1000.0 / max)) / 10.0
                                                      : 0.0));
    return o;
}

json_t *ospab_server_stats_json(const char *vmid, json_t *cur, json_t *rrd)
{
    json_t *data = json_object(), *stats = json_object(), *net = json_object();
    double cpu = 0;
    apr_int64_t n;

    json_object_set_new(data, "vmid", ospab_json_int_or_null(vmid));
    json_object_set(data, "status", json_object_get(cur, "status"));
    json_object_set_new(data, "uptime", json_integer(
        ospab_pve_int(json_object_get(cur, "uptime"), &n) ? (json_int_t)n : 0));
    ospab_pve_double(json_object_get(cur, "cpu"), &cpu);
    json_object_set_new(data, "cpu", json_real(cpu));
    json_object_set_new(data, "memory", usage(cur, "mem", "maxmem"));
    json_object_set_new(data, "disk", usage(cur, "disk", "maxdisk"));
    json_object_set_new(net, "in", json_integer(
        ospab_pve_int(json_object_get(cur, "netin"), &n) ? (json_int_t)n : 0));
    json_object_set_new(net, "out", json_integer(
        ospab_pve_int(json_object_get(cur, "netout"), &n) ? (json_int_t)n : 0));
    json_object_set_new(data, "network", net);
    json_object_set(data, "rrdData", json_is_array(rrd) ? rrd : json_array());
    json_object_set_new(stats, "status", json_string("success"));
    json_object_set_new(stats, "data", data);
    return stats;
}

void ospab_server_set_status(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                             const char *id, const char *status)
{
    set_status(db, p, a, id, status);
}

void ospab_server_status(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                         const ospab_principal_t *who, const char *id, const char *timeframe,
                         ospab_result_t *res)
{
    ospab_pve_param_t rrd_params[3] = { { "timeframe", NULL }, { "cf", "AVERAGE" },
                                        { NULL, NULL } };
    const char *const *tf;
    ospab_pve_result_t cur, rrd;
    ospab_actor_t act = { "user", who->user_id, NULL, apr_time_now() };
    const ospab_actor_t *a = &act;
    ospab_row_t v;
    json_t *stats, *o;

    memset(res, 0, sizeof(*res));
    timeframe = timeframe ? timeframe : "hour";
    for (tf = timeframes; *tf && strcmp(*tf, timeframe); ++tf) {
    }
    if (!*tf) {
        ospab_result_error(p, res, 400, "timeframe must be one of hour, day, week, month, year",
                           NULL);
        return;
    }
    if (load_owned(db, p, who, id, &v, res) || on_proxmox(p, c, v, res)) {
        return;
    }
    follow_up(db, p, c, a, v);
    rrd_params[0].value = timeframe;
    if (pve_call(c, p, a, "GET", guest_path(p, v, "status", "current", NULL), NULL,
                       &cur) != APR_SUCCESS) {
        pve_failed(p, &cur, "status", res);
        return;
    }
    if (pve_call(c, p, a, "GET", guest_path(p, v, "rrddata", NULL, NULL), rrd_params,
                       &rrd) != APR_SUCCESS) {
        pve_failed(p, &rrd, "rrddata", res);
        return;
    }
    /* the row again: follow_up may have changed the status */
    if (ospab_db_select_one(db, p, "ospab_vps_get", 1, &id, &v) != APR_SUCCESS || !v) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    stats = ospab_server_stats_json(v[OSPAB_VPS_VMID], cur.data, rrd.data);
    o = json_object();
    json_object_set_new(o, "id", ospab_json_int_or_null(v[OSPAB_VPS_ID]));
    json_object_set_new(o, "status", ospab_json_str_or_null(v[OSPAB_VPS_STATUS]));
    json_object_set_new(o, "stats", stats);
    ok_body(p, res, 200, o);
}

/* ---- root password ---------------------------------------------------------------------- */

void ospab_server_password(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                           const ospab_principal_t *who, const ospab_actor_t *a,
                           const char *id, ospab_result_t *res)
{
    const char *task_id, *password = ospab_server_new_password(p), *err = NULL;
    ospab_row_t v;
    json_t *o;

    memset(res, 0, sizeof(*res));
    if (load_owned(db, p, who, id, &v, res) || on_proxmox(p, c, v, res)) {
        return;
    }
    if (!strcmp(kind_of(v), "lxc") && !c->ssh) {
        ospab_result_error(p, res, 503, "password reset is not configured "
                           "(OspabProxmoxSSHKey)", NULL);
        return;
    }
    follow_up(db, p, c, a, v);
    if (load_owned(db, p, who, id, &v, res) || begin_op(db, p, a, who, v, "password", &task_id, res)) {
        return;
    }
    if (!strcmp(kind_of(v), "lxc")) {
        /* no API for it: `pct exec <vmid> -- chpasswd` on the node, the password on stdin */
        if (ospab_ssh_set_root_password(p, c->ssh, atol(v[OSPAB_VPS_VMID]), password, &err)
            != APR_SUCCESS) {
            finish_task(db, p, a, task_id, 0, NULL, err);
            res->log = apr_psprintf(p, "password reset over SSH failed: %s", err);
            ospab_result_error(p, res, 502, "the password could not be set on the node", NULL);
            return;
        }
    }
    else {
        ospab_pve_param_t params[] = { { "username", "root" }, { "password", password },
                                       { NULL, NULL } };
        ospab_pve_result_t pr;

        if (pve_call(c, p, a, "POST", guest_path(p, v, "agent", "set-user-password",
                                                        NULL), params, &pr) != APR_SUCCESS) {
            finish_task(db, p, a, task_id, 0, NULL, pr.message);
            pve_failed(p, &pr, "set-user-password", res);
            return;
        }
    }
    finish_task(db, p, a, task_id, 1, "OK", NULL);
    {
        /* a notice that it changed, without the password */
        json_t *vars = json_pack("{s:I, s:s?}", "serverId", (json_int_t)apr_atoi64(id),
                                 "serverName", v[OSPAB_VPS_NAME]);

        if (v[OSPAB_VPS_USER_ID]) {
            ospab_mail_queue_user(db, p, a->now, v[OSPAB_VPS_USER_ID], "root-password", vars,
                                  apr_pstrcat(p, "root-password:", task_id, NULL), &err);
        }
        json_decref(vars);
    }
    o = json_object();
    json_object_set_new(o, "status", json_string("success"));
    json_object_set_new(o, "password", json_string(password));
    ok_body(p, res, 200, o);
}

/* ---- resize ----------------------------------------------------------------------------- */

/* The sizes a customer asks for, checked against what the provider allows (OspabResize).
 * val[3] (cores, memory, disk; NULL: unchanged) may be filled in from a tariff the server
 * moves to (*tariff then names it). 0: go on; 1: res is set. */
static int resize_allowed(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                          const ospab_principal_t *who, ospab_row_t v, const char **val,
                          const char *tariff_id, ospab_row_t *tariff, ospab_result_t *res)
{
    static const char *const names[3] = { "cores", "memory", "disk" };
    static const char *const units[3] = { "", " MB", " GB" };
    json_t *errors;
    ospab_row_t t = NULL;
    int i;

    *tariff = NULL;
    if (!who->admin && c->resize == OSPAB_RESIZE_OFF) {
        ospab_result_error(p, res, 403, "resizing is not available to customers: ask your "
                           "provider", NULL);
        return 1;
    }
    if (tariff_id) {
        /* a move to another tariff: its sizes, the disk only growing */
        if (ospab_db_select_one(db, p, "ospab_tariff_get", 1, &tariff_id, &t) != APR_SUCCESS) {
            ospab_result_db_failed(db, p, res);
            return 1;
        }
        errors = json_object();
        if (!t) {
            json_object_set_new(errors, "tariffId", json_string(apr_psprintf(p,
                                "tariff %s does not exist or is not available", tariff_id)));
        }
        else if (apr_atoi64(t[5]) < apr_atoi64(v[OSPAB_VPS_DISK])) {
            json_object_set_new(errors, "tariffId", json_string(apr_psprintf(p,
                                "its disk (%s GB) is smaller than the server's (%s GB): disks "
                                "only grow", t[5], v[OSPAB_VPS_DISK])));
        }
        if (json_object_size(errors)) {
            ospab_result_error(p, res, 422, ospab_fields_summary(p, "resize", errors), errors);
            return 1;
        }
        json_decref(errors);
        val[0] = t[3];
        val[1] = t[4];
        val[2] = t[5];
        *tariff = t;
        return 0;
    }
    if (who->admin || c->resize == OSPAB_RESIZE_FREE) {
        return 0;
    }
    /* within the server's own tariff */
    if (!v[OSPAB_VPS_TARIFF_ID]) {
        ospab_result_error(p, res, 403, "this server has no tariff to resize within: choose "
                           "one (tariffId) or ask your provider", NULL);
        return 1;
    }
    if (ospab_db_select_one(db, p, "ospab_tariff_get_any", 1, &v[OSPAB_VPS_TARIFF_ID], &t)
        != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    if (!t) {
        ospab_result_error(p, res, 403, "this server's tariff is gone: ask your provider",
                           NULL);
        return 1;
    }
    errors = json_object();
    for (i = 0; i < 3; ++i) {
        if (val[i] && apr_atoi64(val[i]) > apr_atoi64(t[3 + i])) {
            json_object_set_new(errors, names[i], json_string(apr_psprintf(p,
                                "at most %s%s on tariff '%s': choose a larger tariff "
                                "(tariffId)", t[3 + i], units[i], t[1])));
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
                                  ospab_row_t v, const char **args, ospab_row_t tariff)
{
    const char *id = v[OSPAB_VPS_ID];
    apr_status_t rv = ospab_db_begin(db, p);

    if (rv == APR_SUCCESS) {
        rv = ospab_db_exec(db, p, "ospab_vps_set_resources", 5, args, NULL);
    }
    if (rv == APR_SUCCESS && tariff) {
        const char *targs[3] = { tariff[0], args[3], id };
        json_t *data = json_pack("{s:I, s:I, s:I, s:o, s:I, s:I, s:I}",
                                 "serverId", (json_int_t)apr_atoi64(id),
                                 "userId", (json_int_t)apr_atoi64(v[OSPAB_VPS_USER_ID]),
                                 "tariffId", (json_int_t)apr_atoi64(tariff[0]),
                                 "previousTariffId", ospab_json_int_or_null(
                                                         v[OSPAB_VPS_TARIFF_ID]),
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
                        const char **val, ospab_row_t *vp, const char **upid,
                        ospab_result_t *res);

void ospab_server_resize(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                         const ospab_principal_t *who, const ospab_actor_t *a, const char *id,
                         json_t *body, ospab_result_t *res)
{
    static const struct { const char *name; long long min, max; int col; } f[] = {
        { "cores", 1, 1024, OSPAB_VPS_CPU },
        { "memory", 128, 4194304, OSPAB_VPS_RAM },
        { "disk", 1, 1048576, OSPAB_VPS_DISK },
    };
    json_t *errors = json_object(), *data;
    const char *val[3] = { NULL, NULL, NULL };
    const char *key, *upid = NULL, *tariff_id = NULL;
    const char *args[5];
    ospab_row_t v, tariff;
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
            if (!positive_int(x, &n64)) {
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
    if (load_owned(db, p, who, id, &v, res) || on_proxmox(p, c, v, res)
        || resize_allowed(db, p, c, who, v, val, tariff_id, &tariff, res)) {
        return;
    }
    if (val[2] && apr_atoi64(val[2]) < apr_atoi64(v[OSPAB_VPS_DISK])) {
        ospab_result_error(p, res, 400, apr_psprintf(p, "disk can only grow (it has %s GB)",
                                                     v[OSPAB_VPS_DISK]), NULL);
        return;
    }
    if (resize_guest(db, p, c, who, a, id, val, &v, &upid, res)) {
        return;
    }
    args[0] = val[0] ? val[0] : v[OSPAB_VPS_CPU];
    args[1] = val[1] ? val[1] : v[OSPAB_VPS_RAM];
    args[2] = val[2] ? val[2] : v[OSPAB_VPS_DISK];
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
        json_object_set_new(data, "tariffId", ospab_json_int_or_null(tariff[0]));
    }
    json_object_set_new(data, "taskId", ospab_json_str_or_null(upid));
    x = success(NULL, NULL);
    json_object_set_new(x, "data", data);
    ok_body(p, res, 200, x);
}

/* The guest gets the sizes (val: cores, memory, disk; NULL unchanged): one operation, a
 * synchronous config change and, for a bigger disk, a resize task (*upid). *v is the
 * record as it is now. 0: done or started; 1: res is set. */
static int resize_guest(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                        const ospab_principal_t *who, const ospab_actor_t *a, const char *id,
                        const char **val, ospab_row_t *vp, const char **upid,
                        ospab_result_t *res)
{
    ospab_pve_param_t conf_params[3];
    ospab_pve_result_t pr;
    const char *task_id;
    ospab_row_t v = *vp;
    int n = 0;

    *upid = NULL;
    follow_up(db, p, c, a, v);
    if (load_owned(db, p, who, id, vp, res) || begin_op(db, p, a, who, *vp, "resize", &task_id,
                                                        res)) {
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
    if (n && pve_call(c, p, a, "PUT", guest_path(p, v, "config", NULL, NULL),
                            conf_params, &pr) != APR_SUCCESS) {
        finish_task(db, p, a, task_id, 0, NULL, pr.message);
        pve_failed(p, &pr, "config", res);
        return 1;
    }
    if (val[2] && strcmp(val[2], v[OSPAB_VPS_DISK])) {
        ospab_pve_param_t rp[] = { { "disk", !strcmp(kind_of(v), "lxc") ? "rootfs" : "scsi0" },
                                   { "size", apr_pstrcat(p, val[2], "G", NULL) },
                                   { NULL, NULL } };

        return started(db, p, a, task_id,
                       pve_call(c, p, a, "PUT", guest_path(p, v, "resize", NULL, NULL),
                                rp, &pr), &pr, "resize", upid, res);
    }
    finish_task(db, p, a, task_id, 1, "OK", NULL);
    return 0;
}

/* The billing site's principal for a server: it may do what an admin may. */
static void billing(const ospab_row_t v, ospab_principal_t *who)
{
    who->user_id = v[OSPAB_VPS_USER_ID];
    who->admin = 1;
    who->session = NULL;
}

int ospab_server_sync_resize(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                             const ospab_actor_t *a, ospab_row_t v, const char **val,
                             const char **upid, ospab_result_t *res)
{
    ospab_principal_t who;
    ospab_row_t cur = v;

    memset(res, 0, sizeof(*res));
    *upid = NULL;
    billing(v, &who);
    if (on_proxmox(p, c, v, res)) {
        return 1;
    }
    if (val[2] && apr_atoi64(val[2]) < apr_atoi64(v[OSPAB_VPS_DISK])) {
        json_t *f = json_object();

        json_object_set_new(f, "disk", json_string(apr_psprintf(p, "can only grow: the "
                            "server's disk has %s GB on Proxmox", v[OSPAB_VPS_DISK])));
        ospab_result_error(p, res, 422, apr_psprintf(p, "invalid vps: disk: can only grow "
                           "(it has %s GB)", v[OSPAB_VPS_DISK]), f);
        return 1;
    }
    return resize_guest(db, p, c, &who, a, v[OSPAB_VPS_ID], val, &cur, upid, res);
}

int ospab_server_panel_made(ospab_db_t *db, apr_pool_t *p, const char *id, int *made)
{
    ospab_row_t r = NULL;

    if (ospab_db_select_one(db, p, "ospab_vps_panel_made", 1, &id, &r) != APR_SUCCESS) {
        return 1;
    }
    *made = r && r[0] && strcmp(r[0], "0");
    return 0;
}

int ospab_server_sync_destroy(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                              const ospab_actor_t *a, ospab_row_t v, const char **upid,
                              ospab_result_t *res)
{
    ospab_principal_t who;

    billing(v, &who);
    ospab_server_delete(db, p, c, &who, a, v[OSPAB_VPS_ID], res);
    if (res->status != 200) {
        return 1;
    }
    *upid = json_string_value(json_object_get(res->body, "taskId"));
    return 0;
}

/* ---- snapshots ---------------------------------------------------------------------------- */

int ospab_server_snapname_ok(const char *s)
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
    ospab_actor_t act = { "user", who->user_id, NULL, apr_time_now() };
    const ospab_actor_t *a = &act;
    ospab_pve_result_t pr;
    ospab_row_t v;
    json_t *list, *o;
    size_t i;

    memset(res, 0, sizeof(*res));
    if (load_owned(db, p, who, id, &v, res) || on_proxmox(p, c, v, res)) {
        return;
    }
    if (pve_call(c, p, a, "GET", guest_path(p, v, "snapshot", NULL, NULL), NULL, &pr)
        != APR_SUCCESS) {
        pve_failed(p, &pr, "snapshots", res);
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
        json_object_set(e, "description", json_is_string(json_object_get(s, "description"))
                                          ? json_object_get(s, "description")
                                          : json_string(""));
        json_object_set_new(e, "snaptime", ospab_pve_int(json_object_get(s, "snaptime"), &t)
                                           ? json_integer((json_int_t)t) : json_null());
        json_array_append_new(list, e);
    }
    o = success(NULL, NULL);
    json_object_set_new(o, "data", list);
    ok_body(p, res, 200, o);
}

void ospab_server_snapshot_op(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                              const ospab_principal_t *who, const ospab_actor_t *a,
                              const char *id, const char *op, json_t *body,
                              ospab_result_t *res)
{
    const char *name = json_string_value(json_object_get(body, "snapname"));
    json_t *desc = json_object_get(body, "description");
    const char *task_id, *upid, *method, *path, *action;
    ospab_pve_param_t params[3] = { { NULL, NULL }, { NULL, NULL }, { NULL, NULL } };
    ospab_pve_result_t pr;
    ospab_row_t v;
    json_t *o;

    memset(res, 0, sizeof(*res));
    if (!json_is_object(body) || !name || !ospab_server_snapname_ok(name)) {
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
    action = !strcmp(op, "create") ? "snapshot" : !strcmp(op, "delete") ? "delsnapshot"
                                                                        : "rollback";
    if (prepare(db, p, c, who, a, id, action, &v, &task_id, res)) {
        return;
    }
    if (!strcmp(op, "create")) {
        method = "POST";
        path = guest_path(p, v, "snapshot", NULL, NULL);
        params[0] = (ospab_pve_param_t){ "snapname", name };
        if (desc) {
            params[1] = (ospab_pve_param_t){ "description", json_string_value(desc) };
        }
    }
    else if (!strcmp(op, "delete")) {
        method = "DELETE";
        path = guest_path(p, v, "snapshot", name, NULL);
    }
    else {
        method = "POST";
        path = guest_path(p, v, "snapshot", name, "rollback");
    }
    if (started(db, p, a, task_id, pve_call(c, p, a, method, path, params, &pr), &pr,
                action, &upid, res)) {
        return;
    }
    o = success(NULL, upid);
    if (!strcmp(op, "create")) {
        json_object_set_new(o, "snapname", json_string(name));
    }
    ok_body(p, res, 200, o);
}

/* ---- console ------------------------------------------------------------------------------ */

void ospab_server_console(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                          const ospab_principal_t *who, json_t *body, ospab_result_t *res)
{
    static const ospab_pve_param_t params[] = { { "websocket", "1" }, { NULL, NULL } };
    ospab_actor_t act = { "user", who->user_id, NULL, apr_time_now() };
    const ospab_actor_t *a = &act;
    apr_int64_t n;
    ospab_pve_result_t pr;
    ospab_row_t v = NULL;
    const char *key, *port, *ticket;
    const char *esc;
    json_t *o;
    apr_array_header_t *rows;

    memset(res, 0, sizeof(*res));
    if (json_is_object(body) && ospab_pve_int(json_object_get(body, "serverId"), &n)) {
        key = apr_psprintf(p, "%" APR_INT64_T_FMT, n);
        if (load_owned(db, p, who, key, &v, res)) {
            return;
        }
    }
    else if (json_is_object(body) && ospab_pve_int(json_object_get(body, "vmid"), &n)) {
        const char *args[2];
        int i;

        args[0] = apr_psprintf(p, "%" APR_INT64_T_FMT, n);
        args[1] = who->user_id;
        if (ospab_db_select(db, p, who->admin ? "ospab_vps_by_vmid_any" : "ospab_vps_by_vmid",
                            who->admin ? 1 : 2, args, &rows, NULL) != APR_SUCCESS) {
            ospab_result_db_failed(db, p, res);
            return;
        }
        for (i = 0; i < rows->nelts && !v; ++i) {
            v = APR_ARRAY_IDX(rows, i, ospab_row_t);
        }
        if (!v) {
            ospab_result_error(p, res, 404, "server not found", NULL);
            return;
        }
    }
    else {
        json_t *f = json_object();

        json_object_set_new(f, "vmid", json_string("give vmid or serverId"));
        ospab_result_error(p, res, 400, "vmid or serverId is required", f);
        return;
    }
    if (on_proxmox(p, c, v, res)) {
        return;
    }
    if (pve_call(c, p, a, "POST", guest_path(p, v, "vncproxy", NULL, NULL), params,
                       &pr) != APR_SUCCESS) {
        pve_failed(p, &pr, "vncproxy", res);
        return;
    }
    ticket = json_string_value(json_object_get(pr.data, "ticket"));
    port = ospab_pve_int(json_object_get(pr.data, "port"), &n)
           ? apr_psprintf(p, "%" APR_INT64_T_FMT, n) : NULL;
    if (!ticket || !port) {
        res->log = "Proxmox vncproxy: no ticket or port";
        ospab_result_error(p, res, 502, "Proxmox gave an answer the panel cannot read", NULL);
        return;
    }
    /* the ticket is a credential: it goes to the caller only, never into a log */
    esc = apr_pescape_urlencoded(p, ticket);
    o = success(NULL, NULL);
    json_object_set_new(o, "url", json_string(apr_psprintf(p, "%s/?console=%s&novnc=1&vmid=%s"
                        "&node=%s&port=%s&ticket=%s", c->url, kind_of(v), v[OSPAB_VPS_VMID],
                        v[OSPAB_VPS_NODE], port, esc)));
    ok_body(p, res, 200, o);
}

/* ---- tasks --------------------------------------------------------------------------------- */

void ospab_server_tasks(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                        const ospab_principal_t *who, const char *id, ospab_result_t *res)
{
    ospab_actor_t act = { "user", who->user_id, NULL, apr_time_now() };
    const ospab_actor_t *a = &act;
    apr_array_header_t *rows;
    ospab_row_t v;
    ospab_jw_t w;
    int i;

    memset(res, 0, sizeof(*res));
    if (load_owned(db, p, who, id, &v, res)) {
        return;
    }
    if (c->pve && !on_proxmox(p, c, v, res)) {
        follow_up(db, p, c, a, v);
    }
    memset(res, 0, sizeof(*res));
    if (ospab_db_select(db, p, "ospab_task_list", 1, &id, &rows, NULL) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    ospab_jw_init(&w, p, 256 * (apr_size_t)rows->nelts + 16);
    ospab_jw_arr(&w);
    for (i = 0; i < rows->nelts; ++i) {
        ospab_row_t t = APR_ARRAY_IDX(rows, i, ospab_row_t);

        ospab_jw_obj(&w);
        ospab_jw_key(&w, "id");
        ospab_jw_int_text(&w, t[0]);
        ospab_jw_key(&w, "action");
        /* "restart:start" is the second half of a restart: to the customer, a restart */
        ospab_jw_str(&w, strchr(t[1], ':') ? apr_pstrndup(p, t[1], (apr_size_t)(strchr(t[1], ':')
                                                                               - t[1]))
                                            : t[1]);
        ospab_jw_key(&w, "status");
        ospab_jw_str(&w, t[2]);
        ospab_jw_key(&w, "upid");
        ospab_jw_str(&w, t[3]);
        /* a failure in the customer's words; admins see Proxmox's own */
        ospab_jw_key(&w, "exitstatus");
        ospab_jw_str(&w, who->admin || !t[4] || !strcmp(t[4], "OK") ? t[4]
                                                                   : ospab_pve_error_text(p, t[4]));
        ospab_jw_key(&w, "error");
        ospab_jw_str(&w, who->admin ? t[5] : ospab_pve_error_text(p, t[5]));
        ospab_jw_key(&w, "createdAt");
        ospab_jw_str(&w, ospab_time_api(p, t[6]));
        ospab_jw_key(&w, "updatedAt");
        ospab_jw_str(&w, ospab_time_api(p, t[7]));
        ospab_jw_key(&w, "finishedAt");
        ospab_jw_str(&w, ospab_time_api(p, t[8]));
        ospab_jw_obj_end(&w);
    }
    ospab_jw_arr_end(&w);
    res->status = 200;
    res->text = ospab_jw_finish(&w, NULL);
}
