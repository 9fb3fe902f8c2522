/* ospab core: secrets, hashing, time, text checks. */
#include <string.h>
#include <stdlib.h>
#include <ctype.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_file_io.h>
#include <apr_env.h>
#include <apr_escape.h>
#include <apr_general.h>
#include <apr_base64.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>

#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

#include "ospab_util.h"

apr_status_t ospab_secret_resolve(apr_pool_t *p, const char *spec, const char **out,
                                  const char **err)
{
    apr_status_t rv = APR_SUCCESS;
    apr_file_t *f = NULL;
    char buf[4098];
    apr_size_t n = sizeof(buf) - 1;   /* 4096 allowed: one byte more tells "too large" */
    char *v;

    *out = NULL;
    *err = NULL;
    if (!strncmp(spec, "env:", 4)) {
        if ((rv = apr_env_get(&v, spec + 4, p)) != APR_SUCCESS || !*v) {
            *err = apr_psprintf(p, "environment variable %s is not set", spec + 4);
            return rv ? rv : APR_ENOENT;
        }
        *out = v;
        return APR_SUCCESS;
    }
    if (strncmp(spec, "file:", 5)) {
        *out = spec;
        return APR_SUCCESS;
    }
    rv = apr_file_open(&f, spec + 5, APR_FOPEN_READ, APR_FPROT_OS_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        *err = apr_psprintf(p, "cannot read %s", spec + 5);
        goto leave;
    }
    rv = apr_file_read_full(f, buf, n, &n);
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        *err = apr_psprintf(p, "cannot read %s", spec + 5);
        goto leave;
    }
    if (n > 4096) {
        *err = apr_psprintf(p, "%s is larger than 4 KiB", spec + 5);
        rv = APR_EINVAL;
        goto leave;
    }
    while (n > 0 && isspace((unsigned char)buf[n - 1])) {
        --n;
    }
    *out = apr_pstrmemdup(p, buf, n);
    rv = APR_SUCCESS;
leave:
    memset(buf, 0, sizeof(buf));
    if (f) {
        apr_file_close(f);
    }
    return rv;
}

void ospab_sha256(const void *data, apr_size_t len, unsigned char out[OSPAB_SHA256_LEN])
{
    unsigned int n = OSPAB_SHA256_LEN;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

const char *ospab_sha256_hex(apr_pool_t *p, const void *data, apr_size_t len)
{
    unsigned char d[OSPAB_SHA256_LEN];

    ospab_sha256(data, len, d);
    return apr_pescape_hex(p, d, sizeof(d), 0);
}

const char *ospab_random_hex(apr_pool_t *p, apr_size_t n)
{
    unsigned char raw[64];

    if (n > sizeof(raw)) {
        n = sizeof(raw);
    }
    apr_generate_random_bytes(raw, n);
    return apr_pescape_hex(p, raw, n, 0);
}

int ospab_key_matches(const unsigned char expected_digest[OSPAB_SHA256_LEN], const char *given)
{
    unsigned char d[OSPAB_SHA256_LEN];

    if (!given) {
        return 0;
    }
    ospab_sha256(given, strlen(given), d);
    return CRYPTO_memcmp(d, expected_digest, OSPAB_SHA256_LEN) == 0;
}

const char *ospab_time_db(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t x;

    apr_time_exp_gmt(&x, t);
    return apr_psprintf(p, "%04d-%02d-%02d %02d:%02d:%02d.%03d", x.tm_year + 1900,
                        x.tm_mon + 1, x.tm_mday, x.tm_hour, x.tm_min, x.tm_sec,
                        x.tm_usec / 1000);
}

const char *ospab_time_api(apr_pool_t *p, const char *v)
{
    /* Accepts "YYYY-MM-DD HH:MM:SS", with or without a fraction of any length. */
    char ms[4] = "000";
    apr_size_t i, len;

    if (!v) {
        return NULL;
    }
    len = strlen(v);
    if (len < 19 || v[10] != ' ') {
        return v;
    }
    if (len > 20 && v[19] == '.') {
        for (i = 0; i < 3 && isdigit((unsigned char)v[20 + i]); ++i) {
            ms[i] = v[20 + i];
        }
    }
    {
        /* fixed layout: "YYYY-MM-DDTHH:MM:SS.mmmZ" (hot: two per listed server) */
        char *out = apr_palloc(p, 25);

        memcpy(out, v, 10);
        out[10] = 'T';
        memcpy(out + 11, v + 11, 8);
        out[19] = '.';
        memcpy(out + 20, ms, 3);
        out[23] = 'Z';
        out[24] = '\0';
        return out;
    }
}

int ospab_text_ok(const char *s, apr_size_t min_chars, apr_size_t max_chars)
{
    const unsigned char *u = (const unsigned char *)s;
    apr_size_t chars = 0;

    while (*u) {
        int extra;
        unsigned char c = *u;

        if (c < 0x20 || c == 0x7f) {
            return 0;
        }
        if (c < 0x80) {
            extra = 0;
        }
        else if ((c & 0xe0) == 0xc0 && c >= 0xc2) {
            extra = 1;
        }
        else if ((c & 0xf0) == 0xe0) {
            extra = 2;
        }
        else if ((c & 0xf8) == 0xf0 && c <= 0xf4) {
            extra = 3;
        }
        else {
            return 0;
        }
        /* the second byte's range rules out overlong forms, surrogates and > U+10FFFF */
        if ((c == 0xe0 && u[1] < 0xa0) || (c == 0xed && u[1] > 0x9f)
            || (c == 0xf0 && u[1] < 0x90) || (c == 0xf4 && u[1] > 0x8f)) {
            return 0;
        }
        ++u;
        while (extra-- > 0) {
            if ((*u & 0xc0) != 0x80) {
                return 0;
            }
            ++u;
        }
        /* C1 control characters (U+0080..U+009F) are not printable either */
        if (c == 0xc2 && u[-1] < 0xa0) {
            return 0;
        }
        if (++chars > max_chars) {
            return 0;
        }
    }
    return chars >= min_chars;
}

int ospab_parse_id(const char *s, apr_int64_t *out)
{
    apr_int64_t v = 0;
    int n = 0;

    if (!s || !*s) {
        return -1;
    }
    for (; *s; ++s, ++n) {
        if (!isdigit((unsigned char)*s) || n >= 15) {
            return -1;
        }
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return 0;
}

const char *ospab_email_key(apr_pool_t *p, const char *email)
{
    const uint8_t *s = (const uint8_t *)email, *start, *end;
    uint8_t *lower;
    char *key;
    size_t n = email ? strlen(email) : 0, len = 0;
    ucs4_t uc;
    int k;

    if (!n || u8_check(s, n)) {
        return NULL;
    }
    /* trim white space (Unicode's White_Space: NBSP and ideographic space too) */
    start = s;
    end = s + n;
    while (start < end && (k = u8_mbtouc(&uc, start, (size_t)(end - start))) > 0
           && uc_is_property_white_space(uc)) {
        start += k;
    }
    while (end > start) {
        const uint8_t *prev = u8_prev(&uc, end, start);

        if (!prev || !uc_is_property_white_space(uc)) {
            break;
        }
        end = prev;
    }
    if (start == end) {
        return NULL;
    }
    lower = u8_tolower(start, (size_t)(end - start), NULL, UNINORM_NFC, NULL, &len);
    if (!lower) {
        return NULL;
    }
    key = apr_pstrmemdup(p, (const char *)lower, len);
    free(lower);
    return key;
}

apr_time_t ospab_time_parse_db(const char *s)
{
    apr_time_exp_t tm;
    apr_time_t t;
    int y, mo, d, h, mi, sec, ms = 0, n;

    if (!s || (n = sscanf(s, "%4d-%2d-%2d %2d:%2d:%2d.%3d", &y, &mo, &d, &h, &mi, &sec, &ms))
              < 6) {
        return 0;
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    if (apr_time_exp_gmt_get(&t, &tm) != APR_SUCCESS) {
        return 0;
    }
    return t + apr_time_from_msec(n == 7 && ms >= 0 && ms < 1000 ? ms : 0);
}

int ospab_key_ok(const char *k, apr_size_t max)
{
    apr_size_t n = k ? strlen(k) : 0, i;

    if (n < 1 || n > max || k[0] == ' ' || k[n - 1] == ' ') {
        return 0;
    }
    for (i = 0; i < n; ++i) {
        if (k[i] < 0x20 || k[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

apr_uint64_t ospab_key_hash64(const char *key)
{
    unsigned char d[OSPAB_SHA256_LEN];
    apr_uint64_t v;

    ospab_sha256(key, strlen(key), d);
    memcpy(&v, d, sizeof(v));
    return v ? v : 1;
}

int ospab_id_chars_ok(const char *s)
{
    for (; *s; ++s) {
        if (!apr_isalnum(*s) && *s != '-' && *s != '_' && *s != '.') {
            return 0;
        }
    }
    return 1;
}

const char *ospab_random_token(apr_pool_t *p, apr_size_t n)
{
    unsigned char raw[48];
    char *s, *c;

    if (n > sizeof(raw)) {
        n = sizeof(raw);
    }
    s = apr_palloc(p, (apr_size_t)apr_base64_encode_len((int)n));
    apr_generate_random_bytes(raw, n);
    apr_base64_encode(s, (const char *)raw, (int)n);
    memset(raw, 0, sizeof(raw));
    for (c = s; *c; ++c) {
        if (*c == '+') {
            *c = '-';
        }
        else if (*c == '/') {
            *c = '_';
        }
        else if (*c == '=') {
            *c = '\0';
            break;
        }
    }
    return s;
}
