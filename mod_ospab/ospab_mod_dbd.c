/* mod_ospab: the glue to mod_dbd's connection pool. The module's statements are handed to
 * mod_dbd at configuration time (it prepares them on every pooled connection), a request's
 * connection comes from ap_dbd_acquire, and the children open their pools one after
 * another at start-up. */
#include <string.h>

#include <apr_hash.h>
#include <util_mutex.h>

#include "mod_ospab.h"

static APR_OPTIONAL_FN_TYPE(ap_dbd_acquire) *dbd_acquire;

#define TUNED_KEY "ospab-db-tuned"      /* on a connection's pool: ospab_db_tune done */
static APR_OPTIONAL_FN_TYPE(ap_dbd_prepare) *dbd_prepare;
static apr_global_mutex_t *startup_mutex;

int ospab_mod_dbd_loaded(server_rec *s)
{
    dbd_acquire = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire);
    dbd_prepare = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_prepare);
    if (!dbd_acquire || !dbd_prepare || !ap_find_linked_module("mod_dbd.c")) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, OSPAB_LOGNO(00101)
                     "mod_ospab needs mod_dbd: add 'LoadModule dbd_module "
                     "modules/mod_dbd.so' (a2enmod dbd) and configure DBDriver/DBDParams");
        return 0;
    }
    return 1;
}

int ospab_mod_dbd_pre_config(apr_pool_t *pconf)
{
    return ap_mutex_register(pconf, OSPAB_STARTUP_MUTEX, NULL, APR_LOCK_DEFAULT, 0)
           == APR_SUCCESS ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

int ospab_mod_dbd_startup_lock(apr_pool_t *pconf, server_rec *s)
{
    apr_status_t rv = ap_global_mutex_create(&startup_mutex, NULL, OSPAB_STARTUP_MUTEX, NULL,
                                             s, pconf, 0);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, OSPAB_LOGNO(00108)
                     "cannot create the start-up lock");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* Hands every statement to mod_dbd, once per distinct mod_dbd server config: it prepares
 * them on each new pooled connection. This runs on every configuration pass, as each pass
 * builds fresh mod_dbd configs. */
int ospab_mod_dbd_post_config(apr_pool_t *ptemp, server_rec *s)
{
    module *dbd = ap_find_linked_module("mod_dbd.c");
    apr_hash_t *seen = apr_hash_make(ptemp);
    server_rec *sp;

    if (!ospab_mod_dbd_loaded(s)) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (sp = s; sp; sp = sp->next) {
        void *dc = ap_get_module_config(sp->module_config, dbd);
        const ospab_sql_t *q;

        if (dc && apr_hash_get(seen, &dc, sizeof(dc))) {
            continue;
        }
        if (dc) {
            void **key = apr_palloc(ptemp, sizeof(*key));
            *key = dc;
            apr_hash_set(seen, key, sizeof(*key), sp);
        }
        for (q = ospab_sql_api; q->label; ++q) {     /* not the agent's own */
            dbd_prepare(sp, q->sql, q->label);
        }
    }
    return OK;
}

/* Children open their pooled connections one at a time. A SQLite database in WAL mode
 * whose shared-memory index nobody holds yet is initialised by the first connection,
 * under an exclusive lock: a second child preparing mod_dbd's statements at that moment
 * gets "database is locked" (apr_dbd_sqlite3 has no busy wait there) and loses its pool
 * until a later request rebuilds it. Our child_init takes a global lock before mod_dbd's
 * runs and releases it after, at start-up only. */
static void startup_lock(apr_pool_t *p, server_rec *s)
{
    if (startup_mutex
        && (apr_global_mutex_child_init(&startup_mutex,
                                        apr_global_mutex_lockfile(startup_mutex), p)
            != APR_SUCCESS
            || apr_global_mutex_lock(startup_mutex) != APR_SUCCESS)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, OSPAB_LOGNO(00110)
                     "cannot take the start-up lock; opening connections anyway");
    }
}

void ospab_mod_child_init_first(apr_pool_t *p, server_rec *s)
{
    startup_lock(p, s);
}

void ospab_mod_child_init_last(apr_pool_t *p, server_rec *s)
{
    if (startup_mutex) {
        apr_global_mutex_unlock(startup_mutex);
    }
}

ospab_db_t *ospab_mod_db(request_rec *r)
{
    ap_dbd_t *dbd = dbd_acquire ? dbd_acquire(r) : NULL;
    ospab_db_t *db;

    if (!dbd) {
        ospab_mod_metric(OSPAB_METRIC_DB_UNAVAILABLE);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, OSPAB_LOGNO(00103)
                      "no database connection from mod_dbd (check DBDriver/DBDParams and "
                      "that the database is up)");
        return NULL;
    }
    db = apr_palloc(r->pool, sizeof(*db));
    ospab_db_init(db, dbd->driver, dbd->handle, dbd->prepared);
    db->conn_pool = dbd->pool;      /* mod_dbd's pool of this connection */
    /* mod_dbd has no hook of its own for new connections a module can count on (its
     * post_connect is not an optional hook): the first request on one tunes it */
    if (db->dialect == OSPAB_DB_SQLITE) {
        void *tuned = NULL;

        apr_pool_userdata_get(&tuned, TUNED_KEY, dbd->pool);
        if (!tuned) {
            if (ospab_db_tune(db) != APR_SUCCESS) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, OSPAB_LOGNO(00119)
                              "setting up the database connection: %s", db->error);
            }
            apr_pool_userdata_setn((void *)1, TUNED_KEY, NULL, dbd->pool);
        }
    }
    db->failures = ospab_mod_metrics_db_failures();
    return db;
}

void ospab_mod_run(request_rec *r, ospab_db_t *db, ospab_actor_t *actor, ospab_mod_op_fn *op,
                   void *ctx, ospab_result_t *res)
{
    unsigned effects;
    int attempt = 0;

    actor->effects = &effects;
    for (;;) {
        effects = 0;
        memset(res, 0, sizeof(*res));
        op(ctx, res);
        if (!db || !ospab_db_conflict_retry(db, res->status, effects, &attempt)) {
            break;
        }
        ospab_mod_metric(OSPAB_METRIC_DB_CONFLICT_RETRY);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, OSPAB_LOGNO(00118)
                      "%s %s: %s; running it again (attempt %d of %d)", r->method, r->uri,
                      res->log ? res->log : "write conflict", attempt + 1,
                      OSPAB_DB_CONFLICT_TRIES);
    }
    actor->effects = NULL;
}
