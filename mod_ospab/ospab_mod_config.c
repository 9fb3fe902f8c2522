/* mod_ospab: configuration directives, config-time checks and mod_dbd set-up. */
#include <string.h>
#include <stdlib.h>

#include <apr_hash.h>

#include "mod_ospab.h"

#define OSPAB_MIN_KEY_LEN 32

static APR_OPTIONAL_FN_TYPE(ap_dbd_acquire) *dbd_acquire;
static APR_OPTIONAL_FN_TYPE(ap_dbd_prepare) *dbd_prepare;

void *ospab_mod_create_srv_conf(apr_pool_t *p, server_rec *s)
{
    ospab_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->sync_key_set = -1;
    c->max_body = -1;
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

const command_rec ospab_mod_cmds[] = {
    AP_INIT_TAKE1("OspabSyncKey", set_sync_key, NULL, RSRC_CONF,
                  "Shared key the billing site sends in X-API-Key (at least 32 characters; "
                  "'file:/path' or 'env:NAME' to keep it out of the configuration)"),
    AP_INIT_TAKE1("OspabMaxBodySize", set_max_body, NULL, RSRC_CONF,
                  "Largest JSON request body in bytes (default 1048576)"),
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

int ospab_mod_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                          server_rec *s)
{
    module *dbd = ap_find_linked_module("mod_dbd.c");
    apr_hash_t *seen = apr_hash_make(ptemp);
    server_rec *sp;

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
