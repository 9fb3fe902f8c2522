"""Issue 13 item 1, clusters as data: Proxmox clusters (API URL, token, CA) registered in the
database (/api/admin/clusters), their token's secret sealed with AES-256-GCM under
OspabSecretKey and never answered or logged; nodes belong to a cluster, a tariff may name
the cluster its servers go to; every operation on a server goes to its node's cluster; the
"test connection" action says which check failed and which privilege is missing; the
configured cluster (OspabProxmoxURL ...) keeps working and is imported as a row; the agent
polls the database's clusters beside its [cluster] sections. Two simulators (two clusters),
a real Apache with mod_ospab and the real agent, on SQLite and MariaDB
(docs/operations.md, "Clusters").
"""

import json
import os
import secrets
import time

import pytest

import harness
from conftest import _started, access_token, create_user, Api, simulated, sql_exec
from test_agent import agent, agent_port, wait_for  # noqa: F401
from test_server import CONNECT_TIMEOUT, TIME_SCALE, TOTAL_TIMEOUT, WORKERS, call, err, ok, \
    wait_idle

GiB = 1024 ** 3
TEMPLATE = "local:vztmpl/ubuntu-22.04-standard_22.04-1_amd64.tar.zst"   # OS 1 of the seed


@pytest.fixture(scope="module")
def sim_a():
    """The configured cluster (OspabProxmoxURL): node pvea1."""
    yield from simulated(prefix="pvesim-a-", nodes=("pvea1",), guests=1, time_scale=TIME_SCALE,
                         resources_lag=0.2, auth_fail_delay=0.2, cluster_name="alpha")


@pytest.fixture(scope="module")
def sim(sim_a):
    """test_agent's agent fixture checks its log against `sim`'s token"""
    return sim_a


@pytest.fixture(scope="module")
def sim_b():
    """The cluster an admin adds through the API: nodes pveb1, pveb2."""
    yield from simulated(prefix="pvesim-b-", nodes=("pveb1", "pveb2"), time_scale=TIME_SCALE,
                         resources_lag=0.2, auth_fail_delay=0.2, cluster_name="beta")


@pytest.fixture(scope="module")
def seal_key():
    """Read by Apache as root and by the agent as www-data (docs/operations.md has it
    root:ospab 0640; a test's agent runs as www-data)."""
    d = harness.make_run_dir("seal-")
    os.chmod(d, 0o755)
    path = d / "secret.key"
    path.write_text(secrets.token_hex(32) + "\n")
    path.chmod(0o644)
    return path


@pytest.fixture(scope="module")
def srv(database, sim_a, seal_key):
    a = harness.Apache(database, log_level="debug", extra_conf=[
        f"OspabSecretKey file:{seal_key}",
        f"OspabProxmoxURL {sim_a.url}", f"OspabProxmoxToken {sim_a.token}",
        f"OspabProxmoxCA {sim_a.ca}", "OspabProxmoxNode pvea1",
        f"OspabProxmoxTimeout {CONNECT_TIMEOUT} {TOTAL_TIMEOUT}", "OspabSelfService On",
        "OspabServerQuota 0"] + WORKERS)
    _started(a)
    yield a
    a.stop()


class World:
    def __init__(self, srv):
        api = Api(srv)
        self.alice = create_user(api)["id"]
        self.tok = {"alice": access_token(srv, self.alice),
                    "admin": access_token(srv, 1, role="admin")}
        self.secrets = []


@pytest.fixture(scope="module")
def world(srv):
    return World(srv)


def admin(srv, world, method, path, body=None):
    return call(srv, method, path, world.tok["admin"], body)


def deleted(srv, world, sid):
    """DELETE the server; its guest and then its record go"""
    ok(call(srv, "DELETE", f"/api/server/{sid}", world.tok["alice"]))
    wait_idle(srv, world, sid)
    err(call(srv, "GET", f"/api/server/{sid}", world.tok["alice"]), 404)


def pem(sim):
    with open(sim.ca) as f:
        return f.read()


def secret_of(sim):
    return sim.token.rsplit("=", 1)[1]


def no_secret_in(text, *sims):
    for s in sims:
        assert secret_of(s) not in text, "a token's secret in an answer"


@pytest.fixture(scope="module")
def beta(srv, world, sim_b, database):
    """Cluster beta (sim_b) registered through the API, its node pveb1 sampled and roomy,
    and a tariff that places in beta."""
    r = admin(srv, world, "POST", "/api/admin/clusters", {
        "name": "beta", "url": sim_b.url, "token": sim_b.token,
        "ca": pem(sim_b)})
    no_secret_in(r.text, sim_b)
    c = ok(r, 201)["cluster"]
    n = ok(admin(srv, world, "POST", "/api/admin/nodes",
                 {"name": "pveb1", "cluster_id": c["id"]}), 201)["node"]
    at = time.strftime("%Y-%m-%d %H:%M:%S.000", time.gmtime())
    sql_exec(database, f"UPDATE nodes SET status = 'online', maxcpu = 16, maxmem = {64 * GiB}, "
                       f"mem = {GiB}, maxdisk = {1000 * GiB}, disk = 0, sampled_at = '{at}' "
                       f"WHERE id = {n['id']};")
    t = ok(admin(srv, world, "POST", "/api/admin/tariffs", {
        "name": "Beta S", "price": 500, "cores": 1, "memory": 512, "disk": 8,
        "cluster_id": c["id"]}), 201)["tariff"]
    # a pool of alpha on vmbr0 (made first: it would come first), and beta's own
    alpha = [x for x in ok(admin(srv, world, "GET", "/api/admin/clusters"))["clusters"]
             if x["name"] == "default"][0]
    ok(admin(srv, world, "POST", "/api/admin/ip-pools", {
        "name": "alpha-v4", "cluster_id": alpha["id"], "bridge": "vmbr0",
        "first": "10.76.0.10", "last": "10.76.0.40", "prefix": 24}), 201)
    pool = ok(admin(srv, world, "POST", "/api/admin/ip-pools", {
        "name": "beta-v4", "cluster_id": c["id"], "bridge": "vmbr0", "first": "10.77.0.10",
        "last": "10.77.0.40", "prefix": 24, "gateway": "10.77.0.1"}), 201)["pool"]
    return {"cluster": c, "node": n, "tariff": t, "pool": pool}


def test_the_configured_cluster_is_imported_as_a_row(srv, world, database, sim_a):
    """The directives' cluster appears in the clusters table (named "default") with its
    token's secret sealed: "v1:" text that is not the secret, and the listing shows the
    token's id and never its secret."""
    r = admin(srv, world, "GET", "/api/admin/clusters")
    no_secret_in(r.text, sim_a)
    listed = {c["name"]: c for c in ok(r)["clusters"]}
    assert "default" in listed, listed
    d = listed["default"]
    assert d["url"] == sim_a.url and d["tokenId"] == sim_a.token.rsplit("=", 1)[0], d
    assert d["tokenSet"] is True and "token" not in d and d["ca"].startswith("-----BEGIN"), d
    sealed = database.scalar("SELECT token_secret FROM clusters WHERE name = 'default'")
    assert sealed.startswith("v1:") and secret_of(sim_a) not in sealed, sealed
    assert database.count("SELECT COUNT(*) FROM audit_log WHERE action = 'cluster.import'") == 1


def test_a_server_of_a_tariff_in_beta_is_made_and_run_there(srv, world, sim_a, sim_b, beta,
                                                            database):
    """A tariff that names beta places on beta's node; the guest is made by beta's Proxmox
    (not alpha's), and stop, start and delete of the server go there too."""
    body = ok(call(srv, "POST", "/api/server/create", world.tok["alice"],
                   {"osId": 1, "tariffId": beta["tariff"]["id"]}), 201)
    world.secrets.append(body["rootPassword"])
    sid, vmid = body["id"], body["proxmoxId"]
    assert database.scalar("SELECT node FROM vps WHERE id = ?", [sid]) == "pveb1"
    assert body["ipAddress"].startswith("10.77.0."), body      # beta's pool
    wait_idle(srv, world, sid)
    assert sim_b.guest_info(vmid)["node"] == "pveb1"
    net0 = sim_b.data("GET", f"/nodes/pveb1/lxc/{vmid}/config")["net0"]
    assert f"ip={body['ipAddress']}/24" in net0.split(","), net0
    assert sim_b.guest_info(vmid)["status"] == "running"
    before_a = sim_a.state(guests=0, tasks=0)["requests"]
    ok(call(srv, "POST", f"/api/server/{sid}/stop", world.tok["alice"]))
    wait_idle(srv, world, sid)
    assert sim_b.guest_info(vmid)["status"] == "stopped"
    st = ok(call(srv, "GET", f"/api/server/{sid}/status", world.tok["alice"]))
    assert st["stats"]["data"]["status"] == "stopped", st
    ok(call(srv, "POST", f"/api/server/{sid}/start", world.tok["alice"]))
    wait_idle(srv, world, sid)
    assert sim_b.guest_info(vmid)["status"] == "running"
    after_a = sim_a.state(guests=0, tasks=0)["requests"]
    assert not any(k.startswith(("POST /nodes/pveb", "GET /nodes/pveb")) for k in after_a), \
        "alpha was asked about beta's node"
    assert sum(after_a.values()) == sum(before_a.values()), (before_a, after_a)
    deleted(srv, world, sid)
    with pytest.raises(Exception):
        sim_b.guest_info(vmid)


def test_the_configured_cluster_still_serves_its_node(srv, world, sim_a, database):
    """A server on a node of no registered cluster (alpha's pvea1, synced by the billing
    site) is managed through the directives' client, as before clusters were data."""
    v = Api(srv).create_vps(user_id=world.alice, node="pvea1", vmid=100, status="stopped")
    assert sim_a.guest_info(100)["status"] == "stopped"      # vmid 100: made stopped
    ok(call(srv, "POST", f"/api/server/{v['id']}/start", world.tok["alice"]))
    wait_idle(srv, world, v["id"])
    assert sim_a.guest_info(100)["status"] == "running"
    ok(call(srv, "POST", f"/api/server/{v['id']}/stop", world.tok["alice"]))
    wait_idle(srv, world, v["id"])
    assert sim_a.guest_info(100)["status"] == "stopped"


def test_test_connection_reports_what_is_wrong(srv, world, sim_a, sim_b, beta):
    """ok for a good cluster (with Proxmox's version); a wrong secret: the token check fails
    and names the token id; another cluster's CA: the CA check fails; a token without
    VM.PowerMgmt: the privilege check names it and the path; never the secret."""
    cid = beta["cluster"]["id"]

    def test():
        r = admin(srv, world, "POST", f"/api/admin/clusters/{cid}/test")
        no_secret_in(r.text, sim_a, sim_b)
        return ok(r)

    t = test()
    assert t["ok"] is True and t["version"], t
    assert [c["check"] for c in t["checks"]] == ["url", "ca", "token", "privileges"], t
    tokid = sim_b.token.rsplit("=", 1)[0]
    ok(admin(srv, world, "PUT", f"/api/admin/clusters/{cid}", {"token": tokid + "=wrong"}))
    t = test()
    assert t["ok"] is False and t["checks"][-1]["check"] == "token", t
    assert tokid in t["message"], t
    ok(admin(srv, world, "PUT", f"/api/admin/clusters/{cid}",
             {"token": sim_b.token, "ca": pem(sim_a)}))
    t = test()
    assert t["ok"] is False and t["checks"][-1]["check"] == "ca", t
    ok(admin(srv, world, "PUT", f"/api/admin/clusters/{cid}", {"ca": pem(sim_b)}))
    sim_b.token_privs(tokid, ["VM.Audit", "VM.Allocate", "Sys.Audit", "Datastore.Audit",
                              "Datastore.AllocateSpace", "SDN.Use"])
    try:
        t = test()
    finally:
        sim_b.token_privs(tokid, None)
    assert t["ok"] is False and t["checks"][-1]["check"] == "privileges", t
    assert "VM.PowerMgmt" in t["missing"]["/vms"] and "/storage" not in t["missing"], t
    assert "VM.PowerMgmt on /vms" in t["message"], t
    assert test()["ok"] is True


def test_bad_input_is_refused_whole(srv, world, sim_b, beta, database):
    """Bad URL, token and CA: one 400 naming each field, nothing stored, the token's value
    in no message; a second cluster of a name: 409; a node or tariff naming no cluster:
    422; a cluster with nodes cannot be deleted (409), an unused one can."""
    before = database.count("SELECT COUNT(*) FROM clusters")
    r = admin(srv, world, "POST", "/api/admin/clusters", {
        "name": "gamma", "url": "ftp://x", "token": "nope-" + secret_of(sim_b),
        "ca": "not a certificate"})
    no_secret_in(r.text, sim_b)
    body = err(r, 400)
    assert set(body["fields"]) == {"url", "token", "ca"}, body
    err(admin(srv, world, "POST", "/api/admin/clusters", {"name": "x y", "url": sim_b.url,
                                                          "token": sim_b.token}), 400, "name")
    err(admin(srv, world, "POST", "/api/admin/clusters", {"name": "gamma"}), 400)
    assert database.count("SELECT COUNT(*) FROM clusters") == before
    err(admin(srv, world, "POST", "/api/admin/clusters",
              {"name": "beta", "url": sim_b.url, "token": sim_b.token}), 409, "beta")
    err(admin(srv, world, "POST", "/api/admin/nodes", {"name": "pvex", "cluster_id": 999999}),
        422, "cluster")
    err(admin(srv, world, "POST", "/api/admin/ip-pools", {
        "name": "nowhere", "cluster_id": 999999, "bridge": "vmbr0", "first": "10.78.0.10",
        "last": "10.78.0.20", "prefix": 24}), 422, "cluster")
    err(admin(srv, world, "PUT", f"/api/admin/tariffs/{beta['tariff']['id']}",
              {"cluster_id": 999999}), 422, "cluster")
    cid = beta["cluster"]["id"]
    err(admin(srv, world, "DELETE", f"/api/admin/clusters/{cid}"), 409, "node")
    g = ok(admin(srv, world, "POST", "/api/admin/clusters",
                 {"name": "gamma", "url": "https://127.0.0.1:9", "token": sim_b.token,
                  "enabled": False}), 201)["cluster"]
    assert g["enabled"] is False and g["nodes"] == 0, g
    t = ok(admin(srv, world, "POST", f"/api/admin/clusters/{g['id']}/test"))
    assert t["ok"] is False and t["checks"][0]["check"] == "url", t
    ok(admin(srv, world, "DELETE", f"/api/admin/clusters/{g['id']}"))
    err(admin(srv, world, "GET", f"/api/admin/clusters/{g['id']}"), 404)
    err(call(srv, "GET", "/api/admin/clusters", world.tok["alice"]), 403)


def test_a_disabled_cluster_takes_no_new_servers(srv, world, beta):
    """enabled false: its nodes are passed over (409 naming nothing of Proxmox); true again:
    placed there."""
    cid, tariff = beta["cluster"]["id"], beta["tariff"]["id"]
    ok(admin(srv, world, "PUT", f"/api/admin/clusters/{cid}", {"enabled": False}))
    try:
        err(call(srv, "POST", "/api/server/create", world.tok["alice"],
                 {"osId": 1, "tariffId": tariff}), 409, "no server of this size")
    finally:
        ok(admin(srv, world, "PUT", f"/api/admin/clusters/{cid}", {"enabled": True}))
    body = ok(call(srv, "POST", "/api/server/create", world.tok["alice"],
                   {"osId": 1, "tariffId": tariff}), 201)
    world.secrets.append(body["rootPassword"])
    wait_idle(srv, world, body["id"])
    deleted(srv, world, body["id"])


def test_the_agent_polls_the_databases_clusters(srv, world, sim_a, sim_b, beta, agent,
                                                seal_key, database):
    """The agent's file names alpha only; with the [secrets] key it also polls beta from
    the database: a server made on beta whose guest is stopped behind the panel's back is
    seen stopped by the agent's poll (status drift), and its log never holds a secret."""
    body = ok(call(srv, "POST", "/api/server/create", world.tok["alice"],
                   {"osId": 1, "tariffId": beta["tariff"]["id"]}), 201)
    world.secrets.append(body["rootPassword"])
    sid, vmid = body["id"], body["proxmoxId"]
    wait_idle(srv, world, sid)
    from agentharness import sim_cluster
    a = agent(clusters=[sim_cluster(sim_a, name="alpha")],
              sections={"secrets": {"key": f"file:{seal_key}"},
                        "agent": {"poll_interval": "1s"}})
    sim_b.guest(vmid, status="stopped")
    wait_for(lambda: database.scalar("SELECT status FROM vps WHERE id = ?", [sid]) == "stopped",
             timeout=30)
    log = a.log_text()
    assert "1 from the config file, 1 more from the database" in log, log[-2000:]
    no_secret_in(log, sim_a, sim_b)
    # alpha's section was matched to the imported row by its URL: no second row
    assert database.count("SELECT COUNT(*) FROM clusters WHERE api_url LIKE ?",
                          [sim_a.url + "%"]) == 1
    sim_b.guest(vmid, status="running")
    deleted(srv, world, sid)


def test_ospab_admin_adds_tests_and_suspends(srv, world, sim_b, beta, seal_key, database):
    """From a shell: cluster-add seals the token with --secret-key (no key: refused),
    cluster-list shows it without the secret, cluster-test passes (exit 0) and fails with
    exit 2 for a cluster that cannot be reached; suspend stops a beta server's guest through
    beta (the customer then gets 403 on start), unsuspend starts it again."""
    def cli(*args, check=True):
        p = harness.admin(database.driver, database.params, f"--secret-key=file:{seal_key}",
                          *args, check=check)
        no_secret_in(p.stdout + p.stderr, sim_b)
        return p

    p = harness.admin(database.driver, database.params, "cluster-add", json.dumps(
        {"name": "cli", "url": "https://127.0.0.1:9", "token": sim_b.token}), check=False)
    assert p.returncode == 2 and "OspabSecretKey" in p.stderr, (p.stdout, p.stderr)
    made = json.loads(cli("cluster-add", json.dumps(
        {"name": "cli", "url": "https://127.0.0.1:9", "token": sim_b.token})).stdout)
    cid = made["cluster"]["id"]
    listed = {c["name"]: c for c in json.loads(cli("cluster-list").stdout)["clusters"]}
    assert listed["cli"]["tokenSet"] is True and "cli" in listed and "beta" in listed, listed
    assert cli("cluster-test", str(beta["cluster"]["id"])).returncode == 0
    p = cli("cluster-test", str(cid), check=False)
    assert p.returncode == 2 and "cannot connect" in p.stderr, (p.stdout, p.stderr)
    cli("cluster-set", str(cid), json.dumps({"enabled": False}))
    assert database.scalar("SELECT enabled FROM clusters WHERE id = ?", [cid]) in (0, "0")
    ok(admin(srv, world, "DELETE", f"/api/admin/clusters/{cid}"))

    body = ok(call(srv, "POST", "/api/server/create", world.tok["alice"],
                   {"osId": 1, "tariffId": beta["tariff"]["id"]}), 201)
    world.secrets.append(body["rootPassword"])
    sid, vmid = body["id"], body["proxmoxId"]
    wait_idle(srv, world, sid)
    assert sim_b.guest_info(vmid)["status"] == "running"
    out = json.loads(cli("suspend", str(sid), "--reason", "unpaid invoice").stdout)
    assert out["guest"]["action"] == "stop", out
    wait_for(lambda: sim_b.guest_info(vmid)["status"] == "stopped", timeout=20)
    wait_idle(srv, world, sid)          # the stop task followed up (the agent's work)
    err(call(srv, "POST", f"/api/server/{sid}/start", world.tok["alice"]), 403, "suspended")
    assert "unpaid invoice" in json.dumps(database.query(
        "SELECT details FROM audit_log WHERE action = 'vps.suspend' AND target_id = ?",
        [str(sid)]))
    out = json.loads(cli("unsuspend", str(sid)).stdout)
    assert out["guest"]["action"] == "start" and out["guest"]["taskId"], out
    wait_for(lambda: sim_b.guest_info(vmid)["status"] == "running", timeout=20)
    wait_idle(srv, world, sid)
    deleted(srv, world, sid)


def test_no_secret_in_the_logs_or_the_audit(srv, world, sim_a, sim_b, database):
    """At LogLevel debug, neither token secret nor any root password is in Apache's logs;
    the audit log's rows of cluster changes name the token id, never the secret."""
    text = srv.error_log.read_text(errors="replace") + srv.access_log.read_text(errors="replace")
    for s in [secret_of(sim_a), secret_of(sim_b)] + world.secrets:
        assert s not in text, f"a secret ({s[:6]}...) is in Apache's logs"
    audit = json.dumps(database.query("SELECT action, details FROM audit_log "
                                      "WHERE target_type = 'cluster'"))
    assert "cluster.create" in audit and "cluster.update" in audit, audit
    no_secret_in(audit, sim_a, sim_b)
    assert not database.count("SELECT COUNT(*) FROM clusters WHERE token_secret NOT LIKE 'v1:%'")


def test_without_a_key_clusters_cannot_be_stored(database, sim_a, sim_b, beta, world,
                                                 allow_log):
    """No OspabSecretKey: the admin API refuses to store a token (503 saying what to set);
    a server on a registered cluster's node is refused (503), never sent to the configured
    cluster, which does not know its guest."""
    a = _started(harness.Apache(database, extra_conf=[
        f"OspabProxmoxURL {sim_a.url}", f"OspabProxmoxToken {sim_a.token}",
        f"OspabProxmoxCA {sim_a.ca}", "OspabProxmoxNode pvea1", "OspabSelfService On"]))
    allow_log("the cluster of node pveb1 cannot be used")
    try:
        tok = access_token(a, 1, role="admin")
        r = call(a, "POST", "/api/admin/clusters", tok,
                 {"name": "delta", "url": sim_b.url, "token": sim_b.token})
        no_secret_in(r.text, sim_b)
        err(r, 503, "OspabSecretKey")
        v = Api(a).create_vps(user_id=world.alice, node="pveb1", vmid=4242, status="stopped")
        asked = sum(sim_a.state(guests=0, tasks=0)["requests"].values())
        err(call(a, "POST", f"/api/server/{v['id']}/start", access_token(a, world.alice)),
            503, "unavailable for this server's node")
        assert sum(sim_a.state(guests=0, tasks=0)["requests"].values()) == asked
        ok(Api(a).vps("delete", {"id": v["id"]}))
    finally:
        a.stop()
