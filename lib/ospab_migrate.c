/* ospab panel: schema migrations and seed files over apr_dbd.
 *
 * Facts about apr_dbd (apr-util 1.6) this file leans on:
 *  - sqlite3: apr_dbd_query() on a string of several statements goes on
 *    after one fails at run time and returns only the last result, and
 *    any whitespace or comment after the last ';' makes it return 21
 *    (SQLITE_MISUSE, text "not an error") although everything ran.  mysql:
 *    several statements in one string are a syntax error.  So files are
 *    split here and sent one statement at a time, comments removed.
 *  - apr_dbd_query() is only for statements without rows: sqlite3 reports
 *    SQLITE_ROW as error 100 "not an error" (PRAGMA journal_mode = WAL
 *    "fails" that way), mysql leaves the result unread and the next call
 *    fails "Commands out of sync".
 *  - Inside an apr_dbd transaction the first failing call sets an error
 *    that makes every later call return it unexecuted, and
 *    apr_dbd_transaction_end() then rolls back.  The error text must be read
 *    with apr_dbd_error() right after the failure: the ROLLBACK replaces it.
 *  - sqlite3 attaches the transaction to the handle even when BEGIN fails,
 *    so transaction_end() must be called in that case too.
 *  - mysql: DDL commits implicitly, so a migration cannot be rolled back
 *    there; a row in state 'applying' records that one was started.  The
 *    connection character set is the client library's default (utf8mb4
 *    with Debian 12's libmariadb, latin1 with older libmysqlclient) and
 *    DBDParams has no charset key, hence SET NAMES.
 *  - Selects are read to the end (-1): mysql's unbuffered results otherwise
 *    leave the connection "out of sync".  A SQL NULL comes back from
 *    apr_dbd_get_entry() as a NULL pointer with both drivers.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_file_io.h>
#include <apr_file_info.h>
#include <apr_time.h>
#include <apr_dbd.h>

#include <openssl/evp.h>

#include "ospab_migrate.h"

/* A migration file is a few kB; this only stops a wrong path from eating
 * memory.                                                                  */
#define OSPAB_MIGRATE_MAX_FILE (16 * 1024 * 1024)
/* Seconds to wait for another ospab-admin on the same MySQL database.     */
#define OSPAB_MIGRATE_LOCK_WAIT "30"

/* The public entry first, so an entry pointer is also a file pointer.     */
typedef struct {
    ospab_migrate_entry_t e;
    const char *text;            /* file contents, NUL-terminated */
    apr_size_t len;
} migrate_file_t;

typedef struct {
    apr_pool_t *p;
    const apr_dbd_driver_t *drv;
    apr_dbd_t *dbh;
    int mysql;                   /* else sqlite3 */
    int locked;                  /* holds the MySQL advisory lock */
} migrate_ctx_t;

static const char *const create_table_mysql =
    "CREATE TABLE IF NOT EXISTS " OSPAB_MIGRATE_TABLE " ("
    " version INT NOT NULL PRIMARY KEY,"
    " name VARCHAR(255) NOT NULL,"
    " checksum CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,"
    " state VARCHAR(16) NOT NULL,"
    " applied_at DATETIME(3) NOT NULL"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci";

static const char *const create_table_sqlite =
    "CREATE TABLE IF NOT EXISTS " OSPAB_MIGRATE_TABLE " ("
    " version INTEGER NOT NULL PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " checksum TEXT NOT NULL,"
    " state TEXT NOT NULL,"
    " applied_at TEXT NOT NULL"
    ")";

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */

const char *ospab_migrate_timestamp(apr_pool_t *p)
{
    apr_time_exp_t tm;

    apr_time_exp_gmt(&tm, apr_time_now());
    return apr_psprintf(p, "%04d-%02d-%02d %02d:%02d:%02d.%03d",
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                        tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_usec / 1000);
}

apr_status_t ospab_migrate_checksum(apr_pool_t *p, const void *data,
                                    apr_size_t len, const char **hex)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    char *out;

    *hex = NULL;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1) {
        return APR_EGENERAL;
    }
    out = apr_palloc(p, mdlen * 2 + 1);
    for (i = 0; i < mdlen; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 0x0f];
    }
    out[mdlen * 2] = '\0';
    *hex = out;
    return APR_SUCCESS;
}

apr_status_t ospab_migrate_parse_name(const char *fname, int *version)
{
    apr_size_t len = fname ? strlen(fname) : 0, i;

    /* "NNN_" + at least one name character + ".sql" */
    if (len < 9 || strcmp(fname + len - 4, ".sql") != 0
        || !apr_isdigit(fname[0]) || !apr_isdigit(fname[1])
        || !apr_isdigit(fname[2]) || fname[3] != '_') {
        return APR_EINVAL;
    }
    for (i = 4; i < len - 4; i++) {
        if (!apr_isalnum(fname[i]) && fname[i] != '_' && fname[i] != '-') {
            return APR_EINVAL;
        }
    }
    *version = (fname[0] - '0') * 100 + (fname[1] - '0') * 10 + (fname[2] - '0');
    return *version > 0 ? APR_SUCCESS : APR_EINVAL;
}

/* The first line of a statement, short enough for an error message.       */
static const char *stmt_head(apr_pool_t *p, const char *sql)
{
    apr_size_t n = strcspn(sql, "\r\n");

    if (n > 72) {
        return apr_pstrcat(p, apr_pstrndup(p, sql, 72), "...", NULL);
    }
    return apr_pstrndup(p, sql, n);
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash ? slash + 1 : path;
}

static apr_status_t read_file(apr_pool_t *p, const char *path,
                              const char **text, apr_size_t *len,
                              const char **errmsg)
{
    apr_file_t *f = NULL;
    apr_finfo_t fi;
    apr_size_t got = 0;
    char *buf, errbuf[256];
    apr_status_t rv;

    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_OS_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        f = NULL;
        goto leave;
    }
    rv = apr_file_info_get(&fi, APR_FINFO_SIZE | APR_FINFO_TYPE, f);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    if (fi.filetype != APR_REG) {
        rv = APR_EINVAL;
        *errmsg = apr_psprintf(p, "%s: not a regular file", path);
        goto leave;
    }
    if (fi.size > OSPAB_MIGRATE_MAX_FILE) {
        rv = APR_EINVAL;
        *errmsg = apr_psprintf(p, "%s: larger than %d bytes", path,
                               OSPAB_MIGRATE_MAX_FILE);
        goto leave;
    }
    buf = apr_palloc(p, (apr_size_t)fi.size + 1);
    if (fi.size > 0) {
        rv = apr_file_read_full(f, buf, (apr_size_t)fi.size, &got);
        if (rv != APR_SUCCESS) {
            goto leave;
        }
    }
    buf[got] = '\0';
    if (memchr(buf, '\0', got) != NULL) {
        rv = APR_EINVAL;
        *errmsg = apr_psprintf(p, "%s: contains a NUL byte; not a SQL file",
                               path);
        goto leave;
    }
    *text = buf;
    *len = got;

leave:
    if (f) {
        apr_file_close(f);
    }
    if (rv != APR_SUCCESS && *errmsg == NULL) {
        *errmsg = apr_psprintf(p, "cannot read %s: %s", path,
                               apr_strerror(rv, errbuf, sizeof(errbuf)));
    }
    return rv;
}

/* ------------------------------------------------------------------------ */
/* splitting SQL text into statements                                       */

typedef enum { SPLIT_CODE, SPLIT_QUOTE, SPLIT_LINE_COMMENT,
               SPLIT_BLOCK_COMMENT } split_state_e;

static void split_finish(apr_pool_t *p, apr_array_header_t *out,
                         const char *buf, apr_size_t n, int line)
{
    ospab_migrate_stmt_t *st;

    while (n > 0 && apr_isspace(buf[n - 1])) {
        n--;
    }
    while (n > 0 && apr_isspace(*buf)) {
        buf++;
        n--;
    }
    if (n == 0) {
        return;
    }
    st = apr_array_push(out);
    st->sql = apr_pstrndup(p, buf, n);
    st->line = line;
}

apr_status_t ospab_migrate_split(apr_pool_t *p, const char *text,
                                 apr_size_t len, int backslash_escapes,
                                 apr_array_header_t **stmts,
                                 const char **errmsg)
{
    apr_array_header_t *out = apr_array_make(p, 16,
                                             sizeof(ospab_migrate_stmt_t));
    char *buf = apr_palloc(p, len + 1);
    apr_size_t i, n = 0;
    split_state_e state = SPLIT_CODE;
    char quote = 0;
    int line = 1, stmt_line = 0, open_line = 0;

#define SPLIT_PUT(ch) do {                                     \
        if (stmt_line == 0 && !apr_isspace(ch)) {              \
            stmt_line = line;                                  \
        }                                                      \
        buf[n++] = (ch);                                       \
    } while (0)

    *stmts = NULL;
    for (i = 0; i < len; i++) {
        char c = text[i], next = (i + 1 < len) ? text[i + 1] : '\0';

        switch (state) {
        case SPLIT_CODE:
            if (c == '-' && next == '-') {
                state = SPLIT_LINE_COMMENT;
                i++;
            }
            else if (c == '/' && next == '*') {
                state = SPLIT_BLOCK_COMMENT;
                open_line = line;
                buf[n++] = ' ';           /* keep tokens apart */
                i++;
            }
            else if (c == ';') {
                split_finish(p, out, buf, n, stmt_line);
                n = 0;
                stmt_line = 0;
            }
            else {
                if (c == '\'' || c == '"' || c == '`') {
                    state = SPLIT_QUOTE;
                    quote = c;
                    open_line = line;
                }
                SPLIT_PUT(c);
            }
            break;
        case SPLIT_QUOTE:
            SPLIT_PUT(c);
            if (backslash_escapes && c == '\\' && i + 1 < len) {
                if (next == '\n') {
                    line++;
                }
                SPLIT_PUT(next);
                i++;
            }
            else if (c == quote) {
                if (next == quote) {      /* '' inside '...' */
                    SPLIT_PUT(next);
                    i++;
                }
                else {
                    state = SPLIT_CODE;
                }
            }
            break;
        case SPLIT_LINE_COMMENT:
            if (c == '\n') {
                buf[n++] = '\n';
                state = SPLIT_CODE;
            }
            break;
        case SPLIT_BLOCK_COMMENT:
            if (c == '*' && next == '/') {
                state = SPLIT_CODE;
                i++;
            }
            break;
        }
        if (c == '\n') {
            line++;
        }
    }
#undef SPLIT_PUT

    if (state == SPLIT_QUOTE) {
        *errmsg = apr_psprintf(p, "unterminated %c...%c string starting at "
                               "line %d", quote, quote, open_line);
        return APR_EINVAL;
    }
    if (state == SPLIT_BLOCK_COMMENT) {
        *errmsg = apr_psprintf(p, "unterminated /* comment starting at "
                               "line %d", open_line);
        return APR_EINVAL;
    }
    split_finish(p, out, buf, n, stmt_line);
    *stmts = out;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* the migration directory                                                  */

static int file_cmp(const void *a, const void *b)
{
    const ospab_migrate_entry_t *x = *(ospab_migrate_entry_t *const *)a;
    const ospab_migrate_entry_t *y = *(ospab_migrate_entry_t *const *)b;

    return (x->version > y->version) - (x->version < y->version);
}

apr_status_t ospab_migrate_scan_dir(apr_pool_t *p, const char *dir,
                                    apr_array_header_t **files,
                                    const char **errmsg)
{
    apr_array_header_t *out = apr_array_make(p, 8, sizeof(migrate_file_t *));
    apr_dir_t *d = NULL;
    apr_finfo_t fi;
    apr_status_t rv;
    char errbuf[256];
    int i;

    *files = NULL;
    *errmsg = NULL;
    rv = apr_dir_open(&d, dir, p);
    if (rv != APR_SUCCESS) {
        d = NULL;
        *errmsg = apr_psprintf(p, "cannot open migration directory %s: %s",
                               dir, apr_strerror(rv, errbuf, sizeof(errbuf)));
        goto leave;
    }
    while ((rv = apr_dir_read(&fi, APR_FINFO_NAME, d)) == APR_SUCCESS
           || rv == APR_INCOMPLETE) {
        apr_size_t nlen = fi.name ? strlen(fi.name) : 0;
        migrate_file_t *mf;

        if (nlen < 4 || fi.name[0] == '.'
            || strcmp(fi.name + nlen - 4, ".sql") != 0) {
            continue;
        }
        mf = apr_pcalloc(p, sizeof(*mf));
        mf->e.name = apr_pstrdup(p, fi.name);
        mf->e.state = OSPAB_MIGRATE_PENDING;
        if (ospab_migrate_parse_name(mf->e.name, &mf->e.version)
            != APR_SUCCESS) {
            rv = APR_EINVAL;
            *errmsg = apr_psprintf(p, "%s/%s: migration files must be named "
                                   "NNN_name.sql (NNN = 001..999, name of "
                                   "letters, digits, '_' and '-')",
                                   dir, mf->e.name);
            goto leave;
        }
        mf->e.path = apr_pstrcat(p, dir, "/", mf->e.name, NULL);
        rv = read_file(p, mf->e.path, &mf->text, &mf->len, errmsg);
        if (rv != APR_SUCCESS) {
            goto leave;
        }
        rv = ospab_migrate_checksum(p, mf->text, mf->len, &mf->e.checksum);
        if (rv != APR_SUCCESS) {
            *errmsg = apr_psprintf(p, "%s: SHA-256 failed", mf->e.path);
            goto leave;
        }
        APR_ARRAY_PUSH(out, migrate_file_t *) = mf;
    }
    if (rv != APR_ENOENT) {
        *errmsg = apr_psprintf(p, "cannot read migration directory %s: %s",
                               dir, apr_strerror(rv, errbuf, sizeof(errbuf)));
        goto leave;
    }
    rv = APR_SUCCESS;
    qsort(out->elts, out->nelts, sizeof(migrate_file_t *), file_cmp);
    for (i = 1; i < out->nelts; i++) {
        const migrate_file_t *a = APR_ARRAY_IDX(out, i - 1, migrate_file_t *);
        const migrate_file_t *b = APR_ARRAY_IDX(out, i, migrate_file_t *);

        if (a->e.version == b->e.version) {
            rv = APR_EINVAL;
            *errmsg = apr_psprintf(p, "%s: %s and %s have the same version",
                                   dir, a->e.name, b->e.name);
            goto leave;
        }
    }
    *files = out;

leave:
    if (d) {
        apr_dir_close(d);
    }
    return rv;
}

/* ------------------------------------------------------------------------ */
/* database access                                                          */

static const char *db_error(migrate_ctx_t *c, int rc)
{
    const char *e = apr_dbd_error(c->drv, c->dbh, rc);

    if (e == NULL || *e == '\0') {
        return apr_psprintf(c->p, "database error %d", rc);
    }
    return apr_pstrdup(c->p, e);
}

static apr_status_t db_exec(migrate_ctx_t *c, const char *sql,
                            const char **dberr)
{
    int nrows = 0, rc;

    rc = apr_dbd_query(c->drv, c->dbh, &nrows, sql);
    if (rc != 0) {
        *dberr = db_error(c, rc);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* All rows of a select as arrays of ncols strings (NULL for SQL NULL).    */
static apr_status_t db_select(migrate_ctx_t *c, const char *sql, int ncols,
                              apr_array_header_t **rows, const char **dberr)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    apr_array_header_t *out;
    int rc, i;

    *rows = NULL;
    rc = apr_dbd_select(c->drv, c->p, c->dbh, &res, sql, 0);
    if (rc != 0) {
        *dberr = db_error(c, rc);
        return APR_EGENERAL;
    }
    out = apr_array_make(c->p, 8, sizeof(const char **));
    if (res == NULL) {           /* mysql: the statement had no result set */
        *rows = out;
        return APR_SUCCESS;
    }
    while ((rc = apr_dbd_get_row(c->drv, c->p, res, &row, -1)) == 0) {
        const char **vals = apr_pcalloc(c->p, ncols * sizeof(*vals));

        for (i = 0; i < ncols; i++) {
            const char *v = apr_dbd_get_entry(c->drv, row, i);

            vals[i] = v ? apr_pstrdup(c->p, v) : NULL;
        }
        APR_ARRAY_PUSH(out, const char **) = vals;
    }
    if (rc != -1) {
        *dberr = db_error(c, rc);
        return APR_EGENERAL;
    }
    *rows = out;
    return APR_SUCCESS;
}

static apr_status_t ctx_init(migrate_ctx_t *c, apr_pool_t *p,
                             const apr_dbd_driver_t *drv, apr_dbd_t *dbh,
                             const char **errmsg)
{
    const char *dname = drv ? apr_dbd_name(drv) : NULL;
    apr_array_header_t *rows;
    const char *dberr = NULL;
    apr_status_t rv;

    memset(c, 0, sizeof(*c));
    c->p = p;
    c->drv = drv;
    c->dbh = dbh;
    if (dname == NULL || dbh == NULL) {
        *errmsg = "no database connection";
        return APR_EINVAL;
    }
    if (strcmp(dname, "mysql") == 0) {
        c->mysql = 1;
    }
    else if (strcmp(dname, "sqlite3") != 0) {
        *errmsg = apr_psprintf(p, "unsupported database driver '%s' (use "
                               "mysql or sqlite3)", dname);
        return APR_EINVAL;
    }
    if (!c->mysql) {
        return APR_SUCCESS;
    }
    rv = db_exec(c, "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci", &dberr);
    if (rv == APR_SUCCESS) {
        rv = db_select(c, "SELECT DATABASE()", 1, &rows, &dberr);
    }
    if (rv != APR_SUCCESS) {
        *errmsg = apr_psprintf(p, "cannot set up the MySQL session: %s",
                               dberr);
        return rv;
    }
    if (rows->nelts != 1 || APR_ARRAY_IDX(rows, 0, const char **)[0] == NULL) {
        *errmsg = "no MySQL database selected: add dbname=... to the "
                  "connection parameters";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

/* MySQL: one ospab-admin at a time per database; SQLite serialises writers
 * itself (BEGIN IMMEDIATE).                                                */
static apr_status_t ctx_lock(migrate_ctx_t *c, const char **errmsg)
{
    apr_array_header_t *rows;
    const char *dberr = NULL, *got;
    apr_status_t rv;

    if (!c->mysql) {
        return APR_SUCCESS;
    }
    rv = db_select(c, "SELECT GET_LOCK(CONCAT('ospab_migrate.', DATABASE()), "
                   OSPAB_MIGRATE_LOCK_WAIT ")", 1, &rows, &dberr);
    if (rv != APR_SUCCESS) {
        *errmsg = apr_psprintf(c->p, "cannot take the migration lock: %s",
                               dberr);
        return rv;
    }
    got = rows->nelts == 1 ? APR_ARRAY_IDX(rows, 0, const char **)[0] : NULL;
    if (got == NULL || strcmp(got, "1") != 0) {
        *errmsg = "another ospab-admin has held the migration lock for "
                  OSPAB_MIGRATE_LOCK_WAIT " s; try again when it is done";
        return APR_EAGAIN;
    }
    c->locked = 1;
    return APR_SUCCESS;
}

static void ctx_unlock(migrate_ctx_t *c)
{
    apr_array_header_t *rows;
    const char *dberr = NULL;

    if (c->locked) {
        db_select(c, "SELECT RELEASE_LOCK(CONCAT('ospab_migrate.', "
                  "DATABASE()))", 1, &rows, &dberr);
        c->locked = 0;
    }
}

static apr_status_t table_exists(migrate_ctx_t *c, int *exists,
                                 const char **errmsg)
{
    apr_array_header_t *rows;
    const char *dberr = NULL;
    apr_status_t rv;

    *exists = 0;
    rv = db_select(c, c->mysql
                   ? "SELECT table_name FROM information_schema.tables"
                     " WHERE table_schema = DATABASE()"
                     " AND table_name = '" OSPAB_MIGRATE_TABLE "'"
                   : "SELECT name FROM sqlite_master WHERE type = 'table'"
                     " AND name = '" OSPAB_MIGRATE_TABLE "'",
                   1, &rows, &dberr);
    if (rv != APR_SUCCESS) {
        *errmsg = apr_psprintf(c->p, "cannot look for table "
                               OSPAB_MIGRATE_TABLE ": %s", dberr);
        return rv;
    }
    *exists = rows->nelts > 0;
    return APR_SUCCESS;
}

static apr_status_t ensure_table(migrate_ctx_t *c, const char **errmsg)
{
    const char *dberr = NULL;
    apr_status_t rv;

    rv = db_exec(c, c->mysql ? create_table_mysql : create_table_sqlite,
                 &dberr);
    if (rv != APR_SUCCESS) {
        *errmsg = apr_psprintf(c->p, "cannot create table "
                               OSPAB_MIGRATE_TABLE ": %s", dberr);
    }
    return rv;
}

/* A row of schema_migrations, as RECORD_COLS reads it. */
#define RECORD_COLS "version, name, checksum, state, applied_at"
typedef struct {
    int version;
    const char *name, *checksum, *state, *applied_at;
} record_t;

static void record_from_row(const char **r, record_t *rec)
{
    rec->version = r[0] ? atoi(r[0]) : 0;
    rec->name = r[1];
    rec->checksum = r[2];
    rec->state = r[3];
    rec->applied_at = r[4];
}

/* Rows of schema_migrations (RECORD_COLS).  */
static apr_status_t load_records(migrate_ctx_t *c, apr_array_header_t **rows,
                                 const char **errmsg)
{
    const char *dberr = NULL;
    apr_status_t rv;

    rv = db_select(c, "SELECT " RECORD_COLS
                   " FROM " OSPAB_MIGRATE_TABLE " ORDER BY version", 5,
                   rows, &dberr);
    if (rv != APR_SUCCESS) {
        *errmsg = apr_psprintf(c->p, "cannot read " OSPAB_MIGRATE_TABLE
                               ": %s", dberr);
    }
    return rv;
}

/* Files and records, merged by version; seeds (version < 0) go to *seeds. */
static void merge(apr_pool_t *p, apr_array_header_t *files,
                  apr_array_header_t *records, apr_array_header_t **entries,
                  apr_array_header_t **seeds)
{
    apr_array_header_t *out = apr_array_make(p, files->nelts + 4,
                                             sizeof(migrate_file_t *));
    apr_array_header_t *sd = apr_array_make(p, 2, sizeof(migrate_file_t *));
    int i, j;

    for (i = 0; i < files->nelts; i++) {
        APR_ARRAY_PUSH(out, migrate_file_t *) =
            APR_ARRAY_IDX(files, i, migrate_file_t *);
    }
    for (j = 0; j < records->nelts; j++) {
        record_t rec;
        int version;
        migrate_file_t *mf = NULL;

        record_from_row(APR_ARRAY_IDX(records, j, const char **), &rec);
        version = rec.version;

        for (i = 0; i < files->nelts; i++) {
            migrate_file_t *f = APR_ARRAY_IDX(files, i, migrate_file_t *);

            if (f->e.version == version) {
                mf = f;
                break;
            }
        }
        if (mf == NULL) {
            mf = apr_pcalloc(p, sizeof(*mf));
            mf->e.version = version;
            mf->e.name = rec.name;
            mf->e.state = OSPAB_MIGRATE_MISSING;
            APR_ARRAY_PUSH(version < 0 ? sd : out, migrate_file_t *) = mf;
        }
        mf->e.db_checksum = rec.checksum;
        mf->e.applied_at = rec.applied_at;
        if (rec.state == NULL || strcmp(rec.state, "applied") != 0) {
            mf->e.state = OSPAB_MIGRATE_APPLYING;
        }
        else if (version < 0) {
            mf->e.state = OSPAB_MIGRATE_APPLIED;
        }
        else if (mf->e.checksum != NULL) {
            mf->e.state = (rec.checksum && strcmp(rec.checksum, mf->e.checksum) == 0)
                          ? OSPAB_MIGRATE_APPLIED : OSPAB_MIGRATE_CHANGED;
        }
    }
    qsort(out->elts, out->nelts, sizeof(migrate_file_t *), file_cmp);
    *entries = out;
    *seeds = sd;
}

static void report_ev(ospab_migrate_report_fn *report, void *baton,
                      ospab_migrate_event_e ev,
                      const ospab_migrate_entry_t *e, const char *detail)
{
    if (report) {
        report(baton, ev, e, detail);
    }
}

/* Does the statement return rows?  apr_dbd_query() cannot run those: the
 * sqlite3 driver calls SQLITE_ROW a failure ("not an error"), and with
 * mysql the unread result set breaks the next query ("Commands out of
 * sync").  They go through apr_dbd_select() and the rows are dropped.     */
static int returns_rows(const char *sql)
{
    static const char *const words[] = { "SELECT", "PRAGMA", "WITH",
                                         "VALUES", "EXPLAIN", "SHOW",
                                         "DESCRIBE", "DESC", NULL };
    apr_size_t n;
    int i;

    while (apr_isspace(*sql) || *sql == '(') {
        sql++;
    }
    for (n = 0; apr_isalpha(sql[n]); n++) {
    }
    for (i = 0; words[i]; i++) {
        if (strlen(words[i]) == n && strncasecmp(sql, words[i], n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Runs stmts; on failure *failed is the index of the failing statement.  */
static apr_status_t run_statements(migrate_ctx_t *c, const char *fname,
                                   apr_array_header_t *stmts, int *failed,
                                   const char **errmsg)
{
    const char *dberr = NULL;
    apr_status_t rv = APR_SUCCESS;
    int i;

    *failed = -1;
    for (i = 0; i < stmts->nelts; i++) {
        const ospab_migrate_stmt_t *st =
            &APR_ARRAY_IDX(stmts, i, ospab_migrate_stmt_t);

        if (returns_rows(st->sql)) {
            apr_array_header_t *rows;

            rv = db_select(c, st->sql, 0, &rows, &dberr);
        }
        else {
            rv = db_exec(c, st->sql, &dberr);
        }
        if (rv != APR_SUCCESS) {
            *failed = i;
            *errmsg = apr_psprintf(c->p, "%s line %d: %s [in: %s]", fname,
                                   st->line, dberr, stmt_head(c->p, st->sql));
            break;
        }
    }
    return rv;
}

/* SQLite: nothing may be left dangling by the migration just run.          */
static apr_status_t sqlite_fk_check(migrate_ctx_t *c, const char *fname,
                                    const char **errmsg)
{
    apr_array_header_t *rows;
    const char *dberr = NULL;
    const char **r, *table, *rowid, *parent;
    apr_status_t rv;

    rv = db_select(c, "PRAGMA foreign_key_check", 4, &rows, &dberr);
    if (rv != APR_SUCCESS) {
        *errmsg = apr_psprintf(c->p, "%s: foreign key check failed: %s",
                               fname, dberr);
        return rv;
    }
    if (rows->nelts == 0) {
        return APR_SUCCESS;
    }
    /* PRAGMA foreign_key_check: table, rowid, parent, fkid */
    r = APR_ARRAY_IDX(rows, 0, const char **);
    table = r[0];
    rowid = r[1];
    parent = r[2];
    *errmsg = apr_psprintf(c->p, "%s leaves %d row(s) violating foreign keys, "
                           "e.g. %s rowid %s -> %s", fname, rows->nelts,
                           table ? table : "?", rowid ? rowid : "?",
                           parent ? parent : "?");
    return APR_EGENERAL;
}

static apr_status_t apply_one(migrate_ctx_t *c, migrate_file_t *mf,
                              ospab_migrate_report_fn *report, void *baton,
                              const char **errmsg)
{
    apr_pool_t *p = c->p;
    apr_dbd_transaction_t *txn = NULL;
    apr_array_header_t *stmts = NULL;
    const char *name = mf->e.name, *dberr = NULL, *spliterr = NULL;
    const char *ins, *upd, *del;
    int failed = -1, in_txn = 0, rc;
    apr_status_t rv;

    rv = ospab_migrate_split(p, mf->text, mf->len, c->mysql, &stmts,
                             &spliterr);
    if (rv != APR_SUCCESS) {
        *errmsg = apr_psprintf(p, "%s: %s; nothing was applied", name,
                               spliterr);
        goto leave;
    }
    if (stmts->nelts == 0) {
        rv = APR_EINVAL;
        *errmsg = apr_psprintf(p, "%s contains no SQL statements", name);
        goto leave;
    }
    ins = apr_psprintf(p, "INSERT INTO " OSPAB_MIGRATE_TABLE
                       " (version, name, checksum, state, applied_at)"
                       " VALUES (%d, '%s', '%s', 'applying', '%s')",
                       mf->e.version, apr_dbd_escape(c->drv, p, name, c->dbh),
                       mf->e.checksum, ospab_migrate_timestamp(p));
    del = apr_psprintf(p, "DELETE FROM " OSPAB_MIGRATE_TABLE
                       " WHERE version = %d", mf->e.version);
    report_ev(report, baton, OSPAB_MIGRATE_EV_APPLYING, &mf->e, NULL);

    if (!c->mysql) {
        /* DDL is transactional in SQLite: all of it, or none of it. */
        rc = apr_dbd_transaction_start(c->drv, p, c->dbh, &txn);
        in_txn = 1;
        if (rc != 0) {
            rv = APR_EGENERAL;
            *errmsg = apr_psprintf(p, "%s: cannot begin a transaction: %s",
                                   name, db_error(c, rc));
            goto leave;
        }
        rv = db_exec(c, ins, &dberr);
        if (rv != APR_SUCCESS) {
            *errmsg = apr_psprintf(p, "%s: cannot record it in "
                                   OSPAB_MIGRATE_TABLE ": %s", name, dberr);
            goto leave;
        }
        rv = run_statements(c, name, stmts, &failed, errmsg);
        if (rv != APR_SUCCESS) {
            *errmsg = apr_pstrcat(p, *errmsg, "; rolled back, nothing of it "
                                  "was applied", NULL);
            goto leave;
        }
        rv = sqlite_fk_check(c, name, errmsg);
        if (rv != APR_SUCCESS) {
            *errmsg = apr_pstrcat(p, *errmsg, "; rolled back", NULL);
            goto leave;
        }
    }
    else {
        /* Committed at once: if we die below, this row tells the next run. */
        rv = db_exec(c, ins, &dberr);
        if (rv != APR_SUCCESS) {
            *errmsg = apr_psprintf(p, "%s: cannot record it in "
                                   OSPAB_MIGRATE_TABLE " (is another "
                                   "ospab-admin running?): %s", name, dberr);
            goto leave;
        }
        rv = run_statements(c, name, stmts, &failed, errmsg);
        if (rv != APR_SUCCESS && failed == 0) {
            /* The first statement failed and a single statement is atomic:
             * nothing changed, so the file may simply be fixed and re-run. */
            if (db_exec(c, del, &dberr) == APR_SUCCESS) {
                *errmsg = apr_pstrcat(p, *errmsg, "; nothing of it was "
                                      "applied", NULL);
            }
            goto leave;
        }
        if (rv != APR_SUCCESS) {
            *errmsg = apr_psprintf(p, "%s; the %d statement(s) before it were "
                                   "applied and MySQL cannot roll back DDL: "
                                   "%s is left half-applied (state "
                                   "'applying'); repair the schema by hand, "
                                   "then run: %s", *errmsg, failed, name, del);
            rv = APR_EINCOMPLETE;
            goto leave;
        }
    }
    upd = apr_psprintf(p, "UPDATE " OSPAB_MIGRATE_TABLE " SET state = "
                       "'applied', applied_at = '%s' WHERE version = %d",
                       ospab_migrate_timestamp(p), mf->e.version);
    rv = db_exec(c, upd, &dberr);
    if (rv != APR_SUCCESS) {
        *errmsg = apr_psprintf(p, "%s ran, but marking it applied failed: %s",
                               name, dberr);
        goto leave;
    }

leave:
    if (in_txn) {
        /* commits, or rolls back if any call above failed */
        rc = apr_dbd_transaction_end(c->drv, p, txn);
        if (rc != 0 && rv == APR_SUCCESS) {
            rv = APR_EGENERAL;
            *errmsg = apr_psprintf(p, "%s: COMMIT failed: %s", name,
                                   db_error(c, rc));
        }
    }
    if (rv == APR_SUCCESS) {
        mf->e.state = OSPAB_MIGRATE_APPLIED;
        mf->e.db_checksum = mf->e.checksum;
        report_ev(report, baton, OSPAB_MIGRATE_EV_APPLIED, &mf->e,
                  apr_psprintf(p, "%d statement%s", stmts->nelts,
                               stmts->nelts == 1 ? "" : "s"));
    }
    return rv;
}

/* ------------------------------------------------------------------------ */
/* public entry points                                                      */

static apr_status_t scan_nonempty(apr_pool_t *p, const char *dir,
                                  apr_array_header_t **files,
                                  const char **errmsg)
{
    apr_status_t rv = ospab_migrate_scan_dir(p, dir, files, errmsg);

    if (rv == APR_SUCCESS && (*files)->nelts == 0) {
        *errmsg = apr_psprintf(p, "no migration files (NNN_name.sql) in %s",
                               dir);
        rv = APR_ENOENT;
    }
    return rv;
}

apr_status_t ospab_migrate_status(apr_pool_t *p, const apr_dbd_driver_t *drv,
                                  apr_dbd_t *dbh, const char *dir,
                                  apr_array_header_t **entries,
                                  const char **errmsg)
{
    migrate_ctx_t c;
    apr_array_header_t *files = NULL, *records, *seeds = NULL;
    int exists = 0, i;
    apr_status_t rv;

    *entries = NULL;
    *errmsg = NULL;
    rv = ctx_init(&c, p, drv, dbh, errmsg);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = scan_nonempty(p, dir, &files, errmsg);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = table_exists(&c, &exists, errmsg);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    records = apr_array_make(p, 1, sizeof(const char **));
    if (exists) {
        rv = load_records(&c, &records, errmsg);
        if (rv != APR_SUCCESS) {
            goto leave;
        }
    }
    merge(p, files, records, entries, &seeds);
    for (i = seeds->nelts - 1; i >= 0; i--) {   /* oldest seed first */
        APR_ARRAY_PUSH(*entries, migrate_file_t *) =
            APR_ARRAY_IDX(seeds, i, migrate_file_t *);
    }

leave:
    return rv;
}

/* SQLite: write-ahead logging, a property of the database file. Apache's children then
 * read while one of them writes, and COMMIT never waits for readers. mod_ospab relies on
 * it: apr_dbd_sqlite3 serialises every call of a process behind one mutex, so a commit
 * waiting for readers would hold all of them up. */
static apr_status_t sqlite_wal(migrate_ctx_t *c, const char **errmsg)
{
    apr_array_header_t *rows;
    const char *dberr = NULL;
    const char *mode;
    apr_status_t rv;

    if (c->mysql) {
        return APR_SUCCESS;
    }
    rv = db_select(c, "PRAGMA journal_mode = WAL", 1, &rows, &dberr);
    if (rv != APR_SUCCESS) {
        *errmsg = apr_psprintf(c->p, "cannot switch SQLite to WAL mode: %s", dberr);
        return rv;
    }
    mode = rows->nelts == 1 ? APR_ARRAY_IDX(rows, 0, const char **)[0] : NULL;
    if (!mode || (strcasecmp(mode, "wal") && strcasecmp(mode, "memory"))) {
        *errmsg = apr_psprintf(c->p, "SQLite refused WAL mode (journal_mode is %s)",
                               mode ? mode : "unknown");
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_status_t ospab_migrate_run(apr_pool_t *p, const apr_dbd_driver_t *drv,
                               apr_dbd_t *dbh, const char *dir, int dry_run,
                               ospab_migrate_report_fn *report, void *baton,
                               int *n_applied, const char **errmsg)
{
    migrate_ctx_t c;
    apr_array_header_t *files = NULL, *records, *entries = NULL, *seeds;
    int exists = 0, newest_applied = 0, count = 0, i;
    apr_status_t rv;

    *errmsg = NULL;
    if (n_applied) {
        *n_applied = 0;
    }
    rv = ctx_init(&c, p, drv, dbh, errmsg);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = scan_nonempty(p, dir, &files, errmsg);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    if (!dry_run) {
        rv = ctx_lock(&c, errmsg);
        if (rv != APR_SUCCESS) {
            goto leave;
        }
        rv = sqlite_wal(&c, errmsg);
        if (rv != APR_SUCCESS) {
            goto leave;
        }
    }
    rv = table_exists(&c, &exists, errmsg);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    if (!exists && !dry_run) {
        rv = ensure_table(&c, errmsg);
        if (rv != APR_SUCCESS) {
            goto leave;
        }
    }
    records = apr_array_make(p, 1, sizeof(const char **));
    if (exists) {
        rv = load_records(&c, &records, errmsg);
        if (rv != APR_SUCCESS) {
            goto leave;
        }
    }
    merge(p, files, records, &entries, &seeds);

    /* Check everything before changing anything. */
    for (i = 0; i < entries->nelts; i++) {
        migrate_file_t *mf = APR_ARRAY_IDX(entries, i, migrate_file_t *);

        switch (mf->e.state) {
        case OSPAB_MIGRATE_APPLYING:
            rv = APR_EINCOMPLETE;
            *errmsg = apr_psprintf(p, "migration %s was interrupted and is "
                                   "half-applied; repair the schema by hand, "
                                   "then delete its row from "
                                   OSPAB_MIGRATE_TABLE " (DELETE FROM "
                                   OSPAB_MIGRATE_TABLE " WHERE version = %d)",
                                   mf->e.name, mf->e.version);
            goto leave;
        case OSPAB_MIGRATE_CHANGED:
            rv = APR_EMISMATCH;
            *errmsg = apr_psprintf(p, "%s was edited after being applied "
                                   "(SHA-256 %.12s... recorded, file has "
                                   "%.12s...); restore the applied version "
                                   "and put changes in a new migration",
                                   mf->e.path, mf->e.db_checksum,
                                   mf->e.checksum);
            goto leave;
        case OSPAB_MIGRATE_APPLIED:
            newest_applied = mf->e.version;
            break;
        case OSPAB_MIGRATE_MISSING:
            newest_applied = mf->e.version;
            report_ev(report, baton, OSPAB_MIGRATE_EV_WARNING, &mf->e,
                      apr_psprintf(p, "version %d (%s) is recorded as applied "
                                   "but has no file in %s", mf->e.version,
                                   mf->e.name, dir));
            break;
        case OSPAB_MIGRATE_PENDING:
            break;
        }
    }
    for (i = 0; i < entries->nelts; i++) {
        migrate_file_t *mf = APR_ARRAY_IDX(entries, i, migrate_file_t *);

        if (mf->e.state == OSPAB_MIGRATE_PENDING
            && mf->e.version < newest_applied) {
            rv = APR_EINVAL;
            *errmsg = apr_psprintf(p, "%s is pending but the later version "
                                   "%03d is already applied; give it a "
                                   "number above %03d", mf->e.name,
                                   newest_applied, newest_applied);
            goto leave;
        }
    }

    for (i = 0; i < entries->nelts; i++) {
        migrate_file_t *mf = APR_ARRAY_IDX(entries, i, migrate_file_t *);

        if (mf->e.state != OSPAB_MIGRATE_PENDING) {
            continue;
        }
        if (dry_run) {
            report_ev(report, baton, OSPAB_MIGRATE_EV_WOULD_APPLY, &mf->e,
                      NULL);
            count++;
            continue;
        }
        rv = apply_one(&c, mf, report, baton, errmsg);
        if (rv != APR_SUCCESS) {
            goto leave;
        }
        count++;
    }

leave:
    ctx_unlock(&c);
    if (n_applied) {
        *n_applied = count;
    }
    return rv;
}

apr_status_t ospab_migrate_seed(apr_pool_t *p, const apr_dbd_driver_t *drv,
                                apr_dbd_t *dbh, const char *file,
                                ospab_migrate_report_fn *report, void *baton,
                                int *applied, const char **errmsg)
{
    migrate_ctx_t c;
    migrate_file_t *mf;
    apr_dbd_transaction_t *txn = NULL;
    apr_array_header_t *stmts = NULL, *rows;
    const char *dberr = NULL, *splittext = NULL, *ename, *sql;
    int in_txn = 0, failed = -1, version, rc;
    apr_status_t rv;

    *errmsg = NULL;
    if (applied) {
        *applied = 0;
    }
    mf = apr_pcalloc(p, sizeof(*mf));
    mf->e.path = file;
    mf->e.name = apr_pstrcat(p, OSPAB_MIGRATE_SEED_PREFIX, base_name(file),
                             NULL);
    mf->e.state = OSPAB_MIGRATE_PENDING;

    rv = ctx_init(&c, p, drv, dbh, errmsg);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = read_file(p, file, &mf->text, &mf->len, errmsg);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = ospab_migrate_checksum(p, mf->text, mf->len, &mf->e.checksum);
    if (rv != APR_SUCCESS) {
        *errmsg = apr_psprintf(p, "%s: SHA-256 failed", file);
        goto leave;
    }
    rv = ospab_migrate_split(p, mf->text, mf->len, c.mysql, &stmts,
                             &splittext);
    if (rv != APR_SUCCESS) {
        *errmsg = apr_psprintf(p, "%s: %s", file, splittext);
        goto leave;
    }
    if (stmts->nelts == 0) {
        rv = APR_EINVAL;
        *errmsg = apr_psprintf(p, "%s contains no SQL statements", file);
        goto leave;
    }
    if (!c.mysql) {
        /* the application runs with foreign keys on; so does its data.
         * (A no-op inside a transaction, so it comes first.)              */
        rv = db_exec(&c, "PRAGMA foreign_keys = ON", &dberr);
        if (rv != APR_SUCCESS) {
            *errmsg = apr_psprintf(p, "cannot enable foreign keys: %s", dberr);
            goto leave;
        }
    }
    rv = ctx_lock(&c, errmsg);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = ensure_table(&c, errmsg);
    if (rv != APR_SUCCESS) {
        goto leave;
    }

    ename = apr_dbd_escape(c.drv, p, mf->e.name, c.dbh);
    rc = apr_dbd_transaction_start(c.drv, p, c.dbh, &txn);
    in_txn = 1;
    if (rc != 0) {
        rv = APR_EGENERAL;
        *errmsg = apr_psprintf(p, "cannot begin a transaction: %s",
                               db_error(&c, rc));
        goto leave;
    }
    sql = apr_psprintf(p, "SELECT " RECORD_COLS " FROM "
                       OSPAB_MIGRATE_TABLE " WHERE name = '%s'", ename);
    rv = db_select(&c, sql, 5, &rows, &dberr);
    if (rv != APR_SUCCESS) {
        *errmsg = apr_psprintf(p, "cannot read " OSPAB_MIGRATE_TABLE ": %s",
                               dberr);
        goto leave;
    }
    if (rows->nelts > 0) {
        record_t rec;

        record_from_row(APR_ARRAY_IDX(rows, 0, const char **), &rec);
        mf->e.version = rec.version;
        mf->e.db_checksum = rec.checksum;
        mf->e.applied_at = rec.applied_at;
        mf->e.state = OSPAB_MIGRATE_APPLIED;
        report_ev(report, baton, OSPAB_MIGRATE_EV_SEED_SKIPPED, &mf->e,
                  (rec.checksum && strcmp(rec.checksum, mf->e.checksum) == 0)
                  ? "already applied"
                  : "already applied (the file has changed since; it is not "
                    "run again)");
        goto leave;
    }
    /* seeds are numbered -1, -2, ... in the order they were first run */
    rv = db_select(&c, "SELECT MIN(version) FROM " OSPAB_MIGRATE_TABLE, 1,
                   &rows, &dberr);
    if (rv != APR_SUCCESS) {
        *errmsg = apr_psprintf(p, "cannot read " OSPAB_MIGRATE_TABLE ": %s",
                               dberr);
        goto leave;
    }
    version = (rows->nelts > 0 && APR_ARRAY_IDX(rows, 0, const char **)[0])
              ? atoi(APR_ARRAY_IDX(rows, 0, const char **)[0]) : 0;
    mf->e.version = (version < 0 ? version : 0) - 1;

    report_ev(report, baton, OSPAB_MIGRATE_EV_APPLYING, &mf->e, NULL);
    rv = run_statements(&c, base_name(file), stmts, &failed, errmsg);
    if (rv != APR_SUCCESS) {
        *errmsg = apr_pstrcat(p, *errmsg, "; rolled back, nothing of the "
                              "seed was applied", NULL);
        goto leave;
    }
    mf->e.applied_at = ospab_migrate_timestamp(p);
    sql = apr_psprintf(p, "INSERT INTO " OSPAB_MIGRATE_TABLE
                       " (version, name, checksum, state, applied_at)"
                       " VALUES (%d, '%s', '%s', 'applied', '%s')",
                       mf->e.version, ename, mf->e.checksum,
                       mf->e.applied_at);
    rv = db_exec(&c, sql, &dberr);
    if (rv != APR_SUCCESS) {
        *errmsg = apr_psprintf(p, "cannot record the seed in "
                               OSPAB_MIGRATE_TABLE ": %s; rolled back", dberr);
        goto leave;
    }
    if (applied) {
        *applied = 1;
    }

leave:
    if (in_txn) {
        rc = apr_dbd_transaction_end(c.drv, p, txn);
        if (rc != 0 && rv == APR_SUCCESS) {
            rv = APR_EGENERAL;
            *errmsg = apr_psprintf(p, "%s: COMMIT failed: %s", file,
                                   db_error(&c, rc));
            if (applied) {
                *applied = 0;
            }
        }
    }
    ctx_unlock(&c);
    if (rv == APR_SUCCESS && applied && *applied) {
        mf->e.state = OSPAB_MIGRATE_APPLIED;
        mf->e.db_checksum = mf->e.checksum;
        report_ev(report, baton, OSPAB_MIGRATE_EV_APPLIED, &mf->e,
                  apr_psprintf(p, "%d statement%s", stmts->nelts,
                               stmts->nelts == 1 ? "" : "s"));
    }
    return rv;
}
