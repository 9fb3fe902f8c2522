/* ospab core: customers' SSH public keys (see ospab_sshkeys.h, docs/ssh-keys.md). */
#include <string.h>

#include <apr_base64.h>
#include <apr_strings.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>

#include "ospab_sshkeys.h"
#include "ospab_fields.h"
#include "ospab_json.h"
#include "ospab_util.h"

/* ---- parsing one key line ------------------------------------------------------------- */

typedef enum { K_ED25519, K_RSA, K_ECDSA, K_SK_ED25519, K_SK_ECDSA } kind_e;

/* The types accepted: the type word of the line and the first string of the key data. */
static const struct {
    const char *name;
    kind_e kind;
    const char *curve;          /* ECDSA: the curve's name inside the key data ... */
    int nid;                    /* ... and OpenSSL's */
    int bits;
} key_types[] = {
    { "ssh-ed25519", K_ED25519, NULL, 0, 256 },
    { "ssh-rsa", K_RSA, NULL, 0, 0 },
    { "ecdsa-sha2-nistp256", K_ECDSA, "nistp256", NID_X9_62_prime256v1, 256 },
    { "ecdsa-sha2-nistp384", K_ECDSA, "nistp384", NID_secp384r1, 384 },
    { "ecdsa-sha2-nistp521", K_ECDSA, "nistp521", NID_secp521r1, 521 },
    { "sk-ssh-ed25519@openssh.com", K_SK_ED25519, NULL, 0, 256 },
    { "sk-ecdsa-sha2-nistp256@openssh.com", K_SK_ECDSA, "nistp256", NID_X9_62_prime256v1, 256 },
};
#define N_TYPES ((int)(sizeof(key_types) / sizeof(key_types[0])))

#define ACCEPTED "ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, " \
                 "ecdsa-sha2-nistp521, sk-ssh-ed25519@openssh.com, " \
                 "sk-ecdsa-sha2-nistp256@openssh.com"
#define NOT_A_KEY "not an OpenSSH public key: "

static int type_index(const char *word)
{
    int i;

    for (i = 0; i < N_TYPES; ++i) {
        if (!strcmp(key_types[i].name, word)) {
            return i;
        }
    }
    return -1;
}

/* Words of other key formats that may start a line someone pastes by mistake. */
static int known_elsewhere(const char *word)
{
    return !strcmp(word, "ssh-dss") || strstr(word, "-cert-v01@openssh.com") != NULL;
}

/* The key data: uint32 length-prefixed strings (RFC 4251 section 5). */
typedef struct {
    const unsigned char *at;
    apr_size_t left;
} reader_t;

static int read_string(reader_t *r, const unsigned char **s, apr_size_t *n)
{
    apr_uint32_t len;

    if (r->left < 4) {
        return 0;
    }
    len = ((apr_uint32_t)r->at[0] << 24) | ((apr_uint32_t)r->at[1] << 16)
          | ((apr_uint32_t)r->at[2] << 8) | (apr_uint32_t)r->at[3];
    if (len > r->left - 4) {
        return 0;
    }
    *s = r->at + 4;
    *n = len;
    r->at += 4 + (apr_size_t)len;
    r->left -= 4 + (apr_size_t)len;
    return 1;
}

static int string_is(const unsigned char *s, apr_size_t n, const char *what)
{
    return n == strlen(what) && !memcmp(s, what, n);
}

/* An mpint (RFC 4251): positive and minimal (a leading 0 only before a set high bit).
 * 0 when it is not; else *bits, its size. */
static int read_mpint(reader_t *r, int *bits)
{
    const unsigned char *s;
    apr_size_t n;
    int b;

    if (!read_string(r, &s, &n) || n == 0 || (s[0] & 0x80)
        || (s[0] == 0 && (n == 1 || !(s[1] & 0x80)))) {
        return 0;
    }
    if (s[0] == 0) {
        ++s;
        --n;
    }
    if (n > OSPAB_SSHKEY_RSA_MAX_BITS / 8 + 1) {
        *bits = OSPAB_SSHKEY_RSA_MAX_BITS + 1;
        return 1;
    }
    for (b = 8; b > 0 && !(s[0] & (1u << (b - 1))); --b) {
    }
    *bits = (int)(n - 1) * 8 + b;
    return 1;
}

/* An ECDSA public point: uncompressed, on the curve, not the point at infinity (OpenSSL). */
static int ec_point_ok(int nid, const unsigned char *q, apr_size_t n)
{
    EC_GROUP *g = EC_GROUP_new_by_curve_name(nid);
    EC_POINT *pt = g ? EC_POINT_new(g) : NULL;
    int ok = pt && n > 0 && q[0] == 0x04 && EC_POINT_oct2point(g, pt, q, n, NULL) == 1
             && !EC_POINT_is_at_infinity(g, pt) && EC_POINT_is_on_curve(g, pt, NULL) == 1;

    EC_POINT_free(pt);
    EC_GROUP_free(g);
    /* a refused point leaves OpenSSL's reasons queued for this thread: not for libcurl's
     * next TLS handshake to find */
    ERR_clear_error();
    return ok;
}

/* A string with no NUL (OpenSSH's sshbuf_get_cstring), e.g. a security key's application. */
static int read_cstring(reader_t *r)
{
    const unsigned char *s;
    apr_size_t n;

    return read_string(r, &s, &n) && !memchr(s, 0, n);
}

/* What follows the type string in the key data of key_types[t]; NULL when it is right. */
static const char *check_data(apr_pool_t *p, int t, reader_t *r, int *bits)
{
    const unsigned char *s;
    apr_size_t n;
    int e_bits;

    *bits = key_types[t].bits;
    switch (key_types[t].kind) {
    case K_ED25519:
    case K_SK_ED25519:
        if (!read_string(r, &s, &n)) {
            return NOT_A_KEY "the key data is truncated";
        }
        if (n != 32) {
            return NOT_A_KEY "an Ed25519 key is 32 bytes";
        }
        break;
    case K_RSA:
        /* e, then n */
        if (!read_mpint(r, &e_bits) || !read_mpint(r, bits)) {
            return NOT_A_KEY "the RSA numbers are truncated or malformed";
        }
        if (e_bits < 2 || e_bits > 64) {
            return NOT_A_KEY "the RSA exponent is not one a key can have";
        }
        if (*bits < OSPAB_SSHKEY_RSA_MIN_BITS) {
            return apr_psprintf(p, "RSA keys must be at least %d bits (this one has %d): make "
                                "a new one with ssh-keygen -t ed25519 (or -t rsa -b 4096)",
                                OSPAB_SSHKEY_RSA_MIN_BITS, *bits);
        }
        if (*bits > OSPAB_SSHKEY_RSA_MAX_BITS) {
            return apr_psprintf(p, "RSA keys may have at most %d bits",
                                OSPAB_SSHKEY_RSA_MAX_BITS);
        }
        break;
    case K_ECDSA:
    case K_SK_ECDSA:
        if (!read_string(r, &s, &n)) {
            return NOT_A_KEY "the key data is truncated";
        }
        if (!string_is(s, n, key_types[t].curve)) {
            return apr_psprintf(p, NOT_A_KEY "the key data's curve is not %s, as its type %s "
                                "says", key_types[t].curve, key_types[t].name);
        }
        if (!read_string(r, &s, &n)) {
            return NOT_A_KEY "the key data is truncated";
        }
        if (!ec_point_ok(key_types[t].nid, s, n)) {
            return apr_psprintf(p, NOT_A_KEY "the key's point is not on the curve %s",
                                key_types[t].curve);
        }
        break;
    }
    if ((key_types[t].kind == K_SK_ED25519 || key_types[t].kind == K_SK_ECDSA)
        && !read_cstring(r)) {
        return NOT_A_KEY "the security key's application is missing";
    }
    if (r->left) {
        return NOT_A_KEY "there are bytes after the key in its key data";
    }
    return NULL;
}

/* The key data as bytes: canonical base64 only (apr_base64_decode stops at the first byte
 * that is not base64 and ignores stray bits, so the decoded bytes must encode back to
 * exactly what was sent). */
static int decode_base64(apr_pool_t *p, const char *b64, unsigned char **out, apr_size_t *n)
{
    char *again;
    int len;

    *out = apr_palloc(p, (apr_size_t)apr_base64_decode_len(b64) + 4);
    len = apr_base64_decode_binary(*out, b64);
    if (len <= 0) {
        return 0;
    }
    again = apr_palloc(p, (apr_size_t)apr_base64_encode_len(len));
    apr_base64_encode_binary(again, *out, len);
    *n = (apr_size_t)len;
    return !strcmp(again, b64);
}

/* "SHA256:<unpadded base64>" of the key data, as ssh-keygen -lf prints it. */
static const char *fingerprint(apr_pool_t *p, const unsigned char *data, apr_size_t n)
{
    unsigned char d[OSPAB_SHA256_LEN];
    char *b64 = apr_palloc(p, (apr_size_t)apr_base64_encode_len(OSPAB_SHA256_LEN));
    char *end;

    ospab_sha256(data, n, d);
    apr_base64_encode_binary(b64, d, OSPAB_SHA256_LEN);
    if ((end = strchr(b64, '=')) != NULL) {
        *end = '\0';
    }
    return apr_pstrcat(p, "SHA256:", b64, NULL);
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* The next word of *at (up to a space or tab), *at moved past the blanks after it; NULL at
 * the end. */
static char *next_word(apr_pool_t *p, const char **at)
{
    const char *s = *at, *e;

    while (is_blank(*s)) {
        ++s;
    }
    if (!*s) {
        *at = s;
        return NULL;
    }
    for (e = s; *e && !is_blank(*e); ++e) {
    }
    *at = e;
    while (is_blank(**at)) {
        ++*at;
    }
    return apr_pstrmemdup(p, s, (apr_size_t)(e - s));
}

/* A line whose first word is no key type: say what it looks like. */
static const char *not_a_type(apr_pool_t *p, const char *word, const char *rest)
{
    const char *w;

    if (!strcmp(word, "ssh-dss")) {
        return "DSA keys (ssh-dss) are not accepted (OpenSSH no longer supports them): make "
               "a new key with ssh-keygen -t ed25519";
    }
    if (known_elsewhere(word)) {
        return "SSH certificates are not accepted: paste the plain public key (the .pub file "
               "without -cert)";
    }
    /* authorized_keys options (command="...", from=..., no-pty) come before the type */
    while ((w = next_word(p, &rest)) != NULL) {
        if (type_index(w) >= 0 || known_elsewhere(w)) {
            return "authorized_keys options (command=, from=, no-pty, ...) are not accepted: "
                   "paste the key alone, as its .pub file has it";
        }
    }
    if (!strncmp(word, "AAAA", 4)) {
        return NOT_A_KEY "the key type (ssh-ed25519, ssh-rsa, ...) is missing before the key "
               "data";
    }
    if (strlen(word) <= 40 && ospab_key_ok(word, 40)) {
        return apr_psprintf(p, NOT_A_KEY "unknown key type '%s' (accepted: " ACCEPTED ")",
                            word);
    }
    return NOT_A_KEY "it must start with a key type (accepted: " ACCEPTED ")";
}

const char *ospab_sshkey_parse(apr_pool_t *p, const char *text, apr_size_t len,
                               ospab_sshkey_t *key)
{
    const char *s, *e, *rest;
    char *line, *type, *b64;
    unsigned char *data;
    apr_size_t n, i;
    reader_t r;
    const unsigned char *ts;
    apr_size_t tn;
    int t;

    memset(key, 0, sizeof(*key));
    if (len > OSPAB_SSHKEY_MAX_LINE) {
        return apr_psprintf(p, "must be at most %d bytes: one line of a .pub file",
                            OSPAB_SSHKEY_MAX_LINE);
    }
    if (memchr(text, '\0', len)) {
        return "must not contain NUL characters";
    }
    line = apr_pstrmemdup(p, text, len);
    if (strstr(line, "PRIVATE KEY-----") || strstr(line, "PuTTY-User-Key-File-")) {
        return "this is a private key: paste the .pub file (and keep the private key to "
               "yourself)";
    }
    if (strstr(line, "---- BEGIN SSH2 PUBLIC KEY ----")) {
        return NOT_A_KEY "this is an SSH2 (RFC 4716) key: convert it with ssh-keygen -i -f "
               "FILE and paste what it prints";
    }
    if (strstr(line, "-----BEGIN ")) {
        return NOT_A_KEY "this is a PEM file: convert a public key with ssh-keygen -i -m "
               "PKCS8 -f FILE and paste what it prints";
    }
    /* white space and a line end around the line */
    for (s = line; *s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'; ++s) {
    }
    for (e = line + len; e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'
                                   || e[-1] == '\n'); --e) {
    }
    if (s == e) {
        return "must not be empty";
    }
    for (i = 0; s + i < e; ++i) {
        unsigned char c = (unsigned char)s[i];

        if (c == '\n' || c == '\r') {
            return "must be one line: paste one key at a time";
        }
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return "must not contain control characters";
        }
    }
    line = apr_pstrmemdup(p, s, (apr_size_t)(e - s));
    rest = line;
    type = next_word(p, &rest);
    if ((t = type_index(type)) < 0) {
        return not_a_type(p, type, rest);
    }
    if (!(b64 = next_word(p, &rest))) {
        return apr_psprintf(p, NOT_A_KEY "the key data is missing after %s", type);
    }
    if (!decode_base64(p, b64, &data, &n)) {
        return NOT_A_KEY "the key data is not valid base64";
    }
    r.at = data;
    r.left = n;
    if (!read_string(&r, &ts, &tn)) {
        return NOT_A_KEY "the key data is truncated";
    }
    if (!string_is(ts, tn, type)) {
        char *inner = apr_pstrmemdup(p, (const char *)ts, tn);

        return ospab_key_ok(inner, 40)
               ? apr_psprintf(p, NOT_A_KEY "the key data is of type %s, not %s", inner, type)
               : apr_psprintf(p, NOT_A_KEY "the key data is not of type %s", type);
    }
    if ((s = check_data(p, t, &r, &key->bits)) != NULL) {
        return s;
    }
    /* the rest of the line is the comment, spaces inside it kept */
    if (*rest) {
        if (!ospab_text_ok(rest, 1, (apr_size_t)-1)) {
            return "the comment after the key must be printable text (tabs are not)";
        }
        if (!ospab_text_ok(rest, 1, OSPAB_SSHKEY_MAX_COMMENT)) {
            return apr_psprintf(p, "the comment after the key may have at most %d characters",
                                OSPAB_SSHKEY_MAX_COMMENT);
        }
        key->comment = rest;
    }
    key->type = key_types[t].name;
    key->base64 = b64;
    key->fingerprint = fingerprint(p, data, n);
    key->line = key->comment ? apr_pstrcat(p, key->type, " ", b64, " ", key->comment, NULL)
                             : apr_pstrcat(p, key->type, " ", b64, NULL);
    return NULL;
}

/* ---- the routes ------------------------------------------------------------------------ */

/* ssh_keys rows as the statements select them: id, name, public_key, fingerprint,
 * created_at */
typedef struct {
    const char *id, *name, *public_key, *fingerprint, *created_at;
} key_row_t;

static const apr_size_t key_cols[] = {
    APR_OFFSETOF(key_row_t, id), APR_OFFSETOF(key_row_t, name),
    APR_OFFSETOF(key_row_t, public_key), APR_OFFSETOF(key_row_t, fingerprint),
    APR_OFFSETOF(key_row_t, created_at),
};
static const ospab_row_shape_t key_row = OSPAB_ROW_SHAPE(key_cols, key_row_t,
                                                         OSPAB_ROW_NO_RAW);

/* A key as the API shows it. The type and comment are the stored line's first and third
 * fields (the line was normalised when it was added: single spaces). */
static json_t *key_json(apr_pool_t *p, const key_row_t *k)
{
    const char *sp = strchr(k->public_key, ' ');
    const char *comment = sp ? strchr(sp + 1, ' ') : NULL;

    return json_pack("{s:I, s:s, s:s%, s:s, s:o, s:s, s:s}",
                     "id", (json_int_t)apr_atoi64(k->id), "name", k->name,
                     "type", k->public_key, (size_t)(sp ? sp - k->public_key : 0),
                     "fingerprint", k->fingerprint,
                     "comment", ospab_json_str_or_null(comment ? comment + 1 : NULL),
                     "publicKey", k->public_key,
                     "createdAt", ospab_time_api(p, k->created_at));
}

void ospab_sshkeys_list(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                        ospab_result_t *res)
{
    const char *uid = who->user_id;
    apr_array_header_t *rows;
    json_t *list;
    int i;

    memset(res, 0, sizeof(*res));
    if (ospab_db_select(db, p, "ospab_sshkey_list", 1, &uid, &rows, NULL) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    list = json_array();
    for (i = 0; i < rows->nelts; ++i) {
        key_row_t k;

        ospab_row_fill(&key_row, APR_ARRAY_IDX(rows, i, ospab_row_t), &k);
        json_array_append_new(list, key_json(p, &k));
    }
    res->status = 200;
    res->body = ospab_json_own(p, list);
}

/* The add request's fields: NULL when they are right (*key parsed, *name chosen), else a
 * new object of per-field messages. */
static json_t *read_add(apr_pool_t *p, json_t *body, ospab_sshkey_t *key, const char **name)
{
    json_t *errors = json_object(), *v;
    const char *field, *why;

    *name = NULL;
    memset(key, 0, sizeof(*key));
    if (!json_is_object(body)) {
        json_object_set_new(errors, "body", json_string("must be a JSON object"));
        return errors;
    }
    json_object_foreach(body, field, v) {
        if (strcmp(field, "name") && strcmp(field, "publicKey")) {
            json_object_set_new(errors, ospab_text_ok(field, 1, 64) ? field : "(unprintable)",
                                json_string("unknown field"));
        }
    }
    v = json_object_get(body, "publicKey");
    if (!v) {
        json_object_set_new(errors, "publicKey", json_string("is required"));
    }
    else if (!json_is_string(v)) {
        json_object_set_new(errors, "publicKey", json_string("must be a string: one line "
                                                             "of a .pub file"));
    }
    else if ((why = ospab_sshkey_parse(p, json_string_value(v), json_string_length(v), key))) {
        json_object_set_new(errors, "publicKey", json_string(why));
    }
    v = json_object_get(body, "name");
    if (v && !json_is_null(v)) {
        const char *s = json_string_value(v);

        if (!s || !ospab_text_ok(s, 1, OSPAB_SSHKEY_MAX_NAME) || !s[strspn(s, " ")]) {
            json_object_set_new(errors, "name", json_string(apr_psprintf(p, "must be 1 to %d "
                                "printable characters", OSPAB_SSHKEY_MAX_NAME)));
        }
        *name = s;
    }
    else if (key->line) {
        /* no name: the comment names the key (ssh-keygen's is "user@host") */
        if (key->comment && ospab_text_ok(key->comment, 1, OSPAB_SSHKEY_MAX_NAME)) {
            *name = key->comment;
        }
        else {
            json_object_set_new(errors, "name", json_string(key->comment
                                ? apr_psprintf(p, "is required: the key's comment is longer "
                                               "than %d characters", OSPAB_SSHKEY_MAX_NAME)
                                : "is required: the key has no comment to name it by"));
        }
    }
    if (json_object_size(errors)) {
        return errors;
    }
    json_decref(errors);
    return NULL;
}

void ospab_sshkeys_add(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                       const ospab_actor_t *a, json_t *body, ospab_result_t *res)
{
    ospab_sshkey_t key;
    const char *uid = who->user_id;
    const char *name, *same[2], *args[5], *count = NULL, *id = NULL;
    const char *now = ospab_time_db(p, a->now);
    json_t *errors = read_add(p, body, &key, &name);
    key_row_t *dup = NULL, made;
    int locked = 0;

    memset(res, 0, sizeof(*res));
    if (errors) {
        ospab_result_error(p, res, 400, ospab_fields_summary(p, "SSH key", errors), errors);
        return;
    }
    same[0] = who->user_id;
    same[1] = key.fingerprint;
    /* the account's row lock first: two adds of one account queue here, so the count and
     * the duplicate check see what the one before committed */
    if (ospab_db_begin(db, p) != APR_SUCCESS
        || ospab_db_exec(db, p, "ospab_user_lock", 1, &uid, &locked) != APR_SUCCESS
        || (locked && (ospab_db_load(db, p, "ospab_sshkey_same", 2, same, &key_row,
                                     (void **)&dup) != APR_SUCCESS
                       || ospab_db_select_value(db, p, "ospab_sshkey_count", 1,
                                                &uid, &count) != APR_SUCCESS))) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!locked) {
        /* the account went between the token's check and now */
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 404, "user not found", NULL);
        return;
    }
    if (dup) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 409, apr_psprintf(p, "this key is saved already, as '%s' "
                           "(id %s)", dup->name, dup->id), NULL);
        return;
    }
    if (count && apr_atoi64(count) >= OSPAB_SSHKEY_PER_USER) {
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 409, apr_psprintf(p, "you have %s SSH keys, the most one "
                           "account may keep: delete one first", count), NULL);
        return;
    }
    args[0] = who->user_id;
    args[1] = name;
    args[2] = key.line;
    args[3] = key.fingerprint;
    args[4] = now;
    if (ospab_db_exec(db, p, "ospab_sshkey_insert", 5, args, NULL) != APR_SUCCESS) {
        if (ospab_db_is_constraint(db) && !db->conflict) {
            /* ux_ssh_keys_user_fingerprint: a writer that did not take the row lock */
            ospab_db_end(db, 0);
            ospab_result_error(p, res, 409, "this key is saved already", NULL);
        }
        else {
            ospab_result_db_failed(db, p, res);
        }
        return;
    }
    if (ospab_db_last_id(db, p, &id) != APR_SUCCESS
        || ospab_audit(db, p, a, "sshkey.add", "ssh_key", id,
                       json_pack("{s:s, s:s, s:s, s:s}", "user_id", who->user_id, "name", name,
                                 "type", key.type, "fingerprint", key.fingerprint))
           != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    made.id = id;
    made.name = name;
    made.public_key = key.line;
    made.fingerprint = key.fingerprint;
    made.created_at = now;
    res->status = 201;
    res->body = ospab_json_own(p, json_pack("{s:s, s:o}", "status", "success",
                                            "key", key_json(p, &made)));
}

void ospab_sshkeys_delete(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                          const ospab_actor_t *a, const char *id, ospab_result_t *res)
{
    const char *args[2];
    key_row_t *k = NULL;
    int gone = 0;

    memset(res, 0, sizeof(*res));
    args[0] = id;
    args[1] = who->user_id;
    if (ospab_db_begin(db, p) != APR_SUCCESS
        || ospab_db_load(db, p, "ospab_sshkey_owned", 2, args, &key_row, (void **)&k)
           != APR_SUCCESS
        || (k && ospab_db_exec(db, p, "ospab_sshkey_delete", 2, args, &gone) != APR_SUCCESS)) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    if (!k || !gone) {
        /* someone else's key is answered as a missing one */
        ospab_db_end(db, 0);
        ospab_result_error(p, res, 404, "SSH key not found", NULL);
        return;
    }
    if (ospab_audit(db, p, a, "sshkey.delete", "ssh_key", id,
                    json_pack("{s:s, s:s, s:s}", "user_id", who->user_id, "name", k->name,
                              "fingerprint", k->fingerprint)) != APR_SUCCESS
        || ospab_db_end(db, 1) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return;
    }
    res->status = 200;
    res->body = ospab_json_own(p, json_pack("{s:s, s:s}", "status", "success",
                                            "message", "SSH key deleted"));
}

/* ---- the keys of a new server ------------------------------------------------------------ */

static int ids_refused(apr_pool_t *p, ospab_result_t *res, const char *why)
{
    json_t *fields = json_pack("{s:s}", "sshKeyIds", why);

    ospab_result_error(p, res, 400, ospab_fields_summary(p, "request", fields), fields);
    return 1;
}

int ospab_sshkeys_for_create(ospab_db_t *db, apr_pool_t *p, const char *user_id, json_t *ids,
                             const char **keys, ospab_result_t *res)
{
    apr_array_header_t *rows;
    apr_hash_t *mine, *taken;
    const char *joined = NULL;
    json_t *v;
    size_t i;
    int j;

    *keys = NULL;
    if (!ids || json_is_null(ids) || (json_is_array(ids) && !json_array_size(ids))) {
        return 0;
    }
    if (!json_is_array(ids)) {
        return ids_refused(p, res, "must be a list of SSH key ids");
    }
    if (json_array_size(ids) > OSPAB_SSHKEY_PER_USER) {
        return ids_refused(p, res, apr_psprintf(p, "names more than %d keys",
                                                OSPAB_SSHKEY_PER_USER));
    }
    json_array_foreach(ids, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            return ids_refused(p, res, "must be a list of SSH key ids (positive integers)");
        }
    }
    /* every key of the account in one statement: at most OSPAB_SSHKEY_PER_USER rows */
    if (ospab_db_select(db, p, "ospab_sshkey_list", 1, &user_id, &rows, NULL) != APR_SUCCESS) {
        ospab_result_db_failed(db, p, res);
        return 1;
    }
    mine = apr_hash_make(p);
    for (j = 0; j < rows->nelts; ++j) {
        key_row_t k;

        ospab_row_fill(&key_row, APR_ARRAY_IDX(rows, j, ospab_row_t), &k);
        apr_hash_set(mine, k.id, APR_HASH_KEY_STRING, k.public_key);
    }
    taken = apr_hash_make(p);
    json_array_foreach(ids, i, v) {
        const char *id = apr_psprintf(p, "%" APR_INT64_T_FMT,
                                      (apr_int64_t)json_integer_value(v));
        const char *line = apr_hash_get(mine, id, APR_HASH_KEY_STRING);

        if (!line) {
            return ids_refused(p, res, apr_psprintf(p, "unknown SSH key id %s", id));
        }
        if (apr_hash_get(taken, id, APR_HASH_KEY_STRING)) {
            continue;
        }
        apr_hash_set(taken, id, APR_HASH_KEY_STRING, "");
        joined = joined ? apr_pstrcat(p, joined, "\n", line, NULL) : line;
    }
    *keys = joined;
    return 0;
}
