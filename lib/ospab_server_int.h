/* ospab core, private to server management (lib/ospab_server*.c, ospab_task.c,
 * ospab_resize.c, ospab_snapshot.c, ospab_adopt.c): the helpers they share. Not for the
 * module or the agent, which use ospab_server.h. */
#ifndef OSPAB_SERVER_INT_H
#define OSPAB_SERVER_INT_H

#include "ospab_server.h"
#include "ospab_vps.h"
#include "ospab_task.h"

/* res = status with body (owned by p from now on). */
void ospab_srv_ok_body(apr_pool_t *p, ospab_result_t *res, int status, json_t *body);
/* {"status":"success", "action"?:..., "taskId"?:...} */
json_t *ospab_srv_success(const char *action, const char *upid);
/* Maps a failed Proxmox call to the answer the customer gets: the panel's words
 * (lib/ospab_pve_errors.c), never Proxmox's own, which go to the log (res->log). */
void ospab_srv_pve_failed(apr_pool_t *p, const ospab_pve_result_t *pr, const char *what,
                          ospab_result_t *res);
/* Every Proxmox call of a request shares one budget: the configured total timeout counted
 * from the request's start (a->now), so no worker waits longer however many calls it
 * makes. */
apr_status_t ospab_srv_pve_call(const ospab_server_conf_t *c, apr_pool_t *p,
                                const ospab_actor_t *a, const char *method, const char *path,
                                const ospab_pve_param_t *params, ospab_pve_result_t *res);
/* "/nodes/<node>/<lxc|qemu>/<vmid>/<a>/<b>/<c>" (NULL ends it early) */
const char *ospab_srv_guest_path(apr_pool_t *p, const ospab_vps_t *v, const char *a,
                                 const char *b, const char *c);
/* The settings for a guest on node: c itself for a node of no registered cluster, else a
 * copy with its cluster's client and URL. NULL with res a 503 (when res is not NULL): the
 * node's cluster cannot be used, or no cluster serves the node at all. */
const ospab_server_conf_t *ospab_srv_for(ospab_db_t *db, apr_pool_t *p,
                                         const ospab_server_conf_t *c, const char *node,
                                         ospab_result_t *res);
/* Proxmox configured, a Proxmox server, linked to its guest; *c becomes the settings of its
 * node's cluster (ospab_srv_for). 0: fine; 1: res is set. */
int ospab_srv_on_proxmox(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t **c,
                         const ospab_vps_t *v, ospab_result_t *res);
/* 1 and *out when v is a JSON integer >= 1 (an id in a request body). */
int ospab_srv_positive_int(json_t *v, apr_int64_t *out);
/* The billing site's principal for a server (the sync API's changes to guests): it may do
 * what an admin may. */
void ospab_srv_billing(const ospab_vps_t *v, ospab_principal_t *who);
/* What a customer is told of a server the agent has not linked to its guest yet
 * (ospab_adopt.c): the reason of vps.binding_note in their words. */
const char *ospab_srv_unlinked_text(apr_pool_t *p, const ospab_vps_t *v);

/* A suspended server (lib/ospab_suspend.c): customers may not run action on it (403);
 * admins and the billing site may, but for starting it (409). 0: go on; 1: res is set. */
int ospab_srv_refuse_suspended(apr_pool_t *p, const ospab_principal_t *who,
                               const ospab_vps_t *v, const char *action, ospab_result_t *res);

#endif
