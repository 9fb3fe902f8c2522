-- ospab panel: IP address pools (issue 13 item 3, docs/operations.md "IP pools").
-- A pool is a range of IPv4 or IPv6 addresses for the guests on one bridge (of one node,
-- or of every node when node is NULL), with the prefix, gateway and DNS servers the guest
-- is configured with. Its addresses are rows of ip_addresses, made when the pool is: an
-- address is taken by setting vps_id in the transaction that makes the server, given back
-- when the server goes (released_at), and not handed out again before the pool's cooldown
-- has passed. One row per address, unique across all pools: no address is ever held by two
-- servers, nor in two pools.
CREATE TABLE ip_pools (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  name          TEXT    NOT NULL,
  family        INTEGER NOT NULL,
  node          TEXT    NULL,
  bridge        TEXT    NOT NULL,
  first_address TEXT    NOT NULL,
  last_address  TEXT    NOT NULL,
  prefix        INTEGER NOT NULL,
  gateway       TEXT    NULL,
  dns           TEXT    NULL,
  cooldown      INTEGER NOT NULL DEFAULT 86400,
  enabled       INTEGER NOT NULL DEFAULT 1,
  lock_seq      INTEGER NOT NULL DEFAULT 0,
  created_at    TEXT    NOT NULL,
  updated_at    TEXT    NOT NULL,
  CONSTRAINT ck_ip_pools_family CHECK (family IN (4, 6)),
  CONSTRAINT ck_ip_pools_enabled CHECK (enabled IN (0, 1))
);
CREATE UNIQUE INDEX ux_ip_pools_name ON ip_pools (name);
CREATE TABLE ip_addresses (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  pool_id     INTEGER NOT NULL,
  address     TEXT    NOT NULL,
  seq         INTEGER NOT NULL,
  vps_id      INTEGER NULL,
  taken_at    TEXT    NULL,
  released_at TEXT    NULL,
  CONSTRAINT fk_ip_addresses_pool FOREIGN KEY (pool_id) REFERENCES ip_pools (id)
);
CREATE UNIQUE INDEX ux_ip_addresses_address ON ip_addresses (address);
CREATE INDEX ix_ip_addresses_pool_free ON ip_addresses (pool_id, vps_id, seq);
CREATE INDEX ix_ip_addresses_vps ON ip_addresses (vps_id);
