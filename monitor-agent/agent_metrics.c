/* ospab-agent: its Prometheus metrics (agent_metrics.h). */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "agent_metrics.h"
#include "agent_sio.h"

agent_metrics_t agent_metrics;

/* the lease lines, rebuilt by the monitor thread, read by the event loop */
static pthread_mutex_t lease_lock = PTHREAD_MUTEX_INITIALIZER;
static char *lease_names;               /* NUL-separated, n of them; malloc'd */
static int *lease_held;
static int lease_n;

void agent_metrics_leases(const char *const *names, const int *held, int n)
{
    apr_size_t size = 0;
    char *nn, *w;
    int *nh, i;

    for (i = 0; i < n; i++) {
        size += strlen(names[i]) + 1;
    }
    nn = malloc(size ? size : 1);
    nh = malloc(sizeof(int) * (apr_size_t)(n ? n : 1));
    if (!nn || !nh) {
        free(nn);
        free(nh);
        return;
    }
    for (i = 0, w = nn; i < n; i++) {
        apr_size_t k = strlen(names[i]) + 1;

        memcpy(w, names[i], k);
        w += k;
        nh[i] = held[i];
    }
    pthread_mutex_lock(&lease_lock);
    free(lease_names);
    free(lease_held);
    lease_names = nn;
    lease_held = nh;
    lease_n = n;
    pthread_mutex_unlock(&lease_lock);
}

void agent_metrics_queue(ospab_db_t *db, apr_pool_t *p, const char *label,
                         volatile apr_uint32_t *depth, volatile apr_uint32_t *known)
{
    ospab_row_t row = NULL;

    if (agent_metrics.served && ospab_db_select_one(db, p, label, 0, NULL, &row) == APR_SUCCESS && row && row[0]) {
        apr_atomic_set32(depth, (apr_uint32_t)apr_atoi64(row[0]));
        apr_atomic_set32(known, 1);
    }
}

int agent_db_conflict_again(ospab_db_t *db, int *attempt)
{
    if (!ospab_db_conflict_again(db, attempt)) {
        return 0;
    }
    AGENT_COUNT(db_conflict_retries);
    return 1;
}

static agent_console_t *console;        /* set once before the listener starts */

void agent_metrics_set_console(agent_console_t *c)
{
    console = c;
}

static void counter(ospab_prom_t *b, const char *name, const char *help,
                    volatile apr_uint64_t *v)
{
    ospab_prom_one(b, name, "counter", help, apr_atomic_read64(v));
}

const char *agent_metrics_text(agent_sio_t *s, apr_pool_t *p, apr_size_t *len)
{
    /* the attempts by outbox and result, as ospab_agent_outbox_attempts_total's samples */
    static const struct {
        const char *labels;
        size_t field;
    } attempts[] = {
        { "outbox=\"mail\",result=\"sent\"", offsetof(agent_metrics_t, mail_sent) },
        { "outbox=\"mail\",result=\"retry\"", offsetof(agent_metrics_t, mail_retried) },
        { "outbox=\"mail\",result=\"failed\"", offsetof(agent_metrics_t, mail_failed) },
        { "outbox=\"webhook\",result=\"sent\"",
          offsetof(agent_metrics_t, webhook_delivered) },
        { "outbox=\"webhook\",result=\"retry\"",
          offsetof(agent_metrics_t, webhook_retried) },
        { "outbox=\"webhook\",result=\"failed\"",
          offsetof(agent_metrics_t, webhook_failed) },
    };
    agent_metrics_t *m = &agent_metrics;
    ospab_prom_t *b = ospab_prom_make(p);
    ospab_prom_hist_t h;
    agent_sio_stats_t st;
    const char *name;
    size_t k;
    int i;

    ospab_prom_read(&m->poll, &h);
    ospab_prom_family(b, "ospab_agent_poll_duration_seconds", "histogram",
                      "One polling round: every cluster's /cluster/resources, drift, alerts "
                      "and metrics stored");
    ospab_prom_hist(b, "ospab_agent_poll_duration_seconds", NULL, &h);
    counter(b, "ospab_agent_cluster_polls_total", "Cluster polls asked of Proxmox",
            &m->polls);
    counter(b, "ospab_agent_cluster_poll_failures_total",
            "Cluster polls without a usable answer (the cluster backs off)", &m->poll_failures);
    ospab_prom_one(b, "ospab_agent_guests", "gauge", "Guests Proxmox listed in the last "
                   "round (clusters this agent polls)", apr_atomic_read32(&m->guests));
    counter(b, "ospab_agent_drift_corrections_total",
            "Server records corrected to what Proxmox reports (status drift, guests gone)",
            &m->drift);
    counter(b, "ospab_agent_suspension_stops_total",
            "Guests of suspended servers found running and stopped by the agent",
            &m->suspension_stops);
    counter(b, "ospab_agent_task_followups_total",
            "Follow-ups of servers with running Proxmox tasks", &m->task_followups);
    counter(b, "ospab_agent_alerts_raised_total", "Alerts opened (a resource above the "
            "threshold for the configured samples)", &m->alerts);
    counter(b, "ospab_agent_db_conflict_retries_total", "Agent transactions run again after "
            "a write conflict (deadlock or Galera certification)", &m->db_conflict_retries);

    ospab_prom_family(b, "ospab_agent_outbox_queued", "gauge",
                      "E-mails and webhook events pending or being sent, at the last scan");
    if (apr_atomic_read32(&m->mail_queue_known)) {
        ospab_prom_u64(b, "ospab_agent_outbox_queued", "outbox=\"mail\"",
                       apr_atomic_read32(&m->mail_queued));
    }
    if (apr_atomic_read32(&m->webhook_queue_known)) {
        ospab_prom_u64(b, "ospab_agent_outbox_queued", "outbox=\"webhook\"",
                       apr_atomic_read32(&m->webhook_queued));
    }
    name = "ospab_agent_outbox_attempts_total";
    ospab_prom_family(b, name, "counter", "Delivery attempts of e-mails and webhooks by "
                      "result: sent, retry (failed, tried again later), failed (for good)");
    for (k = 0; k < sizeof(attempts) / sizeof(attempts[0]); k++) {
        ospab_prom_u64(b, name, attempts[k].labels, apr_atomic_read64(
                       (volatile apr_uint64_t *)((char *)m + attempts[k].field)));
    }

    agent_sio_stats(s, &st);
    ospab_prom_family(b, "ospab_agent_socketio_sessions", "gauge",
                      "Engine.IO sessions open, by state");
    ospab_prom_u64(b, "ospab_agent_socketio_sessions", "state=\"connected\"",
                   (apr_uint64_t)(st.sessions - st.pending));
    ospab_prom_u64(b, "ospab_agent_socketio_sessions", "state=\"pending\"",
                   (apr_uint64_t)st.pending);
    ospab_prom_one(b, "ospab_agent_socketio_rooms", "gauge",
                   "Servers with at least one subscriber", (apr_uint64_t)st.rooms);
    ospab_prom_family(b, "ospab_agent_pushes_total", "counter",
                      "Live-push packets queued to clients (delivered), and clients "
                      "disconnected because their queue was full (dropped)");
    ospab_prom_u64(b, "ospab_agent_pushes_total", "result=\"delivered\"", st.delivered);
    ospab_prom_u64(b, "ospab_agent_pushes_total", "result=\"dropped\"", st.dropped_slow);
    ospab_prom_one(b, "ospab_agent_socketio_auth_failures_total", "counter",
                   "Socket.IO connects refused (connect_error)", st.auth_failed);

    if (console) {
        agent_console_stats_t cs;

        agent_console_stats(console, &cs);
        ospab_prom_one(b, "ospab_agent_consoles", "gauge",
                       "Console sessions open (docs/console.md)", (apr_uint64_t)cs.open);
        ospab_prom_one(b, "ospab_agent_console_queued_bytes", "gauge",
                       "Bytes the consoles hold for a slow side now (bounded by [console] "
                       "max_buffer per session)", (apr_uint64_t)cs.queued);
        ospab_prom_family(b, "ospab_agent_consoles_total", "counter",
                          "Consoles that reached the guest (opened), and those closed "
                          "before it: bad token, no access, Proxmox's refusal (refused)");
        ospab_prom_u64(b, "ospab_agent_consoles_total", "result=\"opened\"", cs.opened);
        ospab_prom_u64(b, "ospab_agent_consoles_total", "result=\"refused\"", cs.refused);
        ospab_prom_family(b, "ospab_agent_console_bytes_total", "counter",
                          "Bytes relayed by the consoles, by direction");
        ospab_prom_u64(b, "ospab_agent_console_bytes_total", "direction=\"to_guest\"",
                       cs.bytes_to_guest);
        ospab_prom_u64(b, "ospab_agent_console_bytes_total", "direction=\"to_browser\"",
                       cs.bytes_to_browser);
    }

    ospab_prom_family(b, "ospab_agent_cluster_lease", "gauge",
                      "1 for each Proxmox cluster this agent polls (holds the lease of), "
                      "0 for one another agent polls");
    pthread_mutex_lock(&lease_lock);
    for (i = 0, name = lease_names; i < lease_n; i++, name += strlen(name) + 1) {
        ospab_prom_u64(b, "ospab_agent_cluster_lease", ospab_prom_label(p, "cluster", name),
                       (apr_uint64_t)lease_held[i]);
    }
    pthread_mutex_unlock(&lease_lock);
    return ospab_prom_text(b, len);
}
