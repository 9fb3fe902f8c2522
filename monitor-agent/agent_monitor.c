/* ospab-agent: the monitor thread. Its tick runs the rounds when they are due:
 *
 * Every poll_interval: the poll (agent_poll.c): every cluster's /cluster/resources,
 * metrics_latest, status drift, adoption of records synced without node/vmid
 * (agent_adopt.c), alerts raised and cleared with hysteresis (agent_alerts.c), each
 * cluster polled by the agent holding its lease (agent_leases.c).
 * Every live_interval: live stats of the servers that have subscribers (agent_live.c).
 * Every task_interval: running Proxmox tasks followed up (agent_events.c).
 * Every event_interval: new event rows pushed to the servers' rooms (agent_events.c).
 *
 * All of this runs on the monitor thread only: its state (monitor_t, agent_monitor_int.h)
 * needs no lock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_strings.h>
#include <apr_hash.h>

#include "agent_monitor.h"
#include "agent_monitor_int.h"
#include "ospab_util.h"

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

void agent_monitor_clusters_changed(monitor_t *m, agent_conf_t *c)
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

/* A configuration (the first, or a reload's): the file's clusters, the database's to be
 * read again (agent_clusters.c). */
static void reset_state(monitor_t *m, agent_conf_t *c)
{
    m->file_clusters = c->clusters;
    m->clusters_stamp = NULL;
    m->imported = 0;
    agent_monitor_clusters_changed(m, c);
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

ospab_actor_t agent_monitor_actor(apr_time_t now)
{
    ospab_actor_t a;

    memset(&a, 0, sizeof(a));
    a.type = "agent";
    a.id = NULL;
    a.remote_addr = NULL;
    a.now = now;
    return a;
}

agent_cluster_t *agent_cluster_of_node(agent_t *ag, const char *node)
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

cluster_state_t *agent_cluster_state(agent_t *ag, agent_cluster_t *cl)
{
    return &mon_of(ag)->cl[cl - &APR_ARRAY_IDX(ag->conf->clusters, 0, agent_cluster_t)];
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
        agent_push_events(ag, db, p);
        m->next_events = now + c->event_interval;
    }
    if (now >= m->next_tasks) {
        agent_follow_tasks(ag, db, p, now);
        m->next_tasks = apr_time_now() + c->task_interval;
    }
    if (now >= m->next_poll) {
        agent_clusters_refresh(ag, db, p);
        agent_poll_clusters(ag, db, p, now);
        m->next_poll = now + c->poll_interval;
        /* cluster back-offs are in cs->retry_at; the next poll is not before the first */
    }
    if (now >= m->next_live) {
        agent_live_stats(ag, db, p, 0);
        m->next_live = apr_time_now() + c->live_interval;
    }
    else {
        agent_live_stats(ag, db, p, 1);   /* rooms opened since the last round: at once */
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
    agent_clusters_refresh(ag, db, p);
    agent_follow_tasks(ag, db, p, now);
    t0 = apr_time_now();
    agent_poll_clusters(ag, db, p, now);
    for (i = 0; i < ag->conf->clusters->nelts; ++i) {
        failed += m->cl[i].failures > 0;
    }
    printf("{\"clusters\": %d, \"failed\": %d, \"guests\": %d, \"matched\": %d, "
           "\"written\": %d, \"drifted\": %d, \"alerts_opened\": %d, \"alerts_cleared\": %d, "
           "\"adopted\": %d, \"seconds\": %.3f}\n", ag->conf->clusters->nelts, failed,
           m->polled_guests, m->matched, m->written, m->drifted, m->opened, m->cleared,
           m->adopted, (double)(apr_time_now() - t0) / 1e6);
    fflush(stdout);
    apr_pool_destroy(p);
    return failed ? APR_EGENERAL : APR_SUCCESS;
}
