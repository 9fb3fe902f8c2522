/* ospab core: the signature of a webhook delivery (see ospab_webhook.h). */
#include <string.h>

#include <apr_strings.h>
#include <apr_escape.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ospab_webhook.h"

const char *ospab_webhook_signature(apr_pool_t *p, const char *secret, apr_time_t t,
                                    const char *body, apr_size_t len)
{
    const char *ts = apr_psprintf(p, "%" APR_TIME_T_FMT, apr_time_sec(t));
    apr_size_t tlen = strlen(ts);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char *msg = apr_palloc(p, tlen + 1 + len + 1);

    memcpy(msg, ts, tlen);
    msg[tlen] = '.';
    memcpy(msg + tlen + 1, body, len);
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg,
              tlen + 1 + len, md, &mdlen)) {
        return NULL;
    }
    return apr_psprintf(p, "t=%s,v1=%s", ts, apr_pescape_hex(p, md, mdlen, 0));
}
