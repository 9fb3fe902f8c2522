/* ospab core: method + path -> route, with {id} path parameters. */
#ifndef OSPAB_ROUTE_H
#define OSPAB_ROUTE_H

#include <apr_pools.h>

#define OSPAB_ROUTE_MAX_PARAMS 4

typedef struct {
    const char *method;   /* "GET", "POST", ... ; GET also answers HEAD */
    const char *pattern;  /* "/api/vps/{id}/start": "{id}" matches a positive integer */
    const void *data;     /* what the caller dispatches to */
} ospab_route_t;

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
