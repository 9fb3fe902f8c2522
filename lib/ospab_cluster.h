/* ospab core: Proxmox clusters as data (issue 13 item 1, 010_clusters.sql, docs/operations.md
 * "Clusters"). A cluster row holds the API URL, the token (its id in clear, its secret
 * sealed with lib/ospab_seal.h) and the CA; nodes (009_nodes.sql) name the cluster they
 * belong to. The module and the agent read the same rows: the module through a per-process
 * cache (ospab_clusters_t) that maps a server's node to its cluster's client, the agent as
 * extra [cluster] sections. The cluster of the configuration files (OspabProxmoxURL, the
 * agent's [cluster] section) keeps working as the default for nodes of no registered
 * cluster, and is imported as a row once a key is configured (ospab_cluster_import). */
#ifndef OSPAB_CLUSTER_H
#define OSPAB_CLUSTER_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include <jansson.h>

#include "ospab_db.h"
#include "ospab_pve.h"
#include "ospab_result.h"
#include "ospab_seal.h"

/* The additional data the token secrets are sealed for. */
#define OSPAB_CLUSTER_SEAL_AAD "ospab cluster token"

/* A cluster as the module and the agent use it. token: the whole
 * USER@REALM!TOKENID=SECRET, NULL when its secret would not open (another key, altered:
 * the cluster is then not used, and says so in the log). */
typedef struct {
    const char *id, *name, *url, *token_id, *token, *ca_pem, *updated_at;
    int enabled;
} ospab_cluster_t;

/* Every cluster row, enabled or not, in id order (ospab_cluster_t), their tokens opened
 * with key (NULL key: token NULL). */
apr_status_t ospab_clusters_load(ospab_db_t *db, apr_pool_t *p, const ospab_seal_key_t *key,
                                 apr_array_header_t **clusters);
/* What changes when any cluster or any node's cluster changes ("count/max updated_at"),
 * for processes that keep clients: a different answer means reload. */
apr_status_t ospab_clusters_stamp(ospab_db_t *db, apr_pool_t *p, const char **stamp);

/* The configuration's cluster as a row, when no row bears its name yet: its token sealed
 * with key; the nodes of no cluster are then its nodes. 1: imported; 0: a row of that name
 * exists; -1: the database failed or the token would not seal. */
int ospab_cluster_import(ospab_db_t *db, apr_pool_t *p, const ospab_seal_key_t *key,
                         const ospab_actor_t *a, const char *name, const char *url,
                         const char *token, const char *ca_pem);

/* ---- the admin API: /api/admin/clusters (handle_admin.c) ----------------------------- */

/* Lists (id NULL) or shows one cluster: its settings, tokenId, tokenSet and never the
 * secret; nodes: how many nodes it has. */
void ospab_clusters_list(ospab_db_t *db, apr_pool_t *p, const char *id, ospab_result_t *res);
/* body {name, url, token, ca?, enabled?}; no key configured: 503. */
void ospab_cluster_create(ospab_db_t *db, apr_pool_t *p, const ospab_seal_key_t *key,
                          const ospab_actor_t *a, json_t *body, ospab_result_t *res);
/* body: any of the create's fields (token: replaces it; ca null: the system's CAs). */
void ospab_cluster_update(ospab_db_t *db, apr_pool_t *p, const ospab_seal_key_t *key,
                          const ospab_actor_t *a, const char *id, json_t *body,
                          ospab_result_t *res);
/* In the caller's open transaction: the cluster_id a node or tariff (what) names exists.
 * 1: it does, or id is NULL or "0" (none); 0: res is the 422 and the transaction is over. */
int ospab_cluster_known(ospab_db_t *db, apr_pool_t *p, const char *what, const char *id,
                        ospab_result_t *res);
/* 409 while nodes, tariffs or IP pools name it. */
void ospab_cluster_delete(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                          const char *id, ospab_result_t *res);
/* "Test connection": reaches the URL over TLS verified against the cluster's CA (GET
 * /version), has the token accepted, and asks Proxmox for the token's effective privileges
 * (GET /access/permissions) on the paths the panel works on; answers which check failed
 * and which privileges are missing where. base: the settings of the client it makes
 * (timeouts, limits; the cluster's URL, token and CA replace its own). A 200 whatever the
 * outcome ("ok": false), 404 for no such cluster. */
void ospab_cluster_test(ospab_db_t *db, apr_pool_t *p, const ospab_seal_key_t *key,
                        const ospab_pve_conf_t *base, const ospab_actor_t *a,
                        const char *id, ospab_result_t *res);

/* ---- the module's per-process clients -------------------------------------------------- */

typedef struct ospab_clusters_t ospab_clusters_t;

/* p: the process's pool (the clients live in it). key: NULL leaves every registered
 * cluster unusable (its nodes' servers are refused, never sent elsewhere). base: the
 * settings every client gets
 * (timeouts, handles, response size, observe; url/token/CA are the cluster's). ttl: how
 * long a read of the rows is trusted before the next request reads them again. */
apr_status_t ospab_clusters_create(apr_pool_t *p, const ospab_seal_key_t *key,
                                   const ospab_pve_conf_t *base, apr_interval_time_t ttl,
                                   ospab_clusters_t **cs);
/* The client of node's cluster; *url: that cluster's URL. NULL with *url NULL: node
 * belongs to no registered cluster (the configured one's); NULL with *url set: its
 * cluster cannot be used (its token does not open with this key). Reads the rows again
 * when the last read is older than the ttl; a node that read did not know is looked up
 * alone (one indexed row), so a node registered since is never taken for the configured
 * cluster's. The database is read outside the cache's lock. Thread-safe. */
ospab_pve_t *ospab_clusters_pve(ospab_clusters_t *cs, ospab_db_t *db, apr_pool_t *p,
                                const char *node, const char **url);
/* The same, and *conf (when not NULL): the settings that client was made with (URL, token,
 * CA as PEM or NULL for the system's; they live as long as cs), for a caller that must
 * reach the cluster otherwise than through the client (the agent's console WebSocket). */
ospab_pve_t *ospab_clusters_pve_conf(ospab_clusters_t *cs, ospab_db_t *db, apr_pool_t *p,
                                     const char *node, const char **url,
                                     ospab_pve_conf_t *conf);
/* The configuration's cluster (OspabProxmoxURL...), imported as a row named name on the
 * first read that reaches the database (ospab_cluster_import; actor type "admin", id
 * "configuration"). Before the first request. */
void ospab_clusters_import_first(ospab_clusters_t *cs, const char *name, const char *url,
                                 const char *token, const char *ca_pem);
/* Reads the rows (and imports the configuration's cluster, when due) now. */
void ospab_clusters_refresh(ospab_clusters_t *cs, ospab_db_t *db, apr_pool_t *p);
/* Forget what was read (this process changed a cluster or a node). */
void ospab_clusters_invalidate(ospab_clusters_t *cs);

#endif
