/* ospab core: managing customers' servers on Proxmox VE (seed 003 routes). Each long
 * action becomes a row in `tasks` (queued -> running with its UPID -> ok/error) and the
 * answer goes back at once; one operation per server at a time. Running tasks are followed
 * up lazily: whenever a server is touched, its running tasks are asked for their status and
 * finished tasks are applied (status, IP address, deletion). The agent does the same in the
 * background. */
#ifndef OSPAB_SERVER_H
#define OSPAB_SERVER_H

#include "ospab_db.h"
#include "ospab_pve.h"
#include "ospab_ssh.h"
#include "ospab_sync.h"
#include "ospab_customer.h"
#include "ospab_vps.h"
#include "ospab_cluster.h"

/* What customers may do with PUT /api/server/{id}/resize (OspabResize); admins may always
 * set any size within the per-field bounds. */
typedef enum {
    OSPAB_RESIZE_TARIFF = 0,        /* within the server's tariff, or move to another one */
    OSPAB_RESIZE_FREE,              /* any size within the per-field bounds */
    OSPAB_RESIZE_OFF                /* not at all */
} ospab_resize_policy_e;

typedef struct ospab_server_conf_t {
    ospab_pve_t *pve;               /* the configured cluster's (OspabProxmoxURL; NULL: none):
                                     * for servers on nodes of no registered cluster */
    const char *url;                /* its base URL, for console links */
    ospab_clusters_t *clusters;     /* the clusters registered in the database (lib/
                                     * ospab_cluster.h): a server on one of their nodes is
                                     * managed through its cluster's client (ospab_srv_for);
                                     * NULL: none are used */
    const char *node;               /* node new servers go to */
    const char *storage;            /* rootfs storage, e.g. local-lvm */
    const char *bridge;             /* e.g. vmbr0 */
    int self_service;               /* customers may create servers themselves */
    int password_cloudinit;         /* a KVM server whose guest agent does not answer gets
                                     * its new root password by cloud-init and a reboot */
    int server_quota;               /* servers a customer may own to create one (0: any) */
    ospab_resize_policy_e resize;
    const ospab_ssh_conf_t *ssh;    /* NULL: root password reset of LXC is not configured */
} ospab_server_conf_t;

/* action: start, stop, restart (hard stop + start), reboot (guest reboot), shutdown */
void ospab_server_power(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                        const ospab_principal_t *who, const ospab_actor_t *a, const char *id,
                        const char *action, ospab_result_t *res);
void ospab_server_create(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                         const ospab_principal_t *who, const ospab_actor_t *a, json_t *body,
                         ospab_result_t *res);
void ospab_server_delete(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                         const ospab_principal_t *who, const ospab_actor_t *a, const char *id,
                         ospab_result_t *res);
/* seed003: GET /api/server/{id}/status shape; else GET /api/vps/{id}/stats shape */
void ospab_server_status(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                         const ospab_principal_t *who, const char *id, const char *timeframe,
                         ospab_result_t *res);
void ospab_server_password(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                           const ospab_principal_t *who, const ospab_actor_t *a,
                           const char *id, ospab_result_t *res);
void ospab_server_resize(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                         const ospab_principal_t *who, const ospab_actor_t *a, const char *id,
                         json_t *body, ospab_result_t *res);
/* POST /api/server/{id}/reinstall {osId[, confirm][, sshKeyIds]}: the guest made anew from
 * an OS of its kind with the same vmid, addresses and resources (lib/ospab_reinstall.c);
 * a server with snapshots needs "confirm": true (they go with it). 200 with the task and
 * the new root password, shown this once. */
void ospab_server_reinstall(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                            const ospab_principal_t *who, const ospab_actor_t *a,
                            const char *id, json_t *body, ospab_result_t *res);
void ospab_server_snapshots(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                            const ospab_principal_t *who, const char *id, ospab_result_t *res);
/* op: "create", "delete", "rollback"; body {snapname[, description]} */
void ospab_server_snapshot_op(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                              const ospab_principal_t *who, const ospab_actor_t *a,
                              const char *id, const char *op, json_t *body,
                              ospab_result_t *res);
/* body {vmid} (seed 003) or {serverId}; panel: the panel's absolute base URL, ending in
 * "/" ("https://panel.example.com/panel/"): the answer's url is its console page with a
 * one-time token (lib/ospab_console.h) */
void ospab_server_console(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                          const ospab_principal_t *who, const char *panel, json_t *body,
                          ospab_result_t *res);
void ospab_server_tasks(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                        const ospab_principal_t *who, const char *id, ospab_result_t *res);

/* Follows up the running tasks of server id (the agent's task loop): finishes those that
 * stopped, applies their outcome, starts second halves, resumes ones a dead follower left. */
void ospab_server_follow(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                         const ospab_actor_t *a, const char *id);

/* The "stats" object of GET /api/server/{id}/status (seed 003) from Proxmox's status/current
 * and rrddata answers: {"status":"success","data":{vmid,status,uptime,cpu,memory,disk,
 * network,rrdData}}. New reference; the arguments are borrowed. */
json_t *ospab_server_stats_json(const char *vmid, json_t *current, json_t *rrd);

/* Sets a server's status; a change is recorded as a server.status event in the same
 * transaction (the caller's, or one of its own). */
void ospab_server_set_status(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                             const char *id, const char *status);

/* Adoption (docs/agent.md): the billing site synced a Proxmox server without node and vmid
 * (seed 000); the agent links it to the one guest of its name. */
typedef struct {
    const char *id, *user_id, *name, *status;           /* the record as the agent read it */
    const char *old_node, *old_vmid, *old_kind;         /* what it had of them (audit) */
    const char *node, *vmid, *kind, *guest_status;      /* the guest (/cluster/resources) */
} ospab_adoption_t;

/* Binds the record to the guest: node, vmid, kind, and the guest's running/stopped for a
 * creating/running/stopped record; its binding_note cleared; a vps.adopt audit row and,
 * when the status changed, server.status — one transaction, and only while the record is
 * still unbound, so named and in that state (several agents, a sync update meanwhile: one
 * wins). 1: adopted; 0: not this time (changed or bound meanwhile, the guest taken by
 * another record: the unique node+vmid); 2: *twins unbound records share the name (not
 * adopted); -1: the database failed. */
int ospab_server_adopt(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                       const ospab_adoption_t *ad, int *twins);

/* Why an unbound record was not adopted, as vps.binding_note says it (for admins; the
 * power routes' 409 tells the customer the reason in their words). */
typedef enum {
    OSPAB_BINDING_MISSING,          /* no guest of that name */
    OSPAB_BINDING_TAKEN,            /* the n guests of that name are bound to other records */
    OSPAB_BINDING_SEVERAL,          /* n unbound guests bear the name */
    OSPAB_BINDING_TWINS             /* n unbound records bear it, one unbound guest does */
} ospab_binding_e;
/* guests: "pve1/101, pve2/102"; servers: "VPS 7, VPS 9" (TAKEN: the holders; TWINS: the
 * records, NULL when not known). */
const char *ospab_server_binding_note(apr_pool_t *p, ospab_binding_e why, const char *name,
                                      int n, const char *guests, const char *servers);

/* A root password from the CSPRNG: 20 characters of letters and digits without look-alikes. */
const char *ospab_server_new_password(apr_pool_t *p);

/* The billing site's changes reaching the guest (lib/ospab_sync.c, issue 10). v is the
 * bound record (ospab_vps_get) as it is now; the billing site may do what an admin may.
 * ospab_server_sync_resize: cores/memory/disk (val, NULL unchanged; the disk only grows,
 * else 422) as a resize operation; *upid the task's when the disk grows.
 * ospab_server_sync_destroy: the guest goes (stopped, purged) like DELETE /api/server; the
 * record when the task has finished, at once when the guest was gone already.
 * Both: 0 started; 1 res is the refusal and nothing was done. */
int ospab_server_sync_resize(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                             const ospab_actor_t *a, const ospab_vps_t *v, const char **val,
                             const char **upid, ospab_result_t *res);
int ospab_server_sync_destroy(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                              const ospab_actor_t *a, const ospab_vps_t *v, const char **upid,
                              ospab_result_t *res);
/* *made: the panel created the server's guest (a create task of it got that far). 0, or 1
 * when the database failed. */
int ospab_server_panel_made(ospab_db_t *db, apr_pool_t *p, const char *id, int *made);

/* Suspension (lib/ospab_suspend.c, docs/operations.md): a suspended server keeps its status
 * whatever its guest does, its guest is kept stopped, customers' operations on it answer
 * 403. In the caller's transaction, which holds the server's row lock: suspends (on) or
 * unsuspends the record — the state before kept, restored when unsuspended — with its
 * server.status event and a vps.suspend / vps.unsuspend audit row (details: stolen, may
 * be NULL). 0: changed (*now_status: the new status); 1: nothing to do (*now_status: the
 * status it has, NULL when there is no such server); -1: the database failed. */
int ospab_suspension_change(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                            const char *id, int on, json_t *details, const char **now_status);
/* After the change's commit: brings the guest to what the record says (a suspended server
 * stopped, an unsuspended 'running' one started) as a stop/start operation of its own.
 * What happened, as a new reference: {"action":"stop"|"start","taskId":UPID},
 * {"action":"none"[,"guest":state|"reason":why]}, or {"action":...,"taskId":null,
 * "error":why}; NULL when the server is gone. */
json_t *ospab_suspension_guest(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                               const ospab_actor_t *a, const char *id);
/* The agent's rule, run for a suspended server whose guest its poll saw running with
 * nothing of ours on it: stops it. 1 when a stop was started. */
int ospab_suspension_enforce(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                             const ospab_actor_t *a, const char *id);
/* An admin's POST /api/admin/servers/{id}/suspend|unsuspend (and ospab-admin): the change
 * in a transaction of its own, then the guest; reason (may be NULL) goes to the audit. */
void ospab_server_suspend(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                          const ospab_actor_t *a, const char *id, int on, const char *reason,
                          ospab_result_t *res);

#endif
