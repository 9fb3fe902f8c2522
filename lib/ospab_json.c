/* ospab core: jansson helpers. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "ospab_json.h"

static apr_status_t json_release(void *data)
{
    json_decref((json_t *)data);
    return APR_SUCCESS;
}

json_t *ospab_json_own(apr_pool_t *p, json_t *j)
{
    if (j) {
        apr_pool_cleanup_register(p, j, json_release, apr_pool_cleanup_null);
    }
    return j;
}

const char *ospab_json_dump(apr_pool_t *p, const json_t *j)
{
    /* ten significant digits: 0.1629, not 0.16289999999999999 */
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(10));
    char *copy;

    if (!s) {
        return NULL;
    }
    copy = apr_pstrdup(p, s);
    free(s);
    return copy;
}

apr_status_t ospab_json_parse(apr_pool_t *p, const char *buf, apr_size_t len, json_t **out,
                              ospab_json_error_t *err)
{
    json_error_t je;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);

    if (!j) {
        err->line = je.line;
        err->column = je.column;
        err->position = (long)je.position;
        apr_cpystrn(err->text, je.text, sizeof(err->text));
        *out = NULL;
        return APR_EINVAL;
    }
    *out = ospab_json_own(p, j);
    return APR_SUCCESS;
}

json_t *ospab_json_error(const char *msg, json_t *fields)
{
    json_t *e = json_object();

    json_object_set_new(e, "error", json_string(msg));
    if (fields && json_object_size(fields) > 0) {
        json_object_set_new(e, "fields", fields);
    }
    else if (fields) {
        json_decref(fields);
    }
    return e;
}

json_t *ospab_json_str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *ospab_json_int_or_null(const char *s)
{
    char *end;
    long long v;

    if (!s || !*s) {
        return json_null();
    }
    v = strtoll(s, &end, 10);
    return *end ? json_null() : json_integer(v);
}
