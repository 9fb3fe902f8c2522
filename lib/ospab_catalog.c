/* ospab core: tariffs and OS templates, typed (ospab_catalog.h). */
#include <stddef.h>

#include <apr_strings.h>

#include "ospab_catalog.h"

/* ospab_tariff_get, _get_any, _list: id name price cores memory disk */
static const apr_size_t tariff_cols[] = {
    offsetof(ospab_tariff_t, id), offsetof(ospab_tariff_t, name),
    offsetof(ospab_tariff_t, price), offsetof(ospab_tariff_t, cores),
    offsetof(ospab_tariff_t, memory), offsetof(ospab_tariff_t, disk)
};
/* ospab_os_get: id name type template kind */
static const apr_size_t os_cols[] = {
    offsetof(ospab_os_t, id), offsetof(ospab_os_t, name), offsetof(ospab_os_t, type),
    offsetof(ospab_os_t, template_), offsetof(ospab_os_t, kind)
};

const ospab_row_shape_t ospab_tariff_row =
    OSPAB_ROW_SHAPE(tariff_cols, ospab_tariff_t, OSPAB_ROW_NO_RAW);
static const ospab_row_shape_t os_shape = OSPAB_ROW_SHAPE(os_cols, ospab_os_t, OSPAB_ROW_NO_RAW);

apr_status_t ospab_tariff_load(ospab_db_t *db, apr_pool_t *p, const char *label,
                               const char *id, const ospab_tariff_t **out)
{
    return ospab_db_load(db, p, label, 1, &id, &ospab_tariff_row, (void **)out);
}

apr_status_t ospab_os_load(ospab_db_t *db, apr_pool_t *p, const char *id,
                           const ospab_os_t **out)
{
    return ospab_db_load(db, p, "ospab_os_get", 1, &id, &os_shape, (void **)out);
}
