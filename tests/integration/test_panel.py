"""The customer panel (issue 12, docs/panel.md) in a real browser: Debian's chromium driven by
puppeteer-core (tests/browser, installed by scripts/test from its lock file) against the real
Apache with mod_ospab serving www/ with conf/ospab.conf's panel block, ospab-agent behind
/socket.io/, the Proxmox simulator and the node's sshd.

Each test runs one scenario of tests/browser/scenarios.js in its own browser context, with
users (and servers) of its own made here first. A scenario fails on any console error,
uncaught exception, failed request or HTTP error it did not declare, or CSP violation
(tests/browser/lib.js). Screenshots of every screen go to run/panel-screens/ (kept after
the run; docs/panel.md shows some of them).

Access tokens live 60 s here (OspabAccessTokenTTL 60, no leeway): the panel renews them
while the tests run, and test_silent_refresh waits for one to expire.

The browser does not care which database the module uses: these tests run on SQLite only
(the API under them is tested on both in the other files).
"""
import os
import subprocess
import sys
import time

import pytest
import requests

import browserharness
import harness
from agentharness import Agent, sim_cluster
from conftest import Api, create_user, served, simulated
from panelconf import panel_conf
from test_server import ssh_conf as server_ssh_conf
from test_server import node as server_node  # noqa: F401  (the fixture, by that name)

sys.path.insert(0, str(harness.REPO / "tests" / "pvesim"))
sys.path.insert(0, str(harness.REPO / "tests" / "sshd"))

NODE = "pve1"
TIME_SCALE = 0.05
ACCESS_TTL = 60
KVM_TEMPLATE = 9000

# ------------------------------------------------------------------------- the stack --

@pytest.fixture(scope="module")
def panel_db():
    db = harness.SqliteDatabase.create()
    return harness.prepare_database(db)


@pytest.fixture(scope="module")
def sim():
    yield from simulated(nodes=(NODE,), time_scale=TIME_SCALE, resources_lag=0.2,
                         auth_fail_delay=0.2)


@pytest.fixture(scope="module")
def node(request, sim):
    """The node's sshd (root password resets of containers), test_server.py's; needs root."""
    if os.geteuid() != 0:
        return None
    return request.getfixturevalue("server_node")


def ssh_conf(node):
    """test_server.py's SSH directives for the node's sshd (none without it)."""
    return [] if node is None else server_ssh_conf(node)


@pytest.fixture(scope="module")
def agent_port():
    return harness.free_port()


@pytest.fixture(scope="module")
def web(panel_db, sim, node, agent_port):
    """Apache as a provider runs it: the API, the panel at the site root, live push."""
    mods = harness.APACHE_MODULES
    conf = [f"OspabProxmoxURL {sim.url}", f"OspabProxmoxToken {sim.token}",
            f"OspabProxmoxCA {sim.ca}", f"OspabProxmoxNode {NODE}",
            "OspabProxmoxStorage local-lvm", "OspabProxmoxBridge vmbr0",
            "OspabProxmoxTimeout 3 10", "OspabSelfService On",
            f"OspabAccessTokenTTL {ACCESS_TTL}", "OspabJWTLeeway 0",
            f"LoadModule proxy_module {mods}/mod_proxy.so",
            f"LoadModule proxy_http_module {mods}/mod_proxy_http.so",
            f"LoadModule proxy_wstunnel_module {mods}/mod_proxy_wstunnel.so",
            f'ProxyPass "/socket.io/" "http://127.0.0.1:{agent_port}/socket.io/" '
            "upgrade=websocket",
            '<Location "/socket.io/">', "  OspabLivePush workers=32 per-address=16",
            "</Location>",
            # the console page's WebSocket (docs/console.md), as conf/ospab.conf proxies it
            f'ProxyPass "/console/ws" "http://127.0.0.1:{agent_port}/console/ws" '
            "upgrade=websocket"]
    yield from served(panel_db, conf + ssh_conf(node) + panel_conf(at="/"))


@pytest.fixture(scope="module")
def agent(panel_db, web, sim, agent_port):
    ag = Agent(panel_db, jwt_secret=web.jwt_secret, clusters=[sim_cluster(sim, node=NODE)],
               sections={"agent": {"poll_interval": "1s", "live_interval": "1s",
                                   "task_interval": "500ms", "event_interval": "200ms"},
                         "websocket": {"listen": f"127.0.0.1:{agent_port}",
                                       "ping_interval": "25s", "ping_timeout": "20s"}})
    ag.start()
    yield ag
    ag.stop()
    bad = ag.bad_log_lines(allow=[r"is gone from Proxmox"])
    assert not bad, "the agent logged problems:\n" + "\n".join(bad)


@pytest.fixture(scope="module")
def chromium():
    """One headless Debian chromium for the module; each test opens its own contexts."""
    yield from browserharness.chromium()


class World:
    """What the scenarios use: users with passwords, their servers, the simulator."""

    def __init__(self, web, db, sim, agent, chromium, node):
        self.web, self.db, self.sim, self.agent, self.ws, self.node = (web, db, sim, agent,
                                                                       chromium, node)
        self.api = Api(web)

    def user(self, role="user", name="Анна Петрова"):
        u = create_user(self.api, password="pw-" + os.urandom(9).hex(), role=role, name=name)
        return {"id": u["id"], "email": u["email"], "password": u["password"]}

    def token(self, user):
        r = requests.post(self.web.url("/api/auth/login"),
                          json={"email": user["email"], "password": user["password"]},
                          timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["accessToken"]

    def server(self, user, tariff=1, os_id=1):
        """A running server of the user's, ordered through the API; {id, vmid, name}."""
        tok = self.token(user)
        h = {"Authorization": f"Bearer {tok}"}
        r = requests.post(self.web.url("/api/server/create"), json={"osId": os_id,
                                                                    "tariffId": tariff},
                          headers=h, timeout=30)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        self.wait_status(sid, "running", headers=h)
        row = self.db.query("SELECT name, vmid FROM vps WHERE id = ?", [sid])[0]
        return {"id": sid, "vmid": int(row["vmid"]), "name": row["name"]}

    def wait_status(self, sid, status, headers=None, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            if headers:     # the module follows tasks up when they are listed
                requests.get(self.web.url(f"/api/server/{sid}/tasks"), headers=headers,
                             timeout=30)
            now = self.db.scalar("SELECT status FROM vps WHERE id = ?", [sid])
            if now == status:
                return
            assert time.monotonic() < deadline, f"server {sid} is {now}, not {status}"
            time.sleep(0.2)

    def console_session(self, vmid, timeout=20):
        """The simulator's open console session of this guest (the agent's side of it)."""
        deadline = time.monotonic() + timeout
        while True:
            open_ = [x for x in self.sim.consoles()["sessions"]
                     if x["vmid"] == vmid and x["state"] == "connected"]
            if open_:
                return open_[-1]
            assert time.monotonic() < deadline, f"no open console session of {vmid}"
            time.sleep(0.2)

    def kvm_os(self):
        """An OS entry of kind qemu, from a cloud-init template VM on the node (made once)."""
        if getattr(self, "_kvm_os", None) is None:
            if KVM_TEMPLATE not in [g["vmid"] for g in self.sim.state(tasks=0)["guests"]]:
                self.sim.make_template(KVM_TEMPLATE, name="debian-12-cloud", node=NODE,
                                       disk_gb=4, storage="local-lvm")
            admin = self.user(role="admin", name="Admin")
            r = requests.post(self.web.url("/api/admin/os"), timeout=30,
                              headers={"Authorization": f"Bearer {self.token(admin)}"},
                              json={"name": "Debian 12 (KVM console)",
                                    "template": str(KVM_TEMPLATE), "kind": "qemu"})
            assert r.status_code == 201, r.text
            self._kvm_os = r.json()["os"]["id"]
        return self._kvm_os

    # ---- what scenarios may ask for (t.rpc) ----
    def rpc(self, op, args):
        if op == "guest":
            return self.sim.guest(int(args["vmid"]), **args["fields"])
        if op == "guest_info":
            return self.sim.guest_info(int(args["vmid"]))
        if op == "status":
            return self.db.scalar("SELECT status FROM vps WHERE id = ?", [args["id"]])
        if op == "logout":          # another device ends the login (JSON flow)
            r = requests.post(self.web.url("/api/auth/logout"),
                              json={"refreshToken": args["refreshToken"]}, timeout=30)
            return r.status_code
        if op == "server":
            return self.server(args["user"], tariff=args.get("tariff", 1))
        if op == "console_session":     # the guest's open console session in the simulator
            return self.console_session(int(args["vmid"]))
        if op == "drop_console":        # Proxmox drops it (no close frame, as pveproxy)
            return self.sim.drop_console(self.console_session(int(args["vmid"]))["port"])
        raise ValueError(f"unknown rpc {op}")

    def run(self, scenario, **config):
        """Runs tests/browser/run.js <scenario>; its @@result."""
        return browserharness.run_scenario(scenario, {
            "url": self.web.url("").rstrip("/"), "ws": self.ws, "sim": self.sim.url,
            "ssh": self.node is not None, **config}, self.rpc)


@pytest.fixture(scope="module")
def world(web, panel_db, sim, agent, chromium, node):
    return World(web, panel_db, sim, agent, chromium, node)


# ------------------------------------------------------------------------- the tests --

def test_login_wrong_then_right_password_by_keyboard(world):
    """Login by keyboard alone: a wrong password is said in words (401), the right one opens
    My servers; the focused field shows a visible focus ring; every input has a label."""
    world.run("login", user=world.user())


def test_login_rate_limit_says_when_to_try_again(world):
    """After the account's logins of the window (OspabRateLimit's third number, 30 by
    default) the 429's Retry-After is shown in words."""
    u = world.user()
    for _ in range(30):
        r = requests.post(world.web.url("/api/auth/login"),
                          json={"email": u["email"], "password": u["password"]}, timeout=30)
        assert r.status_code == 200, r.text
    world.run("rate_limit", user=u)


def test_create_server_and_watch_it_run(world):
    """An empty list; New server with tariff and OS pickers; the root password shown once
    with a copy button; the new server becomes running (with its IP) without a reload."""
    world.run("create", user=world.user())


def test_stop_and_start_change_the_badge_live(world):
    """Stop, then start: the buttons wait while the task runs, its progress and outcome are
    shown, and the badge changes on the server page and in another tab's list."""
    u = world.user()
    world.run("power", user=u, server=world.server(u))


def test_graphs_have_points_for_every_timeframe(world):
    u = world.user()
    world.run("graphs", user=u, server=world.server(u))


def test_snapshot_round_trip(world):
    """Take a snapshot, roll back to it and delete it (each destructive step confirmed)."""
    u = world.user()
    world.run("snapshots", user=u, server=world.server(u))


@pytest.mark.skipif(os.geteuid() != 0, reason="the node's sshd needs root")
def test_password_reset_is_shown_once(world):
    """The new root password (the one the node got: the simulator's record) is shown once,
    with "shown only now", and is gone when the dialog closes."""
    u = world.user()
    world.run("password", user=u, server=world.server(u))


def test_reinstall_asks_then_shows_the_new_password(world):
    """Reinstall from the server page: only OS entries of the server's kind are offered (a
    KVM entry is not, for a container), the warning says the disk is erased and names the
    server's one snapshot before anything is sent, the name must be typed, and only then
    goes "confirm": true; the new root password is shown once, the page follows the
    reinstall as an operation to its outcome and the server runs again, from the new OS,
    without its snapshot."""
    admin = world.user(role="admin", name="Admin")
    ah = {"Authorization": f"Bearer {world.token(admin)}"}
    r = requests.post(world.web.url("/api/admin/os"), headers=ah, timeout=30,
                      json={"name": "Debian 12 (KVM)", "template": "9000", "kind": "qemu"})
    assert r.status_code == 201, r.text
    kvm = r.json()["os"]["id"]
    try:
        u = world.user()
        s = world.server(u, os_id=1)
        h = {"Authorization": f"Bearer {world.token(u)}"}
        r = requests.post(world.web.url(f"/api/server/{s['id']}/snapshots"), headers=h,
                          json={"snapname": "before-reinstall", "description": ""}, timeout=30)
        assert r.status_code == 200, r.text
        upid = r.json()["taskId"]
        deadline = time.monotonic() + 60
        while True:         # the module follows the task up when the list is asked for
            tasks = requests.get(world.web.url(f"/api/server/{s['id']}/tasks"), headers=h,
                                 timeout=30).json()
            if any(x["upid"] == upid and x["status"] == "ok" for x in tasks):
                break
            assert time.monotonic() < deadline, tasks
            time.sleep(0.2)
        before = world.sim.guest_info(s["vmid"])
        assert list(before["snapshots"]) == ["before-reinstall"], before["snapshots"]
        assert before["conf"]["ostype"] == "ubuntu", before["conf"]
        res = world.run("reinstall", user=u, server=s, snapshot="before-reinstall", osId=1,
                        newOsId=2, newOsName="Debian 12", otherKind="KVM")
        # the guest made anew: from Debian 12's template, with a new root password, and
        # without the snapshot of the old disk; same vmid and record
        after = world.sim.guest_info(s["vmid"])
        assert after["snapshots"] == {}, after["snapshots"]
        assert after["conf"]["ostype"] == "debian", after["conf"]
        assert after["status"] == "running", after
        assert after["passwords"]["root"]["source"] == "create", after["passwords"]
        assert after["passwords"]["root"]["changed_at"] > before["passwords"]["root"]["changed_at"]
        row = world.db.query("SELECT status, os_id FROM vps WHERE id = ?", [s["id"]])[0]
        assert row["status"] == "running" and int(row["os_id"]) == 2, row
        assert len(res["password"]) == 20
    finally:
        r = requests.delete(world.web.url(f"/api/admin/os/{kvm}"), headers=ah, timeout=30)
        assert r.status_code == 200, r.text


def test_ssh_keys_page_and_a_server_ordered_with_a_key(world, tmp_path):
    """The SSH keys page (#/keys): a private key is refused at the field with the API's
    words (400), a key ssh-keygen made is added and listed with the fingerprint
    `ssh-keygen -lf` prints, the same key again is refused (409); the create view offers it
    unticked and shows each OS's kind (a container, a KVM server); ordered with it ticked,
    the container's root has it (the simulator's ssh-public-keys); then it is deleted after
    a confirmation."""
    def keygen(name, *args):
        f = tmp_path / name
        subprocess.run(["ssh-keygen", "-q", "-N", "", "-f", str(f), *args], check=True,
                       stdin=subprocess.DEVNULL, timeout=60)
        return f
    key = keygen("id_ed25519", "-t", "ed25519", "-C", "anna@laptop")
    pub = key.with_suffix(".pub").read_text().strip()
    fp = subprocess.run(["ssh-keygen", "-lf", str(key.with_suffix(".pub"))], check=True,
                        capture_output=True, text=True, timeout=60).stdout.split()[1]
    assert fp.startswith("SHA256:"), fp
    rsa = keygen("id_rsa_small", "-t", "rsa", "-b", "1024", "-C", "old@box")
    admin = world.user(role="admin", name="Admin")
    ah = {"Authorization": f"Bearer {world.token(admin)}"}
    r = requests.post(world.web.url("/api/admin/os"), headers=ah, timeout=30,
                      json={"name": "Debian 12 (KVM)", "template": "9000", "kind": "qemu"})
    assert r.status_code == 201, r.text
    kvm = r.json()["os"]["id"]
    try:
        u = world.user()
        res = world.run("ssh_keys", user=u, publicKey=pub, fingerprint=fp, keyName="laptop",
                        privateKey=key.read_text().strip(),
                        smallRsa=rsa.with_suffix(".pub").read_text().strip(),
                        osId=1, tariffId=1, kvmOsId=kvm)
    finally:
        r = requests.delete(world.web.url(f"/api/admin/os/{kvm}"), headers=ah, timeout=30)
        assert r.status_code == 200, r.text
    sid = res["serverId"]
    h = {"Authorization": f"Bearer {world.token(u)}"}
    world.wait_status(sid, "running", headers=h)
    vmid = int(world.db.scalar("SELECT vmid FROM vps WHERE id = ?", [sid]))
    keys = world.sim.guest_info(vmid)["ssh_public_keys"]
    assert keys is not None, "the container got no keys"
    assert [l.split()[:2] for l in keys.split("\n")] == [pub.split()[:2]], keys
    # the key is gone from the account, not from the server
    r = requests.get(world.web.url("/api/account/ssh-keys"), headers=h, timeout=30)
    assert r.status_code == 200 and r.json() == [], r.text


def test_resize_shows_the_apis_field_errors(world):
    """Cores beyond the tariff: the API's 403 fields message next to the cores input; a
    smaller disk is refused before asking; a move to a bigger tariff is applied."""
    u = world.user()
    world.run("resize", user=u, server=world.server(u, tariff=1))


def test_alert_notice_when_the_guest_runs_hot(world):
    u = world.user()
    world.run("alerts", user=u, server=world.server(u))


def test_silent_refresh_after_the_access_token_expires(world):
    """Tokens live 60 s here: one tab renews before expiry, another (whose timers were
    held, like a laptop that slept) gets a 401, renews once and repeats the request; both
    keep their live updates (the agent ends each socket at its token's expiry)."""
    u = world.user()
    world.run("refresh", user=u, server=world.server(u), ttl=ACCESS_TTL)


def test_another_customer_sees_not_found(world):
    owner, other = world.user(), world.user(name="Boris")
    world.run("not_found", user=other, server=world.server(owner))


def test_logout_and_a_revoked_session(world):
    """Log out: the login page, also after a reload (the cookie is gone). A login ended
    elsewhere (its refresh token used to log out) lands on the login page with a notice."""
    u = world.user()
    world.run("logout", user=u, server=world.server(u))


def test_console_and_delete(world):
    """The console opens what POST /api/server/console answers; delete asks for the
    server's name, then the server goes and the list says so."""
    u = world.user()
    world.run("console_delete", user=u, server=world.server(u))


def test_console_terminal(world):
    """A container's console (docs/console.md): the page from the Console button connects
    through the agent, the token leaves the address bar, the prompt comes, `echo hello`
    prints hello; the same link again is refused (the token is used); when Proxmox drops
    the session, the page says the connection to the server was lost (no console error)."""
    u = world.user()
    s = world.server(u)
    world.run("console_terminal", user=u, server=s)
    closed = [x for x in world.sim.consoles()["closed"] if x["vmid"] == s["vmid"]]
    assert closed and closed[-1]["dropped"], closed
    assert "echo hello" in closed[-1]["commands"] and closed[-1]["resizes"] >= 1, closed[-1]


def test_console_vnc(world):
    """A KVM server's console: noVNC on the already open WebSocket (RFB 3.8, security None
    from the agent) draws the screen; Ctrl-Alt-Del and the paste box reach the VM; a drop
    by Proxmox ends it with the message."""
    u = world.user()
    world.run("console_vnc", user=u, server=world.server(u, tariff=2, os_id=world.kvm_os()))


def test_admin_sees_every_server_and_whose_it_is(world):
    """An admin's list: every customer's servers with their owner, in keyset pages (the
    billing site's records fill more than one)."""
    owner = world.user()
    s = world.server(owner)
    ops = [{"action": "create", "vps": {"user_id": owner["id"], "name": f"billing-{i:02d}",
                                        "cpu": 1, "ram": 1024, "disk": 10, "os": "Debian 12",
                                        "status": "running", "hypervisor": "proxmox"}}
           for i in range(30)]
    r = world.api.post("/api/vps/sync/batch", json={"operations": ops})
    assert r.status_code == 200, r.text
    total = world.db.count("SELECT COUNT(*) FROM vps")
    world.run("admin", user=world.user(role="admin", name="Admin"), server=s, owner=owner,
              total=total)


def test_a_suspended_server_is_shown_not_managed(world):
    """Billing suspends a customer's server (docs/operations.md): its page says so, every
    button that would manage it is disabled, and the page asks nothing the API refuses
    (no 403 in the console: the scenario fails on any console error)."""
    owner = world.user()
    s = world.server(owner)
    r = world.api.post("/api/vps/sync", json={"action": "update",
                                               "vps": {"id": s["id"], "status": "suspended"}})
    assert r.status_code == 200 and r.json()["vps"]["status"] == "suspended", r.text
    world.wait_status(s["id"], "suspended")
    world.run("suspended", user=owner, server=s)


def test_russian_and_english(world):
    """The browser's language picks Russian (texts, dates, sizes, percentages); the switch
    turns it to English, and the choice stays after a reload."""
    u = world.user()
    world.run("languages", user=u, server=world.server(u, tariff=2))


def test_phone_width(world):
    """375 px wide: every screen fits without sideways scrolling."""
    u = world.user()
    world.run("phone", user=u, server=world.server(u))


def test_first_load_size_and_caching(world):
    """The compressed JS and CSS a first visit loads (login, list, a server page with its
    graphs) stays under 150 KB; a second visit takes vendor/ from the cache."""
    u = world.user()
    res = world.run("first_load", user=u, server=world.server(u))
    print(f"\nfirst load: {res['firstLoadBytes']} bytes of JS+CSS over the network "
          f"({res['firstLoadBodyBytes']} of them compressed bodies, the rest headers; "
          f"{res['firstLoadFiles']} files; the login page alone {res['loginBytes']}); "
          f"second visit: {res['secondLoadBytes']} bytes (vendor/ from the cache)")
    for name, size in sorted(res["perFile"].items(), key=lambda x: -x[1]):
        print(f"  {size:7d}  {name}")
    assert res["firstLoadBytes"] <= 150 * 1024, res
