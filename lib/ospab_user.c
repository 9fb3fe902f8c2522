/* ospab core: a users row, typed (ospab_user.h). */
#include <string.h>

#include <apr_strings.h>

#include "ospab_user.h"
#include "ospab_json.h"
#include "ospab_util.h"

void ospab_user_from_row(ospab_row_t r, ospab_user_t *u)
{
    memset(u, 0, sizeof(*u));
    u->id = r[0];
    u->email = r[1];
    u->name = r[2];
    u->role = r[3];
    u->enabled = r[4];
    u->created_at = r[5];
    u->updated_at = r[6];
    u->cols = r;
}

void ospab_user_from_auth_row(ospab_row_t r, ospab_user_t *u)
{
    memset(u, 0, sizeof(*u));
    u->id = r[0];
    u->email = r[1];
    u->name = r[2];
    u->role = r[3];
    u->enabled = r[4];
    u->password_hash = r[5];
}

apr_status_t ospab_user_load(ospab_db_t *db, apr_pool_t *p, const char *id,
                             const ospab_user_t **u)
{
    ospab_row_t r = NULL;
    ospab_user_t *out;
    apr_status_t rv = ospab_db_select_one(db, p, "ospab_user_get", 1, &id, &r);

    *u = NULL;
    if (rv != APR_SUCCESS || !r) {
        return rv;
    }
    out = apr_palloc(p, sizeof(*out));
    ospab_user_from_row(r, out);
    *u = out;
    return APR_SUCCESS;
}

int ospab_user_enabled(const char *enabled)
{
    return enabled && !strcmp(enabled, "1");
}

json_t *ospab_user_record_json(apr_pool_t *p, const ospab_user_t *u)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", ospab_json_int_or_null(u->id));
    json_object_set_new(o, "email", ospab_json_str_or_null(u->email));
    json_object_set_new(o, "name", ospab_json_str_or_null(u->name));
    json_object_set_new(o, "role", ospab_json_str_or_null(u->role));
    json_object_set_new(o, "enabled", json_boolean(ospab_user_enabled(u->enabled)));
    json_object_set_new(o, "created_at", ospab_json_str_or_null(ospab_time_api(p,
                                                                              u->created_at)));
    json_object_set_new(o, "updated_at", ospab_json_str_or_null(ospab_time_api(p,
                                                                              u->updated_at)));
    return o;
}

json_t *ospab_user_json(apr_pool_t *p, ospab_row_t row)
{
    ospab_user_t u;

    ospab_user_from_row(row, &u);
    return ospab_user_record_json(p, &u);
}
