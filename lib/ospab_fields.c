/* ospab core: table-driven field validation. */
#include <string.h>
#include <ctype.h>
#include <arpa/inet.h>

#include <apr_strings.h>

#include "ospab_fields.h"
#include "ospab_util.h"

static const char *choices_text(apr_pool_t *p, const char *const *c)
{
    const char *s = NULL;

    for (; *c; ++c) {
        s = s ? apr_pstrcat(p, s, ", ", *c, NULL) : *c;
    }
    return s;
}

static int node_name_ok(const char *s)
{
    /* Proxmox's pve-node format: a DNS label-like name */
    apr_size_t n = strlen(s), i;

    if (n < 1 || n > 63 || !isalnum((unsigned char)s[0])) {
        return 0;
    }
    for (i = 0; i < n; ++i) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.') {
            return 0;
        }
    }
    return 1;
}

static int email_ok(const char *s)
{
    const char *at = strchr(s, '@');
    const char *c;

    if (!at || at == s || !at[1] || strchr(at + 1, '@') || strlen(s) > 255
        || !strchr(at + 1, '.') || at[1] == '.' || s[strlen(s) - 1] == '.') {
        return 0;
    }
    for (c = s; *c; ++c) {
        if ((unsigned char)*c <= 0x20 || *c == 0x7f || *c == '<' || *c == '>' || *c == ',') {
            return 0;
        }
    }
    return ospab_text_ok(s, 3, 255);
}

static const char *check_value(apr_pool_t *p, const ospab_field_t *f, json_t *v,
                               const char **out)
{
    const char *s;

    switch (f->type) {
    case OSPAB_FT_INT: {
        json_int_t i;

        const char *what = f->unit ? apr_pstrcat(p, "an integer number of ", f->unit, NULL)
                                   : "an integer";

        if (!json_is_integer(v)) {
            return apr_psprintf(p, "must be %s between %" APR_INT64_T_FMT " and %" APR_INT64_T_FMT,
                                what, (apr_int64_t)f->min, (apr_int64_t)f->max);
        }
        i = json_integer_value(v);
        if (i < f->min && f->too_small) {
            return apr_psprintf(p, "must be %s (got %" APR_INT64_T_FMT "; %s)", what,
                                (apr_int64_t)i, f->too_small);
        }
        if (i < f->min || i > f->max) {
            return apr_psprintf(p, "must be %s between %" APR_INT64_T_FMT " and %" APR_INT64_T_FMT,
                                what, (apr_int64_t)f->min, (apr_int64_t)f->max);
        }
        /* APR's formatter knows no "%lld": use its own 64-bit format */
        *out = apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)i);
        return NULL;
    }
    case OSPAB_FT_BOOL:
        if (!json_is_boolean(v)) {
            return "must be true or false";
        }
        *out = json_is_true(v) ? "1" : "0";
        return NULL;
    default:
        break;
    }
    if (!json_is_string(v)) {
        return "must be a string";
    }
    s = json_string_value(v);
    if (strlen(s) != json_string_length(v)) {
        return "must not contain NUL characters";
    }
    switch (f->type) {
    case OSPAB_FT_TEXT:
        if (f->min > 0 && *s && !s[strspn(s, " ")]) {
            return "must not be blank";
        }
        if (!ospab_text_ok(s, (apr_size_t)f->min, (apr_size_t)f->max)) {
            return apr_psprintf(p, "must be %" APR_INT64_T_FMT " to %" APR_INT64_T_FMT
                                " printable characters", (apr_int64_t)f->min, (apr_int64_t)f->max);
        }
        break;
    case OSPAB_FT_ENUM: {
        const char *const *c;

        for (c = f->choices; *c && strcmp(*c, s); ++c) {
        }
        if (!*c) {
            return apr_psprintf(p, "must be one of %s", choices_text(p, f->choices));
        }
        break;
    }
    case OSPAB_FT_IP: {
        unsigned char buf[sizeof(struct in6_addr)];

        if (inet_pton(AF_INET, s, buf) != 1 && inet_pton(AF_INET6, s, buf) != 1) {
            return "must be an IPv4 or IPv6 address";
        }
        break;
    }
    case OSPAB_FT_NODE:
        if (!node_name_ok(s)) {
            return "must be a Proxmox node name (letters, digits, '-' and '.', at most 63)";
        }
        break;
    case OSPAB_FT_EMAIL:
        if (!email_ok(s)) {
            return "must be an e-mail address (local@domain, at most 255 characters)";
        }
        break;
    default:
        break;
    }
    *out = s;
    return NULL;
}

int ospab_fields_index(const ospab_field_t *spec, int n, const char *name)
{
    int i;

    for (i = 0; i < n; ++i) {
        if (!strcmp(spec[i].name, name)) {
            return i;
        }
    }
    return -1;
}

int ospab_fields_read(apr_pool_t *p, const ospab_field_t *spec, int n, json_t *obj,
                      int creating, ospab_field_value_t *out, json_t *errors)
{
    const char *key;
    json_t *v;
    int i, nerr = 0;

    memset(out, 0, sizeof(*out) * (apr_size_t)n);
    json_object_foreach(obj, key, v) {
        const ospab_field_t *f;
        const char *msg = NULL;

        i = ospab_fields_index(spec, n, key);
        if (i < 0) {
            /* the name comes from the client: keep it printable in the message */
            json_object_set_new(errors, ospab_text_ok(key, 1, 64) ? key : "(unprintable)",
                                json_string("unknown field"));
            ++nerr;
            continue;
        }
        f = &spec[i];
        if (f->flags & OSPAB_FF_READONLY) {
            msg = "is set by the panel and cannot be written";
        }
        else if (creating && (f->flags & OSPAB_FF_KEY) && !(f->flags & OSPAB_FF_KEY_CREATE)) {
            msg = "cannot be set on create";
        }
        else if (json_is_null(v)) {
            if (!(f->flags & OSPAB_FF_NULLABLE)) {
                msg = "must not be null";
            }
            else {
                out[i].present = 1;
                out[i].value = NULL;
            }
        }
        else if ((msg = check_value(p, f, v, &out[i].value)) == NULL) {
            out[i].present = 1;
        }
        if (msg) {
            json_object_set_new(errors, key, json_string(msg));
            ++nerr;
        }
    }
    if (creating) {
        for (i = 0; i < n; ++i) {
            if (out[i].present || json_object_get(errors, spec[i].name)) {
                continue;
            }
            if (spec[i].flags & OSPAB_FF_REQUIRED) {
                json_object_set_new(errors, spec[i].name, json_string("is required"));
                ++nerr;
            }
            else if (spec[i].def) {
                out[i].present = 1;
                out[i].value = spec[i].def;
            }
        }
    }
    return nerr;
}

const char *ospab_fields_summary(apr_pool_t *p, const char *what, json_t *errors)
{
    const char *key;
    json_t *v;
    const char *first = NULL;
    apr_size_t n = json_object_size(errors);

    json_object_foreach(errors, key, v) {
        first = apr_psprintf(p, "%s: %s", key, json_string_value(v));
        break;
    }
    if (!first) {
        return apr_psprintf(p, "invalid %s", what);
    }
    if (n > 1) {
        return apr_psprintf(p, "invalid %s: %s (and %lu more)", what, first,
                            (unsigned long)(n - 1));
    }
    return apr_psprintf(p, "invalid %s: %s", what, first);
}
