/* mod_ospab: the one private header every file of the module includes. */
#ifndef MOD_OSPAB_H
#define MOD_OSPAB_H

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_optional.h>
#include <apr_strings.h>
#include <apr_dbd.h>
#include <mod_dbd.h>
#include <jansson.h>

#include "ospab_db.h"
#include "ospab_route.h"
#include "ospab_util.h"

extern module AP_MODULE_DECLARE_DATA ospab_module;
APLOG_USE_MODULE(ospab);

/* Stable message numbers, so tests and operators can match log lines. */
#define OSPAB_LOGNO(n) "OSPAB" #n ": "

#define OSPAB_HANDLER "ospab"
#define OSPAB_DEFAULT_MAX_BODY (1024 * 1024)

typedef struct {
    int sync_key_set;                              /* -1 unset */
    unsigned char sync_key_digest[OSPAB_SHA256_LEN];
    apr_off_t max_body;                            /* -1 unset */
} ospab_srv_conf_t;

/* ospab_mod_config.c */
extern const command_rec ospab_mod_cmds[];
void *ospab_mod_create_srv_conf(apr_pool_t *p, server_rec *s);
void *ospab_mod_merge_srv_conf(apr_pool_t *p, void *basev, void *addv);
int ospab_mod_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                           server_rec *s);
int ospab_mod_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                          server_rec *s);
ospab_srv_conf_t *ospab_mod_srv_conf(const request_rec *r);
/* The request's pooled DB connection (mod_dbd), or NULL when the database is down. */
ospab_db_t *ospab_mod_db(request_rec *r);

/* ospab_mod_http.c: every handler ends in one of these */
int ospab_mod_respond(request_rec *r, int status, json_t *body);
int ospab_mod_respond_text(request_rec *r, int status, const char *json_text);
int ospab_mod_error(request_rec *r, int status, const char *msg);
int ospab_mod_error_fields(request_rec *r, int status, const char *msg, json_t *fields);
/* Reads and parses a JSON request body with the size limit and the Content-Type check.
 * Returns OK with *json and the raw *body, or an error response was already sent (the
 * return value is then what the handler must return). */
int ospab_mod_read_json(request_rec *r, json_t **json, const char **body, apr_size_t *len);

/* ospab_mod_handler.c */
int ospab_mod_handler(request_rec *r);

/* route handlers */
typedef int ospab_mod_route_fn(request_rec *r, const ospab_route_match_t *m);
int ospab_mod_handle_vps_sync(request_rec *r, const ospab_route_match_t *m);
int ospab_mod_handle_vps_sync_batch(request_rec *r, const ospab_route_match_t *m);
int ospab_mod_handle_users_sync(request_rec *r, const ospab_route_match_t *m);
int ospab_mod_handle_health(request_rec *r, const ospab_route_match_t *m);

#endif
