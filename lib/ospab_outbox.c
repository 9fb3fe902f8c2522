/* ospab core: what both outboxes (e-mail, webhooks) need to deliver: the retry delay. */
#include <openssl/rand.h>

#include "ospab_outbox.h"

apr_interval_time_t ospab_outbox_backoff(apr_interval_time_t base, apr_interval_time_t max,
                                         int attempts)
{
    apr_interval_time_t d = base > 0 ? base : apr_time_from_sec(1);
    unsigned int r = 0;

    while (--attempts > 0 && d < max) {
        d *= 2;
    }
    if (max > 0 && d > max) {
        d = max;
    }
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1) {
        r = (unsigned int)apr_time_now();
    }
    return d - (apr_interval_time_t)((double)(d / 2) * (r / 4294967296.0));
}

