/* ospab core: where a new server goes (see ospab_placement.h). */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "ospab_placement.h"
#include "ospab_util.h"

#define MiB ((apr_int64_t)1024 * 1024)
#define GiB (1024 * MiB)

/* ospab_nodes_place / ospab_node_place_one rows */
enum { C_ID, C_NAME, C_STORAGE, C_BRIDGE, C_CPU_RATIO, C_MEM_RATIO, C_DISK_RATIO, C_STATUS,
       C_MAXCPU, C_MAXMEM, C_MEM, C_MAXDISK, C_DISK, C_SAMPLED_AT, C_GIVEN_CPU, C_GIVEN_RAM,
       C_GIVEN_DISK, C_RECENT_RAM };

static apr_int64_t num(const char *s)
{
    return s ? apr_atoi64(s) : -1;
}

static ospab_node_t *node_of(apr_pool_t *p, ospab_row_t r)
{
    ospab_node_t *n = apr_pcalloc(p, sizeof(*n));

    n->id = r[C_ID];
    n->name = r[C_NAME];
    n->storage = r[C_STORAGE];
    n->bridge = r[C_BRIDGE];
    n->status = r[C_STATUS];
    n->sampled_at = r[C_SAMPLED_AT];
    n->cpu_ratio = num(r[C_CPU_RATIO]);
    n->mem_ratio = num(r[C_MEM_RATIO]);
    n->disk_ratio = num(r[C_DISK_RATIO]);
    n->maxcpu = num(r[C_MAXCPU]);
    n->maxmem = num(r[C_MAXMEM]);
    n->mem = num(r[C_MEM]);
    n->maxdisk = num(r[C_MAXDISK]);
    n->disk = num(r[C_DISK]);
    n->given_cpu = num(r[C_GIVEN_CPU]);
    n->given_ram = num(r[C_GIVEN_RAM]);
    n->given_disk = num(r[C_GIVEN_DISK]);
    n->recent_ram = num(r[C_RECENT_RAM]);
    return n;
}

apr_status_t ospab_nodes_load(ospab_db_t *db, apr_pool_t *p, apr_array_header_t **nodes,
                              int *any)
{
    apr_array_header_t *rows;
    const char *count = NULL;
    apr_status_t rv;
    int i;

    *nodes = apr_array_make(p, 4, sizeof(const ospab_node_t *));
    if ((rv = ospab_db_select_value(db, p, "ospab_nodes_count", 0, NULL, &count))
        != APR_SUCCESS) {
        return rv;
    }
    *any = count && apr_atoi64(count) > 0;
    if (!*any) {
        return APR_SUCCESS;
    }
    if ((rv = ospab_db_select(db, p, "ospab_nodes_place", 0, NULL, &rows, NULL)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < rows->nelts; ++i) {
        APR_ARRAY_PUSH(*nodes, const ospab_node_t *) = node_of(p, APR_ARRAY_IDX(rows, i,
                                                                                ospab_row_t));
    }
    return APR_SUCCESS;
}

apr_status_t ospab_node_reload(ospab_db_t *db, apr_pool_t *p, const char *id,
                               const ospab_node_t **n)
{
    ospab_row_t r = NULL;
    apr_status_t rv = ospab_db_select_one(db, p, "ospab_node_place_one", 1, &id, &r);

    *n = rv == APR_SUCCESS && r ? node_of(p, r) : NULL;
    return rv;
}

apr_status_t ospab_node_lock(ospab_db_t *db, apr_pool_t *p, const char *id)
{
    return ospab_db_exec(db, p, "ospab_node_lock", 1, &id, NULL);
}

const char *ospab_node_unfit(apr_pool_t *p, const ospab_node_t *n, const ospab_need_t *need,
                             apr_time_t now)
{
    apr_time_t sampled = n->sampled_at ? ospab_time_parse_db(n->sampled_at) : 0;

    if (!sampled || n->maxcpu <= 0 || n->maxmem <= 0) {
        return "no sample from the agent yet";
    }
    if (now - sampled > OSPAB_NODE_SAMPLE_MAX_AGE) {
        return apr_psprintf(p, "the agent's last sample is %" APR_INT64_T_FMT " s old",
                            (apr_int64_t)apr_time_sec(now - sampled));
    }
    if (!n->status || strcmp(n->status, "online")) {
        return apr_psprintf(p, "it is %s", n->status ? n->status : "in an unknown state");
    }
    /* the limits: what servers were given, against the node's size times its ratio */
    if ((n->given_cpu + need->cores) * 100 > n->maxcpu * n->cpu_ratio) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT " + %" APR_INT64_T_FMT " vCPUs > %"
                            APR_INT64_T_FMT "%% of %" APR_INT64_T_FMT " CPUs", n->given_cpu,
                            need->cores, n->cpu_ratio, n->maxcpu);
    }
    if ((n->given_ram + need->memory) * MiB * 100 > n->maxmem * n->mem_ratio) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT " + %" APR_INT64_T_FMT " MB of memory > %"
                            APR_INT64_T_FMT "%% of %" APR_INT64_T_FMT " MB", n->given_ram,
                            need->memory, n->mem_ratio, n->maxmem / MiB);
    }
    if (n->maxdisk > 0 && (n->given_disk + need->disk) * GiB * 100 > n->maxdisk * n->disk_ratio) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT " + %" APR_INT64_T_FMT " GB of disk > %"
                            APR_INT64_T_FMT "%% of %" APR_INT64_T_FMT " GB", n->given_disk,
                            need->disk, n->disk_ratio, n->maxdisk / GiB);
    }
    return NULL;
}

apr_int64_t ospab_node_free_after(const ospab_node_t *n, const ospab_need_t *need)
{
    apr_int64_t recent = n->recent_ram > 0 ? n->recent_ram : 0;

    return n->maxmem - (n->mem > 0 ? n->mem : 0) - (recent + need->memory) * MiB;
}

typedef struct {
    const ospab_node_t *n;
    apr_int64_t free_after;
} ranked_t;

static int by_free(const void *a, const void *b)
{
    const ranked_t *x = a, *y = b;

    if (x->free_after != y->free_after) {
        return x->free_after > y->free_after ? -1 : 1;
    }
    return apr_atoi64(x->n->id) < apr_atoi64(y->n->id) ? -1 : 1;
}

apr_array_header_t *ospab_nodes_rank(apr_pool_t *p, const apr_array_header_t *nodes,
                                     const ospab_need_t *need, apr_time_t now,
                                     const char **why)
{
    apr_array_header_t *fit = apr_array_make(p, nodes->nelts + 1, sizeof(ranked_t));
    apr_array_header_t *out = apr_array_make(p, nodes->nelts + 1, sizeof(const ospab_node_t *));
    int i;

    *why = NULL;
    for (i = 0; i < nodes->nelts; ++i) {
        const ospab_node_t *n = APR_ARRAY_IDX(nodes, i, const ospab_node_t *);
        const char *no = ospab_node_unfit(p, n, need, now);

        if (no) {
            *why = apr_psprintf(p, "%s%s%s: %s", *why ? *why : "", *why ? "; " : "", n->name, no);
            continue;
        }
        ((ranked_t *)apr_array_push(fit))->n = n;
        APR_ARRAY_IDX(fit, fit->nelts - 1, ranked_t).free_after = ospab_node_free_after(n, need);
    }
    qsort(fit->elts, (size_t)fit->nelts, sizeof(ranked_t), by_free);
    for (i = 0; i < fit->nelts; ++i) {
        APR_ARRAY_PUSH(out, const ospab_node_t *) = APR_ARRAY_IDX(fit, i, ranked_t).n;
    }
    return out;
}
