/* ospab core: the Proxmox VE API client (libcurl + jansson), UPIDs.
 *
 * One ospab_pve_t per process: it keeps a small pool of libcurl easy handles so that
 * connections to the Proxmox API are reused (keep-alive) across requests and threads.
 * Every call has explicit connect and total timeouts, verifies TLS against the configured
 * CA file (never disabled), limits the response size, and turns every failure into an
 * ospab_pve_result_t the caller can map to an HTTP answer. */
#ifndef OSPAB_PVE_H
#define OSPAB_PVE_H

#include <apr_pools.h>
#include <jansson.h>

/* What every process talking to one Proxmox cluster saw last (Apache's children): the
 * caller places it in shared memory created before fork and hands it to each process's
 * client, which updates it with atomic operations after every call. */
typedef struct {
    volatile apr_uint64_t last;         /* (ms since the epoch << 4) | outcome; 0: none yet */
    volatile apr_uint32_t calls;
    volatile apr_uint32_t connects;
} ospab_pve_shared_t;

/* Told of every call that reached curl when it ends: its method, the path as given
 * (relative to /api2/json), its outcome and how long the transfer took. Runs on the
 * caller's thread; must be cheap and must not call the client. */
typedef void ospab_pve_observe_fn(void *baton, const char *method, const char *path,
                                  int outcome, apr_interval_time_t took);

typedef struct {
    const char *url;            /* "https://pve.example.com:8006" (no /api2/json) */
    const char *token;          /* "USER@REALM!TOKENID=SECRET" (the header adds PVEAPIToken=) */
    const char *ca_file;        /* PEM CA bundle to verify the server; NULL: system store */
    const char *ca_pem;         /* or the bundle's contents (read at start-up by a process
                                 * that may read the file); wins over ca_file */
    long connect_timeout_ms;    /* e.g. 3000 */
    long timeout_ms;            /* whole call, e.g. 10000 */
    apr_size_t max_response;    /* bytes; larger answers fail as OSPAB_PVE_BAD_RESPONSE */
    int max_handles;            /* easy handles kept for reuse (e.g. 8) */
    ospab_pve_shared_t *shared; /* NULL: the stats are this process's alone */
    ospab_pve_observe_fn *observe;  /* NULL: nobody is told (metrics) */
    void *observe_baton;
} ospab_pve_conf_t;

typedef struct ospab_pve_t ospab_pve_t;

typedef enum {
    OSPAB_PVE_OK,               /* 2xx with a {"data":...} envelope */
    OSPAB_PVE_HTTP_ERROR,       /* Proxmox answered with an error status (4xx/5xx/59x) */
    OSPAB_PVE_UNREACHABLE,      /* connect/TLS/DNS failure, connection dropped */
    OSPAB_PVE_TIMEOUT,          /* connect or total timeout */
    OSPAB_PVE_BAD_RESPONSE      /* not JSON, no envelope, too large */
} ospab_pve_outcome_e;

typedef struct {
    ospab_pve_outcome_e outcome;
    int http_status;            /* 0 when there was no HTTP answer */
    const char *message;        /* Proxmox's message (first line, no trailing newline), the
                                 * status line's reason, or what went wrong locally */
    json_t *errors;             /* {"param":"msg"} of a 400, or NULL; owned by the pool */
    json_t *data;               /* the envelope's "data" (may be JSON null); owned by pool */
    int tls;                    /* OSPAB_PVE_UNREACHABLE because of TLS: the certificate
                                 * not trusted, the CA unusable, the handshake failed */
} ospab_pve_result_t;

/* A request parameter; values are already text ("1"/"0" for booleans). */
typedef struct {
    const char *name;
    const char *value;
} ospab_pve_param_t;

/* The one check of a configured Proxmox API base and token, for the module's directives
 * and the agent's config file alike: NULL when fine, else why not (never the token). The
 * URL is https://host[:port] (a trailing '/' is allowed); the token
 * USER@REALM!TOKENID=SECRET as Proxmox shows it, TOKENID [A-Za-z][A-Za-z0-9._-]+. */
const char *ospab_pve_url_problem(const char *url);
const char *ospab_pve_token_problem(const char *token);

/* p lives as long as the client (the child's pool): handles are cleaned up with it.
 * curl_global_init is the caller's business (once per process, before threads). */
apr_status_t ospab_pve_create(apr_pool_t *p, const ospab_pve_conf_t *conf, ospab_pve_t **pve);

/* A client that answers from fn instead of Proxmox, for the in-process unit tests of the
 * core (tests/unit/fixture.c): fn fills res as the real client would (outcome, http_status,
 * message, data allocated from p or owned by p) and returns what ospab_pve_call would.
 * Calls through it count in ospab_pve_stats. */
typedef apr_status_t ospab_pve_stub_fn(void *baton, apr_pool_t *p, const char *method,
                                       const char *path, const ospab_pve_param_t *params,
                                       ospab_pve_result_t *res);
apr_status_t ospab_pve_create_stub(apr_pool_t *p, long timeout_ms, ospab_pve_stub_fn *fn,
                                   void *baton, ospab_pve_t **pve);

/* method "GET"|"POST"|"PUT"|"DELETE"; path relative to /api2/json, e.g.
 * "/nodes/pve1/lxc/100/status/start" — build it with ospab_pve_path() so that every
 * segment is URL-encoded. GET and DELETE send params in the query string, POST and PUT as
 * an application/x-www-form-urlencoded body. params is terminated by a {NULL, NULL}
 * entry, or may be NULL. Always fills res (allocated from p); returns APR_SUCCESS only
 * when res->outcome is OSPAB_PVE_OK. Thread-safe. Never logs secrets. */
apr_status_t ospab_pve_call(ospab_pve_t *pve, apr_pool_t *p, const char *method,
                            const char *path, const ospab_pve_param_t *params,
                            ospab_pve_result_t *res);

/* ospab_pve_call within a budget shared by several calls: the call's timeout is what is
 * left until deadline (never more than the configured total), so a request that talks to
 * Proxmox several times still ends within one timeout. deadline 0: no shared budget. */
apr_status_t ospab_pve_call_until(ospab_pve_t *pve, apr_pool_t *p, apr_time_t deadline,
                                  const char *method, const char *path,
                                  const ospab_pve_param_t *params, ospab_pve_result_t *res);
/* Several calls at once over libcurl multi (one thread, up to max_parallel transfers in
 * flight, connections reused from each client's pool). Each request names its client, so
 * one batch may span clusters. Fills every res/rv; returns APR_SUCCESS unless the batch
 * itself could not run. */
typedef struct {
    ospab_pve_t *pve;                   /* in */
    const char *method, *path;          /* in */
    const ospab_pve_param_t *params;    /* in, may be NULL */
    void *data;                         /* in, the caller's */
    ospab_pve_result_t res;             /* out */
    apr_status_t rv;                    /* out */
} ospab_pve_req_t;

apr_status_t ospab_pve_call_many(apr_pool_t *p, apr_time_t deadline, ospab_pve_req_t *reqs,
                                 int n, int max_parallel);

/* As ospab_pve_call_many, and done(reqs, k, arg) is called as soon as reqs[k] has its
 * answer (res/rv filled), in the calling thread, while the others are still in flight:
 * a caller can act on each answer without waiting for the slowest. done may be NULL. */
typedef void ospab_pve_done_fn(ospab_pve_req_t *reqs, int k, void *arg);

apr_status_t ospab_pve_call_each(apr_pool_t *p, apr_time_t deadline, ospab_pve_req_t *reqs,
                                 int n, int max_parallel, ospab_pve_done_fn *done, void *arg);

/* start + the configured total timeout */
apr_time_t ospab_pve_deadline(ospab_pve_t *pve, apr_time_t start);

/* "/nodes/<node>/lxc/<vmid>/..." with every segment URL-encoded; segments end with NULL:
 * ospab_pve_path(p, "nodes", node, "tasks", upid, "status", NULL). */
const char *ospab_pve_path(apr_pool_t *p, ...);

/* Proxmox's message of a failed call with its per-parameter errors, for logs and admins:
 * "Parameter verification failed. (rootfs: invalid format ...)". */
const char *ospab_pve_message(apr_pool_t *p, const ospab_pve_result_t *r);

/* s percent-encoded but for RFC 3986's unreserved characters: what parameters of the
 * schema's format "urlencoded" take (qemu-server's sshkeys), before the form encodes the
 * value again. */
const char *ospab_pve_urlencoded(apr_pool_t *p, const char *s);

/* Numbers may arrive as JSON numbers or as strings ("100", "0.25"): both are accepted.
 * Return 1 and set *out when v converts, 0 otherwise (NULL, other types, text that is not
 * a number). ospab_pve_int takes integers, integral reals (100.0) and decimal integer
 * strings that fit in 64 bits; ospab_pve_double takes any JSON number or a string in
 * JSON number syntax. */
int ospab_pve_int(json_t *v, apr_int64_t *out);
int ospab_pve_double(json_t *v, double *out);

/* What a client has done since ospab_pve_create (for health output and tests); with
 * conf->shared, calls, connections and the latest outcome are those of every process. */
typedef struct {
    apr_uint64_t calls;         /* transfers attempted */
    apr_uint64_t connects;      /* new TCP connections they needed (the rest reused one) */
    int idle_handles;           /* easy handles kept for the next call */
    int last_outcome;           /* ospab_pve_outcome_e of the latest call; -1: none yet */
    apr_time_t last_at;         /* when it ended */
} ospab_pve_stats_t;

void ospab_pve_stats(ospab_pve_t *pve, ospab_pve_stats_t *out);

/* UPID:<node>:<pid %08X>:<pstart %08X or 9 hex>:<starttime %08X>:<type>:<id>:<user>: */
typedef struct {
    const char *node;
    unsigned long pid;
    unsigned long long pstart;
    unsigned long starttime;
    const char *type;           /* vzstart, vzcreate, ... */
    const char *id;             /* "100", may be empty */
    const char *user;           /* root@pam or root@pam!token */
} ospab_upid_t;

/* APR_SUCCESS and *out filled (strings from p) when s is a well-formed UPID. */
apr_status_t ospab_upid_parse(apr_pool_t *p, const char *s, ospab_upid_t *out);

#endif
