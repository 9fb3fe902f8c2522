/* ospab-agent: the alert round's reads and writes (docs/agent.md, "Alerts"). */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "agent_monitor_int.h"
#include "ospab_events.h"
#include "ospab_mail.h"
#include "ospab_util.h"

/* open alerts by "vps:type" -> row (id vps_id type level value message opened_at notified) */
apr_hash_t *agent_alerts_open(ospab_db_t *db, apr_pool_t *p)
{
    apr_hash_t *h = apr_hash_make(p);
    apr_array_header_t *rows;
    int i;

    if (ospab_db_select(db, p, "ospab_agent_alerts_open", 0, NULL, &rows, NULL)
        != APR_SUCCESS) {
        return NULL;
    }
    for (i = 0; i < rows->nelts; ++i) {
        ospab_row_t r = APR_ARRAY_IDX(rows, i, ospab_row_t);

        apr_hash_set(h, apr_pstrcat(p, r[1], ":", r[2], NULL), APR_HASH_KEY_STRING, r);
    }
    return h;
}

/* The server's open alerts in seed 003's shape: {serverId, alerts:[{type,message,level,..}]} */
json_t *agent_alerts_message(ospab_db_t *db, apr_pool_t *p, const char *vps_id)
{
    apr_array_header_t *rows;
    json_t *list = json_array();
    int i;

    if (ospab_db_select(db, p, "ospab_agent_alerts_open_of", 1, &vps_id, &rows, NULL)
        == APR_SUCCESS) {
        for (i = 0; i < rows->nelts; ++i) {
            ospab_row_t r = APR_ARRAY_IDX(rows, i, ospab_row_t);

            json_array_append_new(list, json_pack(
                "{s:s, s:s, s:s, s:I, s:f, s:s}", "type", r[2], "message", r[5],
                "level", r[3], "id", (json_int_t)apr_atoi64(r[0]),
                "value", r[4] ? atof(r[4]) : 0.0, "openedAt", ospab_time_api(p, r[6])));
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

/* Clears v's open alert cur, with its alert.cleared event. 1: cleared now. */
static int alert_clear(agent_t *ag, ospab_db_t *db, apr_pool_t *p, vps_row_t v,
                       ospab_row_t cur, ospab_alert_metric_e type, double value, apr_time_t now)
{
    const char *args[2] = { ospab_time_db(p, now), cur[0] };
    int n = 0, good;

    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        return 0;
    }
    good = ospab_db_exec(db, p, "ospab_alert_clear", 2, args, &n) == APR_SUCCESS;
    if (good && n == 1) {
        json_t *data = json_pack("{s:I, s:I, s:I, s:s, s:f}",
                                 "serverId", (json_int_t)apr_atoi64(v[V_ID]),
                                 "userId", (json_int_t)apr_atoi64(v[V_USER]),
                                 "alertId", (json_int_t)apr_atoi64(cur[0]),
                                 "type", ospab_alert_metric_name(type), "value", value);

        good = ospab_event_add(db, p, now, OSPAB_EVENT_ALERT_CLEARED, data) == APR_SUCCESS;
        json_decref(data);
    }
    if (ospab_db_end(db, good) != APR_SUCCESS || !good) {
        AGENT_WARN("alert %s not cleared: %s", cur[0], db->error ? db->error : "?");
        return 0;
    }
    mon_of(ag)->cleared += n;
    return n > 0;
}

/* Opens an alert for v (cur NULL), or makes its open warning cur critical, as d says: the
 * row, its alert.opened event and, for a critical one whose e-mail the cool-down allows,
 * the owner's e-mail, in one transaction. 1: stored. */
static int alert_raise(agent_t *ag, ospab_db_t *db, apr_pool_t *p, vps_row_t v,
                       ospab_row_t cur, ospab_alert_metric_e type,
                       const ospab_alert_rules_t *rules, const ospab_alert_decision_t *d,
                       apr_time_t now)
{
    const char *tname = ospab_alert_metric_name(type);
    const char *level = ospab_alert_level_name(d->level);
    const char *message = ospab_alert_message(p, type, d->value);
    const char *nowt = ospab_time_db(p, now);
    const char *val = apr_psprintf(p, "%.0f", d->value);
    const char *alert_id = cur ? cur[0] : NULL;
    int notify = 0, good;

    if (d->mail) {
        const char *args[2] = { v[V_ID], tname };
        ospab_row_t last = NULL;

        /* the cool-down counts from the last e-mail for this server and type, also one
         * of an alert cleared since */
        notify = 1;
        if (ospab_db_select_one(db, p, "ospab_alert_last_notified", 2, args, &last)
                == APR_SUCCESS && last && last[0]
            && !ospab_alert_mail_due(rules, ospab_time_parse_db(last[0]), now)) {
            notify = 0;
        }
    }
    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        return 0;
    }
    if (cur) {
        const char *args[5] = { level, message, val, notify ? nowt : cur[7], cur[0] };

        good = ospab_db_exec(db, p, "ospab_alert_update", 5, args, NULL) == APR_SUCCESS;
    }
    else {
        const char *args[7] = { v[V_ID], tname, level, message, val, nowt,
                                notify ? nowt : NULL };

        good = ospab_db_exec(db, p, "ospab_alert_insert", 7, args, NULL) == APR_SUCCESS
               && ospab_db_last_id(db, p, &alert_id) == APR_SUCCESS;
    }
    if (good) {
        json_t *data = json_pack("{s:I, s:I, s:I, s:s, s:s, s:f, s:s, s:b}",
                                 "serverId", (json_int_t)apr_atoi64(v[V_ID]),
                                 "userId", (json_int_t)apr_atoi64(v[V_USER]),
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
                                 "serverId", (json_int_t)apr_atoi64(v[V_ID]),
                                 "serverName", v[V_NAME] ? v[V_NAME] : "",
                                 "type", tname, "value", d->value,
                                 "level", level, "message", message);
        /* one e-mail per alert episode and level, even if this round is repeated */
        const char *dedupe = apr_psprintf(p, "alert:%s:%s:%s:%s", v[V_ID], tname, level, nowt);
        apr_status_t rv = ospab_mail_queue_user(db, p, now, v[V_USER], "alert", vars,
                                                dedupe, &why);

        json_decref(vars);
        if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
            AGENT_WARN("alert e-mail for server %s not queued: %s", v[V_ID], why ? why : "?");
            good = 0;
        }
    }
    ospab_db_end(db, good);
    if (!good) {
        AGENT_WARN("alert for server %s (%s) not stored: %s", v[V_ID], tname,
                   db->error ? db->error : "?");
        return 0;
    }
    if (!cur) {
        mon_of(ag)->opened++;
    }
    AGENT_INFO("alert %s: server %s %s", level, v[V_ID], message);
    return 1;
}

/* Decides for one sample of one server (lib/ospab_alerts.c) and writes what the decision
 * says. Returns 1 when its open alerts changed. */
int agent_alert_sample(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_hash_t *open,
                       vps_row_t v, ospab_alert_metric_e type, double value, int have,
                       apr_time_t now)
{
    monitor_t *m = mon_of(ag);
    const char *key = apr_pstrcat(p, v[V_ID], ":", ospab_alert_metric_name(type), NULL);
    int *streak = apr_hash_get(m->streak, key, APR_HASH_KEY_STRING);
    ospab_row_t cur = apr_hash_get(open, key, APR_HASH_KEY_STRING);
    ospab_alert_rules_t rules;
    ospab_alert_state_t state;
    ospab_alert_decision_t d;

    rules_of(ag->conf, &rules);
    state.open = cur ? ospab_alert_level_of(cur[3]) : OSPAB_ALERT_NONE;
    state.streak = streak ? *streak : 0;
    ospab_alert_decide(&rules, &state, have, value, &d);
    if (!d.counted) {
        return 0;
    }
    if (!streak) {
        streak = apr_pcalloc(m->state_pool, sizeof(*streak));
        apr_hash_set(m->streak, apr_pstrdup(m->state_pool, key), APR_HASH_KEY_STRING, streak);
    }
    *streak = d.streak;
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
