/* ospab core: customer reads. */
#include <string.h>

#include <apr_strings.h>

#include "ospab_customer.h"
#include "ospab_json.h"
#include "ospab_util.h"
#include "ospab_resource.h"

/* SERVER_COLS positions */
enum { S_ID, S_USER, S_TARIFF, S_OS, S_STATUS, S_VMID, S_IP, S_CREATED, S_UPDATED, S_NAME,
       S_OS_ID, S_OS_NAME, S_OS_TYPE, S_T_ID, S_T_NAME, S_T_PRICE };

void ospab_server_write(ospab_jw_t *w, apr_pool_t *p, ospab_row_t r)
{
    ospab_jw_obj(w);
    ospab_jw_key(w, "id");
    ospab_jw_int_text(w, r[S_ID]);
    ospab_jw_key(w, "userId");
    ospab_jw_int_text(w, r[S_USER]);
    ospab_jw_key(w, "tariffId");
    ospab_jw_int_text(w, r[S_TARIFF]);
    ospab_jw_key(w, "osId");
    ospab_jw_int_text(w, r[S_OS]);
    ospab_jw_key(w, "name");
    ospab_jw_str(w, r[S_NAME]);
    ospab_jw_key(w, "status");
    ospab_jw_str(w, r[S_STATUS]);
    ospab_jw_key(w, "proxmoxId");
    ospab_jw_int_text(w, r[S_VMID]);
    ospab_jw_key(w, "ipAddress");
    ospab_jw_str(w, r[S_IP]);
    ospab_jw_key(w, "createdAt");
    ospab_jw_str(w, ospab_time_api(p, r[S_CREATED]));
    ospab_jw_key(w, "updatedAt");
    ospab_jw_str(w, ospab_time_api(p, r[S_UPDATED]));
    ospab_jw_key(w, "os");
    if (r[S_OS_ID]) {
        ospab_jw_obj(w);
        ospab_jw_key(w, "id");
        ospab_jw_int_text(w, r[S_OS_ID]);
        ospab_jw_key(w, "name");
        ospab_jw_str(w, r[S_OS_NAME]);
        ospab_jw_key(w, "type");
        ospab_jw_str(w, r[S_OS_TYPE]);
        ospab_jw_obj_end(w);
    }
    else {
        ospab_jw_null(w);
    }
    ospab_jw_key(w, "tariff");
    if (r[S_T_ID]) {
        ospab_jw_obj(w);
        ospab_jw_key(w, "id");
        ospab_jw_int_text(w, r[S_T_ID]);
        ospab_jw_key(w, "name");
        ospab_jw_str(w, r[S_T_NAME]);
        ospab_jw_key(w, "price");
        ospab_jw_int_text(w, r[S_T_PRICE]);
        ospab_jw_obj_end(w);
    }
    else {
        ospab_jw_null(w);
    }
    ospab_jw_obj_end(w);
}

typedef void row_write_fn(ospab_jw_t *w, apr_pool_t *p, ospab_row_t row);

static void page(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                 ospab_page_t *pg, const char *what, row_write_fn *write,
                 int owner_col, ospab_result_t *res)
{
    const char *label = apr_psprintf(p, "ospab_%s_page_%s_%d", what,
                                     who->admin ? "all" : "user",
                                     pg->limit <= OSPAB_PAGE_DEFAULT ? 51 : 201);
    const char *args[2];
    apr_array_header_t *rows;
    ospab_jw_t w;
    int i, n;

    memset(res, 0, sizeof(*res));
    if (who->admin) {
        args[0] = pg->after;
    }
    else {
        args[0] = who->user_id;
        args[1] = pg->after;
    }
    if (ospab_db_select(db, p, label, who->admin ? 1 : 2, args, &rows, NULL) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    n = rows->nelts < pg->limit ? rows->nelts : pg->limit;
    ospab_jw_init(&w, p, 400 * (apr_size_t)n + 16);
    ospab_jw_arr(&w);
    for (i = 0; i < n; ++i) {
        ospab_row_t row = APR_ARRAY_IDX(rows, i, ospab_row_t);

        /* defence in depth: the statement filters by owner already */
        if (!who->admin && (!row[owner_col] || strcmp(row[owner_col], who->user_id))) {
            continue;
        }
        write(&w, p, row);
    }
    ospab_jw_arr_end(&w);
    pg->next = rows->nelts > pg->limit ? APR_ARRAY_IDX(rows, n - 1, ospab_row_t)[0] : NULL;
    res->status = 200;
    res->text = ospab_jw_finish(&w, NULL);
}

void ospab_customer_vps_list(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                             ospab_page_t *pg, ospab_result_t *res)
{
    page(db, p, who, pg, "vps", ospab_vps_write, OSPAB_VPS_USER_ID, res);
}

void ospab_customer_server_list(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                                ospab_page_t *pg, ospab_result_t *res)
{
    page(db, p, who, pg, "server", ospab_server_write, S_USER, res);
}

static void get_one(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                    const char *label, const char *id, row_write_fn *write, int owner_col,
                    ospab_result_t *res)
{
    ospab_row_t row;
    ospab_jw_t w;

    memset(res, 0, sizeof(*res));
    if (ospab_db_select_one(db, p, label, 1, &id, &row) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    /* someone else's server answers exactly like a missing one */
    if (!row || (!who->admin && (!row[owner_col] || strcmp(row[owner_col], who->user_id)))) {
        ospab_result_error(p, res, 404, "server not found", NULL);
        return;
    }
    ospab_jw_init(&w, p, 512);
    write(&w, p, row);
    res->status = 200;
    res->text = ospab_jw_finish(&w, NULL);
}

void ospab_customer_vps_get(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                            const char *id, ospab_result_t *res)
{
    get_one(db, p, who, "ospab_vps_get", id, ospab_vps_write, OSPAB_VPS_USER_ID, res);
}

void ospab_customer_server_get(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                               const char *id, ospab_result_t *res)
{
    get_one(db, p, who, "ospab_server_get", id, ospab_server_write, S_USER, res);
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
