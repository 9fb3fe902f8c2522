/* ospab-agent: the live-push server. Engine.IO v4 + Socket.IO v4 (namespace "/") on
 * libwebsockets, wire-compatible with the npm socket.io-client and python-socketio:
 * HTTP long-polling and websocket transports, the polling -> websocket upgrade
 * (2probe/3probe/5), server pings with a timeout, packet encoding, acks.
 *
 * Rooms are server (vps) ids. A client authenticates with the Socket.IO CONNECT packet's
 * auth payload {"token": "<access JWT>"}; a bad token gets a CONNECT_ERROR
 * ("connect_error" on the client). 'subscribe-server' / 'unsubscribe-server' take a
 * server id (number or decimal string); a refused subscription is answered with the
 * ack (when the client asked for one) and a 'subscribe-error' event.
 *
 * Threads: agent_sio_run() serves on the calling thread; agent_sio_publish(),
 * agent_sio_rooms(), agent_sio_stats(), agent_sio_recheck_*() and agent_sio_stop() may be
 * called from any thread. Every client has a bounded queue of outgoing packets (count and
 * bytes): a client that cannot keep up is disconnected rather than allowed to grow the
 * agent's memory. */
#ifndef AGENT_SIO_H
#define AGENT_SIO_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>

typedef struct agent_sio_t agent_sio_t;

#define AGENT_SIO_SID_MAX 64

/* Who a connected client is, as the authenticate callback found. */
typedef struct {
    apr_int64_t user_id;
    int is_admin;               /* may subscribe to any server (the user row's role) */
    apr_time_t expires;         /* the token's exp: the client is disconnected then; 0: never */
    /* the login (refresh-token family) the token belongs to, "" for a token without one:
     * a logout ends the sockets of that login only */
    char sid[AGENT_SIO_SID_MAX + 1];
} agent_sio_user_t;

typedef struct {
    const char *listen_addr;    /* e.g. "127.0.0.1" */
    int port;                   /* 0: any free port (agent_sio_port() tells which) */
    const char *path;           /* "/socket.io/" */
    int ping_interval_ms;       /* Engine.IO pingInterval (25000) */
    int ping_timeout_ms;        /* Engine.IO pingTimeout (20000) */
    apr_size_t max_payload;     /* largest incoming POST body / websocket message (1e6) */
    int max_queue_msgs;         /* per client, outgoing packets waiting (e.g. 256) */
    apr_size_t max_queue_bytes; /* per client, bytes waiting (e.g. 1 MiB) */
    int max_clients;            /* connected (authenticated) clients at once; more are refused */
    int max_subscriptions;      /* rooms per client */
    /* Sessions that have not (yet) connected with a good token cost a struct and a timer
     * and have limits of their own, so that anonymous handshakes never take the places of
     * authenticated clients: */
    int connect_timeout_ms;     /* without a good CONNECT by then the session is closed (5000) */
    int max_pending;            /* unauthenticated sessions at once; at the limit the oldest
                                 * one is closed for a new one (1000) */
    int max_pending_per_address;    /* of them, from one client address (50) */
    int max_per_address;        /* sessions of one client address, authenticated or not (500) */
    /* Peers whose X-Forwarded-For names the client (Apache's mod_proxy_http adds it): its
     * right-most entry is the client address then, else the peer's address is. Addresses
     * or networks (a.b.c.d/n, x::y/n) separated by spaces; NULL: "127.0.0.1 ::1". */
    const char *trusted_proxies;

    /* Called on the service thread. Returns 0 and fills *u when token is good; else
     * non-zero with *why set to the message the client's connect_error carries. */
    int (*authenticate)(void *ctx, const char *token, agent_sio_user_t *u, const char **why);
    /* Called on the service thread for a non-admin's subscribe. 0: allowed; else *why. */
    int (*may_subscribe)(void *ctx, const agent_sio_user_t *u, apr_int64_t server_id,
                         const char **why);
    /* Optional, on the service thread: a room got its first subscriber. */
    void (*room_opened)(void *ctx, apr_int64_t server_id);
    /* Optional, on the service thread, for agent_sio_recheck_user(): is the connected u
     * still allowed in? 0: yes, u->is_admin updated; 1: no (*why), the client is
     * disconnected as at token expiry; -1: cannot tell now (*why), the transport is closed
     * and the client reconnects (and is checked again) on its own. */
    int (*recheck)(void *ctx, agent_sio_user_t *u, const char **why);
    /* Optional, on the service thread: the Prometheus text for GET /metrics on the metrics
     * listener (metrics_port), allocated in p; s is this server (for its statistics). */
    const char *(*metrics)(struct agent_sio_t *s, apr_pool_t *p, apr_size_t *len);
    void *ctx;
    /* A second listener on the same event loop answering only GET /metrics (-1: none;
     * 0: any free port, agent_sio_metrics_port() tells which). */
    const char *metrics_addr;
    int metrics_port;
    /* A second WebSocket protocol on the same listener (the console proxy,
     * agent_console.h): an upgrade asking for its name as subprotocol, on console_path,
     * is handed to it; NULL: none. */
    const struct lws_protocols *console;
    const char *console_path;
    /* On the service thread when the server stops, and again while the last frames go out:
     * closes the console's sessions (the first call) and says how many are still open. */
    int (*console_stop)(void *console_ctx);
    void *console_ctx;
} agent_sio_conf_t;

typedef struct {
    int sessions;               /* Engine.IO sessions open */
    int pending;                /* of them, not connected with a good token (yet) */
    int websocket;              /* of them, on the websocket transport */
    int rooms;                  /* rooms with subscribers */
    apr_uint64_t published;     /* agent_sio_publish calls */
    apr_uint64_t delivered;     /* packets queued to clients */
    apr_uint64_t dropped_slow;  /* clients disconnected for a full queue */
    apr_uint64_t auth_failed;   /* connect_errors sent */
} agent_sio_stats_t;

/* Binds and listens (so the port is known on return); p outlives the server. */
apr_status_t agent_sio_create(apr_pool_t *p, const agent_sio_conf_t *conf, agent_sio_t **out);
int agent_sio_port(agent_sio_t *s);
/* The lws context everything runs on (for the console's client connections). */
struct lws_context *agent_sio_context(agent_sio_t *s);
/* The metrics listener's port, or -1 without one. */
int agent_sio_metrics_port(agent_sio_t *s);
/* Serves until agent_sio_stop(); then closes every client and returns. */
void agent_sio_run(agent_sio_t *s);
void agent_sio_stop(agent_sio_t *s);
/* Sends ["event", data] to every client subscribed to server_id. data is encoded once
 * here (the caller keeps its reference); the packet is shared by all recipients. */
void agent_sio_publish(agent_sio_t *s, apr_int64_t server_id, const char *event,
                       const json_t *data);
/* The same with a second form for the subscribers that asked for the compact one
 * ({"serverId": id, "compact": true}): each of them gets data (the full form) the first
 * time after its subscription, compact after that. compact NULL: one form for all. */
void agent_sio_publish2(agent_sio_t *s, apr_int64_t server_id, const char *event,
                        const json_t *data, const json_t *compact);
/* The server ids that have at least one subscriber now (array of apr_int64_t). */
apr_array_header_t *agent_sio_rooms(agent_sio_t *s, apr_pool_t *p);
void agent_sio_stats(agent_sio_t *s, agent_sio_stats_t *out);
/* What a user may watch changed (disabled, deleted, role, a login ended): every connected
 * client of user_id — of its login session only, when session is not NULL — is checked
 * again with conf.recheck on the service thread; one that was demoted from admin has its
 * rooms checked again with conf.may_subscribe. Any thread. */
void agent_sio_recheck_user(agent_sio_t *s, apr_int64_t user_id, const char *session);
/* server_id changed hands: its non-admin subscribers are checked again with
 * conf.may_subscribe; those refused leave the room and get a 'subscribe-error'. Any
 * thread. */
void agent_sio_recheck_server(agent_sio_t *s, apr_int64_t server_id);
/* 0 if text is a valid trusted_proxies list; else -1 and *bad the first bad entry (in p). */
int agent_sio_proxies_check(apr_pool_t *p, const char *text, const char **bad);

#endif
