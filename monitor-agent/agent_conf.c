/* ospab-agent: the config file.
 *
 *   # comment
 *   [database]
 *   driver = sqlite3
 *   params = /var/lib/ospab/ospab.db
 *   [cluster main]
 *   url = https://pve1.example.com:8006
 *   token = file:/etc/ospab/pve-token
 *
 * One "key = value" per line; values run to the end of the line (trimmed). Secrets take
 * file:/path or env:NAME like the module's directives. Durations are seconds or take a
 * unit: 500ms, 30s, 5m, 1h, 2d. Every unknown section or key, every bad value is an error
 * naming the file, the line and the key: a typo must not silently keep a default. See
 * conf/ospab-agent.conf for every key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <stdarg.h>

#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_file_io.h>

#include "agent_conf.h"
#include "ospab_mail.h"
#include "ospab_sync.h"
#include "ospab_util.h"

typedef struct {
    apr_pool_t *p;
    agent_conf_t *c;
    agent_cluster_t *cluster;       /* the [cluster NAME] being read */
    const char *section;
    const char *file;
    int line;
    const char *why;
} reader_t;

static int fail(reader_t *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(reader_t *r, const char *key, const char *fmt, ...)
{
    va_list ap;
    const char *msg;

    va_start(ap, fmt);
    msg = apr_pvsprintf(r->p, fmt, ap);
    va_end(ap);
    r->why = key ? apr_psprintf(r->p, "%s:%d: [%s] %s: %s", r->file, r->line, r->section, key,
                                msg)
                 : apr_psprintf(r->p, "%s:%d: %s", r->file, r->line, msg);
    return -1;
}

/* "30" / "30s" / "500ms" / "5m" / "1h" / "2d" within [min, max] */
static int get_duration(reader_t *r, const char *key, const char *v, apr_interval_time_t min,
                        apr_interval_time_t max, apr_interval_time_t *out)
{
    char *end;
    double n;
    apr_interval_time_t t;

    errno = 0;
    n = strtod(v, &end);
    if (errno || end == v || n < 0) {
        return fail(r, key, "'%s' is not a duration (e.g. 30s, 500ms, 5m)", v);
    }
    if (!*end || !strcmp(end, "s")) {
        t = (apr_interval_time_t)(n * APR_USEC_PER_SEC);
    }
    else if (!strcmp(end, "ms")) {
        t = (apr_interval_time_t)(n * 1000);
    }
    else if (!strcmp(end, "m")) {
        t = (apr_interval_time_t)(n * 60 * APR_USEC_PER_SEC);
    }
    else if (!strcmp(end, "h")) {
        t = (apr_interval_time_t)(n * 3600 * APR_USEC_PER_SEC);
    }
    else if (!strcmp(end, "d")) {
        t = (apr_interval_time_t)(n * 86400 * APR_USEC_PER_SEC);
    }
    else {
        return fail(r, key, "'%s': unknown unit (ms, s, m, h, d)", v);
    }
    if (t < min || t > max) {
        return fail(r, key, "%s is out of range (%gs to %gs)", v, (double)min / 1e6,
                    (double)max / 1e6);
    }
    *out = t;
    return 0;
}

static int get_int(reader_t *r, const char *key, const char *v, long min, long max, long *out)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end) {
        return fail(r, key, "'%s' is not a whole number", v);
    }
    if (n < min || n > max) {
        return fail(r, key, "%ld is out of range (%ld to %ld)", n, min, max);
    }
    *out = n;
    return 0;
}

static int get_percent(reader_t *r, const char *key, const char *v, double *out)
{
    char *end;
    double n;

    errno = 0;
    n = strtod(v, &end);
    if (errno || end == v || (*end && strcmp(end, "%")) || n <= 0 || n > 100) {
        return fail(r, key, "'%s' is not a percentage between 0 and 100", v);
    }
    *out = n;
    return 0;
}

static int get_bool(reader_t *r, const char *key, const char *v, int *out)
{
    if (!strcasecmp(v, "on") || !strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1")) {
        *out = 1;
        return 0;
    }
    if (!strcasecmp(v, "off") || !strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcmp(v, "0")) {
        *out = 0;
        return 0;
    }
    return fail(r, key, "'%s' is not on/off", v);
}

static int get_secret(reader_t *r, const char *key, const char *v, const char **out)
{
    const char *err = NULL;

    if (ospab_secret_resolve(r->p, v, out, &err) != APR_SUCCESS) {
        return fail(r, key, "%s", err ? err : "cannot read the secret");
    }
    return 0;
}

static int get_file(reader_t *r, const char *key, const char *v, const char **out)
{
    apr_finfo_t fi;

    if (apr_stat(&fi, v, APR_FINFO_TYPE, r->p) != APR_SUCCESS || fi.filetype != APR_REG) {
        return fail(r, key, "%s is not a readable file", v);
    }
    *out = v;
    return 0;
}

#define IS(k) (!strcmp(key, (k)))

static int set_database(reader_t *r, const char *key, const char *v)
{
    if (IS("driver")) {
        if (strcmp(v, "sqlite3") && strcmp(v, "mysql")) {
            return fail(r, key, "'%s': sqlite3 or mysql", v);
        }
        r->c->db_driver = v;
        return 0;
    }
    if (IS("params")) {
        return get_secret(r, key, v, &r->c->db_params);
    }
    return fail(r, key, "unknown key");
}

/* ADDRESS:PORT, or off (*port -1). */
static int get_listen(reader_t *r, const char *key, const char *v, const char **addr,
                      int *port)
{
    const char *colon = strrchr(v, ':');
    long n;

    if (!strcasecmp(v, "off")) {
        *port = -1;
        return 0;
    }
    if (!colon || colon == v || get_int(r, key, colon + 1, 0, 65535, &n)) {
        return r->why ? -1 : fail(r, key, "'%s': ADDRESS:PORT (e.g. 127.0.0.1:8081) or off", v);
    }
    *addr = apr_pstrndup(r->p, v, (apr_size_t)(colon - v));
    *port = (int)n;
    return 0;
}

static int set_agent(reader_t *r, const char *key, const char *v)
{
    agent_conf_t *c = r->c;
    const apr_interval_time_t S = APR_USEC_PER_SEC;
    long n;

    if (IS("log_level")) {
        if (!agent_log_level_parse(v, &c->log_level)) {
            return fail(r, key, "'%s': error, warn, info or debug", v);
        }
        return 0;
    }
    if (IS("pid_file")) {
        c->pid_file = v;
        return 0;
    }
    if (IS("metrics_listen")) {
        /* served by the live-push event loop: see check() */
        return get_listen(r, key, v, &c->sio.metrics_addr, &c->sio.metrics_port);
    }
    if (IS("poll_interval")) {
        return get_duration(r, key, v, S / 10, 3600 * S, &c->poll_interval);
    }
    if (IS("live_interval")) {
        return get_duration(r, key, v, S / 10, 3600 * S, &c->live_interval);
    }
    if (IS("rrd_refresh")) {
        return get_duration(r, key, v, S / 10, 3600 * S, &c->rrd_refresh);
    }
    if (IS("task_interval")) {
        return get_duration(r, key, v, S / 20, 600 * S, &c->task_interval);
    }
    if (IS("event_interval")) {
        return get_duration(r, key, v, S / 20, 600 * S, &c->event_interval);
    }
    if (IS("backoff_max")) {
        return get_duration(r, key, v, S / 10, 3600 * S, &c->backoff_max);
    }
    if (IS("retry_max")) {
        return get_duration(r, key, v, S / 10, 7 * 86400 * S, &c->retry_max);
    }
    if (IS("idempotency_keep")) {
        /* never below the module's replay window: a retry within it must find its key */
        return get_duration(r, key, v, OSPAB_IDEM_TTL, 3650 * 86400 * S, &c->idempotency_keep);
    }
    if (IS("outbox_keep_days")) {
        if (get_int(r, key, v, 1, 3650, &n)) {
            return -1;
        }
        c->outbox_keep_days = (int)n;
        return 0;
    }
    return fail(r, key, "unknown key");
}

static int set_alerts(reader_t *r, const char *key, const char *v)
{
    agent_conf_t *c = r->c;
    long n;

    if (IS("high")) {
        return get_percent(r, key, v, &c->alert_high);
    }
    if (IS("clear")) {
        return get_percent(r, key, v, &c->alert_clear);
    }
    if (IS("critical")) {
        return get_percent(r, key, v, &c->alert_critical);
    }
    if (IS("samples")) {
        if (get_int(r, key, v, 1, 100, &n)) {
            return -1;
        }
        c->alert_samples = (int)n;
        return 0;
    }
    if (IS("cooldown")) {
        return get_duration(r, key, v, 0, 30 * 86400 * APR_USEC_PER_SEC, &c->alert_cooldown);
    }
    return fail(r, key, "unknown key");
}

static int set_smtp(reader_t *r, const char *key, const char *v)
{
    agent_conf_t *c = r->c;
    apr_interval_time_t t;
    long n;

    if (IS("url")) {
        if (strncmp(v, "smtp://", 7) && strncmp(v, "smtps://", 8)) {
            return fail(r, key, "'%s': smtp://host:port or smtps://host:port", v);
        }
        c->smtp_url = v;
        return 0;
    }
    if (IS("user")) {
        c->smtp_user = v;
        return 0;
    }
    if (IS("password")) {
        return get_secret(r, key, v, &c->smtp_password);
    }
    if (IS("from")) {
        if (strpbrk(v, "\r\n") || !strchr(v, '@')) {
            return fail(r, key, "'%s' is not an address", v);
        }
        c->smtp_from = v;
        return 0;
    }
    if (IS("ca")) {
        return get_file(r, key, v, &c->smtp_ca);
    }
    if (IS("starttls")) {
        return get_bool(r, key, v, &c->smtp_starttls);
    }
    if (IS("allow_plaintext_auth")) {
        return get_bool(r, key, v, &c->smtp_allow_plaintext_auth);
    }
    if (IS("timeout")) {
        if (get_duration(r, key, v, APR_USEC_PER_SEC, 600 * APR_USEC_PER_SEC, &t)) {
            return -1;
        }
        c->smtp_timeout_ms = (long)apr_time_as_msec(t);
        return 0;
    }
    if (IS("max_attempts")) {
        if (get_int(r, key, v, 1, 1000, &n)) {
            return -1;
        }
        c->mail_max_attempts = (int)n;
        return 0;
    }
    if (IS("interval")) {
        return get_duration(r, key, v, APR_USEC_PER_SEC / 20, 3600 * APR_USEC_PER_SEC,
                            &c->mail_interval);
    }
    if (IS("retry_base")) {
        return get_duration(r, key, v, APR_USEC_PER_SEC / 20, 86400 * APR_USEC_PER_SEC,
                            &c->mail_retry_base);
    }
    return fail(r, key, "unknown key");
}

static int set_webhook(reader_t *r, const char *key, const char *v)
{
    agent_conf_t *c = r->c;
    apr_interval_time_t t;
    long n;

    if (IS("url")) {
        if (strncmp(v, "https://", 8) && strncmp(v, "http://", 7)) {
            return fail(r, key, "'%s': an http(s):// URL", v);
        }
        c->webhook_url = v;
        return 0;
    }
    if (IS("secret")) {
        if (get_secret(r, key, v, &c->webhook_secret)) {
            return -1;
        }
        if (strlen(c->webhook_secret) < 32) {
            return fail(r, key, "the secret is shorter than 32 characters");
        }
        return 0;
    }
    if (IS("ca")) {
        return get_file(r, key, v, &c->webhook_ca);
    }
    if (IS("timeout")) {
        if (get_duration(r, key, v, APR_USEC_PER_SEC / 10, 600 * APR_USEC_PER_SEC, &t)) {
            return -1;
        }
        c->webhook_timeout_ms = (long)apr_time_as_msec(t);
        return 0;
    }
    if (IS("max_attempts")) {
        if (get_int(r, key, v, 1, 1000, &n)) {
            return -1;
        }
        c->webhook_max_attempts = (int)n;
        return 0;
    }
    if (IS("interval")) {
        return get_duration(r, key, v, APR_USEC_PER_SEC / 20, 3600 * APR_USEC_PER_SEC,
                            &c->webhook_interval);
    }
    if (IS("retry_base")) {
        return get_duration(r, key, v, APR_USEC_PER_SEC / 20, 86400 * APR_USEC_PER_SEC,
                            &c->webhook_retry_base);
    }
    return fail(r, key, "unknown key");
}

static int set_console(reader_t *r, const char *key, const char *v)
{
    agent_console_conf_t *k = &r->c->console;
    long n;

    if (IS("enabled")) {
        return get_bool(r, key, v, &k->enabled);
    }
    if (IS("path")) {
        if (v[0] != '/' || strpbrk(v, "?# \t")) {
            return fail(r, key, "'%s' must be a path starting with /", v);
        }
        k->path = v;
        return 0;
    }
    if (IS("idle_timeout")) {
        return get_duration(r, key, v, APR_USEC_PER_SEC, 7 * 86400 * APR_USEC_PER_SEC,
                            &k->idle_timeout);
    }
    if (IS("open_timeout")) {
        return get_duration(r, key, v, APR_USEC_PER_SEC, 600 * APR_USEC_PER_SEC,
                            &k->open_timeout);
    }
    if (IS("max_per_user") || IS("max_sessions")) {
        if (get_int(r, key, v, 1, 100000, &n)) {
            return -1;
        }
        *(IS("max_per_user") ? &k->max_per_user : &k->max_sessions) = (int)n;
        return 0;
    }
    if (IS("max_buffer")) {
        if (get_int(r, key, v, 16384, 64L << 20, &n)) {
            return -1;
        }
        k->max_buffer = (apr_size_t)n;
        return 0;
    }
    return fail(r, key, "unknown key");
}

static int set_websocket(reader_t *r, const char *key, const char *v)
{
    agent_sio_conf_t *s = &r->c->sio;
    apr_interval_time_t t;
    long n;

    if (IS("listen")) {
        return get_listen(r, key, v, &s->listen_addr, &s->port);
    }
    if (IS("path")) {
        if (v[0] != '/' || v[strlen(v) - 1] != '/') {
            return fail(r, key, "'%s' must start and end with /", v);
        }
        s->path = v;
        return 0;
    }
    if (IS("ping_interval") || IS("ping_timeout")) {
        if (get_duration(r, key, v, APR_USEC_PER_SEC / 10, 600 * APR_USEC_PER_SEC, &t)) {
            return -1;
        }
        *(IS("ping_interval") ? &s->ping_interval_ms : &s->ping_timeout_ms)
            = (int)apr_time_as_msec(t);
        return 0;
    }
    if (IS("max_payload") || IS("max_queue_bytes")) {
        if (get_int(r, key, v, 1024, 64L << 20, &n)) {
            return -1;
        }
        *(IS("max_payload") ? &s->max_payload : &s->max_queue_bytes) = (apr_size_t)n;
        return 0;
    }
    if (IS("max_queue") || IS("max_clients") || IS("max_subscriptions")
        || IS("max_pending") || IS("max_pending_per_address") || IS("max_per_address")) {
        if (get_int(r, key, v, 1, 1000000, &n)) {
            return -1;
        }
        *(IS("max_queue") ? &s->max_queue_msgs
          : IS("max_clients") ? &s->max_clients
          : IS("max_pending") ? &s->max_pending
          : IS("max_pending_per_address") ? &s->max_pending_per_address
          : IS("max_per_address") ? &s->max_per_address : &s->max_subscriptions) = (int)n;
        return 0;
    }
    if (IS("connect_timeout")) {
        if (get_duration(r, key, v, APR_USEC_PER_SEC / 10, 300 * APR_USEC_PER_SEC, &t)) {
            return -1;
        }
        s->connect_timeout_ms = (int)apr_time_as_msec(t);
        return 0;
    }
    if (IS("trusted_proxies")) {
        const char *bad = NULL;

        if (!strcasecmp(v, "none")) {
            s->trusted_proxies = "";
            return 0;
        }
        if (agent_sio_proxies_check(r->p, v, &bad)) {
            return fail(r, key, "'%s' is not an address or network (e.g. 127.0.0.1, "
                        "10.0.0.0/8, ::1)", bad);
        }
        s->trusted_proxies = v;
        return 0;
    }
    return fail(r, key, "unknown key");
}

static int set_secrets(reader_t *r, const char *key, const char *v)
{
    const char *why = NULL;

    if (IS("key")) {
        if (ospab_seal_key_load(r->p, v, &r->c->seal_key, &why) != APR_SUCCESS) {
            return fail(r, key, "%s", why);
        }
        return 0;
    }
    return fail(r, key, "unknown key");
}

static int set_jwt(reader_t *r, const char *key, const char *v)
{
    ospab_jwt_conf_t *j = &r->c->jwt;
    long n;

    if (IS("algorithm")) {
        if (ospab_jwt_alg(v) == JWT_ALG_INVAL) {
            return fail(r, key, "'%s': HS256, RS256 or ES256", v);
        }
        j->alg_name = v;
        j->alg = ospab_jwt_alg(v);
        return 0;
    }
    if (IS("key")) {
        const char *k;

        if (get_secret(r, key, v, &k)) {
            return -1;
        }
        j->verify_key = (const unsigned char *)k;
        j->verify_key_len = (int)strlen(k);
        return 0;
    }
    if (IS("issuer")) {
        j->issuer = v;
        return 0;
    }
    if (IS("audience")) {
        j->audience = v;
        return 0;
    }
    if (IS("leeway")) {
        if (get_int(r, key, v, 0, 300, &n)) {
            return -1;
        }
        j->leeway = (int)n;
        return 0;
    }
    return fail(r, key, "unknown key");
}

static int set_cluster(reader_t *r, const char *key, const char *v)
{
    agent_cluster_t *cl = r->cluster;
    apr_interval_time_t t;

    if (IS("url")) {
        const char *why = ospab_pve_url_problem(v);

        if (why) {
            return fail(r, key, "'%s': %s", v, why);
        }
        cl->pve.url = v;
        return 0;
    }
    if (IS("token")) {
        const char *tok, *why;

        if (get_secret(r, key, v, &tok)) {
            return -1;
        }
        if ((why = ospab_pve_token_problem(tok)) != NULL) {
            return fail(r, key, "the API token %s", why);
        }
        cl->pve.token = tok;
        return 0;
    }
    if (IS("ca")) {
        return get_file(r, key, v, &cl->pve.ca_file);
    }
    if (IS("node")) {
        cl->node = v;
        return 0;
    }
    if (IS("storage")) {
        cl->storage = v;
        return 0;
    }
    if (IS("bridge")) {
        cl->bridge = v;
        return 0;
    }
    if (IS("timeout")) {
        if (get_duration(r, key, v, APR_USEC_PER_SEC, 600 * APR_USEC_PER_SEC, &t)) {
            return -1;
        }
        cl->pve.timeout_ms = (long)apr_time_as_msec(t);
        return 0;
    }
    return fail(r, key, "unknown key");
}

static void defaults(agent_conf_t *c)
{
    const apr_interval_time_t S = APR_USEC_PER_SEC;

    c->log_level = AGENT_LOG_INFO;
    c->poll_interval = 30 * S;
    c->live_interval = 5 * S;
    c->rrd_refresh = 60 * S;
    c->task_interval = 2 * S;
    c->event_interval = 1 * S;
    c->backoff_max = 300 * S;
    c->alert_high = 90;
    c->alert_clear = 85;
    c->alert_critical = 95;
    c->alert_samples = 2;
    c->alert_cooldown = 3600 * S;
    c->smtp_starttls = 1;
    c->smtp_timeout_ms = 30000;
    c->mail_max_attempts = 10;
    c->mail_interval = 2 * S;
    c->mail_retry_base = 30 * S;
    c->webhook_timeout_ms = 10000;
    c->webhook_max_attempts = 15;
    c->webhook_interval = 2 * S;
    c->webhook_retry_base = 10 * S;
    c->retry_max = 3600 * S;
    c->outbox_keep_days = 30;
    c->idempotency_keep = 7 * 86400 * S;
    c->sio.listen_addr = "127.0.0.1";
    c->sio.port = 8081;
    c->sio.metrics_port = -1;           /* [agent] metrics_listen: off unless set */
    c->sio.path = "/socket.io/";
    c->sio.ping_interval_ms = 25000;
    c->sio.ping_timeout_ms = 20000;
    c->sio.max_payload = 1000000;
    c->sio.max_queue_msgs = 256;
    c->sio.max_queue_bytes = 1 << 20;
    c->sio.max_clients = 10000;
    c->sio.max_subscriptions = 100;
    c->sio.connect_timeout_ms = 5000;
    c->sio.max_pending = 1000;
    c->sio.max_pending_per_address = 50;
    c->sio.max_per_address = 500;
    c->sio.trusted_proxies = "127.0.0.1 ::1";
    c->console.enabled = 1;
    c->console.path = "/console/ws";
    c->console.idle_timeout = apr_time_from_sec(900);
    c->console.open_timeout = apr_time_from_sec(30);
    c->console.max_per_user = 4;
    c->console.max_sessions = 256;
    c->console.max_buffer = 256 * 1024;
    c->jwt.alg = JWT_ALG_HS256;
    c->jwt.alg_name = "HS256";
    c->jwt.leeway = 30;
}

static int line(reader_t *r, char *s)
{
    char *eq, *key, *val, *end;

    while (apr_isspace(*s)) {
        ++s;
    }
    end = s + strlen(s);
    while (end > s && apr_isspace(end[-1])) {
        *--end = '\0';
    }
    if (!*s || *s == '#' || *s == ';') {
        return 0;
    }
    if (*s == '[') {
        char *name;

        if (end[-1] != ']') {
            return fail(r, NULL, "a section header ends with ]");
        }
        end[-1] = '\0';
        name = s + 1;
        r->cluster = NULL;
        if (!strncmp(name, "cluster", 7) && (name[7] == ' ' || name[7] == '\0')) {
            char *cname = name + 7;

            while (apr_isspace(*cname)) {
                ++cname;
            }
            if (!*cname) {
                return fail(r, NULL, "[cluster NAME]: the cluster needs a name");
            }
            r->cluster = apr_array_push(r->c->clusters);
            memset(r->cluster, 0, sizeof(*r->cluster));
            r->cluster->name = apr_pstrdup(r->p, cname);
            r->cluster->pve.connect_timeout_ms = 3000;
            r->cluster->pve.timeout_ms = 10000;
            r->cluster->pve.max_response = 64 << 20;
            r->cluster->pve.max_handles = 16;
            r->section = apr_pstrcat(r->p, "cluster ", cname, NULL);
            return 0;
        }
        if (strcmp(name, "database") && strcmp(name, "agent") && strcmp(name, "alerts")
            && strcmp(name, "smtp") && strcmp(name, "webhook") && strcmp(name, "websocket")
            && strcmp(name, "console") && strcmp(name, "jwt") && strcmp(name, "secrets")) {
            return fail(r, NULL, "unknown section [%s]", name);
        }
        r->section = apr_pstrdup(r->p, name);
        return 0;
    }
    if (!(eq = strchr(s, '='))) {
        return fail(r, NULL, "expected key = value");
    }
    if (!r->section) {
        return fail(r, NULL, "key outside a section");
    }
    *eq = '\0';
    key = s;
    val = eq + 1;
    end = eq;
    while (end > key && apr_isspace(end[-1])) {
        *--end = '\0';
    }
    while (apr_isspace(*val)) {
        ++val;
    }
    key = apr_pstrdup(r->p, key);
    val = apr_pstrdup(r->p, val);
    if (!*val) {
        return fail(r, key, "empty value");
    }
    if (r->cluster) {
        return set_cluster(r, key, val);
    }
    if (!strcmp(r->section, "database")) {
        return set_database(r, key, val);
    }
    if (!strcmp(r->section, "agent")) {
        return set_agent(r, key, val);
    }
    if (!strcmp(r->section, "alerts")) {
        return set_alerts(r, key, val);
    }
    if (!strcmp(r->section, "smtp")) {
        return set_smtp(r, key, val);
    }
    if (!strcmp(r->section, "webhook")) {
        return set_webhook(r, key, val);
    }
    if (!strcmp(r->section, "websocket")) {
        return set_websocket(r, key, val);
    }
    if (!strcmp(r->section, "console")) {
        return set_console(r, key, val);
    }
    if (!strcmp(r->section, "secrets")) {
        return set_secrets(r, key, val);
    }
    return set_jwt(r, key, val);
}

/* Whole-file checks: what is required, what must agree. */
static const char *check(apr_pool_t *p, agent_conf_t *c)
{
    int i;

    if (!c->db_driver || !c->db_params) {
        return "[database] driver and params are required";
    }
    if (c->alert_clear >= c->alert_high) {
        return "[alerts] clear must be below high (hysteresis)";
    }
    if (c->alert_critical < c->alert_high) {
        return "[alerts] critical must not be below high";
    }
    if (c->sio.metrics_port >= 0 && c->sio.port < 0) {
        return "[agent] metrics_listen needs the live-push listener ([websocket] listen): "
               "both are served by its event loop";
    }
    if (c->smtp_url && !c->smtp_from) {
        return "[smtp] from is required with url";
    }
    if (c->smtp_from && !ospab_mail_from_addr(p, c->smtp_from)) {
        return apr_pstrcat(p, "[smtp] from: '", c->smtp_from, "' holds no address mail can be "
                           "sent from (name <local@domain> or local@domain)", NULL);
    }
    if (c->smtp_user && !c->smtp_password) {
        return "[smtp] password is required with user";
    }
    if (c->smtp_user && c->smtp_url && !strncmp(c->smtp_url, "smtp://", 7)
        && !c->smtp_starttls && !c->smtp_allow_plaintext_auth) {
        /* STARTTLS offered but stripped by someone on the path would make curl log in in
         * clear text: that is a decision to write down, not a default */
        return "[smtp] user with starttls = off would send the password in clear text to a "
               "server (or a man in the middle) that offers no STARTTLS: use starttls = on "
               "or smtps://, or set allow_plaintext_auth = yes";
    }
    if (c->webhook_url && !c->webhook_secret) {
        return "[webhook] secret is required with url (deliveries are signed)";
    }
    if (c->sio.port >= 0) {
        if (!c->jwt.verify_key) {
            return "[jwt] key is required for [websocket] (the module's OspabJWTKey)";
        }
        if (ospab_jwt_check_key(p, c->jwt.alg, (const char *)c->jwt.verify_key, 0)) {
            return apr_pstrcat(p, "[jwt] key: ",
                               ospab_jwt_check_key(p, c->jwt.alg,
                                                   (const char *)c->jwt.verify_key, 0), NULL);
        }
        if (c->sio.ping_timeout_ms < 1) {
            return "[websocket] ping_timeout must be positive";
        }
        if (c->console.enabled && !strncmp(c->console.path, c->sio.path,
                                           strlen(c->sio.path))) {
            return "[console] path must lie outside [websocket] path";
        }
    }
    for (i = 0; i < c->clusters->nelts; ++i) {
        agent_cluster_t *cl = &APR_ARRAY_IDX(c->clusters, i, agent_cluster_t);

        if (!cl->pve.url || !cl->pve.token) {
            return apr_psprintf(p, "[cluster %s] url and token are required", cl->name);
        }
    }
    return NULL;
}

apr_status_t agent_conf_load(apr_pool_t *p, const char *path, agent_conf_t **out,
                             const char **why)
{
    reader_t r;
    apr_file_t *f;
    char buf[8192];
    apr_status_t rv;

    memset(&r, 0, sizeof(r));
    r.p = p;
    r.file = path;
    r.c = apr_pcalloc(p, sizeof(*r.c));
    r.c->path = apr_pstrdup(p, path);
    r.c->clusters = apr_array_make(p, 2, sizeof(agent_cluster_t));
    defaults(r.c);
    if ((rv = apr_file_open(&f, path, APR_FOPEN_READ, 0, p)) != APR_SUCCESS) {
        *why = apr_psprintf(p, "%s: %s", path, apr_strerror(rv, buf, sizeof(buf)));
        return rv;
    }
    while ((rv = apr_file_gets(buf, sizeof(buf), f)) == APR_SUCCESS) {
        r.line++;
        if (strlen(buf) == sizeof(buf) - 1 && buf[sizeof(buf) - 2] != '\n') {
            fail(&r, NULL, "line too long");
            break;
        }
        if (line(&r, buf)) {
            break;
        }
    }
    apr_file_close(f);
    if (r.why) {
        *why = r.why;
        return APR_EINVAL;
    }
    if ((*why = check(p, r.c)) != NULL) {
        *why = apr_psprintf(p, "%s: %s", path, *why);
        return APR_EINVAL;
    }
    *out = r.c;
    return APR_SUCCESS;
}
