/* ospab core: IP address pools (issue 13 item 3, docs/operations.md "IP pools").
 * A pool is a range of IPv4 or IPv6 addresses for the guests on one bridge (of one node or
 * of all), with their prefix, gateway and DNS servers. Its addresses are rows made with the
 * pool (008_ip_pools.sql); a new server takes one of each family whose pools serve its
 * node and bridge, in the transaction that makes its record, and gives it back when it
 * goes; a given-back address rests for the pool's cooldown before anyone gets it again. */
#ifndef OSPAB_IPPOOL_H
#define OSPAB_IPPOOL_H

#include <apr_pools.h>
#include <jansson.h>

#include "ospab_db.h"
#include "ospab_result.h"

#define OSPAB_IPPOOL_MAX_SIZE   65536       /* addresses of one pool */
#define OSPAB_IPPOOL_COOLDOWN   86400       /* seconds, when a pool does not say */

/* An address: family 4 (the first 4 bytes of b) or 6. */
typedef struct {
    int family;
    unsigned char b[16];
} ospab_ip_t;

/* Parses "192.0.2.10" / "2001:db8::10" (inet_pton). 1: *ip set; 0: not an address. */
int ospab_ip_parse(const char *text, ospab_ip_t *ip);
/* The canonical text (inet_ntop: "2001:db8::a"). */
const char *ospab_ip_text(apr_pool_t *p, const ospab_ip_t *ip);
/* Addresses from first to last, both in: 0 when last is before first, the families differ,
 * or there are more than limit (then limit + 1). */
apr_uint64_t ospab_ip_span(const ospab_ip_t *first, const ospab_ip_t *last,
                           apr_uint64_t limit);
/* ip + 1 (wrapping). */
void ospab_ip_next(ospab_ip_t *ip);
/* 1 when a and b are in the same network of prefix bits. */
int ospab_ip_same_net(const ospab_ip_t *a, const ospab_ip_t *b, int prefix);

/* A pool as given to ospab_ippool_create (from an admin's JSON or the command line). */
typedef struct {
    const char *name, *node, *bridge, *first, *last, *gateway, *dns;
    const char *cluster_id;     /* the cluster whose nodes it serves; NULL: any */
    int prefix;
    long cooldown;              /* seconds */
} ospab_ippool_spec_t;

/* Reads body (borrowed) into *s: {name, cluster_id?, node?, bridge, first, last, prefix,
 * gateway?, dns? (a list of addresses), cooldown?}. NULL when it is a pool, else a new object of
 * per-field messages; unknown fields are named. */
json_t *ospab_ippool_read(apr_pool_t *p, json_t *body, ospab_ippool_spec_t *s);

/* Makes the pool and its addresses in one transaction, audited (ippool.create, actor a):
 * 201 {"status":"success","pool":{...}}; 409 when the name is taken or an address is in
 * another pool already. */
void ospab_ippool_create(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                         const ospab_ippool_spec_t *s, ospab_result_t *res);
/* POST /api/admin/ip-pools and ospab-admin pool-add: ospab_ippool_read, then (a pool)
 * ospab_ippool_create; 400 naming every wrong field. */
void ospab_ippool_add(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a, json_t *body,
                      ospab_result_t *res);
/* 200 {"status":"success","pools":[{..., "size", "used", "cooling", "free"}]}. */
void ospab_ippool_list(ospab_db_t *db, apr_pool_t *p, apr_time_t now, ospab_result_t *res);

/* PUT /api/admin/ip-pools/{id}: name, gateway, dns, cooldown, enabled (the range and the
 * bridge stay); audited (ippool.update). 200 with the pool and its usage. A disabled pool
 * gives no address to new servers; those it gave keep them. */
void ospab_ippool_update(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                         const char *id, json_t *body, ospab_result_t *res);
/* DELETE: only a pool none of whose addresses a server holds (409 says how many do);
 * audited (ippool.delete). */
void ospab_ippool_delete(ospab_db_t *db, apr_pool_t *p, const ospab_actor_t *a,
                         const char *id, ospab_result_t *res);

/* What a new guest on node/bridge gets: at most one address of each family (NULL when no
 * pool of that family serves it), with its pool's settings. */
typedef struct {
    const char *ip4, *gw4, *ip6, *gw6;     /* "addr/prefix" and the gateway, or NULL */
    const char *dns;                       /* space-separated, or NULL */
    const char *exhausted;                 /* the pool that had nothing left, or NULL */
} ospab_ip_lease_t;

/* Takes the server vps_id's addresses in the caller's transaction, which must not have read
 * anything yet (the pools are locked first: a read before would see a stale snapshot on
 * MariaDB). pools: the ids of ospab_ippool_for (ospab_ippool_pools). 0: taken (or no pool);
 * 1: a family's pools are all used up (*l->exhausted names the first) — nothing taken;
 * -1: the database failed. */
typedef struct {
    apr_array_header_t *ids;               /* const char *: pool ids, family 4 first */
} ospab_ippool_set_t;
apr_status_t ospab_ippool_pools(ospab_db_t *db, apr_pool_t *p, const char *node,
                                const char *bridge, ospab_ippool_set_t *set);
apr_status_t ospab_ippool_lock(ospab_db_t *db, apr_pool_t *p, const ospab_ippool_set_t *set);
int ospab_ippool_take(ospab_db_t *db, apr_pool_t *p, apr_time_t now,
                      const ospab_ippool_set_t *set, const char *vps_id, ospab_ip_lease_t *l);
/* "ip=...,gw=...[,ip6=...,gw6=...]" (ip=dhcp without an IPv4 address): a QEMU guest's
 * cloud-init ipconfig0, and the addresses of a container's net0. */
const char *ospab_ippool_ipconfig(apr_pool_t *p, const ospab_ip_lease_t *l);
/* "name=eth0,bridge=B,ip=...,gw=...[,ip6=...,gw6=...]" (ip=dhcp without an IPv4 address). */
const char *ospab_ippool_net0(apr_pool_t *p, const char *bridge, const ospab_ip_lease_t *l);

/* The server's addresses go back to their pools, resting for the cooldown (now); forget:
 * at once (Proxmox never configured them). In the caller's transaction. */
apr_status_t ospab_ippool_release(ospab_db_t *db, apr_pool_t *p, const char *vps_id,
                                  apr_time_t now, int forget);

/* Tells the admins (an e-mail to each enabled admin, once per pool and hour) that pool has
 * no address left. */
void ospab_ippool_exhausted(ospab_db_t *db, apr_pool_t *p, apr_time_t now, const char *pool);

#endif
