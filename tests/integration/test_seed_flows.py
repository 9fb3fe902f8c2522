"""The seeds' own flows, end to end (issue 10), against a real Apache with mod_ospab and the
Proxmox simulator, on SQLite and MariaDB: what a client written against seed 000-003 does,
with the seeds' exact bodies.
"""

import json
import time

import pytest

import harness
from conftest import Api, access_token, create_user, served
from test_server import (NODE, UPID, WAIT, WORKERS, call, ok, pve_conf, sim,  # noqa: F401
                         _sim_clean, wait_guest, wait_idle)


@pytest.fixture(scope="module")
def srv(database, sim):
    yield from served(database, pve_conf(sim) + WORKERS + ["OspabServerQuota 0"])


class World:
    def __init__(self, srv):
        self.api = Api(srv)
        self.uid = create_user(self.api)["id"]
        self.tok = {"alice": access_token(srv, self.uid)}


@pytest.fixture(scope="module")
def world(srv):
    return World(srv)


def seed000_create(api, user_id, **overrides):
    """Seed 000's createVPSonPanel body, verbatim (ram already converted GB -> MB)."""
    body = {"action": "create", "vps": {
        "user_id": user_id, "name": "web-server-01", "cpu": 4, "ram": 8 * 1024, "disk": 100,
        "os": "Ubuntu 22.04 LTS", "status": "creating", "hypervisor": "proxmox"}}
    body["vps"].update(overrides)
    r = api.post("/api/vps/sync", json=body)
    assert r.status_code == 201, r.text
    return r.json()["vps"]


def test_every_list_item_has_os_and_tariff_objects(srv, world):
    """Seed 003's client reads server.os.name and server.tariff.name on every item, also
    for a record seed 000's billing site synced (no os_id, no tariff_id)."""
    v = seed000_create(world.api, world.uid)
    servers = ok(call(srv, "GET", "/api/server", world.tok["alice"]))
    item = next(s for s in servers if s["id"] == v["id"])
    assert item["os"] == {"id": None, "name": "Ubuntu 22.04 LTS", "type": "linux"}, item
    assert item["tariff"]["name"] == "4 vCPU / 8192 MB / 100 GB", item
    for s in servers:
        assert isinstance(s["os"]["name"], str) and isinstance(s["tariff"]["name"], str), s
    detail = ok(call(srv, "GET", f"/api/server/{v['id']}", world.tok["alice"]))
    assert detail["os"]["name"] == "Ubuntu 22.04 LTS"
    # synced with the sizes of a tariff: that tariff
    w = seed000_create(world.api, world.uid, name="small-1", cpu=1, ram=1024, disk=10)
    item = ok(call(srv, "GET", f"/api/server/{w['id']}", world.tok["alice"]))
    assert item["tariff"] == {"id": 1, "name": "Старт", "price": 150}, item


def test_task_ids_are_findable(srv, sim, world):
    """The taskId create and every action answer is in GET /api/server/{id}/tasks, also
    for two-step operations whose row follows a second Proxmox task (create, restart)."""
    body = ok(call(srv, "POST", "/api/server/create", world.tok["alice"],
                   {"osId": 1, "tariffId": 1}), 201)
    sid = body["id"]
    wait_idle(srv, world, sid)
    wait_guest(sim, body["proxmoxId"], "running")
    tasks = ok(call(srv, "GET", f"/api/server/{sid}/tasks", world.tok["alice"]))
    assert [t["upid"] for t in tasks if t["action"] == "create"] == [body["taskId"]], tasks
    r = ok(call(srv, "POST", f"/api/server/{sid}/restart", world.tok["alice"]))
    tasks = wait_idle(srv, world, sid)
    mine = [t for t in tasks if t["upid"] == r["taskId"]]
    assert len(mine) == 1 and mine[0]["action"] == "restart" and mine[0]["status"] == "ok", tasks


def test_rollback_brings_a_running_server_back_running(srv, sim, world):
    """Seed 003: a rollback "restores the server to its previous state". Proxmox stops
    the container for it; the panel starts it again when it was running before (and
    leaves a stopped one stopped)."""
    body = ok(call(srv, "POST", "/api/server/create", world.tok["alice"],
                   {"osId": 1, "tariffId": 1}), 201)
    sid, vmid = body["id"], body["proxmoxId"]
    wait_idle(srv, world, sid)
    wait_guest(sim, vmid, "running")
    ok(call(srv, "POST", f"/api/server/{sid}/snapshots", world.tok["alice"],
            {"snapname": "backup-2024-01-01", "description": "Before major update"}))
    wait_idle(srv, world, sid)
    r = ok(call(srv, "POST", f"/api/server/{sid}/snapshots/rollback", world.tok["alice"],
                {"snapname": "backup-2024-01-01"}))
    tasks = wait_idle(srv, world, sid)
    t = next(t for t in tasks if t["upid"] == r["taskId"])
    assert (t["action"], t["status"]) == ("rollback", "ok"), tasks
    wait_guest(sim, vmid, "running")
    assert ok(call(srv, "GET", f"/api/server/{sid}", world.tok["alice"]))["status"] == "running"
    # stopped before: stays stopped
    ok(call(srv, "POST", f"/api/server/{sid}/stop", world.tok["alice"]))
    wait_idle(srv, world, sid)
    ok(call(srv, "POST", f"/api/server/{sid}/snapshots/rollback", world.tok["alice"],
            {"snapname": "backup-2024-01-01"}))
    wait_idle(srv, world, sid)
    time.sleep(0.5)
    assert sim.guest_info(vmid)["status"] == "stopped"
    assert ok(call(srv, "GET", f"/api/server/{sid}", world.tok["alice"]))["status"] == "stopped"


def test_health_tells_the_same_from_every_child(start_apache, database, allow_log):
    """Issue 10 item 9: /api/health reports how Proxmox last answered any child, not the
    child that happens to take the health check (each used to report its own)."""
    from conftest import placeholder_proxmox_conf, new_vps
    allow_log(r"OSPAB00202: GET /api/server/\d+/status failed: Proxmox status: cannot connect")
    a = start_apache(extra_conf=placeholder_proxmox_conf() + [
        "StartServers 4", "MinSpareThreads 64", "MaxSpareThreads 64"])
    api = Api(a)
    uid = create_user(api)["id"]
    v = api.vps("create", {**new_vps(), "user_id": uid, "node": "pve", "vmid": 4242})
    sid = v.json()["vps"]["id"]
    seen = {ok(call(a, "GET", "/api/health", None))["proxmox"]["status"] for _ in range(20)}
    assert seen == {"unknown"}, seen
    r = call(a, "GET", f"/api/server/{sid}/status", access_token(a, uid))
    assert r.status_code == 502, r.text
    for _ in range(40):
        r = call(a, "GET", "/api/health", None)
        h = r.json()
        assert h["proxmox"]["status"] == "unreachable", h
        assert h["proxmox"]["calls"] >= 1, h
    assert "checkedSecondsAgo" in h["proxmox"]


# --------------------------------------------- the billing site's changes reach the guest --

def made_by_panel(srv, sim, world):
    body = ok(call(srv, "POST", "/api/server/create", world.tok["alice"],
                   {"osId": 1, "tariffId": 1}), 201)
    wait_idle(srv, world, body["id"])
    wait_guest(sim, body["proxmoxId"], "running")
    return body["id"], body["proxmoxId"]


def made_elsewhere(sim, vmid):
    """A container the billing site made on Proxmox itself."""
    upid = sim.data("POST", f"/nodes/{NODE}/lxc", {
        "vmid": vmid, "ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
        "rootfs": "local-lvm:8"})
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    return vmid


def sync(api, action, vps):
    return api.post("/api/vps/sync", json={"action": action, "vps": vps})


def test_sync_update_of_sizes_resizes_the_guest(srv, sim, world, database):
    sid, vmid = made_by_panel(srv, sim, world)
    r = sync(world.api, "update", {"id": sid, "cpu": 2, "ram": 2048, "disk": 15})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["vps"]["cpu"] == 2 and body["vps"]["disk"] == 15, body
    assert body["guest"]["action"] == "resize" and UPID.match(body["guest"]["taskId"]), body
    wait_idle(srv, world, sid)
    conf = sim.guest_info(vmid)["conf"]
    assert conf["cores"] == 2 and conf["memory"] == 2048, conf
    assert conf["rootfs"].endswith(",size=15G"), conf
    # the disk only grows: refused, nothing written, nothing sent to Proxmox
    r = sync(world.api, "update", {"id": sid, "disk": 12, "cpu": 4})
    assert r.status_code == 422 and r.json()["fields"]["disk"].startswith("can only grow"), r.text
    row = database.query("SELECT cpu, disk FROM vps WHERE id = ?", [sid])[0]
    assert row == {"cpu": "2", "disk": "15"}, row
    assert sim.guest_info(vmid)["conf"]["cores"] == 2
    # a change that does not touch the sizes reaches nobody
    r = sync(world.api, "update", {"id": sid, "name": "renamed-by-billing"})
    assert r.status_code == 200 and "guest" not in r.json(), r.text


def test_sync_delete_destroys_the_panels_own_guest(srv, sim, world, database):
    sid, vmid = made_by_panel(srv, sim, world)
    r = sync(world.api, "delete", {"id": sid})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["guest"]["action"] == "destroy" and ":vzdestroy:" in body["guest"]["taskId"], body
    assert body["vps"]["id"] == sid and body["vps"]["status"] == "deleting", body
    deadline = time.monotonic() + WAIT
    while database.count("SELECT COUNT(*) FROM vps WHERE id = ?", [sid]):
        assert time.monotonic() < deadline, "the record stayed"
        call(srv, "GET", f"/api/server/{sid}/tasks", world.tok["alice"])   # follows up
        time.sleep(0.1)
    with pytest.raises(RuntimeError):
        sim.guest_info(vmid)


def test_sync_delete_keeps_a_guest_when_asked_or_not_the_panels(srv, sim, world, database):
    sid, vmid = made_by_panel(srv, sim, world)
    r = sync(world.api, "delete", {"id": sid, "keep_guest": True})
    assert r.status_code == 200 and r.json()["guest"]["action"] == "kept", r.text
    assert database.count("SELECT COUNT(*) FROM vps WHERE id = ?", [sid]) == 0
    assert sim.guest_info(vmid)["status"] == "running"
    # a guest the billing site made itself and synced with its node and vmid
    other = made_elsewhere(sim, 8000 + vmid % 1000)
    v = sync(world.api, "create", {**seed000_body(world.uid), "node": NODE, "vmid": other}).json()
    r = sync(world.api, "delete", {"id": v["vps"]["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["guest"] == {"action": "none", "reason": "the panel did not create this "
                                 "guest: it stays on Proxmox"}, r.text
    assert sim.guest_info(other)["vmid"] == other
    r = sync(world.api, "delete", {"id": 1, "keep_guest": "yes"})
    assert r.status_code == 400 and "keep_guest" in r.json()["fields"], r.text


def seed000_body(user_id):
    return {"user_id": user_id, "name": "web-server-01", "cpu": 4, "ram": 8 * 1024,
            "disk": 100, "os": "Ubuntu 22.04 LTS", "status": "creating", "hypervisor": "proxmox"}
