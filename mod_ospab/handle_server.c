/* mod_ospab: server management routes (seed 003 and the power routes of seed 001).
 * HTTP only: the caller, the body, the configuration; the work is in lib/ospab_server.c. */
#include "mod_ospab.h"
#include "ospab_server.h"

typedef struct {
    ospab_db_t *db;
    ospab_principal_t who;
    ospab_actor_t actor;
    ospab_server_conf_t conf;
    const char *id;             /* the {id} of the path, if any */
    json_t *body;               /* the JSON body, if the route takes one */
} call_t;

/* Caller, database, configuration and (when wanted) the body. 0: go on; else the
 * response was sent and the value is what the handler returns. */
static int setup(request_rec *r, const ospab_route_match_t *m, int with_body, call_t *c)
{
    const char *raw;
    apr_size_t len;
    int done;

    memset(c, 0, sizeof(*c));
    if (!ospab_mod_caller(r, &c->db, &c->who, &done)) {
        return done;
    }
    if (with_body) {
        done = ospab_mod_read_json(r, &c->body, &raw, &len);
        if (!c->body) {
            return done;
        }
    }
    if (m->nparams > 0) {
        c->id = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, m->params[0]);
    }
    c->actor.type = c->who.admin ? "admin" : "user";
    c->actor.id = c->who.user_id;
    c->actor.remote_addr = r->useragent_ip;
    c->actor.now = apr_time_now();
    ospab_mod_server_conf(r, &c->conf);
    return OK;
}

/* POST .../{id}/<action>: the action is the path's last segment */
int ospab_mod_handle_power(request_rec *r, const ospab_route_match_t *m)
{
    const char *action = strrchr(r->uri, '/') + 1;
    ospab_result_t res;
    call_t c;
    int rc;

    if ((rc = setup(r, m, 0, &c)) != OK) {
        return rc;
    }
    ospab_server_power(c.db, r->pool, &c.conf, &c.who, &c.actor, c.id, action, &res);
    return ospab_mod_finish(r, &res);
}

int ospab_mod_handle_server_create(request_rec *r, const ospab_route_match_t *m)
{
    ospab_result_t res;
    call_t c;
    int rc;

    if ((rc = setup(r, m, 1, &c)) != OK) {
        return rc;
    }
    ospab_server_create(c.db, r->pool, &c.conf, &c.who, &c.actor, c.body, &res);
    return ospab_mod_finish(r, &res);
}

int ospab_mod_handle_server_delete(request_rec *r, const ospab_route_match_t *m)
{
    ospab_result_t res;
    call_t c;
    int rc;

    if ((rc = setup(r, m, 0, &c)) != OK) {
        return rc;
    }
    ospab_server_delete(c.db, r->pool, &c.conf, &c.who, &c.actor, c.id, &res);
    return ospab_mod_finish(r, &res);
}

/* GET /api/server/{id}/status?timeframe=... and GET /api/vps/{id}/stats */
int ospab_mod_handle_server_status(request_rec *r, const ospab_route_match_t *m)
{
    const char *timeframe = NULL;
    ospab_result_t res;
    call_t c;
    int rc;

    if ((rc = setup(r, m, 0, &c)) != OK) {
        return rc;
    }
    if (r->args) {
        char *args = apr_pstrdup(r->pool, r->args), *pair, *last = NULL;

        for (pair = apr_strtok(args, "&", &last); pair; pair = apr_strtok(NULL, "&", &last)) {
            if (!strncmp(pair, "timeframe=", 10)) {
                timeframe = pair + 10;
            }
        }
    }
    ospab_server_status(c.db, r->pool, &c.conf, &c.who, c.id, timeframe, &res);
    return ospab_mod_finish(r, &res);
}

int ospab_mod_handle_server_password(request_rec *r, const ospab_route_match_t *m)
{
    ospab_result_t res;
    call_t c;
    int rc;

    if ((rc = setup(r, m, 0, &c)) != OK) {
        return rc;
    }
    ospab_server_password(c.db, r->pool, &c.conf, &c.who, &c.actor, c.id, &res);
    return ospab_mod_finish(r, &res);
}

int ospab_mod_handle_server_resize(request_rec *r, const ospab_route_match_t *m)
{
    ospab_result_t res;
    call_t c;
    int rc;

    if ((rc = setup(r, m, 1, &c)) != OK) {
        return rc;
    }
    ospab_server_resize(c.db, r->pool, &c.conf, &c.who, &c.actor, c.id, c.body, &res);
    return ospab_mod_finish(r, &res);
}

int ospab_mod_handle_snapshots(request_rec *r, const ospab_route_match_t *m)
{
    ospab_result_t res;
    call_t c;
    int rc, get = r->method_number == M_GET;

    if ((rc = setup(r, m, !get, &c)) != OK) {
        return rc;
    }
    if (get) {
        ospab_server_snapshots(c.db, r->pool, &c.conf, &c.who, c.id, &res);
    }
    else {
        ospab_server_snapshot_op(c.db, r->pool, &c.conf, &c.who, &c.actor, c.id,
                                 r->method_number == M_DELETE ? "delete" : "create", c.body,
                                 &res);
    }
    return ospab_mod_finish(r, &res);
}

int ospab_mod_handle_snapshot_rollback(request_rec *r, const ospab_route_match_t *m)
{
    ospab_result_t res;
    call_t c;
    int rc;

    if ((rc = setup(r, m, 1, &c)) != OK) {
        return rc;
    }
    ospab_server_snapshot_op(c.db, r->pool, &c.conf, &c.who, &c.actor, c.id, "rollback",
                             c.body, &res);
    return ospab_mod_finish(r, &res);
}

int ospab_mod_handle_console(request_rec *r, const ospab_route_match_t *m)
{
    ospab_result_t res;
    call_t c;
    int rc;

    if ((rc = setup(r, m, 1, &c)) != OK) {
        return rc;
    }
    ospab_server_console(c.db, r->pool, &c.conf, &c.who, c.body, &res);
    return ospab_mod_finish(r, &res);
}

int ospab_mod_handle_server_tasks(request_rec *r, const ospab_route_match_t *m)
{
    ospab_result_t res;
    call_t c;
    int rc;

    if ((rc = setup(r, m, 0, &c)) != OK) {
        return rc;
    }
    ospab_server_tasks(c.db, r->pool, &c.conf, &c.who, c.id, &res);
    return ospab_mod_finish(r, &res);
}
