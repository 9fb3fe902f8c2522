/* ospab core: a users row, typed: the loaders of the statements that read accounts, the
 * one rule for "this account may log in and act", and the account's JSON shape. */
#ifndef OSPAB_USER_H
#define OSPAB_USER_H

#include <jansson.h>

#include "ospab_db.h"

typedef struct {
    const char *id, *email, *name, *role;
    const char *enabled;            /* "1" or "0" as stored */
    const char *created_at, *updated_at;
    const char *password_hash;      /* ospab_auth_user_by_email only */
    /* USER_COLS in ospab_user_fields' order up to enabled (the audit of an update) */
    ospab_row_t cols;
} ospab_user_t;

/* Row shapes for ospab_row_fill: USER_COLS (ospab_user_get: id email name role enabled
 * created_at updated_at; cols is set) and ospab_auth_user_by_email (id email name role
 * enabled password_hash). */
extern const ospab_row_shape_t ospab_user_row;
extern const ospab_row_shape_t ospab_user_auth_row;
/* By id (ospab_user_get). APR_SUCCESS with *u, NULL when there is none; else the database
 * failed. */
apr_status_t ospab_user_load(ospab_db_t *db, apr_pool_t *p, const char *id,
                             const ospab_user_t **u);

/* The one rule for the users.enabled column: may the account log in, refresh, and act
 * with the tokens it has? */
int ospab_user_enabled(const char *enabled);

/* {"id","email","name","role","enabled","created_at","updated_at"} of the sync API. */
json_t *ospab_user_record_json(apr_pool_t *p, const ospab_user_t *u);
/* The same from a USER_COLS row. */
json_t *ospab_user_json(apr_pool_t *p, ospab_row_t row);

#endif
