/* mod_ospab: POST /api/notify, the main site's own e-mails (payment reminders, ticket
 * replies, password resets) through the panel's outbox. Authenticated like the sync API
 * (X-API-Key); the work is ospab_notify() in the core (lib/ospab_outbox.c). */
#include "mod_ospab.h"
#include "ospab_notify.h"

int ospab_mod_handle_notify(request_rec *r, const ospab_route_match_t *m)
{
    const char *body;
    ospab_actor_t actor;
    ospab_result_t res;
    ospab_db_t *db;
    json_t *req;
    apr_size_t len;
    int rc;

    if (!ospab_mod_sync_request(r, &req, &body, &len, &db, &actor, &rc)) {
        return rc;
    }
    ospab_notify(db, r->pool, &actor, req, apr_table_get(r->headers_in, "Idempotency-Key"),
                 &res);
    return ospab_mod_finish(r, &res);
}
