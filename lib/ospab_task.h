/* ospab core: the task machine of server management, shared by the module's operations
 * and the agent's follow-up (ospab_server_follow). A long action is a row of `tasks`:
 * queued (taken, Proxmox not asked yet) -> running (with its UPID) -> ok | error. One
 * operation per server at a time: the row is inserted under a lock of the server's row.
 * Chained operations keep one row: restart = hard stop + start, create = create + start
 * (a VM: clone, config, resize, start), a rollback of a running server = rollback + start,
 * reinstall = destroy + create + start (a VM: stop, destroy, clone, config, resize,
 * start). After each step the row is claimed as "<action>:<next step>" and follows that
 * step's task. Module and agent may follow one task
 * at once: conditional updates let exactly one of them apply each outcome. */
#ifndef OSPAB_TASK_H
#define OSPAB_TASK_H

#include "ospab_db.h"
#include "ospab_pve.h"
#include "ospab_result.h"
#include "ospab_vps.h"

struct ospab_server_conf_t;

/* A task row. Which members are set depends on the statement (the loaders say). */
typedef struct {
    const char *id;
    const char *vps_id, *user_id;    /* ospab_task_get */
    const char *upid;                /* the current half's (get: the first half's) */
    const char *action;              /* "start", ..., "restart:start" */
    const char *node;                /* ospab_task_active */
    const char *status;              /* queued running ok error */
    const char *exitstatus, *error;  /* get, list */
    const char *created_at, *updated_at, *finished_at;
} ospab_task_t;

/* Row shapes for ospab_row_fill: ospab_task_active (id upid action node status created_at
 * updated_at), ospab_task_get (id vps_id user_id action status upid(first) exitstatus
 * error), ospab_task_list (id action status upid(first) exitstatus error created_at
 * updated_at finished_at). */
extern const ospab_row_shape_t ospab_task_active_row;
extern const ospab_row_shape_t ospab_task_get_row;
extern const ospab_row_shape_t ospab_task_list_row;

/* Finishes a queued or running task and records task.finished with it. 1: this call
 * finished it; 0: it was already finished (another follower won) or the write failed. */
int ospab_task_finish(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                      const char *task_id, int ok, const char *exitstatus, const char *error);
/* The row follows upid under action from now on (a second half, or a restart that only
 * needed its start). */
void ospab_task_continue(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                         const char *task_id, const char *upid, const char *action);
/* Applies what a finished task means for its server (status, IP address, deletion, the
 * owner's e-mail of a new server). */
void ospab_task_apply(ospab_db_t *db, apr_pool_t *p, const struct ospab_server_conf_t *c,
                      const ospab_actor_t *a, const ospab_vps_t *v, const char *action,
                      int ok);
/* Asks Proxmox about the server's running tasks and finishes those that stopped; resumes a
 * second half whose follower died. Failures to reach Proxmox leave the tasks as they are. */
void ospab_task_follow_up(ospab_db_t *db, apr_pool_t *p, const struct ospab_server_conf_t *c,
                          const ospab_actor_t *a, const ospab_vps_t *v);
/* Takes the server for one operation: inside a transaction that first locks the server's
 * row, no other operation may be queued or running. 0: *task_id set; 1: res is set. */
int ospab_task_begin(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                     const ospab_vps_t *v, const char *action, const char **task_id,
                     ospab_result_t *res);
/* Records the UPID Proxmox gave (rv, pr: its answer to the operation), or the refusal.
 * 0: started, *upid set; 1: res is set and the task finished as an error. */
int ospab_task_started(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                       const char *task_id, apr_status_t rv, ospab_pve_result_t *pr,
                       const char *what, const char **upid, ospab_result_t *res);
/* What the later steps of a chained operation need (tasks.params, cleared when the row
 * finishes): stored (params not stolen) and read back (owned by p; NULL when none). */
apr_status_t ospab_task_set_params(ospab_db_t *db, apr_pool_t *p, const char *task_id,
                                   json_t *params);
json_t *ospab_task_params(ospab_db_t *db, apr_pool_t *p, const char *task_id);
/* Runs step action of the row task_id, which this caller holds (queued, no UPID): a
 * start, a VM create's configuration or disk, a reinstall's destroy or create. The row
 * follows the step's task, or finishes when the step failed. */
void ospab_task_run_step(ospab_db_t *db, apr_pool_t *p, const struct ospab_server_conf_t *c,
                         const ospab_actor_t *a, const ospab_vps_t *v, const char *task_id,
                         const char *action);
/* Load the caller's server, check it is on Proxmox, follow its tasks up, take it for
 * action. 0: ready (*v, *task_id, *c the settings of the server's cluster); 1: res is
 * set. */
int ospab_task_prepare(ospab_db_t *db, apr_pool_t *p, const struct ospab_server_conf_t **c,
                       const ospab_principal_t *who, const ospab_actor_t *a, const char *id,
                       const char *action, const ospab_vps_t **v, const char **task_id,
                       ospab_result_t *res);

#endif
