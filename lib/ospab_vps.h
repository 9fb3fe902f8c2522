/* ospab core: a vps row, typed. The one loader of VPS_COLS rows (ospab_sql.c: the fields
 * of ospab_vps_fields in order, then binding_note), the panel's rule for "this caller's
 * server", and the one delete of a record with its dependents. */
#ifndef OSPAB_VPS_H
#define OSPAB_VPS_H

#include "ospab_db.h"
#include "ospab_result.h"

typedef struct {
    const char *id, *external_id, *name, *status, *ip, *cpu, *ram, *disk, *os, *user_id;
    const char *hypervisor, *node, *vmid, *kind, *tariff_id, *os_id;
    const char *created_at, *updated_at;
    const char *binding_note;   /* why the agent has not linked it to its guest; NULL */
    /* the same columns in ospab_vps_fields' order, for the code driven by that table (the
     * record's JSON shape, the audit of what an update changed) */
    ospab_row_t cols;
} ospab_vps_t;

/* Row shapes for ospab_row_fill: VPS_COLS (ospab_vps_get, _get_ext, _by_vmid, the pages
 * of GET /api/vps; cols is set), ospab_vps_status_of (status, user_id; the rest NULL). */
extern const ospab_row_shape_t ospab_vps_row;
extern const ospab_row_shape_t ospab_vps_status_row;

/* The record by a VPS_COLS statement with one argument (ospab_vps_get by id,
 * ospab_vps_get_ext by external id). APR_SUCCESS with *v, NULL when there is none;
 * anything else: the database failed (db->error). */
apr_status_t ospab_vps_load(ospab_db_t *db, apr_pool_t *p, const char *label,
                            const char *arg, const ospab_vps_t **v);

/* The caller's server by id: an admin's any, a user's own. 0: *v set; 1: res is set
 * (404 for a server that is not theirs, as for one that does not exist; 503). */
int ospab_vps_load_owned(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                         const char *id, const ospab_vps_t **v, ospab_result_t *res);

/* "lxc" or "qemu" (a record without a kind is a container, as the panel creates them). */
const char *ospab_vps_kind(const ospab_vps_t *v);

/* Deletes the record id and what hangs on it (its latest metrics and alerts; its tasks
 * stay, detached, for the history), in the caller's transaction. SQLite does not enforce
 * ON DELETE here, so the dependents go explicitly. APR_SUCCESS, or the first failure. */
apr_status_t ospab_vps_remove(ospab_db_t *db, apr_pool_t *p, const char *id);

#endif
