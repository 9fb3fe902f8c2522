/* mod_ospab: POST /api/notify, the main site's own e-mails (payment reminders, ticket
 * replies, password resets) through the panel's outbox. Authenticated like the sync API
 * (X-API-Key); the work is ospab_notify() in the core (lib/ospab_outbox.c). */
#include "mod_ospab.h"
#include "ospab_outbox.h"

/* the sync API's answer to a missing or wrong key (docs/sync-api.md) */
static int key_refused(request_rec *r, const char *msg)
{
    apr_table_setn(r->err_headers_out, "WWW-Authenticate",
                   "ApiKey realm=\"ospab\", header=\"X-API-Key\"");
    return ospab_mod_error(r, HTTP_UNAUTHORIZED, msg);
}

int ospab_mod_handle_notify(request_rec *r, const ospab_route_match_t *m)
{
    ospab_srv_conf_t *sc = ospab_mod_srv_conf(r);
    const char *key = apr_table_get(r->headers_in, "X-API-Key"), *body;
    ospab_actor_t actor;
    ospab_result_t res;
    ospab_db_t *db;
    json_t *req;
    apr_size_t len;
    int rc;

    if (!key || !*key) {
        return key_refused(r, "missing X-API-Key header");
    }
    if (sc->sync_key_set != 1 || !ospab_key_matches(sc->sync_key_digest, key)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, OSPAB_LOGNO(00701)
                      "notify: invalid X-API-Key from %s", r->useragent_ip);
        return key_refused(r, "invalid API key");
    }
    rc = ospab_mod_read_json(r, &req, &body, &len);
    if (!req) {
        return rc;
    }
    if (!(db = ospab_mod_db(r))) {
        return ospab_mod_error(r, HTTP_SERVICE_UNAVAILABLE, "database unavailable");
    }
    actor.type = "sync";
    actor.id = NULL;
    actor.remote_addr = r->useragent_ip;
    actor.now = apr_time_now();
    ospab_notify(db, r->pool, &actor, req, apr_table_get(r->headers_in, "Idempotency-Key"),
                 &res);
    return ospab_mod_finish(r, &res);
}
