/* ospab core: POST /api/notify, the billing site's own notices (payment reminders, ticket
 * replies, password reset links) queued as e-mail to a customer. */
#ifndef OSPAB_NOTIFY_H
#define OSPAB_NOTIFY_H

#include <jansson.h>

#include "ospab_result.h"

/* POST /api/notify: req is {"userId" | "to", "template", "data"} or {"userId" | "to",
 * "subject", "text"}, with an optional "key" (else idem_key, the Idempotency-Key header)
 * naming the notice: a repeated key answers with the first notice's id. */
void ospab_notify(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a, json_t *req,
                  const char *idem_key, ospab_result_t *res);

#endif
