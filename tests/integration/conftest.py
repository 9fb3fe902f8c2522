"""pytest fixtures for the integration tests: a real Apache httpd with
mod_ospab from the build tree, on SQLite and on a private MariaDB.

* `db` (session, parametrized sqlite/mariadb): how to make fresh databases of
  that kind; the MariaDB server is started once per session.
* `database` (module): a fresh, migrated and seeded database for the module.
* `apache` (module): Apache on that database; `api` (function): HTTP helpers.
* `start_apache` (function): a factory for extra Apaches with other config,
  stopped after the test.
* Every test fails if an Apache error.log gained a line at warn level or worse
  that the test did not allow with `allow_log(regex)` or
  `@pytest.mark.allow_log(regex, ...)`.

OSPAB_TEST_DBS=sqlite (or mariadb) restricts the run to one database.
"""

import json as jsonlib
import os
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

ALL_DBS = ["sqlite", "mariadb"]
DBS = [d for d in os.environ.get("OSPAB_TEST_DBS", ",".join(ALL_DBS)).split(",") if d]
SEED_USER_ID = 5          # the seeds' curl examples use user_id 5


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "allow_log(*regex): error.log lines (warn or worse) this test may cause")
    unknown = set(DBS) - set(ALL_DBS)
    if unknown:
        raise pytest.UsageError(f"OSPAB_TEST_DBS: unknown database kinds {sorted(unknown)}")


# Everything a test run starts lives below run/pytest: removed at the start of
# the next run (stopping any daemon a killed run left behind) and at the end
# of a run that passed; kept for inspection when something failed.
# OSPAB_TEST_RUN_BASE=<dir> gives a run its own base, so that two runs in one tree
# (two engineers, or the suite and a subset) do not reap each other's daemons.
harness.RUN_BASE = harness.Path(os.environ.get("OSPAB_TEST_RUN_BASE")
                                or harness.REPO / "run" / "pytest")


def pytest_sessionstart(session):
    missing = [str(p) for p in (harness.MOD_OSPAB, harness.OSPAB_ADMIN) if not p.exists()]
    if missing:
        raise pytest.UsageError("not built: " + ", ".join(missing) + " (run scripts/build)")
    harness.reap_run_base(harness.RUN_BASE)


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 0 and not os.environ.get("OSPAB_KEEP_RUN"):
        harness.reap_run_base(harness.RUN_BASE)
    elif harness.RUN_BASE.exists():
        print(f"\nlogs and databases of this run: {harness.RUN_BASE}")


def unique(prefix="t"):
    """A name no other test uses, so tests can count rows by it."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ------------------------------------------------------------------ databases --

class DbKind:
    """Makes fresh databases of one kind."""

    def __init__(self, kind, mariadb=None):
        self.kind = kind
        self.mariadb = mariadb

    def fresh(self, with_seed=True):
        if self.kind == "sqlite":
            db = harness.SqliteDatabase.create()
        else:
            db = self.mariadb.create_database()
        return harness.prepare_database(db, with_seed=with_seed)

    def __repr__(self):
        return self.kind


@pytest.fixture(scope="session")
def mariadb_server():
    server = harness.Mariadb()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=DBS)
def db(request):
    if request.param == "mariadb":
        return DbKind("mariadb", request.getfixturevalue("mariadb_server"))
    return DbKind("sqlite")


@pytest.fixture(scope="module")
def database(db):
    d = db.fresh()
    if d.count("SELECT COUNT(*) FROM users WHERE id = ?", [SEED_USER_ID]) != 1:
        pytest.fail(f"sql/seed/demo.sql does not create user {SEED_USER_ID}, "
                    "which the seeds' curl examples use")
    return d


_SQLITE_EXEC = r"""
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=30)
con.executescript(sys.stdin.read())
con.commit()
con.close()
"""


def all_at_once(n, fn):
    """fn(i) for i in range(n), started together from n threads (a barrier): the answers in
    order (concurrency tests: customers ordering at the same moment)."""
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as ex:
        return list(ex.map(one, range(n)))


def sql_exec(database, statements):
    """Run SQL statements that write (setting up test data fast, e.g. thousands
    of rows). SQLite: as www-data through Python's sqlite3 module (so no
    root-owned -wal/-shm file appears); MariaDB: as root through the socket."""
    if isinstance(database, harness.SqliteDatabase):
        kwargs = {"user": harness.WWW_USER, "group": harness.WWW_USER} if os.geteuid() == 0 else {}
        p = subprocess.run(["/usr/bin/python3", "-c", _SQLITE_EXEC, str(database.path)],
                           input=statements, capture_output=True, text=True, timeout=120,
                           **kwargs)
        if p.returncode != 0:
            raise harness.HarnessError(f"sqlite statements failed:\n{p.stderr}")
        return p.stdout
    return database.server.sql(statements, database=database.name)


def sql_quote(value):
    """A value as an SQL literal valid on both SQLite and MariaDB (no
    backslashes: MariaDB would read them as escapes)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if "\\" in str(value):
        raise ValueError("sql_quote: no backslashes")
    return "'" + str(value).replace("'", "''") + "'"


# -------------------------------------------------------------------- Apache --

def _started(apache, allow=()):
    apache.start()
    bad = apache.bad_log_lines(allow=allow)
    if bad:
        apache.stop()
        pytest.fail("Apache logged problems at start-up:\n" + "\n".join(bad), pytrace=False)
    return apache


def served(database, extra_conf, allow=()):
    """The body of a module-scoped Apache fixture: `yield from served(database, conf)`
    yields Apache with the module and extra_conf, started (a problem logged at start-up
    fails), and stops it afterwards."""
    a = _started(harness.Apache(database, extra_conf=extra_conf), allow=allow)
    try:
        yield a
    finally:
        a.stop()


def simulated(prefix="pvesim-", **kw):
    """The body of a module-scoped simulator fixture: `yield from simulated(nodes=...)`
    yields tests/pvesim started with those settings (simctl.PveSim's), and stops it
    afterwards."""
    if str(harness.REPO / "tests" / "pvesim") not in sys.path:
        sys.path.insert(0, str(harness.REPO / "tests" / "pvesim"))
    from simctl import PveSim
    s = PveSim(str(harness.make_run_dir(prefix)), **kw)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def placeholder_proxmox_conf():
    """Proxmox directives naming an address nobody listens on (a port the OS has just
    handed out and taken back). With them the server-management routes answer after their
    authentication and ownership checks (409 for a VPS without node/vmid) rather than 503
    "not configured": authmatrix.py's rows rely on that. Tests that talk to Proxmox start
    their own Apache pointed at tests/pvesim (test_server.py)."""
    return [f"OspabProxmoxURL https://127.0.0.1:{harness.free_port()}",
            "OspabProxmoxToken root@pam!placeholder=00000000-0000-0000-0000-000000000000",
            "OspabProxmoxNode pve"]


@pytest.fixture(scope="module")
def apache(database):
    a = harness.Apache(database, extra_conf=placeholder_proxmox_conf())
    _started(a)
    yield a
    a.stop()


@pytest.fixture
def start_apache(request, database):
    """start_apache(**Apache kwargs) -> a started Apache on the module's
    database (unless db= is given); stopped after the test. Start-up log
    lines are checked against the test's allow_log patterns."""
    started = []

    def start(**kw):
        kw.setdefault("db", database)
        a = harness.Apache(**kw)
        started.append(a)
        return _started(a, getattr(request.node, "_ospab_allow", ()))

    yield start
    for a in started:
        a.stop()


# ----------------------------------------------------------------------- HTTP --

_DEFAULT = object()


class Api:
    """requests-based client for one Apache. A new connection per request
    (no Session), like independent billing-site requests."""

    def __init__(self, apache, key=None):
        self.apache = apache
        self.key = key or apache.sync_key

    def request(self, method, path, json=_DEFAULT, data=None, key=_DEFAULT, headers=None,
                content_type="application/json", timeout=60, **kw):
        h = {}
        if content_type is not None:
            h["Content-Type"] = content_type
        key = self.key if key is _DEFAULT else key
        if key is not None:
            h["X-API-Key"] = key
        h.update(headers or {})
        if json is not _DEFAULT:
            data = jsonlib.dumps(json).encode()
        return requests.request(method, self.apache.url(path), data=data, headers=h,
                                timeout=timeout, **kw)

    def post(self, path, json=_DEFAULT, **kw):
        return self.request("POST", path, json=json, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    # -- shortcuts for the sync API ---------------------------------------------
    def vps(self, action, vps, **kw):
        return self.post("/api/vps/sync", json={"action": action, "vps": vps}, **kw)

    def create_vps(self, **fields):
        body = new_vps(**fields)
        r = self.vps("create", body)
        assert r.status_code == 201, (r.status_code, r.text)
        return r.json()["vps"]

    def user(self, action, user, **kw):
        return self.post("/api/users/sync", json={"action": action, "user": user}, **kw)


def new_vps(**fields):
    """A valid create payload with a unique name; keyword arguments override
    (None values are kept: they mean JSON null)."""
    body = {"user_id": SEED_USER_ID, "name": unique("vps"), "cpu": 2, "ram": 2048,
            "disk": 50, "os": "Ubuntu 22.04", "status": "creating", "hypervisor": "proxmox"}
    body.update(fields)
    return body


def create_user(api, password=None, role="user", **fields):
    """A new panel user through the sync API (unique e-mail); returns its
    record with "password" added (None when it has none)."""
    user = {"email": unique("user") + "@example.com", "name": "Test User", "role": role}
    if password:
        user["password"] = password
    user.update(fields)
    r = api.user("create", user)
    assert r.status_code == 201, (r.status_code, r.text)
    return {**r.json()["user"], "password": password}


def access_token(apache, user_id, role="user", **claims):
    """An HS256 access token for `apache`'s OspabJWTKey (as the panel issues
    them); claims=None removes a claim (see authmatrix.claims)."""
    import authmatrix
    return authmatrix.token(authmatrix.claims(user_id, role, **claims), apache.jwt_secret)


@pytest.fixture
def api(apache):
    return Api(apache)


# --------------------------------------------------------- error log guard --

@pytest.fixture(autouse=True)
def _error_log_guard(request):
    """Remembers where every Apache's error.log stood before the test; the
    check itself runs in pytest_runtest_makereport so that it fails the test
    (not its teardown)."""
    allowed = []
    for m in request.node.iter_markers("allow_log"):
        allowed.extend(m.args)
    request.node._ospab_allow = allowed
    request.node._ospab_offsets = {id(a): a.error_log_size() for a in harness.Apache.registry}
    yield


@pytest.fixture
def allow_log(request):
    """allow_log(regex, ...): error.log lines this test is expected to cause."""
    def add(*patterns):
        request.node._ospab_allow.extend(patterns)
    return add


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not hasattr(item, "_ospab_offsets"):
        return
    problems, context = harness.new_log_lines(harness.Apache.registry, item._ospab_offsets,
                                              item._ospab_allow)
    harness.report_log_lines(rep, problems, context, "Apache error.log (this test)",
                             "Apache's error log (allow them with allow_log(regex)")


# ----------------------------------------------------- OpenAPI: every answer checked --
# Every answer the tests receive through requests from the module's /api/ on a test Apache
# is checked against docs/openapi.yaml (openapi_check.py): a test that received one the
# document does not describe fails, naming the route, the status and what did not match.

import openapi_check  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def openapi_answers(request):
    """The session's openapi_check.ResponseCheck (watch_port(port): an Apache started
    outside this process, such as the demo's)."""
    with openapi_check.watching(request.config,
                                lambda: {a.port for a in harness.Apache.registry}) as check:
        yield check
