/* ospab core: what the Proxmox client reads and checks without talking to Proxmox
 * (ospab_pve.h): numbers that may come as JSON strings, UPIDs, and the configured API base
 * and token. */
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "ospab_pve.h"

/* --- numbers that may be strings ---------------------------------------------------------- */

int ospab_pve_int(json_t *v, apr_int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (apr_int64_t)json_integer_value(v);
        return 1;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);

        /* 2^63 is exact as a double; integral values in range convert exactly */
        if (d >= -9223372036854775808.0 && d < 9223372036854775808.0
            && (double)(apr_int64_t)d == d) {
            *out = (apr_int64_t)d;
            return 1;
        }
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v), *digits = s + (*s == '-');
        apr_size_t n = strlen(digits);
        apr_uint64_t acc = 0, limit = *s == '-' ? (apr_uint64_t)APR_INT64_MAX + 1
                                                : (apr_uint64_t)APR_INT64_MAX;
        apr_size_t i;

        if (n == 0 || n > 19 || json_string_length(v) != strlen(s)) {
            return 0;
        }
        for (i = 0; i < n; ++i) {
            if (!apr_isdigit(digits[i])) {
                return 0;
            }
            acc = acc * 10 + (apr_uint64_t)(digits[i] - '0');   /* 19 digits fit in 64 bits */
        }
        if (acc > limit) {
            return 0;
        }
        *out = *s == '-' ? (apr_int64_t)(0 - acc) : (apr_int64_t)acc;
        return 1;
    }
    return 0;
}

/* JSON's number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int json_number_text(const char *s)
{
    if (*s == '-') {
        ++s;
    }
    if (*s == '0') {
        ++s;
    }
    else if (*s >= '1' && *s <= '9') {
        while (apr_isdigit(*s)) {
            ++s;
        }
    }
    else {
        return 0;
    }
    if (*s == '.') {
        if (!apr_isdigit(*++s)) {
            return 0;
        }
        while (apr_isdigit(*s)) {
            ++s;
        }
    }
    if (*s == 'e' || *s == 'E') {
        ++s;
        if (*s == '+' || *s == '-') {
            ++s;
        }
        if (!apr_isdigit(*s)) {
            return 0;
        }
        while (apr_isdigit(*s)) {
            ++s;
        }
    }
    return *s == '\0';
}

int ospab_pve_double(json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 1;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        json_t *num;
        json_error_t err;
        int ok;

        if (json_string_length(v) != strlen(s) || !json_number_text(s)) {
            return 0;
        }
        /* jansson converts independently of the locale's decimal point (strtod does not) */
        num = json_loads(s, JSON_DECODE_ANY, &err);
        ok = json_is_number(num);
        if (ok) {
            *out = json_number_value(num);
        }
        json_decref(num);
        return ok;
    }
    return 0;
}

/* --- UPIDs ------------------------------------------------------------------------------ */

static int hex_field(const char *s, apr_size_t n, apr_size_t min, apr_size_t max,
                     unsigned long long *out)
{
    unsigned long long v = 0;
    apr_size_t i;

    if (n < min || n > max) {
        return 0;
    }
    for (i = 0; i < n; ++i) {
        int c = (unsigned char)s[i];

        if (c >= '0' && c <= '9') {
            v = v * 16 + (unsigned)(c - '0');
        }
        else if (c >= 'A' && c <= 'F') {
            v = v * 16 + (unsigned)(c - 'A' + 10);
        }
        else if (c >= 'a' && c <= 'f') {
            v = v * 16 + (unsigned)(c - 'a' + 10);
        }
        else {
            return 0;
        }
    }
    *out = v;
    return 1;
}

/* A node name as Proxmox's upid_decode takes it: one hostname label. */
static int node_field(const char *s, apr_size_t n)
{
    apr_size_t i;

    if (n == 0 || n > 63 || !apr_isalnum(s[0]) || !apr_isalnum(s[n - 1])) {
        return 0;
    }
    for (i = 0; i < n; ++i) {
        if (!apr_isalnum(s[i]) && s[i] != '-') {
            return 0;
        }
    }
    return 1;
}

static int type_field(const char *s, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; ++i) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || apr_isdigit(s[i]) || s[i] == '_')) {
            return 0;
        }
    }
    return n > 0;
}

/* [^:\s]* as in upid_decode, and no control characters either */
static int text_field(const char *s, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; ++i) {
        unsigned char c = (unsigned char)s[i];

        if (c <= 0x20 || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

apr_status_t ospab_upid_parse(apr_pool_t *p, const char *s, ospab_upid_t *out)
{
    const char *f[7];
    apr_size_t len[7];
    const char *c, *at;
    unsigned long long pid, pstart, start;
    int i;

    if (!s || strncmp(s, "UPID:", 5)) {
        return APR_EINVAL;
    }
    c = s + 5;
    for (i = 0; i < 7; ++i) {               /* seven fields, each ended by ':' */
        const char *colon = strchr(c, ':');

        if (!colon) {
            return APR_EINVAL;
        }
        f[i] = c;
        len[i] = (apr_size_t)(colon - c);
        c = colon + 1;
    }
    if (*c != '\0') {
        return APR_EINVAL;                  /* more fields, or text after the last colon */
    }
    if (!node_field(f[0], len[0])
        || !hex_field(f[1], len[1], 8, 8, &pid)
        || !hex_field(f[2], len[2], 8, 9, &pstart)
        || !hex_field(f[3], len[3], 8, 8, &start)
        || !type_field(f[4], len[4])
        || !text_field(f[5], len[5])
        || len[6] == 0 || !text_field(f[6], len[6])) {
        return APR_EINVAL;
    }
    at = memchr(f[6], '@', len[6]);
    if (!at || at == f[6] || at == f[6] + len[6] - 1) {
        return APR_EINVAL;                  /* USER@REALM[!TOKENID] */
    }
    out->node = apr_pstrmemdup(p, f[0], len[0]);
    out->pid = (unsigned long)pid;
    out->pstart = pstart;
    out->starttime = (unsigned long)start;
    out->type = apr_pstrmemdup(p, f[4], len[4]);
    out->id = apr_pstrmemdup(p, f[5], len[5]);
    out->user = apr_pstrmemdup(p, f[6], len[6]);
    return APR_SUCCESS;
}

const char *ospab_pve_url_problem(const char *url)
{
    const char *host = url, *slash;

    if (!url || strncmp(url, "https://", 8)) {
        return "must be an https:// URL (TLS is always verified), e.g. "
               "https://pve.example.com:8006";
    }
    host = url + 8;
    slash = strchr(host, '/');
    if (!*host || host[0] == '/' || host[0] == ':' || (slash && slash[1])) {
        return "must be https://host[:port], without a path (the client adds /api2/json)";
    }
    for (; *host; ++host) {
        if (apr_isspace(*host) || apr_iscntrl(*host)) {
            return "must not contain white space";
        }
    }
    return NULL;
}

const char *ospab_pve_token_problem(const char *token)
{
    const char *at, *bang, *eq, *c;

    if (!token || !*token) {
        return "is empty";
    }
    for (c = token; *c; ++c) {
        if (apr_isspace(*c) || apr_iscntrl(*c)) {
            return "must not contain white space (USER@REALM!TOKENID=SECRET)";
        }
    }
    at = strchr(token, '@');
    bang = strchr(token, '!');
    eq = strrchr(token, '=');
    if (!at || !bang || !eq || at == token || bang < at || eq < bang || !eq[1]) {
        return "must be USER@REALM!TOKENID=SECRET (as Proxmox shows it when the token is "
               "created)";
    }
    /* TOKENID: [A-Za-z][A-Za-z0-9._-]+ (pve-access-control's TokenConfig) */
    if (eq - bang < 3 || !apr_isalpha(bang[1])) {
        return "has a token id Proxmox would not accept (a letter, then letters, digits, "
               "'.', '-' or '_')";
    }
    for (c = bang + 1; c < eq; ++c) {
        if (!apr_isalnum(*c) && *c != '.' && *c != '-' && *c != '_') {
            return "has a token id Proxmox would not accept (a letter, then letters, digits, "
                   "'.', '-' or '_')";
        }
    }
    return NULL;
}
