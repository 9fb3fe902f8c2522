/* ospab-admin: maintenance commands for the ospab panel database.
 *
 *   ospab-admin [--driver sqlite3|mysql] [--params "DBDParams string"]
 *               [--sql-dir DIR] COMMAND [ARGS]
 *
 * The connection is given exactly as to Apache (DBDriver / DBDParams), or by
 * OSPAB_DB_DRIVER / OSPAB_DB_PARAMS.  Exit status: 0 done, 1 usage error,
 * 2 the command failed.  The password in the parameters is never printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_file_info.h>
#include <apr_dbd.h>
#include <curl/curl.h>

#include "ospab_admin.h"
#include "ospab_migrate.h"
#include "ospab_db.h"
#include "ospab_json.h"
#include "ospab_jwt.h"
#include "ospab_sync.h"
#include "ospab_user.h"
#include "ospab_util.h"
#include "ospab_ippool.h"
#include "ospab_cluster.h"
#include "ospab_seal.h"
#include "ospab_server.h"
#include "ospab_placement.h"

#ifndef OSPAB_SQL_DIR
#define OSPAB_SQL_DIR "/usr/local/share/ospab-panel/sql"
#endif

#define EXIT_OK    0
#define EXIT_USAGE 1
#define EXIT_FAIL  2

typedef struct {
    apr_pool_t *pool;
    const char *driver;          /* "mysql" | "sqlite3" */
    const char *params;
    const char *sql_dir;         /* the parent of mysql/ and sqlite/ */
    int dry_run;
    const apr_dbd_driver_t *drv;
    apr_dbd_t *dbh;
    const char *name, *role, *jwt_key, *q;
    const char *user, *node, *status;    /* servers: the filters */
    const char *secret_key;             /* --secret-key / OSPAB_SECRET_KEY: file:/path */
    const char *reason;                 /* suspend: --reason */
    int password_stdin, ttl;
} admin_t;

typedef int admin_cmd_fn(admin_t *a, int argc, const char *const *argv);
/* One call of the admin API's core as a command makes it (core_command). */
typedef struct core_call_t core_call_t;
typedef void core_fn(core_call_t *c, ospab_result_t *res);

enum {
    ARG_ID = 1,                 /* the command's first argument is an ID */
    ARG_JSON = 2,               /* its (next) argument is the request body */
    BAD_BODY_USAGE = 4          /* a 400 is bad usage (exit 1): pool-add, as it always was */
};

typedef struct {
    const char *name;
    const char *args;            /* for the usage text */
    const char *help;
    int min_args, max_args;
    int needs_db;
    int creates_db;              /* may create a missing SQLite file */
    admin_cmd_fn *fn;            /* the command; NULL: one call of the admin API's core: */
    core_fn *core;               /* the call (core_command) */
    int core_flags;              /* its arguments: ARG_ID, ARG_JSON, BAD_BODY_USAGE */
    int core_want;               /* the status that is success: 200, 201 */
} admin_cmd_t;

static int cmd_migrate(admin_t *a, int argc, const char *const *argv);
static int cmd_status(admin_t *a, int argc, const char *const *argv);
static int cmd_seed(admin_t *a, int argc, const char *const *argv);
static int cmd_help(admin_t *a, int argc, const char *const *argv);
static int cmd_user_add(admin_t *a, int argc, const char *const *argv);
static int cmd_token(admin_t *a, int argc, const char *const *argv);
static int cmd_users(admin_t *a, int argc, const char *const *argv);
static int cmd_user(admin_t *a, int argc, const char *const *argv);
static int cmd_servers(admin_t *a, int argc, const char *const *argv);

static core_fn pool_add;
static core_fn pool_list;
static core_fn node_add;
static core_fn node_set;
static core_fn node_del;
static core_fn node_list;
static core_fn cluster_add;
static core_fn cluster_set;
static core_fn cluster_list;
static core_fn cluster_test;
static core_fn suspend_on;
static core_fn suspend_off;

static const admin_cmd_t commands[] = {
    { "migrate", "[--dry-run]",
      "apply the pending migrations of SQL-DIR/<dialect>, in order",
      0, 0, 1, 1, cmd_migrate, NULL, 0, 0 },
    { "status", "",
      "list migrations (applied / pending / applying / changed) and seeds",
      0, 0, 1, 0, cmd_status, NULL, 0, 0 },
    { "seed", "FILE",
      "run a seed SQL file once, in one transaction (FILE may be a name in "
      "SQL-DIR/seed)", 1, 1, 1, 1, cmd_seed, NULL, 0, 0 },
    { "user-add", "EMAIL",
      "create a panel user (--name, --role, --password-stdin); prints its id",
      1, 1, 1, 0, cmd_user_add, NULL, 0, 0 },
    { "token", "USER_ID",
      "print an access token for the user, signed with --jwt-key (HS256)",
      1, 1, 1, 0, cmd_token, NULL, 0, 0 },
    { "users", "list",
      "list the users (--q: e-mail or name contains it): id, e-mail, role, enabled, name",
      1, 1, 1, 0, cmd_users, NULL, 0, 0 },
    { "user", "disable|enable ID",
      "disable a user (every login ends) or enable it, audited as the admin API does",
      2, 2, 1, 0, cmd_user, NULL, 0, 0 },
    { "pool-add", "JSON",
      "make an IP pool: the body of POST /api/admin/ip-pools, e.g. '{\"name\":\"v4\","
      "\"bridge\":\"vmbr0\",\"first\":\"192.0.2.10\",\"last\":\"192.0.2.200\","
      "\"prefix\":24,\"gateway\":\"192.0.2.1\"}' (docs/operations.md); prints it",
      1, 1, 1, 0, NULL,
      pool_add, ARG_JSON | BAD_BODY_USAGE, 201 },
    { "pool-list", "", "the IP pools with their usage (size, used, cooling, free), as JSON",
      0, 0, 1, 0, NULL,
      pool_list, 0, 200 },
    { "node-add", "JSON",
      "register a Proxmox node for placement: the body of POST /api/admin/nodes, e.g. "
      "'{\"name\":\"pve2\",\"storage\":\"local-lvm\",\"mem_ratio\":120}' "
      "(docs/operations.md); prints it", 1, 1, 1, 0, NULL,
      node_add, ARG_JSON, 201 },
    { "node-set", "ID JSON",
      "change a node: the fields given, as PUT /api/admin/nodes/{id}; prints it",
      2, 2, 1, 0, NULL,
      node_set, ARG_ID | ARG_JSON, 200 },
    { "node-del", "ID",
      "remove a node's registration: new servers no longer go there (those on it stay)",
      1, 1, 1, 0, NULL,
      node_del, ARG_ID, 200 },
    { "node-list", "", "the nodes with their settings, the agent's last sample and what "
      "servers on each are given, as JSON", 0, 0, 1, 0, NULL,
      node_list, 0, 200 },
    { "servers", "[--user ID] [--node NAME] [--status S]",
      "the servers as GET /api/admin/servers shows them (the sync API's record), one JSON "
      "object a line, in id order", 0, 0, 1, 0, cmd_servers, NULL, 0, 0 },
    { "cluster-add", "JSON",
      "register a Proxmox cluster (--secret-key seals its token): the body of POST "
      "/api/admin/clusters, e.g. '{\"name\":\"fra\",\"url\":\"https://pve-fra:8006\","
      "\"token\":\"ospab@pve!panel=...\"}'; prints it without the secret",
      1, 1, 1, 0, NULL,
      cluster_add, ARG_JSON, 201 },
    { "cluster-set", "ID JSON",
      "change a cluster (a new token needs --secret-key), as PUT /api/admin/clusters/{id}",
      2, 2, 1, 0, NULL,
      cluster_set, ARG_ID | ARG_JSON, 200 },
    { "cluster-list", "", "the clusters (token ids, never secrets) and their node counts, "
      "as JSON", 0, 0, 1, 0, NULL,
      cluster_list, 0, 200 },
    { "cluster-test", "ID",
      "test connection: URL, CA, token and its privileges (--secret-key); exit 2 when a "
      "check fails", 1, 1, 1, 0, NULL,
      cluster_test, ARG_ID, 200 },
    { "suspend", "ID",
      "suspend a server as the admin API does (--reason): customers' operations answer 403, "
      "its guest is stopped through its cluster (--secret-key), else by the agent's next "
      "poll", 1, 1, 1, 0, NULL,
      suspend_on, ARG_ID, 200 },
    { "unsuspend", "ID", "end a suspension: the state before comes back (a running server's "
      "guest is started through its cluster, --secret-key)", 1, 1, 1, 0, NULL,
      suspend_off, ARG_ID, 200 },
    { "help", "", "show this text", 0, 0, 0, 0, cmd_help, NULL, 0, 0 },
    { NULL, NULL, NULL, 0, 0, 0, 0, NULL, NULL, 0, 0 }
};

enum { OPT_DRIVER = 256, OPT_PARAMS, OPT_SQL_DIR, OPT_DRY_RUN, OPT_HELP, OPT_NAME, OPT_ROLE,
       OPT_PASSWORD_STDIN, OPT_JWT_KEY, OPT_TTL, OPT_Q, OPT_USER, OPT_NODE, OPT_STATUS,
       OPT_SECRET_KEY, OPT_REASON };

static const apr_getopt_option_t options[] = {
    { "driver",  OPT_DRIVER,  1, "sqlite3 or mysql (env OSPAB_DB_DRIVER)" },
    { "params",  OPT_PARAMS,  1, "connection string as for DBDParams "
                                 "(env OSPAB_DB_PARAMS)" },
    { "sql-dir", OPT_SQL_DIR, 1, "directory holding mysql/, sqlite/, seed/" },
    { "dry-run", OPT_DRY_RUN, 0, "migrate: list what would be applied" },
    { "name",    OPT_NAME,    1, "user-add: the user's display name" },
    { "role",    OPT_ROLE,    1, "user-add: user (default) or admin" },
    { "password-stdin", OPT_PASSWORD_STDIN, 0, "user-add: read the password from the "
                                               "first line of standard input" },
    { "jwt-key", OPT_JWT_KEY, 1, "token: the HS256 secret, as for OspabJWTKey "
                                 "(file:/path or env:NAME)" },
    { "ttl",     OPT_TTL,     1, "token: lifetime in seconds (default 900)" },
    { "q",       OPT_Q,       1, "users list: only users whose e-mail or name contains it" },
    { "user",    OPT_USER,    1, "servers: only the servers of this user id" },
    { "node",    OPT_NODE,    1, "servers: only the servers on this Proxmox node" },
    { "status",  OPT_STATUS,  1, "servers: only those in this state (creating, running, "
                                 "stopped, suspended, deleting, error, missing)" },
    { "secret-key", OPT_SECRET_KEY, 1, "clusters, suspend: file:/path of the key sealing "
                                       "tokens, as OspabSecretKey (env OSPAB_SECRET_KEY)" },
    { "reason",  OPT_REASON,  1, "suspend: why, for the audit log" },
    { "help",    OPT_HELP,    0, "show this text" },
    { NULL, 0, 0, NULL }
};

/* One row of the help's tables: what to type, then what it does, in one column however
 * long the left side is (on a line of its own when it does not fit). */
static void help_row(FILE *out, const char *left1, const char *left2, const char *right)
{
    char left[128];
    int n = snprintf(left, sizeof(left), "%s%s%s", left1, *left2 ? " " : "", left2);

    if (n > 24) {
        fprintf(out, "  %s\n  %-24s %s\n", left, "", right);
    }
    else {
        fprintf(out, "  %-24s %s\n", left, right);
    }
}

static void usage(FILE *out)
{
    const admin_cmd_t *c;
    const apr_getopt_option_t *o;
    char name[64];

    fprintf(out, "usage: ospab-admin [OPTIONS] COMMAND [ARGS]\n\n"
                 "options:\n");
    for (o = options; o->name; o++) {
        snprintf(name, sizeof(name), "--%s", o->name);
        help_row(out, name, o->has_arg ? "ARG" : "", o->description);
    }
    fprintf(out, "\ncommands:\n");
    for (c = commands; c->name; c++) {
        help_row(out, c->name, c->args, c->help);
    }
    fprintf(out, "\nSQL-DIR defaults to %s (or, run from the build tree, the tree's "
                 "sql/); the dialect directory is "
                 "SQL-DIR/mysql or SQL-DIR/sqlite.\n"
                 "examples:\n"
                 "  ospab-admin --driver sqlite3 --params /var/lib/ospab/"
                 "ospab.db migrate\n"
                 "  OSPAB_DB_DRIVER=mysql OSPAB_DB_PARAMS='host=127.0.0.1 "
                 "user=ospab pass=... dbname=ospab' ospab-admin status\n"
                 "exit status: 0 done, 1 usage error, 2 failure\n",
            OSPAB_SQL_DIR);
}

/* The installed migrations, or, for a tool run from the build tree before `make install`
 * (admin/ospab-admin), the tree's own sql/ next to it. */
static const char *default_sql_dir(apr_pool_t *p)
{
    char exe[4096];
    ssize_t n;
    apr_finfo_t fi;
    const char *dir;

    if (apr_stat(&fi, OSPAB_SQL_DIR, APR_FINFO_TYPE, p) == APR_SUCCESS && fi.filetype == APR_DIR) {
        return OSPAB_SQL_DIR;
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        char *slash;

        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            dir = apr_pstrcat(p, exe, "/../sql", NULL);
            if (apr_stat(&fi, apr_pstrcat(p, dir, "/sqlite", NULL), APR_FINFO_TYPE, p)
                    == APR_SUCCESS && fi.filetype == APR_DIR) {
                return dir;
            }
        }
    }
    return OSPAB_SQL_DIR;
}

/* ------------------------------------------------------------------------ */
/* keeping the password out of every message                                */

/* apr_dbd_mysql takes any abbreviation of a key ("p=" is "pass="), ends a
 * value at any of these, and ignores case.                                */
#define PARAM_DELIMS " \r\n\t;|,"

static int is_password_key(const char *key, apr_size_t klen)
{
    static const char *const names[] = { "pass", "password", "passwd", "pwd",
                                         NULL };
    int i;

    if (klen == 0) {
        return 0;
    }
    if (klen <= 4 && strncasecmp(key, "pass", klen) == 0) {
        return 1;
    }
    for (i = 0; names[i]; i++) {
        if (strlen(names[i]) == klen && strncasecmp(key, names[i], klen) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The params with every password value replaced by "***"; also returns
 * the (last) password itself so messages can be scrubbed of it.           */
static const char *redact_params(apr_pool_t *p, const char *params,
                                 const char **password)
{
    const char *src = params ? params : "", *copied = src, *eq;
    const char *out = "";

    *password = NULL;
    for (eq = strchr(src, '='); eq; eq = strchr(eq + 1, '=')) {
        const char *kend = eq, *key, *val = eq + 1;
        apr_size_t vlen;

        while (kend > src && apr_isspace(kend[-1])) {    /* "pass = x" */
            kend--;
        }
        for (key = kend; key > src && apr_isalpha(key[-1]); key--) {
        }
        if (!is_password_key(key, (apr_size_t)(kend - key))) {
            continue;
        }
        while (apr_isspace(*val)) {
            val++;
        }
        vlen = strcspn(val, PARAM_DELIMS);
        if (vlen == 0) {
            continue;
        }
        *password = apr_pstrndup(p, val, vlen);
        out = apr_pstrcat(p, out,
                          apr_pstrndup(p, copied, (apr_size_t)(val - copied)),
                          "***", NULL);
        copied = val + vlen;
        eq = copied - 1;         /* an '=' inside the value is not a key */
    }
    return apr_pstrcat(p, out, copied, NULL);
}

static const char *scrub(apr_pool_t *p, const char *msg, const char *secret)
{
    const char *hit;
    apr_size_t slen;

    if (msg == NULL || secret == NULL || (slen = strlen(secret)) < 3) {
        return msg;
    }
    while ((hit = strstr(msg, secret)) != NULL) {
        msg = apr_pstrcat(p, apr_pstrndup(p, msg, (apr_size_t)(hit - msg)),
                          "***", hit + slen, NULL);
    }
    return msg;
}

static void fail_msg(admin_t *a, const char *msg)
{
    const char *pw = NULL;

    redact_params(a->pool, a->params, &pw);
    fprintf(stderr, "ospab-admin: error: %s\n", scrub(a->pool, msg, pw));
}

/* ------------------------------------------------------------------------ */
/* database                                                                 */

static int open_db(admin_t *a, const admin_cmd_t *cmd)
{
    const char *err = NULL, *pw = NULL, *shown;
    char errbuf[256];
    apr_finfo_t fi;
    apr_status_t rv;

    shown = redact_params(a->pool, a->params, &pw);
    rv = apr_dbd_init(a->pool);
    if (rv != APR_SUCCESS) {
        fail_msg(a, apr_psprintf(a->pool, "apr_dbd_init: %s",
                                 apr_strerror(rv, errbuf, sizeof(errbuf))));
        return EXIT_FAIL;
    }
    rv = apr_dbd_get_driver(a->pool, a->driver, &a->drv);
    if (rv == APR_EDSOOPEN) {
        fail_msg(a, apr_psprintf(a->pool, "cannot load the apr_dbd %s "
                                 "driver; install libaprutil1-dbd-%s",
                                 a->driver, a->driver));
        return EXIT_FAIL;
    }
    if (rv != APR_SUCCESS) {
        fail_msg(a, apr_psprintf(a->pool, "apr_dbd driver %s: %s", a->driver,
                                 apr_strerror(rv, errbuf, sizeof(errbuf))));
        return EXIT_FAIL;
    }
    if (strcmp(a->driver, "sqlite3") == 0 && !cmd->creates_db
        && apr_stat(&fi, a->params, APR_FINFO_TYPE, a->pool) != APR_SUCCESS) {
        fail_msg(a, apr_psprintf(a->pool, "SQLite database %s does not exist "
                                 "(run 'migrate' to create it)", a->params));
        return EXIT_FAIL;
    }
    rv = apr_dbd_open_ex(a->drv, a->pool, a->params, &a->dbh, &err);
    if (rv != APR_SUCCESS || a->dbh == NULL) {
        a->dbh = NULL;
        fail_msg(a, apr_psprintf(a->pool, "cannot open %s database (%s): %s",
                                 a->driver, shown,
                                 err ? err : "unknown error"));
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static const char *dialect_dir(admin_t *a)
{
    return apr_pstrcat(a->pool, a->sql_dir, "/",
                       strcmp(a->driver, "mysql") == 0 ? "mysql" : "sqlite",
                       NULL);
}

/* ------------------------------------------------------------------------ */
/* commands                                                                 */

static void print_event(void *baton, ospab_migrate_event_e ev,
                        const ospab_migrate_entry_t *e, const char *detail)
{
    (void)baton;
    switch (ev) {
    case OSPAB_MIGRATE_EV_APPLIED:
        printf("applied %s (%s)\n", e->name, detail ? detail : "");
        break;
    case OSPAB_MIGRATE_EV_WOULD_APPLY:
        printf("would apply %s\n", e->name);
        break;
    case OSPAB_MIGRATE_EV_SEED_SKIPPED:
        printf("skipped %s: %s\n", e->name, detail ? detail : "");
        break;
    case OSPAB_MIGRATE_EV_WARNING:
        fprintf(stderr, "ospab-admin: warning: %s\n", detail ? detail : "");
        break;
    case OSPAB_MIGRATE_EV_APPLYING:
        break;
    }
    fflush(stdout);
}

static int core_db(admin_t *a, ospab_db_t *db);

/* After SQL wrote accounts (a migration's first fill, a seed): the login keys as the
 * application computes them (Unicode, which SQL's LOWER() does not do alike everywhere). */
static int user_keys(admin_t *a)
{
    ospab_db_t db;
    int rc = core_db(a, &db), n = 0;

    if (rc != EXIT_OK) {
        return rc;
    }
    if (ospab_sync_user_keys(&db, a->pool, &n) != APR_SUCCESS) {
        fail_msg(a, db.error ? db.error : "cannot update the users' login keys");
        return EXIT_FAIL;
    }
    if (n > 0) {
        printf("login keys of %d user%s updated\n", n, n == 1 ? "" : "s");
    }
    return EXIT_OK;
}

static int cmd_migrate(admin_t *a, int argc, const char *const *argv)
{
    const char *dir = dialect_dir(a), *errmsg = NULL;
    int n = 0;
    apr_status_t rv;

    (void)argc;
    (void)argv;
    rv = ospab_migrate_run(a->pool, a->drv, a->dbh, dir, a->dry_run,
                           print_event, NULL, &n, &errmsg);
    if (rv != APR_SUCCESS) {
        fail_msg(a, errmsg ? errmsg : "migration failed");
        if (n > 0) {
            fprintf(stderr, "ospab-admin: %d migration%s applied before the "
                    "failure\n", n, n == 1 ? " was" : "s were");
        }
        return EXIT_FAIL;
    }
    if (n > 0 && !a->dry_run && user_keys(a) != EXIT_OK) {
        return EXIT_FAIL;
    }
    if (n == 0) {
        printf("nothing to apply: the database is up to date\n");
    }
    else if (a->dry_run) {
        printf("%d migration%s would be applied (dry run: nothing changed)\n",
               n, n == 1 ? "" : "s");
    }
    else {
        printf("%d migration%s applied; the database is up to date\n", n,
               n == 1 ? "" : "s");
    }
    return EXIT_OK;
}

static const char *state_name(ospab_migrate_state_e s)
{
    switch (s) {
    case OSPAB_MIGRATE_PENDING:  return "pending";
    case OSPAB_MIGRATE_APPLIED:  return "applied";
    case OSPAB_MIGRATE_APPLYING: return "applying";
    case OSPAB_MIGRATE_CHANGED:  return "changed";
    case OSPAB_MIGRATE_MISSING:  return "no-file";
    }
    return "?";
}

static int cmd_status(admin_t *a, int argc, const char *const *argv)
{
    apr_array_header_t *entries = NULL;
    const char *dir = dialect_dir(a), *errmsg = NULL;
    int i, counts[OSPAB_MIGRATE_MISSING + 1] = { 0 };
    apr_status_t rv;

    (void)argc;
    (void)argv;
    rv = ospab_migrate_status(a->pool, a->drv, a->dbh, dir, &entries,
                              &errmsg);
    if (rv != APR_SUCCESS) {
        fail_msg(a, errmsg ? errmsg : "cannot read the migration status");
        return EXIT_FAIL;
    }
    printf("%-7s %-8s %-23s %s\n", "VERSION", "STATE", "APPLIED AT", "NAME");
    for (i = 0; i < entries->nelts; i++) {
        const ospab_migrate_entry_t *e =
            APR_ARRAY_IDX(entries, i, const ospab_migrate_entry_t *);

        if (e->version > 0) {
            printf("%03d     ", e->version);
            counts[e->state]++;
        }
        else {
            printf("%-7s ", "seed");
        }
        printf("%-8s %-23s %s\n", state_name(e->state),
               e->applied_at ? e->applied_at : "-", e->name);
    }
    printf("%d applied, %d pending", counts[OSPAB_MIGRATE_APPLIED],
           counts[OSPAB_MIGRATE_PENDING]);
    if (counts[OSPAB_MIGRATE_APPLYING]) {
        printf(", %d interrupted (half-applied: repair by hand, then delete "
               "the row)", counts[OSPAB_MIGRATE_APPLYING]);
    }
    if (counts[OSPAB_MIGRATE_CHANGED]) {
        printf(", %d edited after being applied",
               counts[OSPAB_MIGRATE_CHANGED]);
    }
    if (counts[OSPAB_MIGRATE_MISSING]) {
        printf(", %d without a file", counts[OSPAB_MIGRATE_MISSING]);
    }
    printf("  [%s]\n", dir);
    return EXIT_OK;
}

static int cmd_seed(admin_t *a, int argc, const char *const *argv)
{
    const char *file = argv[0], *errmsg = NULL;
    apr_finfo_t fi;
    int applied = 0;
    apr_status_t rv;

    (void)argc;
    if (strchr(file, '/') == NULL
        && apr_stat(&fi, file, APR_FINFO_TYPE, a->pool) != APR_SUCCESS) {
        file = apr_pstrcat(a->pool, a->sql_dir, "/seed/", file, NULL);
    }
    rv = ospab_migrate_seed(a->pool, a->drv, a->dbh, file, print_event, NULL,
                            &applied, &errmsg);
    if (rv != APR_SUCCESS) {
        fail_msg(a, errmsg ? errmsg : "seed failed");
        return EXIT_FAIL;
    }
    return applied ? user_keys(a) : EXIT_OK;
}

/* The core's statements on this connection, for commands that reuse its operations. */
static int core_db(admin_t *a, ospab_db_t *db)
{
    ospab_db_init(db, a->drv, a->dbh, NULL);
    if (ospab_db_prepare_all(db, a->pool) != APR_SUCCESS) {
        fail_msg(a, apr_psprintf(a->pool, "%s (is the database migrated?)", db->error));
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static int cmd_user_add(admin_t *a, int argc, const char *const *argv)
{
    ospab_actor_t actor = { .type = "admin", .id = "ospab-admin", .now = apr_time_now() };
    json_t *req = ospab_json_own(a->pool, json_object());
    json_t *user = json_object();
    ospab_result_t res;
    ospab_db_t db;
    char line[1100];
    int rc;

    (void)argc;
    json_object_set_new(user, "email", json_string(argv[0]));
    if (a->name) {
        json_object_set_new(user, "name", json_string(a->name));
    }
    if (a->role) {
        json_object_set_new(user, "role", json_string(a->role));
    }
    if (a->password_stdin) {
        apr_size_t n;

        if (!fgets(line, sizeof(line), stdin)) {
            fail_msg(a, "--password-stdin: nothing on standard input");
            return EXIT_FAIL;
        }
        n = strcspn(line, "\r\n");
        line[n] = '\0';
        json_object_set_new(user, "password", json_string(line));
        memset(line, 0, sizeof(line));
    }
    json_object_set_new(req, "action", json_string("create"));
    json_object_set_new(req, "user", user);
    if ((rc = core_db(a, &db)) != EXIT_OK) {
        return rc;
    }
    ospab_sync_user(&db, a->pool, &actor, req, NULL, &res);
    if (res.status != 201) {
        fail_msg(a, json_string_value(json_object_get(res.body, "error")));
        return EXIT_FAIL;
    }
    printf("%" JSON_INTEGER_FORMAT "\n",
           json_integer_value(json_object_get(json_object_get(res.body, "user"), "id")));
    return EXIT_OK;
}

static int cmd_token(admin_t *a, int argc, const char *const *argv)
{
    ospab_jwt_conf_t jc;
    const char *key, *err, *token, *id = argv[0];
    const ospab_user_t *user;
    ospab_db_t db;
    apr_int64_t uid;
    int rc;

    (void)argc;
    if (!a->jwt_key) {
        fprintf(stderr, "ospab-admin: token needs --jwt-key (as OspabJWTKey)\n");
        return EXIT_USAGE;
    }
    if (ospab_parse_id(id, &uid) || uid < 1) {
        fprintf(stderr, "ospab-admin: USER_ID must be a positive integer\n");
        return EXIT_USAGE;
    }
    if (ospab_secret_resolve(a->pool, a->jwt_key, &key, &err) != APR_SUCCESS) {
        fail_msg(a, apr_psprintf(a->pool, "--jwt-key: %s", err));
        return EXIT_FAIL;
    }
    if ((err = ospab_jwt_check_key(a->pool, JWT_ALG_HS256, key, 0)) != NULL) {
        fail_msg(a, apr_psprintf(a->pool, "--jwt-key: %s", err));
        return EXIT_FAIL;
    }
    if ((rc = core_db(a, &db)) != EXIT_OK) {
        return rc;
    }
    if (ospab_user_load(&db, a->pool, id, &user) != APR_SUCCESS) {
        fail_msg(a, db.error);
        return EXIT_FAIL;
    }
    if (!user || !ospab_user_enabled(user->enabled)) {
        fail_msg(a, apr_psprintf(a->pool, "user %s does not exist or is disabled", id));
        return EXIT_FAIL;
    }
    memset(&jc, 0, sizeof(jc));
    jc.alg = JWT_ALG_HS256;
    jc.alg_name = "HS256";
    jc.sign_key = jc.verify_key = (const unsigned char *)key;
    jc.sign_key_len = jc.verify_key_len = (int)strlen(key);
    jc.access_ttl = a->ttl > 0 ? a->ttl : 900;
    /* no login session: such a token ends with its ttl or when the user is disabled */
    if (ospab_jwt_issue(a->pool, &jc, uid, user->role, NULL, apr_time_now(), &token)
        != APR_SUCCESS) {
        fail_msg(a, "could not sign the token");
        return EXIT_FAIL;
    }
    printf("%s\n", token);
    return EXIT_OK;
}

/* The admin API's operations (lib/ospab_admin.c) as the tool's actor. */
static ospab_actor_t cli_actor(void)
{
    ospab_actor_t actor = { .type = "admin", .id = "ospab-admin", .now = apr_time_now() };

    return actor;
}

static int admin_failed(admin_t *a, const ospab_result_t *res)
{
    const char *msg = json_string_value(json_object_get(res->body, "error")), *key;
    json_t *fields = json_object_get(res->body, "fields"), *why;

    fail_msg(a, res->log ? res->log : msg ? msg : "failed");
    /* the message names the first bad field and counts the others: a shell has no body to
     * read them in, so they follow, one a line */
    if (json_object_size(fields) > 1) {
        json_object_foreach(fields, key, why) {
            fprintf(stderr, "ospab-admin:   %s: %s\n", key,
                    json_is_string(why) ? json_string_value(why) : "invalid");
        }
    }
    return EXIT_FAIL;
}

/* A list route of lib/ospab_admin.c (they page by id: ?limit=&after=, "next"). */
typedef void admin_list_fn(ospab_db_t *db, apr_pool_t *p, apr_table_t *query,
                           ospab_result_t *res);

/* Every row of a list route, page after page as the route hands them out, each shown as
 * it comes: the whole list is never held at once (thousands of servers). filters: the
 * route's other parameters; key: the answer's array. */
static int list_all(admin_t *a, admin_list_fn *list, const apr_table_t *filters,
                    const char *key, void (*show)(json_t *row))
{
    char after[32] = "";
    apr_pool_t *page;
    ospab_result_t res;
    ospab_db_t db;
    int rc;

    if ((rc = core_db(a, &db)) != EXIT_OK) {
        return rc;
    }
    apr_pool_create(&page, a->pool);
    do {
        apr_table_t *query = apr_table_copy(page, filters);
        json_t *row, *next;
        size_t i;

        apr_table_setn(query, "limit", "200");
        if (*after) {
            apr_table_setn(query, "after", after);
        }
        list(&db, page, query, &res);
        if (res.status != 200) {
            rc = admin_failed(a, &res);
            break;
        }
        json_array_foreach(json_object_get(res.body, key), i, row) {
            show(row);
        }
        next = json_object_get(res.body, "next");
        if (json_is_integer(next)) {
            /* libc's: apr_snprintf knows no "ll", JSON_INTEGER_FORMAT's length */
            snprintf(after, sizeof(after), "%" JSON_INTEGER_FORMAT, json_integer_value(next));
        }
        else {
            *after = '\0';
        }
        apr_pool_clear(page);
    } while (*after);
    apr_pool_destroy(page);
    return rc;
}

static void show_user(json_t *u)
{
    printf("%" JSON_INTEGER_FORMAT "\t%s\t%s\t%s\t%s\n",
           json_integer_value(json_object_get(u, "id")),
           json_string_value(json_object_get(u, "email")),
           json_string_value(json_object_get(u, "role")),
           json_is_true(json_object_get(u, "enabled")) ? "enabled" : "disabled",
           json_string_value(json_object_get(u, "name")));
}

static int cmd_users(admin_t *a, int argc, const char *const *argv)
{
    apr_table_t *filters = apr_table_make(a->pool, 1);

    (void)argc;
    if (strcmp(argv[0], "list")) {
        fprintf(stderr, "usage: ospab-admin [--q TEXT] users list\n");
        return EXIT_USAGE;
    }
    if (a->q) {
        apr_table_setn(filters, "q", a->q);
    }
    return list_all(a, ospab_admin_users, filters, "users", show_user);
}

static int cmd_user(admin_t *a, int argc, const char *const *argv)
{
    ospab_actor_t actor = cli_actor();
    ospab_result_t res;
    ospab_db_t db;
    apr_pool_t *op;
    apr_int64_t id;
    int rc, enable = !strcmp(argv[0], "enable");

    (void)argc;
    if ((!enable && strcmp(argv[0], "disable")) || ospab_parse_id(argv[1], &id) || id < 1) {
        fprintf(stderr, "usage: ospab-admin user disable|enable ID\n");
        return EXIT_USAGE;
    }
    if ((rc = core_db(a, &db)) != EXIT_OK) {
        return rc;
    }
    /* the transaction's clean-up (apr_dbd's, on the pool it began in) runs before the
     * connection closes, as a request's does in Apache */
    apr_pool_create(&op, a->pool);
    ospab_admin_user_set_enabled(&db, op, &actor, apr_psprintf(op, "%" APR_INT64_T_FMT, id),
                                 enable, &res);
    rc = res.status == 200 ? EXIT_OK : admin_failed(a, &res);
    apr_pool_destroy(op);
    if (rc == EXIT_OK) {
        printf("user %s %s\n", argv[1], enable ? "enabled" : "disabled");
    }
    return rc;
}

/* The answer of a core operation on standard output, or its error. */
static int print_result(admin_t *a, const ospab_result_t *res, int want)
{
    char *text;

    if (res->status != want) {
        return admin_failed(a, res);
    }
    text = json_dumps(res->body, JSON_INDENT(2) | JSON_SORT_KEYS);
    printf("%s\n", text ? text : "{}");
    free(text);
    return EXIT_OK;
}

/* A command's JSON argument (a request body), owned by the command's pool; NULL after
 * saying what is wrong with it. */
static json_t *json_arg(admin_t *a, const char *text)
{
    json_error_t jerr;
    json_t *body = ospab_json_own(a->pool, json_loads(text, 0, &jerr));

    if (!body) {
        fprintf(stderr, "ospab-admin: JSON argument: %s (line %d, column %d)\n", jerr.text,
                jerr.line, jerr.column);
    }
    return body;
}

/* A command's ID argument, as the routes' {id}: a positive integer (normalised: "007" is
 * 7); NULL after saying it is not one. */
static const char *id_arg(admin_t *a, const char *text)
{
    apr_int64_t id;

    if (ospab_parse_id(text, &id) || id < 1) {
        fprintf(stderr, "ospab-admin: ID must be a positive integer, not '%s'\n", text);
        return NULL;
    }
    return apr_psprintf(a->pool, "%" APR_INT64_T_FMT, id);
}

/* One call of the admin API's core as a command makes it: what a route would hand it. */
struct core_call_t {
    ospab_db_t db;
    apr_pool_t *p;
    ospab_actor_t actor;
    const char *id;             /* the route's {id} */
    json_t *body;
    admin_t *a;
    const ospab_seal_key_t *key;    /* --secret-key, NULL when not given */
};


/* The commands that are one core call: their arguments read as flags say, then the call,
 * its answer printed as JSON when its status is want, else its message (exit 2). */
static int core_command(admin_t *a, const char *const *argv, int flags, core_fn *fn, int want)
{
    core_call_t c;
    ospab_result_t res;
    int rc;

    memset(&c, 0, sizeof(c));
    c.p = a->pool;
    c.a = a;
    c.actor = cli_actor();
    if (a->secret_key) {
        const char *why = NULL;

        if (ospab_seal_key_load(a->pool, a->secret_key, &c.key, &why) != APR_SUCCESS) {
            fail_msg(a, apr_pstrcat(a->pool, "--secret-key: ", why, NULL));
            return EXIT_USAGE;
        }
    }
    if (((flags & ARG_ID) && !(c.id = id_arg(a, *argv++)))
        || ((flags & ARG_JSON) && !(c.body = json_arg(a, *argv)))) {
        return EXIT_USAGE;
    }
    if ((rc = core_db(a, &c.db)) != EXIT_OK) {
        return rc;
    }
    fn(&c, &res);
    if (res.status == 400 && (flags & BAD_BODY_USAGE)) {
        fail_msg(a, json_string_value(json_object_get(res.body, "error")));
        return EXIT_USAGE;
    }
    return print_result(a, &res, want);
}

static void pool_add(core_call_t *c, ospab_result_t *res)
{
    ospab_ippool_add(&c->db, c->p, &c->actor, c->body, res);
}

static void pool_list(core_call_t *c, ospab_result_t *res)
{
    ospab_ippool_list(&c->db, c->p, c->actor.now, res);
}

static void node_add(core_call_t *c, ospab_result_t *res)
{
    ospab_node_create(&c->db, c->p, &c->actor, c->body, res);
}

static void node_set(core_call_t *c, ospab_result_t *res)
{
    ospab_node_update(&c->db, c->p, &c->actor, c->id, c->body, res);
}

static void node_del(core_call_t *c, ospab_result_t *res)
{
    ospab_node_delete(&c->db, c->p, &c->actor, c->id, res);
}

static void node_list(core_call_t *c, ospab_result_t *res)
{
    ospab_nodes_list(&c->db, c->p, NULL, res);
}

static void cluster_add(core_call_t *c, ospab_result_t *res)
{
    ospab_cluster_create(&c->db, c->p, c->key, &c->actor, c->body, res);
}

static void cluster_set(core_call_t *c, ospab_result_t *res)
{
    ospab_cluster_update(&c->db, c->p, c->key, &c->actor, c->id, c->body, res);
}

static void cluster_list(core_call_t *c, ospab_result_t *res)
{
    ospab_clusters_list(&c->db, c->p, NULL, res);
}

/* The settings of the tool's Proxmox clients (the module's defaults, OspabProxmoxTimeout). */
static void cli_pve_base(ospab_pve_conf_t *pc)
{
    memset(pc, 0, sizeof(*pc));
    pc->connect_timeout_ms = 3000;
    pc->timeout_ms = 10000;
    pc->max_response = 8 * 1024 * 1024;
    pc->max_handles = 2;
}

/* The connection test; a failed check is the command's failure (exit 2) with its message,
 * so that a script can test before it uses a cluster. */
static void cluster_test(core_call_t *c, ospab_result_t *res)
{
    ospab_pve_conf_t base;

    cli_pve_base(&base);
    ospab_cluster_test(&c->db, c->p, c->key, &base, &c->actor, c->id, res);
    if (res->status == 200 && !json_is_true(json_object_get(res->body, "ok"))) {
        printf("%s\n", ospab_json_dump(c->p, res->body));
        ospab_result_error(c->p, res, 502, json_string_value(json_object_get(res->body,
                                                                             "message")), NULL);
    }
}

/* Suspension as the admin API does it; the guest is reached through the clusters in the
 * database when the key opens their tokens (servers of the configuration's cluster alone:
 * the agent stops their guests on its next poll). */
static void suspension(core_call_t *c, ospab_result_t *res, int on)
{
    ospab_server_conf_t sc;
    ospab_pve_conf_t base;

    memset(&sc, 0, sizeof(sc));
    cli_pve_base(&base);
    if (c->key && ospab_clusters_create(c->p, c->key, &base, apr_time_from_sec(60),
                                        &sc.clusters) != APR_SUCCESS) {
        sc.clusters = NULL;
    }
    ospab_server_suspend(&c->db, c->p, &sc, &c->actor, c->id, on, c->a->reason, res);
}

static void suspend_on(core_call_t *c, ospab_result_t *res)
{
    suspension(c, res, 1);
}

static void suspend_off(core_call_t *c, ospab_result_t *res)
{
    suspension(c, res, 0);
}

/* One JSON object a line: a shell reads the list with `while read` or jq, and a long one
 * streams out page by page. */
static void show_json_line(json_t *row)
{
    char *text = json_dumps(row, JSON_COMPACT);

    printf("%s\n", text ? text : "null");
    free(text);
}

static int cmd_servers(admin_t *a, int argc, const char *const *argv)
{
    apr_table_t *filters = apr_table_make(a->pool, 3);

    (void)argc;
    (void)argv;
    /* checked by the route's own rules (a user id, a known state): a refusal is a 400 */
    if (a->user) {
        apr_table_setn(filters, "user", a->user);
    }
    if (a->node) {
        apr_table_setn(filters, "node", a->node);
    }
    if (a->status) {
        apr_table_setn(filters, "status", a->status);
    }
    return list_all(a, ospab_admin_servers, filters, "servers", show_json_line);
}

static int cmd_help(admin_t *a, int argc, const char *const *argv)
{
    (void)a;
    (void)argc;
    (void)argv;
    usage(stdout);
    return EXIT_OK;
}

/* ------------------------------------------------------------------------ */

static int run(apr_pool_t *pool, int argc, const char *const *argv)
{
    admin_t a;
    apr_getopt_t *opt;
    const admin_cmd_t *cmd;
    const char *optarg = NULL;
    int optch, nargs, rc;
    apr_status_t rv;

    memset(&a, 0, sizeof(a));
    a.pool = pool;
    a.driver = getenv("OSPAB_DB_DRIVER");
    a.params = getenv("OSPAB_DB_PARAMS");
    a.sql_dir = default_sql_dir(pool);
    a.secret_key = getenv("OSPAB_SECRET_KEY");

    apr_getopt_init(&opt, pool, argc, argv);
    opt->interleave = 1;
    while ((rv = apr_getopt_long(opt, options, &optch, &optarg))
           == APR_SUCCESS) {
        switch (optch) {
        case OPT_DRIVER:  a.driver = optarg;  break;
        case OPT_PARAMS:  a.params = optarg;  break;
        case OPT_SQL_DIR: a.sql_dir = optarg; break;
        case OPT_DRY_RUN: a.dry_run = 1;      break;
        case OPT_HELP:    usage(stdout);      return EXIT_OK;
        case OPT_NAME:    a.name = optarg;    break;
        case OPT_ROLE:    a.role = optarg;    break;
        case OPT_PASSWORD_STDIN: a.password_stdin = 1; break;
        case OPT_JWT_KEY: a.jwt_key = optarg; break;
        case OPT_TTL:     a.ttl = atoi(optarg); break;
        case OPT_Q:       a.q = optarg;       break;
        case OPT_USER:    a.user = optarg;    break;
        case OPT_NODE:    a.node = optarg;    break;
        case OPT_STATUS:  a.status = optarg;  break;
        case OPT_SECRET_KEY: a.secret_key = optarg; break;
        case OPT_REASON:  a.reason = optarg;  break;
        }
    }
    if (rv != APR_EOF) {
        fprintf(stderr, "try 'ospab-admin --help'\n");
        return EXIT_USAGE;
    }
    if (opt->ind >= opt->argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    for (cmd = commands; cmd->name; cmd++) {
        if (strcmp(cmd->name, opt->argv[opt->ind]) == 0) {
            break;
        }
    }
    if (cmd->name == NULL) {
        fprintf(stderr, "ospab-admin: unknown command '%s'; try "
                "'ospab-admin --help'\n", opt->argv[opt->ind]);
        return EXIT_USAGE;
    }
    nargs = opt->argc - opt->ind - 1;
    if (nargs < cmd->min_args || nargs > cmd->max_args) {
        fprintf(stderr, "usage: ospab-admin [OPTIONS] %s %s\n", cmd->name,
                cmd->args);
        return EXIT_USAGE;
    }
    if (a.dry_run && cmd->fn != cmd_migrate) {
        fprintf(stderr, "ospab-admin: --dry-run only applies to migrate\n");
        return EXIT_USAGE;
    }
    /* a filter another command would ignore: the operator meant something else */
    if ((a.user || a.node || a.status) && cmd->fn != cmd_servers) {
        fprintf(stderr, "ospab-admin: --user, --node and --status only apply to servers\n");
        return EXIT_USAGE;
    }
    if (cmd->needs_db) {
        if (a.driver == NULL || *a.driver == '\0'
            || a.params == NULL || *a.params == '\0') {
            fprintf(stderr, "ospab-admin: no database given: use --driver "
                    "and --params, or set OSPAB_DB_DRIVER and "
                    "OSPAB_DB_PARAMS\n");
            return EXIT_USAGE;
        }
        if (strcmp(a.driver, "mysql") != 0
            && strcmp(a.driver, "sqlite3") != 0) {
            fprintf(stderr, "ospab-admin: unsupported driver '%s' (use "
                    "sqlite3 or mysql)\n", a.driver);
            return EXIT_USAGE;
        }
        rc = open_db(&a, cmd);
        if (rc != EXIT_OK) {
            return rc;
        }
    }
    /* the command's pool goes before the connection: apr_dbd_mysql's transactions and
     * statements clean up on it, and need the connection still open */
    {
        apr_pool_t *outer = a.pool, *cmdpool;

        apr_pool_create(&cmdpool, outer);
        a.pool = cmdpool;
        rc = cmd->fn ? cmd->fn(&a, nargs, opt->argv + opt->ind + 1)
                     : core_command(&a, opt->argv + opt->ind + 1, cmd->core_flags, cmd->core,
                                    cmd->core_want);
        apr_pool_destroy(cmdpool);
        a.pool = outer;
    }
    if (a.dbh) {
        apr_dbd_close(a.drv, a.dbh);
    }
    return rc;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *pool = NULL;
    int rc;

    if (apr_app_initialize(&argc, &argv, NULL) != APR_SUCCESS) {
        fprintf(stderr, "ospab-admin: cannot initialise APR\n");
        return EXIT_FAIL;
    }
    if (apr_pool_create(&pool, NULL) != APR_SUCCESS) {
        fprintf(stderr, "ospab-admin: out of memory\n");
        apr_terminate();
        return EXIT_FAIL;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);     /* cluster-test, suspend: Proxmox clients */
    rc = run(pool, argc, argv);
    fflush(stdout);
    apr_pool_destroy(pool);
    curl_global_cleanup();
    apr_terminate();
    return rc;
}
