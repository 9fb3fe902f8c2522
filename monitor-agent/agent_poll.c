/* ospab-agent: the poll. One GET /cluster/resources?type=vm per cluster, all clusters at
 * once over libcurl multi; guests matched to `vps` rows by node + vmid; metrics_latest
 * written for all of them in one transaction; status drift (a guest stopped from inside,
 * a guest deleted behind the panel's back) applied with its event; then adoption and the
 * alerts' samples. A cluster that fails is backed off (doubling up to backoff_max) and
 * tried again by itself. */
#include <string.h>

#include <apr_strings.h>

#include "agent_monitor_int.h"
#include "ospab_util.h"

#define MISSING_POLLS    2          /* a guest must be absent this often to count as gone */

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
void agent_ask_status(apr_array_header_t *reqs, apr_pool_t *p, agent_cluster_t *cl,
                      vps_row_t v, const char *kind)
{
    ospab_pve_req_t *q = apr_array_push(reqs);

    memset(q, 0, sizeof(*q));
    q->pve = cl->client;
    q->method = "GET";
    q->path = ospab_pve_path(p, "nodes", v[V_NODE], kind, v[V_VMID], "status", "current", NULL);
    q->data = (void *)v;
}

void agent_poll_clusters(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_time_t now)
{
    monitor_t *m = mon_of(ag);
    agent_conf_t *c = ag->conf;
    static const ospab_pve_param_t vm_only[2] = { { "type", "vm" }, { NULL, NULL } };
    ospab_pve_req_t *reqs;
    int *which, nreq = 0, i, j, complete = 1;
    apr_array_header_t *vrows, *mrows, *busy_rows, *suspects, *gone;
    apr_hash_t *index, *open, *busy, *seen;
    ospab_actor_t act = agent_monitor_actor(now);
    apr_time_t t0 = apr_time_now();
    const char *nowt = ospab_time_db(p, now);

    m->polled_guests = m->matched = m->written = m->drifted = m->opened = m->cleared = 0;
    m->adopted = 0;
    reqs = apr_pcalloc(p, sizeof(*reqs) * (apr_size_t)(c->clusters->nelts + 1));
    which = apr_pcalloc(p, sizeof(int) * (apr_size_t)(c->clusters->nelts + 1));
    for (i = 0; i < c->clusters->nelts; ++i) {
        agent_cluster_t *cl = &APR_ARRAY_IDX(c->clusters, i, agent_cluster_t);

        if (m->use_leases && !agent_lease_take(ag, db, p, i, now)) {
            cluster_state_t *cs = &m->cl[i];

            if (cs->holder[0] && strcmp(cs->logged_holder, cs->holder)) {
                AGENT_INFO("[cluster %s]: polled by %s; this agent stands by", cl->name,
                           cs->holder);
                apr_cpystrn(cs->logged_holder, cs->holder, sizeof(cs->logged_holder));
            }
            continue;
        }
        if (m->cl[i].retry_at > now) {
            complete = 0;           /* its guests are unknown this round */
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
        || !(open = agent_alerts_open(db, p))) {
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
            complete = 0;
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
            int ok[OSPAB_ALERT_METRICS], t;
            double val[OSPAB_ALERT_METRICS];

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
                agent_ask_status(suspects, p, cl, v, type);
            }

            /* alerts: a stopped guest uses nothing */
            val[OSPAB_ALERT_CPU] = 0;
            ok[OSPAB_ALERT_CPU] = ospab_pve_double(json_object_get(g, "cpu"),
                                                   &val[OSPAB_ALERT_CPU]);
            val[OSPAB_ALERT_CPU] *= 100.0;
            val[OSPAB_ALERT_MEMORY] = percent(g, "mem", "maxmem", &ok[OSPAB_ALERT_MEMORY]);
            val[OSPAB_ALERT_DISK] = percent(g, "disk", "maxdisk", &ok[OSPAB_ALERT_DISK]);
            /* changes are events: every agent pushes them (agent_push_events) */
            for (t = 0; t < OSPAB_ALERT_METRICS; ++t) {
                agent_alert_sample(ag, db, p, open, v, (ospab_alert_metric_e)t, val[t], ok[t],
                                   now);
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
            agent_ask_status(gone, p, cl, v, v[V_KIND] ? v[V_KIND] : "lxc");
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
    /* every guest of the clusters this agent polls is known only when all of them
     * answered: one that did not might hold the record's guest, or its namesake */
    if (complete) {
        agent_adopt_unbound(ag, db, p, now, reqs, which, nreq, index);
    }
    store_metrics(db, p, mrows);
    m->written = mrows->nelts;
    m->poll_time = apr_time_now() - t0;
    AGENT_DEBUG("poll: %d guests, %d ours, %d drifted, %d alerts opened, %d cleared, "
                "%d adopted, %.3fs", m->polled_guests, m->matched, m->drifted, m->opened,
                m->cleared, m->adopted, (double)m->poll_time / 1e6);
    /* the hashes of streaks and misses only grow with the number of servers; a server
     * deleted long ago should not stay forever */
    if (apr_hash_count(m->streak) > (unsigned)(vrows->nelts * 3 + 1024)) {
        apr_pool_clear(m->state_pool);
        m->streak = apr_hash_make(m->state_pool);
        m->missing = apr_hash_make(m->state_pool);
    }
}
