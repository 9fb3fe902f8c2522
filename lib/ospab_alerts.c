/* ospab core: the alert rules (see ospab_alerts.h). */
#include <math.h>         /* isnan: a macro, no libm */
#include <string.h>

#include <apr_strings.h>

#include "ospab_alerts.h"

/* floor(percent + 0.5) without libm (the module links this library too): below 2^52 the
 * cast truncates exactly, above it every double is whole already */
double ospab_alert_round(double percent)
{
    double y = percent + 0.5, t;

    if (!(y > -4503599627370496.0 && y < 4503599627370496.0)) {
        return y;
    }
    t = (double)(apr_int64_t)y;
    return t > y ? t - 1 : t;
}

void ospab_alert_decide(const ospab_alert_rules_t *r, const ospab_alert_state_t *s, int have,
                        double percent, ospab_alert_decision_t *d)
{
    memset(d, 0, sizeof(*d));
    d->action = OSPAB_ALERT_KEEP;
    d->streak = s->streak;
    if (!have || isnan(percent)) {
        return;
    }
    d->counted = 1;
    d->value = ospab_alert_round(percent);
    if (d->value < r->clear) {
        d->streak = 0;
        if (s->open != OSPAB_ALERT_NONE) {
            d->action = OSPAB_ALERT_CLEAR;
        }
        return;
    }
    if (d->value <= r->high) {
        d->streak = 0;          /* between clear and high: an open alert stays open */
        return;
    }
    if (d->streak < r->samples) {
        d->streak++;
    }
    if (d->streak < r->samples) {
        return;
    }
    /* critical only above the provider's threshold, like warning above high: the client
     * documentation's example alert, "CPU usage is at 95%", is a warning with the default
     * critical = 95 */
    d->level = d->value > r->critical ? OSPAB_ALERT_CRITICAL : OSPAB_ALERT_WARNING;
    if (s->open == OSPAB_ALERT_CRITICAL
        || (s->open != OSPAB_ALERT_NONE && d->level == OSPAB_ALERT_WARNING)) {
        d->level = OSPAB_ALERT_NONE;
        return;                 /* open already, and not getting worse */
    }
    d->action = s->open != OSPAB_ALERT_NONE ? OSPAB_ALERT_ESCALATE : OSPAB_ALERT_OPEN;
    d->mail = d->level == OSPAB_ALERT_CRITICAL;
}

int ospab_alert_wakes(const ospab_alert_rules_t *r, int have, double percent)
{
    return have && !isnan(percent) && ospab_alert_round(percent) > r->high;
}

int ospab_alert_mail_due(const ospab_alert_rules_t *r, apr_time_t last_notified,
                         apr_time_t now)
{
    return !last_notified || last_notified <= now - r->cooldown;
}

const char *ospab_alert_metric_name(ospab_alert_metric_e metric)
{
    switch (metric) {
    case OSPAB_ALERT_CPU:
        return "cpu";
    case OSPAB_ALERT_MEMORY:
        return "memory";
    case OSPAB_ALERT_DISK:
        return "disk";
    }
    return NULL;
}

const char *ospab_alert_level_name(ospab_alert_level_e level)
{
    return level == OSPAB_ALERT_CRITICAL ? "critical"
         : level == OSPAB_ALERT_WARNING ? "warning" : NULL;
}

ospab_alert_level_e ospab_alert_level_of(const char *name)
{
    return name && !strcmp(name, "critical") ? OSPAB_ALERT_CRITICAL : OSPAB_ALERT_WARNING;
}

const char *ospab_alert_message(apr_pool_t *p, ospab_alert_metric_e metric, double value)
{
    static const char *const names[OSPAB_ALERT_METRICS] = { "CPU", "Memory", "Disk" };

    if ((unsigned)metric >= OSPAB_ALERT_METRICS) {
        return NULL;
    }
    return apr_psprintf(p, "%s usage is at %.0f%%", names[metric], value);
}
