/* mod_ospab: the sync API for the billing site (X-API-Key). The operations themselves
 * live in the core (ospab_sync.c); this file does HTTP: the key, the body, the
 * Idempotency-Key protocol and the response. */
#include <string.h>

#include "mod_ospab.h"
#include "ospab_json.h"
#include "ospab_sync.h"

#define IDEM_POLL       apr_time_from_msec(50)
#define IDEM_MAX_POLLS  400    /* 20 s of waiting for a concurrent twin request */

/* guests: the Proxmox set-up, so that the billing site's changes reach the guests */
typedef void sync_fn(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *actor, json_t *req,
                     const ospab_server_conf_t *guests, const ospab_idem_t *idem,
                     ospab_result_t *res);

static int idem_key_ok(const char *k)
{
    apr_size_t n = strlen(k), i;

    if (n < 1 || n > 255 || k[0] == ' ' || k[n - 1] == ' ') {
        return 0;
    }
    for (i = 0; i < n; ++i) {
        if (k[i] < 0x20 || k[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

/* Reads the request, then runs fn; with an Idempotency-Key, at most once. batch marks a
 * request that runs many transactions: its key is reserved on its own beforehand. */
static int run_sync(request_rec *r, const char *scope, sync_fn *fn, int batch)
{
    ospab_server_conf_t guests;
    ospab_actor_t actor;
    ospab_idem_t idem;
    ospab_result_t res;
    ospab_db_t *db;
    json_t *req;
    const char *body, *key, *stored = NULL;
    apr_size_t len;
    int rc, polls, status = 0;

    if (!ospab_mod_sync_request(r, &req, &body, &len, &db, &actor, &rc)) {
        return rc;
    }
    ospab_mod_server_conf(r, &guests);

    key = apr_table_get(r->headers_in, "Idempotency-Key");
    if (!key) {
        fn(db, r->pool, &actor, req, &guests, NULL, &res);
        return ospab_mod_finish(r, &res);
    }
    if (!idem_key_ok(key)) {
        return ospab_mod_error(r, HTTP_BAD_REQUEST, "Idempotency-Key must be 1 to 255 "
                               "printable ASCII characters");
    }
    idem.scope = scope;
    idem.key = key;
    idem.hash = ospab_sha256_hex(r->pool, body, len);
    for (polls = 0; polls < IDEM_MAX_POLLS; ++polls) {
        ospab_idem_state_e state;

        actor.now = apr_time_now();
        if (ospab_idem_lookup(db, r->pool, &idem, actor.now, &state, &status, &stored)
            != APR_SUCCESS) {
            memset(&res, 0, sizeof(res));
            res.log = db->error;
            ospab_result_error(r->pool, &res, 503, "database unavailable", NULL);
            return ospab_mod_finish(r, &res);
        }
        switch (state) {
        case OSPAB_IDEM_REPLAY:
            apr_table_setn(r->headers_out, "Idempotent-Replayed", "true");
            return ospab_mod_respond_text(r, status, stored);
        case OSPAB_IDEM_MISMATCH:
            return ospab_mod_error(r, HTTP_CONFLICT, "Idempotency-Key was already used with "
                                   "a different request");
        case OSPAB_IDEM_PENDING:
            apr_sleep(IDEM_POLL);
            continue;
        case OSPAB_IDEM_NEW:
            break;
        }
        if (!batch) {
            fn(db, r->pool, &actor, req, &guests, &idem, &res);
            if (res.idem_race) {
                continue; /* the twin committed first: replay its answer */
            }
            return ospab_mod_finish(r, &res);
        }
        if (ospab_idem_reserve(db, r->pool, &idem, actor.now) != APR_SUCCESS) {
            if (ospab_db_is_constraint(db)) {
                continue;
            }
            memset(&res, 0, sizeof(res));
            res.log = db->error;
            ospab_result_error(r->pool, &res, 503, "database unavailable", NULL);
            return ospab_mod_finish(r, &res);
        }
        fn(db, r->pool, &actor, req, &guests, NULL, &res);
        if (ospab_idem_complete(db, r->pool, &idem, res.status,
                                ospab_json_dump(r->pool, res.body)) != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, OSPAB_LOGNO(00203)
                          "could not store the response for an Idempotency-Key: %s",
                          db->error);
        }
        return ospab_mod_finish(r, &res);
    }
    return ospab_mod_error(r, HTTP_CONFLICT, "a request with this Idempotency-Key is still "
                           "in progress");
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
