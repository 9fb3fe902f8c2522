"""The seeds' own flows, end to end (issue 10), against a real Apache with mod_ospab and the
Proxmox simulator, on SQLite and MariaDB: what a client written against seed 000-003 does,
with the seeds' exact bodies.
"""

import json
import time

import pytest

import harness
from conftest import Api, _started, access_token, create_user
from test_server import (NODE, UPID, WAIT, WORKERS, call, ok, pve_conf, sim,  # noqa: F401
                         _sim_clean, wait_guest, wait_idle)


@pytest.fixture(scope="module")
def srv(database, sim):
    a = harness.Apache(database, extra_conf=pve_conf(sim) + WORKERS + ["OspabServerQuota 0"])
    _started(a)
    yield a
    a.stop()


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
