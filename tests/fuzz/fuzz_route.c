/* libFuzzer: ospab_route_find over the module's route table with arbitrary method and path.
 * Input: "<method>\n<path>" (no newline: the whole input is the path, method GET). */
#include "fuzz_common.h"
#include "ospab_route.h"

/* The table of mod_ospab/ospab_mod_handler.c; data only has to be non-NULL here. */
#define H ((const void *)"h")
static const ospab_route_t routes[] = {
    { "POST", "/api/vps/sync", H },
    { "POST", "/api/vps/sync/batch", H },
    { "POST", "/api/users/sync", H },
    { "GET", "/api/health", H },
    { "POST", "/api/auth/login", H },
    { "POST", "/api/auth/refresh", H },
    { "POST", "/api/auth/logout", H },
    { "GET", "/api/auth/me", H },
    { "GET", "/api/vps", H },
    { "GET", "/api/vps/{id}", H },
    { "GET", "/api/server", H },
    { "GET", "/api/server/{id}", H },
    { "GET", "/api/tariffs", H },
    { "POST", "/api/server/create", H },
    { "POST", "/api/server/console", H },
    { "DELETE", "/api/server/{id}", H },
    { "GET", "/api/server/{id}/status", H },
    { "POST", "/api/server/{id}/start", H },
    { "POST", "/api/server/{id}/stop", H },
    { "POST", "/api/server/{id}/restart", H },
    { "POST", "/api/server/{id}/password", H },
    { "PUT", "/api/server/{id}/resize", H },
    { "GET", "/api/server/{id}/snapshots", H },
    { "POST", "/api/server/{id}/snapshots", H },
    { "DELETE", "/api/server/{id}/snapshots", H },
    { "POST", "/api/server/{id}/snapshots/rollback", H },
    { "GET", "/api/server/{id}/tasks", H },
    { "POST", "/api/vps/{id}/start", H },
    { "POST", "/api/vps/{id}/stop", H },
    { "POST", "/api/vps/{id}/restart", H },
    { "POST", "/api/vps/{id}/reboot", H },
    { "GET", "/api/vps/{id}/stats", H },
    { "GET", "/api/os", H },
    { NULL, NULL, NULL }
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_cstr(data, size);
    char *nl = memchr(buf, '\n', size);
    const char *method = "GET", *path = buf;
    const char *allow = NULL;
    ospab_route_match_t m;
    int i;

    if (nl) {
        *nl = '\0';
        method = buf;
        path = nl + 1;
    }
    memset(&m, 0, sizeof(m));
    switch (ospab_route_find(routes, method, path, &m, &allow, fuzz_pool)) {
    case OSPAB_ROUTE_FOUND:
        if (!m.route || !m.route->data || m.nparams < 0 || m.nparams > OSPAB_ROUTE_MAX_PARAMS) {
            abort();
        }
        for (i = 0; i < m.nparams; ++i) {
            if (m.params[i] < 1) {
                abort();   /* "{id}" matches a positive integer */
            }
        }
        break;
    case OSPAB_ROUTE_BAD_METHOD:
        if (!allow || !*allow) {
            abort();
        }
        break;
    case OSPAB_ROUTE_NOT_FOUND:
        break;
    default:
        abort();
    }
    apr_pool_clear(fuzz_pool);
    return 0;
}
