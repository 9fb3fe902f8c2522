/* The in-process fixture of the core's unit tests: an in-memory SQLite database migrated by
 * the real migrations (sql/sqlite) with every statement prepared, an actor, and a Proxmox
 * client stub (ospab_pve_create_stub) that plays a small node: guests by vmid with a
 * status, tasks by UPID that stay running until the test finishes them. No Apache, no
 * network: the library's operations run as the module and the agent run them. */
#ifndef OSPAB_FIXTURE_H
#define OSPAB_FIXTURE_H

#include <apr_pools.h>
#include <apr_hash.h>

#include "ospab_db.h"
#include "ospab_pve.h"
#include "ospab_result.h"
#include "ospab_server.h"

#define FX_NODE "pve1"

typedef struct {
    apr_pool_t *pool;               /* the test's: freed by fx_close */
    ospab_db_t db;
    ospab_actor_t actor;            /* "sync", a fixed time the test may move */
    ospab_server_conf_t server;     /* Proxmox = the stub, node FX_NODE, no quota */
    /* the stub node */
    apr_hash_t *guests;             /* vmid -> status ("running", "stopped") */
    apr_hash_t *tasks;              /* UPID -> exitstatus, "" while it runs */
    int next_pid;
    int calls;                      /* Proxmox calls so far */
    const char *last_method, *last_path;
    int fail_status;                /* > 0: the next call answers with this HTTP status ... */
    const char *fail_message;       /* ... and this reason */
    int unreachable;                /* every call fails to connect */
} fx_t;

/* Opens a fresh database (sql/sqlite migrations) and the stub; fails the test on error. */
fx_t *fx_open(void);
void fx_close(fx_t *fx);

/* SQL straight to the database: a statement, or the first column of the first row (NULL
 * when there is none or it is NULL). */
void fx_exec(fx_t *fx, const char *sql);
const char *fx_scalar(fx_t *fx, const char *sql);
int fx_count(fx_t *fx, const char *sql);

/* A user by sync (role "user" or "admin", password "correct horse"); its id. */
const char *fx_user(fx_t *fx, const char *email, const char *role);
/* A Proxmox server of user_id bound to FX_NODE/vmid, the guest on the stub with status. */
const char *fx_server(fx_t *fx, const char *user_id, const char *vmid, const char *status);

/* The stub's guest status of vmid, NULL if there is none. */
const char *fx_guest(fx_t *fx, const char *vmid);
/* Ends every running task of the stub with exitstatus ("OK" or an error), applying what
 * it did to the guest; returns how many ended. */
int fx_finish_tasks(fx_t *fx, const char *exitstatus);

/* The result's body as text (serialised), for asserts. */
const char *fx_body(fx_t *fx, const ospab_result_t *res);

#endif
