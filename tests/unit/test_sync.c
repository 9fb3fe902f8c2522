/* Unit tests in process (fixture.h): the sync API's operations and the Idempotency-Key
 * protocol on a migrated in-memory SQLite database. */
#include <string.h>

#include <apr_strings.h>

#include "tests.h"
#include "fixture.h"
#include "ospab_sync.h"
#include "ospab_idem.h"
#include "ospab_util.h"
#include "ospab_json.h"

static fx_t *fx;

static void setup(void)
{
    fx = fx_open();
}

static void teardown(void)
{
    fx_close(fx);
}

static ospab_result_t sync_vps(const char *json)
{
    json_error_t e;
    json_t *req = json_loads(json, 0, &e);
    ospab_result_t res = { 0 };

    ck_assert_msg(req != NULL, "bad test JSON: %s", e.text);
    ospab_sync_vps(&fx->db, fx->pool, &fx->actor, req, NULL, NULL, &res);
    json_decref(req);
    return res;
}

START_TEST(create_writes_the_record_its_audit_and_nothing_else_on_refusal)
{
    const char *uid = fx_user(fx, "a@example.com", "user");
    ospab_result_t res = sync_vps(apr_psprintf(fx->pool,
        "{\"action\":\"create\",\"vps\":{\"user_id\":%s,\"name\":\"test\",\"cpu\":2,"
        "\"ram\":2048,\"disk\":50,\"os\":\"Ubuntu 22.04\",\"status\":\"creating\","
        "\"hypervisor\":\"proxmox\"}}", uid));
    json_t *vps = json_object_get(res.body, "vps");

    ck_assert_int_eq(res.status, 201);
    ck_assert_str_eq(json_string_value(json_object_get(res.body, "status")), "success");
    ck_assert_str_eq(json_string_value(json_object_get(vps, "name")), "test");
    ck_assert(json_is_null(json_object_get(vps, "vmid")));
    ck_assert_int_eq(fx_count(fx, "SELECT COUNT(*) FROM vps WHERE name = 'test' AND cpu = 2 "
                                  "AND ram = 2048 AND status = 'creating'"), 1);
    ck_assert_int_eq(fx_count(fx, "SELECT COUNT(*) FROM audit_log WHERE action = 'vps.create' "
                                  "AND actor_type = 'sync'"), 1);

    /* a field error: a 400 naming the field, and no row */
    res = sync_vps(apr_psprintf(fx->pool,
        "{\"action\":\"create\",\"vps\":{\"user_id\":%s,\"name\":\"bad\",\"cpu\":\"two\","
        "\"ram\":2048,\"disk\":50}}", uid));
    ck_assert_int_eq(res.status, 400);
    ck_assert_msg(strstr(fx_body(fx, &res), "\"cpu\""), "%s", fx_body(fx, &res));
    ck_assert_int_eq(fx_count(fx, "SELECT COUNT(*) FROM vps WHERE name = 'bad'"), 0);

    /* an owner that does not exist */
    res = sync_vps("{\"action\":\"create\",\"vps\":{\"user_id\":9999,\"name\":\"orphan\","
                   "\"cpu\":1,\"ram\":512,\"disk\":5}}");
    ck_assert_int_ge(res.status, 400);
    ck_assert_int_lt(res.status, 500);
    ck_assert_int_eq(fx_count(fx, "SELECT COUNT(*) FROM vps WHERE name = 'orphan'"), 0);
}
END_TEST

START_TEST(update_records_from_and_to_delete_removes_the_record)
{
    const char *uid = fx_user(fx, "b@example.com", "user");
    ospab_result_t res = sync_vps(apr_psprintf(fx->pool,
        "{\"action\":\"create\",\"vps\":{\"user_id\":%s,\"name\":\"one\",\"cpu\":1,"
        "\"ram\":512,\"disk\":5}}", uid));
    const char *id;

    ck_assert_int_eq(res.status, 201);
    id = apr_psprintf(fx->pool, "%" APR_INT64_T_FMT, (apr_int64_t)json_integer_value(
                      json_object_get(json_object_get(res.body, "vps"), "id")));
    res = sync_vps(apr_psprintf(fx->pool, "{\"action\":\"update\",\"vps\":{\"id\":%s,"
                                "\"name\":\"two\"}}", id));
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_eq(fx_scalar(fx, apr_psprintf(fx->pool, "SELECT name FROM vps WHERE id = %s",
                                                id)), "two");
    ck_assert_ptr_nonnull(strstr(fx_scalar(fx, "SELECT details FROM audit_log WHERE "
                                               "action = 'vps.update'"),
                                 "\"from\":\"one\""));
    res = sync_vps(apr_psprintf(fx->pool, "{\"action\":\"delete\",\"vps\":{\"id\":%s}}", id));
    ck_assert_int_eq(res.status, 200);
    ck_assert_int_eq(fx_count(fx, "SELECT COUNT(*) FROM vps"), 0);
    /* a second delete finds nothing */
    res = sync_vps(apr_psprintf(fx->pool, "{\"action\":\"delete\",\"vps\":{\"id\":%s}}", id));
    ck_assert_int_eq(res.status, 404);
}
END_TEST

/* ---- the Idempotency-Key protocol ---------------------------------------------------------- */

typedef struct {
    int runs;
} counter_t;

/* An operation that writes a row in its own transaction, guarded by the key. */
static void guarded(void *ctx, const ospab_idem_t *idem, ospab_result_t *res)
{
    counter_t *c = ctx;

    c->runs++;
    if (ospab_idem_begin(&fx->db, fx->pool, &fx->actor, idem, res)) {
        return;
    }
    ospab_audit(&fx->db, fx->pool, &fx->actor, "test.guarded", "test", "1", NULL);
    res->status = 201;
    res->body = ospab_json_own(fx->pool, json_pack("{s:s, s:i}", "status", "success", "run",
                                                   c->runs));
    ospab_idem_commit(&fx->db, fx->pool, idem, res);
}

START_TEST(a_key_runs_once_replays_the_answer_and_refuses_another_body)
{
    ospab_idem_t idem = { "vps.sync", "key-1", ospab_sha256_hex(fx->pool, "A", 1) };
    ospab_idem_t other = { "vps.sync", "key-1", ospab_sha256_hex(fx->pool, "B", 1) };
    ospab_idem_t scope = { "users.sync", "key-1", ospab_sha256_hex(fx->pool, "A", 1) };
    counter_t c = { 0 };
    ospab_result_t res = { 0 };
    int replayed = 0;

    /* the attempt's time is the actor's: ospab_idem_run sets it */
    ospab_idem_run(&fx->db, fx->pool, &idem, 0, guarded, &c, &fx->actor.now, &res, &replayed);
    ck_assert_int_eq(res.status, 201);
    ck_assert_int_eq(replayed, 0);
    memset(&res, 0, sizeof(res));
    ospab_idem_run(&fx->db, fx->pool, &idem, 0, guarded, &c, &fx->actor.now, &res, &replayed);
    ck_assert_int_eq(c.runs, 1);
    ck_assert_int_eq(replayed, 1);
    ck_assert_int_eq(res.status, 201);
    ck_assert_ptr_nonnull(strstr(fx_body(fx, &res), "\"run\":1"));
    ck_assert_int_eq(fx_count(fx, "SELECT COUNT(*) FROM audit_log WHERE "
                                  "action = 'test.guarded'"), 1);
    /* the same key with another body */
    memset(&res, 0, sizeof(res));
    replayed = 0;
    ospab_idem_run(&fx->db, fx->pool, &other, 0, guarded, &c, &fx->actor.now, &res, &replayed);
    ck_assert_int_eq(res.status, 409);
    ck_assert_int_eq(c.runs, 1);
    /* the same key in another scope is another key */
    memset(&res, 0, sizeof(res));
    ospab_idem_run(&fx->db, fx->pool, &scope, 0, guarded, &c, &fx->actor.now, &res, &replayed);
    ck_assert_int_eq(res.status, 201);
    ck_assert_int_eq(c.runs, 2);
}
END_TEST

START_TEST(an_expired_key_runs_again)
{
    ospab_idem_t idem = { "vps.sync", "key-2", ospab_sha256_hex(fx->pool, "A", 1) };
    counter_t c = { 0 };
    ospab_result_t res = { 0 };
    int replayed = 0;

    ospab_idem_run(&fx->db, fx->pool, &idem, 0, guarded, &c, &fx->actor.now, &res, &replayed);
    ck_assert_int_eq(fx_count(fx, "SELECT COUNT(*) FROM idempotency_keys"), 1);
    /* a day and a second ago */
    fx_exec(fx, apr_pstrcat(fx->pool, "UPDATE idempotency_keys SET created_at = '",
                            ospab_time_db(fx->pool, apr_time_now() - OSPAB_IDEM_TTL
                                          - apr_time_from_sec(1)), "'", NULL));
    memset(&res, 0, sizeof(res));
    ospab_idem_run(&fx->db, fx->pool, &idem, 0, guarded, &c, &fx->actor.now, &res, &replayed);
    ck_assert_int_eq(res.status, 201);
    ck_assert_int_eq(replayed, 0);
    ck_assert_int_eq(c.runs, 2);
}
END_TEST

Suite *ospab_sync_suite(void)
{
    Suite *s = suite_create("sync (in process)");
    TCase *tc = tcase_create("sync");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, create_writes_the_record_its_audit_and_nothing_else_on_refusal);
    tcase_add_test(tc, update_records_from_and_to_delete_removes_the_record);
    tcase_add_test(tc, a_key_runs_once_replays_the_answer_and_refuses_another_body);
    tcase_add_test(tc, an_expired_key_runs_again);
    suite_add_tcase(s, tc);
    return s;
}
