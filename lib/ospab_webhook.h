/* ospab core: webhooks to the billing site: the signature a receiver checks
 * (docs/agent.md, "Webhooks"). */
#ifndef OSPAB_WEBHOOK_H
#define OSPAB_WEBHOOK_H

#include <apr_pools.h>
#include <apr_time.h>

/* X-Ospab-Signature: "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>". */
const char *ospab_webhook_signature(apr_pool_t *p, const char *secret, apr_time_t t,
                                    const char *body, apr_size_t len);

#endif
