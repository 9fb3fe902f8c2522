/* ospab core: the alert rules (docs/agent.md, "Alerts"), without a database. For one
 * sample of one server's metric, given what is open and how many samples in a row were
 * above the threshold, says what happens: nothing, an alert opens, a warning becomes
 * critical, or the open alert clears; and whether the owner is e-mailed.
 *
 *   - a sample is rounded to a whole percent once; the thresholds, the level, the message
 *     and the stored value all use that number ("CPU usage is at 95%", as the panel's
 *     client documentation shows it);
 *   - above high for samples samples in a row: an alert opens, critical above critical,
 *     otherwise warning; at most one is open per server and metric;
 *   - an open warning whose sample is critical becomes critical (escalation); nothing else
 *     changes an open alert: a critical one stays critical, an open one keeps its value;
 *   - below clear: the open alert clears; from clear to high (both included) it stays
 *     open (hysteresis) and the streak starts over;
 *   - a critical alert, new or escalated, is e-mailed unless one for the same server and
 *     metric went out within cooldown (also across a clear and a new alert). */
#ifndef OSPAB_ALERTS_H
#define OSPAB_ALERTS_H

#include <apr_pools.h>
#include <apr_time.h>

typedef enum { OSPAB_ALERT_CPU = 0, OSPAB_ALERT_MEMORY, OSPAB_ALERT_DISK } ospab_alert_metric_e;
#define OSPAB_ALERT_METRICS 3

typedef enum {
    OSPAB_ALERT_NONE = 0,           /* no alert open */
    OSPAB_ALERT_WARNING,
    OSPAB_ALERT_CRITICAL
} ospab_alert_level_e;

typedef enum {
    OSPAB_ALERT_KEEP = 0,           /* nothing to write (the streak may have moved) */
    OSPAB_ALERT_OPEN,               /* a new alert at d->level */
    OSPAB_ALERT_ESCALATE,           /* the open warning becomes critical */
    OSPAB_ALERT_CLEAR               /* the open alert clears */
} ospab_alert_action_e;

/* [alerts] of the agent's configuration (percentages and the e-mail cool-down) */
typedef struct {
    double high;                    /* an alert opens above this (90) */
    double clear;                   /* the open alert clears below this (85) */
    double critical;                /* critical above this (95), warning up to it */
    int samples;                    /* samples above high in a row that open an alert (2) */
    apr_interval_time_t cooldown;   /* between two e-mails for one server and metric (1 h) */
} ospab_alert_rules_t;

/* What is known of one server's metric before the sample. */
typedef struct {
    ospab_alert_level_e open;       /* the open alert's level; OSPAB_ALERT_NONE: none */
    int streak;                     /* samples above high in a row so far */
} ospab_alert_state_t;

typedef struct {
    int counted;                    /* 0: no sample (missing, NaN): nothing at all changes */
    ospab_alert_action_e action;
    ospab_alert_level_e level;      /* OPEN, ESCALATE: the alert's level */
    double value;                   /* the sample in whole percent */
    int streak;                     /* the streak after this sample (keep it) */
    int mail;                       /* OPEN, ESCALATE: e-mail the owner, unless
                                     * ospab_alert_mail_due says the cool-down runs */
} ospab_alert_decision_t;

/* Decides one sample; percent is NaN or have is 0 when the guest did not report it. */
void ospab_alert_decide(const ospab_alert_rules_t *rules, const ospab_alert_state_t *state,
                        int have, double percent, ospab_alert_decision_t *d);

/* 1 when a sample of a metric with no open alert and no streak (the state of almost every
 * server) changes that state: it is above the threshold. The same as ospab_alert_decide
 * from that empty state giving a streak or an action; lets the agent look the state of
 * only the servers that have one. */
int ospab_alert_wakes(const ospab_alert_rules_t *rules, int have, double percent);

/* 1 when an e-mail may go out now: none for the server and metric yet (last_notified 0) or
 * the last one at least the cool-down ago. */
int ospab_alert_mail_due(const ospab_alert_rules_t *rules, apr_time_t last_notified,
                         apr_time_t now);

/* A percentage rounded half up to a whole one, as every alert uses it. */
double ospab_alert_round(double percent);

/* "cpu", "memory", "disk" (the type of the alert rows and events); NULL for another value. */
const char *ospab_alert_metric_name(ospab_alert_metric_e metric);
/* "warning", "critical"; NULL for OSPAB_ALERT_NONE. */
const char *ospab_alert_level_name(ospab_alert_level_e level);
/* The level stored in an alert row: "critical" is critical, anything else a warning. */
ospab_alert_level_e ospab_alert_level_of(const char *name);
/* The alert's message, as the panel's client documentation shows it: "CPU usage is at 95%". */
const char *ospab_alert_message(apr_pool_t *p, ospab_alert_metric_e metric, double value);

#endif
