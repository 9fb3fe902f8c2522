/* mod_ospab: /api/auth/login, /refresh, /logout, /me. */
#include <string.h>
#include <strings.h>

#include <util_cookies.h>

#include "mod_ospab.h"
#include "ospab_json.h"
#include "ospab_session.h"
#include "ospab_user.h"

/* login, refresh and logout as the core has them */
typedef void session_fn(ospab_db_t *db, apr_pool_t *p, const ospab_session_conf_t *c,
                        const ospab_actor_t *a, json_t *body, ospab_result_t *res);

static void actor_of(request_rec *r, ospab_actor_t *a)
{
    memset(a, 0, sizeof(*a));
    a->type = "user";
    a->remote_addr = r->useragent_ip;
    a->now = apr_time_now();
}

/* A login, refresh or logout, as ospab_mod_run runs it. */
typedef struct {
    session_fn *fn;
    ospab_db_t *db;
    apr_pool_t *p;
    const ospab_session_conf_t *conf;
    ospab_actor_t *actor;
    json_t *body;
} session_call_t;

static void session_op(void *ctx, ospab_result_t *res)
{
    session_call_t *c = ctx;

    c->fn(c->db, c->p, c->conf, c->actor, c->body, res);
}

static void session_conf(request_rec *r, ospab_session_conf_t *c)
{
    ospab_srv_conf_t *sc = ospab_mod_srv_conf(r);

    c->jwt = &sc->jwt;
    c->refresh_ttl = sc->refresh_ttl != -1 ? sc->refresh_ttl : OSPAB_DEFAULT_REFRESH_TTL;
    c->user_agent = apr_table_get(r->headers_in, "User-Agent");
}

/* Browsers (the panel in www/) keep the refresh token where their JavaScript cannot read
 * it: an HttpOnly cookie sent to /api/auth/ alone. API clients keep the JSON refresh token;
 * a body that names a refreshToken always wins over the cookie. */
#define REFRESH_COOKIE "ospab_refresh"
#define REFRESH_COOKIE_PATH "/api/auth/"

static void refresh_cookie(request_rec *r, const char *token, int max_age)
{
    int https = !strcasecmp(ap_http_scheme(r), "https");

    apr_table_addn(r->err_headers_out, "Set-Cookie", apr_psprintf(r->pool,
                   REFRESH_COOKIE "=%s; Path=" REFRESH_COOKIE_PATH "; Max-Age=%d; HttpOnly; "
                   "SameSite=Strict%s", token ? token : "", token ? max_age : 0,
                   https ? "; Secure" : ""));
}

/* The answer's refresh token moves from the JSON body into the cookie. */
static void token_to_cookie(request_rec *r, ospab_result_t *res)
{
    ospab_srv_conf_t *sc = ospab_mod_srv_conf(r);
    json_t *t = res->body ? json_object_get(res->body, "refreshToken") : NULL;

    if (json_is_string(t)) {
        refresh_cookie(r, apr_pstrdup(r->pool, json_string_value(t)),
                       sc->refresh_ttl != -1 ? sc->refresh_ttl : OSPAB_DEFAULT_REFRESH_TTL);
        json_object_del(res->body, "refreshToken");
    }
}

/* A cookie goes with every request to its path, whoever's page made it: a request the
 * cookie authenticates must come from this site's own pages, whose Origin is the scheme
 * (ServerName https://... behind a TLS proxy) and the Host the browser asked for. */
static int own_origin(request_rec *r)
{
    const char *origin = apr_table_get(r->headers_in, "Origin");
    const char *host = apr_table_get(r->headers_in, "Host");

    return origin && host && !strcasecmp(origin, apr_pstrcat(r->pool, ap_http_scheme(r),
                                                              "://", host, NULL));
}

static int foreign_origin(request_rec *r)
{
    return ospab_mod_error(r, HTTP_FORBIDDEN, "the refresh cookie is accepted from this "
                           "site's own pages only (Origin)");
}

static int too_many(request_rec *r, int wait, const char *what)
{
    ospab_mod_metric(OSPAB_METRIC_RL_LOGIN);
    apr_table_setn(r->err_headers_out, "Retry-After", apr_itoa(r->pool, wait));
    return ospab_mod_error(r, HTTP_TOO_MANY_REQUESTS, apr_psprintf(r->pool,
                           "too many %s; try again in %d seconds", what, wait));
}

/* Login attempts are counted in shared memory under three keys: failures per client
 * address and per account (OspabRateLimit's first number), and every login of an account,
 * successful or not (its third). Every attempt is taken before anything is checked, so
 * parallel guesses cannot overtake the counters and a request without a password counts
 * like a wrong one; only a success (or the server's own failure) gives the failure
 * attempts back. The account is its e-mail's login key (ospab_email_key), the same the
 * lookup uses: "Demo@x " and "demo@x" share one counter. */
int ospab_mod_handle_login(request_rec *r, const ospab_route_match_t *m)
{
    ospab_srv_conf_t *sc = ospab_mod_srv_conf(r);
    ospab_ratelimit_t *rl = ospab_mod_ratelimit();
    int limit = sc->rl_limit != -1 ? sc->rl_limit : OSPAB_DEFAULT_RL_LIMIT;
    int window = sc->rl_window != -1 ? sc->rl_window : OSPAB_DEFAULT_RL_WINDOW;
    int logins = sc->rl_logins != -1 ? sc->rl_logins : OSPAB_DEFAULT_RL_LOGINS;
    ospab_session_conf_t conf;
    ospab_actor_t actor;
    ospab_result_t res;
    ospab_db_t *db;
    json_t *body, *email;
    const char *raw, *ip_key, *acct_key = NULL, *login_key = NULL, *what = "failed logins";
    apr_size_t len;
    int rc, wait = 0, cookie = 0;
    json_t *session;

    if (!sc->jwt.sign_key) {
        return ospab_mod_error(r, HTTP_NOT_IMPLEMENTED, "login is handled by the identity "
                               "provider: no OspabJWTSigningKey is configured");
    }
    if (!ospab_mod_json_body(r, &body, &raw, &len, &rc)) {
        return rc;
    }
    /* "session": "cookie" (the browser's way) or "token" (the default) */
    session = json_is_object(body) ? json_object_get(body, "session") : NULL;
    if (session) {
        const char *v = json_is_string(session) ? json_string_value(session) : "";

        if (!strcmp(v, "cookie")) {
            cookie = 1;
        }
        else if (strcmp(v, "token")) {
            return ospab_mod_error(r, HTTP_BAD_REQUEST,
                                   "session must be \"cookie\" or \"token\"");
        }
    }
    /* a page elsewhere must not log a browser into an account of its choosing */
    if (cookie && apr_table_get(r->headers_in, "Origin") && !own_origin(r)) {
        return foreign_origin(r);
    }
    actor_of(r, &actor);
    ip_key = apr_pstrcat(r->pool, "ip:", r->useragent_ip, NULL);
    email = json_object_get(body, "email");
    if (json_is_string(email)) {
        const char *k = ospab_email_key(r->pool, json_string_value(email));

        if (k) {
            acct_key = apr_pstrcat(r->pool, "acct:", k, NULL);
            login_key = apr_pstrcat(r->pool, "login:", k, NULL);
        }
    }
    if (rl) {
        wait = ospab_ratelimit_take(rl, ip_key, limit, window, actor.now);
        if (!wait && acct_key
            && (wait = ospab_ratelimit_take(rl, acct_key, limit, window, actor.now)) > 0) {
            ospab_ratelimit_give_back(rl, ip_key, window, actor.now);
        }
        if (!wait && login_key
            && (wait = ospab_ratelimit_take(rl, login_key, logins, window, actor.now)) > 0) {
            ospab_ratelimit_give_back(rl, ip_key, window, actor.now);
            ospab_ratelimit_give_back(rl, acct_key, window, actor.now);
            what = "logins to this account";
        }
    }
    if (wait > 0) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, OSPAB_LOGNO(00501)
                      "login rate limit reached for %s", r->useragent_ip);
        return too_many(r, wait, what);
    }
    if (!(db = ospab_mod_db(r))) {
        memset(&res, 0, sizeof(res));
        ospab_result_error(r->pool, &res, HTTP_SERVICE_UNAVAILABLE, "database unavailable",
                           NULL);
    }
    else {
        session_call_t call = { ospab_session_login, db, r->pool, &conf, &actor, body };

        session_conf(r, &conf);
        ospab_mod_run(r, db, &actor, session_op, &call, &res);
    }
    if (res.status == HTTP_UNAUTHORIZED) {
        /* who tried, never with what */
        ospab_mod_metric(OSPAB_METRIC_LOGIN_FAILED);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, OSPAB_LOGNO(00502)
                      "failed login from %s", r->useragent_ip);
    }
    else if (rl && (res.status == HTTP_OK || res.status >= 500)) {
        ospab_ratelimit_give_back(rl, ip_key, window, actor.now);
        if (acct_key) {
            ospab_ratelimit_give_back(rl, acct_key, window, actor.now);
        }
        if (res.status >= 500 && login_key) {
            ospab_ratelimit_give_back(rl, login_key, window, actor.now);
        }
    }
    if (cookie && res.status == HTTP_OK) {
        token_to_cookie(r, &res);
    }
    return ospab_mod_finish(r, &res);
}


static int without_body(request_rec *r)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");

    return !apr_table_get(r->headers_in, "Transfer-Encoding") && (!cl || !strcmp(cl, "0"));
}

/* Refresh and logout take the refresh token from the JSON body, or, when the body names
 * none (an empty body or {} will do), from the cookie: then the request must come from the
 * site's own pages, and the answer's new token goes back into the cookie. Rotation and
 * reuse detection are the core's (ospab_session.c), whichever way the token came. */
static int with_refresh_token(request_rec *r, session_fn *fn, int logout)
{
    ospab_session_conf_t conf;
    ospab_actor_t actor;
    ospab_result_t res;
    ospab_db_t *db;
    json_t *body;
    const char *raw, *cookie = NULL;
    apr_size_t len;
    int rc, from_cookie = 0;

    if (ap_cookie_read(r, REFRESH_COOKIE, &cookie, 0) != APR_SUCCESS || (cookie && !*cookie)) {
        cookie = NULL;
    }
    if (cookie && without_body(r)) {
        body = ospab_json_own(r->pool, json_object());
    }
    else if (!ospab_mod_json_body(r, &body, &raw, &len, &rc)) {
        return rc;
    }
    if (cookie && json_is_object(body) && !json_object_get(body, "refreshToken")) {
        if (!own_origin(r)) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, OSPAB_LOGNO(00504)
                          "refresh cookie from another origin refused (%s)", r->useragent_ip);
            return foreign_origin(r);
        }
        json_object_set_new(body, "refreshToken", json_string(cookie));
        from_cookie = 1;
    }
    if (!(db = ospab_mod_db(r))) {
        return ospab_mod_error(r, HTTP_SERVICE_UNAVAILABLE, "database unavailable");
    }
    actor_of(r, &actor);
    session_conf(r, &conf);
    {
        session_call_t call = { fn, db, r->pool, &conf, &actor, body };

        ospab_mod_run(r, db, &actor, session_op, &call, &res);
    }
    if (res.status == HTTP_UNAUTHORIZED && res.log) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, OSPAB_LOGNO(00503) "%s from %s",
                      res.log, r->useragent_ip);
        res.log = NULL;
    }
    if (from_cookie && res.status == HTTP_OK && !logout) {
        token_to_cookie(r, &res);
    }
    else if (from_cookie && (logout || res.status == HTTP_UNAUTHORIZED)) {
        refresh_cookie(r, NULL, 0);          /* spent, revoked or logged out: forget it */
    }
    return ospab_mod_finish(r, &res);
}

int ospab_mod_handle_refresh(request_rec *r, const ospab_route_match_t *m)
{
    return with_refresh_token(r, ospab_session_refresh, 0);
}

static void logout_fn(ospab_db_t *db, apr_pool_t *p, const ospab_session_conf_t *c,
                      const ospab_actor_t *a, json_t *body, ospab_result_t *res)
{
    ospab_session_logout(db, p, a, body, res);
}

int ospab_mod_handle_logout(request_rec *r, const ospab_route_match_t *m)
{
    return with_refresh_token(r, logout_fn, 1);
}

int ospab_mod_handle_me(request_rec *r, const ospab_route_match_t *m)
{
    ospab_principal_t who;
    ospab_db_t *db;
    const ospab_user_t *user;
    int done;

    if (!ospab_mod_caller(r, &db, &who, &done)) {
        return done;
    }
    if (ospab_user_load(db, r->pool, who.user_id, &user) != APR_SUCCESS) {
        return ospab_mod_error(r, HTTP_SERVICE_UNAVAILABLE, "database unavailable");
    }
    if (!user) {
        /* deleted since ospab_mod_caller looked it up: what its token would get now */
        return ospab_mod_unauthorized(r, "invalid_token", "unknown or disabled user");
    }
    return ospab_mod_respond(r, HTTP_OK, ospab_json_own(r->pool,
                                                        ospab_user_record_json(r->pool, user)));
}
