/* ospab-agent: adoption. Records synced without node/vmid find their guest by its name
 * (docs/agent.md, "Adoption"). */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "agent_metrics.h"
#include "agent_monitor_int.h"
#include "ospab_util.h"

#define UNBOUND_BATCH 500           /* ospab_agent_vps_unbound's LIMIT */
#define NOTE_LIST_MAX 5             /* guests or servers a note names */

typedef struct {
    const char *node, *vmid, *kind;
    const char *bound_to;           /* the record bound to it (an id), or NULL */
    agent_cluster_t *cl;            /* its cluster */
} named_guest_t;

typedef struct {
    apr_array_header_t *guests;     /* named_guest_t of this name, by node and vmid */
    apr_array_header_t *records;    /* this round's unbound records of the name (ids) */
} name_use_t;

static int guest_order(const void *a, const void *b)
{
    const named_guest_t *x = a, *y = b;
    int c = strcmp(x->node, y->node);

    return c ? c : (int)(apr_atoi64(x->vmid) > apr_atoi64(y->vmid))
                   - (int)(apr_atoi64(x->vmid) < apr_atoi64(y->vmid));
}

/* Adds item to the list "a, b, c" of n items; past NOTE_LIST_MAX, "..." once. */
static void list_add(apr_pool_t *p, const char **list, int n, const char *item)
{
    if (n < NOTE_LIST_MAX) {
        *list = n ? apr_pstrcat(p, *list, ", ", item, NULL) : item;
    }
    else if (n == NOTE_LIST_MAX) {
        *list = apr_pstrcat(p, *list, ", ...", NULL);
    }
}

/* One unbound record and the guests of its name that fit what it has of a binding. */
typedef struct {
    named_guest_t *found;           /* the free one, when nfree is 1 */
    const char *free_list;          /* "node/vmid, ..." of the free ones */
    const char *bound_list;         /* of those bound to other records */
    const char *holders;            /* "VPS 7, ..." bound to them */
    int nfree, nbound;
} match_t;

static void set_binding_note(ospab_db_t *db, apr_pool_t *p, const agent_vps_t *v,
                             const char *note)
{
    const char *args[2] = { note, v->id };
    int n = 0, good, attempt = 0;

    do {                            /* again after a write conflict (Galera) */
        if (ospab_db_begin(db, p) != APR_SUCCESS) {
            return;                 /* busy: the next round */
        }
        good = ospab_db_exec(db, p, "ospab_agent_vps_note", 2, args, &n) == APR_SUCCESS;
        good = ospab_db_end(db, good) == APR_SUCCESS && good;
    } while (!good && agent_db_conflict_again(db, &attempt));
    if (!good) {
        AGENT_WARN("adoption: the note of server %s not stored: %s", v->id,
                   db->error ? db->error : "?");
        return;
    }
    if (n == 1) {
        AGENT_INFO("adoption: server %s is not linked to a guest: %s", v->id, note);
    }
}

/* Adopts v by its guest g, whose own status/current (q) says its state. */
static void adopt_one(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                      const agent_vps_t *v, named_guest_t *g, const char *free_list,
                      const ospab_pve_req_t *q)
{
    monitor_t *m = mon_of(ag);
    ospab_actor_t act = agent_monitor_actor(now);
    const char *st = json_string_value(json_object_get(q->res.data, "status"));
    ospab_adoption_t ad = { v->id, v->user_id, v->name, v->status, v->node, v->vmid,
                            v->kind, g->node, g->vmid, g->kind, st };
    int twins = 0, rc;

    if (q->rv != APR_SUCCESS || !st) {
        AGENT_DEBUG("adoption: server %s waits: %s/%s did not say its state: %s", v->id,
                    g->node, g->vmid, q->res.message ? q->res.message : "?");
        return;                     /* gone meanwhile, or Proxmox busy: the next round */
    }
    act.now = apr_time_now();
    rc = ospab_server_adopt(db, p, &act, &ad, &twins);
    if (rc == 1) {
        g->bound_to = v->id;
        m->adopted++;
        AGENT_INFO("adoption: server %s ('%s') is %s %s on node %s now", v->id, v->name,
                   g->kind, g->vmid, g->node);
    }
    else if (rc < 0) {
        AGENT_WARN("adoption: server %s: database: %s", v->id, db->error ? db->error : "?");
    }
    else if (rc == 2) {
        /* a namesake beyond this round's batch */
        const char *note = ospab_server_binding_note(p, OSPAB_BINDING_TWINS, v->name, twins,
                                                     free_list, NULL);

        if (!v->binding_note || strcmp(v->binding_note, note)) {
            set_binding_note(db, p, v, note);
        }
    }
    /* 0: changed or bound meanwhile; the next round sees it as it is */
}

/* The round's unbound records by name. */
static apr_hash_t *names_of(apr_pool_t *p, const agent_vps_t *recs, int n)
{
    apr_hash_t *names = apr_hash_make(p);
    int i;

    for (i = 0; i < n; ++i) {
        name_use_t *u = apr_hash_get(names, recs[i].name, APR_HASH_KEY_STRING);

        if (!u) {
            u = apr_pcalloc(p, sizeof(*u));
            u->guests = apr_array_make(p, 2, sizeof(named_guest_t));
            u->records = apr_array_make(p, 1, sizeof(const char *));
            apr_hash_set(names, recs[i].name, APR_HASH_KEY_STRING, u);
        }
        APR_ARRAY_PUSH(u->records, const char *) = recs[i].id;
    }
    return names;
}

/* Adds the guests of the answers that bear one of the names, with the record each is bound
 * to (index), in the order of their node and vmid. */
static void add_guests(agent_t *ag, apr_pool_t *p, apr_hash_t *names,
                       const ospab_pve_req_t *answers, const int *which, int nreq,
                       apr_hash_t *index)
{
    apr_hash_index_t *hi;
    int j;

    for (j = 0; j < nreq; ++j) {
        json_t *data = answers[j].res.data;
        size_t k;

        for (k = 0; k < json_array_size(data); ++k) {
            json_t *g = json_array_get(data, k);
            const char *name = json_string_value(json_object_get(g, "name"));
            const char *node = json_string_value(json_object_get(g, "node"));
            const char *type = json_string_value(json_object_get(g, "type"));
            apr_int64_t vmid, tmpl = 0;
            named_guest_t *ng;
            name_use_t *u;
            const agent_vps_t *holder;

            if (!name || !(u = apr_hash_get(names, name, APR_HASH_KEY_STRING)) || !node
                || !type || (strcmp(type, "lxc") && strcmp(type, "qemu"))
                || !ospab_pve_int(json_object_get(g, "vmid"), &vmid)
                || (ospab_pve_int(json_object_get(g, "template"), &tmpl) && tmpl)) {
                continue;           /* a template is never a customer's server */
            }
            ng = apr_array_push(u->guests);
            ng->node = node;
            ng->vmid = apr_psprintf(p, "%" APR_INT64_T_FMT, vmid);
            ng->kind = type;
            ng->cl = &APR_ARRAY_IDX(ag->conf->clusters, which[j], agent_cluster_t);
            holder = apr_hash_get(index, apr_pstrcat(p, node, "/", ng->vmid, NULL),
                                  APR_HASH_KEY_STRING);
            ng->bound_to = holder ? holder->id : NULL;
        }
    }
    /* the lists in a note keep their order from round to round (no rewrite for nothing) */
    for (hi = apr_hash_first(p, names); hi; hi = apr_hash_next(hi)) {
        name_use_t *u = apr_hash_this_val(hi);

        qsort(u->guests->elts, (size_t)u->guests->nelts, sizeof(named_guest_t), guest_order);
    }
}

/* The guests of v's name that fit the half of a binding v has, free or bound. */
static void match(apr_pool_t *p, const agent_vps_t *v, const name_use_t *u, match_t *mt)
{
    int k;

    memset(mt, 0, sizeof(*mt));
    for (k = 0; k < u->guests->nelts; ++k) {
        named_guest_t *ng = &APR_ARRAY_IDX(u->guests, k, named_guest_t);
        const char *where = apr_pstrcat(p, ng->node, "/", ng->vmid, NULL);

        /* the half of a binding the record has narrows it down */
        if ((v->node && strcmp(v->node, ng->node)) || (v->vmid && strcmp(v->vmid, ng->vmid))) {
            continue;
        }
        if (ng->bound_to) {
            list_add(p, &mt->bound_list, mt->nbound, where);
            list_add(p, &mt->holders, mt->nbound, apr_pstrcat(p, "VPS ", ng->bound_to, NULL));
            mt->nbound++;
        }
        else {
            list_add(p, &mt->free_list, mt->nfree, where);
            mt->nfree++;
            mt->found = ng;
        }
    }
}

/* Why v, which is not adopted this round, stays unbound (its binding_note). */
static const char *why_unbound(apr_pool_t *p, const agent_vps_t *v, const name_use_t *u,
                               const match_t *mt)
{
    if (mt->nfree == 1) {
        const char *ids = NULL;
        int k;

        for (k = 0; k < u->records->nelts; ++k) {
            list_add(p, &ids, k, apr_pstrcat(p, "VPS ", APR_ARRAY_IDX(u->records, k,
                                                                   const char *), NULL));
        }
        return ospab_server_binding_note(p, OSPAB_BINDING_TWINS, v->name, u->records->nelts,
                                         mt->free_list, ids);
    }
    if (mt->nfree > 1) {
        return ospab_server_binding_note(p, OSPAB_BINDING_SEVERAL, v->name, mt->nfree,
                                         mt->free_list, NULL);
    }
    if (mt->nbound) {
        return ospab_server_binding_note(p, OSPAB_BINDING_TAKEN, v->name, mt->nbound,
                                         mt->bound_list, mt->holders);
    }
    return ospab_server_binding_note(p, OSPAB_BINDING_MISSING, v->name, 0, NULL, NULL);
}

/* Links the round's unbound records (hypervisor proxmox, no node or vmid: a billing site
 * that creates the guest on Proxmox itself syncs only name, resources and status) to the one
 * guest of the same name on the clusters polled (answers: this round's
 * /cluster/resources of every cluster the agent polls; index: the bound records by
 * node/vmid). A guest bound to another record is never taken; no guest, several, or
 * several records of one name leave the record unbound with binding_note saying why,
 * written only when it changes. Proxmox is asked nothing new but, once per adoption, the
 * guest's own status/current (/cluster/resources lags: a guest the billing site has just
 * started may still be listed stopped); when no record is unbound, the database only one
 * select. */
void agent_adopt_unbound(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                         const ospab_pve_req_t *answers, const int *which, int nreq,
                         apr_hash_t *index)
{
    monitor_t *m = mon_of(ag);
    const char *after = apr_psprintf(p, "%" APR_INT64_T_FMT, m->unbound_after);
    apr_array_header_t *rows, *asks, *found_of, *free_of;
    agent_vps_t *recs;
    apr_hash_t *names;
    int i, every = -1;

    if (ospab_db_select(db, p, "ospab_agent_vps_unbound", 1, &after, &rows, NULL)
        != APR_SUCCESS) {
        AGENT_WARN("adoption: database: %s", db->error ? db->error : "?");
        return;
    }
    recs = apr_palloc(p, sizeof(*recs) * (apr_size_t)(rows->nelts + 1));
    for (i = 0; i < rows->nelts; ++i) {
        agent_vps_unbound_from_row(APR_ARRAY_IDX(rows, i, ospab_row_t), &recs[i]);
    }
    /* a full batch: the next round goes on after it (and starts over after the last) */
    m->unbound_after = rows->nelts >= UNBOUND_BATCH ? apr_atoi64(recs[rows->nelts - 1].id) : 0;
    if (!rows->nelts) {
        return;
    }
    names = names_of(p, recs, rows->nelts);
    add_guests(ag, p, names, answers, which, nreq, index);
    asks = apr_array_make(p, 4, sizeof(ospab_pve_req_t));
    found_of = apr_array_make(p, 4, sizeof(named_guest_t *));
    free_of = apr_array_make(p, 4, sizeof(const char *));
    for (i = 0; i < rows->nelts && !ag->stopping; ++i) {
        agent_vps_t *v = &recs[i];
        name_use_t *u = apr_hash_get(names, v->name, APR_HASH_KEY_STRING);
        const char *note;
        match_t mt;

        match(p, v, u, &mt);
        if (mt.nfree == 1 && u->records->nelts == 1) {
            /* the one: adopted below, once the guest itself has said its state */
            agent_vps_t *at = apr_pmemdup(p, v, sizeof(*v));

            at->node = mt.found->node;
            at->vmid = mt.found->vmid;
            agent_ask_status(asks, p, mt.found->cl, at, mt.found->kind);
            APR_ARRAY_IDX(asks, asks->nelts - 1, ospab_pve_req_t).data = (void *)v;
            APR_ARRAY_PUSH(found_of, named_guest_t *) = mt.found;
            APR_ARRAY_PUSH(free_of, const char *) = mt.free_list;
            continue;
        }
        note = why_unbound(p, v, u, &mt);
        if (v->binding_note && !strcmp(v->binding_note, note)) {
            continue;
        }
        if (every < 0) {
            every = agent_leases_cover(ag, db, p, now, which, nreq);
        }
        if (every) {
            set_binding_note(db, p, v, note);
        }
    }
    if (!asks->nelts) {
        return;
    }
    ospab_pve_call_many(p, 0, (ospab_pve_req_t *)asks->elts, asks->nelts, LIVE_PARALLEL);
    for (i = 0; i < asks->nelts && !ag->stopping; ++i) {
        ospab_pve_req_t *q = &APR_ARRAY_IDX(asks, i, ospab_pve_req_t);

        adopt_one(ag, db, p, now, q->data, APR_ARRAY_IDX(found_of, i, named_guest_t *),
                  APR_ARRAY_IDX(free_of, i, const char *), q);
    }
}
