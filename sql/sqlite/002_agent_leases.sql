-- ospab panel: leases that let several ospab-agents share the Proxmox clusters (SPEC §9).
-- An agent polls a cluster only while it holds the cluster's lease ("cluster:<name>"),
-- renews it every cycle, and gives it up when it stops; a dead agent's lease expires and
-- another agent takes the cluster over.
CREATE TABLE agent_leases (
  name        TEXT NOT NULL PRIMARY KEY,
  owner       TEXT NOT NULL,
  expires_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL
);
