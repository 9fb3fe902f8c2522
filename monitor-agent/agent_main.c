/* ospab-agent: the daemon (see agent.h for the threads).
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
#include <pthread.h>
#include <sys/resource.h>

#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_strings.h>
#include <apr_dbd.h>
#include <curl/curl.h>

#include "agent.h"
#include "agent_monitor.h"

#ifndef OSPAB_AGENT_CONF
#define OSPAB_AGENT_CONF "/etc/ospab/agent.conf"
#endif

typedef struct {
    const char *name;
    agent_tick_fn *tick;
    agent_t *ag;
    apr_thread_t *thread;
    unsigned long seen_wake;
} worker_t;

static worker_t workers[] = {
    { "monitor", agent_monitor_tick, NULL, NULL, 0 },
    { "mailer", agent_mail_tick, NULL, NULL, 0 },
    { "webhooks", agent_webhook_tick, NULL, NULL, 0 },
};
#define NWORKERS (sizeof(workers) / sizeof(workers[0]))

static unsigned long wake_gen;      /* under ag->lock */

apr_status_t agent_db_open(agent_t *ag, apr_pool_t *p, ospab_db_t *db, const char **why)
{
    const apr_dbd_driver_t *drv;
    apr_dbd_t *handle;
    const char *err = NULL;
    apr_status_t rv;

    if ((rv = apr_dbd_get_driver(p, ag->conf->db_driver, &drv)) != APR_SUCCESS) {
        *why = apr_psprintf(p, "no apr_dbd driver %s (install libaprutil1-dbd-%s)",
                            ag->conf->db_driver, ag->conf->db_driver);
        return rv;
    }
    if ((rv = apr_dbd_open_ex(drv, p, ag->conf->db_params, &handle, &err)) != APR_SUCCESS) {
        /* the driver's message never holds the password, the params may: not logged */
        *why = apr_psprintf(p, "cannot connect to the %s database: %s", ag->conf->db_driver,
                            err ? err : "no reason given");
        return rv;
    }
    ospab_db_init(db, drv, handle, NULL);
    db->conn_pool = p;
    if ((rv = ospab_db_prepare_all(db, p)) != APR_SUCCESS) {
        *why = apr_psprintf(p, "preparing statements failed (%s): is the schema migrated? "
                            "(ospab-admin migrate)", db->error ? db->error : "?");
        apr_dbd_close(drv, handle);
        return rv;
    }
    return APR_SUCCESS;
}

void agent_wake(agent_t *ag)
{
    apr_thread_mutex_lock(ag->lock);
    wake_gen++;
    apr_thread_cond_broadcast(ag->wake);
    apr_thread_mutex_unlock(ag->lock);
}

void agent_publish(agent_t *ag, apr_int64_t server_id, const char *event, json_t *data)
{
    if (ag->sio) {
        /* when the agent sent it, in ms since the epoch: a page can show how fresh the
         * data is, and bench/fanout measures the push's latency from it */
        json_object_set_new(data, "sentAt",
                            json_integer((json_int_t)apr_time_as_msec(apr_time_now())));
        agent_sio_publish(ag->sio, server_id, event, data);
    }
}

/* Waits up to t, or until woken or stopping. */
static void worker_wait(worker_t *w, apr_interval_time_t t)
{
    agent_t *ag = w->ag;
    apr_time_t until = apr_time_now() + t;

    apr_thread_mutex_lock(ag->lock);
    while (!ag->stopping && w->seen_wake == wake_gen) {
        apr_time_t left = until - apr_time_now();

        if (left <= 0) {
            break;
        }
        apr_thread_cond_timedwait(ag->wake, ag->lock, left);
    }
    w->seen_wake = wake_gen;
    apr_thread_mutex_unlock(ag->lock);
}

int agent_db_usable(ospab_db_t *db, apr_pool_t *p)
{
    ospab_row_t row = NULL;

    if (apr_dbd_check_conn(db->driver, p, db->handle) != APR_SUCCESS) {
        return 0;
    }
    return ospab_db_select_one(db, p, "ospab_ping", 0, NULL, &row) == APR_SUCCESS && row;
}

static void *APR_THREAD_FUNC worker_main(apr_thread_t *t, void *data)
{
    worker_t *w = data;
    agent_t *ag = w->ag;
    apr_pool_t *conn_pool, *tick_pool;
    apr_interval_time_t retry = apr_time_from_sec(1);
    ospab_db_t db;
    int open = 0;

    apr_pool_create(&conn_pool, NULL);
    apr_pool_create(&tick_pool, NULL);
    while (!ag->stopping) {
        apr_interval_time_t next;

        if (!open) {
            const char *why = NULL;

            apr_pool_clear(conn_pool);
            if (agent_db_open(ag, conn_pool, &db, &why) != APR_SUCCESS) {
                AGENT_ERROR("%s: %s (retry in %ds)", w->name, why, (int)apr_time_sec(retry));
                worker_wait(w, retry);
                retry = retry * 2 > apr_time_from_sec(60) ? apr_time_from_sec(60) : retry * 2;
                continue;
            }
            open = 1;
            retry = apr_time_from_sec(1);
        }
        db.errcode = 0;
        next = w->tick(ag, &db, tick_pool);
        apr_pool_clear(tick_pool);
        if (db.trans) {
            ospab_db_end(&db, 0);
        }
        /* After a failed statement, a prepared one must still work: MariaDB may have
         * dropped the connection (restart, wait_timeout, KILL), and apr_dbd_mysql's
         * automatic reconnect brings the connection back without our statements. Then
         * the connection is opened again and everything prepared anew. */
        if (db.errcode != 0 && !agent_db_usable(&db, tick_pool)) {
            AGENT_WARN("%s: database connection lost, reconnecting", w->name);
            apr_dbd_close(db.driver, db.handle);
            open = 0;
            next = 0;
        }
        apr_pool_clear(tick_pool);
        if (next > 0) {
            worker_wait(w, next);
        }
    }
    if (open) {
        apr_dbd_close(db.driver, db.handle);
    }
    apr_pool_destroy(tick_pool);
    apr_pool_destroy(conn_pool);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static apr_status_t workers_start(agent_t *ag)
{
    apr_threadattr_t *attr;
    apr_size_t i;

    ag->stopping = 0;
    apr_threadattr_create(&attr, ag->pool);
    apr_threadattr_stacksize_set(attr, 1 << 20);
    for (i = 0; i < NWORKERS; ++i) {
        apr_status_t rv;

        workers[i].ag = ag;
        workers[i].seen_wake = wake_gen;
        if ((rv = apr_thread_create(&workers[i].thread, attr, worker_main, &workers[i],
                                    ag->pool)) != APR_SUCCESS) {
            AGENT_ERROR("cannot start the %s thread", workers[i].name);
            return rv;
        }
    }
    return APR_SUCCESS;
}

static void workers_stop(agent_t *ag)
{
    apr_size_t i;
    apr_status_t rv;

    apr_thread_mutex_lock(ag->lock);
    ag->stopping = 1;
    apr_thread_cond_broadcast(ag->wake);
    apr_thread_mutex_unlock(ag->lock);
    for (i = 0; i < NWORKERS; ++i) {
        if (workers[i].thread) {
            apr_thread_join(&rv, workers[i].thread);
            workers[i].thread = NULL;
        }
    }
}

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
            workers_stop(ag);
            agent_log_set_level(c->log_level);
            agent_monitor_reconfigure(ag, c);
            ag->conf = c;
            if (workers_start(ag) != APR_SUCCESS) {
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
        if ((rv = agent_sio_create(pool, &sc, &ag->sio)) != APR_SUCCESS) {
            fprintf(stderr, "ospab-agent: cannot listen on %s:%d\n", sc.listen_addr, sc.port);
            return 2;
        }
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
    if (workers_start(ag) != APR_SUCCESS) {
        return 2;
    }
    pthread_create(&sig_thread, NULL, signal_main, ag);
    AGENT_INFO("ospab-agent started: %d cluster%s, websocket %s%s%d", ag->conf->clusters->nelts,
               ag->conf->clusters->nelts == 1 ? "" : "s",
               ag->sio ? ag->conf->sio.listen_addr : "off", ag->sio ? ":" : "",
               ag->sio ? agent_sio_port(ag->sio) : 0);
    if (ag->sio) {
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
    workers_stop(ag);
    agent_monitor_release(ag, &db);
    if (ag->conf->pid_file) {
        unlink(ag->conf->pid_file);
    }
    apr_dbd_close(db.driver, db.handle);
    AGENT_INFO("ospab-agent stopped");
    curl_global_cleanup();
    return 0;
}
