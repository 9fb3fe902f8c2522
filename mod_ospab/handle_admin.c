/* mod_ospab: the admin API (/api/admin/..., role admin). HTTP only: the caller (401 without
 * a token, 403 for a customer), the query string or the JSON body, then one call into
 * lib/ospab_admin.c by the route's action. */
#include "mod_ospab.h"
#include "ospab_admin.h"
#include "ospab_ippool.h"
#include "ospab_placement.h"
#include "ospab_cluster.h"
#include "ospab_server.h"

/* One admin call, as ospab_mod_run runs it. */
typedef struct {
    request_rec *r;
    ospab_op_e op;              /* the collection ... */
    const char *action;         /* ... and the verb: "list", "update", ...; NULL: list */
    ospab_actor_t actor;
    ospab_db_t *db;
    json_t *body;
    apr_table_t *query;
    const char *id;
    const ospab_server_conf_t *conf;    /* the servers' routes: Proxmox */
} admin_call_t;

static int is(const admin_call_t *c, const char *verb)
{
    return c->action && !strcmp(c->action, verb);
}

/* The routes that read a JSON body: the creates and updates, moving a server; 2: may have
 * one (suspend and unsuspend: an optional reason). */
static int takes_body(const admin_call_t *c)
{
    switch (c->op) {
    case OSPAB_OP_ADMIN_TARIFFS:
    case OSPAB_OP_ADMIN_OS:
    case OSPAB_OP_ADMIN_IPPOOLS:
    case OSPAB_OP_ADMIN_NODES:
    case OSPAB_OP_ADMIN_CLUSTERS:
        return is(c, "create") || is(c, "update");
    case OSPAB_OP_ADMIN_SERVERS:
        return is(c, "owner") ? 1 : is(c, "suspend") || is(c, "unsuspend") ? 2 : 0;
    default:
        return 0;
    }
}

/* Whether the request carries a body at all. */
static int has_body(request_rec *r)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");

    return apr_table_get(r->headers_in, "Transfer-Encoding") || (cl && apr_atoi64(cl) > 0);
}

/* suspend/unsuspend: {"reason": text} or nothing. NULL and *reason: fine; else the 400. */
static const char *reason_of(apr_pool_t *p, json_t *body, const char **reason)
{
    const char *key;
    json_t *v;

    *reason = NULL;
    if (!body) {
        return NULL;
    }
    if (!json_is_object(body)) {
        return "request body must be a JSON object";
    }
    json_object_foreach(body, key, v) {
        if (strcmp(key, "reason")) {
            return apr_psprintf(p, "invalid request: %s: unknown field",
                                ospab_text_ok(key, 1, 64) ? key : "(unprintable)");
        }
        if (!json_is_string(v) || !ospab_text_ok(json_string_value(v), 1, 500)) {
            return "invalid request: reason: must be 1 to 500 printable characters";
        }
        *reason = json_string_value(v);
    }
    return NULL;
}

/* The query string as parameter -> value, unescaped ('+' is a space); NULL when malformed. */
static apr_table_t *query_of(request_rec *r)
{
    apr_table_t *t = apr_table_make(r->pool, 8);
    char *args, *pair, *last = NULL;

    if (!r->args) {
        return t;
    }
    args = apr_pstrdup(r->pool, r->args);
    for (pair = apr_strtok(args, "&", &last); pair; pair = apr_strtok(NULL, "&", &last)) {
        char *eq = strchr(pair, '=');

        if (eq) {
            *eq++ = '\0';
        }
        if (ap_unescape_urlencoded(pair) != OK || (eq && ap_unescape_urlencoded(eq) != OK)) {
            return NULL;
        }
        apr_table_add(t, pair, eq ? eq : "");
    }
    return t;
}

/* /api/admin/clusters: the key seals tokens; a change is seen by this process at once and
 * by the others within their cache's ttl */
static void clusters_op(admin_call_t *c, apr_pool_t *p, ospab_result_t *res)
{
    ospab_srv_conf_t *sc = ospab_mod_srv_conf(c->r);

    if (is(c, "list") || is(c, "get")) {
        if (c->conf->clusters) {        /* the configured cluster is imported by now */
            ospab_clusters_refresh(c->conf->clusters, c->db, p);
        }
        ospab_clusters_list(c->db, p, c->id, res);
        return;
    }
    if (is(c, "test")) {
        ospab_pve_conf_t pc;

        ospab_mod_pve_base(sc, &pc);
        ospab_cluster_test(c->db, p, sc->seal_key, &pc, &c->actor, c->id, res);
        return;
    }
    if (is(c, "create")) {
        ospab_cluster_create(c->db, p, sc->seal_key, &c->actor, c->body, res);
    }
    else if (is(c, "update")) {
        ospab_cluster_update(c->db, p, sc->seal_key, &c->actor, c->id, c->body, res);
    }
    else {
        ospab_cluster_delete(c->db, p, &c->actor, c->id, res);
    }
    if (res->status < 300 && c->conf->clusters) {
        ospab_clusters_invalidate(c->conf->clusters);
    }
}

static void admin_op(void *ctx, ospab_result_t *res)
{
    admin_call_t *c = ctx;
    apr_pool_t *p = c->r->pool;
    ospab_admin_catalog_e kind = c->op == OSPAB_OP_ADMIN_OS ? OSPAB_ADMIN_OS
                                                            : OSPAB_ADMIN_TARIFF;

    switch (c->op) {
    case OSPAB_OP_ADMIN_USERS:
        if (is(c, "list")) {
            ospab_admin_users(c->db, p, c->query, res);
        }
        else if (is(c, "get")) {
            ospab_admin_user_get(c->db, p, c->id, res);
        }
        else {
            ospab_admin_user_set_enabled(c->db, p, &c->actor, c->id, is(c, "enable"), res);
        }
        break;
    case OSPAB_OP_ADMIN_TARIFFS:
    case OSPAB_OP_ADMIN_OS:
        if (is(c, "list")) {
            ospab_admin_catalog_list(c->db, p, kind, res);
        }
        else if (is(c, "get")) {
            ospab_admin_catalog_get(c->db, p, kind, c->id, res);
        }
        else if (is(c, "create")) {
            ospab_admin_catalog_create(c->db, p, &c->actor, kind, c->body, res);
        }
        else if (is(c, "update")) {
            ospab_admin_catalog_update(c->db, p, &c->actor, kind, c->id, c->body, res);
        }
        else {
            ospab_admin_catalog_delete(c->db, p, &c->actor, kind, c->id, res);
        }
        break;
    case OSPAB_OP_ADMIN_AUDIT:
        ospab_admin_audit(c->db, p, c->query, res);
        break;
    case OSPAB_OP_ADMIN_ALERTS:
        ospab_admin_alerts(c->db, p, c->query, res);
        break;
    case OSPAB_OP_ADMIN_OUTBOX:
        if (is(c, "list")) {
            ospab_admin_outbox(c->db, p, c->query, res);
        }
        else {
            /* the retry routes' action is the outbox: "email", "webhook" */
            ospab_admin_outbox_retry(c->db, p, &c->actor, c->action, c->id, res);
        }
        break;
    case OSPAB_OP_ADMIN_SERVERS:
        if (is(c, "list")) {
            ospab_admin_servers(c->db, p, c->query, res);
        }
        else if (is(c, "owner")) {
            ospab_admin_server_owner(c->db, p, &c->actor, c->conf, c->id, c->body, res);
        }
        else {
            const char *reason, *bad = reason_of(p, c->body, &reason);

            if (bad) {
                ospab_result_error(p, res, 400, bad, NULL);
                break;
            }
            ospab_server_suspend(c->db, p, c->conf, &c->actor, c->id, is(c, "suspend"),
                                 reason, res);
        }
        break;
    case OSPAB_OP_ADMIN_IPPOOLS:
        if (is(c, "list")) {
            ospab_ippool_list(c->db, p, c->actor.now, res);
        }
        else if (is(c, "create")) {
            ospab_ippool_add(c->db, p, &c->actor, c->body, res);
        }
        else if (is(c, "update")) {
            ospab_ippool_update(c->db, p, &c->actor, c->id, c->body, res);
        }
        else {
            ospab_ippool_delete(c->db, p, &c->actor, c->id, res);
        }
        break;
    case OSPAB_OP_ADMIN_NODES:
        if (is(c, "list") || is(c, "get")) {
            ospab_nodes_list(c->db, p, c->id, res);
        }
        else if (is(c, "create")) {
            ospab_node_create(c->db, p, &c->actor, c->body, res);
        }
        else if (is(c, "update")) {
            ospab_node_update(c->db, p, &c->actor, c->id, c->body, res);
        }
        else {
            ospab_node_delete(c->db, p, &c->actor, c->id, res);
        }
        if (res->status < 300 && c->conf->clusters) {
            ospab_clusters_invalidate(c->conf->clusters);   /* its cluster may have changed */
        }
        break;
    case OSPAB_OP_ADMIN_CLUSTERS:
        clusters_op(c, p, res);
        break;
    default:
        /* a route of the table this file does not know: the dispatcher's mistake */
        res->log = "no admin operation for this route";
        ospab_result_error(p, res, 500, "internal error", NULL);
        break;
    }
}

int ospab_mod_handle_admin(request_rec *r, const ospab_route_match_t *m)
{
    ospab_principal_t who;
    admin_call_t c;
    ospab_result_t res;
    const char *raw;
    apr_size_t len;
    int done;

    memset(&c, 0, sizeof(c));
    if (!ospab_mod_caller(r, &c.db, &who, &done)) {
        return done;
    }
    /* the role of the user row, as the database says now (ospab_session_principal) */
    if (!who.admin) {
        return ospab_mod_error(r, HTTP_FORBIDDEN, "admin role required");
    }
    c.r = r;
    c.op = m->route->op;
    c.action = m->route->action;
    if ((takes_body(&c) == 1 || (takes_body(&c) == 2 && has_body(r)))
        && !ospab_mod_json_body(r, &c.body, &raw, &len, &done)) {
        return done;
    }
    if (!(c.query = query_of(r))) {
        return ospab_mod_error(r, HTTP_BAD_REQUEST, "malformed query string");
    }
    c.id = ospab_mod_route_id(r, m);
    ospab_mod_actor(r, &who, &c.actor);          /* an admin: the route requires it */
    c.conf = ospab_mod_server_conf(r);
    ospab_mod_run(r, c.db, &c.actor, admin_op, &c, &res);
    return ospab_mod_finish(r, &res);
}
