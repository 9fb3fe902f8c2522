/* ospab core: customer reads. */
#include <string.h>

#include <apr_strings.h>
#include <apr_lib.h>

#include "ospab_customer.h"
#include "ospab_json.h"
#include "ospab_util.h"
#include "ospab_resource.h"

/* SERVER_COLS positions */
enum { S_ID, S_USER, S_TARIFF, S_OS, S_STATUS, S_VMID, S_IP, S_CREATED, S_UPDATED, S_NAME,
       S_OS_ID, S_OS_NAME, S_OS_TYPE, S_T_ID, S_T_NAME, S_T_PRICE, S_OS_TEXT, S_CPU, S_RAM,
       S_DISK };

/* The enabled tariff with the record's sizes (ospab_tariff_list: id name price cores memory
 * disk), or NULL. */
static ospab_row_t same_sizes(ospab_db_t *db, apr_pool_t *p, apr_array_header_t **tariffs,
                              ospab_row_t r)
{
    int i;

    if (!*tariffs && (!db || ospab_db_select(db, p, "ospab_tariff_list", 0, NULL, tariffs, NULL)
                            != APR_SUCCESS)) {
        *tariffs = apr_array_make(p, 1, sizeof(ospab_row_t));
    }
    for (i = 0; i < (*tariffs)->nelts; ++i) {
        ospab_row_t t = APR_ARRAY_IDX(*tariffs, i, ospab_row_t);

        if (r[S_CPU] && r[S_RAM] && r[S_DISK] && !strcmp(t[3], r[S_CPU])
            && !strcmp(t[4], r[S_RAM]) && !strcmp(t[5], r[S_DISK])) {
            return t;
        }
    }
    return NULL;
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

static void write_os(ospab_jw_t *w, apr_pool_t *p, ospab_row_t r)
{
    const char *name = r[S_OS_ID] ? r[S_OS_NAME] : r[S_OS_TEXT];

    ospab_jw_obj(w);
    ospab_jw_key(w, "id");
    ospab_jw_int_text(w, r[S_OS_ID]);
    ospab_jw_key(w, "name");
    ospab_jw_str(w, name);
    ospab_jw_key(w, "type");
    if (r[S_OS_ID]) {
        ospab_jw_str(w, r[S_OS_TYPE]);
    }
    else {
        /* the synced text is all there is: "Windows Server 2022" is windows, the rest linux */
        ospab_jw_str(w, os_type_of(p, name));
    }
    ospab_jw_obj_end(w);
}

static void write_tariff(ospab_jw_t *w, apr_pool_t *p, ospab_db_t *db,
                         apr_array_header_t **tariffs, ospab_row_t r)
{
    ospab_row_t t = r[S_T_ID] ? NULL : same_sizes(db, p, tariffs, r);

    ospab_jw_obj(w);
    ospab_jw_key(w, "id");
    ospab_jw_int_text(w, r[S_T_ID] ? r[S_T_ID] : t ? t[0] : NULL);
    ospab_jw_key(w, "name");
    ospab_jw_str(w, r[S_T_ID] ? r[S_T_NAME]
                  : t ? t[1] : apr_psprintf(p, "%s vCPU / %s MB / %s GB",
                                            r[S_CPU] ? r[S_CPU] : "?", r[S_RAM] ? r[S_RAM] : "?",
                                            r[S_DISK] ? r[S_DISK] : "?"));
    ospab_jw_key(w, "price");
    ospab_jw_int_text(w, r[S_T_ID] ? r[S_T_PRICE] : t ? t[2] : NULL);
    ospab_jw_obj_end(w);
}

void ospab_server_write(ospab_jw_t *w, apr_pool_t *p, ospab_db_t *db,
                        apr_array_header_t **tariffs, ospab_row_t r)
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
    write_os(w, p, r);
    ospab_jw_key(w, "tariff");
    write_tariff(w, p, db, tariffs, r);
    ospab_jw_obj_end(w);
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

/* One page, or (limit 0) every row in pages of OSPAB_PAGE_MAX. labels: the statements for
 * 50 and for 200 rows (and one more, to know whether another page follows). */
static void page(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                 ospab_page_t *pg, const char *const labels[2], row_write_fn *write,
                 int owner_col, ospab_result_t *res)
{
    /* a customer's "all servers" is a handful; an admin's is the provider's whole fleet,
     * which stays paged unless asked for page by page */
    int all = pg->limit == 0 && !who->admin;
    int limit = all ? OSPAB_PAGE_MAX : pg->limit ? pg->limit : OSPAB_PAGE_DEFAULT;
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
        if (ospab_db_select(db, p, label, who->admin ? 1 : 2, args, &rows, NULL)
            != APR_SUCCESS) {
            ospab_result_db_failed(db, p, res);
            return;
        }
        n = rows->nelts < limit ? rows->nelts : limit;
        for (i = 0; i < n; ++i) {
            ospab_row_t row = APR_ARRAY_IDX(rows, i, ospab_row_t);

            /* defence in depth: the statement filters by owner already */
            if (!who->admin && (!row[owner_col] || strcmp(row[owner_col], who->user_id))) {
                continue;
            }
            write(&w, p, db, &tariffs, row);
        }
        pg->next = rows->nelts > limit ? APR_ARRAY_IDX(rows, n - 1, ospab_row_t)[0] : NULL;
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

void ospab_customer_vps_list(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                             ospab_page_t *pg, ospab_result_t *res)
{
    static const char *const user[2] = { "ospab_vps_page_user_51", "ospab_vps_page_user_201" };
    static const char *const any[2] = { "ospab_vps_page_all_51", "ospab_vps_page_all_201" };

    page(db, p, who, pg, who->admin ? any : user, who->admin ? vps_write_admin : vps_write,
         OSPAB_VPS_USER_ID, res);
}

void ospab_customer_server_list(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                                ospab_page_t *pg, ospab_result_t *res)
{
    static const char *const user[2] = { "ospab_server_page_user_51",
                                         "ospab_server_page_user_201" };
    static const char *const any[2] = { "ospab_server_page_all_51",
                                        "ospab_server_page_all_201" };

    page(db, p, who, pg, who->admin ? any : user, ospab_server_write, S_USER, res);
}

static void get_one(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                    const char *label, const char *id, row_write_fn *write, int owner_col,
                    ospab_result_t *res)
{
    apr_array_header_t *tariffs = NULL;
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
    write(&w, p, db, &tariffs, row);
    res->status = 200;
    res->text = ospab_jw_finish(&w, NULL);
}

void ospab_customer_vps_get(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                            const char *id, ospab_result_t *res)
{
    get_one(db, p, who, "ospab_vps_get", id, who->admin ? vps_write_admin : vps_write,
            OSPAB_VPS_USER_ID, res);
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
