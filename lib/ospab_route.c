/* ospab core: the router and the API's route table. Patterns and paths are compared segment
 * by segment; "{id}" takes a positive decimal integer without leading zeros (ids are never
 * 0). */
#include <string.h>

#include <apr_strings.h>

#include "ospab_route.h"

static int match_pattern(const char *pat, const char *path, ospab_route_match_t *m)
{
    m->nparams = 0;
    while (*pat && *path) {
        if (!strncmp(pat, "{id}", 4)) {
            apr_int64_t v = 0;
            int digits = 0;

            if (*path < '1' || *path > '9') {
                return 0;
            }
            while (*path >= '0' && *path <= '9') {
                if (++digits > 15) {
                    return 0;
                }
                v = v * 10 + (*path++ - '0');
            }
            if (m->nparams == OSPAB_ROUTE_MAX_PARAMS) {
                return 0;
            }
            m->params[m->nparams++] = v;
            pat += 4;
            continue;
        }
        if (*pat != *path) {
            return 0;
        }
        ++pat;
        ++path;
    }
    return !*pat && !*path;
}

static int method_matches(const char *route_method, const char *method)
{
    return !strcmp(route_method, method)
        || (!strcmp(route_method, "GET") && !strcmp(method, "HEAD"));
}

ospab_route_result_e ospab_route_find(const ospab_route_t *table, const char *method,
                                      const char *path, ospab_route_match_t *m,
                                      const char **allow, apr_pool_t *p)
{
    const ospab_route_t *r;
    const char *methods = NULL;

    for (r = table; r->method; ++r) {
        if (!match_pattern(r->pattern, path, m)) {
            continue;
        }
        if (method_matches(r->method, method)) {
            m->route = r;
            return OSPAB_ROUTE_FOUND;
        }
        if (!methods || !strstr(methods, r->method)) {
            const char *add = !strcmp(r->method, "GET") ? "GET, HEAD" : r->method;
            methods = methods ? apr_pstrcat(p, methods, ", ", add, NULL) : add;
        }
    }
    if (methods) {
        *allow = methods;
        return OSPAB_ROUTE_BAD_METHOD;
    }
    return OSPAB_ROUTE_NOT_FOUND;
}

const ospab_route_t ospab_api_routes[] = {
    /* the billing site (X-API-Key) */
    { "POST", "/api/vps/sync", OSPAB_OP_VPS_SYNC, NULL },
    { "POST", "/api/vps/sync/batch", OSPAB_OP_VPS_SYNC_BATCH, NULL },
    { "POST", "/api/users/sync", OSPAB_OP_USERS_SYNC, NULL },
    { "POST", "/api/notify", OSPAB_OP_NOTIFY, NULL },
    { "GET", "/api/health", OSPAB_OP_HEALTH, NULL },
    /* sessions */
    { "POST", "/api/auth/login", OSPAB_OP_LOGIN, NULL },
    { "POST", "/api/auth/refresh", OSPAB_OP_REFRESH, NULL },
    { "POST", "/api/auth/logout", OSPAB_OP_LOGOUT, NULL },
    { "GET", "/api/auth/me", OSPAB_OP_ME, NULL },
    /* customers' reads (seed 001, seed 003) */
    { "GET", "/api/vps", OSPAB_OP_VPS_LIST, NULL },
    { "GET", "/api/vps/{id}", OSPAB_OP_VPS_GET, NULL },
    { "GET", "/api/server", OSPAB_OP_SERVER_LIST, NULL },
    { "GET", "/api/server/{id}", OSPAB_OP_SERVER_GET, NULL },
    { "GET", "/api/tariffs", OSPAB_OP_TARIFFS, NULL },
    { "GET", "/api/os", OSPAB_OP_OS, NULL },
    /* server management (seed 003), the power routes of seed 001 */
    { "POST", "/api/server/create", OSPAB_OP_SERVER_CREATE, NULL },
    { "POST", "/api/server/console", OSPAB_OP_CONSOLE, NULL },
    { "DELETE", "/api/server/{id}", OSPAB_OP_SERVER_DELETE, NULL },
    { "GET", "/api/server/{id}/status", OSPAB_OP_STATUS, NULL },
    { "POST", "/api/server/{id}/start", OSPAB_OP_POWER, "start" },
    { "POST", "/api/server/{id}/stop", OSPAB_OP_POWER, "stop" },
    { "POST", "/api/server/{id}/restart", OSPAB_OP_POWER, "restart" },
    { "POST", "/api/server/{id}/password", OSPAB_OP_PASSWORD, NULL },
    { "PUT", "/api/server/{id}/resize", OSPAB_OP_RESIZE, NULL },
    { "POST", "/api/server/{id}/reinstall", OSPAB_OP_REINSTALL, NULL },
    { "GET", "/api/server/{id}/snapshots", OSPAB_OP_SNAPSHOTS, "list" },
    { "POST", "/api/server/{id}/snapshots", OSPAB_OP_SNAPSHOTS, "create" },
    { "DELETE", "/api/server/{id}/snapshots", OSPAB_OP_SNAPSHOTS, "delete" },
    { "POST", "/api/server/{id}/snapshots/rollback", OSPAB_OP_SNAPSHOTS, "rollback" },
    { "GET", "/api/server/{id}/tasks", OSPAB_OP_TASKS, NULL },
    { "POST", "/api/vps/{id}/start", OSPAB_OP_POWER, "start" },
    { "POST", "/api/vps/{id}/stop", OSPAB_OP_POWER, "stop" },
    { "POST", "/api/vps/{id}/restart", OSPAB_OP_POWER, "restart" },
    { "POST", "/api/vps/{id}/reboot", OSPAB_OP_POWER, "reboot" },
    { "GET", "/api/vps/{id}/stats", OSPAB_OP_STATUS, NULL },
    /* the caller's account (docs/ssh-keys.md) */
    { "GET", "/api/account/ssh-keys", OSPAB_OP_SSH_KEYS, "list" },
    { "POST", "/api/account/ssh-keys", OSPAB_OP_SSH_KEYS, "add" },
    { "DELETE", "/api/account/ssh-keys/{id}", OSPAB_OP_SSH_KEYS, "delete" },
    /* the admin API (docs/operations.md) */
    { "GET", "/api/admin/users", OSPAB_OP_ADMIN_USERS, "list" },
    { "GET", "/api/admin/users/{id}", OSPAB_OP_ADMIN_USERS, "get" },
    { "POST", "/api/admin/users/{id}/disable", OSPAB_OP_ADMIN_USERS, "disable" },
    { "POST", "/api/admin/users/{id}/enable", OSPAB_OP_ADMIN_USERS, "enable" },
    { "GET", "/api/admin/tariffs", OSPAB_OP_ADMIN_TARIFFS, "list" },
    { "POST", "/api/admin/tariffs", OSPAB_OP_ADMIN_TARIFFS, "create" },
    { "GET", "/api/admin/tariffs/{id}", OSPAB_OP_ADMIN_TARIFFS, "get" },
    { "PUT", "/api/admin/tariffs/{id}", OSPAB_OP_ADMIN_TARIFFS, "update" },
    { "DELETE", "/api/admin/tariffs/{id}", OSPAB_OP_ADMIN_TARIFFS, "delete" },
    { "GET", "/api/admin/os", OSPAB_OP_ADMIN_OS, "list" },
    { "POST", "/api/admin/os", OSPAB_OP_ADMIN_OS, "create" },
    { "GET", "/api/admin/os/{id}", OSPAB_OP_ADMIN_OS, "get" },
    { "PUT", "/api/admin/os/{id}", OSPAB_OP_ADMIN_OS, "update" },
    { "DELETE", "/api/admin/os/{id}", OSPAB_OP_ADMIN_OS, "delete" },
    { "GET", "/api/admin/audit", OSPAB_OP_ADMIN_AUDIT, NULL },
    { "GET", "/api/admin/alerts", OSPAB_OP_ADMIN_ALERTS, NULL },
    { "GET", "/api/admin/outbox", OSPAB_OP_ADMIN_OUTBOX, "list" },
    { "POST", "/api/admin/outbox/email/{id}/retry", OSPAB_OP_ADMIN_OUTBOX, "email" },
    { "POST", "/api/admin/outbox/webhook/{id}/retry", OSPAB_OP_ADMIN_OUTBOX, "webhook" },
    { "GET", "/api/admin/servers", OSPAB_OP_ADMIN_SERVERS, "list" },
    { "POST", "/api/admin/servers/{id}/suspend", OSPAB_OP_ADMIN_SERVERS, "suspend" },
    { "POST", "/api/admin/servers/{id}/unsuspend", OSPAB_OP_ADMIN_SERVERS, "unsuspend" },
    { "POST", "/api/admin/servers/{id}/owner", OSPAB_OP_ADMIN_SERVERS, "owner" },
    { "GET", "/api/admin/ip-pools", OSPAB_OP_ADMIN_IPPOOLS, "list" },
    { "POST", "/api/admin/ip-pools", OSPAB_OP_ADMIN_IPPOOLS, "create" },
    { "PUT", "/api/admin/ip-pools/{id}", OSPAB_OP_ADMIN_IPPOOLS, "update" },
    { "DELETE", "/api/admin/ip-pools/{id}", OSPAB_OP_ADMIN_IPPOOLS, "delete" },
    { "GET", "/api/admin/nodes", OSPAB_OP_ADMIN_NODES, "list" },
    { "POST", "/api/admin/nodes", OSPAB_OP_ADMIN_NODES, "create" },
    { "GET", "/api/admin/nodes/{id}", OSPAB_OP_ADMIN_NODES, "get" },
    { "PUT", "/api/admin/nodes/{id}", OSPAB_OP_ADMIN_NODES, "update" },
    { "DELETE", "/api/admin/nodes/{id}", OSPAB_OP_ADMIN_NODES, "delete" },
    { "GET", "/api/admin/clusters", OSPAB_OP_ADMIN_CLUSTERS, "list" },
    { "POST", "/api/admin/clusters", OSPAB_OP_ADMIN_CLUSTERS, "create" },
    { "GET", "/api/admin/clusters/{id}", OSPAB_OP_ADMIN_CLUSTERS, "get" },
    { "PUT", "/api/admin/clusters/{id}", OSPAB_OP_ADMIN_CLUSTERS, "update" },
    { "DELETE", "/api/admin/clusters/{id}", OSPAB_OP_ADMIN_CLUSTERS, "delete" },
    { "POST", "/api/admin/clusters/{id}/test", OSPAB_OP_ADMIN_CLUSTERS, "test" },
    { NULL, NULL, OSPAB_OP_NONE, NULL }
};
