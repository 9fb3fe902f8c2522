-- ospab panel: one-time console tokens (issue 15, docs/console.md). POST /api/server/console
-- answers a URL of the panel's own console page carrying a random token; the browser gives
-- it to the agent's console WebSocket, which redeems it once, within its minute, and
-- opens the guest's console on Proxmox itself. Only the token's SHA-256 is kept; a token
-- is bound to its user, its server and the console's kind (terminal: a container's
-- termproxy; vnc: a KVM server's vncproxy).
CREATE TABLE console_tokens (
  id          BIGINT        NOT NULL AUTO_INCREMENT,
  token_hash  CHAR(64)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  user_id     INT           NOT NULL,
  vps_id      INT           NOT NULL,
  kind        VARCHAR(16)   NOT NULL,
  expires_at  DATETIME(3)   NOT NULL,
  used_at     DATETIME(3)   NULL,
  created_at  DATETIME(3)   NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY ux_console_tokens_hash (token_hash),
  KEY ix_console_tokens_expires (expires_at),
  CONSTRAINT fk_console_tokens_user FOREIGN KEY (user_id) REFERENCES users (id)
    ON DELETE CASCADE,
  CONSTRAINT fk_console_tokens_vps FOREIGN KEY (vps_id) REFERENCES vps (id)
    ON DELETE CASCADE,
  CONSTRAINT ck_console_tokens_kind CHECK (kind IN ('terminal', 'vnc'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
