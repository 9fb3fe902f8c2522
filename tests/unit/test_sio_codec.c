/* lib/ospab_sio_codec.h: Engine.IO / Socket.IO packets as the agent's live-push server reads
 * and writes them. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tests.h"
#include "ospab_sio_codec.h"

/* text of len bytes (may hold NULs) parsed as a Socket.IO packet; APR_SUCCESS expected */
static void sio_ok(const char *text, apr_size_t len, ospab_sio_packet_t *pkt)
{
    const char *why = NULL;

    ck_assert_msg(ospab_sio_parse(text, len, pkt, &why) == APR_SUCCESS, "%s: %s", text,
                  why ? why : "?");
}

static void sio_refused(const char *text, apr_size_t len, const char *expect)
{
    ospab_sio_packet_t pkt;
    const char *why = NULL;

    ck_assert_int_eq(ospab_sio_parse(text, len, &pkt, &why), APR_EINVAL);
    ck_assert_str_eq(why, expect);
}

/* a string literal, NULs and all */
#define SIO_OK(lit, pkt)            sio_ok(lit, sizeof(lit) - 1, pkt)
#define SIO_REFUSED(lit, expect)    sio_refused(lit, sizeof(lit) - 1, expect)

static void data_is(const ospab_sio_packet_t *pkt, const char *expect)
{
    ck_assert_uint_eq(pkt->len, strlen(expect));
    ck_assert(!memcmp(pkt->data, expect, pkt->len));
}

/* an encoder's buffer: the text after headroom bytes, NUL-terminated, len long */
static void encoded_is(char *buf, apr_size_t headroom, const apr_size_t *len,
                       const char *expect)
{
    ck_assert_ptr_nonnull(buf);
    ck_assert_str_eq(buf + headroom, expect);
    ck_assert_uint_eq(*len, strlen(expect));
    free(buf);
}

/* ------------------------------------------------------------- Engine.IO -- */

START_TEST(eio_types)
{
    static const char *const texts[] = { "0", "1", "2probe", "3", "4hello", "5", "6" };
    ospab_eio_packet_t pkt;
    int i;

    for (i = 0; i < 7; ++i) {
        ck_assert_int_eq(ospab_eio_parse(texts[i], strlen(texts[i]), &pkt), APR_SUCCESS);
        ck_assert_int_eq(pkt.type, i);
        ck_assert_ptr_eq(pkt.data, texts[i] + 1);
        ck_assert_uint_eq(pkt.len, strlen(texts[i]) - 1);
    }
}
END_TEST

START_TEST(eio_refused)
{
    ospab_eio_packet_t pkt;

    ck_assert_int_eq(ospab_eio_parse("", 0, &pkt), APR_EINVAL);
    ck_assert_int_eq(ospab_eio_parse("4x", 0, &pkt), APR_EINVAL);   /* len rules */
    ck_assert_int_eq(ospab_eio_parse("bAAAA", 5, &pkt), APR_ENOTIMPL);  /* binary */
    ck_assert_int_eq(ospab_eio_parse("7", 1, &pkt), APR_ENOTIMPL);
    ck_assert_int_eq(ospab_eio_parse("9", 1, &pkt), APR_ENOTIMPL);
    ck_assert_int_eq(ospab_eio_parse("/", 1, &pkt), APR_ENOTIMPL);
    ck_assert_int_eq(ospab_eio_parse("\0" "4", 2, &pkt), APR_ENOTIMPL);
    ck_assert_int_eq(ospab_eio_parse("\xff", 1, &pkt), APR_ENOTIMPL);
}
END_TEST

START_TEST(eio_probe)
{
    ospab_eio_packet_t pkt;

    ck_assert_int_eq(ospab_eio_parse("2probe", 6, &pkt), APR_SUCCESS);
    ck_assert(ospab_eio_is_probe(&pkt));
    ck_assert_int_eq(ospab_eio_parse("5", 1, &pkt), APR_SUCCESS);
    ck_assert(ospab_eio_is_probe(&pkt));
    ck_assert_int_eq(ospab_eio_parse("2", 1, &pkt), APR_SUCCESS);
    ck_assert(!ospab_eio_is_probe(&pkt));
    ck_assert_int_eq(ospab_eio_parse("2probes", 7, &pkt), APR_SUCCESS);
    ck_assert(!ospab_eio_is_probe(&pkt));
    ck_assert_int_eq(ospab_eio_parse("2proBe", 6, &pkt), APR_SUCCESS);
    ck_assert(!ospab_eio_is_probe(&pkt));
    ck_assert_int_eq(ospab_eio_parse("3probe", 6, &pkt), APR_SUCCESS);
    ck_assert(!ospab_eio_is_probe(&pkt));
    ck_assert_int_eq(ospab_eio_parse("5x", 2, &pkt), APR_SUCCESS);
    ck_assert(!ospab_eio_is_probe(&pkt));
    ck_assert_int_eq(ospab_eio_parse("40", 2, &pkt), APR_SUCCESS);
    ck_assert(!ospab_eio_is_probe(&pkt));
}
END_TEST

/* the records of body (len bytes), joined by '|' for comparison */
static void records_are(const char *body, apr_size_t len, const char *expect)
{
    char out[256] = "";
    apr_size_t pos = 0, n, used = 0;
    const char *rec;
    int count = 0;

    while (ospab_eio_payload_next(body, len, &pos, &rec, &n)) {
        ck_assert_uint_lt(used + n + 2, sizeof(out));
        if (count++) {
            out[used++] = '|';
        }
        memcpy(out + used, rec, n);
        used += n;
        out[used] = '\0';
    }
    ck_assert_str_eq(out, expect);
    /* and again: the body is not changed by reading it */
    pos = 0;
    while (ospab_eio_payload_next(body, len, &pos, &rec, &n)) {
        --count;
    }
    ck_assert_int_eq(count, 0);
}

#define RECORDS(lit, expect) records_are(lit, sizeof(lit) - 1, expect)

START_TEST(payload_records)
{
    apr_size_t pos = 0, n = 99;
    const char *rec = NULL;

    ck_assert(!ospab_eio_payload_next("", 0, &pos, &rec, &n));
    RECORDS("40", "40");
    RECORDS("40\x1e" "42[\"a\"]", "40|42[\"a\"]");
    RECORDS("40\x1e", "40");                 /* a separator at the end: no record */
    RECORDS("\x1e" "40", "|40");             /* an empty record first */
    RECORDS("2\x1e\x1e" "3", "2||3");
    RECORDS("\x1e", "");                     /* one empty record */
    RECORDS("4a\0b\x1e" "6", "4a");           /* NULs stay inside a record... */
    pos = 0;
    ck_assert(ospab_eio_payload_next("4a\0b\x1e" "6", 6, &pos, &rec, &n));
    ck_assert_uint_eq(n, 4);                        /* ...which keeps its length */
}
END_TEST

START_TEST(payload_join)
{
    ospab_eio_text_t t[3] = { { "40{\"sid\":\"x\"}", 13 }, { "2", 1 }, { "", 0 } };
    apr_size_t len = 99, pos = 0, n;
    const char *rec;
    char *buf;

    buf = ospab_eio_payload_join(t, 0, 0, &len);
    encoded_is(buf, 0, &len, "");
    buf = ospab_eio_payload_join(t, 1, 0, &len);
    encoded_is(buf, 0, &len, "40{\"sid\":\"x\"}");
    buf = ospab_eio_payload_join(t, 2, 7, &len);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(len, 15);
    ck_assert(!memcmp(buf + 7, "40{\"sid\":\"x\"}\x1e" "2", 16));   /* and the NUL */
    /* round trip */
    ck_assert(ospab_eio_payload_next(buf + 7, len, &pos, &rec, &n));
    ck_assert_uint_eq(n, 13);
    ck_assert(!memcmp(rec, t[0].text, n));
    ck_assert(ospab_eio_payload_next(buf + 7, len, &pos, &rec, &n));
    ck_assert_uint_eq(n, 1);
    ck_assert(!memcmp(rec, "2", 1));
    ck_assert(!ospab_eio_payload_next(buf + 7, len, &pos, &rec, &n));
    free(buf);
    /* an empty packet last leaves a separator at the end, which reads as no record */
    buf = ospab_eio_payload_join(t + 1, 2, 0, &len);
    encoded_is(buf, 0, &len, "2\x1e");
}
END_TEST

START_TEST(utf8)
{
    /* valid, at the edges of each length */
    ck_assert(ospab_eio_utf8_valid("", 0));
    ck_assert(ospab_eio_utf8_valid("plain ascii", 11));
    ck_assert(ospab_eio_utf8_valid("a\0b", 3));                /* NUL is a character */
    ck_assert(ospab_eio_utf8_valid("\x7f", 1));
    ck_assert(ospab_eio_utf8_valid("\xc2\x80", 2));            /* U+0080 */
    ck_assert(ospab_eio_utf8_valid("\xc3\xa9", 2));            /* é */
    ck_assert(ospab_eio_utf8_valid("\xdf\xbf", 2));            /* U+07FF */
    ck_assert(ospab_eio_utf8_valid("\xe0\xa0\x80", 3));        /* U+0800 */
    ck_assert(ospab_eio_utf8_valid("\xe2\x82\xac", 3));        /* € */
    ck_assert(ospab_eio_utf8_valid("\xed\x9f\xbf", 3));        /* U+D7FF */
    ck_assert(ospab_eio_utf8_valid("\xee\x80\x80", 3));        /* U+E000 */
    ck_assert(ospab_eio_utf8_valid("\xef\xbf\xbf", 3));        /* U+FFFF */
    ck_assert(ospab_eio_utf8_valid("\xf0\x90\x80\x80", 4));    /* U+10000 */
    ck_assert(ospab_eio_utf8_valid("\xf0\x9f\x98\x80", 4));    /* an emoji */
    ck_assert(ospab_eio_utf8_valid("\xf4\x8f\xbf\xbf", 4));    /* U+10FFFF */
    /* overlong forms */
    ck_assert(!ospab_eio_utf8_valid("\xc0\xaf", 2));
    ck_assert(!ospab_eio_utf8_valid("\xc1\xbf", 2));
    ck_assert(!ospab_eio_utf8_valid("\xe0\x80\xaf", 3));
    ck_assert(!ospab_eio_utf8_valid("\xe0\x9f\xbf", 3));
    ck_assert(!ospab_eio_utf8_valid("\xf0\x80\x80\xaf", 4));
    ck_assert(!ospab_eio_utf8_valid("\xf0\x8f\xbf\xbf", 4));
    /* surrogates, beyond U+10FFFF */
    ck_assert(!ospab_eio_utf8_valid("\xed\xa0\x80", 3));
    ck_assert(!ospab_eio_utf8_valid("\xed\xbf\xbf", 3));
    ck_assert(!ospab_eio_utf8_valid("\xf4\x90\x80\x80", 4));
    ck_assert(!ospab_eio_utf8_valid("\xf5\x80\x80\x80", 4));
    ck_assert(!ospab_eio_utf8_valid("\xff", 1));
    ck_assert(!ospab_eio_utf8_valid("\xfe", 1));
    /* cut short, lone and bad continuation bytes */
    ck_assert(!ospab_eio_utf8_valid("\xc3", 1));
    ck_assert(!ospab_eio_utf8_valid("x\xe2\x82", 3));
    ck_assert(!ospab_eio_utf8_valid("\xf0\x9f\x98", 3));
    ck_assert(!ospab_eio_utf8_valid("\x80", 1));
    ck_assert(!ospab_eio_utf8_valid("a\xbf" "b", 3));
    ck_assert(!ospab_eio_utf8_valid("\xc3\x28", 2));
    ck_assert(!ospab_eio_utf8_valid("\xe2\x28\xa1", 3));
    /* the length is what counts: valid bytes after len are not read, bad ones not seen */
    ck_assert(!ospab_eio_utf8_valid("\xc3\xa9", 1));
    ck_assert(ospab_eio_utf8_valid("ok\xff", 2));
}
END_TEST

START_TEST(query)
{
    int code = -1;

    ck_assert_ptr_null(ospab_eio_query_problem("4", "polling", &code));
    ck_assert_ptr_null(ospab_eio_query_problem("4", "websocket", &code));
    ck_assert_int_eq(code, -1);
    ck_assert_str_eq(ospab_eio_query_problem(NULL, "polling", &code),
                     "Unsupported protocol version");
    ck_assert_int_eq(code, 5);
    code = -1;
    ck_assert_str_eq(ospab_eio_query_problem("3", "polling", &code),
                     "Unsupported protocol version");
    ck_assert_int_eq(code, 5);
    code = -1;
    ck_assert_str_eq(ospab_eio_query_problem("", NULL, &code), "Unsupported protocol version");
    ck_assert_int_eq(code, 5);
    ck_assert_str_eq(ospab_eio_query_problem("4", NULL, &code), "Transport unknown");
    ck_assert_int_eq(code, 0);
    code = -1;
    ck_assert_str_eq(ospab_eio_query_problem("4", "flashsocket", &code), "Transport unknown");
    ck_assert_int_eq(code, 0);
    code = -1;
    ck_assert_str_eq(ospab_eio_query_problem("4", "", &code), "Transport unknown");
    ck_assert_int_eq(code, 0);
}
END_TEST

START_TEST(encode_error_and_open)
{
    ospab_eio_open_t o = { "sid-1", 1, 25000, 20000, 1000000 };
    apr_size_t len = 0;

    encoded_is(ospab_eio_encode_error(3, "Bad request", &len), 0, &len,
               "{\"code\":3,\"message\":\"Bad request\"}");
    encoded_is(ospab_eio_encode_error(0, "Transport unknown", &len), 0, &len,
               "{\"code\":0,\"message\":\"Transport unknown\"}");
    encoded_is(ospab_eio_encode_open(&o, 16, &len), 16, &len,
               "0{\"sid\":\"sid-1\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,"
               "\"pingTimeout\":20000,\"maxPayload\":1000000}");
    o.upgrade_websocket = 0;
    o.max_payload = APR_INT64_C(5000000000);
    encoded_is(ospab_eio_encode_open(&o, 0, &len), 0, &len,
               "0{\"sid\":\"sid-1\",\"upgrades\":[],\"pingInterval\":25000,"
               "\"pingTimeout\":20000,\"maxPayload\":5000000000}");
    /* a sid that is not UTF-8 cannot be encoded */
    o.sid = "\xff";
    ck_assert_ptr_null(ospab_eio_encode_open(&o, 0, &len));
}
END_TEST

/* ------------------------------------------------------------- Socket.IO -- */

START_TEST(sio_parse_plain)
{
    ospab_sio_packet_t pkt;

    SIO_OK("0", &pkt);
    ck_assert_int_eq(pkt.type, OSPAB_SIO_CONNECT);
    ck_assert_str_eq(pkt.nsp, "/");
    ck_assert_int_eq(pkt.ack_id, -1);
    data_is(&pkt, "");
    SIO_OK("0{\"token\":\"t\"}", &pkt);
    ck_assert_int_eq(pkt.type, OSPAB_SIO_CONNECT);
    data_is(&pkt, "{\"token\":\"t\"}");
    SIO_OK("1", &pkt);
    ck_assert_int_eq(pkt.type, OSPAB_SIO_DISCONNECT);
    SIO_OK("2[\"subscribe-server\",3]", &pkt);
    ck_assert_int_eq(pkt.type, OSPAB_SIO_EVENT);
    ck_assert_int_eq(pkt.ack_id, -1);
    data_is(&pkt, "[\"subscribe-server\",3]");
    SIO_OK("3", &pkt);
    ck_assert_int_eq(pkt.type, OSPAB_SIO_ACK);
    ck_assert_int_eq(pkt.ack_id, -1);
    SIO_OK("4{\"message\":\"x\"}", &pkt);
    ck_assert_int_eq(pkt.type, OSPAB_SIO_CONNECT_ERROR);
}
END_TEST

START_TEST(sio_parse_ack_ids)
{
    ospab_sio_packet_t pkt;

    SIO_OK("21[\"x\"]", &pkt);
    ck_assert_int_eq(pkt.ack_id, 1);
    data_is(&pkt, "[\"x\"]");
    SIO_OK("20[\"x\"]", &pkt);
    ck_assert_int_eq(pkt.ack_id, 0);
    SIO_OK("2007", &pkt);                       /* leading zeros: digits all the same */
    ck_assert_int_eq(pkt.ack_id, 7);
    data_is(&pkt, "");
    SIO_OK("331[]", &pkt);
    ck_assert_int_eq(pkt.type, OSPAB_SIO_ACK);
    ck_assert_int_eq(pkt.ack_id, 31);
    data_is(&pkt, "[]");
    /* the largest id: a digit is refused only after a value above 100,000,000 */
    SIO_OK("21000000009[]", &pkt);
    ck_assert_int_eq(pkt.ack_id, 1000000009L);
    SIO_OK("2100000000[]", &pkt);
    ck_assert_int_eq(pkt.ack_id, 100000000L);
    SIO_REFUSED("21000000010[]", "ack id too large");
    SIO_REFUSED("299999999999999999999999999999[]", "ack id too large");
    SIO_REFUSED("2/admin,12345678901", "ack id too large");
}
END_TEST

START_TEST(sio_parse_namespaces)
{
    char text[OSPAB_SIO_MAX_NSP_LEN + 16];
    ospab_sio_packet_t pkt;

    SIO_OK("0/admin,", &pkt);
    ck_assert_int_eq(pkt.type, OSPAB_SIO_CONNECT);
    ck_assert_str_eq(pkt.nsp, "/admin");
    data_is(&pkt, "");
    SIO_OK("0/admin", &pkt);                    /* no comma, no payload */
    ck_assert_str_eq(pkt.nsp, "/admin");
    data_is(&pkt, "");
    SIO_OK("0/admin,{\"token\":\"t\"}", &pkt);
    ck_assert_str_eq(pkt.nsp, "/admin");
    data_is(&pkt, "{\"token\":\"t\"}");
    SIO_OK("2/admin,12[\"x\"]", &pkt);
    ck_assert_str_eq(pkt.nsp, "/admin");
    ck_assert_int_eq(pkt.ack_id, 12);
    data_is(&pkt, "[\"x\"]");
    SIO_OK("1/,", &pkt);
    ck_assert_str_eq(pkt.nsp, "/");
    SIO_OK("0/\xc3\xa9,", &pkt);
    ck_assert_str_eq(pkt.nsp, "/\xc3\xa9");
    /* the namespace runs to the first comma, wherever it is */
    SIO_OK("2/a[\"b,c\"]", &pkt);
    ck_assert_str_eq(pkt.nsp, "/a[\"b");
    data_is(&pkt, "c\"]");
    /* no namespace: a comma is data */
    SIO_OK("2,[]", &pkt);
    ck_assert_str_eq(pkt.nsp, "/");
    data_is(&pkt, ",[]");
    /* the longest namespace, and one byte more */
    text[0] = '0';
    text[1] = '/';
    memset(text + 2, 'n', OSPAB_SIO_MAX_NSP_LEN - 1);
    text[OSPAB_SIO_MAX_NSP_LEN + 1] = ',';
    sio_ok(text, OSPAB_SIO_MAX_NSP_LEN + 2, &pkt);
    ck_assert_uint_eq(strlen(pkt.nsp), OSPAB_SIO_MAX_NSP_LEN);
    memset(text + 2, 'n', OSPAB_SIO_MAX_NSP_LEN);
    text[OSPAB_SIO_MAX_NSP_LEN + 2] = ',';
    sio_refused(text, OSPAB_SIO_MAX_NSP_LEN + 3, "namespace too long");
    sio_refused(text, OSPAB_SIO_MAX_NSP_LEN + 2, "namespace too long");   /* no comma */
}
END_TEST

START_TEST(sio_parse_refused_types)
{
    SIO_REFUSED("", "bad Socket.IO packet type");
    SIO_REFUSED("7", "bad Socket.IO packet type");
    SIO_REFUSED("9[]", "bad Socket.IO packet type");
    SIO_REFUSED("[\"x\"]", "bad Socket.IO packet type");
    SIO_REFUSED("{not json", "bad Socket.IO packet type");
    SIO_REFUSED("/admin,0", "bad Socket.IO packet type");
    SIO_REFUSED("\0" "2[]", "bad Socket.IO packet type");   /* a NUL ends it first */
    SIO_REFUSED("b2", "bad Socket.IO packet type");
}
END_TEST

START_TEST(sio_parse_binary_types)
{
    ospab_sio_packet_t pkt;

    /* parsed (and refused by the agent): the attachment count reads as an ack id */
    SIO_OK("51-[\"x\",{\"_placeholder\":true,\"num\":0}]", &pkt);
    ck_assert_int_eq(pkt.type, OSPAB_SIO_BINARY_EVENT);
    ck_assert_int_eq(pkt.ack_id, 1);
    ck_assert(pkt.len > 0 && pkt.data[0] == '-');
    SIO_OK("61-/admin,3[]", &pkt);
    ck_assert_int_eq(pkt.type, OSPAB_SIO_BINARY_ACK);
    ck_assert_str_eq(pkt.nsp, "/");
}
END_TEST

START_TEST(sio_parse_nul_and_length)
{
    ospab_sio_packet_t pkt;

    /* a NUL ends the packet: what follows is not data */
    SIO_OK("2[\"x\"]\0junk", &pkt);
    data_is(&pkt, "[\"x\"]");
    SIO_OK("2/ab\0c,1[]", &pkt);
    ck_assert_str_eq(pkt.nsp, "/ab");
    ck_assert_int_eq(pkt.ack_id, -1);
    data_is(&pkt, "");
    /* and so does len: nothing past it is read */
    sio_ok("21[\"x\"]", 2, &pkt);
    ck_assert_int_eq(pkt.type, OSPAB_SIO_EVENT);
    ck_assert_int_eq(pkt.ack_id, 1);
    data_is(&pkt, "");
    sio_ok("0/admin,", 4, &pkt);
    ck_assert_str_eq(pkt.nsp, "/ad");
}
END_TEST

START_TEST(connect_token)
{
    ospab_sio_packet_t pkt;
    json_t *auth = (json_t *)&pkt;
    const char *token;

    SIO_OK("0", &pkt);
    ck_assert_ptr_null(ospab_sio_connect_token(&pkt, &auth));
    ck_assert_ptr_null(auth);
    SIO_OK("0{\"token\":\"abc.def\",\"other\":1}", &pkt);
    token = ospab_sio_connect_token(&pkt, &auth);
    ck_assert_str_eq(token, "abc.def");
    json_decref(auth);
    SIO_OK("0/admin,{\"token\":\"t\"}", &pkt);
    token = ospab_sio_connect_token(&pkt, &auth);
    ck_assert_str_eq(token, "t");
    json_decref(auth);
    /* decoded, but no token */
    SIO_OK("0{\"token\":5}", &pkt);
    ck_assert_ptr_null(ospab_sio_connect_token(&pkt, &auth));
    ck_assert_ptr_nonnull(auth);
    json_decref(auth);
    SIO_OK("0[\"t\"]", &pkt);
    ck_assert_ptr_null(ospab_sio_connect_token(&pkt, &auth));
    json_decref(auth);
    SIO_OK("0\"t\"", &pkt);
    ck_assert_ptr_null(ospab_sio_connect_token(&pkt, &auth));
    ck_assert_ptr_nonnull(auth);                   /* any JSON value decodes */
    json_decref(auth);
    SIO_OK("0{}", &pkt);
    ck_assert_ptr_null(ospab_sio_connect_token(&pkt, &auth));
    json_decref(auth);
    /* not JSON at all */
    SIO_OK("0{\"token\":\"a\",\"token\":\"b\"}", &pkt);
    ck_assert_ptr_null(ospab_sio_connect_token(&pkt, &auth));
    ck_assert_ptr_null(auth);
    SIO_OK("0{not json", &pkt);
    ck_assert_ptr_null(ospab_sio_connect_token(&pkt, &auth));
    ck_assert_ptr_null(auth);
    SIO_OK("0{\"token\":\"a\"} x", &pkt);
    ck_assert_ptr_null(ospab_sio_connect_token(&pkt, &auth));
    ck_assert_ptr_null(auth);
}
END_TEST

START_TEST(event_args)
{
    static const char *const refused[] = {
        "2", "2[]", "2[1]", "2[null,\"x\"]", "2{\"a\":1}", "2\"subscribe-server\"",
        "2[\"a\",{\"k\":1,\"k\":2}]", "2[\"a\"", "2[\"a\"] []", "2{not json"
    };
    ospab_sio_packet_t pkt;
    const char *name = "unset";
    json_t *args;
    apr_size_t i;

    SIO_OK("25[\"subscribe-server\",\"12\"]", &pkt);
    args = ospab_sio_event_args(&pkt, &name);
    ck_assert_ptr_nonnull(args);
    ck_assert_str_eq(name, "subscribe-server");
    ck_assert_str_eq(json_string_value(json_array_get(args, 1)), "12");
    json_decref(args);
    SIO_OK("2[\"ping\"]", &pkt);
    args = ospab_sio_event_args(&pkt, &name);
    ck_assert_str_eq(name, "ping");
    ck_assert_uint_eq(json_array_size(args), 1);
    json_decref(args);
    for (i = 0; i < sizeof(refused) / sizeof(refused[0]); ++i) {
        name = "unset";
        sio_ok(refused[i], strlen(refused[i]), &pkt);
        ck_assert_msg(!ospab_sio_event_args(&pkt, &name), "%s", refused[i]);
        ck_assert_ptr_null(name);
    }
}
END_TEST

START_TEST(encoders)
{
    json_t *j;
    apr_size_t len = 0;

    encoded_is(ospab_sio_encode_connect("AbC-_1", 0, &len), 0, &len, "40{\"sid\":\"AbC-_1\"}");
    encoded_is(ospab_sio_encode_connect_error("/", "Invalid token", 0, &len), 0, &len,
               "44{\"message\":\"Invalid token\"}");
    encoded_is(ospab_sio_encode_connect_error(NULL, "Token expired", 0, &len), 0, &len,
               "44{\"message\":\"Token expired\"}");
    encoded_is(ospab_sio_encode_connect_error("/admin", "Invalid namespace", 0, &len), 0, &len,
               "44/admin,{\"message\":\"Invalid namespace\"}");
    encoded_is(ospab_sio_encode_connect_error("/\xc3\xa9", "Invalid namespace", 0, &len), 0,
               &len, "44/\xc3\xa9,{\"message\":\"Invalid namespace\"}");
    j = json_pack("{sisf}", "serverId", 3, "cpu", 0.0123);
    encoded_is(ospab_sio_encode_event("server-stats", j, 0, &len), 0, &len,
               "42[\"server-stats\",{\"serverId\":3,\"cpu\":0.0123}]");
    json_decref(j);
    encoded_is(ospab_sio_encode_event("x", NULL, 0, &len), 0, &len, "42[\"x\",null]");
    j = json_string("\xc3\xa9\"\\");
    encoded_is(ospab_sio_encode_event("q\"", j, 0, &len), 0, &len,
               "42[\"q\\\"\",\"\xc3\xa9\\\"\\\\\"]");
    json_decref(j);
    ck_assert_ptr_null(ospab_sio_encode_event("\xff", NULL, 0, &len));
    j = json_pack("{sbsi}", "ok", 1, "serverId", 3);
    encoded_is(ospab_sio_encode_ack(1, j, 0, &len), 0, &len, "431[{\"ok\":true,\"serverId\":3}]");
    encoded_is(ospab_sio_encode_ack(0, j, 0, &len), 0, &len, "430[{\"ok\":true,\"serverId\":3}]");
    encoded_is(ospab_sio_encode_ack(1000000009L, j, 0, &len), 0, &len,
               "431000000009[{\"ok\":true,\"serverId\":3}]");
    ck_assert_ptr_null(ospab_sio_encode_ack(-1, j, 0, &len));
    json_decref(j);
    ck_assert_ptr_null(ospab_sio_encode_ack(1, NULL, 0, &len));
}
END_TEST

START_TEST(headroom)
{
    char *buf;
    apr_size_t len = 0;

    buf = ospab_sio_encode_connect("s", 16, &len);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(len, 13);
    ck_assert(!memcmp(buf + 16, "40{\"sid\":\"s\"}", 14));   /* with its NUL */
    free(buf);
    buf = ospab_sio_encode_event("e", NULL, 1, &len);
    encoded_is(buf, 1, &len, "42[\"e\",null]");
}
END_TEST

/* encoder -> Engine.IO -> Socket.IO -> decoder gives back what went in */
START_TEST(round_trips)
{
    json_t *data = json_pack("{sIs[fff]sn}", "serverId", (json_int_t)APR_INT64_C(9007199254740991),
                             "rrd", 0.5, 1.25, 3.0, "none");
    ospab_eio_packet_t ep;
    ospab_sio_packet_t sp;
    const char *name, *why;
    json_t *args, *auth;
    apr_size_t len = 0;
    char *buf;

    buf = ospab_sio_encode_event("server-stats", data, 8, &len);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(ospab_eio_parse(buf + 8, len, &ep), APR_SUCCESS);
    ck_assert_int_eq(ep.type, OSPAB_EIO_MESSAGE);
    ck_assert_int_eq(ospab_sio_parse(ep.data, ep.len, &sp, &why), APR_SUCCESS);
    ck_assert_int_eq(sp.type, OSPAB_SIO_EVENT);
    ck_assert_int_eq(sp.ack_id, -1);
    args = ospab_sio_event_args(&sp, &name);
    ck_assert_str_eq(name, "server-stats");
    ck_assert(json_equal(json_array_get(args, 1), data));
    json_decref(args);
    free(buf);

    buf = ospab_sio_encode_ack(77, data, 0, &len);
    ck_assert_int_eq(ospab_eio_parse(buf, len, &ep), APR_SUCCESS);
    ck_assert_int_eq(ospab_sio_parse(ep.data, ep.len, &sp, &why), APR_SUCCESS);
    ck_assert_int_eq(sp.type, OSPAB_SIO_ACK);
    ck_assert_int_eq(sp.ack_id, 77);
    args = json_loadb(sp.data, sp.len, 0, NULL);
    ck_assert(json_equal(json_array_get(args, 0), data));
    json_decref(args);
    free(buf);
    json_decref(data);

    buf = ospab_sio_encode_connect_error("/x", "Invalid namespace", 0, &len);
    ck_assert_int_eq(ospab_eio_parse(buf, len, &ep), APR_SUCCESS);
    ck_assert_int_eq(ospab_sio_parse(ep.data, ep.len, &sp, &why), APR_SUCCESS);
    ck_assert_int_eq(sp.type, OSPAB_SIO_CONNECT_ERROR);
    ck_assert_str_eq(sp.nsp, "/x");
    data_is(&sp, "{\"message\":\"Invalid namespace\"}");
    free(buf);

    /* a CONNECT as a client writes it, through a polling payload */
    {
        ospab_eio_text_t t[2] = { { "40{\"token\":\"tok\"}", 17 }, { "3", 1 } };
        apr_size_t pos = 0, n;
        const char *rec;

        buf = ospab_eio_payload_join(t, 2, 0, &len);
        ck_assert(ospab_eio_payload_next(buf, len, &pos, &rec, &n));
        ck_assert_int_eq(ospab_eio_parse(rec, n, &ep), APR_SUCCESS);
        ck_assert_int_eq(ospab_sio_parse(ep.data, ep.len, &sp, &why), APR_SUCCESS);
        ck_assert_str_eq(ospab_sio_connect_token(&sp, &auth), "tok");
        json_decref(auth);
        ck_assert(ospab_eio_payload_next(buf, len, &pos, &rec, &n));
        ck_assert_int_eq(ospab_eio_parse(rec, n, &ep), APR_SUCCESS);
        ck_assert_int_eq(ep.type, OSPAB_EIO_PONG);
        ck_assert(!ospab_eio_payload_next(buf, len, &pos, &rec, &n));
        free(buf);
    }
}
END_TEST

Suite *ospab_sio_codec_suite(void)
{
    Suite *s = suite_create("sio_codec");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, eio_types);
    tcase_add_test(tc, eio_refused);
    tcase_add_test(tc, eio_probe);
    tcase_add_test(tc, payload_records);
    tcase_add_test(tc, payload_join);
    tcase_add_test(tc, utf8);
    tcase_add_test(tc, query);
    tcase_add_test(tc, encode_error_and_open);
    tcase_add_test(tc, sio_parse_plain);
    tcase_add_test(tc, sio_parse_ack_ids);
    tcase_add_test(tc, sio_parse_namespaces);
    tcase_add_test(tc, sio_parse_refused_types);
    tcase_add_test(tc, sio_parse_binary_types);
    tcase_add_test(tc, sio_parse_nul_and_length);
    tcase_add_test(tc, connect_token);
    tcase_add_test(tc, event_args);
    tcase_add_test(tc, encoders);
    tcase_add_test(tc, headroom);
    tcase_add_test(tc, round_trips);
    suite_add_tcase(s, tc);
    return s;
}
