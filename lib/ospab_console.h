/* ospab core: one-time console tokens (issue 15, docs/console.md). The console route hands
 * the browser a URL of the panel's own console page with a random token instead of a
 * Proxmox address and ticket; the agent's console WebSocket redeems the token once,
 * within OSPAB_CONSOLE_TOKEN_TTL, and then opens the guest's console on Proxmox itself.
 * Only the token's SHA-256 is stored (013_console_tokens.sql). */
#ifndef OSPAB_CONSOLE_H
#define OSPAB_CONSOLE_H

#include "ospab_db.h"

/* how long a token may wait for its redemption */
#define OSPAB_CONSOLE_TOKEN_TTL apr_time_from_sec(60)

typedef enum {
    OSPAB_CONSOLE_TERMINAL,     /* a container: Proxmox's termproxy */
    OSPAB_CONSOLE_VNC           /* a KVM server: vncproxy with websocket=1 */
} ospab_console_kind_e;

/* What a redeemed token grants: one console of one server, for one user. */
typedef struct {
    const char *user_id;
    const char *vps_id;
    ospab_console_kind_e kind;
} ospab_console_grant_t;

/* A new token for user_id's console of server vps_id (32 random bytes, base64url), valid
 * until now + OSPAB_CONSOLE_TOKEN_TTL; expired tokens are purged on the way. APR_SUCCESS
 * with *token (from p); else the database failed. */
apr_status_t ospab_console_issue(ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                                 const char *user_id, const char *vps_id,
                                 ospab_console_kind_e kind, const char **token);

/* Redeems token at now: 1 and *g when it was issued, is unexpired and was never redeemed
 * (a conditional update: of two redemptions at once exactly one wins); 0 when it is
 * unknown, used or expired (the caller cannot tell which, nor can the client); -1 when
 * the database failed. */
int ospab_console_redeem(ospab_db_t *db, apr_pool_t *p, apr_time_t now, const char *token,
                         ospab_console_grant_t *g);

/* Where a site serves the customer panel (OspabPanelURL), as the console's URL begins: a
 * path ("/panel/", made absolute with the request's own scheme and host) or an absolute
 * http:// or https:// URL, without '?', '#' or white space. NULL when fine, with *base
 * (from p) ending in "/"; else why not, in words for the configuration's author. */
const char *ospab_console_panel_base(apr_pool_t *p, const char *url, const char **base);

#endif
