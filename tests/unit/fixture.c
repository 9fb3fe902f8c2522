/* The in-process fixture of the core's unit tests (fixture.h). */
#include <stdio.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_dbd.h>
#include <check.h>

#include "fixture.h"
#include "ospab_migrate.h"
#include "ospab_json.h"
#include "ospab_sync.h"

#ifndef OSPAB_TEST_SQL_DIR
#error "OSPAB_TEST_SQL_DIR names the source tree's sql/ (Makefile.am)"
#endif

/* 2026-01-02 03:04:05 UTC: a fixed start, so that stored times are predictable */
#define FX_EPOCH APR_INT64_C(1767323045)

typedef struct {
    const char *vmid;
    const char *type;               /* vzstart, vzstop, vzshutdown, vzreboot, vzdestroy */
    const char *exitstatus;         /* NULL while it runs */
} fx_task_t;

/* ---- the stub node ---------------------------------------------------------------------- */

static void answer(apr_pool_t *p, ospab_pve_result_t *res, json_t *data)
{
    res->outcome = OSPAB_PVE_OK;
    res->http_status = 200;
    res->data = ospab_json_own(p, data ? data : json_null());
}

static apr_status_t refuse(apr_pool_t *p, ospab_pve_result_t *res, int status,
                           const char *message)
{
    res->outcome = OSPAB_PVE_HTTP_ERROR;
    res->http_status = status;
    res->message = apr_pstrdup(p, message);
    return APR_EGENERAL;
}

static apr_status_t start_task(fx_t *fx, apr_pool_t *p, const char *vmid, const char *type,
                               ospab_pve_result_t *res)
{
    fx_task_t *t = apr_pcalloc(fx->pool, sizeof(*t));
    const char *upid = apr_psprintf(fx->pool, "UPID:" FX_NODE ":%08X:%08X:%08X:%s:%s:"
                                    "root@pam!ospab:", 0x1000 + fx->next_pid,
                                    0x2000 + fx->next_pid, (unsigned)FX_EPOCH, type, vmid);

    fx->next_pid++;
    t->vmid = apr_pstrdup(fx->pool, vmid);
    t->type = type;
    apr_hash_set(fx->tasks, upid, APR_HASH_KEY_STRING, t);
    answer(p, res, json_string(upid));
    return APR_SUCCESS;
}

/* The part of the Proxmox API the tests reach, as pve-api's schema has it. */
static apr_status_t stub(void *baton, apr_pool_t *p, const char *method, const char *path,
                         const ospab_pve_param_t *params, ospab_pve_result_t *res)
{
    fx_t *fx = baton;
    char node[32] = "", kind[8] = "", vmid[16] = "", a[32] = "", b[32] = "";
    char upid[160] = "";
    const char *guest;
    int n;

    fx->calls++;
    fx->last_method = apr_pstrdup(fx->pool, method);
    fx->last_path = apr_pstrdup(fx->pool, path);
    if (fx->unreachable) {
        res->outcome = OSPAB_PVE_UNREACHABLE;
        res->message = "Failed to connect to the stub";
        return APR_EGENERAL;
    }
    if (fx->fail_status) {
        int status = fx->fail_status;

        fx->fail_status = 0;
        return refuse(p, res, status, fx->fail_message ? fx->fail_message : "failed");
    }
    if (sscanf(path, "/nodes/%31[^/]/tasks/%159[^/]/%31s", node, upid, a) == 3
        && !strcmp(a, "status")) {
        /* the UPID is URL-encoded in the path: ':' as %3A */
        char *u = apr_pstrdup(p, upid), *w = u;
        fx_task_t *t;

        for (n = 0; u[n]; ++n) {
            if (u[n] == '%' && u[n + 1] && u[n + 2]) {
                *w++ = (char)strtol(apr_pstrndup(p, u + n + 1, 2), NULL, 16);
                n += 2;
            }
            else {
                *w++ = u[n];
            }
        }
        *w = '\0';
        if ((t = apr_hash_get(fx->tasks, u, APR_HASH_KEY_STRING)) == NULL) {
            return refuse(p, res, 500, "no such task");
        }
        answer(p, res, t->exitstatus
               ? json_pack("{s:s, s:s}", "status", "stopped", "exitstatus", t->exitstatus)
               : json_pack("{s:s}", "status", "running"));
        return APR_SUCCESS;
    }
    n = sscanf(path, "/nodes/%31[^/]/%7[^/]/%15[^/]/%31[^/]/%31s", node, kind, vmid, a, b);
    if (n < 3 || strcmp(node, FX_NODE) || (strcmp(kind, "lxc") && strcmp(kind, "qemu"))) {
        return refuse(p, res, 501, apr_psprintf(p, "Method '%s %s' not implemented", method,
                                                path));
    }
    if ((guest = apr_hash_get(fx->guests, vmid, APR_HASH_KEY_STRING)) == NULL) {
        return refuse(p, res, 500, apr_psprintf(p, "Configuration file 'nodes/%s/%s/%s.conf' "
                                                "does not exist", node, kind, vmid));
    }
    if (n == 3 && !strcmp(method, "DELETE")) {
        return start_task(fx, p, vmid, "vzdestroy", res);
    }
    if (n == 5 && !strcmp(a, "status") && !strcmp(method, "POST")) {
        if (!strcmp(b, "start") && !strcmp(guest, "running")) {
            return refuse(p, res, 500, apr_psprintf(p, "CT %s already running", vmid));
        }
        if (!strcmp(b, "start") || !strcmp(b, "stop") || !strcmp(b, "shutdown")
            || !strcmp(b, "reboot")) {
            return start_task(fx, p, vmid, apr_pstrcat(fx->pool, "vz", b, NULL), res);
        }
    }
    if (n == 5 && !strcmp(a, "status") && !strcmp(b, "current") && !strcmp(method, "GET")) {
        answer(p, res, json_pack("{s:s, s:i, s:f, s:i, s:i}", "status", guest,
                                 "vmid", atoi(vmid), "cpu", 0.25, "mem", 256 << 20,
                                 "maxmem", 1024 << 20));
        return APR_SUCCESS;
    }
    if (n == 4 && !strcmp(a, "interfaces") && !strcmp(method, "GET")) {
        answer(p, res, json_pack("[{s:s, s:s}, {s:s, s:s}]", "name", "lo", "inet",
                                 "127.0.0.1/8", "name", "eth0", "inet",
                                 apr_psprintf(p, "10.0.0.%d/24", atoi(vmid) % 250)));
        return APR_SUCCESS;
    }
    return refuse(p, res, 501, apr_psprintf(p, "Method '%s %s' not implemented", method, path));
}

int fx_finish_tasks(fx_t *fx, const char *exitstatus)
{
    apr_hash_index_t *hi;
    int n = 0;

    for (hi = apr_hash_first(fx->pool, fx->tasks); hi; hi = apr_hash_next(hi)) {
        fx_task_t *t = apr_hash_this_val(hi);

        if (t->exitstatus) {
            continue;
        }
        t->exitstatus = apr_pstrdup(fx->pool, exitstatus);
        n++;
        if (strcmp(exitstatus, "OK")) {
            continue;
        }
        if (!strcmp(t->type, "vzdestroy")) {
            apr_hash_set(fx->guests, t->vmid, APR_HASH_KEY_STRING, NULL);
        }
        else {
            apr_hash_set(fx->guests, t->vmid, APR_HASH_KEY_STRING,
                         !strcmp(t->type, "vzstart") || !strcmp(t->type, "vzreboot")
                         ? "running" : "stopped");
        }
    }
    return n;
}

const char *fx_guest(fx_t *fx, const char *vmid)
{
    return apr_hash_get(fx->guests, vmid, APR_HASH_KEY_STRING);
}

/* ---- the database ------------------------------------------------------------------------ */

fx_t *fx_open(void)
{
    fx_t *fx;
    apr_pool_t *p;
    const apr_dbd_driver_t *drv = NULL;
    apr_dbd_t *handle = NULL;
    const char *err = NULL;
    int applied = 0;

    ck_assert_int_eq(apr_pool_create(&p, NULL), APR_SUCCESS);
    fx = apr_pcalloc(p, sizeof(*fx));
    fx->pool = p;
    ck_assert_int_eq(apr_dbd_init(p), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_get_driver(p, "sqlite3", &drv), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_open(drv, p, ":memory:", &handle), APR_SUCCESS);
    ospab_db_init(&fx->db, drv, handle, NULL);
    if (ospab_migrate_run(p, drv, handle, OSPAB_TEST_SQL_DIR "/sqlite", 0, NULL, NULL,
                          &applied, &err) != APR_SUCCESS) {
        ck_abort_msg("migrations: %s", err ? err : "failed");
    }
    ck_assert_int_gt(applied, 0);
    /* as the agent and Apache's connections have it; before preparing, since apr_dbd's
     * legacy sqlite3_prepare() statements fail after a change of the schema cookie */
    fx_exec(fx, "PRAGMA foreign_keys = ON");
    ospab_db_tune(&fx->db);
    if (ospab_db_prepare_all(&fx->db, p) != APR_SUCCESS) {
        ck_abort_msg("%s", fx->db.error);
    }
    fx->actor.type = "sync";
    fx->actor.remote_addr = "127.0.0.1";
    fx->actor.now = apr_time_from_sec(FX_EPOCH);
    fx->guests = apr_hash_make(p);
    fx->tasks = apr_hash_make(p);
    ck_assert_int_eq(ospab_pve_create_stub(p, 10000, stub, fx, &fx->server.pve), APR_SUCCESS);
    fx->server.url = "https://stub.invalid:8006";
    fx->server.node = FX_NODE;
    fx->server.storage = "local-lvm";
    fx->server.bridge = "vmbr0";
    fx->server.self_service = 1;
    fx->server.server_quota = 0;
    fx->server.resize = OSPAB_RESIZE_FREE;
    return fx;
}

void fx_close(fx_t *fx)
{
    apr_dbd_close(fx->db.driver, fx->db.handle);
    apr_pool_destroy(fx->pool);
}

void fx_exec(fx_t *fx, const char *sql)
{
    int n = 0, rc = apr_dbd_query(fx->db.driver, fx->db.handle, &n, sql);

    if (rc) {
        ck_abort_msg("%s: %s", sql, apr_dbd_error(fx->db.driver, fx->db.handle, rc));
    }
}

const char *fx_scalar(fx_t *fx, const char *sql)
{
    apr_dbd_results_t *r = NULL;
    apr_dbd_row_t *row = NULL;
    const char *v = NULL;
    int rc = apr_dbd_select(fx->db.driver, fx->pool, fx->db.handle, &r, sql, 0);

    if (rc) {
        ck_abort_msg("%s: %s", sql, apr_dbd_error(fx->db.driver, fx->db.handle, rc));
    }
    if (apr_dbd_get_row(fx->db.driver, fx->pool, r, &row, -1) == 0) {
        v = apr_dbd_get_entry(fx->db.driver, row, 0);
        v = v ? apr_pstrdup(fx->pool, v) : NULL;
        while (apr_dbd_get_row(fx->db.driver, fx->pool, r, &row, -1) == 0) {
        }
    }
    return v;
}

int fx_count(fx_t *fx, const char *sql)
{
    const char *v = fx_scalar(fx, sql);

    return v ? atoi(v) : -1;
}

const char *fx_body(fx_t *fx, const ospab_result_t *res)
{
    char *s;
    const char *copy;

    if (res->text) {
        return res->text;
    }
    if (!res->body) {
        return "";
    }
    s = json_dumps(res->body, JSON_COMPACT | JSON_SORT_KEYS);
    copy = apr_pstrdup(fx->pool, s ? s : "");
    free(s);
    return copy;
}

const char *fx_user(fx_t *fx, const char *email, const char *role)
{
    json_t *req = json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "action", "create", "user",
                            "email", email, "name", "Test User", "role", role, "password",
                            "correct horse");
    ospab_result_t res = { 0 };
    json_t *id;

    ospab_sync_user(&fx->db, fx->pool, &fx->actor, req, NULL, &res);
    json_decref(req);
    ck_assert_msg(res.status == 201, "user sync: %d %s (%s)", res.status, fx_body(fx, &res),
                  res.log ? res.log : "");
    id = json_object_get(json_object_get(res.body, "user"), "id");
    ck_assert(json_is_integer(id));
    return apr_psprintf(fx->pool, "%" APR_INT64_T_FMT, (apr_int64_t)json_integer_value(id));
}

const char *fx_server(fx_t *fx, const char *user_id, const char *vmid, const char *status)
{
    fx_exec(fx, apr_psprintf(fx->pool,
            "INSERT INTO vps (name, status, cpu, ram, disk, os, user_id, hypervisor, node, "
            "vmid, kind, created_at, updated_at) VALUES ('ct%s', '%s', 1, 1024, 10, "
            "'Debian 12', %s, 'proxmox', '" FX_NODE "', %s, 'lxc', "
            "'2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000')",
            vmid, status, user_id, vmid));
    apr_hash_set(fx->guests, apr_pstrdup(fx->pool, vmid), APR_HASH_KEY_STRING,
                 apr_pstrdup(fx->pool, status));
    return fx_scalar(fx, apr_psprintf(fx->pool, "SELECT id FROM vps WHERE vmid = %s", vmid));
}
