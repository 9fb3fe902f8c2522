/* mod_ospab: the sync API for the billing site (X-API-Key). The operations live in the core
 * (ospab_sync.c), and so does the Idempotency-Key protocol (ospab_idem.c); this file does
 * HTTP: the key, the body, the Idempotency-Key header and the response. */
#include <string.h>

#include "mod_ospab.h"
#include "ospab_json.h"
#include "ospab_sync.h"

/* guests: the Proxmox set-up, so that the billing site's changes reach the guests */
typedef void sync_fn(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *actor, json_t *req,
                     const ospab_server_conf_t *guests, const ospab_idem_t *idem,
                     ospab_result_t *res);

/* One sync operation, as ospab_idem_run calls it (idem, batch, replayed: with an
 * Idempotency-Key) and ospab_mod_run runs it. */
typedef struct {
    sync_fn *fn;
    ospab_db_t *db;
    apr_pool_t *p;
    ospab_actor_t *actor;
    json_t *req;
    const ospab_server_conf_t *guests;
    const ospab_idem_t *idem;
    int batch;
    int replayed;
} sync_call_t;

static void run_call(void *ctx, const ospab_idem_t *idem, ospab_result_t *res)
{
    sync_call_t *c = ctx;

    c->fn(c->db, c->p, c->actor, c->req, c->guests, idem, res);
}

static void sync_op(void *ctx, ospab_result_t *res)
{
    sync_call_t *c = ctx;

    if (!c->idem) {
        run_call(c, NULL, res);
        return;
    }
    /* again after a write conflict: the twin that won is then found and replayed */
    ospab_idem_run(c->db, c->p, c->idem, c->batch, run_call, c, &c->actor->now, res,
                   &c->replayed);
}

/* Reads the request, then runs fn; with an Idempotency-Key, at most once (lib/ospab_idem.c).
 * batch marks a request that runs many transactions. */
static int run_sync(request_rec *r, const char *scope, sync_fn *fn, int batch)
{
    ospab_actor_t actor;
    ospab_idem_t idem;
    ospab_result_t res;
    sync_call_t call;
    const char *body, *key;
    apr_size_t len;
    int done;

    if (!ospab_mod_sync_request(r, &call.req, &body, &len, &call.db, &actor, &done)) {
        return done;
    }
    call.fn = fn;
    call.p = r->pool;
    call.actor = &actor;
    call.guests = ospab_mod_server_conf(r);
    call.idem = NULL;
    call.batch = batch;
    call.replayed = 0;
    key = apr_table_get(r->headers_in, "Idempotency-Key");
    if (key) {
        if (!ospab_key_ok(key, 255)) {
            return ospab_mod_error(r, HTTP_BAD_REQUEST, "Idempotency-Key must be 1 to 255 "
                                   "printable ASCII characters");
        }
        idem.scope = scope;
        idem.key = key;
        idem.hash = ospab_sha256_hex(r->pool, body, len);
        call.idem = &idem;
    }
    ospab_mod_run(r, call.db, &actor, sync_op, &call, &res);
    if (call.replayed) {
        ospab_mod_metric(OSPAB_METRIC_IDEM_REPLAY);
        apr_table_setn(r->headers_out, "Idempotent-Replayed", "true");
    }
    return ospab_mod_finish(r, &res);
}

static void batch_fn(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *actor, json_t *req,
                     const ospab_server_conf_t *guests, const ospab_idem_t *idem,
                     ospab_result_t *res)
{
    ospab_sync_vps_batch(db, p, actor, req, guests, res);
}

static void users_fn(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *actor, json_t *req,
                     const ospab_server_conf_t *guests, const ospab_idem_t *idem,
                     ospab_result_t *res)
{
    ospab_sync_user(db, p, actor, req, idem, res);
}

int ospab_mod_handle_vps_sync(request_rec *r, const ospab_route_match_t *m)
{
    return run_sync(r, "vps.sync", ospab_sync_vps, 0);
}

int ospab_mod_handle_vps_sync_batch(request_rec *r, const ospab_route_match_t *m)
{
    return run_sync(r, "vps.sync.batch", batch_fn, 1);
}

int ospab_mod_handle_users_sync(request_rec *r, const ospab_route_match_t *m)
{
    return run_sync(r, "users.sync", users_fn, 0);
}
