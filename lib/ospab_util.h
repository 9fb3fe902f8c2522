/* ospab core: small helpers that know nothing of httpd (secrets, hashing, time, text). */
#ifndef OSPAB_UTIL_H
#define OSPAB_UTIL_H

#include <apr_pools.h>
#include <apr_time.h>

#define OSPAB_SHA256_LEN 32

/* Resolves a secret given as "file:/path", "env:NAME" or a literal value.
 * File contents lose trailing white space. On failure *err says why, without the secret. */
apr_status_t ospab_secret_resolve(apr_pool_t *p, const char *spec, const char **out,
                                  const char **err);

void ospab_sha256(const void *data, apr_size_t len, unsigned char out[OSPAB_SHA256_LEN]);
const char *ospab_sha256_hex(apr_pool_t *p, const void *data, apr_size_t len);
/* n (at most 48) random bytes from the system's CSPRNG as base64url without padding: a
 * bearer secret (refresh tokens, console tokens). */
const char *ospab_random_token(apr_pool_t *p, apr_size_t n);
/* n (at most 64) bytes from the system's CSPRNG, as 2n lower-case hex digits. */
const char *ospab_random_hex(apr_pool_t *p, apr_size_t n);

/* Compares a presented key with the digest of the configured one. Both sides are hashed
 * first, so the comparison takes the same time whatever the lengths and contents. */
int ospab_key_matches(const unsigned char expected_digest[OSPAB_SHA256_LEN], const char *given);

/* Timestamps: the database holds "YYYY-MM-DD HH:MM:SS.mmm" (UTC), the API shows
 * "YYYY-MM-DDTHH:MM:SS.mmmZ" (what JavaScript's Date.toISOString() prints). */
const char *ospab_time_db(apr_pool_t *p, apr_time_t t);
const char *ospab_time_api(apr_pool_t *p, const char *db_value);
/* A database timestamp ("YYYY-MM-DD HH:MM:SS[.mmm]", UTC) as apr_time_t; 0 if unreadable. */
apr_time_t ospab_time_parse_db(const char *s);

/* 1 if s is valid UTF-8 of min..max characters with no control characters. */
int ospab_text_ok(const char *s, apr_size_t min_chars, apr_size_t max_chars);
/* A name of the kind Proxmox and the admin API use for storages, bridges and clusters:
 * letters, digits, '-', '_' and '.' only (the caller checks its length). */
int ospab_id_chars_ok(const char *s);

/* The form of an e-mail address that identifies an account: white space trimmed at both
 * ends, Unicode NFC, lower case (so "Demo@Example.com " and "demo@example.com" are one
 * account, while "démo@" and "ｄemo@" stay other addresses). NULL when email is not valid
 * UTF-8 or is empty once trimmed. Logins look users up by this key and count their
 * attempts under it. */
const char *ospab_email_key(apr_pool_t *p, const char *email);

/* Parses a whole decimal integer (no sign, no spaces) into *out; 0 on success. */
int ospab_parse_id(const char *s, apr_int64_t *out);

/* A key a client names something by (Idempotency-Key, a notice's key, a dedupe key): 1 to
 * max bytes of printable ASCII, no space at either end. */
int ospab_key_ok(const char *k, apr_size_t max);

/* 64 bits of key's SHA-256, never 0 (0 marks a free slot in the shared-memory tables of
 * ospab_ratelimit.c and ospab_gauge.c). */
apr_uint64_t ospab_key_hash64(const char *key);

#endif
