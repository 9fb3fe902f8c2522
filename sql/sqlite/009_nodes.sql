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
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  name        TEXT    NOT NULL,
  storage     TEXT    NULL,
  bridge      TEXT    NULL,
  ssh_host    TEXT    NULL,
  cpu_ratio   INTEGER NOT NULL DEFAULT 400,
  mem_ratio   INTEGER NOT NULL DEFAULT 100,
  disk_ratio  INTEGER NOT NULL DEFAULT 100,
  accepts     INTEGER NOT NULL DEFAULT 1,
  lock_seq    INTEGER NOT NULL DEFAULT 0,
  status      TEXT    NULL,
  maxcpu      INTEGER NULL,
  maxmem      INTEGER NULL,
  mem         INTEGER NULL,
  maxdisk     INTEGER NULL,
  disk        INTEGER NULL,
  sampled_at  TEXT    NULL,
  created_at  TEXT    NOT NULL,
  updated_at  TEXT    NOT NULL,
  CONSTRAINT ck_nodes_accepts CHECK (accepts IN (0, 1))
);
CREATE UNIQUE INDEX ux_nodes_name ON nodes (name);
