-- ospab panel: the Proxmox nodes new servers are placed on (issue 13 items 1-2,
-- docs/operations.md "Nodes and placement"). A row per node of the configured cluster
-- that the provider registered: the storage and bridge its new guests get (NULL: the
-- module's OspabProxmoxStorage / OspabProxmoxBridge), its sshd for root password resets
-- (host[:port]; NULL: OspabProxmoxSSHHost; its key in OspabProxmoxSSHKnownHosts), how far it may be over-allocated
-- (percent of its CPUs, memory and storage that servers may be given), whether it takes
-- new servers, and the agent's latest view of it (/cluster/resources: status, CPUs,
-- memory, its guest storage's size) with the time it was sampled. Without rows every new
-- server goes to OspabProxmoxNode, as before.
CREATE TABLE nodes (
  id          INT          NOT NULL AUTO_INCREMENT,
  name        VARCHAR(63)  NOT NULL,
  storage     VARCHAR(64)  NULL,
  bridge      VARCHAR(64)  NULL,
  ssh_host    VARCHAR(255) NULL,
  cpu_ratio   INT          NOT NULL DEFAULT 400,
  mem_ratio   INT          NOT NULL DEFAULT 100,
  disk_ratio  INT          NOT NULL DEFAULT 100,
  accepts     TINYINT(1)   NOT NULL DEFAULT 1,
  lock_seq    INT          NOT NULL DEFAULT 0,
  status      VARCHAR(16)  NULL,
  maxcpu      INT          NULL,
  maxmem      BIGINT       NULL,
  mem         BIGINT       NULL,
  maxdisk     BIGINT       NULL,
  disk        BIGINT       NULL,
  sampled_at  DATETIME(3)  NULL,
  created_at  DATETIME(3)  NOT NULL,
  updated_at  DATETIME(3)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY ux_nodes_name (name),
  CONSTRAINT ck_nodes_accepts CHECK (accepts IN (0, 1))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
