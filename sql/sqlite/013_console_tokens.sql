-- ospab panel: one-time console tokens (issue 15, docs/console.md). POST /api/server/console
-- answers a URL of the panel's own console page carrying a random token; the browser gives
-- it to the agent's console WebSocket, which redeems it once, within its minute, and
-- opens the guest's console on Proxmox itself. Only the token's SHA-256 is kept; a token
-- is bound to its user, its server and the console's kind (terminal: a container's
-- termproxy; vnc: a KVM server's vncproxy).
CREATE TABLE console_tokens (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  token_hash  TEXT    NOT NULL,
  user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  vps_id      INTEGER NOT NULL REFERENCES vps (id) ON DELETE CASCADE,
  kind        TEXT    NOT NULL,
  expires_at  TEXT    NOT NULL,
  used_at     TEXT    NULL,
  created_at  TEXT    NOT NULL,
  CONSTRAINT ck_console_tokens_kind CHECK (kind IN ('terminal', 'vnc'))
);
CREATE UNIQUE INDEX ux_console_tokens_hash ON console_tokens (token_hash);
CREATE INDEX ix_console_tokens_expires ON console_tokens (expires_at);
