"""ospab-admin migrate / status / seed against real databases.

Every test runs on a fresh SQLite file (tmp_path) and on a fresh database in
the session's private MariaDB (the conftest's `mariadb_server`);
OSPAB_TEST_DBS=sqlite (or mariadb) restricts the run to one kind, as for the
other integration tests.  The binary is admin/ospab-admin in the
build tree, or $OSPAB_ADMIN.  Tests that edit migrations work on a copy of
sql/ in tmp_path.
"""

import hashlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SQL_DIR = REPO / "sql"
ADMIN = Path(os.environ.get("OSPAB_ADMIN") or REPO / "admin" / "ospab-admin")
KINDS = [k for k in os.environ.get("OSPAB_TEST_DBS", "sqlite,mariadb").split(",") if k]

# Tables of SPEC §5, plus webhook_deliveries (the webhook outbox's attempt log).
SPEC_TABLES = {
    "users", "vps", "tariffs", "os_templates", "tasks", "metrics_latest", "alerts",
    "idempotency_keys", "refresh_tokens", "audit_log", "email_outbox",
    "webhook_outbox", "webhook_deliveries", "schema_migrations",
}
TS = "2026-01-01 00:00:00.000"

# The migrations the project ships (the same names in both dialects); the tests that add
# files of their own number them after these.
SHIPPED = sorted(p.name for p in (SQL_DIR / "sqlite").glob("[0-9][0-9][0-9]_*.sql"))
SHIPPED_VERSIONS = [str(int(n[:3])) for n in SHIPPED]
NEXT = f"{int(SHIPPED[-1][:3]) + 1:03d}"        # the first number a test may use
AFTER = f"{int(SHIPPED[-1][:3]) + 2:03d}"
NEXT_V = str(int(NEXT))


def admin_binary():
    if not os.access(ADMIN, os.X_OK):
        pytest.fail(f"{ADMIN} is not built: run the build first (or set OSPAB_ADMIN "
                    "to the ospab-admin binary)", pytrace=False)
    return ADMIN


class Target:
    """One empty database plus the way to run ospab-admin and SQL on it."""

    def __init__(self, kind, sql_dir, path=None, server=None, mdb=None):
        self.kind = kind
        self.sql_dir = sql_dir
        self.path = path            # SQLite file
        self.server = server        # harness.Mariadb
        self.mdb = mdb              # harness.MariadbDatabase
        self.driver = "sqlite3" if kind == "sqlite" else "mysql"
        self.dialect_dir = sql_dir / ("sqlite" if kind == "sqlite" else "mysql")

    @property
    def params(self):
        return str(self.path) if self.kind == "sqlite" else self.mdb.params

    def admin(self, *args, params=None, driver=None):
        cmd = [str(admin_binary()), "--driver", driver or self.driver,
               "--params", params or self.params, "--sql-dir", str(self.sql_dir),
               *[str(a) for a in args]]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    def ok(self, *args):
        r = self.admin(*args)
        assert r.returncode == 0, f"ospab-admin {args} exit {r.returncode}:\n{r.stdout}{r.stderr}"
        return r

    def rows(self, sql):
        """Rows as tuples of str/None, the same on both kinds."""
        if self.kind == "sqlite":
            con = sqlite3.connect(self.path)
            try:
                return [tuple(None if v is None else str(v) for v in row)
                        for row in con.execute(sql).fetchall()]
            finally:
                con.close()
        return [tuple(r.values()) for r in self.mdb.query(sql)]

    def execute(self, sql):
        if self.kind == "sqlite":
            con = sqlite3.connect(self.path)
            try:
                con.execute(sql)
                con.commit()
            finally:
                con.close()
        else:
            self.server.sql(sql + ";\n", database=self.mdb.name)

    def tables(self):
        if self.kind == "sqlite":
            sql = ("SELECT name FROM sqlite_master WHERE type = 'table' "
                   "AND name NOT LIKE 'sqlite_%'")
        else:
            sql = ("SELECT table_name FROM information_schema.tables "
                   f"WHERE table_schema = '{self.mdb.name}'")
        return {r[0] for r in self.rows(sql)}

    def migrations(self):
        return self.rows("SELECT version, name, checksum, state, applied_at "
                         "FROM schema_migrations ORDER BY version")


@pytest.fixture(params=KINDS)
def target(request, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    if request.param == "sqlite":
        return Target("sqlite", sql_dir, path=tmp_path / "ospab.db")
    server = request.getfixturevalue("mariadb_server")
    return Target("mariadb", sql_dir, server=server, mdb=server.create_database())


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ------------------------------------------------------------------ migrate --

def test_fresh_migrate_creates_every_table(target):
    r = target.ok("migrate")
    assert sorted(SHIPPED) == sorted(p.name for p in target.dialect_dir.glob("[0-9]*.sql"))
    for name in SHIPPED:
        assert f"applied {name}" in r.stdout, r.stdout
    assert SPEC_TABLES | {"agent_leases"} <= target.tables()
    rows = target.migrations()
    assert [(v, n, st) for v, n, _, st, _ in rows] == \
        [(v, n, "applied") for v, n in zip(SHIPPED_VERSIONS, SHIPPED)]
    for (_, name, checksum, _, applied_at) in rows:
        assert checksum == sha256(target.dialect_dir / name)
        assert len(applied_at) == len("2026-01-01 00:00:00.000")


def test_second_migrate_applies_nothing(target):
    target.ok("migrate")
    before = target.migrations()
    r = target.ok("migrate")
    assert "nothing to apply" in r.stdout
    assert "applied 0" not in r.stdout and "001_init" not in r.stdout
    assert target.migrations() == before


def test_dry_run_changes_nothing(target):
    r = target.ok("migrate", "--dry-run")
    assert "would apply 001_init.sql" in r.stdout
    assert "schema_migrations" not in target.tables()
    assert not (target.tables() & SPEC_TABLES)


def test_status_lists_pending_then_applied(target):
    target.ok("migrate")
    (target.dialect_dir / f"{NEXT}_extra.sql").write_text(
        "CREATE TABLE mig_extra (id INT NOT NULL);\n")
    lines = target.ok("status").stdout.splitlines()
    assert any(l.split()[:2] == ["001", "applied"] for l in lines), lines
    assert any(l.split()[:2] == [NEXT, "pending"] for l in lines), lines
    target.ok("migrate")
    lines = target.ok("status").stdout.splitlines()
    assert any(l.split()[:2] == [NEXT, "applied"] for l in lines), lines
    assert "mig_extra" in target.tables()


def test_edited_applied_file_is_refused(target):
    target.ok("migrate")
    f = target.dialect_dir / "001_init.sql"
    f.write_text(f.read_text() + "-- an innocent-looking edit\n")
    (target.dialect_dir / f"{NEXT}_extra.sql").write_text(
        "CREATE TABLE mig_extra (id INT NOT NULL);\n")
    r = target.admin("migrate")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "001_init.sql" in r.stderr and "edited after being applied" in r.stderr
    assert "mig_extra" not in target.tables()        # nothing after it ran either
    assert any(l.split()[:2] == ["001", "changed"]
               for l in target.ok("status").stdout.splitlines())


def test_half_applied_migration_is_refused(target):
    target.ok("migrate")
    (target.dialect_dir / f"{NEXT}_half.sql").write_text(
        "CREATE TABLE mig_half (id INT NOT NULL);\n")
    target.execute("INSERT INTO schema_migrations (version, name, checksum, state, applied_at) "
                   f"VALUES ({NEXT_V}, '{NEXT}_half.sql', '{'0' * 64}', 'applying', '{TS}')")
    r = target.admin("migrate")
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{NEXT}_half.sql" in r.stderr and "half-applied" in r.stderr
    assert f"DELETE FROM schema_migrations WHERE version = {NEXT_V}" in r.stderr
    assert "mig_half" not in target.tables()
    assert any(l.split()[:2] == [NEXT, "applying"]
               for l in target.ok("status").stdout.splitlines())
    # after the repair the operator was told to do, it applies
    target.execute(f"DELETE FROM schema_migrations WHERE version = {NEXT_V}")
    target.ok("migrate")
    assert "mig_half" in target.tables()


def test_failing_migration(target):
    """SQLite: all or nothing.  MariaDB (DDL is not transactional): a failure
    at the first statement leaves no trace, a later one leaves the migration
    'applying', which the next run refuses."""
    target.ok("migrate")
    f = target.dialect_dir / f"{NEXT}_broken.sql"
    f.write_text("-- fails at once\nCREATE TABLE users (id INT);\n")
    r = target.admin("migrate")
    assert r.returncode == 2
    assert f"{NEXT}_broken.sql line 2" in r.stderr and "CREATE TABLE users" in r.stderr
    assert [m[0] for m in target.migrations()] == SHIPPED_VERSIONS

    f.write_text("CREATE TABLE mig_first (id INT);\n"
                 "INSERT INTO mig_first (id) VALUES (1);\n"
                 "CREATE TABLE users (id INT);\n")
    r = target.admin("migrate")
    assert r.returncode == 2
    assert f"{NEXT}_broken.sql line 3" in r.stderr
    if target.kind == "sqlite":
        assert "rolled back" in r.stderr
        assert "mig_first" not in target.tables()
        assert [m[0] for m in target.migrations()] == SHIPPED_VERSIONS
    else:
        assert "half-applied" in r.stderr
        assert "mig_first" in target.tables()
        assert [(m[0], m[3]) for m in target.migrations()] == \
            [(v, "applied") for v in SHIPPED_VERSIONS] + [(NEXT_V, "applying")]
        again = target.admin("migrate")
        assert again.returncode == 2 and "half-applied" in again.stderr


def test_pending_file_older_than_applied_is_refused(target):
    (target.dialect_dir / f"{AFTER}_later.sql").write_text("CREATE TABLE mig_later (id INT);\n")
    target.ok("migrate")
    (target.dialect_dir / f"{NEXT}_forgotten.sql").write_text("CREATE TABLE mig_old (id INT);\n")
    r = target.admin("migrate")
    assert r.returncode == 2
    assert f"{NEXT}_forgotten.sql" in r.stderr and AFTER in r.stderr
    assert "mig_old" not in target.tables()


def test_badly_named_migration_is_refused(target):
    (target.dialect_dir / "2_oops.sql").write_text("CREATE TABLE mig_oops (id INT);\n")
    r = target.admin("migrate")
    assert r.returncode == 2
    assert "2_oops.sql" in r.stderr and "NNN_name.sql" in r.stderr
    assert "users" not in target.tables()


def test_quotes_and_comments_are_split_correctly(target):
    target.ok("migrate")
    (target.dialect_dir / f"{NEXT}_quotes.sql").write_text(
        "/* a block comment; with a semicolon */\n"
        "CREATE TABLE mig_q (id INT NOT NULL, s VARCHAR(40) NOT NULL);\n"
        "INSERT INTO mig_q (id, s) VALUES (1, 'semi;colon'), -- comment; here\n"
        "  (2, 'it''s');\n"
        "SELECT COUNT(*) FROM mig_q;\n"
        "INSERT INTO mig_q (id, s) VALUES (3, '-- not a comment')\n")
    target.ok("migrate")
    assert target.rows("SELECT id, s FROM mig_q ORDER BY id") == [
        ("1", "semi;colon"), ("2", "it's"), ("3", "-- not a comment")]


# --------------------------------------------------------------------- seed --

def test_seed_twice(target):
    target.ok("migrate")
    r = target.ok("seed", "demo.sql")               # found in SQL-DIR/seed
    assert "applied seed:demo.sql" in r.stdout
    counts = target.rows("SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM tariffs), "
                         "(SELECT COUNT(*) FROM os_templates)")
    assert counts == [("2", "3", "3")]
    assert target.rows("SELECT id, role FROM users ORDER BY id") == [("1", "admin"), ("5", "user")]
    # UTF-8 survives the trip on both (MySQL: the engine sets utf8mb4)
    assert [r[0] for r in target.rows("SELECT name FROM tariffs ORDER BY price")] == [
        "Старт", "Базовый", "Про"]

    r = target.ok("seed", target.sql_dir / "seed" / "demo.sql")
    assert "skipped seed:demo.sql" in r.stdout
    assert target.rows("SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM tariffs), "
                       "(SELECT COUNT(*) FROM os_templates)") == counts
    status = target.ok("status").stdout
    assert "seed:demo.sql" in status
    # seeds do not count as migrations: migrate still has nothing to do
    assert "nothing to apply" in target.ok("migrate").stdout


def test_seed_that_fails_leaves_nothing(target, tmp_path):
    target.ok("migrate")
    bad = tmp_path / "bad.sql"
    bad.write_text(
        "INSERT INTO users (id, email, name, role, enabled, created_at, updated_at) "
        f"VALUES (7, 'seven@ospab.local', 'x', 'user', 1, '{TS}', '{TS}');\n"
        "INSERT INTO vps (name, cpu, ram, disk, user_id, created_at, updated_at) "
        f"VALUES ('orphan', 1, 512, 10, 999, '{TS}', '{TS}');\n")
    r = target.admin("seed", bad)
    assert r.returncode == 2
    assert "bad.sql line 2" in r.stderr and "rolled back" in r.stderr
    assert target.rows("SELECT COUNT(*) FROM users WHERE id = 7") == [("0",)]
    assert [m[1] for m in target.migrations()] == SHIPPED


def test_email_is_unique_ignoring_case(target):
    target.ok("migrate")
    target.ok("seed", "demo.sql")
    with pytest.raises((sqlite3.IntegrityError, RuntimeError)):   # RuntimeError: mariadb CLI
        target.execute("INSERT INTO users (email, created_at, updated_at) "
                       f"VALUES ('Demo@OSPAB.local', '{TS}', '{TS}')")
    assert target.rows("SELECT COUNT(*) FROM users") == [("2",)]


# ---------------------------------------------------------------- the CLI --

def test_password_is_never_printed(target):
    if target.kind == "sqlite":
        # no server needed: the connection fails, the message must not leak
        params = "host=127.0.0.1 port=1 user=ospab pass=Sup3rS3cretPw dbname=ospab"
        secret = "Sup3rS3cretPw"
        r = target.admin("status", driver="mysql", params=params)
    else:
        secret = "Wr0ngPassw0rd"
        params = target.params.replace(f"pass={target.server.password}", f"pass={secret}")
        assert secret in params
        r = target.admin("migrate", params=params)
    assert r.returncode == 2
    assert "cannot open mysql database" in r.stderr
    assert secret not in r.stdout + r.stderr
    assert "pass=***" in r.stderr


def test_usage_errors_exit_1(tmp_path):
    binary = str(admin_binary())
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSPAB_DB_")}
    no_cmd = subprocess.run([binary], capture_output=True, text=True, env=env)
    assert no_cmd.returncode == 1 and "usage:" in no_cmd.stderr
    unknown = subprocess.run([binary, "frobnicate"], capture_output=True, text=True, env=env)
    assert unknown.returncode == 1 and "unknown command" in unknown.stderr
    no_db = subprocess.run([binary, "migrate"], capture_output=True, text=True, env=env)
    assert no_db.returncode == 1 and "OSPAB_DB_DRIVER" in no_db.stderr
    helped = subprocess.run([binary, "--help"], capture_output=True, text=True, env=env)
    assert helped.returncode == 0 and "migrate" in helped.stdout and "seed" in helped.stdout


def test_connection_from_environment(tmp_path):
    db = tmp_path / "env.db"
    env = dict(os.environ, OSPAB_DB_DRIVER="sqlite3", OSPAB_DB_PARAMS=str(db))
    r = subprocess.run([str(admin_binary()), "--sql-dir", str(SQL_DIR), "migrate"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT state FROM schema_migrations WHERE version = 1").fetchall() \
            == [("applied",)]
    finally:
        con.close()


def test_build_tree_tool_finds_its_sql(tmp_path):
    """Issue 10 item 8: `ospab-admin migrate` run from the build tree, before `make
    install`, finds the tree's sql/ by itself; seeding recomputes the users' login keys."""
    tool = REPO / "admin" / "ospab-admin"        # the build tree's, whatever $OSPAB_ADMIN
    assert os.access(tool, os.X_OK), f"{tool} is not built"
    db = tmp_path / "tree.db"
    base = [str(tool), "--driver", "sqlite3", "--params", str(db)]
    r = subprocess.run(base + ["migrate"], capture_output=True, text=True)
    assert r.returncode == 0 and "applied 001_init.sql" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(base + ["status"], capture_output=True, text=True)
    assert f"[{REPO}/admin/../sql/sqlite]" in r.stdout, r.stdout
    r = subprocess.run(base + ["seed", "demo.sql"], capture_output=True, text=True)
    assert r.returncode == 0 and "login keys of 2 users updated" in r.stdout, r.stdout
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT email_key FROM users WHERE id = 5").fetchall() == \
            [("demo@ospab.local",)]
    finally:
        con.close()
