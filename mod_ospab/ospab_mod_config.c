/* mod_ospab: configuration directives, config-time checks and mod_dbd set-up. */
#include <string.h>
#include <stdlib.h>

#include <apr_hash.h>
#include <util_mutex.h>

#include "mod_ospab.h"

#define OSPAB_MIN_KEY_LEN 32

static APR_OPTIONAL_FN_TYPE(ap_dbd_acquire) *dbd_acquire;
static APR_OPTIONAL_FN_TYPE(ap_dbd_prepare) *dbd_prepare;

void *ospab_mod_create_srv_conf(apr_pool_t *p, server_rec *s)
{
    ospab_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->sync_key_set = -1;
    c->max_body = -1;
    c->jwt_leeway = -1;
    c->access_ttl = -1;
    c->refresh_ttl = -1;
    c->rl_limit = -1;
    c->rl_window = -1;
    return c;
}

void *ospab_mod_merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    ospab_srv_conf_t *base = basev, *add = addv;
    ospab_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));

    if (add->sync_key_set != -1) {
        c->sync_key_set = add->sync_key_set;
        memcpy(c->sync_key_digest, add->sync_key_digest, OSPAB_SHA256_LEN);
    }
    else {
        c->sync_key_set = base->sync_key_set;
        memcpy(c->sync_key_digest, base->sync_key_digest, OSPAB_SHA256_LEN);
    }
    c->max_body = add->max_body != -1 ? add->max_body : base->max_body;
#define MERGE_PTR(f) c->f = add->f ? add->f : base->f
#define MERGE_INT(f) c->f = add->f != -1 ? add->f : base->f
    MERGE_PTR(jwt_alg);
    MERGE_PTR(jwt_key);
    MERGE_PTR(jwt_signing_key);
    MERGE_PTR(jwt_issuer);
    MERGE_PTR(jwt_audience);
    MERGE_INT(jwt_leeway);
    MERGE_INT(access_ttl);
    MERGE_INT(refresh_ttl);
    MERGE_INT(rl_limit);
    MERGE_INT(rl_window);
#undef MERGE_PTR
#undef MERGE_INT
    return c;
}

ospab_srv_conf_t *ospab_mod_srv_conf(const request_rec *r)
{
    return ap_get_module_config(r->server->module_config, &ospab_module);
}

static const char *set_sync_key(cmd_parms *cmd, void *dc, const char *arg)
{
    ospab_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &ospab_module);
    const char *key, *err;
    const char *bad = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);

    if (bad) {
        return bad;
    }
    if (ospab_secret_resolve(cmd->temp_pool, arg, &key, &err) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    if (strlen(key) < OSPAB_MIN_KEY_LEN) {
        return apr_psprintf(cmd->pool, "%s: the key must be at least %d characters long "
                            "(it has %d); generate one with: openssl rand -hex 32",
                            cmd->cmd->name, OSPAB_MIN_KEY_LEN, (int)strlen(key));
    }
    /* only the digest is kept: the key itself never stays in server memory */
    ospab_sha256(key, strlen(key), c->sync_key_digest);
    c->sync_key_set = 1;
    return NULL;
}

static const char *set_max_body(cmd_parms *cmd, void *dc, const char *arg)
{
    ospab_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &ospab_module);
    char *end;
    apr_int64_t v = apr_strtoi64(arg, &end, 10);

    if (*end || v < 1024 || v > 64 * 1024 * 1024) {
        return apr_psprintf(cmd->pool, "%s: must be a number of bytes between 1024 and "
                            "67108864, not '%s'", cmd->cmd->name, arg);
    }
    c->max_body = (apr_off_t)v;
    return NULL;
}

static const char *set_jwt_alg(cmd_parms *cmd, void *dc, const char *arg)
{
    ospab_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &ospab_module);

    if (ospab_jwt_alg(arg) == JWT_ALG_INVAL) {
        return apr_psprintf(cmd->pool, "%s: must be HS256, RS256 or ES256, not '%s'",
                            cmd->cmd->name, arg);
    }
    c->jwt_alg = arg;
    return NULL;
}

/* OspabJWTKey / OspabJWTSigningKey: resolved now (root, at start-up), checked against the
 * algorithm in check_config once every directive has been read. */
static const char *set_secret(cmd_parms *cmd, void *dc, const char *arg)
{
    ospab_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &ospab_module);
    const char *bad = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    const char *value, *err;

    if (bad) {
        return bad;
    }
    if (ospab_secret_resolve(cmd->pool, arg, &value, &err) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    if (!strcmp(cmd->cmd->name, "OspabJWTKey")) {
        c->jwt_key = value;
    }
    else {
        c->jwt_signing_key = value;
    }
    return NULL;
}

static const char *set_text(cmd_parms *cmd, void *dc, const char *arg)
{
    ospab_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &ospab_module);

    if (!*arg) {
        return apr_psprintf(cmd->pool, "%s: must not be empty", cmd->cmd->name);
    }
    if (!strcmp(cmd->cmd->name, "OspabJWTIssuer")) {
        c->jwt_issuer = arg;
    }
    else {
        c->jwt_audience = arg;
    }
    return NULL;
}

static const char *parse_seconds(cmd_parms *cmd, const char *arg, int min, int max, int *out)
{
    char *end;
    apr_int64_t v = apr_strtoi64(arg, &end, 10);

    if (!*arg || *end || v < min || v > max) {
        return apr_psprintf(cmd->pool, "%s: must be a whole number from %d to %d, not '%s'",
                            cmd->cmd->name, min, max, arg);
    }
    *out = (int)v;
    return NULL;
}

static const char *set_seconds(cmd_parms *cmd, void *dc, const char *arg)
{
    ospab_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &ospab_module);
    const char *n = cmd->cmd->name;

    if (!strcmp(n, "OspabJWTLeeway")) {
        return parse_seconds(cmd, arg, 0, 300, &c->jwt_leeway);
    }
    if (!strcmp(n, "OspabAccessTokenTTL")) {
        return parse_seconds(cmd, arg, 60, 86400, &c->access_ttl);
    }
    return parse_seconds(cmd, arg, 300, 365 * 86400, &c->refresh_ttl);
}

static const char *set_rate_limit(cmd_parms *cmd, void *dc, const char *n, const char *w)
{
    ospab_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &ospab_module);
    const char *err = parse_seconds(cmd, n, 1, 100000, &c->rl_limit);

    return err ? err : parse_seconds(cmd, w, 1, 86400, &c->rl_window);
}

const command_rec ospab_mod_cmds[] = {
    AP_INIT_TAKE1("OspabSyncKey", set_sync_key, NULL, RSRC_CONF,
                  "Shared key the billing site sends in X-API-Key (at least 32 characters; "
                  "'file:/path' or 'env:NAME' to keep it out of the configuration)"),
    AP_INIT_TAKE1("OspabMaxBodySize", set_max_body, NULL, RSRC_CONF,
                  "Largest JSON request body in bytes (default 1048576)"),
    AP_INIT_TAKE1("OspabJWTAlgorithm", set_jwt_alg, NULL, RSRC_CONF,
                  "The one algorithm access tokens may use: HS256 (default), RS256 or ES256"),
    AP_INIT_TAKE1("OspabJWTKey", set_secret, NULL, RSRC_CONF,
                  "HS256: the shared secret (>= 32 bytes); RS256/ES256: the PEM public key "
                  "that verifies tokens. 'file:/path' or 'env:NAME'"),
    AP_INIT_TAKE1("OspabJWTSigningKey", set_secret, NULL, RSRC_CONF,
                  "RS256/ES256: the PEM private key the panel signs its own tokens with "
                  "(without it, /api/auth/login is off and tokens come from your IdP)"),
    AP_INIT_TAKE1("OspabJWTIssuer", set_text, NULL, RSRC_CONF,
                  "Required 'iss' of access tokens (and set on the panel's own)"),
    AP_INIT_TAKE1("OspabJWTAudience", set_text, NULL, RSRC_CONF,
                  "Required 'aud' of access tokens (and set on the panel's own)"),
    AP_INIT_TAKE1("OspabJWTLeeway", set_seconds, NULL, RSRC_CONF,
                  "Clock skew in seconds tolerated on exp/nbf (0-300, default 30)"),
    AP_INIT_TAKE1("OspabAccessTokenTTL", set_seconds, NULL, RSRC_CONF,
                  "Lifetime of issued access tokens in seconds (60-86400, default 900)"),
    AP_INIT_TAKE1("OspabRefreshTokenTTL", set_seconds, NULL, RSRC_CONF,
                  "Lifetime of refresh tokens in seconds (default 2592000 = 30 days)"),
    AP_INIT_TAKE2("OspabRateLimit", set_rate_limit, NULL, RSRC_CONF,
                  "Failed logins allowed per client address and per account, and the window "
                  "in seconds (default: 10 300)"),
    { NULL }
};

int ospab_mod_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                           server_rec *s)
{
    server_rec *sp;

    if (!APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire) || !APR_RETRIEVE_OPTIONAL_FN(ap_dbd_prepare)) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, OSPAB_LOGNO(00101)
                     "mod_ospab needs mod_dbd: add 'LoadModule dbd_module "
                     "modules/mod_dbd.so' (a2enmod dbd) and configure DBDriver/DBDParams");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (sp = s; sp; sp = sp->next) {
        ospab_srv_conf_t *c = ap_get_module_config(sp->module_config, &ospab_module);

        if (!c->jwt_key) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, sp, OSPAB_LOGNO(00104)
                         "OspabJWTKey is not set: customer routes need the key that verifies "
                         "access tokens (OspabJWTKey file:/etc/ospab/jwt.key)");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        {
            jwt_alg_t alg = ospab_jwt_alg(c->jwt_alg ? c->jwt_alg : "HS256");
            const char *why = ospab_jwt_check_key(ptemp, alg, c->jwt_key, 0);

            if (why && alg != JWT_ALG_HS256 && ospab_jwt_check_key(ptemp, alg, c->jwt_key, 1)
                                               == NULL) {
                why = "give the public key here and the private one to OspabJWTSigningKey";
            }
            if (why) {
                ap_log_error(APLOG_MARK, APLOG_EMERG, 0, sp, OSPAB_LOGNO(00105)
                             "OspabJWTKey: %s (OspabJWTAlgorithm %s)", why,
                             c->jwt_alg ? c->jwt_alg : "HS256");
                return HTTP_INTERNAL_SERVER_ERROR;
            }
            if (c->jwt_signing_key && alg == JWT_ALG_HS256) {
                ap_log_error(APLOG_MARK, APLOG_EMERG, 0, sp, OSPAB_LOGNO(00106)
                             "OspabJWTSigningKey is only for RS256/ES256: HS256 signs with "
                             "OspabJWTKey");
                return HTTP_INTERNAL_SERVER_ERROR;
            }
            if (c->jwt_signing_key
                && (why = ospab_jwt_check_key(ptemp, alg, c->jwt_signing_key, 1)) != NULL) {
                ap_log_error(APLOG_MARK, APLOG_EMERG, 0, sp, OSPAB_LOGNO(00107)
                             "OspabJWTSigningKey: %s (OspabJWTAlgorithm %s)", why, c->jwt_alg);
                return HTTP_INTERNAL_SERVER_ERROR;
            }
        }
        if (c->sync_key_set != 1) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, sp, OSPAB_LOGNO(00102)
                         "OspabSyncKey is not set for %s:%d: the sync API needs a key of at "
                         "least %d characters (OspabSyncKey file:/etc/ospab/sync.key)",
                         sp->server_hostname ? sp->server_hostname : "(main server)",
                         sp->port, OSPAB_MIN_KEY_LEN);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

static ospab_ratelimit_t *ratelimit;
static apr_global_mutex_t *ratelimit_mutex;
static apr_global_mutex_t *startup_mutex;

ospab_ratelimit_t *ospab_mod_ratelimit(void)
{
    return ratelimit;
}

int ospab_mod_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    return ap_mutex_register(pconf, OSPAB_RL_MUTEX, NULL, APR_LOCK_DEFAULT, 0) == APR_SUCCESS
           && ap_mutex_register(pconf, OSPAB_STARTUP_MUTEX, NULL, APR_LOCK_DEFAULT, 0)
              == APR_SUCCESS ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

/* The directives as libjwt wants them, once, at configuration time. */
static void build_jwt_conf(ospab_srv_conf_t *c)
{
    ospab_jwt_conf_t *j = &c->jwt;

    j->alg_name = c->jwt_alg ? c->jwt_alg : "HS256";
    j->alg = ospab_jwt_alg(j->alg_name);
    j->verify_key = (const unsigned char *)c->jwt_key;
    j->verify_key_len = c->jwt_key ? (int)strlen(c->jwt_key) : 0;
    if (j->alg == JWT_ALG_HS256) {
        j->sign_key = j->verify_key;
        j->sign_key_len = j->verify_key_len;
    }
    else {
        j->sign_key = (const unsigned char *)c->jwt_signing_key;
        j->sign_key_len = c->jwt_signing_key ? (int)strlen(c->jwt_signing_key) : 0;
    }
    j->issuer = c->jwt_issuer;
    j->audience = c->jwt_audience;
    j->leeway = c->jwt_leeway != -1 ? c->jwt_leeway : OSPAB_DEFAULT_LEEWAY;
    j->access_ttl = c->access_ttl != -1 ? c->access_ttl : OSPAB_DEFAULT_ACCESS_TTL;
}

/* Login failure counters in shared memory, created in the parent before the children
 * fork; skipped on the first of httpd's two configuration passes. */
static int setup_ratelimit(apr_pool_t *pconf, server_rec *s)
{
    static const char *const pass_key = "ospab_post_config_pass";
    void *seen = NULL;
    apr_status_t rv;

    apr_pool_userdata_get(&seen, pass_key, s->process->pool);
    if (!seen) {
        apr_pool_userdata_set((const void *)1, pass_key, apr_pool_cleanup_null,
                              s->process->pool);
        return OK;
    }
    rv = ap_global_mutex_create(&startup_mutex, NULL, OSPAB_STARTUP_MUTEX, NULL, s, pconf, 0);
    if (rv == APR_SUCCESS) {
        rv = ap_global_mutex_create(&ratelimit_mutex, NULL, OSPAB_RL_MUTEX, NULL, s, pconf, 0);
    }
    if (rv == APR_SUCCESS) {
        rv = ospab_ratelimit_create(pconf, 4096, &ratelimit_mutex, &ratelimit);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, OSPAB_LOGNO(00108)
                     "cannot create the shared login rate limiter or start-up lock");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* Children open their pooled connections one at a time. A SQLite database in WAL mode
 * whose shared-memory index nobody holds yet is initialised by the first connection,
 * under an exclusive lock: a second child preparing mod_dbd's statements at that moment
 * gets "database is locked" (apr_dbd_sqlite3 has no busy wait there) and loses its pool
 * until a later request rebuilds it. Our child_init takes a global lock before mod_dbd's
 * runs and releases it after, at start-up only. */
static void startup_lock(apr_pool_t *p, server_rec *s)
{
    if (startup_mutex
        && (apr_global_mutex_child_init(&startup_mutex,
                                        apr_global_mutex_lockfile(startup_mutex), p)
            != APR_SUCCESS
            || apr_global_mutex_lock(startup_mutex) != APR_SUCCESS)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, OSPAB_LOGNO(00110)
                     "cannot take the start-up lock; opening connections anyway");
    }
}

void ospab_mod_child_init_first(apr_pool_t *p, server_rec *s)
{
    startup_lock(p, s);
}

void ospab_mod_child_init_last(apr_pool_t *p, server_rec *s)
{
    if (startup_mutex) {
        apr_global_mutex_unlock(startup_mutex);
    }
}

static ospab_jwt_cache_t *jwt_cache;

ospab_jwt_cache_t *ospab_mod_jwt_cache(void)
{
    return jwt_cache;
}

void ospab_mod_child_init(apr_pool_t *p, server_rec *s)
{
    if (ospab_jwt_cache_create(p, 1024, &jwt_cache) != APR_SUCCESS) {
        jwt_cache = NULL;   /* every token is then verified in full: slower, still right */
    }
    if (ratelimit_mutex) {
        apr_status_t rv = apr_global_mutex_child_init(&ratelimit_mutex,
                              apr_global_mutex_lockfile(ratelimit_mutex), p);

        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, OSPAB_LOGNO(00109)
                         "cannot attach to the login rate limiter's mutex");
        }
    }
}

int ospab_mod_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                          server_rec *s)
{
    module *dbd = ap_find_linked_module("mod_dbd.c");
    apr_hash_t *seen = apr_hash_make(ptemp);
    server_rec *sp;

    for (sp = s; sp; sp = sp->next) {
        build_jwt_conf(ap_get_module_config(sp->module_config, &ospab_module));
    }
    if (setup_ratelimit(pconf, s) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    dbd_acquire = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire);
    dbd_prepare = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_prepare);
    if (!dbd_acquire || !dbd_prepare || !dbd) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, OSPAB_LOGNO(00101)
                     "mod_ospab needs mod_dbd: add 'LoadModule dbd_module "
                     "modules/mod_dbd.so' (a2enmod dbd) and configure DBDriver/DBDParams");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* Hand every statement to mod_dbd, once per distinct mod_dbd server config: it
     * prepares them on each new pooled connection. This runs on every configuration
     * pass, as each pass builds fresh mod_dbd configs. */
    for (sp = s; sp; sp = sp->next) {
        void *dc = ap_get_module_config(sp->module_config, dbd);
        const ospab_sql_t *q;

        if (dc && apr_hash_get(seen, &dc, sizeof(dc))) {
            continue;
        }
        if (dc) {
            void **key = apr_palloc(ptemp, sizeof(*key));
            *key = dc;
            apr_hash_set(seen, key, sizeof(*key), sp);
        }
        for (q = ospab_sql_statements; q->label; ++q) {
            dbd_prepare(sp, q->sql, q->label);
        }
    }
    return OK;
}

ospab_db_t *ospab_mod_db(request_rec *r)
{
    ap_dbd_t *dbd = dbd_acquire ? dbd_acquire(r) : NULL;
    ospab_db_t *db;

    if (!dbd) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, OSPAB_LOGNO(00103)
                      "no database connection from mod_dbd (check DBDriver/DBDParams and "
                      "that the database is up)");
        return NULL;
    }
    db = apr_palloc(r->pool, sizeof(*db));
    ospab_db_init(db, dbd->driver, dbd->handle, dbd->prepared);
    return db;
}
