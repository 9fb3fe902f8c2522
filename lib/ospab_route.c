/* ospab core: the router. Patterns and paths are compared segment by segment; "{id}"
 * takes a positive decimal integer without leading zeros (ids are never 0). */
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
