-- ospab panel: what MariaDB Galera needs to keep the panel's guarantees across nodes
-- (issue 18, docs/scaling.md).
-- * lock_seq: a transaction that serialises on a row (the "lock" statements of
--   lib/ospab_sql.c) now changes it. Galera certifies only rows a transaction wrote; an
--   UPDATE that leaves a row as it was writes nothing, so two nodes could each take the
--   same "lock" at once (two power operations on one server, a quota counted twice).
-- * fence: the fencing token of an agent's lease, one more each time the lease changes
--   hands; the holder's writes check it in their own transaction, so an agent that was
--   paused past its lease writes nothing once another took over.
ALTER TABLE vps ADD COLUMN lock_seq BIGINT UNSIGNED NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN lock_seq BIGINT UNSIGNED NOT NULL DEFAULT 0;
ALTER TABLE agent_leases ADD COLUMN fence BIGINT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN lock_seq BIGINT UNSIGNED NOT NULL DEFAULT 0;
-- * a server's tasks newest first by time (GET /api/server/{id}/tasks): ids are not in
--   time order when each Galera node hands out its own (auto_increment_offset).
CREATE INDEX ix_tasks_vps_created ON tasks (vps_id, created_at);
