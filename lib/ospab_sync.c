/* ospab core: sync API operations.
 *
 * Every change runs in one transaction whose first statement is a write (the
 * Idempotency-Key row, the INSERT, or a no-op UPDATE that locks the row), so that
 * SQLite takes its write lock before reading and MySQL locks the row it will change.
 * Checks that only read (does user 5 exist?) run before the transaction; the
 * database's constraints catch what changes in between, and such a failure is
 * diagnosed again after the rollback. */
#include <string.h>
#include <stdlib.h>

#include <apr_strings.h>

#include "ospab_sync.h"
#include "ospab_json.h"
#include "ospab_util.h"
#include "ospab_fields.h"
#include "ospab_resource.h"
#include "ospab_events.h"
#include "ospab_server.h"

static const char *const actions[] = { "create", "update", "delete", NULL };

static void result_ok(apr_pool_t *p, ospab_result_t *res, int status, const char *message,
                      const char *key, json_t *record)
{
    json_t *o = json_object();

    json_object_set_new(o, "status", json_string("success"));
    json_object_set_new(o, "message", json_string(message));
    json_object_set_new(o, key, record);
    res->status = status;
    res->body = ospab_json_own(p, o);
}

/* The fields a request set, as a JSON object for the audit log. */
static json_t *changes(const ospab_field_t *spec, int n, const ospab_field_value_t *in,
                       int skip)
{
    json_t *o = json_object();
    int i;

    for (i = 0; i < n; ++i) {
        if (in[i].present && i != skip) {
            json_object_set_new(o, spec[i].name, ospab_json_str_or_null(in[i].value));
        }
    }
    return o;
}

/* What an update changed, for the audit log: {"field": {"from": old, "to": new}} for each
 * field the request set to another value. old: the row before, whose columns are the
 * fields in order up to last_col. secret: a field whose value never goes in, recorded as
 * "changed" when given (-1: none). */
static json_t *update_changes(const ospab_field_t *spec, int last_col,
                              const ospab_field_value_t *in, ospab_row_t old, int skip,
                              int secret)
{
    json_t *o = json_object();
    int i;

    for (i = 0; i <= last_col; ++i) {
        const char *was = old[i];

        if (!in[i].present || i == skip
            || (!was && !in[i].value) || (was && in[i].value && !strcmp(was, in[i].value))) {
            continue;
        }
        json_object_set_new(o, spec[i].name, json_pack("{s:o, s:o}",
                            "from", ospab_json_str_or_null(was),
                            "to", ospab_json_str_or_null(in[i].value)));
    }
    if (secret >= 0 && in[secret].present) {
        json_object_set_new(o, spec[secret].name, json_string("changed"));
    }
    return o;
}

/* {"action": ..., "<what>": {...}} with nothing else. 0: ok; 1: res holds a 400. */
static int read_envelope(apr_pool_t *p, json_t *req, const char *what, const char **action,
                         json_t **obj, ospab_result_t *res)
{
    json_t *errors = json_object();
    json_t *v;
    const char *key;
    const char *const *a;

    if (!json_is_object(req)) {
        json_decref(errors);
        ospab_result_error(p, res, 400, "request body must be a JSON object", NULL);
        return 1;
    }
    json_object_foreach(req, key, v) {
        if (strcmp(key, "action") && strcmp(key, what)) {
            json_object_set_new(errors, ospab_text_ok(key, 1, 64) ? key : "(unprintable)",
                                json_string("unknown field"));
        }
    }
    v = json_object_get(req, "action");
    *action = json_is_string(v) ? json_string_value(v) : "";
    for (a = actions; *a && strcmp(*a, *action); ++a) {
    }
    if (!v) {
        json_object_set_new(errors, "action", json_string("is required"));
    }
    else if (!*a) {
        json_object_set_new(errors, "action", json_string("must be one of create, update, delete"));
    }
    *obj = json_object_get(req, what);
    if (!*obj) {
        json_object_set_new(errors, what, json_string("is required"));
    }
    else if (!json_is_object(*obj)) {
        json_object_set_new(errors, what, json_string("must be an object"));
    }
    if (json_object_size(errors) > 0) {
        ospab_result_error(p, res, 400, ospab_fields_summary(p, "request", errors), errors);
        return 1;
    }
    json_decref(errors);
    return 0;
}

/* ---- vps ------------------------------------------------------------------------------ */

/* user/tariff/os references: 0 all exist; 1 res holds a 422; -1 database failure */
static int vps_check_refs(ospab_db_t *db, apr_pool_t *p, const ospab_field_value_t *in,
                          ospab_result_t *res)
{
    static const struct { int idx; const char *label; const char *what; } refs[] = {
        { OSPAB_VPS_USER_ID, "ospab_user_exists", "user" },
        { OSPAB_VPS_TARIFF_ID, "ospab_tariff_exists", "tariff" },
        { OSPAB_VPS_OS_ID, "ospab_os_exists", "OS template" },
    };
    json_t *errors = json_object();
    unsigned i;

    for (i = 0; i < sizeof(refs) / sizeof(refs[0]); ++i) {
        const char *args[1];
        ospab_row_t row;

        if (!in[refs[i].idx].present || !in[refs[i].idx].value) {
            continue;
        }
        args[0] = in[refs[i].idx].value;
        if (ospab_db_select_one(db, p, refs[i].label, 1, args, &row) != APR_SUCCESS) {
            json_decref(errors);
            return -1;
        }
        if (!row) {
            json_object_set_new(errors, ospab_vps_fields[refs[i].idx].name,
                                json_string(apr_psprintf(p, "%s %s does not exist",
                                                         refs[i].what, args[0])));
        }
    }
    if (json_object_size(errors) > 0) {
        ospab_result_error(p, res, 422, ospab_fields_summary(p, "vps", errors), errors);
        return 1;
    }
    json_decref(errors);
    return 0;
}

/* Reference checks inside the open transaction, after its first write: SQLite has
 * serialised writers by then, so nothing can delete the user in between (its foreign keys
 * are not enforced: mod_dbd runs DBDInitSQL after preparing statements, and
 * "PRAGMA foreign_keys" would expire them). MySQL's InnoDB checks them itself as well.
 * 0: all there; 1: rolled back and res is set. */
static int refs_missing(ospab_db_t *db, apr_pool_t *p, const ospab_field_value_t *in,
                        ospab_result_t *res)
{
    int rc = vps_check_refs(db, p, in, res);

    if (rc < 0) {
        ospab_result_db_failed(db, p, res);
    }
    else if (rc > 0) {
        ospab_db_end(db, 0);
    }
    return rc != 0;
}

/* After a constraint failure (transaction already rolled back): says which one. */
static void vps_conflict(ospab_db_t *db, apr_pool_t *p, const ospab_field_value_t *in,
                         const char *self_id, ospab_result_t *res)
{
    const char *args[2];
    ospab_row_t row;
    int rc;

    if (in[OSPAB_VPS_EXTERNAL_ID].present && in[OSPAB_VPS_EXTERNAL_ID].value) {
        args[0] = in[OSPAB_VPS_EXTERNAL_ID].value;
        if (ospab_db_select_one(db, p, "ospab_vps_get_ext", 1, args, &row) != APR_SUCCESS) {
            ospab_result_db_failed(db, p, res);
            return;
        }
        if (row && (!self_id || strcmp(row[0], self_id))) {
            ospab_result_error(p, res, 409, apr_psprintf(p, "external_id %s already belongs "
                               "to VPS %s", args[0], row[0]), NULL);
            return;
        }
    }
    if (in[OSPAB_VPS_NODE].value || in[OSPAB_VPS_VMID].value) {
        args[0] = in[OSPAB_VPS_NODE].value;
        args[1] = in[OSPAB_VPS_VMID].value;
        if (args[0] && args[1]
            && ospab_db_select_one(db, p, "ospab_vps_get_node_vmid", 2, args, &row)
               == APR_SUCCESS && row && (!self_id || strcmp(row[0], self_id))) {
            ospab_result_error(p, res, 409, apr_psprintf(p, "vmid %s on node %s is already "
                               "used by VPS %s", args[1], args[0], row[0]), NULL);
            return;
        }
    }
    rc = vps_check_refs(db, p, in, res);
    if (rc < 0) {
        ospab_result_db_failed(db, p, res);
    }
    else if (rc == 0) {
        ospab_result_error(p, res, 409, "the change conflicts with another record", NULL);
    }
}

static void vps_create(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                       ospab_field_value_t *in, const ospab_idem_t *idem, ospab_result_t *res)
{
    const char *args[OSPAB_VPS_NFIELDS - 1];
    const char *id = NULL;
    ospab_row_t row;
    int attempt, i;

    for (attempt = 0; attempt < 3; ++attempt) {
        /* the billing site's own id already known: answer with that record, create nothing */
        if (in[OSPAB_VPS_EXTERNAL_ID].value) {
            args[0] = in[OSPAB_VPS_EXTERNAL_ID].value;
            if (ospab_db_select_one(db, p, "ospab_vps_get_ext", 1, args, &row) != APR_SUCCESS) {
                ospab_result_db_failed(db, p, res);
                return;
            }
            if (row) {
                result_ok(p, res, 200, "VPS synced successfully", "vps", ospab_vps_json(p, row));
                if (idem && !ospab_idem_begin(db, p, a, idem, res)) {
                    ospab_idem_commit(db, p, idem, res);
                }
                return;
            }
        }
        if (ospab_idem_begin(db, p, a, idem, res)) {
            return;
        }
        for (i = 1; i < OSPAB_VPS_CREATED_AT; ++i) {
            args[i - 1] = in[i].present ? in[i].value : NULL;
        }
        args[OSPAB_VPS_CREATED_AT - 1] = args[OSPAB_VPS_UPDATED_AT - 1] = ospab_time_db(p, a->now);
        if (ospab_db_exec(db, p, "ospab_vps_insert", OSPAB_VPS_NFIELDS - 1, args, NULL)
            != APR_SUCCESS) {
            if (!ospab_db_is_constraint(db)) {
                ospab_result_db_failed(db, p, res);
                return;
            }
            ospab_db_end(db, 0);
            if (in[OSPAB_VPS_EXTERNAL_ID].value) {
                continue; /* most likely a concurrent create of the same external_id */
            }
            vps_conflict(db, p, in, NULL, res);
            return;
        }
        if (ospab_db_last_id(db, p, &id) != APR_SUCCESS) {
            ospab_result_db_failed(db, p, res);
            return;
        }
        if (refs_missing(db, p, in, res)) {
            return;
        }
        if (ospab_db_select_one(db, p, "ospab_vps_get", 1, &id, &row) != APR_SUCCESS
            || !row
            || ospab_audit(db, p, a, "vps.create", "vps", id,
                     changes(ospab_vps_fields, OSPAB_VPS_NFIELDS, in, -1)) != APR_SUCCESS) {
            ospab_result_db_failed(db, p, res);
            return;
        }
        result_ok(p, res, 201, "VPS synced successfully", "vps", ospab_vps_json(p, row));
        ospab_idem_commit(db, p, idem, res);
        return;
    }
    vps_conflict(db, p, in, NULL, res);
}

/* id for update/delete: by "id", else by "external_id". 0: found; 1: res is set. */
static int vps_identify(ospab_db_t *db, apr_pool_t *p, ospab_field_value_t *in,
                        const char **id, ospab_result_t *res)
{
    ospab_row_t row;

    if (in[OSPAB_VPS_ID].present) {
        *id = in[OSPAB_VPS_ID].value;
        return 0;
    }
    if (!in[OSPAB_VPS_EXTERNAL_ID].present || !in[OSPAB_VPS_EXTERNAL_ID].value) {
        json_t *f = json_object();

        json_object_set_new(f, "id", json_string("id or external_id is required"));
        ospab_result_error(p, res, 400, "invalid vps: id: id or external_id is required", f);
        return 1;
    }
    if (ospab_db_select_one(db, p, "ospab_vps_get_ext", 1, &in[OSPAB_VPS_EXTERNAL_ID].value,
                            &row) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    if (!row) {
        ospab_result_error(p, res, 404, "VPS not found", NULL);
        return 1;
    }
    *id = row[0];
    in[OSPAB_VPS_EXTERNAL_ID].present = 0; /* it named the record; it is not a change */
    return 0;
}

/* Locks and reads the record inside the open transaction. 0: *row set; 1: res is set. */
static int lock_and_get(ospab_db_t *db, apr_pool_t *p, const char *lock, const char *get,
                        const char *id, const char *what, ospab_row_t *row,
                        ospab_result_t *res)
{
    if (ospab_db_exec(db, p, lock, 1, &id, NULL) != APR_SUCCESS
        || ospab_db_select_one(db, p, get, 1, &id, row) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    if (!*row) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 404, apr_psprintf(p, "%s not found", what), NULL);
        return 1;
    }
    return 0;
}

/* server.owner: the billing site gave the server to another customer. Webhooks tell the
 * billing site; the agents drop the old owner's live view of it. */
static apr_status_t owner_changed(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                                  const char *id, const char *from, const char *to)
{
    json_t *data = json_pack("{s:I, s:I, s:I}", "serverId", (json_int_t)apr_atoi64(id),
                             "userId", (json_int_t)apr_atoi64(to),
                             "previousUserId", (json_int_t)apr_atoi64(from));
    apr_status_t rv = data ? ospab_event_add(db, p, a->now, OSPAB_EVENT_OWNER, data)
                           : APR_ENOMEM;

    json_decref(data);
    return rv;
}

/* The record as it is, when its guest is one the panel can reach: a Proxmox record with a
 * node and a vmid, and Proxmox configured (guests). NULL otherwise (or when the database
 * failed: the change itself will say so). */
static ospab_row_t bound_guest(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *guests,
                               const char *id)
{
    ospab_row_t v = NULL;

    if (!guests || !guests->pve
        || ospab_db_select_one(db, p, "ospab_vps_get", 1, &id, &v) != APR_SUCCESS || !v
        || strcmp(v[OSPAB_VPS_HYPERVISOR], "proxmox") || !v[OSPAB_VPS_NODE]
        || !v[OSPAB_VPS_VMID]) {
        return NULL;
    }
    return v;
}

/* The billing site changed the sizes of a server whose guest the panel can reach: the
 * guest gets them first (a resize operation, the disk only growing); a refusal there is
 * the answer and the record stays as it was. 0: go on (*guest says what happened, or is
 * NULL); 1: res is set. */
static int sizes_to_guest(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *guests,
                          const ospab_actor_t *a, const ospab_field_value_t *in,
                          const char *id, json_t **guest, ospab_result_t *res)
{
    static const int cols[3] = { OSPAB_VPS_CPU, OSPAB_VPS_RAM, OSPAB_VPS_DISK };
    const char *val[3] = { NULL, NULL, NULL }, *upid;
    ospab_row_t v;
    int i, any = 0;

    *guest = NULL;
    for (i = 0; i < 3; ++i) {
        any |= in[cols[i]].present;
    }
    if (!any || !(v = bound_guest(db, p, guests, id))) {
        return 0;
    }
    any = 0;
    for (i = 0; i < 3; ++i) {
        if (in[cols[i]].present && strcmp(in[cols[i]].value, v[cols[i]])) {
            val[i] = in[cols[i]].value;
            any = 1;
        }
    }
    if (!any) {
        return 0;
    }
    if (ospab_server_sync_resize(db, p, guests, a, v, val, &upid, res)) {
        return 1;
    }
    *guest = json_pack("{s:s, s:o}", "action", "resize", "taskId", ospab_json_str_or_null(upid));
    return 0;
}

static void vps_update(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                       ospab_field_value_t *in, const ospab_server_conf_t *guests,
                       const ospab_idem_t *idem, ospab_result_t *res)
{
    const char *args[OSPAB_VPS_NFIELDS - 1];
    const char *id, *old_owner;
    ospab_row_t row, old;
    json_t *guest;
    int i;

    if (vps_identify(db, p, in, &id, res)
        || sizes_to_guest(db, p, guests, a, in, id, &guest, res)) {
        return;
    }
    ospab_json_own(p, guest);
    if (ospab_idem_begin(db, p, a, idem, res)
        || lock_and_get(db, p, "ospab_vps_lock", "ospab_vps_get", id, "VPS", &row, res)
        || refs_missing(db, p, in, res)) {
        return;
    }
    old = row;
    old_owner = row[OSPAB_VPS_USER_ID];
    for (i = 1; i < OSPAB_VPS_CREATED_AT; ++i) {
        args[i - 1] = in[i].present ? in[i].value : row[i];
    }
    args[OSPAB_VPS_CREATED_AT - 1] = ospab_time_db(p, a->now);
    args[OSPAB_VPS_CREATED_AT] = id;
    if (ospab_db_exec(db, p, "ospab_vps_update", OSPAB_VPS_NFIELDS - 1, args, NULL)
        != APR_SUCCESS) {
        if (!ospab_db_is_constraint(db)) {
            ospab_result_db_failed(db, p, res);
            return;
        }
        ospab_db_end(db, 0);
        /* the merged values decide node+vmid conflicts */
        for (i = 1; i < OSPAB_VPS_CREATED_AT; ++i) {
            if (!in[i].present && (i == OSPAB_VPS_NODE || i == OSPAB_VPS_VMID)) {
                in[i].value = row[i];
            }
        }
        vps_conflict(db, p, in, id, res);
        return;
    }
    /* bound now (node and vmid): the agent's note of why it could not link it is over */
    if (ospab_db_exec(db, p, "ospab_vps_clear_note", 1, &id, NULL) != APR_SUCCESS
        || ospab_db_select_one(db, p, "ospab_vps_get", 1, &id, &row) != APR_SUCCESS || !row
        || (strcmp(old_owner, row[OSPAB_VPS_USER_ID])
            && owner_changed(db, p, a, id, old_owner, row[OSPAB_VPS_USER_ID]) != APR_SUCCESS)
        || ospab_audit(db, p, a, "vps.update", "vps", id,
                       update_changes(ospab_vps_fields, OSPAB_VPS_UPDATED_AT, in, old,
                                      OSPAB_VPS_ID, -1)) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    result_ok(p, res, 200, "VPS synced successfully", "vps", ospab_vps_json(p, row));
    if (guest) {
        json_object_set(res->body, "guest", guest);
    }
    ospab_idem_commit(db, p, idem, res);
}

/* What a delete does to the guest of a server the panel can reach. The panel's own guest
 * (it created it) goes too, unless keep_guest: the destroy task runs and the record goes
 * when it has finished (answered now, status "deleting"). A guest the panel did not create
 * (the billing site made it, or it was adopted) stays, and the answer says so. 0: delete
 * the record now (*guest may say why the guest stays); 1: res is set (destroying started,
 * or refused). */
static int delete_guest(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *guests,
                        const ospab_actor_t *a, const char *id, int keep_guest,
                        const ospab_idem_t *idem, json_t **guest, ospab_result_t *res)
{
    ospab_row_t v = bound_guest(db, p, guests, id), now;
    const char *upid;
    int made = 0;

    *guest = NULL;
    if (!v) {
        return 0;
    }
    if (keep_guest) {
        *guest = json_pack("{s:s, s:s}", "action", "kept",
                           "reason", "keep_guest: the guest stays on Proxmox");
        return 0;
    }
    if (ospab_server_panel_made(db, p, id, &made)) {
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    if (!made) {
        *guest = json_pack("{s:s, s:s}", "action", "none", "reason", "the panel did not "
                           "create this guest: it stays on Proxmox");
        return 0;
    }
    if (ospab_server_sync_destroy(db, p, guests, a, v, &upid, res)) {
        return 1;
    }
    /* the record as it is now: deleting, or gone already (the guest was missing) */
    if (ospab_db_select_one(db, p, "ospab_vps_get", 1, &id, &now) != APR_SUCCESS) {
        now = NULL;
    }
    result_ok(p, res, 200, "VPS synced successfully", "vps", ospab_vps_json(p, now ? now : v));
    json_object_set_new(res->body, "guest", json_pack("{s:s, s:o}", "action", "destroy",
                                                       "taskId", ospab_json_str_or_null(upid)));
    if (idem && !ospab_idem_begin(db, p, a, idem, res)) {
        ospab_idem_commit(db, p, idem, res);
    }
    return 1;
}

static void vps_delete(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                       ospab_field_value_t *in, const ospab_server_conf_t *guests,
                       int keep_guest, const ospab_idem_t *idem, ospab_result_t *res)
{
    const char *id;
    ospab_row_t row;
    json_t *record, *guest;

    if (vps_identify(db, p, in, &id, res)
        || delete_guest(db, p, guests, a, id, keep_guest, idem, &guest, res)) {
        return;
    }
    ospab_json_own(p, guest);
    if (ospab_idem_begin(db, p, a, idem, res)
        || lock_and_get(db, p, "ospab_vps_lock", "ospab_vps_get", id, "VPS", &row, res)) {
        return;
    }
    record = ospab_vps_json(p, row);
    /* dependents go explicitly: SQLite does not enforce ON DELETE here (see refs_missing) */
    if (ospab_db_exec(db, p, "ospab_vps_delete_metrics", 1, &id, NULL) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_vps_delete_alerts", 1, &id, NULL) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_vps_detach_tasks", 1, &id, NULL) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_vps_delete", 1, &id, NULL) != APR_SUCCESS
        || ospab_audit(db, p, a, "vps.delete", "vps", id, json_deep_copy(record)) != APR_SUCCESS) {
        json_decref(record);
        ospab_result_db_failed(db, p, res);
        return;
    }
    result_ok(p, res, 200, "VPS synced successfully", "vps", record);
    if (guest) {
        json_object_set(res->body, "guest", guest);
    }
    ospab_idem_commit(db, p, idem, res);
}

void ospab_sync_vps(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *actor, json_t *req,
                    const ospab_server_conf_t *guests, const ospab_idem_t *idem,
                    ospab_result_t *res)
{
    ospab_field_value_t in[OSPAB_VPS_NFIELDS];
    const char *action;
    json_t *vps, *errors, *keep;
    int creating, keep_guest = 0;

    memset(res, 0, sizeof(*res));
    if (read_envelope(p, req, "vps", &action, &vps, res)) {
        return;
    }
    creating = !strcmp(action, "create");
    /* a delete may say what becomes of the guest; no other field is a record's */
    if (!strcmp(action, "delete") && json_is_object(vps)
        && (keep = json_object_get(vps, "keep_guest")) != NULL) {
        if (!json_is_boolean(keep)) {
            json_t *f = json_object();

            json_object_set_new(f, "keep_guest", json_string("must be true or false"));
            ospab_result_error(p, res, 400, "invalid vps: keep_guest: must be true or false",
                               f);
            return;
        }
        keep_guest = json_is_true(keep);
        vps = ospab_json_own(p, json_copy(vps));
        json_object_del(vps, "keep_guest");
    }
    errors = json_object();
    if (ospab_fields_read(p, ospab_vps_fields, OSPAB_VPS_NFIELDS, vps, creating, in, errors)) {
        ospab_result_error(p, res, 400, ospab_fields_summary(p, "vps", errors), errors);
        return;
    }
    json_decref(errors);
    if (creating) {
        vps_create(db, p, actor, in, idem, res);
    }
    else if (!strcmp(action, "update")) {
        vps_update(db, p, actor, in, guests, idem, res);
    }
    else {
        vps_delete(db, p, actor, in, guests, keep_guest, idem, res);
    }
}

void ospab_sync_vps_batch(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *actor,
                          json_t *req, const ospab_server_conf_t *guests, ospab_result_t *res)
{
    json_t *ops, *results, *body;
    const char *key;
    json_t *v;
    size_t i, n, ok = 0, bad = 0;

    memset(res, 0, sizeof(*res));
    if (!json_is_object(req)) {
        ospab_result_error(p, res, 400, "request body must be a JSON object", NULL);
        return;
    }
    json_object_foreach(req, key, v) {
        if (strcmp(key, "operations")) {
            json_t *f = json_object();
            const char *name = ospab_text_ok(key, 1, 64) ? key : "(unprintable)";

            json_object_set_new(f, name, json_string("unknown field"));
            ospab_result_error(p, res, 400, apr_psprintf(p, "invalid request: %s: unknown "
                               "field", name), f);
            return;
        }
    }
    ops = json_object_get(req, "operations");
    n = json_array_size(ops);
    if (!json_is_array(ops) || n == 0 || n > OSPAB_BATCH_MAX) {
        ospab_result_error(p, res, 400, apr_psprintf(p, "operations must be an array of 1 to "
                           "%d operations", OSPAB_BATCH_MAX), NULL);
        return;
    }
    results = json_array();
    for (i = 0; i < n; ++i) {
        apr_pool_t *sub;
        ospab_result_t r;
        json_t *item = json_object();

        apr_pool_create(&sub, p);
        ospab_sync_vps(db, sub, actor, json_array_get(ops, i), guests, NULL, &r);
        json_object_set_new(item, "index", json_integer((json_int_t)i));
        json_object_set_new(item, "status", json_integer(r.status));
        json_object_update(item, r.body);
        /* the item's HTTP status replaces the body's "status":"success" (same place) */
        json_object_set_new(item, "status", json_integer(r.status));
        if (r.status >= 200 && r.status < 300) {
            ++ok;
        }
        else {
            ++bad;
        }
        if (r.log && !res->log) {
            res->log = apr_pstrdup(p, r.log);
        }
        json_array_append_new(results, item);
        apr_pool_destroy(sub);
    }
    body = json_object();
    json_object_set_new(body, "status", json_string(!bad ? "success" : !ok ? "failed"
                                                                            : "partial"));
    json_object_set_new(body, "succeeded", json_integer((json_int_t)ok));
    json_object_set_new(body, "failed", json_integer((json_int_t)bad));
    json_object_set_new(body, "results", results);
    res->status = 200;
    res->body = ospab_json_own(p, body);
}

/* ---- users ---------------------------------------------------------------------------- */

static json_t *user_changes(const ospab_field_value_t *in)
{
    json_t *o = changes(ospab_user_fields, OSPAB_USER_NFIELDS, in, OSPAB_USER_PASSWORD);

    json_object_del(o, "id");
    if (in[OSPAB_USER_PASSWORD].present) {
        json_object_set_new(o, "password_changed", json_true());
    }
    return o;
}

static void user_conflict(ospab_db_t *db, apr_pool_t *p, const ospab_field_value_t *in,
                          ospab_result_t *res)
{
    const char *key = ospab_email_key(p, in[OSPAB_USER_EMAIL].value);
    ospab_row_t row = NULL;

    if (in[OSPAB_USER_EMAIL].present && key
        && ospab_db_select_one(db, p, "ospab_user_get_email", 1, &key, &row) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (row) {
        ospab_result_error(p, res, 409, apr_psprintf(p, "a user with email %s already exists",
                                                     in[OSPAB_USER_EMAIL].value), NULL);
    }
    else if (in[OSPAB_USER_ID].present) {
        ospab_result_error(p, res, 409, apr_psprintf(p, "user %s already exists",
                                                     in[OSPAB_USER_ID].value), NULL);
    }
    else {
        ospab_result_error(p, res, 409, "the change conflicts with another user", NULL);
    }
}

static void user_create(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                        const ospab_field_value_t *in, const char *hash,
                        const ospab_idem_t *idem, ospab_result_t *res)
{
    const char *args[9];
    const char *id = in[OSPAB_USER_ID].value;
    const char *now = ospab_time_db(p, a->now);
    const char **v = args;
    ospab_row_t row;

    if (id) {
        *v++ = id;
    }
    *v++ = in[OSPAB_USER_EMAIL].value;
    *v++ = ospab_email_key(p, in[OSPAB_USER_EMAIL].value);
    *v++ = in[OSPAB_USER_NAME].value;
    *v++ = in[OSPAB_USER_ROLE].value;
    *v++ = hash;
    *v++ = in[OSPAB_USER_ENABLED].value;
    *v++ = now;
    *v++ = now;
    if (ospab_idem_begin(db, p, a, idem, res)) {
        return;
    }
    if (ospab_db_exec(db, p, id ? "ospab_user_insert_id" : "ospab_user_insert",
                      (int)(v - args), args, NULL) != APR_SUCCESS) {
        if (!ospab_db_is_constraint(db)) {
            ospab_result_db_failed(db, p, res);
            return;
        }
        ospab_db_end(db, 0);
        user_conflict(db, p, in, res);
        return;
    }
    if ((!id && ospab_db_last_id(db, p, &id) != APR_SUCCESS)
        || ospab_db_select_one(db, p, "ospab_user_get", 1, &id, &row) != APR_SUCCESS || !row
        || ospab_audit(db, p, a, "user.create", "user", id, user_changes(in)) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    result_ok(p, res, 201, "User synced successfully", "user", ospab_user_json(p, row));
    ospab_idem_commit(db, p, idem, res);
}

static void user_update(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                        const ospab_field_value_t *in, const char *hash,
                        const ospab_idem_t *idem, ospab_result_t *res)
{
    const char *id = in[OSPAB_USER_ID].value;
    const char *now = ospab_time_db(p, a->now);
    const char *args[7], *reason = NULL;
    ospab_row_t row, old;

    if (ospab_idem_begin(db, p, a, idem, res)
        || lock_and_get(db, p, "ospab_user_lock", "ospab_user_get", id, "user", &row, res)) {
        return;
    }
    old = row;
    /* row: id, email, name, role, enabled, ... */
#define USER_VALUE(f) (in[f].present ? in[f].value : row[f])
    args[0] = USER_VALUE(OSPAB_USER_EMAIL);
    args[1] = ospab_email_key(p, args[0]);
    args[2] = USER_VALUE(OSPAB_USER_NAME);
    args[3] = USER_VALUE(OSPAB_USER_ROLE);
    args[4] = USER_VALUE(OSPAB_USER_ENABLED);
#undef USER_VALUE
    args[5] = now;
    args[6] = id;
    /* what the user may watch live changes with these: the agents hear of it */
    if (strcmp(args[4], row[OSPAB_USER_ENABLED])) {
        reason = strcmp(args[4], "1") ? "disabled" : "enabled";
    }
    else if (strcmp(args[3], row[OSPAB_USER_ROLE])) {
        reason = "role";
    }
    if (ospab_db_exec(db, p, "ospab_user_update", 7, args, NULL) != APR_SUCCESS) {
        if (!ospab_db_is_constraint(db)) {
            ospab_result_db_failed(db, p, res);
            return;
        }
        ospab_db_end(db, 0);
        user_conflict(db, p, in, res);
        return;
    }
    args[0] = hash;
    args[1] = now;
    args[2] = id;
    if ((hash && ospab_db_exec(db, p, "ospab_user_set_password", 3, args, NULL) != APR_SUCCESS)
        || (reason && ospab_event_access(db, p, a->now, id, NULL, reason) != APR_SUCCESS)
        || ospab_db_select_one(db, p, "ospab_user_get", 1, &id, &row) != APR_SUCCESS || !row
        || ospab_audit(db, p, a, "user.update", "user", id,
                       update_changes(ospab_user_fields, OSPAB_USER_ENABLED, in, old,
                                      OSPAB_USER_ID, OSPAB_USER_PASSWORD)) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    result_ok(p, res, 200, "User synced successfully", "user", ospab_user_json(p, row));
    ospab_idem_commit(db, p, idem, res);
}

static void user_delete(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                        const ospab_field_value_t *in, const ospab_idem_t *idem,
                        ospab_result_t *res)
{
    const char *id = in[OSPAB_USER_ID].value;
    ospab_row_t row, count;
    json_t *record;

    if (ospab_idem_begin(db, p, a, idem, res)
        || lock_and_get(db, p, "ospab_user_lock", "ospab_user_get", id, "user", &row, res)) {
        return;
    }
    if (ospab_db_select_one(db, p, "ospab_vps_count_user", 1, &id, &count) != APR_SUCCESS
        || !count) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (count[0] && strcmp(count[0], "0")) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 409, apr_psprintf(p, "user %s still owns %s servers; "
                           "delete or reassign them first", id, count[0]), NULL);
        return;
    }
    record = ospab_user_json(p, row);
    if (ospab_db_exec(db, p, "ospab_user_delete_tokens", 1, &id, NULL) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_user_delete", 1, &id, NULL) != APR_SUCCESS
        || ospab_event_access(db, p, a->now, id, NULL, "deleted") != APR_SUCCESS
        || ospab_audit(db, p, a, "user.delete", "user", id, json_deep_copy(record)) != APR_SUCCESS) {
        json_decref(record);
        ospab_result_db_failed(db, p, res);
        return;
    }
    result_ok(p, res, 200, "User synced successfully", "user", record);
    ospab_idem_commit(db, p, idem, res);
}

void ospab_sync_user(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *actor, json_t *req,
                     const ospab_idem_t *idem, ospab_result_t *res)
{
    ospab_field_value_t in[OSPAB_USER_NFIELDS];
    const char *action, *hash = NULL;
    json_t *user, *errors;
    int creating;

    memset(res, 0, sizeof(*res));
    if (read_envelope(p, req, "user", &action, &user, res)) {
        return;
    }
    creating = !strcmp(action, "create");
    errors = json_object();
    ospab_fields_read(p, ospab_user_fields, OSPAB_USER_NFIELDS, user, creating, in, errors);
    /* libcrypt takes passphrases shorter than 512 bytes (CRYPT_MAX_PASSPHRASE_SIZE) */
    if (in[OSPAB_USER_PASSWORD].present && strlen(in[OSPAB_USER_PASSWORD].value) > 500) {
        json_object_set_new(errors, "password", json_string("must be at most 500 bytes long"));
    }
    if (!creating && !in[OSPAB_USER_ID].present && !json_object_get(errors, "id")) {
        json_object_set_new(errors, "id", json_string("is required"));
    }
    if (json_object_size(errors) > 0) {
        ospab_result_error(p, res, 400, ospab_fields_summary(p, "user", errors), errors);
        return;
    }
    json_decref(errors);
    if (!strcmp(action, "delete")) {
        user_delete(db, p, actor, in, idem, res);
        return;
    }
    if (in[OSPAB_USER_PASSWORD].present
        && ospab_password_hash(p, in[OSPAB_USER_PASSWORD].value, &hash) != APR_SUCCESS) {
        res->log = "password hashing failed";
        ospab_result_error(p, res, 500, "internal error", NULL);
        return;
    }
    if (creating) {
        user_create(db, p, actor, in, hash, idem, res);
    }
    else {
        user_update(db, p, actor, in, hash, idem, res);
    }
}

apr_status_t ospab_sync_user_keys(ospab_db_t *db, apr_pool_t *p, int *changed)
{
    apr_array_header_t *rows;
    apr_status_t rv;
    int i, n = 0;

    rv = ospab_db_select(db, p, "ospab_user_keys", 0, NULL, &rows, NULL);
    for (i = 0; rv == APR_SUCCESS && i < rows->nelts; ++i) {
        ospab_row_t r = APR_ARRAY_IDX(rows, i, ospab_row_t);   /* id email email_key */
        const char *args[2] = { ospab_email_key(p, r[1]), r[0] };

        if (args[0] && (!r[2] || strcmp(r[2], args[0]))) {
            rv = ospab_db_exec(db, p, "ospab_user_set_key", 2, args, NULL);
            ++n;
        }
    }
    if (changed) {
        *changed = n;
    }
    return rv;
}
