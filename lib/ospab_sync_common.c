/* ospab core: what the sync API's operations share (ospab_sync.c for vps records,
 * ospab_sync_user.c for accounts): the envelope, answers, audit details and the row lock. */
#include <string.h>

#include <apr_strings.h>

#include "ospab_sync_int.h"
#include "ospab_json.h"
#include "ospab_util.h"

static const char *const actions[] = { "create", "update", "delete", NULL };

void ospab_sync_ok(apr_pool_t *p, ospab_result_t *res, int status, const char *message,
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
json_t *ospab_sync_changes(const ospab_field_t *spec, int n, const ospab_field_value_t *in,
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
json_t *ospab_sync_update_changes(const ospab_field_t *spec, int last_col,
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
int ospab_sync_envelope(apr_pool_t *p, json_t *req, const char *what, const char **action,
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

/* Locks and reads the record inside the open transaction. 0: *row set; 1: res is set. */
int ospab_sync_lock_and_get(ospab_db_t *db, apr_pool_t *p, const char *lock, const char *get,
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
