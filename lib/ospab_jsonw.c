/* ospab core: streaming JSON writer (strings encoded by jansson). */
#include <string.h>

#include <jansson.h>

#include "ospab_jsonw.h"

static void reserve(ospab_jw_t *w, apr_size_t n)
{
    char *nb;

    if (w->len + n + 1 <= w->cap) {
        return;
    }
    while (w->len + n + 1 > w->cap) {
        w->cap *= 2;
    }
    nb = apr_palloc(w->p, w->cap);
    memcpy(nb, w->buf, w->len);
    w->buf = nb;
}

static void put(ospab_jw_t *w, const char *s, apr_size_t n)
{
    reserve(w, n);
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

/* the comma between members, unless a key was just written */
static void value_start(ospab_jw_t *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->count[w->depth]++ > 0) {
        put(w, ",", 1);
    }
}

void ospab_jw_init(ospab_jw_t *w, apr_pool_t *p, apr_size_t hint)
{
    memset(w, 0, sizeof(*w));
    w->p = p;
    w->cap = hint > 64 ? hint : 64;
    w->buf = apr_palloc(p, w->cap);
}

static void open_level(ospab_jw_t *w, char c)
{
    value_start(w);
    put(w, &c, 1);
    if (w->depth < OSPAB_JW_MAX_DEPTH - 1) {
        w->count[++w->depth] = 0;
    }
}

static void close_level(ospab_jw_t *w, char c)
{
    put(w, &c, 1);
    if (w->depth > 0) {
        --w->depth;
    }
}

void ospab_jw_obj(ospab_jw_t *w)
{
    open_level(w, '{');
}

void ospab_jw_obj_end(ospab_jw_t *w)
{
    close_level(w, '}');
}

void ospab_jw_arr(ospab_jw_t *w)
{
    open_level(w, '[');
}

void ospab_jw_arr_end(ospab_jw_t *w)
{
    close_level(w, ']');
}

void ospab_jw_key(ospab_jw_t *w, const char *key)
{
    apr_size_t n = strlen(key);

    value_start(w);
    reserve(w, n + 3);
    w->buf[w->len++] = '"';
    memcpy(w->buf + w->len, key, n);
    w->len += n;
    w->buf[w->len++] = '"';
    w->buf[w->len++] = ':';
    w->after_key = 1;
}

void ospab_jw_null(ospab_jw_t *w)
{
    value_start(w);
    put(w, "null", 4);
}

/* Printable ASCII without '"' and '\\': the JSON text is the string itself in quotes. */
static apr_size_t plain_ascii(const char *s)
{
    const unsigned char *c = (const unsigned char *)s;

    for (; *c; ++c) {
        if (*c < 0x20 || *c > 0x7e || *c == '"' || *c == '\\') {
            return (apr_size_t)-1;
        }
    }
    return (apr_size_t)(c - (const unsigned char *)s);
}

void ospab_jw_str(ospab_jw_t *w, const char *s)
{
    json_t *js;
    apr_size_t need, n;

    if (s && (n = plain_ascii(s)) != (apr_size_t)-1) {
        /* nothing to escape: most values (statuses, addresses, timestamps) */
        value_start(w);
        reserve(w, n + 2);
        w->buf[w->len++] = '"';
        memcpy(w->buf + w->len, s, n);
        w->len += n;
        w->buf[w->len++] = '"';
        return;
    }
    if (!s || !(js = json_string(s))) {
        ospab_jw_null(w);
        return;
    }
    value_start(w);
    /* quoted and escaped by jansson straight into the buffer; at most 6 bytes per byte */
    reserve(w, 6 * strlen(s) + 2);
    need = json_dumpb(js, w->buf + w->len, w->cap - w->len - 1, JSON_ENCODE_ANY);
    json_decref(js);
    w->len += need;
}

void ospab_jw_int_text(ospab_jw_t *w, const char *s)
{
    const char *c = s;

    if (c && *c == '-') {
        ++c;
    }
    if (!c || !*c || strlen(c) > 19 || c[strspn(c, "0123456789")]) {
        ospab_jw_null(w);
        return;
    }
    value_start(w);
    put(w, s, strlen(s));
}

const char *ospab_jw_finish(ospab_jw_t *w, apr_size_t *len)
{
    w->buf[w->len] = '\0';
    if (len) {
        *len = w->len;
    }
    return w->buf;
}
