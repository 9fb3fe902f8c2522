/* ospab-agent: the alert round's reads and writes (docs/agent.md, "Alerts"). */
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <apr_strings.h>

#include "agent_monitor_int.h"
#include "ospab_events.h"
#include "ospab_mail.h"
#include "ospab_util.h"

static const char *const alert_types[3] = { "cpu", "memory", "disk" };
static const char *const alert_names[3] = { "CPU", "Memory", "Disk" };

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

/* Decides for one sample of one server. Returns 1 when its open alerts changed. */
int agent_alert_sample(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_hash_t *open,
                       vps_row_t v, int type, double value, int have, apr_time_t now)
{
    monitor_t *m = mon_of(ag);
    agent_conf_t *c = ag->conf;
    const char *key = apr_pstrcat(p, v[V_ID], ":", alert_types[type], NULL);
    int *streak = apr_hash_get(m->streak, key, APR_HASH_KEY_STRING);
    ospab_row_t cur = apr_hash_get(open, key, APR_HASH_KEY_STRING);
    const char *nowt = ospab_time_db(p, now);
    const char *level, *message;
    int notify;

    if (!have) {
        return 0;
    }
    /* one rounding for everything the sample decides and says (seed 003: "CPU usage is at
     * 95%" is a whole percent): the thresholds, the level, the text and the value agree */
    value = floor(value + 0.5);
    if (!streak) {
        streak = apr_pcalloc(m->state_pool, sizeof(*streak));
        apr_hash_set(m->streak, apr_pstrdup(m->state_pool, key), APR_HASH_KEY_STRING, streak);
    }
    if (value < c->alert_clear) {
        *streak = 0;
        if (cur) {
            const char *args[2] = { nowt, cur[0] };
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
                                         "type", alert_types[type], "value", value);

                good = ospab_event_add(db, p, now, OSPAB_EVENT_ALERT_CLEARED, data)
                       == APR_SUCCESS;
                json_decref(data);
            }
            if (ospab_db_end(db, good) != APR_SUCCESS || !good) {
                AGENT_WARN("alert %s not cleared: %s", cur[0], db->error ? db->error : "?");
                return 0;
            }
            m->cleared += n;
            return n > 0;
        }
        return 0;
    }
    if (value <= c->alert_high) {
        *streak = 0;            /* between clear and high: an open alert stays open */
        return 0;
    }
    if (*streak < c->alert_samples) {
        (*streak)++;
    }
    if (*streak < c->alert_samples) {
        return 0;
    }
    /* critical only above the provider's threshold, like warning above high: seed 003's
     * 95 % is a warning with the default critical = 95 */
    level = value > c->alert_critical ? "critical" : "warning";
    message = apr_psprintf(p, "%s usage is at %.0f%%", alert_names[type], value);
    if (cur && (!strcmp(cur[3], "critical") || !strcmp(level, "warning"))) {
        return 0;               /* open already, and not getting worse */
    }
    /* a new alert, or warning -> critical: e-mail critical ones unless the cooldown for
     * this server+type is still running */
    notify = 0;
    if (!strcmp(level, "critical")) {
        const char *args[2] = { v[V_ID], alert_types[type] };
        ospab_row_t last = NULL;

        notify = 1;
        if (ospab_db_select_one(db, p, "ospab_alert_last_notified", 2, args, &last)
                == APR_SUCCESS && last && last[0]
            && strcmp(last[0], ospab_time_db(p, now - c->alert_cooldown)) > 0) {
            notify = 0;
        }
    }
    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        return 0;
    }
    {
        const char *val = apr_psprintf(p, "%.0f", value);
        int good;

        const char *alert_id = cur ? cur[0] : NULL;

        if (cur) {
            const char *args[5] = { level, message, val, notify ? nowt : cur[7], cur[0] };

            good = ospab_db_exec(db, p, "ospab_alert_update", 5, args, NULL) == APR_SUCCESS;
        }
        else {
            const char *args[7] = { v[V_ID], alert_types[type], level, message, val, nowt,
                                    notify ? nowt : NULL };

            good = ospab_db_exec(db, p, "ospab_alert_insert", 7, args, NULL) == APR_SUCCESS
                   && ospab_db_last_id(db, p, &alert_id) == APR_SUCCESS;
        }
        if (good) {
            json_t *data = json_pack("{s:I, s:I, s:I, s:s, s:s, s:f, s:s, s:b}",
                                     "serverId", (json_int_t)apr_atoi64(v[V_ID]),
                                     "userId", (json_int_t)apr_atoi64(v[V_USER]),
                                     "alertId", (json_int_t)apr_atoi64(alert_id),
                                     "type", alert_types[type], "level", level,
                                     "value", value, "message", message,
                                     "escalated", cur != NULL);

            good = ospab_event_add(db, p, now, OSPAB_EVENT_ALERT_OPENED, data) == APR_SUCCESS;
            json_decref(data);
        }
        if (good && notify) {
            const char *why = NULL;
            json_t *vars = json_pack("{s:I, s:s, s:s, s:f, s:s, s:s}",
                                     "serverId", (json_int_t)apr_atoi64(v[V_ID]),
                                     "serverName", v[V_NAME] ? v[V_NAME] : "",
                                     "type", alert_types[type], "value", value,
                                     "level", level, "message", message);
            /* one e-mail per alert episode and level, even if this round is repeated */
            const char *dedupe = apr_psprintf(p, "alert:%s:%s:%s:%s", v[V_ID], alert_types[type],
                                              level, nowt);
            apr_status_t rv = ospab_mail_queue_user(db, p, now, v[V_USER], "alert", vars,
                                                    dedupe, &why);

            json_decref(vars);
            if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
                AGENT_WARN("alert e-mail for server %s not queued: %s", v[V_ID],
                           why ? why : "?");
                good = 0;
            }
        }
        ospab_db_end(db, good);
        if (!good) {
            AGENT_WARN("alert for server %s (%s) not stored: %s", v[V_ID], alert_types[type],
                       db->error ? db->error : "?");
            return 0;
        }
        if (!cur) {
            m->opened++;
        }
        AGENT_INFO("alert %s: server %s %s", level, v[V_ID], message);
        return 1;
    }
}
