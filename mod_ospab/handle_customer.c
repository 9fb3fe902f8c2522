/* mod_ospab: the customer's read routes (Bearer JWT): /api/vps, /api/server, catalogues. */
#include "mod_ospab.h"
#include "ospab_session.h"

/* ?limit=N&after=ID; NULL when fine, else what the 400 says. */
static const char *read_page(request_rec *r, ospab_page_t *pg)
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
            return "malformed query string";
        }
        if (!strcmp(pair, "limit")) {
            if (ospab_parse_id(eq, &v) || v < 1 || v > OSPAB_PAGE_MAX) {
                return apr_psprintf(r->pool, "limit must be a whole number from 1 to %d",
                                    OSPAB_PAGE_MAX);
            }
            pg->limit = (int)v;
        }
        else if (!strcmp(pair, "after")) {
            if (!pg->limit) {
                pg->limit = OSPAB_PAGE_DEFAULT;     /* a cursor asks for pages */
            }
            if (ospab_parse_id(eq, &v)) {
                return "after must be the id the previous page ended with";
            }
            pg->after = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, v);
        }
    }
    return NULL;
}

typedef void get_fn(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                    const char *id, ospab_result_t *res);

/* A customer's list: who the token names and the first page in one round trip
 * (ospab_session_list). */
static int list(request_rec *r, ospab_list_e kind)
{
    ospab_jwt_claims_t claims;
    ospab_principal_t who;
    ospab_page_t pg;
    ospab_result_t res;
    ospab_db_t *db;
    const char *bad, *why = NULL;
    apr_status_t rv;
    int done;

    if (!(db = ospab_mod_db(r))) {
        return ospab_mod_error(r, HTTP_SERVICE_UNAVAILABLE, "database unavailable");
    }
    if (!ospab_mod_token(r, &claims, &done)) {
        return done;
    }
    /* a refused caller hears 401 before a bad query string's 400, as on every route */
    bad = read_page(r, &pg);
    rv = bad ? ospab_session_principal(db, r->pool, &claims, &who, &why)
             : ospab_session_list(db, r->pool, &claims, kind, &pg, &who, &res, &why);
    if (!ospab_mod_principal(r, db, rv, why, &who, &done)) {
        return done;
    }
    if (bad) {
        return ospab_mod_error(r, HTTP_BAD_REQUEST, bad);
    }
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
    fn(db, r->pool, &who, ospab_mod_route_id(r, m), &res);
    return ospab_mod_finish(r, &res);
}

int ospab_mod_handle_vps_list(request_rec *r, const ospab_route_match_t *m)
{
    return list(r, OSPAB_LIST_VPS);
}

int ospab_mod_handle_server_list(request_rec *r, const ospab_route_match_t *m)
{
    return list(r, OSPAB_LIST_SERVER);
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
