/* ospab core: what customers read: their VPSes (seed 001 shape), servers (seed 003 shape),
 * tariffs and OS templates. Owner filtering happens in SQL; admins see everything. */
#ifndef OSPAB_CUSTOMER_H
#define OSPAB_CUSTOMER_H

#include "ospab_db.h"
#include "ospab_result.h"
#include "ospab_jsonw.h"

#define OSPAB_PAGE_DEFAULT 50
#define OSPAB_PAGE_MAX 200

typedef struct {
    int limit;              /* 1..OSPAB_PAGE_MAX; 0 (no ?limit): a customer's every row (seed
                             * 001/003's "all servers of the user"), an admin's first page */
    const char *after;      /* id cursor, "0" for the first page */
    const char *next;       /* out: cursor of the next page, NULL when this was the last */
} ospab_page_t;

/* GET /api/vps and /api/server (kind): res->text is a JSON array. first: the first page's
 * rows when they were selected already (ospab_session_list, a customer only), else NULL. */
typedef enum { OSPAB_LIST_VPS, OSPAB_LIST_SERVER } ospab_list_e;
void ospab_customer_list(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                         ospab_list_e kind, ospab_page_t *pg, apr_array_header_t *first,
                         ospab_result_t *res);
/* The statement of a customer's first page of kind for pg with the caller's row ahead of
 * each (OSPAB_PRINCIPAL_COLS columns; arguments: the login's family id, the cursor, the
 * user id), as ospab_session_list runs it. */
const char *ospab_customer_list_first(ospab_list_e kind, const ospab_page_t *pg);
/* GET /api/vps/{id} and /api/server/{id}: 404 for a server the caller does not own. */
void ospab_customer_vps_get(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                            const char *id, ospab_result_t *res);
void ospab_customer_server_get(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                               const char *id, ospab_result_t *res);
void ospab_customer_tariffs(ospab_db_t *db, apr_pool_t *p, ospab_result_t *res);
void ospab_customer_os(ospab_db_t *db, apr_pool_t *p, ospab_result_t *res);

/* A row of the server view (SERVER_COLS in ospab_sql.c): the record with its OS template
 * and tariff. */
typedef struct {
    const char *id, *user_id, *tariff_id, *os_id, *status, *vmid, *ip;
    const char *created_at, *updated_at, *name;
    const char *tmpl_id, *tmpl_name, *tmpl_type;    /* the OS template, if os_id names one */
    const char *t_id, *t_name, *t_price;            /* the tariff, if tariff_id names one */
    const char *os_text;                            /* the synced OS text */
    const char *cpu, *ram, *disk;
} ospab_server_view_t;

/* The row shape of SERVER_COLS (ospab_server_get, the ospab_server_page_* statements), for
 * ospab_row_fill. */
extern const ospab_row_shape_t ospab_server_view_row;

/* One row of the server view (SERVER_COLS) as seed 003's object. os and tariff are always
 * objects: a record the billing site synced without os_id/tariff_id gets its OS from the
 * synced text and the enabled tariff of the same sizes, else one named after its sizes.
 * tariffs: the enabled tariffs (ospab_tariff_list rows), or NULL to read them when needed;
 * *tariffs is filled then, so a list reads them once. */
void ospab_server_write(ospab_jw_t *w, apr_pool_t *p, ospab_db_t *db,
                        apr_array_header_t **tariffs, ospab_row_t row);

#endif
