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
 * agent_sio_rooms(), agent_sio_stats() and agent_sio_stop() may be called from any
 * thread. Every client has a bounded queue of outgoing packets (count and bytes): a client
 * that cannot keep up is disconnected rather than allowed to grow the agent's memory. */
#ifndef AGENT_SIO_H
#define AGENT_SIO_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>

typedef struct agent_sio_t agent_sio_t;

/* Who a connected client is, as the authenticate callback found. */
typedef struct {
    apr_int64_t user_id;
    int is_admin;               /* may subscribe to any server */
    apr_time_t expires;         /* the token's exp: the client is disconnected then; 0: never */
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
    int max_clients;            /* Engine.IO sessions at once; more are refused */
    int max_subscriptions;      /* rooms per client */

    /* Called on the service thread. Returns 0 and fills *u when token is good; else
     * non-zero with *why set to the message the client's connect_error carries. */
    int (*authenticate)(void *ctx, const char *token, agent_sio_user_t *u, const char **why);
    /* Called on the service thread for a non-admin's subscribe. 0: allowed; else *why. */
    int (*may_subscribe)(void *ctx, const agent_sio_user_t *u, apr_int64_t server_id,
                         const char **why);
    /* Optional, on the service thread: a room got its first subscriber. */
    void (*room_opened)(void *ctx, apr_int64_t server_id);
    void *ctx;
} agent_sio_conf_t;

typedef struct {
    int sessions;               /* Engine.IO sessions open */
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
/* Serves until agent_sio_stop(); then closes every client and returns. */
void agent_sio_run(agent_sio_t *s);
void agent_sio_stop(agent_sio_t *s);
/* Sends ["event", data] to every client subscribed to server_id. data is encoded once
 * here (the caller keeps its reference); the packet is shared by all recipients. */
void agent_sio_publish(agent_sio_t *s, apr_int64_t server_id, const char *event,
                       const json_t *data);
/* The server ids that have at least one subscriber now (array of apr_int64_t). */
apr_array_header_t *agent_sio_rooms(agent_sio_t *s, apr_pool_t *p);
void agent_sio_stats(agent_sio_t *s, agent_sio_stats_t *out);

#endif
