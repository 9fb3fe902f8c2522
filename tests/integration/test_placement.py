"""Issue 13 items 1-2, nodes as data and placement: an admin registers Proxmox nodes
(/api/admin/nodes); a new server goes to the node that takes new servers, is online,
has the OS template, stays within its over-allocation limits, and has the most free memory
after the guest (the agent's sample less what was made since); none fits -> 409; creates
at once never overfill a node. The agent writes each registered node's sample from its
/cluster/resources poll. A real Apache with mod_ospab, the real agent and the Proxmox
simulator with four nodes, on SQLite and MariaDB (docs/operations.md, "Nodes and
placement").
"""

import re
import time
from datetime import datetime, timezone

import pytest

from conftest import all_at_once, simulated, sql_exec
from test_agent import agent, agent_port, wait_for  # noqa: F401
from test_server import TIME_SCALE, call, err, ok, srv, wait_idle, world  # noqa: F401

NODES = ("pve1", "pve2", "pve3", "pve4")
GiB = 1024 ** 3
TEMPLATE = "local:vztmpl/ubuntu-22.04-standard_22.04-1_amd64.tar.zst"   # OS 1 of the seed
NO_ROOM = "no server of this size can be made now"


@pytest.fixture(scope="module")
def sim():
    yield from simulated(nodes=NODES, time_scale=TIME_SCALE, resources_lag=0.2,
                         auth_fail_delay=0.2)


@pytest.fixture(autouse=True)
def _clean(sim, database):
    """Each test registers its own nodes; afterwards none is registered (placement off) and
    every node holds the template again."""
    yield
    sim.clear_faults()
    sql_exec(database, "DELETE FROM nodes;")
    for n in NODES:
        sim.add_template(n, TEMPLATE)


def admin(srv, world, method, path, body=None):
    return call(srv, method, path, world.tok["admin"], body)


def register(srv, world, name, **settings):
    return ok(admin(srv, world, "POST", "/api/admin/nodes", dict(settings, name=name)),
              201)["node"]


def now_db():
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.000")


def sample(database, name, maxmem_gib, mem_gib, maxcpu=16, status="online", age=0):
    """What the agent writes for a node (test_the_agent_samples_... checks it does)."""
    at = datetime.fromtimestamp(time.time() - age, timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S.000")
    sql_exec(database, f"UPDATE nodes SET status = '{status}', maxcpu = {maxcpu}, "
                       f"maxmem = {int(maxmem_gib * GiB)}, mem = {int(mem_gib * GiB)}, "
                       f"maxdisk = {1000 * GiB}, disk = 0, sampled_at = '{at}' "
                       f"WHERE name = '{name}';")


def create(srv, world, tariff=1):
    return call(srv, "POST", "/api/server/create", world.tok["alice"],
                {"osId": 1, "tariffId": tariff})


def node_of(database, sid):
    return database.scalar("SELECT node FROM vps WHERE id = ?", [sid])


def made(srv, world, database, n, sim=None):
    """n servers of tariff 1 (1 vCPU, 1024 MB, 10 GB), one after another; their nodes (the
    guest on Proxmox checked to be on the record's node when sim is given)."""
    out = []
    for _ in range(n):
        body = ok(create(srv, world), 201)
        world.secrets.append(body["rootPassword"])
        out.append(node_of(database, body["id"]))
        wait_idle(srv, world, body["id"])
        if sim:
            assert sim.guest_info(body["proxmoxId"])["node"] == out[-1]
    return out


def test_three_servers_land_by_free_memory(srv, sim, world, database):
    """pve1 has 8 GiB free, pve2 8.5 GiB: the first server goes to pve2 (7.5 after it), the
    second to pve1 (7 after it, pve2 would have 6.5), the third to pve2 again; the guests
    are made on those nodes; a node that does not take new servers gets none."""
    for n in ("pve1", "pve2", "pve3"):
        register(srv, world, n)
    ok(admin(srv, world, "PUT", "/api/admin/nodes/%s" % database.scalar(
        "SELECT id FROM nodes WHERE name = 'pve3'"), {"accepts": False}))
    sample(database, "pve1", 16, 8)
    sample(database, "pve2", 16, 7.5)
    sample(database, "pve3", 64, 0)
    nodes = made(srv, world, database, 3, sim)
    assert nodes == ["pve2", "pve1", "pve2"], nodes
    listed = {n["name"]: n for n in ok(admin(srv, world, "GET", "/api/admin/nodes"))["nodes"]}
    assert listed["pve2"]["given"]["ram"] >= 2048 and listed["pve3"]["accepts"] is False
    assert listed["pve1"]["sample"]["maxmem"] == 16 * GiB, listed


def test_a_kvm_server_on_another_node_than_its_template(srv, sim, world, database):
    """A KVM template on shared storage serves every node: a server placed on another node
    than the template's is cloned there with its disk on that shared storage (Proxmox
    refuses a cross-node clone onto the node's local storage, which is what nodes have)."""
    tmpl = 9500
    if tmpl not in [g["vmid"] for g in sim.state(tasks=0)["guests"]]:
        sim.add_storage("shared-nfs", nodes=list(NODES))
        sim.make_template(tmpl, name="debian-12-cloud", node="pve1", storage="shared-nfs")
    os_id = ok(admin(srv, world, "POST", "/api/admin/os",
                     {"name": "KVM (shared)", "template": str(tmpl), "kind": "qemu"}), 201)["os"]["id"]
    for n in ("pve1", "pve2"):
        register(srv, world, n, storage="local-lvm")
    sample(database, "pve1", 16, 12)
    sample(database, "pve2", 16, 2)
    body = ok(call(srv, "POST", "/api/server/create", world.tok["alice"],
                   {"osId": os_id, "tariffId": 1}), 201)
    world.secrets.append(body["rootPassword"])
    assert node_of(database, body["id"]) == "pve2"
    wait_idle(srv, world, body["id"])
    rec = ok(call(srv, "GET", f"/api/server/{body['id']}", world.tok["alice"]))
    assert rec["status"] == "running", rec
    g = sim.guest_info(body["proxmoxId"])
    assert g["node"] == "pve2" and g["status"] == "running", g
    disks = [v for k, v in g["conf"].items() if re.match(r"(scsi|virtio|sata|ide)\d+$", k)
             and "media=cdrom" not in str(v) and "cloudinit" not in str(v)]
    assert disks and all(str(d).startswith("shared-nfs:") for d in disks), g["conf"]


def test_a_node_without_the_template_or_room_is_passed_over(srv, sim, world, database):
    """The emptiest node lacks the OS template: the next one gets the server. Limits: a
    node whose memory ratio leaves no room, one whose sample is stale, one offline: none
    of them; when no node fits, 409 and nothing is made."""
    for n in ("pve1", "pve2"):
        register(srv, world, n)
    sample(database, "pve1", 16, 12)
    sample(database, "pve2", 16, 1)
    sim.remove_template("pve2", TEMPLATE)
    assert made(srv, world, database, 1) == ["pve1"]
    sim.add_template("pve2", TEMPLATE)
    # pve2 now may give out no more memory than its servers already have
    given = database.scalar("SELECT COALESCE(SUM(ram), 0) FROM vps WHERE node = 'pve2'")
    ratio = max(10, int((int(given) + 512) * 1024 * 1024 * 100 / (16 * GiB)))
    pve2 = database.scalar("SELECT id FROM nodes WHERE name = 'pve2'")
    ok(admin(srv, world, "PUT", f"/api/admin/nodes/{pve2}", {"mem_ratio": ratio}))
    sample(database, "pve1", 16, 1, age=600)                      # stale
    before = database.count("SELECT COUNT(*) FROM vps")
    err(create(srv, world), 409, NO_ROOM)
    sample(database, "pve1", 16, 1, status="offline")
    err(create(srv, world), 409, NO_ROOM)
    assert database.count("SELECT COUNT(*) FROM vps") == before
    assert "no node can take a server of 1 vCPU, 1024 MB, 10 GB" in srv.error_log.read_text()
    sample(database, "pve1", 16, 1)
    assert made(srv, world, database, 1) == ["pve1"]


def test_fifty_creates_at_once_never_overfill_a_node(srv, sim, world, database):
    """Two nodes with room for 8 servers of 1 GB each (memory ratio 100): 50 customers order
    at once; 16 servers are made, 8 on each node, and 34 are told there is no room."""
    for n in ("pve3", "pve4"):
        register(srv, world, n)
    given = {n: int(database.scalar("SELECT COALESCE(SUM(ram), 0) FROM vps WHERE node = ?",
                                    [n])) for n in ("pve3", "pve4")}
    for n in ("pve3", "pve4"):
        # room for exactly 8 more servers of 1024 MB besides what the node has
        sample(database, n, (given[n] + 8 * 1024) / 1024, 0)
    sim.fault(kind="latency", seconds=0.2, path_prefix="/nodes/", method="POST")
    try:
        rs = all_at_once(50, lambda _: create(srv, world))
    finally:
        sim.clear_faults()
    good = [r.json() for r in rs if r.status_code == 201]
    world.secrets.extend(b["rootPassword"] for b in good)
    refused = [r for r in rs if r.status_code != 201]
    assert len(good) == 16, [(r.status_code, r.text[:120]) for r in refused]
    for r in refused:
        err(r, 409, NO_ROOM)
    placed = [node_of(database, b["id"]) for b in good]
    assert sorted(placed) == ["pve3"] * 8 + ["pve4"] * 8, placed
    for n in ("pve3", "pve4"):
        now = int(database.scalar("SELECT SUM(ram) FROM vps WHERE node = ?", [n]))
        assert now == given[n] + 8 * 1024, (n, now, given[n])
    for b in good:
        wait_idle(srv, world, b["id"])


def test_the_agent_samples_registered_nodes(srv, sim, world, database, agent):
    """The agent's poll writes each registered node's status, CPUs, memory and its guest
    storage's size, as /cluster/resources reports them; nodes nobody registered are not
    written."""
    node = register(srv, world, "pve4", storage="local-lvm")
    sim.node("pve4", memory=48 * GiB, base_mem=3 * GiB, cpus=24)
    agent()

    def sampled():
        n = ok(admin(srv, world, "GET", f"/api/admin/nodes/{node['id']}"))["node"]
        return n if n["sample"] and n["sample"]["maxmem"] == 48 * GiB else None

    n = wait_for(sampled, what="the node's sample")
    s = n["sample"]
    assert (s["status"], s["maxcpu"]) == ("online", 24), s
    assert 3 * GiB <= s["mem"] < 48 * GiB and s["maxdisk"] > 0, s
    assert database.count("SELECT COUNT(*) FROM nodes") == 1


def test_nodes_through_the_admin_api(srv, world, database):
    """/api/admin/nodes: registered with its settings (defaults filled), refused with every
    wrong field named, a name registered twice is a 409, changed, forgotten; audited as the
    admin; customers 403."""
    err(call(srv, "GET", "/api/admin/nodes", world.tok["alice"]), 403, "admin role")
    n = register(srv, world, "pve1", ssh_host="10.0.0.11:2222", storage="local-zfs")
    assert (n["cpu_ratio"], n["mem_ratio"], n["disk_ratio"], n["accepts"]) == (400, 100, 100,
                                                                               True), n
    assert (n["ssh_host"], n["storage"], n["bridge"], n["sample"]) == ("10.0.0.11:2222",
                                                                        "local-zfs", None,
                                                                        None), n
    e = err(admin(srv, world, "POST", "/api/admin/nodes",
                  {"name": "pve 2", "ssh_host": "a b", "mem_ratio": 5, "storage": "x/y",
                   "colour": "red"}), 400)
    assert set(e["fields"]) == {"name", "ssh_host", "mem_ratio", "storage", "colour"}, e
    err(admin(srv, world, "POST", "/api/admin/nodes", {"name": "pve1"}), 409, "registered")
    changed = ok(admin(srv, world, "PUT", f"/api/admin/nodes/{n['id']}",
                       {"accepts": False, "ssh_host": None}))["node"]
    assert changed["accepts"] is False and changed["ssh_host"] is None, changed
    assert changed["storage"] == "local-zfs"
    ok(admin(srv, world, "DELETE", f"/api/admin/nodes/{n['id']}"))
    err(admin(srv, world, "GET", f"/api/admin/nodes/{n['id']}"), 404)
    actions = [r["action"] for r in database.query(
        "SELECT action FROM audit_log WHERE target_type = 'node' AND target_id = ? "
        "AND actor_type = 'admin' ORDER BY id", [str(n["id"])])]
    assert actions == ["node.create", "node.update", "node.delete"], actions
