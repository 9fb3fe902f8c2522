/* pvecall: one Proxmox API call (or --repeat N of them over one client) through the core
 * library's client, for the integration tests against tests/pvesim.
 *
 *   pvecall [options] URL TOKEN CAFILE METHOD PATH [name=value ...]
 *
 * Options: --repeat N (calls per thread), --threads N (threads sharing one client),
 * --timeout-ms, --connect-timeout-ms, --max-response BYTES, --max-handles N.
 *
 * PATH is split at '/' and each segment goes through ospab_pve_path(), so a raw UPID can be
 * given as one segment. CAFILE "-" means the system store. Prints one JSON line per call:
 *   {"outcome":"ok|http_error|unreachable|timeout|bad_response","status":N,"message":...,
 *    "errors":...,"data":...,"elapsed_ms":N,"calls":N,"connects":N}
 * calls/connects are the client's counters after the call (ospab_pve_stats). When data is
 * a string starting with "UPID:", "upid" holds what ospab_upid_parse made of it, or false. Exit status 0
 * when every call was OK, 1 when one was not, 2 on usage or set-up errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <apr_thread_proc.h>
#include <apr_thread_mutex.h>
#include <curl/curl.h>
#include <jansson.h>

#include "ospab_pve.h"

static const char *outcome_name(ospab_pve_outcome_e o)
{
    switch (o) {
    case OSPAB_PVE_OK:           return "ok";
    case OSPAB_PVE_HTTP_ERROR:   return "http_error";
    case OSPAB_PVE_UNREACHABLE:  return "unreachable";
    case OSPAB_PVE_TIMEOUT:      return "timeout";
    case OSPAB_PVE_BAD_RESPONSE: return "bad_response";
    }
    return "?";
}

typedef struct {
    ospab_pve_t *pve;
    apr_pool_t *pool;               /* this thread's own */
    const char *method, *path;
    const ospab_pve_param_t *params;
    int repeat;
    int failed;
} worker_t;

static apr_thread_mutex_t *print_lock;

static int usage(void)
{
    fputs("usage: pvecall [--repeat N] [--timeout-ms N] [--connect-timeout-ms N]\n"
          "               [--max-response BYTES] [--max-handles N]\n"
          "               URL TOKEN CAFILE|- METHOD PATH [name=value ...]\n", stderr);
    return 2;
}

static const char *encode_path(apr_pool_t *p, const char *raw)
{
    char *copy = apr_pstrdup(p, raw), *seg, *last = NULL;
    apr_array_header_t *parts = apr_array_make(p, 8, sizeof(const char *));

    for (seg = apr_strtok(copy, "/", &last); seg; seg = apr_strtok(NULL, "/", &last)) {
        APR_ARRAY_PUSH(parts, const char *) = ospab_pve_path(p, seg, NULL);
    }
    return parts->nelts ? apr_array_pstrcat(p, parts, 0) : "/";
}

static json_t *upid_json(apr_pool_t *p, const char *s)
{
    ospab_upid_t u;

    if (ospab_upid_parse(p, s, &u) != APR_SUCCESS) {
        return json_false();
    }
    return json_pack("{s:s,s:I,s:I,s:I,s:s,s:s,s:s}", "node", u.node,
                     "pid", (json_int_t)u.pid, "pstart", (json_int_t)u.pstart,
                     "starttime", (json_int_t)u.starttime, "type", u.type, "id", u.id,
                     "user", u.user);
}

static void print_result(apr_pool_t *p, const ospab_pve_result_t *res, apr_time_t elapsed,
                         const ospab_pve_stats_t *st)
{
    json_t *o = json_object();
    char *line;

    json_object_set_new(o, "outcome", json_string(outcome_name(res->outcome)));
    json_object_set_new(o, "status", json_integer(res->http_status));
    json_object_set_new(o, "message", res->message ? json_string(res->message) : json_null());
    json_object_set(o, "errors", res->errors ? res->errors : json_null());
    json_object_set(o, "data", res->data ? res->data : json_null());
    json_object_set_new(o, "elapsed_ms", json_integer((json_int_t)apr_time_as_msec(elapsed)));
    json_object_set_new(o, "calls", json_integer((json_int_t)st->calls));
    json_object_set_new(o, "connects", json_integer((json_int_t)st->connects));
    if (json_is_string(res->data) && !strncmp(json_string_value(res->data), "UPID:", 5)) {
        json_object_set_new(o, "upid", upid_json(p, json_string_value(res->data)));
    }
    line = json_dumps(o, JSON_COMPACT);
    apr_thread_mutex_lock(print_lock);
    puts(line ? line : "{\"outcome\":\"?\"}");
    fflush(stdout);
    apr_thread_mutex_unlock(print_lock);
    free(line);
    json_decref(o);
}

static void run_calls(worker_t *w)
{
    apr_pool_t *call_pool;
    int i;

    apr_pool_create(&call_pool, w->pool);
    for (i = 0; i < w->repeat; ++i) {
        ospab_pve_result_t res;
        ospab_pve_stats_t st;
        apr_time_t t0 = apr_time_now();
        apr_status_t rv = ospab_pve_call(w->pve, call_pool, w->method, w->path, w->params,
                                         &res);
        apr_time_t elapsed = apr_time_now() - t0;

        ospab_pve_stats(w->pve, &st);
        print_result(call_pool, &res, elapsed, &st);
        if (rv != APR_SUCCESS) {
            w->failed = 1;
        }
        apr_pool_clear(call_pool);
    }
}

static void *APR_THREAD_FUNC worker_main(apr_thread_t *t, void *data)
{
    run_calls(data);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *pool;
    ospab_pve_conf_t conf = { .connect_timeout_ms = 3000, .timeout_ms = 10000,
                              .max_response = 4 * 1024 * 1024, .max_handles = 4 };
    ospab_pve_t *pve;
    ospab_pve_param_t *params;
    const char *method, *path;
    worker_t *workers;
    int i, n, repeat = 1, threads = 1, status = 0;

    if (apr_app_initialize(&argc, &argv, NULL) != APR_SUCCESS
        || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return 2;
    }
    atexit(apr_terminate);
    for (i = 1; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
        long v = atol(argv[i + 1]);

        if (!strcmp(argv[i], "--repeat") && v > 0) {
            repeat = (int)v;
        }
        else if (!strcmp(argv[i], "--threads") && v > 0 && v <= 64) {
            threads = (int)v;
        }
        else if (!strcmp(argv[i], "--timeout-ms") && v > 0) {
            conf.timeout_ms = v;
        }
        else if (!strcmp(argv[i], "--connect-timeout-ms") && v > 0) {
            conf.connect_timeout_ms = v;
        }
        else if (!strcmp(argv[i], "--max-response") && v > 0) {
            conf.max_response = (apr_size_t)v;
        }
        else if (!strcmp(argv[i], "--max-handles") && v >= 0) {
            conf.max_handles = (int)v;
        }
        else {
            return usage();
        }
    }
    if (argc - i < 5) {
        return usage();
    }
    conf.url = argv[i];
    conf.token = argv[i + 1];
    conf.ca_file = strcmp(argv[i + 2], "-") ? argv[i + 2] : NULL;
    method = argv[i + 3];
    apr_pool_create(&pool, NULL);
    path = encode_path(pool, argv[i + 4]);
    i += 5;

    n = argc - i;
    params = apr_pcalloc(pool, sizeof(*params) * (apr_size_t)(n + 1));
    for (n = 0; i < argc; ++i, ++n) {
        const char *eq = strchr(argv[i], '=');

        if (!eq) {
            return usage();
        }
        params[n].name = apr_pstrmemdup(pool, argv[i], (apr_size_t)(eq - argv[i]));
        params[n].value = eq + 1;
    }

    if (ospab_pve_create(pool, &conf, &pve) != APR_SUCCESS) {
        fputs("pvecall: invalid client configuration\n", stderr);
        return 2;
    }
    apr_thread_mutex_create(&print_lock, APR_THREAD_MUTEX_DEFAULT, pool);
    workers = apr_pcalloc(pool, sizeof(*workers) * (apr_size_t)threads);
    for (i = 0; i < threads; ++i) {
        workers[i].pve = pve;
        apr_pool_create(&workers[i].pool, pool);   /* pools are per thread */
        workers[i].method = method;
        workers[i].path = path;
        workers[i].params = params;
        workers[i].repeat = repeat;
    }
    if (threads == 1) {
        run_calls(&workers[0]);
    }
    else {
        apr_thread_t **tids = apr_pcalloc(pool, sizeof(*tids) * (apr_size_t)threads);
        apr_status_t trv;

        for (i = 0; i < threads; ++i) {
            if (apr_thread_create(&tids[i], NULL, worker_main, &workers[i], pool)
                != APR_SUCCESS) {
                fputs("pvecall: cannot start a thread\n", stderr);
                return 2;
            }
        }
        for (i = 0; i < threads; ++i) {
            apr_thread_join(&trv, tids[i]);
        }
    }
    for (i = 0; i < threads; ++i) {
        status |= workers[i].failed;
    }
    apr_pool_destroy(pool);
    curl_global_cleanup();
    return status;
}
