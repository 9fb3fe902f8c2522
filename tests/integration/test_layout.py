"""The README's production layout works, and keeps the secrets from www-data (security
fix M6): the agent runs as its own user, and any other web code on the host (running as
www-data, as PHP sites do) can read neither the agent's secrets nor Apache's.

Built here exactly as the README says, with a test user in place of `ospab`:
    etc dir          root:<agent group> 0750
    sync.key         root:root 0600          (Apache's parent reads it as root)
    jwt.key          root:<agent group> 0640 (Apache as root, the agent by its group)
    agent.conf       root:<agent group> 0640 (Proxmox token, database)
    httpd.conf       root 0600               (inline secrets: the Proxmox token)
    SQLite dir       www-data:www-data 2770, the file 0660; the agent in group www-data
The tests run as root (scripts/test and CI do): they create the user and change owners.
"""

import os
import pwd
import subprocess
import time

import pytest

import harness
from agentharness import Agent, sim_cluster
from conftest import Api, _started, create_user
from test_agent import NODES, TIME_SCALE, sim  # noqa: F401  (the simulator fixture)

AGENT_USER = "ospab-test"


def ensure_user():
    assert os.geteuid() == 0, "test_layout.py builds the production layout: run it as root"
    try:
        pwd.getpwnam(AGENT_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--home-dir", "/nonexistent", "--shell",
                        "/usr/sbin/nologin", AGENT_USER], check=True)
    return pwd.getpwnam(AGENT_USER)


def as_www(*cmd):
    return subprocess.run(["runuser", "-u", harness.WWW_USER, "--", *cmd],
                          capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def layout(database, sim):
    user = ensure_user()
    etc = harness.make_run_dir("etc-ospab-")
    os.chown(etc, 0, user.pw_gid)
    os.chmod(etc, 0o750)
    if isinstance(database, harness.SqliteDatabase):
        d = database.path.parent
        harness._chown_www(d, recursive=True)
        os.chmod(d, 0o2770)
        for f in d.iterdir():
            os.chmod(f, 0o660)
    secret = os.urandom(24).hex()
    apache = harness.Apache(
        database, jwt_secret=secret,
        key_directive=f'OspabSyncKey "file:{etc}/sync.key"',
        jwt_directives=[f'OspabJWTKey "file:{etc}/jwt.key"'],
        extra_conf=[f"OspabProxmoxURL {sim.url}", f"OspabProxmoxToken {sim.token}",
                    f"OspabProxmoxCA {sim.ca}", "OspabProxmoxNode pve1"] +
        [f"LoadModule proxy_module {harness.APACHE_MODULES}/mod_proxy.so",
         f"LoadModule proxy_http_module {harness.APACHE_MODULES}/mod_proxy_http.so"])
    harness.write_private(etc / "sync.key", apache.sync_key, 0o600)
    agent = Agent(database, jwt_secret=secret, clusters=[sim_cluster(sim)], user=AGENT_USER,
                  etc=etc)
    agent.start()
    apache.extra_conf.append(
        f'ProxyPass "/socket.io/" "http://127.0.0.1:{agent.port}/socket.io/" upgrade=websocket')
    _started(apache)
    yield apache, agent, etc, user
    apache.stop()
    assert agent.stop() == 0, agent.log_tail()
    assert not agent.bad_log_lines(), agent.log_tail()


def test_the_layout_is_the_readmes(layout):
    apache, agent, etc, user = layout
    st = os.stat(etc)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, user.pw_gid, 0o750)
    for name, mode, gid in (("sync.key", 0o600, 0), ("jwt.key", 0o640, user.pw_gid),
                            ("agent.conf", 0o640, user.pw_gid)):
        st = os.stat(etc / name)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, gid, mode), name
    assert os.stat(apache.conf_file).st_mode & 0o777 == 0o600


def test_apache_and_the_agent_work_with_it(layout, sim, database):
    """Apache reads its secrets as root at start-up and serves as www-data; the agent, as
    its own user, reads its config and the JWT key, polls, and checks live-push tokens."""
    apache, agent, etc, user = layout
    uid = [l.split()[1] for l in open(f"/proc/{agent.pid}/status") if l.startswith("Uid:")]
    assert uid == [str(user.pw_uid)], uid
    api = Api(apache)
    u = create_user(api, password="layout-pass-1")
    r = api.post("/api/auth/login", json={"email": u["email"], "password": "layout-pass-1"},
                 key=None)
    assert r.status_code == 200, r.text
    token = r.json()["accessToken"]
    import socketio
    c = socketio.Client(reconnection=False)
    c.connect(apache.url("/"), auth={"token": token}, socketio_path="/socket.io",
              wait_timeout=10)
    try:
        assert c.connected
    finally:
        c.disconnect()
    # it writes the database too (SQLite: through Apache's group): its cluster's lease
    deadline = time.monotonic() + 15
    while not database.count("SELECT COUNT(*) FROM agent_leases WHERE owner IS NOT NULL"):
        assert time.monotonic() < deadline, agent.log_tail()
        time.sleep(0.2)


def test_www_data_reads_none_of_the_secrets(layout):
    apache, agent, etc, user = layout
    assert as_www("ls", str(etc)).returncode != 0, "www-data can list the secrets' directory"
    for path in (etc / "sync.key", etc / "jwt.key", etc / "agent.conf", apache.conf_file):
        r = as_www("cat", str(path))
        assert r.returncode != 0 and "Permission denied" in r.stderr, (path, r.stdout[:40])
    # and the agent's user reads its own, but not Apache's sync key
    run = lambda *cmd: subprocess.run(["runuser", "-u", AGENT_USER, "--", *cmd],  # noqa: E731
                                      capture_output=True, text=True, timeout=30)
    assert run("cat", str(etc / "jwt.key")).returncode == 0
    assert run("cat", str(etc / "sync.key")).returncode != 0


def test_the_shipped_unit_runs_the_agent_as_its_own_user():
    unit = (harness.REPO / "conf" / "ospab-agent.service").read_text()
    lines = [l.strip() for l in unit.splitlines() if not l.strip().startswith("#")]
    assert "User=ospab" in lines and "Group=ospab" in lines, unit
    assert not any(l.startswith(("User=www-data", "Group=www-data")) for l in lines), unit
