-- ospab panel: initial schema, MySQL 5.7+ / MariaDB 10.3+ dialect.
--
-- Applied by `ospab-admin migrate`, which records it in schema_migrations
-- (created by the tool, not here) with the SHA-256 of this file: once this
-- file has been applied anywhere, never edit it; add 002_*.sql instead.
-- Keep sql/sqlite/001_init.sql in step: same tables, columns, index and
-- constraint names.
--
-- Conventions
--  * Timestamps are UTC text 'YYYY-MM-DD HH:MM:SS.mmm' written by the
--    application (DATETIME(3) here, TEXT in SQLite); no DB-side defaults, so
--    both dialects store exactly what the application sent.
--  * Index names are unique in the whole database (SQLite requires it):
--    ux_<table>_<cols> unique, ix_<table>_<cols> plain, fk_<table>_<col>
--    foreign keys, ck_<table>_<col> checks.
--  * Keys compared byte for byte (hashes, idempotency keys, UPIDs, dedupe
--    keys) are ascii_bin: shorter indexes and the same case-sensitive
--    equality as SQLite's default BINARY collation.
--  * CHECK constraints guard only the internal state machines.
-- This file is split into statements at ';' by the migration engine: no
-- triggers or procedures, no ';' inside string literals.

CREATE TABLE users (
  id            INT          NOT NULL AUTO_INCREMENT,
  email         VARCHAR(255) NOT NULL,
  name          VARCHAR(255) NOT NULL DEFAULT '',
  role          VARCHAR(16)  NOT NULL DEFAULT 'user',
  password_hash VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  enabled       TINYINT(1)   NOT NULL DEFAULT 1,
  created_at    DATETIME(3)  NOT NULL,
  updated_at    DATETIME(3)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY ux_users_email (email),
  CONSTRAINT ck_users_role CHECK (role IN ('user', 'admin')),
  CONSTRAINT ck_users_enabled CHECK (enabled IN (0, 1))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE tariffs (
  id         INT          NOT NULL AUTO_INCREMENT,
  name       VARCHAR(100) NOT NULL,
  price      INT          NOT NULL,
  cores      INT          NOT NULL,
  memory     INT          NOT NULL,
  disk       INT          NOT NULL,
  enabled    TINYINT(1)   NOT NULL DEFAULT 1,
  created_at DATETIME(3)  NOT NULL,
  updated_at DATETIME(3)  NOT NULL,
  PRIMARY KEY (id),
  CONSTRAINT ck_tariffs_enabled CHECK (enabled IN (0, 1))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE os_templates (
  id         INT          NOT NULL AUTO_INCREMENT,
  name       VARCHAR(100) NOT NULL,
  type       VARCHAR(16)  NOT NULL DEFAULT 'linux',
  template   VARCHAR(255) NOT NULL,
  kind       VARCHAR(8)   NOT NULL DEFAULT 'lxc',
  enabled    TINYINT(1)   NOT NULL DEFAULT 1,
  created_at DATETIME(3)  NOT NULL,
  updated_at DATETIME(3)  NOT NULL,
  PRIMARY KEY (id),
  CONSTRAINT ck_os_templates_kind CHECK (kind IN ('lxc', 'qemu')),
  CONSTRAINT ck_os_templates_enabled CHECK (enabled IN (0, 1))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- ram in MB, disk in GB (the sync API rejects GB-sized ram values).
CREATE TABLE vps (
  id          INT          NOT NULL AUTO_INCREMENT,
  external_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  name        VARCHAR(255) NOT NULL,
  status      VARCHAR(20)  NOT NULL DEFAULT 'creating',
  ip_address  VARCHAR(45)  NULL,
  cpu         INT          NOT NULL,
  ram         INT          NOT NULL,
  disk        INT          NOT NULL,
  os          VARCHAR(100) NULL,
  user_id     INT          NOT NULL,
  hypervisor  VARCHAR(20)  NOT NULL DEFAULT 'proxmox',
  node        VARCHAR(64)  NULL,
  vmid        INT          NULL,
  kind        VARCHAR(8)   NULL,
  tariff_id   INT          NULL,
  os_id       INT          NULL,
  created_at  DATETIME(3)  NOT NULL,
  updated_at  DATETIME(3)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY ux_vps_external_id (external_id),
  UNIQUE KEY ux_vps_node_vmid (node, vmid),
  KEY ix_vps_user (user_id, id),
  KEY ix_vps_tariff (tariff_id),
  KEY ix_vps_os (os_id),
  CONSTRAINT fk_vps_user FOREIGN KEY (user_id) REFERENCES users (id),
  CONSTRAINT fk_vps_tariff FOREIGN KEY (tariff_id) REFERENCES tariffs (id),
  CONSTRAINT fk_vps_os FOREIGN KEY (os_id) REFERENCES os_templates (id),
  CONSTRAINT ck_vps_kind CHECK (kind IN ('lxc', 'qemu'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per Proxmox operation (UPID), followed by the agent.
CREATE TABLE tasks (
  id          BIGINT       NOT NULL AUTO_INCREMENT,
  vps_id      INT          NULL,
  user_id     INT          NULL,
  node        VARCHAR(64)  NULL,
  upid        VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  action      VARCHAR(32)  NOT NULL,
  status      VARCHAR(16)  NOT NULL DEFAULT 'queued',
  exitstatus  VARCHAR(255) NULL,
  error       TEXT         NULL,
  created_at  DATETIME(3)  NOT NULL,
  updated_at  DATETIME(3)  NOT NULL,
  finished_at DATETIME(3)  NULL,
  PRIMARY KEY (id),
  UNIQUE KEY ux_tasks_upid (upid),
  KEY ix_tasks_vps (vps_id, id),
  KEY ix_tasks_status (status),
  CONSTRAINT fk_tasks_vps FOREIGN KEY (vps_id) REFERENCES vps (id)
    ON DELETE SET NULL,
  CONSTRAINT ck_tasks_status CHECK (status IN ('queued', 'running', 'ok', 'error'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Latest sample per server from /cluster/resources; cpu is a fraction of
-- one core (0..cores), memory and disk in bytes, uptime in seconds.
CREATE TABLE metrics_latest (
  vps_id     INT         NOT NULL,
  status     VARCHAR(20) NULL,
  cpu        DOUBLE      NULL,
  mem        BIGINT      NULL,
  maxmem     BIGINT      NULL,
  disk       BIGINT      NULL,
  maxdisk    BIGINT      NULL,
  netin      BIGINT      NULL,
  netout     BIGINT      NULL,
  uptime     BIGINT      NULL,
  sampled_at DATETIME(3) NOT NULL,
  PRIMARY KEY (vps_id),
  CONSTRAINT fk_metrics_latest_vps FOREIGN KEY (vps_id) REFERENCES vps (id)
    ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE alerts (
  id               BIGINT       NOT NULL AUTO_INCREMENT,
  vps_id           INT          NOT NULL,
  type             VARCHAR(16)  NOT NULL,
  level            VARCHAR(16)  NOT NULL,
  message          VARCHAR(255) NOT NULL,
  value            DOUBLE       NULL,
  state            VARCHAR(16)  NOT NULL DEFAULT 'open',
  opened_at        DATETIME(3)  NOT NULL,
  cleared_at       DATETIME(3)  NULL,
  last_notified_at DATETIME(3)  NULL,
  PRIMARY KEY (id),
  KEY ix_alerts_vps_type_state (vps_id, type, state),
  CONSTRAINT fk_alerts_vps FOREIGN KEY (vps_id) REFERENCES vps (id)
    ON DELETE CASCADE,
  CONSTRAINT ck_alerts_type CHECK (type IN ('cpu', 'memory', 'disk')),
  CONSTRAINT ck_alerts_level CHECK (level IN ('warning', 'critical')),
  CONSTRAINT ck_alerts_state CHECK (state IN ('open', 'cleared'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Idempotency-Key replay store; request_hash is the SHA-256 hex of the body.
CREATE TABLE idempotency_keys (
  id            BIGINT       NOT NULL AUTO_INCREMENT,
  scope         VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  idem_key      VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  request_hash  CHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  status_code   INT          NULL,
  response_body MEDIUMTEXT   NULL,
  created_at    DATETIME(3)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY ux_idempotency_keys_scope_key (scope, idem_key),
  KEY ix_idempotency_keys_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Rotating refresh tokens: only the SHA-256 of a token is stored; a token
-- reused after rotation revokes its whole family.
CREATE TABLE refresh_tokens (
  id         BIGINT       NOT NULL AUTO_INCREMENT,
  user_id    INT          NOT NULL,
  family_id  CHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  token_hash CHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  parent_id  BIGINT       NULL,
  expires_at DATETIME(3)  NOT NULL,
  used_at    DATETIME(3)  NULL,
  revoked_at DATETIME(3)  NULL,
  created_at DATETIME(3)  NOT NULL,
  user_agent VARCHAR(255) NULL,
  ip         VARCHAR(45)  NULL,
  PRIMARY KEY (id),
  UNIQUE KEY ux_refresh_tokens_hash (token_hash),
  KEY ix_refresh_tokens_family (family_id),
  KEY ix_refresh_tokens_user (user_id),
  CONSTRAINT fk_refresh_tokens_user FOREIGN KEY (user_id) REFERENCES users (id)
    ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Every state change made by a customer, an admin, the main site (sync) or
-- the agent.  details is a JSON object.  No foreign keys: the trail must
-- outlive what it describes.
CREATE TABLE audit_log (
  id          BIGINT      NOT NULL AUTO_INCREMENT,
  actor_type  VARCHAR(16) NOT NULL,
  actor_id    VARCHAR(64) NULL,
  action      VARCHAR(64) NOT NULL,
  target_type VARCHAR(32) NOT NULL,
  target_id   VARCHAR(64) NULL,
  details     TEXT        NULL,
  remote_addr VARCHAR(45) NULL,
  created_at  DATETIME(3) NOT NULL,
  PRIMARY KEY (id),
  KEY ix_audit_log_target (target_type, target_id),
  KEY ix_audit_log_created (created_at),
  CONSTRAINT ck_audit_log_actor_type
    CHECK (actor_type IN ('sync', 'user', 'admin', 'agent'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE email_outbox (
  id              BIGINT       NOT NULL AUTO_INCREMENT,
  to_addr         VARCHAR(255) NOT NULL,
  subject         VARCHAR(255) NOT NULL,
  body_text       MEDIUMTEXT   NOT NULL,
  template        VARCHAR(64)  NULL,
  dedupe_key      VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL,
  state           VARCHAR(16)  NOT NULL DEFAULT 'pending',
  attempts        INT          NOT NULL DEFAULT 0,
  next_attempt_at DATETIME(3)  NOT NULL,
  last_error      TEXT         NULL,
  created_at      DATETIME(3)  NOT NULL,
  sent_at         DATETIME(3)  NULL,
  PRIMARY KEY (id),
  UNIQUE KEY ux_email_outbox_dedupe (dedupe_key),
  KEY ix_email_outbox_due (state, next_attempt_at),
  CONSTRAINT ck_email_outbox_state
    CHECK (state IN ('pending', 'sending', 'sent', 'failed'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE webhook_outbox (
  id              BIGINT       NOT NULL AUTO_INCREMENT,
  event           VARCHAR(64)  NOT NULL,
  payload         MEDIUMTEXT   NOT NULL,
  dedupe_key      VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL,
  state           VARCHAR(16)  NOT NULL DEFAULT 'pending',
  attempts        INT          NOT NULL DEFAULT 0,
  next_attempt_at DATETIME(3)  NOT NULL,
  last_status     INT          NULL,
  last_error      TEXT         NULL,
  created_at      DATETIME(3)  NOT NULL,
  delivered_at    DATETIME(3)  NULL,
  PRIMARY KEY (id),
  UNIQUE KEY ux_webhook_outbox_dedupe (dedupe_key),
  KEY ix_webhook_outbox_due (state, next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE webhook_deliveries (
  id          BIGINT      NOT NULL AUTO_INCREMENT,
  webhook_id  BIGINT      NOT NULL,
  attempt     INT         NOT NULL,
  http_status INT         NULL,
  error       TEXT        NULL,
  duration_ms INT         NULL,
  created_at  DATETIME(3) NOT NULL,
  PRIMARY KEY (id),
  KEY ix_webhook_deliveries_webhook (webhook_id, id),
  CONSTRAINT fk_webhook_deliveries_webhook FOREIGN KEY (webhook_id)
    REFERENCES webhook_outbox (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
