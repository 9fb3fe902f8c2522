/* ospab core: IP address pools (see ospab_ippool.h, docs/operations.md "IP pools"). */
#include <string.h>
#include <arpa/inet.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "ospab_ippool.h"
#include "ospab_cluster.h"
#include "ospab_fields.h"
#include "ospab_json.h"
#include "ospab_mail.h"
#include "ospab_net.h"
#include "ospab_util.h"

#define IPADDR_BATCH 32         /* rows of ospab_ipaddr_insert_batch */

/* ---- addresses ------------------------------------------------------------------------- */

int ospab_ip_parse(const char *text, ospab_ip_t *ip)
{
    int family;

    memset(ip, 0, sizeof(*ip));
    if (!text || ospab_net_addr_parse(text, &family, ip->b)) {
        return 0;
    }
    ip->family = family == AF_INET ? 4 : 6;
    return 1;
}

const char *ospab_ip_text(apr_pool_t *p, const ospab_ip_t *ip)
{
    char *buf = apr_palloc(p, INET6_ADDRSTRLEN);

    return inet_ntop(ip->family == 4 ? AF_INET : AF_INET6, ip->b, buf, INET6_ADDRSTRLEN)
           ? buf : NULL;
}

static int ip_len(const ospab_ip_t *ip)
{
    return ip->family == 4 ? 4 : 16;
}

apr_uint64_t ospab_ip_span(const ospab_ip_t *first, const ospab_ip_t *last,
                           apr_uint64_t limit)
{
    unsigned char d[16];
    int i, n = ip_len(first), borrow = 0;
    apr_uint64_t span = 0;

    if (first->family != last->family || memcmp(first->b, last->b, (size_t)n) > 0) {
        return 0;
    }
    /* last - first, byte by byte from the end */
    for (i = n - 1; i >= 0; --i) {
        int v = (int)last->b[i] - (int)first->b[i] - borrow;

        borrow = v < 0;
        d[i] = (unsigned char)(v + (borrow ? 256 : 0));
    }
    for (i = 0; i < n; ++i) {
        if (i < n - 8 && d[i]) {
            return limit + 1;       /* more than 2^64 */
        }
        if (i >= n - 8) {
            span = span * 256 + d[i];
        }
    }
    return span >= limit ? limit + 1 : span + 1;
}

void ospab_ip_next(ospab_ip_t *ip)
{
    int i;

    for (i = ip_len(ip) - 1; i >= 0; --i) {
        if (++ip->b[i] != 0) {
            return;
        }
    }
}

int ospab_ip_same_net(const ospab_ip_t *a, const ospab_ip_t *b, int prefix)
{
    ospab_net_t n;

    if (a->family != b->family || prefix < 0 || prefix > ip_len(a) * 8) {
        return 0;
    }
    n.family = a->family == 4 ? AF_INET : AF_INET6;
    memcpy(n.net, a->b, sizeof(n.net));
    n.bits = prefix;
    return ospab_net_contains(&n, n.family, b->b);
}

/* ---- reading a pool ---------------------------------------------------------------------- */

enum { F_NAME, F_NODE, F_BRIDGE, F_FIRST, F_LAST, F_PREFIX, F_GATEWAY, F_DNS, F_COOLDOWN,
       F_CLUSTER_ID, F_N };

static const ospab_field_t pool_fields[F_N] = {
    { "name", OSPAB_FT_TEXT, 1, 64, NULL, OSPAB_FF_REQUIRED, NULL, NULL, NULL },
    { "node", OSPAB_FT_NODE, 0, 0, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
    { "bridge", OSPAB_FT_TEXT, 1, 64, NULL, OSPAB_FF_REQUIRED, NULL, NULL, NULL },
    { "first", OSPAB_FT_IP, 0, 0, NULL, OSPAB_FF_REQUIRED, NULL, NULL, NULL },
    { "last", OSPAB_FT_IP, 0, 0, NULL, OSPAB_FF_REQUIRED, NULL, NULL, NULL },
    { "prefix", OSPAB_FT_INT, 1, 128, NULL, OSPAB_FF_REQUIRED, NULL, "bits", NULL },
    { "gateway", OSPAB_FT_IP, 0, 0, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
    { "dns", OSPAB_FT_TEXT, 1, 255, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
    { "cooldown", OSPAB_FT_INT, 0, 31536000, NULL, 0, "86400", "seconds", NULL },
    { "cluster_id", OSPAB_FT_INT, 1, 2147483647LL, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
};

/* "1.1.1.1, 2606:4700::1111" -> "1.1.1.1 2606:4700::1111" (canonical), NULL if one is not
 * an address. */
static const char *dns_list(apr_pool_t *p, const char *in)
{
    char *copy = apr_pstrdup(p, in), *tok, *last = NULL;
    const char *out = NULL;
    ospab_ip_t ip;

    for (tok = apr_strtok(copy, " ,", &last); tok; tok = apr_strtok(NULL, " ,", &last)) {
        if (!ospab_ip_parse(tok, &ip)) {
            return NULL;
        }
        out = out ? apr_pstrcat(p, out, " ", ospab_ip_text(p, &ip), NULL)
                  : ospab_ip_text(p, &ip);
    }
    return out;
}

json_t *ospab_ippool_read(apr_pool_t *p, json_t *body, ospab_ippool_spec_t *s)
{
    ospab_field_value_t in[F_N];
    json_t *errors = json_object();
    ospab_ip_t first, last, gw;
    apr_uint64_t span;

    memset(s, 0, sizeof(*s));
    if (!json_is_object(body)) {
        json_object_set_new(errors, "body", json_string("must be a JSON object"));
        return errors;
    }
    if (ospab_fields_read(p, pool_fields, F_N, body, 1, in, errors)) {
        return errors;
    }
    s->name = in[F_NAME].value;
    s->node = in[F_NODE].present ? in[F_NODE].value : NULL;
    s->cluster_id = in[F_CLUSTER_ID].present ? in[F_CLUSTER_ID].value : NULL;
    s->bridge = in[F_BRIDGE].value;
    s->prefix = (int)apr_atoi64(in[F_PREFIX].value);
    s->cooldown = (long)apr_atoi64(in[F_COOLDOWN].value);
    if (!ospab_id_chars_ok(s->bridge)) {
        json_object_set_new(errors, "bridge", json_string("letters, digits, '-', '_', '.'"));
    }
    ospab_ip_parse(in[F_FIRST].value, &first);
    ospab_ip_parse(in[F_LAST].value, &last);
    s->first = ospab_ip_text(p, &first);
    s->last = ospab_ip_text(p, &last);
    if (first.family != last.family) {
        json_object_set_new(errors, "last", json_string("must be of the same family as first"));
    }
    else if (!(span = ospab_ip_span(&first, &last, OSPAB_IPPOOL_MAX_SIZE))) {
        json_object_set_new(errors, "last", json_string("must not come before first"));
    }
    else if (span > OSPAB_IPPOOL_MAX_SIZE) {
        json_object_set_new(errors, "last", json_string(apr_psprintf(p, "a pool holds at most "
                            "%d addresses", OSPAB_IPPOOL_MAX_SIZE)));
    }
    else if (s->prefix > ip_len(&first) * 8) {
        json_object_set_new(errors, "prefix", json_string(first.family == 4
                            ? "must be 1 to 32 for IPv4" : "must be 1 to 128"));
    }
    else if (!ospab_ip_same_net(&first, &last, s->prefix)) {
        json_object_set_new(errors, "last", json_string(apr_psprintf(p, "must be in the same "
                            "/%d network as first", s->prefix)));
    }
    if (in[F_GATEWAY].present && in[F_GATEWAY].value) {
        ospab_ip_parse(in[F_GATEWAY].value, &gw);
        s->gateway = ospab_ip_text(p, &gw);
        if (gw.family != first.family || !ospab_ip_same_net(&gw, &first, s->prefix)) {
            json_object_set_new(errors, "gateway", json_string("must be in the pool's network"));
        }
    }
    if (in[F_DNS].present && in[F_DNS].value && !(s->dns = dns_list(p, in[F_DNS].value))) {
        json_object_set_new(errors, "dns", json_string("must be IP addresses separated by "
                                                       "spaces or commas"));
    }
    if (json_object_size(errors)) {
        return errors;
    }
    json_decref(errors);
    return NULL;
}

/* ---- making and listing pools ------------------------------------------------------------ */

/* The pool's addresses, but the gateway's, in order. */
static apr_status_t insert_addresses(ospab_db_t *db, apr_pool_t *p, const char *pool_id,
                                     const ospab_ippool_spec_t *s, int *count)
{
    ospab_ip_t ip, last, gw;
    const char *args[IPADDR_BATCH * 3];
    apr_pool_t *sub;
    apr_status_t rv = APR_SUCCESS;
    int n = 0, seq = 0, done = 0;

    ospab_ip_parse(s->first, &ip);
    ospab_ip_parse(s->last, &last);
    if (!s->gateway || !ospab_ip_parse(s->gateway, &gw)) {
        memset(&gw, 0, sizeof(gw));
    }
    apr_pool_create(&sub, p);
    while (!done && rv == APR_SUCCESS) {
        done = !memcmp(ip.b, last.b, sizeof(ip.b));
        if (gw.family != ip.family || memcmp(gw.b, ip.b, sizeof(ip.b))) {
            args[n * 3] = pool_id;
            args[n * 3 + 1] = ospab_ip_text(sub, &ip);
            args[n * 3 + 2] = apr_itoa(sub, seq++);
            if (++n == IPADDR_BATCH) {
                rv = ospab_db_exec(db, sub, "ospab_ipaddr_insert_batch", n * 3, args, NULL);
                n = 0;
                apr_pool_clear(sub);
            }
        }
        ospab_ip_next(&ip);
    }
    /* what did not fill a batch: one row at a time */
    for (done = 0; rv == APR_SUCCESS && done < n; ++done) {
        rv = ospab_db_exec(db, sub, "ospab_ipaddr_insert", 3, &args[done * 3], NULL);
    }
    apr_pool_destroy(sub);
    *count = seq;
    return rv;
}

void ospab_ippool_create(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                         const ospab_ippool_spec_t *s, ospab_result_t *res)
{
    const char *now = ospab_time_db(p, a->now), *id, *args[13];
    ospab_ip_t first;
    int count = 0;
    json_t *pool;

    memset(res, 0, sizeof(*res));
    ospab_ip_parse(s->first, &first);
    args[0] = s->name;
    args[1] = first.family == 4 ? "4" : "6";
    args[2] = s->node;
    args[3] = s->bridge;
    args[4] = s->first;
    args[5] = s->last;
    args[6] = apr_itoa(p, s->prefix);
    args[7] = s->gateway;
    args[8] = s->dns;
    args[9] = apr_ltoa(p, s->cooldown);
    args[10] = args[11] = now;
    args[12] = s->cluster_id;
    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!ospab_cluster_known(db, p, "pool", s->cluster_id, res)) {
        return;
    }
    if (ospab_db_exec(db, p, "ospab_ippool_insert", 13, args, NULL) != APR_SUCCESS) {
        if (ospab_db_is_constraint(db)) {
            ospab_db_end(db, 0);
            ospab_result_error(p, res, 409, apr_psprintf(p, "an IP pool named '%s' exists "
                               "already", s->name), NULL);
            return;
        }
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (ospab_db_last_id(db, p, &id) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (insert_addresses(db, p, id, s, &count) != APR_SUCCESS) {
        if (ospab_db_is_constraint(db)) {
            ospab_db_end(db, 0);
            ospab_result_error(p, res, 409, "the range overlaps another IP pool: an address "
                               "belongs to one pool only", NULL);
            return;
        }
        ospab_result_db_failed(db, p, res);
        return;
    }
    pool = json_pack("{s:s, s:I, s:o, s:s?, s:s, s:s, s:s, s:i, s:s?, s:s?, s:I, s:i}",
                     "name", s->name, "family", (json_int_t)first.family,
                     "cluster_id", ospab_json_int_or_null(s->cluster_id), "node", s->node,
                     "bridge", s->bridge, "first", s->first, "last", s->last,
                     "prefix", s->prefix, "gateway", s->gateway, "dns", s->dns,
                     "cooldown", (json_int_t)s->cooldown, "size", count);
    if (!pool || ospab_audit(db, p, a, "ippool.create", "ip_pool", id, json_deep_copy(pool))
                 != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        json_decref(pool);
        ospab_result_db_failed(db, p, res);
        return;
    }
    json_object_set_new(pool, "id", json_integer(apr_atoi64(id)));
    res->status = 201;
    res->body = ospab_json_own(p, json_pack("{s:s, s:o}", "status", "success", "pool", pool));
}

void ospab_ippool_add(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a, json_t *body,
                      ospab_result_t *res)
{
    ospab_ippool_spec_t s;
    json_t *errors = ospab_ippool_read(p, body, &s);

    memset(res, 0, sizeof(*res));
    if (errors) {
        ospab_result_error(p, res, 400, ospab_fields_summary(p, "pool", errors), errors);
        return;
    }
    ospab_ippool_create(db, p, a, &s, res);
}

/* ospab_ippool_list's rows */
typedef struct {
    const char *id, *name, *family, *node, *bridge, *first, *last, *prefix, *gateway, *dns;
    const char *cooldown, *enabled, *created_at, *updated_at, *size, *used, *cluster_id;
} pool_row_t;

static const apr_size_t pool_cols[] = {
    APR_OFFSETOF(pool_row_t, id), APR_OFFSETOF(pool_row_t, name),
    APR_OFFSETOF(pool_row_t, family), APR_OFFSETOF(pool_row_t, node),
    APR_OFFSETOF(pool_row_t, bridge), APR_OFFSETOF(pool_row_t, first),
    APR_OFFSETOF(pool_row_t, last), APR_OFFSETOF(pool_row_t, prefix),
    APR_OFFSETOF(pool_row_t, gateway), APR_OFFSETOF(pool_row_t, dns),
    APR_OFFSETOF(pool_row_t, cooldown), APR_OFFSETOF(pool_row_t, enabled),
    APR_OFFSETOF(pool_row_t, created_at), APR_OFFSETOF(pool_row_t, updated_at),
    APR_OFFSETOF(pool_row_t, size), APR_OFFSETOF(pool_row_t, used),
    APR_OFFSETOF(pool_row_t, cluster_id),
};
static const ospab_row_shape_t pool_row = OSPAB_ROW_SHAPE(pool_cols, pool_row_t,
                                                          OSPAB_ROW_NO_RAW);

/* The moment before which a released address of a pool with cooldown seconds has rested. */
static const char *rested_since(apr_pool_t *p, apr_time_t now, const char *cooldown)
{
    return ospab_time_db(p, now - apr_time_from_sec(apr_atoi64(cooldown)));
}

/* Every pool (id NULL) or the one with its usage, as the admin API shows them; res the
 * answer: {"pools": [...]} or {"pool": {...}} (404 when there is no such pool). */
static void pools_answer(ospab_db_t *db, apr_pool_t *p, apr_time_t now, const char *id,
                         ospab_result_t *res)
{
    apr_array_header_t *rows;
    json_t *list = json_array();
    int i;

    memset(res, 0, sizeof(*res));
    if (ospab_db_select(db, p, id ? "ospab_ippool_one" : "ospab_ippool_list", id ? 1 : 0, &id,
                        &rows, NULL) != APR_SUCCESS) {
        json_decref(list);
        ospab_result_db_failed(db, p, res);
        return;
    }
    for (i = 0; i < rows->nelts; ++i) {
        pool_row_t r;
        const char *args[2], *cooling = NULL;
        json_t *o;
        apr_int64_t size, used, cool;

        ospab_row_fill(&pool_row, APR_ARRAY_IDX(rows, i, ospab_row_t), &r);
        args[0] = r.id;
        args[1] = rested_since(p, now, r.cooldown);
        if (ospab_db_select_value(db, p, "ospab_ippool_cooling", 2, args, &cooling)
            != APR_SUCCESS) {
            json_decref(list);
            ospab_result_db_failed(db, p, res);
            return;
        }
        size = apr_atoi64(r.size);
        used = apr_atoi64(r.used);
        cool = cooling ? apr_atoi64(cooling) : 0;
        o = json_pack(
            "{s:I, s:s, s:I, s:o, s:s, s:s, s:s, s:I, s:o, s:o, s:I, s:b, s:s, s:s, s:I, s:I, "
            "s:I, s:I}",
            "id", (json_int_t)apr_atoi64(r.id), "name", r.name,
            "family", (json_int_t)apr_atoi64(r.family), "node", ospab_json_str_or_null(r.node),
            "bridge", r.bridge, "first", r.first, "last", r.last,
            "prefix", (json_int_t)apr_atoi64(r.prefix),
            "gateway", ospab_json_str_or_null(r.gateway), "dns", ospab_json_str_or_null(r.dns),
            "cooldown", (json_int_t)apr_atoi64(r.cooldown), "enabled", !strcmp(r.enabled, "1"),
            "created_at", ospab_time_api(p, r.created_at),
            "updated_at", ospab_time_api(p, r.updated_at),
            "size", (json_int_t)size, "used", (json_int_t)used, "cooling", (json_int_t)cool,
            "free", (json_int_t)(size - used - cool));
        json_object_set_new(o, "cluster_id", ospab_json_int_or_null(r.cluster_id));
        json_array_append_new(list, o);
    }
    ospab_result_list_or_one(p, res, list, id, "pool", "pools", "IP pool not found");
}

void ospab_ippool_list(ospab_db_t *db, apr_pool_t *p, apr_time_t now, ospab_result_t *res)
{
    pools_answer(db, p, now, NULL, res);
}

/* ---- changing and removing pools ------------------------------------------------------------ */

enum { U_NAME, U_GATEWAY, U_DNS, U_COOLDOWN, U_ENABLED, U_N };

static const ospab_field_t update_fields[U_N] = {
    { "name", OSPAB_FT_TEXT, 1, 64, NULL, 0, NULL, NULL, NULL },
    { "gateway", OSPAB_FT_IP, 0, 0, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
    { "dns", OSPAB_FT_TEXT, 1, 255, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
    { "cooldown", OSPAB_FT_INT, 0, 31536000, NULL, 0, NULL, "seconds", NULL },
    { "enabled", OSPAB_FT_BOOL, 0, 0, NULL, 0, NULL, NULL, NULL },
};

/* ospab_ippool_row_get: the columns an update merges into */
typedef struct {
    const char *id, *name, *first, *prefix, *gateway, *dns, *cooldown, *enabled;
} pool_edit_t;

static const apr_size_t edit_cols[] = {
    APR_OFFSETOF(pool_edit_t, id), APR_OFFSETOF(pool_edit_t, name),
    APR_OFFSETOF(pool_edit_t, first), APR_OFFSETOF(pool_edit_t, prefix),
    APR_OFFSETOF(pool_edit_t, gateway), APR_OFFSETOF(pool_edit_t, dns),
    APR_OFFSETOF(pool_edit_t, cooldown), APR_OFFSETOF(pool_edit_t, enabled),
};
static const ospab_row_shape_t edit_row = OSPAB_ROW_SHAPE(edit_cols, pool_edit_t,
                                                          OSPAB_ROW_NO_RAW);

void ospab_ippool_update(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                         const char *id, json_t *body, ospab_result_t *res)
{
    ospab_field_value_t in[U_N];
    json_t *errors = json_object(), *changes;
    const char *args[7];
    ospab_row_t row = NULL;
    pool_edit_t old;
    ospab_ip_t first, gw;
    int i, n = 0;

    memset(res, 0, sizeof(*res));
    if (!json_is_object(body)) {
        json_decref(errors);
        ospab_result_error(p, res, 400, "request body must be a JSON object", NULL);
        return;
    }
    if (ospab_fields_read(p, update_fields, U_N, body, 0, in, errors)) {
        ospab_result_error(p, res, 400, ospab_fields_summary(p, "pool", errors), errors);
        return;
    }
    if (ospab_db_begin(db, p) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_ippool_lock", 1, &id, &n) != APR_SUCCESS
        || ospab_db_select_one(db, p, "ospab_ippool_row_get", 1, &id, &row) != APR_SUCCESS) {
        json_decref(errors);
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!row) {
        json_decref(errors);
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 404, "IP pool not found", NULL);
        return;
    }
    ospab_row_fill(&edit_row, row, &old);
    ospab_ip_parse(old.first, &first);
    if (in[U_GATEWAY].present && in[U_GATEWAY].value
        && (!ospab_ip_parse(in[U_GATEWAY].value, &gw) || gw.family != first.family
            || !ospab_ip_same_net(&gw, &first, (int)apr_atoi64(old.prefix)))) {
        json_object_set_new(errors, "gateway", json_string("must be in the pool's network"));
    }
    if (in[U_DNS].present && in[U_DNS].value && !(in[U_DNS].value = dns_list(p, in[U_DNS].value))) {
        json_object_set_new(errors, "dns", json_string("must be IP addresses separated by "
                                                       "spaces or commas"));
    }
    if (json_object_size(errors)) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 400, ospab_fields_summary(p, "pool", errors), errors);
        return;
    }
    json_decref(errors);
    if (in[U_GATEWAY].present && in[U_GATEWAY].value) {
        in[U_GATEWAY].value = ospab_ip_text(p, &gw);
    }
    changes = json_object();
    {
        const char *was[U_N] = { old.name, old.gateway, old.dns, old.cooldown, old.enabled };

        for (i = 0; i < U_N; ++i) {
            args[i] = in[i].present ? in[i].value : was[i];
            if (in[i].present && (!in[i].value != !was[i]
                                  || (in[i].value && strcmp(in[i].value, was[i])))) {
                json_object_set_new(changes, update_fields[i].name, json_pack("{s:o, s:o}",
                                    "from", ospab_json_str_or_null(was[i]),
                                    "to", ospab_json_str_or_null(in[i].value)));
            }
        }
    }
    args[5] = ospab_time_db(p, a->now);
    args[6] = id;
    if (ospab_db_exec(db, p, "ospab_ippool_update", 7, args, NULL) != APR_SUCCESS) {
        json_decref(changes);
        if (ospab_db_is_constraint(db)) {
            ospab_db_end(db, 0);
            ospab_result_error(p, res, 409, apr_psprintf(p, "an IP pool named '%s' exists "
                               "already", args[0]), NULL);
            return;
        }
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (ospab_audit(db, p, a, "ippool.update", "ip_pool", id, changes) != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    pools_answer(db, p, a->now, id, res);
}

void ospab_ippool_delete(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                         const char *id, ospab_result_t *res)
{
    const char *held = NULL;
    ospab_row_t row = NULL;
    pool_edit_t old;

    memset(res, 0, sizeof(*res));
    if (ospab_db_begin(db, p) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_ippool_lock", 1, &id, NULL) != APR_SUCCESS
        || ospab_db_select_one(db, p, "ospab_ippool_row_get", 1, &id, &row) != APR_SUCCESS
        || (row && ospab_db_select_value(db, p, "ospab_ippool_held", 1, &id, &held)
                   != APR_SUCCESS)) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!row) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 404, "IP pool not found", NULL);
        return;
    }
    ospab_row_fill(&edit_row, row, &old);
    if (held && apr_atoi64(held) > 0) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 409, apr_psprintf(p, "%s address%s of pool '%s' %s held by "
                           "servers: disable the pool instead, or delete them first", held,
                           apr_atoi64(held) == 1 ? "" : "es", old.name,
                           apr_atoi64(held) == 1 ? "is" : "are"), NULL);
        return;
    }
    if (ospab_db_exec(db, p, "ospab_ipaddr_delete_pool", 1, &id, NULL) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_ippool_delete", 1, &id, NULL) != APR_SUCCESS
        || ospab_audit(db, p, a, "ippool.delete", "ip_pool", id,
                       json_pack("{s:s}", "name", old.name)) != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    res->status = 200;
    res->body = ospab_json_own(p, json_pack("{s:s, s:s}", "status", "success",
                                            "message", "IP pool deleted"));
}

/* ---- a new server's addresses ------------------------------------------------------------- */

apr_status_t ospab_ippool_pools(ospab_db_t *db, apr_pool_t *p, const char *node,
                                const char *bridge, ospab_ippool_set_t *set)
{
    const char *args[3] = { bridge, node, node };
    apr_array_header_t *rows;
    apr_status_t rv;
    int i;

    set->ids = apr_array_make(p, 2, sizeof(const char *));
    if (!bridge || !node) {
        return APR_SUCCESS;
    }
    if ((rv = ospab_db_select(db, p, "ospab_ippool_for", 3, args, &rows, NULL)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < rows->nelts; ++i) {
        APR_ARRAY_PUSH(set->ids, const char *) = APR_ARRAY_IDX(rows, i, ospab_row_t)[0];
    }
    return APR_SUCCESS;
}

static int id_cmp(const void *a, const void *b)
{
    apr_int64_t x = apr_atoi64(*(const char *const *)a), y = apr_atoi64(*(const char *const *)b);

    return x < y ? -1 : x > y;
}

apr_status_t ospab_ippool_lock(ospab_db_t *db, apr_pool_t *p, const ospab_ippool_set_t *set)
{
    apr_array_header_t *order = apr_array_copy(p, set->ids);
    apr_status_t rv = APR_SUCCESS;
    int i;

    /* always in id order: two creates that need the same pools never wait for each other
     * the wrong way round */
    qsort(order->elts, (size_t)order->nelts, sizeof(const char *), id_cmp);
    for (i = 0; rv == APR_SUCCESS && i < order->nelts; ++i) {
        rv = ospab_db_exec(db, p, "ospab_ippool_lock", 1, &APR_ARRAY_IDX(order, i, const char *),
                           NULL);
    }
    return rv;
}

/* ospab_ippool_get */
typedef struct {
    const char *id, *name, *family, *prefix, *gateway, *dns, *cooldown;
} pool_conf_t;

static const apr_size_t conf_cols[] = {
    APR_OFFSETOF(pool_conf_t, id), APR_OFFSETOF(pool_conf_t, name),
    APR_OFFSETOF(pool_conf_t, family), APR_OFFSETOF(pool_conf_t, prefix),
    APR_OFFSETOF(pool_conf_t, gateway), APR_OFFSETOF(pool_conf_t, dns),
    APR_OFFSETOF(pool_conf_t, cooldown),
};
static const ospab_row_shape_t conf_row = OSPAB_ROW_SHAPE(conf_cols, pool_conf_t,
                                                          OSPAB_ROW_NO_RAW);

int ospab_ippool_take(ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                      const ospab_ippool_set_t *set, const char *vps_id, ospab_ip_lease_t *l)
{
    const char *nowt = ospab_time_db(p, now);
    const char *exhausted[2] = { NULL, NULL };
    int i, got[2] = { 0, 0 };

    memset(l, 0, sizeof(*l));
    for (i = 0; i < set->ids->nelts; ++i) {
        const char *pid = APR_ARRAY_IDX(set->ids, i, const char *);
        ospab_row_t row = NULL, free_row = NULL;
        pool_conf_t c;
        const char *args[3];
        int fam, n = 0;

        if (ospab_db_select_one(db, p, "ospab_ippool_get", 1, &pid, &row) != APR_SUCCESS) {
            return -1;
        }
        if (!row) {
            continue;
        }
        ospab_row_fill(&conf_row, row, &c);
        fam = !strcmp(c.family, "6");
        if (got[fam]) {
            continue;
        }
        args[0] = pid;
        args[1] = rested_since(p, now, c.cooldown);
        if (ospab_db_select_one(db, p, "ospab_ipaddr_free", 2, args, &free_row) != APR_SUCCESS) {
            return -1;
        }
        if (!free_row) {
            if (!exhausted[fam]) {
                exhausted[fam] = c.name;
            }
            continue;
        }
        args[0] = vps_id;
        args[1] = nowt;
        args[2] = free_row[0];
        /* the pool is locked: the address read is free, and nobody takes it meanwhile */
        if (ospab_db_exec(db, p, "ospab_ipaddr_take", 3, args, &n) != APR_SUCCESS || n != 1) {
            return -1;
        }
        got[fam] = 1;
        if (fam) {
            l->ip6 = apr_psprintf(p, "%s/%s", free_row[1], c.prefix);
            l->gw6 = c.gateway;
        }
        else {
            l->ip4 = apr_psprintf(p, "%s/%s", free_row[1], c.prefix);
            l->gw4 = c.gateway;
        }
        if (c.dns) {
            l->dns = l->dns ? apr_pstrcat(p, l->dns, " ", c.dns, NULL) : c.dns;
        }
    }
    /* a family some pool serves but none had an address left for */
    for (i = 0; i < 2; ++i) {
        if (exhausted[i] && !got[i]) {
            l->exhausted = exhausted[i];
            return 1;
        }
    }
    return 0;
}

const char *ospab_ippool_ipconfig(apr_pool_t *p, const ospab_ip_lease_t *l)
{
    const char *s = apr_pstrcat(p, "ip=", l->ip4 ? l->ip4 : "dhcp", NULL);

    if (l->ip4 && l->gw4) {
        s = apr_pstrcat(p, s, ",gw=", l->gw4, NULL);
    }
    if (l->ip6) {
        s = apr_pstrcat(p, s, ",ip6=", l->ip6, NULL);
        if (l->gw6) {
            s = apr_pstrcat(p, s, ",gw6=", l->gw6, NULL);
        }
    }
    return s;
}

const char *ospab_ippool_net0(apr_pool_t *p, const char *bridge, const ospab_ip_lease_t *l)
{
    return apr_pstrcat(p, "name=eth0,bridge=", bridge, ",", ospab_ippool_ipconfig(p, l), NULL);
}

apr_status_t ospab_ippool_release(ospab_db_t *db, apr_pool_t *p, const char *vps_id,
                                  apr_time_t now, int forget)
{
    const char *args[2] = { ospab_time_db(p, now), vps_id };

    return forget ? ospab_db_exec(db, p, "ospab_ipaddr_forget", 1, &vps_id, NULL)
                  : ospab_db_exec(db, p, "ospab_ipaddr_release", 2, args, NULL);
}

void ospab_ippool_exhausted(ospab_db_t *db, apr_pool_t *p, apr_time_t now, const char *pool)
{
    apr_array_header_t *rows;
    apr_time_exp_t tm;
    const char *why, *key;
    int i;

    if (ospab_db_select(db, p, "ospab_user_admins", 0, NULL, &rows, NULL) != APR_SUCCESS) {
        return;
    }
    apr_time_exp_gmt(&tm, now);
    for (i = 0; i < rows->nelts; ++i) {
        const char *uid = APR_ARRAY_IDX(rows, i, ospab_row_t)[0];
        json_t *vars = json_pack("{s:s, s:s}", "subject",
                                 apr_psprintf(p, "IP pool '%s' has no free address", pool),
                                 "text", apr_psprintf(p, "A customer could not get a new server: "
                                 "IP pool '%s' has no free address left. Add addresses (a new "
                                 "pool on the same bridge) or release some.\n\nospab panel", pool));

        /* once per pool, admin and hour */
        key = apr_psprintf(p, "ippool-exhausted:%s:%s:%04d%02d%02d%02d", pool, uid,
                           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour);
        if (vars) {
            ospab_mail_queue_user(db, p, now, uid, "raw", vars, apr_pstrndup(p, key,
                                  OSPAB_MAIL_KEY_MAX), &why);
        }
        json_decref(vars);
    }
}
