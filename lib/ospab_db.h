/* ospab core: the database through apr_dbd. The same prepared statements serve
 * MySQL/MariaDB and SQLite: they are written in the SQL both accept, take every
 * parameter as text ("%s") and get their timestamps from the application. */
#ifndef OSPAB_DB_H
#define OSPAB_DB_H

#include <apr_pools.h>
#include <apr_hash.h>
#include <apr_tables.h>
#include <apr_dbd.h>

typedef enum { OSPAB_DB_MYSQL, OSPAB_DB_SQLITE, OSPAB_DB_OTHER } ospab_db_dialect_e;

/* Takes (lock 1) or releases (lock 0) a lock shared by every process writing the database;
 * see ospab_db_t.write_lock. */
typedef apr_status_t ospab_db_lock_fn(void *baton, int lock);

typedef struct {
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
    apr_hash_t *prepared;            /* label -> apr_dbd_prepared_t * */
    ospab_db_dialect_e dialect;
    apr_dbd_transaction_t *trans;    /* the open transaction, if any */
    const char *error;               /* text of the last failure, for the log */
    const char *errtext;             /* the driver's own message of the last failure */
    int errcode;                     /* driver's code of the last failure */
    apr_pool_t *conn_pool;           /* lives as long as the connection: statements are
                                      * prepared again into it after MariaDB dropped the
                                      * connection (see ospab_db.c); NULL: not done */
    unsigned sets;                   /* the statement sets the connection has prepared
                                      * (OSPAB_SQL_API, | OSPAB_SQL_AGENT,
                                      * | OSPAB_SQL_ADMIN) */
    volatile apr_uint32_t *failures; /* counts failed statements and COMMITs (apr_atomic,
                                      * e.g. in shared memory for metrics); NULL: none */
    int conflict;                    /* the last failure was a write conflict: the whole
                                      * transaction may run again (ospab_db_conflict_retry) */
    ospab_db_lock_fn *write_lock;    /* SQLite: a transaction waits here, from before its
                                      * BEGIN to after its end, so writers queue instead of
                                      * polling SQLite's lock (whose losers could wait on
                                      * for a second); NULL: none */
    void *write_baton;
    int write_locked;                /* write_lock is held */
} ospab_db_t;

typedef struct {
    const char *label;
    const char *sql;
} ospab_sql_t;

/* Rows of ospab_metrics_put_batch (each of 11 values). */
#define OSPAB_METRICS_BATCH 50

/* The statements by who runs them, each array ending with { NULL, NULL }. Labels are
 * literals, unique across both sets (tests/unit/test_db.c checks). */
#define OSPAB_SQL_API   1u      /* the library's operations: module, agent and tools */
#define OSPAB_SQL_AGENT 2u      /* the agent's own rounds: outboxes, monitor, leases */
#define OSPAB_SQL_ADMIN 4u      /* the admin API (lib/ospab_admin.c): module and tools */
#define OSPAB_SQL_LAST  OSPAB_SQL_ADMIN
#define OSPAB_SQL_ALL   (OSPAB_SQL_API | OSPAB_SQL_AGENT | OSPAB_SQL_ADMIN)
extern const ospab_sql_t ospab_sql_api[];       /* lib/ospab_sql.c */
extern const ospab_sql_t ospab_sql_agent[];     /* lib/ospab_sql_agent.c */
extern const ospab_sql_t ospab_sql_admin[];     /* lib/ospab_sql_admin.c */

/* The set's array (OSPAB_SQL_API, OSPAB_SQL_AGENT or OSPAB_SQL_ADMIN), NULL for another
 * value. */
const ospab_sql_t *ospab_sql_set(unsigned set);

/* Fills db for a connection whose statements of OSPAB_SQL_API and OSPAB_SQL_ADMIN (Apache's
 * sets) are in prepared; prepared may
 * be NULL (then ospab_db_prepare fills db->prepared). */
void ospab_db_init(ospab_db_t *db, const apr_dbd_driver_t *driver, apr_dbd_t *handle,
                   apr_hash_t *prepared);
/* Settings of a new connection that apr_dbd has no call for; call it before preparing (a
 * changed SQLite setting expires the statements prepared so far, and apr_dbd_sqlite3's
 * legacy sqlite3_prepare() statements then fail instead of preparing themselves again).
 * SQLite: no checkpoint when the connection closes. The last connection to close would
 * checkpoint the WAL and delete it under an exclusive lock, failing statements a new
 * Apache child prepares meanwhile; with this off, the writers checkpoint the WAL as it
 * grows (wal_autocheckpoint) and keep it. Others: nothing. */
void ospab_db_tune(ospab_db_t *db);
/* Prepares the statement sets (OSPAB_SQL_API, OSPAB_SQL_AGENT, OSPAB_SQL_ADMIN) on db's connection
 * into p and db->prepared (made if NULL); SQLite's "database is locked" is waited out for up
 * to OSPAB_DB_BEGIN_WAIT. Else than APR_SUCCESS: db->error names the statement (counted in
 * db->failures). */
apr_status_t ospab_db_prepare(ospab_db_t *db, apr_pool_t *p, unsigned sets);
/* Every set (the agent and the tools). */
apr_status_t ospab_db_prepare_all(ospab_db_t *db, apr_pool_t *p);

/* A row is an array of column values as text; NULL for SQL NULL. */
typedef const char **ospab_row_t;

apr_status_t ospab_db_exec(ospab_db_t *db, apr_pool_t *p, const char *label, int nargs,
                           const char **args, int *nrows);
/* Reads all rows (rows may be NULL when only the count matters). */
apr_status_t ospab_db_select(ospab_db_t *db, apr_pool_t *p, const char *label, int nargs,
                             const char **args, apr_array_header_t **rows, int *ncols);
/* First row of a select, or NULL when there is none (check the return value first). */
apr_status_t ospab_db_select_one(ospab_db_t *db, apr_pool_t *p, const char *label,
                                 int nargs, const char **args, ospab_row_t *row);

/* Typed rows. A row shape says where each column of a statement goes in a struct of
 * const char * members (cols[i]: offsetof the member of column i), how big the struct is,
 * and where the row itself is kept for code driven by a field table (raw: offsetof an
 * ospab_row_t member, or OSPAB_ROW_NO_RAW). */
typedef struct {
    const apr_size_t *cols;
    int n;
    apr_size_t size;
    apr_size_t raw;
} ospab_row_shape_t;
#define OSPAB_ROW_NO_RAW ((apr_size_t)-1)
#define OSPAB_ROW_SHAPE(cols, type, raw) \
    { (cols), (int)(sizeof(cols) / sizeof((cols)[0])), sizeof(type), (raw) }

/* out (a struct of the shape's type) zeroed, then filled from r: the one way code reads a
 * row's columns. */
void ospab_row_fill(const ospab_row_shape_t *shape, ospab_row_t r, void *out);
/* The first row of a select as a new struct of the shape from p: APR_SUCCESS with *out,
 * NULL when there is no row; anything else: the database failed. */
apr_status_t ospab_db_load(ospab_db_t *db, apr_pool_t *p, const char *label, int nargs,
                           const char **args, const ospab_row_shape_t *shape, void **out);

/* The first column of the first row (a COUNT, an id, a MAX): *value NULL when there is no
 * row or the value is NULL (check the return value first). */
apr_status_t ospab_db_select_value(ospab_db_t *db, apr_pool_t *p, const char *label,
                                   int nargs, const char **args, const char **value);

/* How long a transaction waits for SQLite's write lock before giving up (503). */
#define OSPAB_DB_BEGIN_WAIT apr_time_from_sec(10)

apr_status_t ospab_db_begin(ospab_db_t *db, apr_pool_t *p);
/* Gives db->write_lock back if db holds it (ospab_db_end does; also for a caller whose
 * request ends with a transaction left open). */
void ospab_db_write_unlock(ospab_db_t *db);
/* Commits when commit is set and nothing failed, else rolls back. */
apr_status_t ospab_db_end(ospab_db_t *db, int commit);

/* Id the last INSERT on this connection generated. */
apr_status_t ospab_db_last_id(ospab_db_t *db, apr_pool_t *p, const char **id);

/* Write conflicts. MariaDB answers a transaction that lost a deadlock, and Galera one that
 * lost certification against a transaction committed on another node (at COMMIT, or at
 * its next statement when that transaction aborted it), with error 1213: nothing of it was
 * written, and running it again from its first statement is how it is meant to be
 * handled. An operation refused that way (status 503 and db->conflict) is run again, at
 * most OSPAB_DB_CONFLICT_TRIES times in all, after a short random pause, unless it already
 * did something outside the database (effects: Proxmox or SSH calls made, which must not
 * be repeated). 1: run it again (db->conflict is reset; *attempt counted); 0: keep the
 * answer. */
#define OSPAB_DB_CONFLICT_TRIES 5
int ospab_db_conflict_retry(ospab_db_t *db, int status, unsigned effects, int *attempt);
/* The same for a transaction that is not an API operation (the agent's writes): 1 when
 * its last failure was a write conflict and it has tries left (after the pause). */
int ospab_db_conflict_again(ospab_db_t *db, int *attempt);
/* The same with its own bound: for a transaction every writer of a hot row runs (a
 * server create locks its node's row: tries OSPAB_DB_CONFLICT_TRIES_HOT). */
#define OSPAB_DB_CONFLICT_TRIES_HOT 16
int ospab_db_conflict_again_upto(ospab_db_t *db, int *attempt, int tries);

/* 1 if the last failure was a UNIQUE or FOREIGN KEY constraint. */
int ospab_db_is_constraint(const ospab_db_t *db);

#endif
