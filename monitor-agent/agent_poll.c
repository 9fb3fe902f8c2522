/* ospab-agent: the poll. One GET /cluster/resources per cluster, all clusters at
 * once over libcurl multi; guests matched to `vps` rows by node + vmid; metrics_latest
 * written for all of them in one transaction; status drift (a guest stopped from inside,
 * a guest deleted behind the panel's back) applied with its event; then adoption and the
 * alerts' samples. A cluster that fails is backed off (doubling up to backoff_max) and
 * tried again by itself. */
#include <limits.h>
#include <string.h>

#include <apr_strings.h>

#include "agent_monitor_int.h"
#include "ospab_util.h"
#include "agent_metrics.h"

#define MISSING_POLLS    2          /* a guest must be absent this often to count as gone */

/* The values of one metrics_latest row, in the order of ospab_metrics_put's parameters
 * (ospab_metrics_put_batch takes OSPAB_METRICS_BATCH of them in a row). */
enum { M_VPS_ID, M_STATUS, M_CPU, M_MEM, M_MAXMEM, M_DISK, M_MAXDISK, M_NETIN, M_NETOUT,
       M_UPTIME, M_SAMPLED_AT, M_VALUES };

/* A suspended server whose guest a round found running, with nothing of ours on it. */
typedef struct {
    agent_cluster_t *cl;
    const agent_vps_t *v;
} suspended_guest_t;

/* A registered node (009_nodes.sql) as the round saw it in /cluster/resources: its own
 * entry and its guest storage's. NULL: not seen. */
enum { N_STATUS, N_MAXCPU, N_MAXMEM, N_MEM, N_MAXDISK, N_DISK, N_SAMPLED_AT, N_NAME, N_VALUES };
typedef struct {
    const char *storage;            /* its guests' storage: the row's, or the cluster's */
    const char *values[N_VALUES];   /* ospab_node_sample's arguments */
    int seen;
} node_sample_t;

/* What one poll round works with, once Proxmox has answered. */
typedef struct {
    agent_t *ag;
    ospab_db_t *db;
    apr_pool_t *p;
    apr_time_t now;
    const char *nowt;
    apr_hash_t *index;              /* "node/vmid" -> agent_vps_t *: the bound records */
    apr_hash_t *busy;               /* ids of servers with a task queued or running -> "" */
    apr_hash_t *open;               /* the open alerts (agent_alerts_open) */
    apr_hash_t *warm;               /* servers with alert state (agent_alerts_warm) */
    apr_hash_t *seen;               /* ids of the servers found in this round's answers */
    apr_array_header_t *metrics;    /* const char *[M_VALUES], one per server found */
    apr_array_header_t *suspects;   /* status/current of servers that seem to have drifted */
    apr_array_header_t *gone;       /* status/current of servers missing from the list */
    apr_array_header_t *suspended;  /* suspended_guest_t: suspended servers found running */
    apr_hash_t *nodes;              /* name -> node_sample_t *: the registered nodes */
    int nvps;                       /* bound records */
    const int *polled;              /* the clusters asked (conf->clusters indexes) ... */
    int npolled;                    /* ... and how many */
} poll_round_t;

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
        /* apr_ltoa: cheaper than apr_psprintf, and seven of the values are integers */
        return n >= LONG_MIN && n <= LONG_MAX ? apr_ltoa(p, (long)n)
                                              : apr_psprintf(p, "%" APR_INT64_T_FMT, n);
    }
    if (ospab_pve_double(json_object_get(o, key), &d)) {
        return apr_psprintf(p, "%.6f", d);
    }
    return NULL;
}

/* The clusters a round polled (which[0..n-1]): their leases checked in the transaction
 * that writes what the round saw. 1: all still this agent's. */
static int fenced(poll_round_t *r)
{
    int j;

    for (j = 0; j < r->npolled; ++j) {
        if (!agent_lease_fence(r->ag, r->db, r->p, &APR_ARRAY_IDX(r->ag->conf->clusters,
                                                                   r->polled[j],
                                                                   agent_cluster_t))) {
            return 0;
        }
    }
    return 1;
}

/* All rows in one transaction: OSPAB_METRICS_BATCH per statement, the rest one by one. */
static int store_metrics_txn(poll_round_t *r, apr_array_header_t *rows)
{
    ospab_db_t *db = r->db;
    apr_pool_t *p = r->p;
    const char **batch = apr_palloc(p, sizeof(char *) * M_VALUES * OSPAB_METRICS_BATCH);
    apr_hash_index_t *hi;
    int i = 0, good = 1;

    if (!rows->nelts && !apr_hash_count(r->nodes)) {
        return 1;
    }
    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        return 0;
    }
    if (!fenced(r)) {
        ospab_db_end(db, 0);
        return 1;                   /* not this agent's to write any more */
    }
    for (; good && i + OSPAB_METRICS_BATCH <= rows->nelts; i += OSPAB_METRICS_BATCH) {
        int k;

        for (k = 0; k < OSPAB_METRICS_BATCH; ++k) {
            memcpy(batch + M_VALUES * k, APR_ARRAY_IDX(rows, i + k, const char **),
                   sizeof(char *) * M_VALUES);
        }
        good = ospab_db_exec(db, p, "ospab_metrics_put_batch", M_VALUES * OSPAB_METRICS_BATCH,
                             batch, NULL) == APR_SUCCESS;
    }
    for (; good && i < rows->nelts; ++i) {
        good = ospab_db_exec(db, p, "ospab_metrics_put", M_VALUES,
                             APR_ARRAY_IDX(rows, i, const char **), NULL) == APR_SUCCESS;
    }
    /* the registered nodes this round saw: placement's view of them (lib/ospab_placement.h) */
    for (hi = apr_hash_first(p, r->nodes); good && hi; hi = apr_hash_next(hi)) {
        node_sample_t *s = apr_hash_this_val(hi);

        if (s->seen) {
            good = ospab_db_exec(db, p, "ospab_node_sample", N_VALUES, s->values, NULL)
                   == APR_SUCCESS;
        }
    }
    return ospab_db_end(db, good) == APR_SUCCESS && good;
}

/* store_metrics_txn, run again after a write conflict (on Galera another node's rows of
 * the same servers, e.g. a power operation's status, abort it at COMMIT) */
static int store_metrics_once(poll_round_t *r, apr_array_header_t *rows)
{
    int attempt = 0;

    while (!store_metrics_txn(r, rows)) {
        if (!agent_db_conflict_again(r->db, &attempt)) {
            return 0;
        }
    }
    return 1;
}

static void store_metrics(poll_round_t *r, apr_array_header_t *rows)
{
    ospab_db_t *db = r->db;
    apr_pool_t *p = r->p;
    apr_array_header_t *left, *ids;
    apr_hash_t *exists;
    int i;

    if ((!rows->nelts && !apr_hash_count(r->nodes)) || store_metrics_once(r, rows)) {
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
        agent_vps_t v;

        agent_vps_from_row(APR_ARRAY_IDX(ids, i, ospab_row_t), &v);
        apr_hash_set(exists, v.id, APR_HASH_KEY_STRING, "");
    }
    left = apr_array_make(p, rows->nelts, sizeof(const char **));
    for (i = 0; i < rows->nelts; ++i) {
        const char **values = APR_ARRAY_IDX(rows, i, const char **);

        if (apr_hash_get(exists, values[M_VPS_ID], APR_HASH_KEY_STRING)) {
            APR_ARRAY_PUSH(left, const char **) = values;
        }
    }
    if (!store_metrics_once(r, left)) {
        AGENT_WARN("metrics not stored: %s", db->error ? db->error : "?");
    }
}

void agent_ask_status(apr_array_header_t *reqs, apr_pool_t *p, agent_cluster_t *cl,
                      const agent_vps_t *v, const char *kind)
{
    ospab_pve_req_t *q = apr_array_push(reqs);

    memset(q, 0, sizeof(*q));
    q->pve = cl->client;
    q->method = "GET";
    q->path = ospab_pve_path(p, "nodes", v->node, kind, v->vmid, "status", "current", NULL);
    q->data = (void *)v;
}

/* The /cluster/resources requests of this round: one per cluster this agent holds the
 * lease of and that is not backed off. *complete becomes 0 when a cluster that is ours
 * waits in back-off (its guests are unknown this round). Returns how many. */
static int ask_clusters(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                        ospab_pve_req_t *reqs, int *which, int *complete)
{
    monitor_t *m = mon_of(ag);
    apr_array_header_t *clusters = ag->conf->clusters;
    int i, nreq = 0;

    for (i = 0; i < clusters->nelts; ++i) {
        agent_cluster_t *cl = &APR_ARRAY_IDX(clusters, i, agent_cluster_t);
        cluster_state_t *cs = &m->cl[i];

        if (m->use_leases && !agent_lease_take(ag, db, p, i, now)) {
            if (cs->holder[0] && strcmp(cs->logged_holder, cs->holder)) {
                AGENT_INFO("[cluster %s]: polled by %s; this agent stands by", cl->name,
                           cs->holder);
                apr_cpystrn(cs->logged_holder, cs->holder, sizeof(cs->logged_holder));
            }
            continue;
        }
        if (cs->retry_at > now) {
            *complete = 0;
            continue;
        }
        reqs[nreq].pve = cl->client;
        reqs[nreq].method = "GET";
        reqs[nreq].path = "/cluster/resources";
        reqs[nreq].params = NULL;   /* guests, and the nodes and storages placement needs */
        which[nreq++] = i;
    }
    return nreq;
}

/* Which clusters this agent polls now, for its metrics. */
static void publish_leases(agent_t *ag, apr_pool_t *p)
{
    apr_array_header_t *clusters = ag->conf->clusters;
    monitor_t *m = mon_of(ag);
    const char **names;
    int *held, i;

    if (!agent_metrics.served) {
        return;
    }
    names = apr_palloc(p, sizeof(char *) * (apr_size_t)(clusters->nelts + 1));
    held = apr_palloc(p, sizeof(int) * (apr_size_t)(clusters->nelts + 1));
    for (i = 0; i < clusters->nelts; ++i) {
        names[i] = APR_ARRAY_IDX(clusters, i, agent_cluster_t).name;
        /* without leases (a single agent) every cluster is this agent's */
        held[i] = m->use_leases ? m->cl[i].leased : 1;
    }
    agent_metrics_leases(names, held, clusters->nelts);
}

/* A cluster's poll failed: the next try waits poll_interval, doubled for each failure
 * after the first, at most backoff_max. */
static void back_off(const agent_conf_t *c, agent_cluster_t *cl, cluster_state_t *cs,
                     const ospab_pve_req_t *q, apr_time_t now)
{
    apr_interval_time_t wait = c->poll_interval;
    int f;

    cs->failures++;
    AGENT_COUNT(poll_failures);
    for (f = 1; f < cs->failures && wait < c->backoff_max; ++f) {
        wait *= 2;
    }
    if (wait > c->backoff_max) {
        wait = c->backoff_max;
    }
    cs->retry_at = now + wait;
    if (cs->failures == 1 || agent_log_enabled(AGENT_LOG_DEBUG)) {
        AGENT_WARN("poll [cluster %s]: %s; backing off (next try in %.1fs)", cl->name,
                   q->res.message ? q->res.message : "no usable answer", (double)wait / 1e6);
    }
}

/* What the round needs from the database: the bound records, the busy servers and the
 * open alerts. 0: the database failed. */
static int load_round(poll_round_t *r)
{
    apr_array_header_t *vrows, *busy_rows;
    agent_vps_t *all;
    int i;

    if (ospab_db_select(r->db, r->p, "ospab_agent_vps_index", 0, NULL, &vrows, NULL)
            != APR_SUCCESS
        || ospab_db_select(r->db, r->p, "ospab_task_active_servers", 0, NULL, &busy_rows, NULL)
           != APR_SUCCESS
        || !(r->open = agent_alerts_open(r->db, r->p))) {
        AGENT_WARN("poll: database: %s", r->db->error ? r->db->error : "?");
        return 0;
    }
    r->warm = agent_alerts_warm(r->ag, r->open, r->p);
    r->nvps = vrows->nelts;
    r->index = apr_hash_make(r->p);
    all = apr_palloc(r->p, sizeof(*all) * (apr_size_t)(vrows->nelts + 1));
    for (i = 0; i < vrows->nelts; ++i) {
        agent_vps_t *v = &all[i];

        agent_vps_from_row(APR_ARRAY_IDX(vrows, i, ospab_row_t), v);
        apr_hash_set(r->index, apr_pstrcat(r->p, v->node, "/", v->vmid, NULL),
                     APR_HASH_KEY_STRING, v);
    }
    r->busy = apr_hash_make(r->p);
    for (i = 0; i < busy_rows->nelts; ++i) {
        apr_hash_set(r->busy, agent_active_server_from_row(APR_ARRAY_IDX(busy_rows, i,
                                                                         ospab_row_t)),
                     APR_HASH_KEY_STRING, "");
    }
    r->seen = apr_hash_make(r->p);
    r->metrics = apr_array_make(r->p, vrows->nelts + 1, sizeof(const char **));
    r->suspects = apr_array_make(r->p, 8, sizeof(ospab_pve_req_t));
    r->gone = apr_array_make(r->p, 8, sizeof(ospab_pve_req_t));
    r->suspended = apr_array_make(r->p, 4, sizeof(suspended_guest_t));
    r->nodes = apr_hash_make(r->p);
    if (ospab_db_select(r->db, r->p, "ospab_agent_nodes", 0, NULL, &vrows, NULL) != APR_SUCCESS) {
        AGENT_WARN("poll: database: %s", r->db->error ? r->db->error : "?");
        return 0;
    }
    for (i = 0; i < vrows->nelts; ++i) {
        ospab_row_t row = APR_ARRAY_IDX(vrows, i, ospab_row_t);
        node_sample_t *s = apr_pcalloc(r->p, sizeof(*s));

        s->storage = row[1];
        s->values[N_NAME] = row[0];
        apr_hash_set(r->nodes, row[0], APR_HASH_KEY_STRING, s);
    }
    return 1;
}

/* An entry of type node or storage of a cluster's answer: a registered node's sample. */
static void take_node(poll_round_t *r, agent_cluster_t *cl, json_t *e, const char *type,
                      const char *node)
{
    node_sample_t *s = apr_hash_get(r->nodes, node, APR_HASH_KEY_STRING);

    if (!s) {
        return;
    }
    if (!strcmp(type, "node")) {
        s->values[N_STATUS] = json_string_value(json_object_get(e, "status"));
        s->values[N_MAXCPU] = num_text(r->p, e, "maxcpu");
        s->values[N_MAXMEM] = num_text(r->p, e, "maxmem");
        s->values[N_MEM] = num_text(r->p, e, "mem");
        s->values[N_SAMPLED_AT] = r->nowt;
        s->seen = 1;
    }
    else {
        const char *storage = json_string_value(json_object_get(e, "storage"));
        const char *mine = s->storage ? s->storage : cl->storage;

        if (storage && mine && !strcmp(storage, mine)) {
            s->values[N_MAXDISK] = num_text(r->p, e, "maxdisk");
            s->values[N_DISK] = num_text(r->p, e, "disk");
        }
    }
}

/* One guest of a cluster's answer g that is ours (v): its metrics row, a drift to check,
 * its alerts' samples. */
static void take_guest(poll_round_t *r, agent_cluster_t *cl, agent_vps_t *v, json_t *g,
                       const char *type)
{
    monitor_t *m = mon_of(r->ag);
    const char *st = json_string_value(json_object_get(g, "status"));
    const char **values = apr_palloc(r->p, sizeof(char *) * M_VALUES);
    int ok[OSPAB_ALERT_METRICS], t, warm;
    double val[OSPAB_ALERT_METRICS];

    m->matched++;
    apr_hash_set(r->seen, v->id, APR_HASH_KEY_STRING, "");
    if (apr_hash_count(m->missing)) {
        apr_hash_set(m->missing, v->id, APR_HASH_KEY_STRING, NULL);
    }
    values[M_VPS_ID] = v->id;
    values[M_STATUS] = st;
    values[M_CPU] = num_text(r->p, g, "cpu");
    values[M_MEM] = num_text(r->p, g, "mem");
    values[M_MAXMEM] = num_text(r->p, g, "maxmem");
    values[M_DISK] = num_text(r->p, g, "disk");
    values[M_MAXDISK] = num_text(r->p, g, "maxdisk");
    values[M_NETIN] = num_text(r->p, g, "netin");
    values[M_NETOUT] = num_text(r->p, g, "netout");
    values[M_UPTIME] = num_text(r->p, g, "uptime");
    values[M_SAMPLED_AT] = r->nowt;
    APR_ARRAY_PUSH(r->metrics, const char **) = values;

    /* drift: the guest's own state wins over ours when nothing of ours is running on it
     * (no task, no Proxmox lock) */
    if (st && (!strcmp(st, "running") || !strcmp(st, "stopped"))
        && v->status && (!strcmp(v->status, "running") || !strcmp(v->status, "stopped")
                         || !strcmp(v->status, "missing"))
        && strcmp(v->status, st)
        && !apr_hash_get(r->busy, v->id, APR_HASH_KEY_STRING)
        && !json_is_string(json_object_get(g, "lock"))) {
        /* /cluster/resources lags (pvestatd): asked directly before believing it */
        agent_ask_status(r->suspects, r->p, cl, v, type);
    }
    /* suspension (lib/ospab_suspend.c): the record wins, its guest is stopped */
    if (st && !strcmp(st, "running") && v->status && !strcmp(v->status, "suspended")
        && !apr_hash_get(r->busy, v->id, APR_HASH_KEY_STRING)
        && !json_is_string(json_object_get(g, "lock"))) {
        suspended_guest_t *s = apr_array_push(r->suspended);

        s->cl = cl;
        s->v = v;
    }

    /* alerts: a stopped guest uses nothing */
    val[OSPAB_ALERT_CPU] = 0;
    ok[OSPAB_ALERT_CPU] = ospab_pve_double(json_object_get(g, "cpu"), &val[OSPAB_ALERT_CPU]);
    val[OSPAB_ALERT_CPU] *= 100.0;
    val[OSPAB_ALERT_MEMORY] = percent(g, "mem", "maxmem", &ok[OSPAB_ALERT_MEMORY]);
    val[OSPAB_ALERT_DISK] = percent(g, "disk", "maxdisk", &ok[OSPAB_ALERT_DISK]);
    /* changes are events: every agent pushes them (agent_push_events); a server without
     * alert state (most of them) is looked up only for a sample above the threshold */
    warm = apr_hash_get(r->warm, v->id, APR_HASH_KEY_STRING) != NULL;
    for (t = 0; t < OSPAB_ALERT_METRICS; ++t) {
        if (warm || agent_alert_wakes(r->ag, val[t], ok[t])) {
            agent_alert_sample(r->ag, r->db, r->p, r->open, v, (ospab_alert_metric_e)t,
                               val[t], ok[t], r->now);
        }
    }
}

/* Records on nodes (the cluster's) that its answer no longer lists: after MISSING_POLLS
 * polls in a row Proxmox is asked about them. */
static void find_missing(poll_round_t *r, agent_cluster_t *cl, apr_hash_t *nodes)
{
    monitor_t *m = mon_of(r->ag);
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(r->p, r->index); hi; hi = apr_hash_next(hi)) {
        agent_vps_t *v = apr_hash_this_val(hi);
        int *miss;

        if (!apr_hash_get(nodes, v->node, APR_HASH_KEY_STRING)
            || apr_hash_get(r->seen, v->id, APR_HASH_KEY_STRING)
            || apr_hash_get(r->busy, v->id, APR_HASH_KEY_STRING)
            || !v->status || (strcmp(v->status, "running") && strcmp(v->status, "stopped"))) {
            continue;
        }
        miss = apr_hash_get(m->missing, v->id, APR_HASH_KEY_STRING);
        if (!miss) {
            miss = apr_pcalloc(m->state_pool, sizeof(*miss));
            apr_hash_set(m->missing, apr_pstrdup(m->state_pool, v->id), APR_HASH_KEY_STRING,
                         miss);
        }
        if (++*miss < MISSING_POLLS) {
            continue;
        }
        agent_ask_status(r->gone, r->p, cl, v, v->kind ? v->kind : "lxc");
    }
}

/* A cluster's good answer: its nodes noted, its guests taken, its missing ones found. */
static void take_cluster(poll_round_t *r, agent_cluster_t *cl, cluster_state_t *cs,
                         json_t *data)
{
    monitor_t *m = mon_of(r->ag);
    apr_hash_t *nodes;
    size_t k;

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
        apr_int64_t vmid;
        agent_vps_t *v;

        if (node && type && (!strcmp(type, "node") || !strcmp(type, "storage"))) {
            take_node(r, cl, g, type, node);
            continue;
        }
        if (!node || !type || (strcmp(type, "lxc") && strcmp(type, "qemu"))
            || !ospab_pve_int(json_object_get(g, "vmid"), &vmid)) {
            continue;
        }
        m->polled_guests++;
        if (!apr_hash_get(nodes, node, APR_HASH_KEY_STRING)) {
            apr_hash_set(nodes, apr_pstrdup(cs->pool, node), APR_HASH_KEY_STRING, "");
        }
        v = apr_hash_get(r->index, apr_psprintf(r->p, "%s/%" APR_INT64_T_FMT, node, vmid),
                         APR_HASH_KEY_STRING);
        if (v) {
            take_guest(r, cl, v, g, type);
        }
        /* else: not one of ours (or not synced yet) */
    }
    find_missing(r, cl, nodes);
}

/* A server's status as the round found it, written only while the agent still holds the
 * lease of the server's cluster with the same token. */
static void set_status_fenced(poll_round_t *r, const ospab_actor_t *act, const agent_vps_t *v,
                              const char *status)
{
    agent_fence_t f;
    ospab_actor_t a = *act;

    f.ag = r->ag;
    f.cl = agent_cluster_of_node(r->ag, v->node);
    a.guard = agent_lease_guard;
    a.guard_baton = &f;
    ospab_server_set_status(r->db, r->p, &a, v->id, status);
}

/* The suspects' own status/current: a running/stopped that differs from ours, with no
 * Proxmox lock, is the server's status now (with its server.status event). */
static void apply_drift(poll_round_t *r, const ospab_actor_t *act)
{
    monitor_t *m = mon_of(r->ag);
    int i;

    if (!r->suspects->nelts) {
        return;
    }
    ospab_pve_call_many(r->p, 0, (ospab_pve_req_t *)r->suspects->elts, r->suspects->nelts,
                        LIVE_PARALLEL);
    for (i = 0; i < r->suspects->nelts; ++i) {
        ospab_pve_req_t *q = &APR_ARRAY_IDX(r->suspects, i, ospab_pve_req_t);
        const agent_vps_t *v = q->data;
        const char *st = json_string_value(json_object_get(q->res.data, "status"));

        if (q->rv != APR_SUCCESS || !st || !strcmp(st, v->status)
            || (strcmp(st, "running") && strcmp(st, "stopped"))
            || json_is_string(json_object_get(q->res.data, "lock"))) {
            continue;
        }
        AGENT_INFO("drift: server %s (%s/%s) is %s, was %s", v->id, v->node, v->vmid, st,
                   v->status);
        set_status_fenced(r, act, v, st);
        m->drifted++;
        AGENT_COUNT(drift);
    }
}

/* Suspended servers found running: stopped (ospab_suspension_enforce asks the guest's own
 * status first, so a lagging list stops nothing twice), while the agent still holds the
 * cluster's lease. */
static void apply_suspension(poll_round_t *r, const ospab_actor_t *act)
{
    int i;

    for (i = 0; i < r->suspended->nelts && !r->ag->stopping; ++i) {
        suspended_guest_t *s = &APR_ARRAY_IDX(r->suspended, i, suspended_guest_t);
        agent_fence_t f;
        ospab_server_conf_t sc;
        ospab_actor_t a = *act;

        f.ag = r->ag;
        f.cl = s->cl;
        if (!agent_lease_guard(&f, r->db, r->p)) {
            continue;
        }
        agent_server_conf(s->cl, &sc);
        a.now = apr_time_now();
        if (ospab_suspension_enforce(r->db, r->p, &sc, &a, s->v->id)) {
            AGENT_INFO("suspension: server %s (%s/%s) was running; stopping it", s->v->id,
                       s->v->node, s->v->vmid);
            AGENT_COUNT(suspension_stops);
        }
    }
}

/* Absent twice from the list; Proxmox itself must also say it does not exist (a 500
 * "Configuration file ... does not exist"), not merely fail to answer: status missing. */
static void apply_gone(poll_round_t *r, const ospab_actor_t *act)
{
    monitor_t *m = mon_of(r->ag);
    int i;

    if (!r->gone->nelts) {
        return;
    }
    ospab_pve_call_many(r->p, 0, (ospab_pve_req_t *)r->gone->elts, r->gone->nelts,
                        LIVE_PARALLEL);
    for (i = 0; i < r->gone->nelts; ++i) {
        ospab_pve_req_t *q = &APR_ARRAY_IDX(r->gone, i, ospab_pve_req_t);
        const agent_vps_t *v = q->data;

        if (q->res.outcome != OSPAB_PVE_HTTP_ERROR || !q->res.message
            || !strstr(q->res.message, "does not exist")) {
            continue;
        }
        AGENT_WARN("drift: server %s (%s/%s) is gone from Proxmox; marked missing", v->id,
                   v->node, v->vmid);
        set_status_fenced(r, act, v, "missing");
        m->drifted++;
        AGENT_COUNT(drift);
    }
}

void agent_poll_clusters(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_time_t now)
{
    monitor_t *m = mon_of(ag);
    agent_conf_t *c = ag->conf;
    ospab_pve_req_t *reqs;
    poll_round_t r;
    int *which, nreq, j, complete = 1;
    ospab_actor_t act = agent_monitor_actor(now);
    apr_time_t t0 = apr_time_now();

    m->polled_guests = m->matched = m->written = m->drifted = m->opened = m->cleared = 0;
    m->adopted = 0;
    reqs = apr_pcalloc(p, sizeof(*reqs) * (apr_size_t)(c->clusters->nelts + 1));
    which = apr_pcalloc(p, sizeof(int) * (apr_size_t)(c->clusters->nelts + 1));
    nreq = ask_clusters(ag, db, p, now, reqs, which, &complete);
    publish_leases(ag, p);
    if (!nreq) {
        return;
    }
    apr_atomic_add64(&agent_metrics.polls, (apr_uint64_t)nreq);
    ospab_pve_call_many(p, 0, reqs, nreq, nreq);

    memset(&r, 0, sizeof(r));
    r.ag = ag;
    r.db = db;
    r.p = p;
    r.now = now;
    r.nowt = ospab_time_db(p, now);
    r.polled = which;
    r.npolled = nreq;
    if (!load_round(&r)) {
        return;
    }
    for (j = 0; j < nreq; ++j) {
        agent_cluster_t *cl = &APR_ARRAY_IDX(c->clusters, which[j], agent_cluster_t);
        cluster_state_t *cs = &m->cl[which[j]];

        if (reqs[j].rv != APR_SUCCESS || !json_is_array(reqs[j].res.data)) {
            back_off(c, cl, cs, &reqs[j], now);
            complete = 0;
            continue;
        }
        take_cluster(&r, cl, cs, reqs[j].res.data);
    }
    apply_drift(&r, &act);
    apply_gone(&r, &act);
    apply_suspension(&r, &act);
    /* every guest of the clusters this agent polls is known only when all of them
     * answered: one that did not might hold the record's guest, or its namesake */
    if (complete) {
        agent_adopt_unbound(ag, db, p, now, reqs, which, nreq, r.index);
    }
    store_metrics(&r, r.metrics);
    m->written = r.metrics->nelts;
    m->poll_time = apr_time_now() - t0;
    ospab_prom_observe(&agent_metrics.poll, m->poll_time);
    apr_atomic_set32(&agent_metrics.guests, (apr_uint32_t)m->polled_guests);
    AGENT_DEBUG("poll: %d guests, %d ours, %d drifted, %d alerts opened, %d cleared, "
                "%d adopted, %.3fs", m->polled_guests, m->matched, m->drifted, m->opened,
                m->cleared, m->adopted, (double)m->poll_time / 1e6);
    /* the hashes of streaks and misses only grow with the number of servers; a server
     * deleted long ago should not stay forever */
    if (apr_hash_count(m->streak) > (unsigned)(r.nvps * 3 + 1024)) {
        apr_pool_clear(m->state_pool);
        m->streak = apr_hash_make(m->state_pool);
        m->missing = apr_hash_make(m->state_pool);
    }
}
