/* ospab core: POST /api/users/sync (create, update, delete an account) and the e-mail
 * keys of accounts written with SQL alone. */
#include <stddef.h>
#include <string.h>
#include <stdlib.h>

#include <apr_strings.h>

#include "ospab_sync_int.h"
#include "ospab_session.h"
#include "ospab_json.h"
#include "ospab_util.h"
#include "ospab_resource.h"
#include "ospab_events.h"
#include "ospab_user.h"

/* ---- users ---------------------------------------------------------------------------- */

static json_t *user_changes(const ospab_field_value_t *in)
{
    json_t *o = ospab_sync_changes(ospab_user_fields, OSPAB_USER_NFIELDS, in, OSPAB_USER_PASSWORD);

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
    const char *other = NULL;

    if (in[OSPAB_USER_EMAIL].present && key
        && ospab_db_select_value(db, p, "ospab_user_get_email", 1, &key, &other)
           != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (other) {
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

/* Writes an account (label, args). 1: written; 0: res is set (a constraint says which
 * conflict, after the rollback; or the database failed). */
static int user_written(ospab_db_t *db, apr_pool_t *p, const char *label, int nargs,
                        const char **args, const ospab_field_value_t *in, ospab_result_t *res)
{
    if (ospab_db_exec(db, p, label, nargs, args, NULL) == APR_SUCCESS) {
        return 1;
    }
    if (!ospab_db_is_constraint(db)) {
        ospab_result_db_failed(db, p, res);
        return 0;
    }
    ospab_db_end(db, 0);
    user_conflict(db, p, in, res);
    return 0;
}

/* The end of a change to account id: the account as it is now is the answer (status), the
 * change is audited (action, details: consumed) and the answer stored under the key. */
static void user_changed(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                         const char *id, const char *action, json_t *details, int status,
                         const ospab_idem_t *idem, ospab_result_t *res)
{
    const ospab_user_t *u;

    if (ospab_user_load(db, p, id, &u) != APR_SUCCESS || !u) {
        json_decref(details);
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (ospab_audit(db, p, a, action, "user", id, details) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    ospab_sync_ok(p, res, status, "User synced successfully", "user",
                  ospab_user_record_json(p, u));
    ospab_idem_commit(db, p, idem, res);
}

static void user_create(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                        const ospab_field_value_t *in, const char *hash,
                        const ospab_idem_t *idem, ospab_result_t *res)
{
    const char *args[9];
    const char *id = in[OSPAB_USER_ID].value;
    const char *now = ospab_time_db(p, a->now);
    const char **v = args;

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
    if (!user_written(db, p, id ? "ospab_user_insert_id" : "ospab_user_insert",
                      (int)(v - args), args, in, res)) {
        return;
    }
    if (!id && ospab_db_last_id(db, p, &id) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    user_changed(db, p, a, id, "user.create", user_changes(in), 201, idem, res);
}

static void user_update(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                        const ospab_field_value_t *in, const char *hash,
                        const ospab_idem_t *idem, ospab_result_t *res)
{
    const char *id = in[OSPAB_USER_ID].value;
    const char *now = ospab_time_db(p, a->now);
    const char *args[7], *reason = NULL;
    ospab_row_t row;
    ospab_user_t old;

    if (ospab_idem_begin(db, p, a, idem, res)
        || ospab_sync_lock_and_get(db, p, "ospab_user_lock", "ospab_user_get", id, "user",
                                   &row, res)) {
        return;
    }
    ospab_row_fill(&ospab_user_row, row, &old);
    /* the columns in the field table's order up to enabled: what the request did not set
     * stays */
#define USER_VALUE(f) (in[f].present ? in[f].value : old.cols[f])
    args[0] = USER_VALUE(OSPAB_USER_EMAIL);
    args[1] = ospab_email_key(p, args[0]);
    args[2] = USER_VALUE(OSPAB_USER_NAME);
    args[3] = USER_VALUE(OSPAB_USER_ROLE);
    args[4] = USER_VALUE(OSPAB_USER_ENABLED);
#undef USER_VALUE
    args[5] = now;
    args[6] = id;
    /* what the user may watch live changes with these: the agents hear of it */
    if (strcmp(args[4], old.enabled)) {
        reason = strcmp(args[4], "1") ? "disabled" : "enabled";
    }
    else if (strcmp(args[3], old.role)) {
        reason = "role";
    }
    if (!user_written(db, p, "ospab_user_update", 7, args, in, res)) {
        return;
    }
    args[0] = hash;
    args[1] = now;
    args[2] = id;
    /* disabled: every login of the account ends, as an admin's disable does (enabling it
     * again does not bring them back) */
    if ((hash && ospab_db_exec(db, p, "ospab_user_set_password", 3, args, NULL) != APR_SUCCESS)
        || (reason && !strcmp(reason, "disabled")
            && ospab_session_revoke_user(db, p, a->now, id, NULL) != APR_SUCCESS)
        || (reason && ospab_event_access(db, p, a->now, id, NULL, reason) != APR_SUCCESS)) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    user_changed(db, p, a, id, "user.update",
                 ospab_sync_update_changes(ospab_user_fields, OSPAB_USER_ENABLED, in, old.cols,
                                           OSPAB_USER_ID, OSPAB_USER_PASSWORD),
                 200, idem, res);
}

static void user_delete(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                        const ospab_field_value_t *in, const ospab_idem_t *idem,
                        ospab_result_t *res)
{
    const char *id = in[OSPAB_USER_ID].value;
    ospab_row_t row;
    const char *count = NULL;
    json_t *record;

    if (ospab_idem_begin(db, p, a, idem, res)
        || ospab_sync_lock_and_get(db, p, "ospab_user_lock", "ospab_user_get", id, "user",
                                   &row, res)) {
        return;
    }
    if (ospab_db_select_value(db, p, "ospab_vps_count_user", 1, &id, &count) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (count && strcmp(count, "0")) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 409, apr_psprintf(p, "user %s still owns %s servers; "
                           "delete or reassign them first", id, count), NULL);
        return;
    }
    record = ospab_user_json(p, row);
    if (ospab_db_exec(db, p, "ospab_user_delete_tokens", 1, &id, NULL) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_user_delete_sshkeys", 1, &id, NULL) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_user_delete", 1, &id, NULL) != APR_SUCCESS
        || ospab_event_access(db, p, a->now, id, NULL, "deleted") != APR_SUCCESS
        || ospab_audit(db, p, a, "user.delete", "user", id, json_deep_copy(record))
           != APR_SUCCESS) {
        json_decref(record);
        ospab_result_db_failed(db, p, res);
        return;
    }
    ospab_sync_ok(p, res, 200, "User synced successfully", "user", record);
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
    if (ospab_sync_envelope(p, req, "user", &action, &user, res)) {
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

/* A row of ospab_user_keys. */
typedef struct {
    const char *id, *email, *key;
} key_row_t;

/* id email email_key */
static const apr_size_t key_cols[] = {
    offsetof(key_row_t, id), offsetof(key_row_t, email), offsetof(key_row_t, key)
};
static const ospab_row_shape_t key_shape = OSPAB_ROW_SHAPE(key_cols, key_row_t, OSPAB_ROW_NO_RAW);

apr_status_t ospab_sync_user_keys(ospab_db_t *db, apr_pool_t *p, int *changed)
{
    apr_array_header_t *rows;
    apr_status_t rv;
    int i, n = 0;

    rv = ospab_db_select(db, p, "ospab_user_keys", 0, NULL, &rows, NULL);
    for (i = 0; rv == APR_SUCCESS && i < rows->nelts; ++i) {
        key_row_t k;
        const char *args[2];

        ospab_row_fill(&key_shape, APR_ARRAY_IDX(rows, i, ospab_row_t), &k);
        args[0] = ospab_email_key(p, k.email);
        args[1] = k.id;
        if (args[0] && (!k.key || strcmp(k.key, args[0]))) {
            rv = ospab_db_exec(db, p, "ospab_user_set_key", 2, args, NULL);
            ++n;
        }
    }
    if (changed) {
        *changed = n;
    }
    return rv;
}
