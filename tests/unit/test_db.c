/* Unit tests: the statement sets (lib/ospab_sql.c, lib/ospab_sql_agent.c). Every statement
 * prepares on a database migrated by the real migrations (the fixture), labels are unique
 * across the sets, and the module's set leaves the agent's own out. */
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "tests.h"
#include "fixture.h"

START_TEST(labels_are_unique_literals_across_the_sets)
{
    apr_pool_t *p;
    apr_hash_t *seen;
    unsigned set;
    int n[3] = { 0, 0, 0 };

    apr_pool_create(&p, NULL);
    seen = apr_hash_make(p);
    for (set = OSPAB_SQL_API; set <= OSPAB_SQL_AGENT; set <<= 1) {
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

    ck_assert_int_eq(fx->db.sets, OSPAB_SQL_API | OSPAB_SQL_AGENT);
    ck_assert_ptr_nonnull(apr_hash_get(fx->db.prepared, "ospab_vps_get", APR_HASH_KEY_STRING));
    ck_assert_ptr_nonnull(apr_hash_get(fx->db.prepared, "ospab_lease_get",
                                       APR_HASH_KEY_STRING));
    fx_close(fx);
}
END_TEST

Suite *ospab_db_suite(void)
{
    Suite *s = suite_create("statements");
    TCase *tc = tcase_create("sets");

    tcase_add_test(tc, labels_are_unique_literals_across_the_sets);
    tcase_add_test(tc, every_statement_prepares_on_the_migrated_schema);
    suite_add_tcase(s, tc);
    return s;
}
