/* mod_ospab: configuration directives, config-time checks and mod_dbd set-up. */
#include <string.h>
#include <stdlib.h>

#include <apr_hash.h>
#include <apr_uri.h>
#include <apr_shm.h>
#include <util_mutex.h>
#include <unistd.h>
#include <apr_file_io.h>
#include <apr_file_info.h>
#include <curl/curl.h>

#include "mod_ospab.h"
#include "ospab_server.h"

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
    c->rl_logins = -1;
    c->pve_connect_timeout = -1;
    c->pve_timeout = -1;
    c->self_service = -1;
    c->server_quota = -1;
    c->resize = -1;
    c->ssh.port = -1;
    c->ssh.timeout_ms = -1;
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
    MERGE_INT(rl_logins);
    MERGE_PTR(pve_url);
    MERGE_PTR(pve_token);
    MERGE_PTR(pve_ca);
    MERGE_PTR(pve_ca_pem);
    MERGE_PTR(pve_node);
    MERGE_PTR(pve_storage);
    MERGE_PTR(pve_bridge);
    MERGE_INT(pve_connect_timeout);
    MERGE_INT(pve_timeout);
    MERGE_INT(self_service);
    MERGE_INT(server_quota);
    MERGE_INT(resize);
    MERGE_PTR(ssh.host);
    MERGE_INT(ssh.port);
    MERGE_PTR(ssh.user);
    MERGE_PTR(ssh.private_key);
    MERGE_PTR(ssh.private_key_pem);
    MERGE_PTR(ssh.public_key);
    MERGE_PTR(ssh.known_hosts);
#undef MERGE_PTR
#undef MERGE_INT
    return c;
}

ospab_srv_conf_t *ospab_mod_srv_conf(const request_rec *r)
{
    return ap_get_module_config(r->server->module_config, &ospab_module);
}

void ospab_mod_server_conf(request_rec *r, ospab_server_conf_t *c)
{
    ospab_srv_conf_t *sc = ospab_mod_srv_conf(r);

    memset(c, 0, sizeof(*c));
    c->pve = sc->pve;
    c->url = sc->pve_url;
    c->node = sc->pve_node;
    c->storage = sc->pve_storage ? sc->pve_storage : "local-lvm";
    c->bridge = sc->pve_bridge ? sc->pve_bridge : "vmbr0";
    c->self_service = sc->self_service == 1;
    c->server_quota = sc->server_quota != -1 ? sc->server_quota : OSPAB_DEFAULT_SERVER_QUOTA;
    c->resize = sc->resize != -1 ? (ospab_resize_policy_e)sc->resize : OSPAB_RESIZE_TARIFF;
    c->ssh = sc->ssh.private_key ? &sc->ssh : NULL;
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

static const char *set_rate_limit(cmd_parms *cmd, void *dc, const char *n, const char *w,
                                  const char *l)
{
    ospab_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &ospab_module);
    const char *err = parse_seconds(cmd, n, 1, 100000, &c->rl_limit);

    if (!err) {
        err = parse_seconds(cmd, w, 1, 86400, &c->rl_window);
    }
    if (!err && l) {
        err = parse_seconds(cmd, l, 1, 100000, &c->rl_logins);
    }
    return err;
}

/* A whole (small) file into pool memory, NUL-terminated; NULL when fine, else why not. */
static const char *read_small_file(apr_pool_t *p, const char *path, const char **out)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_size_t n;
    char *buf;

    if (apr_file_open(&f, path, APR_FOPEN_READ, APR_FPROT_OS_DEFAULT, p) != APR_SUCCESS) {
        return "cannot open";
    }
    if (apr_file_info_get(&fi, APR_FINFO_SIZE, f) != APR_SUCCESS || fi.size > 1024 * 1024) {
        apr_file_close(f);
        return "too large";
    }
    n = (apr_size_t)fi.size;
    buf = apr_palloc(p, n + 1);
    if (apr_file_read_full(f, buf, n, &n) != APR_SUCCESS) {
        apr_file_close(f);
        return "cannot read";
    }
    apr_file_close(f);
    buf[n] = '\0';
    *out = buf;
    return NULL;
}

/* Proxmox directives taking one word: stored by name. */
static const char *set_pve(cmd_parms *cmd, void *dc, const char *arg)
{
    ospab_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &ospab_module);
    const char *n = cmd->cmd->name, *v, *err;

    if (!strcmp(n, "OspabProxmoxURL")) {
        apr_size_t len = strlen(arg);

        if (strncmp(arg, "https://", 8) || len < 9) {
            return apr_psprintf(cmd->pool, "%s: must be an https:// URL (TLS is always "
                                "verified), not '%s'", n, arg);
        }
        c->pve_url = apr_pstrndup(cmd->pool, arg, arg[len - 1] == '/' ? len - 1 : len);
    }
    else if (!strcmp(n, "OspabProxmoxToken")) {
        if (ospab_secret_resolve(cmd->pool, arg, &v, &err) != APR_SUCCESS) {
            return apr_psprintf(cmd->pool, "%s: %s", n, err);
        }
        /* USER@REALM!TOKENID=SECRET */
        if (!strchr(v, '@') || !strchr(v, '!') || !strchr(v, '=')
            || strchr(v, '=') < strchr(v, '!') || strpbrk(v, " \t\r\n")) {
            return apr_psprintf(cmd->pool, "%s: must be USER@REALM!TOKENID=SECRET (as "
                                "Proxmox shows it when the token is created)", n);
        }
        c->pve_token = v;
    }
    else if (!strcmp(n, "OspabProxmoxCA")) {
        /* read now, as root: the children verify against this copy, so the file itself
         * can stay readable by root only */
        c->pve_ca = ap_server_root_relative(cmd->pool, arg);
        if (read_small_file(cmd->pool, c->pve_ca, &c->pve_ca_pem) != NULL) {
            return apr_psprintf(cmd->pool, "%s: cannot read %s", n, c->pve_ca);
        }
        if (!strstr(c->pve_ca_pem, "-----BEGIN CERTIFICATE-----")) {
            return apr_psprintf(cmd->pool, "%s: %s holds no PEM certificate", n, c->pve_ca);
        }
    }
    else if (!strcmp(n, "OspabProxmoxNode")) {
        c->pve_node = arg;
    }
    else if (!strcmp(n, "OspabProxmoxStorage")) {
        c->pve_storage = arg;
    }
    else if (!strcmp(n, "OspabProxmoxBridge")) {
        c->pve_bridge = arg;
    }
    else if (!strcmp(n, "OspabProxmoxSSHUser")) {
        c->ssh.user = arg;
    }
    else if (!strcmp(n, "OspabProxmoxSSHKey")) {
        /* read now, as root: the key file can stay readable by root alone */
        c->ssh.private_key = ap_server_root_relative(cmd->pool, arg);
        if (read_small_file(cmd->pool, c->ssh.private_key, &c->ssh.private_key_pem)) {
            return apr_psprintf(cmd->pool, "%s: cannot read %s", n, c->ssh.private_key);
        }
    }
    else if (!strcmp(n, "OspabProxmoxSSHKnownHosts")) {
        c->ssh.known_hosts = ap_server_root_relative(cmd->pool, arg);
    }
    else if (!strcmp(n, "OspabProxmoxSSHHost")) {
        const char *colon = strrchr(arg, ':');

        if (colon && !strchr(colon, ']')) {
            c->ssh.host = apr_pstrndup(cmd->pool, arg, (apr_size_t)(colon - arg));
            c->ssh.port = atoi(colon + 1);
            if (c->ssh.port < 1 || c->ssh.port > 65535) {
                return apr_psprintf(cmd->pool, "%s: bad port in '%s'", n, arg);
            }
        }
        else {
            c->ssh.host = arg;
        }
    }
    return NULL;
}

static const char *set_pve_timeout(cmd_parms *cmd, void *dc, const char *conn,
                                   const char *total)
{
    ospab_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &ospab_module);
    const char *err = parse_seconds(cmd, conn, 1, 60, &c->pve_connect_timeout);

    if (!err && total) {
        err = parse_seconds(cmd, total, 1, 300, &c->pve_timeout);
    }
    return err;
}

static const char *set_self_service(cmd_parms *cmd, void *dc, int flag)
{
    ospab_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &ospab_module);

    c->self_service = flag;
    return NULL;
}

static const char *set_server_quota(cmd_parms *cmd, void *dc, const char *arg)
{
    ospab_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &ospab_module);

    return parse_seconds(cmd, arg, 0, 100000, &c->server_quota);
}

static const char *set_resize(cmd_parms *cmd, void *dc, const char *arg)
{
    ospab_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &ospab_module);

    if (!strcasecmp(arg, "tariff")) {
        c->resize = OSPAB_RESIZE_TARIFF;
    }
    else if (!strcasecmp(arg, "free")) {
        c->resize = OSPAB_RESIZE_FREE;
    }
    else if (!strcasecmp(arg, "off")) {
        c->resize = OSPAB_RESIZE_OFF;
    }
    else {
        return apr_psprintf(cmd->pool, "%s: must be tariff, free or off, not '%s'",
                            cmd->cmd->name, arg);
    }
    return NULL;
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
    AP_INIT_TAKE23("OspabRateLimit", set_rate_limit, NULL, RSRC_CONF,
                   "Failed logins allowed per client address and per account, the window in "
                   "seconds, and logins of any outcome per account (default: 10 300 30)"),
    AP_INIT_TAKE1("OspabProxmoxURL", set_pve, NULL, RSRC_CONF,
                  "Proxmox VE API base, e.g. https://pve.example.com:8006"),
    AP_INIT_TAKE1("OspabProxmoxToken", set_pve, NULL, RSRC_CONF,
                  "API token USER@REALM!TOKENID=SECRET ('file:/path' or 'env:NAME')"),
    AP_INIT_TAKE1("OspabProxmoxCA", set_pve, NULL, RSRC_CONF,
                  "PEM file of the CA that signed Proxmox's certificate (default: system CAs)"),
    AP_INIT_TAKE1("OspabProxmoxNode", set_pve, NULL, RSRC_CONF,
                  "Node new servers are created on"),
    AP_INIT_TAKE1("OspabProxmoxStorage", set_pve, NULL, RSRC_CONF,
                  "Storage for new servers' root disks (default local-lvm)"),
    AP_INIT_TAKE1("OspabProxmoxBridge", set_pve, NULL, RSRC_CONF,
                  "Bridge new servers' eth0 is attached to (default vmbr0)"),
    AP_INIT_TAKE12("OspabProxmoxTimeout", set_pve_timeout, NULL, RSRC_CONF,
                   "Seconds to connect to Proxmox and for a whole call (default: 3 10)"),
    AP_INIT_FLAG("OspabSelfService", set_self_service, NULL, RSRC_CONF,
                 "Customers may create servers themselves (default Off: admins only)"),
    AP_INIT_TAKE1("OspabServerQuota", set_server_quota, NULL, RSRC_CONF,
                  "Servers a customer may own and still create one (default 5; 0: no limit)"),
    AP_INIT_TAKE1("OspabResize", set_resize, NULL, RSRC_CONF,
                  "What customers may resize: tariff (within the server's tariff, or move "
                  "to another; default), free (any size) or off"),
    AP_INIT_TAKE1("OspabProxmoxSSHHost", set_pve, NULL, RSRC_CONF,
                  "host[:port] of the node for root password resets (default: the API's "
                  "host, port 22)"),
    AP_INIT_TAKE1("OspabProxmoxSSHUser", set_pve, NULL, RSRC_CONF,
                  "SSH user on the node (default root)"),
    AP_INIT_TAKE1("OspabProxmoxSSHKey", set_pve, NULL, RSRC_CONF,
                  "Private key for SSH to the node; enables root password resets"),
    AP_INIT_TAKE1("OspabProxmoxSSHKnownHosts", set_pve, NULL, RSRC_CONF,
                  "known_hosts file holding the node's SSH host key (required with the key)"),
    AP_INIT_RAW_ARGS("OspabLivePush", ospab_mod_set_live_push, NULL, ACCESS_CONF,
                     "In the live-push proxy's <Location>: [workers=N] [per-address=M], the "
                     "Apache workers its requests may hold at once (default: half of "
                     "MaxRequestWorkers) and from one client address (default 16); Off"),
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
        if (c->pve_url && !c->pve_token) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, sp, OSPAB_LOGNO(00111)
                         "OspabProxmoxToken is not set: OspabProxmoxURL needs an API token");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        if (c->ssh.private_key && !c->ssh.known_hosts) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, sp, OSPAB_LOGNO(00113)
                         "OspabProxmoxSSHKnownHosts is not set: the node's host key must be "
                         "checked (ssh-keyscan the node into a known_hosts file)");
            return HTTP_INTERNAL_SERVER_ERROR;
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
              == APR_SUCCESS ? ospab_mod_live_pre_config(pconf) : HTTP_INTERNAL_SERVER_ERROR;
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

/* 1 on the first of httpd's two configuration passes, where shared memory and locks are
 * not made yet (they would be thrown away). */
static int first_pass(server_rec *s)
{
    static const char *const pass_key = "ospab_post_config_pass";
    void *seen = NULL;

    apr_pool_userdata_get(&seen, pass_key, s->process->pool);
    if (!seen) {
        apr_pool_userdata_set((const void *)1, pass_key, apr_pool_cleanup_null,
                              s->process->pool);
        return 1;
    }
    return 0;
}

/* Login failure counters in shared memory, created in the parent before the children
 * fork. */
static int setup_ratelimit(apr_pool_t *pconf, server_rec *s)
{
    apr_status_t rv;

    rv = ap_global_mutex_create(&startup_mutex, NULL, OSPAB_STARTUP_MUTEX, NULL, s, pconf, 0);
    if (rv == APR_SUCCESS) {
        rv = ap_global_mutex_create(&ratelimit_mutex, NULL, OSPAB_RL_MUTEX, NULL, s, pconf, 0);
    }
    if (rv == APR_SUCCESS) {
        rv = ospab_ratelimit_create(pconf, 16384, &ratelimit_mutex, &ratelimit);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, OSPAB_LOGNO(00108)
                     "cannot create the shared login rate limiter or start-up lock");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* Shared memory for what the children's Proxmox clients saw last, one record per server
 * config that names a Proxmox URL: /api/health answers the same from every child. Made in
 * the parent before the children fork. */
static int setup_pve_shared(apr_pool_t *pconf, server_rec *s)
{
    ospab_pve_shared_t *mem;
    apr_shm_t *shm;
    server_rec *sp;
    int n = 0;

    for (sp = s; sp; sp = sp->next) {
        n += ((ospab_srv_conf_t *)ap_get_module_config(sp->module_config,
                                                       &ospab_module))->pve_url != NULL;
    }
    if (!n) {
        return OK;
    }
    if (apr_shm_create(&shm, sizeof(*mem) * (apr_size_t)n, NULL, pconf) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, OSPAB_LOGNO(00117)
                     "cannot create the shared memory for Proxmox health");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    mem = apr_shm_baseaddr_get(shm);
    memset(mem, 0, sizeof(*mem) * (apr_size_t)n);
    for (sp = s; sp; sp = sp->next) {
        ospab_srv_conf_t *c = ap_get_module_config(sp->module_config, &ospab_module);

        if (c->pve_url) {
            c->pve_shared = mem++;
        }
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

/* The child's Proxmox client(s): one per server config that names a Proxmox URL; made
 * here, after the fork, so each child has its own connections and curl handles. */
static void pve_clients(apr_pool_t *p, server_rec *s)
{
    server_rec *sp;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (sp = s; sp; sp = sp->next) {
        ospab_srv_conf_t *c = ap_get_module_config(sp->module_config, &ospab_module);
        ospab_pve_conf_t pc;
        apr_uri_t uri;

        if (!c->pve_url || c->pve) {
            continue;
        }
        memset(&pc, 0, sizeof(pc));
        pc.url = c->pve_url;
        pc.token = c->pve_token;
        pc.ca_file = c->pve_ca;
        pc.ca_pem = c->pve_ca_pem;
        pc.connect_timeout_ms = 1000L * (c->pve_connect_timeout != -1
                                         ? c->pve_connect_timeout
                                         : OSPAB_DEFAULT_PVE_CONNECT_TIMEOUT);
        pc.timeout_ms = 1000L * (c->pve_timeout != -1 ? c->pve_timeout
                                                       : OSPAB_DEFAULT_PVE_TIMEOUT);
        pc.max_response = 8 * 1024 * 1024;
        pc.max_handles = 16;
        pc.shared = c->pve_shared;
        if (ospab_pve_create(p, &pc, &c->pve) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, sp, OSPAB_LOGNO(00114)
                         "cannot create the Proxmox client");
            c->pve = NULL;
        }
        /* SSH defaults: the API's host, port 22, root */
        if (c->ssh.private_key) {
            if (!c->ssh.host && apr_uri_parse(p, c->pve_url, &uri) == APR_SUCCESS) {
                c->ssh.host = uri.hostname;
            }
            if (c->ssh.port == -1) {
                c->ssh.port = 22;
            }
            if (!c->ssh.user) {
                c->ssh.user = "root";
            }
            c->ssh.timeout_ms = pc.timeout_ms;
        }
    }
}

void ospab_mod_child_init(apr_pool_t *p, server_rec *s)
{
    if (ospab_jwt_cache_create(p, 1024, &jwt_cache) != APR_SUCCESS) {
        jwt_cache = NULL;   /* every token is then verified in full: slower, still right */
    }
    pve_clients(p, s);
    ospab_mod_live_child_init(p, s);
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
    if (!first_pass(s) && (setup_ratelimit(pconf, s) != OK
                           || ospab_mod_live_post_config(pconf, s) != OK
                           || setup_pve_shared(pconf, s) != OK)) {
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
    db->conn_pool = dbd->pool;      /* mod_dbd's pool of this connection */
    return db;
}
