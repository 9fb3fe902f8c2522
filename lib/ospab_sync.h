/* ospab core: the operations of the sync API (POST /api/vps/sync, /batch, /api/users/sync),
 * independent of httpd: validated, transactional, audited, idempotent. */
#ifndef OSPAB_SYNC_H
#define OSPAB_SYNC_H

#include <apr_pools.h>
#include <apr_time.h>
#include <jansson.h>

#include "ospab_db.h"
#include "ospab_result.h"
#include "ospab_idem.h"

#define OSPAB_BATCH_MAX 1000

struct ospab_server_conf_t;

/* req is the parsed body {"action":..., "vps":{...}}; idem may be NULL. guests: the
 * Proxmox set-up, when the billing site's changes are to reach the guests (an update's
 * sizes, a delete of the panel's own guest: docs/sync-api.md); NULL: records only. */
void ospab_sync_vps(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *actor, json_t *req,
                    const struct ospab_server_conf_t *guests, const ospab_idem_t *idem,
                    ospab_result_t *res);
/* req is {"operations":[...]}: every item on its own, results in order. */
void ospab_sync_vps_batch(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *actor,
                          json_t *req, const struct ospab_server_conf_t *guests,
                          ospab_result_t *res);
/* req is {"action":..., "user":{...}}. */
void ospab_sync_user(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *actor, json_t *req,
                     const ospab_idem_t *idem, ospab_result_t *res);


/* Writes every user's email_key (ospab_email_key) where it differs from the stored one:
 * after a migration or a seed wrote accounts with SQL alone. *changed (may be NULL) gets
 * the number of rows updated. */
apr_status_t ospab_sync_user_keys(ospab_db_t *db, apr_pool_t *p, int *changed);

#endif
