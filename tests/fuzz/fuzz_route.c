/* libFuzzer: ospab_route_find over the API's route table with arbitrary method and path.
 * Input: "<method>\n<path>" (no newline: the whole input is the path, method GET). */
#include "fuzz_common.h"
#include "ospab_route.h"

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
    switch (ospab_route_find(ospab_api_routes, method, path, &m, &allow, fuzz_pool)) {
    case OSPAB_ROUTE_FOUND:
        if (!m.route || m.route->op <= OSPAB_OP_NONE || m.route->op >= OSPAB_OP_COUNT || m.nparams < 0 || m.nparams > OSPAB_ROUTE_MAX_PARAMS) {
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
