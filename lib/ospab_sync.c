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

#include "ospab_sync_int.h"
#include "ospab_json.h"
#include "ospab_util.h"
#include "ospab_fields.h"
#include "ospab_resource.h"
#include "ospab_events.h"
#include "ospab_server.h"
#include "ospab_vps.h"

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
    const char *args[2], *other = NULL;
    const ospab_vps_t *v;
    int rc;

    if (in[OSPAB_VPS_EXTERNAL_ID].present && in[OSPAB_VPS_EXTERNAL_ID].value) {
        args[0] = in[OSPAB_VPS_EXTERNAL_ID].value;
        if (ospab_vps_load(db, p, "ospab_vps_get_ext", args[0], &v) != APR_SUCCESS) {
            ospab_result_db_failed(db, p, res);
            return;
        }
        if (v && (!self_id || strcmp(v->id, self_id))) {
            ospab_result_error(p, res, 409, apr_psprintf(p, "external_id %s already belongs "
                               "to VPS %s", args[0], v->id), NULL);
            return;
        }
    }
    if (in[OSPAB_VPS_NODE].value || in[OSPAB_VPS_VMID].value) {
        args[0] = in[OSPAB_VPS_NODE].value;
        args[1] = in[OSPAB_VPS_VMID].value;
        if (args[0] && args[1]
            && ospab_db_select_value(db, p, "ospab_vps_get_node_vmid", 2, args, &other)
               == APR_SUCCESS && other && (!self_id || strcmp(other, self_id))) {
            ospab_result_error(p, res, 409, apr_psprintf(p, "vmid %s on node %s is already "
                               "used by VPS %s", args[1], args[0], other), NULL);
            return;
        }
    }
    rc = vps_check_refs(db, p, in, res);
    if (rc < 0) {
        ospab_result_db_failed(db, p, res);
    }
    else if (rc == 0 && db->dialect == OSPAB_DB_MYSQL) {
        /* the statement broke a constraint that these reads, which wait for what other
         * Galera nodes committed (wsrep_sync_wait), no longer see broken: most likely a
         * foreign key checked before another node's write (the user) was applied here.
         * A write conflict: the caller runs the change again (ospab_db_conflict_retry). */
        db->conflict = 1;
        db->error = "a constraint failed that the re-check does not see: run again";
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
                ospab_sync_ok(p, res, 200, "VPS synced successfully", "vps",
                              ospab_vps_json(p, row));
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
                     ospab_sync_changes(ospab_vps_fields, OSPAB_VPS_NFIELDS, in, -1))
            != APR_SUCCESS) {
            ospab_result_db_failed(db, p, res);
            return;
        }
        ospab_sync_ok(p, res, 201, "VPS synced successfully", "vps", ospab_vps_json(p, row));
        ospab_idem_commit(db, p, idem, res);
        return;
    }
    vps_conflict(db, p, in, NULL, res);
}

/* id for update/delete: by "id", else by "external_id". 0: found; 1: res is set. */
static int vps_identify(ospab_db_t *db, apr_pool_t *p, ospab_field_value_t *in,
                        const char **id, ospab_result_t *res)
{
    const ospab_vps_t *v;

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
    if (ospab_vps_load(db, p, "ospab_vps_get_ext", in[OSPAB_VPS_EXTERNAL_ID].value, &v)
        != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    if (!v) {
        ospab_result_error(p, res, 404, "VPS not found", NULL);
        return 1;
    }
    *id = v->id;
    in[OSPAB_VPS_EXTERNAL_ID].present = 0; /* it named the record; it is not a change */
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
static const ospab_vps_t *bound_guest(ospab_db_t *db, apr_pool_t *p,
                                      const ospab_server_conf_t *guests, const char *id)
{
    const ospab_vps_t *v = NULL;

    if (!guests || (!guests->pve && !guests->clusters)
        || ospab_vps_load(db, p, "ospab_vps_get", id, &v) != APR_SUCCESS || !v
        || strcmp(v->hypervisor, "proxmox") || !v->node || !v->vmid) {
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
    const ospab_vps_t *v;
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
        if (in[cols[i]].present && strcmp(in[cols[i]].value, v->cols[cols[i]])) {
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
    const char *id, *st;
    ospab_row_t row;
    ospab_vps_t old, now;
    json_t *guest;
    int i, suspend = -1;

    if (vps_identify(db, p, in, &id, res)
        || sizes_to_guest(db, p, guests, a, in, id, &guest, res)) {
        return;
    }
    ospab_json_own(p, guest);
    if (ospab_idem_begin(db, p, a, idem, res)
        || ospab_sync_lock_and_get(db, p, "ospab_vps_lock", "ospab_vps_get", id, "VPS", &row, res)
        || refs_missing(db, p, in, res)) {
        return;
    }
    ospab_row_fill(&ospab_vps_row, row, &old);
    /* the columns in the field table's order: what the request did not set stays */
    for (i = 1; i < OSPAB_VPS_CREATED_AT; ++i) {
        args[i - 1] = in[i].present ? in[i].value : old.cols[i];
    }
    /* into or out of suspension (lib/ospab_suspend.c): the status is the suspension's to
     * change, after the other fields; out of it, the state before comes back whatever
     * status the request names */
    if (in[OSPAB_VPS_STATUS].present
        && !strcmp(in[OSPAB_VPS_STATUS].value, "suspended") != !strcmp(old.status, "suspended")) {
        suspend = !strcmp(in[OSPAB_VPS_STATUS].value, "suspended");
        args[OSPAB_VPS_STATUS - 1] = old.status;
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
                in[i].value = old.cols[i];
            }
        }
        vps_conflict(db, p, in, id, res);
        return;
    }
    /* bound now (node and vmid): the agent's note of why it could not link it is over */
    if (ospab_db_exec(db, p, "ospab_vps_clear_note", 1, &id, NULL) != APR_SUCCESS
        || (suspend >= 0 && ospab_suspension_change(db, p, a, id, suspend, NULL, &st) != 0)
        || ospab_db_select_one(db, p, "ospab_vps_get", 1, &id, &row) != APR_SUCCESS || !row
        || (ospab_row_fill(&ospab_vps_row, row, &now), strcmp(old.user_id, now.user_id)
            && owner_changed(db, p, a, id, old.user_id, now.user_id) != APR_SUCCESS)
        || ospab_audit(db, p, a, "vps.update", "vps", id,
                       ospab_sync_update_changes(ospab_vps_fields, OSPAB_VPS_UPDATED_AT, in,
                                                 old.cols, OSPAB_VPS_ID, -1)) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    ospab_sync_ok(p, res, 200, "VPS synced successfully", "vps", ospab_vps_json(p, now.cols));
    if (guest) {
        json_object_set(res->body, "guest", guest);
    }
    ospab_idem_commit(db, p, idem, res);
    if (suspend >= 0 && res->status == 200) {
        /* the guest follows the committed record (a replay of the request answers without
         * this: the guest was brought in line by the first) */
        json_t *g = ospab_suspension_guest(db, p, guests, a, id);

        if (g) {
            json_object_set_new(res->body, "guest", g);
        }
    }
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
    const ospab_vps_t *v = bound_guest(db, p, guests, id), *now;
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
    if (ospab_vps_load(db, p, "ospab_vps_get", id, &now) != APR_SUCCESS) {
        now = NULL;
    }
    ospab_sync_ok(p, res, 200, "VPS synced successfully", "vps",
              ospab_vps_json(p, now ? now->cols : v->cols));
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
        || ospab_sync_lock_and_get(db, p, "ospab_vps_lock", "ospab_vps_get", id, "VPS", &row,
                                   res)) {
        return;
    }
    record = ospab_vps_json(p, row);
    if (ospab_vps_remove(db, p, id) != APR_SUCCESS
        || ospab_audit(db, p, a, "vps.delete", "vps", id, json_deep_copy(record)) != APR_SUCCESS) {
        json_decref(record);
        ospab_result_db_failed(db, p, res);
        return;
    }
    ospab_sync_ok(p, res, 200, "VPS synced successfully", "vps", record);
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
    if (ospab_sync_envelope(p, req, "vps", &action, &vps, res)) {
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
        ospab_actor_t a = *actor;
        unsigned effects;
        int attempt = 0;

        apr_pool_create(&sub, p);
        /* each operation is its own transaction: one refused for a write conflict runs
         * again on its own (the request's answer is a 200 whatever the items' are) */
        a.effects = &effects;
        do {
            effects = 0;
            ospab_sync_vps(db, sub, &a, json_array_get(ops, i), guests, NULL, &r);
        } while (ospab_db_conflict_retry(db, r.status, effects, &attempt));
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
