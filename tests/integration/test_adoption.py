"""Issue 10 item 1, "Synced records cannot be managed": the seeds' flow (seed 002's workflow,
seed 000's bodies) has the billing site create the VPS on Proxmox and then sync
{user_id, name, cpu, ram, disk, os, status, hypervisor} — no node, no vmid — after which "the
customer can manage it". The agent links such a record to the one guest of its name on the
clusters it polls (adoption, docs/agent.md); when it cannot, the record stays unbound with a
binding_note for admins and the customer's power routes answer 409 with the reason in their
words. The real agent, a real Apache with mod_ospab and the Proxmox simulator, each test once
on SQLite and once on MariaDB.
"""

import json
import sys

import pytest

import harness
from conftest import access_token, unique, simulated
from test_agent import (TEMPLATE, TIME_SCALE, agent, agent_port, srv, wait_for,  # noqa: F401
                        world)
from test_server import ACTION_KEYS, UPID, call, err, ok, wait_guest, wait_idle

sys.path.insert(0, str(harness.REPO / "tests" / "pvesim"))

NODES = ("pve1", "pve2")
SEED_NAME = "web-server-01"          # seed 000's server
UNLINKED = "this server is not linked to its guest on Proxmox yet"


@pytest.fixture(scope="module")
def sim(database):
    """A simulator per database: the tests name guests after their servers (the seed's
    web-server-01 among them), and the other database's guests would share those names."""
    yield from simulated(nodes=NODES, time_scale=TIME_SCALE, resources_lag=0.2,
                         auth_fail_delay=0.2)


_next_vmid = [2000]


def billing_creates(sim, name, node="pve1", kind="lxc", running=True):
    """What the billing site does first (seed 002's workflow, step 3): it creates the guest
    on Proxmox itself, through Proxmox's API, named after the server. Its vmid."""
    vmid = _next_vmid[0]
    _next_vmid[0] += 1
    if kind == "qemu":
        # the simulator creates no VM through the API: its control endpoint makes one
        sim.guest(vmid, type="qemu", node=node, name=name, status="stopped")
    else:
        params = {"vmid": vmid, "hostname": name, "ostemplate": TEMPLATE,
                  "rootfs": "local-lvm:8"}
        upid = sim.data("POST", f"/nodes/{node}/lxc", params)
        assert sim.wait_task(upid)["exitstatus"] == "OK"
    if running:
        upid = sim.data("POST", f"/nodes/{node}/{kind}/{vmid}/status/start")
        assert sim.wait_task(upid)["exitstatus"] == "OK"
    return vmid


def seed000(user_id, name=SEED_NAME):
    """Seed 000's createVPSonPanel body, verbatim (ram already converted GB -> MB); tests
    other than the seed's own flow change the name alone, so that guests do not share it."""
    return {"action": "create", "vps": {
        "user_id": user_id, "name": name, "cpu": 4, "ram": 8 * 1024, "disk": 100,
        "os": "Ubuntu 22.04 LTS", "status": "creating", "hypervisor": "proxmox"}}


def sync(world, body):
    return world.api.post("/api/vps/sync", json=body)


def synced(world, name=SEED_NAME, user=None):
    r = sync(world, seed000(user or world.alice, name))
    assert r.status_code == 201, r.text
    v = r.json()["vps"]
    assert v["node"] is None and v["vmid"] is None and "binding_note" not in v, v
    return v["id"]


def record(database, sid):
    return database.query("SELECT node, vmid, kind, status, binding_note FROM vps "
                          "WHERE id = ?", [sid])[0]


def note_of(database, sid):
    return wait_for(lambda: record(database, sid)["binding_note"], what="the binding note")


def audit(database, sid, action):
    return database.query("SELECT actor_type, details FROM audit_log WHERE target_type = 'vps' "
                          "AND target_id = ? AND action = ? ORDER BY id", [str(sid), action])


def status_events(database, sid):
    out = []
    for r in database.query("SELECT payload FROM webhook_outbox WHERE event = 'server.status' "
                            "ORDER BY id"):
        data = json.loads(r["payload"])["data"]
        if data["serverId"] == sid:
            out.append(data)
    return out


def power(srv, world, sid, verb, prefix="server"):
    body = ok(call(srv, "POST", f"/api/{prefix}/{sid}/{verb}", world.tok["alice"]))
    assert set(body) == ACTION_KEYS and body["action"] == verb, body
    assert UPID.match(body["taskId"]), body
    tasks = wait_idle(srv, world, sid)
    mine = [t for t in tasks if t["upid"] == body["taskId"]]
    assert len(mine) == 1 and mine[0]["status"] == "ok", tasks
    return body


def polls(agent_, n=3):
    """Waits for n more poll rounds of the agent (its debug line per round)."""
    seen = agent_.log_text().count("] poll: ")
    wait_for(lambda: agent_.log_text().count("] poll: ") >= seen + n, what=f"{n} polls")


DEBUG = {"agent": {"log_level": "debug"}}


def left_unbound(ag, database, sid, expected):
    """The agent leaves the record unbound with the note expected, written once: a few
    polls later still unbound, not adopted, the note not written again."""
    note = note_of(database, sid)
    assert note == expected, note
    polls(ag)
    assert record(database, sid)["vmid"] is None
    assert audit(database, sid, "vps.adopt") == []
    assert ag.log_text().count(f"server {sid} is not linked") == 1, ag.log_tail()
    return note


# ------------------------------------------------------------- the seeds' flow --

def test_seed_000_record_is_adopted_and_its_customer_manages_it(sim, world, srv, database,
                                                                agent):
    """The billing site creates web-server-01 on Proxmox, syncs seed 000's body (no node, no
    vmid): within a few polls the record has the guest's node, vmid, kind and state; then
    every power route of seed 003 and seed 001 works end to end, on the guest itself."""
    vmid = billing_creates(sim, SEED_NAME)
    sid = synced(world)
    # a server of the same name on another hypervisor is no Proxmox guest's: no twin
    r = sync(world, {"action": "create", "vps": {**seed000(world.bob)["vps"],
                                                  "hypervisor": "vmware"}})
    assert r.status_code == 201, r.text
    other = r.json()["vps"]["id"]
    # before the agent has looked: a 409 that says what is wrong
    e = err(call(srv, "POST", f"/api/server/{sid}/stop", world.tok["alice"]), 409, UNLINKED)
    assert "ask support" in e["error"], e
    agent()
    wait_for(lambda: record(database, sid)["vmid"], what="the adoption")
    assert record(database, sid) == {"node": "pve1", "vmid": str(vmid), "kind": "lxc",
                                     "status": "running", "binding_note": None}
    rows = audit(database, sid, "vps.adopt")
    assert len(rows) == 1 and rows[0]["actor_type"] == "agent", rows
    assert json.loads(rows[0]["details"]) == {
        "node": {"from": None, "to": "pve1"}, "vmid": {"from": None, "to": str(vmid)},
        "kind": {"from": None, "to": "lxc"}, "status": {"from": "creating", "to": "running"}}
    assert status_events(database, sid) == [
        {"serverId": sid, "userId": world.alice, "status": "running", "previous": "creating"}]
    # seed 000, step 4: the billing site says it is ready; the record stays bound
    r = sync(world, {"action": "update", "vps": {"id": sid, "status": "running"}})
    assert r.status_code == 200, r.text
    v = r.json()["vps"]
    assert (v["node"], v["vmid"], v["kind"]) == ("pve1", vmid, "lxc") and \
        "binding_note" not in v, v

    # seed 003's routes
    power(srv, world, sid, "stop")
    wait_guest(sim, vmid, "stopped")
    power(srv, world, sid, "start")
    wait_guest(sim, vmid, "running")
    before = {t["upid"] for t in sim.control("GET", f"/tasks?vmid={vmid}")}
    power(srv, world, sid, "restart")
    kinds = {UPID.match(t["upid"])["type"] for t in sim.control("GET", f"/tasks?vmid={vmid}")
             if t["upid"] not in before}
    assert kinds == {"vzstop", "vzstart"}, kinds
    wait_guest(sim, vmid, "running")
    # seed 001's routes
    power(srv, world, sid, "stop", prefix="vps")
    wait_guest(sim, vmid, "stopped")
    power(srv, world, sid, "start", prefix="vps")
    wait_guest(sim, vmid, "running")
    power(srv, world, sid, "restart", prefix="vps")
    wait_guest(sim, vmid, "running")
    body = power(srv, world, sid, "reboot", prefix="vps")
    assert UPID.match(body["taskId"])["type"] == "vzreboot", body
    wait_guest(sim, vmid, "running")
    server = ok(call(srv, "GET", f"/api/server/{sid}", world.tok["alice"]))
    assert server["status"] == "running" and server["proxmoxId"] == vmid, server
    # the VMware record stays as synced, with its 501
    assert record(database, other) == {"node": None, "vmid": None, "kind": None,
                                       "status": "creating", "binding_note": None}
    err(call(srv, "POST", f"/api/server/{other}/start", access_token(srv, world.bob)), 501,
        "vmware")


# ---------------------------------------------------------- when it cannot link --

def test_two_guests_of_the_name_leave_it_unbound_until_a_sync_binds_it(sim, world, srv,
                                                                       database, agent):
    """Two guests bear the record's name (one on each node): the agent takes neither. The
    billing site and admins read why in binding_note, the customer gets a 409 saying it in
    their words; a sync update with node and vmid binds it and ends the note."""
    name = unique("shop")
    a, b = billing_creates(sim, name, "pve1"), billing_creates(sim, name, "pve2")
    sid = synced(world, name)
    ag = agent(sections=DEBUG)
    note = left_unbound(ag, database, sid, f"2 guests are named '{name}' (pve1/{a}, pve2/{b}): "
                        f"bind the record with node and vmid in a sync update")

    for verb in ("start", "stop", "restart"):
        err(call(srv, "POST", f"/api/server/{sid}/{verb}", world.tok["alice"]), 409,
            f"{UNLINKED} (several guests are named '{name}'): ask support")
    err(call(srv, "POST", f"/api/vps/{sid}/reboot", world.tok["alice"]), 409,
        f"several guests are named '{name}'")
    # admins see the note; the customer's own record does not carry it
    admin = ok(call(srv, "GET", f"/api/vps/{sid}", world.tok["admin"]))
    assert admin["binding_note"] == note, admin
    mine = ok(call(srv, "GET", f"/api/vps/{sid}", world.tok["alice"]))
    assert "binding_note" not in mine, mine
    listed = ok(call(srv, "GET", "/api/vps", world.tok["alice"]))
    assert all("binding_note" not in v for v in listed), listed
    # the billing site's records carry it too
    r = sync(world, {"action": "update", "vps": {"id": sid, "status": "running"}})
    assert r.status_code == 200 and r.json()["vps"]["binding_note"] == note, r.text

    # the billing site names the guest: bound, the note gone, the guest managed
    r = sync(world, {"action": "update", "vps": {"id": sid, "node": "pve2", "vmid": b,
                                                 "kind": "lxc"}})
    assert r.status_code == 200, r.text
    v = r.json()["vps"]
    assert (v["node"], v["vmid"]) == ("pve2", b) and "binding_note" not in v, v
    assert record(database, sid)["binding_note"] is None
    power(srv, world, sid, "stop")
    wait_guest(sim, b, "stopped")
    assert sim.guest_info(a)["status"] == "running"
    polls(ag)
    assert record(database, sid)["binding_note"] is None and audit(database, sid,
                                                                   "vps.adopt") == []


def test_no_guest_of_the_name_then_the_billing_site_creates_it(sim, world, srv, database,
                                                                agent):
    """No guest bears the name: unbound, and the note and the customer's 409 say so. Once
    the guest exists (here a QEMU VM, stopped) the next polls adopt it."""
    name = unique("db")
    sid = synced(world, name)
    ag = agent(sections=DEBUG)
    left_unbound(ag, database, sid, f"no guest named '{name}' on the Proxmox clusters: give "
                 f"its guest this name, or bind the record with node and vmid in a sync update")
    e = err(call(srv, "POST", f"/api/server/{sid}/start", world.tok["alice"]), 409)
    assert e == {"error": f"{UNLINKED} (no guest named '{name}' was found): ask support"}, e
    err(call(srv, "POST", f"/api/vps/{sid}/stop", world.tok["alice"]), 409,
        f"no guest named '{name}' was found")

    vmid = billing_creates(sim, name, "pve2", kind="qemu", running=False)
    wait_for(lambda: record(database, sid)["vmid"], what="the adoption")
    assert record(database, sid) == {"node": "pve2", "vmid": str(vmid), "kind": "qemu",
                                     "status": "stopped", "binding_note": None}
    assert [r["actor_type"] for r in audit(database, sid, "vps.adopt")] == ["agent"]
    power(srv, world, sid, "start", prefix="vps")
    wait_guest(sim, vmid, "running")


def test_a_guest_bound_to_another_record_is_never_taken(sim, world, srv, database, agent):
    """The only guest of the name belongs to another record (synced with its node and vmid):
    the unbound record does not take it, whatever the number of polls."""
    name = unique("mail")
    vmid = billing_creates(sim, name)
    owner = sync(world, {"action": "create", "vps": {**seed000(world.bob, name)["vps"],
                                                      "node": "pve1", "vmid": vmid}})
    assert owner.status_code == 201, owner.text
    oid = owner.json()["vps"]["id"]
    sid = synced(world, name)
    ag = agent(sections=DEBUG)
    left_unbound(ag, database, sid, f"the guest named '{name}' (pve1/{vmid}) is bound to VPS "
                 f"{oid} already: bind the record with node and vmid in a sync update")
    assert record(database, oid)["vmid"] == str(vmid)
    err(call(srv, "POST", f"/api/server/{sid}/start", world.tok["alice"]), 409,
        f"(the guest named '{name}' is linked to another server): ask support")


def test_two_records_of_one_name_and_one_guest_are_both_left_alone(sim, world, srv, database,
                                                                   agent):
    """Two customers' servers share a name and one guest bears it: it may be either's, so
    neither takes it."""
    name = unique("app")
    vmid = billing_creates(sim, name)
    first, second = synced(world, name), synced(world, name, user=world.bob)
    ag = agent(sections=DEBUG)
    expected = (f"2 servers are named '{name}' (VPS {first}, VPS {second}) and one guest "
                f"(pve1/{vmid}) waits: bind each with node and vmid in a sync update")
    left_unbound(ag, database, first, expected)
    left_unbound(ag, database, second, expected)
    bob = access_token(srv, world.bob)
    err(call(srv, "POST", f"/api/server/{second}/start", bob), 409,
        f"(more than one server is named '{name}')")
