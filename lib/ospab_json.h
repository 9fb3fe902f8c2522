/* ospab core: jansson helpers whose results live as long as an APR pool. */
#ifndef OSPAB_JSON_H
#define OSPAB_JSON_H

#include <apr_pools.h>
#include <jansson.h>

typedef struct {
    int line, column;
    long position;
    char text[160];
} ospab_json_error_t;

/* Hands j to the pool: it is released when p is cleared. Returns j. */
json_t *ospab_json_own(apr_pool_t *p, json_t *j);

/* Serialises j compactly into pool memory; NULL only on allocation failure. */
const char *ospab_json_dump(apr_pool_t *p, const json_t *j);

/* Parses a request body (rejects duplicate keys, NUL in strings, bad UTF-8).
 * On failure returns APR_EINVAL and fills *err; the result is owned by p. */
apr_status_t ospab_json_parse(apr_pool_t *p, const char *buf, apr_size_t len, json_t **out,
                              ospab_json_error_t *err);

/* {"error": msg} and, when fields has members, "fields": fields (reference stolen). */
json_t *ospab_json_error(const char *msg, json_t *fields);

/* Value for a nullable text column: a JSON string, or null. */
json_t *ospab_json_str_or_null(const char *s);
/* Value for a nullable integer column stored as text: a JSON integer, or null. */
json_t *ospab_json_int_or_null(const char *s);

#endif
