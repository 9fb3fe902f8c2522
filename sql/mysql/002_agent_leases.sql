-- ospab panel: leases that let several ospab-agents share the Proxmox clusters (SPEC §9).
-- An agent polls a cluster only while it holds the cluster's lease ("cluster:<name>"),
-- renews it every cycle, and gives it up when it stops; a dead agent's lease expires and
-- another agent takes the cluster over.
CREATE TABLE agent_leases (
  name        VARCHAR(191) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  owner       VARCHAR(191) NOT NULL,
  expires_at  DATETIME(3)  NOT NULL,
  updated_at  DATETIME(3)  NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
