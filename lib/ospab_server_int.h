/* ospab core, private to server management (lib/ospab_server*.c, ospab_task.c,
 * ospab_resize.c, ospab_snapshot.c, ospab_adopt.c): the helpers they share. Not for the
 * module or the agent, which use ospab_server.h. */
#ifndef OSPAB_SERVER_INT_H
#define OSPAB_SERVER_INT_H

#include "ospab_server.h"
#include "ospab_vps.h"
#include "ospab_task.h"
#include "ospab_catalog.h"
#include "ospab_ippool.h"

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
/* DELETE's parameters for v's guest, purged with its disks: a container is stopped by
 * Proxmox first (force); a VM must be stopped before (qemu-server refuses a running one:
 * its delete and reinstall stop it in a step of their own). */
const ospab_pve_param_t *ospab_srv_destroy_params(const ospab_vps_t *v);
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

/* ---- KVM guests made from a template VM (lib/ospab_kvm.c) ---- */

typedef struct {
    const char *vmid;           /* the template VM (the OS entry's template) */
    const char *node;           /* the node it is on */
    const char *disk;           /* its boot disk ("scsi0") */
    const char *storage;        /* that disk's storage */
    apr_int64_t size_gb;        /* that disk's size */
    int shared;                 /* the storage is shared: clones can go to any node */
    const char *problem;        /* why it cannot be cloned (not a template, no disk...) */
} ospab_kvm_template_t;

/* Finds template VM vmid in c's cluster (/cluster/resources, its config, its node's
 * storage). APR_SUCCESS with *t (t->problem set when it cannot be used); else Proxmox
 * failed (*pr says how). */
apr_status_t ospab_kvm_template(apr_pool_t *p, const ospab_server_conf_t *c,
                                const ospab_actor_t *a, const char *vmid,
                                ospab_kvm_template_t *t, ospab_pve_result_t *pr);
/* Why t cannot make a VM on node (NULL: it can: its node, or shared storage). */
const char *ospab_kvm_unfit(apr_pool_t *p, const ospab_kvm_template_t *t, const char *node);
/* The create's first task: a full clone of t as vmid (name) onto node's storage; *pr's
 * data is the qmclone UPID (a task of t's node). */
apr_status_t ospab_kvm_clone(apr_pool_t *p, const ospab_server_conf_t *c,
                             const ospab_actor_t *a, const ospab_kvm_template_t *t,
                             const char *node, const char *storage, const char *vmid,
                             const char *name, ospab_pve_result_t *pr);
/* What the steps after the clone need (the task row's params): resources, network (net0,
 * cloud-init's ipconfig0 and nameserver), cloud-init's root login (password_hash: SHA-512
 * crypt; ssh_keys: OpenSSH lines, or NULL). */
typedef struct {
    const char *cores, *memory, *disk;  /* vCPUs, MB, GB */
    const char *bootdisk;               /* the disk grown to disk GB ("scsi0") */
} ospab_kvm_sizes_t;
json_t *ospab_kvm_create_params(const ospab_kvm_sizes_t *s, const char *net0,
                                const char *ipconfig0, const char *nameserver,
                                const char *password_hash, const char *ssh_keys);
/* The boot disk of a VM's config ("scsi0"; NULL when it has none) and the GB a disk
 * option's "size=" names (0: none). */
const char *ospab_kvm_boot_disk(apr_pool_t *p, json_t *config);
apr_int64_t ospab_kvm_disk_gb(const char *value);

typedef enum {
    OSPAB_KVM_STEP_STARTED,     /* its task runs: the row follows it */
    OSPAB_KVM_STEP_SKIPPED,     /* nothing to do (the disk is large enough): the next one */
    OSPAB_KVM_STEP_AGAIN,       /* Proxmox unreachable: the row stays claimed, taken again */
    OSPAB_KVM_STEP_DONE,        /* nothing was left to do: the row is finished */
    OSPAB_KVM_STEP_FAILED       /* *why says why */
} ospab_kvm_step_e;

/* A step's Proxmox call (rv, pr) as the step's outcome: its task followed by the row
 * (under action), Proxmox unreachable (again later), or failed (*why). */
ospab_kvm_step_e ospab_kvm_step_started(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                                        const char *task_id, const char *action,
                                        apr_status_t rv, const ospab_pve_result_t *pr,
                                        const char **why);
/* Starts step action ("<op>:config", "<op>:resize") of the claimed row task_id. */
ospab_kvm_step_e ospab_kvm_step(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                                const ospab_actor_t *a, const ospab_vps_t *v,
                                const char *task_id, const char *action, const char **why);
/* Starts step action ("<op>:destroy" of a reinstall or a running VM's delete,
 * "reinstall:create") of the claimed row task_id (lib/ospab_reinstall.c). */
ospab_kvm_step_e ospab_reinstall_step(ospab_db_t *db, apr_pool_t *p,
                                      const ospab_server_conf_t *c, const ospab_actor_t *a,
                                      const ospab_vps_t *v, const char *task_id,
                                      const char *action, const char **why);
/* A create that failed after its clone: the half-made VM is destroyed (purged), the
 * record is an error without a vmid, its addresses free; audited (vps.discard). A VM that
 * could not be removed keeps its vmid, so deleting the server removes it; keep: the
 * record keeps both anyway (a reinstall's server may be reinstalled again). */
void ospab_kvm_discard(ospab_db_t *db, apr_pool_t *p, const ospab_server_conf_t *c,
                       const ospab_actor_t *a, const ospab_vps_t *v, int keep);

#endif
