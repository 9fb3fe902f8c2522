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
    /* Proxmox as this child last saw it: a health check must answer at once, also while
     * Proxmox hangs, so it asks nothing itself */
    if (ospab_mod_srv_conf(r)->pve) {
        static const char *const names[] = { "ok", "error", "unreachable", "timeout",
                                             "bad answer" };
        ospab_pve_stats_t st;
        json_t *pve = json_object();

        ospab_pve_stats(ospab_mod_srv_conf(r)->pve, &st);
        /* a Proxmox error status means Proxmox itself answered */
        json_object_set_new(pve, "status", json_string(
            st.last_outcome < 0 ? "unknown"
            : st.last_outcome == OSPAB_PVE_HTTP_ERROR ? "ok" : names[st.last_outcome]));
        if (st.last_outcome >= 0) {
            json_object_set_new(pve, "checkedSecondsAgo",
                                json_integer(apr_time_sec(apr_time_now() - st.last_at)));
        }
        json_object_set_new(pve, "calls", json_integer((json_int_t)st.calls));
        json_object_set_new(pve, "connections", json_integer((json_int_t)st.connects));
        json_object_set_new(body, "proxmox", pve);
    }
    return ospab_mod_respond(r, ok ? HTTP_OK : HTTP_SERVICE_UNAVAILABLE, body);
}
