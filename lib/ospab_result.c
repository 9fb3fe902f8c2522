/* ospab core: results and the audit log (see ospab_result.h). */
#include <apr_strings.h>

#include "ospab_result.h"
#include "ospab_json.h"
#include "ospab_util.h"

void ospab_result_error(apr_pool_t *p, ospab_result_t *res, int status, const char *msg,
                        json_t *fields)
{
    res->status = status;
    res->body = ospab_json_own(p, ospab_json_error(msg, fields));
}

void ospab_result_list_or_one(apr_pool_t *p, ospab_result_t *res, json_t *list,
                              const char *id, const char *one, const char *many,
                              const char *not_found)
{
    if (id && !json_array_size(list)) {
        json_decref(list);
        ospab_result_error(p, res, 404, not_found, NULL);
        return;
    }
    res->status = 200;
    res->body = ospab_json_own(p, id ? json_pack("{s:s, s:O}", "status", "success", one,
                                                 json_array_get(list, 0))
                                     : json_pack("{s:s, s:O}", "status", "success", many,
                                                 list));
    json_decref(list);
}

void ospab_result_db_failed(ospab_db_t *db, apr_pool_t *p, ospab_result_t *res)
{
    const char *why = db->error;

    ospab_db_end(db, 0);
    res->log = why ? why : "database error";
    ospab_result_error(p, res, 503, "database unavailable", NULL);
}

apr_status_t ospab_audit(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                         const char *action, const char *target_type, const char *target_id,
                         json_t *details)
{
    const char *args[8];

    args[0] = a->type;
    args[1] = a->id;
    args[2] = action;
    args[3] = target_type;
    args[4] = target_id;
    args[5] = details ? ospab_json_dump(p, details) : NULL;
    args[6] = a->remote_addr;
    args[7] = ospab_time_db(p, a->now);
    json_decref(details);
    return ospab_db_exec(db, p, "ospab_audit_insert", 8, args, NULL);
}
