/* ospab core: POST /api/notify, the billing site's own notices to a customer (see
 * ospab_notify.h). */
#include <string.h>
#include <stdlib.h>

#include <apr_strings.h>

#include "ospab_notify.h"
#include "ospab_mail.h"
#include "ospab_user.h"
#include "ospab_json.h"
#include "ospab_util.h"

static void notify_queued(apr_pool_t *p, ospab_result_t *res, const char *id, int duplicate)
{
    json_t *o = json_object();

    json_object_set_new(o, "status", json_string("queued"));
    json_object_set_new(o, "id", ospab_json_int_or_null(id));
    if (duplicate) {
        json_object_set_new(o, "duplicate", json_true());
    }
    res->status = 202;
    res->body = ospab_json_own(p, o);
}

static void notify_invalid(apr_pool_t *p, ospab_result_t *res, json_t *errors)
{
    void *it = json_object_iter(errors);

    ospab_result_error(p, res, 400, apr_psprintf(p, "invalid notice: %s: %s",
                                                 json_object_iter_key(it),
                                                 json_string_value(json_object_iter_value(it))),
                       errors);
}

void ospab_notify(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a, json_t *req,
                  const char *idem_key, ospab_result_t *res)
{
    static const char *const allowed[] = { "userId", "to", "template", "data", "subject",
                                           "text", "key", NULL };
    json_t *errors, *x, *vars = NULL, *v, *details;
    const char *name, *to = NULL, *user_id = NULL, *tmpl = NULL, *key = NULL, *subject, *text;
    const char *id, *why;
    const ospab_user_t *u = NULL;
    const char *queued = NULL;
    int i, dup;

    memset(res, 0, sizeof(*res));
    if (!json_is_object(req)) {
        ospab_result_error(p, res, 400, "request body must be a JSON object", NULL);
        return;
    }
    errors = json_object();
    json_object_foreach(req, name, x) {
        for (i = 0; allowed[i] && strcmp(allowed[i], name); ++i) {
        }
        if (!allowed[i]) {
            json_object_set_new(errors, name, json_string("unknown field"));
        }
    }
    if ((x = json_object_get(req, "userId")) != NULL) {
        if (!json_is_integer(x) || json_integer_value(x) < 1) {
            json_object_set_new(errors, "userId", json_string("must be a positive integer"));
        }
        else {
            user_id = apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)json_integer_value(x));
        }
    }
    if ((x = json_object_get(req, "to")) != NULL) {
        if (!json_is_string(x) || !ospab_mail_addr_ok(json_string_value(x))) {
            json_object_set_new(errors, "to", json_string("must be an e-mail address (ASCII, "
                                                          "no spaces or line breaks)"));
        }
        else {
            to = json_string_value(x);
        }
    }
    if (json_object_get(req, "userId") && json_object_get(req, "to")) {
        json_object_set_new(errors, "to", json_string("give either userId or to, not both"));
    }
    else if (!json_object_get(req, "userId") && !json_object_get(req, "to")) {
        json_object_set_new(errors, "to", json_string("userId or to is required"));
    }
    if ((x = json_object_get(req, "template")) != NULL) {
        if (!json_is_string(x) || !ospab_mail_template_known(json_string_value(x))) {
            json_object_set_new(errors, "template", json_string(
                "must be one of server-created, alert, password-reset, root-password, "
                "payment-reminder, ticket-reply, raw"));
        }
        else {
            tmpl = json_string_value(x);
        }
    }
    if ((x = json_object_get(req, "data")) != NULL && !json_is_object(x)) {
        json_object_set_new(errors, "data", json_string("must be an object"));
    }
    if ((json_object_get(req, "subject") || json_object_get(req, "text"))
        && json_object_get(req, "template") && (!tmpl || strcmp(tmpl, "raw"))) {
        json_object_set_new(errors, "subject", json_string("subject and text go without a "
                                                           "template (or with \"raw\")"));
    }
    if ((x = json_object_get(req, "key")) != NULL) {
        if (!json_is_string(x) || !ospab_key_ok(json_string_value(x), OSPAB_MAIL_KEY_MAX)) {
            json_object_set_new(errors, "key", json_string("must be 1 to 120 printable ASCII "
                                                           "characters"));
        }
        else {
            key = json_string_value(x);
            if (idem_key && strcmp(idem_key, key)) {
                json_object_set_new(errors, "key", json_string("differs from the "
                                                               "Idempotency-Key header"));
            }
        }
    }
    else if (idem_key) {
        if (!ospab_key_ok(idem_key, OSPAB_MAIL_KEY_MAX)) {
            json_object_set_new(errors, "Idempotency-Key", json_string(
                "must be 1 to 120 printable ASCII characters"));
        }
        key = idem_key;
    }
    if (json_object_size(errors)) {
        notify_invalid(p, res, errors);
        return;
    }

    /* the variables: data, or for "raw" the top-level subject and text */
    if (!tmpl || !strcmp(tmpl, "raw")) {
        vars = json_object();
        if ((x = json_object_get(req, "data")) != NULL) {
            json_object_update(vars, x);
        }
        if ((x = json_object_get(req, "subject")) != NULL) {
            json_object_set(vars, "subject", x);
        }
        if ((x = json_object_get(req, "text")) != NULL) {
            json_object_set(vars, "text", x);
        }
        tmpl = "raw";
    }
    else {
        vars = (x = json_object_get(req, "data")) ? json_incref(x) : json_object();
    }
    ospab_json_own(p, vars);
    if ((errors = ospab_mail_render(p, tmpl, vars, &subject, &text)) != NULL) {
        if (!strcmp(tmpl, "raw")) {
            /* top-level subject/text are reported under their own names */
            json_t *renamed = json_object();

            json_object_foreach(errors, name, x) {
                json_object_set(renamed, strncmp(name, "data.", 5) ? name : name + 5, x);
            }
            json_decref(errors);
            errors = renamed;
        }
        notify_invalid(p, res, errors);
        return;
    }
    if (user_id) {
        if (ospab_user_load(db, p, user_id, &u) != APR_SUCCESS) {
            ospab_result_db_failed(db, p, res);
            return;
        }
        if (!u) {
            ospab_result_error(p, res, 404, "user not found", NULL);
            return;
        }
        if (!ospab_mail_addr_ok(u->email)) {
            ospab_result_error(p, res, 422, "the user's e-mail address cannot be used", NULL);
            return;
        }
        to = u->email;
        v = ospab_json_own(p, ospab_mail_vars_with_name(vars, u->name));
        if ((errors = ospab_mail_render(p, tmpl, v, &subject, &text)) != NULL) {
            notify_invalid(p, res, errors);   /* the user's name does not fit a line */
            return;
        }
    }

    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (ospab_mail_insert(db, p, a->now, to, tmpl, subject, text,
                          key ? apr_pstrcat(p, "notify:", key, NULL) : NULL, &id, &dup, &why)
        != APR_SUCCESS) {
        if (ospab_db_is_constraint(db)) {
            /* a twin request with the same key committed first: answer with its row */
            const char *k = apr_pstrcat(p, "notify:", key, NULL);

            ospab_db_end(db, 0);
            if (ospab_db_select_value(db, p, "ospab_mail_by_key", 1, &k, &queued)
                    == APR_SUCCESS && queued) {
                notify_queued(p, res, queued, 1);
                return;
            }
        }
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (dup) {
        ospab_db_end(db, 0);
        notify_queued(p, res, id, 1);
        return;
    }
    details = json_pack("{s:s, s:s*, s:s*, s:s*}", "template", tmpl, "userId", user_id,
                        "to", user_id ? NULL : to, "key", key);
    if (ospab_audit(db, p, a, "notify.queue", "email", id, details) != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    notify_queued(p, res, id, 0);
}

