/* ospab core: apr_dbd access. */
#include <string.h>

#include <apr_atomic.h>
#include <apr_strings.h>
#include <sqlite3.h>

#include "ospab_db.h"

/* MySQL: ER_DUP_ENTRY, ER_ROW_IS_REFERENCED_2, ER_NO_REFERENCED_ROW_2, ER_DUP_ENTRY_WITH_KEY_NAME;
 * SQLite: SQLITE_CONSTRAINT (extended codes are not enabled by apr_dbd). */
#define MYSQL_ER_DUP_ENTRY        1062
#define MYSQL_ER_ROW_REFERENCED   1451
#define MYSQL_ER_NO_REFERENCED    1452
#define MYSQL_ER_DUP_KEYNAME      1586
#define SQLITE_CONSTRAINT_CODE    19
#define SQLITE_BUSY_CODE          5
/* MySQL/MariaDB errors after which the connection has lost its prepared statements:
 * CR_SERVER_GONE_ERROR, CR_SERVER_LOST, CR_NO_PREPARE_STMT, ER_UNKNOWN_STMT_HANDLER. */
#define MYSQL_CR_SERVER_GONE      2006
#define MYSQL_CR_SERVER_LOST      2013
#define MYSQL_CR_NO_PREPARE_STMT  2030
#define MYSQL_ER_UNKNOWN_STMT     1243
/* ER_LOCK_DEADLOCK: an InnoDB deadlock, or a Galera certification failure / brute-force
 * abort (wsrep reports both with this code) */
#define MYSQL_ER_LOCK_DEADLOCK    1213

void ospab_db_init(ospab_db_t *db, const apr_dbd_driver_t *driver, apr_dbd_t *handle,
                   apr_hash_t *prepared)
{
    const char *name = apr_dbd_name(driver);

    memset(db, 0, sizeof(*db));
    db->driver = driver;
    db->handle = handle;
    db->prepared = prepared;
    db->sets = OSPAB_SQL_API | OSPAB_SQL_ADMIN;
    db->dialect = !strcmp(name, "mysql") ? OSPAB_DB_MYSQL
                : !strcmp(name, "sqlite3") ? OSPAB_DB_SQLITE : OSPAB_DB_OTHER;
}

const ospab_sql_t *ospab_sql_set(unsigned set)
{
    return set == OSPAB_SQL_API ? ospab_sql_api : set == OSPAB_SQL_AGENT ? ospab_sql_agent
           : set == OSPAB_SQL_ADMIN ? ospab_sql_admin : NULL;
}

/* Prepares one statement. SQLite reads the schema to prepare, and answers SQLITE_BUSY when
 * another connection holds the database exclusively for a moment (one closing without
 * NO_CKPT_ON_CLOSE, as sqlite3 tools do, or one rebuilding the WAL index): waited out here,
 * outside apr_dbd_sqlite3's process-wide mutex, as ospab_db_begin does. */
static int prepare_one(ospab_db_t *db, apr_pool_t *p, const ospab_sql_t *s,
                       apr_dbd_prepared_t **stmt, apr_time_t *deadline)
{
    apr_interval_time_t pause = apr_time_from_msec(1);
    int rc;

    while ((rc = apr_dbd_prepare(db->driver, p, db->handle, s->sql, s->label, stmt)) != 0
           && db->dialect == OSPAB_DB_SQLITE && rc == SQLITE_BUSY_CODE) {
        if (!*deadline) {
            *deadline = apr_time_now() + OSPAB_DB_BEGIN_WAIT;
        }
        if (apr_time_now() + pause > *deadline) {
            break;
        }
        apr_sleep(pause);
        if (pause < apr_time_from_msec(20)) {
            pause *= 2;
        }
    }
    return rc;
}

apr_status_t ospab_db_prepare(ospab_db_t *db, apr_pool_t *p, unsigned sets)
{
    apr_time_t deadline = 0;
    unsigned set;

    if (!db->prepared) {
        db->prepared = apr_hash_make(p);
    }
    db->sets = sets;
    for (set = OSPAB_SQL_API; set <= OSPAB_SQL_LAST; set <<= 1) {
        const ospab_sql_t *s;

        for (s = (sets & set) ? ospab_sql_set(set) : NULL; s && s->label; ++s) {
            apr_dbd_prepared_t *stmt = NULL;
            int rc = prepare_one(db, p, s, &stmt, &deadline);

            if (rc) {
                if (db->failures) {
                    apr_atomic_inc32(db->failures);
                }
                db->errcode = rc;
                db->error = apr_psprintf(p, "preparing %s: %s", s->label,
                                         apr_dbd_error(db->driver, db->handle, rc));
                return APR_EGENERAL;
            }
            apr_hash_set(db->prepared, s->label, APR_HASH_KEY_STRING, stmt);
        }
    }
    return APR_SUCCESS;
}

void ospab_db_tune(ospab_db_t *db)
{
    sqlite3 *h;

    if (db->dialect == OSPAB_DB_SQLITE
        && (h = apr_dbd_native_handle(db->driver, db->handle))) {  /* apr_dbd_sqlite3's */
        sqlite3_db_config(h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    }
}

apr_status_t ospab_db_prepare_all(ospab_db_t *db, apr_pool_t *p)
{
    return ospab_db_prepare(db, p, OSPAB_SQL_ALL);
}

static apr_dbd_prepared_t *statement(ospab_db_t *db, apr_pool_t *p, const char *label)
{
    apr_dbd_prepared_t *stmt = apr_hash_get(db->prepared, label, APR_HASH_KEY_STRING);

    if (!stmt) {
        db->errcode = -1;
        db->error = apr_psprintf(p, "statement %s is not prepared", label);
    }
    return stmt;
}

/* MariaDB dropped the connection (restart, wait_timeout, KILL). apr_dbd_mysql reconnects by
 * itself (its default "reconnect=1": mod_dbd's check of a pooled connection pings, and the
 * ping reconnects), but a new connection has none of the prepared statements: every
 * statement would fail with "Statement not prepared" for as long as the connection lives.
 * lost(): the failure is of that kind; heal(): reconnect if needed and prepare the
 * connection's statement sets again, into its own pool and statement table. */
static int lost(const ospab_db_t *db, int rc, int writing)
{
    if (db->dialect != OSPAB_DB_MYSQL) {
        return 0;
    }
    /* a write that was cut off mid-way (CR_SERVER_LOST) may have been applied: only
     * statements that never ran are tried again */
    return rc == MYSQL_CR_NO_PREPARE_STMT || rc == MYSQL_ER_UNKNOWN_STMT
           || rc == MYSQL_CR_SERVER_GONE || (!writing && rc == MYSQL_CR_SERVER_LOST);
}

static int heal(ospab_db_t *db)
{
    int n = 0;

    if (!db->conn_pool || !db->prepared
        || apr_dbd_check_conn(db->driver, db->conn_pool, db->handle) != APR_SUCCESS) {
        return 0;
    }
    /* nor DBDInitSQL: the schema is utf8mb4 throughout (conf/ospab.conf) */
    if (apr_dbd_query(db->driver, db->handle, &n, "SET NAMES utf8mb4")) {
        return 0;
    }
    return ospab_db_prepare(db, db->conn_pool, db->sets) == APR_SUCCESS;
}

static apr_status_t failed(ospab_db_t *db, apr_pool_t *p, const char *label, int rc)
{
    const char *msg = apr_dbd_error(db->driver, db->handle, rc);

    if (db->failures) {
        apr_atomic_inc32(db->failures);
    }
    db->errcode = rc;
    db->conflict = db->dialect == OSPAB_DB_MYSQL && rc == MYSQL_ER_LOCK_DEADLOCK;
    db->errtext = msg ? apr_pstrdup(p, msg) : NULL;
    db->error = apr_psprintf(p, "%s: %s (%d)", label, msg ? msg : "unknown error", rc);
    return APR_EGENERAL;
}

apr_status_t ospab_db_exec(ospab_db_t *db, apr_pool_t *p, const char *label, int nargs,
                           const char **args, int *nrows)
{
    apr_dbd_prepared_t *stmt = statement(db, p, label);
    int n = 0, rc;

    if (!stmt) {
        return APR_EGENERAL;
    }
    rc = apr_dbd_pquery(db->driver, p, db->handle, &n, stmt, nargs, args);
    /* once more on a healed connection, unless a transaction was open (it is gone) */
    if (rc && lost(db, rc, 1) && heal(db) && !db->trans
        && (stmt = statement(db, p, label)) != NULL) {
        rc = apr_dbd_pquery(db->driver, p, db->handle, &n, stmt, nargs, args);
    }
    if (rc) {
        return failed(db, p, label, rc);
    }
    if (nrows) {
        *nrows = n;
    }
    return APR_SUCCESS;
}

apr_status_t ospab_db_select(ospab_db_t *db, apr_pool_t *p, const char *label, int nargs,
                             const char **args, apr_array_header_t **rows, int *ncols)
{
    apr_dbd_prepared_t *stmt = statement(db, p, label);
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    int rc, cols, i;

    if (!stmt) {
        return APR_EGENERAL;
    }
    rc = apr_dbd_pselect(db->driver, p, db->handle, &res, stmt, 0, nargs, args);
    if (rc && lost(db, rc, 0) && heal(db) && !db->trans
        && (stmt = statement(db, p, label)) != NULL) {
        rc = apr_dbd_pselect(db->driver, p, db->handle, &res, stmt, 0, nargs, args);
    }
    if (rc) {
        return failed(db, p, label, rc);
    }
    cols = apr_dbd_num_cols(db->driver, res);
    if (ncols) {
        *ncols = cols;
    }
    if (rows) {
        *rows = apr_array_make(p, 4, sizeof(ospab_row_t));
    }
    /* read to the end (-1) so the driver releases the result set */
    while ((rc = apr_dbd_get_row(db->driver, p, res, &row, -1)) == 0) {
        if (rows) {
            const char **vals = apr_palloc(p, sizeof(char *) * (apr_size_t)(cols ? cols : 1));

            for (i = 0; i < cols; ++i) {
                const char *v = apr_dbd_get_entry(db->driver, row, i);

                /* apr_dbd_sqlite3 copies every value into p already; the mysql driver
                 * hands out its bind buffers, which the next row overwrites */
                vals[i] = !v ? NULL : db->dialect == OSPAB_DB_SQLITE ? v : apr_pstrdup(p, v);
            }
            APR_ARRAY_PUSH(*rows, ospab_row_t) = vals;
        }
    }
    if (rc != -1) {
        return failed(db, p, label, rc);
    }
    return APR_SUCCESS;
}

apr_status_t ospab_db_select_one(ospab_db_t *db, apr_pool_t *p, const char *label,
                                 int nargs, const char **args, ospab_row_t *row)
{
    apr_array_header_t *rows;
    apr_status_t rv = ospab_db_select(db, p, label, nargs, args, &rows, NULL);

    *row = NULL;
    if (rv == APR_SUCCESS && rows->nelts > 0) {
        *row = APR_ARRAY_IDX(rows, 0, ospab_row_t);
    }
    return rv;
}

void ospab_db_write_unlock(ospab_db_t *db)
{
    if (db->write_locked) {
        db->write_locked = 0;
        db->write_lock(db->write_baton, 0);
    }
}

apr_status_t ospab_db_begin(ospab_db_t *db, apr_pool_t *p)
{
    apr_interval_time_t pause = apr_time_from_msec(1);
    apr_time_t deadline = apr_time_now() + OSPAB_DB_BEGIN_WAIT;
    int rc;

    db->conflict = 0;               /* a conflict is this transaction's, if any */
    /* in the queue of this database's writers (the others wait for the lock rather than
     * for SQLite's): what is left to wait for below is a writer of another program */
    if (db->write_lock && !db->write_locked && db->dialect == OSPAB_DB_SQLITE
        && db->write_lock(db->write_baton, 1) == APR_SUCCESS) {
        db->write_locked = 1;
    }
    for (;;) {
        db->trans = NULL;
        rc = apr_dbd_transaction_start(db->driver, p, db->handle, &db->trans);
        if (!rc) {
            return APR_SUCCESS;
        }
        /* apr_dbd_sqlite3 leaves the failed transaction on the handle: detach it */
        if (db->trans) {
            apr_dbd_transaction_end(db->driver, p, db->trans);
            db->trans = NULL;
        }
        /* SQLite's "BEGIN IMMEDIATE" while another connection writes: wait here, outside
         * apr_dbd_sqlite3's process-wide mutex (SQLite's own busy timeout would sleep
         * inside it and stall every other thread of the process, the writer included) */
        if (db->dialect != OSPAB_DB_SQLITE || rc != SQLITE_BUSY_CODE
            || apr_time_now() + pause > deadline) {
            ospab_db_write_unlock(db);
            return failed(db, p, "BEGIN", rc);
        }
        apr_sleep(pause);
        if (pause < apr_time_from_msec(20)) {
            pause *= 2;
        }
    }
}

apr_status_t ospab_db_end(ospab_db_t *db, int commit)
{
    int rc = 0, n = 0;

    if (!db->trans) {
        return APR_SUCCESS;
    }
    /* apr_dbd_mysql's end of a transaction (mysql_commit, then autocommit back on) answers
     * a failed COMMIT with 1 and the server's error already overwritten by the second
     * call: the COMMIT is sent on its own first, so a write conflict is told apart from a
     * lost server. Once it failed, the transaction's error makes apr_dbd roll back. */
    if (commit && db->dialect == OSPAB_DB_MYSQL) {
        rc = apr_dbd_query(db->driver, db->handle, &n, "COMMIT");
    }
    if (!commit) {
        apr_dbd_transaction_mode_set(db->driver, db->trans, APR_DBD_TRANSACTION_ROLLBACK);
    }
    if (apr_dbd_transaction_end(db->driver, NULL, db->trans) && !rc) {
        rc = -1;
    }
    db->trans = NULL;
    ospab_db_write_unlock(db);
    if (rc) {
        if (db->failures) {
            apr_atomic_inc32(db->failures);
        }
        db->errcode = rc;
        db->conflict = db->dialect == OSPAB_DB_MYSQL && rc == MYSQL_ER_LOCK_DEADLOCK;
        db->error = !commit ? "ROLLBACK failed"
                  : db->conflict ? "COMMIT failed: write conflict (deadlock or Galera "
                                   "certification)"
                  : "COMMIT failed";
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

int ospab_db_conflict_retry(ospab_db_t *db, int status, unsigned effects, int *attempt)
{
    return status == 503 && !effects && ospab_db_conflict_again(db, attempt);
}

int ospab_db_conflict_again(ospab_db_t *db, int *attempt)
{
    return ospab_db_conflict_again_upto(db, attempt, OSPAB_DB_CONFLICT_TRIES);
}

int ospab_db_conflict_again_upto(ospab_db_t *db, int *attempt, int tries)
{
    apr_interval_time_t most;

    if (!db->conflict || *attempt + 1 >= tries) {
        return 0;
    }
    db->conflict = 0;
    ++*attempt;
    /* 1-2 ms, then up to 4, 8, 16, 32 at most: the two sides of a conflict should not
     * meet again */
    most = apr_time_from_msec(1) << (*attempt < 5 ? *attempt : 5);
    apr_sleep(apr_time_from_msec(1) + (apr_interval_time_t)((apr_uint64_t)apr_time_now()
                                                             % (apr_uint64_t)most));
    return 1;
}

void ospab_row_fill(const ospab_row_shape_t *shape, ospab_row_t r, void *out)
{
    int i;

    memset(out, 0, shape->size);
    for (i = 0; i < shape->n; ++i) {
        *(const char **)(void *)((char *)out + shape->cols[i]) = r[i];
    }
    if (shape->raw != OSPAB_ROW_NO_RAW) {
        *(ospab_row_t *)(void *)((char *)out + shape->raw) = r;
    }
}

apr_status_t ospab_db_load(ospab_db_t *db, apr_pool_t *p, const char *label, int nargs,
                           const char **args, const ospab_row_shape_t *shape, void **out)
{
    ospab_row_t r = NULL;
    apr_status_t rv = ospab_db_select_one(db, p, label, nargs, args, &r);

    *out = NULL;
    if (rv == APR_SUCCESS && r) {
        *out = apr_palloc(p, shape->size);
        ospab_row_fill(shape, r, *out);
    }
    return rv;
}

apr_status_t ospab_db_select_value(ospab_db_t *db, apr_pool_t *p, const char *label,
                                   int nargs, const char **args, const char **value)
{
    ospab_row_t row = NULL;
    apr_status_t rv = ospab_db_select_one(db, p, label, nargs, args, &row);

    *value = rv == APR_SUCCESS && row ? row[0] : NULL;
    return rv;
}

apr_status_t ospab_db_last_id(ospab_db_t *db, apr_pool_t *p, const char **id)
{
    /* A constant, parameterless query per dialect: apr_dbd has no call for this. */
    int mysql = db->dialect == OSPAB_DB_MYSQL;
    const char *sql = mysql ? "SELECT LAST_INSERT_ID()" : "SELECT last_insert_rowid()";
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    int rc;

    *id = NULL;
    /* random access (mysql_store_result): an error that comes instead of the row (Galera
     * aborting this transaction for another node's write, 1213) is the select's own, so it
     * is told apart as a conflict and the operation runs again; read row by row it looked
     * like an empty answer */
    rc = apr_dbd_select(db->driver, p, db->handle, &res, sql, mysql);
    if (rc) {
        return failed(db, p, "last insert id", rc);
    }
    /* random access counts rows from 1; the sequential form takes -1 (the next) */
    if (apr_dbd_get_row(db->driver, p, res, &row, mysql ? 1 : -1) == 0) {
        const char *v = apr_dbd_get_entry(db->driver, row, 0);

        *id = v ? apr_pstrdup(p, v) : NULL;
        /* the sequential form's results must be read to the end */
        while (!mysql && apr_dbd_get_row(db->driver, p, res, &row, -1) == 0) {
        }
    }
    if (!*id) {
        db->errcode = -1;
        db->error = "last insert id: no answer";
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

int ospab_db_is_constraint(const ospab_db_t *db)
{
    switch (db->dialect) {
    case OSPAB_DB_MYSQL:
        return db->errcode == MYSQL_ER_DUP_ENTRY || db->errcode == MYSQL_ER_ROW_REFERENCED
            || db->errcode == MYSQL_ER_NO_REFERENCED || db->errcode == MYSQL_ER_DUP_KEYNAME;
    case OSPAB_DB_SQLITE:
        /* apr_dbd_sqlite3 prepares with the legacy sqlite3_prepare(), whose statements
         * report every failure as SQLITE_ERROR: the message tells constraints apart */
        return db->errcode == SQLITE_CONSTRAINT_CODE
            || (db->errtext && strstr(db->errtext, "constraint failed"));
    default:
        return 0;
    }
}
