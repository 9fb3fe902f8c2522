/* lib/ospab_pve.h: UPID parsing, path encoding, numbers that arrive as strings, and the
 * client's refusal of unsafe configurations. The transfers themselves are tested against
 * the simulator (tests/integration/test_pve_client.py). */
#include <stdlib.h>
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "tests.h"
#include "ospab_pve.h"
#include "ospab_pve_errors.h"

#define EXAMPLE "UPID:pve:0012A4B3:0A1B2C3D:6718A3B2:vzstart:100:root@pam!mytoken:"

/* --- UPIDs ---------------------------------------------------------------------------- */

START_TEST(upid_behaviour_example)
{
    ospab_upid_t u;

    ck_assert_int_eq(ospab_upid_parse(test_pool, EXAMPLE, &u), APR_SUCCESS);
    ck_assert_str_eq(u.node, "pve");
    ck_assert_uint_eq(u.pid, 0x0012A4B3UL);
    ck_assert_uint_eq(u.pstart, 0x0A1B2C3DULL);
    ck_assert_uint_eq(u.starttime, 0x6718A3B2UL);
    ck_assert_str_eq(u.type, "vzstart");
    ck_assert_str_eq(u.id, "100");
    ck_assert_str_eq(u.user, "root@pam!mytoken");
}
END_TEST

START_TEST(upid_nine_digit_pstart_and_empty_id)
{
    ospab_upid_t u;

    ck_assert_int_eq(ospab_upid_parse(test_pool, "UPID:node-2:000004D2:1FFFFFFFF:6718A3B2:"
                                      "vzdump::backup@pve:", &u), APR_SUCCESS);
    ck_assert_str_eq(u.node, "node-2");
    ck_assert_uint_eq(u.pid, 1234UL);
    ck_assert_uint_eq(u.pstart, 0x1FFFFFFFFULL);
    ck_assert_str_eq(u.type, "vzdump");
    ck_assert_str_eq(u.id, "");
    ck_assert_str_eq(u.user, "backup@pve");
}
END_TEST

START_TEST(upid_lower_case_hex_as_proxmox)
{
    ospab_upid_t u;

    ck_assert_int_eq(ospab_upid_parse(test_pool, "UPID:pve:0012a4b3:0a1b2c3d:6718a3b2:qmstart:101:"
                                      "root@pam:", &u), APR_SUCCESS);
    ck_assert_uint_eq(u.pid, 0x0012A4B3UL);
}
END_TEST

static const char *const bad_upids[] = {
    "",
    "UPID",
    "UPID:pve:0012A4B3:0A1B2C3D:6718A3B2:vzstart:100:root@pam!mytoken",   /* no ':' at end */
    "UPID:pve:0012A4B3:0A1B2C3D:6718A3B2:vzstart:100:root@pam!mytoken::",  /* one too many */
    "upid:pve:0012A4B3:0A1B2C3D:6718A3B2:vzstart:100:root@pam:",
    "UPID:pve:0012A4BG:0A1B2C3D:6718A3B2:vzstart:100:root@pam:",           /* bad hex */
    "UPID:pve:0012A4B:0A1B2C3D:6718A3B2:vzstart:100:root@pam:",            /* 7 digits */
    "UPID:pve:00012A4B3:0A1B2C3D:6718A3B2:vzstart:100:root@pam:",          /* 9-digit pid */
    "UPID:pve:0012A4B3:0A1B2C3D12:6718A3B2:vzstart:100:root@pam:",         /* 10-digit pstart */
    "UPID:pve:0012A4B3:0A1B2C3D:6718A3B20:vzstart:100:root@pam:",          /* 9-digit start */
    "UPID:pve:0012A4B3:0A1B2C3D:-718A3B2:vzstart:100:root@pam:",
    "UPID:pve:0x12A4B3:0A1B2C3D:6718A3B2:vzstart:100:root@pam:",
    "UPID::0012A4B3:0A1B2C3D:6718A3B2:vzstart:100:root@pam:",              /* no node */
    "UPID:-pve:0012A4B3:0A1B2C3D:6718A3B2:vzstart:100:root@pam:",
    "UPID:pve.example.com:0012A4B3:0A1B2C3D:6718A3B2:vzstart:100:root@pam:",
    "UPID:p_e:0012A4B3:0A1B2C3D:6718A3B2:vzstart:100:root@pam:",
    "UPID:pve:0012A4B3:0A1B2C3D:6718A3B2::100:root@pam:",                  /* no type */
    "UPID:pve:0012A4B3:0A1B2C3D:6718A3B2:VZstart:100:root@pam:",
    "UPID:pve:0012A4B3:0A1B2C3D:6718A3B2:vz-start:100:root@pam:",
    "UPID:pve:0012A4B3:0A1B2C3D:6718A3B2:vzstart:1 0:root@pam:",           /* space in id */
    "UPID:pve:0012A4B3:0A1B2C3D:6718A3B2:vzstart:100::",                   /* no user */
    "UPID:pve:0012A4B3:0A1B2C3D:6718A3B2:vzstart:100:root:",               /* no realm */
    "UPID:pve:0012A4B3:0A1B2C3D:6718A3B2:vzstart:100:@pam:",
    "UPID:pve:0012A4B3:0A1B2C3D:6718A3B2:vzstart:100:root@:",
    "UPID:pve:0012A4B3:0A1B2C3D:6718A3B2:vzstart:100:root@pam\n:",
    "UPID:pve:0012A4B3:0A1B2C3D:6718A3B2:vzstart:100:root@pam: ",
};

START_TEST(upid_rejects)
{
    ospab_upid_t u;
    const char *s = bad_upids[_i];

    ck_assert_msg(ospab_upid_parse(test_pool, s, &u) != APR_SUCCESS, "accepted: %s", s);
}
END_TEST

START_TEST(upid_null)
{
    ospab_upid_t u;

    ck_assert_int_ne(ospab_upid_parse(test_pool, NULL, &u), APR_SUCCESS);
}
END_TEST

/* --- paths ---------------------------------------------------------------------------- */

START_TEST(path_upid_is_one_segment)
{
    const char *path = ospab_pve_path(test_pool, "nodes", "pve", "tasks", EXAMPLE, "status", NULL);

    ck_assert_str_eq(path, "/nodes/pve/tasks/UPID%3Apve%3A0012A4B3%3A0A1B2C3D%3A6718A3B2"
                     "%3Avzstart%3A100%3Aroot%40pam%21mytoken%3A/status");
}
END_TEST

START_TEST(path_escapes_everything_but_unreserved)
{
    ck_assert_str_eq(ospab_pve_path(test_pool, "a b/c?d#e%f&g=h", "x-y.z_~", NULL),
                     "/a%20b%2Fc%3Fd%23e%25f%26g%3Dh/x-y.z_~");
    ck_assert_str_eq(ospab_pve_path(test_pool, "\xc3\xa9", NULL), "/%C3%A9");
    ck_assert_str_eq(ospab_pve_path(test_pool, "nodes", "pve1", "lxc", "100", "status", "start",
                                    NULL), "/nodes/pve1/lxc/100/status/start");
    ck_assert_str_eq(ospab_pve_path(test_pool, "version", NULL), "/version");
    ck_assert_str_eq(ospab_pve_path(test_pool, NULL), "/");
}
END_TEST

/* --- numbers ----------------------------------------------------------------------------- */

static json_t *j(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);

    ck_assert_msg(v != NULL, "bad test JSON %s", text);
    return v;
}

static int int_of(const char *text, apr_int64_t *out)
{
    json_t *v = j(text);
    int ok = ospab_pve_int(v, out);

    json_decref(v);
    return ok;
}

static int double_of(const char *text, double *out)
{
    json_t *v = j(text);
    int ok = ospab_pve_double(v, out);

    json_decref(v);
    return ok;
}

START_TEST(int_from_numbers_and_strings)
{
    apr_int64_t v = 0;

    ck_assert_int_eq(int_of("100", &v), 1);
    ck_assert_int_eq(v, 100);
    ck_assert_int_eq(int_of("\"100\"", &v), 1);        /* GET /cluster/nextid */
    ck_assert_int_eq(v, 100);
    ck_assert_int_eq(int_of("\"-7\"", &v), 1);
    ck_assert_int_eq(v, -7);
    ck_assert_int_eq(int_of("2048.0", &v), 1);
    ck_assert_int_eq(v, 2048);
    ck_assert_int_eq(int_of("\"9223372036854775807\"", &v), 1);
    ck_assert(v == APR_INT64_MAX);
    ck_assert_int_eq(int_of("\"-9223372036854775808\"", &v), 1);
    ck_assert(v == APR_INT64_MIN);
    ck_assert_int_eq(int_of("8589934592", &v), 1);       /* 8 GiB in bytes */
    ck_assert(v == APR_INT64_C(8589934592));
}
END_TEST

START_TEST(int_rejects)
{
    static const char *const bad[] = {
        "\"\"", "\"-\"", "\" 100\"", "\"100 \"", "\"+100\"", "\"1e3\"", "\"0x10\"",
        "\"100.5\"", "\"9223372036854775808\"", "\"99999999999999999999\"", "0.25",
        "1e300", "true", "null", "[]", "{}", "\"abc\"",
    };
    apr_int64_t v = 42;
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        ck_assert_msg(int_of(bad[i], &v) == 0, "accepted %s", bad[i]);
    }
    ck_assert_int_eq(v, 42);
    ck_assert_int_eq(ospab_pve_int(NULL, &v), 0);
}
END_TEST

START_TEST(double_from_numbers_and_strings)
{
    double d = 0;

    ck_assert_int_eq(double_of("0.25", &d), 1);
    ck_assert(d == 0.25);
    ck_assert_int_eq(double_of("\"0.25\"", &d), 1);
    ck_assert(d == 0.25);
    ck_assert_int_eq(double_of("100", &d), 1);
    ck_assert(d == 100.0);
    ck_assert_int_eq(double_of("\"100\"", &d), 1);
    ck_assert(d == 100.0);
    ck_assert_int_eq(double_of("\"-1.5e-05\"", &d), 1);  /* how Perl prints small values */
    ck_assert(d == -1.5e-05);
    ck_assert_int_eq(double_of("\"0\"", &d), 1);
    ck_assert(d == 0.0);
}
END_TEST

START_TEST(double_rejects)
{
    static const char *const bad[] = {
        "\"\"", "\".5\"", "\"5.\"", "\" 1\"", "\"1 \"", "\"+1\"", "\"01\"", "\"0x1p3\"",
        "\"inf\"", "\"nan\"", "\"1e\"", "\"1,5\"", "\"1e999\"", "true", "null", "[1]",
    };
    double d = 42;
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        ck_assert_msg(double_of(bad[i], &d) == 0, "accepted %s", bad[i]);
    }
    ck_assert(d == 42);
    ck_assert_int_eq(ospab_pve_double(NULL, &d), 0);
}
END_TEST

/* --- the client's set-up and argument checks (no transfer happens) ------------------- */

static ospab_pve_conf_t good_conf(void)
{
    ospab_pve_conf_t c = { .url = "https://127.0.0.1:1/",
                           .token = "root@pam!ospab=00000000-0000-0000-0000-0",
                           .connect_timeout_ms = 3000, .timeout_ms = 10000,
                           .max_response = 1 << 20, .max_handles = 4 };
    return c;
}

START_TEST(create_refuses_unsafe_conf)
{
    ospab_pve_conf_t c;
    ospab_pve_t *pve = NULL;

    c = good_conf();
    ck_assert_int_eq(ospab_pve_create(test_pool, &c, &pve), APR_SUCCESS);
    ck_assert_ptr_nonnull(pve);

    c = good_conf();
    c.timeout_ms = 0;                       /* libcurl: wait for ever */
    ck_assert_int_ne(ospab_pve_create(test_pool, &c, &pve), APR_SUCCESS);
    ck_assert_ptr_null(pve);
    c = good_conf();
    c.connect_timeout_ms = 0;
    ck_assert_int_ne(ospab_pve_create(test_pool, &c, &pve), APR_SUCCESS);
    c = good_conf();
    c.max_response = 0;
    ck_assert_int_ne(ospab_pve_create(test_pool, &c, &pve), APR_SUCCESS);
    c = good_conf();
    c.token = "root@pam!x=1\r\nX-Injected: 1";
    ck_assert_int_ne(ospab_pve_create(test_pool, &c, &pve), APR_SUCCESS);
    c = good_conf();
    c.token = "";
    ck_assert_int_ne(ospab_pve_create(test_pool, &c, &pve), APR_SUCCESS);
    c = good_conf();
    c.url = "ftp://127.0.0.1/";
    ck_assert_int_ne(ospab_pve_create(test_pool, &c, &pve), APR_SUCCESS);
    c = good_conf();
    c.max_handles = -1;
    ck_assert_int_ne(ospab_pve_create(test_pool, &c, &pve), APR_SUCCESS);
}
END_TEST

START_TEST(call_refuses_bad_method_and_path)
{
    ospab_pve_conf_t c = good_conf();
    ospab_pve_t *pve;
    ospab_pve_result_t res;
    ospab_pve_stats_t st;

    ck_assert_int_eq(ospab_pve_create(test_pool, &c, &pve), APR_SUCCESS);
    ck_assert_int_eq(ospab_pve_call(pve, test_pool, "PATCH", "/version", NULL, &res), APR_EINVAL);
    ck_assert_int_eq(res.outcome, OSPAB_PVE_BAD_RESPONSE);
    ck_assert_int_eq(res.http_status, 0);
    ck_assert_ptr_nonnull(res.message);
    ck_assert_ptr_null(res.data);
    ck_assert_int_eq(ospab_pve_call(pve, test_pool, "GET", "version", NULL, &res), APR_EINVAL);
    ck_assert_int_eq(ospab_pve_call(pve, test_pool, "GET", "/version?x=1", NULL, &res),
                     APR_EINVAL);
    ospab_pve_stats(pve, &st);
    ck_assert(st.calls == 0);               /* refused before any transfer */
}
END_TEST

START_TEST(call_to_closed_port_is_unreachable)
{
    /* port 1 on loopback: nothing listens there on a test machine */
    ospab_pve_conf_t c = good_conf();
    ospab_pve_t *pve;
    ospab_pve_result_t res;
    ospab_pve_stats_t st;

    ck_assert_int_eq(ospab_pve_create(test_pool, &c, &pve), APR_SUCCESS);
    ck_assert_int_ne(ospab_pve_call(pve, test_pool, "GET", "/version", NULL, &res), APR_SUCCESS);
    ck_assert_int_eq(res.outcome, OSPAB_PVE_UNREACHABLE);
    ck_assert_int_eq(res.http_status, 0);
    ck_assert_ptr_nonnull(strstr(res.message, "cannot connect"));
    ck_assert_ptr_null(strstr(res.message, "00000000-0000"));   /* never the secret */
    ospab_pve_stats(pve, &st);
    ck_assert(st.calls == 1);
    ck_assert_int_eq(st.idle_handles, 1);   /* the handle went back for the next call */
}
END_TEST

static apr_status_t stub_version(void *baton, apr_pool_t *p, const char *method,
                                 const char *path, const ospab_pve_param_t *params,
                                 ospab_pve_result_t *res)
{
    (void)baton; (void)method; (void)params;
    memset(res, 0, sizeof(*res));
    res->outcome = OSPAB_PVE_OK;
    res->http_status = 200;
    res->message = apr_pstrcat(p, "stub ", path, NULL);
    return APR_SUCCESS;
}

typedef struct {
    int calls[4];
    apr_status_t rv[4];
    int had_message[4];
    int order[4], n;
} each_seen_t;

static void each_done(ospab_pve_req_t *reqs, int k, void *arg)
{
    each_seen_t *seen = arg;

    seen->calls[k]++;
    seen->rv[k] = reqs[k].rv;           /* filled before the callback, not after the batch */
    seen->had_message[k] = reqs[k].res.message != NULL;
    seen->order[seen->n++] = k;
}

/* every request's callback once, with its answer in place: an answer from a stub, a
 * transfer that fails (nothing listens on port 1), a request refused before any transfer */
START_TEST(call_each_reports_every_request_once)
{
    ospab_pve_conf_t c = good_conf();
    ospab_pve_t *real, *stub;
    ospab_pve_req_t reqs[4];
    each_seen_t seen;
    int k;

    ck_assert_int_eq(ospab_pve_create(test_pool, &c, &real), APR_SUCCESS);
    ck_assert_int_eq(ospab_pve_create_stub(test_pool, 1000, stub_version, NULL, &stub),
                     APR_SUCCESS);
    memset(reqs, 0, sizeof(reqs));
    memset(&seen, 0, sizeof(seen));
    reqs[0].pve = real;
    reqs[0].method = "GET";
    reqs[0].path = "/version";
    reqs[1].pve = stub;
    reqs[1].method = "GET";
    reqs[1].path = "/nodes";
    reqs[2].pve = real;
    reqs[2].method = "PATCH";          /* refused by the set-up */
    reqs[2].path = "/version";
    reqs[3].pve = stub;
    reqs[3].method = "GET";
    reqs[3].path = "/cluster/resources";
    ck_assert_int_eq(ospab_pve_call_each(test_pool, 0, reqs, 4, 2, each_done, &seen),
                     APR_SUCCESS);
    ck_assert_int_eq(seen.n, 4);
    for (k = 0; k < 4; ++k) {
        ck_assert_int_eq(seen.calls[k], 1);
        ck_assert_int_eq(seen.rv[k], reqs[k].rv);
        ck_assert(seen.had_message[k]);
    }
    ck_assert_int_eq(seen.rv[1], APR_SUCCESS);
    ck_assert_str_eq(reqs[3].res.message, "stub /cluster/resources");
    ck_assert_int_eq(reqs[0].res.outcome, OSPAB_PVE_UNREACHABLE);
    ck_assert_int_eq(seen.rv[2], APR_EINVAL);
    /* the answers that need no transfer are reported before the transfer's */
    ck_assert_int_eq(seen.order[3], 0);
    /* without a callback, the same batch still fills every answer */
    memset(&reqs[1].res, 0, sizeof(reqs[1].res));
    ck_assert_int_eq(ospab_pve_call_many(test_pool, 0, reqs, 4, 2), APR_SUCCESS);
    ck_assert_str_eq(reqs[1].res.message, "stub /nodes");
}
END_TEST

/* Proxmox's messages (pve-container, qemu-server) in the customer's words */
START_TEST(errors_known_messages)
{
    static const struct { const char *proxmox; int status; const char *text; } cases[] = {
        { "CT 100 already running", 409, "server is already running" },
        { "VM 100 not running", 409, "server is not running" },
        { "CT is locked (backup)", 409, "server is busy with another operation (backup)" },
        { "CT is locked (snapshot-delete)", 409,
          "server is busy with another operation (snapshot-delete)" },
        { "can't lock file '/run/lock/lxc/pve-config-100.lock' - got timeout", 409,
          "server is busy with another operation, try again" },
        { "unable to shrink disk size", 400, "disk can only grow" },
        { "snapshot name 'a1' already used", 409, "a snapshot with this name already exists" },
        { "snapshot 'nosuch' does not exist", 404, "no such snapshot" },
        { "Configuration file 'nodes/pve1/lxc/100.conf' does not exist", 502,
          "the server is missing on the hypervisor" },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        const ospab_pve_error_t *e = ospab_pve_error_find(cases[i].proxmox);

        ck_assert_msg(e != NULL, "%s", cases[i].proxmox);
        ck_assert_int_eq(e->status, cases[i].status);
        ck_assert_str_eq(ospab_pve_error_text(test_pool, cases[i].proxmox), cases[i].text);
    }
}
END_TEST

START_TEST(errors_unknown_and_odd_messages)
{
    /* nothing of Proxmox's own text reaches the customer */
    ck_assert_ptr_null(ospab_pve_error_find("unable to create CT 100 - storage 'local-lvm' "
                                            "is not online"));
    ck_assert_str_eq(ospab_pve_error_text(test_pool, "storage 'x' is not online"),
                     OSPAB_PVE_ERROR_GENERIC);
    /* a lock "name" that is not a plain word is left out */
    ck_assert_str_eq(ospab_pve_error_text(test_pool, "CT is locked (<b>evil</b> 1)"),
                     "server is busy with another operation");
    ck_assert_str_eq(ospab_pve_error_text(test_pool, "CT is locked ("),
                     "server is busy with another operation");
    ck_assert_ptr_null(ospab_pve_error_text(test_pool, NULL));
}
END_TEST

/* the one check of a configured URL and token (module and agent alike) */
START_TEST(config_url_and_token)
{
    ck_assert_ptr_null(ospab_pve_url_problem("https://pve.example.com:8006"));
    ck_assert_ptr_null(ospab_pve_url_problem("https://10.0.0.2:8006/"));
    ck_assert_ptr_nonnull(ospab_pve_url_problem("http://pve:8006"));
    ck_assert_ptr_nonnull(ospab_pve_url_problem("https://"));
    ck_assert_ptr_nonnull(ospab_pve_url_problem("https://pve:8006/api2/json"));
    ck_assert_ptr_nonnull(ospab_pve_url_problem("https://pve :8006"));
    ck_assert_ptr_nonnull(ospab_pve_url_problem(NULL));
    ck_assert_ptr_null(ospab_pve_token_problem(
        "root@pam!ospab=3f2c9a7e-1b2d-4c5e-8f90-a1b2c3d4e5f6"));
    ck_assert_ptr_null(ospab_pve_token_problem("ospab@pve!panel.v2_x-y=s3cret"));
    ck_assert_ptr_nonnull(ospab_pve_token_problem("root@pam=secret"));        /* no token id */
    ck_assert_ptr_nonnull(ospab_pve_token_problem("root!tok=secret"));        /* no realm */
    ck_assert_ptr_nonnull(ospab_pve_token_problem("root@pam!tok="));          /* no secret */
    ck_assert_ptr_nonnull(ospab_pve_token_problem("root@pam!1tok=secret"));   /* a digit first */
    ck_assert_ptr_nonnull(ospab_pve_token_problem("root@pam!t=secret"));      /* too short */
    ck_assert_ptr_nonnull(ospab_pve_token_problem("root@pam!to k=secret"));
    ck_assert_ptr_nonnull(ospab_pve_token_problem("root@pam!tok=sec\nret"));
    ck_assert_ptr_nonnull(ospab_pve_token_problem(""));
    /* never the token in the message */
    ck_assert_ptr_null(strstr(ospab_pve_token_problem("root@pam!t=hunter2-secret"),
                              "hunter2"));
}
END_TEST

Suite *ospab_pve_suite(void)
{
    Suite *s = suite_create("pve");
    TCase *tc = tcase_create("upid");

    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    tcase_add_test(tc, upid_behaviour_example);
    tcase_add_test(tc, upid_nine_digit_pstart_and_empty_id);
    tcase_add_test(tc, upid_lower_case_hex_as_proxmox);
    tcase_add_loop_test(tc, upid_rejects, 0, (int)(sizeof(bad_upids) / sizeof(bad_upids[0])));
    tcase_add_test(tc, upid_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("path");
    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    tcase_add_test(tc, path_upid_is_one_segment);
    tcase_add_test(tc, path_escapes_everything_but_unreserved);
    suite_add_tcase(s, tc);

    tc = tcase_create("numbers");
    tcase_add_test(tc, int_from_numbers_and_strings);
    tcase_add_test(tc, int_rejects);
    tcase_add_test(tc, double_from_numbers_and_strings);
    tcase_add_test(tc, double_rejects);
    suite_add_tcase(s, tc);

    tc = tcase_create("config");
    tcase_add_test(tc, config_url_and_token);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    tcase_add_test(tc, errors_known_messages);
    tcase_add_test(tc, errors_unknown_and_odd_messages);
    suite_add_tcase(s, tc);

    tc = tcase_create("client");
    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    tcase_add_test(tc, create_refuses_unsafe_conf);
    tcase_add_test(tc, call_refuses_bad_method_and_path);
    tcase_add_test(tc, call_to_closed_port_is_unreachable);
    tcase_add_test(tc, call_each_reports_every_request_once);
    suite_add_tcase(s, tc);
    return s;
}
