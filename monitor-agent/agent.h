/* ospab-agent: the background half of ospab panel (SPEC §4).
 *
 *   main thread      the live-push server (agent_sio), its own DB connection for
 *                    token and ownership checks
 *   "monitor"        polls every cluster's /cluster/resources, stores metrics_latest,
 *                    reflects status drift, raises and clears alerts, fetches live stats of
 *                    servers with subscribers, follows running Proxmox tasks, and turns new
 *                    events (webhook_outbox rows) into pushes
 *   "mailer"         sends email_outbox over SMTP
 *   "webhooks"       delivers webhook_outbox to the main site
 *
 * Each worker thread owns one database connection (apr_dbd, the module's statements) and
 * runs ticks: a tick does one round of work and says when it wants to run again. SIGTERM
 * stops the workers after their current tick; SIGHUP re-reads the config file and restarts
 * the workers with it (a config that does not load is logged and the old one kept). */
#ifndef AGENT_H
#define AGENT_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_thread_proc.h>
#include <apr_thread_mutex.h>
#include <apr_thread_cond.h>

#include "ospab_db.h"
#include "ospab_pve.h"
#include "ospab_jwt.h"
#include "ospab_server.h"
#include "agent_log.h"
#include "agent_sio.h"

/* [cluster NAME] — one per Proxmox cluster */
typedef struct {
    const char *name;
    ospab_pve_conf_t pve;           /* url, token (resolved), ca_file/ca_pem, timeouts */
    const char *node;               /* default node (for follow-ups of old rows), optional */
    const char *storage, *bridge;   /* as the module's OspabProxmoxStorage/Bridge */
    ospab_pve_t *client;            /* made by the monitor */
} agent_cluster_t;

typedef struct {
    const char *path;               /* the file it came from */

    /* [database] */
    const char *db_driver;          /* "sqlite3" | "mysql" */
    const char *db_params;          /* as DBDParams; may be file:/env: */

    /* [agent] */
    agent_log_level_e log_level;
    const char *pid_file;           /* NULL: none */
    apr_interval_time_t poll_interval;   /* /cluster/resources, default 30 s */
    apr_interval_time_t live_interval;   /* status/current+rrddata of watched servers, 5 s */
    apr_interval_time_t task_interval;   /* running tasks, 2 s */
    apr_interval_time_t event_interval;  /* new events -> pushes, 1 s */
    apr_interval_time_t backoff_max;     /* longest wait after Proxmox failures, 300 s */

    /* [alerts] */
    double alert_high;              /* percent, open above (90) */
    double alert_clear;             /* percent, clear below (85) */
    double alert_critical;          /* percent, level critical at or above (95) */
    int alert_samples;              /* consecutive samples above alert_high (2) */
    apr_interval_time_t alert_cooldown;  /* between e-mails for server+type (1 h) */

    /* [smtp] (no url: e-mails stay queued) */
    const char *smtp_url;           /* smtp://host:587 or smtps://host:465 */
    const char *smtp_user;
    const char *smtp_password;      /* resolved from file:/env: */
    const char *smtp_from;          /* "ospab panel <noreply@example.com>" */
    const char *smtp_ca;            /* CA bundle; NULL: system store */
    int smtp_starttls;              /* 1: require STARTTLS on smtp:// (default 1) */
    int smtp_allow_plaintext_auth;  /* 1: user/password may go over smtp:// without TLS */
    long smtp_timeout_ms;           /* whole exchange (30000) */
    int mail_max_attempts;          /* then state failed (10) */
    apr_interval_time_t mail_retry_base;   /* first retry delay, doubled each time (30 s) */
    apr_interval_time_t mail_interval;   /* outbox scan (2 s) */

    /* [webhook] (no url: events are marked skipped) */
    const char *webhook_url;
    const char *webhook_secret;     /* HMAC-SHA256 key, resolved from file:/env: */
    const char *webhook_ca;
    long webhook_timeout_ms;        /* (10000) */
    int webhook_max_attempts;       /* then state failed (15) */
    apr_interval_time_t webhook_retry_base;  /* first retry delay, doubled each time (10 s) */
    apr_interval_time_t retry_max;  /* longest delay between two attempts (1 h) */
    int outbox_keep_days;           /* sent/delivered rows older than this are pruned (30) */
    apr_interval_time_t idempotency_keep;  /* Idempotency-Key records kept (7 d; at least
                                            * the replay window, OSPAB_IDEM_TTL) */
    apr_interval_time_t webhook_interval;  /* outbox scan (2 s) */

    /* [websocket] */
    agent_sio_conf_t sio;           /* listen, port, path, pings, queue bounds; the callbacks
                                     * are filled in by the agent */

    /* [jwt] — the module's OspabJWT* values */
    ospab_jwt_conf_t jwt;

    apr_array_header_t *clusters;   /* agent_cluster_t */
} agent_conf_t;

typedef struct agent_t agent_t;

/* One round of a worker's work on its own connection. p is cleared after each tick.
 * Returns how long to wait before the next round (the worker may be woken earlier). */
typedef apr_interval_time_t agent_tick_fn(agent_t *ag, ospab_db_t *db, apr_pool_t *p);

struct agent_t {
    apr_pool_t *pool;
    agent_conf_t *conf;             /* replaced on SIGHUP while the workers are stopped */
    agent_sio_t *sio;               /* NULL when [websocket] is off */
    volatile int stopping;          /* workers end after their current tick */
    apr_thread_mutex_t *lock;
    apr_thread_cond_t *wake;        /* signalled on stop/reload and by agent_wake() */
    void *monitor;                  /* agent_monitor.c's state (alert counters, backoff) */
};

/* agent_conf.c: reads and checks the file; on failure *why names the line and key. */
apr_status_t agent_conf_load(apr_pool_t *p, const char *path, agent_conf_t **out,
                             const char **why);

/* agent_main.c: opens a connection with the statements prepared. */
apr_status_t agent_db_open(agent_t *ag, apr_pool_t *p, ospab_db_t *db, const char **why);
/* The connection answers a prepared statement (after a failure: is it worth keeping?). */
int agent_db_usable(ospab_db_t *db, apr_pool_t *p);
/* Wakes every worker now (e.g. after the sio server saw a new room). */
void agent_wake(agent_t *ag);
/* Publishes to the live-push server if there is one; adds "sentAt" (ms since the epoch)
 * to data. */
void agent_publish(agent_t *ag, apr_int64_t server_id, const char *event, json_t *data);

/* the workers' ticks */
agent_tick_fn agent_monitor_tick;   /* agent_monitor.c */
agent_tick_fn agent_mail_tick;      /* agent_mail.c */
agent_tick_fn agent_webhook_tick;   /* agent_webhook.c */

/* agent_auth.c: the sio callbacks (token -> user, ownership) on the main thread's conn. */
void agent_auth_setup(agent_t *ag, ospab_db_t *db, agent_sio_conf_t *sio);

#endif
