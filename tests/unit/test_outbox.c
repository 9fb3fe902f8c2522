/* lib/ospab_outbox.h without a database: addresses, templates, the RFC 5322 message, the
 * Message-ID, retry back-off and the webhook signature; lib/ospab_events.h's payload. */
#include <stdlib.h>
#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>
#include <openssl/evp.h>

#include "tests.h"
#include "ospab_mail.h"
#include "ospab_outbox.h"
#include "ospab_webhook.h"
#include "ospab_events.h"
#include "ospab_util.h"

START_TEST(addresses)
{
    char longest[300];

    ck_assert(ospab_mail_addr_ok("anna@example.com"));
    ck_assert(ospab_mail_addr_ok("a.b+tag@mail.example.org"));
    ck_assert(!ospab_mail_addr_ok(""));
    ck_assert(!ospab_mail_addr_ok("anna"));
    ck_assert(!ospab_mail_addr_ok("anna@"));
    ck_assert(!ospab_mail_addr_ok("@example.com"));
    ck_assert(!ospab_mail_addr_ok("anna @example.com"));
    ck_assert(!ospab_mail_addr_ok("anna@example.com\r\nBcc: x@evil.example"));
    ck_assert(!ospab_mail_addr_ok("anna@example.com\n"));
    ck_assert(!ospab_mail_addr_ok("\"anna\"@example.com"));
    ck_assert(!ospab_mail_addr_ok("<anna@example.com>"));
    ck_assert(!ospab_mail_addr_ok("анна@example.com"));
    memset(longest, 'a', sizeof(longest));
    strcpy(longest + 250, "@x.io");       /* 255 bytes */
    ck_assert(!ospab_mail_addr_ok(longest));
}
END_TEST

START_TEST(from_address)
{
    ck_assert_str_eq(ospab_mail_from_addr(test_pool, "ospab panel <noreply@example.com>"),
                     "noreply@example.com");
    ck_assert_str_eq(ospab_mail_from_addr(test_pool, "noreply@example.com"),
                     "noreply@example.com");
    ck_assert_ptr_null(ospab_mail_from_addr(test_pool, "ospab panel"));
    ck_assert_ptr_null(ospab_mail_from_addr(test_pool, "x <not an address>"));
}
END_TEST

START_TEST(templates)
{
    const char *subject = NULL, *text = NULL;
    json_t *vars = json_pack("{s:i, s:s, s:s, s:f, s:s, s:s}", "serverId", 7,
                             "serverName", "web-1", "type", "cpu", "value", 97.0,
                             "level", "critical", "message", "CPU usage is at 97%");
    json_t *errs;

    ck_assert(ospab_mail_template_known("alert"));
    ck_assert(ospab_mail_template_known("server-created"));
    ck_assert(ospab_mail_template_known("password-reset"));
    ck_assert(!ospab_mail_template_known("no-such-template"));
    errs = ospab_mail_render(test_pool, "alert", vars, &subject, &text);
    ck_assert_ptr_null(errs);
    ck_assert_ptr_nonnull(strstr(subject, "web-1"));
    ck_assert_ptr_nonnull(strstr(text, "97%"));
    /* a missing value is named, not rendered as "(null)" */
    json_object_del(vars, "type");
    errs = ospab_mail_render(test_pool, "alert", vars, &subject, &text);
    ck_assert_ptr_nonnull(errs);
    ck_assert(json_object_size(errs) >= 1);
    json_decref(errs);
    json_decref(vars);
}
END_TEST

/* The alert's subject for a value (the text has the same value after "— "). */
static const char *alert_subject(json_t *value)
{
    const char *subject = NULL, *text = NULL;
    json_t *vars = json_pack("{s:s, s:s, s:o, s:s}", "serverName", "web-1", "type", "cpu",
                             "value", value, "level", "critical");
    json_t *errs = ospab_mail_render(test_pool, "alert", vars, &subject, &text);

    ck_assert_ptr_null(errs);
    json_decref(vars);
    ck_assert_ptr_nonnull(strstr(text, strrchr(subject, ' ') + 1));
    return subject;
}

/* Reals are written for people: two decimals at most, a short exponent form for huge ones
 * (1e308 was 309 digits), a sign when negative, never "-0". */
#define CPU_SUBJECT(v) "[критично] Сервер «web-1»: загрузка процессора " v

START_TEST(template_numbers)
{
    const char *subject = NULL, *text = NULL;
    json_t *vars;

    ck_assert_str_eq(alert_subject(json_real(97.5)), CPU_SUBJECT("97.5%"));
    ck_assert_str_eq(alert_subject(json_real(97.0)), CPU_SUBJECT("97%"));
    ck_assert_str_eq(alert_subject(json_integer(95)), CPU_SUBJECT("95%"));
    ck_assert_str_eq(alert_subject(json_real(1e308)), CPU_SUBJECT("1e+308%"));
    ck_assert_str_eq(alert_subject(json_real(-1e308)), CPU_SUBJECT("-1e+308%"));
    ck_assert_str_eq(alert_subject(json_real(1e15)), CPU_SUBJECT("1e+15%"));
    ck_assert_str_eq(alert_subject(json_real(-5.25)), CPU_SUBJECT("-5.25%"));
    ck_assert_str_eq(alert_subject(json_real(-0.001)), CPU_SUBJECT("0%"));
    ck_assert_str_eq(alert_subject(json_real(4.9e-324)), CPU_SUBJECT("0%"));
    ck_assert_str_eq(alert_subject(json_real(99.999)), CPU_SUBJECT("100%"));
    ck_assert_str_eq(alert_subject(json_integer(-9223372036854775807LL - 1)),
                     CPU_SUBJECT("-9223372036854775808%"));
    /* a string stays as given; a percent sign only for a bare number */
    ck_assert_str_eq(alert_subject(json_string("97 of 100")),
                     CPU_SUBJECT("97 of 100"));
    /* another template's number */
    vars = json_pack("{s:s, s:f}", "resetUrl", "https://example.com/reset?t=1",
                     "expiresInMinutes", 1e308);
    ck_assert_ptr_null(ospab_mail_render(test_pool, "password-reset", vars, &subject, &text));
    ck_assert_ptr_nonnull(strstr(text, "1e+308"));
    ck_assert_uint_lt(strlen(text), 2000);
    json_decref(vars);
}
END_TEST

/* the body of a message: the part after the blank line, base64 decoded */
static char *decoded_body(const char *msg)
{
    const char *sep = strstr(msg, "\r\n\r\n");
    char *b64, *out, *w;
    const char *r;
    int n;

    ck_assert_ptr_nonnull(sep);
    b64 = apr_pstrdup(test_pool, sep + 4);
    for (r = w = b64; *r; ++r) {
        if (*r != '\r' && *r != '\n') {
            *w++ = *r;
        }
    }
    *w = '\0';
    out = apr_pcalloc(test_pool, strlen(b64) + 1);
    n = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)b64, (int)strlen(b64));
    ck_assert_int_ge(n, 0);
    /* EVP_DecodeBlock counts the padding as zero bytes */
    out[n] = '\0';
    return out;
}

START_TEST(message)
{
    const char *text = "Здравствуйте!\nСервер web-1 создан.\n";
    const char *id = ospab_mail_message_id(test_pool, "42", "2026-11-22 19:00:00.000",
                                           "anna@example.com");
    const char *msg = ospab_mail_message(test_pool, "ospab panel <noreply@example.com>",
                                         "anna@example.com", "Сервер создан", text, id,
                                         apr_time_from_sec(1763838000));
    const char *p;

    ck_assert_ptr_nonnull(strstr(msg, "To: anna@example.com\r\n"));
    ck_assert_ptr_nonnull(strstr(msg, "From: ospab panel <noreply@example.com>\r\n"));
    ck_assert_ptr_nonnull(strstr(msg, "Subject: =?UTF-8?B?"));
    ck_assert_ptr_nonnull(strstr(msg, apr_pstrcat(test_pool, "Message-ID: ", id, "\r\n", NULL)));
    ck_assert_ptr_nonnull(strstr(msg, "MIME-Version: 1.0\r\n"));
    ck_assert_ptr_nonnull(strstr(msg, "charset=utf-8"));
    ck_assert_ptr_nonnull(strstr(msg, "Date: "));
    /* every line ends with CRLF, and the header part is 7-bit */
    for (p = msg; *p; ++p) {
        if (*p == '\n') {
            ck_assert(p > msg && p[-1] == '\r');
        }
    }
    for (p = msg; p < strstr(msg, "\r\n\r\n"); ++p) {
        ck_assert((unsigned char)*p < 0x80);
    }
    ck_assert_ptr_nonnull(strstr(decoded_body(msg), "Сервер web-1 создан."));
}
END_TEST

START_TEST(message_id_is_stable)
{
    const char *a = ospab_mail_message_id(test_pool, "42", "2026-11-22 19:00:00.000", "a@x.io");
    const char *b = ospab_mail_message_id(test_pool, "42", "2026-11-22 19:00:00.000", "a@x.io");
    const char *c = ospab_mail_message_id(test_pool, "43", "2026-11-22 19:00:00.000", "a@x.io");

    ck_assert_str_eq(a, b);
    ck_assert_str_ne(a, c);
    ck_assert(a[0] == '<' && a[strlen(a) - 1] == '>' && strchr(a, '@'));
    ck_assert_ptr_nonnull(strstr(a, "<outbox-42."));
}
END_TEST

START_TEST(backoff_doubles_and_is_capped)
{
    apr_interval_time_t base = apr_time_from_sec(10), max = apr_time_from_sec(60);
    int n, i;

    for (n = 1; n <= 12; ++n) {
        apr_interval_time_t full = base;

        for (i = 1; i < n && full < max; ++i) {
            full *= 2;
        }
        if (full > max) {
            full = max;
        }
        for (i = 0; i < 50; ++i) {
            apr_interval_time_t d = ospab_outbox_backoff(base, max, n);

            ck_assert_msg(d <= full && d >= full / 2, "attempt %d: %ld not in [%ld, %ld]", n,
                          (long)d, (long)(full / 2), (long)full);
        }
    }
}
END_TEST

START_TEST(webhook_signature)
{
    const char *secret = "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";
    const char *body = "{\"id\":1}";
    /* computed independently: python3 hmac.new(b"k"*32, b'1700000000.{"id":1}', sha256) */
    ck_assert_str_eq(ospab_webhook_signature(test_pool, secret, apr_time_from_sec(1700000000),
                                             body, strlen(body)),
                     "t=1700000000,v1=b0dcba5a42969fb3cc9dbf46fb0278a25a6d777ca4b49a285591"
                     "a893c6e32e1d");
    /* the body is signed as bytes: one more byte changes it */
    ck_assert_str_ne(ospab_webhook_signature(test_pool, secret, apr_time_from_sec(1700000000),
                                             body, strlen(body) - 1),
                     "t=1700000000,v1=b0dcba5a42969fb3cc9dbf46fb0278a25a6d777ca4b49a285591"
                     "a893c6e32e1d");
}
END_TEST

START_TEST(time_parse_round_trip)
{
    apr_time_t t = apr_time_from_sec(1763838000) + 123000;

    ck_assert(ospab_time_parse_db(ospab_time_db(test_pool, t)) == t);
    ck_assert(ospab_time_parse_db("2026-11-22 19:00:00") == apr_time_from_sec(1795374000));
    ck_assert(ospab_time_parse_db("yesterday") == 0);
}
END_TEST

START_TEST(event_payload)
{
    json_t *p = ospab_event_payload("42", "{\"event\":\"server.status\",\"data\":{}}");

    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "id")), 42);
    ck_assert_str_eq(json_string_value(json_object_get(p, "event")), "server.status");
    json_decref(p);
    ck_assert_ptr_null(ospab_event_payload("42", "not json"));
    ck_assert_ptr_null(ospab_event_payload("x", "{}"));
}
END_TEST

Suite *ospab_outbox_suite(void)
{
    Suite *s = suite_create("outbox");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    tcase_add_test(tc, addresses);
    tcase_add_test(tc, from_address);
    tcase_add_test(tc, templates);
    tcase_add_test(tc, template_numbers);
    tcase_add_test(tc, message);
    tcase_add_test(tc, message_id_is_stable);
    tcase_add_test(tc, backoff_doubles_and_is_capped);
    tcase_add_test(tc, webhook_signature);
    tcase_add_test(tc, time_parse_round_trip);
    tcase_add_test(tc, event_payload);
    suite_add_tcase(s, tc);
    return s;
}
