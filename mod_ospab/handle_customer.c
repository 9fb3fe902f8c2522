/* mod_ospab: the customer's read routes (Bearer JWT): /api/vps, /api/server, catalogues. */
#include "mod_ospab.h"

/* ?limit=N&after=ID; 0 when fine, else the 400 was sent and *done holds the return. */
static int read_page(request_rec *r, ospab_page_t *pg, int *done)
{
    char *args = r->args ? apr_pstrdup(r->pool, r->args) : NULL;
    char *pair, *last = NULL;

    pg->limit = 0;              /* no ?limit: every server (seed 003's "Get All Servers") */
    pg->after = "0";
    pg->next = NULL;
    for (pair = args ? apr_strtok(args, "&", &last) : NULL; pair;
         pair = apr_strtok(NULL, "&", &last)) {
        char *eq = strchr(pair, '=');
        apr_int64_t v;

        if (!eq) {
            continue;
        }
        *eq++ = '\0';
        if (ap_unescape_url(eq) != OK) {
            *done = ospab_mod_error(r, HTTP_BAD_REQUEST, "malformed query string");
            return 1;
        }
        if (!strcmp(pair, "limit")) {
            if (ospab_parse_id(eq, &v) || v < 1 || v > OSPAB_PAGE_MAX) {
                *done = ospab_mod_error(r, HTTP_BAD_REQUEST, apr_psprintf(r->pool,
                                        "limit must be a whole number from 1 to %d",
                                        OSPAB_PAGE_MAX));
                return 1;
            }
            pg->limit = (int)v;
        }
        else if (!strcmp(pair, "after")) {
            if (!pg->limit) {
                pg->limit = OSPAB_PAGE_DEFAULT;     /* a cursor asks for pages */
            }
            if (ospab_parse_id(eq, &v)) {
                *done = ospab_mod_error(r, HTTP_BAD_REQUEST,
                                        "after must be the id the previous page ended with");
                return 1;
            }
            pg->after = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, v);
        }
    }
    return 0;
}

typedef void list_fn(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                     ospab_page_t *page, ospab_result_t *res);
typedef void get_fn(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                    const char *id, ospab_result_t *res);

static int list(request_rec *r, list_fn *fn)
{
    ospab_principal_t who;
    ospab_page_t pg;
    ospab_result_t res;
    ospab_db_t *db;
    int done;

    if (!ospab_mod_caller(r, &db, &who, &done) || read_page(r, &pg, &done)) {
        return done;
    }
    fn(db, r->pool, &who, &pg, &res);
    if (res.status == HTTP_OK && pg.next) {
        apr_table_setn(r->headers_out, "Link", apr_psprintf(r->pool,
                       "<%s?limit=%d&after=%s>; rel=\"next\"", r->uri, pg.limit, pg.next));
        apr_table_setn(r->headers_out, "X-Next-Cursor", pg.next);
    }
    return ospab_mod_finish(r, &res);
}

static int get(request_rec *r, const ospab_route_match_t *m, get_fn *fn)
{
    ospab_principal_t who;
    ospab_result_t res;
    ospab_db_t *db;
    int done;

    if (!ospab_mod_caller(r, &db, &who, &done)) {
        return done;
    }
    fn(db, r->pool, &who, apr_psprintf(r->pool, "%" APR_INT64_T_FMT, m->params[0]), &res);
    return ospab_mod_finish(r, &res);
}

int ospab_mod_handle_vps_list(request_rec *r, const ospab_route_match_t *m)
{
    return list(r, ospab_customer_vps_list);
}

int ospab_mod_handle_server_list(request_rec *r, const ospab_route_match_t *m)
{
    return list(r, ospab_customer_server_list);
}

int ospab_mod_handle_vps_get(request_rec *r, const ospab_route_match_t *m)
{
    return get(r, m, ospab_customer_vps_get);
}

int ospab_mod_handle_server_get(request_rec *r, const ospab_route_match_t *m)
{
    return get(r, m, ospab_customer_server_get);
}

static int catalogue(request_rec *r, void (*fn)(ospab_db_t *, apr_pool_t *, ospab_result_t *))
{
    ospab_principal_t who;
    ospab_result_t res;
    ospab_db_t *db;
    int done;

    if (!ospab_mod_caller(r, &db, &who, &done)) {
        return done;
    }
    fn(db, r->pool, &res);
    return ospab_mod_finish(r, &res);
}

int ospab_mod_handle_tariffs(request_rec *r, const ospab_route_match_t *m)
{
    return catalogue(r, ospab_customer_tariffs);
}

int ospab_mod_handle_os(request_rec *r, const ospab_route_match_t *m)
{
    return catalogue(r, ospab_customer_os);
}
