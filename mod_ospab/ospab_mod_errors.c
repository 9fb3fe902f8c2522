/* mod_ospab: JSON for the errors Apache answers itself under /api/.
 *
 * Some requests never reach the module: a URI with an encoded slash (404), a NUL (400), a
 * bad chunk size (400), a path or header over the limits (414, 400/431), an Expect it does
 * not know (417), a method it has never heard of (501). httpd answers those with its own
 * HTML error page. A client of /api/ expects {"error": "..."} with a JSON content type on
 * every answer, so for requests under /api/ an output filter, added when httpd starts an
 * error response, replaces that page with the status's reason in JSON. */
#include <apr_lib.h>
#include <util_filter.h>

#include "mod_ospab.h"
#include "ospab_json.h"

#define JSON_ERROR_FILTER "OSPAB_JSON_ERROR"

/* The request's path as far as httpd parsed it, or the one in the request line. */
static int under_api(request_rec *r)
{
    const char *u = r->uri && *r->uri ? r->uri : r->unparsed_uri;

    if (!u && r->the_request) {
        u = ap_strchr_c(r->the_request, ' ');
        u = u ? u + 1 : NULL;
    }
    return u && !strncmp(u, "/api", 4) && (u[4] == '/' || u[4] == '\0' || u[4] == ' '
                                            || u[4] == '?');
}

void ospab_mod_insert_error_filter(request_rec *r)
{
    if (under_api(r)) {
        ap_add_output_filter(JSON_ERROR_FILTER, NULL, r, r->connection);
    }
}

/* {"error":"bad request"} from "400 Bad Request". */
static const char *json_body(request_rec *r)
{
    const char *line = ap_get_status_line(r->status);
    char *reason = apr_pstrdup(r->pool, line && strlen(line) > 4 ? line + 4 : "error");
    char *c;
    json_t *o;

    for (c = reason; *c; ++c) {
        *c = (char)apr_tolower(*c);
    }
    o = ospab_json_own(r->pool, ospab_json_error(reason, NULL));
    return apr_pstrcat(r->pool, ospab_json_dump(r->pool, o), "\n", NULL);
}

/* Drops httpd's HTML page and sends the JSON one in its place, once, at the end. */
static apr_status_t json_error_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    apr_bucket *b;
    int eos = 0;

    for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
        if (APR_BUCKET_IS_EOS(b)) {
            eos = 1;
            break;
        }
    }
    if (!f->ctx) {
        f->ctx = f;                     /* the headers go once, with the first brigade */
        ap_set_content_type(r, "application/json; charset=utf-8");
        apr_table_unset(r->headers_out, "Content-Length");
        apr_table_setn(r->headers_out, "Cache-Control", "no-store");
        apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    }
    if (!eos) {
        apr_brigade_cleanup(bb);        /* the HTML, bit by bit */
        return APR_SUCCESS;
    }
    apr_brigade_cleanup(bb);
    if (!r->header_only) {
        const char *body = json_body(r);

        ap_set_content_length(r, (apr_off_t)strlen(body));
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_pool_create(body, strlen(body), r->pool,
                                                           bb->bucket_alloc));
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
    ap_remove_output_filter(f);
    return ap_pass_brigade(f->next, bb);
}

void ospab_mod_register_error_filter(void)
{
    ap_register_output_filter(JSON_ERROR_FILTER, json_error_filter, NULL, AP_FTYPE_RESOURCE);
}
