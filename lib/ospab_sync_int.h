/* ospab core, private to the sync API's operations (ospab_sync.c, ospab_sync_user.c,
 * ospab_sync_common.c). */
#ifndef OSPAB_SYNC_INT_H
#define OSPAB_SYNC_INT_H

#include "ospab_sync.h"
#include "ospab_fields.h"

/* res = status with {"status":"success","message":message, key:record} (record owned). */
void ospab_sync_ok(apr_pool_t *p, ospab_result_t *res, int status, const char *message,
                   const char *key, json_t *record);
/* The fields a request set (spec[i] for in[i], n of them, skip: one left out, -1: none),
 * as a JSON object for the audit log. */
json_t *ospab_sync_changes(const ospab_field_t *spec, int n, const ospab_field_value_t *in,
                           int skip);
/* What an update changed, for the audit log: {"field": {"from": old, "to": new}} for each
 * field the request set to another value. old: the row before, whose columns are the
 * fields in order up to last_col. secret: a field whose value never goes in, recorded as
 * "changed" when given (-1: none). */
json_t *ospab_sync_update_changes(const ospab_field_t *spec, int last_col,
                                  const ospab_field_value_t *in, ospab_row_t old, int skip,
                                  int secret);
/* {"action": ..., "<what>": {...}} with nothing else. 0: ok; 1: res holds a 400. */
int ospab_sync_envelope(apr_pool_t *p, json_t *req, const char *what, const char **action,
                        json_t **obj, ospab_result_t *res);
/* Locks (lock) and reads (get) the record id inside the open transaction. 0: *row set;
 * 1: res is set (404 "<what> not found", and the transaction rolled back, or 503). */
int ospab_sync_lock_and_get(ospab_db_t *db, apr_pool_t *p, const char *lock, const char *get,
                            const char *id, const char *what, ospab_row_t *row,
                            ospab_result_t *res);

#endif
