/* lib/ospab_admin.h's pure helpers: the audit cursor, time parameters, LIKE patterns and
 * Proxmox volume ids. */
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include "tests.h"
#include "ospab_admin.h"

START_TEST(cursor_round_trip)
{
    const char *tok = ospab_admin_cursor_encode(test_pool, "2030-01-02 03:04:05.678", "910005");
    const char *at = NULL, *id = NULL;

    /* base64url without padding: nothing a query string must escape */
    ck_assert_ptr_null(strpbrk(tok, "+/=%&"));
    ck_assert_int_eq(ospab_admin_cursor_decode(test_pool, tok, &at, &id), 0);
    ck_assert_str_eq(at, "2030-01-02 03:04:05.678");
    ck_assert_str_eq(id, "910005");
}
END_TEST

START_TEST(cursor_refuses_what_it_did_not_make)
{
    static const char *const bad[] = {
        "", "abc", "!!!!", "a b c d", "bm90IGEgY3Vyc29y",     /* "not a cursor" */
        "MjAzMC0wMS0wMiAwMzowNDowNS42Nzh8",                  /* "2030-01-02 03:04:05.678|" */
        "MjAzMC0wMS0wMiAwMzowNDowNS42Nzh8MA",                /* id 0 */
        "MjAzMC0wMS0wMnwx",                                  /* a date without time */
        "MjAzMC0wMS0wMiAwMzowNDowNS42Nzh8MQ==",              /* padded: another spelling */
        NULL
    };
    const char *at, *id;
    int i;

    for (i = 0; bad[i]; ++i) {
        ck_assert_msg(ospab_admin_cursor_decode(test_pool, bad[i], &at, &id) == -1, "%s",
                      bad[i]);
    }
    ck_assert_int_eq(ospab_admin_cursor_decode(test_pool, NULL, &at, &id), -1);
    /* the good one of the same bytes */
    ck_assert_int_eq(ospab_admin_cursor_decode(test_pool, "MjAzMC0wMS0wMiAwMzowNDowNS42Nzh8MQ",
                                               &at, &id), 0);
    ck_assert_str_eq(id, "1");
}
END_TEST

START_TEST(time_parameters)
{
    ck_assert_str_eq(ospab_admin_time_param(test_pool, "2030-01-02"), "2030-01-02 00:00:00.000");
    ck_assert_str_eq(ospab_admin_time_param(test_pool, "2030-01-02T03:04:05Z"),
                     "2030-01-02 03:04:05.000");
    ck_assert_str_eq(ospab_admin_time_param(test_pool, "2030-01-02T03:04:05.6Z"),
                     "2030-01-02 03:04:05.600");
    ck_assert_str_eq(ospab_admin_time_param(test_pool, "2030-01-02T03:04:05.678912Z"),
                     "2030-01-02 03:04:05.678");
    ck_assert_str_eq(ospab_admin_time_param(test_pool, "2028-02-29"), "2028-02-29 00:00:00.000");
    ck_assert_ptr_null(ospab_admin_time_param(test_pool, "2030-02-29"));
    ck_assert_ptr_null(ospab_admin_time_param(test_pool, "2030-13-01"));
    ck_assert_ptr_null(ospab_admin_time_param(test_pool, "2030-01-02T24:00:00Z"));
    ck_assert_ptr_null(ospab_admin_time_param(test_pool, "2030-01-02T03:04:05+03:00"));
    ck_assert_ptr_null(ospab_admin_time_param(test_pool, "2030-01-02T03:04:05.Z"));
    ck_assert_ptr_null(ospab_admin_time_param(test_pool, "yesterday"));
    ck_assert_ptr_null(ospab_admin_time_param(test_pool, NULL));
}
END_TEST

START_TEST(like_patterns_escape_wildcards)
{
    ck_assert_str_eq(ospab_admin_like(test_pool, "vps.", 0), "vps.%");
    ck_assert_str_eq(ospab_admin_like(test_pool, "a%b_c!d", 1), "%a!%b!_c!!d%");
    ck_assert_str_eq(ospab_admin_like(test_pool, "", 1), "%%");
}
END_TEST

START_TEST(volume_ids)
{
    ck_assert(ospab_admin_volid_ok("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"));
    ck_assert(ospab_admin_volid_ok("nfs-iso.1:iso/alma-9.iso"));
    ck_assert(!ospab_admin_volid_ok("debian 12"));
    ck_assert(!ospab_admin_volid_ok(":vztmpl/x.tar.zst"));
    ck_assert(!ospab_admin_volid_ok("local:"));
    ck_assert(!ospab_admin_volid_ok("local:/etc/passwd"));
    ck_assert(!ospab_admin_volid_ok("local:vztmpl/../../x"));
    ck_assert(!ospab_admin_volid_ok("local:vztmpl/a b"));
    ck_assert(!ospab_admin_volid_ok("1local:vztmpl/x"));
    ck_assert(!ospab_admin_volid_ok(NULL));
}
END_TEST

Suite *ospab_admin_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("helpers");

    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    tcase_add_test(tc, cursor_round_trip);
    tcase_add_test(tc, cursor_refuses_what_it_did_not_make);
    tcase_add_test(tc, time_parameters);
    tcase_add_test(tc, like_patterns_escape_wildcards);
    tcase_add_test(tc, volume_ids);
    suite_add_tcase(s, tc);
    return s;
}
