/* ospab core: panel logins. Access tokens are short JWTs; refresh tokens are random,
 * stored as SHA-256 digests, rotated on every use, and grouped in families: presenting a
 * spent refresh token revokes its whole family (it was stolen, or replayed). */
#ifndef OSPAB_SESSION_H
#define OSPAB_SESSION_H

#include "ospab_db.h"
#include "ospab_jwt.h"
#include "ospab_sync.h"

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

#endif
