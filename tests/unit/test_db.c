/* Unit tests: the statement sets (lib/ospab_sql.c, lib/ospab_sql_agent.c). Every statement
 * prepares on a database migrated by the real migrations (the fixture), labels are unique
 * across the sets, and the module's set leaves the agent's own out. */
#include <stdlib.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <sqlite3.h>

#include "tests.h"
#include "fixture.h"
#include "ospab_migrate.h"

START_TEST(labels_are_unique_literals_across_the_sets)
{
    apr_pool_t *p;
    apr_hash_t *seen;
    unsigned set;
    int n[OSPAB_SQL_LAST + 1] = { 0 };

    apr_pool_create(&p, NULL);
    seen = apr_hash_make(p);
    for (set = OSPAB_SQL_API; set <= OSPAB_SQL_LAST; set <<= 1) {
        const ospab_sql_t *s;

        for (s = ospab_sql_set(set); s->label; ++s) {
            ck_assert_msg(!apr_hash_get(seen, s->label, APR_HASH_KEY_STRING),
                          "%s is in two places", s->label);
            ck_assert_msg(!strncmp(s->label, "ospab_", 6), "%s", s->label);
            ck_assert_ptr_nonnull(s->sql);
            apr_hash_set(seen, s->label, APR_HASH_KEY_STRING, s);
            n[set]++;
        }
    }
    ck_assert_ptr_null(ospab_sql_set(0));
    ck_assert_ptr_null(ospab_sql_set(OSPAB_SQL_API | OSPAB_SQL_AGENT));
    /* the agent's rounds are not Apache's: its mailer, its monitor, its leases */
    ck_assert_int_gt(n[OSPAB_SQL_AGENT], 30);
    {
        static const char *const agent_only[] = { "ospab_mail_claim", "ospab_metrics_put",
                                                  "ospab_lease_renew", "ospab_webhook_due" };
        const ospab_sql_t *s;
        int i;

        for (i = 0; i < 4; ++i) {
            for (s = ospab_sql_api; s->label; ++s) {
                ck_assert_str_ne(s->label, agent_only[i]);
            }
        }
    }
    apr_pool_destroy(p);
}
END_TEST

START_TEST(every_statement_prepares_on_the_migrated_schema)
{
    fx_t *fx = fx_open();      /* ospab_db_prepare_all of both sets, or it fails */

    ck_assert_int_eq(fx->db.sets, OSPAB_SQL_ALL);
    ck_assert_ptr_nonnull(apr_hash_get(fx->db.prepared, "ospab_admin_audit",
                                       APR_HASH_KEY_STRING));
    ck_assert_ptr_nonnull(apr_hash_get(fx->db.prepared, "ospab_vps_get", APR_HASH_KEY_STRING));
    ck_assert_ptr_nonnull(apr_hash_get(fx->db.prepared, "ospab_lease_get",
                                       APR_HASH_KEY_STRING));
    fx_close(fx);
}
END_TEST

START_TEST(a_write_conflict_runs_again_only_when_nothing_left_the_database)
{
    ospab_db_t db;
    int attempt = 0, n;

    memset(&db, 0, sizeof(db));
    db.dialect = OSPAB_DB_MYSQL;
    ck_assert_int_eq(ospab_db_conflict_retry(&db, 503, 0, &attempt), 0);   /* no conflict */
    db.conflict = 1;
    ck_assert_int_eq(ospab_db_conflict_retry(&db, 409, 0, &attempt), 0);   /* answered */
    ck_assert_int_eq(ospab_db_conflict_retry(&db, 503, 1, &attempt), 0);   /* Proxmox called */
    ck_assert_int_eq(attempt, 0);
    for (n = 1; n < OSPAB_DB_CONFLICT_TRIES; ++n) {
        db.conflict = 1;
        ck_assert_int_eq(ospab_db_conflict_retry(&db, 503, 0, &attempt), 1);
        ck_assert_int_eq(db.conflict, 0);
        ck_assert_int_eq(attempt, n);
    }
    db.conflict = 1;
    ck_assert_int_eq(ospab_db_conflict_retry(&db, 503, 0, &attempt), 0);   /* tries used up */
}
END_TEST

/* The agent's transactions are not API operations: no status, no effects, the same tries;
 * a conflict left from an earlier transaction is not the next one's. */
START_TEST(an_agent_transaction_runs_again_after_its_own_write_conflict)
{
    fx_t *fx = fx_open();
    int attempt = 0, n;

    ck_assert_int_eq(ospab_db_conflict_again(&fx->db, &attempt), 0);        /* no conflict */
    for (n = 1; n < OSPAB_DB_CONFLICT_TRIES; ++n) {
        fx->db.conflict = 1;
        ck_assert_int_eq(ospab_db_conflict_again(&fx->db, &attempt), 1);
        ck_assert_int_eq(fx->db.conflict, 0);
        ck_assert_int_eq(attempt, n);
    }
    fx->db.conflict = 1;
    ck_assert_int_eq(ospab_db_conflict_again(&fx->db, &attempt), 0);        /* tries used up */
    ck_assert_int_eq(ospab_db_begin(&fx->db, fx->pool), APR_SUCCESS);
    ck_assert_int_eq(fx->db.conflict, 0);
    ck_assert_int_eq(ospab_db_end(&fx->db, 0), APR_SUCCESS);
    fx_close(fx);
}
END_TEST

/* The row "locks" write (Galera certifies only rows a transaction changed), and a lease's
 * fencing token goes up when it changes hands and stops its old holder's writes. */
START_TEST(locks_change_their_row_and_leases_fence_their_old_holder)
{
    fx_t *fx = fx_open();
    const char *uid = fx_user(fx, "fence@example.com", "user");
    const char *vps = fx_server(fx, uid, "101", "running");
    const char *t0 = "2026-01-01 00:00:00.000", *t1 = "2026-01-01 00:01:00.000";
    const char *t2 = "2026-01-01 00:02:00.000", *t3 = "2026-01-01 00:03:00.000";
    const char *insert[4] = { "cluster:main", "agent-a", t1, t0 };
    const char *renew_b[7] = { "agent-b", "agent-b", t3, t2, "cluster:main", "agent-b", t2 };
    const char *renew_a[7] = { "agent-a", "agent-a", t2, t0, "cluster:main", "agent-a", t0 };
    const char *fence_a1[4] = { "cluster:main", "agent-a", "1", t0 };
    const char *fence_a1_late[4] = { "cluster:main", "agent-a", "1", t2 };
    const char *fence_b2[4] = { "cluster:main", "agent-b", "2", t2 };
    int n = -1;

    ck_assert_int_eq(ospab_db_exec(&fx->db, fx->pool, "ospab_vps_lock", 1, &vps, &n),
                     APR_SUCCESS);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ospab_db_exec(&fx->db, fx->pool, "ospab_user_lock", 1, &uid, &n),
                     APR_SUCCESS);
    ck_assert_str_eq(fx_scalar(fx, apr_psprintf(fx->pool, "SELECT lock_seq FROM vps WHERE "
                                                "id = %s", vps)), "1");
    ck_assert_int_eq(ospab_db_exec(&fx->db, fx->pool, "ospab_lease_insert", 4, insert, NULL),
                     APR_SUCCESS);
    ck_assert_str_eq(fx_scalar(fx, "SELECT fence FROM agent_leases"), "1");
    ck_assert_int_eq(ospab_db_exec(&fx->db, fx->pool, "ospab_lease_fence", 4, fence_a1, &n),
                     APR_SUCCESS);
    ck_assert_int_eq(n, 1);
    /* its own renewal keeps the token; expired, it fences nothing */
    ck_assert_int_eq(ospab_db_exec(&fx->db, fx->pool, "ospab_lease_renew", 7, renew_a, &n),
                     APR_SUCCESS);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(fx_scalar(fx, "SELECT fence FROM agent_leases"), "1");
    /* b takes it over once a's lease has ended (at t2: just after) */
    renew_b[6] = "2026-01-01 00:02:00.001";
    ck_assert_int_eq(ospab_db_exec(&fx->db, fx->pool, "ospab_lease_renew", 7, renew_b, &n),
                     APR_SUCCESS);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(fx_scalar(fx, "SELECT owner || ' ' || fence FROM agent_leases"),
                     "agent-b 2");
    ck_assert_int_eq(ospab_db_exec(&fx->db, fx->pool, "ospab_lease_fence", 4, fence_a1_late,
                                   &n), APR_SUCCESS);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(ospab_db_exec(&fx->db, fx->pool, "ospab_lease_fence", 4, fence_b2, &n),
                     APR_SUCCESS);
    ck_assert_int_eq(n, 1);
    fx_close(fx);
}
END_TEST

/* SQLite connections do not checkpoint when they close (the last one to close would hold
 * an exclusive lock that fails a new Apache child's statements) */
START_TEST(a_tuned_sqlite_connection_does_not_checkpoint_on_close)
{
    fx_t *fx = fx_open();
    apr_dbd_t *handle = NULL;
    ospab_db_t db;
    sqlite3 *h;
    int on = -1;

    ck_assert_int_eq(apr_dbd_open(fx->db.driver, fx->pool, ":memory:", &handle), APR_SUCCESS);
    ospab_db_init(&db, fx->db.driver, handle, NULL);
    h = apr_dbd_native_handle(db.driver, db.handle);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(sqlite3_db_config(h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, -1, &on),
                     SQLITE_OK);
    ck_assert_int_eq(on, 0);
    ospab_db_tune(&db);
    ck_assert_int_eq(sqlite3_db_config(h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, -1, &on),
                     SQLITE_OK);
    ck_assert_int_eq(on, 1);
    apr_dbd_close(db.driver, handle);
    fx_close(fx);
}
END_TEST

typedef struct {
    sqlite3 *holder;
    int rc;
} release_t;

static void *APR_THREAD_FUNC release_later(apr_thread_t *t, void *data)
{
    release_t *rel = data;

    apr_sleep(apr_time_from_msec(300));
    rel->rc = sqlite3_exec(rel->holder, "COMMIT", NULL, NULL, NULL);
    return NULL;
}

/* Another connection holds the database exclusively while a new connection prepares its
 * statements (as at an Apache child's start): the prepare waits for it instead of failing
 * with "database is locked". */
START_TEST(preparing_waits_for_a_lock_another_connection_holds)
{
    apr_pool_t *p;
    const apr_dbd_driver_t *drv = NULL;
    apr_dbd_t *handle = NULL;
    const char *dir = NULL, *path, *err = NULL;
    apr_file_t *f;
    apr_thread_t *thread;
    apr_status_t trv;
    release_t rel = { NULL, -1 };
    ospab_db_t db;
    apr_time_t t0;
    int applied = 0;

    ck_assert_int_eq(apr_pool_create(&p, NULL), APR_SUCCESS);
    ck_assert_int_eq(apr_temp_dir_get(&dir, p), APR_SUCCESS);
    path = apr_pstrcat(p, dir, "/ospab-unit-XXXXXX", NULL);
    ck_assert_int_eq(apr_file_mktemp(&f, (char *)path, 0, p), APR_SUCCESS);
    apr_file_close(f);
    ck_assert_int_eq(apr_dbd_init(p), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_get_driver(p, "sqlite3", &drv), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_open(drv, p, path, &handle), APR_SUCCESS);
    ck_assert_int_eq(ospab_migrate_run(p, drv, handle, OSPAB_TEST_SQL_DIR "/sqlite", 0, NULL,
                                       NULL, &applied, &err), APR_SUCCESS);
    apr_dbd_close(drv, handle);

    /* a rollback journal: an exclusive lock keeps readers (a prepare reads the schema) out */
    ck_assert_int_eq(sqlite3_open(path, &rel.holder), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(rel.holder, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(apr_dbd_open(drv, p, path, &handle), APR_SUCCESS);
    ospab_db_init(&db, drv, handle, NULL);
    ospab_db_tune(&db);
    ck_assert_int_eq(sqlite3_exec(rel.holder, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    t0 = apr_time_now();
    ck_assert_int_eq(apr_thread_create(&thread, NULL, release_later, &rel, p), APR_SUCCESS);
    ck_assert_msg(ospab_db_prepare(&db, p, OSPAB_SQL_API) == APR_SUCCESS, "%s", db.error);
    ck_assert_int_ge(apr_time_now() - t0, apr_time_from_msec(250));     /* it did wait */
    apr_thread_join(&trv, thread);
    ck_assert_int_eq(rel.rc, SQLITE_OK);
    ck_assert_int_gt(apr_hash_count(db.prepared), 10);

    apr_dbd_close(drv, handle);
    sqlite3_close(rel.holder);
    apr_file_remove(path, p);
    apr_pool_destroy(p);
}
END_TEST

Suite *ospab_db_suite(void)
{
    Suite *s = suite_create("statements");
    TCase *tc = tcase_create("sets");

    tcase_add_test(tc, labels_are_unique_literals_across_the_sets);
    tcase_add_test(tc, every_statement_prepares_on_the_migrated_schema);
    tcase_add_test(tc, a_write_conflict_runs_again_only_when_nothing_left_the_database);
    tcase_add_test(tc, an_agent_transaction_runs_again_after_its_own_write_conflict);
    tcase_add_test(tc, locks_change_their_row_and_leases_fence_their_old_holder);
    tcase_add_test(tc, a_tuned_sqlite_connection_does_not_checkpoint_on_close);
    tcase_add_test(tc, preparing_waits_for_a_lock_another_connection_holds);
    suite_add_tcase(s, tc);
    return s;
}
