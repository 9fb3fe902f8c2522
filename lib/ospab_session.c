/* ospab core: login, refresh rotation with reuse detection, logout. */
#include <stddef.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_general.h>

#include "ospab_session.h"
#include "ospab_user.h"
#include "ospab_json.h"
#include "ospab_util.h"
#include "ospab_resource.h"
#include "ospab_events.h"

/* A yescrypt hash of a random password: verifying against it when the e-mail is unknown
 * takes as long as a real check, so response times do not tell which accounts exist. */
static const char dummy_hash[] =
    "$y$j9T$LHefwhqfO.nDZhOM.RzxI0$7HgEhL/5RG9EkOo8.EU3CbdTjMe2E9wBRWcAo4uZXfB";

static const char *body_string(json_t *body, const char *key)
{
    json_t *v = json_object_get(body, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *user_brief(const ospab_user_t *u)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", ospab_json_int_or_null(u->id));
    json_object_set_new(o, "email", ospab_json_str_or_null(u->email));
    json_object_set_new(o, "name", ospab_json_str_or_null(u->name));
    json_object_set_new(o, "role", ospab_json_str_or_null(u->role));
    return o;
}

/* Stores a new refresh token of family (parent may be NULL) and audits; the caller
 * has the transaction open. Returns the token or NULL (db->error says why). */
static const char *store_refresh(ospab_db_t *db, apr_pool_t *p, const ospab_session_conf_t *c,
                                 const ospab_actor_t *a, const char *user_id,
                                 const char *family, const char *parent)
{
    const char *token = ospab_random_token(p, 32);
    const char *args[8];

    args[0] = user_id;
    args[1] = family;
    args[2] = ospab_sha256_hex(p, token, strlen(token));
    args[3] = parent;
    args[4] = ospab_time_db(p, a->now + apr_time_from_sec(c->refresh_ttl));
    args[5] = ospab_time_db(p, a->now);
    args[6] = c->user_agent ? apr_pstrndup(p, c->user_agent, 255) : NULL;
    args[7] = a->remote_addr;
    return ospab_db_exec(db, p, "ospab_rt_insert", 8, args, NULL) == APR_SUCCESS ? token
                                                                                 : NULL;
}

/* The user acts on their own account. */
static apr_status_t audit(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                          const char *action, const char *user_id)
{
    ospab_actor_t self = *a;

    self.type = "user";
    self.id = user_id;
    return ospab_audit(db, p, &self, action, "user", user_id, NULL);
}

static void tokens_ok(apr_pool_t *p, const ospab_session_conf_t *c, const ospab_user_t *user,
                      const char *access, const char *refresh, ospab_result_t *res)
{
    json_t *o = json_object();

    json_object_set_new(o, "accessToken", json_string(access));
    json_object_set_new(o, "refreshToken", json_string(refresh));
    json_object_set_new(o, "tokenType", json_string("Bearer"));
    json_object_set_new(o, "expiresIn", json_integer(c->jwt->access_ttl));
    json_object_set_new(o, "user", user_brief(user));
    res->status = 200;
    res->body = ospab_json_own(p, o);
}

void ospab_session_login(ospab_db_t *db, apr_pool_t *p, const ospab_session_conf_t *c,
                         const ospab_actor_t *a, json_t *body, ospab_result_t *res)
{
    const char *email = body_string(body, "email");
    const char *password = body_string(body, "password");
    const char *refresh, *access, *family, *key;
    ospab_row_t r = NULL;
    ospab_user_t u = { 0 };
    int ok;

    memset(res, 0, sizeof(*res));
    if (!json_is_object(body) || !email || !password || !*email || !*password) {
        ospab_result_error(p, res, 400, "email and password are required", NULL);
        return;
    }
    key = ospab_email_key(p, email);
    if (key && ospab_db_select_one(db, p, "ospab_auth_user_by_email", 1, &key, &r)
               != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (r) {
        ospab_row_fill(&ospab_user_auth_row, r, &u);
    }
    /* a password is checked also for no account, so that timing does not tell */
    ok = ospab_password_verify(password, u.password_hash ? u.password_hash : dummy_hash);
    if (!r || !ok || !u.password_hash || !ospab_user_enabled(u.enabled)) {
        ospab_result_error(p, res, 401, "invalid email or password", NULL);
        return;
    }
    family = ospab_random_hex(p, 16);
    if (ospab_jwt_issue(p, c->jwt, apr_atoi64(u.id), u.role, family, a->now, &access)
        != APR_SUCCESS) {
        res->log = "could not sign an access token (is OspabJWTSigningKey set?)";
        ospab_result_error(p, res, 500, "login is not available", NULL);
        return;
    }
    if (ospab_db_begin(db, p) != APR_SUCCESS
        || !(refresh = store_refresh(db, p, c, a, u.id, family, NULL))
        || audit(db, p, a, "auth.login", u.id) != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    tokens_ok(p, c, &u, access, refresh, res);
}

/* A refresh_tokens row (ospab_rt_get). */
typedef struct {
    const char *id, *user_id, *family_id, *expires_at, *used_at, *revoked_at;
} refresh_row_t;

static const apr_size_t refresh_cols[] = {
    offsetof(refresh_row_t, id), offsetof(refresh_row_t, user_id),
    offsetof(refresh_row_t, family_id), offsetof(refresh_row_t, expires_at),
    offsetof(refresh_row_t, used_at), offsetof(refresh_row_t, revoked_at)
};
static const ospab_row_shape_t refresh_shape =
    OSPAB_ROW_SHAPE(refresh_cols, refresh_row_t, OSPAB_ROW_NO_RAW);

/* The presented refresh token's row (*found: NULL when unknown). 1: go on; 0: res is
 * set. */
static int find_refresh(ospab_db_t *db, apr_pool_t *p, json_t *body,
                        const refresh_row_t **found, ospab_result_t *res)
{
    const char *token = body_string(body, "refreshToken");
    const char *hash;
    ospab_row_t r = NULL;
    refresh_row_t *rt;

    if (!json_is_object(body) || !token || !*token || strlen(token) > 512) {
        ospab_result_error(p, res, 400, "refreshToken is required", NULL);
        return 0;
    }
    hash = ospab_sha256_hex(p, token, strlen(token));
    if (ospab_db_select_one(db, p, "ospab_rt_get", 1, &hash, &r) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return 0;
    }
    *found = NULL;
    if (r) {
        rt = apr_palloc(p, sizeof(*rt));
        ospab_row_fill(&refresh_shape, r, rt);
        *found = rt;
    }
    return 1;
}

static void revoke_family(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                          const refresh_row_t *rt, const char *why, ospab_result_t *res)
{
    const char *args[2] = { ospab_time_db(p, a->now), rt->family_id };

    if (ospab_db_begin(db, p) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_rt_revoke_family", 2, args, NULL) != APR_SUCCESS
        || ospab_event_access(db, p, a->now, rt->user_id, rt->family_id, "revoked")
           != APR_SUCCESS
        || audit(db, p, a, "auth.refresh_reuse", rt->user_id) != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    res->log = why;
    ospab_result_error(p, res, 401, "refresh token was already used: every session of this "
                       "login has been revoked, log in again", NULL);
}

void ospab_session_refresh(ospab_db_t *db, apr_pool_t *p, const ospab_session_conf_t *c,
                           const ospab_actor_t *a, json_t *body, ospab_result_t *res)
{
    const char *now = ospab_time_db(p, a->now);
    const char *args[2];
    const char *access, *refresh;
    const refresh_row_t *rt;
    const ospab_user_t *u;
    int n = 0;

    memset(res, 0, sizeof(*res));
    if (!find_refresh(db, p, body, &rt, res)) {
        return;
    }
    if (!rt || rt->revoked_at) {
        ospab_result_error(p, res, 401, rt ? "refresh token revoked" : "invalid refresh token",
                           NULL);
        return;
    }
    if (rt->used_at) {
        revoke_family(db, p, a, rt, "a spent refresh token was presented again", res);
        return;
    }
    if (strcmp(rt->expires_at, now) <= 0) {
        ospab_result_error(p, res, 401, "refresh token expired", NULL);
        return;
    }
    if (ospab_user_load(db, p, rt->user_id, &u) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!u || !ospab_user_enabled(u->enabled)) {
        ospab_result_error(p, res, 401, "account disabled", NULL);
        return;
    }
    if (ospab_jwt_issue(p, c->jwt, apr_atoi64(u->id), u->role, rt->family_id, a->now, &access)
        != APR_SUCCESS) {
        res->log = "could not sign an access token";
        ospab_result_error(p, res, 500, "refresh is not available", NULL);
        return;
    }
    args[0] = now;
    args[1] = rt->id;
    if (ospab_db_begin(db, p) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_rt_use", 2, args, &n) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (n != 1) {
        /* a concurrent refresh with the same token won: that is reuse too */
        ospab_db_end(db, 0);
        revoke_family(db, p, a, rt, "a refresh token was used twice at once", res);
        return;
    }
    if (!(refresh = store_refresh(db, p, c, a, u->id, rt->family_id, rt->id))
        || audit(db, p, a, "auth.refresh", u->id) != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    tokens_ok(p, c, u, access, refresh, res);
}

void ospab_session_logout(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a, json_t *body,
                          ospab_result_t *res)
{
    const refresh_row_t *rt;
    json_t *o;

    memset(res, 0, sizeof(*res));
    if (!find_refresh(db, p, body, &rt, res)) {
        return;
    }
    if (rt && !rt->revoked_at) {
        const char *args[2] = { ospab_time_db(p, a->now), rt->family_id };

        if (ospab_db_begin(db, p) != APR_SUCCESS
            || ospab_db_exec(db, p, "ospab_rt_revoke_family", 2, args, NULL) != APR_SUCCESS
            || ospab_event_access(db, p, a->now, rt->user_id, rt->family_id, "logout")
               != APR_SUCCESS
            || audit(db, p, a, "auth.logout", rt->user_id) != APR_SUCCESS
            || ospab_db_end(db, 1) != APR_SUCCESS) {
            ospab_result_db_failed(db, p, res);
            return;
        }
    }
    o = json_object();
    json_object_set_new(o, "status", json_string("success"));
    json_object_set_new(o, "message", json_string("logged out"));
    res->status = 200;
    res->body = ospab_json_own(p, o);
}

apr_status_t ospab_session_revoke_user(ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                                       const char *user_id, int *n)
{
    const char *args[2] = { ospab_time_db(p, now), user_id };

    return ospab_db_exec(db, p, "ospab_rt_revoke_user", 2, args, n);
}

/* The row of ospab_principal (enabled, role) or ospab_principal_sid (enabled, role, live). */
typedef struct {
    const char *enabled, *role;
    const char *live;               /* "1": the login (refresh-token family) is not over */
} principal_row_t;

static const apr_size_t principal_cols[] = {
    offsetof(principal_row_t, enabled), offsetof(principal_row_t, role),
    offsetof(principal_row_t, live)
};
/* ospab_principal has no third column */
static const ospab_row_shape_t principal_shape =
    { principal_cols, 2, sizeof(principal_row_t), OSPAB_ROW_NO_RAW };
static const ospab_row_shape_t principal_sid_shape =
    OSPAB_ROW_SHAPE(principal_cols, principal_row_t, OSPAB_ROW_NO_RAW);

/* Who claims name by the user's row u (NULL: no such user); see ospab_session_principal. */
static apr_status_t principal(apr_pool_t *p, const ospab_jwt_claims_t *claims, const char *id,
                              const principal_row_t *u, ospab_principal_t *who,
                              const char **why)
{
    if (!u || !ospab_user_enabled(u->enabled)) {
        *why = "unknown or disabled user";
        return APR_EACCES;
    }
    if (claims->sid[0] && (!u->live || strcmp(u->live, "1"))) {
        *why = "session ended: log in again";
        return APR_EACCES;
    }
    who->user_id = id;
    who->admin = u->role && !strcmp(u->role, "admin");
    who->session = claims->sid[0] ? apr_pstrdup(p, claims->sid) : NULL;
    return APR_SUCCESS;
}

apr_status_t ospab_session_principal(ospab_db_t *db, apr_pool_t *p,
                                     const ospab_jwt_claims_t *claims, ospab_principal_t *who,
                                     const char **why)
{
    const char *id = apr_psprintf(p, "%" APR_INT64_T_FMT, claims->user_id);
    const char *args[2] = { claims->sid, id };
    ospab_row_t r = NULL;
    principal_row_t u = { NULL, NULL, NULL };
    apr_status_t rv;

    if (claims->sid[0]) {
        rv = ospab_db_select_one(db, p, "ospab_principal_sid", 2, args, &r);
    }
    else {
        rv = ospab_db_select_one(db, p, "ospab_principal", 1, &id, &r);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (r) {
        ospab_row_fill(claims->sid[0] ? &principal_sid_shape : &principal_shape, r, &u);
    }
    return principal(p, claims, id, r ? &u : NULL, who, why);
}

apr_status_t ospab_session_list(ospab_db_t *db, apr_pool_t *p, const ospab_jwt_claims_t *claims,
                                ospab_list_e kind, ospab_page_t *pg, ospab_principal_t *who,
                                ospab_result_t *res, const char **why)
{
    const char *id = apr_psprintf(p, "%" APR_INT64_T_FMT, claims->user_id);
    const char *args[3] = { claims->sid, pg->after, id };
    apr_array_header_t *rows, *first;
    principal_row_t u = { NULL, NULL, NULL };
    apr_status_t rv;
    int i;

    rv = ospab_db_select(db, p, ospab_customer_list_first(kind, pg), 3, args, &rows, NULL);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* no row: nothing on this page, or no such user - the user's row alone decides */
    if (!rows->nelts) {
        rv = ospab_session_principal(db, p, claims, who, why);
    }
    else {
        ospab_row_fill(&principal_sid_shape, APR_ARRAY_IDX(rows, 0, ospab_row_t), &u);
        rv = principal(p, claims, id, &u, who, why);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* the list's own columns */
    first = apr_array_make(p, rows->nelts ? rows->nelts : 1, sizeof(ospab_row_t));
    for (i = 0; i < rows->nelts; ++i) {
        APR_ARRAY_PUSH(first, ospab_row_t) = APR_ARRAY_IDX(rows, i, ospab_row_t)
                                             + OSPAB_PRINCIPAL_COLS;
    }
    ospab_customer_list(db, p, who, kind, pg, first, res);
    return APR_SUCCESS;
}
