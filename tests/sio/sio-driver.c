/* sio-driver: the agent's live-push server (monitor-agent/agent_sio.c) on its own, for
 * tests/integration/test_sio.py and bench/fanout.
 *
 *   sio-driver --jwt-key-env NAME | --jwt-key KEY  [--own USER:SERVER,...]
 *              [--listen 127.0.0.1] [--port 0] [--path /socket.io/]
 *              [--ping-interval MS] [--ping-timeout MS] [--max-payload BYTES]
 *              [--max-queue-msgs N] [--max-queue-bytes BYTES] [--max-clients N]
 *              [--max-subscriptions N] [--connect-timeout MS] [--max-pending N]
 *              [--max-pending-per-address N] [--max-per-address N]
 *              [--trusted-proxies "ADDR ..."] [--debug]
 *
 * Tokens are HS256 access tokens checked by the core (ospab_jwt_verify); a user may
 * subscribe to the servers --own gives it, an admin token to any. Prints
 * "listening PORT" when ready; then reads commands on stdin, one a line:
 *   emit SERVER EVENT JSON    publish (from this thread, not the service thread)
 *   emitts SERVER EVENT [N [STAMP [PAD]]]   (PAD: a string of that many bytes in the data)
 *                             publish {"serverId":SERVER,"sentAt":STAMP} N times (the
 *                             benchmark's events; STAMP in ms since the epoch, default:
 *                             the time of each publish)
 *   stats                     prints "stats {json}" (counters, rooms, RSS in kB)
 *   sync                      prints "sync" (everything before it has been done)
 *   quit                      stops the server and exits 0 (so does end of input)
 * "room N" is printed when room N gets its first subscriber. SIGTERM stops too. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <jansson.h>

#include "agent_log.h"
#include "agent_sio.h"
#include "ospab_jwt.h"

typedef struct {
    apr_pool_t *pool;                   /* cleared at every authenticate call */
    ospab_jwt_conf_t jwt;
    apr_array_header_t *own;            /* pairs of apr_int64_t: user, server */
    apr_thread_mutex_t *out_mutex;
} driver_t;

static agent_sio_t *server;
static volatile sig_atomic_t quitting;  /* main asked the server to stop */

static void say(driver_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(driver_t *d, const char *fmt, ...)
{
    va_list ap;

    apr_thread_mutex_lock(d->out_mutex);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
    apr_thread_mutex_unlock(d->out_mutex);
}

static int authenticate(void *ctx, const char *token, agent_sio_user_t *u, const char **why)
{
    driver_t *d = ctx;
    ospab_jwt_claims_t claims;

    apr_pool_clear(d->pool);
    if (ospab_jwt_verify(d->pool, &d->jwt, token, apr_time_now(), &claims, why) != APR_SUCCESS)
        return -1;
    u->user_id = claims.user_id;
    u->is_admin = claims.admin;
    /* as the agent: an exp beyond apr_time_t never expires rather than overflowing */
    u->expires = claims.exp > 0 && claims.exp <= APR_INT64_MAX / APR_USEC_PER_SEC
                 ? apr_time_from_sec(claims.exp) : 0;
    apr_cpystrn(u->sid, claims.sid, sizeof(u->sid));
    return 0;
}

static int may_subscribe(void *ctx, const agent_sio_user_t *u, apr_int64_t server_id,
                         const char **why)
{
    driver_t *d = ctx;
    int i;

    for (i = 0; i + 1 < d->own->nelts; i += 2)
        if (APR_ARRAY_IDX(d->own, i, apr_int64_t) == u->user_id
            && APR_ARRAY_IDX(d->own, i + 1, apr_int64_t) == server_id)
            return 0;
    *why = "Server not found or not yours";
    return -1;
}

static void room_opened(void *ctx, apr_int64_t server_id)
{
    say(ctx, "room %" APR_INT64_T_FMT "\n", server_id);
}

static void *APR_THREAD_FUNC serve(apr_thread_t *t, void *data)
{
    agent_sio_run(data);
    if (!quitting) {
        /* stopped by a signal while main waits on stdin: nothing left to do */
        fputs("stopped\n", stdout);
        fflush(stdout);
        _exit(0);
    }
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static void on_term(int sig)
{
    (void)sig;
    if (server)
        agent_sio_stop(server);
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

static int parse_own(apr_pool_t *p, const char *spec, apr_array_header_t *own)
{
    char *copy = apr_pstrdup(p, spec), *last, *pair;

    for (pair = apr_strtok(copy, ",", &last); pair; pair = apr_strtok(NULL, ",", &last)) {
        char *colon = strchr(pair, ':');

        if (!colon)
            return -1;
        *colon = '\0';
        APR_ARRAY_PUSH(own, apr_int64_t) = apr_atoi64(pair);
        APR_ARRAY_PUSH(own, apr_int64_t) = apr_atoi64(colon + 1);
    }
    return 0;
}

static void print_stats(driver_t *d, apr_pool_t *p)
{
    agent_sio_stats_t st;
    apr_array_header_t *rooms;
    json_t *j, *ids;
    char *text;
    int i;

    agent_sio_stats(server, &st);
    rooms = agent_sio_rooms(server, p);
    ids = json_array();
    for (i = 0; i < rooms->nelts; ++i)
        json_array_append_new(ids, json_integer(APR_ARRAY_IDX(rooms, i, apr_int64_t)));
    j = json_pack("{sisisisisIsIsIsIsosI}", "sessions", st.sessions, "pending", st.pending,
                  "websocket", st.websocket,
                  "rooms", st.rooms, "published", (json_int_t)st.published,
                  "delivered", (json_int_t)st.delivered,
                  "dropped_slow", (json_int_t)st.dropped_slow,
                  "auth_failed", (json_int_t)st.auth_failed, "room_ids", ids,
                  "rss_kb", (json_int_t)rss_kb());
    text = json_dumps(j, JSON_COMPACT);
    say(d, "stats %s\n", text);
    free(text);
    json_decref(j);
}

/* stamp: the caller's send time (ms since the epoch), or <= 0: now, at each publish */
static void emit_stamped(apr_int64_t id, const char *event, long n, double stamp, long pad)
{
    json_t *data = json_object();
    struct timeval tv;
    long i;

    json_object_set_new(data, "serverId", json_integer(id));
    if (pad > 0 && pad < (1L << 24)) {
        /* as large as the agent's real messages (bench/fanout --payload) */
        char *text = malloc((size_t)pad + 1);

        if (text) {
            memset(text, 'x', (size_t)pad);
            text[pad] = '\0';
            json_object_set_new(data, "pad", json_string(text));
            free(text);
        }
    }
    for (i = 0; i < n; ++i) {
        if (stamp <= 0) {
            gettimeofday(&tv, NULL);
            json_object_set_new(data, "sentAt", json_real((double)tv.tv_sec * 1000.0
                                                          + (double)tv.tv_usec / 1000.0));
        }
        else
            json_object_set_new(data, "sentAt", json_real(stamp));
        agent_sio_publish(server, id, event, data);
    }
    json_decref(data);
}

static int commands(driver_t *d, apr_pool_t *p)
{
    char line[1 << 16];

    while (fgets(line, sizeof(line), stdin)) {
        char *nl = strchr(line, '\n'), *last, *cmd;

        if (nl)
            *nl = '\0';
        cmd = apr_strtok(line, " ", &last);
        if (!cmd)
            continue;
        if (!strcmp(cmd, "emit")) {
            char *id = apr_strtok(NULL, " ", &last), *event = apr_strtok(NULL, " ", &last);
            json_error_t err;
            json_t *data = last ? json_loads(last, JSON_DECODE_ANY, &err) : NULL;

            if (!id || !event || !data) {
                say(d, "error emit SERVER EVENT JSON\n");
                json_decref(data);
                continue;
            }
            agent_sio_publish(server, apr_atoi64(id), event, data);
            json_decref(data);
        }
        else if (!strcmp(cmd, "emitts")) {
            char *id = apr_strtok(NULL, " ", &last), *event = apr_strtok(NULL, " ", &last),
                 *n = apr_strtok(NULL, " ", &last), *stamp = apr_strtok(NULL, " ", &last),
                 *pad = apr_strtok(NULL, " ", &last);

            if (!id || !event) {
                say(d, "error emitts SERVER EVENT [N [STAMP [PAD]]]\n");
                continue;
            }
            emit_stamped(apr_atoi64(id), event, n ? atol(n) : 1, stamp ? atof(stamp) : 0,
                         pad ? atol(pad) : 0);
        }
        else if (!strcmp(cmd, "stats"))
            print_stats(d, p);
        else if (!strcmp(cmd, "sync"))
            say(d, "sync\n");
        else if (!strcmp(cmd, "quit"))
            return 0;
        else
            say(d, "error unknown command %s\n", cmd);
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: sio-driver --jwt-key KEY|--jwt-key-env NAME [--own U:S,...] "
                    "[--port N] [--ping-interval MS] [--ping-timeout MS] ...\n");
    exit(2);
}

int main(int argc, const char *const *argv)
{
    static const apr_getopt_option_t opts[] = {
        { "jwt-key", 'k', 1, "" }, { "jwt-key-env", 'e', 1, "" }, { "own", 'o', 1, "" },
        { "listen", 'l', 1, "" }, { "port", 'p', 1, "" }, { "path", 'P', 1, "" },
        { "ping-interval", 'i', 1, "" }, { "ping-timeout", 't', 1, "" },
        { "max-payload", 'm', 1, "" }, { "max-queue-msgs", 'q', 1, "" },
        { "max-queue-bytes", 'b', 1, "" }, { "max-clients", 'c', 1, "" },
        { "max-subscriptions", 's', 1, "" }, { "debug", 'd', 0, "" },
        { "connect-timeout", 'T', 1, "" }, { "max-pending", 'n', 1, "" },
        { "max-pending-per-address", 'N', 1, "" }, { "max-per-address", 'A', 1, "" },
        { "trusted-proxies", 'x', 1, "" }, { NULL, 0, 0, NULL }
    };
    apr_pool_t *pool, *cmd_pool;
    apr_getopt_t *g;
    apr_status_t rv;
    int opt;
    const char *arg, *key = NULL;
    agent_sio_conf_t conf;
    driver_t d;
    apr_thread_t *thread;

    apr_app_initialize(&argc, &argv, NULL);
    atexit(apr_terminate);
    apr_pool_create(&pool, NULL);
    apr_pool_create(&cmd_pool, pool);
    memset(&d, 0, sizeof(d));
    memset(&conf, 0, sizeof(conf));
    apr_pool_create(&d.pool, pool);
    apr_thread_mutex_create(&d.out_mutex, APR_THREAD_MUTEX_DEFAULT, pool);
    d.own = apr_array_make(pool, 16, sizeof(apr_int64_t));
    conf.listen_addr = "127.0.0.1";
    conf.path = "/socket.io/";
    conf.ping_interval_ms = 25000;
    conf.ping_timeout_ms = 20000;
    conf.max_payload = 1000000;
    conf.max_queue_msgs = 256;
    conf.max_queue_bytes = 1024 * 1024;
    conf.max_clients = 10000;
    conf.max_subscriptions = 64;

    apr_getopt_init(&g, pool, argc, argv);
    while ((rv = apr_getopt_long(g, opts, &opt, &arg)) == APR_SUCCESS) {
        switch (opt) {
        case 'k': key = arg; break;
        case 'e': key = getenv(arg); break;
        case 'o': if (parse_own(pool, arg, d.own)) usage(); break;
        case 'l': conf.listen_addr = arg; break;
        case 'p': conf.port = atoi(arg); break;
        case 'P': conf.path = arg; break;
        case 'i': conf.ping_interval_ms = atoi(arg); break;
        case 't': conf.ping_timeout_ms = atoi(arg); break;
        case 'm': conf.max_payload = (apr_size_t)apr_atoi64(arg); break;
        case 'q': conf.max_queue_msgs = atoi(arg); break;
        case 'b': conf.max_queue_bytes = (apr_size_t)apr_atoi64(arg); break;
        case 'c': conf.max_clients = atoi(arg); break;
        case 's': conf.max_subscriptions = atoi(arg); break;
        case 'd': agent_log_set_level(AGENT_LOG_DEBUG); break;
        case 'T': conf.connect_timeout_ms = atoi(arg); break;
        case 'n': conf.max_pending = atoi(arg); break;
        case 'N': conf.max_pending_per_address = atoi(arg); break;
        case 'A': conf.max_per_address = atoi(arg); break;
        case 'x': conf.trusted_proxies = arg; break;
        default: usage();
        }
    }
    if (rv != APR_EOF || !key || strlen(key) < 32)
        usage();

    d.jwt.alg = ospab_jwt_alg("HS256");
    d.jwt.alg_name = "HS256";
    d.jwt.verify_key = (const unsigned char *)key;
    d.jwt.verify_key_len = (int)strlen(key);
    d.jwt.leeway = 0;
    conf.authenticate = authenticate;
    conf.may_subscribe = may_subscribe;
    conf.room_opened = room_opened;
    conf.ctx = &d;

    rv = agent_sio_create(pool, &conf, &server);
    if (rv != APR_SUCCESS) {
        fprintf(stderr, "sio-driver: cannot start the server (%d)\n", rv);
        return 1;
    }
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    signal(SIGPIPE, SIG_IGN);
    if (apr_thread_create(&thread, NULL, serve, server, pool) != APR_SUCCESS)
        return 1;
    say(&d, "listening %d\n", agent_sio_port(server));

    commands(&d, cmd_pool);
    quitting = 1;
    agent_sio_stop(server);
    apr_thread_join(&rv, thread);
    apr_pool_destroy(pool);
    return 0;
}
