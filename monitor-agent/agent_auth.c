/* ospab-agent: who may connect and what they may watch (the live-push server's callbacks,
 * on the main thread, with the main thread's own database connection).
 *
 * A token is checked exactly as the module checks a Bearer token: signature with the
 * pinned algorithm, exp/nbf/iss/aud, then ospab_session_principal: the user must exist and
 * be enabled, the role is the user row's (never the token's claim), and a token of a panel
 * login stops working when that login ends. The same check runs again for the connected
 * sockets of a user when the database says their access changed (user.access events, see
 * agent_events.c). Non-admins may watch only their own servers; a server that does not
 * exist and one that belongs to someone else get the same answer. */
#include <string.h>

#include <apr_strings.h>

#include "agent_auth.h"
#include "ospab_session.h"
#include "ospab_vps.h"

/* the socket keeps the token's sid in agent_sio_user_t */
_Static_assert(AGENT_SIO_SID_MAX == OSPAB_JWT_SID_MAX, "sid sizes differ");

typedef struct {
    agent_t *ag;
    ospab_db_t *db;
    apr_pool_t *conn_pool;          /* for a connection opened again (see db_retry) */
    apr_pool_t *scratch;            /* cleared after every callback */
    char msg[200];                  /* the last refusal's text */
} auth_t;

/* A failed query: if the connection is gone (MariaDB restarted, KILL, wait_timeout), open
 * it again once. 1: try the query again. */
static int db_retry(auth_t *a)
{
    const char *why = NULL;

    if (agent_db_usable(a->db, a->scratch)) {
        return 0;                   /* the connection is fine: the failure was the query's */
    }
    AGENT_WARN("live push: database connection lost, reconnecting");
    apr_dbd_close(a->db->driver, a->db->handle);
    if (a->conn_pool) {
        apr_pool_clear(a->conn_pool);
    }
    else {
        apr_pool_create(&a->conn_pool, a->ag->pool);
    }
    if (agent_db_open(a->ag, a->conn_pool, a->db, &why) != APR_SUCCESS) {
        AGENT_ERROR("live push: %s", why);
        return 0;
    }
    return 1;
}

/* One row by a prepared statement, with one reconnect when the connection was lost. */
static apr_status_t select_one(auth_t *a, const char *label, const char *arg,
                               ospab_row_t *row)
{
    apr_status_t rv = ospab_db_select_one(a->db, a->scratch, label, 1, &arg, row);

    if (rv != APR_SUCCESS && db_retry(a)) {
        rv = ospab_db_select_one(a->db, a->scratch, label, 1, &arg, row);
    }
    return rv;
}

/* One ospab_session_principal, with one reconnect when the connection was lost. */
static apr_status_t principal(auth_t *a, const ospab_jwt_claims_t *claims,
                              ospab_principal_t *who, const char **why)
{
    apr_status_t rv = ospab_session_principal(a->db, a->scratch, claims, who, why);

    if (rv != APR_SUCCESS && rv != APR_EACCES && db_retry(a)) {
        rv = ospab_session_principal(a->db, a->scratch, claims, who, why);
    }
    return rv;
}

/* Who claims name now: 0 allowed (*who); 1 refused, *why = prefix and the reason (dflt
 * when there is none); -1 the database failed, *why = busy. */
static int decide(auth_t *a, const ospab_jwt_claims_t *claims, ospab_principal_t *who,
                  const char *prefix, const char *dflt, const char *busy, const char **why)
{
    const char *reason = NULL;
    apr_status_t rv = principal(a, claims, who, &reason);

    if (rv == APR_EACCES) {
        apr_snprintf(a->msg, sizeof(a->msg), "%s%s", prefix, reason ? reason : dflt);
        *why = a->msg;
        return 1;
    }
    if (rv != APR_SUCCESS) {
        AGENT_WARN("live push: database: %s", a->db->error ? a->db->error : "?");
        *why = busy;
        return -1;
    }
    return 0;
}

/* exp (seconds) as an apr_time_t. A signer may write any int64 there: beyond what
 * apr_time_t holds (about the year 294,000) the token does not expire for us, rather than
 * overflowing the multiplication (undefined behaviour, seen under UBSan). */
static apr_time_t expiry_of(apr_int64_t exp)
{
    if (exp <= 0 || exp > APR_INT64_MAX / APR_USEC_PER_SEC) {
        return 0;
    }
    return apr_time_from_sec(exp);
}

static int authenticate(void *ctx, const char *token, agent_sio_user_t *u, const char **why)
{
    auth_t *a = ctx;
    ospab_jwt_claims_t claims;
    ospab_principal_t who;
    const char *reason = NULL;

    apr_pool_clear(a->scratch);
    if (!token || !*token) {
        *why = "authentication required: connect with auth {token: <access token>}";
        return 1;
    }
    if (ospab_jwt_verify(a->scratch, &a->ag->conf->jwt, token, apr_time_now(), &claims,
                         &reason) != APR_SUCCESS) {
        /* the reason names the check that failed, never the token; the sio copies *why
         * before the next callback */
        AGENT_DEBUG("live push: token refused (%s)", reason ? reason : "?");
        apr_snprintf(a->msg, sizeof(a->msg), "invalid token%s%s", reason ? ": " : "",
                     reason ? reason : "");
        *why = a->msg;
        return 1;
    }
    if (decide(a, &claims, &who, "invalid token: ", "refused",
               "temporarily unavailable, try again", why) != 0) {
        return 1;
    }
    u->user_id = claims.user_id;
    u->is_admin = who.admin;
    u->expires = expiry_of(claims.exp);
    apr_cpystrn(u->sid, claims.sid, sizeof(u->sid));
    return 0;
}

/* A connected user's access changed (disabled, deleted, role, a login ended): the same
 * check as at connect, from what the socket kept of its token. */
static int recheck(void *ctx, agent_sio_user_t *u, const char **why)
{
    auth_t *a = ctx;
    ospab_jwt_claims_t claims;
    ospab_principal_t who;
    int rc;

    apr_pool_clear(a->scratch);
    memset(&claims, 0, sizeof(claims));
    claims.user_id = u->user_id;
    apr_cpystrn(claims.sid, u->sid, sizeof(claims.sid));
    if ((rc = decide(a, &claims, &who, "", "access withdrawn", "temporarily unavailable",
                     why)) != 0) {
        return rc;
    }
    u->is_admin = who.admin;
    return 0;
}

static int may_subscribe(void *ctx, const agent_sio_user_t *u, apr_int64_t server_id,
                         const char **why)
{
    auth_t *a = ctx;
    const char *id;
    ospab_row_t row = NULL;
    ospab_vps_t v;

    apr_pool_clear(a->scratch);
    id = apr_psprintf(a->scratch, "%" APR_INT64_T_FMT, server_id);
    if (select_one(a, "ospab_vps_status_of", id, &row) != APR_SUCCESS) {
        AGENT_WARN("live push: database: %s", a->db->error ? a->db->error : "?");
        *why = "temporarily unavailable, try again";
        return -1;
    }
    if (row) {
        ospab_row_fill(&ospab_vps_status_row, row, &v);
    }
    if (!row || !v.user_id || apr_atoi64(v.user_id) != u->user_id) {
        *why = "server not found";
        return 1;
    }
    return 0;
}

static void room_opened(void *ctx, apr_int64_t server_id)
{
    auth_t *a = ctx;

    (void)server_id;
    agent_wake(a->ag);              /* the monitor sends the first stats and alerts now */
}

void agent_auth_setup(agent_t *ag, ospab_db_t *db, agent_sio_conf_t *sio)
{
    auth_t *a = apr_pcalloc(ag->pool, sizeof(*a));

    a->ag = ag;
    a->db = db;
    apr_pool_create(&a->scratch, ag->pool);
    sio->authenticate = authenticate;
    sio->may_subscribe = may_subscribe;
    sio->recheck = recheck;
    sio->room_opened = room_opened;
    sio->ctx = a;
}
