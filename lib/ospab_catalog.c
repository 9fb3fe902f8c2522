/* ospab core: tariffs and OS templates, typed (ospab_catalog.h). */
#include <apr_strings.h>

#include "ospab_catalog.h"

void ospab_tariff_from_row(ospab_row_t r, ospab_tariff_t *t)
{
    /* id name price cores memory disk */
    t->id = r[0];
    t->name = r[1];
    t->price = r[2];
    t->cores = r[3];
    t->memory = r[4];
    t->disk = r[5];
}

apr_status_t ospab_tariff_load(ospab_db_t *db, apr_pool_t *p, const char *label,
                               const char *id, const ospab_tariff_t **out)
{
    ospab_row_t r = NULL;
    ospab_tariff_t *t;
    apr_status_t rv = ospab_db_select_one(db, p, label, 1, &id, &r);

    *out = NULL;
    if (rv != APR_SUCCESS || !r) {
        return rv;
    }
    t = apr_palloc(p, sizeof(*t));
    ospab_tariff_from_row(r, t);
    *out = t;
    return APR_SUCCESS;
}

apr_status_t ospab_os_load(ospab_db_t *db, apr_pool_t *p, const char *id,
                           const ospab_os_t **out)
{
    ospab_row_t r = NULL;
    ospab_os_t *o;
    apr_status_t rv = ospab_db_select_one(db, p, "ospab_os_get", 1, &id, &r);

    *out = NULL;
    if (rv != APR_SUCCESS || !r) {
        return rv;
    }
    /* id name type template kind */
    o = apr_palloc(p, sizeof(*o));
    o->id = r[0];
    o->name = r[1];
    o->type = r[2];
    o->template_ = r[3];
    o->kind = r[4];
    *out = o;
    return APR_SUCCESS;
}
