/* Unit tests in process (fixture.h): the task machine of server management. One operation
 * per server; a long action is a task row (queued -> running with its UPID -> ok/error);
 * the follow-up (ospab_server_follow, the agent's loop and the module's lazy one) applies a
 * finished task, starts the second half of two-step operations and maps Proxmox's
 * refusals to the panel's words. The Proxmox side is the fixture's stub node. */
#include <string.h>

#include <apr_strings.h>

#include "tests.h"
#include "fixture.h"
#include "ospab_server.h"

static fx_t *fx;
static ospab_principal_t owner;
static const char *sid;

static void setup(void)
{
    fx = fx_open();
    owner.user_id = fx_user(fx, "dave@example.com", "user");
    owner.admin = 0;
    sid = fx_server(fx, owner.user_id, "100", "stopped");
}

static void teardown(void)
{
    fx_close(fx);
}

static ospab_result_t power(const char *action)
{
    ospab_result_t res;

    ospab_server_power(&fx->db, fx->pool, &fx->server, &owner, &fx->actor, sid, action, &res);
    return res;
}

static void follow(void)
{
    fx->actor.now += apr_time_from_sec(1);
    ospab_server_follow(&fx->db, fx->pool, &fx->server, &fx->actor, sid);
}

/* the first column of "<select> WHERE <column> = " the server's id */
static const char *q(const char *select)
{
    return fx_scalar(fx, apr_pstrcat(fx->pool, select, sid, NULL));
}

START_TEST(start_is_a_task_one_at_a_time_applied_when_it_ends)
{
    ospab_result_t res = power("start");
    const char *upid = json_string_value(json_object_get(res.body, "taskId"));

    ck_assert_int_eq(res.status, 200);
    ck_assert_ptr_nonnull(upid);
    ck_assert_ptr_nonnull(strstr(upid, ":vzstart:100:"));
    ck_assert_str_eq(fx->last_method, "POST");
    ck_assert_str_eq(fx->last_path, "/nodes/pve1/lxc/100/status/start");
    ck_assert_str_eq(q("SELECT status FROM tasks WHERE vps_id = "), "running");
    /* another operation waits for this one */
    res = power("stop");
    ck_assert_int_eq(res.status, 409);
    ck_assert_ptr_nonnull(strstr(fx_body(fx, &res), "'start' is still running"));
    /* Proxmox still runs it: following changes nothing */
    follow();
    ck_assert_str_eq(q("SELECT status FROM tasks WHERE vps_id = "), "running");
    ck_assert_str_eq(q("SELECT status FROM vps WHERE id = "), "stopped");
    ck_assert_int_eq(fx_finish_tasks(fx, "OK"), 1);
    follow();
    ck_assert_str_eq(q("SELECT status FROM tasks WHERE vps_id = "), "ok");
    ck_assert_str_eq(q("SELECT status FROM vps WHERE id = "), "running");
    ck_assert_str_eq(q("SELECT ip_address FROM vps WHERE id = "), "10.0.0.100");
    ck_assert_int_eq(fx_count(fx, "SELECT COUNT(*) FROM webhook_outbox WHERE "
                                  "event = 'task.finished'"), 1);
    ck_assert_int_eq(fx_count(fx, "SELECT COUNT(*) FROM webhook_outbox WHERE "
                                  "event = 'server.status'"), 1);
    /* followed twice, applied once */
    follow();
    ck_assert_int_eq(fx_count(fx, "SELECT COUNT(*) FROM webhook_outbox WHERE "
                                  "event = 'task.finished'"), 1);
    /* the server is free again */
    res = power("stop");
    ck_assert_int_eq(res.status, 200);
}
END_TEST

START_TEST(restart_is_a_stop_then_a_start_under_the_first_task_id)
{
    ospab_result_t res;
    const char *upid;

    fx_exec(fx, apr_pstrcat(fx->pool, "UPDATE vps SET status = 'running' WHERE id = ", sid,
                            NULL));
    apr_hash_set(fx->guests, "100", APR_HASH_KEY_STRING, "running");
    res = power("restart");
    ck_assert_int_eq(res.status, 200);
    upid = json_string_value(json_object_get(res.body, "taskId"));
    ck_assert_ptr_nonnull(strstr(upid, ":vzstop:"));
    ck_assert_int_eq(fx_finish_tasks(fx, "OK"), 1);
    follow();
    /* the second half runs in the same row */
    ck_assert_str_eq(fx->last_path, "/nodes/pve1/lxc/100/status/start");
    ck_assert_str_eq(q("SELECT action FROM tasks WHERE vps_id = "), "restart:start");
    ck_assert_str_eq(q("SELECT status FROM tasks WHERE vps_id = "), "running");
    ck_assert_int_eq(fx_finish_tasks(fx, "OK"), 1);
    follow();
    ck_assert_str_eq(q("SELECT status FROM tasks WHERE vps_id = "), "ok");
    ck_assert_str_eq(fx_guest(fx, "100"), "running");
    ck_assert_str_eq(q("SELECT status FROM vps WHERE id = "), "running");
    /* the client's taskId stays the one it got */
    ck_assert_str_eq(q("SELECT first_upid FROM tasks WHERE vps_id = "), upid);
    ck_assert_int_eq(fx_count(fx, "SELECT COUNT(*) FROM tasks"), 1);
}
END_TEST

START_TEST(refusals_are_the_panels_words_and_the_task_records_proxmoxs)
{
    ospab_result_t res;

    /* Proxmox refuses: starting a running guest */
    apr_hash_set(fx->guests, "100", APR_HASH_KEY_STRING, "running");
    res = power("start");
    ck_assert_int_eq(res.status, 409);
    ck_assert_str_eq(fx_body(fx, &res), "{\"error\":\"server is already running\"}");
    ck_assert_str_eq(q("SELECT status FROM tasks WHERE vps_id = "), "error");
    ck_assert_str_eq(q("SELECT error FROM tasks WHERE vps_id = "),
                     "CT 100 already running");
    /* a failed task: the record is not changed */
    apr_hash_set(fx->guests, "100", APR_HASH_KEY_STRING, "stopped");
    res = power("start");
    ck_assert_int_eq(res.status, 200);
    ck_assert_int_eq(fx_finish_tasks(fx, "command 'lxc-start -n 100' failed: exit code 1"), 1);
    follow();
    ck_assert_int_eq(fx_count(fx, "SELECT COUNT(*) FROM tasks WHERE status = 'error'"), 2);
    ck_assert_str_eq(q("SELECT status FROM vps WHERE id = "), "stopped");
    /* Proxmox unreachable: 502, and the server is not left busy */
    fx->unreachable = 1;
    res = power("start");
    ck_assert_int_eq(res.status, 502);
    ck_assert_str_eq(fx_body(fx, &res), "{\"error\":\"Proxmox is unreachable\"}");
    ck_assert_int_eq(fx_count(fx, "SELECT COUNT(*) FROM tasks WHERE status IN "
                                  "('queued', 'running')"), 0);
    /* another customer's server does not exist for them */
    fx->unreachable = 0;
    owner.user_id = fx_user(fx, "eve@example.com", "user");
    res = power("start");
    ck_assert_int_eq(res.status, 404);
}
END_TEST

START_TEST(delete_removes_the_record_when_the_guest_is_gone)
{
    ospab_result_t res;

    ospab_server_delete(&fx->db, fx->pool, &fx->server, &owner, &fx->actor, sid, &res);
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_eq(fx->last_method, "DELETE");
    ck_assert_str_eq(q("SELECT status FROM vps WHERE id = "), "deleting");
    ck_assert_int_eq(fx_finish_tasks(fx, "OK"), 1);
    follow();
    ck_assert_ptr_null(fx_guest(fx, "100"));
    ck_assert_int_eq(fx_count(fx, "SELECT COUNT(*) FROM vps"), 0);
    ck_assert_int_eq(fx_count(fx, "SELECT COUNT(*) FROM webhook_outbox WHERE "
                                  "event = 'server.deleted'"), 1);
    /* the task outlives its server, detached */
    ck_assert_int_eq(fx_count(fx, "SELECT COUNT(*) FROM tasks WHERE vps_id IS NULL AND "
                                  "status = 'ok'"), 1);
}
END_TEST

Suite *ospab_task_suite(void)
{
    Suite *s = suite_create("task machine (in process)");
    TCase *tc = tcase_create("tasks");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, start_is_a_task_one_at_a_time_applied_when_it_ends);
    tcase_add_test(tc, restart_is_a_stop_then_a_start_under_the_first_task_id);
    tcase_add_test(tc, refusals_are_the_panels_words_and_the_task_records_proxmoxs);
    tcase_add_test(tc, delete_removes_the_record_when_the_guest_is_gone);
    suite_add_tcase(s, tc);
    return s;
}
