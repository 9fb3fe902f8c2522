/* mod_ospab: "Authorization: Bearer <JWT>" for the customer routes. */
#include <string.h>
#include <strings.h>

#include "mod_ospab.h"
#include "ospab_session.h"

int ospab_mod_unauthorized(request_rec *r, const char *error, const char *description)
{
    const char *challenge = error
        ? apr_psprintf(r->pool, "Bearer realm=\"ospab\", error=\"%s\", error_description=\"%s\"",
                       error, description)
        : "Bearer realm=\"ospab\"";

    apr_table_setn(r->err_headers_out, "WWW-Authenticate", challenge);
    return ospab_mod_error(r, HTTP_UNAUTHORIZED, description);
}

int ospab_mod_token(request_rec *r, ospab_jwt_claims_t *claims, int *done)
{
    ospab_srv_conf_t *sc = ospab_mod_srv_conf(r);
    const char *h = apr_table_get(r->headers_in, "Authorization");
    const char *why;

    if (!h || !*h) {
        *done = ospab_mod_unauthorized(r, NULL, "missing bearer token");
        return 0;
    }
    if (strncasecmp(h, "Bearer ", 7) || !h[7]) {
        *done = ospab_mod_unauthorized(r, "invalid_request",
                                       "Authorization must be 'Bearer <token>'");
        return 0;
    }
    h += 7;
    while (*h == ' ') {
        ++h;
    }
    if (ospab_jwt_verify_cached(ospab_mod_jwt_cache(), r->pool, &sc->jwt, h, apr_time_now(),
                                claims, &why) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, OSPAB_LOGNO(00401)
                      "bearer token refused: %s", why);
        *done = ospab_mod_unauthorized(r, "invalid_token", why);
        return 0;
    }
    return 1;
}

int ospab_mod_principal(request_rec *r, ospab_db_t *db, apr_status_t rv, const char *why,
                        const ospab_principal_t *who, int *done)
{
    if (rv == APR_EACCES) {
        *done = ospab_mod_unauthorized(r, "invalid_token", why);
        return 0;
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, OSPAB_LOGNO(00402) "user lookup failed: %s",
                      db->error);
        *done = ospab_mod_error(r, HTTP_SERVICE_UNAVAILABLE, "database unavailable");
        return 0;
    }
    r->user = apr_pstrcat(r->pool, "user:", who->user_id, NULL);   /* for the access log */
    return 1;
}

int ospab_mod_bearer(request_rec *r, ospab_db_t *db, ospab_principal_t *who, int *done)
{
    ospab_jwt_claims_t claims;
    const char *why = NULL;
    apr_status_t rv;

    if (!ospab_mod_token(r, &claims, done)) {
        return 0;
    }
    /* the token names a user: the row decides (enabled, role, the login still live) */
    rv = ospab_session_principal(db, r->pool, &claims, who, &why);
    return ospab_mod_principal(r, db, rv, why, who, done);
}

int ospab_mod_caller(request_rec *r, ospab_db_t **db, ospab_principal_t *who, int *done)
{
    if (!(*db = ospab_mod_db(r))) {
        *done = ospab_mod_error(r, HTTP_SERVICE_UNAVAILABLE, "database unavailable");
        return 0;
    }
    return ospab_mod_bearer(r, *db, who, done);
}

/* The sync API's key (X-API-Key, docs/sync-api.md): compared in constant time with the
 * digest of OspabSyncKey. 1 when right; otherwise the 401 was sent and *done holds the
 * handler's return value. */
static int sync_key(request_rec *r, int *done)
{
    ospab_srv_conf_t *sc = ospab_mod_srv_conf(r);
    const char *key = apr_table_get(r->headers_in, "X-API-Key");
    const char *why = NULL;

    if (!key || !*key) {
        why = "missing X-API-Key header";
    }
    else if (sc->sync_key_set != 1 || !ospab_key_matches(sc->sync_key_digest, key)) {
        /* never the key itself: only who tried, and where */
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, OSPAB_LOGNO(00201)
                      "invalid X-API-Key from %s for %s", r->useragent_ip, r->uri);
        why = "invalid API key";
    }
    if (why) {
        apr_table_setn(r->err_headers_out, "WWW-Authenticate",
                       "ApiKey realm=\"ospab\", header=\"X-API-Key\"");
        *done = ospab_mod_error(r, HTTP_UNAUTHORIZED, why);
        return 0;
    }
    return 1;
}

int ospab_mod_sync_request(request_rec *r, json_t **req, const char **body, apr_size_t *len,
                           ospab_db_t **db, ospab_actor_t *actor, int *done)
{
    if (!sync_key(r, done)) {
        return 0;
    }
    if (!ospab_mod_json_body(r, req, body, len, done)) {
        return 0;
    }
    if (!(*db = ospab_mod_db(r))) {
        *done = ospab_mod_error(r, HTTP_SERVICE_UNAVAILABLE, "database unavailable");
        return 0;
    }
    memset(actor, 0, sizeof(*actor));
    actor->type = "sync";
    actor->remote_addr = r->useragent_ip;
    actor->now = apr_time_now();
    return 1;
}

void ospab_mod_actor(request_rec *r, const ospab_principal_t *who, ospab_actor_t *a)
{
    a->type = who->admin ? "admin" : "user";
    a->id = who->user_id;
    a->remote_addr = r->useragent_ip;
    a->now = apr_time_now();
}

const char *ospab_mod_route_id(request_rec *r, const ospab_route_match_t *m)
{
    return m->nparams > 0 ? apr_psprintf(r->pool, "%" APR_INT64_T_FMT, m->params[0]) : NULL;
}
