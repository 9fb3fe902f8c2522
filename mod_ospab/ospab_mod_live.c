/* mod_ospab: a worker budget for the live-push proxy (OspabLivePush).
 *
 * Apache 2.4 tunnels a proxied websocket, and holds a proxied long-poll, on one worker
 * thread for as long as it lasts: its event MPM can hand idle keep-alive connections to
 * its listener, but mod_proxy's tunnel is synchronous (asynchronous tunnelling exists only
 * in httpd's trunk). /api/ is served by the same workers, so without a budget enough idle
 * Socket.IO clients, without any credentials, take the whole API offline. In a location
 * marked OspabLivePush every request first takes a place in counters shared by all
 * children: at most `workers` at once in all, at most `per-address` from one client
 * address; beyond that it is answered at once with a JSON 503 or 429 and Retry-After, and
 * never reaches mod_proxy. The place is given back when the request ends (its pool's
 * cleanup), which for a websocket is when the tunnel closes.
 *
 * The same locations keep Engine.IO session ids out of the access log: the sid in the
 * query string is what the agent knows a session by. */
#include <ap_mpm.h>
#include <util_mutex.h>

#include "mod_ospab.h"
#include "ospab_gauge.h"

#define LIVE_NOTE "ospab-live"

static ospab_gauge_t *gauge;
static apr_global_mutex_t *gauge_mutex;
static int default_workers = 1;

void *ospab_mod_create_dir_conf(apr_pool_t *p, char *dir)
{
    ospab_dir_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->live = c->workers = c->per_address = c->metrics = -1;
    return c;
}

void *ospab_mod_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    ospab_dir_conf_t *base = basev, *add = addv, *c = apr_pcalloc(p, sizeof(*c));

    c->live = add->live != -1 ? add->live : base->live;
    c->workers = add->workers != -1 ? add->workers : base->workers;
    c->per_address = add->per_address != -1 ? add->per_address : base->per_address;
    c->metrics = add->metrics != -1 ? add->metrics : base->metrics;
    return c;
}

/* OspabLivePush On|Off | [workers=N] [per-address=M] */
const char *ospab_mod_set_live_push(cmd_parms *cmd, void *dc, const char *args)
{
    ospab_dir_conf_t *c = dc;
    const char *word;

    c->live = 1;
    while (*(word = ap_getword_conf(cmd->temp_pool, &args))) {
        const char *eq = strchr(word, '=');
        char *end;
        apr_int64_t v;

        if (!strcasecmp(word, "off") || !strcasecmp(word, "on")) {
            c->live = strcasecmp(word, "off") != 0;
            continue;
        }
        v = eq ? apr_strtoi64(eq + 1, &end, 10) : -1;
        if (!eq || !eq[1] || *end || v < 0 || v > 1000000) {
            return apr_psprintf(cmd->pool, "%s: expected On, Off, workers=N or "
                                "per-address=N (N a whole number), not '%s'",
                                cmd->cmd->name, word);
        }
        if (!strncasecmp(word, "workers=", 8) && v >= 1) {
            c->workers = (int)v;
        }
        else if (!strncasecmp(word, "per-address=", 12)) {
            c->per_address = (int)v;
        }
        else {
            return apr_psprintf(cmd->pool, "%s: unknown or out-of-range setting '%s' "
                                "(workers=N with N >= 1, per-address=N with 0 for no cap)",
                                cmd->cmd->name, word);
        }
    }
    return NULL;
}

int ospab_mod_live_pre_config(apr_pool_t *pconf)
{
    return ap_mutex_register(pconf, OSPAB_LIVE_MUTEX, NULL, APR_LOCK_DEFAULT, 0)
           == APR_SUCCESS ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

/* The counters, before the children fork (the real configuration pass only). The default
 * budget is half of MaxRequestWorkers: the other half always serves /api/. */
int ospab_mod_live_post_config(apr_pool_t *pconf, server_rec *s)
{
    int daemons = 0, threads = 0, workers;
    apr_status_t rv;

    if (ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &daemons) != APR_SUCCESS || daemons < 1) {
        daemons = 1;
    }
    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS || threads < 1) {
        threads = 1;
    }
    workers = daemons * threads;
    default_workers = workers / 2 > 0 ? workers / 2 : 1;
    rv = ap_global_mutex_create(&gauge_mutex, NULL, OSPAB_LIVE_MUTEX, NULL, s, pconf, 0);
    if (rv == APR_SUCCESS) {
        /* at least twice the most places any budget can hand out */
        rv = ospab_gauge_create(pconf, (apr_size_t)(2 * (workers > 256 ? workers : 256)),
                                &gauge_mutex, &gauge);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, OSPAB_LOGNO(00115)
                     "cannot create the live-push worker budget's shared memory or lock");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

void ospab_mod_live_child_init(apr_pool_t *p, server_rec *s)
{
    if (gauge_mutex
        && apr_global_mutex_child_init(&gauge_mutex, apr_global_mutex_lockfile(gauge_mutex), p)
           != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, OSPAB_LOGNO(00116)
                     "cannot attach to the live-push worker budget's lock");
    }
}

int ospab_mod_live_in_use(void)
{
    return gauge ? ospab_gauge_count(gauge, NULL, NULL) : 0;
}

typedef struct {
    ospab_gauge_t *gauge;
    const char *key;
} live_place_t;

static apr_status_t give_back(void *data)
{
    live_place_t *pl = data;

    ospab_gauge_release(pl->gauge, pl->key);
    return APR_SUCCESS;
}

static ospab_dir_conf_t *live_conf(request_rec *r)
{
    ospab_dir_conf_t *c = ap_get_module_config(r->per_dir_config, &ospab_module);

    return c && c->live == 1 ? c : NULL;
}

/* Before mod_proxy's handler: a place in the budget, or the answer. */
int ospab_mod_live_handler(request_rec *r)
{
    ospab_dir_conf_t *c;
    live_place_t *pl;
    int workers, per_address;

    if (r->main || r->prev || !(c = live_conf(r)) || !gauge) {
        return DECLINED;
    }
    apr_table_setn(r->notes, LIVE_NOTE, "1");
    workers = c->workers != -1 ? c->workers : default_workers;
    per_address = c->per_address != -1 ? c->per_address : OSPAB_LIVE_PER_ADDRESS;
    pl = apr_palloc(r->pool, sizeof(*pl));
    pl->gauge = gauge;
    pl->key = r->useragent_ip;
    switch (ospab_gauge_take(gauge, pl->key, workers, per_address)) {
    case OSPAB_GAUGE_TAKEN:
        apr_pool_cleanup_register(r->pool, pl, give_back, apr_pool_cleanup_null);
        return DECLINED;
    case OSPAB_GAUGE_FULL:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, OSPAB_LOGNO(00601)
                      "live push: all %d workers of its budget are busy", workers);
        ospab_mod_metric(OSPAB_METRIC_RL_LIVE_WORKERS);
        apr_table_setn(r->err_headers_out, "Retry-After", "5");
        r->connection->keepalive = AP_CONN_CLOSE;
        return ospab_mod_error(r, HTTP_SERVICE_UNAVAILABLE,
                               "live updates are busy: try again shortly");
    default:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, OSPAB_LOGNO(00602)
                      "live push: %s has %d connections already", r->useragent_ip,
                      per_address);
        ospab_mod_metric(OSPAB_METRIC_RL_LIVE_ADDRESS);
        apr_table_setn(r->err_headers_out, "Retry-After", "10");
        r->connection->keepalive = AP_CONN_CLOSE;
        return ospab_mod_error(r, HTTP_TOO_MANY_REQUESTS,
                               "too many live connections from your address");
    }
}

/* "sid=<id>" -> "sid=-" in s (a copy when it has one). */
static const char *scrub(apr_pool_t *p, const char *s)
{
    const char *at;
    char *copy, *w;

    if (!s || !(at = ap_strstr_c(s, "sid="))) {
        return s;
    }
    /* at worst each empty value becomes "-": never more than twice as long */
    copy = apr_palloc(p, 2 * strlen(s) + 1);
    w = copy;
    while ((at = ap_strstr_c(s, "sid=")) != NULL) {
        apr_size_t n = (apr_size_t)(at - s) + 4;
        int boundary = at == s || at[-1] == '?' || at[-1] == '&';

        memcpy(w, s, n);
        w += n;
        s = at + 4;
        if (boundary) {
            *w++ = '-';
            while (*s && *s != '&' && *s != ' ' && *s != '#') {
                ++s;
            }
        }
    }
    strcpy(w, s);
    return copy;
}

/* Before mod_log_config writes the line: no session id in the request line, the URI or
 * the query (%r, %U%q, %q). */
int ospab_mod_live_log(request_rec *r)
{
    request_rec *first = r;

    while (first->prev) {
        first = first->prev;
    }
    if (!apr_table_get(r->notes, LIVE_NOTE) && !apr_table_get(first->notes, LIVE_NOTE)) {
        return DECLINED;
    }
    r->the_request = (char *)scrub(r->pool, r->the_request);
    r->unparsed_uri = (char *)scrub(r->pool, r->unparsed_uri);
    r->args = (char *)scrub(r->pool, r->args);
    r->parsed_uri.query = (char *)scrub(r->pool, r->parsed_uri.query);
    return DECLINED;
}
