/* mod_ospab: the content handler. The routes are lib/ospab_route.c's table; each operation
 * has one handler here. */
#include <strings.h>

#include <ap_expr.h>

#include "mod_ospab.h"

#define ROUTE_NOTE "ospab-route"

/* Every operation's handler (the server-management ones share one dispatcher). */
static ospab_mod_route_fn *const handlers[OSPAB_OP_COUNT] = {
    [OSPAB_OP_VPS_SYNC] = ospab_mod_handle_vps_sync,
    [OSPAB_OP_VPS_SYNC_BATCH] = ospab_mod_handle_vps_sync_batch,
    [OSPAB_OP_USERS_SYNC] = ospab_mod_handle_users_sync,
    [OSPAB_OP_NOTIFY] = ospab_mod_handle_notify,
    [OSPAB_OP_HEALTH] = ospab_mod_handle_health,
    [OSPAB_OP_LOGIN] = ospab_mod_handle_login,
    [OSPAB_OP_REFRESH] = ospab_mod_handle_refresh,
    [OSPAB_OP_LOGOUT] = ospab_mod_handle_logout,
    [OSPAB_OP_ME] = ospab_mod_handle_me,
    [OSPAB_OP_VPS_LIST] = ospab_mod_handle_vps_list,
    [OSPAB_OP_VPS_GET] = ospab_mod_handle_vps_get,
    [OSPAB_OP_SERVER_LIST] = ospab_mod_handle_server_list,
    [OSPAB_OP_SERVER_GET] = ospab_mod_handle_server_get,
    [OSPAB_OP_TARIFFS] = ospab_mod_handle_tariffs,
    [OSPAB_OP_OS] = ospab_mod_handle_os,
    [OSPAB_OP_SERVER_CREATE] = ospab_mod_handle_server,
    [OSPAB_OP_CONSOLE] = ospab_mod_handle_server,
    [OSPAB_OP_SERVER_DELETE] = ospab_mod_handle_server,
    [OSPAB_OP_STATUS] = ospab_mod_handle_server,
    [OSPAB_OP_POWER] = ospab_mod_handle_server,
    [OSPAB_OP_PASSWORD] = ospab_mod_handle_server,
    [OSPAB_OP_RESIZE] = ospab_mod_handle_server,
    [OSPAB_OP_SNAPSHOTS] = ospab_mod_handle_server,
    [OSPAB_OP_TASKS] = ospab_mod_handle_server,
    [OSPAB_OP_REINSTALL] = ospab_mod_handle_server,
    [OSPAB_OP_SSH_KEYS] = ospab_mod_handle_account,
    [OSPAB_OP_ADMIN_USERS] = ospab_mod_handle_admin,
    [OSPAB_OP_ADMIN_TARIFFS] = ospab_mod_handle_admin,
    [OSPAB_OP_ADMIN_OS] = ospab_mod_handle_admin,
    [OSPAB_OP_ADMIN_AUDIT] = ospab_mod_handle_admin,
    [OSPAB_OP_ADMIN_ALERTS] = ospab_mod_handle_admin,
    [OSPAB_OP_ADMIN_OUTBOX] = ospab_mod_handle_admin,
    [OSPAB_OP_ADMIN_SERVERS] = ospab_mod_handle_admin,
    [OSPAB_OP_ADMIN_IPPOOLS] = ospab_mod_handle_admin,
    [OSPAB_OP_ADMIN_NODES] = ospab_mod_handle_admin,
    [OSPAB_OP_ADMIN_CLUSTERS] = ospab_mod_handle_admin,
};

int ospab_mod_handler(request_rec *r)
{
    ospab_route_match_t m;
    const char *allow = NULL;
    ospab_mod_route_fn *fn;

    if (!r->handler || strcmp(r->handler, OSPAB_HANDLER)) {
        return DECLINED;
    }
    switch (ospab_route_find(ospab_api_routes, r->method, r->uri, &m, &allow, r->pool)) {
    case OSPAB_ROUTE_FOUND:
        ospab_mod_metrics_route(r, m.route);
        break;
    case OSPAB_ROUTE_BAD_METHOD:
        ospab_mod_metrics_route(r, NULL);
        apr_table_setn(r->err_headers_out, "Allow", allow);
        return ospab_mod_error(r, HTTP_METHOD_NOT_ALLOWED,
                               apr_psprintf(r->pool, "method %s not allowed",
                                            ap_escape_html(r->pool, r->method)));
    default:
        ospab_mod_metrics_route(r, NULL);
        return ospab_mod_error(r, HTTP_NOT_FOUND, "not found");
    }
    fn = handlers[m.route->op];
    if (!fn) {
        /* a route whose operation has no handler: the table and this file disagree */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, OSPAB_LOGNO(00204)
                      "no handler for %s %s", m.route->method, m.route->pattern);
        return ospab_mod_error(r, HTTP_INTERNAL_SERVER_ERROR, "internal error");
    }
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
