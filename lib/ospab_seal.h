/* ospab core: secrets kept in the database, sealed (issue 13 item 1: the Proxmox API tokens
 * of lib/ospab_cluster.c). AES-256-GCM through OpenSSL's libcrypto with a 32-byte key read
 * from a file both Apache (OspabSecretKey, read as root at start-up) and the agent
 * ([secrets] key) read; a fresh 96-bit nonce per seal. The sealed text is
 * "v1:" base64(nonce | ciphertext | 16-byte tag): printable, so it fits any column. The
 * additional data binds a sealed value to what it is for (e.g. "cluster-token"), so a
 * value copied into another kind of column does not open there. */
#ifndef OSPAB_SEAL_H
#define OSPAB_SEAL_H

#include <apr_pools.h>

#define OSPAB_SEAL_KEY_LEN 32

typedef struct ospab_seal_key_t ospab_seal_key_t;

/* spec "file:/path": the file holds the key as 64 hexadecimal digits (what
 * `openssl rand -hex 32` prints; white space around them is ignored). Anything else, or a
 * file that cannot be read, fails with *why (never the key). The key lives in p. */
apr_status_t ospab_seal_key_load(apr_pool_t *p, const char *spec, const ospab_seal_key_t **key,
                                 const char **why);
/* A key from its 32 bytes (tests). */
const ospab_seal_key_t *ospab_seal_key_make(apr_pool_t *p,
                                            const unsigned char raw[OSPAB_SEAL_KEY_LEN]);

/* plain (NUL-terminated) sealed under key for aad; NULL only when libcrypto fails. */
const char *ospab_seal(apr_pool_t *p, const ospab_seal_key_t *key, const char *aad,
                       const char *plain);
/* The plain text back, or NULL: not sealed by us, another key or aad, altered. */
const char *ospab_unseal(apr_pool_t *p, const ospab_seal_key_t *key, const char *aad,
                         const char *sealed);

#endif
