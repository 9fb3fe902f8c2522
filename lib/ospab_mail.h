/* ospab core: e-mail: the templates, queueing into the email_outbox table, and the RFC 5322
 * message. The module queues (POST /api/notify, server created, root password changed), the
 * agent's monitor queues alerts, and the agent's mailer sends (monitor-agent/agent_mail.c,
 * docs/agent.md).
 *
 * A queued e-mail is a row of email_outbox holding the rendered subject and text, so a
 * template change never alters a message already queued. Everything that ends up in a
 * header is checked at queue time: no CR, LF or other control characters, addresses in a
 * conservative ASCII form. */
#ifndef OSPAB_MAIL_H
#define OSPAB_MAIL_H

#include <apr_pools.h>
#include <apr_time.h>
#include <jansson.h>

#include "ospab_db.h"
#include "ospab_result.h"

#define OSPAB_MAIL_SUBJECT_MAX 200      /* characters */
#define OSPAB_MAIL_TEXT_MAX    50000    /* characters */
#define OSPAB_MAIL_KEY_MAX     120      /* bytes of a caller's dedupe key */

/* The templates: "server-created", "alert", "password-reset", "root-password",
 * "payment-reminder", "ticket-reply", "raw". */
int ospab_mail_template_known(const char *name);

/* vars with "name" set to name unless the caller gave one (a new reference). */
json_t *ospab_mail_vars_with_name(json_t *vars, const char *name);

/* 1 if addr is an address we send to: local@domain in ASCII, no spaces, quotes, angle
 * brackets or control characters, at most 254 bytes (no IDN, no SMTPUTF8). */
int ospab_mail_addr_ok(const char *addr);

/* Renders template tmpl with vars (an object, borrowed; "name" greets the recipient).
 * Returns NULL on success with *subject and *text set, or a new object of per-field
 * messages ({"data.serverName": "is required"}) naming what is wrong. */
json_t *ospab_mail_render(apr_pool_t *p, const char *tmpl, json_t *vars,
                          const char **subject, const char **text);

/* Queues one e-mail. dedupe_key (may be NULL) makes a second call with the same key a
 * no-op: *id is then the first row's id and *duplicate is 1. Runs in the caller's
 * transaction when one is open, else in its own. APR_EINVAL with *why for a bad address,
 * subject or text; another status is a database failure (*why says which). */
apr_status_t ospab_mail_insert(ospab_db_t *db, apr_pool_t *p, apr_time_t now, const char *to,
                               const char *tmpl, const char *subject, const char *text,
                               const char *dedupe_key, const char **id, int *duplicate,
                               const char **why);

/* Renders and queues (see above); APR_EINVAL when the vars do not fit the template. */
apr_status_t ospab_mail_queue(ospab_db_t *db, apr_pool_t *p, apr_time_t now, const char *to,
                              const char *tmpl, json_t *vars, const char *dedupe_key,
                              const char **why);
/* The same to a panel user's address; "name" defaults to the user's name.
 * APR_NOTFOUND when there is no such user. */
apr_status_t ospab_mail_queue_user(ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                                   const char *user_id, const char *tmpl, json_t *vars,
                                   const char *dedupe_key, const char **why);

/* "server-created" to the owner of server vps_id, with its name, IP address, OS and tariff
 * (never the root password); queued once per server. */
apr_status_t ospab_mail_server_created(ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                                       const char *vps_id, const char **why);

/* ---- what the agent's mailer needs -------------------------------------------------- */

/* "<outbox-ID.HEX@ospab>": derived from the row (id, created_at, to_addr), so every attempt
 * of a message carries the same Message-ID and two databases do not produce the same. */
const char *ospab_mail_message_id(apr_pool_t *p, const char *id, const char *created_at,
                                  const char *to);
/* The address inside a From value ("ospab panel <noreply@example.com>" -> the address);
 * NULL when there is none that ospab_mail_addr_ok accepts. */
const char *ospab_mail_from_addr(apr_pool_t *p, const char *from);
/* The whole message, CRLF line ends: Date, From, To, Subject (RFC 2047 when not ASCII),
 * Message-ID, MIME-Version, Content-Type text/plain; charset=utf-8, base64 body. */
const char *ospab_mail_message(apr_pool_t *p, const char *from, const char *to,
                               const char *subject, const char *text, const char *message_id,
                               apr_time_t date);
#endif
