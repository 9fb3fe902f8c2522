/* mod_ospab: POST /api/notify, the main site's own e-mails (payment reminders, ticket
 * replies, password resets) through the panel's outbox. Authenticated like the sync API
 * (X-API-Key); the work is ospab_notify() in the core (lib/ospab_outbox.c). */
#include "mod_ospab.h"
#include "ospab_notify.h"

/* One notify call, as ospab_mod_run runs it. */
typedef struct {
    ospab_db_t *db;
    apr_pool_t *p;
    ospab_actor_t *actor;
    json_t *req;
    const char *key;
} notify_call_t;

static void notify_op(void *ctx, ospab_result_t *res)
{
    notify_call_t *c = ctx;

    ospab_notify(c->db, c->p, c->actor, c->req, c->key, res);
}

int ospab_mod_handle_notify(request_rec *r, const ospab_route_match_t *m)
{
    const char *body;
    ospab_actor_t actor;
    ospab_result_t res;
    notify_call_t call;
    apr_size_t len;
    int rc;

    if (!ospab_mod_sync_request(r, &call.req, &body, &len, &call.db, &actor, &rc)) {
        return rc;
    }
    call.p = r->pool;
    call.actor = &actor;
    call.key = apr_table_get(r->headers_in, "Idempotency-Key");
    ospab_mod_run(r, call.db, &actor, notify_op, &call, &res);
    return ospab_mod_finish(r, &res);
}
