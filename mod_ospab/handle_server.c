/* mod_ospab: server management (seed 003 and the power routes of seed 001). HTTP only: the
 * caller, the body, the configuration, then one call into lib/ospab_server.c by the route's
 * operation and action. */
#include "mod_ospab.h"
#include "ospab_server.h"

/* The routes that read a JSON body. */
static int takes_body(const ospab_route_t *route)
{
    switch (route->op) {
    case OSPAB_OP_SERVER_CREATE:
    case OSPAB_OP_CONSOLE:
    case OSPAB_OP_RESIZE:
        return 1;
    case OSPAB_OP_SNAPSHOTS:
        return strcmp(route->action, "list") != 0;
    default:
        return 0;
    }
}

/* ?timeframe=... of the status routes, or NULL. */
static const char *timeframe_of(request_rec *r)
{
    char *args, *pair, *last = NULL;

    if (!r->args) {
        return NULL;
    }
    args = apr_pstrdup(r->pool, r->args);
    for (pair = apr_strtok(args, "&", &last); pair; pair = apr_strtok(NULL, "&", &last)) {
        if (!strncmp(pair, "timeframe=", 10)) {
            return pair + 10;
        }
    }
    return NULL;
}

int ospab_mod_handle_server(request_rec *r, const ospab_route_match_t *m)
{
    const ospab_route_t *route = m->route;
    const ospab_server_conf_t *conf;
    ospab_principal_t who;
    ospab_actor_t actor;
    ospab_result_t res;
    ospab_db_t *db;
    json_t *body = NULL;
    const char *raw, *id = NULL;
    apr_size_t len;
    int done;

    if (!ospab_mod_caller(r, &db, &who, &done)) {
        return done;
    }
    if (takes_body(route) && !ospab_mod_json_body(r, &body, &raw, &len, &done)) {
        return done;
    }
    if (m->nparams > 0) {
        id = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, m->params[0]);
    }
    actor.type = who.admin ? "admin" : "user";
    actor.id = who.user_id;
    actor.remote_addr = r->useragent_ip;
    actor.now = apr_time_now();
    conf = ospab_mod_server_conf(r);
    switch (route->op) {
    case OSPAB_OP_POWER:
        ospab_server_power(db, r->pool, conf, &who, &actor, id, route->action, &res);
        break;
    case OSPAB_OP_SERVER_CREATE:
        ospab_server_create(db, r->pool, conf, &who, &actor, body, &res);
        break;
    case OSPAB_OP_SERVER_DELETE:
        ospab_server_delete(db, r->pool, conf, &who, &actor, id, &res);
        break;
    case OSPAB_OP_STATUS:
        ospab_server_status(db, r->pool, conf, &who, id, timeframe_of(r), &res);
        break;
    case OSPAB_OP_PASSWORD:
        ospab_server_password(db, r->pool, conf, &who, &actor, id, &res);
        break;
    case OSPAB_OP_RESIZE:
        ospab_server_resize(db, r->pool, conf, &who, &actor, id, body, &res);
        break;
    case OSPAB_OP_SNAPSHOTS:
        if (!strcmp(route->action, "list")) {
            ospab_server_snapshots(db, r->pool, conf, &who, id, &res);
        }
        else {
            ospab_server_snapshot_op(db, r->pool, conf, &who, &actor, id, route->action,
                                     body, &res);
        }
        break;
    case OSPAB_OP_CONSOLE:
        ospab_server_console(db, r->pool, conf, &who, body, &res);
        break;
    case OSPAB_OP_TASKS:
        ospab_server_tasks(db, r->pool, conf, &who, id, &res);
        break;
    default:
        return ospab_mod_error(r, HTTP_INTERNAL_SERVER_ERROR, "internal error");
    }
    return ospab_mod_finish(r, &res);
}
