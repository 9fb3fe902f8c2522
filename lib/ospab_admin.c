/* ospab core: the admin API (see ospab_admin.h). */
#include <string.h>
#include <ctype.h>
#include <stdlib.h>

#include <apr_strings.h>
#include <apr_base64.h>

#include "ospab_admin.h"
#include "ospab_cluster.h"
#include "ospab_sync.h"
#include "ospab_resource.h"
#include "ospab_customer.h"
#include "ospab_events.h"
#include "ospab_fields.h"
#include "ospab_json.h"
#include "ospab_session.h"
#include "ospab_user.h"
#include "ospab_util.h"

/* every list statement of ospab_sql_admin.c reads at most this many rows */
#define ROWS_MAX (OSPAB_PAGE_MAX + 1)

/* ---- rows as JSON ------------------------------------------------------------------------- */

/* A column of a row as the API shows it: 'i' integer, 's' text, 't' time, 'b' boolean
 * ("1"/"0"), 'r' number, 'j' stored JSON text. */
typedef struct {
    const char *name;
    char type;
} col_t;

static json_t *value_json(apr_pool_t *p, const char *v, char type)
{
    json_t *j;

    if (!v) {
        return json_null();
    }
    switch (type) {
    case 'i':
        return ospab_json_int_or_null(v);
    case 't':
        return json_string(ospab_time_api(p, v));
    case 'b':
        return json_boolean(!strcmp(v, "1"));
    case 'r':
        return json_real(strtod(v, NULL));
    case 'j':
        /* written by ospab_audit as JSON; text that is not (a row written by hand) stays
         * text */
        j = json_loads(v, JSON_DECODE_ANY, NULL);
        return j ? j : json_string(v);
    default:
        return json_string(v);
    }
}

static json_t *row_json(apr_pool_t *p, ospab_row_t row, const col_t *cols)
{
    json_t *o = json_object();
    int i;

    for (i = 0; cols[i].name; ++i) {
        json_object_set_new(o, cols[i].name, value_json(p, row[i], cols[i].type));
    }
    return o;
}

static void success(apr_pool_t *p, ospab_result_t *res, int status, const char *key,
                    json_t *value)
{
    json_t *o = json_object();

    json_object_set_new(o, "status", json_string("success"));
    json_object_set_new(o, key, value);
    res->status = status;
    res->body = ospab_json_own(p, o);
}

/* ---- query strings ------------------------------------------------------------------------ */

/* vals[i]: the value of known[i], NULL when absent or empty. 1: fine; 0: res is the 400. */
static int query_read(apr_pool_t *p, apr_table_t *query, const char *const *known,
                      const char **vals, ospab_result_t *res)
{
    const apr_array_header_t *elts;
    const apr_table_entry_t *e;
    json_t *errors = json_object();
    int i, k;

    for (k = 0; known[k]; ++k) {
        vals[k] = NULL;
    }
    elts = query ? apr_table_elts(query) : NULL;
    for (i = 0; elts && i < elts->nelts; ++i) {
        e = &((const apr_table_entry_t *)elts->elts)[i];
        for (k = 0; known[k] && strcmp(known[k], e->key); ++k) {
        }
        if (!known[k]) {
            json_object_set_new(errors, ospab_text_ok(e->key, 1, 64) ? e->key : "(unprintable)",
                                json_string("unknown query parameter"));
        }
        else if (vals[k]) {
            json_object_set_new(errors, e->key, json_string("given more than once"));
        }
        else if (!ospab_text_ok(e->val, 0, 256)) {
            json_object_set_new(errors, e->key, json_string("must be at most 256 printable "
                                                            "characters"));
        }
        else if (*e->val) {
            vals[k] = e->val;
        }
    }
    if (json_object_size(errors)) {
        ospab_result_error(p, res, 400, ospab_fields_summary(p, "query", errors), errors);
        return 0;
    }
    json_decref(errors);
    return 1;
}

static void bad_param(apr_pool_t *p, ospab_result_t *res, const char *name, const char *msg)
{
    json_t *errors = json_object();

    json_object_set_new(errors, name, json_string(msg));
    ospab_result_error(p, res, 400, ospab_fields_summary(p, "query", errors), errors);
}

/* limit (NULL: the default) into *limit. 1: fine; 0: res is the 400. */
static int read_limit(apr_pool_t *p, const char *v, int *limit, ospab_result_t *res)
{
    apr_int64_t n;

    *limit = OSPAB_PAGE_DEFAULT;
    if (!v) {
        return 1;
    }
    if (ospab_parse_id(v, &n) || n < 1 || n > OSPAB_PAGE_MAX) {
        bad_param(p, res, "limit", apr_psprintf(p, "must be a whole number from 1 to %d",
                                                OSPAB_PAGE_MAX));
        return 0;
    }
    *limit = (int)n;
    return 1;
}

/* An id parameter (after, server): NULL stays NULL (after: *out "0"). */
static int read_id(apr_pool_t *p, const char *name, const char *v, const char *none,
                   const char **out, ospab_result_t *res)
{
    apr_int64_t n;

    *out = none;
    if (!v) {
        return 1;
    }
    if (ospab_parse_id(v, &n) || n < 1) {
        bad_param(p, res, name, "must be a positive whole number (an id)");
        return 0;
    }
    *out = apr_psprintf(p, "%" APR_INT64_T_FMT, n);
    return 1;
}

static int read_choice(apr_pool_t *p, const char *name, const char *v,
                       const char *const *choices, ospab_result_t *res)
{
    const char *const *c;
    const char *all = NULL;

    if (!v) {
        return 1;
    }
    for (c = choices; *c; ++c) {
        if (!strcmp(*c, v)) {
            return 1;
        }
        all = all ? apr_pstrcat(p, all, ", ", *c, NULL) : *c;
    }
    bad_param(p, res, name, apr_psprintf(p, "must be one of %s", all));
    return 0;
}

/* A page of rows (at most limit of them) as an array; *last: the last row shown when another
 * page follows, else NULL. */
static json_t *page_json(apr_pool_t *p, apr_array_header_t *rows, int limit, const col_t *cols,
                         ospab_row_t *last)
{
    json_t *list = json_array();
    int i;

    *last = NULL;
    for (i = 0; i < rows->nelts && i < limit; ++i) {
        json_array_append_new(list, row_json(p, APR_ARRAY_IDX(rows, i, ospab_row_t), cols));
    }
    if (rows->nelts > limit) {
        *last = APR_ARRAY_IDX(rows, limit - 1, ospab_row_t);
    }
    return list;
}

/* {"status":"success", key: the page, "next": the last row's id or null} */
static void id_page(apr_pool_t *p, ospab_result_t *res, const char *key,
                    apr_array_header_t *rows, int limit, const col_t *cols)
{
    ospab_row_t last;
    json_t *list = page_json(p, rows, limit, cols, &last);

    success(p, res, 200, key, list);
    json_object_set_new(res->body, "next", last ? ospab_json_int_or_null(last[0])
                                                : json_null());
}

/* ---- servers -------------------------------------------------------------------------------- */

void ospab_admin_servers(ospab_db_t *db, apr_pool_t *p, apr_table_t *query,
                         ospab_result_t *res)
{
    static const char *const known[] = { "user", "node", "status", "limit", "after", NULL };
    static const char *const statuses[] = { "creating", "running", "stopped", "suspended",
                                            "deleting", "error", "missing", NULL };
    const char *v[5], *args[7], *user, *after;
    apr_array_header_t *rows;
    json_t *list;
    int limit, i;

    memset(res, 0, sizeof(*res));
    if (!query_read(p, query, known, v, res) || !read_id(p, "user", v[0], NULL, &user, res)
        || !read_choice(p, "status", v[2], statuses, res) || !read_limit(p, v[3], &limit, res)
        || !read_id(p, "after", v[4], "0", &after, res)) {
        return;
    }
    args[0] = args[1] = user;
    args[2] = args[3] = v[1];
    args[4] = args[5] = v[2];
    args[6] = after;
    if (ospab_db_select(db, p, "ospab_admin_servers", 7, args, &rows, NULL) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    /* each the sync API's record (its columns, VPS_COLS's order) */
    list = json_array();
    for (i = 0; i < rows->nelts && i < limit; ++i) {
        json_array_append_new(list, ospab_vps_json(p, APR_ARRAY_IDX(rows, i, ospab_row_t)));
    }
    success(p, res, 200, "servers", list);
    json_object_set_new(res->body, "next", rows->nelts > limit
                        ? ospab_json_int_or_null(APR_ARRAY_IDX(rows, limit - 1, ospab_row_t)[0])
                        : json_null());
}

void ospab_admin_server_owner(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                              const struct ospab_server_conf_t *c, const char *id,
                              json_t *body, ospab_result_t *res)
{
    json_t *uid = json_is_object(body) ? json_object_get(body, "userId") : NULL, *req, *rec;
    const char *key;
    json_t *val;

    memset(res, 0, sizeof(*res));
    json_object_foreach(json_is_object(body) ? body : NULL, key, val) {
        if (strcmp(key, "userId")) {
            json_t *f = json_pack("{s:s}", ospab_text_ok(key, 1, 64) ? key : "(unprintable)",
                                  "unknown field");

            ospab_result_error(p, res, 400, ospab_fields_summary(p, "request", f), f);
            return;
        }
    }
    if (!json_is_integer(uid) || json_integer_value(uid) < 1) {
        json_t *f = json_pack("{s:s}", "userId", "must be the id of a user");

        ospab_result_error(p, res, 400, ospab_fields_summary(p, "request", f), f);
        return;
    }
    /* the billing site's update of the owner: one place that moves a server */
    req = ospab_json_own(p, json_pack("{s:s, s:{s:I, s:O}}", "action", "update", "vps",
                                      "id", (json_int_t)apr_atoi64(id), "user_id", uid));
    ospab_sync_vps(db, p, a, req, c, NULL, res);
    if (res->status == 200 && (rec = json_object_get(res->body, "vps")) != NULL) {
        res->body = ospab_json_own(p, json_pack("{s:s, s:O}", "status", "success",
                                                "server", rec));
    }
    else if (res->status == 422
             && json_object_get(json_object_get(res->body, "fields"), "user_id")) {
        /* the sync API names its own field (its reference check); the route's is userId */
        json_t *f = json_pack("{s:s}", "userId", "no such user");

        ospab_result_error(p, res, 422, "invalid request: userId: no such user", f);
    }
}

/* ---- pure helpers ------------------------------------------------------------------------- */

const char *ospab_admin_cursor_encode(apr_pool_t *p, const char *created_at, const char *id)
{
    const char *plain = apr_pstrcat(p, created_at, "|", id, NULL);
    int len = (int)strlen(plain);
    char *out = apr_palloc(p, (apr_size_t)apr_base64_encode_len(len));
    char *c;

    apr_base64_encode(out, plain, len);
    /* base64url without padding: the token goes into a query string as it is */
    for (c = out; *c; ++c) {
        if (*c == '+') {
            *c = '-';
        }
        else if (*c == '/') {
            *c = '_';
        }
        else if (*c == '=') {
            *c = '\0';
            break;
        }
    }
    return out;
}

/* "YYYY-MM-DD HH:MM:SS.mmm" exactly, as ospab_time_db writes */
static int db_time_ok(const char *s)
{
    static const char shape[] = "dddd-dd-dd dd:dd:dd.ddd";
    apr_size_t i;

    if (strlen(s) != sizeof(shape) - 1) {
        return 0;
    }
    for (i = 0; shape[i]; ++i) {
        if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i]) {
            return 0;
        }
    }
    return 1;
}

int ospab_admin_cursor_decode(apr_pool_t *p, const char *token, const char **created_at,
                              const char **id)
{
    apr_size_t n = token ? strlen(token) : 0, i;
    char *b64, *plain, *bar;
    apr_int64_t v;
    int len;

    if (n < 4 || n > 128 || n % 4 == 1) {
        return -1;
    }
    b64 = apr_palloc(p, n + 3);
    for (i = 0; i < n; ++i) {
        char c = token[i];

        if (c == '-') {
            c = '+';
        }
        else if (c == '_') {
            c = '/';
        }
        else if (!isalnum((unsigned char)c)) {
            return -1;      /* apr_base64_decode would skip what is not base64 */
        }
        b64[i] = c;
    }
    while (i % 4) {
        b64[i++] = '=';
    }
    b64[i] = '\0';
    plain = apr_palloc(p, (apr_size_t)apr_base64_decode_len(b64) + 1);
    len = apr_base64_decode(plain, b64);
    if (len <= 0) {
        return -1;
    }
    plain[len] = '\0';
    if (strlen(plain) != (apr_size_t)len || !(bar = strchr(plain, '|'))) {
        return -1;
    }
    *bar++ = '\0';
    if (!db_time_ok(plain) || ospab_parse_id(bar, &v) || v < 1
        || strcmp(ospab_admin_cursor_encode(p, plain, bar), token)) {
        return -1;      /* one token per cursor: no other spelling of the same bytes */
    }
    *created_at = plain;
    *id = bar;
    return 0;
}

/* n digits at s into *v */
static int digits(const char *s, int n, int *v)
{
    int i;

    *v = 0;
    for (i = 0; i < n; ++i) {
        if (!isdigit((unsigned char)s[i])) {
            return 0;
        }
        *v = *v * 10 + (s[i] - '0');
    }
    return 1;
}

const char *ospab_admin_time_param(apr_pool_t *p, const char *s)
{
    static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
    apr_size_t n = s ? strlen(s) : 0;

    if (n < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-'
        || !digits(s + 8, 2, &d)) {
        return NULL;
    }
    if (n > 10) {
        const char *t = s + 10;

        if ((*t != 'T' && *t != ' ') || !digits(t + 1, 2, &h) || t[3] != ':'
            || !digits(t + 4, 2, &mi) || t[6] != ':' || !digits(t + 7, 2, &sec)) {
            return NULL;
        }
        t += 9;
        if (*t == '.') {
            int k;

            for (k = 1; isdigit((unsigned char)t[k]); ++k) {
                if (k <= 3) {
                    ms = ms * 10 + (t[k] - '0');
                }
            }
            if (k == 1) {
                return NULL;
            }
            for (; k <= 3; ++k) {
                ms *= 10;
            }
            while (isdigit((unsigned char)*++t)) {
            }
        }
        /* UTC only: the trail is kept in UTC and an offset would be a silent shift */
        if (strcmp(t, "Z") && strcmp(t, "")) {
            return NULL;
        }
    }
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1]
        || (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        || h > 23 || mi > 59 || sec > 59) {
        return NULL;
    }
    return apr_psprintf(p, "%04d-%02d-%02d %02d:%02d:%02d.%03d", y, mo, d, h, mi, sec, ms);
}

const char *ospab_admin_like(apr_pool_t *p, const char *s, int contains)
{
    apr_size_t n = strlen(s);
    char *out = apr_palloc(p, 2 * n + 3), *o = out;

    if (contains) {
        *o++ = '%';
    }
    for (; *s; ++s) {
        if (*s == '%' || *s == '_' || *s == '!') {
            *o++ = '!';
        }
        *o++ = *s;
    }
    *o++ = '%';
    *o = '\0';
    return out;
}

int ospab_admin_volid_ok(const char *s)
{
    const char *colon = s ? strchr(s, ':') : NULL;
    const char *c;

    /* the storage: Proxmox's pve-storage-id ([a-z][a-z0-9\-\_\.]*, any case here) */
    if (!colon || colon == s || !isalpha((unsigned char)*s) || colon - s > 64) {
        return 0;
    }
    for (c = s; c < colon; ++c) {
        if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' && *c != '.') {
            return 0;
        }
    }
    /* the volume: a relative path of printable characters, no white space, no ".." */
    if (!colon[1] || colon[1] == '/' || strstr(colon, "..") || strlen(colon + 1) > 255) {
        return 0;
    }
    for (c = colon + 1; *c; ++c) {
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || *c == ':') {
            return 0;
        }
    }
    return 1;
}

/* ---- users -------------------------------------------------------------------------------- */

static const col_t user_cols[] = {
    { "id", 'i' }, { "email", 's' }, { "name", 's' }, { "role", 's' }, { "enabled", 'b' },
    { "created_at", 't' }, { "updated_at", 't' }, { NULL, 0 }
};

void ospab_admin_users(ospab_db_t *db, apr_pool_t *p, apr_table_t *query,
                       ospab_result_t *res)
{
    static const char *const known[] = { "q", "role", "enabled", "limit", "after", NULL };
    static const char *const roles[] = { "user", "admin", NULL };
    static const char *const bools[] = { "true", "false", NULL };
    const char *v[5], *args[8], *like = NULL, *enabled = NULL, *after;
    apr_array_header_t *rows;
    int limit;

    memset(res, 0, sizeof(*res));
    if (!query_read(p, query, known, v, res) || !read_choice(p, "role", v[1], roles, res)
        || !read_choice(p, "enabled", v[2], bools, res) || !read_limit(p, v[3], &limit, res)
        || !read_id(p, "after", v[4], "0", &after, res)) {
        return;
    }
    if (v[0]) {
        like = ospab_admin_like(p, v[0], 1);
    }
    if (v[2]) {
        enabled = strcmp(v[2], "true") ? "0" : "1";
    }
    args[0] = args[1] = args[2] = like;
    args[3] = args[4] = v[1];
    args[5] = args[6] = enabled;
    args[7] = after;
    if (ospab_db_select(db, p, "ospab_admin_users", 8, args, &rows, NULL) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    id_page(p, res, "users", rows, limit, user_cols);
}

void ospab_admin_user_get(ospab_db_t *db, apr_pool_t *p, const char *id, ospab_result_t *res)
{
    const ospab_user_t *u;

    memset(res, 0, sizeof(*res));
    if (ospab_user_load(db, p, id, &u) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!u) {
        ospab_result_error(p, res, 404, "user not found", NULL);
        return;
    }
    success(p, res, 200, "user", ospab_user_record_json(p, u));
}

void ospab_admin_user_set_enabled(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                                  const char *id, int enabled, ospab_result_t *res)
{
    const char *now = ospab_time_db(p, a->now);
    const char *args[3];
    const ospab_user_t *u;
    int was, revoked = 0;
    json_t *details;

    memset(res, 0, sizeof(*res));
    if (!enabled && a->id && !strcmp(a->id, id)) {
        ospab_result_error(p, res, 409, "you cannot disable your own account", NULL);
        return;
    }
    /* the user's row lock first: a sync update of the same account waits for this one */
    if (ospab_db_begin(db, p) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_user_lock", 1, &id, NULL) != APR_SUCCESS
        || ospab_user_load(db, p, id, &u) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!u) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 404, "user not found", NULL);
        return;
    }
    was = ospab_user_enabled(u->enabled);
    args[0] = enabled ? "1" : "0";
    args[1] = now;
    args[2] = id;
    if (ospab_db_exec(db, p, "ospab_admin_user_enable", 3, args, NULL) != APR_SUCCESS
        /* a disabled account's logins end now, and stay ended when it is enabled again */
        || (!enabled && ospab_session_revoke_user(db, p, a->now, id, &revoked) != APR_SUCCESS)
        /* the agents close the live pushes it may no longer watch */
        || (was != enabled
            && ospab_event_access(db, p, a->now, id, NULL, enabled ? "enabled" : "disabled")
               != APR_SUCCESS)) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    details = json_pack("{s:b, s:b}", "enabled", enabled, "was_enabled", was);
    if (!enabled) {
        json_object_set_new(details, "sessions_revoked", json_integer(revoked));
    }
    if (ospab_audit(db, p, a, enabled ? "user.enable" : "user.disable", "user", id, details)
        != APR_SUCCESS
        || ospab_user_load(db, p, id, &u) != APR_SUCCESS || !u
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    success(p, res, 200, "user", ospab_user_record_json(p, u));
}

/* ---- the catalogue ------------------------------------------------------------------------ */

static const char *const os_types[] = { "linux", "windows", NULL };
static const char *const os_kinds[] = { "lxc", "qemu", NULL };

/* Each table's fields in its columns' order (TARIFF_COLS, OS_COLS of ospab_sql_admin.c): the
 * id, the writable ones, enabled, then the two times. */
static const ospab_field_t tariff_fields[] = {
    { "id", OSPAB_FT_INT, 1, 2147483647, NULL, OSPAB_FF_READONLY, NULL, NULL, NULL },
    { "name", OSPAB_FT_TEXT, 1, 100, NULL, OSPAB_FF_REQUIRED, NULL, NULL, NULL },
    { "price", OSPAB_FT_INT, 0, 2147483647, NULL, OSPAB_FF_REQUIRED, NULL, NULL, NULL },
    { "cores", OSPAB_FT_INT, 1, 1024, NULL, OSPAB_FF_REQUIRED, NULL, "cores", NULL },
    { "memory", OSPAB_FT_INT, 128, 4194304, NULL, OSPAB_FF_REQUIRED, NULL, "MB",
      "did you send GB? multiply by 1024" },
    { "disk", OSPAB_FT_INT, 1, 1048576, NULL, OSPAB_FF_REQUIRED, NULL, "GB", NULL },
    /* the cluster its servers are placed in (lib/ospab_cluster.h); 0 or null: any */
    { "cluster_id", OSPAB_FT_INT, 0, 2147483647, NULL, OSPAB_FF_NULLABLE, NULL, NULL, NULL },
    { "enabled", OSPAB_FT_BOOL, 0, 0, NULL, 0, "1", NULL, NULL },
    { "created_at", OSPAB_FT_TEXT, 0, 0, NULL, OSPAB_FF_READONLY, NULL, NULL, NULL },
    { "updated_at", OSPAB_FT_TEXT, 0, 0, NULL, OSPAB_FF_READONLY, NULL, NULL, NULL },
};
static const col_t tariff_cols[] = {
    { "id", 'i' }, { "name", 's' }, { "price", 'i' }, { "cores", 'i' }, { "memory", 'i' },
    { "disk", 'i' }, { "cluster_id", 'i' }, { "enabled", 'b' }, { "created_at", 't' },
    { "updated_at", 't' }, { NULL, 0 }
};

static const ospab_field_t os_fields[] = {
    { "id", OSPAB_FT_INT, 1, 2147483647, NULL, OSPAB_FF_READONLY, NULL, NULL, NULL },
    { "name", OSPAB_FT_TEXT, 1, 100, NULL, OSPAB_FF_REQUIRED, NULL, NULL, NULL },
    { "type", OSPAB_FT_ENUM, 0, 0, os_types, 0, "linux", NULL, NULL },
    { "template", OSPAB_FT_TEXT, 3, 320, NULL, OSPAB_FF_REQUIRED, NULL, NULL, NULL },
    { "kind", OSPAB_FT_ENUM, 0, 0, os_kinds, 0, "lxc", NULL, NULL },
    { "enabled", OSPAB_FT_BOOL, 0, 0, NULL, 0, "1", NULL, NULL },
    { "created_at", OSPAB_FT_TEXT, 0, 0, NULL, OSPAB_FF_READONLY, NULL, NULL, NULL },
    { "updated_at", OSPAB_FT_TEXT, 0, 0, NULL, OSPAB_FF_READONLY, NULL, NULL, NULL },
};
static const col_t os_cols[] = {
    { "id", 'i' }, { "name", 's' }, { "type", 's' }, { "template", 's' }, { "kind", 's' },
    { "enabled", 'b' }, { "created_at", 't' }, { "updated_at", 't' }, { NULL, 0 }
};

typedef struct {
    const char *what;           /* in messages, and the record's key in answers */
    const char *list_key;       /* the list's key */
    const char *target;         /* audit target_type and action prefix */
    const ospab_field_t *fields;
    int nfields;                /* writable ones: 1 .. nfields - 3 */
    const col_t *cols;
    const char *list, *get, *insert, *update, *del, *used;
} catalog_t;

static const catalog_t catalogs[] = {
    [OSPAB_ADMIN_TARIFF] = {
        "tariff", "tariffs", "tariff", tariff_fields,
        (int)(sizeof(tariff_fields) / sizeof(tariff_fields[0])), tariff_cols,
        "ospab_admin_tariffs", "ospab_admin_tariff_get", "ospab_admin_tariff_insert",
        "ospab_admin_tariff_update", "ospab_admin_tariff_delete", "ospab_admin_tariff_used"
    },
    [OSPAB_ADMIN_OS] = {
        "os", "os", "os", os_fields, (int)(sizeof(os_fields) / sizeof(os_fields[0])),
        os_cols, "ospab_admin_os_list", "ospab_admin_os_get", "ospab_admin_os_insert",
        "ospab_admin_os_update", "ospab_admin_os_delete", "ospab_admin_os_used"
    },
};

#define WRITABLE_FIRST 1
#define WRITABLE_END(c) ((c)->nfields - 2)

/* The record by id as JSON (*out NULL when there is none). */
static apr_status_t catalog_load(ospab_db_t *db, apr_pool_t *p, const catalog_t *c,
                                 const char *id, json_t **out)
{
    ospab_row_t row = NULL;
    apr_status_t rv = ospab_db_select_one(db, p, c->get, 1, &id, &row);

    *out = rv == APR_SUCCESS && row ? row_json(p, row, c->cols) : NULL;
    return rv;
}

#define TEMPLATE_RULE "must be a Proxmox volume id, storage:path (e.g. " \
    "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst) for kind lxc, or the vmid of " \
    "a template VM (e.g. 9000) for kind qemu"

int ospab_admin_vmid_ok(const char *s)
{
    apr_int64_t v;
    const char *c;

    if (!s || *s < '1' || *s > '9' || strlen(s) > 9) {
        return 0;
    }
    for (c = s; *c; ++c) {
        if (!isdigit((unsigned char)*c)) {
            return 0;
        }
    }
    v = apr_atoi64(s);
    return v >= 100 && v <= 999999999;        /* Proxmox's pve-vmid */
}

/* An OS entry as written (rec, in the transaction): its template must be of its kind (a
 * container's volume, a VM's vmid). 1: fine; 0: rolled back, res is the 400. */
static int catalog_consistent(ospab_db_t *db, apr_pool_t *p, const catalog_t *c, json_t *rec,
                              ospab_result_t *res)
{
    const char *kind = json_string_value(json_object_get(rec, "kind"));
    const char *tmpl = json_string_value(json_object_get(rec, "template"));
    int qemu = kind && !strcmp(kind, "qemu");

    if (c->fields != os_fields || (qemu ? ospab_admin_vmid_ok(tmpl) : ospab_admin_volid_ok(tmpl))) {
        return 1;
    }
    ospab_db_end(db, 0);
    ospab_result_error(p, res, 400, apr_psprintf(p, "os: template %s", TEMPLATE_RULE),
                       json_pack("{s:s}", "template", TEMPLATE_RULE));
    return 0;
}

/* The body checked against the table's fields. 1: in[] filled; 0: res is the 400. */
static int catalog_read(apr_pool_t *p, const catalog_t *c, json_t *body, int creating,
                        ospab_field_value_t *in, ospab_result_t *res)
{
    json_t *errors = json_object();
    int i;

    if (!json_is_object(body)) {
        json_decref(errors);
        ospab_result_error(p, res, 400, apr_psprintf(p, "the body must be a JSON object "
                                                     "describing the %s", c->what), NULL);
        return 0;
    }
    ospab_fields_read(p, c->fields, c->nfields, body, creating, in, errors);
    if (c->fields == os_fields && in[3].present && !ospab_admin_volid_ok(in[3].value)
        && !ospab_admin_vmid_ok(in[3].value)) {
        json_object_set_new(errors, "template", json_string(TEMPLATE_RULE));
    }
    if (!creating && !json_object_size(errors)) {
        for (i = WRITABLE_FIRST; i < WRITABLE_END(c) && !in[i].present; ++i) {
        }
        if (i == WRITABLE_END(c)) {
            json_object_set_new(errors, "(body)", json_string("names no field to change"));
        }
    }
    if (json_object_size(errors)) {
        ospab_result_error(p, res, 400, ospab_fields_summary(p, c->what, errors), errors);
        return 0;
    }
    json_decref(errors);
    return 1;
}

void ospab_admin_catalog_list(ospab_db_t *db, apr_pool_t *p, ospab_admin_catalog_e kind,
                              ospab_result_t *res)
{
    const catalog_t *c = &catalogs[kind];
    apr_array_header_t *rows;
    json_t *list;
    int i;

    memset(res, 0, sizeof(*res));
    if (ospab_db_select(db, p, c->list, 0, NULL, &rows, NULL) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    list = json_array();
    for (i = 0; i < rows->nelts; ++i) {
        json_array_append_new(list, row_json(p, APR_ARRAY_IDX(rows, i, ospab_row_t), c->cols));
    }
    success(p, res, 200, c->list_key, list);
}

void ospab_admin_catalog_get(ospab_db_t *db, apr_pool_t *p, ospab_admin_catalog_e kind,
                             const char *id, ospab_result_t *res)
{
    const catalog_t *c = &catalogs[kind];
    json_t *rec;

    memset(res, 0, sizeof(*res));
    if (catalog_load(db, p, c, id, &rec) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!rec) {
        ospab_result_error(p, res, 404, apr_psprintf(p, "%s not found", c->what), NULL);
        return;
    }
    success(p, res, 200, c->what, rec);
}

/* In the open transaction: a tariff's cluster_id names a cluster (0/null: any). 1: fine;
 * 0: res is the 422 and the transaction is over. */
static int catalog_refs_ok(ospab_db_t *db, apr_pool_t *p, const catalog_t *c,
                           const ospab_field_value_t *in, ospab_result_t *res)
{
    int i = ospab_fields_index(c->fields, c->nfields, "cluster_id");

    return i < 0 || !in[i].present || ospab_cluster_known(db, p, c->what, in[i].value, res);
}

/* The end of a change: audited with details (stolen), committed, the record answered. */
static void catalog_done(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                         const catalog_t *c, const char *action, const char *id,
                         json_t *details, json_t *rec, int status, ospab_result_t *res)
{
    if (ospab_audit(db, p, a, apr_pstrcat(p, c->target, ".", action, NULL), c->target, id,
                    details) != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        json_decref(rec);
        ospab_result_db_failed(db, p, res);
        return;
    }
    success(p, res, status, c->what, rec);
}

void ospab_admin_catalog_create(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                                ospab_admin_catalog_e kind, json_t *body, ospab_result_t *res)
{
    const catalog_t *c = &catalogs[kind];
    ospab_field_value_t in[16];
    const char *args[16], *now = ospab_time_db(p, a->now), *id;
    json_t *rec;
    int i, n = 0;

    memset(res, 0, sizeof(*res));
    if (!catalog_read(p, c, body, 1, in, res)) {
        return;
    }
    for (i = WRITABLE_FIRST; i < WRITABLE_END(c); ++i) {
        args[n++] = in[i].value;
    }
    args[n++] = now;
    args[n++] = now;
    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!catalog_refs_ok(db, p, c, in, res)) {
        return;
    }
    if (ospab_db_exec(db, p, c->insert, n, args, NULL) != APR_SUCCESS
        || ospab_db_last_id(db, p, &id) != APR_SUCCESS
        || catalog_load(db, p, c, id, &rec) != APR_SUCCESS || !rec) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!catalog_consistent(db, p, c, rec, res)) {
        return;
    }
    catalog_done(db, p, a, c, "create", id, json_deep_copy(rec), rec, 201, res);
}

void ospab_admin_catalog_update(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                                ospab_admin_catalog_e kind, const char *id, json_t *body,
                                ospab_result_t *res)
{
    const catalog_t *c = &catalogs[kind];
    ospab_field_value_t in[16];
    const char *args[16];
    json_t *rec, *changes;
    int i, n = 0;

    memset(res, 0, sizeof(*res));
    if (!catalog_read(p, c, body, 0, in, res)) {
        return;
    }
    changes = json_object();
    for (i = WRITABLE_FIRST; i < WRITABLE_END(c); ++i) {
        args[n++] = in[i].present ? in[i].value : NULL;
        if (in[i].present) {
            json_object_set(changes, c->fields[i].name, json_object_get(body, c->fields[i].name));
        }
    }
    args[n++] = ospab_time_db(p, a->now);
    args[n++] = id;
    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        json_decref(changes);
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!catalog_refs_ok(db, p, c, in, res)) {
        json_decref(changes);
        return;
    }
    if (ospab_db_exec(db, p, c->update, n, args, NULL) != APR_SUCCESS
        || catalog_load(db, p, c, id, &rec) != APR_SUCCESS) {
        json_decref(changes);
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!rec) {
        json_decref(changes);
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 404, apr_psprintf(p, "%s not found", c->what), NULL);
        return;
    }
    if (!catalog_consistent(db, p, c, rec, res)) {
        json_decref(changes);
        return;
    }
    catalog_done(db, p, a, c, "update", id, changes, rec, 200, res);
}

void ospab_admin_catalog_delete(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                                ospab_admin_catalog_e kind, const char *id,
                                ospab_result_t *res)
{
    const catalog_t *c = &catalogs[kind];
    const char *used = NULL;
    json_t *rec;

    memset(res, 0, sizeof(*res));
    if (ospab_db_begin(db, p) != APR_SUCCESS
        || catalog_load(db, p, c, id, &rec) != APR_SUCCESS
        || (rec && ospab_db_select_value(db, p, c->used, 1, &id, &used) != APR_SUCCESS)) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!rec) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 404, apr_psprintf(p, "%s not found", c->what), NULL);
        return;
    }
    if (used && strcmp(used, "0")) {
        json_decref(rec);
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 409, apr_psprintf(p, "%s %s is used by %s server(s): "
                           "disable it instead ({\"enabled\": false})", c->what, id, used),
                           NULL);
        return;
    }
    if (ospab_db_exec(db, p, c->del, 1, &id, NULL) != APR_SUCCESS) {
        json_decref(rec);
        if (!ospab_db_is_constraint(db)) {
            ospab_result_db_failed(db, p, res);
            return;
        }
        /* a server that chose it meanwhile */
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 409, apr_psprintf(p, "%s %s is used by a server: disable "
                           "it instead ({\"enabled\": false})", c->what, id), NULL);
        return;
    }
    catalog_done(db, p, a, c, "delete", id, json_deep_copy(rec), rec, 200, res);
}

/* ---- audit, alerts, outboxes -------------------------------------------------------------- */

static const col_t audit_cols[] = {
    { "id", 'i' }, { "actor_type", 's' }, { "actor_id", 's' }, { "action", 's' },
    { "target_type", 's' }, { "target_id", 's' }, { "details", 'j' }, { "remote_addr", 's' },
    { "created_at", 't' }, { NULL, 0 }
};
#define AUDIT_CREATED_AT 8

void ospab_admin_audit(ospab_db_t *db, apr_pool_t *p, apr_table_t *query,
                       ospab_result_t *res)
{
    static const char *const known[] = { "actor_type", "actor", "server", "action", "since",
                                         "until", "limit", "before", NULL };
    static const char *const actor_types[] = { "sync", "user", "admin", "agent", NULL };
    const char *v[8], *args[18], *server, *exact = NULL, *prefix = NULL, *since = NULL,
               *until = NULL, *b_at = NULL, *b_id = NULL;
    apr_array_header_t *rows;
    ospab_row_t last;
    json_t *list;
    int limit;
    apr_size_t n;

    memset(res, 0, sizeof(*res));
    if (!query_read(p, query, known, v, res)
        || !read_choice(p, "actor_type", v[0], actor_types, res)
        || !read_id(p, "server", v[2], NULL, &server, res)
        || !read_limit(p, v[6], &limit, res)) {
        return;
    }
    if (v[3]) {
        n = strlen(v[3]);
        if (v[3][n - 1] == '*') {
            prefix = ospab_admin_like(p, apr_pstrndup(p, v[3], n - 1), 0);
        }
        else {
            exact = v[3];
        }
    }
    if ((v[4] && !(since = ospab_admin_time_param(p, v[4])))
        || (v[5] && !(until = ospab_admin_time_param(p, v[5])))) {
        bad_param(p, res, since || !v[4] ? "until" : "since",
                  "must be an ISO-8601 UTC time: 2026-01-02, 2026-01-02T03:04:05Z");
        return;
    }
    /* a date alone as until is its whole day */
    if (until && strlen(v[5]) == 10) {
        until = apr_pstrcat(p, apr_pstrndup(p, until, 10), " 23:59:59.999", NULL);
    }
    if (v[7] && ospab_admin_cursor_decode(p, v[7], &b_at, &b_id)) {
        bad_param(p, res, "before", "must be the \"next\" of the previous page, as it was");
        return;
    }
    args[0] = args[1] = v[0];
    args[2] = args[3] = v[1];
    args[4] = args[5] = server;
    args[6] = args[7] = exact;
    args[8] = args[9] = prefix;
    args[10] = args[11] = since;
    args[12] = args[13] = until;
    args[14] = args[15] = b_at;
    args[16] = b_at;
    args[17] = b_id;
    if (ospab_db_select(db, p, "ospab_admin_audit", 18, args, &rows, NULL) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    list = page_json(p, rows, limit, audit_cols, &last);
    success(p, res, 200, "entries", list);
    json_object_set_new(res->body, "next",
                        last ? json_string(ospab_admin_cursor_encode(p, last[AUDIT_CREATED_AT],
                                                                     last[0]))
                             : json_null());
}

static const col_t alert_cols[] = {
    { "id", 'i' }, { "server_id", 'i' }, { "type", 's' }, { "level", 's' }, { "message", 's' },
    { "value", 'r' }, { "state", 's' }, { "opened_at", 't' }, { "cleared_at", 't' },
    { "last_notified_at", 't' }, { NULL, 0 }
};

void ospab_admin_alerts(ospab_db_t *db, apr_pool_t *p, apr_table_t *query,
                        ospab_result_t *res)
{
    static const char *const known[] = { "state", "server", "limit", "after", NULL };
    static const char *const states[] = { "open", "closed", NULL };
    const char *v[4], *args[5], *state = NULL, *server, *after;
    apr_array_header_t *rows;
    int limit;

    memset(res, 0, sizeof(*res));
    if (!query_read(p, query, known, v, res) || !read_choice(p, "state", v[0], states, res)
        || !read_id(p, "server", v[1], NULL, &server, res) || !read_limit(p, v[2], &limit, res)
        || !read_id(p, "after", v[3], "0", &after, res)) {
        return;
    }
    if (v[0]) {
        state = strcmp(v[0], "open") ? "cleared" : "open";   /* the table says cleared */
    }
    args[0] = args[1] = state;
    args[2] = args[3] = server;
    args[4] = after;
    if (ospab_db_select(db, p, "ospab_admin_alerts", 5, args, &rows, NULL) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    id_page(p, res, "alerts", rows, limit, alert_cols);
}

static const col_t mail_cols[] = {
    { "id", 'i' }, { "to", 's' }, { "subject", 's' }, { "template", 's' }, { "state", 's' },
    { "attempts", 'i' }, { "next_attempt_at", 't' }, { "last_error", 's' },
    { "created_at", 't' }, { "sent_at", 't' }, { NULL, 0 }
};
static const col_t hook_cols[] = {
    { "id", 'i' }, { "event", 's' }, { "state", 's' }, { "attempts", 'i' },
    { "next_attempt_at", 't' }, { "last_status", 'i' }, { "last_error", 's' },
    { "created_at", 't' }, { "delivered_at", 't' }, { NULL, 0 }
};

typedef struct {
    const char *kind, *list, *get, *retry, *sent;
    const col_t *cols;
    const char *const *states;
} outbox_t;

static const char *const mail_states[] = { "pending", "sending", "sent", "failed", NULL };
static const char *const hook_states[] = { "pending", "sending", "delivered", "failed",
                                           "skipped", NULL };
static const outbox_t outboxes[] = {
    { "email", "ospab_admin_mail_list", "ospab_admin_mail_get", "ospab_admin_mail_retry",
      "sent", mail_cols, mail_states },
    { "webhook", "ospab_admin_hook_list", "ospab_admin_hook_get", "ospab_admin_hook_retry",
      "delivered", hook_cols, hook_states },
};

static const outbox_t *outbox_of(const char *kind)
{
    return !kind ? NULL : !strcmp(kind, "email") ? &outboxes[0]
           : !strcmp(kind, "webhook") ? &outboxes[1] : NULL;
}

void ospab_admin_outbox(ospab_db_t *db, apr_pool_t *p, apr_table_t *query,
                        ospab_result_t *res)
{
    static const char *const known[] = { "kind", "state", "limit", "after", NULL };
    static const char *const kinds[] = { "email", "webhook", NULL };
    const char *v[4], *args[3], *after;
    const outbox_t *o;
    apr_array_header_t *rows;
    int limit;

    memset(res, 0, sizeof(*res));
    if (!query_read(p, query, known, v, res)) {
        return;
    }
    if (!v[0]) {
        bad_param(p, res, "kind", "is required: email or webhook");
        return;
    }
    if (!read_choice(p, "kind", v[0], kinds, res)) {
        return;
    }
    o = outbox_of(v[0]);
    if (!read_choice(p, "state", v[1], o->states, res) || !read_limit(p, v[2], &limit, res)
        || !read_id(p, "after", v[3], "0", &after, res)) {
        return;
    }
    args[0] = args[1] = v[1];
    args[2] = after;
    if (ospab_db_select(db, p, o->list, 3, args, &rows, NULL) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    id_page(p, res, "items", rows, limit, o->cols);
    json_object_set_new(res->body, "kind", json_string(o->kind));
}

void ospab_admin_outbox_retry(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                              const char *kind, const char *id, ospab_result_t *res)
{
    const outbox_t *o = outbox_of(kind);
    const char *args[2], *state;
    ospab_row_t row = NULL;
    int n = 0;

    memset(res, 0, sizeof(*res));
    if (!o) {
        ospab_result_error(p, res, 404, "no such outbox: email or webhook", NULL);
        return;
    }
    args[0] = ospab_time_db(p, a->now);
    args[1] = id;
    if (ospab_db_begin(db, p) != APR_SUCCESS
        || ospab_db_select_one(db, p, o->get, 1, &id, &row) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!row) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 404, apr_psprintf(p, "%s %s not found", o->kind, id), NULL);
        return;
    }
    state = row[o == &outboxes[0] ? 4 : 2];
    /* the UPDATE decides (a sender may claim the row meanwhile); the state read tells why
     * it did not */
    if (ospab_db_exec(db, p, o->retry, 2, args, &n) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (n != 1) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 409, !strcmp(state, o->sent)
                           ? apr_psprintf(p, "%s %s was %s already", o->kind, id, state)
                           : apr_psprintf(p, "%s %s is %s: only a failed or pending one is "
                                          "sent again", o->kind, id, state), NULL);
        return;
    }
    if (ospab_audit(db, p, a, "outbox.retry", o->kind, id,
                    json_pack("{s:s, s:s}", "was", state, "state", "pending")) != APR_SUCCESS
        || ospab_db_select_one(db, p, o->get, 1, &id, &row) != APR_SUCCESS || !row
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    success(p, res, 200, "item", row_json(p, row, o->cols));
    json_object_set_new(res->body, "kind", json_string(o->kind));
}
