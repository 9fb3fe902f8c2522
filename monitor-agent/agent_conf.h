/* ospab-agent: the configuration file's settings (agent_conf.c reads and checks the file; the
 * agent reads it at start and again on SIGHUP). */
#ifndef AGENT_CONF_H
#define AGENT_CONF_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "ospab_pve.h"
#include "ospab_jwt.h"
#include "ospab_seal.h"
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

/* [console]: the console proxy (agent_console.h, docs/console.md) */
typedef struct {
    int enabled;                        /* on with [websocket] unless "enabled = off" */
    const char *path;                   /* "/console/ws": what Apache proxies to us */
    apr_interval_time_t idle_timeout;   /* no byte either way for this long: closed (15 min) */
    apr_interval_time_t open_timeout;   /* the token and Proxmox's handshake (30 s) */
    int max_per_user;                   /* consoles one user has open at once (4) */
    int max_sessions;                   /* consoles open at once (256) */
    apr_size_t max_buffer;              /* bytes waiting for one side; its other side is
                                         * not read meanwhile (256 KiB) */
} agent_console_conf_t;

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
    apr_interval_time_t rrd_refresh;     /* a watched server's rrddata asked again, 60 s
                                          * (its points are a minute apart) */
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

    /* [console] — the console proxy on the [websocket] listener (agent_console.h) */
    agent_console_conf_t console;

    /* [jwt] — the module's OspabJWT* values */
    ospab_jwt_conf_t jwt;

    /* [secrets] key: seals the secrets kept in the database (the module's OspabSecretKey);
     * with it, the clusters registered there are polled too (agent_clusters.c) */
    const ospab_seal_key_t *seal_key;

    apr_array_header_t *clusters;   /* agent_cluster_t: the file's [cluster] sections, then
                                     * the database's (the monitor thread's alone) */
} agent_conf_t;

/* Reads and checks the file; on failure *why names the line and key. */
apr_status_t agent_conf_load(apr_pool_t *p, const char *path, agent_conf_t **out,
                             const char **why);

#endif
