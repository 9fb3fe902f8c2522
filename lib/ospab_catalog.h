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

/* The row shape of ospab_tariff_get, _get_any and _list (id name price cores memory
 * disk), for ospab_row_fill. */
extern const ospab_row_shape_t ospab_tariff_row;

/* By one id through label: ospab_tariff_get (enabled ones) or ospab_tariff_get_any;
 * ospab_os_get. APR_SUCCESS with *out, NULL when there is none; else the database failed. */
apr_status_t ospab_tariff_load(ospab_db_t *db, apr_pool_t *p, const char *label,
                               const char *id, const ospab_tariff_t **out);
apr_status_t ospab_os_load(ospab_db_t *db, apr_pool_t *p, const char *id,
                           const ospab_os_t **out);

#endif
