"""The Debian packages (debian/, docs/install-debian.md) install on this machine's Debian 12,
serve /api/health and purge cleanly (issue 16).

scripts/package builds them (or finds run/package/ holding the packages of this tree) and
checks them with lintian. The test then, as root (or through `sudo -n`):
  * installs them with apt-get, as an admin would, and checks the generated secrets
    (0600, their reader's), the agent's conffile (root:ospab 0640) and its user;
  * installs them again over themselves with dpkg -i (an upgrade to the same version): the
    secrets must not change;
  * migrates a SQLite database with the installed ospab-admin, runs `a2enmod ospab` and
    `apache2ctl -t` on the system's configuration, then starts a private Apache (its own
    config, port, pid file and logs in a temporary directory) that includes the enabled
    ospab.load and the installed ospab.conf switched to that database, and asks it for
    /api/health and the panel;
  * purges them and checks that nothing of theirs is left.
The machine is left as it was, also when a test fails: the fixture's clean-up purges the
packages, disables the Apache modules a2enmod enabled and removes the user `ospab` if the
test created it. The test never starts, stops or reloads the system's apache2 service
(whether it runs is the same before and after). Secrets are compared by digest and never
printed.
"""

import functools
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import harness  # noqa: E402  (plain Python: ports, Apache's module directory)

PACKAGE_DIR = REPO / "run" / "package"
# all four are installed and purged together
PACKAGES = ("ospab-admin", "libapache2-mod-ospab", "ospab-agent", "ospab-panel-www")
AGENT_USER = "ospab"
MODULE = Path("/usr/lib/apache2/modules/mod_ospab.so")
MODS_AVAILABLE = Path("/etc/apache2/mods-available")
MODS_ENABLED = Path("/etc/apache2/mods-enabled")
APACHE_MODULE_STATE = Path("/var/lib/apache2/module")
ETC = Path("/etc/ospab")
AGENT_CONF = ETC / "agent.conf"
# secret -> the user that must read it (Apache's parent reads as root)
SECRETS = {ETC / "sync.key": "root", ETC / "jwt.key": AGENT_USER}
PANEL_SETTINGS = Path("/etc/ospab-panel/settings.json")
SQL_DIR = Path("/usr/share/ospab-panel/sql")
SYSTEM_APACHE_PID = Path("/run/apache2/apache2.pid")
# modules the private Apache loads itself; the rest come from what a2enmod enabled
BASE_MODULES = ("mpm_event", "authz_core", "mime", "alias", "dir")
ENABLED_BY_A2ENMOD = ("dbd", "headers", "filter", "deflate", "ospab")
# everything the packages put on the machine or create there, gone after the purge
LEFTOVERS = (MODULE, MODS_AVAILABLE / "ospab.load", MODS_AVAILABLE / "ospab.conf",
             MODS_ENABLED / "ospab.load", MODS_ENABLED / "ospab.conf", ETC,
             PANEL_SETTINGS.parent, Path("/usr/share/ospab-panel"), Path("/var/lib/ospab"),
             Path("/usr/bin/ospab-admin"), Path("/usr/bin/ospab-agent"),
             Path("/lib/systemd/system/ospab-agent.service"),
             Path("/usr/lib/sysusers.d/ospab-agent.conf"))
# where files owned by the agent's user could be left
SEARCHED_FOR_OWNED = ("/etc", "/var", "/usr", "/srv", "/opt", "/run")


# ------------------------------------------------------------------ running as root --

@functools.cache
def root_prefix():
    if os.geteuid() == 0:
        return ()
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"],
                                               capture_output=True).returncode == 0:
        return ("sudo", "-n")
    pytest.fail("tests/package installs and purges Debian packages: run it as root, or as "
                "a user with password-less sudo (as scripts/deps does)")


def as_root(*cmd, timeout=120, **kwargs):
    """Run cmd as root; its output is captured (and never holds a secret: no command here
    prints one)."""
    kwargs.setdefault("capture_output", True)
    return subprocess.run([*root_prefix(), *map(str, cmd)], text=True, timeout=timeout,
                          **kwargs)


def ok(result):
    assert result.returncode == 0, \
        (result.args, (result.stdout or "")[-3000:], (result.stderr or "")[-3000:])
    return result


def apt_get(*args):
    # waits for the dpkg lock rather than failing when another apt runs on the machine
    return as_root("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-y", "-q",
                   "-o", "DPkg::Lock::Timeout=600", *args, timeout=1200)


def stat_of(path):
    """owner:group:mode of a path only root may see"""
    return ok(as_root("stat", "-c", "%U:%G:%a", path)).stdout.strip()


def digest(path):
    return ok(as_root("sha256sum", path)).stdout.split()[0]


def package_status(name):
    r = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", name],
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def installed_packages():
    return [p for p in PACKAGES if package_status(p) not in ("", "not-installed")]


# ------------------------------------------------ what the test must leave as it was --

def apache_module_state():
    """mods-enabled/ and a2enmod's records in /var/lib/apache2/module: path -> content"""
    state = {}
    for base in (MODS_ENABLED, APACHE_MODULE_STATE):
        if not base.exists():
            continue
        for path in [base, *base.rglob("*")]:
            if path.is_symlink():
                state[path] = ("link", os.readlink(path))
            elif path.is_dir():
                state[path] = ("dir", None)
            else:
                state[path] = ("file", path.read_bytes())
    return state


def restore_apache_module_state(before):
    now = apache_module_state()
    for path in sorted(set(now) - set(before), key=lambda p: len(p.parts), reverse=True):
        ok(as_root("rm", "-rf", path))
    for path, (kind, value) in sorted(before.items(), key=lambda item: len(item[0].parts)):
        if now.get(path) == (kind, value):
            continue
        if kind == "dir":
            ok(as_root("mkdir", "-p", path))
        elif kind == "link":
            ok(as_root("ln", "-sfn", value, path))
        else:
            ok(as_root("tee", path, input=value.decode(), stdout=subprocess.DEVNULL,
                       capture_output=False))


def system_apache_running():
    try:
        pid = int(SYSTEM_APACHE_PID.read_text().strip())
    except (OSError, ValueError):
        return False
    return Path(f"/proc/{pid}").exists()


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def files_owned_by_agent_user():
    try:
        uid = pwd.getpwnam(AGENT_USER).pw_uid
    except KeyError:
        return set()
    r = as_root("find", *SEARCHED_FOR_OWNED, "-xdev", "-user", uid, timeout=600)
    return set(r.stdout.split())


# -------------------------------------------------------------------------- fixtures --

def debs():
    """scripts/package's .deb files, one per package (not the -dbgsym ones)"""
    found = {}
    for name in PACKAGES:
        matches = sorted(PACKAGE_DIR.glob(f"{name}_*.deb"))
        assert len(matches) == 1, f"run/package/{name}_*.deb: {matches}"
        found[name] = matches[0]
    return found


def purge():
    present = installed_packages()
    if present:
        return apt_get("purge", *present)
    return None


@pytest.fixture(scope="module")
def installed():
    root_prefix()
    present = installed_packages()
    assert not present, f"{present} installed on this machine already: the test would purge them"
    there = [str(p) for p in LEFTOVERS if os.path.lexists(p)]
    assert not there, f"{there} exist (a source install?): the test would remove them"
    subprocess.run([str(REPO / "scripts" / "package")], cwd=REPO, check=True, timeout=3600)
    packages = debs()
    apache_before = apache_module_state()
    system_apache_before = system_apache_running()
    user_before = user_exists(AGENT_USER)
    owned_before = files_owned_by_agent_user()
    try:
        ok(apt_get("install", "--no-install-recommends", *packages.values()))
        yield {"debs": packages, "owned_before": owned_before}
    finally:
        cleanup = purge()
        # what a faulty purge left (test_purge_leaves_nothing_behind fails then): none of
        # it existed before
        for path in LEFTOVERS:
            if os.path.lexists(path):
                ok(as_root("rm", "-rf", path))
        for line in ok(as_root("dpkg-statoverride", "--list")).stdout.splitlines():
            if line.split()[-1].startswith(str(ETC)):
                ok(as_root("dpkg-statoverride", "--remove", line.split()[-1]))
        restore_apache_module_state(apache_before)
        # the packages keep their user after a purge, as Debian does; the test does not
        if not user_before and user_exists(AGENT_USER):
            ok(as_root("userdel", AGENT_USER))
        assert cleanup is None or cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
        assert apache_module_state() == apache_before, "Apache's enabled modules changed"
        assert system_apache_running() == system_apache_before, \
            "the system's apache2 was started or stopped"


@pytest.fixture
def workdir():
    """a temporary directory Apache's children (www-data) can enter"""
    d = Path(tempfile.mkdtemp(prefix="ospab-package-test-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        ok(as_root("rm", "-rf", d))


# ----------------------------------------------------------------------------- tests --

def test_the_packages_install_with_their_secrets_readable_only_by_their_readers(installed):
    for name in PACKAGES:
        assert package_status(name) == "installed", name
    assert MODULE.is_file()
    load = (MODS_AVAILABLE / "ospab.load").read_text()
    # a2enmod enables mod_dbd with the module, which refuses to start without it
    assert re.search(r"^# Depends:.*\bdbd\b", load, re.M), load
    assert f"LoadModule ospab_module {MODULE}" in load, load
    # the module's config holds the database password once set: root only
    assert stat_of(MODS_AVAILABLE / "ospab.conf") == "root:root:600"

    user = pwd.getpwnam(AGENT_USER)
    assert user.pw_uid < 1000 and user.pw_shell == "/usr/sbin/nologin", user
    assert stat_of(ETC) == f"root:{AGENT_USER}:750"
    for path, reader in SECRETS.items():
        assert stat_of(path) == f"{reader}:{reader}:600", path
        # 32 random bytes as hex: OspabSyncKey and OspabJWTKey (HS256) want 32 at least
        lines = ok(as_root("grep", "-cxE", "[0-9a-f]{64}", path)).stdout.strip()
        assert lines == "1", f"{path} is not one line of 64 hex digits"
    assert digest(ETC / "sync.key") != digest(ETC / "jwt.key")

    conffiles = {}
    for name in PACKAGES:
        out = ok(subprocess.run(["dpkg-query", "-W", "-f=${Conffiles}", name],
                                capture_output=True, text=True)).stdout
        conffiles.update({line.split()[0]: name for line in out.splitlines() if line.strip()})
    assert conffiles.get(str(AGENT_CONF)) == "ospab-agent", conffiles
    assert conffiles.get(str(MODS_AVAILABLE / "ospab.conf")) == "libapache2-mod-ospab"
    assert conffiles.get(str(PANEL_SETTINGS)) == "ospab-panel-www"
    assert stat_of(AGENT_CONF) == f"root:{AGENT_USER}:640"

    def reads(user, path):
        return as_root("runuser", "-u", user, "--", "cat", path,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       capture_output=False).returncode == 0
    # the agent reads its config and the JWT key; www-data (any web code) none of them,
    # and only root the sync key
    assert reads(AGENT_USER, AGENT_CONF) and reads(AGENT_USER, ETC / "jwt.key")
    assert not reads(AGENT_USER, ETC / "sync.key")
    for path in (AGENT_CONF, *SECRETS):
        assert not reads("www-data", path), path

    unit = Path("/lib/systemd/system/ospab-agent.service").read_text()
    assert re.search(r"^User=ospab$", unit, re.M), unit
    assert "ExecStart=/usr/bin/ospab-agent -c /etc/ospab/agent.conf --foreground" in unit
    if shutil.which("systemd-analyze"):
        r = as_root("systemd-analyze", "verify", "/lib/systemd/system/ospab-agent.service")
        assert r.returncode == 0 and "ospab-agent" not in r.stdout + r.stderr, r

    # the panel's branding is the conffile, reached through the panel's directory
    assert os.path.realpath("/usr/share/ospab-panel/www/settings.json") == str(PANEL_SETTINGS)
    assert json.loads(PANEL_SETTINGS.read_text())["productName"]


def test_an_upgrade_keeps_the_secrets(installed):
    def secrets():
        return {path: (digest(path), stat_of(path)) for path in SECRETS}
    before = secrets()
    # the same version over itself: preinst upgrade, postinst configure <old version>
    ok(as_root("dpkg", "-i", *installed["debs"].values(), timeout=600))
    after = secrets()
    for path in SECRETS:
        same = before[path] == after[path]
        assert same, f"{path} changed when the packages were installed again"
    assert stat_of(AGENT_CONF) == f"root:{AGENT_USER}:640"
    assert stat_of(ETC) == f"root:{AGENT_USER}:750"


def sqlite_module_conf(db):
    """The installed ospab.conf with mod_dbd pointed at the SQLite file (the steps of
    docs/install-debian.md for one box): every other line as installed."""
    conf = ok(as_root("cat", MODS_ENABLED / "ospab.conf")).stdout
    edits = ((r'^(\s*)DBDriver mysql$', r"\1DBDriver sqlite3"),
             (r'^(\s*)DBDParams "host=.*"$', rf"\1DBDParams {db}"),
             (r'^\s*DBDInitSQL "SET NAMES utf8mb4"\n', ""))
    for pattern, replacement in edits:
        conf, n = re.subn(pattern, replacement, conf, flags=re.M)
        assert n == 1, f"ospab.conf: {pattern} found {n} times (the test follows its layout)"
    return conf


def test_migrate_enable_and_serve_health(installed, workdir):
    dbdir = workdir / "db"
    dbdir.mkdir()
    db = dbdir / "ospab.db"
    admin = ["/usr/bin/ospab-admin", "--driver", "sqlite3", "--params", db]
    out = ok(as_root(*admin, "migrate")).stdout
    shipped = sorted(p.name for p in (SQL_DIR / "sqlite").glob("*.sql"))
    assert shipped and re.findall(r"^applied (\S+)", out, re.M) == shipped, out
    status = ok(as_root(*admin, "status")).stdout
    assert f"{len(shipped)} applied, 0 pending  [{SQL_DIR}/sqlite]" in status, status
    # Apache's children write the database (and its -wal/-shm) as www-data
    ok(as_root("chown", "-R", "www-data:www-data", dbdir))

    ok(as_root("a2enmod", "-q", "ospab"))
    for mod in ENABLED_BY_A2ENMOD:
        assert (MODS_ENABLED / f"{mod}.load").exists(), f"a2enmod ospab left out {mod}"
    r = ok(as_root("apache2ctl", "-t"))
    assert "Syntax OK" in r.stderr, r.stderr

    port = harness.free_port()
    mods = harness.APACHE_MODULES
    (workdir / "ospab.conf").write_text(sqlite_module_conf(db))
    (workdir / "ospab.conf").chmod(0o600)
    conf = workdir / "httpd.conf"
    conf.write_text("\n".join([
        f"ServerRoot {workdir}",
        f"Listen 127.0.0.1:{port}",
        "ServerName 127.0.0.1",
        f"PidFile {workdir}/httpd.pid",
        f"ErrorLog {workdir}/error.log",
        "LogLevel warn",
        f"DefaultRuntimeDir {workdir}",
        f"Mutex file:{workdir} default",
        "User www-data",
        "Group www-data",
        *[f"LoadModule {m}_module {mods}/mod_{m}.so" for m in BASE_MODULES],
        "TypesConfig /etc/mime.types",
        *[f"Include {MODS_ENABLED}/{m}.load" for m in ENABLED_BY_A2ENMOD],
        f"Include {workdir}/ospab.conf",
        ""]))
    httpd = ["/usr/sbin/apache2", "-f", conf]
    ok(as_root(*httpd, "-t"))
    ok(as_root(*httpd, "-k", "start"))
    try:
        base = f"http://127.0.0.1:{port}"
        assert harness.wait_port(port, timeout=20), "Apache did not answer on its port"
        r = requests.get(f"{base}/api/health", timeout=5)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "ok" and r.json()["database"] == "ok", r.text
        # ospab-panel-www at /panel/ (the module's configuration), branding from /etc
        r = requests.get(f"{base}/panel/", timeout=5)
        assert r.status_code == 200 and "<html" in r.text.lower(), r.status_code
        r = requests.get(f"{base}/panel/settings.json", timeout=5)
        assert r.status_code == 200, r.status_code
        assert r.json() == json.loads(PANEL_SETTINGS.read_text())
    finally:
        stop_apache(httpd, workdir / "httpd.pid")
    log = ok(as_root("cat", workdir / "error.log")).stdout
    bad = [line for line in log.splitlines() if re.search(r":(error|crit|alert|emerg)\]", line)]
    assert not bad, log


def stop_apache(httpd, pid_file):
    pid = ok(as_root("cat", pid_file)).stdout.strip() if pid_file.exists() else ""
    as_root(*httpd, "-k", "stop")
    deadline = time.monotonic() + 20
    while pid and Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            as_root("kill", "-KILL", pid)
            break
        time.sleep(0.2)


def test_purge_leaves_nothing_behind(installed):
    ok(purge())
    for name in PACKAGES:
        assert package_status(name) in ("", "not-installed"), name
    left = [str(p) for p in LEFTOVERS if os.path.lexists(p)]
    left += [str(p) for p in APACHE_MODULE_STATE.glob("*/ospab")]
    assert not left, left
    overrides = ok(as_root("dpkg-statoverride", "--list")).stdout
    assert not [l for l in overrides.splitlines() if "ospab" in l], overrides
    # the user stays (Debian keeps system users) but owns nothing any more
    owned = files_owned_by_agent_user() - installed["owned_before"]
    assert not owned, sorted(owned)[:20]
