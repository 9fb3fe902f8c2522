/* ospab core: customers' SSH public keys (issue 14 item 3, docs/ssh-keys.md).
 * A customer keeps OpenSSH public keys in their account (/api/account/ssh-keys) and names
 * the ones a new server gets at create (sshKeyIds). A key is one line of a .pub file,
 * "type base64 [comment]", checked by parsing its key data as OpenSSH does (RFC 4253
 * section 6.6, PROTOCOL.u2f): the type word equals the type inside the data, RSA moduli have
 * at least OSPAB_SSHKEY_RSA_MIN_BITS bits, an ECDSA point is on its curve, nothing follows
 * the key. Stored normalised (single spaces, no line end) with its SHA256 fingerprint as
 * `ssh-keygen -lf` prints it (011_ssh_keys.sql). */
#ifndef OSPAB_SSHKEYS_H
#define OSPAB_SSHKEYS_H

#include <apr_pools.h>
#include <jansson.h>

#include "ospab_db.h"
#include "ospab_result.h"

#define OSPAB_SSHKEY_MAX_LINE       16384   /* bytes of the publicKey text as sent */
#define OSPAB_SSHKEY_MAX_COMMENT    255     /* characters */
#define OSPAB_SSHKEY_MAX_NAME       64      /* characters */
#define OSPAB_SSHKEY_PER_USER       32      /* keys one account may keep */
#define OSPAB_SSHKEY_RSA_MIN_BITS   2048
#define OSPAB_SSHKEY_RSA_MAX_BITS   16384   /* OpenSSH's own limit */

/* One parsed public key (strings from the pool given to ospab_sshkey_parse). */
typedef struct {
    const char *type;           /* "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", ... */
    const char *base64;         /* the key data, as sent (canonical base64) */
    const char *comment;        /* NULL when the line has none */
    const char *line;           /* "type base64[ comment]": what is stored and installed */
    const char *fingerprint;    /* "SHA256:" + unpadded base64 of the SHA-256 of the data */
    int bits;                   /* RSA: the modulus; ECDSA: the curve; Ed25519: 256 */
} ospab_sshkey_t;

/* Parses text (len bytes, NUL bytes included: a C string is not assumed) as one OpenSSH
 * public key line. Surrounding white space and one line end are ignored; fields may be
 * separated by runs of spaces or tabs. NULL with *key filled, or what is wrong in words a
 * customer can act on (from p): "not an OpenSSH public key: ...", "RSA keys must be at
 * least 2048 bits (this one has 1024)", "this is a private key: paste the .pub file", ... */
const char *ospab_sshkey_parse(apr_pool_t *p, const char *text, apr_size_t len,
                               ospab_sshkey_t *key);

/* GET /api/account/ssh-keys: 200 with the caller's keys, oldest first:
 * [{"id", "name", "type", "fingerprint", "comment" (or null), "publicKey", "createdAt"}]. */
void ospab_sshkeys_list(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                        ospab_result_t *res);

/* POST /api/account/ssh-keys, body {"name"?, "publicKey"} (borrowed). name: 1 to 64
 * printable characters; when absent or null, the key's comment is its name (400 when the
 * key has no comment of 1 to 64 characters). 201 {"status":"success","key":{...}} (the
 * list's shape), audited (sshkey.add, actor a); 400 naming the field and the reason;
 * 409 when the caller has this key already (naming it) or keeps OSPAB_SSHKEY_PER_USER
 * keys. Nothing is written when it is refused. */
void ospab_sshkeys_add(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                       const ospab_actor_t *a, json_t *body, ospab_result_t *res);

/* DELETE /api/account/ssh-keys/{id}: 200 {"status":"success","message":"SSH key deleted"},
 * audited (sshkey.delete); 404 {"error":"SSH key not found"} for a missing key and for
 * another account's (admins included: the routes are about one's own keys). Servers made
 * with the key keep it. */
void ospab_sshkeys_delete(ospab_db_t *db, apr_pool_t *p, const ospab_principal_t *who,
                          const ospab_actor_t *a, const char *id, ospab_result_t *res);

/* For POST /api/server/create: the public keys the request's "sshKeyIds" names.
 * user_id: the account the server is made for (the caller); ids: the value of
 * "sshKeyIds" (borrowed; NULL when the request has none).
 *   0: fine. *keys is the keys' normalised lines ("type base64[ comment]") joined by "\n"
 *      (no line end after the last), in the order of ids with repeated ids taken once, from
 *      p; *keys is NULL when ids is NULL, JSON null or an empty array.
 *   1: refused or failed, res set: 400 {"error":"invalid request: sshKeyIds: ...",
 *      "fields":{"sshKeyIds": ...}} when ids is not an array of positive integers, names
 *      more than OSPAB_SSHKEY_PER_USER ids, or names a key that is missing or another
 *      account's ("unknown SSH key id N": never whether it exists); 503 when the database
 *      failed (ospab_result_db_failed: the caller's open transaction is rolled back).
 * It only reads (one statement): it may run inside or outside the caller's transaction,
 * and writes no audit row. */
int ospab_sshkeys_for_create(ospab_db_t *db, apr_pool_t *p, const char *user_id, json_t *ids,
                             const char **keys, ospab_result_t *res);

#endif
