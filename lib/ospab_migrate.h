/* ospab panel: schema migrations and seed files over apr_dbd.
 *
 * Migrations live in one directory per dialect (sql/mysql, sql/sqlite) as
 * NNN_name.sql.  Each applied file is recorded in schema_migrations with the
 * SHA-256 of its bytes, so an edited file is noticed instead of silently
 * diverging.  On SQLite a file and its bookkeeping run in one transaction; on
 * MySQL DDL commits implicitly, so a row in state 'applying' is written first
 * and is what reveals a migration that died half way.
 *
 * Seed files (demo data) are recorded in the same table under negative
 * versions, named "seed:<basename>", so running a seed twice is a no-op.
 *
 * APR/apr-util only; knows nothing of httpd.  Every function allocates from
 * the pool it is given and reports failure as an apr_status_t plus a
 * human-readable *errmsg (never containing connection parameters).
 */
#ifndef OSPAB_MIGRATE_H
#define OSPAB_MIGRATE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_dbd.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes besides APR_SUCCESS (what the caller can tell apart):
 *   APR_EMISMATCH   an applied file was edited afterwards (checksum differs)
 *   APR_EINCOMPLETE a migration is recorded as 'applying' (half-applied)
 *   APR_EINVAL      bad file name, duplicate version, out-of-order version,
 *                   unterminated quote, unsupported driver
 *   APR_EGENERAL    the database rejected a statement (see *errmsg)
 *   other           file system errors from apr_file_* / apr_dir_*          */

#define OSPAB_MIGRATE_TABLE "schema_migrations"
#define OSPAB_MIGRATE_SEED_PREFIX "seed:"

typedef enum {
    OSPAB_MIGRATE_PENDING,   /* file present, not in the database           */
    OSPAB_MIGRATE_APPLIED,   /* recorded, checksum matches the file          */
    OSPAB_MIGRATE_APPLYING,  /* recorded as started, never finished          */
    OSPAB_MIGRATE_CHANGED,   /* recorded as applied, the file differs now    */
    OSPAB_MIGRATE_MISSING    /* recorded, but no file for it any more        */
} ospab_migrate_state_e;

typedef struct ospab_migrate_entry_t {
    int version;                 /* 1..999; < 0 for a seed record           */
    const char *name;            /* "001_init.sql" or "seed:demo.sql"       */
    const char *path;            /* full path of the file, NULL if MISSING  */
    const char *checksum;        /* SHA-256 hex of the file, NULL if MISSING */
    const char *db_checksum;     /* as recorded, NULL if PENDING            */
    const char *applied_at;      /* as recorded, NULL if PENDING            */
    ospab_migrate_state_e state;
} ospab_migrate_entry_t;

typedef enum {
    OSPAB_MIGRATE_EV_APPLYING,    /* about to run entry                      */
    OSPAB_MIGRATE_EV_APPLIED,     /* entry ran and is recorded               */
    OSPAB_MIGRATE_EV_WOULD_APPLY, /* dry run: entry is pending               */
    OSPAB_MIGRATE_EV_SEED_SKIPPED,/* seed already recorded; not run again    */
    OSPAB_MIGRATE_EV_WARNING      /* detail: something odd but not fatal     */
} ospab_migrate_event_e;

/* Progress callback.  detail: the message for EV_WARNING, a short note for
 * EV_APPLIED ("13 statements") and EV_SEED_SKIPPED, else NULL.            */
typedef void ospab_migrate_report_fn(void *baton, ospab_migrate_event_e ev,
                                     const ospab_migrate_entry_t *entry,
                                     const char *detail);

/* One statement of a SQL file, comments removed, no trailing ';'.         */
typedef struct ospab_migrate_stmt_t {
    const char *sql;
    int line;                    /* 1-based line where the statement starts */
} ospab_migrate_stmt_t;

/* Apply every pending migration in dir (the dialect directory, e.g.
 * ".../sql/sqlite"), in version order.  Refuses to start when any recorded
 * migration is 'applying' or was edited, or when a pending file is older
 * than the newest applied one.  *n_applied (may be NULL) gets the number
 * applied (or, with dry_run, the number that would be).  dry_run changes
 * nothing in the database, not even schema_migrations.  report may be NULL. */
apr_status_t ospab_migrate_run(apr_pool_t *p, const apr_dbd_driver_t *drv,
                               apr_dbd_t *dbh, const char *dir, int dry_run,
                               ospab_migrate_report_fn *report, void *baton,
                               int *n_applied, const char **errmsg);

/* The state of every migration, file or database row, sorted by version
 * (array of ospab_migrate_entry_t *), followed by recorded seeds (version
 * < 0).  Read-only: works before schema_migrations exists.              */
apr_status_t ospab_migrate_status(apr_pool_t *p, const apr_dbd_driver_t *drv,
                                  apr_dbd_t *dbh, const char *dir,
                                  apr_array_header_t **entries,
                                  const char **errmsg);

/* Run a seed file in one transaction and record it as "seed:<basename>".
 * A seed already recorded is skipped (*applied = 0, EV_SEED_SKIPPED), even
 * if the file changed since; otherwise *applied = 1.  Seeds must be DML
 * only: on MySQL a DDL statement would commit the transaction early.  On
 * SQLite foreign keys are switched on for the connection first.          */
apr_status_t ospab_migrate_seed(apr_pool_t *p, const apr_dbd_driver_t *drv,
                                apr_dbd_t *dbh, const char *file,
                                ospab_migrate_report_fn *report, void *baton,
                                int *applied, const char **errmsg);

/* --- building blocks, public for the unit tests ------------------------ */

/* Split SQL text into statements at ';' outside quotes ('...', "...",
 * `...`, doubled quotes escape themselves; with backslash_escapes, as in
 * MySQL, a backslash escapes the next character) and outside comments
 * ("--" to end of line, slash-star to star-slash).  Comments are removed,
 * empty statements dropped; text after the last ';' is a statement too.
 * *stmts: array of ospab_migrate_stmt_t.                                   */
apr_status_t ospab_migrate_split(apr_pool_t *p, const char *text,
                                 apr_size_t len, int backslash_escapes,
                                 apr_array_header_t **stmts,
                                 const char **errmsg);

/* Lower-case hex SHA-256 of data (64 characters).                        */
apr_status_t ospab_migrate_checksum(apr_pool_t *p, const void *data,
                                    apr_size_t len, const char **hex);

/* Parse "NNN_name.sql" (three digits, 001..999, name of [A-Za-z0-9_-]+).
 * Returns APR_EINVAL if fname does not have that shape.                  */
apr_status_t ospab_migrate_parse_name(const char *fname, int *version);

/* The migration files of dir, sorted by version (ospab_migrate_entry_t *,
 * state PENDING, checksum filled in).  Files not ending in ".sql" are
 * ignored; a ".sql" file with a bad name or a duplicate version is an
 * error, so a typo cannot silently skip a migration.                      */
apr_status_t ospab_migrate_scan_dir(apr_pool_t *p, const char *dir,
                                    apr_array_header_t **files,
                                    const char **errmsg);

/* "YYYY-MM-DD HH:MM:SS.mmm" UTC for now: the schema's timestamp format.   */
const char *ospab_migrate_timestamp(apr_pool_t *p);

#ifdef __cplusplus
}
#endif

#endif /* OSPAB_MIGRATE_H */
