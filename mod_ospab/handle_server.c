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
    case OSPAB_OP_REINSTALL:
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

/* One server-management call, as ospab_mod_run runs it. */
typedef struct {
    request_rec *r;
    const ospab_route_t *route;
    const ospab_server_conf_t *conf;
    ospab_principal_t who;
    ospab_actor_t actor;
    ospab_db_t *db;
    json_t *body;
    const char *id;
} server_call_t;

static void server_op(void *ctx, ospab_result_t *res)
{
    server_call_t *c = ctx;
    apr_pool_t *p = c->r->pool;
    const char *action = c->route->action;

    switch (c->route->op) {
    case OSPAB_OP_POWER:
        ospab_server_power(c->db, p, c->conf, &c->who, &c->actor, c->id, action, res);
        break;
    case OSPAB_OP_SERVER_CREATE:
        ospab_server_create(c->db, p, c->conf, &c->who, &c->actor, c->body, res);
        break;
    case OSPAB_OP_SERVER_DELETE:
        ospab_server_delete(c->db, p, c->conf, &c->who, &c->actor, c->id, res);
        break;
    case OSPAB_OP_STATUS:
        ospab_server_status(c->db, p, c->conf, &c->who, c->id, timeframe_of(c->r), res);
        break;
    case OSPAB_OP_PASSWORD:
        ospab_server_password(c->db, p, c->conf, &c->who, &c->actor, c->id, res);
        break;
    case OSPAB_OP_RESIZE:
        ospab_server_resize(c->db, p, c->conf, &c->who, &c->actor, c->id, c->body, res);
        break;
    case OSPAB_OP_SNAPSHOTS:
        if (!strcmp(action, "list")) {
            ospab_server_snapshots(c->db, p, c->conf, &c->who, c->id, res);
        }
        else {
            ospab_server_snapshot_op(c->db, p, c->conf, &c->who, &c->actor, c->id, action,
                                     c->body, res);
        }
        break;
    case OSPAB_OP_CONSOLE:
        ospab_server_console(c->db, p, c->conf, &c->who, ospab_mod_panel_url(c->r),
                             c->body, res);
        break;
    case OSPAB_OP_TASKS:
        ospab_server_tasks(c->db, p, c->conf, &c->who, c->id, res);
        break;
    case OSPAB_OP_REINSTALL:
        ospab_server_reinstall(c->db, p, c->conf, &c->who, &c->actor, c->id, c->body, res);
        break;
    default:
        /* a route of the table this file does not know: the dispatcher's mistake */
        res->log = "no server operation for this route";
        ospab_result_error(p, res, 500, "internal error", NULL);
        break;
    }
}

int ospab_mod_handle_server(request_rec *r, const ospab_route_match_t *m)
{
    server_call_t c;
    ospab_result_t res;
    const char *raw;
    apr_size_t len;
    int done;

    memset(&c, 0, sizeof(c));
    if (!ospab_mod_caller(r, &c.db, &c.who, &done)) {
        return done;
    }
    c.r = r;
    c.route = m->route;
    if (takes_body(c.route) && !ospab_mod_json_body(r, &c.body, &raw, &len, &done)) {
        return done;
    }
    c.id = ospab_mod_route_id(r, m);
    ospab_mod_actor(r, &c.who, &c.actor);
    c.conf = ospab_mod_server_conf(r);
    ospab_mod_run(r, c.db, &c.actor, server_op, &c, &res);
    return ospab_mod_finish(r, &res);
}
