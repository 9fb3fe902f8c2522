/* ospab core: the Idempotency-Key protocol (see ospab_idem.h). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "ospab_idem.h"
#include "ospab_json.h"
#include "ospab_util.h"

/* An idempotency_keys row (ospab_idem_get). */
typedef struct {
    const char *hash;           /* of the request that took the key */
    const char *status, *body;  /* its answer; status NULL while it runs */
    const char *created_at;
} idem_row_t;

/* request_hash status_code response_body created_at */
static const apr_size_t idem_cols[] = {
    offsetof(idem_row_t, hash), offsetof(idem_row_t, status), offsetof(idem_row_t, body),
    offsetof(idem_row_t, created_at)
};
static const ospab_row_shape_t idem_shape =
    OSPAB_ROW_SHAPE(idem_cols, idem_row_t, OSPAB_ROW_NO_RAW);

typedef enum {
    OSPAB_IDEM_NEW,       /* never seen (or expired): execute */
    OSPAB_IDEM_REPLAY,    /* completed with the same request: answer with status/body */
    OSPAB_IDEM_MISMATCH,  /* completed or running with another request: 409 */
    OSPAB_IDEM_PENDING    /* the same request is still running elsewhere */
} ospab_idem_state_e;

static apr_status_t idem_lookup(ospab_db_t *db, apr_pool_t *p, const ospab_idem_t *idem,
                                apr_time_t now, ospab_idem_state_e *state, int *status,
                                const char **body)
{
    const char *args[3] = { idem->scope, idem->key, NULL };
    ospab_row_t row;
    idem_row_t k;
    apr_status_t rv;

    *state = OSPAB_IDEM_NEW;
    if ((rv = ospab_db_select_one(db, p, "ospab_idem_get", 2, args, &row)) != APR_SUCCESS) {
        return rv;
    }
    if (!row) {
        return APR_SUCCESS;
    }
    ospab_row_fill(&idem_shape, row, &k);
    /* timestamps in the same fixed format compare as text */
    args[2] = ospab_time_db(p, now - OSPAB_IDEM_TTL);
    if (k.created_at && strcmp(k.created_at, args[2]) < 0) {
        return ospab_db_exec(db, p, "ospab_idem_forget", 3, args, NULL);
    }
    if (!k.hash || strcmp(k.hash, idem->hash)) {
        *state = OSPAB_IDEM_MISMATCH;
        return APR_SUCCESS;
    }
    if (!k.status) {
        args[2] = ospab_time_db(p, now - OSPAB_IDEM_ABANDONED);
        if (k.created_at && strcmp(k.created_at, args[2]) < 0) {
            /* its request died half-way (process killed): let this one run */
            return ospab_db_exec(db, p, "ospab_idem_forget", 3, args, NULL);
        }
        *state = OSPAB_IDEM_PENDING;
        return APR_SUCCESS;
    }
    *state = OSPAB_IDEM_REPLAY;
    *status = atoi(k.status);
    *body = k.body ? k.body : "";
    return APR_SUCCESS;
}

/* Records idem as running (inside the caller's transaction, if one is open). */
static apr_status_t idem_reserve(ospab_db_t *db, apr_pool_t *p, const ospab_idem_t *idem,
                                 apr_time_t now)
{
    const char *args[4] = { idem->scope, idem->key, idem->hash, ospab_time_db(p, now) };

    return ospab_db_exec(db, p, "ospab_idem_insert", 4, args, NULL);
}

static apr_status_t idem_complete(ospab_db_t *db, apr_pool_t *p, const ospab_idem_t *idem,
                                  int status, const char *body)
{
    const char *args[4] = { apr_itoa(p, status), body, idem->scope, idem->key };

    return ospab_db_exec(db, p, "ospab_idem_complete", 4, args, NULL);
}

int ospab_idem_begin(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                     const ospab_idem_t *idem, ospab_result_t *res)
{
    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    if (idem && idem_reserve(db, p, idem, a->now) != APR_SUCCESS) {
        if (ospab_db_is_constraint(db)) {
            ospab_db_end(db, 0);
            res->idem_race = 1;
            res->status = 0;
            return 1;
        }
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    return 0;
}

void ospab_idem_commit(ospab_db_t *db, apr_pool_t *p, const ospab_idem_t *idem,
                       ospab_result_t *res)
{
    if (idem && idem_complete(db, p, idem, res->status,
                                    ospab_json_dump(p, res->body)) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
    }
}

#define IDEM_POLL       apr_time_from_msec(50)
#define IDEM_MAX_POLLS  400    /* 20 s of waiting for a concurrent twin request */

void ospab_idem_run(ospab_db_t *db, apr_pool_t *p, const ospab_idem_t *idem, int batch,
                    ospab_idem_fn *fn, void *ctx, apr_time_t *now, ospab_result_t *res,
                    int *replayed)
{
    int polls, status = 0;
    const char *stored = NULL;

    *replayed = 0;
    for (polls = 0; polls < IDEM_MAX_POLLS; ++polls) {
        ospab_idem_state_e state;

        *now = apr_time_now();
        if (idem_lookup(db, p, idem, *now, &state, &status, &stored) != APR_SUCCESS) {
            memset(res, 0, sizeof(*res));
            ospab_result_db_failed(db, p, res);
            return;
        }
        switch (state) {
        case OSPAB_IDEM_REPLAY:
            memset(res, 0, sizeof(*res));
            res->status = status;
            res->text = stored;
            *replayed = 1;
            return;
        case OSPAB_IDEM_MISMATCH:
            memset(res, 0, sizeof(*res));
            ospab_result_error(p, res, 409, "Idempotency-Key was already used with a "
                               "different request", NULL);
            return;
        case OSPAB_IDEM_PENDING:
            apr_sleep(IDEM_POLL);
            continue;
        case OSPAB_IDEM_NEW:
            break;
        }
        if (!batch) {
            /* the operation reserves the key in its own transaction (ospab_idem_begin) */
            fn(ctx, idem, res);
            if (res->idem_race) {
                continue;           /* the twin committed first: replay its answer */
            }
            return;
        }
        /* an operation of many transactions: the key on its own first, its answer after */
        if (idem_reserve(db, p, idem, *now) != APR_SUCCESS) {
            if (ospab_db_is_constraint(db)) {
                continue;
            }
            memset(res, 0, sizeof(*res));
            ospab_result_db_failed(db, p, res);
            return;
        }
        fn(ctx, NULL, res);
        if (idem_complete(db, p, idem, res->status, ospab_json_dump(p, res->body))
            != APR_SUCCESS && !res->log) {
            res->log = apr_pstrcat(p, "could not store the response for an Idempotency-Key: ",
                                   db->error ? db->error : "?", NULL);
        }
        return;
    }
    memset(res, 0, sizeof(*res));
    ospab_result_error(p, res, 409, "a request with this Idempotency-Key is still in progress",
                       NULL);
}
