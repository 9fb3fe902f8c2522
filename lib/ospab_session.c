/* ospab core: login, refresh rotation with reuse detection, logout. */
#include <string.h>

#include <apr_strings.h>
#include <apr_base64.h>
#include <apr_general.h>

#include "ospab_session.h"
#include "ospab_json.h"
#include "ospab_util.h"
#include "ospab_resource.h"
#include "ospab_events.h"

/* A yescrypt hash of a random password: verifying against it when the e-mail is unknown
 * takes as long as a real check, so response times do not tell which accounts exist. */
static const char dummy_hash[] =
    "$y$j9T$LHefwhqfO.nDZhOM.RzxI0$7HgEhL/5RG9EkOo8.EU3CbdTjMe2E9wBRWcAo4uZXfB";

static const char *random_b64url(apr_pool_t *p, apr_size_t n)
{
    unsigned char raw[48];
    char *s = apr_palloc(p, (apr_size_t)apr_base64_encode_len((int)n));
    char *c;

    apr_generate_random_bytes(raw, n);
    apr_base64_encode(s, (const char *)raw, (int)n);
    for (c = s; *c; ++c) {
        if (*c == '+') {
            *c = '-';
        }
        else if (*c == '/') {
            *c = '_';
        }
        else if (*c == '=') {
            *c = '\0';
            break;
        }
    }
    return s;
}

static const char *body_string(json_t *body, const char *key)
{
    json_t *v = json_object_get(body, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *user_brief(ospab_row_t u)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", ospab_json_int_or_null(u[0]));
    json_object_set_new(o, "email", ospab_json_str_or_null(u[1]));
    json_object_set_new(o, "name", ospab_json_str_or_null(u[2]));
    json_object_set_new(o, "role", ospab_json_str_or_null(u[3]));
    return o;
}

/* Stores a new refresh token of family (parent may be NULL) and audits; the caller
 * has the transaction open. Returns the token or NULL (db->error says why). */
static const char *store_refresh(ospab_db_t *db, apr_pool_t *p, const ospab_session_conf_t *c,
                                 const ospab_actor_t *a, const char *user_id,
                                 const char *family, const char *parent)
{
    const char *token = random_b64url(p, 32);
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

static void tokens_ok(apr_pool_t *p, const ospab_session_conf_t *c, ospab_row_t user,
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
    ospab_row_t u = NULL;
    int ok;

    memset(res, 0, sizeof(*res));
    if (!json_is_object(body) || !email || !password || !*email || !*password) {
        ospab_result_error(p, res, 400, "email and password are required", NULL);
        return;
    }
    key = ospab_email_key(p, email);
    if (key && ospab_db_select_one(db, p, "ospab_auth_user_by_email", 1, &key, &u)
               != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    ok = ospab_password_verify(password, u && u[5] ? u[5] : dummy_hash);
    if (!u || !ok || !u[5] || !u[4] || !strcmp(u[4], "0")) {
        ospab_result_error(p, res, 401, "invalid email or password", NULL);
        return;
    }
    family = ospab_random_hex(p, 16);
    if (ospab_jwt_issue(p, c->jwt, apr_atoi64(u[0]), u[3], family, a->now, &access)
        != APR_SUCCESS) {
        res->log = "could not sign an access token (is OspabJWTSigningKey set?)";
        ospab_result_error(p, res, 500, "login is not available", NULL);
        return;
    }
    if (ospab_db_begin(db, p) != APR_SUCCESS
        || !(refresh = store_refresh(db, p, c, a, u[0], family, NULL))
        || audit(db, p, a, "auth.login", u[0]) != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    tokens_ok(p, c, u, access, refresh, res);
}

/* The refresh token's row: id, user_id, family_id, expires_at, used_at, revoked_at. */
static int find_refresh(ospab_db_t *db, apr_pool_t *p, json_t *body, ospab_row_t *row,
                        ospab_result_t *res)
{
    const char *token = body_string(body, "refreshToken");
    const char *hash;

    if (!json_is_object(body) || !token || !*token || strlen(token) > 512) {
        ospab_result_error(p, res, 400, "refreshToken is required", NULL);
        return 0;
    }
    hash = ospab_sha256_hex(p, token, strlen(token));
    if (ospab_db_select_one(db, p, "ospab_rt_get", 1, &hash, row) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return 0;
    }
    return 1;
}

static void revoke_family(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                          ospab_row_t rt, const char *why, ospab_result_t *res)
{
    const char *args[2] = { ospab_time_db(p, a->now), rt[2] };

    if (ospab_db_begin(db, p) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_rt_revoke_family", 2, args, NULL) != APR_SUCCESS
        || ospab_event_access(db, p, a->now, rt[1], rt[2], "revoked") != APR_SUCCESS
        || audit(db, p, a, "auth.refresh_reuse", rt[1]) != APR_SUCCESS
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
    ospab_row_t rt, u;
    int n = 0;

    memset(res, 0, sizeof(*res));
    if (!find_refresh(db, p, body, &rt, res)) {
        return;
    }
    if (!rt || rt[5]) {
        ospab_result_error(p, res, 401, rt ? "refresh token revoked" : "invalid refresh token",
                           NULL);
        return;
    }
    if (rt[4]) {
        revoke_family(db, p, a, rt, "a spent refresh token was presented again", res);
        return;
    }
    if (strcmp(rt[3], now) <= 0) {
        ospab_result_error(p, res, 401, "refresh token expired", NULL);
        return;
    }
    if (ospab_db_select_one(db, p, "ospab_user_get", 1, &rt[1], &u) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!u || !u[4] || !strcmp(u[4], "0")) {
        ospab_result_error(p, res, 401, "account disabled", NULL);
        return;
    }
    if (ospab_jwt_issue(p, c->jwt, apr_atoi64(u[0]), u[3], rt[2], a->now, &access)
        != APR_SUCCESS) {
        res->log = "could not sign an access token";
        ospab_result_error(p, res, 500, "refresh is not available", NULL);
        return;
    }
    args[0] = now;
    args[1] = rt[0];
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
    if (!(refresh = store_refresh(db, p, c, a, u[0], rt[2], rt[0]))
        || audit(db, p, a, "auth.refresh", u[0]) != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    tokens_ok(p, c, u, access, refresh, res);
}

void ospab_session_logout(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a, json_t *body,
                          ospab_result_t *res)
{
    ospab_row_t rt;
    json_t *o;

    memset(res, 0, sizeof(*res));
    if (!find_refresh(db, p, body, &rt, res)) {
        return;
    }
    if (rt && !rt[5]) {
        const char *args[2] = { ospab_time_db(p, a->now), rt[2] };

        if (ospab_db_begin(db, p) != APR_SUCCESS
            || ospab_db_exec(db, p, "ospab_rt_revoke_family", 2, args, NULL) != APR_SUCCESS
            || ospab_event_access(db, p, a->now, rt[1], rt[2], "logout") != APR_SUCCESS
            || audit(db, p, a, "auth.logout", rt[1]) != APR_SUCCESS
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

apr_status_t ospab_session_principal(ospab_db_t *db, apr_pool_t *p,
                                     const ospab_jwt_claims_t *claims, ospab_principal_t *who,
                                     const char **why)
{
    const char *id = apr_psprintf(p, "%" APR_INT64_T_FMT, claims->user_id);
    const char *args[2] = { claims->sid, id };
    ospab_row_t u = NULL;
    apr_status_t rv;

    if (claims->sid[0]) {
        rv = ospab_db_select_one(db, p, "ospab_principal_sid", 2, args, &u);
    }
    else {
        rv = ospab_db_select_one(db, p, "ospab_principal", 1, &id, &u);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* enabled role [session live] */
    if (!u || !u[0] || strcmp(u[0], "1")) {
        *why = "unknown or disabled user";
        return APR_EACCES;
    }
    if (claims->sid[0] && (!u[2] || strcmp(u[2], "1"))) {
        *why = "session ended: log in again";
        return APR_EACCES;
    }
    who->user_id = id;
    who->admin = u[1] && !strcmp(u[1], "admin");
    who->session = claims->sid[0] ? apr_pstrdup(p, claims->sid) : NULL;
    return APR_SUCCESS;
}
