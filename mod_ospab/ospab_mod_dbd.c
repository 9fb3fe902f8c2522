/* mod_ospab: the glue to mod_dbd's connection pool. A request's connection comes from
 * ap_dbd_acquire; the first request on a connection tunes it and prepares the module's
 * statements on it, kept with the connection in its pool.
 *
 * They are not handed to mod_dbd (ap_dbd_prepare), which prepares them as each connection
 * opens, in child_init too: with SQLite, apr_dbd_sqlite3 prepares without waiting for a
 * lock, so a child starting while another connection held the database for a moment (the
 * last one of a graceful restart's old children closing, a sqlite3 tool, a WAL index being
 * rebuilt) failed with "database is locked" (AH00632) and lost its pool; and connections it
 * opened but no request used closed without our settings (ospab_db_tune).
 *
 * With SQLite, the transactions of all children queue on one global mutex (Mutex
 * ospab-sqlite-write) from before their BEGIN to after their end (ospab_db_t.write_lock). */
#include <string.h>

#include <apr_hash.h>
#include <util_mutex.h>

#include "mod_ospab.h"

static APR_OPTIONAL_FN_TYPE(ap_dbd_acquire) *dbd_acquire;
/* SQLite's writers of all children queue on it (ospab_db_t.write_lock) */
static apr_global_mutex_t *write_mutex;

#define STATEMENTS_KEY "ospab-statements"   /* a connection's pool: our prepared statements */

int ospab_mod_dbd_loaded(server_rec *s)
{
    dbd_acquire = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire);
    if (!dbd_acquire || !ap_find_linked_module("mod_dbd.c")) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, OSPAB_LOGNO(00101)
                     "mod_ospab needs mod_dbd: add 'LoadModule dbd_module "
                     "modules/mod_dbd.so' (a2enmod dbd) and configure DBDriver/DBDParams");
        return 0;
    }
    return 1;
}

int ospab_mod_dbd_pre_config(apr_pool_t *pconf)
{
    return ap_mutex_register(pconf, OSPAB_WRITE_MUTEX, NULL, APR_LOCK_DEFAULT, 0)
           == APR_SUCCESS ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

/* Made whatever the database (mod_dbd's driver is known only to a connection): a lock file
 * or a little shared memory, unused with MariaDB. */
int ospab_mod_dbd_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_status_t rv = ap_global_mutex_create(&write_mutex, NULL, OSPAB_WRITE_MUTEX, NULL, s,
                                             pconf, 0);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, OSPAB_LOGNO(00110)
                     "cannot create the lock SQLite's writers queue on");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

void ospab_mod_dbd_child_init(apr_pool_t *p, server_rec *s)
{
    apr_status_t rv;

    if (write_mutex
        && (rv = apr_global_mutex_child_init(&write_mutex, apr_global_mutex_lockfile(write_mutex),
                                             p)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, OSPAB_LOGNO(00112)
                     "cannot attach to the lock SQLite's writers queue on; they poll "
                     "SQLite's lock instead");
        write_mutex = NULL;
    }
}

static apr_status_t write_lock(void *baton, int lock)
{
    return lock ? apr_global_mutex_lock(write_mutex) : apr_global_mutex_unlock(write_mutex);
}

/* the request ends with the lock held only if an operation left its transaction open */
static apr_status_t write_release(void *data)
{
    ospab_db_write_unlock(data);
    return APR_SUCCESS;
}

/* The statements of a connection mod_dbd handed out, prepared on its first use; NULL when
 * that failed (logged; the next request tries again). */
static apr_hash_t *statements(request_rec *r, ap_dbd_t *dbd)
{
    apr_hash_t *prepared = NULL;
    ospab_db_t setup;

    apr_pool_userdata_get((void **)&prepared, STATEMENTS_KEY, dbd->pool);
    if (prepared) {
        return prepared;
    }
    ospab_db_init(&setup, dbd->driver, dbd->handle, NULL);
    setup.failures = ospab_mod_metrics_db_failures();  /* a statement that fails to prepare */
    ospab_db_tune(&setup);
    if (ospab_db_prepare(&setup, dbd->pool, OSPAB_SQL_API | OSPAB_SQL_ADMIN)
        != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, OSPAB_LOGNO(00119)
                      "setting up a new database connection: %s (is the schema migrated? "
                      "ospab-admin migrate)", setup.error);
        return NULL;
    }
    apr_pool_userdata_setn(setup.prepared, STATEMENTS_KEY, NULL, dbd->pool);
    return setup.prepared;
}

ospab_db_t *ospab_mod_db(request_rec *r)
{
    ap_dbd_t *dbd = dbd_acquire ? dbd_acquire(r) : NULL;
    apr_hash_t *prepared;
    ospab_db_t *db;

    if (!dbd) {
        ospab_mod_metric(OSPAB_METRIC_DB_UNAVAILABLE);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, OSPAB_LOGNO(00103)
                      "no database connection from mod_dbd (check DBDriver/DBDParams and "
                      "that the database is up)");
        return NULL;
    }
    if (!(prepared = statements(r, dbd))) {
        return NULL;
    }
    db = apr_palloc(r->pool, sizeof(*db));
    ospab_db_init(db, dbd->driver, dbd->handle, prepared);
    db->conn_pool = dbd->pool;      /* mod_dbd's pool of this connection */
    if (db->dialect == OSPAB_DB_SQLITE && write_mutex) {
        db->write_lock = write_lock;
        apr_pool_cleanup_register(r->pool, db, write_release, apr_pool_cleanup_null);
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
