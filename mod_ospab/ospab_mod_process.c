/* mod_ospab: what the module sets up per process: the shared memory and locks made in the
 * parent before the children fork (login counters, the live-push budget, Proxmox health)
 * on httpd's real configuration pass, and each child's own clients (Proxmox, the token
 * cache) after the fork. */
#include <string.h>

#include <apr_shm.h>
#include <apr_uri.h>
#include <util_mutex.h>
#include <curl/curl.h>

#include "mod_ospab.h"

static ospab_ratelimit_t *ratelimit;
static apr_global_mutex_t *ratelimit_mutex;

ospab_ratelimit_t *ospab_mod_ratelimit(void)
{
    return ratelimit;
}

int ospab_mod_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    if (ap_mutex_register(pconf, OSPAB_RL_MUTEX, NULL, APR_LOCK_DEFAULT, 0) != APR_SUCCESS
        || ospab_mod_dbd_pre_config(pconf) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ospab_mod_metrics_pre_config(pconf);
    return ospab_mod_live_pre_config(pconf);
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

    rv = ap_global_mutex_create(&ratelimit_mutex, NULL, OSPAB_RL_MUTEX, NULL, s, pconf, 0);
    if (rv == APR_SUCCESS) {
        rv = ospab_ratelimit_create(pconf, 16384, &ratelimit_mutex, &ratelimit);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, OSPAB_LOGNO(00108)
                     "cannot create the shared login rate limiter");
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

static ospab_jwt_cache_t *jwt_cache;

ospab_jwt_cache_t *ospab_mod_jwt_cache(void)
{
    return jwt_cache;
}

void ospab_mod_pve_base(const ospab_srv_conf_t *c, ospab_pve_conf_t *pc)
{
    memset(pc, 0, sizeof(*pc));
    pc->connect_timeout_ms = 1000L * (c->pve_connect_timeout != -1
                                      ? c->pve_connect_timeout
                                      : OSPAB_DEFAULT_PVE_CONNECT_TIMEOUT);
    pc->timeout_ms = 1000L * (c->pve_timeout != -1 ? c->pve_timeout
                                                   : OSPAB_DEFAULT_PVE_TIMEOUT);
    pc->max_response = 8 * 1024 * 1024;
    pc->max_handles = 16;
    if (ospab_mod_metrics_on()) {
        pc->observe = ospab_mod_metrics_pve;
    }
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
        ospab_mod_pve_base(c, &pc);
        pc.url = c->pve_url;
        pc.token = c->pve_token;
        pc.ca_file = c->pve_ca;
        pc.ca_pem = c->pve_ca_pem;
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
    /* the clusters registered in the database, with the same timeouts and limits; also
     * without a key, so that a server of a registered cluster is refused (503) rather than
     * sent to the configured cluster, which does not know its guest */
    for (sp = s; sp; sp = sp->next) {
        ospab_srv_conf_t *c = ap_get_module_config(sp->module_config, &ospab_module);
        ospab_pve_conf_t pc;

        if (c->clusters) {
            continue;
        }
        ospab_mod_pve_base(c, &pc);
        if (ospab_clusters_create(p, c->seal_key, &pc, OSPAB_CLUSTERS_TTL, &c->clusters)
                != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, sp, OSPAB_LOGNO(00120)
                         "cannot keep the clusters' Proxmox clients");
            c->clusters = NULL;
            continue;
        }
        if (c->seal_key && c->pve_url && c->pve_token) {
            /* the configured cluster becomes a row (010_clusters.sql) */
            ospab_clusters_import_first(c->clusters, "default", c->pve_url, c->pve_token,
                                        c->pve_ca_pem);
        }
    }
}

/* The directives with their defaults, as the core's server operations take them: once per
 * server config and child, after its Proxmox client and SSH defaults exist. */
static void server_confs(server_rec *s)
{
    server_rec *sp;

    for (sp = s; sp; sp = sp->next) {
        ospab_srv_conf_t *sc = ap_get_module_config(sp->module_config, &ospab_module);
        ospab_server_conf_t *c = &sc->server;

        memset(c, 0, sizeof(*c));
        c->pve = sc->pve;
        c->clusters = sc->clusters;
        c->url = sc->pve_url;
        c->node = sc->pve_node;
        c->storage = sc->pve_storage ? sc->pve_storage : "local-lvm";
        c->bridge = sc->pve_bridge ? sc->pve_bridge : "vmbr0";
        c->self_service = sc->self_service == 1;
        c->password_cloudinit = sc->password_cloudinit == 1;
        c->server_quota = sc->server_quota != -1 ? sc->server_quota
                                                 : OSPAB_DEFAULT_SERVER_QUOTA;
        c->resize = sc->resize != -1 ? (ospab_resize_policy_e)sc->resize
                                     : OSPAB_RESIZE_TARIFF;
        c->ssh = sc->ssh.private_key ? &sc->ssh : NULL;
    }
}

void ospab_mod_child_init(apr_pool_t *p, server_rec *s)
{
    if (ospab_jwt_cache_create(p, 1024, &jwt_cache) != APR_SUCCESS) {
        jwt_cache = NULL;   /* every token is then verified in full: slower, still right */
    }
    pve_clients(p, s);
    server_confs(s);
    ospab_mod_live_child_init(p, s);
    ospab_mod_dbd_child_init(p, s);
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
    server_rec *sp;

    for (sp = s; sp; sp = sp->next) {
        build_jwt_conf(ap_get_module_config(sp->module_config, &ospab_module));
    }
    if (!first_pass(s) && (setup_ratelimit(pconf, s) != OK
                           || ospab_mod_dbd_post_config(pconf, s) != OK
                           || ospab_mod_live_post_config(pconf, s) != OK
                           || setup_pve_shared(pconf, s) != OK
                           || ospab_mod_metrics_post_config(pconf, s) != OK)) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}
