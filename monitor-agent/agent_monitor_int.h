/* ospab-agent: the monitor thread's private header, shared by its rounds:
 *   agent_monitor.c  set-up, reconfiguration, the tick and --once
 *   agent_rows.c     the rows of the statements several rounds read, as structs
 *   agent_poll.c     the poll: /cluster/resources, metrics_latest, status drift
 *   agent_adopt.c    records synced without node/vmid linked to their guest by name
 *   agent_alerts.c   the alert round's reads and writes (the decision: lib/ospab_alerts.c)
 *   agent_leases.c   one agent polls a cluster; a dead agent's clusters move on
 *   agent_live.c     live stats of watched servers, the rrddata cache
 *   agent_events.c   task follow-up, new events pushed to the servers' rooms
 *
 * All of it runs on the monitor thread only: monitor_t needs no lock. */
#ifndef AGENT_MONITOR_INT_H
#define AGENT_MONITOR_INT_H

#include <apr_hash.h>

#include "agent_ctx.h"
#include "ospab_server.h"
#include "ospab_alerts.h"

#define LIVE_PARALLEL    8          /* Proxmox requests in flight for live stats */
#define EVENT_WINDOW     256        /* event ids read again (late commits; on Galera ids
                                     * advance by the cluster size per row) */
#define EVENT_RING       1024       /* pushed ids remembered; > EVENT_WINDOW + one batch */
#define EVENT_LATE       apr_time_from_sec(30)  /* rows committed up to this late pushed */

/* A server the monitor knows: a row of ospab_agent_vps_index or ospab_agent_vps_one (the
 * bound records), or of ospab_agent_vps_unbound (with the note). */
typedef struct {
    const char *id, *user_id, *name;
    const char *status;             /* vps.status */
    const char *node, *vmid;        /* NULL in an unbound record (one of them at least) */
    const char *kind;               /* "lxc", "qemu" or NULL */
    const char *binding_note;       /* why it is not bound yet (unbound rows; else NULL) */
} agent_vps_t;

typedef struct {
    int failures;                   /* polls failed in a row */
    apr_time_t retry_at;            /* no poll before this */
    apr_hash_t *nodes;              /* node names seen in its last good poll */
    apr_pool_t *pool;               /* for nodes */
    int leased;                     /* this agent holds the cluster's lease */
    char fence[24];                 /* the lease's fencing token when it was taken */
    char holder[192];               /* who does, when another agent ("" unknown) */
    char logged_holder[192];        /* the holder last logged */
} cluster_state_t;

typedef struct {
    apr_pool_t *pool;               /* lives as long as the agent */
    const char *me;                 /* lease owner id: host:pid:random */
    int use_leases;                 /* off for --once */
    agent_conf_t *conf;             /* the conf the state below was made for */
    apr_array_header_t *file_clusters;  /* its own [cluster] sections (agent_clusters.c) */
    const char *clusters_stamp;     /* the clusters table as last read; NULL: not yet */
    int imported;                   /* the sections are rows in the database */
    cluster_state_t *cl;            /* one per conf->clusters */
    apr_time_t next_poll, next_live, next_tasks, next_events;
    apr_hash_t *streak;             /* "vps:type" -> int samples above high in a row */
    apr_hash_t *missing;            /* "vps" -> int polls without the guest */
    apr_pool_t *state_pool;         /* streak, missing (rebuilt when it grows too big) */
    apr_hash_t *live_seen;          /* rooms fetched at least once (id text -> "") */
    apr_hash_t *rrd;                /* id text -> rrd_entry_t (see agent_live.c) */
    apr_pool_t *rrd_pool;
    apr_pool_t *live_pool;
    apr_int64_t last_event;         /* -1: not read yet */
    apr_int64_t pushed[EVENT_RING]; /* ids pushed lately (see agent_push_events) */
    unsigned pushed_next;
    apr_hash_t *pushed_recent;      /* id -> when pushed, the last 2 x EVENT_LATE ... */
    apr_pool_t *pushed_pool;        /* ... kept here, made anew as they age */
    apr_time_t pushed_since;        /* when pushed_pool was made */
    apr_time_t events_from;         /* when pushing began: late rows made before are not */
    /* last round, for --once and the log */
    int polled_guests, matched, written, drifted, opened, cleared;
    apr_interval_time_t poll_time;
    int adopted;                    /* unbound records linked to their guest last round */
    apr_int64_t unbound_after;      /* the next round's unbound records start after this id */
} monitor_t;

static inline monitor_t *mon_of(agent_t *ag)
{
    return ag->monitor;
}

/* agent_monitor.c: what several rounds use */
ospab_actor_t agent_monitor_actor(apr_time_t now);
/* The cluster whose last good poll saw node (or whose configured node it is); the first
 * cluster when none did; NULL without clusters. */
agent_cluster_t *agent_cluster_of_node(agent_t *ag, const char *node);
cluster_state_t *agent_cluster_state(agent_t *ag, agent_cluster_t *cl);

/* agent_rows.c: the loaders of the rows several rounds read; no other code reads a row of
 * these statements by its column numbers */
void agent_vps_from_row(ospab_row_t r, agent_vps_t *v);           /* _index, _one */
void agent_vps_unbound_from_row(ospab_row_t r, agent_vps_t *v);   /* _unbound */
/* The one column of ospab_task_active_servers: a server with a task queued or running. */
const char *agent_active_server_from_row(ospab_row_t r);

/* agent_events.c: what the library's server code needs of a cluster */
void agent_server_conf(agent_cluster_t *cl, ospab_server_conf_t *sc);

/* agent_poll.c */
void agent_poll_clusters(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_time_t now);
/* agent_clusters.c: the database's clusters joined to the file's when the table changed
 * (before each poll round) */
void agent_clusters_refresh(agent_t *ag, ospab_db_t *db, apr_pool_t *p);
/* agent_monitor.c: c->clusters is a new list: the per-cluster state starts anew */
void agent_monitor_clusters_changed(monitor_t *m, agent_conf_t *c);
/* Queues the guest's own status/current on reqs (v, which must outlive the call, rides
 * along as data). */
void agent_ask_status(apr_array_header_t *reqs, apr_pool_t *p, agent_cluster_t *cl,
                      const agent_vps_t *v, const char *kind);

/* agent_adopt.c: called by the poll once every cluster it polls has answered */
void agent_adopt_unbound(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                         const ospab_pve_req_t *answers, const int *which, int nreq,
                         apr_hash_t *index);

/* agent_alerts.c */
/* The open alerts by "vps:type"; NULL: the database failed. */
apr_hash_t *agent_alerts_open(ospab_db_t *db, apr_pool_t *p);
/* The server's open alerts as server-alerts carries them to the panel's client code:
 * {serverId, alerts: [{type, message, level, id, value, openedAt}]}. */
json_t *agent_alerts_message(ospab_db_t *db, apr_pool_t *p, const char *vps_id);
/* Decides for one sample of one server (lib/ospab_alerts.c) with open (agent_alerts_open)
 * and writes what the decision says. Returns 1 when its open alerts changed. */
int agent_alert_sample(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_hash_t *open,
                       const agent_vps_t *v, ospab_alert_metric_e type, double value,
                       int have, apr_time_t now);
/* The ids of the servers whose samples need their alert state: an open alert (open) or a
 * streak of samples above the threshold under way. Any other server's state is empty. */
apr_hash_t *agent_alerts_warm(agent_t *ag, apr_hash_t *open, apr_pool_t *p);
/* 1 when a sample of a server with an empty alert state changes anything (it is above
 * the threshold): only then must agent_alert_sample see it. */
int agent_alert_wakes(const agent_t *ag, double value, int have);

/* agent_leases.c */
/* Takes or renews the lease of cluster i. 1: ours now. */
int agent_lease_take(agent_t *ag, ospab_db_t *db, apr_pool_t *p, int i, apr_time_t now);
/* In an open transaction that writes what a poll of cluster cl saw: 1 when the agent may
 * (leases off, or the lease is still its own with the token it took it with); 0: it lost
 * the lease meanwhile (paused, cut off from the database), the caller rolls back. */
int agent_lease_fence(agent_t *ag, ospab_db_t *db, apr_pool_t *p, const agent_cluster_t *cl);
/* ospab_actor_t.guard for ospab_server_set_status: baton is an agent_fence_t */
typedef struct {
    agent_t *ag;
    const agent_cluster_t *cl;
} agent_fence_t;
int agent_lease_guard(void *baton, ospab_db_t *db, apr_pool_t *p);
/* 1 when the clusters polled this round (which, nreq) are every cluster an agent holds a
 * live lease of. */
int agent_leases_cover(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                       const int *which, int nreq);

/* agent_live.c */
void agent_live_stats(agent_t *ag, ospab_db_t *db, apr_pool_t *p, int only_new);

/* agent_events.c */
void agent_follow_tasks(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_time_t now);
void agent_push_events(agent_t *ag, ospab_db_t *db, apr_pool_t *p);

#endif
