/* ospab core: the resources the sync API writes (vps, users): their fields, the JSON
 * shape of a stored record, and password hashing. */
#ifndef OSPAB_RESOURCE_H
#define OSPAB_RESOURCE_H

#include <apr_pools.h>
#include <jansson.h>

#include "ospab_fields.h"
#include "ospab_db.h"
#include "ospab_jsonw.h"

/* vps: the spec's order is the column order of VPS_COLS in ospab_sql.c:
 * 0 id, 1..15 the writable columns, 16 created_at, 17 updated_at. */
enum {
    OSPAB_VPS_ID, OSPAB_VPS_EXTERNAL_ID, OSPAB_VPS_NAME, OSPAB_VPS_STATUS, OSPAB_VPS_IP,
    OSPAB_VPS_CPU, OSPAB_VPS_RAM, OSPAB_VPS_DISK, OSPAB_VPS_OS, OSPAB_VPS_USER_ID,
    OSPAB_VPS_HYPERVISOR, OSPAB_VPS_NODE, OSPAB_VPS_VMID, OSPAB_VPS_KIND,
    OSPAB_VPS_TARIFF_ID, OSPAB_VPS_OS_ID, OSPAB_VPS_CREATED_AT, OSPAB_VPS_UPDATED_AT,
    OSPAB_VPS_NFIELDS
};
extern const ospab_field_t ospab_vps_fields[OSPAB_VPS_NFIELDS];
/* Rows of VPS_COLS go on after the fields: 18 binding_note, why the agent could not link
 * an unbound Proxmox record to its guest (the agent's alone; no sync field). */
enum { OSPAB_VPS_BINDING_NOTE = OSPAB_VPS_NFIELDS, OSPAB_VPS_NCOLS };
/* The API shape of a vps row (VPS_COLS): written (hot list path) or as a jansson object.
 * provider: the view of the billing site and admins, which adds "binding_note" when the
 * record has one (customers get the reason in their own words from the power routes). */
void ospab_vps_write(ospab_jw_t *w, apr_pool_t *p, ospab_row_t row, int provider);
json_t *ospab_vps_json(apr_pool_t *p, ospab_row_t row);

/* users: 0 id, 1 email, 2 name, 3 role, 4 enabled, 5 password (not a column),
 * 6 created_at, 7 updated_at; rows hold USER_COLS (no password). */
enum {
    OSPAB_USER_ID, OSPAB_USER_EMAIL, OSPAB_USER_NAME, OSPAB_USER_ROLE, OSPAB_USER_ENABLED,
    OSPAB_USER_PASSWORD, OSPAB_USER_CREATED_AT, OSPAB_USER_UPDATED_AT, OSPAB_USER_NFIELDS
};
extern const ospab_field_t ospab_user_fields[OSPAB_USER_NFIELDS];

/* yescrypt (bcrypt where libcrypt lacks it) with a salt from the system's CSPRNG. */
apr_status_t ospab_password_hash(apr_pool_t *p, const char *password, const char **hash);
/* One method, by its crypt prefix ("$6$": SHA-512 crypt, what cloud-init and Proxmox take
 * as an already hashed cipassword). APR_ENOTIMPL when libcrypt lacks it. */
apr_status_t ospab_password_crypt(apr_pool_t *p, const char *password, const char *prefix,
                                  const char **hash);
/* 1 if password matches hash; constant-time. */
int ospab_password_verify(const char *password, const char *hash);

#endif
