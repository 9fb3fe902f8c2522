/* ospab-agent: cluster leases. One agent polls a cluster; a dead agent's clusters move on
 * (docs/agent.md, "Several agents"). */
#include <string.h>

#include <apr_strings.h>

#include "agent_metrics.h"
#include "agent_monitor.h"
#include "agent_monitor_int.h"
#include "ospab_util.h"

/* A row of agent_leases: ospab_lease_get reads owner, expires_at and fence,
 * ospab_lease_live name and owner (each has its loader below). */
typedef struct {
    const char *name;               /* "cluster:<name>" */
    const char *owner;              /* host:pid:random of the agent holding it */
    const char *expires_at;
    const char *fence;              /* the fencing token: +1 at each change of hands */
} lease_t;

static void lease_from_get_row(ospab_row_t r, lease_t *l)
{
    l->name = NULL;
    l->owner = r[0];
    l->expires_at = r[1];
    l->fence = r[2];
}

static void lease_from_live_row(ospab_row_t r, lease_t *l)
{
    l->name = r[0];
    l->owner = r[1];
    l->expires_at = NULL;
    l->fence = NULL;
}

/* How long a lease lasts: three polls, so a slow cycle or two do not lose it. */
static apr_interval_time_t lease_ttl(const agent_conf_t *c)
{
    return 3 * c->poll_interval;
}

static const char *lease_name(apr_pool_t *p, const agent_cluster_t *cl)
{
    return apr_pstrcat(p, "cluster:", cl->name, NULL);
}

/* Takes or renews the lease of cluster i. 1: ours now. */
int agent_lease_take(agent_t *ag, ospab_db_t *db, apr_pool_t *p, int i, apr_time_t now)
{
    monitor_t *m = mon_of(ag);
    agent_cluster_t *cl = &APR_ARRAY_IDX(ag->conf->clusters, i, agent_cluster_t);
    cluster_state_t *cs = &m->cl[i];
    const char *name = lease_name(p, cl);
    const char *nowt = ospab_time_db(p, now);
    const char *until = ospab_time_db(p, now + lease_ttl(ag->conf));
    const char *renew[7] = { m->me, m->me, until, nowt, name, m->me, nowt };
    const char *insert[4] = { name, m->me, until, nowt };
    ospab_row_t row = NULL;
    lease_t l;
    int n = 0, was = cs->leased, attempt = 0;

    do {                            /* again after a write conflict (Galera) */
        n = 0;
        row = NULL;
        if (ospab_db_begin(db, p) != APR_SUCCESS) {
            return cs->leased;      /* the database is busy: keep what we had */
        }
        if (ospab_db_exec(db, p, "ospab_lease_renew", 7, renew, &n) == APR_SUCCESS && n == 0) {
            if (ospab_db_select_one(db, p, "ospab_lease_get", 1, &name, &row) == APR_SUCCESS
                && !row && ospab_db_exec(db, p, "ospab_lease_insert", 4, insert, NULL)
                           == APR_SUCCESS) {
                n = 1;
            }
            else if (row) {
                lease_from_get_row(row, &l);
                apr_cpystrn(cs->holder, l.owner, sizeof(cs->holder));
            }
        }
        /* the token this agent holds it with: its writes name it (agent_lease_fence) */
        if (n == 1 && (ospab_db_select_one(db, p, "ospab_lease_get", 1, &name, &row)
                       != APR_SUCCESS || !row)) {
            n = 0;
        }
        if (n == 1) {
            lease_from_get_row(row, &l);
            apr_cpystrn(cs->fence, l.fence ? l.fence : "0", sizeof(cs->fence));
        }
        if (ospab_db_end(db, n == 1) != APR_SUCCESS) {
            n = 0;
        }
    } while (n != 1 && agent_db_conflict_again(db, &attempt));
    cs->leased = n == 1;
    if (cs->leased && !was) {
        AGENT_INFO("[cluster %s]: this agent (%s) polls it now (lease token %s)", cl->name,
                   m->me, cs->fence);
        cs->logged_holder[0] = '\0';
    }
    else if (!cs->leased && was) {
        AGENT_WARN("[cluster %s]: lease lost to %s", cl->name,
                   cs->holder[0] ? cs->holder : "another agent");
    }
    return cs->leased;
}

int agent_lease_fence(agent_t *ag, ospab_db_t *db, apr_pool_t *p, const agent_cluster_t *cl)
{
    monitor_t *m = mon_of(ag);
    cluster_state_t *cs;
    const char *args[4];
    int n = 0;

    if (!m->use_leases || !cl) {
        return 1;
    }
    cs = &m->cl[cl - &APR_ARRAY_IDX(ag->conf->clusters, 0, agent_cluster_t)];
    if (!cs->leased) {
        return 0;
    }
    args[0] = lease_name(p, cl);
    args[1] = m->me;
    args[2] = cs->fence;
    args[3] = ospab_time_db(p, apr_time_now());   /* not expired either */
    if (ospab_db_exec(db, p, "ospab_lease_fence", 4, args, &n) != APR_SUCCESS) {
        return 0;                   /* the transaction failed anyway */
    }
    if (n != 1) {
        ospab_row_t row = NULL;
        lease_t l;

        cs->leased = 0;
        if (ospab_db_select_one(db, p, "ospab_lease_get", 1, args, &row) == APR_SUCCESS && row
            && (lease_from_get_row(row, &l), !strcmp(l.owner, m->me))) {
            /* still ours, only run out (a database that was busy longer than the lease) */
            AGENT_INFO("[cluster %s]: lease ran out during this poll; what it saw is not "
                       "written, the next poll takes the lease again", cl->name);
        }
        else {
            AGENT_WARN("[cluster %s]: lease (token %s) lost while polling; what this poll "
                       "saw is not written", cl->name, cs->fence);
        }
    }
    return n == 1;
}

int agent_lease_guard(void *baton, ospab_db_t *db, apr_pool_t *p)
{
    agent_fence_t *f = baton;

    return agent_lease_fence(f->ag, db, p, f->cl);
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
        const char *name = lease_name(p, cl);
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

/* 1 when this agent polled, this round, every cluster an agent polls now (the live
 * leases): only then may it say that no guest, or several, bear a name. With clusters split
 * between agents each sees a part, and their notes would overwrite each other's. */
int agent_leases_cover(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                       const int *which, int nreq)
{
    const char *nowt = ospab_time_db(p, now);
    apr_array_header_t *rows;
    int i, j;

    if (ospab_db_select(db, p, "ospab_lease_live", 1, &nowt, &rows, NULL) != APR_SUCCESS) {
        return 0;
    }
    for (i = 0; i < rows->nelts; ++i) {
        lease_t l;
        int ours;

        lease_from_live_row(APR_ARRAY_IDX(rows, i, ospab_row_t), &l);
        ours = strncmp(l.name, "cluster:", 8) != 0;
        for (j = 0; j < nreq && !ours; ++j) {
            ours = !strcmp(l.name + 8, APR_ARRAY_IDX(ag->conf->clusters, which[j],
                                                     agent_cluster_t).name);
        }
        if (!ours) {
            return 0;
        }
    }
    return 1;
}
