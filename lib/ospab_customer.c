/* ospab core: customer reads. */
#include <stddef.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_lib.h>

#include "ospab_customer.h"
#include "ospab_json.h"
#include "ospab_util.h"
#include "ospab_resource.h"
#include "ospab_vps.h"
#include "ospab_catalog.h"

#define S(member) offsetof(ospab_server_view_t, member)

/* SERVER_COLS: v.id, v.user_id, v.tariff_id, v.os_id, v.status, v.vmid, v.ip_address,
 * v.created_at, v.updated_at, v.name, o.id, o.name, o.type, t.id, t.name, t.price, v.os,
 * v.cpu, v.ram, v.disk */
static const apr_size_t server_cols[] = {
    S(id), S(user_id), S(tariff_id), S(os_id), S(status), S(vmid), S(ip), S(created_at),
    S(updated_at), S(name), S(tmpl_id), S(tmpl_name), S(tmpl_type), S(t_id), S(t_name),
    S(t_price), S(os_text), S(cpu), S(ram), S(disk)
};

const ospab_row_shape_t ospab_server_view_row =
    OSPAB_ROW_SHAPE(server_cols, ospab_server_view_t, OSPAB_ROW_NO_RAW);

/* The enabled tariff with the record's sizes (*found), or none. */
static int same_sizes(ospab_db_t *db, apr_pool_t *p, apr_array_header_t **tariffs,
                      const ospab_server_view_t *v, ospab_tariff_t *found)
{
    int i;

    if (!*tariffs && (!db || ospab_db_select(db, p, "ospab_tariff_list", 0, NULL, tariffs, NULL)
                            != APR_SUCCESS)) {
        *tariffs = apr_array_make(p, 1, sizeof(ospab_row_t));
    }
    if (!v->cpu || !v->ram || !v->disk) {
        return 0;
    }
    for (i = 0; i < (*tariffs)->nelts; ++i) {
        ospab_row_fill(&ospab_tariff_row, APR_ARRAY_IDX(*tariffs, i, ospab_row_t), found);
        if (!strcmp(found->cores, v->cpu) && !strcmp(found->memory, v->ram)
            && !strcmp(found->disk, v->disk)) {
            return 1;
        }
    }
    return 0;
}

/* "windows" for a synced OS text that names Windows, else "linux". */
static const char *os_type_of(apr_pool_t *p, const char *name)
{
    char *lower = apr_pstrdup(p, name ? name : ""), *c;

    for (c = lower; *c; ++c) {
        *c = (char)apr_tolower(*c);
    }
    return strstr(lower, "windows") ? "windows" : "linux";
}

static void write_os(ospab_jw_t *w, apr_pool_t *p, const ospab_server_view_t *v)
{
    const char *name = v->tmpl_id ? v->tmpl_name : v->os_text;

    ospab_jw_obj(w);
    ospab_jw_key(w, "id");
    ospab_jw_int_text(w, v->tmpl_id);
    ospab_jw_key(w, "name");
    ospab_jw_str(w, name);
    ospab_jw_key(w, "type");
    if (v->tmpl_id) {
        ospab_jw_str(w, v->tmpl_type);
    }
    else {
        /* the synced text is all there is: "Windows Server 2022" is windows, the rest linux */
        ospab_jw_str(w, os_type_of(p, name));
    }
    ospab_jw_obj_end(w);
}

static void write_tariff(ospab_jw_t *w, apr_pool_t *p, ospab_db_t *db,
                         apr_array_header_t **tariffs, const ospab_server_view_t *v)
{
    ospab_tariff_t same;
    int t = !v->t_id && same_sizes(db, p, tariffs, v, &same);

    ospab_jw_obj(w);
    ospab_jw_key(w, "id");
    ospab_jw_int_text(w, v->t_id ? v->t_id : t ? same.id : NULL);
    ospab_jw_key(w, "name");
    ospab_jw_str(w, v->t_id ? v->t_name
                  : t ? same.name : apr_psprintf(p, "%s vCPU / %s MB / %s GB",
                                                 v->cpu ? v->cpu : "?", v->ram ? v->ram : "?",
                                                 v->disk ? v->disk : "?"));
    ospab_jw_key(w, "price");
    ospab_jw_int_text(w, v->t_id ? v->t_price : t ? same.price : NULL);
    ospab_jw_obj_end(w);
}

/* The record's own keys of seed 003's object: ids as JSON numbers, the rest as strings. */
static void write_fields(ospab_jw_t *w, apr_pool_t *p, const ospab_server_view_t *v)
{
    const struct { const char *key; const char *value; int number; } fields[] = {
        { "id", v->id, 1 }, { "userId", v->user_id, 1 }, { "tariffId", v->tariff_id, 1 },
        { "osId", v->os_id, 1 }, { "name", v->name, 0 }, { "status", v->status, 0 },
        { "proxmoxId", v->vmid, 1 }, { "ipAddress", v->ip, 0 },
        { "createdAt", ospab_time_api(p, v->created_at), 0 },
        { "updatedAt", ospab_time_api(p, v->updated_at), 0 },
    };
    apr_size_t i;

    for (i = 0; i < sizeof(fields) / sizeof(fields[0]); ++i) {
        ospab_jw_key(w, fields[i].key);
        if (fields[i].number) {
            ospab_jw_int_text(w, fields[i].value);
        }
        else {
            ospab_jw_str(w, fields[i].value);
        }
    }
}

void ospab_server_write(ospab_jw_t *w, apr_pool_t *p, ospab_db_t *db,
                        apr_array_header_t **tariffs, ospab_row_t r)
{
    ospab_server_view_t v;

    ospab_row_fill(&ospab_server_view_row, r, &v);
    ospab_jw_obj(w);
    write_fields(w, p, &v);
    ospab_jw_key(w, "os");
    write_os(w, p, &v);
    ospab_jw_key(w, "tariff");
    write_tariff(w, p, db, tariffs, &v);
    ospab_jw_obj_end(w);
}

/* A row's id and owner, whatever its shape. */
typedef void row_key_fn(ospab_row_t row, const char **id, const char **owner);

static void vps_key(ospab_row_t row, const char **id, const char **owner)
{
    ospab_vps_t v;

    ospab_row_fill(&ospab_vps_row, row, &v);
    *id = v.id;
    *owner = v.user_id;
}

static void server_key(ospab_row_t row, const char **id, const char **owner)
{
    ospab_server_view_t v;

    ospab_row_fill(&ospab_server_view_row, row, &v);
    *id = v.id;
    *owner = v.user_id;
}

typedef void row_write_fn(ospab_jw_t *w, apr_pool_t *p, ospab_db_t *db,
                          apr_array_header_t **tariffs, ospab_row_t row);

static void vps_write(ospab_jw_t *w, apr_pool_t *p, ospab_db_t *db,
                      apr_array_header_t **tariffs, ospab_row_t row)
{
    ospab_vps_write(w, p, row, 0);
}

/* an admin sees the record as the billing site does: with its binding_note */
static void vps_write_admin(ospab_jw_t *w, apr_pool_t *p, ospab_db_t *db,
                            apr_array_header_t **tariffs, ospab_row_t row)
{
    ospab_vps_write(w, p, row, 1);
}

/* How many rows a page has: a customer's "all servers" is a handful; an admin's is the
 * provider's whole fleet, which stays paged unless asked for page by page. */
static int page_limit(const ospab_principal_t *who, const ospab_page_t *pg, int *all)
{
    *all = pg->limit == 0 && !who->admin;
    return *all ? OSPAB_PAGE_MAX : pg->limit ? pg->limit : OSPAB_PAGE_DEFAULT;
}

/* One page, or (limit 0) every row in pages of OSPAB_PAGE_MAX. labels: the statements for
 * 50 and for 200 rows (and one more, to know whether another page follows); first: the
 * first page's rows when they were selected already (ospab_customer_list), else NULL. */
static void page(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                 ospab_page_t *pg, const char *const labels[2], row_write_fn *write,
                 row_key_fn *key, apr_array_header_t *first, ospab_result_t *res)
{
    int all;
    int limit = page_limit(who, pg, &all);
    const char *label = labels[limit <= OSPAB_PAGE_DEFAULT ? 0 : 1];
    const char *args[2], *after = pg->after;
    apr_array_header_t *rows, *tariffs = NULL;
    ospab_jw_t w;
    int i, n;

    memset(res, 0, sizeof(*res));
    ospab_jw_init(&w, p, 400 * (apr_size_t)limit + 16);
    ospab_jw_arr(&w);
    for (;;) {
        if (who->admin) {
            args[0] = after;
        }
        else {
            args[0] = who->user_id;
            args[1] = after;
        }
        if (first) {
            rows = first;
            first = NULL;
        }
        else if (ospab_db_select(db, p, label, who->admin ? 1 : 2, args, &rows, NULL)
                 != APR_SUCCESS) {
            ospab_result_db_failed(db, p, res);
            return;
        }
        n = rows->nelts < limit ? rows->nelts : limit;
        pg->next = NULL;
        for (i = 0; i < n; ++i) {
            ospab_row_t row = APR_ARRAY_IDX(rows, i, ospab_row_t);
            const char *id, *owner;

            key(row, &id, &owner);
            if (rows->nelts > limit && i == n - 1) {
                pg->next = id;
            }
            /* defence in depth: the statement filters by owner already */
            if (!who->admin && (!owner || strcmp(owner, who->user_id))) {
                continue;
            }
            write(&w, p, db, &tariffs, row);
        }
        if (!all || !pg->next) {
            break;
        }
        after = pg->next;
    }
    ospab_jw_arr_end(&w);
    if (all) {
        pg->next = NULL;
    }
    pg->limit = limit;              /* for the next page's link */
    res->status = 200;
    res->text = ospab_jw_finish(&w, NULL);
}

/* The statements of each list: a customer's pages, an admin's, and a customer's first page
 * with the caller's row ahead (ospab_session_list), each for 50 and for 200 rows. */
static const struct {
    const char *user[2], *any[2], *me[2];
    row_write_fn *write, *write_admin;
    row_key_fn *key;
} lists[] = {
    [OSPAB_LIST_VPS] = {
        { "ospab_vps_page_user_51", "ospab_vps_page_user_201" },
        { "ospab_vps_page_all_51", "ospab_vps_page_all_201" },
        { "ospab_vps_page_me_51", "ospab_vps_page_me_201" },
        vps_write, vps_write_admin, vps_key },
    [OSPAB_LIST_SERVER] = {
        { "ospab_server_page_user_51", "ospab_server_page_user_201" },
        { "ospab_server_page_all_51", "ospab_server_page_all_201" },
        { "ospab_server_page_me_51", "ospab_server_page_me_201" },
        ospab_server_write, ospab_server_write, server_key },
};

void ospab_customer_list(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                         ospab_list_e kind, ospab_page_t *pg, apr_array_header_t *first,
                         ospab_result_t *res)
{
    page(db, p, who, pg, who->admin ? lists[kind].any : lists[kind].user,
         who->admin ? lists[kind].write_admin : lists[kind].write, lists[kind].key,
         who->admin ? NULL : first, res);
}

const char *ospab_customer_list_first(ospab_list_e kind, const ospab_page_t *pg)
{
    static const ospab_principal_t customer = { NULL, 0, NULL };
    int all;

    return lists[kind].me[page_limit(&customer, pg, &all) <= OSPAB_PAGE_DEFAULT ? 0 : 1];
}

static void get_one(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                    const char *label, const char *id, row_write_fn *write, row_key_fn *key,
                    ospab_result_t *res)
{
    apr_array_header_t *tariffs = NULL;
    ospab_row_t row;
    const char *row_id, *owner = NULL;
    ospab_jw_t w;

    memset(res, 0, sizeof(*res));
    if (ospab_db_select_one(db, p, label, 1, &id, &row) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    /* someone else's server answers exactly like a missing one */
    if (row) {
        key(row, &row_id, &owner);
    }
    if (!row || (!who->admin && (!owner || strcmp(owner, who->user_id)))) {
        ospab_result_error(p, res, 404, "server not found", NULL);
        return;
    }
    ospab_jw_init(&w, p, 512);
    write(&w, p, db, &tariffs, row);
    res->status = 200;
    res->text = ospab_jw_finish(&w, NULL);
}

void ospab_customer_vps_get(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                            const char *id, ospab_result_t *res)
{
    get_one(db, p, who, "ospab_vps_get", id, who->admin ? vps_write_admin : vps_write, vps_key,
            res);
}

void ospab_customer_server_get(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                               const char *id, ospab_result_t *res)
{
    get_one(db, p, who, "ospab_server_get", id, ospab_server_write, server_key, res);
}

static void catalogue(ospab_db_t *db, apr_pool_t *p, const char *label,
                      const char *const *names, const char *types, ospab_result_t *res)
{
    apr_array_header_t *rows;
    json_t *list;
    int i, j;

    memset(res, 0, sizeof(*res));
    if (ospab_db_select(db, p, label, 0, NULL, &rows, NULL) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    list = json_array();
    for (i = 0; i < rows->nelts; ++i) {
        ospab_row_t row = APR_ARRAY_IDX(rows, i, ospab_row_t);
        json_t *o = json_object();

        for (j = 0; names[j]; ++j) {
            json_object_set_new(o, names[j], types[j] == 'i' ? ospab_json_int_or_null(row[j])
                                                             : ospab_json_str_or_null(row[j]));
        }
        json_array_append_new(list, o);
    }
    res->status = 200;
    res->body = ospab_json_own(p, list);
}

void ospab_customer_tariffs(ospab_db_t *db, apr_pool_t *p, ospab_result_t *res)
{
    static const char *const names[] = { "id", "name", "price", "cores", "memory", "disk",
                                         NULL };

    catalogue(db, p, "ospab_tariff_list", names, "isiiii", res);
}

void ospab_customer_os(ospab_db_t *db, apr_pool_t *p, ospab_result_t *res)
{
    static const char *const names[] = { "id", "name", "type", "kind", NULL };

    catalogue(db, p, "ospab_os_list", names, "isss", res);
}
