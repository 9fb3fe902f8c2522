/* ospab unit tests (Check): one suite per core area, run together by test_main.c. */
#ifndef OSPAB_TESTS_H
#define OSPAB_TESTS_H

#include <check.h>

Suite *ospab_json_suite(void);
Suite *ospab_util_suite(void);
Suite *ospab_route_suite(void);
Suite *ospab_fields_suite(void);
Suite *ospab_pve_suite(void);
Suite *ospab_outbox_suite(void);
Suite *ospab_limits_suite(void);
Suite *ospab_sio_codec_suite(void);
Suite *ospab_migrate_suite(void);
Suite *ospab_net_suite(void);

#endif
