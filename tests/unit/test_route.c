/* lib/ospab_route.h: method + path -> route, {id} parameters, 404 vs 405 + Allow. */
#include <string.h>

#include <apr_pools.h>

#include "tests.h"
#include "ospab_route.h"

/* the router's own behaviour, on a table whose actions name the routes */
static const ospab_route_t table[] = {
    { "GET",    "/api/health",                 OSPAB_OP_HEALTH, "health" },
    { "POST",   "/api/vps/sync",               OSPAB_OP_VPS_SYNC, "sync" },
    { "POST",   "/api/vps/sync/batch",         OSPAB_OP_VPS_SYNC_BATCH, "batch" },
    { "GET",    "/api/vps/{id}",               OSPAB_OP_VPS_GET, "vps_get" },
    { "DELETE", "/api/vps/{id}",               OSPAB_OP_NONE, "vps_delete" },
    { "PUT",    "/api/vps/{id}",               OSPAB_OP_NONE, "vps_put" },
    { "POST",   "/api/vps/{id}/start",         OSPAB_OP_POWER, "vps_start" },
    { "GET",    "/api/users/{id}/vps/{id}",    OSPAB_OP_NONE, "user_vps" },
    { NULL, NULL, OSPAB_OP_NONE, NULL }
};

static ospab_route_match_t m;
static const char *allow;

static ospab_route_result_e find(const char *method, const char *path)
{
    memset(&m, 0, sizeof(m));
    allow = NULL;
    return ospab_route_find(table, method, path, &m, &allow, test_pool);
}

START_TEST(exact_match)
{
    ck_assert_int_eq(find("GET", "/api/health"), OSPAB_ROUTE_FOUND);
    ck_assert_str_eq(m.route->action, "health");
    ck_assert_int_eq(m.nparams, 0);
    ck_assert_int_eq(find("POST", "/api/vps/sync/batch"), OSPAB_ROUTE_FOUND);
    ck_assert_str_eq(m.route->action, "batch");
    ck_assert_int_eq(find("GET", "/api/healthz"), OSPAB_ROUTE_NOT_FOUND);
    ck_assert_int_eq(find("GET", "/api"), OSPAB_ROUTE_NOT_FOUND);
    ck_assert_int_eq(find("GET", ""), OSPAB_ROUTE_NOT_FOUND);
}
END_TEST

START_TEST(trailing_slash_not_matched)
{
    ck_assert_int_eq(find("GET", "/api/health/"), OSPAB_ROUTE_NOT_FOUND);
    ck_assert_int_eq(find("POST", "/api/vps/sync/"), OSPAB_ROUTE_NOT_FOUND);
    ck_assert_int_eq(find("GET", "/api/vps/5/"), OSPAB_ROUTE_NOT_FOUND);
}
END_TEST

START_TEST(id_param)
{
    ck_assert_int_eq(find("GET", "/api/vps/42"), OSPAB_ROUTE_FOUND);
    ck_assert_str_eq(m.route->action, "vps_get");
    ck_assert_int_eq(m.nparams, 1);
    ck_assert(m.params[0] == 42);
    ck_assert_int_eq(find("POST", "/api/vps/7/start"), OSPAB_ROUTE_FOUND);
    ck_assert_str_eq(m.route->action, "vps_start");
    ck_assert(m.params[0] == 7);
    ck_assert_int_eq(find("GET", "/api/vps/999999999999999"), OSPAB_ROUTE_FOUND);
    ck_assert(m.params[0] == 999999999999999LL);
}
END_TEST

START_TEST(id_param_refused)
{
    ck_assert_int_eq(find("GET", "/api/vps/042"), OSPAB_ROUTE_NOT_FOUND);
    ck_assert_int_eq(find("GET", "/api/vps/0"), OSPAB_ROUTE_NOT_FOUND);
    ck_assert_int_eq(find("GET", "/api/vps/1000000000000000"), OSPAB_ROUTE_NOT_FOUND);
    ck_assert_int_eq(find("GET", "/api/vps/99999999999999999999"), OSPAB_ROUTE_NOT_FOUND);
    ck_assert_int_eq(find("GET", "/api/vps/abc"), OSPAB_ROUTE_NOT_FOUND);
    ck_assert_int_eq(find("GET", "/api/vps/12abc"), OSPAB_ROUTE_NOT_FOUND);
    ck_assert_int_eq(find("GET", "/api/vps/-1"), OSPAB_ROUTE_NOT_FOUND);
    ck_assert_int_eq(find("GET", "/api/vps/"), OSPAB_ROUTE_NOT_FOUND);
    ck_assert_int_eq(find("POST", "/api/vps/0/start"), OSPAB_ROUTE_NOT_FOUND);
}
END_TEST

START_TEST(several_params)
{
    ck_assert_int_eq(find("GET", "/api/users/3/vps/19"), OSPAB_ROUTE_FOUND);
    ck_assert_str_eq(m.route->action, "user_vps");
    ck_assert_int_eq(m.nparams, 2);
    ck_assert(m.params[0] == 3);
    ck_assert(m.params[1] == 19);
    ck_assert_int_eq(find("GET", "/api/users/3/vps/019"), OSPAB_ROUTE_NOT_FOUND);
}
END_TEST

START_TEST(head_answers_get_routes)
{
    ck_assert_int_eq(find("HEAD", "/api/health"), OSPAB_ROUTE_FOUND);
    ck_assert_str_eq(m.route->action, "health");
    ck_assert_int_eq(find("HEAD", "/api/vps/5"), OSPAB_ROUTE_FOUND);
    ck_assert_str_eq(m.route->action, "vps_get");
    /* HEAD is not POST */
    ck_assert_int_eq(find("HEAD", "/api/vps/sync"), OSPAB_ROUTE_BAD_METHOD);
    ck_assert_str_eq(allow, "POST");
}
END_TEST

START_TEST(method_not_allowed)
{
    ck_assert_int_eq(find("POST", "/api/health"), OSPAB_ROUTE_BAD_METHOD);
    ck_assert_str_eq(allow, "GET, HEAD");
    ck_assert_int_eq(find("GET", "/api/vps/sync"), OSPAB_ROUTE_BAD_METHOD);
    ck_assert_str_eq(allow, "POST");
    ck_assert_int_eq(find("POST", "/api/vps/5"), OSPAB_ROUTE_BAD_METHOD);
    ck_assert_str_eq(allow, "GET, HEAD, DELETE, PUT");
    ck_assert_int_eq(find("get", "/api/health"), OSPAB_ROUTE_BAD_METHOD);
}
END_TEST

/* the API's own table: every route does something, once */
START_TEST(api_table)
{
    const ospab_route_t *a, *b;
    int ops[OSPAB_OP_COUNT] = { 0 }, i;

    for (a = ospab_api_routes; a->method; ++a) {
        ck_assert_msg(a->op > OSPAB_OP_NONE && a->op < OSPAB_OP_COUNT, "%s", a->pattern);
        ops[a->op]++;
        if (a->op == OSPAB_OP_POWER || a->op == OSPAB_OP_SNAPSHOTS
            || (a->op >= OSPAB_OP_ADMIN_USERS && a->op <= OSPAB_OP_ADMIN_OS)
            || a->op == OSPAB_OP_ADMIN_OUTBOX) {
            ck_assert_msg(a->action != NULL, "%s %s has no action", a->method, a->pattern);
        }
        for (b = a + 1; b->method; ++b) {
            ck_assert_msg(strcmp(a->method, b->method) || strcmp(a->pattern, b->pattern),
                          "%s %s twice", a->method, a->pattern);
        }
    }
    for (i = OSPAB_OP_NONE + 1; i < OSPAB_OP_COUNT; ++i) {
        ck_assert_msg(ops[i] > 0, "operation %d has no route", i);
    }
    /* a few by path: the action comes with the route */
    memset(&m, 0, sizeof(m));
    ck_assert_int_eq(ospab_route_find(ospab_api_routes, "POST", "/api/vps/12/reboot", &m,
                                      &allow, test_pool), OSPAB_ROUTE_FOUND);
    ck_assert_int_eq(m.route->op, OSPAB_OP_POWER);
    ck_assert_str_eq(m.route->action, "reboot");
    ck_assert_int_eq(ospab_route_find(ospab_api_routes, "DELETE", "/api/server/3/snapshots",
                                      &m, &allow, test_pool), OSPAB_ROUTE_FOUND);
    ck_assert_str_eq(m.route->action, "delete");
    /* the admin API: the collection's operation, the verb as action, the id */
    ck_assert_int_eq(ospab_route_find(ospab_api_routes, "POST",
                                      "/api/admin/outbox/webhook/9/retry", &m, &allow,
                                      test_pool), OSPAB_ROUTE_FOUND);
    ck_assert_int_eq(m.route->op, OSPAB_OP_ADMIN_OUTBOX);
    ck_assert_str_eq(m.route->action, "webhook");
    ck_assert(m.params[0] == 9);
    ck_assert_int_eq(ospab_route_find(ospab_api_routes, "PATCH", "/api/admin/tariffs/9",
                                      &m, &allow, test_pool), OSPAB_ROUTE_BAD_METHOD);
    ck_assert_str_eq(allow, "GET, HEAD, PUT, DELETE");
}
END_TEST

Suite *ospab_route_suite(void)
{
    Suite *s = suite_create("route");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    tcase_add_test(tc, exact_match);
    tcase_add_test(tc, trailing_slash_not_matched);
    tcase_add_test(tc, id_param);
    tcase_add_test(tc, id_param_refused);
    tcase_add_test(tc, several_params);
    tcase_add_test(tc, head_answers_get_routes);
    tcase_add_test(tc, method_not_allowed);
    tcase_add_test(tc, api_table);
    suite_add_tcase(s, tc);
    return s;
}
