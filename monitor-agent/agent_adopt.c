/* ospab-agent: adoption. Records synced without node/vmid find their guest by its name
 * (docs/agent.md, "Adoption"). */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

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

/* 1 when this agent polled, this round, every cluster an agent polls now (the live
 * leases): only then may it say that no guest, or several, bear a name. With clusters split
 * between agents each sees a part, and their notes would overwrite each other's. */
static int sees_every_cluster(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                              const int *which, int nreq)
{
    const char *nowt = ospab_time_db(p, now);
    apr_array_header_t *rows;
    int i, j;

    if (ospab_db_select(db, p, "ospab_lease_live", 1, &nowt, &rows, NULL) != APR_SUCCESS) {
        return 0;
    }
    for (i = 0; i < rows->nelts; ++i) {
        const char *name = APR_ARRAY_IDX(rows, i, ospab_row_t)[0];
        int ours = strncmp(name, "cluster:", 8) != 0;

        for (j = 0; j < nreq && !ours; ++j) {
            ours = !strcmp(name + 8, APR_ARRAY_IDX(ag->conf->clusters, which[j],
                                                   agent_cluster_t).name);
        }
        if (!ours) {
            return 0;
        }
    }
    return 1;
}

static void set_binding_note(ospab_db_t *db, apr_pool_t *p, vps_row_t v, const char *note)
{
    const char *args[2] = { note, v[V_ID] };
    int n = 0, good;

    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        return;                     /* busy: the next round */
    }
    good = ospab_db_exec(db, p, "ospab_agent_vps_note", 2, args, &n) == APR_SUCCESS;
    if (ospab_db_end(db, good) != APR_SUCCESS || !good) {
        AGENT_WARN("adoption: the note of server %s not stored: %s", v[V_ID],
                   db->error ? db->error : "?");
        return;
    }
    if (n == 1) {
        AGENT_INFO("adoption: server %s is not linked to a guest: %s", v[V_ID], note);
    }
}

/* Adopts v by its guest g, whose own status/current (q) says its state. */
static void adopt_one(agent_t *ag, ospab_db_t *db, apr_pool_t *p, apr_time_t now, vps_row_t v,
                      named_guest_t *g, const char *free_list, const ospab_pve_req_t *q)
{
    monitor_t *m = mon_of(ag);
    ospab_actor_t act = agent_monitor_actor(now);
    const char *st = json_string_value(json_object_get(q->res.data, "status"));
    ospab_adoption_t ad = { v[V_ID], v[V_USER], v[V_NAME], v[V_STATUS], v[V_NODE], v[V_VMID],
                            v[V_KIND], g->node, g->vmid, g->kind, st };
    int twins = 0, rc;

    if (q->rv != APR_SUCCESS || !st) {
        AGENT_DEBUG("adoption: server %s waits: %s/%s did not say its state: %s", v[V_ID],
                    g->node, g->vmid, q->res.message ? q->res.message : "?");
        return;                     /* gone meanwhile, or Proxmox busy: the next round */
    }
    act.now = apr_time_now();
    rc = ospab_server_adopt(db, p, &act, &ad, &twins);
    if (rc == 1) {
        g->bound_to = v[V_ID];
        m->adopted++;
        AGENT_INFO("adoption: server %s ('%s') is %s %s on node %s now", v[V_ID], v[V_NAME],
                   g->kind, g->vmid, g->node);
    }
    else if (rc < 0) {
        AGENT_WARN("adoption: server %s: database: %s", v[V_ID], db->error ? db->error : "?");
    }
    else if (rc == 2) {
        /* a namesake beyond this round's batch */
        const char *note = ospab_server_binding_note(p, OSPAB_BINDING_TWINS, v[V_NAME], twins,
                                                     free_list, NULL);

        if (!v[V_NOTE] || strcmp(v[V_NOTE], note)) {
            set_binding_note(db, p, v, note);
        }
    }
    /* 0: changed or bound meanwhile; the next round sees it as it is */
}

/* Links the round's unbound records (hypervisor proxmox, no node or vmid: seed 000's sync)
 * to the one guest of the same name on the clusters polled (answers: this round's
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
    apr_hash_t *names;
    apr_hash_index_t *hi;
    int i, j, every = -1;

    if (ospab_db_select(db, p, "ospab_agent_vps_unbound", 1, &after, &rows, NULL)
        != APR_SUCCESS) {
        AGENT_WARN("adoption: database: %s", db->error ? db->error : "?");
        return;
    }
    /* a full batch: the next round goes on after it (and starts over after the last) */
    m->unbound_after = rows->nelts >= UNBOUND_BATCH
                       ? apr_atoi64(APR_ARRAY_IDX(rows, rows->nelts - 1, vps_row_t)[V_ID]) : 0;
    if (!rows->nelts) {
        return;
    }
    names = apr_hash_make(p);
    for (i = 0; i < rows->nelts; ++i) {
        vps_row_t v = APR_ARRAY_IDX(rows, i, vps_row_t);
        name_use_t *u = apr_hash_get(names, v[V_NAME], APR_HASH_KEY_STRING);

        if (!u) {
            u = apr_pcalloc(p, sizeof(*u));
            u->guests = apr_array_make(p, 2, sizeof(named_guest_t));
            u->records = apr_array_make(p, 1, sizeof(const char *));
            apr_hash_set(names, v[V_NAME], APR_HASH_KEY_STRING, u);
        }
        APR_ARRAY_PUSH(u->records, const char *) = v[V_ID];
    }
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
            vps_row_t holder;

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
            ng->bound_to = holder ? holder[V_ID] : NULL;
        }
    }
    /* the lists in a note keep their order from round to round (no rewrite for nothing) */
    for (hi = apr_hash_first(p, names); hi; hi = apr_hash_next(hi)) {
        name_use_t *u = apr_hash_this_val(hi);

        qsort(u->guests->elts, (size_t)u->guests->nelts, sizeof(named_guest_t), guest_order);
    }
    asks = apr_array_make(p, 4, sizeof(ospab_pve_req_t));
    found_of = apr_array_make(p, 4, sizeof(named_guest_t *));
    free_of = apr_array_make(p, 4, sizeof(const char *));
    for (i = 0; i < rows->nelts && !ag->stopping; ++i) {
        vps_row_t v = APR_ARRAY_IDX(rows, i, vps_row_t);
        name_use_t *u = apr_hash_get(names, v[V_NAME], APR_HASH_KEY_STRING);
        named_guest_t *found = NULL;
        const char *free_list = NULL, *bound_list = NULL, *holders = NULL, *note;
        int nfree = 0, nbound = 0, k;

        for (k = 0; k < u->guests->nelts; ++k) {
            named_guest_t *ng = &APR_ARRAY_IDX(u->guests, k, named_guest_t);
            const char *where = apr_pstrcat(p, ng->node, "/", ng->vmid, NULL);

            /* the half of a binding the record has narrows it down */
            if ((v[V_NODE] && strcmp(v[V_NODE], ng->node))
                || (v[V_VMID] && strcmp(v[V_VMID], ng->vmid))) {
                continue;
            }
            if (ng->bound_to) {
                list_add(p, &bound_list, nbound, where);
                list_add(p, &holders, nbound, apr_pstrcat(p, "VPS ", ng->bound_to, NULL));
                nbound++;
            }
            else {
                list_add(p, &free_list, nfree, where);
                nfree++;
                found = ng;
            }
        }
        if (nfree == 1 && u->records->nelts == 1) {
            /* the one: adopted below, once the guest itself has said its state */
            vps_row_t at = apr_pmemdup(p, v, sizeof(char *) * (V_NOTE + 1));

            at[V_NODE] = found->node;
            at[V_VMID] = found->vmid;
            agent_ask_status(asks, p, found->cl, at, found->kind);
            APR_ARRAY_IDX(asks, asks->nelts - 1, ospab_pve_req_t).data = (void *)v;
            APR_ARRAY_PUSH(found_of, named_guest_t *) = found;
            APR_ARRAY_PUSH(free_of, const char *) = free_list;
            continue;
        }
        if (nfree == 1) {
            const char *ids = NULL;

            for (k = 0; k < u->records->nelts; ++k) {
                list_add(p, &ids, k, apr_pstrcat(p, "VPS ", APR_ARRAY_IDX(u->records, k,
                                                                       const char *), NULL));
            }
            note = ospab_server_binding_note(p, OSPAB_BINDING_TWINS, v[V_NAME],
                                             u->records->nelts, free_list, ids);
        }
        else if (nfree > 1) {
            note = ospab_server_binding_note(p, OSPAB_BINDING_SEVERAL, v[V_NAME], nfree,
                                             free_list, NULL);
        }
        else if (nbound) {
            note = ospab_server_binding_note(p, OSPAB_BINDING_TAKEN, v[V_NAME], nbound,
                                             bound_list, holders);
        }
        else {
            note = ospab_server_binding_note(p, OSPAB_BINDING_MISSING, v[V_NAME], 0, NULL,
                                             NULL);
        }
        if (v[V_NOTE] && !strcmp(v[V_NOTE], note)) {
            continue;
        }
        if (every < 0) {
            every = sees_every_cluster(ag, db, p, now, which, nreq);
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
