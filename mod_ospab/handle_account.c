/* mod_ospab: the caller's own account (Bearer JWT, any role): SSH keys. HTTP only: the
 * caller, the JSON body of an add, then one call into lib/ospab_sshkeys.c by the route's
 * action. Every key is the caller's own: an admin's token manages the admin's keys. */
#include "mod_ospab.h"
#include "ospab_sshkeys.h"

/* One account call, as ospab_mod_run runs it. */
typedef struct {
    request_rec *r;
    const char *action;         /* "list", "add", "delete" */
    ospab_principal_t who;
    ospab_actor_t actor;
    ospab_db_t *db;
    json_t *body;
    const char *id;
} account_call_t;

static void account_op(void *ctx, ospab_result_t *res)
{
    account_call_t *c = ctx;
    apr_pool_t *p = c->r->pool;

    if (!strcmp(c->action, "list")) {
        ospab_sshkeys_list(c->db, p, &c->who, res);
    }
    else if (!strcmp(c->action, "add")) {
        ospab_sshkeys_add(c->db, p, &c->who, &c->actor, c->body, res);
    }
    else if (!strcmp(c->action, "delete")) {
        ospab_sshkeys_delete(c->db, p, &c->who, &c->actor, c->id, res);
    }
    else {
        /* a route of the table this file does not know: the dispatcher's mistake */
        res->log = "no account operation for this route";
        ospab_result_error(p, res, 500, "internal error", NULL);
    }
}

int ospab_mod_handle_account(request_rec *r, const ospab_route_match_t *m)
{
    account_call_t c;
    ospab_result_t res;
    const char *raw;
    apr_size_t len;
    int done;

    memset(&c, 0, sizeof(c));
    if (!ospab_mod_caller(r, &c.db, &c.who, &done)) {
        return done;
    }
    c.r = r;
    c.action = m->route->action ? m->route->action : "";
    if (!strcmp(c.action, "add") && !ospab_mod_json_body(r, &c.body, &raw, &len, &done)) {
        return done;
    }
    c.id = ospab_mod_route_id(r, m);
    ospab_mod_actor(r, &c.who, &c.actor);
    ospab_mod_run(r, c.db, &c.actor, account_op, &c, &res);
    return ospab_mod_finish(r, &res);
}
