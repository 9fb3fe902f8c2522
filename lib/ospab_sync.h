/* ospab core: the operations of the sync API (POST /api/vps/sync, /batch, /api/users/sync),
 * independent of httpd: validated, transactional, audited, idempotent. */
#ifndef OSPAB_SYNC_H
#define OSPAB_SYNC_H

#include <apr_pools.h>
#include <apr_time.h>
#include <jansson.h>

#include "ospab_db.h"

#define OSPAB_BATCH_MAX 1000

typedef struct {
    const char *type;         /* audit actor_type: "sync", "user", "admin", "agent" */
    const char *id;           /* audit actor_id, may be NULL */
    const char *remote_addr;  /* may be NULL */
    apr_time_t now;
} ospab_actor_t;

typedef struct {
    int status;          /* HTTP status */
    json_t *body;        /* response body, owned by the pool the call was given ... */
    const char *text;    /* ... or, for large read answers, the body already serialised */
    const char *log;     /* why a 5xx happened (database text), for the error log */
    int idem_race;       /* another request holding the same Idempotency-Key committed first */
} ospab_result_t;

/* An Idempotency-Key: scope separates routes, hash is SHA-256 hex of the request. */
typedef struct {
    const char *scope;
    const char *key;
    const char *hash;
} ospab_idem_t;

typedef enum {
    OSPAB_IDEM_NEW,       /* never seen (or expired): execute */
    OSPAB_IDEM_REPLAY,    /* completed with the same request: answer with status/body */
    OSPAB_IDEM_MISMATCH,  /* completed or running with another request: 409 */
    OSPAB_IDEM_PENDING    /* the same request is still running elsewhere */
} ospab_idem_state_e;

#define OSPAB_IDEM_TTL        apr_time_from_sec(24 * 3600)
#define OSPAB_IDEM_ABANDONED  apr_time_from_sec(300)

apr_status_t ospab_idem_lookup(ospab_db_t *db, apr_pool_t *p, const ospab_idem_t *idem,
                               apr_time_t now, ospab_idem_state_e *state, int *status,
                               const char **body);
/* Records idem as running (inside the caller's transaction, if one is open). */
apr_status_t ospab_idem_reserve(ospab_db_t *db, apr_pool_t *p, const ospab_idem_t *idem,
                                apr_time_t now);
apr_status_t ospab_idem_complete(ospab_db_t *db, apr_pool_t *p, const ospab_idem_t *idem,
                                 int status, const char *body);

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

/* 503 "database unavailable" after a failed statement: rolls back an open transaction
 * and keeps the database's reason in res->log. */
void ospab_result_db_failed(ospab_db_t *db, apr_pool_t *p, ospab_result_t *res);

/* One audit_log row: the actor's type and id, what was done to which target, the changed
 * fields (details, stolen, may be NULL; never secrets). */
apr_status_t ospab_audit(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                         const char *action, const char *target_type, const char *target_id,
                         json_t *details);

/* Sets res to {"error": msg} with status; fields (stolen) may be NULL. */
void ospab_result_error(apr_pool_t *p, ospab_result_t *res, int status, const char *msg,
                        json_t *fields);

/* Writes every user's email_key (ospab_email_key) where it differs from the stored one:
 * after a migration or a seed wrote accounts with SQL alone. *changed (may be NULL) gets
 * the number of rows updated. */
apr_status_t ospab_sync_user_keys(ospab_db_t *db, apr_pool_t *p, int *changed);

#endif
