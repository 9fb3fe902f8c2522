/* ospab core: table-driven validation of the JSON objects clients send.
 * Each resource (vps, user) describes its fields once; the same description validates
 * create and update payloads and produces the text values bound to SQL statements. */
#ifndef OSPAB_FIELDS_H
#define OSPAB_FIELDS_H

#include <apr_pools.h>
#include <jansson.h>

typedef enum {
    OSPAB_FT_INT,     /* JSON integer in [min, max] */
    OSPAB_FT_TEXT,    /* string of min..max printable characters */
    OSPAB_FT_ENUM,    /* one of choices */
    OSPAB_FT_IP,      /* IPv4 or IPv6 address text */
    OSPAB_FT_NODE,    /* Proxmox node name */
    OSPAB_FT_EMAIL,   /* local@domain */
    OSPAB_FT_BOOL     /* true/false, stored as "1"/"0" */
} ospab_field_type_e;

#define OSPAB_FF_REQUIRED   0x01 /* must be present on create */
#define OSPAB_FF_NULLABLE   0x02 /* JSON null stores SQL NULL */
#define OSPAB_FF_KEY        0x04 /* identifies the record; not settable on create */
#define OSPAB_FF_READONLY   0x08 /* known, but set by the panel only */
#define OSPAB_FF_KEY_CREATE 0x10 /* a key that create may also set (users.id) */

typedef struct {
    const char *name;
    ospab_field_type_e type;
    long long min, max;
    const char *const *choices;
    unsigned flags;
    const char *def;          /* value on create when absent */
    const char *unit;         /* integers: what the number counts ("MB"), for messages */
    const char *too_small;    /* integers: a hint for values below min ("did you send GB?") */
} ospab_field_t;

typedef struct {
    int present;        /* the client sent it (or a default applied) */
    const char *value;  /* text form, NULL for SQL NULL */
} ospab_field_value_t;

/* Validates obj against spec[0..n). creating selects create rules. out[i] matches spec[i].
 * Every problem is added to errors as field -> message; returns how many there were. */
int ospab_fields_read(apr_pool_t *p, const ospab_field_t *spec, int n, json_t *obj,
                      int creating, ospab_field_value_t *out, json_t *errors);

/* "invalid vps: ram: must be ... (and 2 more)" built from an errors object. */
const char *ospab_fields_summary(apr_pool_t *p, const char *what, json_t *errors);

/* Index of name in spec, or -1. */
int ospab_fields_index(const ospab_field_t *spec, int n, const char *name);

#endif
