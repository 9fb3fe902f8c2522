/* ospab core: the catalogue a customer orders from, typed: tariffs and OS templates. */
#ifndef OSPAB_CATALOG_H
#define OSPAB_CATALOG_H

#include "ospab_db.h"

typedef struct {
    const char *id, *name, *price;
    const char *cores, *memory, *disk;      /* vCPUs, MB, GB */
} ospab_tariff_t;

typedef struct {
    const char *id, *name, *type;
    const char *template_;                  /* the Proxmox volume, e.g. local:vztmpl/... */
    const char *kind;                       /* lxc, qemu */
} ospab_os_t;

/* r: a row of ospab_tariff_get, _get_any or _list: id name price cores memory disk. */
void ospab_tariff_from_row(ospab_row_t r, ospab_tariff_t *t);

/* By one id through label: ospab_tariff_get (enabled ones) or ospab_tariff_get_any;
 * ospab_os_get. APR_SUCCESS with *out, NULL when there is none; else the database failed. */
apr_status_t ospab_tariff_load(ospab_db_t *db, apr_pool_t *p, const char *label,
                               const char *id, const ospab_tariff_t **out);
apr_status_t ospab_os_load(ospab_db_t *db, apr_pool_t *p, const char *id,
                           const ospab_os_t **out);

#endif
