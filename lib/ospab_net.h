/* ospab core: client addresses behind trusted proxies. The agent's live push keys its
 * per-address limits and binds its sessions by them (monitor-agent/agent_sio.c): the
 * client is the peer, or, when the peer is a trusted proxy (Apache's mod_proxy_http adds
 * X-Forwarded-For), the right-most X-Forwarded-For entry that is not a trusted proxy
 * itself. An IPv6 client is known by its /64: one host usually has all of it. */
#ifndef OSPAB_NET_H
#define OSPAB_NET_H

#include <apr_pools.h>

#define OSPAB_NET_KEY_MAX   64      /* "a.b.c.d" or "x:x:x:x::/64", with the NUL */
#define OSPAB_NET_XFF_KEEP  16      /* X-Forwarded-For entries looked at, from the right */

/* An address or a network. */
typedef struct {
    int family;                     /* AF_INET or AF_INET6 */
    unsigned char net[16];
    int bits;
} ospab_net_t;

/* An address as its family and 16 bytes; ::ffff:a.b.c.d is the IPv4 address. 0: parsed. */
int ospab_net_addr_parse(const char *text, int *family, unsigned char bytes[16]);

/* "a.b.c.d", "a.b.c.d/n", "x::y" or "x::y/n" (an address alone is a /32 or /128). 0: parsed. */
int ospab_net_parse(const char *text, ospab_net_t *n);

/* 1 if the address (family, 16 bytes) is inside n. */
int ospab_net_contains(const ospab_net_t *n, int family, const unsigned char *bytes);

/* A list of addresses and networks separated by spaces, tabs or commas, into *out (*n of
 * them, from p). 0: parsed; -1 with *bad the first bad entry (in p). */
int ospab_net_list_parse(apr_pool_t *p, const char *text, ospab_net_t **out, int *n,
                         const char **bad);

/* The key of a client: peer is the connection's address (NULL or not an address: "?"),
 * xff the request's X-Forwarded-For (NULL: none; taken apart in place), trusted the
 * proxies whose X-Forwarded-For is believed. Several header lines come joined by commas;
 * only the last OSPAB_NET_XFF_KEEP entries are looked at; an entry that is not an address
 * ends the walk and the last good one stands. */
void ospab_net_client_key(const ospab_net_t *trusted, int ntrusted, const char *peer,
                          char *xff, char *key, apr_size_t keysz);

#endif
