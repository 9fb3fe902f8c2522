/* ospab core: where a new server goes (see ospab_placement.h). */
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "ospab_placement.h"
#include "ospab_fields.h"
#include "ospab_json.h"
#include "ospab_util.h"
#include "ospab_ssh.h"
#include "ospab_cluster.h"

#define MiB ((apr_int64_t)1024 * 1024)
#define GiB (1024 * MiB)

/* ospab_nodes_place / ospab_node_place_one rows */
enum { C_ID, C_NAME, C_STORAGE, C_BRIDGE, C_CPU_RATIO, C_MEM_RATIO, C_DISK_RATIO, C_STATUS,
       C_MAXCPU, C_MAXMEM, C_MEM, C_MAXDISK, C_DISK, C_SAMPLED_AT, C_GIVEN_CPU, C_GIVEN_RAM,
       C_GIVEN_DISK, C_RECENT_RAM, C_CLUSTER_ID, C_CLUSTER_ENABLED };

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
    n->cluster_id = r[C_CLUSTER_ID];
    n->cluster_enabled = !r[C_CLUSTER_ID] || (r[C_CLUSTER_ENABLED]
                                              && !strcmp(r[C_CLUSTER_ENABLED], "1"));
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

const ospab_ssh_conf_t *ospab_node_ssh(ospab_db_t *db, apr_pool_t *p,
                                       const ospab_ssh_conf_t *ssh, const char *node)
{
    ospab_row_t r = NULL;
    ospab_ssh_conf_t *own;

    /* ssh_host, ssh_host_key */
    if (!ssh || !node || ospab_db_select_one(db, p, "ospab_node_ssh_host", 1, &node, &r)
                         != APR_SUCCESS || !r || (!r[0] && !r[1])) {
        return ssh;
    }
    own = apr_pmemdup(p, ssh, sizeof(*ssh));
    if (r[0]) {
        own->port = 22;
        if (ospab_ssh_set_host(p, own, r[0])) {
            return ssh;
        }
    }
    own->host_key = r[1];
    return own;
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

/* ---- the nodes as data ------------------------------------------------------------------------ */

enum { F_NAME, F_STORAGE, F_BRIDGE, F_CPU_RATIO, F_MEM_RATIO, F_DISK_RATIO, F_ACCEPTS,
       F_SSH_HOST, F_CLUSTER_ID, F_SSH_HOST_KEY, F_N };

static const ospab_field_t node_fields[F_N] = {
    { "name", OSPAB_FT_NODE, 0, 0, NULL, OSPAB_FF_REQUIRED, NULL, NULL, NULL },
    { "storage", OSPAB_FT_TEXT, 1, 64, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
    { "bridge", OSPAB_FT_TEXT, 1, 64, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
    { "cpu_ratio", OSPAB_FT_INT, 10, 10000, NULL, 0, "400", "percent", NULL },
    { "mem_ratio", OSPAB_FT_INT, 10, 1000, NULL, 0, "100", "percent", NULL },
    { "disk_ratio", OSPAB_FT_INT, 10, 1000, NULL, 0, "100", "percent", NULL },
    { "accepts", OSPAB_FT_BOOL, 0, 0, NULL, 0, "1", NULL, NULL },
    { "ssh_host", OSPAB_FT_TEXT, 1, 255, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
    { "cluster_id", OSPAB_FT_INT, 1, 2147483647LL, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
    { "ssh_host_key", OSPAB_FT_TEXT, 16, 8192, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
};

/* The fields of body (creating: with defaults) into in; 0 with res the 400. */
static int node_read(apr_pool_t *p, json_t *body, int creating, ospab_field_value_t *in,
                     ospab_result_t *res)
{
    json_t *errors = json_object();

    if (!json_is_object(body)) {
        json_decref(errors);
        ospab_result_error(p, res, 400, "request body must be a JSON object", NULL);
        return 0;
    }
    ospab_fields_read(p, node_fields, F_N, body, creating, in, errors);
    if (in[F_STORAGE].present && in[F_STORAGE].value
        && !ospab_id_chars_ok(in[F_STORAGE].value)) {
        json_object_set_new(errors, "storage", json_string("letters, digits, '-', '_', '.'"));
    }
    if (in[F_BRIDGE].present && in[F_BRIDGE].value
        && !ospab_id_chars_ok(in[F_BRIDGE].value)) {
        json_object_set_new(errors, "bridge", json_string("letters, digits, '-', '_', '.'"));
    }
    if (in[F_SSH_HOST].present && in[F_SSH_HOST].value) {
        ospab_ssh_conf_t scratch;
        const char *why;

        memset(&scratch, 0, sizeof(scratch));
        if ((why = ospab_ssh_set_host(p, &scratch, in[F_SSH_HOST].value)) != NULL) {
            json_object_set_new(errors, "ssh_host", json_string(why));
        }
    }
    if (in[F_SSH_HOST_KEY].present && in[F_SSH_HOST_KEY].value) {
        const char *why = ospab_ssh_host_key_problem(in[F_SSH_HOST_KEY].value);

        if (why) {
            json_object_set_new(errors, "ssh_host_key", json_string(why));
        }
    }
    if (json_object_size(errors)) {
        ospab_result_error(p, res, 400, ospab_fields_summary(p, "node", errors), errors);
        return 0;
    }
    json_decref(errors);
    return 1;
}

static json_t *int_or_null(apr_int64_t v)
{
    return v < 0 ? json_null() : json_integer((json_int_t)v);
}

static json_t *node_json(apr_pool_t *p, const ospab_node_t *n, const char *accepts,
                         const char *ssh_host, const char *ssh_host_key)
{
    json_t *o = json_pack("{s:I, s:s, s:o, s:o, s:I, s:I, s:I, s:b}",
                          "id", (json_int_t)apr_atoi64(n->id), "name", n->name,
                          "storage", ospab_json_str_or_null(n->storage),
                          "bridge", ospab_json_str_or_null(n->bridge),
                          "cpu_ratio", (json_int_t)n->cpu_ratio,
                          "mem_ratio", (json_int_t)n->mem_ratio,
                          "disk_ratio", (json_int_t)n->disk_ratio,
                          "accepts", accepts && !strcmp(accepts, "1"));

    json_object_set_new(o, "ssh_host", ospab_json_str_or_null(ssh_host));
    json_object_set_new(o, "ssh_host_key", ospab_json_str_or_null(ssh_host_key));
    json_object_set_new(o, "cluster_id", ospab_json_int_or_null(n->cluster_id));
    json_object_set_new(o, "sample", !n->sampled_at ? json_null() : json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:s}", "status", ospab_json_str_or_null(n->status),
        "maxcpu", int_or_null(n->maxcpu), "maxmem", int_or_null(n->maxmem),
        "mem", int_or_null(n->mem), "maxdisk", int_or_null(n->maxdisk),
        "disk", int_or_null(n->disk), "sampled_at", ospab_time_api(p, n->sampled_at)));
    json_object_set_new(o, "given", json_pack("{s:I, s:I, s:I}",
                                              "cpu", (json_int_t)n->given_cpu,
                                              "ram", (json_int_t)n->given_ram,
                                              "disk", (json_int_t)n->given_disk));
    return o;
}

void ospab_nodes_list(ospab_db_t *db, apr_pool_t *p, const char *id, ospab_result_t *res)
{
    apr_array_header_t *rows;
    json_t *list = json_array();
    int i;

    memset(res, 0, sizeof(*res));
    if (ospab_db_select(db, p, id ? "ospab_node_admin_one" : "ospab_nodes_admin", id ? 1 : 0,
                        &id, &rows, NULL) != APR_SUCCESS) {
        json_decref(list);
        ospab_result_db_failed(db, p, res);
        return;
    }
    for (i = 0; i < rows->nelts; ++i) {
        ospab_row_t r = APR_ARRAY_IDX(rows, i, ospab_row_t);

        /* the placement row, then accepts, ssh_host and ssh_host_key */
        json_array_append_new(list, node_json(p, node_of(p, r), r[C_CLUSTER_ENABLED + 1],
                                              r[C_CLUSTER_ENABLED + 2],
                                              r[C_CLUSTER_ENABLED + 3]));
    }
    ospab_result_list_or_one(p, res, list, id, "node", "nodes", "node not found");
}

/* {"field": value} of what a create or an update set, for the audit log */
static json_t *node_details(const ospab_field_value_t *in)
{
    json_t *d = json_object();
    int i;

    for (i = 0; i < F_N; ++i) {
        if (in[i].present) {
            json_object_set_new(d, node_fields[i].name, ospab_json_str_or_null(in[i].value));
        }
    }
    return d;
}

/* The insert or update (label) of a node's settings, args in the field table's order then
 * the times or the id, in the open transaction. 1: written; 0: res is the answer (a name
 * registered already: 409) and the transaction is over. */
static int node_write(ospab_db_t *db, apr_pool_t *p, const char *label, const char **args,
                      ospab_result_t *res)
{
    if (ospab_db_exec(db, p, label, F_N + 2, args, NULL) == APR_SUCCESS) {
        return 1;
    }
    if (ospab_db_is_constraint(db)) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 409, apr_psprintf(p, "node '%s' is registered already",
                                                     args[F_NAME]), NULL);
        return 0;
    }
    ospab_result_db_failed(db, p, res);
    return 0;
}

/* In the open transaction: the cluster the request names exists. 1: it does (or none was
 * named); 0: res is the answer and the transaction is over. */
static int cluster_known(ospab_db_t *db, apr_pool_t *p, const ospab_field_value_t *in,
                         ospab_result_t *res)
{
    return !in[F_CLUSTER_ID].present
           || ospab_cluster_known(db, p, "node", in[F_CLUSTER_ID].value, res);
}

void ospab_node_create(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a, json_t *body,
                       ospab_result_t *res)
{
    ospab_field_value_t in[F_N];
    const char *args[F_N + 2], *id, *now = ospab_time_db(p, a->now);
    int i;

    memset(res, 0, sizeof(*res));
    if (!node_read(p, body, 1, in, res)) {
        return;
    }
    for (i = 0; i < F_N; ++i) {
        args[i] = in[i].present ? in[i].value : NULL;
    }
    args[F_N] = args[F_N + 1] = now;
    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!cluster_known(db, p, in, res) || !node_write(db, p, "ospab_node_insert", args, res)) {
        return;
    }
    if (ospab_db_last_id(db, p, &id) != APR_SUCCESS
        || ospab_audit(db, p, a, "node.create", "node", id, node_details(in)) != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    ospab_nodes_list(db, p, id, res);
    if (res->status == 200) {
        res->status = 201;
    }
}

void ospab_node_update(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a, const char *id,
                       json_t *body, ospab_result_t *res)
{
    ospab_field_value_t in[F_N];
    const char *args[F_N + 2];
    ospab_row_t row = NULL;
    int i;

    memset(res, 0, sizeof(*res));
    if (!node_read(p, body, 0, in, res)) {
        return;
    }
    if (ospab_db_begin(db, p) != APR_SUCCESS
        || ospab_node_lock(db, p, id) != APR_SUCCESS
        || ospab_db_select_one(db, p, "ospab_node_settings", 1, &id, &row) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!row) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 404, "node not found", NULL);
        return;
    }
    /* the settings in the field table's order: what the request did not set stays */
    for (i = 0; i < F_N; ++i) {
        args[i] = in[i].present ? in[i].value : row[i];
    }
    args[F_N] = ospab_time_db(p, a->now);
    args[F_N + 1] = id;
    if (!cluster_known(db, p, in, res) || !node_write(db, p, "ospab_node_update", args, res)) {
        return;
    }
    if (ospab_audit(db, p, a, "node.update", "node", id, node_details(in)) != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    ospab_nodes_list(db, p, id, res);
}

void ospab_node_delete(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a, const char *id,
                       ospab_result_t *res)
{
    ospab_row_t row = NULL;
    int n = 0;

    memset(res, 0, sizeof(*res));
    if (ospab_db_begin(db, p) != APR_SUCCESS
        || ospab_db_select_one(db, p, "ospab_node_settings", 1, &id, &row) != APR_SUCCESS
        || (row && ospab_db_exec(db, p, "ospab_node_delete", 1, &id, &n) != APR_SUCCESS)) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!row) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 404, "node not found", NULL);
        return;
    }
    if (ospab_audit(db, p, a, "node.delete", "node", id, json_pack("{s:s}", "name", row[0]))
            != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    res->status = 200;
    res->body = ospab_json_own(p, json_pack("{s:s, s:s}", "status", "success", "message",
                                            "node deleted: new servers are no longer placed "
                                            "on it"));
}
