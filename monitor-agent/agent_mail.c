/* ospab-agent: the mailer. Sends email_outbox over SMTP with libcurl (docs/agent.md,
 * "E-mail").
 *
 * One message at a time, each in three steps:
 *   1. claim   (transaction) pending -> sending, attempts + 1, next_attempt_at = the end of
 *              a lease long enough for one SMTP exchange; the lease value is the claim;
 *   2. send    the whole SMTP exchange, no transaction open;
 *   3. record  (transaction) sent / pending again with a backoff / failed, only if the row
 *              still carries our lease.
 * A mailer killed between 1 and 3 leaves the row in 'sending'; once the lease has run out
 * the row is due again and is sent once more with the same Message-ID. So no message is
 * lost, and a message is sent twice only when the kill (or a database failure) falls
 * between the server's final 250 and step 3: SMTP has no exactly-once delivery. */
#include <stddef.h>
#include <string.h>
#include <stdlib.h>

#include <curl/curl.h>
#include <apr_strings.h>

#include "agent_mail.h"
#include "ospab_mail.h"
#include "ospab_outbox.h"
#include "ospab_util.h"
#include "agent_metrics.h"

#define MAIL_BATCH 20                           /* LIMIT of ospab_mail_due */
#define LEASE_MARGIN apr_time_from_sec(10)      /* beyond the SMTP timeout */
#define PRUNE_EVERY apr_time_from_sec(3600)
#define CONNECT_TIMEOUT_MS 10000L
#define RECORD_TRIES 3

/* this file's state: only the mailer thread runs it */
static const agent_conf_t *mail_conf;  /* the config mail_curl was set up for */
static CURL *mail_curl;                /* kept across ticks: its SMTP connection is reused */
static apr_time_t mail_next_prune;
static int mail_from_warned;

/* A row of ospab_mail_get: one queued e-mail, rendered when it was queued. */
typedef struct {
    const char *id;
    const char *to;                 /* to_addr */
    const char *subject, *body;     /* body_text */
    const char *attempts_text;
    const char *created_at;         /* the Date: and Message-ID are made from it */
    int attempts;                   /* with the one just claimed */
} mail_row_t;

/* id, to_addr, subject, body_text, attempts, created_at */
static const apr_size_t mail_cols[] = {
    offsetof(mail_row_t, id), offsetof(mail_row_t, to), offsetof(mail_row_t, subject),
    offsetof(mail_row_t, body), offsetof(mail_row_t, attempts_text),
    offsetof(mail_row_t, created_at)
};
static const ospab_row_shape_t mail_shape = OSPAB_ROW_SHAPE(mail_cols, mail_row_t,
                                                            OSPAB_ROW_NO_RAW);

static void mail_from_row(ospab_row_t r, mail_row_t *m)
{
    ospab_row_fill(&mail_shape, r, m);
    m->attempts = m->attempts_text ? atoi(m->attempts_text) : 0;
}

/* The one column of ospab_mail_due: the id of a row due now. */
static const char *due_id_from_row(ospab_row_t r)
{
    return r[0];
}

typedef struct {
    const char *data;
    apr_size_t len, pos;
} upload_t;

static size_t upload_read(char *buf, size_t size, size_t nitems, void *userdata)
{
    upload_t *u = userdata;
    apr_size_t n = size * nitems;

    if (n > u->len - u->pos) {
        n = u->len - u->pos;
    }
    memcpy(buf, u->data + u->pos, n);
    u->pos += n;
    return n;
}

typedef enum { MAIL_SENT, MAIL_RETRY, MAIL_FAILED } mail_outcome_e;

/* One SMTP exchange. A 5xx reply to the envelope or the data is permanent (RFC 5321);
 * everything else (no connection, timeouts, 4xx, TLS or login trouble including the 5xx
 * of AUTH, which a config change can fix) is worth another attempt. */
static mail_outcome_e smtp_send(const agent_conf_t *c, apr_pool_t *p, const char *from_addr,
                                const char *to, const char *msg, const char **err)
{
    CURL *h = mail_curl;
    struct curl_slist *rcpt;
    char errbuf[CURL_ERROR_SIZE];
    upload_t up = { msg, strlen(msg), 0 };
    long code = 0;
    CURLcode rc;

    curl_easy_reset(h);             /* keeps the connection */
    errbuf[0] = '\0';
    rcpt = curl_slist_append(NULL, apr_psprintf(p, "<%s>", to));
    curl_easy_setopt(h, CURLOPT_URL, c->smtp_url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    /* credentials go out only over TLS unless the config says otherwise in so many words
     * (agent_conf.c refuses starttls = off with a user unless allow_plaintext_auth) */
    curl_easy_setopt(h, CURLOPT_USE_SSL,
                     (long)(c->smtp_starttls || (c->smtp_user && !c->smtp_allow_plaintext_auth)
                            ? CURLUSESSL_ALL : CURLUSESSL_TRY));
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->smtp_ca) {
        curl_easy_setopt(h, CURLOPT_CAINFO, c->smtp_ca);
    }
    if (c->smtp_user) {
        curl_easy_setopt(h, CURLOPT_USERNAME, c->smtp_user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, c->smtp_password ? c->smtp_password : "");
    }
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     c->smtp_timeout_ms < CONNECT_TIMEOUT_MS ? c->smtp_timeout_ms
                                                             : CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->smtp_timeout_ms);
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, apr_psprintf(p, "<%s>", from_addr));
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, upload_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &up);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)up.len);
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(rcpt);
    if (rc == CURLE_OK) {
        return MAIL_SENT;
    }
    *err = code ? apr_psprintf(p, "%s (SMTP %ld)", errbuf[0] ? errbuf : curl_easy_strerror(rc),
                               code)
                : apr_pstrdup(p, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    if (rc == CURLE_USE_SSL_FAILED && !strncmp(c->smtp_url, "smtp://", 7)) {
        /* what an operator must know: nothing went out, the password least of all */
        *err = apr_psprintf(p, "the server offers no STARTTLS, so nothing was sent%s: %s",
                            c->smtp_user ? " (the login is not sent without TLS)" : "", *err);
    }
    /* 530/534/535/538 are about our login (RFC 4954), not the message */
    if (code >= 500 && code < 600 && rc != CURLE_LOGIN_DENIED && rc != CURLE_USE_SSL_FAILED
        && code != 530 && code != 534 && code != 535 && code != 538) {
        return MAIL_FAILED;
    }
    return MAIL_RETRY;
}

/* Step 3; retried a little: a row left in 'sending' after a real 250 would be sent again. */
static void record(ospab_db_t *db, apr_pool_t *p, const char *label, int nargs,
                   const char **args, const char *id)
{
    int i, n = 0;

    for (i = 0; i < RECORD_TRIES; ++i) {
        if (ospab_db_begin(db, p) == APR_SUCCESS
            && ospab_db_exec(db, p, label, nargs, args, &n) == APR_SUCCESS
            && ospab_db_end(db, 1) == APR_SUCCESS) {
            if (n != 1) {
                AGENT_WARN("mail %s: its lease ran out before the outcome was recorded", id);
            }
            return;
        }
        if (db->trans) {
            ospab_db_end(db, 0);
        }
        /* a write conflict (Galera: another node's rows) goes again at once */
        apr_sleep(db->conflict ? apr_time_from_msec(5 << i) : apr_time_from_sec(1));
    }
    AGENT_ERROR("mail %s: could not record the outcome (%s); it is sent again after its "
                "lease", id, db->error ? db->error : "database error");
}

/* Claims, sends and records one row; 0 if the row was not ours to send. */
static int send_one(ospab_db_t *db, apr_pool_t *p, const agent_conf_t *c,
                    const char *from_addr, const char *id)
{
    apr_time_t now = apr_time_now(), date;
    const char *lease = ospab_time_db(p, now + apr_time_from_msec(c->smtp_timeout_ms)
                                         + LEASE_MARGIN);
    const char *args[4], *msg, *mid, *err = NULL;
    ospab_row_t row = NULL;
    mail_row_t mail;
    mail_outcome_e outcome;
    int n = 0;

    args[0] = lease;
    args[1] = id;
    args[2] = ospab_time_db(p, now);
    args[3] = apr_itoa(p, c->mail_max_attempts);
    if (ospab_db_begin(db, p) != APR_SUCCESS) {
        AGENT_WARN("mailer: %s", db->error ? db->error : "database error");
        return 0;
    }
    if (ospab_db_exec(db, p, "ospab_mail_claim", 4, args, &n) != APR_SUCCESS || n != 1
        || ospab_db_select_one(db, p, "ospab_mail_get", 1, &id, &row) != APR_SUCCESS || !row) {
        ospab_db_end(db, 0);
        return 0;
    }
    if (ospab_db_end(db, 1) != APR_SUCCESS) {
        return 0;
    }
    mail_from_row(row, &mail);
    mid = ospab_mail_message_id(p, mail.id, mail.created_at, mail.to);
    date = ospab_time_parse_db(mail.created_at);
    msg = ospab_mail_message(p, c->smtp_from, mail.to, mail.subject, mail.body, mid,
                             date ? date : now);
    if (!msg) {
        outcome = MAIL_FAILED;
        err = "the message could not be built";
    }
    else {
        outcome = smtp_send(c, p, from_addr, mail.to, msg, &err);
    }
    now = apr_time_now();
    if (outcome == MAIL_SENT) {
        const char *a[3] = { ospab_time_db(p, now), id, lease };

        AGENT_INFO("mail %s %s: sent (attempt %d)", id, mid, mail.attempts);
        AGENT_COUNT(mail_sent);
        record(db, p, "ospab_mail_sent", 3, a, id);
    }
    else if (outcome == MAIL_FAILED || mail.attempts >= c->mail_max_attempts) {
        const char *a[3] = { err, id, lease };

        AGENT_WARN("mail %s: failed for good after attempt %d: %s", id, mail.attempts, err);
        AGENT_COUNT(mail_failed);
        record(db, p, "ospab_mail_fail", 3, a, id);
    }
    else {
        apr_interval_time_t wait = ospab_outbox_backoff(c->mail_retry_base, c->retry_max,
                                                        mail.attempts);
        const char *a[4] = { ospab_time_db(p, now + wait), err, id, lease };

        AGENT_COUNT(mail_retried);
        AGENT_WARN("mail %s: attempt %d failed, retry in %ds: %s", id, mail.attempts,
                   (int)apr_time_sec(wait), err);
        record(db, p, "ospab_mail_retry", 4, a, id);
    }
    return 1;
}

/* Rows left in 'sending' by a dead sender after their last attempt; sent rows past the
 * retention period. */
static void housekeeping(ospab_db_t *db, apr_pool_t *p, const agent_conf_t *c, apr_time_t now)
{
    const char *args[3] = { "lease expired after the last attempt", ospab_time_db(p, now),
                            apr_itoa(p, c->mail_max_attempts) };
    int n = 0;

    if (ospab_db_begin(db, p) == APR_SUCCESS) {
        ospab_db_exec(db, p, "ospab_mail_expire", 3, args, &n);
        ospab_db_end(db, 1);
    }
    if (n > 0) {
        AGENT_WARN("mailer: %d e-mail(s) failed: lease expired after the last attempt", n);
    }
    if (now >= mail_next_prune && c->outbox_keep_days > 0) {
        const char *cut = ospab_time_db(p, now - apr_time_from_sec((apr_int64_t)86400
                                                                   * c->outbox_keep_days));

        n = 0;
        if (ospab_db_begin(db, p) == APR_SUCCESS) {
            ospab_db_exec(db, p, "ospab_mail_prune", 1, &cut, &n);
            ospab_db_end(db, 1);
        }
        if (n > 0) {
            AGENT_INFO("mailer: pruned %d sent e-mail(s) older than %d days", n,
                       c->outbox_keep_days);
        }
        mail_next_prune = now + PRUNE_EVERY;
    }
}

apr_interval_time_t agent_mail_tick(agent_t *ag, ospab_db_t *db, apr_pool_t *p)
{
    const agent_conf_t *c = ag->conf;
    apr_time_t now = apr_time_now();
    apr_array_header_t *rows;
    const char *from_addr, *nowdb;
    int i;

    if (c != mail_conf) {
        /* a reload: new server, credentials or CA; start over without old connections */
        if (mail_curl) {
            curl_easy_cleanup(mail_curl);
            mail_curl = NULL;
        }
        mail_conf = c;
        mail_from_warned = 0;
        mail_next_prune = 0;
    }
    agent_metrics_queue(db, p, "ospab_mail_queued", &agent_metrics.mail_queued,
                        &agent_metrics.mail_queue_known);
    if (!c->smtp_url) {
        return c->mail_interval;     /* no [smtp] url: e-mails stay queued */
    }
    if (!(from_addr = ospab_mail_from_addr(p, c->smtp_from))) {
        if (!mail_from_warned++) {
            AGENT_ERROR("mailer: [smtp] from has no usable address; nothing is sent");
        }
        return apr_time_from_sec(60);
    }
    if (!mail_curl && !(mail_curl = curl_easy_init())) {
        AGENT_ERROR("mailer: curl_easy_init failed");
        return c->mail_interval;
    }
    housekeeping(db, p, c, now);
    nowdb = ospab_time_db(p, now);
    if (ospab_db_select(db, p, "ospab_mail_due", 1, &nowdb, &rows, NULL) != APR_SUCCESS) {
        AGENT_WARN("mailer: %s", db->error ? db->error : "database error");
        return c->mail_interval;
    }
    for (i = 0; i < rows->nelts && !ag->stopping; ++i) {
        send_one(db, p, c, from_addr, due_id_from_row(APR_ARRAY_IDX(rows, i, ospab_row_t)));
    }
    return rows->nelts == MAIL_BATCH ? 0 : c->mail_interval;
}
