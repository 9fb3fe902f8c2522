/* ospab core: the Idempotency-Key protocol of the sync API. A retried request with the same
 * key and body gets the first one's answer; the same key with another body is a 409; a twin
 * that arrives while the first still runs waits for its answer. The key is recorded in the
 * same transaction as the change it guards (ospab_idem_begin/commit), so a change and its
 * stored answer are kept or lost together. */
#ifndef OSPAB_IDEM_H
#define OSPAB_IDEM_H

#include "ospab_result.h"

/* An Idempotency-Key: scope separates routes, hash is SHA-256 hex of the request. */
typedef struct {
    const char *scope;
    const char *key;
    const char *hash;
} ospab_idem_t;

#define OSPAB_IDEM_TTL        apr_time_from_sec(24 * 3600)
#define OSPAB_IDEM_ABANDONED  apr_time_from_sec(300)

/* Opens the change's transaction and, with a key, records it first. 0: go on; 1: res is
 * set (a twin holding the key committed first: res->idem_race). */
int ospab_idem_begin(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                     const ospab_idem_t *idem, ospab_result_t *res);
/* Stores res under the key (if any) and commits. */
void ospab_idem_commit(ospab_db_t *db, apr_pool_t *p, const ospab_idem_t *idem,
                       ospab_result_t *res);

/* The operation a key guards: it sets res; idem is the key to reserve with
 * ospab_idem_begin, or NULL when ospab_idem_run keeps the key itself. */
typedef void ospab_idem_fn(void *ctx, const ospab_idem_t *idem, ospab_result_t *res);

/* Runs fn at most once for idem: res is fn's answer, or the stored answer of the first run
 * (*replayed set; res->text holds it), or a 409 (another body; still running after 20 s),
 * or a 503. batch: fn runs many transactions, so the key is reserved on its own before it
 * and completed after it. *now is the time the attempt started (the actor's). */
void ospab_idem_run(ospab_db_t *db, apr_pool_t *p, const ospab_idem_t *idem, int batch,
                    ospab_idem_fn *fn, void *ctx, apr_time_t *now, ospab_result_t *res,
                    int *replayed);

#endif
