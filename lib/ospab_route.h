/* ospab core: the API's routes (method + path pattern -> what to do) and the router, with
 * {id} path parameters. The table is data the module dispatches on (one handler per
 * operation, mod_ospab/ospab_mod_handler.c) and that the tests and fuzzers read too. */
#ifndef OSPAB_ROUTE_H
#define OSPAB_ROUTE_H

#include <apr_pools.h>

#define OSPAB_ROUTE_MAX_PARAMS 4

/* What a route does. Routes that differ only in a variant (the power actions, the
 * snapshot operations) share an operation and name the variant in their action. */
typedef enum {
    OSPAB_OP_NONE = 0,
    OSPAB_OP_VPS_SYNC, OSPAB_OP_VPS_SYNC_BATCH, OSPAB_OP_USERS_SYNC, OSPAB_OP_NOTIFY,
    OSPAB_OP_HEALTH,
    OSPAB_OP_LOGIN, OSPAB_OP_REFRESH, OSPAB_OP_LOGOUT, OSPAB_OP_ME,
    OSPAB_OP_VPS_LIST, OSPAB_OP_VPS_GET, OSPAB_OP_SERVER_LIST, OSPAB_OP_SERVER_GET,
    OSPAB_OP_TARIFFS, OSPAB_OP_OS,
    OSPAB_OP_SERVER_CREATE, OSPAB_OP_CONSOLE, OSPAB_OP_SERVER_DELETE, OSPAB_OP_STATUS,
    OSPAB_OP_POWER, OSPAB_OP_PASSWORD, OSPAB_OP_RESIZE, OSPAB_OP_SNAPSHOTS, OSPAB_OP_TASKS,
    OSPAB_OP_REINSTALL,
    /* the caller's own account: SSH keys (the action is the verb) */
    OSPAB_OP_SSH_KEYS,
    /* the admin API (role admin), one operation per collection; the action is the verb */
    OSPAB_OP_ADMIN_USERS, OSPAB_OP_ADMIN_TARIFFS, OSPAB_OP_ADMIN_OS, OSPAB_OP_ADMIN_AUDIT,
    OSPAB_OP_ADMIN_ALERTS, OSPAB_OP_ADMIN_OUTBOX, OSPAB_OP_ADMIN_SERVERS, OSPAB_OP_ADMIN_IPPOOLS,
    OSPAB_OP_ADMIN_NODES,
    OSPAB_OP_ADMIN_CLUSTERS,
    OSPAB_OP_COUNT
} ospab_op_e;

typedef struct {
    const char *method;   /* "GET", "POST", ... ; GET also answers HEAD */
    const char *pattern;  /* "/api/vps/{id}/start": "{id}" matches a positive integer */
    ospab_op_e op;
    const char *action;   /* the variant: "start" (power), "rollback" (snapshots); or NULL */
} ospab_route_t;

/* Every route of the API, in one table ending with a NULL method. */
extern const ospab_route_t ospab_api_routes[];

typedef struct {
    const ospab_route_t *route;
    int nparams;
    apr_int64_t params[OSPAB_ROUTE_MAX_PARAMS];
} ospab_route_match_t;

typedef enum {
    OSPAB_ROUTE_FOUND,
    OSPAB_ROUTE_NOT_FOUND,
    OSPAB_ROUTE_BAD_METHOD
} ospab_route_result_e;

/* Finds path in the NULL-terminated table. On OSPAB_ROUTE_BAD_METHOD, *allow lists the
 * methods the path does answer ("GET, HEAD, POST"), allocated from p. */
ospab_route_result_e ospab_route_find(const ospab_route_t *table, const char *method,
                                      const char *path, ospab_route_match_t *m,
                                      const char **allow, apr_pool_t *p);

#endif
