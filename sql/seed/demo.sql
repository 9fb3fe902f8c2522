-- ospab panel: demo data.  Plain INSERTs that run unchanged on SQLite and
-- MySQL/MariaDB; load it after the schema with
--     ospab-admin [--driver ... --params ...] seed demo.sql
--
-- Running it twice is safe without dialect tricks (INSERT OR IGNORE is
-- SQLite-only, INSERT IGNORE MySQL-only): `ospab-admin seed` runs the file
-- in one transaction and records it in schema_migrations as
-- 'seed:demo.sql' (negative version numbers are seeds); a second run sees
-- that row and skips the file.  Editing this file does not re-run it on a
-- database that already has it.
--
-- Ids are explicit so the docs can refer to them: user 1 is the admin,
-- user 5 the demo customer used by the curl examples (user_id 5).  No
-- passwords: set them through the users sync API.  Prices are whole roubles
-- per month, memory MB, disk GB.  Data only: no DDL here (on MySQL a DDL
-- statement would commit the seed transaction half way).

INSERT INTO users (id, email, name, role, password_hash, enabled, created_at, updated_at) VALUES
  (1, 'admin@ospab.local', 'Администратор', 'admin', NULL, 1, '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000'),
  (5, 'demo@ospab.local', 'Демо Пользователь', 'user', NULL, 1, '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000');

INSERT INTO tariffs (id, name, price, cores, memory, disk, enabled, created_at, updated_at) VALUES
  (1, 'Старт', 150, 1, 1024, 10, 1, '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000'),
  (2, 'Базовый', 300, 2, 2048, 20, 1, '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000'),
  (3, 'Про', 600, 4, 4096, 40, 1, '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000');

INSERT INTO os_templates (id, name, type, template, kind, enabled, created_at, updated_at) VALUES
  (1, 'Ubuntu 22.04', 'linux', 'local:vztmpl/ubuntu-22.04-standard_22.04-1_amd64.tar.zst', 'lxc', 1, '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000'),
  (2, 'Debian 12', 'linux', 'local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst', 'lxc', 1, '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000'),
  (3, 'AlmaLinux 9', 'linux', 'local:vztmpl/almalinux-9-default_20240911_amd64.tar.xz', 'lxc', 1, '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000');
