/* ospab core: panel logins. Access tokens are short JWTs; refresh tokens are random,
 * stored as SHA-256 digests, rotated on every use, and grouped in families: presenting a
 * spent refresh token revokes its whole family (it was stolen, or replayed). */
#ifndef OSPAB_SESSION_H
#define OSPAB_SESSION_H

#include "ospab_db.h"
#include "ospab_jwt.h"
#include "ospab_sync.h"
#include "ospab_customer.h"

typedef struct {
    const ospab_jwt_conf_t *jwt;
    int refresh_ttl;          /* seconds */
    const char *user_agent;   /* recorded with the refresh token; may be NULL */
} ospab_session_conf_t;

/* body {"email","password"}: 200 with tokens, 401 on bad credentials (res->status). */
void ospab_session_login(ospab_db_t *db, apr_pool_t *p, const ospab_session_conf_t *c,
                         const ospab_actor_t *a, json_t *body, ospab_result_t *res);
/* body {"refreshToken"}: 200 with a new pair, or 401. */
void ospab_session_refresh(ospab_db_t *db, apr_pool_t *p, const ospab_session_conf_t *c,
                           const ospab_actor_t *a, json_t *body, ospab_result_t *res);
/* body {"refreshToken"}: revokes its family; 200 even for unknown tokens. */
void ospab_session_logout(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a, json_t *body,
                          ospab_result_t *res);

/* Ends every login of user_id inside the caller's transaction: all its refresh tokens
 * revoked (so are the access tokens of those logins, which ospab_session_principal
 * checks), *n how many (may be NULL). The admin API's disable. */
apr_status_t ospab_session_revoke_user(ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                                       const char *user_id, int *n);

/* Who verified claims name, as the database says now: the user must exist and be enabled;
 * the role is the row's, never the token's (a demoted admin is a user at once); a token of
 * a panel login (claims->sid) stops working when that login ends (logout, a refresh token
 * reused, the user deleted — a later user with the same id has no such login). Tokens of
 * an external identity provider carry no sid: for them the user row alone decides.
 * APR_SUCCESS with *who filled (strings in p); APR_EACCES with *why for the client;
 * anything else: the database failed (db->error). One query. */
apr_status_t ospab_session_principal(ospab_db_t *db, apr_pool_t *p,
                                     const ospab_jwt_claims_t *claims, ospab_principal_t *who,
                                     const char **why);

/* GET /api/vps and /api/server for the caller claims name, in one round trip: who they name
 * (as ospab_session_principal decides) selected with the first page's rows; when there are
 * none, ospab_session_principal decides on its own. An admin's list is then selected apart
 * (every user's servers). APR_SUCCESS: *who and res filled
 * (ospab_customer_list); APR_EACCES with *why; anything else: the database failed. */
#define OSPAB_PRINCIPAL_COLS 3
apr_status_t ospab_session_list(ospab_db_t *db, apr_pool_t *p, const ospab_jwt_claims_t *claims,
                                ospab_list_e kind, ospab_page_t *pg, ospab_principal_t *who,
                                ospab_result_t *res, const char **why);

#endif
