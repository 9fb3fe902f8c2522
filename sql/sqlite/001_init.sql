-- ospab panel: initial schema, SQLite 3.8.3+ dialect.
--
-- Applied by `ospab-admin migrate` in one transaction together with its
-- schema_migrations row (that table is created by the tool, not here); the
-- SHA-256 of this file is recorded: once applied anywhere, never edit it,
-- add 002_*.sql instead.  Keep sql/mysql/001_init.sql in step: same tables,
-- columns, index and constraint names.
--
-- Conventions
--  * Timestamps are UTC text 'YYYY-MM-DD HH:MM:SS.mmm' written by the
--    application, so they sort and compare as text.
--  * Ids are INTEGER PRIMARY KEY AUTOINCREMENT (64-bit; ids are never
--    reused, as with MySQL's AUTO_INCREMENT).
--  * Foreign keys are declared here and enforced when the connection runs
--    PRAGMA foreign_keys = ON (the module and the agent do).  A later
--    migration that rebuilds a table must use PRAGMA defer_foreign_keys:
--    the engine runs each file inside a transaction, where
--    PRAGMA foreign_keys cannot be changed.
--  * Index names are global in SQLite: ux_<table>_<cols> unique,
--    ix_<table>_<cols> plain.  Unique constraints are written as named
--    unique indexes so both dialects have the same index names.
--  * Comparison is BINARY (case-sensitive) except users.email (NOCASE).
-- This file is split into statements at ';' by the migration engine: no
-- triggers, no ';' inside string literals.

CREATE TABLE users (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  email         TEXT    NOT NULL COLLATE NOCASE,
  name          TEXT    NOT NULL DEFAULT '',
  role          TEXT    NOT NULL DEFAULT 'user',
  password_hash TEXT    NULL,
  enabled       INTEGER NOT NULL DEFAULT 1,
  created_at    TEXT    NOT NULL,
  updated_at    TEXT    NOT NULL,
  CONSTRAINT ck_users_role CHECK (role IN ('user', 'admin')),
  CONSTRAINT ck_users_enabled CHECK (enabled IN (0, 1))
);
CREATE UNIQUE INDEX ux_users_email ON users (email);

CREATE TABLE tariffs (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  name       TEXT    NOT NULL,
  price      INTEGER NOT NULL,
  cores      INTEGER NOT NULL,
  memory     INTEGER NOT NULL,
  disk       INTEGER NOT NULL,
  enabled    INTEGER NOT NULL DEFAULT 1,
  created_at TEXT    NOT NULL,
  updated_at TEXT    NOT NULL,
  CONSTRAINT ck_tariffs_enabled CHECK (enabled IN (0, 1))
);

CREATE TABLE os_templates (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  name       TEXT    NOT NULL,
  type       TEXT    NOT NULL DEFAULT 'linux',
  template   TEXT    NOT NULL,
  kind       TEXT    NOT NULL DEFAULT 'lxc',
  enabled    INTEGER NOT NULL DEFAULT 1,
  created_at TEXT    NOT NULL,
  updated_at TEXT    NOT NULL,
  CONSTRAINT ck_os_templates_kind CHECK (kind IN ('lxc', 'qemu')),
  CONSTRAINT ck_os_templates_enabled CHECK (enabled IN (0, 1))
);

-- ram in MB, disk in GB (the sync API rejects GB-sized ram values).
CREATE TABLE vps (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  external_id TEXT    NULL,
  name        TEXT    NOT NULL,
  status      TEXT    NOT NULL DEFAULT 'creating',
  ip_address  TEXT    NULL,
  cpu         INTEGER NOT NULL,
  ram         INTEGER NOT NULL,
  disk        INTEGER NOT NULL,
  os          TEXT    NULL,
  user_id     INTEGER NOT NULL,
  hypervisor  TEXT    NOT NULL DEFAULT 'proxmox',
  node        TEXT    NULL,
  vmid        INTEGER NULL,
  kind        TEXT    NULL,
  tariff_id   INTEGER NULL,
  os_id       INTEGER NULL,
  created_at  TEXT    NOT NULL,
  updated_at  TEXT    NOT NULL,
  CONSTRAINT fk_vps_user FOREIGN KEY (user_id) REFERENCES users (id),
  CONSTRAINT fk_vps_tariff FOREIGN KEY (tariff_id) REFERENCES tariffs (id),
  CONSTRAINT fk_vps_os FOREIGN KEY (os_id) REFERENCES os_templates (id),
  CONSTRAINT ck_vps_kind CHECK (kind IN ('lxc', 'qemu'))
);
CREATE UNIQUE INDEX ux_vps_external_id ON vps (external_id);
CREATE UNIQUE INDEX ux_vps_node_vmid ON vps (node, vmid);
CREATE INDEX ix_vps_user ON vps (user_id, id);
CREATE INDEX ix_vps_tariff ON vps (tariff_id);
CREATE INDEX ix_vps_os ON vps (os_id);

-- One row per Proxmox operation (UPID), followed by the agent.
CREATE TABLE tasks (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  vps_id      INTEGER NULL,
  user_id     INTEGER NULL,
  node        TEXT    NULL,
  upid        TEXT    NULL,
  action      TEXT    NOT NULL,
  status      TEXT    NOT NULL DEFAULT 'queued',
  exitstatus  TEXT    NULL,
  error       TEXT    NULL,
  created_at  TEXT    NOT NULL,
  updated_at  TEXT    NOT NULL,
  finished_at TEXT    NULL,
  CONSTRAINT fk_tasks_vps FOREIGN KEY (vps_id) REFERENCES vps (id)
    ON DELETE SET NULL,
  CONSTRAINT ck_tasks_status CHECK (status IN ('queued', 'running', 'ok', 'error'))
);
CREATE UNIQUE INDEX ux_tasks_upid ON tasks (upid);
CREATE INDEX ix_tasks_vps ON tasks (vps_id, id);
CREATE INDEX ix_tasks_status ON tasks (status);

-- Latest sample per server from /cluster/resources; cpu is a fraction of
-- one core (0..cores), memory and disk in bytes, uptime in seconds.
CREATE TABLE metrics_latest (
  vps_id     INTEGER NOT NULL PRIMARY KEY,
  status     TEXT    NULL,
  cpu        REAL    NULL,
  mem        INTEGER NULL,
  maxmem     INTEGER NULL,
  disk       INTEGER NULL,
  maxdisk    INTEGER NULL,
  netin      INTEGER NULL,
  netout     INTEGER NULL,
  uptime     INTEGER NULL,
  sampled_at TEXT    NOT NULL,
  CONSTRAINT fk_metrics_latest_vps FOREIGN KEY (vps_id) REFERENCES vps (id)
    ON DELETE CASCADE
);

CREATE TABLE alerts (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  vps_id           INTEGER NOT NULL,
  type             TEXT    NOT NULL,
  level            TEXT    NOT NULL,
  message          TEXT    NOT NULL,
  value            REAL    NULL,
  state            TEXT    NOT NULL DEFAULT 'open',
  opened_at        TEXT    NOT NULL,
  cleared_at       TEXT    NULL,
  last_notified_at TEXT    NULL,
  CONSTRAINT fk_alerts_vps FOREIGN KEY (vps_id) REFERENCES vps (id)
    ON DELETE CASCADE,
  CONSTRAINT ck_alerts_type CHECK (type IN ('cpu', 'memory', 'disk')),
  CONSTRAINT ck_alerts_level CHECK (level IN ('warning', 'critical')),
  CONSTRAINT ck_alerts_state CHECK (state IN ('open', 'cleared'))
);
CREATE INDEX ix_alerts_vps_type_state ON alerts (vps_id, type, state);

-- Idempotency-Key replay store; request_hash is the SHA-256 hex of the body.
CREATE TABLE idempotency_keys (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  scope         TEXT    NOT NULL,
  idem_key      TEXT    NOT NULL,
  request_hash  TEXT    NOT NULL,
  status_code   INTEGER NULL,
  response_body TEXT    NULL,
  created_at    TEXT    NOT NULL
);
CREATE UNIQUE INDEX ux_idempotency_keys_scope_key
  ON idempotency_keys (scope, idem_key);
CREATE INDEX ix_idempotency_keys_created ON idempotency_keys (created_at);

-- Rotating refresh tokens: only the SHA-256 of a token is stored; a token
-- reused after rotation revokes its whole family.
CREATE TABLE refresh_tokens (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id    INTEGER NOT NULL,
  family_id  TEXT    NOT NULL,
  token_hash TEXT    NOT NULL,
  parent_id  INTEGER NULL,
  expires_at TEXT    NOT NULL,
  used_at    TEXT    NULL,
  revoked_at TEXT    NULL,
  created_at TEXT    NOT NULL,
  user_agent TEXT    NULL,
  ip         TEXT    NULL,
  CONSTRAINT fk_refresh_tokens_user FOREIGN KEY (user_id) REFERENCES users (id)
    ON DELETE CASCADE
);
CREATE UNIQUE INDEX ux_refresh_tokens_hash ON refresh_tokens (token_hash);
CREATE INDEX ix_refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX ix_refresh_tokens_user ON refresh_tokens (user_id);

-- Every state change made by a customer, an admin, the main site (sync) or
-- the agent.  details is a JSON object.  No foreign keys: the trail must
-- outlive what it describes.
CREATE TABLE audit_log (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  actor_type  TEXT    NOT NULL,
  actor_id    TEXT    NULL,
  action      TEXT    NOT NULL,
  target_type TEXT    NOT NULL,
  target_id   TEXT    NULL,
  details     TEXT    NULL,
  remote_addr TEXT    NULL,
  created_at  TEXT    NOT NULL,
  CONSTRAINT ck_audit_log_actor_type
    CHECK (actor_type IN ('sync', 'user', 'admin', 'agent'))
);
CREATE INDEX ix_audit_log_target ON audit_log (target_type, target_id);
CREATE INDEX ix_audit_log_created ON audit_log (created_at);

CREATE TABLE email_outbox (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  to_addr         TEXT    NOT NULL,
  subject         TEXT    NOT NULL,
  body_text       TEXT    NOT NULL,
  template        TEXT    NULL,
  dedupe_key      TEXT    NULL,
  state           TEXT    NOT NULL DEFAULT 'pending',
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT    NOT NULL,
  last_error      TEXT    NULL,
  created_at      TEXT    NOT NULL,
  sent_at         TEXT    NULL,
  CONSTRAINT ck_email_outbox_state
    CHECK (state IN ('pending', 'sending', 'sent', 'failed'))
);
CREATE UNIQUE INDEX ux_email_outbox_dedupe ON email_outbox (dedupe_key);
CREATE INDEX ix_email_outbox_due ON email_outbox (state, next_attempt_at);

CREATE TABLE webhook_outbox (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  event           TEXT    NOT NULL,
  payload         TEXT    NOT NULL,
  dedupe_key      TEXT    NULL,
  state           TEXT    NOT NULL DEFAULT 'pending',
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT    NOT NULL,
  last_status     INTEGER NULL,
  last_error      TEXT    NULL,
  created_at      TEXT    NOT NULL,
  delivered_at    TEXT    NULL
);
CREATE UNIQUE INDEX ux_webhook_outbox_dedupe ON webhook_outbox (dedupe_key);
CREATE INDEX ix_webhook_outbox_due ON webhook_outbox (state, next_attempt_at);

CREATE TABLE webhook_deliveries (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  webhook_id  INTEGER NOT NULL,
  attempt     INTEGER NOT NULL,
  http_status INTEGER NULL,
  error       TEXT    NULL,
  duration_ms INTEGER NULL,
  created_at  TEXT    NOT NULL,
  CONSTRAINT fk_webhook_deliveries_webhook FOREIGN KEY (webhook_id)
    REFERENCES webhook_outbox (id) ON DELETE CASCADE
);
CREATE INDEX ix_webhook_deliveries_webhook
  ON webhook_deliveries (webhook_id, id);
