/* ospab-agent: the alert round's reads and writes (docs/agent.md, "Alerts"). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "agent_monitor_int.h"
#include "ospab_events.h"
#include "ospab_mail.h"
#include "ospab_util.h"
#include "agent_metrics.h"

/* A row of ospab_agent_alerts_open and ospab_agent_alerts_open_of: an open alert. */
typedef struct {
    const char *id, *vps_id;
    const char *type;               /* "cpu", "memory", "disk" */
    const char *level;              /* "warning", "critical" */
    const char *value_text;
    const char *message, *opened_at;
    const char *last_notified_at;   /* NULL: not e-mailed */
    double value;                   /* whole percent */
} open_alert_t;

/* id, vps_id, type, level, value, message, opened_at, last_notified_at */
static const apr_size_t alert_cols[] = {
    offsetof(open_alert_t, id), offsetof(open_alert_t, vps_id), offsetof(open_alert_t, type),
    offsetof(open_alert_t, level), offsetof(open_alert_t, value_text),
    offsetof(open_alert_t, message), offsetof(open_alert_t, opened_at),
    offsetof(open_alert_t, last_notified_at)
};
static const ospab_row_shape_t alert_shape =
    OSPAB_ROW_SHAPE(alert_cols, open_alert_t, OSPAB_ROW_NO_RAW);

static void alert_from_row(ospab_row_t r, open_alert_t *a)
{
    ospab_row_fill(&alert_shape, r, a);
    a->value = a->value_text ? atof(a->value_text) : 0.0;
}

/* The one value of ospab_alert_last_notified: when an e-mail last went out for a server
 * and type, 0 for never. */
static apr_time_t last_notified_from_row(ospab_row_t r)
{
    return r && r[0] ? ospab_time_parse_db(r[0]) : 0;
}

apr_hash_t *agent_alerts_open(ospab_db_t *db, apr_pool_t *p)
{
    apr_hash_t *h = apr_hash_make(p);
    apr_array_header_t *rows;
    open_alert_t *all;
    int i;

    if (ospab_db_select(db, p, "ospab_agent_alerts_open", 0, NULL, &rows, NULL)
        != APR_SUCCESS) {
        return NULL;
    }
    all = apr_palloc(p, sizeof(*all) * (apr_size_t)(rows->nelts + 1));
    for (i = 0; i < rows->nelts; ++i) {
        open_alert_t *a = &all[i];

        alert_from_row(APR_ARRAY_IDX(rows, i, ospab_row_t), a);
        apr_hash_set(h, apr_pstrcat(p, a->vps_id, ":", a->type, NULL), APR_HASH_KEY_STRING, a);
    }
    return h;
}

json_t *agent_alerts_message(ospab_db_t *db, apr_pool_t *p, const char *vps_id)
{
    apr_array_header_t *rows;
    json_t *list = json_array();
    int i;

    if (ospab_db_select(db, p, "ospab_agent_alerts_open_of", 1, &vps_id, &rows, NULL)
        == APR_SUCCESS) {
        for (i = 0; i < rows->nelts; ++i) {
            open_alert_t a;

            alert_from_row(APR_ARRAY_IDX(rows, i, ospab_row_t), &a);
            json_array_append_new(list, json_pack(
                "{s:s, s:s, s:s, s:I, s:f, s:s}", "type", a.type, "message", a.message,
                "level", a.level, "id", (json_int_t)apr_atoi64(a.id), "value", a.value,
                "openedAt", ospab_time_api(p, a.opened_at)));
        }
    }
    return json_pack("{s:I, s:o}", "serverId", (json_int_t)apr_atoi64(vps_id), "alerts", list);
}

/* The agent's [alerts] as the core's rules. */
static void rules_of(const agent_conf_t *c, ospab_alert_rules_t *r)
{
    r->high = c->alert_high;
    r->clear = c->alert_clear;
    r->critical = c->alert_critical;
    r->samples = c->alert_samples;
    r->cooldown = c->alert_cooldown;
}

/* Opens the transaction of an alert of v's: 1 when it is open and v's cluster still this
 * agent's (agent_lease_fence); 0: nothing open. */
static int begin_fenced(agent_t *ag, ospab_db_t *db, apr_pool_t *p, const agent_vps_t *v)
{
    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        return 0;
    }
    if (!agent_lease_fence(ag, db, p, agent_cluster_of_node(ag, v->node))) {
        ospab_db_end(db, 0);        /* the cluster is another agent's now */
        return 0;
    }
    return 1;
}

/* Clears v's open alert cur, with its alert.cleared event. 1: cleared now. */
static int alert_clear(agent_t *ag, ospab_db_t *db, apr_pool_t *p, const agent_vps_t *v,
                       const open_alert_t *cur, ospab_alert_metric_e type, double value,
                       apr_time_t now)
{
    const char *args[2] = { ospab_time_db(p, now), cur->id };
    int n = 0, good, attempt = 0;

    do {                            /* again after a write conflict (Galera) */
        if (!begin_fenced(ag, db, p, v)) {
            return 0;
        }
        good = ospab_db_exec(db, p, "ospab_alert_clear", 2, args, &n) == APR_SUCCESS;
        if (good && n == 1) {
            json_t *data = json_pack("{s:I, s:I, s:I, s:s, s:f}",
                                     "serverId", (json_int_t)apr_atoi64(v->id),
                                     "userId", (json_int_t)apr_atoi64(v->user_id),
                                     "alertId", (json_int_t)apr_atoi64(cur->id),
                                     "type", ospab_alert_metric_name(type), "value", value);

            good = ospab_event_add(db, p, now, OSPAB_EVENT_ALERT_CLEARED, data) == APR_SUCCESS;
            json_decref(data);
        }
        good = ospab_db_end(db, good) == APR_SUCCESS && good;
    } while (!good && agent_db_conflict_again(db, &attempt));
    if (!good) {
        AGENT_WARN("alert %s not cleared: %s", cur->id, db->error ? db->error : "?");
        return 0;
    }
    mon_of(ag)->cleared += n;
    return n > 0;
}

/* Opens an alert for v (cur NULL), or makes its open warning cur critical, as d says: the
 * row, its alert.opened event and, for a critical one whose e-mail the cool-down allows,
 * the owner's e-mail, in one transaction. 1: stored. */
static int alert_raise(agent_t *ag, ospab_db_t *db, apr_pool_t *p, const agent_vps_t *v,
                       const open_alert_t *cur, ospab_alert_metric_e type,
                       const ospab_alert_rules_t *rules, const ospab_alert_decision_t *d,
                       apr_time_t now)
{
    const char *tname = ospab_alert_metric_name(type);
    const char *level = ospab_alert_level_name(d->level);
    const char *message = ospab_alert_message(p, type, d->value);
    const char *nowt = ospab_time_db(p, now);
    const char *val = apr_psprintf(p, "%.0f", d->value);
    const char *alert_id = cur ? cur->id : NULL;
    int notify = 0, good, attempt = 0;

    if (d->mail) {
        const char *args[2] = { v->id, tname };
        ospab_row_t last = NULL;

        /* the cool-down counts from the last e-mail for this server and type, also one
         * of an alert cleared since; a database that does not say lets the e-mail go */
        notify = ospab_db_select_one(db, p, "ospab_alert_last_notified", 2, args, &last)
                 != APR_SUCCESS
                 || ospab_alert_mail_due(rules, last_notified_from_row(last), now);
    }
    do {                            /* again after a write conflict (Galera) */
        if (!begin_fenced(ag, db, p, v)) {
            return 0;
        }
        if (cur) {
            const char *args[5] = { level, message, val, notify ? nowt : cur->last_notified_at,
                                    cur->id };

            good = ospab_db_exec(db, p, "ospab_alert_update", 5, args, NULL) == APR_SUCCESS;
        }
        else {
            const char *args[7] = { v->id, tname, level, message, val, nowt,
                                    notify ? nowt : NULL };

            good = ospab_db_exec(db, p, "ospab_alert_insert", 7, args, NULL) == APR_SUCCESS
                   && ospab_db_last_id(db, p, &alert_id) == APR_SUCCESS;
        }
        if (good) {
            json_t *data = json_pack("{s:I, s:I, s:I, s:s, s:s, s:f, s:s, s:b}",
                                     "serverId", (json_int_t)apr_atoi64(v->id),
                                     "userId", (json_int_t)apr_atoi64(v->user_id),
                                     "alertId", (json_int_t)apr_atoi64(alert_id),
                                     "type", tname, "level", level,
                                     "value", d->value, "message", message,
                                     "escalated", cur != NULL);

            good = ospab_event_add(db, p, now, OSPAB_EVENT_ALERT_OPENED, data) == APR_SUCCESS;
            json_decref(data);
        }
        if (good && notify) {
            const char *why = NULL;
            json_t *vars = json_pack("{s:I, s:s, s:s, s:f, s:s, s:s}",
                                     "serverId", (json_int_t)apr_atoi64(v->id),
                                     "serverName", v->name ? v->name : "",
                                     "type", tname, "value", d->value,
                                     "level", level, "message", message);
            /* one e-mail per alert episode and level, even if this round is repeated */
            const char *dedupe = apr_psprintf(p, "alert:%s:%s:%s:%s", v->id, tname, level, nowt);
            apr_status_t rv = ospab_mail_queue_user(db, p, now, v->user_id, "alert", vars,
                                                    dedupe, &why);

            json_decref(vars);
            if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
                if (!db->conflict) {    /* a conflict is tried again below */
                    AGENT_WARN("alert e-mail for server %s not queued: %s", v->id,
                               why ? why : "?");
                }
                good = 0;
            }
        }
        good = ospab_db_end(db, good) == APR_SUCCESS && good;
    } while (!good && agent_db_conflict_again(db, &attempt));
    if (!good) {
        AGENT_WARN("alert for server %s (%s) not stored: %s", v->id, tname,
                   db->error ? db->error : "?");
        return 0;
    }
    if (!cur) {
        mon_of(ag)->opened++;
        AGENT_COUNT(alerts);
    }
    AGENT_INFO("alert %s: server %s %s", level, v->id, message);
    return 1;
}

/* "vps:type" -> vps, into set */
static void add_server(apr_hash_t *set, apr_pool_t *p, const char *key)
{
    const char *colon = strchr(key, ':');

    if (colon) {
        const char *id = apr_pstrmemdup(p, key, (apr_size_t)(colon - key));

        apr_hash_set(set, id, APR_HASH_KEY_STRING, id);
    }
}

apr_hash_t *agent_alerts_warm(agent_t *ag, apr_hash_t *open, apr_pool_t *p)
{
    monitor_t *m = mon_of(ag);
    apr_hash_t *warm = apr_hash_make(p);
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(p, open); hi; hi = apr_hash_next(hi)) {
        add_server(warm, p, apr_hash_this_key(hi));
    }
    for (hi = apr_hash_first(p, m->streak); hi; hi = apr_hash_next(hi)) {
        if (*(const int *)apr_hash_this_val(hi)) {
            add_server(warm, p, apr_hash_this_key(hi));
        }
    }
    return warm;
}

int agent_alert_wakes(const agent_t *ag, double value, int have)
{
    ospab_alert_rules_t rules;

    rules_of(ag->conf, &rules);
    return ospab_alert_wakes(&rules, have, value);
}

/* Decides for one sample of one server (lib/ospab_alerts.c) and writes what the decision
 * says. Returns 1 when its open alerts changed. */
int agent_alert_sample(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_hash_t *open,
                       const agent_vps_t *v, ospab_alert_metric_e type, double value,
                       int have, apr_time_t now)
{
    monitor_t *m = mon_of(ag);
    const char *key = apr_pstrcat(p, v->id, ":", ospab_alert_metric_name(type), NULL);
    int *streak = apr_hash_get(m->streak, key, APR_HASH_KEY_STRING);
    const open_alert_t *cur = apr_hash_get(open, key, APR_HASH_KEY_STRING);
    ospab_alert_rules_t rules;
    ospab_alert_state_t state;
    ospab_alert_decision_t d;

    rules_of(ag->conf, &rules);
    state.open = cur ? ospab_alert_level_of(cur->level) : OSPAB_ALERT_NONE;
    state.streak = streak ? *streak : 0;
    ospab_alert_decide(&rules, &state, have, value, &d);
    if (!d.counted) {
        return 0;
    }
    if (!streak && d.streak) {      /* no entry is a streak of 0: none made for one */
        streak = apr_pcalloc(m->state_pool, sizeof(*streak));
        apr_hash_set(m->streak, apr_pstrdup(m->state_pool, key), APR_HASH_KEY_STRING, streak);
    }
    if (streak) {
        *streak = d.streak;
    }
    switch (d.action) {
    case OSPAB_ALERT_CLEAR:
        return alert_clear(ag, db, p, v, cur, type, d.value, now);
    case OSPAB_ALERT_OPEN:
    case OSPAB_ALERT_ESCALATE:
        return alert_raise(ag, db, p, v, cur, type, &rules, &d, now);
    case OSPAB_ALERT_KEEP:
        break;
    }
    return 0;
}
