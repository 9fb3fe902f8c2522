/* ospab-agent: the monitor thread.
 *
 * Every poll_interval: one GET /cluster/resources?type=vm per cluster, all clusters at
 * once over libcurl multi; guests matched to `vps` rows by node + vmid; metrics_latest
 * written for all of them in one transaction; status drift (a guest stopped from inside,
 * a guest deleted behind the panel's back) applied with its event; alerts raised and
 * cleared with hysteresis. A cluster that fails is backed off (doubling up to backoff_max)
 * and tried again by itself.
 * Every live_interval: status/current + rrddata for the servers that have subscribers,
 * pushed as server-stats in the shape of GET /api/server/{id}/status's "stats".
 * Every task_interval: running Proxmox tasks followed up (lib/ospab_server.c's code, the
 * same the module runs lazily).
 * Every event_interval: new event rows (webhook_outbox) pushed to the servers' rooms;
 * server.owner and user.access rows make the live-push server check its clients again.
 *
 * All of this runs on the monitor thread only: the state below needs no lock. */
#include <stdio.h>
#include <string.h>
#include <math.h>
#include <unistd.h>

#include <apr_strings.h>
#include <apr_hash.h>

#include "agent_monitor.h"
#include "ospab_events.h"
#include "ospab_json.h"
#include "ospab_mail.h"
#include "ospab_server.h"
#include "ospab_util.h"

#define LIVE_MAX_ROOMS   2000       /* servers fetched per live round */
#define LIVE_PARALLEL    8          /* Proxmox requests in flight for live stats */
#define RRD_REFRESH      apr_time_from_sec(60)   /* rrddata points are a minute apart */
#define MISSING_POLLS    2          /* a guest must be absent this often to count as gone */
#define EVENT_WINDOW     64         /* event ids read again (late commits) */
#define EVENT_RING       1024       /* pushed ids remembered; > EVENT_WINDOW + one batch */

static const char *const alert_types[3] = { "cpu", "memory", "disk" };
static const char *const alert_names[3] = { "CPU", "Memory", "Disk" };

/* One vps row the monitor knows: id user_id name status node vmid kind */
typedef ospab_row_t vps_row_t;
enum { V_ID, V_USER, V_NAME, V_STATUS, V_NODE, V_VMID, V_KIND };

typedef struct {
    int failures;                   /* polls failed in a row */
    apr_time_t retry_at;            /* no poll before this */
    apr_hash_t *nodes;              /* node names seen in its last good poll */
    apr_pool_t *pool;               /* for nodes */
    int leased;                     /* this agent holds the cluster's lease */
    char holder[192];               /* who does, when another agent ("" unknown) */
    char logged_holder[192];        /* the holder last logged */
} cluster_state_t;

typedef struct {
    apr_pool_t *pool;               /* lives as long as the agent */
    const char *me;                 /* lease owner id: host:pid:random */
    int use_leases;                 /* off for --once */
    agent_conf_t *conf;             /* the conf the state below was made for */
    cluster_state_t *cl;            /* one per conf->clusters */
    apr_time_t next_poll, next_live, next_tasks, next_events;
    apr_hash_t *streak;             /* "vps:type" -> int samples above high in a row */
    apr_hash_t *missing;            /* "vps" -> int polls without the guest */
    apr_pool_t *state_pool;         /* streak, missing (rebuilt when it grows too big) */
    apr_hash_t *live_seen;          /* rooms fetched at least once (id text -> "") */
    apr_hash_t *rrd;                /* id text -> rrd_entry_t (see live_stats) */
    apr_pool_t *rrd_pool;
    apr_pool_t *live_pool;
    apr_int64_t last_event;         /* -1: not read yet */
    apr_int64_t pushed[EVENT_RING]; /* ids pushed lately (see push_events) */
    unsigned pushed_next;
    /* last round, for --once and the log */
    int polled_guests, matched, written, drifted, opened, cleared;
    apr_interval_time_t poll_time;
} monitor_t;

static monitor_t *mon_of(agent_t *ag)
{
    return ag->monitor;
}

static apr_status_t make_clients(apr_pool_t *p, agent_conf_t *c)
{
    int i;

    for (i = 0; i < c->clusters->nelts; ++i) {
        agent_cluster_t *cl = &APR_ARRAY_IDX(c->clusters, i, agent_cluster_t);
        apr_status_t rv;

        if (cl->client) {
            continue;
        }
        if ((rv = ospab_pve_create(p, &cl->pve, &cl->client)) != APR_SUCCESS) {
            AGENT_ERROR("[cluster %s]: cannot make the Proxmox client", cl->name);
            return rv;
        }
    }
    return APR_SUCCESS;
}

static void reset_state(monitor_t *m, agent_conf_t *c)
{
    int i;

    m->conf = c;
    m->cl = apr_pcalloc(m->pool, sizeof(*m->cl) * (apr_size_t)(c->clusters->nelts + 1));
    for (i = 0; i < c->clusters->nelts; ++i) {
        apr_pool_create(&m->cl[i].pool, m->pool);
        m->cl[i].nodes = apr_hash_make(m->cl[i].pool);
    }
    m->next_poll = m->next_live = m->next_tasks = m->next_events = 0;
}

apr_status_t agent_monitor_setup(agent_t *ag)
{
    monitor_t *m = apr_pcalloc(ag->pool, sizeof(*m));

    apr_pool_create(&m->pool, ag->pool);
    apr_pool_create(&m->state_pool, m->pool);
    apr_pool_create(&m->live_pool, m->pool);
    m->streak = apr_hash_make(m->state_pool);
    m->missing = apr_hash_make(m->state_pool);
    m->live_seen = apr_hash_make(m->live_pool);
    m->last_event = -1;
    {
        char host[256];

        if (gethostname(host, sizeof(host)) != 0) {
            strcpy(host, "localhost");
        }
        host[sizeof(host) - 1] = '\0';
        m->me = apr_psprintf(m->pool, "%.100s:%ld:%s", host, (long)getpid(),
                             ospab_random_hex(m->pool, 4));
    }
    ag->monitor = m;
    if (make_clients(ag->pool, ag->conf) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    reset_state(m, ag->conf);
    m->use_leases = 1;
    return APR_SUCCESS;
}

void agent_monitor_reconfigure(agent_t *ag, agent_conf_t *c)
{
    /* the clients live in the conf's pool; the alert streaks carry over */
    if (make_clients(ag->pool, c) == APR_SUCCESS) {
        reset_state(mon_of(ag), c);
    }
}

/* ---- helpers ------------------------------------------------------------------------------ */

static ospab_actor_t agent_actor(apr_time_t now)
{
    ospab_actor_t a;

    a.type = "agent";
    a.id = NULL;
    a.remote_addr = NULL;
    a.now = now;
    return a;
}

static agent_cluster_t *cluster_of_node(agent_t *ag, const char *node)
{
    monitor_t *m = mon_of(ag);
    apr_array_header_t *cls = ag->conf->clusters;
    int i;

    if (!cls->nelts) {
        return NULL;
    }
    for (i = 0; i < cls->nelts; ++i) {
        agent_cluster_t *cl = &APR_ARRAY_IDX(cls, i, agent_cluster_t);

        if (node && (apr_hash_get(m->cl[i].nodes, node, APR_HASH_KEY_STRING)
                     || (cl->node && !strcmp(cl->node, node)))) {
            return cl;
        }
    }
    return &APR_ARRAY_IDX(cls, 0, agent_cluster_t);
}

static cluster_state_t *state_of(agent_t *ag, agent_cluster_t *cl)
{
    return &mon_of(ag)->cl[cl - &APR_ARRAY_IDX(ag->conf->clusters, 0, agent_cluster_t)];
}

static void server_conf(agent_cluster_t *cl, ospab_server_conf_t *sc)
{
    memset(sc, 0, sizeof(*sc));
    sc->pve = cl->client;
    sc->url = cl->pve.url;
    sc->node = cl->node;
    sc->storage = cl->storage;
    sc->bridge = cl->bridge;
}

static double percent(json_t *o, const char *used_key, const char *max_key, int *ok)
{
    double used = 0, max = 0;

    *ok = ospab_pve_double(json_object_get(o, used_key), &used)
          && ospab_pve_double(json_object_get(o, max_key), &max) && max > 0;
    return *ok ? used * 100.0 / max : 0;
}

static const char *num_text(apr_pool_t *p, json_t *o, const char *key)
{
    apr_int64_t n;
    double d;

    if (ospab_pve_int(json_object_get(o, key), &n)) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT, n);
    }
    if (ospab_pve_double(json_object_get(o, key), &d)) {
        return apr_psprintf(p, "%.6f", d);
    }
    return NULL;
}

/* ---- alerts -------------------------------------------------------------------------------- */

/* open alerts by "vps:type" -> row (id vps_id type level value message opened_at notified) */
static apr_hash_t *open_alerts(ospab_db_t *db, apr_pool_t *p)
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
static json_t *alerts_message(ospab_db_t *db, apr_pool_t *p, const char *vps_id)
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
static int alert_sample(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_hash_t *open,
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

/* ---- leases (SPEC §9): one agent polls a cluster; a dead agent's clusters move on -------- */

/* How long a lease lasts: three polls, so a slow cycle or two do not lose it. */
static apr_interval_time_t lease_ttl(const agent_conf_t *c)
{
    return 3 * c->poll_interval;
}

/* Takes or renews the lease of cluster i. 1: ours now. */
static int lease_take(agent_t *ag, ospab_db_t *db, apr_pool_t *p, int i, apr_time_t now)
{
    monitor_t *m = mon_of(ag);
    agent_cluster_t *cl = &APR_ARRAY_IDX(ag->conf->clusters, i, agent_cluster_t);
    cluster_state_t *cs = &m->cl[i];
    const char *name = apr_pstrcat(p, "cluster:", cl->name, NULL);
    const char *nowt = ospab_time_db(p, now);
    const char *until = ospab_time_db(p, now + lease_ttl(ag->conf));
    const char *renew[6] = { m->me, until, nowt, name, m->me, nowt };
    const char *insert[4] = { name, m->me, until, nowt };
    int n = 0, was = cs->leased;

    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        return cs->leased;          /* the database is busy: keep what we had */
    }
    if (ospab_db_exec(db, p, "ospab_lease_renew", 6, renew, &n) == APR_SUCCESS && n == 0) {
        ospab_row_t row = NULL;

        if (ospab_db_select_one(db, p, "ospab_lease_get", 1, &name, &row) == APR_SUCCESS
            && !row && ospab_db_exec(db, p, "ospab_lease_insert", 4, insert, NULL)
                       == APR_SUCCESS) {
            n = 1;
        }
        else if (row) {
            apr_cpystrn(cs->holder, row[0], sizeof(cs->holder));
        }
    }
    if (ospab_db_end(db, n == 1) != APR_SUCCESS) {
        n = 0;
    }
    cs->leased = n == 1;
    if (cs->leased && !was) {
        AGENT_INFO("[cluster %s]: this agent (%s) polls it now", cl->name, m->me);
        cs->logged_holder[0] = '\0';
    }
    else if (!cs->leased && was) {
        AGENT_WARN("[cluster %s]: lease lost to %s", cl->name,
                   cs->holder[0] ? cs->holder : "another agent");
    }
    return cs->leased;
}

void agent_monitor_release(agent_t *ag, ospab_db_t *db)
{
    monitor_t *m = mon_of(ag);
    apr_pool_t *p;
    int i;

    if (!m || !m->cl) {
        return;
    }
    apr_pool_create(&p, ag->pool);
    for (i = 0; i < ag->conf->clusters->nelts; ++i) {
        agent_cluster_t *cl = &APR_ARRAY_IDX(ag->conf->clusters, i, agent_cluster_t);
        const char *name = apr_pstrcat(p, "cluster:", cl->name, NULL);
        const char *past = ospab_time_db(p, apr_time_now() - apr_time_from_sec(1));
        const char *args[4] = { past, ospab_time_db(p, apr_time_now()), name, m->me };

        if (!m->cl[i].leased || ospab_db_begin(db, p) != APR_SUCCESS) {
            continue;
        }
        ospab_db_exec(db, p, "ospab_lease_release", 4, args, NULL);
        ospab_db_end(db, 1);
        m->cl[i].leased = 0;
        AGENT_INFO("[cluster %s]: lease given up", cl->name);
    }
    apr_pool_destroy(p);
}

/* ---- the poll ------------------------------------------------------------------------------- */

/* All rows in one transaction: OSPAB_METRICS_BATCH per statement, the rest one by one. */
static int store_metrics_once(ospab_db_t *db, apr_pool_t *p, apr_array_header_t *rows)
{
    const char **batch = apr_palloc(p, sizeof(char *) * 11 * OSPAB_METRICS_BATCH);
    int i = 0, good = 1;

    if (!rows->nelts) {
        return 1;
    }
    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        return 0;
    }
    for (; good && i + OSPAB_METRICS_BATCH <= rows->nelts; i += OSPAB_METRICS_BATCH) {
        int k;

        for (k = 0; k < OSPAB_METRICS_BATCH; ++k) {
            memcpy(batch + 11 * k, APR_ARRAY_IDX(rows, i + k, const char **),
                   sizeof(char *) * 11);
        }
        good = ospab_db_exec(db, p, "ospab_metrics_put_batch", 11 * OSPAB_METRICS_BATCH,
                             batch, NULL) == APR_SUCCESS;
    }
    for (; good && i < rows->nelts; ++i) {
        good = ospab_db_exec(db, p, "ospab_metrics_put", 11,
                             APR_ARRAY_IDX(rows, i, const char **), NULL) == APR_SUCCESS;
    }
    return ospab_db_end(db, good) == APR_SUCCESS && good;
}

static void store_metrics(ospab_db_t *db, apr_pool_t *p, apr_array_header_t *rows)
{
    apr_array_header_t *left, *ids;
    apr_hash_t *exists;
    int i;

    if (!rows->nelts || store_metrics_once(db, p, rows)) {
        return;
    }
    /* MariaDB checks the foreign key: a server deleted while the cycle ran fails the whole
     * batch. Once more without the rows of servers that are gone. */
    if (!ospab_db_is_constraint(db)
        || ospab_db_select(db, p, "ospab_agent_vps_index", 0, NULL, &ids, NULL) != APR_SUCCESS) {
        AGENT_WARN("metrics not stored: %s", db->error ? db->error : "?");
        return;
    }
    exists = apr_hash_make(p);
    for (i = 0; i < ids->nelts; ++i) {
        apr_hash_set(exists, APR_ARRAY_IDX(ids, i, ospab_row_t)[V_ID], APR_HASH_KEY_STRING, "");
    }
    left = apr_array_make(p, rows->nelts, sizeof(const char **));
    for (i = 0; i < rows->nelts; ++i) {
        const char **r = APR_ARRAY_IDX(rows, i, const char **);

        if (apr_hash_get(exists, r[0], APR_HASH_KEY_STRING)) {
            APR_ARRAY_PUSH(left, const char **) = r;
        }
    }
    if (!store_metrics_once(db, p, left)) {
        AGENT_WARN("metrics not stored: %s", db->error ? db->error : "?");
    }
}

/* Queues the guest's own status/current on reqs (the row v rides along as data). */
static void ask_status(apr_array_header_t *reqs, apr_pool_t *p, agent_cluster_t *cl,
                       vps_row_t v, const char *kind)
{
    ospab_pve_req_t *q = apr_array_push(reqs);

    memset(q, 0, sizeof(*q));
    q->pve = cl->client;
    q->method = "GET";
    q->path = ospab_pve_path(p, "nodes", v[V_NODE], kind, v[V_VMID], "status", "current", NULL);
    q->data = (void *)v;
}

static void poll_clusters(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_time_t now)
{
    monitor_t *m = mon_of(ag);
    agent_conf_t *c = ag->conf;
    static const ospab_pve_param_t vm_only[2] = { { "type", "vm" }, { NULL, NULL } };
    ospab_pve_req_t *reqs;
    int *which, nreq = 0, i, j;
    apr_array_header_t *vrows, *mrows, *busy_rows, *suspects, *gone;
    apr_hash_t *index, *open, *busy, *seen;
    ospab_actor_t act = agent_actor(now);
    apr_time_t t0 = apr_time_now();
    const char *nowt = ospab_time_db(p, now);

    m->polled_guests = m->matched = m->written = m->drifted = m->opened = m->cleared = 0;
    reqs = apr_pcalloc(p, sizeof(*reqs) * (apr_size_t)(c->clusters->nelts + 1));
    which = apr_pcalloc(p, sizeof(int) * (apr_size_t)(c->clusters->nelts + 1));
    for (i = 0; i < c->clusters->nelts; ++i) {
        agent_cluster_t *cl = &APR_ARRAY_IDX(c->clusters, i, agent_cluster_t);

        if (m->use_leases && !lease_take(ag, db, p, i, now)) {
            cluster_state_t *cs = &m->cl[i];

            if (cs->holder[0] && strcmp(cs->logged_holder, cs->holder)) {
                AGENT_INFO("[cluster %s]: polled by %s; this agent stands by", cl->name,
                           cs->holder);
                apr_cpystrn(cs->logged_holder, cs->holder, sizeof(cs->logged_holder));
            }
            continue;
        }
        if (m->cl[i].retry_at > now) {
            continue;
        }
        reqs[nreq].pve = cl->client;
        reqs[nreq].method = "GET";
        reqs[nreq].path = "/cluster/resources";
        reqs[nreq].params = vm_only;
        which[nreq++] = i;
    }
    if (!nreq) {
        return;
    }
    ospab_pve_call_many(p, 0, reqs, nreq, nreq);

    if (ospab_db_select(db, p, "ospab_agent_vps_index", 0, NULL, &vrows, NULL) != APR_SUCCESS
        || ospab_db_select(db, p, "ospab_task_active_servers", 0, NULL, &busy_rows, NULL)
           != APR_SUCCESS
        || !(open = open_alerts(db, p))) {
        AGENT_WARN("poll: database: %s", db->error ? db->error : "?");
        return;
    }
    index = apr_hash_make(p);
    for (i = 0; i < vrows->nelts; ++i) {
        vps_row_t v = APR_ARRAY_IDX(vrows, i, vps_row_t);

        apr_hash_set(index, apr_pstrcat(p, v[V_NODE], "/", v[V_VMID], NULL),
                     APR_HASH_KEY_STRING, v);
    }
    busy = apr_hash_make(p);
    for (i = 0; i < busy_rows->nelts; ++i) {
        ospab_row_t r = APR_ARRAY_IDX(busy_rows, i, ospab_row_t);

        apr_hash_set(busy, r[0], APR_HASH_KEY_STRING, "");
    }
    seen = apr_hash_make(p);
    mrows = apr_array_make(p, vrows->nelts + 1, sizeof(const char **));
    suspects = apr_array_make(p, 8, sizeof(ospab_pve_req_t));
    gone = apr_array_make(p, 8, sizeof(ospab_pve_req_t));

    for (j = 0; j < nreq; ++j) {
        agent_cluster_t *cl = &APR_ARRAY_IDX(c->clusters, which[j], agent_cluster_t);
        cluster_state_t *cs = &m->cl[which[j]];
        json_t *data = reqs[j].res.data;
        apr_hash_t *nodes;
        apr_hash_index_t *hi;
        size_t k;

        if (reqs[j].rv != APR_SUCCESS || !json_is_array(data)) {
            apr_interval_time_t wait = c->poll_interval;
            int f;

            cs->failures++;
            for (f = 1; f < cs->failures && wait < c->backoff_max; ++f) {
                wait *= 2;
            }
            if (wait > c->backoff_max) {
                wait = c->backoff_max;
            }
            cs->retry_at = now + wait;
            if (cs->failures == 1 || agent_log_enabled(AGENT_LOG_DEBUG)) {
                AGENT_WARN("poll [cluster %s]: %s; backing off (next try in %.1fs)", cl->name,
                           reqs[j].res.message ? reqs[j].res.message : "no usable answer",
                           (double)wait / 1e6);
            }
            continue;
        }
        if (cs->failures) {
            AGENT_INFO("poll [cluster %s]: Proxmox answers again after %d failed polls",
                       cl->name, cs->failures);
        }
        cs->failures = 0;
        cs->retry_at = 0;
        apr_pool_clear(cs->pool);
        cs->nodes = nodes = apr_hash_make(cs->pool);
        if (cl->node) {
            apr_hash_set(nodes, apr_pstrdup(cs->pool, cl->node), APR_HASH_KEY_STRING, "");
        }
        for (k = 0; k < json_array_size(data); ++k) {
            json_t *g = json_array_get(data, k);
            const char *node = json_string_value(json_object_get(g, "node"));
            const char *type = json_string_value(json_object_get(g, "type"));
            const char *st = json_string_value(json_object_get(g, "status"));
            apr_int64_t vmid;
            vps_row_t v;
            const char **args;
            int ok[3], t;
            double val[3];

            if (!node || !type || (strcmp(type, "lxc") && strcmp(type, "qemu"))
                || !ospab_pve_int(json_object_get(g, "vmid"), &vmid)) {
                continue;
            }
            m->polled_guests++;
            if (!apr_hash_get(nodes, node, APR_HASH_KEY_STRING)) {
                apr_hash_set(nodes, apr_pstrdup(cs->pool, node), APR_HASH_KEY_STRING, "");
            }
            v = apr_hash_get(index, apr_psprintf(p, "%s/%" APR_INT64_T_FMT, node, vmid),
                             APR_HASH_KEY_STRING);
            if (!v) {
                continue;           /* not one of ours (or not synced yet) */
            }
            m->matched++;
            apr_hash_set(seen, v[V_ID], APR_HASH_KEY_STRING, "");
            apr_hash_set(m->missing, v[V_ID], APR_HASH_KEY_STRING, NULL);
            args = apr_palloc(p, sizeof(char *) * 11);
            args[0] = v[V_ID];
            args[1] = st;
            args[2] = num_text(p, g, "cpu");
            args[3] = num_text(p, g, "mem");
            args[4] = num_text(p, g, "maxmem");
            args[5] = num_text(p, g, "disk");
            args[6] = num_text(p, g, "maxdisk");
            args[7] = num_text(p, g, "netin");
            args[8] = num_text(p, g, "netout");
            args[9] = num_text(p, g, "uptime");
            args[10] = nowt;
            APR_ARRAY_PUSH(mrows, const char **) = args;

            /* drift: the guest's own state wins over ours when nothing of ours is running
             * on it (no task, no Proxmox lock) */
            if (st && (!strcmp(st, "running") || !strcmp(st, "stopped"))
                && v[V_STATUS] && (!strcmp(v[V_STATUS], "running")
                                   || !strcmp(v[V_STATUS], "stopped")
                                   || !strcmp(v[V_STATUS], "missing"))
                && strcmp(v[V_STATUS], st)
                && !apr_hash_get(busy, v[V_ID], APR_HASH_KEY_STRING)
                && !json_is_string(json_object_get(g, "lock"))) {
                /* /cluster/resources lags (pvestatd): asked directly before believing it */
                ask_status(suspects, p, cl, v, type);
            }

            /* alerts: a stopped guest uses nothing */
            val[0] = 0;
            ok[0] = ospab_pve_double(json_object_get(g, "cpu"), &val[0]);
            val[0] *= 100.0;
            val[1] = percent(g, "mem", "maxmem", &ok[1]);
            val[2] = percent(g, "disk", "maxdisk", &ok[2]);
            /* changes are events: every agent pushes them (push_events) */
            for (t = 0; t < 3; ++t) {
                alert_sample(ag, db, p, open, v, t, val[t], ok[t], now);
            }
        }
        /* guests of this cluster's nodes that Proxmox no longer lists */
        for (hi = apr_hash_first(p, index); hi; hi = apr_hash_next(hi)) {
            vps_row_t v = apr_hash_this_val(hi);
            int *miss;

            if (!apr_hash_get(nodes, v[V_NODE], APR_HASH_KEY_STRING)
                || apr_hash_get(seen, v[V_ID], APR_HASH_KEY_STRING)
                || apr_hash_get(busy, v[V_ID], APR_HASH_KEY_STRING)
                || !v[V_STATUS] || (strcmp(v[V_STATUS], "running")
                                    && strcmp(v[V_STATUS], "stopped"))) {
                continue;
            }
            miss = apr_hash_get(m->missing, v[V_ID], APR_HASH_KEY_STRING);
            if (!miss) {
                miss = apr_pcalloc(m->state_pool, sizeof(*miss));
                apr_hash_set(m->missing, apr_pstrdup(m->state_pool, v[V_ID]),
                             APR_HASH_KEY_STRING, miss);
            }
            if (++*miss < MISSING_POLLS) {
                continue;
            }
            ask_status(gone, p, cl, v, v[V_KIND] ? v[V_KIND] : "lxc");
        }
    }
    if (suspects->nelts) {
        ospab_pve_call_many(p, 0, (ospab_pve_req_t *)suspects->elts, suspects->nelts,
                            LIVE_PARALLEL);
        for (i = 0; i < suspects->nelts; ++i) {
            ospab_pve_req_t *q = &APR_ARRAY_IDX(suspects, i, ospab_pve_req_t);
            vps_row_t v = q->data;
            const char *st = json_string_value(json_object_get(q->res.data, "status"));

            if (q->rv != APR_SUCCESS || !st || !strcmp(st, v[V_STATUS])
                || (strcmp(st, "running") && strcmp(st, "stopped"))
                || json_is_string(json_object_get(q->res.data, "lock"))) {
                continue;
            }
            AGENT_INFO("drift: server %s (%s/%s) is %s, was %s", v[V_ID], v[V_NODE], v[V_VMID],
                       st, v[V_STATUS]);
            ospab_server_set_status(db, p, &act, v[V_ID], st);
            m->drifted++;
        }
    }
    if (gone->nelts) {
        /* absent twice from the list; Proxmox itself must also say it does not exist
         * (a 500 "Configuration file ... does not exist"), not merely fail to answer */
        ospab_pve_call_many(p, 0, (ospab_pve_req_t *)gone->elts, gone->nelts, LIVE_PARALLEL);
        for (i = 0; i < gone->nelts; ++i) {
            ospab_pve_req_t *q = &APR_ARRAY_IDX(gone, i, ospab_pve_req_t);
            vps_row_t v = q->data;

            if (q->res.outcome != OSPAB_PVE_HTTP_ERROR || !q->res.message
                || !strstr(q->res.message, "does not exist")) {
                continue;
            }
            AGENT_WARN("drift: server %s (%s/%s) is gone from Proxmox; marked missing",
                       v[V_ID], v[V_NODE], v[V_VMID]);
            ospab_server_set_status(db, p, &act, v[V_ID], "missing");
            m->drifted++;
        }
    }
    store_metrics(db, p, mrows);
    m->written = mrows->nelts;
    m->poll_time = apr_time_now() - t0;
    AGENT_DEBUG("poll: %d guests, %d ours, %d drifted, %d alerts opened, %d cleared, %.3fs",
                m->polled_guests, m->matched, m->drifted, m->opened, m->cleared,
                (double)m->poll_time / 1e6);
    /* the hashes of streaks and misses only grow with the number of servers; a server
     * deleted long ago should not stay forever */
    if (apr_hash_count(m->streak) > (unsigned)(vrows->nelts * 3 + 1024)) {
        apr_pool_clear(m->state_pool);
        m->streak = apr_hash_make(m->state_pool);
        m->missing = apr_hash_make(m->state_pool);
    }
}

/* ---- live stats ---------------------------------------------------------------------------- */

/* rrddata of a watched server, kept for RRD_REFRESH: its points are a minute apart, so
 * asking Proxmox for them at every live round would double the load for nothing */
typedef struct {
    json_t *rrd;                    /* own reference */
    apr_time_t at;
} rrd_entry_t;

typedef struct {
    vps_row_t v;
    int cur;                        /* index of its status/current request */
    int rrd;                        /* index of its rrddata request, -1: from the cache */
    rrd_entry_t *cached;
} live_item_t;

static apr_status_t rrd_cache_cleanup(void *data)
{
    apr_hash_t *h = *(apr_hash_t **)data;
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, h); hi; hi = apr_hash_next(hi)) {
        rrd_entry_t *e = apr_hash_this_val(hi);

        json_decref(e->rrd);
        e->rrd = NULL;
    }
    return APR_SUCCESS;
}

/* A fresh cache that keeps the still-young entries of the old one for the rooms in use. */
static void rrd_cache_renew(monitor_t *m, apr_array_header_t *rooms, apr_pool_t *p,
                            apr_time_t now)
{
    apr_pool_t *np;
    apr_hash_t *nh, **holder;
    int i;

    apr_pool_create(&np, m->pool);
    nh = apr_hash_make(np);
    for (i = 0; m->rrd && i < rooms->nelts; ++i) {
        const char *id = apr_psprintf(p, "%" APR_INT64_T_FMT,
                                      APR_ARRAY_IDX(rooms, i, apr_int64_t));
        rrd_entry_t *e = apr_hash_get(m->rrd, id, APR_HASH_KEY_STRING);

        if (e && e->rrd && now - e->at < RRD_REFRESH) {
            rrd_entry_t *ne = apr_palloc(np, sizeof(*ne));

            *ne = *e;
            e->rrd = NULL;          /* moved */
            apr_hash_set(nh, apr_pstrdup(np, id), APR_HASH_KEY_STRING, ne);
        }
    }
    if (m->rrd_pool) {
        apr_pool_destroy(m->rrd_pool);   /* decrefs what was not moved */
    }
    holder = apr_palloc(np, sizeof(*holder));
    *holder = nh;
    apr_pool_cleanup_register(np, holder, rrd_cache_cleanup, apr_pool_cleanup_null);
    m->rrd_pool = np;
    m->rrd = nh;
}

static void live_stats(agent_t *ag, ospab_db_t *db, apr_pool_t *p, int only_new)
{
    monitor_t *m = mon_of(ag);
    apr_array_header_t *rooms;
    ospab_pve_req_t *reqs;
    live_item_t *items;
    static const ospab_pve_param_t rrd_params[3] = { { "timeframe", "hour" },
                                                     { "cf", "AVERAGE" }, { NULL, NULL } };
    apr_time_t now = apr_time_now();
    int i, n = 0, nitems = 0;

    if (!ag->sio) {
        return;
    }
    rooms = agent_sio_rooms(ag->sio, p);
    if (!only_new) {
        apr_pool_clear(m->live_pool);
        m->live_seen = apr_hash_make(m->live_pool);
        rrd_cache_renew(m, rooms, p, now);
    }
    reqs = apr_pcalloc(p, sizeof(*reqs) * (apr_size_t)(2 * (rooms->nelts + 1)));
    items = apr_pcalloc(p, sizeof(*items) * (apr_size_t)(rooms->nelts + 1));
    for (i = 0; i < rooms->nelts && nitems < LIVE_MAX_ROOMS; ++i) {
        const char *id = apr_psprintf(p, "%" APR_INT64_T_FMT,
                                      APR_ARRAY_IDX(rooms, i, apr_int64_t));
        const char *kind;
        live_item_t *it;
        vps_row_t v = NULL;
        agent_cluster_t *cl;

        if (apr_hash_get(m->live_seen, id, APR_HASH_KEY_STRING)) {
            continue;
        }
        apr_hash_set(m->live_seen, apr_pstrdup(m->live_pool, id), APR_HASH_KEY_STRING, "");
        if (only_new) {
            /* a new subscriber also gets the open alerts at once */
            json_t *msg = alerts_message(db, p, id);

            agent_publish(ag, apr_atoi64(id), "server-alerts", msg);
            json_decref(msg);
        }
        if (ospab_db_select_one(db, p, "ospab_agent_vps_one", 1, &id, &v) != APR_SUCCESS
            || !v || !(cl = cluster_of_node(ag, v[V_NODE]))
            || state_of(ag, cl)->failures) {
            continue;
        }
        kind = v[V_KIND] && !strcmp(v[V_KIND], "qemu") ? "qemu" : "lxc";
        it = &items[nitems++];
        it->v = v;
        it->cur = n;
        reqs[n].pve = cl->client;
        reqs[n].method = "GET";
        reqs[n].path = ospab_pve_path(p, "nodes", v[V_NODE], kind, v[V_VMID], "status",
                                      "current", NULL);
        n++;
        it->cached = m->rrd ? apr_hash_get(m->rrd, id, APR_HASH_KEY_STRING) : NULL;
        if (it->cached && it->cached->rrd && now - it->cached->at < RRD_REFRESH) {
            it->rrd = -1;
            continue;
        }
        it->cached = NULL;
        it->rrd = n;
        reqs[n].pve = cl->client;
        reqs[n].method = "GET";
        reqs[n].path = ospab_pve_path(p, "nodes", v[V_NODE], kind, v[V_VMID], "rrddata", NULL);
        reqs[n].params = rrd_params;
        n++;
    }
    if (!n) {
        return;
    }
    ospab_pve_call_many(p, 0, reqs, n, LIVE_PARALLEL);
    for (i = 0; i < nitems; ++i) {
        live_item_t *it = &items[i];
        json_t *rrd = NULL, *stats, *msg;

        if (reqs[it->cur].rv != APR_SUCCESS) {
            AGENT_DEBUG("live: server %s: %s", it->v[V_ID], reqs[it->cur].res.message);
            continue;
        }
        if (it->rrd < 0) {
            rrd = it->cached->rrd;
        }
        else if (reqs[it->rrd].rv == APR_SUCCESS && json_is_array(reqs[it->rrd].res.data)) {
            rrd_entry_t *e;

            rrd = reqs[it->rrd].res.data;
            if (!m->rrd) {
                rrd_cache_renew(m, rooms, p, now);
            }
            e = apr_hash_get(m->rrd, it->v[V_ID], APR_HASH_KEY_STRING);
            if (!e) {
                e = apr_palloc(m->rrd_pool, sizeof(*e));
                e->rrd = NULL;
                apr_hash_set(m->rrd, apr_pstrdup(m->rrd_pool, it->v[V_ID]),
                             APR_HASH_KEY_STRING, e);
            }
            json_decref(e->rrd);
            e->rrd = json_incref(rrd);
            e->at = now;
        }
        stats = ospab_server_stats_json(it->v[V_VMID], reqs[it->cur].res.data, rrd);
        msg = json_pack("{s:I, s:o}", "serverId", (json_int_t)apr_atoi64(it->v[V_ID]),
                        "stats", stats);
        agent_publish(ag, apr_atoi64(it->v[V_ID]), "server-stats", msg);
        json_decref(msg);
    }
}

/* ---- tasks ---------------------------------------------------------------------------------- */

static void follow_tasks(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_time_t now)
{
    monitor_t *m = mon_of(ag);
    apr_array_header_t *rows;
    ospab_actor_t act = agent_actor(now);
    apr_pool_t *sub;
    int i;

    if (!ag->conf->clusters->nelts
        || ospab_db_select(db, p, "ospab_task_active_servers", 0, NULL, &rows, NULL)
           != APR_SUCCESS) {
        return;
    }
    apr_pool_create(&sub, p);
    for (i = 0; i < rows->nelts && !ag->stopping; ++i) {
        const char *id = APR_ARRAY_IDX(rows, i, ospab_row_t)[0];
        ospab_row_t v = NULL;
        agent_cluster_t *cl;
        ospab_server_conf_t sc;

        if (ospab_db_select_one(db, sub, "ospab_agent_vps_one", 1, &id, &v) != APR_SUCCESS
            || !v || !(cl = cluster_of_node(ag, v[V_NODE]))
            /* the agent that polls the cluster follows its tasks */
            || (m->use_leases && !state_of(ag, cl)->leased)) {
            apr_pool_clear(sub);
            continue;
        }
        server_conf(cl, &sc);
        act.now = apr_time_now();
        ospab_server_follow(db, sub, &sc, &act, id);
        apr_pool_clear(sub);
    }
    apr_pool_destroy(sub);
}

/* ---- events -> pushes ------------------------------------------------------------------------ */

static void push_events(agent_t *ag, ospab_db_t *db, apr_pool_t *p)
{
    monitor_t *m = mon_of(ag);
    apr_array_header_t *rows;
    apr_hash_t *alerted;
    int i;

    if (m->last_event < 0) {
        ospab_row_t r = NULL;

        /* pushes are live only: start after what is there now */
        if (ospab_db_select_one(db, p, "ospab_agent_events_max", 0, NULL, &r) != APR_SUCCESS) {
            return;
        }
        m->last_event = r && r[0] ? apr_atoi64(r[0]) : 0;
        return;
    }
    {
        /* MariaDB hands out ids at insert and the rows appear at commit: a row with a
         * smaller id may show up after a larger one was read. The window re-reads the last
         * EVENT_WINDOW ids; the ring of pushed ids keeps each from being pushed twice. */
        apr_int64_t from = m->last_event > EVENT_WINDOW ? m->last_event - EVENT_WINDOW : 0;
        const char *after = apr_psprintf(p, "%" APR_INT64_T_FMT, from);

        if (ospab_db_select(db, p, "ospab_agent_events_after", 1, &after, &rows, NULL)
            != APR_SUCCESS) {
            return;
        }
    }
    alerted = apr_hash_make(p);
    for (i = 0; i < rows->nelts; ++i) {
        ospab_row_t r = APR_ARRAY_IDX(rows, i, ospab_row_t);   /* id event payload */
        json_t *body = json_loads(r[2], 0, NULL);
        json_t *data = json_object_get(body, "data");
        json_int_t sid = json_integer_value(json_object_get(data, "serverId"));
        const char *ev = !strcmp(r[1], OSPAB_EVENT_STATUS) ? "server-status"
                       : !strcmp(r[1], OSPAB_EVENT_TASK) ? "task-finished"
                       : !strcmp(r[1], OSPAB_EVENT_DELETED) ? "server-deleted" : NULL;

        apr_int64_t id = apr_atoi64(r[0]);
        int k, dup = 0;

        for (k = 0; k < EVENT_RING; ++k) {
            dup |= m->pushed[k] == id;
        }
        if (dup) {
            json_decref(body);
            continue;
        }
        m->pushed[m->pushed_next++ % EVENT_RING] = id;
        if (id > m->last_event) {
            m->last_event = id;
        }
        if (!strcmp(r[1], OSPAB_EVENT_OWNER) || !strcmp(r[1], OSPAB_EVENT_ACCESS)) {
            /* who may watch what changed: the live-push server checks its clients again
             * (on its own thread) and drops what they may no longer see */
            json_int_t uid = json_integer_value(json_object_get(data, "userId"));
            const char *session = json_string_value(json_object_get(data, "sessionId"));

            if (ag->sio && !strcmp(r[1], OSPAB_EVENT_OWNER) && sid > 0) {
                agent_sio_recheck_server(ag->sio, (apr_int64_t)sid);
            }
            else if (ag->sio && !strcmp(r[1], OSPAB_EVENT_ACCESS) && uid > 0) {
                agent_sio_recheck_user(ag->sio, (apr_int64_t)uid, session);
            }
        }
        else if (sid > 0 && !strncmp(r[1], "alert.", 6)) {
            const char *key = apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)sid);

            if (apr_hash_get(alerted, key, APR_HASH_KEY_STRING)) {
                json_decref(body);
                continue;           /* one list per server and batch is enough */
            }
            apr_hash_set(alerted, key, APR_HASH_KEY_STRING, "");
            /* the server's open alerts as they are now (seed 003's server-alerts) */
            json_t *msg = alerts_message(db, p, apr_psprintf(p, "%" APR_INT64_T_FMT,
                                                             (apr_int64_t)sid));

            agent_publish(ag, (apr_int64_t)sid, "server-alerts", msg);
            json_decref(msg);
        }
        else if (ev && sid > 0) {
            json_t *msg = json_deep_copy(data);

            /* the browser gets the panel's words; Proxmox's own are the provider's */
            json_object_del(msg, "userId");
            json_object_del(msg, "detail");
            agent_publish(ag, (apr_int64_t)sid, ev, msg);
            json_decref(msg);
        }
        json_decref(body);
    }
}

/* ---- the tick ------------------------------------------------------------------------------- */

static apr_time_t earliest(monitor_t *m)
{
    apr_time_t t = m->next_poll;

    t = m->next_tasks < t ? m->next_tasks : t;
    t = m->next_events < t ? m->next_events : t;
    t = m->next_live < t ? m->next_live : t;
    return t;
}

apr_interval_time_t agent_monitor_tick(agent_t *ag, ospab_db_t *db, apr_pool_t *p)
{
    monitor_t *m = mon_of(ag);
    agent_conf_t *c = ag->conf;
    apr_time_t now = apr_time_now(), next;

    if (m->conf != c) {
        reset_state(m, c);
    }
    if (now >= m->next_events) {
        push_events(ag, db, p);
        m->next_events = now + c->event_interval;
    }
    if (now >= m->next_tasks) {
        follow_tasks(ag, db, p, now);
        m->next_tasks = apr_time_now() + c->task_interval;
    }
    if (now >= m->next_poll) {
        poll_clusters(ag, db, p, now);
        m->next_poll = now + c->poll_interval;
        /* cluster back-offs are in cs->retry_at; the next poll is not before the first */
    }
    if (now >= m->next_live) {
        live_stats(ag, db, p, 0);
        m->next_live = apr_time_now() + c->live_interval;
    }
    else {
        live_stats(ag, db, p, 1);   /* rooms opened since the last round: at once */
    }
    next = earliest(m) - apr_time_now();
    return next > 0 ? next : 1;
}

apr_status_t agent_monitor_once(agent_t *ag, ospab_db_t *db)
{
    monitor_t *m = mon_of(ag);
    apr_pool_t *p;
    apr_time_t now = apr_time_now(), t0;
    int i, failed = 0;

    apr_pool_create(&p, ag->pool);
    m->use_leases = 0;              /* an explicit one-off run, beside any running agent */
    follow_tasks(ag, db, p, now);
    t0 = apr_time_now();
    poll_clusters(ag, db, p, now);
    for (i = 0; i < ag->conf->clusters->nelts; ++i) {
        failed += m->cl[i].failures > 0;
    }
    printf("{\"clusters\": %d, \"failed\": %d, \"guests\": %d, \"matched\": %d, "
           "\"written\": %d, \"drifted\": %d, \"alerts_opened\": %d, \"alerts_cleared\": %d, "
           "\"seconds\": %.3f}\n", ag->conf->clusters->nelts, failed, m->polled_guests,
           m->matched, m->written, m->drifted, m->opened, m->cleared,
           (double)(apr_time_now() - t0) / 1e6);
    fflush(stdout);
    apr_pool_destroy(p);
    return failed ? APR_EGENERAL : APR_SUCCESS;
}
