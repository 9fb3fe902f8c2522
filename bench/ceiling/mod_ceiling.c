/* mod_ceiling: bench/run's ceiling. Answers GET with bytes read once, at configuration time,
 * from the file CeilingFile names, with the headers mod_ospab sends with a JSON answer:
 * the most any Apache module can do for a request of that size. Built by bench/run (apxs),
 * for the benchmark only; never installed.
 *
 *   LoadModule ceiling_module .../mod_ceiling.so
 *   <Location "/ceiling">
 *     SetHandler ceiling
 *     CeilingFile /path/to/server-list.json
 *   </Location>
 */
#include <string.h>

#include <apr_buckets.h>
#include <apr_file_io.h>
#include <apr_strings.h>

#include "httpd.h"
#include "http_config.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"

module AP_MODULE_DECLARE_DATA ceiling_module;

typedef struct {
    const char *body;           /* NULL: no CeilingFile here */
    apr_size_t len;
} ceiling_conf_t;

static void *create_dir_conf(apr_pool_t *p, char *dir)
{
    (void)dir;
    return apr_pcalloc(p, sizeof(ceiling_conf_t));
}

static void *merge_dir_conf(apr_pool_t *p, void *base_, void *add_)
{
    ceiling_conf_t *base = base_, *add = add_;
    ceiling_conf_t *c = apr_pcalloc(p, sizeof(*c));

    *c = add->body ? *add : *base;
    return c;
}

static const char *set_file(cmd_parms *cmd, void *conf_, const char *arg)
{
    ceiling_conf_t *c = conf_;
    const char *path = ap_server_root_relative(cmd->pool, arg);
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv;
    char *buf;

    if (!path) {
        return apr_pstrcat(cmd->pool, "CeilingFile: bad path ", arg, NULL);
    }
    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, cmd->temp_pool);
    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
        if (rv == APR_SUCCESS) {
            buf = apr_palloc(cmd->pool, (apr_size_t)fi.size + 1);
            rv = apr_file_read_full(f, buf, (apr_size_t)fi.size, NULL);
            buf[fi.size] = '\0';
            c->body = buf;
            c->len = (apr_size_t)fi.size;
        }
        apr_file_close(f);
    }
    if (rv != APR_SUCCESS) {
        char err[120];

        return apr_psprintf(cmd->pool, "CeilingFile: cannot read %s: %s", path,
                            apr_strerror(rv, err, sizeof(err)));
    }
    return NULL;
}

/* As mod_ospab and mod_proxy: a URI answered from memory is no file, so no directory walk.
 * map_to_storage runs with the server's defaults, after the first <Location> walk that
 * translate_name sees: this is where a CeilingFile location is told apart. */
#define CEILING_NOTE "ceiling"

static int translate_name(request_rec *r)
{
    ceiling_conf_t *c = ap_get_module_config(r->per_dir_config, &ceiling_module);

    if (c && c->body) {
        apr_table_setn(r->notes, CEILING_NOTE, "1");
    }
    return DECLINED;
}

static int map_to_storage(request_rec *r)
{
    return apr_table_get(r->notes, CEILING_NOTE) ? OK : DECLINED;
}

static int handler(request_rec *r)
{
    ceiling_conf_t *c = ap_get_module_config(r->per_dir_config, &ceiling_module);
    apr_bucket_brigade *bb;

    if (!r->handler || strcmp(r->handler, "ceiling")) {
        return DECLINED;
    }
    if (!c->body) {
        return HTTP_NOT_FOUND;
    }
    if (r->method_number != M_GET) {
        r->allowed = AP_METHOD_BIT << M_GET;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    /* the headers of mod_ospab's JSON answers (ospab_mod_http.c) */
    ap_set_content_type(r, "application/json; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->err_headers_out, "X-Content-Type-Options", "nosniff");
    ap_set_content_length(r, (apr_off_t)c->len);
    if (r->header_only) {
        return OK;
    }
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_immortal_create(c->body, c->len, bb->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
    return ap_pass_brigade(r->output_filters, bb) == APR_SUCCESS ? OK : AP_FILTER_ERROR;
}

static const command_rec cmds[] = {
    AP_INIT_TAKE1("CeilingFile", set_file, NULL, ACCESS_CONF | RSRC_CONF,
                  "the file whose bytes every GET is answered with (read at start-up)"),
    { NULL }
};

static void register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_translate_name(translate_name, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_map_to_storage(map_to_storage, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_handler(handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(ceiling) = {
    STANDARD20_MODULE_STUFF,
    create_dir_conf,
    merge_dir_conf,
    NULL,
    NULL,
    cmds,
    register_hooks,
    AP_MODULE_FLAG_NONE
};
