/* ospab core: the Proxmox VE API client (libcurl easy handles kept for keep-alive, jansson
 * for the {"data":...} envelope) and UPID parsing. What it relies on of the API (docs/
 * proxmox.md has the whole list): every answer is {"data": ...}, a refusal has its
 * message in the status line's reason phrase and a 400 lists field errors in "errors";
 * parameters go in the query string for GET and DELETE, as a form for POST and PUT; a
 * long action answers at once with the UPID of its task. */
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>

#include <apr_atomic.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_thread_mutex.h>
#include <curl/curl.h>

#include "ospab_json.h"
#include "ospab_pve.h"

/* Proxmox puts the whole first line of its message into the reason phrase; anything
 * longer than this is not worth keeping as a fallback message. */
#define PVE_REASON_MAX 512

struct ospab_pve_t {
    apr_pool_t *pool;
    const char *base;               /* conf->url without trailing '/', plus "/api2/json" */
    const char *ca_file;
    const char *ca_pem;
    long connect_timeout_ms;
    long timeout_ms;
    apr_size_t max_response;
    int max_handles;
    struct curl_slist *headers;     /* Authorization, Accept, no Expect; read-only once built */
    apr_thread_mutex_t *mutex;      /* guards idle, nidle and the counters */
    CURL **idle;                    /* handles waiting for the next call (a stack) */
    int nidle;
    int closed;                     /* the pool cleanup ran: late handles are freed */
    apr_uint64_t calls;
    apr_uint64_t connects;
    int last_outcome;               /* -1 until the first call */
    apr_time_t last_at;
    ospab_pve_shared_t *shared;     /* or every process's (apr_atomic) */
    ospab_pve_observe_fn *observe;  /* conf->observe */
    void *observe_baton;
    ospab_pve_stub_fn *stub;        /* answers instead of Proxmox (unit tests); NULL */
    void *stub_baton;
};

/* What one transfer collects; lives on the caller's stack. */
typedef struct {
    char *buf;                      /* malloc'd body, NUL-terminated when non-NULL */
    apr_size_t len, cap, max;
    int too_large;
    int no_memory;
    char reason[PVE_REASON_MAX];
} pve_xfer_t;

enum { PVE_GET, PVE_POST, PVE_PUT, PVE_DELETE };

/* --- the handle pool -------------------------------------------------------------- */

static void wipe_headers(struct curl_slist *h)
{
    for (; h; h = h->next) {
        if (h->data) {
            memset(h->data, 0, strlen(h->data));   /* the token must not outlive us */
        }
    }
}

static apr_status_t pve_cleanup(void *data)
{
    ospab_pve_t *pve = data;

    apr_thread_mutex_lock(pve->mutex);
    while (pve->nidle > 0) {
        curl_easy_cleanup(pve->idle[--pve->nidle]);
    }
    pve->closed = 1;
    if (pve->headers) {
        wipe_headers(pve->headers);
        curl_slist_free_all(pve->headers);
        pve->headers = NULL;
    }
    apr_thread_mutex_unlock(pve->mutex);
    return APR_SUCCESS;
}

static CURL *pve_take(ospab_pve_t *pve)
{
    CURL *h = NULL;

    apr_thread_mutex_lock(pve->mutex);
    if (pve->nidle > 0) {
        h = pve->idle[--pve->nidle];
    }
    apr_thread_mutex_unlock(pve->mutex);
    return h ? h : curl_easy_init();
}

static void pve_give(ospab_pve_t *pve, CURL *h, long connects)
{
    apr_thread_mutex_lock(pve->mutex);
    pve->calls++;
    pve->connects += (apr_uint64_t)(connects > 0 ? connects : 0);
    if (pve->shared) {
        apr_atomic_inc32(&pve->shared->calls);
        apr_atomic_add32(&pve->shared->connects, (apr_uint32_t)(connects > 0 ? connects : 0));
    }
    if (!pve->closed && pve->nidle < pve->max_handles) {
        pve->idle[pve->nidle++] = h;
        h = NULL;
    }
    apr_thread_mutex_unlock(pve->mutex);
    if (h) {
        curl_easy_cleanup(h);
    }
}

static int has_ctl(const char *s)
{
    for (; *s; ++s) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return 1;
        }
    }
    return 0;
}

apr_status_t ospab_pve_create(apr_pool_t *p, const ospab_pve_conf_t *conf, ospab_pve_t **out)
{
    ospab_pve_t *pve;
    apr_size_t n;
    char *url;
    struct curl_slist *h = NULL, *next;
    apr_status_t rv;

    *out = NULL;
    if (!conf || !conf->url || !conf->token || !*conf->token || has_ctl(conf->token)
        || has_ctl(conf->url)
        || (strncmp(conf->url, "https://", 8) && strncmp(conf->url, "http://", 7))
        || conf->connect_timeout_ms <= 0 || conf->timeout_ms <= 0
        || conf->max_response == 0 || conf->max_handles < 0) {
        return APR_EINVAL;          /* a 0 timeout would mean "wait for ever" to libcurl */
    }
    pve = apr_pcalloc(p, sizeof(*pve));
    pve->last_outcome = -1;
    pve->shared = conf->shared;
    pve->observe = conf->observe;
    pve->observe_baton = conf->observe_baton;
    pve->pool = p;
    url = apr_pstrdup(p, conf->url);
    n = strlen(url);
    while (n > 0 && url[n - 1] == '/') {
        url[--n] = '\0';
    }
    pve->base = apr_pstrcat(p, url, "/api2/json", NULL);
    pve->ca_file = conf->ca_file && *conf->ca_file ? apr_pstrdup(p, conf->ca_file) : NULL;
    pve->ca_pem = conf->ca_pem && *conf->ca_pem ? apr_pstrdup(p, conf->ca_pem) : NULL;
    pve->connect_timeout_ms = conf->connect_timeout_ms;
    pve->timeout_ms = conf->timeout_ms;
    pve->max_response = conf->max_response;
    pve->max_handles = conf->max_handles;
    pve->idle = apr_pcalloc(p, sizeof(CURL *) * (apr_size_t)(conf->max_handles + 1));

    rv = apr_thread_mutex_create(&pve->mutex, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    {
        char *auth = apr_pstrcat(p, "Authorization: PVEAPIToken=", conf->token, NULL);

        h = curl_slist_append(NULL, auth);
        memset(auth, 0, strlen(auth));
    }
    if (h && (next = curl_slist_append(h, "Accept: application/json")) != NULL) {
        h = next;
        /* POST bodies over 1 KiB would otherwise wait for a "100 Continue" first */
        next = curl_slist_append(h, "Expect:");
    }
    else {
        next = NULL;
    }
    if (!next) {
        if (h) {
            wipe_headers(h);
            curl_slist_free_all(h);
        }
        return APR_ENOMEM;
    }
    pve->headers = next;
    /* registered after the mutex was made, so it runs before the mutex goes */
    apr_pool_cleanup_register(p, pve, pve_cleanup, apr_pool_cleanup_null);
    *out = pve;
    return APR_SUCCESS;
}

void ospab_pve_stats(ospab_pve_t *pve, ospab_pve_stats_t *out)
{
    apr_thread_mutex_lock(pve->mutex);
    out->calls = pve->calls;
    out->connects = pve->connects;
    out->idle_handles = pve->nidle;
    out->last_outcome = pve->last_outcome;
    out->last_at = pve->last_at;
    apr_thread_mutex_unlock(pve->mutex);
    if (pve->shared) {
        apr_uint64_t last = apr_atomic_read64(&pve->shared->last);

        out->calls = apr_atomic_read32(&pve->shared->calls);
        out->connects = apr_atomic_read32(&pve->shared->connects);
        out->last_outcome = last ? (int)(last & 15) : -1;
        out->last_at = last ? apr_time_from_msec((apr_time_t)(last >> 4)) : 0;
    }
}

/* --- encoding ------------------------------------------------------------------------ */

/* RFC 3986 percent-encoding: everything but ALPHA DIGIT - . _ ~ (what curl_easy_escape
 * does, without its malloc). Good for path segments and for form fields alike. */
static char *pve_escape(apr_pool_t *p, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    apr_size_t n = 0;
    const unsigned char *c;
    char *out, *o;

    for (c = (const unsigned char *)s; *c; ++c) {
        n += apr_isalnum(*c) || *c == '-' || *c == '.' || *c == '_' || *c == '~' ? 1 : 3;
    }
    o = out = apr_palloc(p, n + 1);
    for (c = (const unsigned char *)s; *c; ++c) {
        if (apr_isalnum(*c) || *c == '-' || *c == '.' || *c == '_' || *c == '~') {
            *o++ = (char)*c;
        }
        else {
            *o++ = '%';
            *o++ = hex[*c >> 4];
            *o++ = hex[*c & 15];
        }
    }
    *o = '\0';
    return out;
}

const char *ospab_pve_message(apr_pool_t *p, const ospab_pve_result_t *r)
{
    const char *m = r->message ? r->message : "failed", *key;
    const char *sep = " (";
    json_t *v;

    json_object_foreach(r->errors, key, v) {
        m = apr_pstrcat(p, m, sep, key, ": ", json_is_string(v) ? json_string_value(v) : "?",
                        NULL);
        sep = "; ";
    }
    return r->errors && json_object_size(r->errors) ? apr_pstrcat(p, m, ")", NULL) : m;
}

const char *ospab_pve_urlencoded(apr_pool_t *p, const char *s)
{
    return pve_escape(p, s);
}

const char *ospab_pve_path(apr_pool_t *p, ...)
{
    apr_array_header_t *segs = apr_array_make(p, 8, sizeof(const char *));
    const char *seg;
    va_list ap;

    APR_ARRAY_PUSH(segs, const char *) = "";
    va_start(ap, p);
    while ((seg = va_arg(ap, const char *)) != NULL) {
        APR_ARRAY_PUSH(segs, const char *) = pve_escape(p, seg);
    }
    va_end(ap);
    if (segs->nelts == 1) {
        return "/";
    }
    return apr_array_pstrcat(p, segs, '/');
}

/* "a=1&b=x%20y"; params with a NULL value are left out. "" when there are none. */
static const char *pve_form(apr_pool_t *p, const ospab_pve_param_t *params)
{
    apr_array_header_t *parts = apr_array_make(p, 8, sizeof(const char *));

    for (; params && params->name; ++params) {
        if (params->value) {
            APR_ARRAY_PUSH(parts, const char *) =
                apr_pstrcat(p, pve_escape(p, params->name), "=",
                            pve_escape(p, params->value), NULL);
        }
    }
    return apr_array_pstrcat(p, parts, '&');
}

/* --- one transfer ------------------------------------------------------------------------ */

static size_t pve_on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    pve_xfer_t *x = userdata;
    size_t n = size * nmemb;
    apr_size_t want;
    char *nb;

    if (n > x->max || x->len > x->max - n) {
        x->too_large = 1;
        return 0;                   /* CURLE_WRITE_ERROR ends the transfer */
    }
    want = x->len + n + 1;
    if (want > x->cap) {
        apr_size_t cap = x->cap ? x->cap : 4096;

        while (cap < want) {
            cap *= 2;
        }
        if (cap > x->max + 1) {
            cap = x->max + 1;
        }
        if ((nb = realloc(x->buf, cap)) == NULL) {
            x->no_memory = 1;
            return 0;
        }
        x->buf = nb;
        x->cap = cap;
    }
    memcpy(x->buf + x->len, ptr, n);
    x->len += n;
    x->buf[x->len] = '\0';
    return n;
}

/* Keeps the reason phrase of the (last) status line: "HTTP/1.1 500 CT 100 already running". */
static size_t pve_on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
    pve_xfer_t *x = userdata;
    size_t n = size * nitems, i = 0, o = 0;

    if (n < 5 || memcmp(buf, "HTTP/", 5)) {
        return n;
    }
    while (i < n && buf[i] != ' ') {                    /* HTTP/1.1 */
        ++i;
    }
    while (i < n && buf[i] == ' ') {
        ++i;
    }
    while (i < n && apr_isdigit(buf[i])) {              /* 500 */
        ++i;
    }
    if (i < n && buf[i] == ' ') {
        ++i;
    }
    for (; i < n && buf[i] != '\r' && buf[i] != '\n' && o + 1 < sizeof(x->reason); ++i) {
        unsigned char c = (unsigned char)buf[i];

        /* a header is Latin-1 at best: keep ASCII so the text is valid UTF-8 JSON */
        x->reason[o++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
    }
    while (o > 0 && x->reason[o - 1] == ' ') {
        --o;
    }
    x->reason[o] = '\0';
    return n;
}

/* Proxmox's message without its trailing newline, and only the first line. */
static const char *first_line(apr_pool_t *p, const char *s)
{
    apr_size_t n = strcspn(s, "\r\n");

    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) {
        --n;
    }
    return apr_pstrmemdup(p, s, n);
}

static void map_curl_error(ospab_pve_t *pve, apr_pool_t *p, CURLcode cc, const char *errbuf,
                           const pve_xfer_t *x, ospab_pve_result_t *res)
{
    const char *detail = *errbuf ? errbuf : curl_easy_strerror(cc);

    res->outcome = OSPAB_PVE_UNREACHABLE;
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        res->outcome = OSPAB_PVE_TIMEOUT;
        res->message = apr_psprintf(p, "Proxmox did not answer in time (%s)", detail);
        break;
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
        if (x->too_large || cc == CURLE_FILESIZE_EXCEEDED) {
            res->outcome = OSPAB_PVE_BAD_RESPONSE;
            res->message = apr_psprintf(p, "response larger than %" APR_SIZE_T_FMT " bytes",
                                        pve->max_response);
        }
        else {
            res->message = x->no_memory ? "out of memory reading the Proxmox answer"
                                        : apr_psprintf(p, "Proxmox request failed (%s)", detail);
        }
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
        res->tls = 1;
        res->message = apr_psprintf(p, "the Proxmox server's TLS certificate was not trusted "
                                    "(%s)", detail);
        break;
    case CURLE_SSL_CACERT_BADFILE:
        res->tls = 1;
        res->message = apr_psprintf(p, "cannot use the CA file to verify Proxmox (%s)", detail);
        break;
    case CURLE_SSL_CONNECT_ERROR:
        res->tls = 1;
        res->message = apr_psprintf(p, "TLS handshake with Proxmox failed (%s)", detail);
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
        res->message = apr_psprintf(p, "cannot connect to Proxmox (%s)", detail);
        break;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
        res->message = apr_psprintf(p, "Proxmox dropped the connection (%s)", detail);
        break;
    default:
        res->message = apr_psprintf(p, "Proxmox request failed (%s)", detail);
        break;
    }
}

/* The HTTP answer: 2xx with an envelope is OK, other 2xx a bad response, the rest errors. */
static void map_answer(apr_pool_t *p, long status, const pve_xfer_t *x, ospab_pve_result_t *res)
{
    json_t *root = NULL, *msg;
    json_error_t jerr;

    if (x->len > 0) {
        root = json_loadb(x->buf, x->len, 0, &jerr);
        if (root) {
            ospab_json_own(p, root);
        }
    }
    if (status >= 200 && status < 300) {
        if (!json_is_object(root)) {
            res->outcome = OSPAB_PVE_BAD_RESPONSE;
            res->message = x->len ? "Proxmox answered with something that is not a JSON object"
                                  : "Proxmox answered with an empty body";
        }
        else if ((res->data = json_object_get(root, "data")) == NULL) {
            res->outcome = OSPAB_PVE_BAD_RESPONSE;
            res->message = "Proxmox's answer has no \"data\" member";
        }
        else {
            res->outcome = OSPAB_PVE_OK;
        }
        return;
    }
    res->outcome = OSPAB_PVE_HTTP_ERROR;
    if (json_is_object(root)) {
        msg = json_object_get(root, "message");
        if (json_is_string(msg) && *json_string_value(msg)) {
            res->message = first_line(p, json_string_value(msg));
        }
        res->errors = json_object_get(root, "errors");
        if (!json_is_object(res->errors)) {
            res->errors = NULL;
        }
    }
    if (!res->message || !*res->message) {
        res->message = *x->reason ? apr_pstrdup(p, x->reason)
                                  : apr_psprintf(p, "HTTP status %ld", status);
    }
}

#define PVE_SET(opt, val) \
    do { if ((cc = curl_easy_setopt(h, opt, val)) != CURLE_OK) goto leave; } while (0)

apr_status_t ospab_pve_call(ospab_pve_t *pve, apr_pool_t *p, const char *method,
                            const char *path, const ospab_pve_param_t *params,
                            ospab_pve_result_t *res)
{
    return ospab_pve_call_until(pve, p, 0, method, path, params, res);
}

apr_time_t ospab_pve_deadline(ospab_pve_t *pve, apr_time_t start)
{
    return start + apr_time_from_msec(pve->timeout_ms);
}

/* One call's transfer state; for ospab_pve_call_many it lives in the pool, for a single
 * call on the stack. */
typedef struct {
    pve_xfer_t x;
    char errbuf[CURL_ERROR_SIZE];
    CURL *h;
    CURLcode cc;
    const char *method, *path;      /* for the observer */
} pve_call_t;

/* Prepares c->h for the request. APR_SUCCESS: ready to perform. Otherwise res is set (and
 * c->h, if any, still has to go through pve_finish). */
static apr_status_t pve_setup(ospab_pve_t *pve, apr_pool_t *p, apr_time_t deadline,
                              const char *method, const char *path,
                              const ospab_pve_param_t *params, pve_call_t *c,
                              ospab_pve_result_t *res)
{
    long timeout_ms = pve->timeout_ms;
    CURL *h;
    CURLcode cc = CURLE_OK;
    const char *form, *url;
    int m;

    memset(res, 0, sizeof(*res));
    memset(c, 0, sizeof(*c));
    c->method = method ? method : "GET";
    c->path = path;
    res->outcome = OSPAB_PVE_BAD_RESPONSE;

    if (!method || !strcmp(method, "GET")) {
        m = PVE_GET;
    }
    else if (!strcmp(method, "POST")) {
        m = PVE_POST;
    }
    else if (!strcmp(method, "PUT")) {
        m = PVE_PUT;
    }
    else if (!strcmp(method, "DELETE")) {
        m = PVE_DELETE;
    }
    else {
        res->message = "unsupported HTTP method for the Proxmox API";
        return APR_EINVAL;
    }
    if (!path || path[0] != '/' || strpbrk(path, "?# \t\r\n")) {
        res->message = "invalid Proxmox API path";
        return APR_EINVAL;
    }
    form = pve_form(p, params);
    url = apr_pstrcat(p, pve->base, path,
                      (m == PVE_GET || m == PVE_DELETE) && *form ? "?" : "",
                      (m == PVE_GET || m == PVE_DELETE) ? form : "", NULL);
    if ((c->h = h = pve_take(pve)) == NULL) {
        res->outcome = OSPAB_PVE_UNREACHABLE;
        res->message = "cannot create a libcurl handle";
        return APR_ENOMEM;
    }
    c->x.max = pve->max_response;

    curl_easy_reset(h);             /* keeps the handle's connection cache: keep-alive */
    PVE_SET(CURLOPT_ERRORBUFFER, c->errbuf);
    PVE_SET(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    PVE_SET(CURLOPT_PROTOCOLS_STR, "https,http");
#else
    PVE_SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTPS | CURLPROTO_HTTP));
#endif
    PVE_SET(CURLOPT_URL, url);
    PVE_SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);  /* reason phrases */
    if (deadline) {
        /* what is left of the caller's budget, at least 1 ms (0 would mean no limit) */
        apr_interval_time_t left = deadline - apr_time_now();

        timeout_ms = left < apr_time_from_msec(1) ? 1 : (long)apr_time_as_msec(left);
        if (timeout_ms > pve->timeout_ms) {
            timeout_ms = pve->timeout_ms;
        }
    }
    PVE_SET(CURLOPT_CONNECTTIMEOUT_MS, pve->connect_timeout_ms < timeout_ms
                                       ? pve->connect_timeout_ms : timeout_ms);
    PVE_SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    PVE_SET(CURLOPT_SSL_VERIFYPEER, 1L);
    PVE_SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (pve->ca_pem) {
        struct curl_blob blob;

        blob.data = (void *)pve->ca_pem;
        blob.len = strlen(pve->ca_pem);
        blob.flags = CURL_BLOB_NOCOPY;
        PVE_SET(CURLOPT_CAINFO_BLOB, &blob);
    }
    else if (pve->ca_file) {
        PVE_SET(CURLOPT_CAINFO, pve->ca_file);
    }
    PVE_SET(CURLOPT_HTTPHEADER, pve->headers);
    PVE_SET(CURLOPT_USERAGENT, "ospab-panel");
    PVE_SET(CURLOPT_FOLLOWLOCATION, 0L);
    PVE_SET(CURLOPT_TCP_KEEPALIVE, 1L);
    PVE_SET(CURLOPT_TCP_KEEPIDLE, 30L);
    PVE_SET(CURLOPT_TCP_KEEPINTVL, 15L);
    PVE_SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)pve->max_response);
    PVE_SET(CURLOPT_WRITEFUNCTION, pve_on_body);
    PVE_SET(CURLOPT_WRITEDATA, &c->x);
    PVE_SET(CURLOPT_HEADERFUNCTION, pve_on_header);
    PVE_SET(CURLOPT_HEADERDATA, &c->x);
    switch (m) {
    case PVE_POST:
    case PVE_PUT:
        /* libcurl sends Content-Type: application/x-www-form-urlencoded with these */
        PVE_SET(CURLOPT_POST, 1L);
        PVE_SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(form));
        PVE_SET(CURLOPT_POSTFIELDS, form);
        if (m == PVE_PUT) {
            PVE_SET(CURLOPT_CUSTOMREQUEST, "PUT");
        }
        break;
    case PVE_DELETE:
        PVE_SET(CURLOPT_HTTPGET, 1L);   /* Proxmox reads a DELETE's parameters from the
                                         * query string: it carries no body */
        PVE_SET(CURLOPT_CUSTOMREQUEST, "DELETE");
        break;
    default:
        PVE_SET(CURLOPT_HTTPGET, 1L);
        break;
    }
    return APR_SUCCESS;

leave:
    c->cc = cc;
    return APR_EGENERAL;
}

/* Collects a performed (or failed to set up) transfer into res and gives the handle back. */
static apr_status_t pve_finish(ospab_pve_t *pve, apr_pool_t *p, pve_call_t *c,
                               ospab_pve_result_t *res)
{
    long status = 0, connects = 0;
    curl_off_t took = 0;

    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c->h, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(c->h, CURLINFO_TOTAL_TIME_T, &took);
    /* the error buffer and the callbacks' data belong to c */
    curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(c->h, CURLOPT_HEADERDATA, NULL);
    pve_give(pve, c->h, connects);
    c->h = NULL;

    res->http_status = (int)status;
    if (c->cc != CURLE_OK) {
        map_curl_error(pve, p, c->cc, c->errbuf, &c->x, res);
    }
    else {
        map_answer(p, status, &c->x, res);
    }
    free(c->x.buf);
    c->x.buf = NULL;
    apr_thread_mutex_lock(pve->mutex);
    pve->last_outcome = (int)res->outcome;
    pve->last_at = apr_time_now();
    if (pve->shared) {
        /* one word, so a reader never sees one call's outcome with another's time */
        apr_atomic_set64(&pve->shared->last, ((apr_uint64_t)apr_time_as_msec(pve->last_at) << 4)
                                             | (apr_uint64_t)res->outcome);
    }
    apr_thread_mutex_unlock(pve->mutex);
    if (pve->observe) {
        pve->observe(pve->observe_baton, c->method, c->path, (int)res->outcome,
                     (apr_interval_time_t)took);
    }
    if (res->outcome == OSPAB_PVE_OK) {
        return APR_SUCCESS;
    }
    return res->outcome == OSPAB_PVE_TIMEOUT ? APR_TIMEUP : APR_EGENERAL;
}

/* A stub client's answer, counted as a call. */
static apr_status_t stub_call(ospab_pve_t *pve, apr_pool_t *p, const char *method,
                              const char *path, const ospab_pve_param_t *params,
                              ospab_pve_result_t *res)
{
    apr_status_t rv;

    memset(res, 0, sizeof(*res));
    rv = pve->stub(pve->stub_baton, p, method, path, params, res);
    apr_thread_mutex_lock(pve->mutex);
    pve->calls++;
    pve->last_outcome = (int)res->outcome;
    pve->last_at = apr_time_now();
    apr_thread_mutex_unlock(pve->mutex);
    return rv;
}

apr_status_t ospab_pve_create_stub(apr_pool_t *p, long timeout_ms, ospab_pve_stub_fn *fn,
                                   void *baton, ospab_pve_t **out)
{
    ospab_pve_t *pve = apr_pcalloc(p, sizeof(*pve));
    apr_status_t rv;

    pve->pool = p;
    pve->base = "stub:";
    pve->timeout_ms = timeout_ms;
    pve->last_outcome = -1;
    pve->stub = fn;
    pve->stub_baton = baton;
    if ((rv = apr_thread_mutex_create(&pve->mutex, APR_THREAD_MUTEX_DEFAULT, p))
        != APR_SUCCESS) {
        return rv;
    }
    *out = pve;
    return APR_SUCCESS;
}

apr_status_t ospab_pve_call_until(ospab_pve_t *pve, apr_pool_t *p, apr_time_t deadline,
                                  const char *method, const char *path,
                                  const ospab_pve_param_t *params, ospab_pve_result_t *res)
{
    pve_call_t c;
    apr_status_t rv;

    if (pve->stub) {
        return stub_call(pve, p, method, path, params, res);
    }
    rv = pve_setup(pve, p, deadline, method, path, params, &c, res);

    if (rv == APR_SUCCESS) {
        c.cc = curl_easy_perform(c.h);
    }
    else if (!c.h) {
        return rv;
    }
    return pve_finish(pve, p, &c, res);
}

apr_status_t ospab_pve_call_many(apr_pool_t *p, apr_time_t deadline, ospab_pve_req_t *reqs,
                                 int n, int max_parallel)
{
    return ospab_pve_call_each(p, deadline, reqs, n, max_parallel, NULL, NULL);
}

apr_status_t ospab_pve_call_each(apr_pool_t *p, apr_time_t deadline, ospab_pve_req_t *reqs,
                                 int n, int max_parallel, ospab_pve_done_fn *done_fn, void *arg)
{
    pve_call_t *calls = apr_pcalloc(p, sizeof(*calls) * (apr_size_t)(n > 0 ? n : 1));
    CURLM *multi;
    int next = 0, running = 0, done = 0;

    if (n <= 0) {
        return APR_SUCCESS;
    }
    if (max_parallel < 1) {
        max_parallel = 1;
    }
    if ((multi = curl_multi_init()) == NULL) {
        return APR_ENOMEM;
    }
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_parallel);
    while (done < n) {
        CURLMsg *msg;
        int left;

        /* keep up to max_parallel transfers going */
        while (next < n && running < max_parallel) {
            ospab_pve_req_t *r = &reqs[next];

            if (r->pve->stub) {
                r->rv = stub_call(r->pve, p, r->method, r->path, r->params, &r->res);
                done++;
                if (done_fn) {
                    done_fn(reqs, next, arg);
                }
                next++;
                continue;
            }
            r->rv = pve_setup(r->pve, p, deadline, r->method, r->path, r->params,
                              &calls[next], &r->res);
            if (r->rv == APR_SUCCESS) {
                curl_easy_setopt(calls[next].h, CURLOPT_PRIVATE, (void *)(apr_uintptr_t)next);
                curl_multi_add_handle(multi, calls[next].h);
                running++;
            }
            else {
                if (calls[next].h) {
                    r->rv = pve_finish(r->pve, p, &calls[next], &r->res);
                }
                done++;
                if (done_fn) {
                    done_fn(reqs, next, arg);
                }
            }
            next++;
        }
        if (!running) {
            continue;
        }
        {
            int still = 0;

            curl_multi_perform(multi, &still);
            while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
                void *priv = NULL;
                int k;

                if (msg->msg != CURLMSG_DONE) {
                    continue;
                }
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
                k = (int)(apr_uintptr_t)priv;
                calls[k].cc = msg->data.result;
                curl_multi_remove_handle(multi, calls[k].h);
                reqs[k].rv = pve_finish(reqs[k].pve, p, &calls[k], &reqs[k].res);
                running--;
                done++;
                if (done_fn) {
                    done_fn(reqs, k, arg);
                }
            }
            if (running) {
                curl_multi_poll(multi, NULL, 0, 100, NULL);
            }
        }
    }
    curl_multi_cleanup(multi);
    return APR_SUCCESS;
}
