/* ospab core: a streaming JSON writer for the large, fixed-shape responses (lists of
 * servers). Building a jansson tree of 10 objects x 16 members and dumping it costs more
 * than the query that fills it; here the structure is written as it is walked. Every
 * string value is still encoded by jansson (json_dumpb); keys are the caller's constants;
 * numbers are written only after checking they are integers. */
#ifndef OSPAB_JSONW_H
#define OSPAB_JSONW_H

#include <apr_pools.h>

#define OSPAB_JW_MAX_DEPTH 16

typedef struct {
    apr_pool_t *p;
    char *buf;
    apr_size_t len, cap;
    int depth;
    int count[OSPAB_JW_MAX_DEPTH];   /* members written at each level: the comma rule */
    int after_key;
} ospab_jw_t;

void ospab_jw_init(ospab_jw_t *w, apr_pool_t *p, apr_size_t hint);
void ospab_jw_obj(ospab_jw_t *w);
void ospab_jw_obj_end(ospab_jw_t *w);
void ospab_jw_arr(ospab_jw_t *w);
void ospab_jw_arr_end(ospab_jw_t *w);
/* key: a constant of letters, digits and '_' (no escaping is applied to keys) */
void ospab_jw_key(ospab_jw_t *w, const char *key);
/* s == NULL writes null; invalid UTF-8 writes null too */
void ospab_jw_str(ospab_jw_t *w, const char *s);
/* decimal integer text from the database; NULL or anything else writes null */
void ospab_jw_int_text(ospab_jw_t *w, const char *s);
void ospab_jw_null(ospab_jw_t *w);
/* The document (NUL-terminated); len may be NULL. */
const char *ospab_jw_finish(ospab_jw_t *w, apr_size_t *len);

#endif
