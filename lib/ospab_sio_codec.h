/* ospab core: the Engine.IO v4 / Socket.IO v4 packet codec of the agent's live-push server
 * (monitor-agent/agent_sio.c is the transport: libwebsockets, sessions, rooms, limits).
 *
 * Text packets only, namespace "/" is the one the agent serves:
 *   Engine.IO   <type digit><data>; a polling body is packets joined by 0x1e
 *   Socket.IO   the data of an Engine.IO message (type 4): <type>[/nsp,][ack id][json]
 *
 * Parsing reads the caller's buffer and copies nothing but the namespace. The encoders
 * return the packet in a malloc'd buffer (free() it) that starts `headroom` bytes before
 * the packet's text (libwebsockets writes its frame header there, LWS_PRE) and has a NUL
 * after it; *len is the text's length. They return NULL when memory runs out or a value
 * cannot be encoded (a string that is not UTF-8). APR and jansson only. */
#ifndef OSPAB_SIO_CODEC_H
#define OSPAB_SIO_CODEC_H

#include <apr_pools.h>
#include <jansson.h>

/* ------------------------------------------------------------- Engine.IO -- */

#define OSPAB_EIO_RECORD_SEP    '\x1e'  /* between the packets of a polling payload */

/* The packets the server sends that carry nothing */
#define OSPAB_EIO_PKT_CLOSE     "1"
#define OSPAB_EIO_PKT_PING      "2"
#define OSPAB_EIO_PKT_PONG      "3"
#define OSPAB_EIO_PKT_PROBE_PONG "3probe"  /* the answer to the upgrade probe "2probe" */
#define OSPAB_EIO_PKT_NOOP      "6"

typedef enum {
    OSPAB_EIO_OPEN = 0,
    OSPAB_EIO_CLOSE = 1,
    OSPAB_EIO_PING = 2,
    OSPAB_EIO_PONG = 3,
    OSPAB_EIO_MESSAGE = 4,
    OSPAB_EIO_UPGRADE = 5,
    OSPAB_EIO_NOOP = 6
} ospab_eio_type_e;

typedef struct {
    ospab_eio_type_e type;
    const char *data;           /* what follows the type digit, in the caller's buffer */
    apr_size_t len;
} ospab_eio_packet_t;

/* One Engine.IO packet. APR_EINVAL: empty; APR_ENOTIMPL: not a type digit 0..6 (binary
 * packets "b<base64>" and garbage). */
apr_status_t ospab_eio_parse(const char *text, apr_size_t len, ospab_eio_packet_t *out);

/* 1 for the two packets a client sends on a websocket while it probes the upgrade of a
 * polling session: the ping "2probe" and the upgrade "5". */
int ospab_eio_is_probe(const ospab_eio_packet_t *pkt);

/* The records of a polling payload, one per call: *pos starts at 0. Returns 0 when the
 * body is used up, else 1 with *rec and *rec_len the next record (it may be empty; a
 * separator at the very end opens no record). */
int ospab_eio_payload_next(const char *body, apr_size_t len, apr_size_t *pos,
                           const char **rec, apr_size_t *rec_len);

/* One queued packet, for ospab_eio_payload_join. */
typedef struct {
    const char *text;
    apr_size_t len;
} ospab_eio_text_t;

/* A polling payload: the n packets joined by the record separator (n may be 0: ""). */
char *ospab_eio_payload_join(const ospab_eio_text_t *pkts, int n, apr_size_t headroom,
                             apr_size_t *len);

/* RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. A polling
 * body must be (Engine.IO payloads are text); NUL bytes are valid. */
int ospab_eio_utf8_valid(const void *text, apr_size_t len);

/* The query of an Engine.IO request: EIO=4 and transport=polling|websocket (NULL: the
 * argument is absent). NULL when fine, else the message of the refusal and *code its
 * Engine.IO error code (5: unsupported protocol version, 0: unknown transport). */
const char *ospab_eio_query_problem(const char *eio, const char *transport, int *code);

/* The body of an HTTP error answer, as the reference server's: {"code":N,"message":"..."}
 * (no headroom). */
char *ospab_eio_encode_error(int code, const char *message, apr_size_t *len);

/* What the open packet tells the client. */
typedef struct {
    const char *sid;
    int upgrade_websocket;      /* 1: "upgrades":["websocket"] (a polling session), 0: [] */
    int ping_interval_ms;
    int ping_timeout_ms;
    apr_int64_t max_payload;
} ospab_eio_open_t;

/* 0{"sid":..,"upgrades":[..],"pingInterval":..,"pingTimeout":..,"maxPayload":..} */
char *ospab_eio_encode_open(const ospab_eio_open_t *open, apr_size_t headroom,
                            apr_size_t *len);

/* ------------------------------------------------------------- Socket.IO -- */

#define OSPAB_SIO_MAX_NSP_LEN   128
/* ack ids end at ten digits: the largest is 1,000,000,009 (see ospab_sio_parse) */
#define OSPAB_SIO_ACK_ID_GUARD  100000000L

/* The server ends the client's connection on "/" ("io server disconnect"). */
#define OSPAB_SIO_PKT_DISCONNECT "41"

typedef enum {
    OSPAB_SIO_CONNECT = 0,
    OSPAB_SIO_DISCONNECT = 1,
    OSPAB_SIO_EVENT = 2,
    OSPAB_SIO_ACK = 3,
    OSPAB_SIO_CONNECT_ERROR = 4,
    OSPAB_SIO_BINARY_EVENT = 5,
    OSPAB_SIO_BINARY_ACK = 6
} ospab_sio_type_e;

typedef struct {
    ospab_sio_type_e type;
    char nsp[OSPAB_SIO_MAX_NSP_LEN + 1];   /* "/" when the packet names none */
    long ack_id;                /* -1: none */
    const char *data;           /* the rest (JSON text, may be empty), in the caller's buffer */
    apr_size_t len;
} ospab_sio_packet_t;

/* One Socket.IO packet: the data of an Engine.IO message. The text ends at len or at the
 * first NUL, whichever comes first. A namespace is "/" up to the first ',' (which is
 * skipped) or the end; an ack id is the digits after it. Every type 0..6 parses (the
 * attachment count of the binary ones is not read: the agent refuses them). APR_EINVAL
 * with *why "bad Socket.IO packet type", "namespace too long" (over OSPAB_SIO_MAX_NSP_LEN
 * bytes) or "ack id too large" (a digit after a value above OSPAB_SIO_ACK_ID_GUARD). */
apr_status_t ospab_sio_parse(const char *text, apr_size_t len, ospab_sio_packet_t *out,
                             const char **why);

/* A CONNECT's auth payload {"token": "..."}: the token, or NULL when there is no payload,
 * it is not JSON (duplicate keys refused), not an object or has no string "token". *auth
 * gets the decoded payload (NULL if none), which holds the token: json_decref it after. */
const char *ospab_sio_connect_token(const ospab_sio_packet_t *pkt, json_t **auth);

/* An EVENT's arguments: a JSON array (duplicate keys refused) whose first element is a
 * string, the event's name (*name); NULL for anything else. json_decref the result. */
json_t *ospab_sio_event_args(const ospab_sio_packet_t *pkt, const char **name);

/* 40{"sid":"<sid>"}: the connection on "/" is accepted */
char *ospab_sio_encode_connect(const char *sid, apr_size_t headroom, apr_size_t *len);
/* 44{"message":"..."}, or for another namespace than "/" 44/nsp,{"message":"..."} */
char *ospab_sio_encode_connect_error(const char *nsp, const char *message, apr_size_t headroom,
                                     apr_size_t *len);
/* 42["<name>",<data>] (data NULL: null); reals with ten significant digits, as the API */
char *ospab_sio_encode_event(const char *name, const json_t *data, apr_size_t headroom,
                             apr_size_t *len);
/* 43<ack id>[<result>] */
char *ospab_sio_encode_ack(long ack_id, const json_t *result, apr_size_t headroom,
                           apr_size_t *len);

#endif
