/* ospab-agent: the background half of ospab panel, the daemon that does what no HTTP request
 * should wait for. This file starts it, takes the signals and stops it; the threads are:
 *
 *   main thread      the live-push server (agent_sio), its own DB connection for
 *                    token and ownership checks (agent_auth)
 *   "monitor"        polls every cluster's /cluster/resources, stores metrics_latest,
 *                    reflects status drift, raises and clears alerts, fetches live stats of
 *                    servers with subscribers, follows running Proxmox tasks, and turns new
 *                    events (webhook_outbox rows) into pushes (agent_monitor)
 *   "mailer"         sends email_outbox over SMTP (agent_mail)
 *   "webhooks"       delivers webhook_outbox to the main site (agent_webhook)
 *   signals          one thread takes SIGTERM, SIGINT and SIGHUP
 *
 * The workers run on agent_pool.c's threads and share agent_ctx.h's services. SIGTERM
 * stops the workers after their current tick; SIGHUP re-reads the config file and restarts
 * the workers with it (a config that does not load is logged and the old one kept).
 *
 *   ospab-agent [-c FILE] [--foreground] [--check] [--once]
 *
 * -c          the config file (default /etc/ospab/agent.conf)
 * --foreground  stay attached, log to stderr (what systemd wants); without it the agent
 *             detaches and logs to syslog
 * --check     load the config, open the database, print "config ok" and exit (like
 *             apachectl configtest): for ExecStartPre= and ExecReload=
 * --once      run one monitor round (poll every cluster, tasks, alerts) and exit; prints
 *             what it did as JSON (for benchmarks and cron-style use)
 *
 * Exit status: 0 fine, 1 usage or config error, 2 failed at run time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/resource.h>

#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_strings.h>
#include <apr_dbd.h>
#include <curl/curl.h>

#include "agent_auth.h"
#include "agent_console.h"
#include "agent_ctx.h"
#include "agent_mail.h"
#include "agent_monitor.h"
#include "agent_pool.h"
#include "agent_webhook.h"
#include "agent_metrics.h"

#ifndef OSPAB_AGENT_CONF
#define OSPAB_AGENT_CONF "/etc/ospab/agent.conf"
#endif

static const agent_worker_t worker_table[] = {
    { "monitor", agent_monitor_tick },
    { "mailer", agent_mail_tick },
    { "webhooks", agent_webhook_tick },
    /* two, so that one slow Proxmox call does not hold every console being opened */
    { "console", agent_console_tick },
    { "console", agent_console_tick },
};
#define NWORKERS ((int)(sizeof(worker_table) / sizeof(worker_table[0])))

static agent_pool_t *workers;

/* ---- signals: one thread takes them all (sigwait), the others have them blocked ---- */

static sigset_t handled;
static volatile int terminating;

static void *signal_main(void *data)
{
    agent_t *ag = data;

    (void)data;
    for (;;) {
        int sig = 0;

        if (sigwait(&handled, &sig)) {
            continue;
        }
        if (sig == SIGHUP && !terminating) {
            apr_pool_t *p;
            agent_conf_t *c;
            const char *why = NULL;

            /* every config keeps its own pool: the sio callbacks may still be reading the
             * old one while this thread swaps; a reload is rare, so old pools are kept */
            apr_pool_create(&p, ag->pool);
            if (agent_conf_load(p, ag->conf->path, &c, &why) != APR_SUCCESS) {
                AGENT_ERROR("reload: %s; keeping the running configuration", why);
                apr_pool_destroy(p);
                continue;
            }
            AGENT_INFO("reload: stopping the workers");
            agent_pool_stop(workers);
            agent_log_set_level(c->log_level);
            agent_monitor_reconfigure(ag, c);
            ag->conf = c;
            if (agent_pool_start(workers) != APR_SUCCESS) {
                AGENT_ERROR("reload: workers did not start; exiting");
                exit(2);
            }
            AGENT_INFO("reload: done (%s)", c->path);
            continue;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            AGENT_INFO("signal %d: shutting down", sig);
            terminating = 1;
            apr_thread_mutex_lock(ag->lock);
            ag->stopping = 1;
            apr_thread_cond_broadcast(ag->wake);
            apr_thread_mutex_unlock(ag->lock);
            if (ag->sio) {
                agent_sio_stop(ag->sio);
            }
            return NULL;
        }
    }
}

static void write_pid_file(const char *path)
{
    FILE *f;

    if (!path) {
        return;
    }
    if (!(f = fopen(path, "w"))) {
        AGENT_WARN("cannot write the pid file %s", path);
        return;
    }
    fprintf(f, "%ld\n", (long)getpid());
    fclose(f);
}

static int daemonize(void)
{
    pid_t pid = fork();
    int fd;

    if (pid < 0) {
        return -1;
    }
    if (pid > 0) {
        _exit(0);
    }
    setsid();
    if ((pid = fork()) < 0) {
        return -1;
    }
    if (pid > 0) {
        _exit(0);
    }
    if (chdir("/") != 0) {
        return -1;
    }
    if ((fd = open("/dev/null", O_RDWR)) >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        if (fd > 1) {
            close(fd);
        }
    }
    agent_log_to_syslog("ospab-agent");
    return 0;
}

static const apr_getopt_option_t options[] = {
    { "config", 'c', 1, "the config file (" OSPAB_AGENT_CONF ")" },
    { "foreground", 'f', 0, "do not detach; log to stderr" },
    { "check", 256, 0, "check the config and the database, then exit" },
    { "once", 257, 0, "one monitor round, print what it did, exit" },
    { "help", 'h', 0, "show this text" },
    { NULL, 0, 0, NULL }
};

static void usage(FILE *out)
{
    const apr_getopt_option_t *o;

    fprintf(out, "usage: ospab-agent [-c FILE] [--foreground] [--check] [--once]\n");
    for (o = options; o->name; o++) {
        fprintf(out, "  --%-11s %s\n", o->name, o->description);
    }
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *pool, *cp;
    apr_getopt_t *opt;
    const char *arg, *why = NULL, *path = OSPAB_AGENT_CONF;
    int ch, foreground = 0, check_only = 0, once = 0;
    agent_t *ag;
    pthread_t sig_thread;
    ospab_db_t db;
    apr_status_t rv;

    /* No fastbins (glibc's per-size lists of freed small chunks, merged only when a large
     * request comes): a poll round frees the whole parsed /cluster/resources answer, one
     * small chunk per JSON value, and the next large request then merged them all while
     * their memory stayed out of reach of the allocations in between, which touched new
     * pages instead. Freed chunks now merge at once; the per-thread cache (tcache) still
     * serves the short-lived small allocations of the live push. Measured with bench/poll
     * (100,000 guests): 13 % less CPU a cycle (docs/benchmarks.md "At scale"). */
    mallopt(M_MXFAST, 0);
    apr_app_initialize(&argc, &argv, NULL);
    atexit(apr_terminate);
    apr_pool_create(&pool, NULL);
    apr_getopt_init(&opt, pool, argc, argv);
    while ((rv = apr_getopt_long(opt, options, &ch, &arg)) == APR_SUCCESS) {
        switch (ch) {
        case 'c': path = arg; break;
        case 'f': foreground = 1; break;
        case 256: check_only = 1; break;
        case 257: once = 1; foreground = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (rv != APR_EOF || opt->ind != argc) {
        usage(stderr);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    apr_dbd_init(pool);

    ag = apr_pcalloc(pool, sizeof(*ag));
    ag->pool = pool;
    apr_pool_create(&cp, pool);
    if (agent_conf_load(cp, path, &ag->conf, &why) != APR_SUCCESS) {
        fprintf(stderr, "ospab-agent: %s\n", why);
        return 1;
    }
    agent_log_set_level(ag->conf->log_level);
    apr_thread_mutex_create(&ag->lock, APR_THREAD_MUTEX_DEFAULT, pool);
    apr_thread_cond_create(&ag->wake, pool);
    if (agent_monitor_setup(ag) != APR_SUCCESS) {
        return 1;
    }
    if (agent_db_open(ag, pool, &db, &why) != APR_SUCCESS) {
        fprintf(stderr, "ospab-agent: %s\n", why);
        return check_only ? 1 : 2;
    }
    if (check_only) {
        printf("config ok: %s (%d cluster%s, websocket %s)\n", path, ag->conf->clusters->nelts,
               ag->conf->clusters->nelts == 1 ? "" : "s",
               ag->conf->sio.port >= 0 ? "on" : "off");
        /* closed, not left to exit: an open connection of the dlopened driver shows up
         * as a leak under LeakSanitizer (scripts/sanitize) */
        apr_dbd_close(db.driver, db.handle);
        return 0;
    }
    if (once) {
        rv = agent_monitor_once(ag, &db);
        apr_dbd_close(db.driver, db.handle);
        return rv == APR_SUCCESS ? 0 : 2;
    }

    /* the listener before detaching: a port in use is an error the caller sees */
    if (ag->conf->sio.port >= 0) {
        agent_sio_conf_t sc = ag->conf->sio;

        agent_auth_setup(ag, &db, &sc);
        sc.metrics = agent_metrics_text;
        if ((ag->console = agent_console_create(ag, pool)) != NULL) {
            sc.console = agent_console_protocol(ag->console);
            sc.console_path = ag->conf->console.path;
            sc.console_stop = agent_console_stop;
            sc.console_ctx = ag->console;
            agent_metrics_set_console(ag->console);
        }
        if ((rv = agent_sio_create(pool, &sc, &ag->sio)) != APR_SUCCESS) {
            fprintf(stderr, "ospab-agent: cannot listen on %s:%d\n", sc.listen_addr, sc.port);
            return 2;
        }
        if (ag->console) {
            agent_console_attach(ag->console, agent_sio_context(ag->sio));
        }
        agent_metrics.served = agent_sio_metrics_port(ag->sio) >= 0;
    }
    if (!foreground && daemonize() != 0) {
        fprintf(stderr, "ospab-agent: cannot detach\n");
        return 2;
    }
    write_pid_file(ag->conf->pid_file);

    sigemptyset(&handled);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &handled, NULL);
    signal(SIGPIPE, SIG_IGN);
    workers = agent_pool_create(ag, worker_table, NWORKERS);
    if (agent_pool_start(workers) != APR_SUCCESS) {
        return 2;
    }
    pthread_create(&sig_thread, NULL, signal_main, ag);
    AGENT_INFO("ospab-agent started: %d cluster%s, websocket %s%s%d", ag->conf->clusters->nelts,
               ag->conf->clusters->nelts == 1 ? "" : "s",
               ag->sio ? ag->conf->sio.listen_addr : "off", ag->sio ? ":" : "",
               ag->sio ? agent_sio_port(ag->sio) : 0);
    if (ag->sio) {
        if (agent_metrics.served) {
            AGENT_INFO("metrics: http://%s:%d/metrics",
                       ag->conf->sio.metrics_addr ? ag->conf->sio.metrics_addr
                                                  : ag->conf->sio.listen_addr,
                       agent_sio_metrics_port(ag->sio));
        }
        /* print the port for whoever started us with port 0 (tests) */
        if (foreground) {
            printf("listening %d\n", agent_sio_port(ag->sio));
            fflush(stdout);
        }
        agent_sio_run(ag->sio);
    }
    else {
        apr_thread_mutex_lock(ag->lock);
        while (!ag->stopping || !terminating) {
            apr_thread_cond_wait(ag->wake, ag->lock);
        }
        apr_thread_mutex_unlock(ag->lock);
    }
    pthread_join(sig_thread, NULL);
    agent_pool_stop(workers);
    agent_monitor_release(ag, &db);
    if (ag->conf->pid_file) {
        unlink(ag->conf->pid_file);
    }
    apr_dbd_close(db.driver, db.handle);
    AGENT_INFO("ospab-agent stopped");
    curl_global_cleanup();
    return 0;
}
