"""What a customer may order and resize (security fix M5), against a real Apache with
mod_ospab and the Proxmox simulator, on SQLite and MariaDB.

* OspabServerQuota: self-service create stops at the customer's N servers (403), counted
  inside the create's transaction, so parallel creates cannot all pass; admins unlimited.
* OspabResize tariff (the default): sizes within the server's own tariff; more means moving
  to another enabled tariff ({"tariffId": N}), which the billing site hears of as a
  server.tariff webhook; a server without a tariff cannot be resized by its customer;
  OspabResize off: customers cannot resize at all. Admins may set any size.
"""

import json
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest

import harness
from conftest import Api, access_token, create_user, new_vps, sql_exec, served
from test_server import (NODE, WORKERS, call, err, ok, pve_conf, sim, _sim_clean,  # noqa: F401
                         sim_calls, wait_guest, wait_idle)

QUOTA = 2


@pytest.fixture(scope="module")
def srv(database, sim):
    """Customer self-service with the default resize policy and a quota of QUOTA."""
    yield from served(database, pve_conf(sim) + WORKERS + [f"OspabServerQuota {QUOTA}"])


class World:
    def __init__(self, srv):
        self.api = Api(srv)
        self.secrets = []
        self.tok = {"admin": access_token(srv, 1, role="admin")}

    def customer(self, srv, name):
        uid = create_user(self.api)["id"]
        self.tok[name] = access_token(srv, uid)
        return uid


@pytest.fixture(scope="module")
def world(srv):
    return World(srv)


def order(srv, world, who, tariff_id=1):
    return call(srv, "POST", "/api/server/create", world.tok[who],
                {"osId": 1, "tariffId": tariff_id})


def running(srv, sim, world, who, tariff_id=1):
    body = ok(order(srv, world, who, tariff_id), 201)
    wait_idle(srv, world, body["id"], who=who)
    wait_guest(sim, body["proxmoxId"], "running")
    return body


def resize(srv, world, who, sid, body):
    return call(srv, "PUT", f"/api/server/{sid}/resize", world.tok[who], body)


def vps_row(database, sid):
    return database.query("SELECT cpu, ram, disk, tariff_id FROM vps WHERE id = ?", [sid])[0]


# ---------------------------------------------------------------------- quota --

def test_quota_stops_self_service_creates(srv, sim, world, database):
    uid = world.customer(srv, "carol")
    for _ in range(QUOTA):
        ok(order(srv, world, "carol"), 201)
    requests_before = sum(sim.state(guests=0, tasks=0)["requests"].values())
    rows = database.count("SELECT COUNT(*) FROM vps WHERE user_id = ?", [uid])
    e = err(order(srv, world, "carol"), 403, f"you have {QUOTA} servers, the most you can "
            f"order here ({QUOTA})")
    assert "rootPassword" not in e
    assert database.count("SELECT COUNT(*) FROM vps WHERE user_id = ?", [uid]) == rows
    assert sum(sim.state(guests=0, tasks=0)["requests"].values()) == requests_before, \
        "Proxmox was asked"
    # an admin creating for themselves is not limited by it
    before = database.count("SELECT COUNT(*) FROM vps WHERE user_id = 1")
    for _ in range(QUOTA + 1):
        ok(order(srv, world, "admin"), 201)
    assert database.count("SELECT COUNT(*) FROM vps WHERE user_id = 1") == before + QUOTA + 1


def test_quota_holds_under_parallel_creates(srv, sim, world, database):
    uid = world.customer(srv, "dave")
    with ThreadPoolExecutor(8) as ex:
        codes = sorted(r.status_code for r in ex.map(lambda _: order(srv, world, "dave"),
                                                      range(8)))
    assert codes == [201] * QUOTA + [403] * (8 - QUOTA), codes
    assert database.count("SELECT COUNT(*) FROM vps WHERE user_id = ?", [uid]) == QUOTA


# --------------------------------------------------------------------- resize --

def test_resize_within_the_tariff(srv, sim, world, database):
    world.customer(srv, "erin")
    s = running(srv, sim, world, "erin", tariff_id=2)           # Базовый: 2 / 2048 / 20
    sid = s["id"]
    body = ok(resize(srv, world, "erin", sid, {"cores": 1, "memory": 1024}))
    assert body["data"]["cores"] == 1 and body["data"]["memory"] == 1024, body
    ok(resize(srv, world, "erin", sid, {"cores": 2, "memory": 2048}))
    calls = sim_calls(sim, s["proxmoxId"])
    r = resize(srv, world, "erin", sid, {"cores": 64, "memory": 262144, "disk": 2048})
    e = err(r, 403, "at most")
    assert e["fields"] == {
        "cores": "at most 2 on tariff 'Базовый': choose a larger tariff (tariffId)",
        "memory": "at most 2048 MB on tariff 'Базовый': choose a larger tariff (tariffId)",
        "disk": "at most 20 GB on tariff 'Базовый': choose a larger tariff (tariffId)"}, e
    assert sim_calls(sim, s["proxmoxId"]) == calls, "a refused resize reached Proxmox"
    assert vps_row(database, sid) == {"cpu": "2", "ram": "2048", "disk": "20",
                                      "tariff_id": "2"}


def test_resize_by_moving_to_another_tariff(srv, sim, world, database):
    world.customer(srv, "frank")
    s = running(srv, sim, world, "frank", tariff_id=1)          # Старт: 1 / 1024 / 10
    sid, vmid = s["id"], s["proxmoxId"]
    webhooks = database.count("SELECT COUNT(*) FROM webhook_outbox WHERE event = ?",
                              ["server.tariff"])
    body = ok(resize(srv, world, "frank", sid, {"tariffId": 3}))   # Про: 4 / 4096 / 40
    assert body["data"]["tariffId"] == 3 and body["data"]["cores"] == 4, body
    assert body["data"]["memory"] == 4096 and body["data"]["disk"] == 40, body
    wait_idle(srv, world, sid, who="frank")
    conf = sim.guest_info(vmid)["conf"]
    assert conf["cores"] == 4 and conf["memory"] == 4096, conf
    assert conf["rootfs"].endswith(",size=40G"), conf
    assert vps_row(database, sid) == {"cpu": "4", "ram": "4096", "disk": "40", "tariff_id": "3"}
    rows = database.query("SELECT payload FROM webhook_outbox WHERE event = ? ORDER BY id",
                          ["server.tariff"])
    assert len(rows) == webhooks + 1
    data = json.loads(rows[-1]["payload"])["data"]
    assert data == {"serverId": sid, "userId": data["userId"], "tariffId": 3,
                    "previousTariffId": 1, "cores": 4, "memory": 4096, "disk": 40}, data
    # within the new tariff now
    ok(resize(srv, world, "frank", sid, {"cores": 3}))
    # back to a tariff with a smaller disk: disks only grow
    e = err(resize(srv, world, "frank", sid, {"tariffId": 2}), 422, "only grow")
    assert set(e["fields"]) == {"tariffId"}, e
    # a tariff that is not offered (disabled) or does not exist
    sql_exec(database, "INSERT INTO tariffs (id, name, price, cores, memory, disk, enabled, "
             "created_at, updated_at) VALUES (40, 'Old', 1, 8, 8192, 80, 0, "
             "'2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000')")
    for t in (40, 999):
        e = err(resize(srv, world, "frank", sid, {"tariffId": t}), 422, "not available")
        assert e["fields"] == {"tariffId": f"tariff {t} does not exist or is not available"}, e
    err(resize(srv, world, "frank", sid, {"tariffId": 3, "cores": 2}), 400, "not both")
    err(resize(srv, world, "frank", sid, {"tariffId": "3"}), 400, "tariffId")
    assert vps_row(database, sid)["tariff_id"] == "3"


def test_admins_resize_freely(srv, sim, world, database):
    world.customer(srv, "gina")
    s = running(srv, sim, world, "gina", tariff_id=1)
    body = ok(resize(srv, world, "admin", s["id"], {"cores": 8, "memory": 16384}))
    assert body["data"]["cores"] == 8, body
    assert sim.guest_info(s["proxmoxId"])["conf"]["cores"] == 8


def test_a_server_without_a_tariff(srv, sim, world, database):
    """A record the billing site synced with sizes but no tariff: its customer cannot
    resize it (the billing site owns its sizes), except by choosing a tariff."""
    uid = world.customer(srv, "hank")
    vmid = 5000 + secrets.randbelow(1000)
    upid = sim.data("POST", f"/nodes/{NODE}/lxc", {
        "vmid": vmid, "ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
        "rootfs": "local-lvm:5", "cores": 1, "memory": 512})
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    v = world.api.vps("create", {**new_vps(), "user_id": uid, "node": NODE, "vmid": vmid,
                                 "cpu": 1, "ram": 512, "disk": 5, "status": "running"})
    sid = v.json()["vps"]["id"]
    err(resize(srv, world, "hank", sid, {"cores": 2}), 403, "has no tariff")
    body = ok(resize(srv, world, "hank", sid, {"tariffId": 1}))
    assert body["data"] == {"cores": 1, "memory": 1024, "disk": 10, "tariffId": 1,
                            "taskId": body["data"]["taskId"]}, body


def test_resize_off(start_apache, sim, world, database):
    a = start_apache(extra_conf=pve_conf(sim) + ["OspabResize off"])
    uid = create_user(Api(a))["id"]
    tok = access_token(a, uid)
    v = Api(a).vps("create", {**new_vps(), "user_id": uid, "node": NODE, "vmid": 6999,
                              "tariff_id": 1})
    sid = v.json()["vps"]["id"]
    r = call(a, "PUT", f"/api/server/{sid}/resize", tok, {"cores": 1})
    err(r, 403, "resizing is not available to customers")
    err(call(a, "PUT", f"/api/server/{sid}/resize", tok, {"tariffId": 2}), 403,
        "resizing is not available")


def test_configtest_names_the_directives(start_apache):
    for bad in ("OspabResize sometimes", "OspabServerQuota -1", "OspabServerQuota lots"):
        a = harness.Apache(None, load_dbd=False, extra_conf=[bad])
        rc, out = a.configtest()
        assert rc != 0 and bad.split()[0] in out, (bad, out)
