/* ospab-agent: the console proxy (issue 15, docs/console.md). The panel's console page
 * opens a WebSocket to the agent (subprotocol "ospab-console", beside Socket.IO on the
 * live-push listener, proxied by Apache), sends the one-time token the console route
 * gave it, and the agent opens the guest's console on Proxmox itself: termproxy or
 * vncproxy with its API token, then Proxmox's vncwebsocket over TLS verified against the
 * cluster's CA. It answers the terminal's ticket line or the VNC authentication on the
 * browser's behalf and relays the bytes both ways with back-pressure. The browser never
 * sees a Proxmox address, port or ticket.
 *
 * Threads: the WebSocket ends live on the live-push server's service thread; redeeming a
 * token, the Proxmox calls, the rechecks of open sessions and the audit run on the
 * console workers (agent_console_tick, in agent_pool.c's pool), which hand their answers
 * back through a queue and lws_cancel_service(). */
#ifndef AGENT_CONSOLE_H
#define AGENT_CONSOLE_H

#include <apr_pools.h>
#include <apr_time.h>

#include "ospab_db.h"

struct agent_t;
struct lws_protocols;
struct lws_context;


typedef struct agent_console_t agent_console_t;

typedef struct {
    int open;                           /* sessions now, of any state */
    apr_uint64_t opened;                /* relaying started */
    apr_uint64_t refused;               /* closed before relaying (token, access, Proxmox) */
    apr_uint64_t bytes_to_guest, bytes_to_browser;
    apr_size_t queued;                  /* bytes waiting in the relays' queues now */
} agent_console_stats_t;

/* The console's state for ag (ag->conf->console), from p; NULL when it is off. */
agent_console_t *agent_console_create(struct agent_t *ag, apr_pool_t *p);
/* The lws protocol the live-push server adds beside Socket.IO's (its name is the
 * subprotocol the page asks for). */
const struct lws_protocols *agent_console_protocol(agent_console_t *c);
/* The live-push server's context, once created: the console's client connections live
 * on it. */
void agent_console_attach(agent_console_t *c, struct lws_context *ctx);
/* The live-push server's console_stop: on its service thread as it stops, closes every
 * console (1001 and a message to the page); the sessions still open. */
int agent_console_stop(void *c);
/* A console worker's round (agent_tick_fn, on its own database connection). */
apr_interval_time_t agent_console_tick(struct agent_t *ag, ospab_db_t *db, apr_pool_t *p);
/* On the service thread (the metrics listener's callback). */
void agent_console_stats(agent_console_t *c, agent_console_stats_t *out);

#endif
