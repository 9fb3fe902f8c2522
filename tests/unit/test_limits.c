/* Unit tests: the shared-memory counters (login rate limit, live-push budget) and the
 * e-mail login key. The counters live in anonymous shared memory behind a global mutex,
 * as in Apache; here one process uses them. */
#include <string.h>
#include <stdio.h>

#include <apr_general.h>
#include <apr_global_mutex.h>
#include <apr_strings.h>

#include "tests.h"
#include "ospab_gauge.h"
#include "ospab_ratelimit.h"
#include "ospab_util.h"

static apr_pool_t *pool;
static apr_global_mutex_t *mutex;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
    ck_assert_int_eq(apr_global_mutex_create(&mutex, NULL, APR_LOCK_DEFAULT, pool),
                     APR_SUCCESS);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

START_TEST(gauge_total_and_per_key)
{
    ospab_gauge_t *g;
    int per;

    ck_assert_int_eq(ospab_gauge_create(pool, 16, &mutex, &g), APR_SUCCESS);
    ck_assert_int_eq(ospab_gauge_take(g, "10.0.0.1", 3, 2), OSPAB_GAUGE_TAKEN);
    ck_assert_int_eq(ospab_gauge_take(g, "10.0.0.1", 3, 2), OSPAB_GAUGE_TAKEN);
    /* the address is at its cap, others are not */
    ck_assert_int_eq(ospab_gauge_take(g, "10.0.0.1", 3, 2), OSPAB_GAUGE_KEY_FULL);
    ck_assert_int_eq(ospab_gauge_take(g, "10.0.0.2", 3, 2), OSPAB_GAUGE_TAKEN);
    /* the total is at its cap: nobody gets in, a refusal counts nothing */
    ck_assert_int_eq(ospab_gauge_take(g, "10.0.0.3", 3, 2), OSPAB_GAUGE_FULL);
    ck_assert_int_eq(ospab_gauge_count(g, "10.0.0.3", &per), 3);
    ck_assert_int_eq(per, 0);
    ck_assert_int_eq(ospab_gauge_count(g, "10.0.0.1", &per), 3);
    ck_assert_int_eq(per, 2);
    /* giving back frees a place, for anyone */
    ospab_gauge_release(g, "10.0.0.1");
    ck_assert_int_eq(ospab_gauge_take(g, "10.0.0.3", 3, 2), OSPAB_GAUGE_TAKEN);
    ospab_gauge_release(g, "10.0.0.1");
    ospab_gauge_release(g, "10.0.0.2");
    ospab_gauge_release(g, "10.0.0.3");
    ck_assert_int_eq(ospab_gauge_count(g, "10.0.0.1", &per), 0);
    ck_assert_int_eq(per, 0);
    /* a release of something never taken changes nothing */
    ospab_gauge_release(g, "10.9.9.9");
    ck_assert_int_eq(ospab_gauge_count(g, NULL, NULL), 0);
}
END_TEST

START_TEST(gauge_table_reuses_freed_slots)
{
    ospab_gauge_t *g;
    char key[32];
    int i, round;

    /* many more distinct keys over time than slots: freed slots are reused, and a key
     * whose probe run passes a freed slot is still found */
    ck_assert_int_eq(ospab_gauge_create(pool, 8, &mutex, &g), APR_SUCCESS);
    for (round = 0; round < 50; ++round) {
        for (i = 0; i < 4; ++i) {
            apr_snprintf(key, sizeof(key), "k%d-%d", round, i);
            ck_assert_int_eq(ospab_gauge_take(g, key, 4, 0), OSPAB_GAUGE_TAKEN);
        }
        apr_snprintf(key, sizeof(key), "k%d-%d", round, 1);
        ospab_gauge_release(g, key);
        for (i = 0; i < 4; ++i) {
            int per;

            apr_snprintf(key, sizeof(key), "k%d-%d", round, i);
            ospab_gauge_count(g, key, &per);
            ck_assert_int_eq(per, i == 1 ? 0 : 1);
            if (i != 1) {
                ospab_gauge_release(g, key);
            }
        }
        ck_assert_int_eq(ospab_gauge_count(g, NULL, NULL), 0);
    }
}
END_TEST

START_TEST(ratelimit_counts_and_windows)
{
    ospab_ratelimit_t *rl;
    apr_time_t t0 = apr_time_from_sec(1000000);
    int i;

    ck_assert_int_eq(ospab_ratelimit_create(pool, 64, &mutex, &rl), APR_SUCCESS);
    for (i = 0; i < 3; ++i) {
        ck_assert_int_eq(ospab_ratelimit_take(rl, "acct:a", 3, 60, t0), 0);
    }
    ck_assert_int_eq(ospab_ratelimit_take(rl, "acct:a", 3, 60, t0 + apr_time_from_sec(10)),
                     50);
    ospab_ratelimit_give_back(rl, "acct:a", 60, t0);
    ck_assert_int_eq(ospab_ratelimit_take(rl, "acct:a", 3, 60, t0), 0);
    /* a new window starts over */
    ck_assert_int_eq(ospab_ratelimit_take(rl, "acct:a", 3, 60, t0 + apr_time_from_sec(60)), 0);
}
END_TEST

START_TEST(ratelimit_flood_cannot_evict_a_hot_counter)
{
    ospab_ratelimit_t *rl;
    apr_time_t t0 = apr_time_from_sec(2000000);
    char key[48];
    int i, refused = 0;

    /* a small table: 32 slots, probe runs of 16 */
    ck_assert_int_eq(ospab_ratelimit_create(pool, 32, &mutex, &rl), APR_SUCCESS);
    for (i = 0; i < 9; ++i) {
        ck_assert_int_eq(ospab_ratelimit_take(rl, "acct:victim", 10, 300, t0), 0);
    }
    ck_assert_int_eq(ospab_ratelimit_take(rl, "acct:victim", 10, 300, t0), 0);
    /* ten thousand fresh keys, one attempt each: they evict each other, never the
     * victim's counter, which is at its limit */
    for (i = 0; i < 10000; ++i) {
        apr_snprintf(key, sizeof(key), "acct:flood-%d", i);
        if (ospab_ratelimit_take(rl, key, 10, 300, t0 + 1) != 0) {
            ++refused;
        }
    }
    ck_assert_int_eq(refused, 0);
    ck_assert_int_gt(ospab_ratelimit_take(rl, "acct:victim", 10, 300, t0 + 2), 0);
}
END_TEST

START_TEST(ratelimit_full_of_hot_counters_refuses_new_keys)
{
    ospab_ratelimit_t *rl;
    apr_time_t t0 = apr_time_from_sec(3000000);
    char key[48];
    int i, k;

    ck_assert_int_eq(ospab_ratelimit_create(pool, 16, &mutex, &rl), APR_SUCCESS);
    for (k = 0; k < 16; ++k) {
        apr_snprintf(key, sizeof(key), "acct:hot-%d", k);
        for (i = 0; i < 2; ++i) {
            if (ospab_ratelimit_take(rl, key, 2, 300, t0) != 0) {
                break;
            }
        }
    }
    /* every slot holds a counter at its limit: a new key is refused, not let through
     * by evicting one, and told when the first of them expires */
    ck_assert_int_eq(ospab_ratelimit_take(rl, "acct:new", 2, 300, t0 + apr_time_from_sec(100)),
                     200);
    /* after the window the slots are free again */
    ck_assert_int_eq(ospab_ratelimit_take(rl, "acct:new", 2, 300, t0 + apr_time_from_sec(300)),
                     0);
}
END_TEST

START_TEST(email_key_normalises)
{
    ck_assert_str_eq(ospab_email_key(pool, "Demo@Example.COM"), "demo@example.com");
    ck_assert_str_eq(ospab_email_key(pool, "  demo@example.com \t"), "demo@example.com");
    /* NBSP and the ideographic space are white space too */
    ck_assert_str_eq(ospab_email_key(pool, "\xc2\xa0" "demo@x.ru" "\xe3\x80\x80"), "demo@x.ru");
    /* NFC: e + combining acute becomes one character */
    ck_assert_str_eq(ospab_email_key(pool, "de\xcc\x81mo@x.ru"), "d\xc3\xa9mo@x.ru");
    /* Cyrillic upper case is lowered */
    ck_assert_str_eq(ospab_email_key(pool, "\xd0\x94\xd0\x95\xd0\x9c\xd0\x9e@x.ru"),
                     "\xd0\xb4\xd0\xb5\xd0\xbc\xd0\xbe@x.ru");
    /* look-alikes stay other addresses: an accent, a full-width letter */
    ck_assert_str_ne(ospab_email_key(pool, "d\xc3\xa9mo@example.com"), "demo@example.com");
    ck_assert_str_ne(ospab_email_key(pool, "\xef\xbd\x84" "emo@example.com"), "demo@example.com");
    /* nothing to look up */
    ck_assert_ptr_null(ospab_email_key(pool, ""));
    ck_assert_ptr_null(ospab_email_key(pool, "   "));
    ck_assert_ptr_null(ospab_email_key(pool, "bad\xff@x.ru"));
    ck_assert_ptr_null(ospab_email_key(pool, NULL));
}
END_TEST

Suite *ospab_limits_suite(void)
{
    Suite *s = suite_create("limits");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, gauge_total_and_per_key);
    tcase_add_test(tc, gauge_table_reuses_freed_slots);
    tcase_add_test(tc, ratelimit_counts_and_windows);
    tcase_add_test(tc, ratelimit_flood_cannot_evict_a_hot_counter);
    tcase_add_test(tc, ratelimit_full_of_hot_counters_refuses_new_keys);
    tcase_add_test(tc, email_key_normalises);
    suite_add_tcase(s, tc);
    return s;
}
