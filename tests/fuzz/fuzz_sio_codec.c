/* libFuzzer: the Engine.IO / Socket.IO codec (lib/ospab_sio_codec.c) on arbitrary bytes, read
 * as the agent reads a polling body: the UTF-8 check (against libunistring's u8_check), the
 * records, each record as an Engine.IO packet and a message's data as a Socket.IO packet.
 * What parses must hold its promises (namespace, ack id, data inside the input) and survive
 * a round trip through the encoders. */
#include <unistr.h>

#include "fuzz_common.h"
#include "ospab_sio_codec.h"

/* 1 if j holds a real anywhere: reals go out with ten significant digits, so one near
 * the largest double may not read back */
static int has_real(const json_t *j)
{
    const char *key;
    json_t *v;
    size_t i;

    if (json_is_real(j)) {
        return 1;
    }
    if (json_is_array(j)) {
        json_array_foreach(j, i, v) {
            if (has_real(v)) {
                return 1;
            }
        }
    }
    if (json_is_object(j)) {
        json_object_foreach((json_t *)j, key, v) {
            if (has_real(v)) {
                return 1;
            }
        }
    }
    return 0;
}

static void check_sio(const char *text, apr_size_t len)
{
    ospab_sio_packet_t pkt, again;
    const char *why = NULL, *name, *token;
    apr_size_t elen = 0, nsp_len;
    json_t *args, *auth;
    char *buf;

    if (ospab_sio_parse(text, len, &pkt, &why) != APR_SUCCESS) {
        if (!why) {
            abort();
        }
        return;
    }
    nsp_len = strlen(pkt.nsp);
    if (pkt.nsp[0] != '/' || nsp_len > OSPAB_SIO_MAX_NSP_LEN
        || pkt.ack_id < -1 || pkt.ack_id > 10 * OSPAB_SIO_ACK_ID_GUARD + 9
        || pkt.data < text || pkt.data + pkt.len > text + len
        || memchr(pkt.data, '\0', pkt.len) || (int)pkt.type < 0 || pkt.type > 6) {
        abort();
    }

    /* the namespace comes back from a connect_error */
    buf = ospab_sio_encode_connect_error(pkt.nsp, "m", 0, &elen);
    if (buf) {
        if (ospab_sio_parse(buf + 1, elen - 1, &again, &why) != APR_SUCCESS
            || again.type != OSPAB_SIO_CONNECT_ERROR || strcmp(again.nsp, pkt.nsp)
            || again.ack_id != -1) {
            abort();
        }
        free(buf);
    }
    /* and the ack id from an ack */
    if (pkt.ack_id >= 0) {
        buf = ospab_sio_encode_ack(pkt.ack_id, json_null(), 0, &elen);
        if (buf) {
            if (ospab_sio_parse(buf + 1, elen - 1, &again, &why) != APR_SUCCESS
                || again.type != OSPAB_SIO_ACK || again.ack_id != pkt.ack_id
                || again.len != 6 || memcmp(again.data, "[null]", 6)) {
                abort();
            }
            free(buf);
        }
    }

    token = ospab_sio_connect_token(&pkt, &auth);
    if (token && !auth) {
        abort();
    }
    json_decref(auth);

    args = ospab_sio_event_args(&pkt, &name);
    if (!args != !name) {
        abort();
    }
    if (args) {
        /* re-encoded, the event reads the same: its name and as many arguments */
        const json_t *data = json_array_get(args, 1);
        ospab_eio_packet_t ep;

        buf = ospab_sio_encode_event(name, data, 3, &elen);
        if (buf) {
            json_t *args2;
            const char *name2;

            if (ospab_eio_parse(buf + 3, elen, &ep) != APR_SUCCESS
                || ep.type != OSPAB_EIO_MESSAGE
                || ospab_sio_parse(ep.data, ep.len, &again, &why) != APR_SUCCESS
                || again.type != OSPAB_SIO_EVENT || again.ack_id != -1
                || strcmp(again.nsp, "/")) {
                abort();
            }
            args2 = ospab_sio_event_args(&again, &name2);
            if (args2 ? strcmp(name, name2) || json_array_size(args2) != 2 : !has_real(data)) {
                abort();
            }
            json_decref(args2);
            free(buf);
        }
        json_decref(args);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data, *rec;
    apr_size_t pos = 0, n, total = 0;
    int valid = ospab_eio_utf8_valid(data, size), count = 0;
    ospab_eio_text_t *recs = malloc(sizeof(*recs) * (size + 1));
    char *joined;

    /* the agent's own check agrees with libunistring's on every input */
    if (valid != (u8_check(data, size) == NULL)) {
        abort();
    }
    if (!recs) {
        return 0;
    }
    while (ospab_eio_payload_next(body, size, &pos, &rec, &n)) {
        ospab_eio_packet_t ep;
        apr_status_t rv;

        if (rec < body || rec + n > body + size || memchr(rec, OSPAB_EIO_RECORD_SEP, n)) {
            abort();
        }
        recs[count].text = rec;
        recs[count++].len = n;
        total += n;
        rv = ospab_eio_parse(rec, n, &ep);
        if (rv == APR_SUCCESS) {
            if (ep.data != rec + 1 || ep.len != n - 1 || (int)ep.type > 6) {
                abort();
            }
            if (ep.type == OSPAB_EIO_MESSAGE) {
                check_sio(ep.data, ep.len);
            }
        }
        else if (rv != (n ? APR_ENOTIMPL : APR_EINVAL)) {
            abort();
        }
    }
    /* the records joined again are the body (less a separator at its very end) */
    joined = ospab_eio_payload_join(recs, count, 0, &n);
    if (!joined || total + (apr_size_t)(count ? count - 1 : 0) != n
        || (n != size && !(n + 1 == size && body[n] == OSPAB_EIO_RECORD_SEP))
        || memcmp(joined, body, n)) {
        abort();
    }
    free(joined);
    free(recs);
    apr_pool_clear(fuzz_pool);
    return 0;
}
