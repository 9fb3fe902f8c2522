/* ospab core: the Engine.IO / Socket.IO packet codec (see ospab_sio_codec.h). */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "ospab_sio_codec.h"

/* ten significant digits: what the API's answers use (lib/ospab_json.c); jansson's default
 * 17 writes 0.0123 as 0.012300000000000001 */
#define SIO_JSON_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(10))

typedef struct {
    const char *text;
    apr_size_t len;
} piece_t;

/* The pieces one after the other, headroom bytes into a malloc'd buffer, NUL after. */
static char *pieces_join(const piece_t *pc, int n, apr_size_t headroom, apr_size_t *len)
{
    apr_size_t total = 0;
    char *buf, *p;
    int i;

    for (i = 0; i < n; ++i) {
        total += pc[i].len;
    }
    buf = malloc(headroom + total + 1);
    if (!buf) {
        return NULL;
    }
    p = buf + headroom;
    for (i = 0; i < n; ++i) {
        if (pc[i].len) {
            memcpy(p, pc[i].text, pc[i].len);
            p += pc[i].len;
        }
    }
    *p = '\0';
    *len = total;
    return buf;
}

/* prefix followed by the JSON text of j */
static char *prefix_json(const char *prefix, apr_size_t plen, const json_t *j,
                         apr_size_t headroom, apr_size_t *len)
{
    char *text = j ? json_dumps(j, SIO_JSON_FLAGS) : NULL;
    piece_t pc[2];
    char *buf;

    if (!text) {
        return NULL;
    }
    pc[0].text = prefix;
    pc[0].len = plen;
    pc[1].text = text;
    pc[1].len = strlen(text);
    buf = pieces_join(pc, 2, headroom, len);
    free(text);
    return buf;
}

/* ------------------------------------------------------------- Engine.IO -- */

apr_status_t ospab_eio_parse(const char *text, apr_size_t len, ospab_eio_packet_t *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 1) {
        return APR_EINVAL;
    }
    if (text[0] < '0' || text[0] > '6') {
        return APR_ENOTIMPL;
    }
    out->type = (ospab_eio_type_e)(text[0] - '0');
    out->data = text + 1;
    out->len = len - 1;
    return APR_SUCCESS;
}

int ospab_eio_is_probe(const ospab_eio_packet_t *pkt)
{
    return (pkt->type == OSPAB_EIO_PING && pkt->len == 5 && !memcmp(pkt->data, "probe", 5))
           || (pkt->type == OSPAB_EIO_UPGRADE && pkt->len == 0);
}

int ospab_eio_payload_next(const char *body, apr_size_t len, apr_size_t *pos,
                           const char **rec, apr_size_t *rec_len)
{
    const char *p, *sep;

    if (*pos >= len) {
        return 0;
    }
    p = body + *pos;
    sep = memchr(p, OSPAB_EIO_RECORD_SEP, len - *pos);
    *rec = p;
    *rec_len = sep ? (apr_size_t)(sep - p) : len - *pos;
    *pos += *rec_len + 1;
    return 1;
}

char *ospab_eio_payload_join(const ospab_eio_text_t *pkts, int n, apr_size_t headroom,
                             apr_size_t *len)
{
    apr_size_t total = 0;
    char *buf, *p;
    int i;

    for (i = 0; i < n; ++i) {
        total += pkts[i].len + (i ? 1 : 0);
    }
    buf = malloc(headroom + total + 1);
    if (!buf) {
        return NULL;
    }
    p = buf + headroom;
    for (i = 0; i < n; ++i) {
        if (i) {
            *p++ = OSPAB_EIO_RECORD_SEP;
        }
        if (pkts[i].len) {
            memcpy(p, pkts[i].text, pkts[i].len);
            p += pkts[i].len;
        }
    }
    *p = '\0';
    *len = total;
    return buf;
}

int ospab_eio_utf8_valid(const void *text, apr_size_t n)
{
    const unsigned char *p = text;
    apr_size_t i = 0;

    while (i < n) {
        unsigned char c = p[i];
        apr_size_t k, j;
        apr_uint32_t cp;

        if (c < 0x80) {
            ++i;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        }
        else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        }
        else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        }
        else {
            return 0;
        }
        if (n - i <= k) {
            return 0;
        }
        for (j = 1; j <= k; ++j) {
            if ((p[i + j] & 0xc0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (p[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff
            || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
        i += k + 1;
    }
    return 1;
}

const char *ospab_eio_query_problem(const char *eio, const char *transport, int *code)
{
    if (!eio || strcmp(eio, "4")) {
        *code = 5;
        return "Unsupported protocol version";
    }
    if (!transport || (strcmp(transport, "polling") && strcmp(transport, "websocket"))) {
        *code = 0;
        return "Transport unknown";
    }
    return NULL;
}

char *ospab_eio_encode_error(int code, const char *message, apr_size_t *len)
{
    json_t *j = json_pack("{siss}", "code", code, "message", message);
    char *buf = j ? prefix_json("", 0, j, 0, len) : NULL;

    json_decref(j);
    return buf;
}

char *ospab_eio_encode_open(const ospab_eio_open_t *open, apr_size_t headroom,
                            apr_size_t *len)
{
    json_t *j = json_pack("{sss[]sisisI}", "sid", open->sid, "upgrades",
                          "pingInterval", open->ping_interval_ms,
                          "pingTimeout", open->ping_timeout_ms,
                          "maxPayload", (json_int_t)open->max_payload);
    char *buf = NULL;

    if (!j) {
        return NULL;
    }
    if (!open->upgrade_websocket
        || !json_array_append_new(json_object_get(j, "upgrades"), json_string("websocket"))) {
        buf = prefix_json("0", 1, j, headroom, len);
    }
    json_decref(j);
    return buf;
}

/* ------------------------------------------------------------- Socket.IO -- */

apr_status_t ospab_sio_parse(const char *text, apr_size_t len, ospab_sio_packet_t *out,
                             const char **why)
{
    const char *p = text, *end;

    /* the rest is JSON, read as a C string: a NUL ends the packet */
    len = strnlen(text, len);
    end = text + len;
    out->type = OSPAB_SIO_CONNECT;
    out->nsp[0] = '/';
    out->nsp[1] = '\0';
    out->ack_id = -1;
    out->data = end;
    out->len = 0;
    if (len < 1 || p[0] < '0' || p[0] > '6') {
        *why = "bad Socket.IO packet type";
        return APR_EINVAL;
    }
    out->type = (ospab_sio_type_e)(*p++ - '0');
    if (p < end && *p == '/') {
        const char *comma = memchr(p, ',', (apr_size_t)(end - p));
        apr_size_t n = comma ? (apr_size_t)(comma - p) : (apr_size_t)(end - p);

        if (n > OSPAB_SIO_MAX_NSP_LEN) {
            *why = "namespace too long";
            return APR_EINVAL;
        }
        memcpy(out->nsp, p, n);
        out->nsp[n] = '\0';
        p += n + (comma ? 1 : 0);
    }
    if (p < end && *p >= '0' && *p <= '9') {
        long id = 0;

        while (p < end && *p >= '0' && *p <= '9') {
            if (id > OSPAB_SIO_ACK_ID_GUARD) {
                *why = "ack id too large";
                return APR_EINVAL;
            }
            id = id * 10 + (*p++ - '0');
        }
        out->ack_id = id;
    }
    out->data = p;
    out->len = (apr_size_t)(end - p);
    return APR_SUCCESS;
}

const char *ospab_sio_connect_token(const ospab_sio_packet_t *pkt, json_t **auth)
{
    json_t *token;

    *auth = NULL;
    if (!pkt->len) {
        return NULL;
    }
    *auth = json_loadb(pkt->data, pkt->len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    token = json_is_object(*auth) ? json_object_get(*auth, "token") : NULL;
    return json_is_string(token) ? json_string_value(token) : NULL;
}

json_t *ospab_sio_event_args(const ospab_sio_packet_t *pkt, const char **name)
{
    json_t *args = json_loadb(pkt->data, pkt->len, JSON_REJECT_DUPLICATES, NULL);

    *name = NULL;
    if (!json_is_array(args) || !json_is_string(json_array_get(args, 0))) {
        json_decref(args);
        return NULL;
    }
    *name = json_string_value(json_array_get(args, 0));
    return args;
}

char *ospab_sio_encode_connect(const char *sid, apr_size_t headroom, apr_size_t *len)
{
    json_t *j = json_pack("{ss}", "sid", sid);
    char *buf = j ? prefix_json("40", 2, j, headroom, len) : NULL;

    json_decref(j);
    return buf;
}

char *ospab_sio_encode_connect_error(const char *nsp, const char *message, apr_size_t headroom,
                                     apr_size_t *len)
{
    json_t *j = json_pack("{ss}", "message", message);
    char *text = j ? json_dumps(j, SIO_JSON_FLAGS) : NULL, *buf = NULL;
    piece_t pc[4];
    int n = 0;

    json_decref(j);
    if (!text) {
        return NULL;
    }
    pc[n].text = "44";
    pc[n++].len = 2;
    if (nsp && strcmp(nsp, "/")) {
        pc[n].text = nsp;
        pc[n++].len = strlen(nsp);
        pc[n].text = ",";
        pc[n++].len = 1;
    }
    pc[n].text = text;
    pc[n++].len = strlen(text);
    buf = pieces_join(pc, n, headroom, len);
    free(text);
    return buf;
}

char *ospab_sio_encode_event(const char *name, const json_t *data, apr_size_t headroom,
                             apr_size_t *len)
{
    json_t *jname = json_string(name);
    char *ename = jname ? json_dumps(jname, SIO_JSON_FLAGS) : NULL;
    char *edata = data ? json_dumps(data, SIO_JSON_FLAGS) : NULL, *buf = NULL;
    piece_t pc[5] = {
        { "42[", 3 }, { ename, ename ? strlen(ename) : 0 }, { ",", 1 },
        { edata ? edata : "null", edata ? strlen(edata) : 4 }, { "]", 1 }
    };

    json_decref(jname);
    /* the array is the two encoded parts joined: data is encoded once, as it is */
    if (ename && (edata || !data)) {
        buf = pieces_join(pc, 5, headroom, len);
    }
    free(ename);
    free(edata);
    return buf;
}

char *ospab_sio_encode_ack(long ack_id, const json_t *result, apr_size_t headroom,
                           apr_size_t *len)
{
    char id[24];
    char *text = result ? json_dumps(result, SIO_JSON_FLAGS) : NULL, *buf = NULL;
    piece_t pc[5];

    if (text && ack_id >= 0) {
        apr_snprintf(id, sizeof(id), "%ld", ack_id);
        pc[0].text = "43";
        pc[0].len = 2;
        pc[1].text = id;
        pc[1].len = strlen(id);
        pc[2].text = "[";
        pc[2].len = 1;
        pc[3].text = text;
        pc[3].len = strlen(text);
        pc[4].text = "]";
        pc[4].len = 1;
        buf = pieces_join(pc, 5, headroom, len);
    }
    free(text);
    return buf;
}
