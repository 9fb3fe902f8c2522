/* ospab-agent: running Proxmox tasks followed up (lib/ospab_server.c's code, the same the
 * module runs lazily), and new event rows (webhook_outbox) pushed to the servers' rooms;
 * server.owner and user.access rows make the live-push server check its clients again. */
#include <string.h>

#include <apr_strings.h>

#include "agent_monitor_int.h"
#include "ospab_events.h"

/* ---- tasks ---------------------------------------------------------------------------------- */

static void server_conf(agent_cluster_t *cl, ospab_server_conf_t *sc)
{
    memset(sc, 0, sizeof(*sc));
    sc->pve = cl->client;
    sc->url = cl->pve.url;
    sc->node = cl->node;
    sc->storage = cl->storage;
    sc->bridge = cl->bridge;
}

void agent_follow_tasks(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_time_t now)
{
    monitor_t *m = mon_of(ag);
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
        const char *id = APR_ARRAY_IDX(rows, i, ospab_row_t)[0];
        ospab_row_t v = NULL;
        agent_cluster_t *cl;
        ospab_server_conf_t sc;

        if (ospab_db_select_one(db, sub, "ospab_agent_vps_one", 1, &id, &v) != APR_SUCCESS
            || !v || !(cl = agent_cluster_of_node(ag, v[V_NODE]))
            /* the agent that polls the cluster follows its tasks */
            || (m->use_leases && !agent_cluster_state(ag, cl)->leased)) {
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

void agent_push_events(agent_t *ag, ospab_db_t *db, apr_pool_t *p)
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
            json_t *msg = agent_alerts_message(db, p, apr_psprintf(p, "%" APR_INT64_T_FMT,
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
