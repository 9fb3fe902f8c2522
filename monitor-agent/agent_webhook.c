/* ospab-agent: webhooks. Delivers webhook_outbox rows to the main site (docs/agent.md,
 * "Webhooks"): a batch of up to WEBHOOK_BATCH due rows, oldest id first, posted at once
 * over one curl multi handle so that one slow answer does not hold up the others.
 *
 * Like the mailer: a row is claimed in a transaction (sending, attempts + 1, a lease in
 * next_attempt_at that is also the claim), posted with no transaction open, and its outcome
 * recorded together with a webhook_deliveries row only if the lease is still ours. A kill
 * between the receiver's 2xx and that update delivers the row again after the lease: at
 * least once, with the same X-Ospab-Delivery id, so receivers can drop repeats.
 *
 * Outcomes: 2xx delivered; 4xx other than 408 and 429 failed at once (the receiver looked
 * at the request and refused it: the same bytes would be refused again); anything else
 * (no connection, timeout, 408, 429, 5xx, 3xx) retried with backoff until
 * webhook_max_attempts. Without [webhook] url, pending rows become 'skipped'. */
#include <stddef.h>
#include <string.h>
#include <stdlib.h>

#include <curl/curl.h>
#include <apr_strings.h>

#include "agent_webhook.h"
#include "ospab_outbox.h"
#include "ospab_webhook.h"
#include "ospab_events.h"
#include "ospab_json.h"
#include "ospab_util.h"
#include "agent_metrics.h"

#define RECORD_TRIES 5     /* to record a delivery's outcome (see finish) */
#define WEBHOOK_BATCH 8                          /* LIMIT of ospab_webhook_due */
#define LEASE_MARGIN apr_time_from_sec(10)
#define PRUNE_EVERY apr_time_from_sec(3600)
/* revoked refresh tokens kept a while: they only tell, in the database, how a login ended
 * (a logout, a reused refresh token) */
#define REVOKED_KEEP apr_time_from_sec(7 * 86400)
#define CONNECT_TIMEOUT_MS 5000L
#define SNIPPET 200                              /* bytes of an error answer kept */

/* this file's state: only the webhooks thread runs it */
static const agent_conf_t *wh_conf;
static CURLM *wh_multi;                         /* its connection cache outlives ticks */
static CURL *wh_easy[WEBHOOK_BATCH];
static apr_time_t wh_next_prune;

/* A row of ospab_webhook_get: one event to deliver. */
typedef struct {
    const char *id;
    const char *event;              /* OSPAB_EVENT_*: the X-Ospab-Event header */
    const char *payload;            /* the stored body (lib/ospab_events.c) */
    const char *attempts_text;
    int attempts;                   /* with the one just claimed */
} webhook_row_t;

/* id, event, payload, attempts */
static const apr_size_t webhook_cols[] = {
    offsetof(webhook_row_t, id), offsetof(webhook_row_t, event),
    offsetof(webhook_row_t, payload), offsetof(webhook_row_t, attempts_text)
};
static const ospab_row_shape_t webhook_shape =
    OSPAB_ROW_SHAPE(webhook_cols, webhook_row_t, OSPAB_ROW_NO_RAW);

static void webhook_from_row(ospab_row_t r, webhook_row_t *w)
{
    ospab_row_fill(&webhook_shape, r, w);
    w->attempts = w->attempts_text ? atoi(w->attempts_text) : 0;
}

/* The one column of ospab_webhook_due: the id of a row due now. */
static const char *due_id_from_row(ospab_row_t r)
{
    return r[0];
}

typedef struct {
    CURL *h;
    const char *id, *lease;
    int attempt;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    char snippet[SNIPPET + 1];
    apr_size_t snippet_len;
    CURLcode rc;
    long status;
    long duration_ms;
} delivery_t;

static size_t keep_snippet(char *data, size_t size, size_t nmemb, void *userdata)
{
    delivery_t *d = userdata;
    apr_size_t n = size * nmemb, room = SNIPPET - d->snippet_len;

    if (room > 0) {
        memcpy(d->snippet + d->snippet_len, data, n < room ? n : room);
        d->snippet_len += n < room ? n : room;
        d->snippet[d->snippet_len] = '\0';
    }
    return size * nmemb;
}

static void reset_state(void)
{
    int i;

    for (i = 0; i < WEBHOOK_BATCH; ++i) {
        if (wh_easy[i]) {
            curl_easy_cleanup(wh_easy[i]);
            wh_easy[i] = NULL;
        }
    }
    if (wh_multi) {
        curl_multi_cleanup(wh_multi);
        wh_multi = NULL;
    }
}

/* Takes a transfer out of the multi handle and frees what prepare() allocated. */
static void release(delivery_t *d)
{
    curl_multi_remove_handle(wh_multi, d->h);
    curl_easy_setopt(d->h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(d->h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(d->headers);
    d->headers = NULL;
    d->h = NULL;
}

/* The answer's first bytes, printable, for last_error. */
static const char *snippet_text(apr_pool_t *p, const delivery_t *d)
{
    char *s = apr_pstrmemdup(p, d->snippet, d->snippet_len), *c;

    for (c = s; *c; ++c) {
        if ((unsigned char)*c < 0x20) {
            *c = ' ';
        }
    }
    return s;
}

/* Claims row id and sets up its request; 0 if it was not ours to send (or is broken, in
 * which case it was failed here). */
static int prepare(ospab_db_t *db, apr_pool_t *p, const agent_conf_t *c, apr_time_t now,
                   const char *id, delivery_t *d, CURL *h)
{
    const char *lease = ospab_time_db(p, now + apr_time_from_msec(c->webhook_timeout_ms)
                                         + LEASE_MARGIN);
    const char *args[4] = { lease, id, ospab_time_db(p, now),
                            apr_itoa(p, c->webhook_max_attempts) };
    const char *body, *sig;
    ospab_row_t row = NULL;
    webhook_row_t w;
    json_t *payload;
    int n = 0;

    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        return 0;
    }
    if (ospab_db_exec(db, p, "ospab_webhook_claim", 4, args, &n) != APR_SUCCESS || n != 1
        || ospab_db_select_one(db, p, "ospab_webhook_get", 1, &id, &row) != APR_SUCCESS
        || !row) {
        ospab_db_end(db, 0);
        return 0;
    }
    if (ospab_db_end(db, 1) != APR_SUCCESS) {
        return 0;
    }
    webhook_from_row(row, &w);
    memset(d, 0, sizeof(*d));
    d->h = h;
    d->id = id;
    d->lease = lease;
    d->attempt = w.attempts;
    d->rc = CURLE_ABORTED_BY_CALLBACK;  /* until curl says the transfer is done */
    apr_cpystrn(d->errbuf, "the transfer did not finish", sizeof(d->errbuf));
    payload = ospab_json_own(p, ospab_event_payload(w.id, w.payload));
    if (!payload || !(body = ospab_json_dump(p, payload)) || strpbrk(w.event, "\r\n")) {
        const char *f[4] = { NULL, "the stored event cannot be sent", id, lease };

        if (ospab_db_begin(db, p) == APR_SUCCESS) {
            ospab_db_exec(db, p, "ospab_webhook_fail", 4, f, NULL);
            ospab_db_end(db, 1);
        }
        AGENT_ERROR("webhook %s: the stored event cannot be sent", id);
        return 0;
    }
    sig = ospab_webhook_signature(p, c->webhook_secret, now, body, strlen(body));
    d->headers = curl_slist_append(d->headers, "Content-Type: application/json");
    d->headers = curl_slist_append(d->headers, apr_pstrcat(p, "X-Ospab-Event: ", w.event, NULL));
    d->headers = curl_slist_append(d->headers, apr_pstrcat(p, "X-Ospab-Delivery: ", id, NULL));
    if (sig) {
        d->headers = curl_slist_append(d->headers,
                                       apr_pstrcat(p, "X-Ospab-Signature: ", sig, NULL));
    }
    d->headers = curl_slist_append(d->headers, "Expect:");

    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, c->webhook_url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, d->errbuf);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->webhook_ca) {
        curl_easy_setopt(h, CURLOPT_CAINFO, c->webhook_ca);
    }
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     c->webhook_timeout_ms < CONNECT_TIMEOUT_MS ? c->webhook_timeout_ms
                                                                : CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->webhook_timeout_ms);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "ospab-agent");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, d->headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep_snippet);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(h, CURLOPT_PRIVATE, d);
    return 1;
}

/* The module's tables nobody else prunes: refresh tokens past their expiry or revoked for
 * REVOKED_KEEP, Idempotency-Key records past idempotency_keep (never inside the 24 h in
 * which a retry replays them). Several agents may do it at once: a second DELETE finds
 * nothing. */
static void prune_logins(ospab_db_t *db, apr_pool_t *p, const agent_conf_t *c, apr_time_t now)
{
    const char *rt[2] = { ospab_time_db(p, now), ospab_time_db(p, now - REVOKED_KEEP) };
    const char *idem = ospab_time_db(p, now - c->idempotency_keep);
    int nrt = 0, nidem = 0;

    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        return;
    }
    if (ospab_db_exec(db, p, "ospab_rt_prune", 2, rt, &nrt) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_idem_prune", 1, &idem, &nidem) != APR_SUCCESS) {
        AGENT_WARN("webhooks: pruning logins and Idempotency-Keys: %s",
                   db->error ? db->error : "database error");
        ospab_db_end(db, 0);
        return;
    }
    ospab_db_end(db, 1);
    if (nrt > 0 || nidem > 0) {
        AGENT_INFO("webhooks: pruned %d expired or revoked refresh token(s) and %d old "
                   "Idempotency-Key record(s)", nrt, nidem);
    }
}

/* Records the outcome of one delivery with its webhook_deliveries row. */
static void finish(ospab_db_t *db, apr_pool_t *p, const agent_conf_t *c, delivery_t *d)
{
    apr_time_t now = apr_time_now();
    const char *nowdb = ospab_time_db(p, now);
    const char *status = d->status ? apr_ltoa(p, d->status) : NULL;
    const char *err = NULL, *label, *args[5], *log[6];
    int nargs, n = 0, tries;

    if (d->rc != CURLE_OK) {
        err = apr_pstrdup(p, d->errbuf[0] ? d->errbuf : curl_easy_strerror(d->rc));
    }
    else if (d->status < 200 || d->status > 299) {
        err = apr_psprintf(p, "HTTP %ld: %s", d->status, snippet_text(p, d));
    }
    if (!err) {
        label = "ospab_webhook_delivered";
        args[0] = nowdb;
        args[1] = status;
        args[2] = d->id;
        args[3] = d->lease;
        nargs = 4;
        AGENT_COUNT(webhook_delivered);
        AGENT_DEBUG("webhook %s: delivered (HTTP %ld, %ld ms)", d->id, d->status,
                    d->duration_ms);
    }
    else if ((d->rc == CURLE_OK && d->status >= 400 && d->status < 500 && d->status != 408
              && d->status != 429) || d->attempt >= c->webhook_max_attempts) {
        label = "ospab_webhook_fail";
        args[0] = status;
        args[1] = err;
        args[2] = d->id;
        args[3] = d->lease;
        nargs = 4;
        AGENT_WARN("webhook %s: failed for good after attempt %d: %s", d->id, d->attempt, err);
        AGENT_COUNT(webhook_failed);
    }
    else {
        apr_interval_time_t wait = ospab_outbox_backoff(c->webhook_retry_base, c->retry_max,
                                                        d->attempt);

        label = "ospab_webhook_retry";
        args[0] = ospab_time_db(p, now + wait);
        args[1] = status;
        args[2] = err;
        args[3] = d->id;
        args[4] = d->lease;
        nargs = 5;
        AGENT_COUNT(webhook_retried);
        AGENT_WARN("webhook %s: attempt %d failed, retry in %ds: %s", d->id, d->attempt,
                   (int)apr_time_sec(wait), err);
    }
    log[0] = d->id;
    log[1] = apr_itoa(p, d->attempt);
    log[2] = status;
    log[3] = err;
    log[4] = apr_ltoa(p, d->duration_ms);
    log[5] = nowdb;
    /* the outcome must be recorded, or the webhook goes again after its lease: tried again
     * after a write conflict (another node's event rows abort it on Galera) at once, after
     * any other failure a second later, as the mailer does */
    for (tries = 0;; ++tries) {
        if (ospab_db_begin(db, p) == APR_SUCCESS
            && ospab_db_exec(db, p, label, nargs, args, &n) == APR_SUCCESS
            && (n != 1 || ospab_db_exec(db, p, "ospab_webhook_log", 6, log, NULL)
                          == APR_SUCCESS)
            && ospab_db_end(db, 1) == APR_SUCCESS) {
            break;
        }
        if (db->trans) {
            ospab_db_end(db, 0);
        }
        if (tries + 1 >= RECORD_TRIES) {
            AGENT_ERROR("webhook %s: could not record the outcome (%s); it is sent again "
                        "after its lease", d->id, db->error ? db->error : "database error");
            return;
        }
        apr_sleep(db->conflict ? apr_time_from_msec(5 << tries) : apr_time_from_sec(1));
    }
    if (n != 1) {
        AGENT_WARN("webhook %s: its lease ran out before the outcome was recorded", d->id);
    }
}

static void housekeeping(ospab_db_t *db, apr_pool_t *p, const agent_conf_t *c, apr_time_t now)
{
    const char *args[3] = { "lease expired after the last attempt", ospab_time_db(p, now),
                            apr_itoa(p, c->webhook_max_attempts) };
    int n = 0, m = 0;

    if (ospab_db_begin(db, p) == APR_SUCCESS) {
        ospab_db_exec(db, p, "ospab_webhook_expire", 3, args, &n);
        if (!c->webhook_url) {
            const char *why = "no [webhook] url configured";

            ospab_db_exec(db, p, "ospab_webhook_skip", 1, &why, &m);
        }
        ospab_db_end(db, 1);
    }
    if (n > 0) {
        AGENT_WARN("webhooks: %d event(s) failed: lease expired after the last attempt", n);
    }
    if (m > 0) {
        AGENT_DEBUG("webhooks: %d event(s) skipped (no [webhook] url)", m);
    }
    if (now >= wh_next_prune && c->outbox_keep_days > 0) {
        const char *cut = ospab_time_db(p, now - apr_time_from_sec((apr_int64_t)86400
                                                                   * c->outbox_keep_days));

        n = 0;
        if (ospab_db_begin(db, p) == APR_SUCCESS) {
            ospab_db_exec(db, p, "ospab_webhook_prune_log", 1, &cut, NULL);
            ospab_db_exec(db, p, "ospab_webhook_prune", 1, &cut, &n);
            ospab_db_end(db, 1);
        }
        if (n > 0) {
            AGENT_INFO("webhooks: pruned %d delivered or skipped event(s) older than %d days",
                       n, c->outbox_keep_days);
        }
        prune_logins(db, p, c, now);
        wh_next_prune = now + PRUNE_EVERY;
    }
}

apr_interval_time_t agent_webhook_tick(agent_t *ag, ospab_db_t *db, apr_pool_t *p)
{
    const agent_conf_t *c = ag->conf;
    apr_time_t now = apr_time_now();
    apr_array_header_t *rows;
    delivery_t d[WEBHOOK_BATCH];
    const char *nowdb;
    int i, n = 0, running = 1, left;
    CURLMsg *msg;

    if (c != wh_conf) {
        reset_state();               /* a reload: maybe another URL, CA or secret */
        wh_conf = c;
        wh_next_prune = 0;
    }
    housekeeping(db, p, c, now);
    agent_metrics_queue(db, p, "ospab_webhook_queued", &agent_metrics.webhook_queued,
                        &agent_metrics.webhook_queue_known);
    if (!c->webhook_url || !c->webhook_secret) {
        return c->webhook_interval;
    }
    if (!wh_multi && !(wh_multi = curl_multi_init())) {
        AGENT_ERROR("webhooks: curl_multi_init failed");
        return c->webhook_interval;
    }
    nowdb = ospab_time_db(p, now);
    if (ospab_db_select(db, p, "ospab_webhook_due", 1, &nowdb, &rows, NULL) != APR_SUCCESS) {
        AGENT_WARN("webhooks: %s", db->error ? db->error : "database error");
        return c->webhook_interval;
    }
    for (i = 0; i < rows->nelts && i < WEBHOOK_BATCH; ++i) {
        if (!wh_easy[n] && !(wh_easy[n] = curl_easy_init())) {
            break;
        }
        if (prepare(db, p, c, now, due_id_from_row(APR_ARRAY_IDX(rows, i, ospab_row_t)), &d[n],
                    wh_easy[n])) {
            curl_multi_add_handle(wh_multi, wh_easy[n]);
            ++n;
        }
    }
    /* every transfer ends by its own CURLOPT_TIMEOUT_MS at the latest; each outcome is
     * recorded as soon as its transfer ends, which keeps the window between a 2xx and its
     * record as short as one transaction */
    while (n > 0 && running) {
        if (curl_multi_perform(wh_multi, &running) != CURLM_OK) {
            break;
        }
        while ((msg = curl_multi_info_read(wh_multi, &left)) != NULL) {
            delivery_t *dd = NULL;
            CURL *h = msg->easy_handle;
            curl_off_t us = 0;

            if (msg->msg != CURLMSG_DONE) {
                continue;
            }
            curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&dd);
            dd->rc = msg->data.result;
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &dd->status);
            curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &us);
            dd->duration_ms = (long)(us / 1000);
            release(dd);            /* msg is gone after this */
            finish(db, p, c, dd);
        }
        if (running) {
            curl_multi_poll(wh_multi, NULL, 0, 1000, NULL);
        }
    }
    for (i = 0; i < n; ++i) {
        if (d[i].h) {               /* the multi handle failed: counts as a failed attempt */
            release(&d[i]);
            finish(db, p, c, &d[i]);
        }
    }
    return rows->nelts == WEBHOOK_BATCH ? 0 : c->webhook_interval;
}
