/* ospab-agent: running Proxmox tasks followed up (lib/ospab_server.c's code, the same the
 * module runs lazily), and new event rows (webhook_outbox) pushed to the servers' rooms;
 * server.owner and user.access rows make the live-push server check its clients again. */
#include <string.h>

#include <apr_strings.h>

#include "agent_monitor_int.h"
#include "ospab_events.h"
#include "ospab_util.h"
#include "agent_metrics.h"

/* ---- tasks ---------------------------------------------------------------------------------- */

void agent_server_conf(agent_cluster_t *cl, ospab_server_conf_t *sc)
{
    memset(sc, 0, sizeof(*sc));
    sc->pve = cl->client;
    sc->url = cl->pve.url;
    sc->node = cl->node;
    sc->storage = cl->storage;
    sc->bridge = cl->bridge;
}

/* The cluster of server id whose tasks this agent follows: the one it polls (holds the
 * lease of, unless leases are off); NULL: not this agent's, or not a bound record. */
static agent_cluster_t *follower_cluster(agent_t *ag, ospab_db_t *db, apr_pool_t *p,
                                         const char *id)
{
    ospab_row_t row = NULL;
    agent_vps_t v;
    agent_cluster_t *cl;

    if (ospab_db_select_one(db, p, "ospab_agent_vps_one", 1, &id, &row) != APR_SUCCESS
        || !row) {
        return NULL;
    }
    agent_vps_from_row(row, &v);
    if (!(cl = agent_cluster_of_node(ag, v.node))
        || (mon_of(ag)->use_leases && !agent_cluster_state(ag, cl)->leased)) {
        return NULL;
    }
    return cl;
}

void agent_follow_tasks(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_time_t now)
{
    apr_array_header_t *rows;
    ospab_actor_t act = agent_monitor_actor(now);
    apr_pool_t *sub;
    int i;

    if (!ag->conf->clusters->nelts
        || ospab_db_select(db, p, "ospab_task_active_servers", 0, NULL, &rows, NULL)
           != APR_SUCCESS) {
        return;
    }
    apr_pool_create(&sub, p);
    for (i = 0; i < rows->nelts && !ag->stopping; ++i) {
        const char *id = agent_active_server_from_row(APR_ARRAY_IDX(rows, i, ospab_row_t));
        agent_cluster_t *cl = follower_cluster(ag, db, sub, id);
        ospab_server_conf_t sc;

        if (cl) {
            agent_server_conf(cl, &sc);
            act.now = apr_time_now();
            ospab_server_follow(db, sub, &sc, &act, id);
            AGENT_COUNT(task_followups);
        }
        apr_pool_clear(sub);
    }
    apr_pool_destroy(sub);
}

/* ---- events -> pushes ------------------------------------------------------------------------ */

/* A row of ospab_agent_events_after: one event of webhook_outbox. */
typedef struct {
    apr_int64_t id;
    const char *event;              /* OSPAB_EVENT_* */
    const char *payload;            /* the webhook body: {id, event, createdAt, data} */
} event_row_t;

static void event_from_row(ospab_row_t r, event_row_t *e)
{
    e->id = apr_atoi64(r[0]);
    e->event = r[1];
    e->payload = r[2];
}

/* The one value of ospab_agent_events_max: the newest event's id, 0 when there is none. */
static apr_int64_t max_id_from_row(ospab_row_t r)
{
    return r && r[0] ? apr_atoi64(r[0]) : 0;
}

/* 1 when e was pushed already (it came again in the window, or as a late row); else
 * remembers it: in the ring of the last EVENT_RING ids (the id window) and, with the time,
 * in pushed_recent (late rows: made at most EVENT_LATE ago, so pushed since then). */
static int pushed_before(monitor_t *m, const event_row_t *e, apr_time_t now)
{
    apr_int64_t *key;
    apr_time_t *when;
    int k, dup = 0;

    for (k = 0; k < EVENT_RING; ++k) {
        dup |= m->pushed[k] == e->id;
    }
    if (dup || apr_hash_get(m->pushed_recent, &e->id, sizeof(e->id))) {
        return 1;
    }
    m->pushed[m->pushed_next++ % EVENT_RING] = e->id;
    if (e->id > m->last_event) {
        m->last_event = e->id;
    }
    key = apr_palloc(m->pushed_pool, sizeof(*key));
    when = apr_palloc(m->pushed_pool, sizeof(*when));
    *key = e->id;
    *when = now;
    apr_hash_set(m->pushed_recent, key, sizeof(*key), when);
    return 0;
}

/* pushed_recent keeps what was pushed in the last EVENT_LATE at least: made anew from its
 * younger half every EVENT_LATE, so it holds at most two of them. */
static void age_pushed(monitor_t *m, apr_time_t now)
{
    apr_pool_t *pool;
    apr_hash_t *fresh;
    apr_hash_index_t *hi;

    if (m->pushed_recent && now - m->pushed_since < EVENT_LATE) {
        return;
    }
    apr_pool_create(&pool, m->pool);
    fresh = apr_hash_make(pool);
    for (hi = m->pushed_recent ? apr_hash_first(pool, m->pushed_recent) : NULL; hi;
         hi = apr_hash_next(hi)) {
        const void *k;
        void *v;

        apr_hash_this(hi, &k, NULL, &v);
        if (*(apr_time_t *)v >= now - EVENT_LATE) {
            apr_int64_t *key = apr_pmemdup(pool, k, sizeof(apr_int64_t));

            apr_hash_set(fresh, key, sizeof(*key), apr_pmemdup(pool, v, sizeof(apr_time_t)));
        }
    }
    if (m->pushed_pool) {
        apr_pool_destroy(m->pushed_pool);
    }
    m->pushed_pool = pool;
    m->pushed_recent = fresh;
    m->pushed_since = now;
}

/* Pushes one new event to its server's room, or has the live-push server check its
 * clients again; alerted: the servers whose alert list this batch pushed already. */
static void push_one(agent_t *ag, ospab_db_t *db, apr_pool_t *p, const event_row_t *e,
                     apr_hash_t *alerted)
{
    json_t *body = json_loads(e->payload, 0, NULL);
    json_t *data = json_object_get(body, "data");
    json_int_t sid = json_integer_value(json_object_get(data, "serverId"));
    const char *ev = !strcmp(e->event, OSPAB_EVENT_STATUS) ? "server-status"
                   : !strcmp(e->event, OSPAB_EVENT_TASK) ? "task-finished"
                   : !strcmp(e->event, OSPAB_EVENT_DELETED) ? "server-deleted" : NULL;

    if (!strcmp(e->event, OSPAB_EVENT_OWNER) || !strcmp(e->event, OSPAB_EVENT_ACCESS)) {
        /* who may watch what changed: the live-push server checks its clients again
         * (on its own thread) and drops what they may no longer see */
        json_int_t uid = json_integer_value(json_object_get(data, "userId"));
        const char *session = json_string_value(json_object_get(data, "sessionId"));

        if (ag->sio && !strcmp(e->event, OSPAB_EVENT_OWNER) && sid > 0) {
            agent_sio_recheck_server(ag->sio, (apr_int64_t)sid);
        }
        else if (ag->sio && !strcmp(e->event, OSPAB_EVENT_ACCESS) && uid > 0) {
            agent_sio_recheck_user(ag->sio, (apr_int64_t)uid, session);
        }
    }
    else if (sid > 0 && !strncmp(e->event, "alert.", 6)) {
        const char *key = apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)sid);

        /* one list per server and batch is enough */
        if (!apr_hash_get(alerted, key, APR_HASH_KEY_STRING)) {
            json_t *msg;

            apr_hash_set(alerted, key, APR_HASH_KEY_STRING, "");
            /* the server's open alerts as they are now, the whole list (server-alerts) */
            msg = agent_alerts_message(db, p, key);
            agent_publish(ag, (apr_int64_t)sid, "server-alerts", msg);
            json_decref(msg);
        }
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

void agent_push_events(agent_t *ag, ospab_db_t *db, apr_pool_t *p)
{
    monitor_t *m = mon_of(ag);
    apr_array_header_t *rows, *late = NULL;
    apr_hash_t *alerted;
    apr_time_t now = apr_time_now();
    apr_int64_t from;
    int i;

    age_pushed(m, now);
    if (m->last_event < 0) {
        ospab_row_t r = NULL;

        /* pushes are live only: start after what is there now */
        if (ospab_db_select_one(db, p, "ospab_agent_events_max", 0, NULL, &r) != APR_SUCCESS) {
            return;
        }
        m->last_event = max_id_from_row(r);
        m->events_from = now;
        return;
    }
    /* MariaDB hands out ids at insert and the rows appear at commit: a row with a smaller
     * id may show up after a larger one was read. The window re-reads the last EVENT_WINDOW
     * ids; below it, the rows made in the last EVENT_LATE (on Galera a row of another node
     * can commit after hundreds of newer ones); the ring and pushed_recent keep each from
     * being pushed twice. */
    from = m->last_event > EVENT_WINDOW ? m->last_event - EVENT_WINDOW : 0;
    {
        const char *after = apr_psprintf(p, "%" APR_INT64_T_FMT, from);
        apr_time_t since = now - EVENT_LATE > m->events_from ? now - EVENT_LATE
                                                             : m->events_from;
        const char *args[2] = { ospab_time_db(p, since), after };

        if (ospab_db_select(db, p, "ospab_agent_events_after", 1, &after, &rows, NULL)
            != APR_SUCCESS
            || (from > 0 && ospab_db_select(db, p, "ospab_agent_events_late", 2, args, &late,
                                            NULL) != APR_SUCCESS)) {
            return;
        }
    }
    alerted = apr_hash_make(p);
    for (i = 0; late && i < late->nelts; ++i) {
        event_row_t e;

        event_from_row(APR_ARRAY_IDX(late, i, ospab_row_t), &e);
        if (!pushed_before(m, &e, now)) {
            push_one(ag, db, p, &e, alerted);
        }
    }
    for (i = 0; i < rows->nelts; ++i) {
        event_row_t e;

        event_from_row(APR_ARRAY_IDX(rows, i, ospab_row_t), &e);
        if (!pushed_before(m, &e, now)) {
            push_one(ag, db, p, &e, alerted);
        }
    }
}
