/* ospab core: AES-256-GCM sealing of secrets kept in the database (ospab_seal.h). */
#include <string.h>

#include <apr_base64.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ospab_seal.h"
#include "ospab_util.h"

#define NONCE_LEN 12
#define TAG_LEN   16
#define PREFIX    "v1:"
#define MAX_PLAIN 4096          /* a token is far shorter; bounds what unseal allocates */

struct ospab_seal_key_t {
    unsigned char k[OSPAB_SEAL_KEY_LEN];
};

/* The key's memory is wiped when its pool goes. */
static apr_status_t key_wipe(void *data)
{
    OPENSSL_cleanse(data, sizeof(ospab_seal_key_t));
    return APR_SUCCESS;
}

const ospab_seal_key_t *ospab_seal_key_make(apr_pool_t *p,
                                            const unsigned char raw[OSPAB_SEAL_KEY_LEN])
{
    ospab_seal_key_t *key = apr_palloc(p, sizeof(*key));

    memcpy(key->k, raw, sizeof(key->k));
    apr_pool_cleanup_register(p, key, key_wipe, apr_pool_cleanup_null);
    return key;
}

static int hex_value(char c)
{
    return apr_isdigit(c) ? c - '0' : apr_isxdigit(c) ? (apr_tolower(c) - 'a' + 10) : -1;
}

apr_status_t ospab_seal_key_load(apr_pool_t *p, const char *spec, const ospab_seal_key_t **key,
                                 const char **why)
{
    unsigned char raw[OSPAB_SEAL_KEY_LEN];
    const char *text, *err = NULL;
    apr_size_t i;

    *key = NULL;
    if (!spec || strncmp(spec, "file:", 5) || !spec[5]) {
        *why = "the secret key must be given as file:/path";
        return APR_EINVAL;
    }
    if (ospab_secret_resolve(p, spec, &text, &err) != APR_SUCCESS) {
        *why = err;
        return APR_EINVAL;
    }
    while (apr_isspace(*text)) {
        ++text;
    }
    for (i = 0; i < OSPAB_SEAL_KEY_LEN; ++i) {
        int hi = hex_value(text[2 * i]), lo = hi < 0 ? -1 : hex_value(text[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            break;
        }
        raw[i] = (unsigned char)(hi << 4 | lo);
    }
    if (i != OSPAB_SEAL_KEY_LEN || text[2 * i]) {
        OPENSSL_cleanse(raw, sizeof(raw));
        *why = apr_psprintf(p, "%s must hold 64 hexadecimal digits (openssl rand -hex 32)",
                            spec + 5);
        return APR_EINVAL;
    }
    *key = ospab_seal_key_make(p, raw);
    OPENSSL_cleanse(raw, sizeof(raw));
    return APR_SUCCESS;
}

/* One AES-256-GCM pass: enc 1 seals in -> out and writes tag; enc 0 opens and checks tag.
 * 0 on success. */
static int gcm(int enc, const ospab_seal_key_t *key, const unsigned char *nonce,
               const char *aad, const unsigned char *in, int len, unsigned char *out,
               unsigned char *tag)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0, ok;

    ok = ctx
        && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1
        && EVP_CipherInit_ex(ctx, NULL, NULL, key->k, nonce, enc) == 1
        && EVP_CipherUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) == 1
        && EVP_CipherUpdate(ctx, out, &n, in, len) == 1
        && (enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1)
        && EVP_CipherFinal_ex(ctx, out + n, &fin) == 1
        && (!enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1);
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -1;
}

const char *ospab_seal(apr_pool_t *p, const ospab_seal_key_t *key, const char *aad,
                       const char *plain)
{
    apr_size_t len = strlen(plain);
    unsigned char *buf;
    char *out;

    if (len > MAX_PLAIN) {
        return NULL;
    }
    buf = apr_palloc(p, NONCE_LEN + len + TAG_LEN);
    if (RAND_bytes(buf, NONCE_LEN) != 1
        || gcm(1, key, buf, aad, (const unsigned char *)plain, (int)len, buf + NONCE_LEN,
               buf + NONCE_LEN + len)) {
        return NULL;
    }
    out = apr_palloc(p, sizeof(PREFIX) - 1 + apr_base64_encode_len(NONCE_LEN + len + TAG_LEN));
    memcpy(out, PREFIX, sizeof(PREFIX) - 1);
    apr_base64_encode_binary(out + sizeof(PREFIX) - 1, buf, (int)(NONCE_LEN + len + TAG_LEN));
    return out;
}

const char *ospab_unseal(apr_pool_t *p, const ospab_seal_key_t *key, const char *aad,
                         const char *sealed)
{
    const char *b64, *c;
    unsigned char *buf;
    char *plain;
    int n;

    if (!sealed || strncmp(sealed, PREFIX, sizeof(PREFIX) - 1)) {
        return NULL;
    }
    b64 = sealed + sizeof(PREFIX) - 1;
    for (c = b64; *c; ++c) {    /* apr_base64_decode skips nothing: refuse what is not */
        if (!apr_isalnum(*c) && *c != '+' && *c != '/' && *c != '=') {
            return NULL;
        }
    }
    if (c - b64 > apr_base64_encode_len(NONCE_LEN + MAX_PLAIN + TAG_LEN)) {
        return NULL;
    }
    buf = apr_palloc(p, (apr_size_t)apr_base64_decode_len(b64));
    n = apr_base64_decode_binary(buf, b64);
    if (n < NONCE_LEN + TAG_LEN) {
        return NULL;
    }
    n -= NONCE_LEN + TAG_LEN;
    plain = apr_palloc(p, (apr_size_t)n + 1);
    if (gcm(0, key, buf, aad, buf + NONCE_LEN, n, (unsigned char *)plain,
            buf + NONCE_LEN + n)) {
        OPENSSL_cleanse(plain, (apr_size_t)n);
        return NULL;
    }
    plain[n] = '\0';
    if (strlen(plain) != (apr_size_t)n) {   /* a NUL inside: not something we sealed */
        return NULL;
    }
    return plain;
}
