"""Start a real Apache httpd with mod_ospab (and a private MariaDB) for tests,
the demo and the benchmarks.

Plain Python (no pytest imports) so scripts/demo and bench/ can use it too:

    from harness import Apache, Mariadb, SqliteDatabase, migrate, seed

    db = SqliteDatabase.create()            # fresh file owned by www-data
    migrate(db.driver, db.params); seed(db.driver, db.params)
    httpd = Apache(db)
    httpd.start()
    print(httpd.url("/api/vps/sync"), httpd.sync_key)
    httpd.stop()

Nothing of Debian's /etc/apache2 is used: every instance gets its own run
directory with a self-contained httpd.conf, logs, pid file and mutexes.
Apache's children run as www-data, so run directories are 0755 and SQLite
database directories belong to www-data.
"""

import grp
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN_BASE = REPO / "run"
APACHE_BIN = "/usr/sbin/apache2"
APACHE_MODULES = Path("/usr/lib/apache2/modules")
MOD_OSPAB = REPO / "mod_ospab" / ".libs" / "mod_ospab.so"
OSPAB_ADMIN = REPO / "admin" / "ospab-admin"
SQL_DIR = REPO / "sql"
DEMO_SEED = SQL_DIR / "seed" / "demo.sql"
WWW_USER = "www-data"

# "[Sun Nov 22 17:00:00.123456 2026] [ospab:error] [pid 1:tid 2] ..." and the
# rarer "[error]" without a module name.
BAD_LOG_LEVEL = re.compile(r"\[(?:[\w.-]+:)?(warn|error|crit|alert|emerg)\]")
# A child that crashed is only a notice ("AH00052: child pid 123 exit signal
# Segmentation fault (11)"), but it is always a problem.
CRASH = re.compile(r"AH0005[12]|exit signal|dumped core")


class HarnessError(RuntimeError):
    pass


# ---------------------------------------------------------------- helpers --

def write_private(path, text, mode=0o600):
    """Writes a file that is never readable by others, not even for a moment (created with
    its mode, not chmod-ed after writing)."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, text.encode() if isinstance(text, str) else text)
    finally:
        os.close(fd)


def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(port, host="127.0.0.1", timeout=15.0, proc=None):
    """Wait until host:port accepts connections; False on timeout or if
    `proc` (a Popen) exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port, host):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def _www_ids():
    return pwd.getpwnam(WWW_USER).pw_uid, grp.getgrnam(WWW_USER).gr_gid


def _is_root():
    return os.geteuid() == 0


def make_run_dir(prefix, base=None):
    """A fresh 0755 directory under RUN_BASE (<repo>/run, git-ignored, unless
    the caller set harness.RUN_BASE), so that Apache's children (www-data) can
    reach what is inside. pytest's tmp_path is 0700 and would not do."""
    base = Path(base or RUN_BASE)
    base.mkdir(mode=0o755, parents=True, exist_ok=True)
    p = base
    while True:                       # every level down from the repo must be traversable
        os.chmod(p, os.stat(p).st_mode | 0o755)
        if p == REPO or p.parent == p or REPO not in p.parents:
            break
        p = p.parent
    d = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    os.chmod(d, 0o755)
    return d


DAEMONS = {b"apache2", b"httpd", b"mariadbd", b"mysqld"}


def pids_mentioning(marker):
    """Apache and MariaDB processes whose command line contains `marker` (a
    run directory: unique to the daemons this module started there). Other
    programs (an editor or `tail -f` on a log there) are never included."""
    marker = str(marker).encode()
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmdline = (d / "cmdline").read_bytes()
        except OSError:
            continue
        argv0 = os.path.basename(cmdline.split(b"\0", 1)[0])
        if marker in cmdline and argv0 in DAEMONS:
            found.append(int(d.name))
    return found


def kill_pids(pids, grace=5.0):
    """SIGTERM, then SIGKILL what is still alive after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [p for p in pids if _alive(p)]
        if not pids:
            return


def reap_run_base(base):
    """Stop httpd and mariadbd processes left running from a run directory
    below `base` (a killed test run leaves its daemons behind), then delete
    `base`. Only processes named in those directories' pid files whose
    command line mentions that directory are signalled, and then any process
    left whose command line names a directory below `base` (orphaned children)."""
    base = Path(base)
    if not base.is_dir():
        return
    for pidfile in list(base.glob("*/httpd.pid")) + list(base.glob("*/mysqld.pid")):
        try:
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if str(pidfile.parent) not in cmdline:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 20
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    kill_pids(pids_mentioning(f"{base}/"))
    shutil.rmtree(base, ignore_errors=True)


def _chown_www(path, recursive=False):
    if not _is_root():
        return
    uid, gid = _www_ids()
    os.chown(path, uid, gid)
    if recursive and os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.chown(os.path.join(root, name), uid, gid)


def _sql_literal(value):
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    s = str(value).replace("\\", "\\\\").replace("'", "\\'").replace("\0", "\\0")
    return "'" + s + "'"


def _bind(sql, args):
    """Substitute '?' placeholders with quoted literals (for the mariadb CLI,
    which has no parameter binding). Placeholders inside quoted strings of
    `sql` itself are not supported: pass such values as arguments."""
    parts = sql.split("?")
    if len(parts) - 1 != len(args):
        raise ValueError("placeholder count does not match arguments")
    out = [parts[0]]
    for value, rest in zip(args, parts[1:]):
        out.append(_sql_literal(value))
        out.append(rest)
    return "".join(out)


def _normalise(value):
    """Rows from both databases come back as str (or None), so tests compare
    the same way on SQLite and MariaDB."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


# --------------------------------------------------------------- databases --

_SQLITE_QUERY = r"""
import json, sqlite3, sys
req = json.loads(sys.stdin.read())
con = sqlite3.connect("file:" + req["path"] + "?mode=ro", uri=True, timeout=10)
try:
    cur = con.execute(req["sql"], req["args"])
    cols = [c[0] for c in cur.description or ()]
    rows = [dict(zip(cols, [v.hex() if isinstance(v, bytes) else v for v in row]))
            for row in cur.fetchall()]
finally:
    con.close()
sys.stdout.write(json.dumps(rows))
"""


_SQLITE_HOLD_LOCK = r"""
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("ROLLBACK")
"""


def bulk_sql(db, text):
    """Statements that fill tables fast (benchmarks): MariaDB as root through the socket,
    SQLite with the sqlite3 tool, the file then handed back to www-data."""
    if isinstance(db, MariadbDatabase):
        db.server.sql(text, database=db.name)
    else:
        subprocess.run(["sqlite3", str(db.path)], input=text, text=True, check=True)
        db.after_admin()


class SqliteDatabase:
    """One SQLite file in its own www-data-owned directory."""

    driver = "sqlite3"

    def __init__(self, path):
        self.path = Path(path)

    @classmethod
    def create(cls, name="ospab.db", base=None):
        d = Path(tempfile.mkdtemp(prefix="sqlite-", dir=base or make_run_dir("db-")))
        os.chmod(d, 0o755)
        _chown_www(d)
        return cls(d / name)

    @property
    def params(self):
        return str(self.path)

    def apache_conf(self):
        return [
            "DBDriver sqlite3",
            f'DBDParams "{self.path}"',
            # no DBDInitSQL PRAGMAs: "foreign_keys" expires the prepared statements and
            # "busy_timeout" stalls every thread of a child (see conf/ospab.conf)
        ]

    def after_admin(self):
        """ospab-admin ran as root: hand the file (and any -wal/-shm/-journal
        beside it) to www-data, or Apache's children cannot write."""
        _chown_www(self.path.parent, recursive=True)

    def query(self, sql, args=()):
        """Rows as dicts of str/None. Runs as www-data through Python's sqlite3
        module, read-only, so no root-owned -wal/-shm file is ever created
        beside the database (which would break Apache's writes)."""
        kwargs = {}
        if _is_root():
            kwargs = {"user": WWW_USER, "group": WWW_USER}
        proc = subprocess.run(
            ["/usr/bin/python3", "-c", _SQLITE_QUERY],
            input=json.dumps({"path": str(self.path), "sql": sql, "args": list(args)}),
            capture_output=True, text=True, timeout=30, **kwargs)
        if proc.returncode != 0:
            raise HarnessError(f"sqlite query failed: {sql}\n{proc.stderr}")
        return [{k: _normalise(v) for k, v in row.items()} for row in json.loads(proc.stdout)]

    def scalar(self, sql, args=()):
        rows = self.query(sql, args)
        if not rows:
            return None
        return next(iter(rows[0].values()))

    def count(self, sql, args=()):
        return int(self.scalar(sql, args))

    def hold_write_lock(self, seconds):
        """Another process takes SQLite's write lock (BEGIN IMMEDIATE) for `seconds`, as
        www-data; returns once it holds it. Wait for the returned process to end."""
        kwargs = {"user": WWW_USER, "group": WWW_USER} if _is_root() else {}
        proc = subprocess.Popen(["/usr/bin/python3", "-c", _SQLITE_HOLD_LOCK, str(self.path),
                                 str(seconds)], stdout=subprocess.PIPE, text=True, **kwargs)
        if proc.stdout.readline().strip() != "locked":
            proc.kill()
            raise HarnessError("could not take the SQLite write lock")
        return proc

    def __repr__(self):
        return f"SqliteDatabase({self.path})"


class MariadbDatabase:
    """One database inside a running Mariadb server, reached by Apache as the
    `ospab` user through the server's Unix socket."""

    driver = "mysql"

    def __init__(self, server, name):
        self.server = server
        self.name = name

    @property
    def params(self):
        s = self.server
        return f"sock={s.socket} user={s.user} pass={s.password} dbname={self.name}"

    def apache_conf(self):
        return ["DBDriver mysql", f'DBDParams "{self.params}"', 'DBDInitSQL "SET NAMES utf8mb4"']

    def after_admin(self):
        pass

    def query(self, sql, args=()):
        return self.server.query(_bind(sql, list(args)), database=self.name)

    def scalar(self, sql, args=()):
        rows = self.query(sql, args)
        if not rows:
            return None
        return next(iter(rows[0].values()))

    def count(self, sql, args=()):
        return int(self.scalar(sql, args))

    def __repr__(self):
        return f"MariadbDatabase({self.name})"


class Mariadb:
    """A private MariaDB server: own datadir, socket and port, started with
    --no-defaults so nothing of /etc/mysql is read. The socket lives in a
    0755 directory so that Apache's www-data children can connect."""

    SERVER_CANDIDATES = ("/usr/sbin/mariadbd", "/usr/sbin/mysqld")
    INSTALL_CANDIDATES = ("/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db")
    CLIENT = "/usr/bin/mariadb"
    ADMIN = "/usr/bin/mariadb-admin"

    def __init__(self, base=None, user="ospab", database="ospab"):
        self.base = Path(base) if base else make_run_dir("mariadb-")
        os.chmod(self.base, 0o755)
        self.datadir = self.base / "data"
        self.socket = self.base / "mysqld.sock"
        self.pid_file = self.base / "mysqld.pid"
        self.log_file = self.base / "error.log"
        self.port = None
        self.user = user
        self.password = secrets.token_hex(16)
        self.database = database
        self.proc = None
        self._dbs = 0

    @staticmethod
    def _first(paths):
        for p in paths:
            if os.access(p, os.X_OK):
                return p
        raise HarnessError(f"none of {paths} found (install mariadb-server)")

    def start(self, timeout=60):
        if not self.datadir.exists():
            self.datadir.mkdir(mode=0o700)
            proc = subprocess.run(
                [self._first(self.INSTALL_CANDIDATES), "--no-defaults", "--user=root",
                 f"--datadir={self.datadir}", "--auth-root-authentication-method=normal",
                 "--skip-test-db"],
                capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                raise HarnessError("mariadb-install-db failed:\n" + proc.stdout + proc.stderr)
        self.port = free_port()
        self.proc = subprocess.Popen(
            [self._first(self.SERVER_CANDIDATES), "--no-defaults", "--user=root",
             f"--datadir={self.datadir}", f"--socket={self.socket}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--pid-file={self.pid_file}",
             f"--log-error={self.log_file}", "--innodb-buffer-pool-size=64M",
             "--skip-log-bin",
             # test data need not survive a power cut: one fsync per second, not per commit
             "--innodb-flush-log-at-trx-commit=2",
             "--max-connections=500"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise HarnessError("mariadbd exited at start:\n" + self.log_tail())
            r = subprocess.run([self.ADMIN, "--no-defaults", f"--socket={self.socket}",
                                "--user=root", "ping"], capture_output=True, text=True)
            if r.returncode == 0 and "alive" in r.stdout:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise HarnessError("mariadbd did not answer in time:\n" + self.log_tail())
            time.sleep(0.2)
        self.create_database(self.database)
        return self

    def log_tail(self, n=40):
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def sql(self, statements, database=None):
        """Run statements as root through the socket; return stdout."""
        cmd = [self.CLIENT, "--no-defaults", f"--socket={self.socket}", "--user=root",
               "--default-character-set=utf8mb4"]
        if database:
            cmd.append(database)
        proc = subprocess.run(cmd, input=statements, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise HarnessError(f"mariadb failed: {statements}\n{proc.stderr}")
        return proc.stdout

    def query(self, sql, database=None):
        """Rows as dicts of str/None (XML output: exact values, NULL kept)."""
        cmd = [self.CLIENT, "--no-defaults", f"--socket={self.socket}", "--user=root",
               "--default-character-set=utf8mb4", "--xml", "-e", sql]
        if database:
            cmd.append(database)
        proc = subprocess.run(cmd, capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise HarnessError(f"mariadb query failed: {sql}\n{proc.stderr.decode(errors='replace')}")
        if not proc.stdout.strip():
            return []
        root = ET.fromstring(proc.stdout)
        nil = "{http://www.w3.org/2001/XMLSchema-instance}nil"
        rows = []
        for row in root.iter("row"):
            rows.append({f.get("name"): (None if f.get(nil) == "true" else (f.text or ""))
                         for f in row.iter("field")})
        return rows

    def create_database(self, name=None):
        """A new empty utf8mb4 database the ospab user may use fully."""
        if name is None:
            self._dbs += 1
            name = f"{self.database}_{self._dbs}_{secrets.token_hex(3)}"
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ValueError(f"bad database name {name!r}")
        pw = self.password
        self.sql(
            f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n"
            f"CREATE USER IF NOT EXISTS '{self.user}'@'localhost' IDENTIFIED BY '{pw}';\n"
            f"CREATE USER IF NOT EXISTS '{self.user}'@'127.0.0.1' IDENTIFIED BY '{pw}';\n"
            f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{self.user}'@'localhost';\n"
            f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{self.user}'@'127.0.0.1';\n"
            "FLUSH PRIVILEGES;\n")
        return MariadbDatabase(self, name)

    def params(self, database=None):
        return MariadbDatabase(self, database or self.database).params

    def stop(self, timeout=30):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            subprocess.run([self.ADMIN, "--no-defaults", f"--socket={self.socket}",
                            "--user=root", "shutdown"], capture_output=True, timeout=timeout)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


# -------------------------------------------------------------- ospab-admin --

def admin(driver, params, *args, check=True, timeout=120):
    """Run admin/ospab-admin with the given driver and params."""
    if not os.access(OSPAB_ADMIN, os.X_OK):
        raise HarnessError(f"{OSPAB_ADMIN} is not built (run scripts/build)")
    cmd = [str(OSPAB_ADMIN), "--driver", driver, "--params", params,
           "--sql-dir", str(SQL_DIR), *[str(a) for a in args]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise HarnessError(f"ospab-admin {' '.join(map(str, args))} failed "
                           f"(exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


def migrate(driver, params, **kw):
    return admin(driver, params, "migrate", **kw)


def seed(driver, params, file=DEMO_SEED, **kw):
    return admin(driver, params, "seed", file, **kw)


def prepare_database(db, with_seed=True):
    """Migrate (and seed) a database object from this module."""
    try:
        migrate(db.driver, db.params)
        if with_seed:
            seed(db.driver, db.params)
    finally:
        db.after_admin()
    return db


# ------------------------------------------------------------------ Apache --

STATIC_JSON = {
    "status": "success",
    "message": "static reference document for the benchmark",
    "vps": {
        "id": 1, "external_id": "billing-0001", "name": "static", "status": "running",
        "ip_address": "192.0.2.10", "cpu": 2, "ram": 2048, "disk": 50,
        "os": "Ubuntu 22.04", "user_id": 5, "hypervisor": "proxmox",
        "created_at": "2026-11-22T17:20:00.123Z",
    },
}


class Apache:
    """One private httpd with mod_ospab.

    db:          a SqliteDatabase / MariadbDatabase (or None: no DBD lines)
    mpm:         event | worker | prefork
    sync_key:    the key written to <rundir>/sync.key (random by default)
    key_directive: the whole OspabSyncKey line, to test other forms; default
                 "OspabSyncKey file:<rundir>/sync.key"; "" leaves it out
    extra_conf:  lines appended at server level (after the module's lines)
    load_dbd:    False leaves out LoadModule dbd_module and the DBD* lines
    """

    registry = []          # every instance ever started (the log checker reads it)

    def __init__(self, db=None, mpm="event", log_level="warn", sync_key=None,
                 key_directive=None, extra_conf=(), load_dbd=True, port=None,
                 rundir=None, env=None, location_conf=(), jwt_secret=None,
                 jwt_directives=None):
        if mpm not in ("event", "worker", "prefork"):
            raise ValueError(f"unknown mpm {mpm}")
        self.db = db
        self.mpm = mpm
        self.log_level = log_level
        self.sync_key = sync_key or secrets.token_hex(32)
        # HS256 secret for access tokens (the module signs and verifies with it)
        self.jwt_secret = jwt_secret or secrets.token_hex(32)
        # None: "OspabJWTKey file:<rundir>/jwt.key"; else the JWT lines to use instead
        self.jwt_directives = jwt_directives
        self.key_directive = key_directive
        self.extra_conf = list(extra_conf)
        self.location_conf = list(location_conf)
        self.load_dbd = load_dbd
        self.port = port or free_port()
        self.rundir = Path(rundir) if rundir else make_run_dir("httpd-")
        os.chmod(self.rundir, 0o755)
        self.env = dict(env or {})
        self.conf_file = self.rundir / "httpd.conf"
        self.pid_file = self.rundir / "httpd.pid"
        self.error_log = self.rundir / "error.log"
        self.access_log = self.rundir / "access.log"
        self.key_file = self.rundir / "sync.key"
        self.jwt_key_file = self.rundir / "jwt.key"
        self.docroot = self.rundir / "htdocs"
        self.started = False

    # -- configuration --------------------------------------------------------
    def write_key_file(self, content=None, mode=0o600):
        """The sync key, readable by root alone: Apache reads it before it drops to
        www-data (conf/ospab.conf), so no other web code on the host can."""
        write_private(self.key_file, self.sync_key if content is None else content, mode)

    def config_text(self):
        mods = APACHE_MODULES
        r = self.rundir
        lines = [
            "# written by tests/integration/harness.py",
            f'ServerRoot "{r}"',
            "ServerName 127.0.0.1",
            f"Listen 127.0.0.1:{self.port}",
            f'PidFile "{self.pid_file}"',
            f'DefaultRuntimeDir "{r}"',
            f'Mutex file:{r} default',
            f'ErrorLog "{self.error_log}"',
            f"LogLevel {self.log_level}",
            'LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{User-Agent}i\\" %D" ospab',
            f'CustomLog "{self.access_log}" ospab',
            "User www-data",
            "Group www-data",
            f"LoadModule mpm_{self.mpm}_module {mods}/mod_mpm_{self.mpm}.so",
        ]
        if self.mpm == "prefork":
            lines += ["StartServers 4", "MinSpareServers 2", "MaxSpareServers 8",
                      "MaxRequestWorkers 32"]
        else:
            lines += ["StartServers 2", "ThreadsPerChild 16", "MinSpareThreads 16",
                      "MaxSpareThreads 64", "MaxRequestWorkers 64", "ServerLimit 4"]
        lines += [
            "GracefulShutdownTimeout 10",
            f"LoadModule authz_core_module {mods}/mod_authz_core.so",
            f"LoadModule mime_module {mods}/mod_mime.so",
        ]
        if self.load_dbd:
            lines.append(f"LoadModule dbd_module {mods}/mod_dbd.so")
        lines += [
            f"LoadModule ospab_module {MOD_OSPAB}",
            "TypesConfig /etc/mime.types",
            f'DocumentRoot "{self.docroot}"',
            '<Directory "/">',
            "  AllowOverride None",
            "  Require all denied",
            "</Directory>",
            f'<Directory "{self.docroot}">',
            "  Require all granted",
            "</Directory>",
        ]
        if self.load_dbd and self.db is not None:
            lines += self.db.apache_conf()
            # a pooled connection per worker thread (conf/ospab.conf): requests that wait
            # for Proxmox hold theirs, the others must not queue behind them
            lines += ["DBDMax 16"]
        if self.key_directive is None:
            lines.append(f'OspabSyncKey "file:{self.key_file}"')
        elif self.key_directive:
            lines.append(self.key_directive)
        if self.jwt_directives is None:
            lines.append(f'OspabJWTKey "file:{self.jwt_key_file}"')
        else:
            lines += list(self.jwt_directives)
        lines += ['<Location "/api/">', "  SetHandler ospab", *["  " + l for l in self.location_conf],
                  "</Location>"]
        lines += self.extra_conf
        return "\n".join(lines) + "\n"

    def write_config(self):
        self.docroot.mkdir(mode=0o755, exist_ok=True)
        static = self.docroot / "static.json"
        static.write_text(json.dumps(STATIC_JSON, separators=(",", ":")) + "\n")
        os.chmod(static, 0o644)
        if not self.key_file.exists():
            self.write_key_file()
        if not self.jwt_key_file.exists():
            write_private(self.jwt_key_file, self.jwt_secret)
        # it may hold secrets inline (a Proxmox token): root reads it, nobody else
        write_private(self.conf_file, self.config_text())

    # -- control ----------------------------------------------------------------
    def _run(self, *args, timeout=60):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", **self.env}
        return subprocess.run(
            [APACHE_BIN, "-d", str(self.rundir), "-f", str(self.conf_file), *args],
            capture_output=True, text=True, timeout=timeout, env=env,
            stdin=subprocess.DEVNULL)

    def configtest(self):
        """(exit code, stdout+stderr) of `apache2 -t`."""
        self.write_config()
        p = self._run("-t")
        return p.returncode, p.stdout + p.stderr

    def pid(self):
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self, timeout=20):
        if not MOD_OSPAB.exists():
            raise HarnessError(f"{MOD_OSPAB} is not built (run scripts/build)")
        self.write_config()
        if self not in Apache.registry:
            Apache.registry.append(self)
        p = self._run("-k", "start")
        if p.returncode != 0:
            raise HarnessError(f"apache2 -k start failed (exit {p.returncode}):\n"
                               f"{p.stdout}{p.stderr}\n{self.log_tail()}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.pid()
            if pid and _alive(pid) and port_open(self.port):
                self.started = True
                return self
            time.sleep(0.05)
        out = self.log_tail()
        self.stop()
        raise HarnessError(f"Apache did not come up on port {self.port}:\n{out}")

    def stop(self, timeout=20):
        pid = self.pid()
        if pid is None:
            self.started = False
            return
        self._run("-k", "stop")
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # children may outlive the parent by a moment; a child stuck in a module
        # call would outlive it for good (an orphan holding the port): end those
        deadline = time.monotonic() + 10
        while pids_mentioning(self.conf_file) and time.monotonic() < deadline:
            time.sleep(0.05)
        kill_pids(pids_mentioning(self.conf_file))
        self.started = False

    def graceful(self):
        p = self._run("-k", "graceful")
        if p.returncode != 0:
            raise HarnessError(f"apache2 -k graceful failed:\n{p.stdout}{p.stderr}")
        return p

    def restart(self):
        return self._run("-k", "restart")

    # -- inspection ------------------------------------------------------------
    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def error_log_lines(self, start=0):
        """Lines of error.log from byte offset `start`."""
        try:
            with open(self.error_log, "rb") as f:
                f.seek(start)
                return f.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return []

    def error_log_size(self):
        try:
            return self.error_log.stat().st_size
        except FileNotFoundError:
            return 0

    def bad_log_lines(self, start=0, allow=()):
        """error.log lines at warn level or worse not matched by any `allow`
        regex, and every line that reports a crashed child."""
        pats = [re.compile(a) if isinstance(a, str) else a for a in allow]
        return [l for l in self.error_log_lines(start)
                if CRASH.search(l) or (BAD_LOG_LEVEL.search(l)
                                       and not any(p.search(l) for p in pats))]

    def log_tail(self, n=30):
        return "\n".join(self.error_log_lines()[-n:])

    def __repr__(self):
        return f"Apache({self.mpm}, port {self.port}, {self.rundir})"


def new_log_lines(apaches, offsets, allow):
    """What the error logs of apaches got since offsets (id(apache) -> size): (problems,
    context) — the unexpected lines (not matching the allow regexes) per log, and each
    log's last 60 new lines, for a test report."""
    problems, context = [], []
    for a in apaches:
        start = offsets.get(id(a), 0)
        if start == a.error_log_size():
            continue
        bad = a.bad_log_lines(start, allow)
        if bad:
            problems.append(f"{a.error_log}:\n  " + "\n  ".join(bad))
        context.append(f"{a.error_log}:\n" + "\n".join(a.error_log_lines(start)[-60:]))
    return problems, context


def report_log_lines(rep, problems, context, title, how_to_allow):
    """Puts a test's new log lines (context) into its report under title, and fails a
    passed test whose logs got unexpected lines (problems)."""
    if context:
        rep.sections.append((title, "\n\n".join(context)))
    if problems and rep.passed:
        rep.outcome = "failed"
        rep.longrepr = (f"unexpected lines in {how_to_allow} if the test causes them on "
                        "purpose):\n" + "\n".join(problems))


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours is not alive
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def cleanup_run_dir(path):
    shutil.rmtree(path, ignore_errors=True)
