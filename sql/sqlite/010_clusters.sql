-- ospab panel: Proxmox clusters as data (issue 13 item 1, docs/operations.md "Clusters").
-- A row per Proxmox VE cluster the panel manages: its API URL, its API token (the id
-- USER@REALM!TOKENID in clear, the secret sealed with AES-256-GCM under OspabSecretKey /
-- the agent's [secrets] key: "v1:" base64(nonce | ciphertext | tag); never answered by any
-- route), the CA its certificate is verified against (PEM; NULL: the system's CAs), and
-- whether it is used. A node belongs to one cluster (nodes.cluster_id; NULL: the cluster
-- of the configuration files, OspabProxmoxURL / the agent's [cluster] section, as before);
-- a tariff may name the cluster its servers are placed in, an IP pool the cluster whose
-- nodes it serves (NULL: any). The configured cluster is imported as a row the first time
-- the module or the agent starts with a key.
CREATE TABLE clusters (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  name          TEXT    NOT NULL,
  api_url       TEXT    NOT NULL,
  token_id      TEXT    NOT NULL,
  token_secret  TEXT    NOT NULL,
  ca_pem        TEXT    NULL,
  enabled       INTEGER NOT NULL DEFAULT 1,
  created_at    TEXT    NOT NULL,
  updated_at    TEXT    NOT NULL,
  CONSTRAINT ck_clusters_enabled CHECK (enabled IN (0, 1))
);
CREATE UNIQUE INDEX ux_clusters_name ON clusters (name);

ALTER TABLE nodes ADD COLUMN cluster_id INTEGER NULL REFERENCES clusters (id);
ALTER TABLE tariffs ADD COLUMN cluster_id INTEGER NULL REFERENCES clusters (id);
-- a node's sshd host key ("TYPE BASE64" as known_hosts holds it), checked instead of
-- OspabProxmoxSSHKnownHosts for root password resets on it (NULL: that file)
ALTER TABLE nodes ADD COLUMN ssh_host_key TEXT NULL;
-- an IP pool of one cluster serves its nodes only (NULL: the nodes of any cluster)
ALTER TABLE ip_pools ADD COLUMN cluster_id INTEGER NULL REFERENCES clusters (id);
