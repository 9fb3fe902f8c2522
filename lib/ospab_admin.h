/* ospab core: the admin API (/api/admin/..., role admin; docs/operations.md "Admin API"):
 * accounts, the catalogue (tariffs, OS templates), the audit trail, alerts and the
 * outboxes. Every change is audited as its actor (type "admin") in the change's own
 * transaction. The module's routes and ospab-admin's commands call the same functions. */
#ifndef OSPAB_ADMIN_H
#define OSPAB_ADMIN_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>

#include "ospab_db.h"
#include "ospab_result.h"

/* The list routes take their query string as a table of parameter -> value (unescaped;
 * NULL: none). A parameter the route does not know, or one given twice, is a 400 naming
 * it; an empty value is no filter. Pages: limit 1..OSPAB_PAGE_MAX (default
 * OSPAB_PAGE_DEFAULT); the answer's "next" is the cursor of the next page, null after the
 * last. */

/* GET /api/admin/users?q=&role=&enabled=&limit=&after= : {"status","users","next"}; q is a
 * substring of the e-mail or the name; pages by id (after = the last id seen). */
void ospab_admin_users(ospab_db_t *db, apr_pool_t *p, apr_table_t *query,
                       ospab_result_t *res);
/* GET /api/admin/users/{id}: {"status","user"}, 404. */
void ospab_admin_user_get(ospab_db_t *db, apr_pool_t *p, const char *id, ospab_result_t *res);
/* POST /api/admin/users/{id}/disable and /enable: users.enabled set and, to disable, every
 * refresh token of the user revoked, in one transaction with the audit row. An admin
 * cannot disable themself (a->id is the acting user's id): 409. */
void ospab_admin_user_set_enabled(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                                  const char *id, int enabled, ospab_result_t *res);

/* The catalogue's two tables: the same routes under /api/admin/tariffs and /api/admin/os. */
typedef enum { OSPAB_ADMIN_TARIFF, OSPAB_ADMIN_OS } ospab_admin_catalog_e;
/* GET (all, disabled ones too): {"status","tariffs"|"os"} */
void ospab_admin_catalog_list(ospab_db_t *db, apr_pool_t *p, ospab_admin_catalog_e kind,
                              ospab_result_t *res);
/* GET /{id}: {"status","tariff"|"os"}, 404 */
void ospab_admin_catalog_get(ospab_db_t *db, apr_pool_t *p, ospab_admin_catalog_e kind,
                             const char *id, ospab_result_t *res);
/* POST: 201 with the record; 400 with "fields" naming every problem */
void ospab_admin_catalog_create(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                                ospab_admin_catalog_e kind, json_t *body, ospab_result_t *res);
/* PUT /{id}: the fields given change, the others stay */
void ospab_admin_catalog_update(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                                ospab_admin_catalog_e kind, const char *id, json_t *body,
                                ospab_result_t *res);
/* DELETE /{id}: 409 while servers refer to it (how many; disable it instead) */
void ospab_admin_catalog_delete(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                                ospab_admin_catalog_e kind, const char *id,
                                ospab_result_t *res);

/* GET /api/admin/audit?actor_type=&actor=&server=&action=&since=&until=&limit=&before= :
 * {"status","entries","next"}, newest first by (created_at, id); before/next are
 * ospab_admin_cursor tokens. action "vps.*" is a prefix. */
void ospab_admin_audit(ospab_db_t *db, apr_pool_t *p, apr_table_t *query,
                       ospab_result_t *res);
/* GET /api/admin/alerts?state=open|closed&server=&limit=&after= : {"status","alerts","next"} */
void ospab_admin_alerts(ospab_db_t *db, apr_pool_t *p, apr_table_t *query,
                        ospab_result_t *res);
/* GET /api/admin/outbox?kind=email|webhook&state=&limit=&after= :
 * {"status","kind","items","next"}; never an e-mail's body nor a webhook's payload. */
void ospab_admin_outbox(ospab_db_t *db, apr_pool_t *p, apr_table_t *query,
                        ospab_result_t *res);
/* POST /api/admin/outbox/{kind}/{id}/retry (kind "email" or "webhook"): a failed or pending
 * row is due now with its attempts counted anew; one being sent or gone out: 409. */
void ospab_admin_outbox_retry(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                              const char *kind, const char *id, ospab_result_t *res);

/* GET /api/admin/servers?user=&node=&status=&limit=&after= : {"status","servers","next"},
 * every server as the billing site sees it (docs/sync-api.md's record), pages by id. */
void ospab_admin_servers(ospab_db_t *db, apr_pool_t *p, apr_table_t *query,
                         ospab_result_t *res);
/* POST /api/admin/servers/{id}/owner {"userId"}: the record moves to another user (the
 * sync API's update of user_id: its server.owner event, audited as the admin). */
struct ospab_server_conf_t;
void ospab_admin_server_owner(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                              const struct ospab_server_conf_t *c, const char *id,
                              json_t *body, ospab_result_t *res);

/* ---- pure helpers (unit-tested) ---------------------------------------------------------- */

/* The audit cursor: base64url (no padding) of "created_at|id", created_at as stored. */
const char *ospab_admin_cursor_encode(apr_pool_t *p, const char *created_at, const char *id);
/* 0 with both parts, or -1 for a token that is not one ospab_admin_cursor_encode made. */
int ospab_admin_cursor_decode(apr_pool_t *p, const char *token, const char **created_at,
                              const char **id);
/* An ISO-8601 UTC time ("2026-01-02", "2026-01-02T03:04:05Z", "...05.678Z") as the database
 * stores times; NULL when it is not one. */
const char *ospab_admin_time_param(apr_pool_t *p, const char *iso);
/* A LIKE pattern (ESCAPE '!') matching s as a substring (contains 1) or as a prefix. */
const char *ospab_admin_like(apr_pool_t *p, const char *s, int contains);
/* A Proxmox volume id: "storage:path", e.g. local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst */
int ospab_admin_volid_ok(const char *s);
/* A Proxmox vmid (100 .. 999999999, no leading zero): a KVM OS entry's template VM. */
int ospab_admin_vmid_ok(const char *s);

#endif
