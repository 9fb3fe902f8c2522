/* ospab core: a users row, typed (ospab_user.h). */
#include <stddef.h>
#include <string.h>

#include <apr_strings.h>

#include "ospab_user.h"
#include "ospab_json.h"
#include "ospab_util.h"

#define U(member) offsetof(ospab_user_t, member)

/* USER_COLS */
static const apr_size_t user_cols[] = {
    U(id), U(email), U(name), U(role), U(enabled), U(created_at), U(updated_at)
};
/* ospab_auth_user_by_email */
static const apr_size_t auth_cols[] = {
    U(id), U(email), U(name), U(role), U(enabled), U(password_hash)
};

const ospab_row_shape_t ospab_user_row = OSPAB_ROW_SHAPE(user_cols, ospab_user_t, U(cols));
const ospab_row_shape_t ospab_user_auth_row =
    OSPAB_ROW_SHAPE(auth_cols, ospab_user_t, OSPAB_ROW_NO_RAW);

apr_status_t ospab_user_load(ospab_db_t *db, apr_pool_t *p, const char *id,
                             const ospab_user_t **u)
{
    return ospab_db_load(db, p, "ospab_user_get", 1, &id, &ospab_user_row, (void **)u);
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

    ospab_row_fill(&ospab_user_row, row, &u);
    return ospab_user_record_json(p, &u);
}
