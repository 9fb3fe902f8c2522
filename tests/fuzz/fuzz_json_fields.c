/* libFuzzer: request bodies through ospab_json_parse, then the vps and user validation
 * tables (create and update rules) and the error summary, as the sync handlers use them. */
#include <jansson.h>

#include "fuzz_common.h"
#include "ospab_json.h"
#include "ospab_fields.h"
#include "ospab_resource.h"

static void check_fields(json_t *obj, const ospab_field_t *spec, int n, const char *what)
{
    ospab_field_value_t out[32];
    int creating;

    if (n > 32) {
        abort();
    }
    for (creating = 0; creating <= 1; ++creating) {
        json_t *errors = json_object();
        int nerr;

        memset(out, 0, sizeof(out));
        nerr = ospab_fields_read(fuzz_pool, spec, n, obj, creating, out, errors);
        if (nerr < 0 || (nerr > 0) != (json_object_size(errors) > 0)) {
            abort();   /* the count must agree with what was reported */
        }
        if (nerr) {
            const char *s = ospab_fields_summary(fuzz_pool, what, errors);

            if (!s) {
                abort();
            }
        }
        json_decref(errors);
    }
}

static void check_object(json_t *obj)
{
    check_fields(obj, ospab_vps_fields, OSPAB_VPS_NFIELDS, "vps");
    check_fields(obj, ospab_user_fields, OSPAB_USER_NFIELDS, "user");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *root = NULL;
    ospab_json_error_t err;

    if (ospab_json_parse(fuzz_pool, (const char *)data, size, &root, &err) == APR_SUCCESS
        && json_is_object(root)) {
        json_t *inner;

        check_object(root);
        /* the sync envelopes: {"action":..,"vps":{..}} and {"action":..,"user":{..}} */
        inner = json_object_get(root, "vps");
        if (json_is_object(inner)) {
            check_fields(inner, ospab_vps_fields, OSPAB_VPS_NFIELDS, "vps");
        }
        inner = json_object_get(root, "user");
        if (json_is_object(inner)) {
            check_fields(inner, ospab_user_fields, OSPAB_USER_NFIELDS, "user");
        }
    }
    apr_pool_clear(fuzz_pool);   /* releases root (owned by the pool) */
    return 0;
}
