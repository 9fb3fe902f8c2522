/* ospab-agent: the console proxy (see agent_console.h, docs/console.md).
 *
 * A session joins two WebSockets: the page's (a server connection on the live-push
 * listener) and Proxmox's vncwebsocket (a client connection over TLS). Its life:
 *
 *   TOKEN       the page's first message {"token":…} is awaited
 *   OPENING     a console worker redeems the token, checks the user and the server, and
 *               asks Proxmox for termproxy or vncproxy (websocket=1)
 *   CONNECTING  the client connection to the vncwebsocket is being made
 *   PVE_AUTH    the handshake with Proxmox: the terminal's "user:ticket" line and its
 *               "OK", or RFB 3.8 with VNC authentication answered with the ticket
 *   PAGE_RFB    VNC only: towards the page the agent is an RFB 3.8 server offering
 *               security type None, so noVNC asks for no password
 *   RELAY       bytes both ways, as they come
 *
 * Each direction has a queue of buffers. Above half of max_buffer the side that fills it
 * is no longer read (lws_rx_flow_control) until the other side has taken the queue below
 * a quarter: a slow browser slows Proxmox's sending, never the agent's memory. A session
 * is freed when both connections are gone and no worker holds a request of it (requests
 * carry the session's number, never its address). */
/* VNC authentication is single DES, which OpenSSL 3 keeps only in its deprecated
 * low-level API (EVP's DES-ECB needs the legacy provider) */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <stdlib.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_uri.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <openssl/des.h>

#include "agent_console.h"
#include "agent_ctx.h"
#include "agent_log.h"
#include "ospab_cluster.h"
#include "ospab_console.h"
#include "ospab_pve.h"
#include "ospab_result.h"
#include "ospab_user.h"
#include "ospab_vps.h"

#define CON_PROTOCOL        "ospab-console"
#define CON_FIRST_MAX       1024        /* the page's first message */
#define CON_HS_MAX          1024        /* handshake bytes gathered from one side */
#define CON_CHECK_EVERY     apr_time_from_sec(5)
#define CON_MAX_CLIENT_VHOSTS 64        /* different CAs (clusters) at once */
#define CON_CLOSE_SECS      10          /* a closing side's last bytes, then it is cut */

/* close codes towards the page (docs/console.md) */
#define CLOSE_PROTOCOL      4400        /* the page broke the protocol */
#define CLOSE_TOKEN         4401        /* unknown, used or expired token */
#define CLOSE_FORBIDDEN     4403        /* not the user's, suspended, deleted, disabled */
#define CLOSE_TIMEOUT       4408        /* idle, or the opening took too long */
#define CLOSE_BUSY          4429        /* too many consoles */
#define CLOSE_PROXMOX       4502        /* Proxmox refused, failed or dropped the console */
#define CLOSE_UNAVAILABLE   4503        /* the database did not answer; the agent stops */

enum { ST_TOKEN, ST_OPENING, ST_CONNECTING, ST_PVE_AUTH, ST_PAGE_RFB, ST_RELAY, ST_CLOSING };
enum { HS_TERM_OK, HS_VNC_VERSION, HS_VNC_TYPES, HS_VNC_CHALLENGE, HS_VNC_RESULT, HS_DONE };
enum { REQ_OPEN, REQ_END };

typedef struct con_buf_t {
    struct con_buf_t *next;
    apr_size_t len;
    int text;
    unsigned char *data;                /* LWS_PRE bytes of headroom before it */
    unsigned char mem[];
} con_buf_t;

typedef struct {
    con_buf_t *head, *tail;
    apr_size_t bytes;
} con_q_t;

/* A worker's job. */
typedef struct con_req_t {
    struct con_req_t *next;
    int type;
    apr_uint64_t num;
    char *token;                        /* REQ_OPEN */
    /* REQ_END: the audit of the session's end */
    char *user_id, *server_id, *reason;
    int kind;
    apr_interval_time_t lasted;
    apr_uint64_t up, down;
} con_req_t;

/* A worker's answer, for the service thread. */
typedef struct con_res_t {
    struct con_res_t *next;
    apr_uint64_t num;
    int open;                           /* the answer to the session's REQ_OPEN */
    int code;                           /* 0: open it; else close the page with it */
    char *message;                      /* the page's words */
    int counted;                        /* a place of the user's is held for it */
    char *user_id, *server_id, *name;
    int kind;                           /* OSPAB_CONSOLE_* */
    /* the vncwebsocket */
    char *host, *path, *auth, *hello, *ca_key, *ca_pem, *ca_file;
    int port;
    unsigned char vnc_key[8];
} con_res_t;

typedef struct con_sess_t {
    agent_console_t *c;
    struct con_sess_t *prev, *next;
    apr_uint64_t num;
    int state, hs;
    int kind;
    struct lws *page, *pve;
    int counted, worker_busy, audited_open;
    char *user_id, *server_id, *name;
    con_res_t *res;                     /* the open answer, until connected */
    unsigned char first[CON_FIRST_MAX];
    apr_size_t first_len;
    unsigned char hsbuf[CON_HS_MAX];    /* Proxmox's handshake, then the page's RFB one */
    apr_size_t hs_len;
    con_q_t to_page, to_pve, held;      /* held: Proxmox's bytes during PAGE_RFB */
    int page_paused, pve_paused;        /* wanted (flow_check) */
    int page_rx_off, pve_rx_off;        /* applied (flow_apply) */
    int close_code;                     /* non-zero: the page is to be closed with it */
    char close_reason[120];
    int pve_close;                      /* the Proxmox side is to be closed */
    apr_time_t started, last_io;
    apr_uint64_t up, down;              /* bytes to the guest, to the browser */
    lws_sorted_usec_list_t sul;         /* the open and idle timeouts */
    lws_sorted_usec_list_t flow_sul;    /* flow_apply */
} con_sess_t;

struct agent_console_t {
    agent_t *ag;
    apr_pool_t *pool;
    agent_console_conf_t conf;
    struct lws_context *ctx;
    struct lws_protocols protocols[2];  /* the console's, for the client vhosts */

    /* the default cluster (the file's first [cluster]) and the registered ones */
    int has_default;
    ospab_pve_conf_t def_conf;
    ospab_pve_t *def_client;
    ospab_clusters_t *clusters;

    apr_thread_mutex_t *mutex;          /* guards what follows up to "service thread" */
    con_req_t *req_head, *req_tail;
    con_res_t *res_head, *res_tail;
    apr_hash_t *per_user;               /* user id -> int*, places held */
    apr_hash_t *live;                   /* num -> con_live_t*, relaying sessions */
    apr_time_t next_check;
    agent_console_stats_t stats;

    /* service thread */
    apr_hash_t *sessions;               /* num -> con_sess_t* */
    apr_hash_t *vhosts;                 /* CA key -> struct lws_vhost* */
    int nvhosts;
    con_sess_t *head;
    apr_uint64_t next_num;
};

/* What the recheck needs of a relaying session (under the mutex). */
typedef struct {
    apr_uint64_t num;
    char user_id[24], server_id[24];
} con_live_t;

/* ---------------------------------------------------------------- queues -- */

static con_buf_t *buf_new(const void *data, apr_size_t len, int text)
{
    con_buf_t *b = malloc(sizeof(*b) + LWS_PRE + len);

    if (!b)
        return NULL;
    b->next = NULL;
    b->len = len;
    b->text = text;
    b->data = b->mem + LWS_PRE;
    if (len)
        memcpy(b->data, data, len);
    return b;
}

static int q_push(con_q_t *q, const void *data, apr_size_t len, int text)
{
    con_buf_t *b = buf_new(data, len, text);

    if (!b)
        return -1;
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    q->bytes += len;
    return 0;
}

static con_buf_t *q_pop(con_q_t *q)
{
    con_buf_t *b = q->head;

    if (b) {
        q->head = b->next;
        if (!q->head)
            q->tail = NULL;
        q->bytes -= b->len;
    }
    return b;
}

/* moves everything of from to the end of to */
static void q_move(con_q_t *to, con_q_t *from)
{
    if (!from->head)
        return;
    if (to->tail)
        to->tail->next = from->head;
    else
        to->head = from->head;
    to->tail = from->tail;
    to->bytes += from->bytes;
    memset(from, 0, sizeof(*from));
}

static void q_free(con_q_t *q)
{
    con_buf_t *b;

    while ((b = q_pop(q)) != NULL)
        free(b);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void res_free(con_res_t *r)
{
    if (!r)
        return;
    free(r->message);
    free(r->user_id);
    free(r->server_id);
    free(r->name);
    free(r->host);
    free(r->path);
    free(r->auth);
    free(r->hello);
    free(r->ca_key);
    free(r->ca_pem);
    free(r->ca_file);
    OPENSSL_cleanse(r->vnc_key, sizeof(r->vnc_key));
    free(r);
}

static void req_free(con_req_t *q)
{
    if (!q)
        return;
    if (q->token) {
        OPENSSL_cleanse(q->token, strlen(q->token));
        free(q->token);
    }
    free(q->user_id);
    free(q->server_id);
    free(q->reason);
    free(q);
}

/* ------------------------------------------------------ the user's places -- */

/* under the mutex */
static int *places_of(agent_console_t *c, const char *user_id, int create)
{
    int *n = apr_hash_get(c->per_user, user_id, APR_HASH_KEY_STRING);

    if (!n && create) {
        n = apr_pcalloc(c->pool, sizeof(*n));
        apr_hash_set(c->per_user, apr_pstrdup(c->pool, user_id), APR_HASH_KEY_STRING, n);
    }
    return n;
}

static void places_release(agent_console_t *c, const char *user_id)
{
    int *n;

    apr_thread_mutex_lock(c->mutex);
    if ((n = places_of(c, user_id, 0)) != NULL && *n > 0)
        (*n)--;
    apr_thread_mutex_unlock(c->mutex);
}

/* ------------------------------------------------------------- requests -- */

static void req_queue(agent_console_t *c, con_req_t *q)
{
    apr_thread_mutex_lock(c->mutex);
    if (c->req_tail)
        c->req_tail->next = q;
    else
        c->req_head = q;
    c->req_tail = q;
    apr_thread_mutex_unlock(c->mutex);
    agent_wake(c->ag);
}

static void res_queue(agent_console_t *c, con_res_t *r)
{
    apr_thread_mutex_lock(c->mutex);
    if (c->res_tail)
        c->res_tail->next = r;
    else
        c->res_head = r;
    c->res_tail = r;
    apr_thread_mutex_unlock(c->mutex);
    if (c->ctx)
        lws_cancel_service(c->ctx);
}

/* -------------------------------------------------------------- sessions -- */

static con_sess_t *sess_of(struct lws *wsi)
{
    return lws_get_opaque_user_data(wsi);
}

static void sess_timer(lws_sorted_usec_list_t *sul);

static void sess_arm(con_sess_t *sess, apr_interval_time_t in)
{
    lws_sul_schedule(sess->c->ctx, 0, &sess->sul, sess_timer, (lws_usec_t)in);
}

/* Closes the page with code (after a {"status":"error"} message while it has not been
 * told it is connected) and the Proxmox side with it. The first reason wins. */
static void sess_fail(con_sess_t *sess, int code, const char *why)
{
    if (sess->close_code)
        return;
    sess->close_code = code;
    apr_cpystrn(sess->close_reason, why, sizeof(sess->close_reason));
    if (sess->state < ST_PAGE_RFB && sess->page) {
        json_t *o = json_pack("{s:s, s:s, s:i}", "status", "error", "error", why, "code", code);
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

        if (text)
            q_push(&sess->to_page, text, strlen(text), 1);
        free(text);
        json_decref(o);
    }
    if (sess->state != ST_RELAY && sess->state != ST_PAGE_RFB) {
        apr_thread_mutex_lock(sess->c->mutex);
        sess->c->stats.refused++;
        apr_thread_mutex_unlock(sess->c->mutex);
    }
    sess->state = ST_CLOSING;
    if (sess->page) {
        lws_callback_on_writable(sess->page);
        /* what is still queued for a page that reads nothing must not keep it forever */
        lws_set_timeout(sess->page, PENDING_TIMEOUT_USER_OK, CON_CLOSE_SECS);
    }
    if (sess->pve) {
        sess->pve_close = 1;
        lws_callback_on_writable(sess->pve);
        lws_set_timeout(sess->pve, PENDING_TIMEOUT_USER_OK, CON_CLOSE_SECS);
    }
}

static void sess_maybe_free(con_sess_t *sess)
{
    agent_console_t *c = sess->c;

    if (sess->page || sess->pve || sess->worker_busy)
        return;
    lws_sul_cancel(&sess->sul);
    lws_sul_cancel(&sess->flow_sul);
    if (sess->audited_open) {
        con_req_t *q = calloc(1, sizeof(*q));

        if (q) {
            q->type = REQ_END;
            q->num = sess->num;
            q->user_id = dup_or_null(sess->user_id);
            q->server_id = dup_or_null(sess->server_id);
            q->kind = sess->kind;
            q->reason = strdup(sess->close_code ? sess->close_reason : "closed");
            q->lasted = apr_time_now() - sess->started;
            q->up = sess->up;
            q->down = sess->down;
            req_queue(c, q);
        }
        con_live_t *l;

        apr_thread_mutex_lock(c->mutex);
        l = apr_hash_get(c->live, &sess->num, sizeof(sess->num));
        apr_hash_set(c->live, &sess->num, sizeof(sess->num), NULL);
        apr_thread_mutex_unlock(c->mutex);
        free(l);
    }
    if (sess->counted)
        places_release(c, sess->user_id);
    apr_hash_set(c->sessions, &sess->num, sizeof(sess->num), NULL);
    if (sess->prev)
        sess->prev->next = sess->next;
    else
        c->head = sess->next;
    if (sess->next)
        sess->next->prev = sess->prev;
    apr_thread_mutex_lock(c->mutex);
    c->stats.open--;
    apr_thread_mutex_unlock(c->mutex);
    AGENT_INFO("console %" APR_UINT64_T_FMT ": ended (%s), %" APR_UINT64_T_FMT
               " bytes to the guest, %" APR_UINT64_T_FMT " to the browser", sess->num,
               sess->close_code ? sess->close_reason : "closed", sess->up, sess->down);
    q_free(&sess->to_page);
    q_free(&sess->to_pve);
    q_free(&sess->held);
    res_free(sess->res);
    free(sess->user_id);
    free(sess->server_id);
    free(sess->name);
    OPENSSL_cleanse(sess->first, sizeof(sess->first));
    free(sess);
}

static void sess_timer(lws_sorted_usec_list_t *sul)
{
    con_sess_t *sess = lws_container_of(sul, con_sess_t, sul);
    agent_console_t *c = sess->c;
    apr_time_t now = apr_time_now();

    if (sess->state == ST_CLOSING)
        return;
    if (sess->state != ST_RELAY) {
        sess_fail(sess, CLOSE_TIMEOUT, "the console took too long to open: try again");
        return;
    }
    if (now - sess->last_io >= c->conf.idle_timeout) {
        sess_fail(sess, CLOSE_TIMEOUT, "the console was closed after a long time without "
                  "activity");
        return;
    }
    sess_arm(sess, c->conf.idle_timeout - (now - sess->last_io));
}

/* Applies the pauses flow_check asked for. lws 4.1 loops forever when a client
 * connection's reads are stopped from inside its own receive callback (with TLS data
 * still buffered): so it is done from a timer, outside every callback of the
 * connections. */
static void flow_apply(lws_sorted_usec_list_t *sul)
{
    con_sess_t *sess = lws_container_of(sul, con_sess_t, flow_sul);

    if (sess->page && sess->page_paused != sess->page_rx_off) {
        sess->page_rx_off = sess->page_paused;
        lws_rx_flow_control(sess->page, !sess->page_paused);
    }
    if (sess->pve && sess->pve_paused != sess->pve_rx_off) {
        sess->pve_rx_off = sess->pve_paused;
        lws_rx_flow_control(sess->pve, !sess->pve_paused);
    }
}

/* Back-pressure: bytes waiting for one side beyond half of max_buffer stop the reads of
 * the other side, until they are below a quarter. */
static void flow_check(con_sess_t *sess)
{
    apr_size_t hi = sess->c->conf.max_buffer / 2, lo = sess->c->conf.max_buffer / 4;
    int page = sess->page_paused, pve = sess->pve_paused;

    if (!page && sess->to_pve.bytes > hi)
        page = 1;
    else if (page && sess->to_pve.bytes <= lo)
        page = 0;
    if (!pve && sess->to_page.bytes > hi)
        pve = 1;
    else if (pve && sess->to_page.bytes <= lo)
        pve = 0;
    if (page != sess->page_paused || pve != sess->pve_paused) {
        sess->page_paused = page;
        sess->pve_paused = pve;
        lws_sul_schedule(sess->c->ctx, 0, &sess->flow_sul, flow_apply, 1);
    }
    /* what arrives before a pause takes effect is bounded by lws' reads; beyond twice
     * the limit something is wrong: end it rather than grow */
    if (sess->to_pve.bytes + sess->to_page.bytes > 2 * sess->c->conf.max_buffer)
        sess_fail(sess, CLOSE_PROXMOX, "the console sent more than it could pass on");
}

static void to_page(con_sess_t *sess, const void *data, apr_size_t len)
{
    if (!len || !sess->page)
        return;
    if (q_push(&sess->to_page, data, len, 0)) {
        sess_fail(sess, CLOSE_UNAVAILABLE, "out of memory");
        return;
    }
    lws_callback_on_writable(sess->page);
    flow_check(sess);
}

static void to_pve(con_sess_t *sess, const void *data, apr_size_t len)
{
    if (!len || !sess->pve)
        return;
    if (q_push(&sess->to_pve, data, len, 0)) {
        sess_fail(sess, CLOSE_UNAVAILABLE, "out of memory");
        return;
    }
    lws_callback_on_writable(sess->pve);
    flow_check(sess);
}

/* The page is told the console is there; then relaying (or, VNC, the page's RFB). */
static void sess_ready(con_sess_t *sess)
{
    agent_console_t *c = sess->c;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s*}", "status", "ok",
                          "kind", sess->kind == OSPAB_CONSOLE_VNC ? "vnc" : "terminal",
                          "server", sess->server_id, "name", sess->name);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

    json_decref(o);
    if (!text || q_push(&sess->to_page, text, strlen(text), 1)) {
        free(text);
        sess_fail(sess, CLOSE_UNAVAILABLE, "out of memory");
        return;
    }
    free(text);
    apr_thread_mutex_lock(c->mutex);
    c->stats.opened++;
    apr_thread_mutex_unlock(c->mutex);
    sess->last_io = apr_time_now();
    if (sess->kind == OSPAB_CONSOLE_VNC) {
        sess->state = ST_PAGE_RFB;
        sess->hs = HS_VNC_VERSION;      /* now the page's side of it */
        q_push(&sess->to_page, "RFB 003.008\n", 12, 0);
    }
    else {
        sess->state = ST_RELAY;
        sess_arm(sess, c->conf.idle_timeout);
    }
    AGENT_INFO("console %" APR_UINT64_T_FMT ": open (%s of server %s)", sess->num,
               sess->kind == OSPAB_CONSOLE_VNC ? "vnc" : "terminal", sess->server_id);
    if (sess->page)
        lws_callback_on_writable(sess->page);
}

/* ------------------------------------------------------------- handshakes -- */

static apr_uint32_t be32(const unsigned char *b)
{
    return ((apr_uint32_t)b[0] << 24) | ((apr_uint32_t)b[1] << 16) | ((apr_uint32_t)b[2] << 8)
           | b[3];
}

static void hs_consume(con_sess_t *sess, apr_size_t n)
{
    memmove(sess->hsbuf, sess->hsbuf + n, sess->hs_len - n);
    sess->hs_len -= n;
}

/* The VNC password as DES key: its first 8 bytes, each bit-reversed (VNC's DES). */
static void vnc_key(const char *password, unsigned char key[8])
{
    int i, b;

    memset(key, 0, 8);
    for (i = 0; i < 8 && password[i]; ++i) {
        unsigned char in = (unsigned char)password[i], out = 0;

        for (b = 0; b < 8; ++b)
            if (in & (1u << b))
                out |= (unsigned char)(0x80u >> b);
        key[i] = out;
    }
}

static void vnc_answer(const unsigned char key[8], const unsigned char challenge[16],
                       unsigned char out[16])
{
    DES_cblock k;
    DES_key_schedule ks;
    int i;

    memcpy(k, key, 8);
    DES_set_key_unchecked(&k, &ks);
    for (i = 0; i < 2; ++i)
        DES_ecb_encrypt((const_DES_cblock *)(challenge + 8 * i), (DES_cblock *)(out + 8 * i),
                        &ks, DES_ENCRYPT);
    OPENSSL_cleanse(&ks, sizeof(ks));
    OPENSSL_cleanse(k, sizeof(k));
}

/* Proxmox's handshake bytes: 0 going on, 1 done (what is left in hsbuf is the guest's),
 * -1 failed (sess_fail called). */
static int pve_handshake(con_sess_t *sess)
{
    for (;;) {
        switch (sess->hs) {
        case HS_TERM_OK:
            if (sess->hs_len < 2)
                return 0;
            if (memcmp(sess->hsbuf, "OK", 2)) {
                sess_fail(sess, CLOSE_PROXMOX, "the server's console refused the connection");
                return -1;
            }
            hs_consume(sess, 2);
            sess->hs = HS_DONE;
            return 1;
        case HS_VNC_VERSION:
            if (sess->hs_len < 12)
                return 0;
            if (memcmp(sess->hsbuf, "RFB 003.", 8)) {
                sess_fail(sess, CLOSE_PROXMOX, "the server's console does not speak VNC");
                return -1;
            }
            hs_consume(sess, 12);
            to_pve(sess, "RFB 003.008\n", 12);
            sess->hs = HS_VNC_TYPES;
            break;
        case HS_VNC_TYPES: {
            apr_size_t n, i;
            unsigned char pick = 0;

            if (sess->hs_len < 1)
                return 0;
            n = sess->hsbuf[0];
            if (n == 0) {
                sess_fail(sess, CLOSE_PROXMOX, "the server's console refused the connection");
                return -1;
            }
            if (sess->hs_len < 1 + n)
                return 0;
            for (i = 1; i <= n; ++i)
                if (sess->hsbuf[i] == 2 || (sess->hsbuf[i] == 1 && !pick))
                    pick = sess->hsbuf[i];
            hs_consume(sess, 1 + n);
            if (!pick) {
                sess_fail(sess, CLOSE_PROXMOX, "the server's console asks for an unknown "
                          "kind of authentication");
                return -1;
            }
            to_pve(sess, &pick, 1);
            sess->hs = pick == 2 ? HS_VNC_CHALLENGE : HS_VNC_RESULT;
            break;
        }
        case HS_VNC_CHALLENGE: {
            unsigned char out[16];

            if (sess->hs_len < 16 || !sess->res)
                return 0;
            vnc_answer(sess->res->vnc_key, sess->hsbuf, out);
            hs_consume(sess, 16);
            to_pve(sess, out, 16);
            sess->hs = HS_VNC_RESULT;
            break;
        }
        case HS_VNC_RESULT:
            if (sess->hs_len < 4)
                return 0;
            if (be32(sess->hsbuf) != 0) {
                sess_fail(sess, CLOSE_PROXMOX, "the server's console refused the ticket");
                return -1;
            }
            hs_consume(sess, 4);
            sess->hs = HS_DONE;
            return 1;
        default:
            return 1;
        }
    }
}

/* The page's side of RFB while the agent plays the server: its version, then its choice
 * of security type 1. 0 going on, 1 done (hsbuf keeps what followed), -1 failed. */
static int page_handshake(con_sess_t *sess)
{
    static const unsigned char types[2] = { 1, 1 };        /* one type: None */
    static const unsigned char ok[4] = { 0, 0, 0, 0 };

    if (sess->hs == HS_VNC_VERSION) {
        if (sess->hs_len < 12)
            return 0;
        if (memcmp(sess->hsbuf, "RFB 003.008\n", 12)) {
            sess_fail(sess, CLOSE_PROTOCOL, "the console page must speak RFB 3.8");
            return -1;
        }
        hs_consume(sess, 12);
        q_push(&sess->to_page, types, 2, 0);
        lws_callback_on_writable(sess->page);
        sess->hs = HS_VNC_TYPES;
    }
    if (sess->hs_len < 1)
        return 0;
    if (sess->hsbuf[0] != 1) {
        sess_fail(sess, CLOSE_PROTOCOL, "the console page chose an unknown security type");
        return -1;
    }
    hs_consume(sess, 1);
    q_push(&sess->to_page, ok, 4, 0);
    lws_callback_on_writable(sess->page);
    sess->hs = HS_DONE;
    return 1;
}

/* ---------------------------------------------------------- service side -- */

static struct lws_vhost *client_vhost(agent_console_t *c, const con_res_t *r)
{
    struct lws_context_creation_info info;
    struct lws_vhost *vh = apr_hash_get(c->vhosts, r->ca_key, APR_HASH_KEY_STRING);

    if (vh)
        return vh;
    if (c->nvhosts >= CON_MAX_CLIENT_VHOSTS) {
        AGENT_WARN("console: more than %d different Proxmox CAs; restart the agent to "
                   "forget old ones", CON_MAX_CLIENT_VHOSTS);
        return NULL;
    }
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = c->protocols;
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.vhost_name = apr_psprintf(c->pool, "ospab-console-client-%d", c->nvhosts);
    if (r->ca_pem) {
        info.client_ssl_ca_mem = apr_pstrdup(c->pool, r->ca_pem);
        info.client_ssl_ca_mem_len = (unsigned int)strlen(r->ca_pem);
    }
    else if (r->ca_file)
        info.client_ssl_ca_filepath = apr_pstrdup(c->pool, r->ca_file);
    vh = lws_create_vhost(c->ctx, &info);
    if (!vh) {
        AGENT_WARN("console: cannot make a TLS client with the cluster's CA");
        return NULL;
    }
    c->nvhosts++;
    apr_hash_set(c->vhosts, apr_pstrdup(c->pool, r->ca_key), APR_HASH_KEY_STRING, vh);
    return vh;
}

/* A worker's answer to an OPEN: connect to Proxmox, or close the page. */
static void opened(agent_console_t *c, con_sess_t *sess, con_res_t *r)
{
    struct lws_client_connect_info ci;
    struct lws_vhost *vh;

    sess->worker_busy = 0;
    if (r->counted) {
        sess->counted = 1;
        sess->user_id = dup_or_null(r->user_id);
    }
    if (r->code) {
        sess_fail(sess, r->code, r->message ? r->message : "the console cannot be opened");
        res_free(r);
        return;
    }
    sess->server_id = dup_or_null(r->server_id);
    sess->name = dup_or_null(r->name);
    sess->kind = r->kind;
    sess->audited_open = 1;
    {
        con_live_t *l = calloc(1, sizeof(*l));      /* freed with the session */

        if (!l) {
            res_free(r);
            sess_fail(sess, CLOSE_UNAVAILABLE, "out of memory");
            return;
        }
        l->num = sess->num;
        apr_cpystrn(l->user_id, r->user_id ? r->user_id : "", sizeof(l->user_id));
        apr_cpystrn(l->server_id, r->server_id ? r->server_id : "", sizeof(l->server_id));
        apr_thread_mutex_lock(c->mutex);
        apr_hash_set(c->live, &l->num, sizeof(l->num), l);
        apr_thread_mutex_unlock(c->mutex);
    }
    if (sess->state == ST_CLOSING || !sess->page) {
        res_free(r);
        return;
    }
    if (!(vh = client_vhost(c, r))) {
        res_free(r);
        sess_fail(sess, CLOSE_PROXMOX, "the server's console cannot be reached");
        return;
    }
    sess->res = r;
    sess->state = ST_CONNECTING;
    sess->hs = sess->kind == OSPAB_CONSOLE_VNC ? HS_VNC_VERSION : HS_TERM_OK;
    memset(&ci, 0, sizeof(ci));
    ci.context = c->ctx;
    ci.vhost = vh;
    ci.address = r->host;
    ci.port = r->port;
    ci.host = r->host;
    ci.path = r->path;
    ci.ssl_connection = LCCSCF_USE_SSL;
    ci.protocol = "binary";
    ci.local_protocol_name = CON_PROTOCOL;
    ci.opaque_user_data = sess;
    ci.pwsi = &sess->pve;
    if (!lws_client_connect_via_info(&ci)) {
        sess->pve = NULL;
        sess_fail(sess, CLOSE_PROXMOX, "the server's console cannot be reached");
    }
}

static void drain_results(agent_console_t *c)
{
    con_res_t *list, *r;

    apr_thread_mutex_lock(c->mutex);
    list = c->res_head;
    c->res_head = c->res_tail = NULL;
    apr_thread_mutex_unlock(c->mutex);
    while ((r = list) != NULL) {
        con_sess_t *sess;

        list = r->next;
        r->next = NULL;
        sess = apr_hash_get(c->sessions, &r->num, sizeof(r->num));
        if (!sess) {
            /* gone meanwhile: give its place back */
            if (r->counted && r->user_id)
                places_release(c, r->user_id);
            res_free(r);
            continue;
        }
        if (r->open) {
            opened(c, sess, r);
            sess_maybe_free(sess);
        }
        else {
            /* a recheck's verdict on an open session */
            if (r->code)
                sess_fail(sess, r->code, r->message ? r->message : "closed");
            res_free(r);
        }
    }
}

/* the page's first message: {"token": "..."} */
static void page_token(con_sess_t *sess)
{
    json_error_t err;
    json_t *o = json_loadb((const char *)sess->first, sess->first_len, 0, &err);
    const char *token = o ? json_string_value(json_object_get(o, "token")) : NULL;
    json_t *server = o ? json_object_get(o, "server") : NULL;
    con_req_t *q;

    if (!token || !*token || strlen(token) > 128) {
        json_decref(o);
        sess_fail(sess, CLOSE_PROTOCOL, "the console page must send its token first");
        return;
    }
    q = calloc(1, sizeof(*q));
    if (!q || !(q->token = strdup(token))) {
        free(q);
        json_decref(o);
        sess_fail(sess, CLOSE_UNAVAILABLE, "out of memory");
        return;
    }
    /* the page may say which server it means: a token of another one is refused */
    if (json_is_string(server))
        q->server_id = strdup(json_string_value(server));
    else if (json_is_integer(server)) {
        char num[32];

        apr_snprintf(num, sizeof(num), "%" APR_INT64_T_FMT,
                     (apr_int64_t)json_integer_value(server));
        q->server_id = strdup(num);
    }
    json_decref(o);
    q->type = REQ_OPEN;
    q->num = sess->num;
    sess->state = ST_OPENING;
    sess->worker_busy = 1;
    req_queue(sess->c, q);
}

static int page_receive(con_sess_t *sess, struct lws *wsi, const unsigned char *in,
                        apr_size_t len)
{
    sess->last_io = apr_time_now();
    switch (sess->state) {
    case ST_TOKEN:
        if (sess->first_len + len > sizeof(sess->first)) {
            sess_fail(sess, CLOSE_PROTOCOL, "the console page must send its token first");
            return 0;
        }
        memcpy(sess->first + sess->first_len, in, len);
        sess->first_len += len;
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi))
            page_token(sess);
        return 0;
    case ST_PAGE_RFB:
        if (sess->hs_len + len > sizeof(sess->hsbuf)) {
            sess_fail(sess, CLOSE_PROTOCOL, "the console page must speak RFB 3.8");
            return 0;
        }
        memcpy(sess->hsbuf + sess->hs_len, in, len);
        sess->hs_len += len;
        if (page_handshake(sess) == 1) {
            sess->state = ST_RELAY;
            sess_arm(sess, sess->c->conf.idle_timeout);
            q_move(&sess->to_page, &sess->held);
            if (sess->hs_len) {
                sess->up += sess->hs_len;
                to_pve(sess, sess->hsbuf, sess->hs_len);
                sess->hs_len = 0;
            }
            lws_callback_on_writable(sess->page);
        }
        return 0;
    case ST_RELAY:
        sess->up += len;
        apr_thread_mutex_lock(sess->c->mutex);
        sess->c->stats.bytes_to_guest += len;
        apr_thread_mutex_unlock(sess->c->mutex);
        to_pve(sess, in, len);
        return 0;
    case ST_CLOSING:
        return 0;
    default:
        sess_fail(sess, CLOSE_PROTOCOL, "the console page sent data before the console "
                  "was ready");
        return 0;
    }
}

static void pve_receive(con_sess_t *sess, const unsigned char *in, apr_size_t len)
{
    int rc;

    sess->last_io = apr_time_now();
    switch (sess->state) {
    case ST_PVE_AUTH:
        if (sess->hs_len + len > sizeof(sess->hsbuf)) {
            /* output after the handshake in the same frame: pass the rest on later */
            apr_size_t room = sizeof(sess->hsbuf) - sess->hs_len;

            memcpy(sess->hsbuf + sess->hs_len, in, room);
            sess->hs_len += room;
            in += room;
            len -= room;
        }
        else {
            memcpy(sess->hsbuf + sess->hs_len, in, len);
            sess->hs_len += len;
            len = 0;
        }
        rc = pve_handshake(sess);
        if (rc < 0)
            return;
        if (rc == 0) {
            if (len)
                sess_fail(sess, CLOSE_PROXMOX, "the server's console answered nonsense");
            return;
        }
        /* authenticated: what followed is the guest's */
        res_free(sess->res);
        sess->res = NULL;
        sess_ready(sess);
        if (sess->state == ST_RELAY) {
            sess->down += sess->hs_len + len;
            to_page(sess, sess->hsbuf, sess->hs_len);
            to_page(sess, in, len);
        }
        else {
            if (sess->hs_len)
                q_push(&sess->held, sess->hsbuf, sess->hs_len, 0);
            if (len)
                q_push(&sess->held, in, len, 0);
        }
        sess->hs_len = 0;
        return;
    case ST_PAGE_RFB:
        q_push(&sess->held, in, len, 0);
        return;
    case ST_RELAY:
        sess->down += len;
        apr_thread_mutex_lock(sess->c->mutex);
        sess->c->stats.bytes_to_browser += len;
        apr_thread_mutex_unlock(sess->c->mutex);
        to_page(sess, in, len);
        return;
    default:
        return;
    }
}

static int write_one(struct lws *wsi, con_q_t *q)
{
    con_buf_t *b = q_pop(q);
    int n;

    if (!b)
        return 0;
    n = lws_write(wsi, b->data, b->len, b->text ? LWS_WRITE_TEXT : LWS_WRITE_BINARY);
    free(b);
    if (n < 0)
        return -1;
    if (q->head)
        lws_callback_on_writable(wsi);
    return 0;
}

static void wsi_gone(struct lws *wsi)
{
    con_sess_t *sess = sess_of(wsi);

    if (!sess)
        return;
    lws_set_opaque_user_data(wsi, NULL);
    if (sess->page == wsi) {
        sess->page = NULL;
        if (!sess->close_code)
            sess_fail(sess, 1000, "the browser closed the console");
    }
    else if (sess->pve == wsi) {
        sess->pve = NULL;
        if (!sess->close_code) {
            if (sess->state == ST_RELAY || sess->state == ST_PAGE_RFB)
                sess_fail(sess, CLOSE_PROXMOX, "the console connection to the server was "
                          "closed");
            else
                sess_fail(sess, CLOSE_PROXMOX, "the server's console refused the connection");
        }
    }
    sess_maybe_free(sess);
}

static int page_established(agent_console_t *c, struct lws *wsi)
{
    con_sess_t *sess = calloc(1, sizeof(*sess));
    int over;

    if (!sess)
        return -1;
    sess->c = c;
    sess->num = ++c->next_num;
    sess->page = wsi;
    sess->state = ST_TOKEN;
    sess->started = sess->last_io = apr_time_now();
    lws_set_opaque_user_data(wsi, sess);
    apr_hash_set(c->sessions, &sess->num, sizeof(sess->num), sess);
    sess->next = c->head;
    if (c->head)
        c->head->prev = sess;
    c->head = sess;
    apr_thread_mutex_lock(c->mutex);
    over = c->stats.open >= c->conf.max_sessions;
    c->stats.open++;
    apr_thread_mutex_unlock(c->mutex);
    sess_arm(sess, c->conf.open_timeout);
    if (over)
        sess_fail(sess, CLOSE_BUSY, "too many consoles are open on this panel: try again "
                  "later");
    return 0;
}

static int page_writeable(con_sess_t *sess, struct lws *wsi)
{
    if (write_one(wsi, &sess->to_page) < 0)
        return -1;
    flow_check(sess);
    if (!sess->to_page.head && sess->close_code) {
        lws_close_reason(wsi, (enum lws_close_status)sess->close_code,
                         (unsigned char *)sess->close_reason, strlen(sess->close_reason));
        return -1;
    }
    return 0;
}

static int pve_writeable(con_sess_t *sess, struct lws *wsi)
{
    if (sess->pve_close) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    if (write_one(wsi, &sess->to_pve) < 0)
        return -1;
    flow_check(sess);
    return 0;
}

static int console_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                            void *in, size_t len)
{
    const struct lws_protocols *pr = lws_get_protocol(wsi);
    agent_console_t *c = pr ? pr->user : NULL;
    con_sess_t *sess;

    (void)user;
    if (!c)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        return page_established(c, wsi);
    case LWS_CALLBACK_RECEIVE:
        if ((sess = sess_of(wsi)) != NULL)
            page_receive(sess, wsi, in, len);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!(sess = sess_of(wsi)))
            return -1;
        return page_writeable(sess, wsi);

    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        if ((sess = sess_of(wsi)) != NULL && sess->res) {
            unsigned char **p = in, *end = *p + len;

            if (lws_add_http_header_by_name(wsi, (const unsigned char *)"authorization:",
                                            (const unsigned char *)sess->res->auth,
                                            (int)strlen(sess->res->auth), p, end))
                return -1;
        }
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (!(sess = sess_of(wsi)) || sess->state == ST_CLOSING)
            return -1;                  /* the page went meanwhile */
        if (sess->state != ST_CONNECTING)
            return 0;
        sess->state = ST_PVE_AUTH;
        if (sess->kind == OSPAB_CONSOLE_TERMINAL && sess->res)
            to_pve(sess, sess->res->hello, strlen(sess->res->hello));
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if ((sess = sess_of(wsi)) != NULL)
            pve_receive(sess, in, len);
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (!(sess = sess_of(wsi)))
            return -1;
        return pve_writeable(sess, wsi);
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if ((sess = sess_of(wsi)) != NULL) {
            AGENT_WARN("console %" APR_UINT64_T_FMT ": Proxmox's console cannot be reached: "
                       "%.*s", sess->num, in ? (int)len : 17,
                       in ? (const char *)in : "connection failed");
            if (!sess->close_code)
                sess_fail(sess, CLOSE_PROXMOX, "the server's console cannot be reached");
        }
        wsi_gone(wsi);
        return 0;

    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
        wsi_gone(wsi);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        drain_results(c);
        return 0;
    default:
        return 0;
    }
}

/* ---------------------------------------------------------- worker side -- */

static con_res_t *refusal(apr_uint64_t num, int code, const char *message)
{
    con_res_t *r = calloc(1, sizeof(*r));

    if (r) {
        r->num = num;
        r->code = code;
        r->message = strdup(message);
    }
    return r;
}

/* May user_id still use server_id's console? The user must be enabled, the server theirs
 * (an admin's any: the module's rule, ospab_vps_load_owned) and, but for an admin, not
 * suspended. 0: yes, *vo set; else the close code and *why. */
static int access_check(ospab_db_t *db, apr_pool_t *p, const char *user_id,
                        const char *server_id, const ospab_vps_t **vo, const char **why)
{
    const ospab_user_t *u = NULL;
    const ospab_vps_t *v = NULL;
    ospab_principal_t who = { .user_id = user_id };
    ospab_result_t res;

    if (ospab_user_load(db, p, user_id, &u) != APR_SUCCESS) {
        *why = "the panel's database is not answering: try again shortly";
        return CLOSE_UNAVAILABLE;
    }
    if (!u || !ospab_user_enabled(u->enabled)) {
        *why = "your account cannot use consoles";
        return CLOSE_FORBIDDEN;
    }
    who.admin = u->role && !strcmp(u->role, "admin");
    if (ospab_vps_load_owned(db, p, &who, server_id, &v, &res)) {
        *why = res.status == 503 ? "the panel's database is not answering: try again shortly"
                                 : "this server is no longer yours, or it was deleted";
        return res.status == 503 ? CLOSE_UNAVAILABLE : CLOSE_FORBIDDEN;
    }
    if (v->status && !strcmp(v->status, "suspended") && !who.admin) {
        *why = "this server is suspended: its console is closed";
        return CLOSE_FORBIDDEN;
    }
    if (vo)
        *vo = v;
    return 0;
}

static const char *tls_text(apr_pool_t *p, const ospab_pve_conf_t *pc, const char **file)
{
    *file = NULL;
    if (pc->ca_pem)
        return pc->ca_pem;
    if (pc->ca_file)
        *file = apr_pstrdup(p, pc->ca_file);
    return NULL;
}

static con_res_t *open_console(agent_console_t *c, ospab_db_t *db, apr_pool_t *p,
                               const con_req_t *q)
{
    ospab_console_grant_t g;
    const ospab_vps_t *v;
    const char *why, *url = NULL, *type, *ticket, *user, *password, *ca_pem, *ca_file, *path;
    ospab_pve_conf_t pc;
    ospab_pve_t *pve;
    ospab_pve_result_t res;
    ospab_pve_param_t ws[] = { { "websocket", "1" }, { NULL, NULL } };
    ospab_actor_t act;
    apr_uri_t uri;
    apr_int64_t port;
    con_res_t *r;
    int code, *n, rc;

    rc = ospab_console_redeem(db, p, apr_time_now(), q->token, &g);
    if (rc < 0)
        return refusal(q->num, CLOSE_UNAVAILABLE, "the panel's database is not answering: "
                       "try again shortly");
    if (rc == 0)
        return refusal(q->num, CLOSE_TOKEN, "this console link is invalid, used or expired: "
                       "open the console again from the panel");
    if (q->server_id && strcmp(q->server_id, g.vps_id))
        return refusal(q->num, CLOSE_TOKEN, "this console link is for another server: open "
                       "the console again from the panel");
    if ((code = access_check(db, p, g.user_id, g.vps_id, &v, &why)) != 0)
        return refusal(q->num, code, why);
    if (!v->vmid || !*v->vmid || !v->node || !*v->node)
        return refusal(q->num, CLOSE_PROXMOX, "this server is not on Proxmox yet");
    type = g.kind == OSPAB_CONSOLE_VNC ? "qemu" : "lxc";
    if (strcmp(ospab_vps_kind(v), type))
        return refusal(q->num, CLOSE_TOKEN, "this console link is for another kind of "
                       "console: open it again from the panel");

    pve = c->clusters ? ospab_clusters_pve_conf(c->clusters, db, p, v->node, &url, &pc) : NULL;
    if (!pve && url)
        return refusal(q->num, CLOSE_PROXMOX, "the server's cluster cannot be used now");
    if (!pve) {
        if (!c->has_default)
            return refusal(q->num, CLOSE_PROXMOX, "no Proxmox cluster is configured");
        pve = c->def_client;
        pc = c->def_conf;
    }

    /* a place of the user's: taken before Proxmox is asked */
    apr_thread_mutex_lock(c->mutex);
    n = places_of(c, g.user_id, 1);
    if (*n >= c->conf.max_per_user) {
        apr_thread_mutex_unlock(c->mutex);
        return refusal(q->num, CLOSE_BUSY, apr_psprintf(p, "you have %d consoles open: close "
                       "one first", c->conf.max_per_user));
    }
    (*n)++;
    apr_thread_mutex_unlock(c->mutex);
    r = calloc(1, sizeof(*r));
    if (!r) {
        places_release(c, g.user_id);
        return NULL;
    }
    r->num = q->num;
    r->counted = 1;
    r->user_id = strdup(g.user_id);
    r->server_id = strdup(v->id);
    r->name = dup_or_null(v->name);
    r->kind = g.kind;

    path = ospab_pve_path(p, "nodes", v->node, type, v->vmid,
                          g.kind == OSPAB_CONSOLE_VNC ? "vncproxy" : "termproxy", NULL);
    if (ospab_pve_call(pve, p, "POST", path, g.kind == OSPAB_CONSOLE_VNC ? ws : NULL, &res)
        != APR_SUCCESS) {
        AGENT_WARN("console %" APR_UINT64_T_FMT ": %s of server %s: %s", q->num,
                   g.kind == OSPAB_CONSOLE_VNC ? "vncproxy" : "termproxy", v->id,
                   ospab_pve_message(p, &res));
        r->code = CLOSE_PROXMOX;
        r->message = strdup(res.outcome == OSPAB_PVE_HTTP_ERROR && res.message
                            ? apr_psprintf(p, "Proxmox refused the console: %s", res.message)
                            : "the server's console cannot be reached");
        return r;
    }
    ticket = json_string_value(json_object_get(res.data, "ticket"));
    user = json_string_value(json_object_get(res.data, "user"));
    password = json_string_value(json_object_get(res.data, "password"));
    if (!ticket || !user || !ospab_pve_int(json_object_get(res.data, "port"), &port)
        || port <= 0 || port > 65535 || (g.kind == OSPAB_CONSOLE_VNC && !password)) {
        r->code = CLOSE_PROXMOX;
        r->message = strdup("Proxmox's answer for the console was not understood");
        return r;
    }
    if (apr_uri_parse(p, pc.url, &uri) != APR_SUCCESS || !uri.hostname) {
        r->code = CLOSE_PROXMOX;
        r->message = strdup("the cluster's address is not usable");
        return r;
    }
    r->host = strdup(uri.hostname);
    r->port = uri.port ? uri.port : 8006;
    r->path = strdup(apr_psprintf(p, "/api2/json%s?port=%" APR_INT64_T_FMT "&vncticket=%s",
                                  ospab_pve_path(p, "nodes", v->node, type, v->vmid,
                                                 "vncwebsocket", NULL),
                                  port, ospab_pve_urlencoded(p, ticket)));
    r->auth = strdup(apr_pstrcat(p, "PVEAPIToken=", pc.token, NULL));
    r->hello = strdup(apr_pstrcat(p, user, ":", ticket, "\n", NULL));
    if (password)
        vnc_key(password, r->vnc_key);
    ca_pem = tls_text(p, &pc, &ca_file);
    r->ca_pem = dup_or_null(ca_pem);
    r->ca_file = dup_or_null(ca_file);
    r->ca_key = strdup(ca_pem ? ca_pem : ca_file ? apr_pstrcat(p, "file:", ca_file, NULL)
                                                 : "system");
    act = (ospab_actor_t){ .type = "user", .id = g.user_id, .now = apr_time_now() };
    (void)ospab_audit(db, p, &act, "console.open", "vps", v->id,
                      json_pack("{s:s}", "kind", g.kind == OSPAB_CONSOLE_VNC ? "vnc"
                                                                          : "terminal"));
    return r;
}

static void audit_end(ospab_db_t *db, apr_pool_t *p, const con_req_t *q)
{
    ospab_actor_t act = { .type = "user", .id = q->user_id, .now = apr_time_now() };

    (void)ospab_audit(db, p, &act, "console.close", "vps", q->server_id,
                      json_pack("{s:s, s:I, s:I, s:I, s:s}",
                                "kind", q->kind == OSPAB_CONSOLE_VNC ? "vnc" : "terminal",
                                "seconds", (json_int_t)apr_time_sec(q->lasted),
                                "bytesToGuest", (json_int_t)q->up,
                                "bytesToBrowser", (json_int_t)q->down,
                                "reason", q->reason ? q->reason : "closed"));
}

/* Every relaying session's user and server, checked again: a server deleted, suspended
 * or given to someone else, or a user disabled, ends the console. */
static void recheck(agent_console_t *c, ospab_db_t *db, apr_pool_t *p)
{
    apr_array_header_t *list = apr_array_make(p, 8, sizeof(con_live_t));
    apr_hash_index_t *hi;
    int i;

    apr_thread_mutex_lock(c->mutex);
    for (hi = apr_hash_first(p, c->live); hi; hi = apr_hash_next(hi))
        *(con_live_t *)apr_array_push(list) = *(con_live_t *)apr_hash_this_val(hi);
    apr_thread_mutex_unlock(c->mutex);
    for (i = 0; i < list->nelts; ++i) {
        const con_live_t *l = &APR_ARRAY_IDX(list, i, con_live_t);
        const char *why = NULL;
        int code = access_check(db, p, l->user_id, l->server_id, NULL, &why);

        if (code == CLOSE_FORBIDDEN) {
            con_res_t *r = refusal(l->num, code, why);

            if (r)
                res_queue(c, r);
        }
    }
}

apr_interval_time_t agent_console_tick(agent_t *ag, ospab_db_t *db, apr_pool_t *p)
{
    agent_console_t *c = ag->console;
    apr_time_t now;
    int check = 0;

    if (!c)
        return apr_time_from_sec(3600);
    for (;;) {
        con_req_t *q;

        apr_thread_mutex_lock(c->mutex);
        if ((q = c->req_head) != NULL) {
            c->req_head = q->next;
            if (!c->req_head)
                c->req_tail = NULL;
        }
        apr_thread_mutex_unlock(c->mutex);
        if (!q)
            break;
        if (q->type == REQ_OPEN) {
            con_res_t *r = open_console(c, db, p, q);

            if (!r)
                r = refusal(q->num, CLOSE_UNAVAILABLE, "out of memory");
            if (r) {
                r->open = 1;
                res_queue(c, r);
            }
        }
        else
            audit_end(db, p, q);
        req_free(q);
        apr_pool_clear(p);
        if (ag->stopping)
            break;
    }
    now = apr_time_now();
    apr_thread_mutex_lock(c->mutex);
    if (now >= c->next_check) {
        c->next_check = now + CON_CHECK_EVERY;
        check = apr_hash_count(c->live) > 0;
    }
    apr_thread_mutex_unlock(c->mutex);
    if (check)
        recheck(c, db, p);
    return CON_CHECK_EVERY;
}

/* -------------------------------------------------------------- lifetime -- */

/* At the agent's end, after the live-push server's (whose context's end closes every
 * session): what the workers did not take and the answers nobody read. */
static apr_status_t console_cleanup(void *data)
{
    agent_console_t *c = data;
    apr_hash_index_t *hi;

    while (c->req_head) {
        con_req_t *q = c->req_head;

        c->req_head = q->next;
        req_free(q);
    }
    while (c->res_head) {
        con_res_t *r = c->res_head;

        c->res_head = r->next;
        res_free(r);
    }
    c->req_tail = NULL;
    c->res_tail = NULL;
    for (hi = apr_hash_first(NULL, c->live); hi; hi = apr_hash_next(hi))
        free(apr_hash_this_val(hi));
    apr_hash_clear(c->live);
    return APR_SUCCESS;
}

agent_console_t *agent_console_create(agent_t *ag, apr_pool_t *p)
{
    agent_console_t *c;
    const agent_conf_t *conf = ag->conf;

    if (!conf->console.enabled || conf->sio.port < 0)
        return NULL;
    c = apr_pcalloc(p, sizeof(*c));
    c->ag = ag;
    c->pool = p;
    c->conf = conf->console;
    if (apr_thread_mutex_create(&c->mutex, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS)
        return NULL;
    c->per_user = apr_hash_make(p);
    c->live = apr_hash_make(p);
    c->sessions = apr_hash_make(p);
    c->vhosts = apr_hash_make(p);
    /* registered before the live-push server's: runs after it */
    apr_pool_cleanup_register(p, c, console_cleanup, apr_pool_cleanup_null);
    c->protocols[0].name = CON_PROTOCOL;
    c->protocols[0].callback = console_callback;
    c->protocols[0].per_session_data_size = 0;
    c->protocols[0].rx_buffer_size = 0;
    c->protocols[0].tx_packet_size = 64 * 1024;
    c->protocols[0].user = c;
    /* the file's first cluster: for nodes no registered cluster claims (as the monitor) */
    if (conf->clusters->nelts > 0) {
        const agent_cluster_t *cl = &APR_ARRAY_IDX(conf->clusters, 0, agent_cluster_t);

        c->def_conf = cl->pve;
        c->def_conf.shared = NULL;
        c->def_conf.observe = NULL;
        if (ospab_pve_create(p, &c->def_conf, &c->def_client) == APR_SUCCESS)
            c->has_default = 1;
    }
    if (conf->seal_key && conf->clusters->nelts > 0) {
        ospab_pve_conf_t base = APR_ARRAY_IDX(conf->clusters, 0, agent_cluster_t).pve;

        base.shared = NULL;
        base.observe = NULL;
        if (ospab_clusters_create(p, conf->seal_key, &base, apr_time_from_sec(30),
                                  &c->clusters) != APR_SUCCESS)
            c->clusters = NULL;
    }
    return c;
}

int agent_console_stop(void *data)
{
    agent_console_t *c = data;
    con_sess_t *sess;
    int n = 0;

    for (sess = c->head; sess; sess = sess->next) {
        if (!sess->page && !sess->pve)
            continue;
        sess_fail(sess, LWS_CLOSE_STATUS_GOINGAWAY, "the console service is restarting: "
                  "open the console again from the panel");
        n++;
    }
    return n;
}

const struct lws_protocols *agent_console_protocol(agent_console_t *c)
{
    return &c->protocols[0];
}

void agent_console_attach(agent_console_t *c, struct lws_context *ctx)
{
    c->ctx = ctx;
}

void agent_console_stats(agent_console_t *c, agent_console_stats_t *out)
{
    con_sess_t *sess;

    apr_thread_mutex_lock(c->mutex);
    *out = c->stats;
    apr_thread_mutex_unlock(c->mutex);
    /* the queues are the service thread's, as is this call (the metrics listener) */
    out->queued = 0;
    for (sess = c->head; sess; sess = sess->next)
        out->queued += sess->to_page.bytes + sess->to_pve.bytes + sess->held.bytes;
}
