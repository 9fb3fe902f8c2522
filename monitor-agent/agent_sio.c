/* ospab-agent: the live-push server (see agent_sio.h).
 *
 * Everything below runs on the lws service thread except agent_sio_publish(),
 * agent_sio_rooms(), agent_sio_stats() and agent_sio_stop(), which only touch what the
 * mutex guards (the publish queue, the room index's shape, the counters) or the stop
 * flag, and wake the service thread with lws_cancel_service().
 *
 * Objects:
 *   sio_pkt_t   one encoded Engine.IO packet ("42[...]", made by the codec in
 *               lib/ospab_sio_codec.c) with LWS_PRE headroom, shared by every client it
 *               goes to (refcounted, service thread only once queued)
 *   sio_sess_t  one Engine.IO session = one Socket.IO client on namespace "/"; owns a
 *               bounded queue of packet references and its room memberships
 *   sio_conn_t  lws per-connection data: a held polling GET, a POST being read, a
 *               direct response being written, or a websocket
 *   sio_room_t  the subscribers of one server id (a list of memberships), found through
 *               a hash so that a publish visits only the room's members
 *   sio_addr_t  the sessions of one client address (per-address limits, session binding)
 *
 * A session is never freed inside a callback that may still use it: closing detaches it
 * from rooms, connections and timers at once, and a zero-delay timer frees it later.
 *
 * Abuse limits (docs/live-push.md): a session is "pending" until a CONNECT with a good
 * token; pending sessions cost a struct and a timer (no subscription array, no socket id),
 * are closed after connect_timeout, have their own cap (max_pending: the oldest goes for a
 * new one) and per-address caps, so anonymous handshakes cannot take the places of
 * authenticated clients (max_clients). The client address is the peer's, or for a
 * trusted proxy the right-most X-Forwarded-For entry (IPv6: its /64); every request
 * carrying a sid must come from the address the session was opened from, or the sid is
 * as unknown. Logs name sessions by a per-process number, never by their sid. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_encode.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_time.h>
#include <libwebsockets.h>

#include "agent_log.h"
#include "agent_sio.h"
#include "ospab_net.h"
#include "ospab_sio_codec.h"

#define SIO_CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* A session's timer (timer_schedule, timer_cancel): in the service's heap while
 * scheduled. */
typedef struct sio_timer sio_timer_t;
typedef void (*sio_timer_fn)(sio_timer_t *t);
struct sio_timer {
    lws_usec_t due;                     /* lws_now_usecs() clock */
    unsigned pos;                       /* 1 + its index in the heap; 0: not scheduled */
    sio_timer_fn fn;
};

/* a timer's due time is the clock plus its delay: a token valid until the year 200,000
 * must not overflow that sum, so long timers are set in steps of at most a day */
#define SIO_TIMER_MAX_US        ((lws_usec_t)86400 * APR_USEC_PER_SEC)
/* recheck requests waiting for the service thread; beyond this everyone is checked */
#define SIO_MAX_PENDING_CHECKS  65536
#define SIO_ADDR_MAX            OSPAB_NET_KEY_MAX   /* "a.b.c.d" or "x:x:x:x::/64" */
#define SIO_WITHDRAWN           "access to this server was withdrawn"
#define SIO_MAX_AUTH_FAILURES   3       /* refused CONNECTs, then the session is closed */
/* Publishes waiting for the service thread; beyond this the publisher is faster than
 * the fan-out for long, and the newest events are dropped rather than memory grown. */
#define SIO_MAX_PENDING_PUBLISH 65536
#define SIO_SID_BYTES           15      /* 20 base64url characters, as engine.io's */

enum { T_POLLING = 1, T_WEBSOCKET = 2 };
enum { K_NONE = 0, K_POLL, K_POST, K_RESP, K_WS };
enum { RESP_NONE = 0, RESP_HEADERS, RESP_BODY };

typedef struct sio_pkt_t {
    int refs;
    apr_size_t len;
    unsigned char *data;                /* LWS_PRE bytes of headroom before it */
    char *buf;                          /* the codec's buffer: data - LWS_PRE */
} sio_pkt_t;

typedef struct sio_qent_t {
    struct sio_qent_t *next;
    sio_pkt_t *pkt;
} sio_qent_t;

typedef struct sio_pub_t {
    struct sio_pub_t *next;
    apr_int64_t server_id;
    sio_pkt_t *pkt;
    sio_pkt_t *compact;                 /* the opt-in compact form, or NULL (one form) */
} sio_pub_t;

typedef struct sio_sess_t sio_sess_t;
typedef struct sio_room_t sio_room_t;

/* The sessions of one client address; freed with its last session. */
typedef struct {
    int sessions;                       /* open, connected or not */
    int pending;                        /* of them, not connected */
    char key[SIO_ADDR_MAX];             /* the hash key (see client_key) */
} sio_addr_t;

/* A recheck asked for by another thread (agent_sio_recheck_*). */
typedef struct sio_check_t {
    struct sio_check_t *next;
    int server;                         /* 1: server id; 0: user id */
    apr_int64_t id;
    int has_sid;
    char sid[AGENT_SIO_SID_MAX + 1];
} sio_check_t;

typedef struct sio_member_t {
    sio_room_t *room;
    sio_sess_t *sess;
    struct sio_member_t *prev, *next;
    int compact;                        /* subscribed with {"compact": true} */
    int primed;                         /* has had a full form since (then compact ones) */
} sio_member_t;

struct sio_room_t {
    apr_int64_t id;
    sio_member_t *head;
    int count;
};

struct sio_sess_t {
    agent_sio_t *s;
    char sid[32];                       /* Engine.IO session id: never logged */
    char sock_sid[32];                  /* Socket.IO socket id, made at CONNECT */
    apr_uint64_t num;                   /* what the logs call it */
    sio_addr_t *addr;                   /* where it was opened from; requests must be too */
    sio_sess_t *pend_prev, *pend_next;  /* the pending list, oldest first, while pending */
    int transport;
    struct lws *poll_wsi;               /* the held polling GET */
    struct lws *post_wsi;               /* a POST being read */
    struct lws *ws_wsi;                 /* websocket: probing, or the transport once upgraded */
    int probed;                         /* "2probe" answered: polls end at once until "5" */
    int connected;                      /* Socket.IO CONNECT accepted */
    int pending;                        /* in the pending list */
    int auth_failures;                  /* CONNECTs refused */
    int close_after_flush;
    int dead;
    int awaiting_pong;
    agent_sio_user_t user;
    sio_qent_t *qhead, *qtail;
    int qlen;
    apr_size_t qbytes;
    sio_member_t **subs;                /* max_subscriptions, allocated at CONNECT */
    int nsubs;
    sio_timer_t ping_timer;
    sio_timer_t expiry_timer;
    sio_sess_t *next_dead;
};

typedef struct {
    int kind;
    sio_sess_t *sess;
    /* a response being written */
    int resp_state;
    unsigned status;
    const char *ctype;
    unsigned char *out;                 /* LWS_PRE + out_len */
    apr_size_t out_len;
    /* a POST body or a websocket message being gathered */
    char *in;
    apr_size_t in_len, in_cap;
    int in_too_big;
    /* websocket */
    int probe_pending;                  /* "3probe" to write */
    int ws_close;                       /* close at the next writeable */
    int close_after_resp;               /* a body of unknown length: no keep-alive */
    int body_pending;                   /* a POST body still to come: answer after it, or
                                         * a proxy still sending it sees a broken pipe */
    int counted_ws;
    int tomb;                           /* a POST to a session that has just closed */
} sio_conn_t;

/* A polling session that has closed, remembered for SIO_TOMB_US (see sess_close). */
typedef struct sio_tomb_t {
    struct sio_tomb_t *next;
    lws_usec_t until;
    char sid[32];
    char key[SIO_ADDR_MAX];
} sio_tomb_t;

struct agent_sio_t {
    apr_pool_t *pool;
    agent_sio_conf_t conf;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    struct lws_vhost *metrics_vhost;    /* conf.metrics_port: GET /metrics only; or NULL */
    struct lws_protocols protocols[3];   /* engine.io, the console's, the end */
    int port;
    int metrics_port;
    volatile sig_atomic_t stop;
    int stopped;

    apr_thread_mutex_t *mutex;          /* guards: pub and check queues, rooms hash shape,
                                         * stats */
    sio_pub_t *pub_head, *pub_tail;
    int pub_len;
    sio_check_t *check_head, *check_tail;
    int check_len;
    int check_all;                      /* the check queue overflowed: check everyone */
    apr_hash_t *rooms;                  /* apr_int64_t -> sio_room_t */
    agent_sio_stats_t stats;

    /* service thread only */
    apr_hash_t *sessions;               /* sid -> sio_sess_t */
    apr_hash_t *addrs;                  /* client key -> sio_addr_t */
    ospab_net_t *proxies;               /* trusted_proxies */
    int nproxies;
    sio_sess_t *pend_head, *pend_tail;  /* pending sessions, oldest first */
    int npending, nconnected;
    apr_uint64_t next_num;
    sio_sess_t *dead;
    apr_hash_t *tombs;                  /* sid -> sio_tomb_t, closed polling sessions */
    sio_tomb_t *tomb_head, *tomb_tail;  /* oldest first */
    int ntombs;
    lws_sorted_usec_list_t reap_sul;
    sio_timer_t **timers;               /* the sessions' timers, a binary min-heap by due */
    unsigned ntimers, timers_cap, timers_reserved;
    lws_sorted_usec_list_t timers_sul;  /* lws's timer for the heap's earliest */
    sio_pkt_t *pkt_ping, *pkt_noop;
    int ws_conns;
    char path[256];
    apr_size_t path_len;
};

/* --------------------------------------------------------------- packets -- */

/* A packet the codec encoded with LWS_PRE bytes of headroom (buf is handed over; *len is
 * read only when buf is not NULL). NULL when out of memory. */
static sio_pkt_t *pkt_wrap(char *buf, const apr_size_t *len)
{
    sio_pkt_t *pkt;

    if (!buf)
        return NULL;
    if (!(pkt = malloc(sizeof(*pkt)))) {
        free(buf);
        return NULL;
    }
    pkt->refs = 1;
    pkt->len = *len;
    pkt->buf = buf;
    pkt->data = (unsigned char *)buf + LWS_PRE;
    return pkt;
}

/* One of the codec's packets without data ("2", "41", ...). */
static sio_pkt_t *pkt_text(const char *text)
{
    apr_size_t len = strlen(text);
    char *buf = malloc(LWS_PRE + len + 1);

    if (buf)
        memcpy(buf + LWS_PRE, text, len + 1);
    return pkt_wrap(buf, &len);
}

static void pkt_unref(sio_pkt_t *pkt)
{
    if (pkt && --pkt->refs == 0) {
        free(pkt->buf);
        free(pkt);
    }
}

/* ------------------------------------------------------------ helpers -- */

static int random_id(char *out, apr_size_t outsz)
{
    unsigned char raw[SIO_SID_BYTES];
    apr_size_t len;

    if (apr_generate_random_bytes(raw, sizeof(raw)) != APR_SUCCESS)
        return -1;
    if (apr_encode_base64_binary(out, raw, sizeof(raw),
                                 APR_ENCODE_BASE64URL | APR_ENCODE_NOPADDING, &len) != APR_SUCCESS
        || len >= outsz)
        return -1;
    out[len] = '\0';
    return 0;
}

static void stats_add(agent_sio_t *s, int *field, int delta)
{
    apr_thread_mutex_lock(s->mutex);
    *field += delta;
    apr_thread_mutex_unlock(s->mutex);
}

static void conn_free_buffers(sio_conn_t *c)
{
    free(c->out);
    c->out = NULL;
    c->out_len = 0;
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    c->in_too_big = 0;
    c->resp_state = RESP_NONE;
}

static int conn_append_in(sio_conn_t *c, const void *data, apr_size_t len, apr_size_t max)
{
    if (c->in_too_big || c->in_len + len > max) {
        c->in_too_big = 1;
        return -1;
    }
    if (c->in_len + len + 1 > c->in_cap) {
        apr_size_t cap = c->in_cap ? c->in_cap * 2 : 512;
        char *n;

        while (cap < c->in_len + len + 1)
            cap *= 2;
        n = realloc(c->in, cap);
        if (!n)
            return -1;
        c->in = n;
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, data, len);
    c->in_len += len;
    c->in[c->in_len] = '\0';
    return 0;
}

/* Queues a whole HTTP response on wsi; it is written from HTTP_WRITEABLE. */
static void conn_respond(struct lws *wsi, sio_conn_t *c, unsigned status, const char *ctype,
                         const void *body, apr_size_t len)
{
    free(c->out);
    c->out = malloc(LWS_PRE + len + 1);
    if (!c->out) {
        c->out_len = 0;
        c->ws_close = 1;                /* no memory for an answer: hang up */
    }
    else {
        memcpy(c->out + LWS_PRE, body, len);
        c->out_len = len;
    }
    c->kind = K_RESP;
    c->status = status;
    c->ctype = ctype;
    c->resp_state = RESP_HEADERS;
    if (!c->body_pending)
        lws_callback_on_writable(wsi);
}

/* The reference server's error answers: 400 {"code":N,"message":"..."}. */
static void conn_respond_error(struct lws *wsi, sio_conn_t *c, unsigned status, int code,
                               const char *message)
{
    apr_size_t len = 0;
    char *text = ospab_eio_encode_error(code, message, &len);

    if (text)
        conn_respond(wsi, c, status, "application/json", text, len);
    else
        conn_respond(wsi, c, 500, "text/plain", "error", 5);
    free(text);
}

/* ------------------------------------------------------ client addresses -- */

int agent_sio_proxies_check(apr_pool_t *p, const char *text, const char **bad)
{
    ospab_net_t *nets;
    int n;

    return ospab_net_list_parse(p, text, &nets, &n, bad);
}

/* The client address of a request, as the key its limits and its sessions go by
 * (lib/ospab_net.c): the peer's, or the one a trusted proxy names, an IPv6 client by its
 * /64 (one host usually has all of it, so one address each would be no limit at all). */
static void client_key(agent_sio_t *s, struct lws *wsi, char *key, apr_size_t keysz)
{
    char peer[INET6_ADDRSTRLEN + 1], xff[4200];
    const char *from = lws_get_peer_simple(wsi, peer, sizeof(peer));
    int has_xff = lws_hdr_copy(wsi, xff, sizeof(xff), WSI_TOKEN_X_FORWARDED_FOR) > 0;

    ospab_net_client_key(s->proxies, s->nproxies, from, has_xff ? xff : NULL, key, keysz);
}

static sio_addr_t *addr_get(agent_sio_t *s, const char *key)
{
    return apr_hash_get(s->addrs, key, APR_HASH_KEY_STRING);
}

/* One more session from key (NULL: out of memory). */
static sio_addr_t *addr_hold(agent_sio_t *s, const char *key)
{
    sio_addr_t *a = addr_get(s, key);

    if (!a) {
        if (!(a = calloc(1, sizeof(*a))))
            return NULL;
        apr_cpystrn(a->key, key, sizeof(a->key));
        apr_hash_set(s->addrs, a->key, APR_HASH_KEY_STRING, a);
    }
    a->sessions++;
    return a;
}

static void addr_release(agent_sio_t *s, sio_addr_t *a)
{
    if (a && --a->sessions == 0) {
        apr_hash_set(s->addrs, a->key, APR_HASH_KEY_STRING, NULL);
        free(a);
    }
}

/* --------------------------------------------------------------- rooms -- */

static void room_leave(agent_sio_t *s, sio_member_t *m)
{
    sio_room_t *room = m->room;

    apr_thread_mutex_lock(s->mutex);
    if (m->prev)
        m->prev->next = m->next;
    else
        room->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    if (--room->count == 0) {
        apr_hash_set(s->rooms, &room->id, sizeof(room->id), NULL);
        s->stats.rooms--;
        free(room);
    }
    apr_thread_mutex_unlock(s->mutex);
    free(m);
}

static int sess_find_sub(sio_sess_t *sess, apr_int64_t id)
{
    int i;

    for (i = 0; i < sess->nsubs; ++i)
        if (sess->subs[i]->room->id == id)
            return i;
    return -1;
}

static void sess_leave(sio_sess_t *sess, apr_int64_t id)
{
    int i = sess_find_sub(sess, id);

    if (i < 0)
        return;
    room_leave(sess->s, sess->subs[i]);
    sess->subs[i] = sess->subs[--sess->nsubs];
}

static void sess_leave_all(sio_sess_t *sess)
{
    while (sess->nsubs > 0)
        room_leave(sess->s, sess->subs[--sess->nsubs]);
}

/* 0 joined (or already in: its form may change); -1 out of memory. */
static int sess_join(sio_sess_t *sess, apr_int64_t id, int compact)
{
    agent_sio_t *s = sess->s;
    sio_member_t *m;
    sio_room_t *room;
    int opened = 0, i = sess_find_sub(sess, id);

    if (i >= 0) {
        m = sess->subs[i];
        if (m->compact != compact) {
            m->compact = compact;
            m->primed = 0;              /* the whole hour again, then only new points */
        }
        return 0;
    }
    m = calloc(1, sizeof(*m));
    if (!m)
        return -1;
    apr_thread_mutex_lock(s->mutex);
    room = apr_hash_get(s->rooms, &id, sizeof(id));
    if (!room) {
        room = calloc(1, sizeof(*room));
        if (!room) {
            apr_thread_mutex_unlock(s->mutex);
            free(m);
            return -1;
        }
        room->id = id;
        apr_hash_set(s->rooms, &room->id, sizeof(room->id), room);
        s->stats.rooms++;
        opened = 1;
    }
    m->room = room;
    m->sess = sess;
    m->compact = compact;
    m->next = room->head;
    if (room->head)
        room->head->prev = m;
    room->head = m;
    room->count++;
    apr_thread_mutex_unlock(s->mutex);
    sess->subs[sess->nsubs++] = m;
    if (opened && s->conf.room_opened)
        s->conf.room_opened(s->conf.ctx, id);
    return 0;
}

/* ------------------------------------------------------------ sessions -- */

static void sess_close(sio_sess_t *sess, const char *why);

static void sess_kick(sio_sess_t *sess)
{
    if (sess->transport == T_WEBSOCKET) {
        if (sess->ws_wsi)
            lws_callback_on_writable(sess->ws_wsi);
    }
    else if (sess->poll_wsi)
        lws_callback_on_writable(sess->poll_wsi);
}

/* Adds a reference to pkt to the client's queue. 0 queued; -1 the bound was hit and the
 * client is being disconnected (a client that cannot keep up must not grow our memory). */
static int sess_push(sio_sess_t *sess, sio_pkt_t *pkt)
{
    agent_sio_t *s = sess->s;
    sio_qent_t *e;

    if (sess->dead || sess->close_after_flush)
        return 0;
    if (sess->qlen + 1 > s->conf.max_queue_msgs
        || sess->qbytes + pkt->len > s->conf.max_queue_bytes) {
        apr_thread_mutex_lock(s->mutex);
        s->stats.dropped_slow++;
        apr_thread_mutex_unlock(s->mutex);
        AGENT_INFO("live-push: session #%" APR_UINT64_T_FMT " (user %" APR_INT64_T_FMT ") "
                   "too slow: %d packets, %" APR_SIZE_T_FMT " bytes waiting; disconnected",
                   sess->num, sess->user.user_id, sess->qlen, sess->qbytes);
        sess_close(sess, "queue full");
        return -1;
    }
    e = malloc(sizeof(*e));
    if (!e) {
        sess_close(sess, "out of memory");
        return -1;
    }
    e->next = NULL;
    e->pkt = pkt;
    pkt->refs++;
    if (sess->qtail)
        sess->qtail->next = e;
    else
        sess->qhead = e;
    sess->qtail = e;
    sess->qlen++;
    sess->qbytes += pkt->len;
    sess_kick(sess);
    return 0;
}

/* Queues a packet built here (the caller's reference is handed over). */
static int sess_send(sio_sess_t *sess, sio_pkt_t *pkt)
{
    int rv;

    if (!pkt) {
        sess_close(sess, "out of memory");
        return -1;
    }
    rv = sess_push(sess, pkt);
    pkt_unref(pkt);
    return rv;
}

static sio_pkt_t *sess_pop(sio_sess_t *sess)
{
    sio_qent_t *e = sess->qhead;
    sio_pkt_t *pkt;

    if (!e)
        return NULL;
    sess->qhead = e->next;
    if (!sess->qhead)
        sess->qtail = NULL;
    sess->qlen--;
    sess->qbytes -= e->pkt->len;
    pkt = e->pkt;
    free(e);
    return pkt;
}

/* ------------------------------------------------------- session timers -- */

/* Every session has two timers (ping, expiry). lws keeps its timers in one sorted list and
 * an insertion walks it from the start: with thousands of sessions, every connect and
 * every ping paid a walk over all of them (bench/fanout with 19,000 clients: 84 % of the
 * service thread's CPU in lws_dll2_add_sorted). The sessions' timers are a binary
 * min-heap instead, O(log n) each, with one lws timer for the earliest. Room for two per
 * session is reserved when the session is made (timers_reserve), so scheduling never
 * allocates. */

static void timers_place(agent_sio_t *s, unsigned i, sio_timer_t *t)
{
    s->timers[i] = t;
    t->pos = i + 1;
}

static void timers_up(agent_sio_t *s, unsigned i)
{
    sio_timer_t *t = s->timers[i];

    while (i > 0 && s->timers[(i - 1) / 2]->due > t->due) {
        timers_place(s, i, s->timers[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    timers_place(s, i, t);
}

static void timers_down(agent_sio_t *s, unsigned i)
{
    sio_timer_t *t = s->timers[i];

    for (;;) {
        unsigned c = 2 * i + 1;

        if (c >= s->ntimers)
            break;
        if (c + 1 < s->ntimers && s->timers[c + 1]->due < s->timers[c]->due)
            c++;
        if (t->due <= s->timers[c]->due)
            break;
        timers_place(s, i, s->timers[c]);
        i = c;
    }
    timers_place(s, i, t);
}

static void timers_cb(lws_sorted_usec_list_t *sul);

/* lws's timer set for the earliest (a cancelled earliest is not unset: its wake-up finds
 * nothing due and sets the next) */
static void timers_arm(agent_sio_t *s)
{
    lws_usec_t now = lws_now_usecs();

    if (s->ntimers)
        lws_sul_schedule(s->ctx, 0, &s->timers_sul, timers_cb,
                         s->timers[0]->due > now ? s->timers[0]->due - now : 1);
}

static void timer_cancel(agent_sio_t *s, sio_timer_t *t)
{
    unsigned i;
    sio_timer_t *last;

    if (!t->pos)
        return;
    i = t->pos - 1;
    t->pos = 0;
    last = s->timers[--s->ntimers];
    if (last != t) {
        timers_place(s, i, last);
        timers_down(s, i);
        timers_up(s, last->pos - 1);
    }
}

/* t runs fn in us from now (rescheduled if it was scheduled) */
static void timer_schedule(agent_sio_t *s, sio_timer_t *t, sio_timer_fn fn, lws_usec_t us)
{
    timer_cancel(s, t);
    t->due = lws_now_usecs() + us;
    t->fn = fn;
    timers_place(s, s->ntimers++, t);
    timers_up(s, s->ntimers - 1);
    if (t->pos == 1)
        timers_arm(s);
}

static void timers_cb(lws_sorted_usec_list_t *sul)
{
    agent_sio_t *s = SIO_CONTAINER(sul, agent_sio_t, timers_sul);
    lws_usec_t now = lws_now_usecs();

    while (s->ntimers && s->timers[0]->due <= now) {
        sio_timer_t *t = s->timers[0];

        timer_cancel(s, t);
        t->fn(t);                   /* may schedule or cancel timers, close sessions */
    }
    timers_arm(s);
}

/* Room for the two timers of one more session. */
static int timers_reserve(agent_sio_t *s)
{
    if (s->timers_reserved + 2 > s->timers_cap) {
        unsigned cap = s->timers_cap ? 2 * s->timers_cap : 64;
        sio_timer_t **t = realloc(s->timers, sizeof(*t) * cap);

        if (!t)
            return -1;
        s->timers = t;
        s->timers_cap = cap;
    }
    s->timers_reserved += 2;
    return 0;
}

static void reap_cb(lws_sorted_usec_list_t *sul)
{
    agent_sio_t *s = SIO_CONTAINER(sul, agent_sio_t, reap_sul);

    while (s->dead) {
        sio_sess_t *sess = s->dead;

        s->dead = sess->next_dead;
        free(sess->subs);
        free(sess);
    }
}

static void detach_conn(struct lws *wsi)
{
    sio_conn_t *c = wsi ? lws_wsi_user(wsi) : NULL;

    if (c)
        c->sess = NULL;
}

/* Into the pending list (oldest first): not connected with a good token. */
static void pend_add(sio_sess_t *sess)
{
    agent_sio_t *s = sess->s;

    sess->pend_next = NULL;
    sess->pend_prev = s->pend_tail;
    if (s->pend_tail)
        s->pend_tail->pend_next = sess;
    else
        s->pend_head = sess;
    s->pend_tail = sess;
    sess->pending = 1;
    s->npending++;
    sess->addr->pending++;
    stats_add(s, &s->stats.pending, 1);
}

static void pend_remove(sio_sess_t *sess)
{
    agent_sio_t *s = sess->s;

    if (!sess->pending)
        return;
    if (sess->pend_prev)
        sess->pend_prev->pend_next = sess->pend_next;
    else
        s->pend_head = sess->pend_next;
    if (sess->pend_next)
        sess->pend_next->pend_prev = sess->pend_prev;
    else
        s->pend_tail = sess->pend_prev;
    sess->pend_prev = sess->pend_next = NULL;
    sess->pending = 0;
    s->npending--;
    sess->addr->pending--;
    stats_add(s, &s->stats.pending, -1);
}

/* A polling client's requests go through the proxy on connections of their own, so one
 * it sent before its session closed can arrive after: the poll it issued just before its
 * own close packet, or a POST crossing the poll that carried our close packet. The
 * reference server answers those 400 "Session ID unknown", which a browser shows as an
 * error although nothing went wrong. A closed polling session's id is remembered for a
 * few seconds (at most SIO_TOMBS_MAX of them, oldest dropped first) so that such a late
 * poll gets the close packet and a late POST its "ok", both dropped. Only sessions that
 * ended by the protocol's close (sess_close_polling) and requests from the address that
 * had the session are answered so; a session closed for a fault stays unknown at once. */
#define SIO_TOMB_US (10 * LWS_US_PER_SEC)
#define SIO_TOMBS_MAX 4096

static void tomb_drop_head(agent_sio_t *s)
{
    sio_tomb_t *t = s->tomb_head;

    s->tomb_head = t->next;
    if (!s->tomb_head)
        s->tomb_tail = NULL;
    apr_hash_set(s->tombs, t->sid, APR_HASH_KEY_STRING, NULL);
    s->ntombs--;
    free(t);
}

static void tomb_expire(agent_sio_t *s, lws_usec_t now)
{
    while (s->tomb_head && s->tomb_head->until <= now)
        tomb_drop_head(s);
}

static void tomb_add(agent_sio_t *s, const sio_sess_t *sess)
{
    lws_usec_t now = lws_now_usecs();
    sio_tomb_t *t;

    tomb_expire(s, now);
    if (!sess->addr || apr_hash_get(s->tombs, sess->sid, APR_HASH_KEY_STRING))
        return;
    if (s->ntombs >= SIO_TOMBS_MAX)
        tomb_drop_head(s);
    if (!(t = malloc(sizeof(*t))))
        return;                         /* then a late request gets the 400 */
    t->next = NULL;
    t->until = now + SIO_TOMB_US;
    apr_cpystrn(t->sid, sess->sid, sizeof(t->sid));
    apr_cpystrn(t->key, sess->addr->key, sizeof(t->key));
    if (s->tomb_tail)
        s->tomb_tail->next = t;
    else
        s->tomb_head = t;
    s->tomb_tail = t;
    s->ntombs++;
    apr_hash_set(s->tombs, t->sid, APR_HASH_KEY_STRING, t);
}

static int tomb_known(agent_sio_t *s, const char *sid, const char *key)
{
    sio_tomb_t *t;

    tomb_expire(s, lws_now_usecs());
    t = apr_hash_get(s->tombs, sid, APR_HASH_KEY_STRING);
    return t && !strcmp(t->key, key);
}

/* A polling session's close by the protocol: the client's close packet, or ours delivered. */
static void sess_close_polling(sio_sess_t *sess, const char *why)
{
    if (!sess->dead && sess->transport == T_POLLING && !sess->s->stop)
        tomb_add(sess->s, sess);
    sess_close(sess, why);
}

/* Ends the session now: out of every room and timer; a websocket is closed, a held poll
 * answered with the close packet, a POST being read answered when it completes. The
 * struct itself is freed from a timer, after the current callback. */
static void sess_close(sio_sess_t *sess, const char *why)
{
    agent_sio_t *s = sess->s;
    sio_pkt_t *pkt;

    if (sess->dead)
        return;
    sess->dead = 1;
    AGENT_DEBUG("live-push: session #%" APR_UINT64_T_FMT " closed: %s", sess->num, why);
    apr_hash_set(s->sessions, sess->sid, APR_HASH_KEY_STRING, NULL);
    pend_remove(sess);
    if (sess->connected)
        s->nconnected--;
    addr_release(s, sess->addr);
    sess->addr = NULL;
    sess_leave_all(sess);
    timer_cancel(s, &sess->ping_timer);
    timer_cancel(s, &sess->expiry_timer);
    s->timers_reserved -= 2;
    while ((pkt = sess_pop(sess)) != NULL)
        pkt_unref(pkt);
    if (sess->ws_wsi) {
        sio_conn_t *c = lws_wsi_user(sess->ws_wsi);

        if (c) {
            c->sess = NULL;
            c->ws_close = 1;
        }
        lws_callback_on_writable(sess->ws_wsi);
    }
    if (sess->poll_wsi) {
        sio_conn_t *c = lws_wsi_user(sess->poll_wsi);

        if (c) {
            c->sess = NULL;
            conn_respond(sess->poll_wsi, c, 200, "text/plain; charset=UTF-8",
                         OSPAB_EIO_PKT_CLOSE, 1);
        }
    }
    detach_conn(sess->post_wsi);
    sess->ws_wsi = sess->poll_wsi = sess->post_wsi = NULL;

    apr_thread_mutex_lock(s->mutex);
    s->stats.sessions--;
    if (sess->transport == T_WEBSOCKET)
        s->stats.websocket--;
    apr_thread_mutex_unlock(s->mutex);

    sess->next_dead = s->dead;
    s->dead = sess;
    lws_sul_schedule(s->ctx, 0, &s->reap_sul, reap_cb, 1);
}

static void ping_cb(sio_timer_t *t)
{
    sio_sess_t *sess = SIO_CONTAINER(t, sio_sess_t, ping_timer);
    agent_sio_t *s = sess->s;

    if (sess->awaiting_pong) {
        if (sess->close_after_flush)
            sess_close_polling(sess, "closed after flush");
        else
            sess_close(sess, "ping timeout");
        return;
    }
    sess->awaiting_pong = 1;
    timer_schedule(s, &sess->ping_timer, ping_cb, (lws_usec_t)s->conf.ping_timeout_ms * 1000);
    sess_push(sess, s->pkt_ping);
}

static void expiry_cb(sio_timer_t *t);

/* The token's expiry timer, in steps of at most SIO_TIMER_MAX_US (a day: the clock plus
 * the delay must not overflow for a token valid until the year 200,000). */
static void expiry_arm(sio_sess_t *sess)
{
    apr_time_t left = sess->user.expires - apr_time_now();

    if (left < 0)
        left = 0;
    if ((lws_usec_t)left > SIO_TIMER_MAX_US)
        left = (apr_time_t)SIO_TIMER_MAX_US;
    timer_schedule(sess->s, &sess->expiry_timer, expiry_cb, (lws_usec_t)left);
}

/* The server ends the client's Socket.IO connection ("41"): the client hears "io server
 * disconnect" and does not reconnect by itself with what it had. Nothing more is sent. */
static void sess_disconnect(sio_sess_t *sess)
{
    sess_leave_all(sess);
    sess_send(sess, pkt_text(OSPAB_SIO_PKT_DISCONNECT));
    sess->close_after_flush = 1;
    sess_kick(sess);
}

static void expiry_cb(sio_timer_t *t)
{
    sio_sess_t *sess = SIO_CONTAINER(t, sio_sess_t, expiry_timer);

    if (!sess->connected) {
        sess_close(sess, "no Socket.IO connect with a good token in time");
        return;
    }
    if (sess->user.expires > apr_time_now()) {
        expiry_arm(sess);           /* one step of a long wait */
        return;
    }
    sess_disconnect(sess);
}

/* An unauthenticated session starts (or, after a client's DISCONNECT, starts again): it
 * has connect_timeout to connect with a good token. */
static void sess_pending(sio_sess_t *sess)
{
    pend_add(sess);
    timer_schedule(sess->s, &sess->expiry_timer, expiry_cb,
                   (lws_usec_t)sess->s->conf.connect_timeout_ms * 1000);
}

/* A new session for a client at key, or NULL with the HTTP status and the message of the
 * refusal. Per-address limits first (429), then room for an authenticated client (503);
 * the pending limit makes room by closing the oldest pending session, so a flood of
 * handshakes delays nobody who connects promptly. */
static const char *sess_refusal(agent_sio_t *s, const char *key, unsigned *status)
{
    sio_addr_t *a = addr_get(s, key);

    if (a && (a->sessions >= s->conf.max_per_address
              || a->pending >= s->conf.max_pending_per_address)) {
        *status = 429;
        return "Too many sessions from this address";
    }
    if (s->nconnected >= s->conf.max_clients) {
        *status = 503;
        return "Too many clients";
    }
    return NULL;
}

static sio_sess_t *sess_new(agent_sio_t *s, int transport, const char *key, unsigned *status,
                            const char **why)
{
    sio_sess_t *sess;

    if ((*why = sess_refusal(s, key, status)) != NULL)
        return NULL;
    if (s->npending >= s->conf.max_pending && s->pend_head)
        sess_close(s->pend_head, "the oldest pending session, for a new one");
    *status = 503;
    if (!(sess = calloc(1, sizeof(*sess)))) {
        *why = "Out of memory";
        return NULL;
    }
    if (timers_reserve(s)) {
        free(sess);
        *why = "Out of memory";
        return NULL;
    }
    if (random_id(sess->sid, sizeof(sess->sid))) {
        s->timers_reserved -= 2;
        free(sess);
        *why = "No randomness";
        return NULL;
    }
    if (!(sess->addr = addr_hold(s, key))) {
        s->timers_reserved -= 2;
        free(sess);
        *why = "Out of memory";
        return NULL;
    }
    sess->s = s;
    sess->num = ++s->next_num;
    sess->transport = transport;
    apr_hash_set(s->sessions, sess->sid, APR_HASH_KEY_STRING, sess);
    apr_thread_mutex_lock(s->mutex);
    s->stats.sessions++;
    if (transport == T_WEBSOCKET)
        s->stats.websocket++;
    apr_thread_mutex_unlock(s->mutex);
    timer_schedule(s, &sess->ping_timer, ping_cb, (lws_usec_t)s->conf.ping_interval_ms * 1000);
    sess_pending(sess);
    AGENT_DEBUG("live-push: session #%" APR_UINT64_T_FMT " opened from %s (%s)", sess->num,
                key, transport == T_WEBSOCKET ? "websocket" : "polling");
    return sess;
}

/* The session of sid, if it was opened from the same client address: to anyone else a sid
 * is as unknown as a made-up one, so a sid seen in a log or over a shoulder does not open
 * the session to another machine. */
static sio_sess_t *sess_lookup(agent_sio_t *s, const char *sid, const char *key)
{
    sio_sess_t *sess = apr_hash_get(s->sessions, sid, APR_HASH_KEY_STRING);

    if (!sess || !sess->addr || strcmp(sess->addr->key, key))
        return NULL;
    return sess;
}

/* The Engine.IO open packet: a polling session may upgrade to a websocket. */
static sio_pkt_t *open_packet(sio_sess_t *sess)
{
    agent_sio_t *s = sess->s;
    ospab_eio_open_t o;
    apr_size_t len = 0;

    o.sid = sess->sid;
    o.upgrade_websocket = sess->transport == T_POLLING;
    o.ping_interval_ms = s->conf.ping_interval_ms;
    o.ping_timeout_ms = s->conf.ping_timeout_ms;
    o.max_payload = (apr_int64_t)s->conf.max_payload;
    return pkt_wrap(ospab_eio_encode_open(&o, LWS_PRE, &len), &len);
}

/* ----------------------------------------------------------- Socket.IO -- */

/* A server id given as a positive JSON integer or a string of decimal digits. */
static int parse_server_id(const json_t *v, apr_int64_t *out)
{
    if (json_is_integer(v)) {
        if (json_integer_value(v) <= 0)
            return -1;
        *out = (apr_int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *p = json_string_value(v);
        apr_size_t n = json_string_length(v), i;
        apr_int64_t id = 0;

        if (n == 0 || n > 18)
            return -1;
        for (i = 0; i < n; ++i) {
            if (p[i] < '0' || p[i] > '9')
                return -1;
            id = id * 10 + (p[i] - '0');
        }
        if (id <= 0)
            return -1;
        *out = id;
        return 0;
    }
    return -1;
}

/* Answers the client's ack id with result (the reference is taken over). */
static void send_ack(sio_sess_t *sess, long ack_id, json_t *result)
{
    apr_size_t len = 0;

    sess_send(sess, pkt_wrap(ospab_sio_encode_ack(ack_id, result, LWS_PRE, &len), &len));
    json_decref(result);
}

/* An event of ours to this client alone (data: the caller keeps its reference). */
static void send_event(sio_sess_t *sess, const char *name, const json_t *data)
{
    apr_size_t len = 0;

    sess_send(sess, pkt_wrap(ospab_sio_encode_event(name, data, LWS_PRE, &len), &len));
}

static void subscription(sio_sess_t *sess, int subscribe, const json_t *arg, long ack_id)
{
    agent_sio_t *s = sess->s;
    apr_int64_t id = 0;
    const char *why = NULL;
    int compact = 0;

    /* the seed's id, or {"serverId": id, "compact": true} for the compact form of
     * server-stats (docs/live-push.md) */
    if (json_is_object(arg)) {
        json_t *c = json_object_get(arg, "compact");

        if (c && !json_is_boolean(c)) {
            why = "compact must be true or false";
            arg = NULL;
        }
        compact = json_is_true(c);
        if (arg)
            arg = json_object_get(arg, "serverId");
    }
    if (why)
        ;
    else if (parse_server_id(arg, &id))
        why = "serverId must be a positive integer";
    else if (!subscribe)
        sess_leave(sess, id);
    else if (sess_find_sub(sess, id) >= 0)
        sess_join(sess, id, compact);   /* already in: fine, once (the form may change) */
    else if (sess->nsubs >= s->conf.max_subscriptions)
        why = "too many subscriptions";
    else if (!sess->user.is_admin && s->conf.may_subscribe
             && s->conf.may_subscribe(s->conf.ctx, &sess->user, id, &why)) {
        if (!why)
            why = "not allowed";
    }
    else if (sess_join(sess, id, compact))
        why = "out of memory";

    if (ack_id >= 0) {
        json_t *r = why ? json_pack("{sbss}", "ok", 0, "error", why)
                        : json_pack("{sbsI}", "ok", 1, "serverId", (json_int_t)id);

        if (!why && subscribe && compact)
            json_object_set_new(r, "compact", json_true());
        if (why && id > 0)
            json_object_set_new(r, "serverId", json_integer(id));
        send_ack(sess, ack_id, r);
    }
    if (why && subscribe && !sess->dead) {
        json_t *ev = json_pack("{soss}", "serverId", id > 0 ? json_integer(id) : json_null(),
                               "error", why);

        send_event(sess, "subscribe-error", ev);
        json_decref(ev);
    }
}

static void sio_connect(sio_sess_t *sess, const ospab_sio_packet_t *pkt)
{
    agent_sio_t *s = sess->s;
    json_t *auth = NULL;
    const char *token, *why = NULL;
    agent_sio_user_t u;
    apr_size_t len = 0;

    if (strcmp(pkt->nsp, "/")) {
        sess_send(sess, pkt_wrap(ospab_sio_encode_connect_error(pkt->nsp, "Invalid namespace",
                                                                LWS_PRE, &len), &len));
        return;
    }
    if (sess->connected)
        return;                         /* a client connects once; a repeat is noise */
    token = ospab_sio_connect_token(pkt, &auth);
    memset(&u, 0, sizeof(u));
    if (!token)
        why = "Authentication required: auth {token} missing";
    else if (s->conf.authenticate(s->conf.ctx, token, &u, &why)) {
        if (!why)
            why = "Invalid token";
    }
    else if (u.expires && u.expires <= apr_time_now())
        why = "Token expired";
    else if (s->nconnected >= s->conf.max_clients)
        why = "Too many clients";
    else if (!sess->subs && !(sess->subs = calloc((apr_size_t)s->conf.max_subscriptions + 1,
                                                  sizeof(*sess->subs))))
        why = "Out of memory";
    else if (random_id(sess->sock_sid, sizeof(sess->sock_sid)))
        why = "No randomness";
    else
        why = NULL;

    if (why) {
        apr_thread_mutex_lock(s->mutex);
        s->stats.auth_failed++;
        apr_thread_mutex_unlock(s->mutex);
        sess_send(sess, pkt_wrap(ospab_sio_encode_connect_error("/", why, LWS_PRE, &len),
                                 &len));
        /* a client may try again with a fresh token on the same session (socket.connect()
         * after connect_error), but a session is no place to try token after token */
        if (++sess->auth_failures >= SIO_MAX_AUTH_FAILURES) {
            sess->close_after_flush = 1;
            sess_kick(sess);
        }
    }
    else {
        pend_remove(sess);
        sess->connected = 1;
        s->nconnected++;
        sess->user = u;
        timer_cancel(s, &sess->expiry_timer);
        if (u.expires)
            expiry_arm(sess);
        AGENT_DEBUG("live-push: session #%" APR_UINT64_T_FMT " connected: user %"
                    APR_INT64_T_FMT "%s", sess->num, u.user_id, u.is_admin ? " (admin)" : "");
        sess_send(sess, pkt_wrap(ospab_sio_encode_connect(sess->sock_sid, LWS_PRE, &len), &len));
    }
    json_decref(auth);
}

static void sio_event(sio_sess_t *sess, const ospab_sio_packet_t *pkt)
{
    const char *name;
    json_t *args = ospab_sio_event_args(pkt, &name);
    long ack_id = pkt->ack_id;

    if (!args) {
        sess_close(sess, "malformed event");
        return;
    }
    if (!strcmp(name, "subscribe-server"))
        subscription(sess, 1, json_array_get(args, 1), ack_id);
    else if (!strcmp(name, "unsubscribe-server"))
        subscription(sess, 0, json_array_get(args, 1), ack_id);
    else if (ack_id >= 0)
        send_ack(sess, ack_id, json_pack("{sbss}", "ok", 0, "error", "unknown event"));
    json_decref(args);
}

/* One Socket.IO packet (the data of an Engine.IO message). */
static void sio_packet(sio_sess_t *sess, const char *text, apr_size_t len)
{
    ospab_sio_packet_t pkt;
    const char *why;

    if (ospab_sio_parse(text, len, &pkt, &why) != APR_SUCCESS) {
        sess_close(sess, why);
        return;
    }
    switch (pkt.type) {
    case OSPAB_SIO_CONNECT:
        sio_connect(sess, &pkt);
        return;
    case OSPAB_SIO_DISCONNECT:
        if (!strcmp(pkt.nsp, "/") && sess->connected) {
            agent_sio_t *s = sess->s;

            /* unauthenticated again: the same limits and timeout as a new session */
            sess_leave_all(sess);
            sess->connected = 0;
            s->nconnected--;
            memset(&sess->user, 0, sizeof(sess->user));
            timer_cancel(s, &sess->expiry_timer);
            if (s->npending >= s->conf.max_pending
                || sess->addr->pending >= s->conf.max_pending_per_address) {
                sess_close(sess, "disconnected, and no room for a pending session");
                return;
            }
            sess_pending(sess);
        }
        return;
    case OSPAB_SIO_EVENT:
        if (!sess->connected || strcmp(pkt.nsp, "/")) {
            sess_close(sess, "event before connect");
            return;
        }
        sio_event(sess, &pkt);
        return;
    case OSPAB_SIO_ACK:                 /* we never ask for one */
        if (!sess->connected)
            sess_close(sess, "ack before connect");
        return;
    default:                            /* CONNECT_ERROR from a client, binary packets */
        sess_close(sess, "unsupported Socket.IO packet");
        return;
    }
}

/* ------------------------------------------------------------ Engine.IO -- */

static void sess_upgrade(sio_sess_t *sess, struct lws *wsi)
{
    agent_sio_t *s = sess->s;

    sess->transport = T_WEBSOCKET;
    sess->ws_wsi = wsi;
    sess->probed = 0;
    stats_add(s, &s->stats.websocket, 1);
    if (sess->poll_wsi) {
        struct lws *pw = sess->poll_wsi;
        sio_conn_t *c = lws_wsi_user(pw);

        sess->poll_wsi = NULL;
        if (c) {
            c->sess = NULL;
            conn_respond(pw, c, 200, "text/plain; charset=UTF-8", OSPAB_EIO_PKT_NOOP, 1);
        }
    }
    sess_kick(sess);
}

/* One Engine.IO packet from the client; ws is the websocket it came on (NULL: a POST). */
static void eio_packet(sio_sess_t *sess, struct lws *ws, const char *text, apr_size_t len)
{
    agent_sio_t *s = sess->s;
    int probing = ws && sess->transport == T_POLLING;
    ospab_eio_packet_t pkt;
    apr_status_t rv = ospab_eio_parse(text, len, &pkt);

    if (rv == APR_EINVAL) {
        sess_close(sess, "empty packet");
        return;
    }
    if (probing && (rv != APR_SUCCESS || !ospab_eio_is_probe(&pkt))) {
        sess_close(sess, "unexpected packet during upgrade");
        return;
    }
    if (rv != APR_SUCCESS) {
        sess_close(sess, "unsupported Engine.IO packet");    /* binary ("b...") and garbage */
        return;
    }
    switch (pkt.type) {
    case OSPAB_EIO_CLOSE:
        sess_close_polling(sess, "closed by client");
        return;
    case OSPAB_EIO_PING:                /* only the upgrade probe in Engine.IO 4 */
        if (probing) {
            sio_conn_t *c = lws_wsi_user(ws);

            c->probe_pending = 1;
            lws_callback_on_writable(ws);
            /* the client pauses polling once its poll returns: end the held one, and any
             * poll that comes before "5" (the GET handler) */
            sess->probed = 1;
            if (sess->poll_wsi)
                sess_push(sess, s->pkt_noop);
        }
        else        /* as ever: any five bytes after the 2 are taken for "probe" */
            sess_send(sess, pkt_text(pkt.len == 5 ? OSPAB_EIO_PKT_PROBE_PONG
                                                  : OSPAB_EIO_PKT_PONG));
        return;
    case OSPAB_EIO_PONG:
        sess->awaiting_pong = 0;
        timer_schedule(s, &sess->ping_timer, ping_cb,
                       (lws_usec_t)s->conf.ping_interval_ms * 1000);
        return;
    case OSPAB_EIO_MESSAGE:
        sio_packet(sess, pkt.data, pkt.len);
        return;
    case OSPAB_EIO_UPGRADE:
        if (probing)
            sess_upgrade(sess, ws);
        return;
    case OSPAB_EIO_NOOP:
        return;
    default:                            /* an open packet from a client */
        sess_close(sess, "unsupported Engine.IO packet");
        return;
    }
}

/* A POST body: packets separated by the record separator. */
static void eio_payload(sio_sess_t *sess, const char *body, apr_size_t len)
{
    apr_size_t pos = 0, n;
    const char *rec;

    while (!sess->dead && ospab_eio_payload_next(body, len, &pos, &rec, &n))
        eio_packet(sess, NULL, rec, n);
}

/* ---------------------------------------------------------------- HTTP -- */

typedef struct {
    char eio[8];
    char transport[16];
    char sid[40];
    int has_eio, has_transport, has_sid;
} sio_args_t;

static void read_args(struct lws *wsi, sio_args_t *a)
{
    char buf[128];
    const char *v;

    memset(a, 0, sizeof(*a));
    if ((v = lws_get_urlarg_by_name(wsi, "EIO=", buf, sizeof(buf))) != NULL) {
        a->has_eio = 1;
        apr_cpystrn(a->eio, v, sizeof(a->eio));
    }
    if ((v = lws_get_urlarg_by_name(wsi, "transport=", buf, sizeof(buf))) != NULL) {
        a->has_transport = 1;
        apr_cpystrn(a->transport, v, sizeof(a->transport));
    }
    if ((v = lws_get_urlarg_by_name(wsi, "sid=", buf, sizeof(buf))) != NULL) {
        a->has_sid = 1;
        apr_cpystrn(a->sid, v, sizeof(a->sid));
    }
}

static int path_matches(agent_sio_t *s, const char *uri, apr_size_t len)
{
    /* "/socket.io/" and "/socket.io" both, as the reference server */
    if (len == s->path_len && !memcmp(uri, s->path, len))
        return 1;
    return s->path_len > 1 && s->path[s->path_len - 1] == '/' && len == s->path_len - 1
           && !memcmp(uri, s->path, len);
}

/* Checks the query of an Engine.IO request; NULL when fine, else the error's message and
 * *code. */
static const char *check_args(const sio_args_t *a, int *code)
{
    return ospab_eio_query_problem(a->has_eio ? a->eio : NULL,
                                   a->has_transport ? a->transport : NULL, code);
}

/* A request on the metrics listener: GET /metrics, nothing else. */
static int metrics_request(agent_sio_t *s, struct lws *wsi, sio_conn_t *c, const char *uri,
                           apr_size_t len)
{
    static const char allow_only_get[] = "metrics are read with GET\n";
    apr_pool_t *p;
    const char *text;
    apr_size_t n = 0;

    conn_free_buffers(c);
    c->kind = K_NONE;
    c->sess = NULL;
    c->body_pending = 0;
    /* a body we do not read must not be parsed as the next request */
    c->close_after_resp = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0;
    if (len != 8 || memcmp(uri, "/metrics", 8)) {
        conn_respond(wsi, c, 404, "text/plain", "Not Found", 9);
        return 0;
    }
    if (c->close_after_resp) {
        conn_respond(wsi, c, 405, "text/plain", allow_only_get, sizeof(allow_only_get) - 1);
        return 0;
    }
    if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
        return -1;
    }
    text = s->conf.metrics(s, p, &n);       /* the listener exists only with it */
    conn_respond(wsi, c, 200, "text/plain; version=0.0.4; charset=utf-8", text, n);
    apr_pool_destroy(p);
    return 0;
}

static int http_request(agent_sio_t *s, struct lws *wsi, sio_conn_t *c, const char *uri,
                        apr_size_t len)
{
    sio_args_t a;
    sio_sess_t *sess;
    const char *msg, *why = NULL;
    char key[SIO_ADDR_MAX];
    unsigned status;
    int code, is_get, is_post;

    conn_free_buffers(c);
    c->kind = K_NONE;
    c->sess = NULL;
    c->tomb = 0;
    is_get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
    is_post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
    c->body_pending = 0;
    if (is_post) {
        char clen[32];

        if (lws_hdr_copy(wsi, clen, sizeof(clen), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0
            && apr_atoi64(clen) > 0)
            c->body_pending = 1;
    }
    /* a body we cannot wait for must not be parsed as the next request */
    c->close_after_resp = is_post && !c->body_pending;
    if (!path_matches(s, uri, len)) {
        conn_respond(wsi, c, 404, "text/plain", "Not Found", 9);
        return 0;
    }
    read_args(wsi, &a);
    if ((msg = check_args(&a, &code)) != NULL) {
        conn_respond_error(wsi, c, 400, code, msg);
        return 0;
    }
    if (strcmp(a.transport, "polling")) {
        /* a websocket request without the Upgrade header */
        conn_respond_error(wsi, c, 400, 3, "Bad request");
        return 0;
    }
    if (!a.has_sid) {
        sio_pkt_t *open;

        if (!is_get) {
            conn_respond_error(wsi, c, 400, 2, "Bad handshake method");
            return 0;
        }
        if (s->stop) {
            conn_respond_error(wsi, c, 503, 4, "Server stopping");
            return 0;
        }
        client_key(s, wsi, key, sizeof(key));
        sess = sess_new(s, T_POLLING, key, &status, &why);
        if (!sess) {
            conn_respond_error(wsi, c, status, 4, why);
            return 0;
        }
        open = open_packet(sess);
        if (!open) {
            sess_close(sess, "out of memory");
            conn_respond(wsi, c, 500, "text/plain", "error", 5);
            return 0;
        }
        conn_respond(wsi, c, 200, "text/plain; charset=UTF-8", open->data, open->len);
        pkt_unref(open);
        return 0;
    }
    client_key(s, wsi, key, sizeof(key));
    if (!(sess = sess_lookup(s, a.sid, key))) {
        if (!tomb_known(s, a.sid, key))
            conn_respond_error(wsi, c, 400, 1, "Session ID unknown");
        else if (is_get)
            conn_respond(wsi, c, 200, "text/plain; charset=UTF-8", OSPAB_EIO_PKT_CLOSE, 1);
        else if (is_post && c->body_pending) {
            c->kind = K_POST;               /* read, dropped, "ok" (http_body_done) */
            c->tomb = 1;
            c->close_after_resp = 0;
        }
        else
            conn_respond(wsi, c, 200, "text/html", "ok", 2);
        return 0;
    }
    if (sess->transport != T_POLLING) {
        conn_respond_error(wsi, c, 400, 3, "Bad request");
        return 0;
    }
    if (is_get) {
        if (sess->close_after_flush && !sess->qhead) {
            /* its last packets went out (sess_closing): the close packet ends its polls */
            conn_respond(wsi, c, 200, "text/plain; charset=UTF-8", OSPAB_EIO_PKT_CLOSE, 1);
            sess_close_polling(sess, "closed after flush");
            return 0;
        }
        if (sess->poll_wsi) {
            /* two polls at once: a confused or hostile client; the reference server
             * closes the session ("overlap from client") */
            conn_respond_error(wsi, c, 400, 3, "Bad request");
            sess_close(sess, "overlapping polls");
            return 0;
        }
        c->kind = K_POLL;
        c->sess = sess;
        sess->poll_wsi = wsi;
        /* held until a packet (at worst the next ping) is due; during an upgrade the
         * client waits for this poll to end before it sends "5": a noop at once (the
         * reference server's upgrade check does the same) */
        lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
        if (sess->probed && !sess->qhead)
            sess_push(sess, s->pkt_noop);
        if (sess->qhead)
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (is_post) {
        char clen[32];
        apr_int64_t n;

        if (sess->post_wsi) {
            conn_respond_error(wsi, c, 400, 3, "Bad request");
            sess_close(sess, "overlapping posts");
            return 0;
        }
        if (lws_hdr_copy(wsi, clen, sizeof(clen), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
            n = apr_atoi64(clen);
            if (n > (apr_int64_t)s->conf.max_payload) {
                /* read and drop the body, then 413: closing while the proxy still
                 * sends it would turn our answer into its 502 */
                sess_close(sess, "payload too large");
                c->kind = K_POST;
                c->in_too_big = 1;
                c->close_after_resp = 0;
                return 0;
            }
            if (n <= 0) {
                conn_respond_error(wsi, c, 400, 3, "Bad request");
                return 0;
            }
        }
        c->kind = K_POST;
        c->sess = sess;
        c->close_after_resp = 0;
        sess->post_wsi = wsi;
        return 0;
    }
    conn_respond_error(wsi, c, 400, 2, "Bad handshake method");
    return 0;
}

static void http_body_done(agent_sio_t *s, struct lws *wsi, sio_conn_t *c)
{
    sio_sess_t *sess = c->sess;

    c->sess = NULL;
    if (sess)
        sess->post_wsi = NULL;
    if (c->in_too_big) {
        if (sess)
            sess_close(sess, "payload too large");
        conn_respond(wsi, c, 413, "text/plain", "Payload Too Large", 17);
        return;
    }
    if (c->tomb) {
        c->tomb = 0;
        conn_respond(wsi, c, 200, "text/html", "ok", 2);
        return;
    }
    if (!sess) {
        conn_respond_error(wsi, c, 400, 1, "Session ID unknown");
        return;
    }
    if (c->in_len == 0) {
        sess_close(sess, "empty POST");
        conn_respond_error(wsi, c, 400, 3, "Bad request");
        return;
    }
    /* Engine.IO payloads are text; what is not UTF-8 is not a client of ours */
    if (!ospab_eio_utf8_valid(c->in, c->in_len)) {
        sess_close(sess, "POST body not UTF-8");
        conn_respond_error(wsi, c, 400, 3, "Bad request");
        return;
    }
    eio_payload(sess, c->in, c->in_len);
    conn_respond(wsi, c, 200, "text/html", "ok", 2);
}

/* A polling client has its last packets ("41"). Like the reference server, which keeps a
 * closing session until its close packet is delivered, the session stays known for a
 * moment: the client's next poll gets the close packet and its own close ("1") an "ok",
 * not a 400 for an unknown sid (a browser shows that as an error). Then it goes. */
#define SIO_CLOSE_GRACE_US (5 * LWS_US_PER_SEC)

static void sess_closing(sio_sess_t *sess)
{
    sess->awaiting_pong = 1;
    timer_schedule(sess->s, &sess->ping_timer, ping_cb, SIO_CLOSE_GRACE_US);
}

/* A held poll can go: join the queued packets with 0x1e into one response. */
static void poll_flush(struct lws *wsi, sio_conn_t *c)
{
    sio_sess_t *sess = c->sess;
    apr_size_t total = 0;
    ospab_eio_text_t *texts = malloc(sizeof(*texts) * (apr_size_t)(sess->qlen + 1));
    char *out = NULL;
    sio_qent_t *e;
    sio_pkt_t *pkt;
    int n = 0, close_now;

    if (texts) {
        for (e = sess->qhead; e; e = e->next, ++n) {
            texts[n].text = (const char *)e->pkt->data;
            texts[n].len = e->pkt->len;
        }
        out = ospab_eio_payload_join(texts, n, LWS_PRE, &total);
        free(texts);
    }
    if (!out) {
        sess_close(sess, "out of memory");
        return;
    }
    while ((pkt = sess_pop(sess)) != NULL)
        pkt_unref(pkt);
    sess->poll_wsi = NULL;
    c->sess = NULL;
    close_now = sess->close_after_flush;
    free(c->out);
    c->out = (unsigned char *)out;
    c->out_len = total;
    c->kind = K_RESP;
    c->status = 200;
    c->ctype = "text/plain; charset=UTF-8";
    c->resp_state = RESP_HEADERS;
    if (close_now)
        sess_closing(sess);
    lws_callback_on_writable(wsi);
}

static int http_writeable(struct lws *wsi, sio_conn_t *c)
{
    unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start,
                  *end = hdr + sizeof(hdr) - 1;

    if (c->kind == K_POLL && c->sess && c->resp_state == RESP_NONE) {
        if (!c->sess->qhead)
            return 0;
        poll_flush(wsi, c);
        return 0;                       /* the headers go at the next writeable */
    }
    if (c->kind != K_RESP)
        return 0;
    if (c->ws_close)
        return -1;
    if (c->resp_state == RESP_HEADERS) {
        if (lws_add_http_common_headers(wsi, c->status, c->ctype, (lws_filepos_t)c->out_len,
                                        &p, end)
            || lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                            (const unsigned char *)"no-store", 8, &p, end)
            || lws_finalize_write_http_header(wsi, start, &p, end))
            return -1;
        c->resp_state = RESP_BODY;
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (c->resp_state == RESP_BODY) {
        int n = lws_write(wsi, c->out + LWS_PRE, c->out_len, LWS_WRITE_HTTP_FINAL);

        conn_free_buffers(c);
        c->kind = K_NONE;
        if (n < 0 || c->close_after_resp)
            return -1;
        if (lws_http_transaction_completed(wsi))
            return -1;
    }
    return 0;
}

/* Detaches a connection from its session when it goes away or its transaction ends. */
static void conn_gone(agent_sio_t *s, struct lws *wsi, sio_conn_t *c)
{
    sio_sess_t *sess;

    if (!c)
        return;
    sess = c->sess;
    c->sess = NULL;
    if (sess && !sess->dead) {
        if (sess->poll_wsi == wsi)
            sess->poll_wsi = NULL;
        if (sess->post_wsi == wsi)
            sess->post_wsi = NULL;
        if (sess->ws_wsi == wsi) {
            sess->ws_wsi = NULL;
            if (sess->transport == T_WEBSOCKET)
                sess_close(sess, "websocket closed");
            /* a failed probe leaves the session on polling */
            sess->probed = 0;
        }
    }
    if (c->counted_ws) {
        c->counted_ws = 0;
        s->ws_conns--;
    }
    conn_free_buffers(c);
    c->kind = K_NONE;
}

/* ------------------------------------------------------------ websocket -- */

/* The upgrade request: refused with a status before the 101 when it cannot succeed. */
static int ws_confirm(agent_sio_t *s, struct lws *wsi)
{
    char uri[256], key[SIO_ADDR_MAX];
    sio_args_t a;
    sio_sess_t *sess;
    unsigned status;
    int code, n;

    n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
    if (s->conf.console) {
        /* the console's subprotocol only on its path, and its path only with it */
        char proto[128];
        int m = lws_hdr_copy(wsi, proto, sizeof(proto), WSI_TOKEN_PROTOCOL);
        int wants = m > 0 && strstr(proto, s->conf.console->name) != NULL;
        int at = n > 0 && !strcmp(uri, s->conf.console_path);

        if (wants || at) {
            if (wants && at && !s->stop)
                return 0;
            lws_return_http_status(wsi, s->stop ? HTTP_STATUS_SERVICE_UNAVAILABLE
                                   : at ? HTTP_STATUS_BAD_REQUEST : HTTP_STATUS_NOT_FOUND, NULL);
            return 1;
        }
    }
    if (n <= 0 || !path_matches(s, uri, (apr_size_t)n)) {
        lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
        return 1;
    }
    read_args(wsi, &a);
    if (check_args(&a, &code) || strcmp(a.transport, "websocket")) {
        lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST, NULL);
        return 1;
    }
    if (s->stop) {
        lws_return_http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, NULL);
        return 1;
    }
    client_key(s, wsi, key, sizeof(key));
    if (!a.has_sid) {
        if (sess_refusal(s, key, &status)) {
            lws_return_http_status(wsi, status, NULL);
            return 1;
        }
        return 0;
    }
    sess = sess_lookup(s, a.sid, key);
    if (!sess || sess->transport != T_POLLING || sess->ws_wsi) {
        lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST, NULL);
        return 1;
    }
    return 0;
}

static int ws_established(agent_sio_t *s, struct lws *wsi, sio_conn_t *c)
{
    sio_args_t a;
    sio_sess_t *sess;
    const char *why = NULL;
    char key[SIO_ADDR_MAX];
    unsigned status;

    conn_free_buffers(c);
    memset(c, 0, sizeof(*c));
    c->kind = K_WS;
    c->counted_ws = 1;
    s->ws_conns++;
    read_args(wsi, &a);
    client_key(s, wsi, key, sizeof(key));
    if (a.has_sid) {
        /* an upgrade probe of a polling session (checked in ws_confirm) */
        sess = sess_lookup(s, a.sid, key);
        if (!sess || sess->transport != T_POLLING || sess->ws_wsi)
            return -1;
        sess->ws_wsi = wsi;
        c->sess = sess;
        return 0;
    }
    sess = sess_new(s, T_WEBSOCKET, key, &status, &why);
    if (!sess) {
        AGENT_INFO("live-push: websocket refused: %s", why);
        return -1;
    }
    sess->ws_wsi = wsi;
    c->sess = sess;
    sess_send(sess, open_packet(sess));
    return 0;
}

static int ws_receive(agent_sio_t *s, struct lws *wsi, sio_conn_t *c, const void *in,
                      apr_size_t len)
{
    sio_sess_t *sess = c->sess;

    if (!sess)
        return 0;                       /* closing: whatever still arrives is dropped */
    if (lws_frame_is_binary(wsi)) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                         (unsigned char *)"binary not supported", 20);
        c->sess = NULL;
        sess->ws_wsi = NULL;
        sess_close(sess, "binary frame");
        return -1;
    }
    if (conn_append_in(c, in, len, s->conf.max_payload)) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                         (unsigned char *)"message too large", 17);
        c->sess = NULL;
        sess->ws_wsi = NULL;
        sess_close(sess, "websocket message too large");
        return -1;
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
        return 0;
    if (c->in_len == 0)
        eio_packet(sess, wsi, "", 0);
    else
        eio_packet(sess, wsi, c->in, c->in_len);
    c->in_len = 0;
    return 0;
}

static int ws_writeable(agent_sio_t *s, struct lws *wsi, sio_conn_t *c)
{
    sio_sess_t *sess = c->sess;
    sio_pkt_t *pkt;
    int n;

    if (c->probe_pending) {
        unsigned char buf[LWS_PRE + 8];

        c->probe_pending = 0;
        memcpy(buf + LWS_PRE, OSPAB_EIO_PKT_PROBE_PONG, 6);
        if (lws_write(wsi, buf + LWS_PRE, 6, LWS_WRITE_TEXT) < 6)
            return -1;
        if (c->ws_close || (sess && sess->transport == T_WEBSOCKET && sess->qhead))
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (c->ws_close || !sess) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    if (sess->transport != T_WEBSOCKET || sess->ws_wsi != wsi)
        return 0;
    pkt = sess_pop(sess);
    if (!pkt) {
        if (sess->close_after_flush)
            sess_close(sess, "closed after flush");
        return 0;
    }
    n = lws_write(wsi, pkt->data, pkt->len, LWS_WRITE_TEXT);
    pkt_unref(pkt);
    if (n < 0)
        return -1;
    if (sess->qhead || sess->close_after_flush)
        lws_callback_on_writable(wsi);
    return 0;
}

/* ------------------------------------------------------------ fan-out -- */

static void fan_out(agent_sio_t *s)
{
    sio_pub_t *list, *pub;
    apr_uint64_t delivered = 0;

    apr_thread_mutex_lock(s->mutex);
    list = s->pub_head;
    s->pub_head = s->pub_tail = NULL;
    s->pub_len = 0;
    apr_thread_mutex_unlock(s->mutex);

    while ((pub = list) != NULL) {
        /* only the service thread changes the rooms' members: no lock to read them */
        sio_room_t *room = apr_hash_get(s->rooms, &pub->server_id, sizeof(pub->server_id));
        sio_member_t *m, *next;

        list = pub->next;
        for (m = room ? room->head : NULL; m; m = next) {
            /* a compact subscriber gets the full form once, then the compact one */
            int small = pub->compact && m->compact && m->primed;

            /* a client dropped for a full queue leaves this room (freed with its last
             * member, when next is NULL anyway): read next first */
            next = m->next;
            if (pub->compact && m->compact && !m->primed)
                m->primed = 1;
            if (sess_push(m->sess, small ? pub->compact : pub->pkt) == 0)
                delivered++;
        }
        pkt_unref(pub->pkt);
        if (pub->compact)
            pkt_unref(pub->compact);
        free(pub);
    }
    if (delivered) {
        apr_thread_mutex_lock(s->mutex);
        s->stats.delivered += delivered;
        apr_thread_mutex_unlock(s->mutex);
    }
}

/* ------------------------------------------------------------- rechecks -- */

/* Is sess still allowed in room id (after an owner change, or a demotion)? If not it
 * leaves and hears why: the data of a server must stop when its access does. */
static void sub_recheck(sio_sess_t *sess, apr_int64_t id)
{
    agent_sio_t *s = sess->s;
    const char *why = NULL;
    json_t *ev;
    int rc;

    if (sess->dead || !sess->connected || sess->user.is_admin || !s->conf.may_subscribe
        || sess_find_sub(sess, id) < 0)
        return;
    rc = s->conf.may_subscribe(s->conf.ctx, &sess->user, id, &why);
    if (rc == 0)
        return;
    /* refused: withdrawn; the database failing: out all the same (it may have been
     * withdrawn), and the client may subscribe again */
    why = rc > 0 || !why ? SIO_WITHDRAWN : why;
    sess_leave(sess, id);
    AGENT_INFO("live-push: session #%" APR_UINT64_T_FMT " (user %" APR_INT64_T_FMT ") left "
               "server %" APR_INT64_T_FMT ": %s", sess->num, sess->user.user_id, id, why);
    ev = json_pack("{sIss}", "serverId", (json_int_t)id, "error", why);
    send_event(sess, "subscribe-error", ev);
    json_decref(ev);
}

/* The connected sessions that match (user_id < 0: all), into a malloc'd array: the checks
 * below may close sessions, which changes the session hash. */
static sio_sess_t **sessions_of(agent_sio_t *s, apr_int64_t user_id, const char *sid, int *n)
{
    apr_hash_index_t *hi;
    sio_sess_t **list = malloc(sizeof(*list) * (apr_hash_count(s->sessions) + 1));

    *n = 0;
    if (!list)
        return NULL;
    for (hi = apr_hash_first(NULL, s->sessions); hi; hi = apr_hash_next(hi)) {
        sio_sess_t *sess = apr_hash_this_val(hi);

        if (sess->connected && !sess->dead && (user_id < 0 || sess->user.user_id == user_id)
            && (!sid || !strcmp(sess->user.sid, sid)))
            list[(*n)++] = sess;
    }
    return list;
}

/* A user's access changed: each matching session is checked as at connect. */
static void check_user(agent_sio_t *s, apr_int64_t user_id, const char *sid)
{
    sio_sess_t **list;
    int n, i;

    if (!s->conf.recheck || !(list = sessions_of(s, user_id, sid, &n)))
        return;
    for (i = 0; i < n; ++i) {
        sio_sess_t *sess = list[i];
        const char *why = NULL;
        int was_admin = sess->user.is_admin, rc;

        if (sess->dead || !sess->connected)
            continue;
        rc = s->conf.recheck(s->conf.ctx, &sess->user, &why);
        if (rc > 0) {
            AGENT_INFO("live-push: session #%" APR_UINT64_T_FMT " (user %" APR_INT64_T_FMT
                       ") disconnected: %s", sess->num, sess->user.user_id,
                       why ? why : "access withdrawn");
            sess_disconnect(sess);
        }
        else if (rc < 0) {
            /* cannot tell: closed, and checked again when the client reconnects */
            sess_close(sess, why ? why : "recheck failed");
        }
        else if (was_admin && !sess->user.is_admin) {
            apr_int64_t *ids = malloc(sizeof(*ids) * (apr_size_t)(sess->nsubs + 1));
            int k, m = sess->nsubs;

            if (!ids) {
                sess_close(sess, "out of memory");
                continue;
            }
            for (k = 0; k < m; ++k)
                ids[k] = sess->subs[k]->room->id;
            for (k = 0; k < m; ++k)
                sub_recheck(sess, ids[k]);
            free(ids);
        }
    }
    free(list);
}

/* A server changed hands: its non-admin subscribers are checked again. */
static void check_server(agent_sio_t *s, apr_int64_t id)
{
    sio_room_t *room = apr_hash_get(s->rooms, &id, sizeof(id));
    sio_member_t *m;
    sio_sess_t **list;
    int n = 0, i;

    if (!room || !(list = malloc(sizeof(*list) * (apr_size_t)room->count)))
        return;
    /* leaving may free the room: collect first */
    for (m = room->head; m; m = m->next)
        list[n++] = m->sess;
    for (i = 0; i < n; ++i)
        sub_recheck(list[i], id);
    free(list);
}

static void run_checks(agent_sio_t *s)
{
    sio_check_t *list, *c;
    int all;

    apr_thread_mutex_lock(s->mutex);
    list = s->check_head;
    s->check_head = s->check_tail = NULL;
    s->check_len = 0;
    all = s->check_all;
    s->check_all = 0;
    apr_thread_mutex_unlock(s->mutex);

    if (all) {
        /* requests were lost to the queue's bound: whatever they were, this covers them */
        apr_pool_t *tmp;
        apr_array_header_t *rooms;
        int i;

        AGENT_WARN("live-push: too many access changes at once; checking every client");
        check_user(s, -1, NULL);
        apr_pool_create(&tmp, s->pool);
        rooms = agent_sio_rooms(s, tmp);
        for (i = 0; i < rooms->nelts; ++i)
            check_server(s, APR_ARRAY_IDX(rooms, i, apr_int64_t));
        apr_pool_destroy(tmp);
    }
    while ((c = list) != NULL) {
        list = c->next;
        if (!all) {
            if (c->server)
                check_server(s, c->id);
            else
                check_user(s, c->id, c->has_sid ? c->sid : NULL);
        }
        free(c);
    }
}

static void check_queue(agent_sio_t *s, int server, apr_int64_t id, const char *sid)
{
    sio_check_t *c;

    if (s->stop)
        return;
    c = calloc(1, sizeof(*c));
    if (c) {
        c->server = server;
        c->id = id;
        if (sid && *sid) {
            c->has_sid = 1;
            apr_cpystrn(c->sid, sid, sizeof(c->sid));
        }
    }
    apr_thread_mutex_lock(s->mutex);
    if (!c || s->check_len >= SIO_MAX_PENDING_CHECKS) {
        s->check_all = 1;
        free(c);
    }
    else {
        if (s->check_tail)
            s->check_tail->next = c;
        else
            s->check_head = c;
        s->check_tail = c;
        s->check_len++;
    }
    apr_thread_mutex_unlock(s->mutex);
    lws_cancel_service(s->ctx);
}

static void close_all(agent_sio_t *s)
{
    apr_hash_index_t *hi;

    /* sess_close removes the entry: restart the walk each time */
    while ((hi = apr_hash_first(NULL, s->sessions)) != NULL) {
        sio_sess_t *sess;

        apr_hash_this(hi, NULL, NULL, (void **)&sess);
        sess_close(sess, "server stopping");
    }
}

/* -------------------------------------------------------------- callback -- */

static int sio_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                        void *in, size_t len)
{
    agent_sio_t *s = lws_context_user(lws_get_context(wsi));
    sio_conn_t *c = user;

    if (!s)
        return lws_callback_http_dummy(wsi, reason, user, in, len);

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        if (c && s->metrics_vhost && lws_get_vhost(wsi) == s->metrics_vhost)
            return metrics_request(s, wsi, c, in, len);
        return c ? http_request(s, wsi, c, in, len) : -1;
    case LWS_CALLBACK_HTTP_BODY:
        if (c && c->kind == K_POST)
            conn_append_in(c, in, len, s->conf.max_payload);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!c)
            return 0;
        c->body_pending = 0;
        if (c->kind == K_POST)
            http_body_done(s, wsi, c);
        else if (c->kind == K_RESP)
            lws_callback_on_writable(wsi);  /* an error answer waited for the body */
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return c ? http_writeable(wsi, c) : 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        conn_gone(s, wsi, c);
        return 0;

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        if (s->metrics_vhost && lws_get_vhost(wsi) == s->metrics_vhost) {
            lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
            return 1;
        }
        return ws_confirm(s, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        return ws_established(s, wsi, c);
    case LWS_CALLBACK_RECEIVE:
        return ws_receive(s, wsi, c, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws_writeable(s, wsi, c);
    case LWS_CALLBACK_CLOSED:
        conn_gone(s, wsi, c);
        return 0;

    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        /* access first: what was published before an access change must not reach a
         * client that has lost the access in the meantime */
        run_checks(s);
        fan_out(s);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ------------------------------------------------------------- lifetime -- */

static void lws_log_to_agent(int level, const char *line)
{
    size_t n = strlen(line);

    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    if (level & LLL_ERR)
        AGENT_WARN("live-push: lws: %.*s", (int)n, line);
    else
        AGENT_DEBUG("live-push: lws: %.*s", (int)n, line);
}

static apr_status_t sio_cleanup(void *data)
{
    agent_sio_t *s = data;
    apr_hash_index_t *hi;
    sio_pub_t *pub;

    if (s->ctx) {
        /* connections' CLOSED callbacks still look at their sessions: those go after */
        struct lws_context *ctx = s->ctx;

        close_all(s);
        lws_context_destroy(ctx);
        s->ctx = NULL;
    }
    for (hi = apr_hash_first(NULL, s->sessions); hi; hi = apr_hash_next(hi)) {
        sio_sess_t *sess;

        apr_hash_this(hi, NULL, NULL, (void **)&sess);
        free(sess->subs);
        free(sess);
    }
    while (s->dead) {
        sio_sess_t *sess = s->dead;

        s->dead = sess->next_dead;
        free(sess->subs);
        free(sess);
    }
    free(s->timers);
    s->timers = NULL;
    s->ntimers = s->timers_cap = s->timers_reserved = 0;
    while (s->tomb_head)
        tomb_drop_head(s);
    while ((pub = s->pub_head) != NULL) {
        s->pub_head = pub->next;
        pkt_unref(pub->pkt);
        if (pub->compact)
            pkt_unref(pub->compact);
        free(pub);
    }
    while (s->check_head) {
        sio_check_t *c = s->check_head;

        s->check_head = c->next;
        free(c);
    }
    /* what sessions closed above did not give back (none when all went through
     * sess_close) */
    while ((hi = apr_hash_first(NULL, s->addrs)) != NULL) {
        sio_addr_t *a = apr_hash_this_val(hi);

        apr_hash_set(s->addrs, a->key, APR_HASH_KEY_STRING, NULL);
        free(a);
    }
    pkt_unref(s->pkt_ping);
    pkt_unref(s->pkt_noop);
    s->pkt_ping = s->pkt_noop = NULL;
    return APR_SUCCESS;
}

apr_status_t agent_sio_create(apr_pool_t *p, const agent_sio_conf_t *conf, agent_sio_t **out)
{
    agent_sio_t *s = apr_pcalloc(p, sizeof(*s));
    struct lws_context_creation_info info;
    apr_status_t rv;
    int t;

    *out = NULL;
    if (!conf->authenticate || !conf->listen_addr || !conf->path || conf->path[0] != '/'
        || strlen(conf->path) >= sizeof(s->path))
        return APR_EINVAL;
    s->pool = p;
    s->conf = *conf;
    if (s->conf.ping_interval_ms <= 0)
        s->conf.ping_interval_ms = 25000;
    if (s->conf.ping_timeout_ms <= 0)
        s->conf.ping_timeout_ms = 20000;
    if (!s->conf.max_payload)
        s->conf.max_payload = 1000000;
    if (s->conf.max_queue_msgs <= 0)
        s->conf.max_queue_msgs = 256;
    if (!s->conf.max_queue_bytes)
        s->conf.max_queue_bytes = 1024 * 1024;
    if (s->conf.max_clients <= 0)
        s->conf.max_clients = 10000;
    if (s->conf.max_subscriptions <= 0)
        s->conf.max_subscriptions = 64;
    if (s->conf.connect_timeout_ms <= 0)
        s->conf.connect_timeout_ms = 5000;
    if (s->conf.max_pending <= 0)
        s->conf.max_pending = 1000;
    if (s->conf.max_pending_per_address <= 0)
        s->conf.max_pending_per_address = 50;
    if (s->conf.max_per_address <= 0)
        s->conf.max_per_address = 500;
    if (!s->conf.trusted_proxies)
        s->conf.trusted_proxies = "127.0.0.1 ::1";
    apr_cpystrn(s->path, conf->path, sizeof(s->path));
    s->path_len = strlen(s->path);
    s->rooms = apr_hash_make(p);
    s->sessions = apr_hash_make(p);
    s->tombs = apr_hash_make(p);
    s->addrs = apr_hash_make(p);
    {
        const char *bad = NULL;

        if (ospab_net_list_parse(p, s->conf.trusted_proxies, &s->proxies, &s->nproxies,
                                 &bad)) {
            AGENT_ERROR("live-push: trusted_proxies: '%s' is not an address or network", bad);
            return APR_EINVAL;
        }
    }
    rv = apr_thread_mutex_create(&s->mutex, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv != APR_SUCCESS)
        return rv;
    s->pkt_ping = pkt_text(OSPAB_EIO_PKT_PING);
    s->pkt_noop = pkt_text(OSPAB_EIO_PKT_NOOP);
    if (!s->pkt_ping || !s->pkt_noop) {
        sio_cleanup(s);
        return APR_ENOMEM;
    }

    lws_set_log_level(LLL_ERR | (agent_log_enabled(AGENT_LOG_DEBUG) ? LLL_WARN : 0),
                      lws_log_to_agent);
    s->protocols[0].name = "engine.io";
    s->protocols[0].callback = sio_callback;
    s->protocols[0].per_session_data_size = sizeof(sio_conn_t);
    s->protocols[0].rx_buffer_size = 0;
    /* without it lws cuts every send into rx_buffer_size (4 KiB) pieces: a 17 KB
     * server-stats (an hour of rrdData) took five send()s per client (bench/fanout) */
    s->protocols[0].tx_packet_size = 256 * 1024;

    if (s->conf.console) {
        s->protocols[1] = *s->conf.console;
    }

    memset(&info, 0, sizeof(info));
    info.port = conf->port;
    info.iface = conf->listen_addr;
    info.protocols = s->protocols;
    /* VALIDATE_UTF8: a text frame (or message, across its fragments) that is not UTF-8 is
     * closed with 1007 by lws, before it reaches us */
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DISABLE_IPV6
                   | LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.vhost_name = "ospab-live-push";
    /* a held poll lasts up to a ping interval; lws must not time it out first */
    t = (s->conf.ping_interval_ms + s->conf.ping_timeout_ms) / 1000 + 10;
    info.timeout_secs = (unsigned)t;
    info.keepalive_timeout = t > 60 ? t : 60;
    info.max_http_header_data = 4096;
    info.user = s;

    /* the console's client connections to Proxmox use TLS: lws sets OpenSSL up for
     * them (the listeners themselves stay plain: Apache is in front) */
    if (s->conf.console) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    }
    s->ctx = lws_create_context(&info);
    info.options &= ~(apr_uint64_t)LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    if (!s->ctx) {
        sio_cleanup(s);
        return APR_EGENERAL;
    }
    apr_pool_cleanup_register(p, s, sio_cleanup, apr_pool_cleanup_null);
    s->vhost = lws_create_vhost(s->ctx, &info);
    if (!s->vhost) {
        AGENT_ERROR("live-push: cannot listen on %s:%d", conf->listen_addr, conf->port);
        return APR_EGENERAL;
    }
    s->port = lws_get_vhost_listen_port(s->vhost);
    s->metrics_port = -1;
    if (conf->metrics && conf->metrics_port >= 0) {
        info.port = conf->metrics_port;
        info.iface = conf->metrics_addr ? conf->metrics_addr : conf->listen_addr;
        info.vhost_name = "ospab-metrics";
        s->metrics_vhost = lws_create_vhost(s->ctx, &info);
        if (!s->metrics_vhost) {
            AGENT_ERROR("metrics: cannot listen on %s:%d", info.iface, conf->metrics_port);
            return APR_EGENERAL;
        }
        s->metrics_port = lws_get_vhost_listen_port(s->metrics_vhost);
    }
    *out = s;
    return APR_SUCCESS;
}

int agent_sio_metrics_port(agent_sio_t *s)
{
    return s->metrics_port;
}

struct lws_context *agent_sio_context(agent_sio_t *s)
{
    return s->ctx;
}

int agent_sio_port(agent_sio_t *s)
{
    return s->port;
}

void agent_sio_run(agent_sio_t *s)
{
    apr_time_t deadline;

    while (!s->stop && s->ctx) {
        if (lws_service(s->ctx, 0) < 0)
            break;
    }
    if (!s->ctx)
        return;
    close_all(s);
    /* let the close frames and the pending polls' answers go out, briefly */
    deadline = apr_time_now() + apr_time_from_msec(1000);
    while ((s->ws_conns > 0
            || (s->conf.console_stop && s->conf.console_stop(s->conf.console_ctx) > 0))
           && apr_time_now() < deadline)
        if (lws_service(s->ctx, 0) < 0)
            break;
    s->stopped = 1;
}

void agent_sio_stop(agent_sio_t *s)
{
    s->stop = 1;
    if (s->ctx)
        lws_cancel_service(s->ctx);
}

void agent_sio_publish(agent_sio_t *s, apr_int64_t server_id, const char *event,
                       const json_t *data)
{
    agent_sio_publish2(s, server_id, event, data, NULL);
}

void agent_sio_publish2(agent_sio_t *s, apr_int64_t server_id, const char *event,
                        const json_t *data, const json_t *compact)
{
    apr_size_t len = 0;
    sio_pkt_t *pkt, *small = NULL;
    sio_pub_t *pub;
    int dropped = 0, wake;

    if (s->stop)
        return;
    /* reals with 10 significant digits (the codec's): jansson's default 17 made a
     * server-stats with an hour of rrdData 20,674 bytes instead of about 17,000 */
    pkt = pkt_wrap(ospab_sio_encode_event(event, data, LWS_PRE, &len), &len);
    if (!pkt) {
        AGENT_WARN("live-push: event %s for server %" APR_INT64_T_FMT " not encodable",
                   event, server_id);
        return;
    }
    if (compact) {
        len = 0;
        small = pkt_wrap(ospab_sio_encode_event(event, compact, LWS_PRE, &len), &len);
    }
    if (!(pub = malloc(sizeof(*pub)))) {
        pkt_unref(pkt);
        if (small)
            pkt_unref(small);
        return;
    }
    pub->next = NULL;
    pub->server_id = server_id;
    pub->pkt = pkt;
    pub->compact = small;

    apr_thread_mutex_lock(s->mutex);
    s->stats.published++;
    /* a wake-up is owed only to an empty queue: a non-empty one has one pending, and the
     * service thread takes the whole queue at once. With thousands of connections a
     * service pass is a poll() over all of them, so a burst must not cost one each. */
    wake = s->pub_head == NULL;
    if (s->pub_len >= SIO_MAX_PENDING_PUBLISH)
        dropped = 1;
    else {
        if (s->pub_tail)
            s->pub_tail->next = pub;
        else
            s->pub_head = pub;
        s->pub_tail = pub;
        s->pub_len++;
    }
    apr_thread_mutex_unlock(s->mutex);
    if (dropped) {
        pkt_unref(pkt);
        if (small)
            pkt_unref(small);
        free(pub);
        return;
    }
    if (wake)
        lws_cancel_service(s->ctx);
}

apr_array_header_t *agent_sio_rooms(agent_sio_t *s, apr_pool_t *p)
{
    apr_array_header_t *ids;
    apr_hash_index_t *hi;

    apr_thread_mutex_lock(s->mutex);
    ids = apr_array_make(p, (int)apr_hash_count(s->rooms) + 1, sizeof(apr_int64_t));
    for (hi = apr_hash_first(NULL, s->rooms); hi; hi = apr_hash_next(hi)) {
        sio_room_t *room;

        apr_hash_this(hi, NULL, NULL, (void **)&room);
        APR_ARRAY_PUSH(ids, apr_int64_t) = room->id;
    }
    apr_thread_mutex_unlock(s->mutex);
    return ids;
}

void agent_sio_stats(agent_sio_t *s, agent_sio_stats_t *out)
{
    apr_thread_mutex_lock(s->mutex);
    *out = s->stats;
    apr_thread_mutex_unlock(s->mutex);
}

void agent_sio_recheck_user(agent_sio_t *s, apr_int64_t user_id, const char *session)
{
    check_queue(s, 0, user_id, session);
}

void agent_sio_recheck_server(agent_sio_t *s, apr_int64_t server_id)
{
    check_queue(s, 1, server_id, NULL);
}
