/* ospab core: e-mail: the templates, the checks of what goes into a message, and queueing
 * into email_outbox (see ospab_mail.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include <apr_strings.h>
#include <apr_lib.h>

#include "ospab_mail.h"
#include "ospab_user.h"
#include "ospab_customer.h"
#include "ospab_json.h"
#include "ospab_util.h"

#define NAME_MAX_CHARS 100
#define LINE_MAX_CHARS 200
#define URL_MAX_BYTES  2000
#define MESSAGE_MAX_CHARS 20000

static const char *const templates[] = {
    "server-created", "alert", "password-reset", "root-password", "payment-reminder",
    "ticket-reply", "raw", NULL
};

int ospab_mail_template_known(const char *name)
{
    int i;

    for (i = 0; name && templates[i]; ++i) {
        if (!strcmp(name, templates[i])) {
            return 1;
        }
    }
    return 0;
}

/* ---- checks ------------------------------------------------------------------------------ */

int ospab_mail_addr_ok(const char *addr)
{
    static const char atext[] = "!#$%&'*+-/=?^_`{|}~.";
    const char *at, *s;
    apr_size_t len;

    if (!addr || (len = strlen(addr)) < 3 || len > 254 || !(at = strchr(addr, '@'))
        || strchr(at + 1, '@') || at == addr || at - addr > 64 || !at[1]) {
        return 0;
    }
    if (addr[0] == '.' || at[-1] == '.' || strstr(addr, "..")) {
        return 0;
    }
    for (s = addr; s < at; ++s) {
        if (!apr_isalnum(*s) && !strchr(atext, *s)) {
            return 0;
        }
    }
    /* domain: letters, digits, '-' and '.', labels not empty and not starting with '-' */
    for (s = at + 1; *s; ++s) {
        if (*s == '.') {
            if (s[-1] == '.' || s[-1] == '@' || !s[1]) {
                return 0;
            }
        }
        else if (*s == '-') {
            if (s[-1] == '.' || s[-1] == '@') {
                return 0;
            }
        }
        else if (!apr_isalnum(*s)) {
            return 0;
        }
    }
    return 1;
}

/* Multi-line text: UTF-8 without control characters other than LF and TAB, min..max
 * characters (CR LF was made LF before). */
static int text_ok(apr_pool_t *p, const char *s, apr_size_t min_chars, apr_size_t max_chars)
{
    apr_size_t chars = 0;
    const unsigned char *u;
    char *line, *copy, *next;

    if (!s) {
        return 0;
    }
    for (u = (const unsigned char *)s; *u; ++u) {
        chars += (*u & 0xc0) != 0x80;
    }
    if (chars < min_chars || chars > max_chars) {
        return 0;
    }
    /* each line, tabs made spaces, must pass the one-line check */
    copy = apr_pstrdup(p, s);
    for (next = copy; *next; ++next) {
        if (*next == '\t') {
            *next = ' ';
        }
    }
    for (line = copy; line; line = next) {
        if ((next = strchr(line, '\n')) != NULL) {
            *next++ = '\0';
        }
        if (*line && !ospab_text_ok(line, 1, max_chars)) {
            return 0;
        }
    }
    return 1;
}

/* CR LF -> LF, so stored texts have one kind of line end. */
static const char *unix_lines(apr_pool_t *p, const char *s)
{
    char *out = apr_pstrdup(p, s), *w = out;
    const char *r;

    for (r = s; *r; ++r) {
        if (r[0] == '\r' && r[1] == '\n') {
            continue;
        }
        *w++ = *r;
    }
    *w = '\0';
    return out;
}

/* ---- templates --------------------------------------------------------------------------- */

typedef struct {
    apr_pool_t *p;
    json_t *vars;
    json_t *errors;
} tvars_t;

static void var_error(tvars_t *t, const char *key, const char *msg)
{
    const char *field = apr_pstrcat(t->p, "data.", key, NULL);

    if (!json_object_get(t->errors, field)) {
        json_object_set_new(t->errors, field, json_string(msg));
    }
}

/* The value of key, or NULL when it is absent or null (an error when required). */
static json_t *var_get(tvars_t *t, const char *key, int required)
{
    json_t *v = json_object_get(t->vars, key);

    if (!v || json_is_null(v)) {
        if (required) {
            var_error(t, key, "is required");
        }
        return NULL;
    }
    return v;
}

/* A real as people read it in a mail: at most two decimals without trailing zeros (97.5,
 * 97), a short exponent form from 1e15 on (%.2f wrote 1e308 as 309 digits), a minus sign
 * only when something non-zero is left after rounding. NULL for what is not finite. */
static const char *number_text(apr_pool_t *p, double d)
{
    char buf[64], *e;

    if (!isfinite(d)) {
        return NULL;
    }
    if (fabs(d) >= 1e15) {
        snprintf(buf, sizeof(buf), "%.3g", d);
        return apr_pstrdup(p, buf);
    }
    if (fabs(d) < 0.005) {
        return "0";                 /* also -0 and what rounds to it */
    }
    snprintf(buf, sizeof(buf), "%.2f", d);
    e = buf + strlen(buf) - 1;      /* 97.50 -> 97.5, 97.00 -> 97 */
    while (*e == '0') {
        *e-- = '\0';
    }
    if (*e == '.') {
        *e = '\0';
    }
    return apr_pstrdup(p, buf);
}

/* A value for one line of text: a string or a number; NULL when absent or wrong. */
static const char *var_line(tvars_t *t, const char *key, int required, apr_size_t max)
{
    json_t *v = var_get(t, key, required);
    const char *s;

    if (!v) {
        return NULL;
    }
    if (json_is_integer(v)) {
        return apr_psprintf(t->p, "%" APR_INT64_T_FMT, (apr_int64_t)json_integer_value(v));
    }
    if (json_is_real(v)) {
        if (!(s = number_text(t->p, json_real_value(v)))) {
            var_error(t, key, "must be a finite number");
        }
        return s;
    }
    if (!json_is_string(v)) {
        var_error(t, key, "must be a string or a number");
        return NULL;
    }
    s = json_string_value(v);
    if (!ospab_text_ok(s, 1, max)) {
        var_error(t, key, apr_psprintf(t->p, "must be 1 to %" APR_SIZE_T_FMT " characters on "
                                       "one line, without control characters", max));
        return NULL;
    }
    return s;
}

static const char *var_text(tvars_t *t, const char *key, int required, apr_size_t max)
{
    json_t *v = var_get(t, key, required);
    const char *s;

    if (!v) {
        return NULL;
    }
    if (!json_is_string(v) || !text_ok(t->p, s = unix_lines(t->p, json_string_value(v)), 1, max)) {
        var_error(t, key, apr_psprintf(t->p, "must be a text of 1 to %" APR_SIZE_T_FMT
                                       " characters without control characters", max));
        return NULL;
    }
    return s;
}

static const char *var_url(tvars_t *t, const char *key, int required)
{
    const char *s = var_line(t, key, required, URL_MAX_BYTES), *c;

    if (!s) {
        return NULL;
    }
    if (strncmp(s, "https://", 8) && strncmp(s, "http://", 7)) {
        var_error(t, key, "must be an http:// or https:// URL");
        return NULL;
    }
    for (c = s; *c; ++c) {
        if (*c == ' ' || (unsigned char)*c > 0x7e) {
            var_error(t, key, "must be a URL without spaces or non-ASCII characters");
            return NULL;
        }
    }
    return s;
}

/* "«web-1»", or "#12" for a server known only by its id */
static const char *server_label(tvars_t *t, int required)
{
    const char *name = var_line(t, "serverName", 0, NAME_MAX_CHARS);
    const char *id = var_line(t, "serverId", 0, 20);

    if (name) {
        return apr_psprintf(t->p, "«%s»", name);
    }
    if (id) {
        return apr_psprintf(t->p, "#%s", id);
    }
    if (required) {
        var_error(t, "serverName", "serverName or serverId is required");
    }
    return NULL;
}

static const char *greeting(tvars_t *t)
{
    const char *name = var_line(t, "name", 0, NAME_MAX_CHARS);

    return name ? apr_psprintf(t->p, "Здравствуйте, %s!\n\n", name) : "Здравствуйте!\n\n";
}

#define FOOTER "\n-- \nospab panel\n" \
               "Это письмо отправлено автоматически, отвечать на него не нужно.\n"

static void render_server_created(tvars_t *t, const char **subject, const char **text)
{
    const char *server = server_label(t, 1);
    const char *ip = var_line(t, "ipAddress", 0, 64);
    const char *os = var_line(t, "os", 0, LINE_MAX_CHARS);
    const char *tariff = var_line(t, "tariff", 0, LINE_MAX_CHARS);

    *subject = apr_psprintf(t->p, "Сервер %s создан", server);
    *text = apr_pstrcat(t->p, greeting(t),
                        "Ваш сервер ", server, " создан и запущен.\n\n",
                        "IP-адрес: ", ip ? ip : "будет назначен при запуске", "\n",
                        os ? "Операционная система: " : "", os ? os : "", os ? "\n" : "",
                        tariff ? "Тариф: " : "", tariff ? tariff : "", tariff ? "\n" : "",
                        "\nПароль root показывается один раз при заказе и в письмах не "
                        "отправляется. Если вы его не сохранили, задайте новый в панели "
                        "управления.\n", FOOTER, NULL);
}

static void render_alert(tvars_t *t, const char **subject, const char **text)
{
    const char *server = server_label(t, 1);
    const char *type = var_line(t, "type", 1, 32);
    const char *value = var_line(t, "value", 1, 32);
    const char *level = var_line(t, "level", 0, 32);
    const char *message = var_text(t, "message", 0, 2000);
    const char *what = type, *lvl;

    if (type && !strcmp(type, "cpu")) {
        what = "загрузка процессора";
    }
    else if (type && !strcmp(type, "memory")) {
        what = "использование памяти";
    }
    else if (type && !strcmp(type, "disk")) {
        what = "заполнение диска";
    }
    lvl = !level || !strcmp(level, "warning") ? "предупреждение"
          : !strcmp(level, "critical") ? "критично" : level;
    /* a percentage when the value is a number (or a string of digits) */
    if (value && (json_is_number(json_object_get(t->vars, "value"))
                  || strspn(value, "0123456789.") == strlen(value))) {
        value = apr_pstrcat(t->p, value, "%", NULL);
    }
    *subject = apr_psprintf(t->p, "[%s] Сервер %s: %s %s", lvl, server, what, value);
    *text = apr_pstrcat(t->p, greeting(t),
                        "Сервер ", server, ": ", what, " — ", value, ".\n\n",
                        "Уровень: ", lvl, "\n",
                        message ? "\n" : "", message ? message : "", message ? "\n" : "",
                        "\nГрафики и подробности — в панели управления.\n", FOOTER, NULL);
}

static void render_password_reset(tvars_t *t, const char **subject, const char **text)
{
    const char *url = var_url(t, "resetUrl", 1);
    const char *minutes = var_line(t, "expiresInMinutes", 0, 10);

    *subject = "Восстановление пароля ospab panel";
    *text = apr_pstrcat(t->p, greeting(t),
                        "Для вашей учётной записи запрошен сброс пароля.\n\n"
                        "Чтобы задать новый пароль, откройте ссылку:\n", url, "\n\n",
                        minutes ? "Ссылка действует " : "", minutes ? minutes : "",
                        minutes ? " мин.\n\n" : "",
                        "Если вы не запрашивали сброс, ничего не делайте: пароль останется "
                        "прежним.\n", FOOTER, NULL);
}

static void render_root_password(tvars_t *t, const char **subject, const char **text)
{
    const char *server = server_label(t, 1);

    *subject = apr_psprintf(t->p, "Пароль root сервера %s изменён", server);
    *text = apr_pstrcat(t->p, greeting(t),
                        "Пароль root на сервере ", server, " изменён через панель "
                        "управления.\n\n"
                        "Новый пароль показан только в панели и в письмах не отправляется. "
                        "Если это сделали не вы, смените пароль своей учётной записи и задайте "
                        "новый пароль root.\n", FOOTER, NULL);
}

static void render_payment_reminder(tvars_t *t, const char **subject, const char **text)
{
    const char *amount = var_line(t, "amount", 1, 32);
    const char *currency = var_line(t, "currency", 0, 16);
    const char *due = var_line(t, "dueDate", 0, 64);
    const char *server = server_label(t, 0);
    const char *url = var_url(t, "payUrl", 0);

    *subject = server ? apr_psprintf(t->p, "Напоминание об оплате сервера %s", server)
                      : "Напоминание об оплате";
    *text = apr_pstrcat(t->p, greeting(t),
                        "Напоминаем об оплате", server ? " сервера " : "", server ? server : "",
                        ": ", amount, " ", currency ? currency : "₽",
                        due ? " до " : "", due ? due : "", ".\n\n",
                        url ? "Оплатить: " : "", url ? url : "", url ? "\n\n" : "",
                        "Если вы уже оплатили, не обращайте внимания на это письмо.\n",
                        FOOTER, NULL);
}

static void render_ticket_reply(tvars_t *t, const char **subject, const char **text)
{
    const char *ticket = var_line(t, "ticketId", 1, 32);
    const char *topic = var_line(t, "ticketSubject", 0, 120);
    const char *message = var_text(t, "message", 1, MESSAGE_MAX_CHARS);
    const char *url = var_url(t, "ticketUrl", 0);

    *subject = apr_psprintf(t->p, "Ответ в обращении #%s%s%s", ticket, topic ? ": " : "",
                            topic ? topic : "");
    *text = apr_pstrcat(t->p, greeting(t),
                        "В обращении #", ticket, topic ? " «" : "", topic ? topic : "",
                        topic ? "»" : "", " появился ответ поддержки:\n\n", message, "\n\n",
                        url ? "Открыть обращение: " : "", url ? url : "", url ? "\n" : "",
                        FOOTER, NULL);
}

static void render_raw(tvars_t *t, const char **subject, const char **text)
{
    *subject = var_line(t, "subject", 1, OSPAB_MAIL_SUBJECT_MAX);
    *text = var_text(t, "text", 1, OSPAB_MAIL_TEXT_MAX);
}

json_t *ospab_mail_render(apr_pool_t *p, const char *tmpl, json_t *vars,
                          const char **subject, const char **text)
{
    tvars_t t;

    *subject = *text = NULL;
    t.p = p;
    t.vars = vars;
    t.errors = json_object();
    if (!json_is_object(vars)) {
        json_object_set_new(t.errors, "data", json_string("must be an object"));
        return t.errors;
    }
    if (!tmpl || !strcmp(tmpl, "raw")) {
        render_raw(&t, subject, text);
    }
    else if (!strcmp(tmpl, "server-created")) {
        render_server_created(&t, subject, text);
    }
    else if (!strcmp(tmpl, "alert")) {
        render_alert(&t, subject, text);
    }
    else if (!strcmp(tmpl, "password-reset")) {
        render_password_reset(&t, subject, text);
    }
    else if (!strcmp(tmpl, "root-password")) {
        render_root_password(&t, subject, text);
    }
    else if (!strcmp(tmpl, "payment-reminder")) {
        render_payment_reminder(&t, subject, text);
    }
    else if (!strcmp(tmpl, "ticket-reply")) {
        render_ticket_reply(&t, subject, text);
    }
    else {
        json_object_set_new(t.errors, "template", json_string("unknown template"));
    }
    if (!json_object_size(t.errors) && !ospab_text_ok(*subject, 1, OSPAB_MAIL_SUBJECT_MAX)) {
        json_object_set_new(t.errors, "data", json_string("makes the subject longer than 200 "
                                                         "characters"));
    }
    if (json_object_size(t.errors)) {
        *subject = *text = NULL;
        return t.errors;
    }
    json_decref(t.errors);
    return NULL;
}

/* ---- queueing ---------------------------------------------------------------------------- */

apr_status_t ospab_mail_insert(ospab_db_t *db, apr_pool_t *p, apr_time_t now, const char *to,
                               const char *tmpl, const char *subject, const char *text,
                               const char *dedupe_key, const char **id, int *duplicate,
                               const char **why)
{
    const char *args[7], *when = ospab_time_db(p, now);
    const char *found = NULL;
    int own = !db->trans;
    apr_status_t rv;

    *id = NULL;
    *duplicate = 0;
    *why = NULL;
    if (!ospab_mail_addr_ok(to)) {
        *why = "not a usable e-mail address";
        return APR_EINVAL;
    }
    if (!subject || !ospab_text_ok(subject, 1, OSPAB_MAIL_SUBJECT_MAX)) {
        *why = "subject must be one line of 1 to 200 characters";
        return APR_EINVAL;
    }
    text = text ? unix_lines(p, text) : NULL;
    if (!text_ok(p, text, 1, OSPAB_MAIL_TEXT_MAX)) {
        *why = "text must be 1 to 50000 characters without control characters";
        return APR_EINVAL;
    }
    if (dedupe_key && !ospab_key_ok(dedupe_key, 128)) {
        *why = "dedupe key must be 1 to 128 printable ASCII characters";
        return APR_EINVAL;
    }
    if (own && (rv = ospab_db_begin(db, p)) != APR_SUCCESS) {
        *why = db->error;
        return rv;
    }
    if (dedupe_key) {
        if ((rv = ospab_db_select_value(db, p, "ospab_mail_by_key", 1, &dedupe_key, &found))
            != APR_SUCCESS) {
            goto failed;
        }
        if (found) {
            *id = found;
            *duplicate = 1;
            return own ? ospab_db_end(db, 1) : APR_SUCCESS;
        }
    }
    args[0] = to;
    args[1] = subject;
    args[2] = text;
    args[3] = tmpl;
    args[4] = dedupe_key;
    args[5] = when;
    args[6] = when;
    if ((rv = ospab_db_exec(db, p, "ospab_mail_insert", 7, args, NULL)) != APR_SUCCESS) {
        if (own && dedupe_key && ospab_db_is_constraint(db)) {
            /* the same key was queued by someone else since the check */
            ospab_db_end(db, 0);
            if (ospab_db_select_value(db, p, "ospab_mail_by_key", 1, &dedupe_key, &found)
                    == APR_SUCCESS && found) {
                *id = found;
                *duplicate = 1;
                return APR_SUCCESS;
            }
            *why = db->error ? db->error : "duplicate key";
            return APR_EGENERAL;
        }
        goto failed;
    }
    if ((rv = ospab_db_last_id(db, p, id)) != APR_SUCCESS) {
        goto failed;
    }
    if (own && (rv = ospab_db_end(db, 1)) != APR_SUCCESS) {
        *why = db->error;
        *id = NULL;
        return rv;
    }
    return APR_SUCCESS;

failed:
    *why = db->error ? db->error : "database error";
    if (own) {
        ospab_db_end(db, 0);
    }
    return rv;
}

apr_status_t ospab_mail_queue(ospab_db_t *db, apr_pool_t *p, apr_time_t now, const char *to,
                              const char *tmpl, json_t *vars, const char *dedupe_key,
                              const char **why)
{
    const char *subject, *text, *id, *key;
    json_t *errors = ospab_mail_render(p, tmpl, vars, &subject, &text);
    void *it;
    int dup;

    if (errors) {
        it = json_object_iter(errors);
        key = json_object_iter_key(it);
        *why = apr_psprintf(p, "%s: %s", key, json_string_value(json_object_iter_value(it)));
        json_decref(errors);
        return APR_EINVAL;
    }
    return ospab_mail_insert(db, p, now, to, tmpl, subject, text, dedupe_key, &id, &dup, why);
}

json_t *ospab_mail_vars_with_name(json_t *vars, const char *name)
{
    json_t *v = json_is_object(vars) ? json_copy(vars) : json_incref(vars);

    if (json_is_object(v) && name && *name && !json_object_get(v, "name")) {
        json_object_set_new(v, "name", json_string(name));
    }
    return v;
}

apr_status_t ospab_mail_queue_user(ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                                   const char *user_id, const char *tmpl, json_t *vars,
                                   const char *dedupe_key, const char **why)
{
    const ospab_user_t *u;
    json_t *v;
    apr_status_t rv;

    if ((rv = ospab_user_load(db, p, user_id, &u)) != APR_SUCCESS) {
        *why = db->error;
        return rv;
    }
    if (!u) {
        *why = apr_psprintf(p, "user %s does not exist", user_id);
        return APR_NOTFOUND;
    }
    v = ospab_mail_vars_with_name(vars, u->name);
    rv = ospab_mail_queue(db, p, now, u->email, tmpl, v, dedupe_key, why);
    json_decref(v);
    return rv;
}

apr_status_t ospab_mail_server_created(ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                                       const char *vps_id, const char **why)
{
    ospab_row_t r;
    ospab_server_view_t s;
    json_t *vars;
    apr_status_t rv;

    if ((rv = ospab_db_select_one(db, p, "ospab_server_get", 1, &vps_id, &r)) != APR_SUCCESS) {
        *why = db->error;
        return rv;
    }
    if (r) {
        ospab_row_fill(&ospab_server_view_row, r, &s);
    }
    if (!r || !s.user_id) {
        *why = "no such server, or it has no owner";
        return APR_NOTFOUND;
    }
    vars = json_pack("{s:I, s:s?, s:s?, s:s?, s:s?}",
                     "serverId", (json_int_t)apr_atoi64(s.id), "serverName", s.name,
                     "ipAddress", s.ip, "os", s.tmpl_name, "tariff", s.t_name);
    rv = ospab_mail_queue_user(db, p, now, s.user_id, "server-created", vars,
                               apr_pstrcat(p, "server-created:", s.id, NULL), why);
    json_decref(vars);
    return rv;
}

