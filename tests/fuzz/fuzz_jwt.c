/* libFuzzer: ospab_jwt_verify (HS256, 32-byte secret) on arbitrary tokens, and
 * ospab_upid_parse on the same bytes as a string. */
#include "fuzz_common.h"
#include "ospab_jwt.h"
#include "ospab_pve.h"

/* 32 bytes; the seed tokens in corpus/fuzz_jwt/ are signed with it */
#define SECRET "ospab-fuzz-secret-0123456789abcd"
/* 2026-11-22T17:20:00Z, inside the seed tokens' lifetime */
#define NOW_SEC 1795368000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ospab_jwt_conf_t conf;
    char *s = fuzz_cstr(data, size);
    ospab_jwt_claims_t claims;
    ospab_upid_t upid;
    const char *why = NULL;

    if (!conf.alg_name) {
        conf.alg = JWT_ALG_HS256;
        conf.alg_name = "HS256";
        conf.verify_key = (const unsigned char *)SECRET;
        conf.verify_key_len = (int)strlen(SECRET);
        conf.sign_key = conf.verify_key;
        conf.sign_key_len = conf.verify_key_len;
        conf.leeway = 30;
        conf.access_ttl = 900;
    }
    if (ospab_jwt_verify(fuzz_pool, &conf, s, apr_time_from_sec(NOW_SEC), &claims, &why)
        == APR_SUCCESS) {
        if (claims.user_id < 1) {
            abort();
        }
    }
    else if (!why) {
        abort();   /* a refusal always says why */
    }
    if (ospab_upid_parse(fuzz_pool, s, &upid) == APR_SUCCESS) {
        if (!upid.node || !upid.type || !upid.id || !upid.user) {
            abort();
        }
    }
    apr_pool_clear(fuzz_pool);
    return 0;
}
