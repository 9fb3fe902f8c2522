/* mod_ospab: the configuration: per-server settings, the directives, and the checks
 * apachectl configtest runs once every directive has been read. The shared memory and
 * locks are ospab_mod_process.c's, the database glue ospab_mod_dbd.c's. */
#include <string.h>
#include <stdlib.h>

#include <apr_file_io.h>
#include <apr_file_info.h>

#include "mod_ospab.h"
#include "ospab_server.h"
#include "ospab_console.h"

#define OSPAB_MIN_KEY_LEN 32

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
    c->password_cloudinit = -1;
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
    MERGE_PTR(seal_key);
    MERGE_PTR(panel_url);
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
    MERGE_INT(password_cloudinit);
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

const ospab_server_conf_t *ospab_mod_server_conf(const request_rec *r)
{
    return &ospab_mod_srv_conf(r)->server;
}

const char *ospab_mod_panel_url(request_rec *r)
{
    const char *base = ospab_mod_srv_conf(r)->panel_url;

    if (!base) {
        base = "/";
    }
    /* a path: on the host and scheme the caller reached this site by (ServerName and
     * UseCanonicalName decide, as for Apache's own redirects) */
    return base[0] == '/' ? ap_construct_url(r->pool, base, r) : base;
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
/* read now, as root: the key file can stay readable by root (and the agent's user) only */
static const char *set_secret_key(cmd_parms *cmd, void *dc, const char *arg)
{
    ospab_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &ospab_module);
    const char *why = NULL, *spec = arg;

    (void)dc;
    if (!strncmp(arg, "file:", 5)) {
        spec = apr_pstrcat(cmd->pool, "file:", ap_server_root_relative(cmd->pool, arg + 5),
                           NULL);
    }
    if (ospab_seal_key_load(cmd->pool, spec, &c->seal_key, &why) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "OspabSecretKey: %s", why);
    }
    return NULL;
}

static const char *set_pve(cmd_parms *cmd, void *dc, const char *arg)
{
    ospab_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &ospab_module);
    const char *n = cmd->cmd->name, *v, *err;

    if (!strcmp(n, "OspabProxmoxURL")) {
        apr_size_t len = strlen(arg);

        if ((err = ospab_pve_url_problem(arg)) != NULL) {
            return apr_psprintf(cmd->pool, "%s: %s, not '%s'", n, err, arg);
        }
        c->pve_url = apr_pstrndup(cmd->pool, arg, arg[len - 1] == '/' ? len - 1 : len);
    }
    else if (!strcmp(n, "OspabProxmoxToken")) {
        if (ospab_secret_resolve(cmd->pool, arg, &v, &err) != APR_SUCCESS) {
            return apr_psprintf(cmd->pool, "%s: %s", n, err);
        }
        if ((err = ospab_pve_token_problem(v)) != NULL) {
            return apr_psprintf(cmd->pool, "%s: %s", n, err);
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
        const char *why = ospab_ssh_set_host(cmd->pool, &c->ssh, arg);

        if (why) {
            return apr_psprintf(cmd->pool, "%s: %s", n, why);
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

static const char *set_panel_url(cmd_parms *cmd, void *dc, const char *arg)
{
    ospab_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &ospab_module);
    const char *why = ospab_console_panel_base(cmd->pool, arg, &c->panel_url);

    (void)dc;
    if (why) {
        return apr_psprintf(cmd->pool, "%s: %s, not '%s'", cmd->cmd->name, why, arg);
    }
    return NULL;
}

static const char *set_self_service(cmd_parms *cmd, void *dc, int flag)
{
    ospab_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &ospab_module);

    c->self_service = flag;
    return NULL;
}

static const char *set_password_cloudinit(cmd_parms *cmd, void *dc, int flag)
{
    ospab_srv_conf_t *c = ap_get_module_config(cmd->server->module_config, &ospab_module);

    c->password_cloudinit = flag;
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
    AP_INIT_TAKE1("OspabSecretKey", set_secret_key, NULL, RSRC_CONF,
                  "file:/path of the 32-byte key (64 hex digits) sealing the secrets kept in "
                  "the database (clusters' API tokens); the agent's [secrets] key"),
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
    AP_INIT_TAKE1("OspabPanelURL", set_panel_url, NULL, RSRC_CONF,
                  "Where this site serves the customer panel, for the console's links: a "
                  "path (/panel/, on the request's own scheme and host) or an http(s):// "
                  "URL (default /)"),
    AP_INIT_FLAG("OspabSelfService", set_self_service, NULL, RSRC_CONF,
                 "Customers may create servers themselves (default Off: admins only)"),
    AP_INIT_FLAG("OspabPasswordCloudInit", set_password_cloudinit, NULL, RSRC_CONF,
                 "A KVM server whose guest agent does not answer gets a new root password "
                 "by cloud-init and a reboot (default Off: 409)"),
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
    AP_INIT_FLAG("OspabMetrics", ospab_mod_set_metrics, NULL, ACCESS_CONF,
                 "On: this location answers GET with the module's Prometheus metrics "
                 "(and the module counts them); restrict it with Require"),
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

    if (!ospab_mod_dbd_loaded(s)) {
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

