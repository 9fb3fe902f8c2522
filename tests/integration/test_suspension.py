"""Issue 13 item 4, "Suspension that bites": when the billing site syncs status "suspended"
the guest is stopped on Proxmox and the customer's power, password, resize, snapshot,
console and delete routes answer 403 until it is unsuspended; unsuspending restores the
state the server had before (a running one is started again). The record wins over the
guest: a task that ends meanwhile does not lift the suspension, and the agent stops a
suspended server's guest that someone started behind the panel's back. Audited, with
server.status events. A real Apache with mod_ospab, the real agent and the Proxmox
simulator, each test on SQLite and MariaDB (docs/operations.md, "Suspension").
"""

import json
import re

import pytest

from test_agent import (TIME_SCALE, agent, agent_port, make_guest, ours, sim, srv,  # noqa: F401
                        vps_status, wait_for, world)
from test_server import UPID, call, err, ok, wait_guest, wait_idle

SUSPENDED = "this server is suspended"

# every customer route that changes or opens the server: (method, path, body)
REFUSED = [
    ("POST", "/api/server/{id}/start", None),
    ("POST", "/api/server/{id}/stop", None),
    ("POST", "/api/server/{id}/restart", None),
    ("POST", "/api/vps/{id}/start", None),
    ("POST", "/api/vps/{id}/stop", None),
    ("POST", "/api/vps/{id}/restart", None),
    ("POST", "/api/vps/{id}/reboot", None),
    ("POST", "/api/server/{id}/password", None),
    ("PUT", "/api/server/{id}/resize", {"cores": 2}),
    ("GET", "/api/server/{id}/snapshots", None),
    ("POST", "/api/server/{id}/snapshots", {"snapname": "before"}),
    ("DELETE", "/api/server/{id}/snapshots", {"snapname": "before"}),
    ("POST", "/api/server/{id}/snapshots/rollback", {"snapname": "before"}),
    ("POST", "/api/server/console", {"serverId": "{id}"}),
    ("DELETE", "/api/server/{id}", None),
]


def sync_status(world, sid, status):
    r = world.api.post("/api/vps/sync", json={"action": "update",
                                              "vps": {"id": sid, "status": status}})
    assert r.status_code == 200, r.text
    return r.json()


def audit(database, sid, action):
    rows = database.query("SELECT actor_type, details FROM audit_log WHERE target_type = 'vps' "
                          "AND target_id = ? AND action = ? ORDER BY id", [str(sid), action])
    return [(r["actor_type"], json.loads(r["details"]) if r["details"] else None)
            for r in rows]


def status_events(database, sid):
    out = []
    for r in database.query("SELECT payload FROM webhook_outbox WHERE event = 'server.status' "
                            "ORDER BY id"):
        data = json.loads(r["payload"])["data"]
        if data["serverId"] == sid:
            out.append((data["previous"], data["status"]))
    return out


def refused_everywhere(srv, world, sid):
    """Every route of REFUSED answers 403 with the suspension's words to the owner; the
    read-only routes still answer, with the status "suspended"."""
    for method, path, body in REFUSED:
        if body and body.get("serverId") == "{id}":
            body = {"serverId": sid}
        r = call(srv, method, path.replace("{id}", str(sid)), world.tok["alice"], body)
        err(r, 403, SUSPENDED)
    detail = ok(call(srv, "GET", f"/api/server/{sid}", world.tok["alice"]))
    assert detail["status"] == "suspended", detail
    listed = ok(call(srv, "GET", "/api/vps", world.tok["alice"]))
    assert [v["status"] for v in listed if v["id"] == sid] == ["suspended"], listed
    ok(call(srv, "GET", f"/api/server/{sid}/tasks", world.tok["alice"]))


def test_billing_suspends_a_running_server_and_unsuspends_it(srv, sim, world, database):
    """The seed flow: billing syncs "suspended" -> the guest is stopped by a task of its own
    and stays stopped, the customer is refused everywhere (another customer still gets
    404), an admin may not start it (409); billing syncs "running" -> the record is
    running again and so is the guest, the customer's routes work again."""
    vmid = make_guest(sim)
    sid = ours(world, vmid)
    body = sync_status(world, sid, "suspended")
    assert body["vps"]["status"] == "suspended", body
    assert body["guest"]["action"] == "stop" and UPID.match(body["guest"]["taskId"]), body
    wait_guest(sim, vmid, "stopped")
    tasks = wait_idle(srv, world, sid)
    assert tasks[0]["action"] == "stop" and tasks[0]["status"] == "ok", tasks
    # the stop's outcome did not turn the record into "stopped"
    assert vps_status(database, sid) == "suspended"
    refused_everywhere(srv, world, sid)
    err(call(srv, "POST", f"/api/server/{sid}/start", world.tok["bob"]), 404)
    err(call(srv, "POST", f"/api/server/{sid}/start", world.tok["admin"]), 409, SUSPENDED)
    assert sim.guest_info(vmid)["status"] == "stopped"
    assert audit(database, sid, "vps.suspend") == [("sync", {"before": "running"})]
    # suspending again changes nothing and starts nothing
    again = sync_status(world, sid, "suspended")
    assert "guest" not in again and again["vps"]["status"] == "suspended", again
    assert len(audit(database, sid, "vps.suspend")) == 1

    body = sync_status(world, sid, "running")
    assert body["vps"]["status"] == "running", body
    assert body["guest"]["action"] == "start" and UPID.match(body["guest"]["taskId"]), body
    wait_guest(sim, vmid, "running")
    wait_idle(srv, world, sid)
    assert vps_status(database, sid) == "running"
    assert audit(database, sid, "vps.unsuspend") == [("sync", {"restored": "running"})]
    assert status_events(database, sid)[-2:] == [("running", "suspended"),
                                                ("suspended", "running")]
    # the customer manages it again
    r = ok(call(srv, "POST", f"/api/server/{sid}/stop", world.tok["alice"]))
    assert r["action"] == "stop", r
    wait_guest(sim, vmid, "stopped")


def test_unsuspending_restores_a_stopped_server_stopped(srv, sim, world, database):
    """A server that was stopped when it was suspended comes back stopped, whatever status
    the unsuspending sync names; its guest is not touched either way."""
    vmid = make_guest(sim, running=False)
    sid = ours(world, vmid, status="stopped")
    body = sync_status(world, sid, "suspended")
    assert body["guest"] == {"action": "none", "guest": "stopped"}, body
    body = sync_status(world, sid, "running")
    assert body["vps"]["status"] == "stopped", body
    assert body["guest"] == {"action": "none"}, body
    assert sim.guest_info(vmid)["status"] == "stopped"
    assert audit(database, sid, "vps.unsuspend") == [("sync", {"restored": "stopped"})]
    # other fields of the same update are applied as usual
    r = world.api.post("/api/vps/sync", json={"action": "update", "vps": {
        "id": sid, "status": "suspended", "name": f"renamed-{vmid}"}})
    assert r.status_code == 200 and r.json()["vps"]["name"] == f"renamed-{vmid}", r.text
    assert r.json()["vps"]["status"] == "suspended", r.text


def test_a_start_that_ends_during_the_suspension_does_not_lift_it(srv, sim, world, database,
                                                                  agent):
    """The customer's start is still running when billing suspends: the guest cannot be
    stopped at once (one operation per server), the answer says so, the start's outcome
    leaves the record suspended, and the agent's next poll stops the guest."""
    vmid = make_guest(sim, running=False)
    sid = ours(world, vmid, status="stopped")
    sim.configure(time_scale=1.0)               # vzstart takes 1.5 s
    try:
        start = ok(call(srv, "POST", f"/api/server/{sid}/start", world.tok["alice"]))
        body = sync_status(world, sid, "suspended")
    finally:
        sim.configure(time_scale=TIME_SCALE)
    assert body["guest"]["action"] == "stop" and body["guest"]["taskId"] is None, body
    assert re.search(r"operation 'start' is still running", body["guest"]["error"]), body
    ag = agent()
    wait_guest(sim, vmid, "running")
    # the agent stops it (after the start's own task finished)
    wait_guest(sim, vmid, "stopped", timeout=30)
    wait_idle(srv, world, sid)
    assert vps_status(database, sid) == "suspended"
    tasks = ok(call(srv, "GET", f"/api/server/{sid}/tasks", world.tok["alice"]))
    assert [t["action"] for t in tasks][:2] == ["stop", "start"], tasks
    assert tasks[1]["upid"] == start["taskId"], tasks
    wait_for(lambda: "suspension: server %d" % sid in ag.log_text(), what="the agent's line")


def test_the_agent_stops_a_suspended_guest_started_behind_its_back(srv, sim, world, database,
                                                                   agent):
    """Someone starts the guest of a suspended server on Proxmox itself: the agent stops it
    again within a poll or two, once, and the record stays suspended (no drift to
    running)."""
    vmid = make_guest(sim)
    sid = ours(world, vmid)
    sync_status(world, sid, "suspended")
    wait_guest(sim, vmid, "stopped")
    wait_idle(srv, world, sid)
    ag = agent()
    upid = sim.data("POST", f"/nodes/pve1/lxc/{vmid}/status/start")
    sim.wait_task(upid)
    wait_guest(sim, vmid, "stopped", timeout=30)
    wait_idle(srv, world, sid)
    assert vps_status(database, sid) == "suspended"
    assert ("suspended", "running") not in status_events(database, sid)
    assert ag.log_text().count("suspension: server %d " % sid) == 1, ag.log_tail()


def test_a_server_synced_suspended_from_the_start(srv, sim, world, database, agent):
    """A record created as "suspended" (no state before it): the agent stops its running
    guest; unsuspending brings it back running."""
    vmid = make_guest(sim)
    v = world.api.create_vps(name=f"srv-{vmid}", node="pve1", vmid=vmid, kind="lxc",
                             status="suspended", user_id=world.alice)
    sid = v["id"]
    agent()
    wait_guest(sim, vmid, "stopped", timeout=30)
    refused_everywhere(srv, world, sid)
    wait_idle(srv, world, sid)
    body = sync_status(world, sid, "stopped")
    assert body["vps"]["status"] == "running" and body["guest"]["action"] == "start", body
    wait_guest(sim, vmid, "running")


# ------------------------------------------------------------------ the admin API --

def admin_call(srv, world, method, path, body=None, raw=None):
    return call(srv, method, path, world.tok["admin"], body, raw)


def test_an_admin_suspends_with_a_reason_and_unsuspends(srv, sim, world, database):
    """POST /api/admin/servers/{id}/suspend and /unsuspend: the same suspension as the
    billing site's (guest stopped, customer refused), the reason in the audit row, the
    admin as its actor; twice is a 409; a customer's token is 403."""
    vmid = make_guest(sim)
    sid = ours(world, vmid)
    err(call(srv, "POST", f"/api/admin/servers/{sid}/suspend", world.tok["alice"]), 403,
        "admin role required")
    body = ok(admin_call(srv, world, "POST", f"/api/admin/servers/{sid}/suspend",
                         {"reason": "abuse report 4711"}))
    assert body["message"] == "server suspended" and body["server"]["status"] == "suspended"
    assert body["guest"]["action"] == "stop" and UPID.match(body["guest"]["taskId"]), body
    wait_guest(sim, vmid, "stopped")
    wait_idle(srv, world, sid)
    err(call(srv, "POST", f"/api/server/{sid}/start", world.tok["alice"]), 403, SUSPENDED)
    err(admin_call(srv, world, "POST", f"/api/admin/servers/{sid}/suspend"), 409,
        "suspended already")
    rows = audit(database, sid, "vps.suspend")
    assert rows == [("admin", {"before": "running", "reason": "abuse report 4711"})], rows
    listed = ok(admin_call(srv, world, "GET", f"/api/admin/servers?status=suspended"))
    assert sid in [s["id"] for s in listed["servers"]], listed

    body = ok(admin_call(srv, world, "POST", f"/api/admin/servers/{sid}/unsuspend"))
    assert body["server"]["status"] == "running" and body["guest"]["action"] == "start", body
    wait_guest(sim, vmid, "running")
    wait_idle(srv, world, sid)
    err(admin_call(srv, world, "POST", f"/api/admin/servers/{sid}/unsuspend"), 409,
        "not suspended")
    assert audit(database, sid, "vps.unsuspend") == [("admin", {"restored": "running"})]
    # bad bodies: nothing changes
    for raw, text in ((b'{"reason": 5}', "reason"), (b'{"why": "x"}', "why"),
                      (b'[1]', "JSON object")):
        err(admin_call(srv, world, "POST", f"/api/admin/servers/{sid}/suspend", raw=raw),
            400, text)
    assert vps_status(database, sid) == "running"
    err(admin_call(srv, world, "POST", "/api/admin/servers/987654321/suspend"), 404)


def test_admin_server_list_filters_and_pages(srv, sim, world):
    """GET /api/admin/servers: every server as the billing site sees it, filtered by owner,
    node and status, in keyset pages by id; unknown parameters are named."""
    mine = [ours(world, make_guest(sim, running=False), status="stopped", user=world.bob)
            for _ in range(3)]
    page = ok(admin_call(srv, world, "GET", f"/api/admin/servers?user={world.bob}&limit=2"))
    assert [s["id"] for s in page["servers"]] == mine[:2] and page["next"] == mine[1], page
    assert all(s["user_id"] == world.bob and s["node"] == "pve1" for s in page["servers"])
    rest = ok(admin_call(srv, world, "GET",
                         f"/api/admin/servers?user={world.bob}&limit=2&after={page['next']}"))
    assert [s["id"] for s in rest["servers"]] == mine[2:] and rest["next"] is None, rest
    none = ok(admin_call(srv, world, "GET", f"/api/admin/servers?user={world.bob}&node=pve2"))
    assert none["servers"] == [], none
    err(admin_call(srv, world, "GET", "/api/admin/servers?owner=1"), 400, "owner")
    err(admin_call(srv, world, "GET", "/api/admin/servers?status=asleep"), 400, "status")


def test_an_admin_moves_a_server_to_another_user(srv, sim, world, database):
    """POST /api/admin/servers/{id}/owner: the record is bob's now (alice no longer sees
    it), with the sync API's server.owner event and the admin's audit row."""
    sid = ours(world, make_guest(sim, running=False), status="stopped")
    body = ok(admin_call(srv, world, "POST", f"/api/admin/servers/{sid}/owner",
                         {"userId": world.bob}))
    assert body["server"]["user_id"] == world.bob, body
    err(call(srv, "GET", f"/api/server/{sid}", world.tok["alice"]), 404)
    ok(call(srv, "GET", f"/api/server/{sid}", world.tok["bob"]))
    rows = database.query("SELECT actor_type FROM audit_log WHERE action = 'vps.update' "
                          "AND target_id = ?", [str(sid)])
    assert rows[-1]["actor_type"] == "admin", rows
    err(admin_call(srv, world, "POST", f"/api/admin/servers/{sid}/owner",
                   {"userId": 987654321}), 422, "userId")
    err(admin_call(srv, world, "POST", f"/api/admin/servers/{sid}/owner", {"user": 1}), 400,
        "user")
