/* mod_ospab: the route table and the content handler that dispatches to it. */
#include <strings.h>

#include <ap_expr.h>

#include "mod_ospab.h"

#define ROUTE_NOTE "ospab-route"

/* One table for every route; later resources join it here. */
static const ospab_route_t routes[] = {
    { "POST", "/api/vps/sync", (const void *)ospab_mod_handle_vps_sync },
    { "POST", "/api/vps/sync/batch", (const void *)ospab_mod_handle_vps_sync_batch },
    { "POST", "/api/users/sync", (const void *)ospab_mod_handle_users_sync },
    { "POST", "/api/notify", (const void *)ospab_mod_handle_notify },
    { "GET", "/api/health", (const void *)ospab_mod_handle_health },
    { "POST", "/api/auth/login", (const void *)ospab_mod_handle_login },
    { "POST", "/api/auth/refresh", (const void *)ospab_mod_handle_refresh },
    { "POST", "/api/auth/logout", (const void *)ospab_mod_handle_logout },
    { "GET", "/api/auth/me", (const void *)ospab_mod_handle_me },
    { "GET", "/api/vps", (const void *)ospab_mod_handle_vps_list },
    { "GET", "/api/vps/{id}", (const void *)ospab_mod_handle_vps_get },
    { "GET", "/api/server", (const void *)ospab_mod_handle_server_list },
    { "GET", "/api/server/{id}", (const void *)ospab_mod_handle_server_get },
    { "GET", "/api/tariffs", (const void *)ospab_mod_handle_tariffs },
    /* server management (seed 003), power routes of seed 001 */
    { "POST", "/api/server/create", (const void *)ospab_mod_handle_server_create },
    { "POST", "/api/server/console", (const void *)ospab_mod_handle_console },
    { "DELETE", "/api/server/{id}", (const void *)ospab_mod_handle_server_delete },
    { "GET", "/api/server/{id}/status", (const void *)ospab_mod_handle_server_status },
    { "POST", "/api/server/{id}/start", (const void *)ospab_mod_handle_power },
    { "POST", "/api/server/{id}/stop", (const void *)ospab_mod_handle_power },
    { "POST", "/api/server/{id}/restart", (const void *)ospab_mod_handle_power },
    { "POST", "/api/server/{id}/password", (const void *)ospab_mod_handle_server_password },
    { "PUT", "/api/server/{id}/resize", (const void *)ospab_mod_handle_server_resize },
    { "GET", "/api/server/{id}/snapshots", (const void *)ospab_mod_handle_snapshots },
    { "POST", "/api/server/{id}/snapshots", (const void *)ospab_mod_handle_snapshots },
    { "DELETE", "/api/server/{id}/snapshots", (const void *)ospab_mod_handle_snapshots },
    { "POST", "/api/server/{id}/snapshots/rollback",
      (const void *)ospab_mod_handle_snapshot_rollback },
    { "GET", "/api/server/{id}/tasks", (const void *)ospab_mod_handle_server_tasks },
    { "POST", "/api/vps/{id}/start", (const void *)ospab_mod_handle_power },
    { "POST", "/api/vps/{id}/stop", (const void *)ospab_mod_handle_power },
    { "POST", "/api/vps/{id}/restart", (const void *)ospab_mod_handle_power },
    { "POST", "/api/vps/{id}/reboot", (const void *)ospab_mod_handle_power },
    { "GET", "/api/vps/{id}/stats", (const void *)ospab_mod_handle_server_status },
    { "GET", "/api/os", (const void *)ospab_mod_handle_os },
    { NULL, NULL, NULL }
};

int ospab_mod_handler(request_rec *r)
{
    ospab_route_match_t m;
    const char *allow = NULL;
    ospab_mod_route_fn *fn;

    if (!r->handler || strcmp(r->handler, OSPAB_HANDLER)) {
        return DECLINED;
    }
    switch (ospab_route_find(routes, r->method, r->uri, &m, &allow, r->pool)) {
    case OSPAB_ROUTE_FOUND:
        break;
    case OSPAB_ROUTE_BAD_METHOD:
        apr_table_setn(r->err_headers_out, "Allow", allow);
        return ospab_mod_error(r, HTTP_METHOD_NOT_ALLOWED,
                               apr_psprintf(r->pool, "method %s not allowed",
                                            ap_escape_html(r->pool, r->method)));
    default:
        return ospab_mod_error(r, HTTP_NOT_FOUND, "not found");
    }
    /* function pointers travel through the core's route table as data */
    fn = (ospab_mod_route_fn *)(apr_uintptr_t)m.route->data;
    return fn(r, &m);
}

/* Our routes are not files. When the <Location> of a request sets our handler, skip the
 * directory walk that maps the URI onto the document root (a stat() per path component,
 * per-directory merges), as mod_proxy does for its requests. translate_name runs after
 * httpd's first location walk, so SetHandler is known here; map_to_storage then says the
 * request needs no storage. <Location> access rules still apply. */
int ospab_mod_translate_name(request_rec *r)
{
    core_dir_config *d = ap_get_core_module_config(r->per_dir_config);
    const char *err = NULL, *h;

    if (d && d->expr_handler) {
        h = ap_expr_str_exec(r, d->expr_handler, &err);
        if (!err && h && !strcasecmp(h, OSPAB_HANDLER)) {
            apr_table_setn(r->notes, ROUTE_NOTE, "1");
        }
    }
    return DECLINED;
}

int ospab_mod_map_to_storage(request_rec *r)
{
    return apr_table_get(r->notes, ROUTE_NOTE) ? OK : DECLINED;
}
