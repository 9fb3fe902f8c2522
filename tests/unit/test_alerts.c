/* lib/ospab_alerts.h: the alert rules without a database — rounding at the thresholds,
 * streaks, hysteresis, escalation, the e-mail cool-down, samples that are missing. The
 * defaults are the agent's (docs/agent.md, "Alerts"): high 90, clear 85, critical 95,
 * 2 samples, 1 h. */
#include <math.h>

#include <apr_pools.h>

#include "tests.h"
#include "ospab_alerts.h"

static const ospab_alert_rules_t defaults = { 90, 85, 95, 2, apr_time_from_sec(3600) };

/* One server's metric as the agent keeps it: the open alert's level and the streak. */
typedef struct {
    ospab_alert_rules_t rules;
    ospab_alert_state_t state;
    ospab_alert_decision_t d;       /* the last decision */
} metric_t;

static void start(metric_t *m, int samples)
{
    m->rules = defaults;
    m->rules.samples = samples;
    m->state.open = OSPAB_ALERT_NONE;
    m->state.streak = 0;
}

/* Decides a sample and applies it as the agent does; returns the action. */
static ospab_alert_action_e sample(metric_t *m, double percent)
{
    ospab_alert_decide(&m->rules, &m->state, 1, percent, &m->d);
    if (m->d.counted) {
        m->state.streak = m->d.streak;
    }
    if (m->d.action == OSPAB_ALERT_OPEN || m->d.action == OSPAB_ALERT_ESCALATE) {
        m->state.open = m->d.level;
    }
    else if (m->d.action == OSPAB_ALERT_CLEAR) {
        m->state.open = OSPAB_ALERT_NONE;
    }
    return m->d.action;
}

START_TEST(whole_percent_at_the_thresholds)
{
    metric_t m;

    start(&m, 1);
    /* 90 is not above 90, nor is 90.4 once rounded; 90.5 is 91 */
    ck_assert_int_eq(sample(&m, 90.0), OSPAB_ALERT_KEEP);
    ck_assert_int_eq(m.state.streak, 0);
    ck_assert_int_eq(sample(&m, 90.4), OSPAB_ALERT_KEEP);
    ck_assert(m.d.value == 90.0);
    ck_assert_int_eq(m.state.streak, 0);
    ck_assert_int_eq(sample(&m, 90.5), OSPAB_ALERT_OPEN);
    ck_assert_int_eq(m.d.level, OSPAB_ALERT_WARNING);
    ck_assert(m.d.value == 91.0);
    /* clear: 84.5 is 85, not below 85; 84.4 is 84 */
    ck_assert_int_eq(sample(&m, 84.5), OSPAB_ALERT_KEEP);
    ck_assert_int_eq(m.state.open, OSPAB_ALERT_WARNING);
    ck_assert_int_eq(sample(&m, 84.4), OSPAB_ALERT_CLEAR);
    ck_assert(m.d.value == 84.0);
    /* 95 % is a warning (the client documentation's example: "CPU usage is at 95%", level
     * warning), critical only above 95; 94.96 is 95 everywhere */
    start(&m, 1);
    ck_assert_int_eq(sample(&m, 94.96), OSPAB_ALERT_OPEN);
    ck_assert_int_eq(m.d.level, OSPAB_ALERT_WARNING);
    ck_assert(m.d.value == 95.0);
    start(&m, 1);
    ck_assert_int_eq(sample(&m, 95.4), OSPAB_ALERT_OPEN);
    ck_assert_int_eq(m.d.level, OSPAB_ALERT_WARNING);
    start(&m, 1);
    ck_assert_int_eq(sample(&m, 95.5), OSPAB_ALERT_OPEN);
    ck_assert_int_eq(m.d.level, OSPAB_ALERT_CRITICAL);
    ck_assert(m.d.value == 96.0);
}
END_TEST

START_TEST(rounding)
{
    ck_assert(ospab_alert_round(94.96) == 95.0);
    ck_assert(ospab_alert_round(90.49) == 90.0);
    ck_assert(ospab_alert_round(90.5) == 91.0);
    ck_assert(ospab_alert_round(0.4) == 0.0);
    ck_assert(ospab_alert_round(0.0) == 0.0);
    ck_assert(ospab_alert_round(-0.5) == 0.0);
    ck_assert(ospab_alert_round(-0.6) == -1.0);
    ck_assert(ospab_alert_round(250.5) == 251.0);
    ck_assert(ospab_alert_round(1e300) == 1e300);
    /* what floor(x + 0.5) gives, over a range of samples */
    {
        int i;

        for (i = -2000; i <= 20000; ++i) {
            double x = i / 97.0;

            ck_assert(ospab_alert_round(x) == floor(x + 0.5));
        }
    }
}
END_TEST

START_TEST(streaks)
{
    metric_t m;

    start(&m, 2);
    /* one sample above is not enough */
    ck_assert_int_eq(sample(&m, 92), OSPAB_ALERT_KEEP);
    ck_assert_int_eq(m.state.streak, 1);
    /* a sample from clear to high breaks the streak */
    ck_assert_int_eq(sample(&m, 88), OSPAB_ALERT_KEEP);
    ck_assert_int_eq(m.state.streak, 0);
    ck_assert_int_eq(sample(&m, 92), OSPAB_ALERT_KEEP);
    ck_assert_int_eq(sample(&m, 92), OSPAB_ALERT_OPEN);
    ck_assert_int_eq(m.d.level, OSPAB_ALERT_WARNING);
    /* the streak stops counting at samples while the alert stays open */
    ck_assert_int_eq(sample(&m, 93), OSPAB_ALERT_KEEP);
    ck_assert_int_eq(m.state.streak, 2);
    /* three samples */
    start(&m, 3);
    ck_assert_int_eq(sample(&m, 99), OSPAB_ALERT_KEEP);
    ck_assert_int_eq(sample(&m, 99), OSPAB_ALERT_KEEP);
    ck_assert_int_eq(sample(&m, 99), OSPAB_ALERT_OPEN);
    ck_assert_int_eq(m.d.level, OSPAB_ALERT_CRITICAL);
    /* a clear starts over */
    start(&m, 2);
    sample(&m, 92);
    sample(&m, 92);
    ck_assert_int_eq(sample(&m, 10), OSPAB_ALERT_CLEAR);
    ck_assert_int_eq(m.state.streak, 0);
    ck_assert_int_eq(sample(&m, 92), OSPAB_ALERT_KEEP);
    ck_assert_int_eq(sample(&m, 92), OSPAB_ALERT_OPEN);
    /* an open alert (the agent restarted: no streak) is escalated only after the streak */
    m.state.open = OSPAB_ALERT_WARNING;
    m.state.streak = 0;
    ck_assert_int_eq(sample(&m, 97), OSPAB_ALERT_KEEP);
    ck_assert_int_eq(sample(&m, 97), OSPAB_ALERT_ESCALATE);
}
END_TEST

START_TEST(hysteresis)
{
    metric_t m;

    start(&m, 1);
    ck_assert_int_eq(sample(&m, 92), OSPAB_ALERT_OPEN);
    /* from 85 to 90 the alert stays open, once per server and metric */
    ck_assert_int_eq(sample(&m, 87), OSPAB_ALERT_KEEP);
    ck_assert_int_eq(sample(&m, 85), OSPAB_ALERT_KEEP);
    ck_assert_int_eq(sample(&m, 90), OSPAB_ALERT_KEEP);
    ck_assert_int_eq(m.state.open, OSPAB_ALERT_WARNING);
    ck_assert_int_eq(sample(&m, 92), OSPAB_ALERT_KEEP);
    ck_assert_int_eq(sample(&m, 84), OSPAB_ALERT_CLEAR);
    /* below clear with nothing open: nothing to do */
    ck_assert_int_eq(sample(&m, 50), OSPAB_ALERT_KEEP);
    ck_assert_int_eq(sample(&m, 0), OSPAB_ALERT_KEEP);
    /* other thresholds */
    m.rules.high = 70;
    m.rules.clear = 60;
    m.rules.critical = 80;
    ck_assert_int_eq(sample(&m, 71), OSPAB_ALERT_OPEN);
    ck_assert_int_eq(sample(&m, 65), OSPAB_ALERT_KEEP);
    ck_assert_int_eq(sample(&m, 59), OSPAB_ALERT_CLEAR);
}
END_TEST

START_TEST(escalation_and_mail)
{
    metric_t m;

    start(&m, 1);
    /* warnings are not e-mailed */
    ck_assert_int_eq(sample(&m, 92), OSPAB_ALERT_OPEN);
    ck_assert(!m.d.mail);
    /* worse: critical, e-mailed */
    ck_assert_int_eq(sample(&m, 97), OSPAB_ALERT_ESCALATE);
    ck_assert_int_eq(m.d.level, OSPAB_ALERT_CRITICAL);
    ck_assert(m.d.mail);
    /* a critical alert stays critical, and is not e-mailed again while it stays open */
    ck_assert_int_eq(sample(&m, 99), OSPAB_ALERT_KEEP);
    ck_assert(!m.d.mail);
    ck_assert_int_eq(sample(&m, 92), OSPAB_ALERT_KEEP);
    ck_assert_int_eq(m.state.open, OSPAB_ALERT_CRITICAL);
    /* an open warning with another warning's sample: nothing (its value stays) */
    start(&m, 1);
    sample(&m, 91);
    ck_assert_int_eq(sample(&m, 94), OSPAB_ALERT_KEEP);
    /* a new alert that is critical at once is e-mailed */
    start(&m, 2);
    sample(&m, 100);
    ck_assert_int_eq(sample(&m, 100), OSPAB_ALERT_OPEN);
    ck_assert_int_eq(m.d.level, OSPAB_ALERT_CRITICAL);
    ck_assert(m.d.mail);
    ck_assert(m.d.value == 100.0);
}
END_TEST

START_TEST(cooldown)
{
    apr_time_t now = apr_time_from_sec(1800000000), hour = apr_time_from_sec(3600);
    ospab_alert_rules_t r = defaults;

    /* never e-mailed */
    ck_assert(ospab_alert_mail_due(&r, 0, now));
    /* within the hour, also for an alert that was cleared and opened again */
    ck_assert(!ospab_alert_mail_due(&r, now, now));
    ck_assert(!ospab_alert_mail_due(&r, now - hour + apr_time_from_msec(1), now));
    /* an hour ago or more: again */
    ck_assert(ospab_alert_mail_due(&r, now - hour, now));
    ck_assert(ospab_alert_mail_due(&r, now - 2 * hour, now));
    /* no cool-down: every critical alert, but not one stamped in the future */
    r.cooldown = 0;
    ck_assert(ospab_alert_mail_due(&r, now, now));
    ck_assert(!ospab_alert_mail_due(&r, now + apr_time_from_msec(1), now));
}
END_TEST

START_TEST(missing_samples)
{
    metric_t m;
    ospab_alert_decision_t d;

    start(&m, 2);
    sample(&m, 92);
    ck_assert_int_eq(m.state.streak, 1);
    /* a guest that does not report the metric (no maxmem, a stopped guest): nothing moves,
     * not even the streak */
    ospab_alert_decide(&m.rules, &m.state, 0, 99, &d);
    ck_assert(!d.counted);
    ck_assert_int_eq(d.action, OSPAB_ALERT_KEEP);
    ck_assert_int_eq(d.streak, 1);
    ospab_alert_decide(&m.rules, &m.state, 1, NAN, &d);
    ck_assert(!d.counted);
    ck_assert_int_eq(d.action, OSPAB_ALERT_KEEP);
    ck_assert_int_eq(d.streak, 1);
    ck_assert(!d.mail);
    /* nor does it clear an open alert */
    m.state.open = OSPAB_ALERT_CRITICAL;
    ospab_alert_decide(&m.rules, &m.state, 0, 0, &d);
    ck_assert_int_eq(d.action, OSPAB_ALERT_KEEP);
    ospab_alert_decide(&m.rules, &m.state, 1, NAN, &d);
    ck_assert_int_eq(d.action, OSPAB_ALERT_KEEP);
    /* the next real sample goes on from the streak */
    m.state.open = OSPAB_ALERT_NONE;
    ck_assert_int_eq(sample(&m, 92), OSPAB_ALERT_OPEN);
}
END_TEST

/* What lets the agent skip the state of a server that has none: a sample "wakes" it
 * exactly when the full decision from the empty state would give a streak or an action,
 * at every threshold's rounding and for missing samples. */
START_TEST(only_a_sample_above_the_threshold_wakes_an_empty_state)
{
    static const ospab_alert_state_t empty = { OSPAB_ALERT_NONE, 0 };
    ospab_alert_rules_t r = defaults;
    ospab_alert_decision_t d;
    int samples, have, i, woke = 0;

    for (samples = 0; samples <= 3; ++samples) {
        r.samples = samples;
        for (have = 0; have <= 1; ++have) {
            for (i = -20; i <= 2020; ++i) {
                double pc = i / 20.0;           /* -1 % to 101 % by 0.05 */

                ospab_alert_decide(&r, &empty, have, pc, &d);
                ck_assert_int_eq(ospab_alert_wakes(&r, have, pc),
                                 d.streak != 0 || d.action != OSPAB_ALERT_KEEP);
                woke += ospab_alert_wakes(&r, have, pc);
            }
            ck_assert_int_eq(ospab_alert_wakes(&r, have, NAN), 0);
        }
    }
    ck_assert_int_eq(ospab_alert_wakes(&defaults, 1, 90.49), 0);   /* 90 is not above 90 */
    ck_assert_int_eq(ospab_alert_wakes(&defaults, 1, 90.5), 1);    /* 91 is */
    ck_assert_int_gt(woke, 0);
}
END_TEST

START_TEST(names_and_messages)
{
    apr_pool_t *p;

    apr_pool_create(&p, NULL);
    ck_assert_str_eq(ospab_alert_metric_name(OSPAB_ALERT_CPU), "cpu");
    ck_assert_str_eq(ospab_alert_metric_name(OSPAB_ALERT_MEMORY), "memory");
    ck_assert_str_eq(ospab_alert_metric_name(OSPAB_ALERT_DISK), "disk");
    ck_assert_ptr_null(ospab_alert_metric_name((ospab_alert_metric_e)3));
    ck_assert_str_eq(ospab_alert_level_name(OSPAB_ALERT_WARNING), "warning");
    ck_assert_str_eq(ospab_alert_level_name(OSPAB_ALERT_CRITICAL), "critical");
    ck_assert_ptr_null(ospab_alert_level_name(OSPAB_ALERT_NONE));
    ck_assert_int_eq(ospab_alert_level_of("critical"), OSPAB_ALERT_CRITICAL);
    ck_assert_int_eq(ospab_alert_level_of("warning"), OSPAB_ALERT_WARNING);
    ck_assert_int_eq(ospab_alert_level_of(NULL), OSPAB_ALERT_WARNING);
    /* the words the panel's client documentation shows */
    ck_assert_str_eq(ospab_alert_message(p, OSPAB_ALERT_CPU, 95), "CPU usage is at 95%");
    ck_assert_str_eq(ospab_alert_message(p, OSPAB_ALERT_MEMORY, 97), "Memory usage is at 97%");
    ck_assert_str_eq(ospab_alert_message(p, OSPAB_ALERT_DISK, 100), "Disk usage is at 100%");
    ck_assert_str_eq(ospab_alert_message(p, OSPAB_ALERT_CPU, ospab_alert_round(94.96)),
                     "CPU usage is at 95%");
    ck_assert_ptr_null(ospab_alert_message(p, (ospab_alert_metric_e)7, 1));
    apr_pool_destroy(p);
}
END_TEST

Suite *ospab_alerts_suite(void)
{
    Suite *s = suite_create("alerts");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, whole_percent_at_the_thresholds);
    tcase_add_test(tc, rounding);
    tcase_add_test(tc, streaks);
    tcase_add_test(tc, hysteresis);
    tcase_add_test(tc, escalation_and_mail);
    tcase_add_test(tc, cooldown);
    tcase_add_test(tc, missing_samples);
    tcase_add_test(tc, only_a_sample_above_the_threshold_wakes_an_empty_state);
    tcase_add_test(tc, names_and_messages);
    suite_add_tcase(s, tc);
    return s;
}
