/* mod_ospab: writing JSON responses and reading JSON request bodies. */
#include <string.h>
#include <strings.h>

#include <apr_buckets.h>
#include <util_filter.h>

#include "mod_ospab.h"
#include "ospab_json.h"

static int respond_text(request_rec *r, int status, const char *text)
{
    apr_bucket_brigade *bb;
    apr_size_t len = strlen(text);

    r->status = status;
    /* every 401 names a scheme (RFC 7235): routes that use another set theirs before */
    if (status == HTTP_UNAUTHORIZED && !apr_table_get(r->err_headers_out, "WWW-Authenticate")) {
        apr_table_setn(r->err_headers_out, "WWW-Authenticate", "Bearer realm=\"ospab\"");
    }
    ap_set_content_type(r, "application/json; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->err_headers_out, "X-Content-Type-Options", "nosniff");
    ap_set_content_length(r, (apr_off_t)len + 1);
    if (r->header_only) {
        return OK;
    }
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_immortal_create(text, len, bb->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_immortal_create("\n", 1, bb->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
    if (ap_pass_brigade(r->output_filters, bb) != APR_SUCCESS) {
        /* the client went away; nothing more to say to it */
        return AP_FILTER_ERROR;
    }
    return OK;
}

int ospab_mod_respond(request_rec *r, int status, json_t *body)
{
    const char *text = ospab_json_dump(r->pool, body);

    if (!text) {
        return respond_text(r, 500, "{\"error\":\"internal error\"}");
    }
    return respond_text(r, status, text);
}

int ospab_mod_error_fields(request_rec *r, int status, const char *msg, json_t *fields)
{
    return ospab_mod_respond(r, status, ospab_json_own(r->pool, ospab_json_error(msg, fields)));
}

int ospab_mod_error(request_rec *r, int status, const char *msg)
{
    return ospab_mod_error_fields(r, status, msg, NULL);
}

int ospab_mod_finish(request_rec *r, ospab_result_t *res)
{
    /* the core explains every failure worth an operator's attention (database, Proxmox);
     * a route that is simply not configured says so to the client alone */
    if (res->status >= 500 && res->log) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, OSPAB_LOGNO(00202) "%s %s failed: %s",
                      r->method, r->uri, res->log);
    }
    else if (res->log && res->status >= 400) {
        /* a refusal the customer got in the panel's words: Proxmox's own, for the operator */
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, OSPAB_LOGNO(00206) "%s %s refused: %s",
                      r->method, r->uri, res->log);
    }
    else if (res->log) {
        /* done, but something behind it failed (an Idempotency-Key's answer not stored) */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, OSPAB_LOGNO(00203) "%s %s: %s",
                      r->method, r->uri, res->log);
    }
    if (res->text) {
        return respond_text(r, res->status, res->text);
    }
    return ospab_mod_respond(r, res->status, res->body);
}

static int json_content_type(const char *ct)
{
    static const char media[] = "application/json";
    const char *params, *cs;

    if (!ct || strncasecmp(ct, media, sizeof(media) - 1)) {
        return 0;
    }
    params = ct + sizeof(media) - 1;
    while (*params == ' ' || *params == '\t') {
        ++params;
    }
    if (!*params) {
        return 1;
    }
    if (*params != ';') {
        return 0;
    }
    /* JSON is UTF-8 (RFC 8259): any other declared charset is refused */
    cs = ap_strcasestr(params, "charset=");
    if (cs) {
        cs += 8;
        if (*cs == '"') {
            ++cs;
        }
        return !strncasecmp(cs, "utf-8", 5) && (cs[5] == '\0' || cs[5] == '"'
                                                || cs[5] == ';' || cs[5] == ' ');
    }
    return 1;
}

/* The body as read, or the answer that refused it (its return value). */
static int read_json(request_rec *r, json_t **json, const char **body, apr_size_t *len)
{
    ospab_srv_conf_t *sc = ospab_mod_srv_conf(r);
    apr_off_t limit = sc->max_body > 0 ? sc->max_body : OSPAB_DEFAULT_MAX_BODY;
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    ospab_json_error_t jerr;
    char *buf;
    apr_size_t used = 0, cap;
    long n = 0;
    int rc;

    *json = NULL;
    if (!json_content_type(apr_table_get(r->headers_in, "Content-Type"))) {
        return ospab_mod_error(r, HTTP_UNSUPPORTED_MEDIA_TYPE,
                               "Content-Type must be application/json");
    }
    if (cl && apr_atoi64(cl) > limit) {
        r->connection->keepalive = AP_CONN_CLOSE;
        return ospab_mod_error(r, HTTP_REQUEST_ENTITY_TOO_LARGE,
                               apr_psprintf(r->pool, "request body too large (limit %"
                                            APR_OFF_T_FMT " bytes)", limit));
    }
    if ((rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK)) != OK) {
        return ospab_mod_error(r, rc == HTTP_REQUEST_ENTITY_TOO_LARGE ? rc : HTTP_BAD_REQUEST,
                               "the request body could not be read");
    }
    /* start with what Content-Length announces (chunked: 8 KiB) and grow to the limit */
    cap = cl ? (apr_size_t)apr_atoi64(cl) + 1 : 8192;
    if (cap < 2 || cap > (apr_size_t)limit + 1) {
        cap = (apr_size_t)limit + 1;
    }
    buf = apr_palloc(r->pool, cap);
    if (ap_should_client_block(r)) {
        for (;;) {
            if (used == cap) {
                apr_size_t ncap = cap * 2 > (apr_size_t)limit + 1 ? (apr_size_t)limit + 1
                                                                 : cap * 2;
                char *nbuf;

                if (ncap == cap) {
                    r->connection->keepalive = AP_CONN_CLOSE;
                    return ospab_mod_error(r, HTTP_REQUEST_ENTITY_TOO_LARGE,
                                           apr_psprintf(r->pool, "request body too large "
                                                        "(limit %" APR_OFF_T_FMT " bytes)",
                                                        limit));
                }
                nbuf = apr_palloc(r->pool, ncap);
                memcpy(nbuf, buf, used);
                buf = nbuf;
                cap = ncap;
            }
            n = ap_get_client_block(r, buf + used, cap - used);
            if (n <= 0) {
                break;
            }
            used += (apr_size_t)n;
        }
        if (n < 0) {
            r->connection->keepalive = AP_CONN_CLOSE;
            if (r->eos_sent) {
                /* httpd's body filter found the framing broken (a bad chunk size) and has
                 * already answered 400 itself (as JSON, ospab_mod_errors.c): a second
                 * answer would land after the first one's Content-Length */
                return AP_FILTER_ERROR;
            }
            return ospab_mod_error(r, HTTP_BAD_REQUEST, "the request body could not be read");
        }
        if (used > (apr_size_t)limit) {
            r->connection->keepalive = AP_CONN_CLOSE;
            return ospab_mod_error(r, HTTP_REQUEST_ENTITY_TOO_LARGE,
                                   apr_psprintf(r->pool, "request body too large (limit %"
                                                APR_OFF_T_FMT " bytes)", limit));
        }
    }
    if (used == cap) {
        char *nbuf = apr_palloc(r->pool, used + 1);
        memcpy(nbuf, buf, used);
        buf = nbuf;
    }
    buf[used] = '\0';
    if (used == 0) {
        return ospab_mod_error(r, HTTP_BAD_REQUEST, "the request body is empty");
    }
    if (ospab_json_parse(r->pool, buf, used, json, &jerr) != APR_SUCCESS) {
        json_t *e = json_object();

        json_object_set_new(e, "error", json_string(apr_psprintf(r->pool, "malformed JSON: %s",
                                                                 jerr.text)));
        json_object_set_new(e, "line", json_integer(jerr.line));
        json_object_set_new(e, "column", json_integer(jerr.column));
        json_object_set_new(e, "position", json_integer(jerr.position));
        return ospab_mod_respond(r, HTTP_BAD_REQUEST, ospab_json_own(r->pool, e));
    }
    *body = buf;
    *len = used;
    return OK;
}

int ospab_mod_json_body(request_rec *r, json_t **json, const char **body, apr_size_t *len,
                        int *done)
{
    *done = read_json(r, json, body, len);
    return *json != NULL;
}
