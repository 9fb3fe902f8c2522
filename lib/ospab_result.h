/* ospab core: the vocabulary every operation speaks: who acts (actor, principal), what it
 * answers (a result: status and body, or the error the client sees and the cause for the
 * log), and the audit row it leaves. Shared by the sync API, sessions, customer reads,
 * server management and the agent. */
#ifndef OSPAB_RESULT_H
#define OSPAB_RESULT_H

#include <apr_pools.h>
#include <apr_time.h>
#include <jansson.h>

#include "ospab_db.h"

/* Who makes a change, for the audit log. */
typedef struct {
    const char *type;         /* audit actor_type: "sync", "user", "admin", "agent" */
    const char *id;           /* audit actor_id, may be NULL */
    const char *remote_addr;  /* may be NULL */
    apr_time_t now;
    unsigned *effects;        /* counts the calls outside the database the operation made
                               * (Proxmox, SSH): one that made none may run again after a
                               * write conflict (ospab_db_conflict_retry); NULL: not counted */
    /* run first in the transaction of a change made from what a poll saw
     * (ospab_server_set_status): 0 means the actor may no longer write (an agent that lost
     * its lease) and the change is dropped; NULL: none */
    int (*guard)(void *baton, ospab_db_t *db, apr_pool_t *p);
    void *guard_baton;
} ospab_actor_t;

/* Who a customer route's caller is (ospab_session_principal). */
typedef struct {
    const char *user_id;    /* the caller */
    int admin;              /* the user row's role is admin */
    const char *session;    /* the login (refresh-token family) the token belongs to, or NULL */
} ospab_principal_t;

/* What an operation answers. */
typedef struct {
    int status;          /* HTTP status */
    json_t *body;        /* response body, owned by the pool the call was given ... */
    const char *text;    /* ... or, for large read answers, the body already serialised */
    const char *log;     /* the cause behind an answer (database or Proxmox text), for the
                          * error log only */
    int idem_race;       /* another request holding the same Idempotency-Key committed first */
} ospab_result_t;

/* Sets res to {"error": msg} with status; fields (stolen) may be NULL. */
void ospab_result_error(apr_pool_t *p, ospab_result_t *res, int status, const char *msg,
                        json_t *fields);

/* The answer of an admin collection's list or get: {"status":"success", many: list}, or
 * with id {"status":"success", one: list's only element}, 404 not_found when it is empty.
 * list is stolen. */
void ospab_result_list_or_one(apr_pool_t *p, ospab_result_t *res, json_t *list,
                              const char *id, const char *one, const char *many,
                              const char *not_found);

/* 503 "database unavailable" after a failed statement: rolls back an open transaction
 * and keeps the database's reason in res->log. */
void ospab_result_db_failed(ospab_db_t *db, apr_pool_t *p, ospab_result_t *res);

/* One audit_log row: the actor's type and id, what was done to which target, the changed
 * fields (details, stolen, may be NULL; never secrets). */
apr_status_t ospab_audit(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                         const char *action, const char *target_type, const char *target_id,
                         json_t *details);

#endif
