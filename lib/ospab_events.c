/* ospab core: events (see ospab_events.h). */
#include <stdlib.h>

#include <apr_strings.h>

#include "ospab_events.h"
#include "ospab_json.h"
#include "ospab_util.h"

static apr_status_t insert(ospab_db_t *db, apr_pool_t *p, const char *label, apr_time_t now,
                           const char *event, json_t *data)
{
    const char *when = ospab_time_db(p, now);
    json_t *body = json_pack("{s:s, s:s, s:O}", "event", event,
                             "createdAt", ospab_time_api(p, when), "data", data);
    const char *args[4];
    char *text;
    apr_status_t rv;

    if (!body || !(text = json_dumps(body, JSON_COMPACT))) {
        json_decref(body);
        return APR_ENOMEM;
    }
    args[0] = event;
    args[1] = apr_pstrdup(p, text);
    args[2] = when;
    args[3] = when;
    free(text);
    json_decref(body);
    rv = ospab_db_exec(db, p, label, 4, args, NULL);
    return rv;
}

apr_status_t ospab_event_add(ospab_db_t *db, apr_pool_t *p, apr_time_t now, const char *event,
                             json_t *data)
{
    return insert(db, p, "ospab_event_insert", now, event, data);
}

apr_status_t ospab_event_add_internal(ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                                      const char *event, json_t *data)
{
    return insert(db, p, "ospab_event_insert_internal", now, event, data);
}

apr_status_t ospab_event_access(ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                                const char *user_id, const char *session, const char *reason)
{
    apr_int64_t uid = 0;
    json_t *data;
    apr_status_t rv;

    if (ospab_parse_id(user_id, &uid) != 0) {
        return APR_EINVAL;
    }
    data = json_pack("{s:I, s:s, s:s?}", "userId", (json_int_t)uid, "reason", reason,
                     "sessionId", session);
    if (!data) {
        return APR_ENOMEM;
    }
    rv = ospab_event_add_internal(db, p, now, OSPAB_EVENT_ACCESS, data);
    json_decref(data);
    return rv;
}

json_t *ospab_event_payload(const char *row_id, const char *stored)
{
    json_t *body = json_loads(stored, 0, NULL);
    apr_int64_t id;

    if (!json_is_object(body) || ospab_parse_id(row_id, &id) != 0) {
        json_decref(body);
        return NULL;
    }
    json_object_set_new(body, "id", json_integer((json_int_t)id));
    return body;
}
