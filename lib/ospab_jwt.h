/* ospab core: access tokens (JWT through libjwt). The algorithm is pinned by configuration:
 * a token is refused unless its header names exactly that algorithm, before and after
 * libjwt checks the signature, so "none" and HS256-signed-with-the-RSA-public-key fail. */
#ifndef OSPAB_JWT_H
#define OSPAB_JWT_H

#include <apr_pools.h>
#include <apr_time.h>
#include <jwt.h>

typedef struct {
    jwt_alg_t alg;                   /* HS256, RS256 or ES256 */
    const char *alg_name;
    const unsigned char *verify_key; /* HS256 secret, or PEM public key */
    int verify_key_len;
    const unsigned char *sign_key;   /* HS256 secret, or PEM private key; NULL: cannot issue */
    int sign_key_len;
    const char *issuer;              /* NULL: not checked (and not set on issue) */
    const char *audience;
    int leeway;                      /* seconds of clock skew tolerated for exp/nbf */
    int access_ttl;                  /* seconds an issued token lives */
} ospab_jwt_conf_t;

#define OSPAB_JWT_SID_MAX 64

typedef struct {
    apr_int64_t user_id;             /* "sub" */
    int admin;                       /* "role":"admin" as the token says: the role that counts
                                      * is the user row's (ospab_session_principal) */
    apr_int64_t exp;
    /* "sid": the login session (refresh-token family) a token of the panel's own belongs
     * to, "" when absent (a token from an external identity provider) */
    char sid[OSPAB_JWT_SID_MAX + 1];
} ospab_jwt_claims_t;

/* Maps "HS256"/"RS256"/"ES256" to libjwt; JWT_ALG_INVAL for anything else. */
jwt_alg_t ospab_jwt_alg(const char *name);

/* Checks that key suits alg (HS256: >= 32 bytes; RS/ES: a PEM public or private key of
 * the right type). NULL when fine, else why not. */
const char *ospab_jwt_check_key(apr_pool_t *p, jwt_alg_t alg, const char *key, int private_key);

/* Verifies token; on failure returns APR_EINVAL with a short reason for the client. */
apr_status_t ospab_jwt_verify(apr_pool_t *p, const ospab_jwt_conf_t *c, const char *token,
                              apr_time_t now, ospab_jwt_claims_t *out, const char **why);

/* A per-process cache of tokens that passed ospab_jwt_verify: a client sends the same token
 * for its whole lifetime, and checking a signature and two JSON documents each time costs
 * more than the rest of a read request. Entries hold the whole token (compared in constant
 * time) and its claims; exp/nbf are checked again at every hit. Thread-safe. */
typedef struct ospab_jwt_cache_t ospab_jwt_cache_t;

apr_status_t ospab_jwt_cache_create(apr_pool_t *p, int slots, ospab_jwt_cache_t **cache);
/* ospab_jwt_verify through cache (which may be NULL). */
apr_status_t ospab_jwt_verify_cached(ospab_jwt_cache_t *cache, apr_pool_t *p,
                                     const ospab_jwt_conf_t *c, const char *token,
                                     apr_time_t now, ospab_jwt_claims_t *out, const char **why);

/* Signs an access token for user_id with role, belonging to login session sid (NULL: none,
 * as for tokens made by `ospab-admin token`). */
apr_status_t ospab_jwt_issue(apr_pool_t *p, const ospab_jwt_conf_t *c, apr_int64_t user_id,
                             const char *role, const char *sid, apr_time_t now,
                             const char **token);

#endif
