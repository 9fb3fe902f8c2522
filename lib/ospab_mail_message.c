/* ospab core: the RFC 5322 message the agent's mailer sends for an email_outbox row (see
 * ospab_mail.h): headers (RFC 2047 where not ASCII), a base64 body, a stable Message-ID. */
#include <string.h>
#include <stdlib.h>

#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_time.h>
#include <openssl/evp.h>

#include "ospab_mail.h"
#include "ospab_util.h"

/* an encoded-word is at most 75 characters: "=?UTF-8?B?" + 60 of base64 + "?=" */
#define WORD_BYTES 45

const char *ospab_mail_message_id(apr_pool_t *p, const char *id, const char *created_at,
                                  const char *to)
{
    const char *seed = apr_pstrcat(p, id, "|", created_at ? created_at : "", "|", to, NULL);

    return apr_psprintf(p, "<outbox-%s.%.16s@ospab>", id,
                        ospab_sha256_hex(p, seed, strlen(seed)));
}

static int is_ascii(const char *s)
{
    for (; *s; ++s) {
        if ((unsigned char)*s > 0x7e) {
            return 0;
        }
    }
    return 1;
}

/* RFC 2047 "B" encoded-words of at most 45 bytes of UTF-8 each (never splitting a
 * character), joined by folding white space. */
static const char *encode_words(apr_pool_t *p, const char *s)
{
    apr_size_t len = strlen(s), pos = 0;
    char *out = "";
    unsigned char b64[4 * WORD_BYTES / 3 + 4];

    while (pos < len) {
        apr_size_t n = len - pos > WORD_BYTES ? WORD_BYTES : len - pos;

        /* back off from the middle of a multi-byte character */
        while (pos + n < len && n > 0 && ((unsigned char)s[pos + n] & 0xc0) == 0x80) {
            --n;
        }
        EVP_EncodeBlock(b64, (const unsigned char *)s + pos, (int)n);
        out = apr_pstrcat(p, out, *out ? "\r\n " : "", "=?UTF-8?B?", (char *)b64, "?=", NULL);
        pos += n;
    }
    return out;
}

/* Subject text: as is when plain ASCII, else encoded-words. */
static const char *header_text(apr_pool_t *p, const char *s)
{
    return is_ascii(s) && !strstr(s, "=?") ? s : encode_words(p, s);
}

const char *ospab_mail_from_addr(apr_pool_t *p, const char *from)
{
    const char *lt = from ? strrchr(from, '<') : NULL, *gt;
    const char *addr;

    if (!from) {
        return NULL;
    }
    if (lt) {
        if (!(gt = strchr(lt, '>')) || gt[1]) {
            return NULL;
        }
        addr = apr_pstrndup(p, lt + 1, gt - lt - 1);
    }
    else {
        char *buf = apr_palloc(p, strlen(from) + 1);

        /* apr_collapse_spaces returns the end of what it wrote, not its start */
        apr_collapse_spaces(buf, from);
        addr = buf;
    }
    return ospab_mail_addr_ok(addr) ? addr : NULL;
}

/* The From header's value: the display name quoted or encoded as needed. */
static const char *from_header(apr_pool_t *p, const char *from, const char *addr)
{
    const char *lt = strrchr(from, '<');
    char *name;
    apr_size_t n;
    const char *c;

    if (!lt) {
        return addr;
    }
    name = apr_pstrndup(p, from, lt - from);
    n = strlen(name);
    while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t')) {
        name[--n] = '\0';
    }
    while (*name == ' ' || *name == '\t') {
        ++name;
    }
    if (!*name || !ospab_text_ok(name, 1, 200)) {
        return apr_psprintf(p, "<%s>", addr);
    }
    if (!is_ascii(name)) {
        return apr_psprintf(p, "%s <%s>", encode_words(p, name), addr);
    }
    for (c = name; *c; ++c) {
        if (!apr_isalnum(*c) && !strchr(" !#$%&'*+-/=?^_`{|}~", *c)) {
            break;
        }
    }
    if (*c) {
        /* a quoted-string: backslash before \ and " */
        char *q = apr_palloc(p, 2 * strlen(name) + 3), *w = q;

        *w++ = '"';
        for (c = name; *c; ++c) {
            if (*c == '\\' || *c == '"') {
                *w++ = '\\';
            }
            *w++ = *c;
        }
        *w++ = '"';
        *w = '\0';
        name = q;
    }
    return apr_psprintf(p, "%s <%s>", name, addr);
}

/* text (LF line ends) as CRLF text in base64, 76 characters a line */
static const char *body_base64(apr_pool_t *p, const char *text)
{
    apr_size_t len = strlen(text), i, n = 0, blen, j;
    char *crlf = apr_palloc(p, 2 * len + 3), *out, *w;
    unsigned char *b64;

    for (i = 0; i < len; ++i) {
        if (text[i] == '\n') {
            crlf[n++] = '\r';
        }
        crlf[n++] = text[i];
    }
    if (n < 2 || crlf[n - 1] != '\n') {
        crlf[n++] = '\r';
        crlf[n++] = '\n';
    }
    b64 = apr_palloc(p, 4 * ((n + 2) / 3) + 1);
    blen = (apr_size_t)EVP_EncodeBlock(b64, (const unsigned char *)crlf, (int)n);
    out = w = apr_palloc(p, blen + 2 * (blen / 76 + 1) + 1);
    for (j = 0; j < blen; j += 76) {
        apr_size_t k = blen - j > 76 ? 76 : blen - j;

        memcpy(w, b64 + j, k);
        w += k;
        *w++ = '\r';
        *w++ = '\n';
    }
    *w = '\0';
    return out;
}

const char *ospab_mail_message(apr_pool_t *p, const char *from, const char *to,
                               const char *subject, const char *text, const char *message_id,
                               apr_time_t date)
{
    const char *addr = ospab_mail_from_addr(p, from);
    apr_time_exp_t tm;

    if (!addr) {
        return NULL;
    }
    apr_time_exp_gmt(&tm, date);
    return apr_psprintf(p,
                        "Date: %s, %02d %s %d %02d:%02d:%02d +0000\r\n"
                        "From: %s\r\n"
                        "To: %s\r\n"
                        "Subject: %s\r\n"
                        "Message-ID: %s\r\n"
                        "MIME-Version: 1.0\r\n"
                        "Content-Type: text/plain; charset=utf-8\r\n"
                        "Content-Transfer-Encoding: base64\r\n"
                        "Auto-Submitted: auto-generated\r\n"
                        "\r\n%s",
                        apr_day_snames[tm.tm_wday], tm.tm_mday, apr_month_snames[tm.tm_mon],
                        tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
                        from_header(p, from, addr), to, header_text(p, subject), message_id,
                        body_base64(p, text));
}

