/* ospab core: where a new server goes (issue 13 item 2, docs/operations.md "Nodes and
 * placement"). Among the registered nodes that take new servers (009_nodes.sql), online and
 * reported on lately by the agent, and within their over-allocation limits (the vCPUs,
 * memory and disk already given to servers on them plus the new one's, against the node's
 * CPUs, memory and guest storage times its ratios), the one with the most free memory
 * after the new guest: the agent's latest sample of the node, less the servers made on it
 * since that sample, less the new one. The create transaction locks the chosen node's row
 * first and checks its limits again with what is committed by then, so creates at once
 * never overfill a node. No registered node: OspabProxmoxNode, as before. */
#ifndef OSPAB_PLACEMENT_H
#define OSPAB_PLACEMENT_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include <jansson.h>

#include "ospab_db.h"
#include "ospab_result.h"
#include "ospab_ssh.h"

/* The agent's sample older than this: the node is not placed on. */
#define OSPAB_NODE_SAMPLE_MAX_AGE apr_time_from_sec(300)

/* A node as ospab_node_place_one / ospab_nodes_place read it: its settings, the agent's
 * sample (bytes; maxcpu: CPUs) and what servers on it have been given (MB, GB). */
typedef struct {
    const char *id, *name, *storage, *bridge, *status, *sampled_at;
    const char *cluster_id;         /* NULL: the configured cluster's node */
    int cluster_enabled;            /* its cluster takes new servers (1 for NULL) */
    apr_int64_t cpu_ratio, mem_ratio, disk_ratio;
    apr_int64_t maxcpu, maxmem, mem, maxdisk, disk;     /* -1: not sampled */
    apr_int64_t given_cpu, given_ram, given_disk, recent_ram;
} ospab_node_t;

/* What the new server needs: vCPUs, MB of memory, GB of disk. */
typedef struct {
    apr_int64_t cores, memory, disk;
} ospab_need_t;

/* The nodes that take new servers (nodes.accepts), in id order; *any: whether any node is
 * registered at all (placement is on). */
apr_status_t ospab_nodes_load(ospab_db_t *db, apr_pool_t *p, apr_array_header_t **nodes,
                              int *any);
/* One node again, in the create transaction after its lock (NULL: gone). */
apr_status_t ospab_node_reload(ospab_db_t *db, apr_pool_t *p, const char *id,
                               const ospab_node_t **n);
apr_status_t ospab_node_lock(ospab_db_t *db, apr_pool_t *p, const char *id);
/* The SSH settings for a server on node: ssh with the registered node's ssh_host and
 * ssh_host_key (checked instead of the known_hosts file), or ssh itself (no such node,
 * neither set, the database failed). */
const ospab_ssh_conf_t *ospab_node_ssh(ospab_db_t *db, apr_pool_t *p,
                                       const ospab_ssh_conf_t *ssh, const char *node);

/* Why n cannot take the server now (for the log), or NULL when it can. */
const char *ospab_node_unfit(apr_pool_t *p, const ospab_node_t *n, const ospab_need_t *need,
                             apr_time_t now);
/* Bytes of memory n has free after the new server (may be below 0 on an over-allocated
 * node). */
apr_int64_t ospab_node_free_after(const ospab_node_t *n, const ospab_need_t *need);
/* The nodes that can take it, best first (const ospab_node_t *); *why: every other one's
 * reason, "pve1: ...; pve2: ...". */
apr_array_header_t *ospab_nodes_rank(apr_pool_t *p, const apr_array_header_t *nodes,
                                     const ospab_need_t *need, apr_time_t now,
                                     const char **why);

/* ---- the nodes as data: /api/admin/nodes (docs/operations.md) ---------------------------- */

/* GET: {"status","nodes":[{id, name, storage, bridge, cpu_ratio, mem_ratio, disk_ratio,
 * accepts, sample: {status, maxcpu, maxmem, mem, maxdisk, disk, sampled_at} | null,
 * given: {cpu, ram, disk}}]}; with id: {"status","node"}, 404. */
void ospab_nodes_list(ospab_db_t *db, apr_pool_t *p, const char *id, ospab_result_t *res);
/* POST {name, storage?, bridge?, cpu_ratio?, mem_ratio?, disk_ratio?, accepts?, ssh_host?}:
 * 201;
 * PUT /{id}: the fields given; DELETE /{id}: the registration goes (servers on the node stay
 * as they are). Audited (node.create / node.update / node.delete). */
void ospab_node_create(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a, json_t *body,
                       ospab_result_t *res);
void ospab_node_update(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a, const char *id,
                       json_t *body, ospab_result_t *res);
void ospab_node_delete(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a, const char *id,
                       ospab_result_t *res);

#endif
