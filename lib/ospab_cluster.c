/* ospab core: Proxmox clusters as data (ospab_cluster.h). */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_hash.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ospab_cluster.h"
#include "ospab_fields.h"
#include "ospab_json.h"
#include "ospab_util.h"

/* the columns of ospab_clusters_all / ospab_cluster_row */
enum { C_ID, C_NAME, C_URL, C_TOKEN_ID, C_SECRET, C_CA, C_ENABLED, C_UPDATED };

static void cluster_of(apr_pool_t *p, const ospab_seal_key_t *key, ospab_row_t r,
                       ospab_cluster_t *c)
{
    const char *secret = key ? ospab_unseal(p, key, OSPAB_CLUSTER_SEAL_AAD, r[C_SECRET]) : NULL;

    c->id = r[C_ID];
    c->name = r[C_NAME];
    c->url = r[C_URL];
    c->token_id = r[C_TOKEN_ID];
    c->token = secret ? apr_pstrcat(p, r[C_TOKEN_ID], "=", secret, NULL) : NULL;
    c->ca_pem = r[C_CA];
    c->enabled = r[C_ENABLED] && !strcmp(r[C_ENABLED], "1");
    c->updated_at = r[C_UPDATED];
}

apr_status_t ospab_clusters_load(ospab_db_t *db, apr_pool_t *p, const ospab_seal_key_t *key,
                                 apr_array_header_t **clusters)
{
    apr_array_header_t *rows;
    apr_status_t rv;
    int i;

    *clusters = apr_array_make(p, 2, sizeof(ospab_cluster_t));
    if ((rv = ospab_db_select(db, p, "ospab_clusters_all", 0, NULL, &rows, NULL))
            != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < rows->nelts; ++i) {
        cluster_of(p, key, APR_ARRAY_IDX(rows, i, ospab_row_t), apr_array_push(*clusters));
    }
    return APR_SUCCESS;
}

apr_status_t ospab_clusters_stamp(ospab_db_t *db, apr_pool_t *p, const char **stamp)
{
    ospab_row_t r = NULL;
    apr_status_t rv = ospab_db_select_one(db, p, "ospab_clusters_stamp", 0, NULL, &r);

    *stamp = rv == APR_SUCCESS && r ? apr_pstrcat(p, r[0] ? r[0] : "0", "/",
                                                  r[1] ? r[1] : "-", NULL) : NULL;
    return rv;
}

/* "USER@REALM!TOKENID=SECRET" -> the id and the secret */
static void token_split(apr_pool_t *p, const char *token, const char **id, const char **secret)
{
    const char *eq = strrchr(token, '=');

    *id = apr_pstrmemdup(p, token, (apr_size_t)(eq - token));
    *secret = eq + 1;
}

int ospab_cluster_import(ospab_db_t *db, apr_pool_t *p, const ospab_seal_key_t *key,
                         const ospab_actor_t *a, const char *name, const char *url,
                         const char *token, const char *ca_pem)
{
    const char *args[8], *token_id, *secret, *sealed, *id, *now = ospab_time_db(p, a->now);
    ospab_row_t r = NULL;
    int attempt = 0, n = 0;

    if (ospab_pve_token_problem(token)) {
        return -1;
    }
    token_split(p, token, &token_id, &secret);
    if (!(sealed = ospab_seal(p, key, OSPAB_CLUSTER_SEAL_AAD, secret))) {
        return -1;
    }
    do {
        if (ospab_db_begin(db, p) != APR_SUCCESS) {
            continue;
        }
        /* the same cluster under another name (the module's and the agent's import) */
        args[0] = name;
        args[1] = url;
        if (ospab_db_select_one(db, p, "ospab_cluster_same", 2, args, &r) != APR_SUCCESS) {
            continue;
        }
        if (r) {
            ospab_db_end(db, 0);
            return 0;
        }
        args[2] = token_id;
        args[3] = sealed;
        args[4] = ca_pem;
        args[5] = "1";
        args[6] = args[7] = now;
        if (ospab_db_exec(db, p, "ospab_cluster_insert", 8, args, NULL) != APR_SUCCESS) {
            if (ospab_db_is_constraint(db)) {     /* imported by another process meanwhile */
                ospab_db_end(db, 0);
                return 0;
            }
            continue;
        }
        if (ospab_db_last_id(db, p, &id) != APR_SUCCESS
            || ospab_db_exec(db, p, "ospab_nodes_claim", 1, &id, &n) != APR_SUCCESS
            || ospab_audit(db, p, a, "cluster.import", "cluster", id,
                           json_pack("{s:s, s:s, s:i}", "name", name, "url", url,
                                     "nodes", n)) != APR_SUCCESS) {
            continue;
        }
        if (ospab_db_end(db, 1) == APR_SUCCESS) {
            return 1;
        }
    } while (ospab_db_conflict_again(db, &attempt));
    if (db->trans) {
        ospab_db_end(db, 0);
    }
    return -1;
}

/* ---- the admin API ------------------------------------------------------------------------ */

enum { F_NAME, F_URL, F_TOKEN, F_ENABLED, F_N };

static const ospab_field_t cluster_fields[F_N] = {
    { "name", OSPAB_FT_TEXT, 1, 64, NULL, OSPAB_FF_REQUIRED, NULL, NULL, NULL },
    { "url", OSPAB_FT_TEXT, 8, 255, NULL, OSPAB_FF_REQUIRED, NULL, NULL, NULL },
    { "token", OSPAB_FT_TEXT, 3, 512, NULL, OSPAB_FF_REQUIRED, NULL, NULL, NULL },
    { "enabled", OSPAB_FT_BOOL, 0, 0, NULL, 0, "1", NULL, NULL },
};

#define CA_MAX (64 * 1024)

/* A PEM bundle of at least one certificate, and nothing that is not one. */
static const char *ca_problem(const char *pem)
{
    BIO *bio;
    X509 *x;
    int n = 0;

    if (strlen(pem) > CA_MAX) {
        return "is larger than 64 KiB";
    }
    if (!(bio = BIO_new_mem_buf(pem, -1))) {
        return "cannot be read";
    }
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        X509_free(x);
        ++n;
    }
    BIO_free(bio);
    return n ? NULL : "must be one or more PEM certificates (-----BEGIN CERTIFICATE-----)";
}

/* The fields of body into in and *ca (present: *ca_set; NULL: the system's CAs); 0 with
 * res the 400. The token's value never reaches a message. */
static int cluster_read(apr_pool_t *p, json_t *body, int creating, ospab_field_value_t *in,
                        int *ca_set, const char **ca, ospab_result_t *res)
{
    json_t *errors = json_object(), *rest, *jca;
    const char *why;

    *ca_set = 0;
    *ca = NULL;
    if (!json_is_object(body)) {
        json_decref(errors);
        ospab_result_error(p, res, 400, "request body must be a JSON object", NULL);
        return 0;
    }
    /* the CA is PEM text over several lines, not a one-line field */
    rest = json_copy(body);
    if ((jca = json_object_get(body, "ca")) != NULL) {
        json_object_del(rest, "ca");
        *ca_set = 1;
        if (json_is_string(jca) && json_string_length(jca) > 0) {
            *ca = apr_pstrdup(p, json_string_value(jca));
            if ((why = ca_problem(*ca)) != NULL) {
                json_object_set_new(errors, "ca", json_string(why));
            }
        }
        else if (!json_is_null(jca)) {
            json_object_set_new(errors, "ca", json_string("must be PEM text or null"));
        }
    }
    ospab_fields_read(p, cluster_fields, F_N, rest, creating, in, errors);
    json_decref(rest);
    /* it names the cluster in logs, leases and metrics */
    if (in[F_NAME].present && !ospab_id_chars_ok(in[F_NAME].value)) {
        json_object_set_new(errors, "name", json_string("letters, digits, '-', '_', '.'"));
    }
    if (in[F_URL].present && (why = ospab_pve_url_problem(in[F_URL].value)) != NULL) {
        json_object_set_new(errors, "url", json_string(why));
    }
    if (in[F_TOKEN].present && (why = ospab_pve_token_problem(in[F_TOKEN].value)) != NULL) {
        json_object_set_new(errors, "token", json_string(why));
    }
    if (json_object_size(errors)) {
        ospab_result_error(p, res, 400, ospab_fields_summary(p, "cluster", errors), errors);
        return 0;
    }
    json_decref(errors);
    return 1;
}

void ospab_clusters_list(ospab_db_t *db, apr_pool_t *p, const char *id, ospab_result_t *res)
{
    apr_array_header_t *rows;
    json_t *list = json_array();
    int i;

    memset(res, 0, sizeof(*res));
    if (ospab_db_select(db, p, id ? "ospab_cluster_admin_one" : "ospab_clusters_admin",
                        id ? 1 : 0, &id, &rows, NULL) != APR_SUCCESS) {
        json_decref(list);
        ospab_result_db_failed(db, p, res);
        return;
    }
    for (i = 0; i < rows->nelts; ++i) {
        ospab_row_t r = APR_ARRAY_IDX(rows, i, ospab_row_t);

        /* id, name, url, token_id, ca, enabled, created_at, updated_at, nodes: the secret
         * is not even selected */
        json_array_append_new(list, json_pack(
            "{s:I, s:s, s:s, s:s, s:b, s:o, s:b, s:I, s:s, s:s}",
            "id", (json_int_t)apr_atoi64(r[0]), "name", r[1], "url", r[2], "tokenId", r[3],
            "tokenSet", 1, "ca", ospab_json_str_or_null(r[4]), "enabled", !strcmp(r[5], "1"),
            "nodes", (json_int_t)apr_atoi64(r[8]), "created_at", ospab_time_api(p, r[6]),
            "updated_at", ospab_time_api(p, r[7])));
    }
    ospab_result_list_or_one(p, res, list, id, "cluster", "clusters", "cluster not found");
}

/* What a create or an update set, for the audit log: never the token's secret. */
static json_t *cluster_details(const ospab_field_value_t *in, int ca_set, const char *ca,
                               const char *token_id)
{
    json_t *d = json_object();

    if (in[F_NAME].present) {
        json_object_set_new(d, "name", json_string(in[F_NAME].value));
    }
    if (in[F_URL].present) {
        json_object_set_new(d, "url", json_string(in[F_URL].value));
    }
    if (in[F_TOKEN].present) {
        json_object_set_new(d, "tokenId", json_string(token_id));
    }
    if (in[F_ENABLED].present) {
        json_object_set_new(d, "enabled", json_boolean(!strcmp(in[F_ENABLED].value, "1")));
    }
    if (ca_set) {
        json_object_set_new(d, "ca", json_string(ca ? "set" : "system"));
    }
    return d;
}

static void no_key(apr_pool_t *p, ospab_result_t *res)
{
    ospab_result_error(p, res, 503, "clusters cannot be stored: no secret key is configured "
                       "(OspabSecretKey, docs/operations.md)", NULL);
}

/* The insert or update (label, 8 args), in the open transaction. 1: written; 0: res is the
 * answer (a name taken: 409) and the transaction is over. */
static int cluster_write(ospab_db_t *db, apr_pool_t *p, const char *label, const char **args,
                         ospab_result_t *res)
{
    if (ospab_db_exec(db, p, label, 8, args, NULL) == APR_SUCCESS) {
        return 1;
    }
    if (ospab_db_is_constraint(db)) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 409, apr_psprintf(p, "a cluster named '%s' exists already",
                                                     args[0]), NULL);
        return 0;
    }
    ospab_result_db_failed(db, p, res);
    return 0;
}

/* A transaction begun and the cluster's row read in it; NULL with res set (404, or the
 * database failed) and the transaction over. */
static ospab_row_t cluster_begin(ospab_db_t *db, apr_pool_t *p, const char *id,
                                 ospab_result_t *res)
{
    ospab_row_t row = NULL;

    if (ospab_db_begin(db, p) != APR_SUCCESS
        || ospab_db_select_one(db, p, "ospab_cluster_row", 1, &id, &row) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return NULL;
    }
    if (!row) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 404, "cluster not found", NULL);
    }
    return row;
}

void ospab_cluster_create(ospab_db_t *db, apr_pool_t *p, const ospab_seal_key_t *key,
                          const ospab_actor_t *a, json_t *body, ospab_result_t *res)
{
    ospab_field_value_t in[F_N];
    const char *args[8], *ca, *token_id, *secret, *id, *now = ospab_time_db(p, a->now);
    int ca_set;

    memset(res, 0, sizeof(*res));
    if (!cluster_read(p, body, 1, in, &ca_set, &ca, res)) {
        return;
    }
    if (!key) {                 /* what is wrong with the request first, then this */
        no_key(p, res);
        return;
    }
    token_split(p, in[F_TOKEN].value, &token_id, &secret);
    args[0] = in[F_NAME].value;
    args[1] = in[F_URL].value;
    args[2] = token_id;
    if (!(args[3] = ospab_seal(p, key, OSPAB_CLUSTER_SEAL_AAD, secret))) {
        ospab_result_error(p, res, 500, "the token could not be sealed", NULL);
        return;
    }
    args[4] = ca;
    args[5] = in[F_ENABLED].value;
    args[6] = args[7] = now;
    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!cluster_write(db, p, "ospab_cluster_insert", args, res)) {
        return;
    }
    if (ospab_db_last_id(db, p, &id) != APR_SUCCESS
        || ospab_audit(db, p, a, "cluster.create", "cluster", id,
                       cluster_details(in, ca_set, ca, token_id)) != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    ospab_clusters_list(db, p, id, res);
    if (res->status == 200) {
        res->status = 201;
    }
}

void ospab_cluster_update(ospab_db_t *db, apr_pool_t *p, const ospab_seal_key_t *key,
                          const ospab_actor_t *a, const char *id, json_t *body,
                          ospab_result_t *res)
{
    ospab_field_value_t in[F_N];
    const char *args[8], *ca, *token_id = NULL, *secret;
    ospab_row_t row = NULL;
    int ca_set;

    memset(res, 0, sizeof(*res));
    if (!cluster_read(p, body, 0, in, &ca_set, &ca, res)) {
        return;
    }
    if (in[F_TOKEN].present && !key) {
        no_key(p, res);
        return;
    }
    if (!(row = cluster_begin(db, p, id, res))) {
        return;
    }
    args[0] = in[F_NAME].present ? in[F_NAME].value : row[C_NAME];
    args[1] = in[F_URL].present ? in[F_URL].value : row[C_URL];
    args[2] = row[C_TOKEN_ID];
    args[3] = row[C_SECRET];
    if (in[F_TOKEN].present) {
        token_split(p, in[F_TOKEN].value, &token_id, &secret);
        args[2] = token_id;
        if (!(args[3] = ospab_seal(p, key, OSPAB_CLUSTER_SEAL_AAD, secret))) {
            ospab_db_end(db, 0);
            ospab_result_error(p, res, 500, "the token could not be sealed", NULL);
            return;
        }
    }
    args[4] = ca_set ? ca : row[C_CA];
    args[5] = in[F_ENABLED].present ? in[F_ENABLED].value : row[C_ENABLED];
    args[6] = ospab_time_db(p, a->now);
    args[7] = id;
    if (!cluster_write(db, p, "ospab_cluster_update", args, res)) {
        return;
    }
    if (ospab_audit(db, p, a, "cluster.update", "cluster", id,
                    cluster_details(in, ca_set, ca, token_id)) != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    ospab_clusters_list(db, p, id, res);
}

void ospab_cluster_delete(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                          const char *id, ospab_result_t *res)
{
    ospab_row_t row = NULL, users = NULL;
    int n = 0;

    memset(res, 0, sizeof(*res));
    if (!(row = cluster_begin(db, p, id, res))) {
        return;
    }
    if (ospab_db_select_one(db, p, "ospab_cluster_users", 3, (const char *[]){ id, id, id },
                            &users) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (apr_atoi64(users[0]) || apr_atoi64(users[1]) || apr_atoi64(users[2])) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 409, apr_psprintf(
            p, "cluster '%s' still has %s node(s), %s tariff(s) and %s IP pool(s): move or "
            "delete them first", row[C_NAME], users[0], users[1], users[2]), NULL);
        return;
    }
    if (ospab_db_exec(db, p, "ospab_cluster_delete", 1, &id, &n) != APR_SUCCESS
        || ospab_audit(db, p, a, "cluster.delete", "cluster", id,
                       json_pack("{s:s}", "name", row[C_NAME])) != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    res->status = 200;
    res->body = ospab_json_own(p, json_pack("{s:s, s:s}", "status", "success", "message",
                                            "cluster deleted"));
}

int ospab_cluster_known(ospab_db_t *db, apr_pool_t *p, const char *what, const char *id,
                        ospab_result_t *res)
{
    const char *found = NULL;

    if (!id || !strcmp(id, "0")) {
        return 1;
    }
    if (ospab_db_select_value(db, p, "ospab_cluster_exists", 1, &id, &found) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return 0;
    }
    if (!found) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 422, apr_psprintf(p, "invalid %s: cluster_id: no cluster "
                                                     "%s", what, id),
                           json_pack("{s:s}", "cluster_id", "no such cluster"));
        return 0;
    }
    return 1;
}

/* ---- "test connection" -------------------------------------------------------------------- */

/* What the panel does on a cluster, by ACL path: polling and status (VM.Audit), power,
 * create and delete, resize, snapshots, consoles; root disks and templates on storages;
 * node status for placement; the bridge through SDN (PVE 8+ checks SDN.Use on the zone). */
static const struct {
    const char *path;
    const char *const privs[12];
} needed[] = {
    { "/vms", { "VM.Audit", "VM.Allocate", "VM.PowerMgmt", "VM.Config.CPU",
                "VM.Config.Memory", "VM.Config.Disk", "VM.Config.Network",
                "VM.Config.Options", "VM.Snapshot", "VM.Snapshot.Rollback", "VM.Console",
                NULL } },
    { "/storage", { "Datastore.Audit", "Datastore.AllocateSpace", NULL } },
    { "/nodes", { "Sys.Audit", NULL } },
    { "/sdn/zones", { "SDN.Use", NULL } },
};

static json_t *check_json(const char *check, int ok, const char *message)
{
    json_t *o = json_pack("{s:s, s:b}", "check", check, "ok", ok);

    if (message) {
        json_object_set_new(o, "message", json_string(message));
    }
    return o;
}

/* Why a call failed, in the words of the check (never the token). */
static const char *call_problem(apr_pool_t *p, const ospab_pve_result_t *r)
{
    switch (r->outcome) {
    case OSPAB_PVE_TIMEOUT:
        return "no answer in time: is the URL's host and port right, and reachable from "
               "the panel?";
    case OSPAB_PVE_UNREACHABLE:
        return apr_psprintf(p, "cannot connect: %s", r->message ? r->message : "unknown");
    case OSPAB_PVE_BAD_RESPONSE:
        return "the URL does not answer like a Proxmox VE API";
    default:
        return apr_psprintf(p, "Proxmox answered %d %s", r->http_status,
                            r->message ? r->message : "");
    }
}

void ospab_cluster_test(ospab_db_t *db, apr_pool_t *p, const ospab_seal_key_t *key,
                        const ospab_pve_conf_t *base, const ospab_actor_t *a,
                        const char *id, ospab_result_t *res)
{
    ospab_row_t row = NULL;
    ospab_cluster_t c;
    ospab_pve_conf_t pc;
    ospab_pve_t *pve;
    ospab_pve_result_t r;
    json_t *checks = json_array(), *missing = json_object();
    const char *summary = NULL, *version = NULL;
    apr_size_t i, j;
    int nmissing = 0;

    memset(res, 0, sizeof(*res));
    if (ospab_db_select_one(db, p, "ospab_cluster_row", 1, &id, &row) != APR_SUCCESS) {
        json_decref(checks);
        json_decref(missing);
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!row) {
        json_decref(checks);
        json_decref(missing);
        ospab_result_error(p, res, 404, "cluster not found", NULL);
        return;
    }
    cluster_of(p, key, row, &c);
    pc = *base;
    pc.url = c.url;
    pc.token = c.token;
    pc.ca_pem = c.ca_pem;
    pc.ca_file = NULL;
    pc.shared = NULL;
    pc.max_handles = 1;
    if (!c.token) {
        summary = key ? "the stored token does not open with this secret key (was the key "
                        "replaced?): set the token again"
                      : "no secret key is configured (OspabSecretKey)";
        json_array_append_new(checks, check_json("token", 0, summary));
        goto done;
    }
    if (ospab_pve_create(p, &pc, &pve) != APR_SUCCESS) {
        summary = "the client could not be made from the cluster's settings";
        json_array_append_new(checks, check_json("url", 0, summary));
        goto done;
    }
    /* 1: the URL and TLS (GET /version needs a valid token too: a 401 here is the token's) */
    ospab_pve_call(pve, p, "GET", "/version", NULL, &r);
    if (r.outcome != OSPAB_PVE_OK && r.outcome != OSPAB_PVE_HTTP_ERROR) {
        summary = call_problem(p, &r);
        json_array_append_new(checks, check_json(r.tls ? "ca" : "url", 0, summary));
        goto done;
    }
    json_array_append_new(checks, check_json("url", 1, NULL));
    json_array_append_new(checks, check_json("ca", 1, NULL));
    if (r.outcome != OSPAB_PVE_OK) {
        summary = r.http_status == 401
            ? apr_psprintf(p, "Proxmox refused the token %s: check its id and secret, and "
                           "that it has not expired", c.token_id)
            : call_problem(p, &r);
        json_array_append_new(checks, check_json("token", 0, summary));
        goto done;
    }
    version = json_string_value(json_object_get(r.data, "version"));
    json_array_append_new(checks, check_json("token", 1, NULL));
    /* 2: the token's effective privileges where the panel works */
    for (i = 0; i < sizeof(needed) / sizeof(needed[0]); ++i) {
        ospab_pve_param_t q[] = { { "path", needed[i].path }, { NULL, NULL } };
        json_t *have, *lack = json_array();

        if (ospab_pve_call(pve, p, "GET", "/access/permissions", q, &r) != APR_SUCCESS) {
            json_decref(lack);
            summary = apr_psprintf(p, "the token's privileges could not be read: %s",
                                   call_problem(p, &r));
            json_array_append_new(checks, check_json("privileges", 0, summary));
            goto done;
        }
        have = json_object_get(r.data, needed[i].path);
        for (j = 0; needed[i].privs[j]; ++j) {
            if (!json_object_get(have, needed[i].privs[j])) {
                json_array_append_new(lack, json_string(needed[i].privs[j]));
                ++nmissing;
            }
        }
        if (json_array_size(lack)) {
            json_object_set_new(missing, needed[i].path, lack);
        }
        else {
            json_decref(lack);
        }
    }
    if (nmissing) {
        const char *k;
        json_t *v;
        char *text = "";

        json_object_foreach(missing, k, v) {
            apr_size_t n;
            json_t *priv;

            json_array_foreach(v, n, priv) {
                text = apr_psprintf(p, "%s%s%s on %s", text, *text ? ", " : "",
                                    json_string_value(priv), k);
            }
        }
        summary = apr_psprintf(p, "the token lacks %s", text);
        json_array_append_new(checks, check_json("privileges", 0, summary));
    }
    else {
        json_array_append_new(checks, check_json("privileges", 1, NULL));
    }

done:
    (void)ospab_audit(db, p, a, "cluster.test", "cluster", id,
                      json_pack("{s:b}", "ok", !summary));
    res->status = 200;
    res->body = ospab_json_own(p, json_pack("{s:s, s:b, s:s, s:o, s:o, s:o}",
        "status", "success", "ok", !summary, "message", summary ? summary
            : "the cluster answers, its certificate is trusted and the token has every "
              "privilege the panel needs",
        "version", ospab_json_str_or_null(version), "checks", checks, "missing", missing));
}

/* ---- the module's per-process clients ----------------------------------------------------- */

typedef struct {
    const char *updated_at, *url;
    ospab_pve_t *client;        /* NULL: not usable (its token did not open) */
    ospab_pve_conf_t conf;      /* what the client was made with (its CA as PEM) */
} entry_t;

struct ospab_clusters_t {
    apr_pool_t *pool;                   /* the process's: clients live as long as it */
    apr_thread_mutex_t *lock;
    const ospab_seal_key_t *key;
    ospab_pve_conf_t base;
    apr_interval_time_t ttl;
    apr_time_t read_at;                 /* 0: read on the next request */
    apr_hash_t *by_id;                  /* cluster id -> entry_t*, kept across reads */
    apr_pool_t *map_pool;               /* the node map's, renewed on every read */
    apr_hash_t *node_cluster;           /* node name -> entry_t*, &none: a registered node
                                         * of no cluster (the configured one's) */
    entry_t none;
    const char *import_name, *import_url, *import_token, *import_ca;   /* NULL: none due */
};

apr_status_t ospab_clusters_create(apr_pool_t *p, const ospab_seal_key_t *key,
                                   const ospab_pve_conf_t *base, apr_interval_time_t ttl,
                                   ospab_clusters_t **out)
{
    ospab_clusters_t *cs = apr_pcalloc(p, sizeof(*cs));
    apr_status_t rv;

    if ((rv = apr_thread_mutex_create(&cs->lock, APR_THREAD_MUTEX_DEFAULT, p)) != APR_SUCCESS) {
        return rv;
    }
    cs->pool = p;
    cs->key = key;
    cs->base = *base;
    cs->ttl = ttl;
    cs->by_id = apr_hash_make(p);
    apr_pool_create(&cs->map_pool, p);
    cs->node_cluster = apr_hash_make(cs->map_pool);
    *out = cs;
    return APR_SUCCESS;
}

/* Reads the rows again: the database outside cs->lock (a request never waits behind another
 * one's queries), then, under it, the new map swapped in. A cluster unchanged since the
 * last read keeps its client (and its connections); a changed one gets a new client. The
 * old clients stay in the process's pool: a request on another thread may still be using
 * one, and a changed cluster is rare. Two threads may read at once: the later swap wins,
 * both are as fresh. */
static apr_status_t reread(ospab_clusters_t *cs, ospab_db_t *db, apr_pool_t *p)
{
    apr_array_header_t *clusters, *rows;
    apr_pool_t *map_pool;
    apr_hash_t *map;
    const char *import;
    int i;

    apr_thread_mutex_lock(cs->lock);
    import = cs->import_name;
    apr_thread_mutex_unlock(cs->lock);
    if (import) {
        ospab_actor_t a = { .type = "admin", .id = "configuration", .now = apr_time_now() };

        if (ospab_cluster_import(db, p, cs->key, &a, import, cs->import_url,
                                 cs->import_token, cs->import_ca) >= 0) {
            apr_thread_mutex_lock(cs->lock);
            cs->import_name = NULL;     /* done, or there already: not again */
            apr_thread_mutex_unlock(cs->lock);
        }
    }
    if (ospab_clusters_load(db, p, cs->key, &clusters) != APR_SUCCESS
        || ospab_db_select(db, p, "ospab_node_clusters", 0, NULL, &rows, NULL) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    apr_thread_mutex_lock(cs->lock);       /* from here on: the process's pool and maps */
    apr_pool_create(&map_pool, cs->pool);
    map = apr_hash_make(map_pool);
    for (i = 0; i < clusters->nelts; ++i) {
        const ospab_cluster_t *c = &APR_ARRAY_IDX(clusters, i, ospab_cluster_t);
        entry_t *e = apr_hash_get(cs->by_id, c->id, APR_HASH_KEY_STRING);

        if (!e || strcmp(e->updated_at, c->updated_at)) {
            ospab_pve_conf_t pc = cs->base;

            e = apr_pcalloc(cs->pool, sizeof(*e));
            e->updated_at = apr_pstrdup(cs->pool, c->updated_at);
            e->url = apr_pstrdup(cs->pool, c->url);
            pc.url = e->url;
            pc.token = c->token ? apr_pstrdup(cs->pool, c->token) : NULL;
            pc.ca_pem = c->ca_pem ? apr_pstrdup(cs->pool, c->ca_pem) : NULL;
            pc.ca_file = NULL;
            pc.shared = NULL;
            if (!pc.token || ospab_pve_create(cs->pool, &pc, &e->client) != APR_SUCCESS) {
                e->client = NULL;
            }
            e->conf = pc;
            apr_hash_set(cs->by_id, apr_pstrdup(cs->pool, c->id), APR_HASH_KEY_STRING, e);
        }
    }
    for (i = 0; i < rows->nelts; ++i) {
        ospab_row_t r = APR_ARRAY_IDX(rows, i, ospab_row_t);
        entry_t *e = r[1] ? apr_hash_get(cs->by_id, r[1], APR_HASH_KEY_STRING) : &cs->none;

        if (e) {
            apr_hash_set(map, apr_pstrdup(map_pool, r[0]), APR_HASH_KEY_STRING, e);
        }
    }
    /* nobody holds the old map: lookups copy what they need under the lock */
    apr_pool_destroy(cs->map_pool);
    cs->map_pool = map_pool;
    cs->node_cluster = map;
    cs->read_at = apr_time_now();
    apr_thread_mutex_unlock(cs->lock);
    return APR_SUCCESS;
}

/* What the last read says of node (under the lock): its entry, &cs->none, or NULL. */
static entry_t *entry_of_node(ospab_clusters_t *cs, const char *node, int *stale)
{
    entry_t *e;

    apr_thread_mutex_lock(cs->lock);
    e = apr_hash_get(cs->node_cluster, node, APR_HASH_KEY_STRING);
    if (stale) {
        *stale = apr_time_now() - cs->read_at > cs->ttl;
    }
    apr_thread_mutex_unlock(cs->lock);
    return e;
}

static entry_t *entry_of_cluster(ospab_clusters_t *cs, const char *id)
{
    entry_t *e;

    apr_thread_mutex_lock(cs->lock);
    e = apr_hash_get(cs->by_id, id, APR_HASH_KEY_STRING);
    apr_thread_mutex_unlock(cs->lock);
    return e;
}

ospab_pve_t *ospab_clusters_pve_conf(ospab_clusters_t *cs, ospab_db_t *db, apr_pool_t *p,
                                     const char *node, const char **url,
                                     ospab_pve_conf_t *conf)
{
    const char *cid = NULL;
    entry_t *e;
    int stale = 0;

    *url = NULL;
    if (!node) {
        return NULL;
    }
    e = entry_of_node(cs, node, &stale);
    if (stale && reread(cs, db, p) == APR_SUCCESS) {
        e = entry_of_node(cs, node, NULL);
    }
    /* not registered when last read: ask for this node alone (one indexed row), so that a
     * node registered since, in this process or another, is never taken for the configured
     * cluster's; a cluster new to this process: read everything */
    if (!e && ospab_db_select_value(db, p, "ospab_node_cluster", 1, &node, &cid) == APR_SUCCESS
        && cid && !(e = entry_of_cluster(cs, cid)) && reread(cs, db, p) == APR_SUCCESS) {
        e = entry_of_cluster(cs, cid);
    }
    if (!e || e == &cs->none) {
        return NULL;
    }
    *url = e->url;          /* also for a cluster that cannot be used: not the default */
    if (conf) {
        *conf = e->conf;    /* the entry and its strings live as long as the process */
    }
    return e->client;
}

ospab_pve_t *ospab_clusters_pve(ospab_clusters_t *cs, ospab_db_t *db, apr_pool_t *p,
                                const char *node, const char **url)
{
    return ospab_clusters_pve_conf(cs, db, p, node, url, NULL);
}


void ospab_clusters_refresh(ospab_clusters_t *cs, ospab_db_t *db, apr_pool_t *p)
{
    (void)reread(cs, db, p);
}

void ospab_clusters_import_first(ospab_clusters_t *cs, const char *name, const char *url,
                                 const char *token, const char *ca_pem)
{
    /* before the first request: no other thread yet */
    cs->import_name = name;
    cs->import_url = url;
    cs->import_token = token;
    cs->import_ca = ca_pem;
}

void ospab_clusters_invalidate(ospab_clusters_t *cs)
{
    apr_thread_mutex_lock(cs->lock);
    cs->read_at = 0;
    apr_thread_mutex_unlock(cs->lock);
}
