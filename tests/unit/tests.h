/* ospab unit tests (Check): one suite per core area, run together by test_main.c. */
#ifndef OSPAB_TESTS_H
#define OSPAB_TESTS_H

#include <check.h>
#include <apr_pools.h>

/* The pool of the running test: the checked fixture test_pool_setup / test_pool_teardown
 * (test_main.c) makes it before each test and destroys it after. */
extern apr_pool_t *test_pool;
void test_pool_setup(void);
void test_pool_teardown(void);

Suite *ospab_json_suite(void);
Suite *ospab_util_suite(void);
Suite *ospab_route_suite(void);
Suite *ospab_fields_suite(void);
Suite *ospab_pve_suite(void);
Suite *ospab_outbox_suite(void);
Suite *ospab_limits_suite(void);
Suite *ospab_db_suite(void);
Suite *ospab_sync_suite(void);
Suite *ospab_session_suite(void);
Suite *ospab_console_suite(void);
Suite *ospab_task_suite(void);
Suite *ospab_alerts_suite(void);
Suite *ospab_sio_codec_suite(void);
Suite *ospab_migrate_suite(void);
Suite *ospab_net_suite(void);
Suite *ospab_prom_suite(void);
Suite *ospab_admin_suite(void);
Suite *ospab_sshkeys_suite(void);

#endif
