/* ospab-agent: live stats. Every live_interval, status/current + rrddata for the servers
 * that have subscribers, pushed as server-stats in the shape of GET /api/server/{id}/status's
 * "stats"; a room opened since the last round at once, with its open alerts. */
#include <string.h>

#include <apr_strings.h>

#include "agent_monitor_int.h"

#define LIVE_MAX_ROOMS   2000       /* servers fetched per live round */

/* rrddata of a watched server, kept for [agent] rrd_refresh: its points are a minute apart, so
 * asking Proxmox for them at every live round would double the load for nothing */
typedef struct {
    json_t *rrd;                    /* own reference */
    apr_time_t at;
} rrd_entry_t;

typedef struct {
    agent_vps_t v;
    int cur;                        /* index of its status/current request */
    int rrd;                        /* index of its rrddata request, -1: from the cache */
    int waiting;                    /* its requests without an answer yet */
    rrd_entry_t *cached;
} live_item_t;

/* a live round's state, for the answers as they come (live_answer) */
typedef struct {
    agent_t *ag;
    apr_pool_t *p;
    apr_time_t now;
    apr_array_header_t *rooms;
} live_round_t;

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

/* A fresh cache that keeps the entries of the old one for the rooms in use. */
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

        /* an old one too: it is fetched again (ask_room), and the compact form sends
         * only the points the new one adds to it */
        if (e && e->rrd) {
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

/* Queues on reqs (at *n) the requests for the watched server id: its status/current, and
 * its rrddata unless the cache has it. 0: nothing to ask (not a bound record, or its
 * cluster is failing). */
static int ask_room(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                    const char *id, ospab_pve_req_t *reqs, int *n, live_item_t *it)
{
    static const ospab_pve_param_t rrd_params[3] = { { "timeframe", "hour" },
                                                     { "cf", "AVERAGE" }, { NULL, NULL } };
    monitor_t *m = mon_of(ag);
    ospab_row_t row = NULL;
    agent_cluster_t *cl;
    const char *kind;

    if (ospab_db_select_one(db, p, "ospab_agent_vps_one", 1, &id, &row) != APR_SUCCESS
        || !row) {
        return 0;
    }
    agent_vps_from_row(row, &it->v);
    if (!(cl = agent_cluster_of_node(ag, it->v.node)) || agent_cluster_state(ag, cl)->failures) {
        return 0;
    }
    kind = it->v.kind && !strcmp(it->v.kind, "qemu") ? "qemu" : "lxc";
    it->cur = *n;
    it->waiting = 1;
    reqs[*n].pve = cl->client;
    reqs[*n].method = "GET";
    reqs[*n].path = ospab_pve_path(p, "nodes", it->v.node, kind, it->v.vmid, "status",
                                   "current", NULL);
    reqs[*n].data = it;
    ++*n;
    it->cached = m->rrd ? apr_hash_get(m->rrd, id, APR_HASH_KEY_STRING) : NULL;
    if (it->cached && it->cached->rrd && now - it->cached->at < ag->conf->rrd_refresh) {
        it->rrd = -1;
        return 1;
    }
    it->cached = NULL;
    it->rrd = *n;
    it->waiting = 2;
    reqs[*n].pve = cl->client;
    reqs[*n].method = "GET";
    reqs[*n].path = ospab_pve_path(p, "nodes", it->v.node, kind, it->v.vmid, "rrddata", NULL);
    reqs[*n].params = rrd_params;
    reqs[*n].data = it;
    ++*n;
    return 1;
}

/* The points of now newer than the newest of before (a new reference; all of them when
 * there was nothing before: a compact subscriber is sent the full form first anyway). */
static json_t *new_points(json_t *before, json_t *now)
{
    double last = -1, t;
    json_t *out = json_array(), *pt;
    size_t i, n = json_is_array(before) ? json_array_size(before) : 0;

    if (n) {
        last = ospab_pve_double(json_object_get(json_array_get(before, n - 1), "time"), &t)
               ? t : -1;
    }
    json_array_foreach(now, i, pt) {
        if (last < 0 || (ospab_pve_double(json_object_get(pt, "time"), &t) && t > last)) {
            json_array_append(out, pt);
        }
    }
    return out;
}

/* Pushes the server-stats of it from the answers (a fresh rrddata goes into the cache). */
static void publish_item(agent_t *ag, apr_pool_t *p, apr_time_t now, apr_array_header_t *rooms,
                         const ospab_pve_req_t *reqs, const live_item_t *it)
{
    monitor_t *m = mon_of(ag);
    json_t *rrd = NULL, *stats, *msg, *small, *fresh = NULL;

    if (reqs[it->cur].rv != APR_SUCCESS) {
        AGENT_DEBUG("live: server %s: %s", it->v.id, reqs[it->cur].res.message);
        return;
    }
    if (it->rrd < 0) {
        rrd = it->cached->rrd;          /* its points went out when it was fetched */
    }
    else if (reqs[it->rrd].rv == APR_SUCCESS && json_is_array(reqs[it->rrd].res.data)) {
        rrd_entry_t *e;

        rrd = reqs[it->rrd].res.data;
        if (!m->rrd) {
            rrd_cache_renew(m, rooms, p, now);
        }
        e = apr_hash_get(m->rrd, it->v.id, APR_HASH_KEY_STRING);
        if (!e) {
            e = apr_palloc(m->rrd_pool, sizeof(*e));
            e->rrd = NULL;
            apr_hash_set(m->rrd, apr_pstrdup(m->rrd_pool, it->v.id), APR_HASH_KEY_STRING, e);
        }
        fresh = new_points(e->rrd, rrd);
        json_decref(e->rrd);
        e->rrd = json_incref(rrd);
        e->at = now;
    }
    stats = ospab_server_stats_json(it->v.vmid, reqs[it->cur].res.data, rrd);
    msg = json_pack("{s:I, s:o}", "serverId", (json_int_t)apr_atoi64(it->v.id),
                    "stats", stats);
    /* the compact form: the same with only the points the last push did not have */
    small = json_deep_copy(msg);
    if (small) {
        json_t *data = json_object_get(json_object_get(small, "stats"), "data");

        json_object_set_new(data, "rrdData", fresh ? fresh : json_array());
        fresh = NULL;
        json_object_set_new(small, "compact", json_true());
    }
    json_decref(fresh);
    agent_publish2(ag, apr_atoi64(it->v.id), "server-stats", msg, small);
    json_decref(small);
    json_decref(msg);
}

/* A request of the round has its answer: a server whose answers are all in is pushed at
 * once, while the others are still on their way (a round's pushes spread over the time
 * Proxmox takes to answer, instead of leaving in one burst after the slowest answer). */
static void live_answer(ospab_pve_req_t *reqs, int k, void *arg)
{
    live_round_t *r = arg;
    live_item_t *it = reqs[k].data;

    if (--it->waiting == 0) {
        publish_item(r->ag, r->p, r->now, r->rooms, reqs, it);
    }
}

void agent_live_stats(agent_t *ag, ospab_db_t *db, apr_pool_t *p, int only_new)
{
    live_round_t round;
    monitor_t *m = mon_of(ag);
    apr_array_header_t *rooms;
    ospab_pve_req_t *reqs;
    live_item_t *items;
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

        if (apr_hash_get(m->live_seen, id, APR_HASH_KEY_STRING)) {
            continue;
        }
        apr_hash_set(m->live_seen, apr_pstrdup(m->live_pool, id), APR_HASH_KEY_STRING, "");
        if (only_new) {
            /* a new subscriber also gets the open alerts at once */
            json_t *msg = agent_alerts_message(db, p, id);

            agent_publish(ag, apr_atoi64(id), "server-alerts", msg);
            json_decref(msg);
        }
        if (ask_room(ag, db, p, now, id, reqs, &n, &items[nitems])) {
            nitems++;
        }
    }
    if (!n) {
        return;
    }
    round = (live_round_t){ .ag = ag, .p = p, .now = now, .rooms = rooms };
    ospab_pve_call_each(p, 0, reqs, n, LIVE_PARALLEL, live_answer, &round);
}
