/* mod_ospab: the one private header every file of the module includes. */
#ifndef MOD_OSPAB_H
#define MOD_OSPAB_H

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_optional.h>
#include <apr_strings.h>
#include <apr_dbd.h>
#include <mod_dbd.h>
#include <jansson.h>

#include "ospab_db.h"
#include "ospab_route.h"
#include "ospab_util.h"
#include "ospab_sync.h"
#include "ospab_jwt.h"
#include "ospab_customer.h"
#include "ospab_ratelimit.h"
#include "ospab_pve.h"
#include "ospab_ssh.h"
#include "ospab_server.h"
#include "ospab_cluster.h"
#include "ospab_seal.h"

extern module AP_MODULE_DECLARE_DATA ospab_module;
APLOG_USE_MODULE(ospab);

/* Stable message numbers, so tests and operators can match log lines. */
#define OSPAB_LOGNO(n) "OSPAB" #n ": "

#define OSPAB_HANDLER "ospab"
#define OSPAB_DEFAULT_MAX_BODY (1024 * 1024)

typedef struct {
    int sync_key_set;                              /* -1 unset */
    unsigned char sync_key_digest[OSPAB_SHA256_LEN];
    apr_off_t max_body;                            /* -1 unset */
    /* access tokens: the directives as given (NULL/-1 unset) ... */
    const char *jwt_alg;
    const char *jwt_key;
    const char *jwt_signing_key;
    const char *jwt_issuer;
    const char *jwt_audience;
    int jwt_leeway;
    int access_ttl;
    int refresh_ttl;
    int rl_limit, rl_window, rl_logins;            /* OspabRateLimit */
    /* ... and what post_config makes of them */
    ospab_jwt_conf_t jwt;
    /* Proxmox VE (NULL/-1 unset) */
    const char *pve_url;
    const char *pve_token;
    const char *pve_ca;
    const char *pve_ca_pem;                        /* its contents, read as root */
    const char *pve_node;
    const char *pve_storage;
    const char *pve_bridge;
    int pve_connect_timeout, pve_timeout;          /* seconds */
    int self_service;
    int password_cloudinit;
    int server_quota;                              /* OspabServerQuota (-1 unset) */
    int resize;                                    /* OspabResize (-1 unset) */
    ospab_ssh_conf_t ssh;                          /* OspabProxmoxSSH* */
    const ospab_seal_key_t *seal_key;              /* OspabSecretKey (read as root) */
    const char *panel_url;                         /* OspabPanelURL, ending in "/" (NULL
                                                    * unset: "/") */
    ospab_clusters_t *clusters;                    /* this child's clients of the clusters
                                                    * in the database (child_init) */
    ospab_pve_t *pve;                              /* this child's client (child_init) */
    ospab_pve_shared_t *pve_shared;                /* what all children saw (post_config) */
    ospab_server_conf_t server;                    /* the above with their defaults, as
                                                    * the core's operations take them
                                                    * (child_init, after the client) */
} ospab_srv_conf_t;

#define OSPAB_DEFAULT_PVE_CONNECT_TIMEOUT 3
#define OSPAB_DEFAULT_PVE_TIMEOUT 10
#define OSPAB_DEFAULT_SERVER_QUOTA 5
/* how long a child trusts its read of the clusters and nodes tables */
#define OSPAB_CLUSTERS_TTL apr_time_from_sec(10)

#define OSPAB_DEFAULT_LEEWAY 30
#define OSPAB_DEFAULT_ACCESS_TTL 900
#define OSPAB_DEFAULT_REFRESH_TTL (30 * 24 * 3600)
#define OSPAB_DEFAULT_RL_LIMIT 10
#define OSPAB_DEFAULT_RL_WINDOW 300
#define OSPAB_DEFAULT_RL_LOGINS 30
#define OSPAB_RL_MUTEX "ospab-ratelimit"
#define OSPAB_WRITE_MUTEX "ospab-sqlite-write"
#define OSPAB_LIVE_MUTEX "ospab-live"
#define OSPAB_LIVE_PER_ADDRESS 16

/* ospab_mod_config.c: settings, directives, configtest's checks;
 * ospab_mod_process.c: shared memory, locks, per-child clients; ospab_mod_dbd.c: mod_dbd */
extern const command_rec ospab_mod_cmds[];
void *ospab_mod_create_srv_conf(apr_pool_t *p, server_rec *s);
void *ospab_mod_merge_srv_conf(apr_pool_t *p, void *basev, void *addv);
int ospab_mod_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                           server_rec *s);
int ospab_mod_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                          server_rec *s);
int ospab_mod_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp);
void ospab_mod_child_init(apr_pool_t *p, server_rec *s);
/* The settings every Proxmox client of c gets (OspabProxmoxTimeout, limits, metrics); the
 * cluster's URL, token and CA are the caller's to add. */
void ospab_mod_pve_base(const ospab_srv_conf_t *c, ospab_pve_conf_t *pc);
ospab_srv_conf_t *ospab_mod_srv_conf(const request_rec *r);
/* The absolute URL this site serves the customer panel at (OspabPanelURL: a path is made
 * absolute with the request's scheme and host), ending in "/". */
const char *ospab_mod_panel_url(request_rec *r);
/* What the core's server operations need from this server's directives. */
const ospab_server_conf_t *ospab_mod_server_conf(const request_rec *r);
/* The login failure counters shared by all children (NULL before post_config). */
ospab_ratelimit_t *ospab_mod_ratelimit(void);
/* This child's cache of verified access tokens (NULL outside a child). */
ospab_jwt_cache_t *ospab_mod_jwt_cache(void);
/* The request's pooled DB connection (mod_dbd), or NULL when the database is down. */
ospab_db_t *ospab_mod_db(request_rec *r);
/* Runs a core operation, op(ctx, res), and again while the database refuses it for a write
 * conflict before it called anything outside the database (ospab_db_conflict_retry:
 * MariaDB deadlocks, Galera certification failures between Apache nodes). actor->effects
 * counts those calls meanwhile. */
typedef void ospab_mod_op_fn(void *ctx, ospab_result_t *res);
void ospab_mod_run(request_rec *r, ospab_db_t *db, ospab_actor_t *actor, ospab_mod_op_fn *op,
                   void *ctx, ospab_result_t *res);
/* mod_dbd is there (else logged, 0); the lock SQLite's writers queue on */
int ospab_mod_dbd_loaded(server_rec *s);
int ospab_mod_dbd_pre_config(apr_pool_t *pconf);
int ospab_mod_dbd_post_config(apr_pool_t *pconf, server_rec *s);
void ospab_mod_dbd_child_init(apr_pool_t *p, server_rec *s);

/* Per-directory settings (<Location>): OspabLivePush and OspabMetrics. */
typedef struct {
    int live;                   /* -1 unset, 0 off, 1 on */
    int workers;                /* -1: the default share of MaxRequestWorkers */
    int per_address;            /* -1: OSPAB_LIVE_PER_ADDRESS; 0: no cap */
    int metrics;                /* OspabMetrics: -1 unset, 0 off, 1 on */
} ospab_dir_conf_t;

/* ospab_mod_live.c: OspabLivePush, the live-push proxy's worker budget */
void *ospab_mod_create_dir_conf(apr_pool_t *p, char *dir);
void *ospab_mod_merge_dir_conf(apr_pool_t *p, void *basev, void *addv);
const char *ospab_mod_set_live_push(cmd_parms *cmd, void *dc, const char *args);
int ospab_mod_live_pre_config(apr_pool_t *pconf);
int ospab_mod_live_post_config(apr_pool_t *pconf, server_rec *s);
void ospab_mod_live_child_init(apr_pool_t *p, server_rec *s);
int ospab_mod_live_handler(request_rec *r);
int ospab_mod_live_log(request_rec *r);
/* live-push requests holding a place now (0 without the budget) */
int ospab_mod_live_in_use(void);

/* ospab_mod_metrics.c: OspabMetrics, Prometheus counters in shared memory */
typedef enum {
    OSPAB_METRIC_LOGIN_FAILED,
    OSPAB_METRIC_RL_LOGIN,
    OSPAB_METRIC_RL_LIVE_WORKERS,
    OSPAB_METRIC_RL_LIVE_ADDRESS,
    OSPAB_METRIC_IDEM_REPLAY,
    OSPAB_METRIC_DB_UNAVAILABLE,    /* no connection from mod_dbd */
    OSPAB_METRIC_DB_CONFLICT_RETRY, /* an operation run again after a write conflict */
    OSPAB_METRIC_COUNT
} ospab_metric_e;
const char *ospab_mod_set_metrics(cmd_parms *cmd, void *dc, int on);
int ospab_mod_metrics_pre_config(apr_pool_t *pconf);
int ospab_mod_metrics_post_config(apr_pool_t *pconf, server_rec *s);
/* counting at all (some location has OspabMetrics On) */
int ospab_mod_metrics_on(void);
/* one more of which; nothing when metrics are off */
void ospab_mod_metric(ospab_metric_e which);
/* the counter ospab_db_t.failures points at, or NULL */
volatile apr_uint32_t *ospab_mod_metrics_db_failures(void);
/* the request's route (NULL: an /api/ path no route matches), for its histogram */
void ospab_mod_metrics_route(request_rec *r, const ospab_route_t *route);
int ospab_mod_metrics_log(request_rec *r);
int ospab_mod_metrics_handler(request_rec *r);
void ospab_mod_metrics_pve(void *baton, const char *method, const char *path, int outcome,
                           apr_interval_time_t took);

/* ospab_mod_errors.c: httpd's own error pages under /api/ as JSON */
void ospab_mod_insert_error_filter(request_rec *r);
void ospab_mod_register_error_filter(void);

/* ospab_mod_http.c: every handler ends in one of these */
int ospab_mod_respond(request_rec *r, int status, json_t *body);
int ospab_mod_error(request_rec *r, int status, const char *msg);
int ospab_mod_error_fields(request_rec *r, int status, const char *msg, json_t *fields);
/* The glue's one convention: a helper that may answer the request itself returns 1 when
 * the handler should go on, and 0 when the response was sent, with the handler's return
 * value in *done. */

/* Reads and parses a JSON request body with the size limit and the Content-Type check: 1
 * with *json and the raw *body; 0 after the 4xx (413, 415, 400 with the position). */
int ospab_mod_json_body(request_rec *r, json_t **json, const char **body, apr_size_t *len,
                        int *done);

/* ospab_mod_auth.c: a 401 with its Bearer challenge (error NULL: none named). */
int ospab_mod_unauthorized(request_rec *r, const char *error, const char *description);
/* ospab_mod_auth.c: Bearer tokens. Returns 1 with *who filled, or 0 after sending the 401
 * (or 503) whose return value is in *done. */
int ospab_mod_bearer(request_rec *r, ospab_db_t *db, ospab_principal_t *who, int *done);
/* Its two halves: the token verified (*claims), then the outcome rv of asking the database
 * who the claims name (ospab_session_principal or ospab_session_list; why: its reason). */
int ospab_mod_token(request_rec *r, ospab_jwt_claims_t *claims, int *done);
int ospab_mod_principal(request_rec *r, ospab_db_t *db, apr_status_t rv, const char *why,
                        const ospab_principal_t *who, int *done);
/* The request's database connection and its Bearer caller: 1, or 0 after the 503/401 was
 * sent with the handler's return value in *done. */
int ospab_mod_caller(request_rec *r, ospab_db_t **db, ospab_principal_t *who, int *done);
/* What a Bearer caller's change is done as (audit): "admin" or "user", their id, the
 * client's address, now. */
void ospab_mod_actor(request_rec *r, const ospab_principal_t *who, ospab_actor_t *a);
/* The route's "{id}" as text, or NULL when it has none. */
const char *ospab_mod_route_id(request_rec *r, const ospab_route_match_t *m);
/* The start of every sync-API request (vps and users sync, notify): the
 * X-API-Key, the JSON body (and its bytes in *body, *len, for request hashes), a database connection
 * and the "sync" actor. 1: go on; 0: answered (401, 4xx, 503), *done holds the handler's
 * return value. */
int ospab_mod_sync_request(request_rec *r, json_t **req, const char **body, apr_size_t *len,
                           ospab_db_t **db, ospab_actor_t *actor, int *done);

/* ospab_mod_handler.c */
int ospab_mod_handler(request_rec *r);
int ospab_mod_translate_name(request_rec *r);
int ospab_mod_map_to_storage(request_rec *r);

/* route handlers: one per operation of lib/ospab_route.c's table (ospab_mod_handler.c
 * dispatches); the route's action is m->route->action */
typedef int ospab_mod_route_fn(request_rec *r, const ospab_route_match_t *m);
ospab_mod_route_fn ospab_mod_handle_vps_sync, ospab_mod_handle_vps_sync_batch,
    ospab_mod_handle_users_sync, ospab_mod_handle_notify, ospab_mod_handle_health,
    ospab_mod_handle_login, ospab_mod_handle_refresh, ospab_mod_handle_logout,
    ospab_mod_handle_me, ospab_mod_handle_vps_list, ospab_mod_handle_vps_get,
    ospab_mod_handle_server_list, ospab_mod_handle_server_get, ospab_mod_handle_tariffs,
    ospab_mod_handle_os;
/* every server-management operation (seed 003, the power routes of seed 001) */
ospab_mod_route_fn ospab_mod_handle_server;
/* the caller's own account (/api/account/..., any role): SSH keys */
ospab_mod_route_fn ospab_mod_handle_account;
/* the admin API (/api/admin/..., role admin) */
ospab_mod_route_fn ospab_mod_handle_admin;
/* the result of a core call as the response (logs 5xx causes) */
int ospab_mod_finish(request_rec *r, ospab_result_t *res);

#endif
