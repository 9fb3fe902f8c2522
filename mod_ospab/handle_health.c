/* mod_ospab: GET /api/health — is the database reachable? No secrets, no auth. */
#include "mod_ospab.h"
#include "ospab_json.h"

int ospab_mod_handle_health(request_rec *r, const ospab_route_match_t *m)
{
    ospab_db_t *db = ospab_mod_db(r);
    json_t *body = ospab_json_own(r->pool, json_object());
    apr_array_header_t *rows;
    int ok = db && ospab_db_select(db, r->pool, "ospab_ping", 0, NULL, &rows, NULL)
                   == APR_SUCCESS;

    if (db && !ok) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, OSPAB_LOGNO(00301)
                      "health check: database query failed: %s", db->error);
    }
    json_object_set_new(body, "status", json_string(ok ? "ok" : "error"));
    json_object_set_new(body, "database", json_string(ok ? "ok" : "unavailable"));
    return ospab_mod_respond(r, ok ? HTTP_OK : HTTP_SERVICE_UNAVAILABLE, body);
}
