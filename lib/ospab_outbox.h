/* ospab core: what both outboxes (e-mail, webhooks) need to deliver their rows. */
#ifndef OSPAB_OUTBOX_H
#define OSPAB_OUTBOX_H

#include <apr_time.h>

/* The delay before attempt n+1 after n failed ones: base * 2^(n-1), at most max, then a
 * random part taken off (between 0 and a half) so that many rows do not retry together. */
apr_interval_time_t ospab_outbox_backoff(apr_interval_time_t base, apr_interval_time_t max,
                                         int attempts);

#endif
