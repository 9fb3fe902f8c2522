-- ospab panel: IP address pools (issue 13 item 3, docs/operations.md "IP pools").
-- A pool is a range of IPv4 or IPv6 addresses for the guests on one bridge (of one node,
-- or of every node when node is NULL), with the prefix, gateway and DNS servers the guest
-- is configured with. Its addresses are rows of ip_addresses, made when the pool is: an
-- address is taken by setting vps_id in the transaction that makes the server, given back
-- when the server goes (released_at), and not handed out again before the pool's cooldown
-- has passed. One row per address, unique across all pools: no address is ever held by two
-- servers, nor in two pools.
CREATE TABLE ip_pools (
  id            INT          NOT NULL AUTO_INCREMENT,
  name          VARCHAR(64)  NOT NULL,
  family        TINYINT      NOT NULL,
  node          VARCHAR(63)  NULL,
  bridge        VARCHAR(64)  NOT NULL,
  first_address VARCHAR(45)  NOT NULL,
  last_address  VARCHAR(45)  NOT NULL,
  prefix        TINYINT      NOT NULL,
  gateway       VARCHAR(45)  NULL,
  dns           VARCHAR(255) NULL,
  cooldown      INT          NOT NULL DEFAULT 86400,
  enabled       TINYINT(1)   NOT NULL DEFAULT 1,
  lock_seq      INT          NOT NULL DEFAULT 0,
  created_at    DATETIME(3)  NOT NULL,
  updated_at    DATETIME(3)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY ux_ip_pools_name (name),
  CONSTRAINT ck_ip_pools_family CHECK (family IN (4, 6)),
  CONSTRAINT ck_ip_pools_enabled CHECK (enabled IN (0, 1))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE ip_addresses (
  id          BIGINT      NOT NULL AUTO_INCREMENT,
  pool_id     INT         NOT NULL,
  address     VARCHAR(45) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  seq         INT         NOT NULL,
  vps_id      INT         NULL,
  taken_at    DATETIME(3) NULL,
  released_at DATETIME(3) NULL,
  PRIMARY KEY (id),
  UNIQUE KEY ux_ip_addresses_address (address),
  KEY ix_ip_addresses_pool_free (pool_id, vps_id, seq),
  KEY ix_ip_addresses_vps (vps_id),
  CONSTRAINT fk_ip_addresses_pool FOREIGN KEY (pool_id) REFERENCES ip_pools (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
