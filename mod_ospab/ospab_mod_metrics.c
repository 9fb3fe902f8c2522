/* mod_ospab: Prometheus metrics (OspabMetrics), counted in shared memory by every child.
 *
 * The counters live in one anonymous shared memory segment made in the parent before the
 * children fork, and only when some <Location> says OspabMetrics On: without it nothing is
 * counted and no request pays anything. A request adds to its route's histogram in the
 * log_transaction hook with atomic additions (no lock, no allocation): the route is the
 * router table's entry (a template such as /api/server/{id}/start, never the raw URI),
 * which the handler leaves in the request's module config as a pointer. Proxmox calls are
 * counted by their endpoint's template (ospab_prom_pve_endpoint) in a fixed table of slots
 * claimed on first use; database failures through ospab_db_t's counter.
 *
 * The location's GET answers the text exposition format 0.0.4 (docs/monitoring.md). The
 * counters start at zero with each configuration cycle (a restart or graceful restart),
 * which Prometheus's rate() takes as a counter reset. */
#include <apr_atomic.h>
#include <apr_shm.h>

#include "mod_ospab.h"
#include "ospab_gauge.h"
#include "ospab_prom.h"

#define STATUS_CLASSES 5            /* 1xx .. 5xx */
#define PVE_SLOTS 96
#define PVE_OUTCOMES 5              /* ospab_pve_outcome_e */
#define PVE_ENDPOINT_MAX 96

typedef struct {
    volatile apr_uint32_t state;    /* 0 free, 1 being claimed, 2 ready */
    apr_uint32_t hash;
    char method[8];
    char endpoint[PVE_ENDPOINT_MAX];
    volatile apr_uint64_t calls[PVE_OUTCOMES];
    volatile apr_uint64_t sum_us;
} pve_slot_t;

typedef struct {
    volatile apr_uint32_t db_failures;      /* statements and COMMITs (ospab_db_t) */
    volatile apr_uint64_t counters[OSPAB_METRIC_COUNT];
    volatile apr_uint64_t pve_unlisted;     /* calls when every slot was taken */
    apr_time_t since;
    pve_slot_t pve[PVE_SLOTS];
    ospab_prom_shared_hist_t http[1];       /* (routes + 1) * STATUS_CLASSES */
} metrics_shm_t;

static metrics_shm_t *shm;
static int nroutes;
static int metrics_wanted;                  /* some location says OspabMetrics On */

/* the routes' index in the table: for the unmatched /api/ requests, one past the end */
static const ospab_route_t unmatched = { "", "(unmatched)", OSPAB_OP_NONE, NULL };

const char *ospab_mod_set_metrics(cmd_parms *cmd, void *dc, int on)
{
    ospab_dir_conf_t *c = dc;

    c->metrics = on;
    if (on) {
        metrics_wanted = 1;
    }
    return NULL;
}

int ospab_mod_metrics_pre_config(apr_pool_t *pconf)
{
    metrics_wanted = 0;             /* counted again by this cycle's directives */
    shm = NULL;
    return OK;
}

int ospab_mod_metrics_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_shm_t *seg;
    apr_size_t size;

    if (!metrics_wanted) {
        return OK;
    }
    for (nroutes = 0; ospab_api_routes[nroutes].method; nroutes++) {
    }
    size = sizeof(metrics_shm_t)
           + sizeof(ospab_prom_shared_hist_t)
             * ((apr_size_t)(nroutes + 1) * STATUS_CLASSES - 1);
    if (apr_shm_create(&seg, size, NULL, pconf) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, OSPAB_LOGNO(00701)
                     "cannot create the shared memory for OspabMetrics (%" APR_SIZE_T_FMT
                     " bytes)", size);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    shm = apr_shm_baseaddr_get(seg);
    memset(shm, 0, size);
    shm->since = apr_time_now();
    return OK;
}

int ospab_mod_metrics_on(void)
{
    return shm != NULL;
}

void ospab_mod_metric(ospab_metric_e which)
{
    if (shm && which >= 0 && which < OSPAB_METRIC_COUNT) {
        apr_atomic_inc64(&shm->counters[which]);
    }
}

volatile apr_uint32_t *ospab_mod_metrics_db_failures(void)
{
    return shm ? &shm->db_failures : NULL;
}

void ospab_mod_metrics_route(request_rec *r, const ospab_route_t *route)
{
    if (shm) {
        ap_set_module_config(r->request_config, &ospab_module,
                             (void *)(route ? route : &unmatched));
    }
}

/* After the response: the request's route, its final status's class, its duration. */
int ospab_mod_metrics_log(request_rec *r)
{
    const ospab_route_t *route;
    request_rec *last = r;
    int idx, cls;

    if (!shm) {
        return DECLINED;
    }
    while (last->next) {
        last = last->next;
    }
    route = ap_get_module_config(last->request_config, &ospab_module);
    if (!route) {
        route = ap_get_module_config(r->request_config, &ospab_module);
    }
    if (!route) {
        return DECLINED;
    }
    idx = route == &unmatched ? nroutes : (int)(route - ospab_api_routes);
    if (idx < 0 || idx > nroutes) {
        return DECLINED;
    }
    cls = last->status / 100 - 1;
    if (cls < 0 || cls >= STATUS_CLASSES) {
        cls = STATUS_CLASSES - 1;
    }
    ospab_prom_observe(&shm->http[idx * STATUS_CLASSES + cls],
                       apr_time_now() - r->request_time);
    return DECLINED;
}

/* FNV-1a of method and endpoint; 0 is kept for "free" */
static apr_uint32_t slot_hash(const char *method, const char *endpoint)
{
    apr_uint32_t h = 2166136261u;
    const char *s;

    for (s = method; *s; s++) {
        h = (h ^ (unsigned char)*s) * 16777619u;
    }
    h = (h ^ ' ') * 16777619u;
    for (s = endpoint; *s; s++) {
        h = (h ^ (unsigned char)*s) * 16777619u;
    }
    return h ? h : 1;
}

/* The Proxmox client's observer (ospab_pve_conf_t.observe). */
void ospab_mod_metrics_pve(void *baton, const char *method, const char *path, int outcome,
                           apr_interval_time_t took)
{
    char endpoint[PVE_ENDPOINT_MAX];
    apr_uint32_t h;
    int i, start;

    if (!shm) {
        return;
    }
    ospab_prom_pve_endpoint(path, endpoint, sizeof(endpoint));
    h = slot_hash(method, endpoint);
    start = (int)(h % PVE_SLOTS);
    for (i = 0; i < PVE_SLOTS; i++) {
        pve_slot_t *sl = &shm->pve[(start + i) % PVE_SLOTS];
        apr_uint32_t state = apr_atomic_read32(&sl->state);

        if (state == 0) {
            if (apr_atomic_cas32(&sl->state, 1, 0) == 0) {
                /* ours to fill; readers skip it until it is ready */
                sl->hash = h;
                apr_cpystrn(sl->method, method, sizeof(sl->method));
                apr_cpystrn(sl->endpoint, endpoint, sizeof(sl->endpoint));
                apr_atomic_set32(&sl->state, 2);
            }
            state = apr_atomic_read32(&sl->state);
        }
        while (state == 1) {
            /* another process is filling it in: a few instructions away */
            state = apr_atomic_read32(&sl->state);
        }
        if (sl->hash == h && !strcmp(sl->endpoint, endpoint) && !strcmp(sl->method, method)) {
            if (outcome >= 0 && outcome < PVE_OUTCOMES) {
                apr_atomic_inc64(&sl->calls[outcome]);
            }
            apr_atomic_add64(&sl->sum_us, (apr_uint64_t)(took > 0 ? took : 0));
            return;
        }
    }
    apr_atomic_inc64(&shm->pve_unlisted);
}

static const char *const class_names[STATUS_CLASSES] = { "1xx", "2xx", "3xx", "4xx", "5xx" };
static const char *const outcome_names[PVE_OUTCOMES] = {
    "ok", "http_error", "unreachable", "timeout", "bad_response"
};

static void http_families(ospab_prom_t *b, apr_pool_t *p)
{
    int i, c, pass;

    for (pass = 0; pass < 2; pass++) {
        if (pass == 0) {
            ospab_prom_family(b, "ospab_http_requests_total", "counter",
                              "API requests answered, by route template and status class");
        }
        else {
            ospab_prom_family(b, "ospab_http_request_duration_seconds", "histogram",
                              "Time from reading the request line to the end of the "
                              "response, by route template and status class");
        }
        for (i = 0; i <= nroutes; i++) {
            const ospab_route_t *rt = i < nroutes ? &ospab_api_routes[i] : &unmatched;

            for (c = 0; c < STATUS_CLASSES; c++) {
                ospab_prom_hist_t snap;
                const char *labels;

                ospab_prom_read(&shm->http[i * STATUS_CLASSES + c], &snap);
                if (!snap.count) {
                    continue;
                }
                labels = apr_pstrcat(p, ospab_prom_label(p, "method", rt->method), ",",
                                     ospab_prom_label(p, "route", rt->pattern), ",",
                                     ospab_prom_label(p, "status", class_names[c]), NULL);
                if (pass == 0) {
                    ospab_prom_u64(b, "ospab_http_requests_total", labels, snap.count);
                }
                else {
                    ospab_prom_hist(b, "ospab_http_request_duration_seconds", labels, &snap);
                }
            }
        }
    }
}

static void pve_families(ospab_prom_t *b, apr_pool_t *p)
{
    int i, o;

    ospab_prom_family(b, "ospab_proxmox_requests_total", "counter",
                      "Calls to the Proxmox VE API, by method, endpoint template and outcome");
    for (i = 0; i < PVE_SLOTS; i++) {
        pve_slot_t *sl = &shm->pve[i];

        if (apr_atomic_read32(&sl->state) != 2) {
            continue;
        }
        for (o = 0; o < PVE_OUTCOMES; o++) {
            apr_uint64_t n = apr_atomic_read64(&sl->calls[o]);

            if (n) {
                ospab_prom_u64(b, "ospab_proxmox_requests_total",
                               apr_pstrcat(p, ospab_prom_label(p, "method", sl->method), ",",
                                           ospab_prom_label(p, "endpoint", sl->endpoint), ",",
                                           ospab_prom_label(p, "outcome", outcome_names[o]),
                                           NULL), n);
            }
        }
    }
    ospab_prom_family(b, "ospab_proxmox_request_seconds_total", "counter",
                      "Time spent in calls to the Proxmox VE API, by method and endpoint");
    for (i = 0; i < PVE_SLOTS; i++) {
        pve_slot_t *sl = &shm->pve[i];

        if (apr_atomic_read32(&sl->state) == 2) {
            ospab_prom_double(b, "ospab_proxmox_request_seconds_total",
                              apr_pstrcat(p, ospab_prom_label(p, "method", sl->method), ",",
                                          ospab_prom_label(p, "endpoint", sl->endpoint), NULL),
                              (double)apr_atomic_read64(&sl->sum_us) / 1e6);
        }
    }
    ospab_prom_family(b, "ospab_proxmox_requests_unlisted_total", "counter",
                      "Proxmox calls not counted by endpoint: every endpoint slot was taken");
    ospab_prom_u64(b, "ospab_proxmox_requests_unlisted_total", NULL,
                   apr_atomic_read64(&shm->pve_unlisted));
}

static const struct {
    ospab_metric_e which;
    const char *labels;
} rejections[] = {
    { OSPAB_METRIC_RL_LOGIN, "limit=\"login\"" },
    { OSPAB_METRIC_RL_LIVE_WORKERS, "limit=\"live_push_workers\"" },
    { OSPAB_METRIC_RL_LIVE_ADDRESS, "limit=\"live_push_address\"" },
};

static const char *exposition(request_rec *r, apr_size_t *len)
{
    ospab_prom_t *b = ospab_prom_make(r->pool);
    apr_size_t i;

    http_families(b, r->pool);
    pve_families(b, r->pool);
    ospab_prom_family(b, "ospab_db_errors_total", "counter",
                      "Database failures: failed statements or COMMITs, and requests that "
                      "got no connection from mod_dbd");
    ospab_prom_u64(b, "ospab_db_errors_total", "kind=\"statement\"",
                   apr_atomic_read32(&shm->db_failures));
    ospab_prom_u64(b, "ospab_db_errors_total", "kind=\"connection\"",
                   apr_atomic_read64(&shm->counters[OSPAB_METRIC_DB_UNAVAILABLE]));
    ospab_prom_one(b, "ospab_db_conflict_retries_total", "counter",
                   "Operations run again after the database refused them for a write "
                   "conflict (a deadlock, or Galera certification against another node)",
                   apr_atomic_read64(&shm->counters[OSPAB_METRIC_DB_CONFLICT_RETRY]));
    ospab_prom_one(b, "ospab_login_failures_total", "counter",
                   "Logins refused for a wrong e-mail or password, or a disabled account",
                   apr_atomic_read64(&shm->counters[OSPAB_METRIC_LOGIN_FAILED]));
    ospab_prom_family(b, "ospab_rate_limited_total", "counter",
                      "Requests refused by a limit (429 or 503 with Retry-After), by limit");
    for (i = 0; i < sizeof(rejections) / sizeof(rejections[0]); i++) {
        ospab_prom_u64(b, "ospab_rate_limited_total", rejections[i].labels,
                       apr_atomic_read64(&shm->counters[rejections[i].which]));
    }
    ospab_prom_one(b, "ospab_idempotent_replays_total", "counter",
                   "Sync requests answered from a stored Idempotency-Key answer",
                   apr_atomic_read64(&shm->counters[OSPAB_METRIC_IDEM_REPLAY]));
    ospab_prom_one(b, "ospab_live_push_connections", "gauge",
                   "Live-push requests (websockets, long polls) proxied right now",
                   (apr_uint64_t)ospab_mod_live_in_use());
    ospab_prom_family(b, "ospab_metrics_start_time_seconds", "gauge",
                      "When these counters started (the last start or restart of Apache)");
    ospab_prom_double(b, "ospab_metrics_start_time_seconds", NULL,
                      (double)apr_time_sec(shm->since));
    return ospab_prom_text(b, len);
}

/* A request in a location with OspabMetrics On. */
int ospab_mod_metrics_handler(request_rec *r)
{
    ospab_dir_conf_t *c = ap_get_module_config(r->per_dir_config, &ospab_module);
    const char *text;
    apr_size_t len;

    if (!c || c->metrics != 1 || r->main) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        apr_table_setn(r->err_headers_out, "Allow", "GET, HEAD");
        return ospab_mod_error(r, HTTP_METHOD_NOT_ALLOWED, "metrics are read with GET");
    }
    if (!shm) {
        return ospab_mod_error(r, HTTP_SERVICE_UNAVAILABLE, "metrics are not set up");
    }
    text = exposition(r, &len);
    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only) {
        ap_rwrite(text, (int)len, r);
    }
    return OK;
}
