/* Runs every unit-test suite of the core library; exits non-zero if any test fails. */
#include <stdlib.h>

#include <apr_general.h>

#include "tests.h"

apr_pool_t *test_pool;

void test_pool_setup(void)
{
    ck_assert_int_eq(apr_pool_create(&test_pool, NULL), APR_SUCCESS);
}

void test_pool_teardown(void)
{
    apr_pool_destroy(test_pool);
    test_pool = NULL;
}

int main(void)
{
    SRunner *sr;
    int failed;

    if (apr_initialize() != APR_SUCCESS) {
        return EXIT_FAILURE;
    }
    sr = srunner_create(ospab_json_suite());
    srunner_add_suite(sr, ospab_util_suite());
    srunner_add_suite(sr, ospab_route_suite());
    srunner_add_suite(sr, ospab_fields_suite());
    srunner_add_suite(sr, ospab_pve_suite());
    srunner_add_suite(sr, ospab_outbox_suite());
    srunner_add_suite(sr, ospab_limits_suite());
    srunner_add_suite(sr, ospab_db_suite());
    srunner_add_suite(sr, ospab_sync_suite());
    srunner_add_suite(sr, ospab_session_suite());
    srunner_add_suite(sr, ospab_console_suite());
    srunner_add_suite(sr, ospab_task_suite());
    srunner_add_suite(sr, ospab_alerts_suite());
    srunner_add_suite(sr, ospab_sio_codec_suite());
    srunner_add_suite(sr, ospab_migrate_suite());
    srunner_add_suite(sr, ospab_net_suite());
    srunner_add_suite(sr, ospab_prom_suite());
    srunner_add_suite(sr, ospab_admin_suite());
    srunner_add_suite(sr, ospab_sshkeys_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    apr_terminate();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
