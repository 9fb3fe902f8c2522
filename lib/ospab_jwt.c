/* ospab core: JWT verification and issuing with libjwt; claims checked with jansson. */
#include <string.h>
#include <stdlib.h>
#include <errno.h>

#include <apr_strings.h>
#include <apr_base64.h>
#include <apr_lib.h>
#include <apr_general.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/evp.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <apr_thread_mutex.h>
#include <apr_hash.h>

#include "ospab_jwt.h"
#include "ospab_json.h"
#include "ospab_util.h"

#define MAX_TOKEN 8192

jwt_alg_t ospab_jwt_alg(const char *name)
{
    if (!strcmp(name, "HS256")) {
        return JWT_ALG_HS256;
    }
    if (!strcmp(name, "RS256")) {
        return JWT_ALG_RS256;
    }
    if (!strcmp(name, "ES256")) {
        return JWT_ALG_ES256;
    }
    return JWT_ALG_INVAL;
}

const char *ospab_jwt_check_key(apr_pool_t *p, jwt_alg_t alg, const char *key, int private_key)
{
    BIO *bio;
    EVP_PKEY *pk;
    int type;

    if (alg == JWT_ALG_HS256) {
        return strlen(key) >= 32 ? NULL : "an HS256 secret must be at least 32 bytes long";
    }
    bio = BIO_new_mem_buf(key, -1);
    pk = private_key ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
                     : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!pk) {
        return private_key ? "not a PEM private key" : "not a PEM public key";
    }
    type = EVP_PKEY_base_id(pk);
    EVP_PKEY_free(pk);
    if (alg == JWT_ALG_RS256 && type != EVP_PKEY_RSA) {
        return "RS256 needs an RSA key";
    }
    if (alg == JWT_ALG_ES256 && type != EVP_PKEY_EC) {
        return "ES256 needs an EC (P-256) key";
    }
    return NULL;
}

/* The decoded JSON of one base64url token segment, or NULL. */
static json_t *segment_json(apr_pool_t *p, const char *seg, apr_size_t len)
{
    char *b64 = apr_palloc(p, len + 4);
    char *plain;
    apr_size_t i;
    int n;

    for (i = 0; i < len; ++i) {
        char c = seg[i];

        if (c == '-') {
            c = '+';
        }
        else if (c == '_') {
            c = '/';
        }
        else if (!apr_isalnum(c)) {
            return NULL;
        }
        b64[i] = c;
    }
    while (i % 4) {
        b64[i++] = '=';
    }
    b64[i] = '\0';
    plain = apr_palloc(p, (apr_size_t)apr_base64_decode_len(b64) + 1);
    n = apr_base64_decode(plain, b64);
    if (n <= 0) {
        return NULL;
    }
    return ospab_json_own(p, json_loadb(plain, (size_t)n, JSON_REJECT_DUPLICATES, NULL));
}

static int positive_id(json_t *v, apr_int64_t *out)
{
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        *out = json_integer_value(v);
        return 1;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        apr_int64_t id;

        if (*s < '1' || *s > '9' || strlen(s) > 15) {
            return 0;
        }
        id = apr_strtoi64(s, &end, 10);
        if (*end) {
            return 0;
        }
        *out = id;
        return 1;
    }
    return 0;
}

/* A session id: 1..64 characters of [A-Za-z0-9_-] (the panel's are 32 hex digits). */
static int sid_ok(json_t *v)
{
    const char *s = json_string_value(v);
    apr_size_t n = json_string_length(v), i;

    if (!json_is_string(v) || n == 0 || n > OSPAB_JWT_SID_MAX) {
        return 0;
    }
    for (i = 0; i < n; ++i) {
        if (!apr_isalnum(s[i]) && s[i] != '-' && s[i] != '_') {
            return 0;
        }
    }
    return 1;
}

static int audience_ok(json_t *aud, const char *want)
{
    size_t i;

    if (json_is_string(aud)) {
        return !strcmp(json_string_value(aud), want);
    }
    for (i = 0; i < json_array_size(aud); ++i) {
        json_t *a = json_array_get(aud, i);

        if (json_is_string(a) && !strcmp(json_string_value(a), want)) {
            return 1;
        }
    }
    return 0;
}

static apr_status_t verify(apr_pool_t *p, const ospab_jwt_conf_t *c, const char *token,
                           apr_time_t now, ospab_jwt_claims_t *out, apr_int64_t *nbf,
                           const char **why);

apr_status_t ospab_jwt_verify(apr_pool_t *p, const ospab_jwt_conf_t *c, const char *token,
                              apr_time_t now, ospab_jwt_claims_t *out, const char **why)
{
    apr_int64_t nbf;

    return verify(p, c, token, now, out, &nbf, why);
}

typedef struct {
    char *token;              /* malloc'd copy, NULL: empty */
    apr_size_t len;
    const ospab_jwt_conf_t *conf;
    ospab_jwt_claims_t claims;
    apr_int64_t nbf;
} cache_entry_t;

struct ospab_jwt_cache_t {
    apr_thread_mutex_t *mutex;
    cache_entry_t *slots;
    unsigned nslots;
};

static apr_status_t cache_free(void *data)
{
    ospab_jwt_cache_t *cache = data;
    unsigned i;

    for (i = 0; i < cache->nslots; ++i) {
        free(cache->slots[i].token);
    }
    return APR_SUCCESS;
}

apr_status_t ospab_jwt_cache_create(apr_pool_t *p, int slots, ospab_jwt_cache_t **out)
{
    ospab_jwt_cache_t *cache = apr_pcalloc(p, sizeof(*cache));
    apr_status_t rv = apr_thread_mutex_create(&cache->mutex, APR_THREAD_MUTEX_DEFAULT, p);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    cache->nslots = slots > 0 ? (unsigned)slots : 1;
    cache->slots = apr_pcalloc(p, sizeof(cache_entry_t) * cache->nslots);
    apr_pool_cleanup_register(p, cache, cache_free, apr_pool_cleanup_null);
    *out = cache;
    return APR_SUCCESS;
}

/* Time-dependent claims, checked at every use of a cached entry too. */
static int still_valid(const ospab_jwt_conf_t *c, const ospab_jwt_claims_t *cl,
                       apr_int64_t nbf, apr_int64_t t, const char **why)
{
    /* the leeway moves t, never the token's values: exp and nbf can be anything a signer
     * wrote, and exp + leeway would overflow near INT64_MAX (undefined behaviour) */
    if (cl->exp <= t - c->leeway) {
        *why = "token expired";
        return 0;
    }
    if (nbf > t + c->leeway) {
        *why = "token not yet valid";
        return 0;
    }
    return 1;
}

apr_status_t ospab_jwt_verify_cached(ospab_jwt_cache_t *cache, apr_pool_t *p,
                                     const ospab_jwt_conf_t *c, const char *token,
                                     apr_time_t now, ospab_jwt_claims_t *out, const char **why)
{
    apr_size_t len = token ? strlen(token) : 0;
    apr_ssize_t klen = (apr_ssize_t)len;
    cache_entry_t *e;
    apr_int64_t nbf;
    int hit = 0;

    if (!cache || !len || len > MAX_TOKEN) {
        return ospab_jwt_verify(p, c, token, now, out, why);
    }
    e = &cache->slots[apr_hashfunc_default(token, &klen) % cache->nslots];
    apr_thread_mutex_lock(cache->mutex);
    if (e->token && e->len == len && e->conf == c && !CRYPTO_memcmp(e->token, token, len)) {
        *out = e->claims;
        nbf = e->nbf;
        hit = 1;
    }
    apr_thread_mutex_unlock(cache->mutex);
    if (hit) {
        return still_valid(c, out, nbf, apr_time_sec(now), why) ? APR_SUCCESS : APR_EINVAL;
    }
    if (verify(p, c, token, now, out, &nbf, why) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    apr_thread_mutex_lock(cache->mutex);
    free(e->token);
    e->token = malloc(len);
    if (e->token) {
        memcpy(e->token, token, len);
        e->len = len;
        e->conf = c;
        e->claims = *out;
        e->nbf = nbf;
    }
    apr_thread_mutex_unlock(cache->mutex);
    return APR_SUCCESS;
}

static apr_status_t verify(apr_pool_t *p, const ospab_jwt_conf_t *c, const char *token,
                           apr_time_t now, ospab_jwt_claims_t *out, apr_int64_t *nbf,
                           const char **why)
{
    const char *dot1, *dot2;
    json_t *header, *claims, *v;
    jwt_t *jwt = NULL;
    char *grants;
    apr_int64_t t = apr_time_sec(now);
    const char *role;

    memset(out, 0, sizeof(*out));
    if (!token || strlen(token) > MAX_TOKEN || !(dot1 = strchr(token, '.'))
        || !(dot2 = strchr(dot1 + 1, '.')) || strchr(dot2 + 1, '.') || dot2[1] == '\0') {
        *why = "malformed token";
        return APR_EINVAL;
    }
    /* the algorithm is ours to choose, never the token's */
    header = segment_json(p, token, (apr_size_t)(dot1 - token));
    v = json_object_get(header, "alg");
    if (!json_is_string(v) || strcmp(json_string_value(v), c->alg_name)) {
        *why = header ? "algorithm not accepted" : "malformed token";
        return APR_EINVAL;
    }
    if (jwt_decode(&jwt, token, c->verify_key, c->verify_key_len) != 0 || !jwt) {
        *why = "invalid signature";
        return APR_EINVAL;
    }
    if (jwt_get_alg(jwt) != c->alg) {
        jwt_free(jwt);
        *why = "algorithm not accepted";
        return APR_EINVAL;
    }
    grants = jwt_get_grants_json(jwt, NULL);
    jwt_free(jwt);
    claims = grants ? ospab_json_own(p, json_loads(grants, JSON_REJECT_DUPLICATES, NULL))
                    : NULL;
    free(grants);
    if (!json_is_object(claims)) {
        *why = "malformed claims";
        return APR_EINVAL;
    }
    v = json_object_get(claims, "exp");
    if (!json_is_integer(v)) {
        *why = "exp claim missing";
        return APR_EINVAL;
    }
    out->exp = json_integer_value(v);
    v = json_object_get(claims, "nbf");
    if (v && !json_is_integer(v)) {
        *why = "malformed claims";
        return APR_EINVAL;
    }
    *nbf = v ? json_integer_value(v) : 0;
    if (!still_valid(c, out, *nbf, t, why)) {
        return APR_EINVAL;
    }
    if (c->issuer) {
        v = json_object_get(claims, "iss");
        if (!json_is_string(v) || strcmp(json_string_value(v), c->issuer)) {
            *why = "wrong issuer";
            return APR_EINVAL;
        }
    }
    if (c->audience && !audience_ok(json_object_get(claims, "aud"), c->audience)) {
        *why = "wrong audience";
        return APR_EINVAL;
    }
    if (!positive_id(json_object_get(claims, "sub"), &out->user_id)) {
        *why = "sub must be a user id";
        return APR_EINVAL;
    }
    v = json_object_get(claims, "role");
    role = json_is_string(v) ? json_string_value(v) : v ? NULL : "user";
    if (!role || (strcmp(role, "user") && strcmp(role, "admin"))) {
        *why = "unknown role";
        return APR_EINVAL;
    }
    out->admin = !strcmp(role, "admin");
    v = json_object_get(claims, "sid");
    if (v && !sid_ok(v)) {
        *why = "malformed claims";
        return APR_EINVAL;
    }
    if (v) {
        apr_cpystrn(out->sid, json_string_value(v), sizeof(out->sid));
    }
    return APR_SUCCESS;
}

apr_status_t ospab_jwt_issue(apr_pool_t *p, const ospab_jwt_conf_t *c, apr_int64_t user_id,
                             const char *role, const char *sid, apr_time_t now,
                             const char **token)
{
    jwt_t *jwt = NULL;
    char *s = NULL;
    apr_int64_t t = apr_time_sec(now);
    int rc;

    *token = NULL;
    if (!c->sign_key) {
        return APR_ENOTIMPL;
    }
    if (jwt_new(&jwt)) {
        return APR_ENOMEM;
    }
    rc = jwt_add_grant(jwt, "sub", apr_psprintf(p, "%" APR_INT64_T_FMT, user_id))
      || jwt_add_grant(jwt, "role", role)
      || jwt_add_grant(jwt, "jti", ospab_random_hex(p, 16))
      || (sid && jwt_add_grant(jwt, "sid", sid))
      || jwt_add_grant_int(jwt, "iat", (long)t)
      || jwt_add_grant_int(jwt, "exp", (long)(t + c->access_ttl))
      || (c->issuer && jwt_add_grant(jwt, "iss", c->issuer))
      || (c->audience && jwt_add_grant(jwt, "aud", c->audience))
      || jwt_set_alg(jwt, c->alg, c->sign_key, c->sign_key_len);
    if (!rc) {
        s = jwt_encode_str(jwt);
    }
    jwt_free(jwt);
    if (!s) {
        return APR_EGENERAL;
    }
    *token = apr_pstrdup(p, s);
    free(s);
    return APR_SUCCESS;
}
