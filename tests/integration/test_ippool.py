"""Issue 13 item 3, IP pools: an address is taken in the transaction that makes the server,
written into the guest's net0 (ip=…/gw=…, ip6=…/gw6=…) and its nameserver, shown in the
record, given back on delete after the pool's cooldown, never handed out twice (50 creates
at once); a pool that runs out answers 409 naming it and tells the admins by e-mail. Pools
are made with `ospab-admin pool-add` (the same core code as the admin API's). A real Apache
with mod_ospab and the Proxmox simulator, on SQLite and MariaDB (docs/operations.md).
"""

import json
import time

import pytest

import harness
from conftest import all_at_once
from test_server import (NODE, PVE_ERRORS, call, err, ok, sim, srv, wait_guest, wait_idle,  # noqa: F401
                         world)

_names = [0]


def pool_add(database, check=True, **pool):
    _names[0] += 1
    pool.setdefault("name", f"pool-{_names[0]}")
    pool.setdefault("bridge", "vmbr0")
    try:
        p = harness.admin(database.driver, database.params, "pool-add", json.dumps(pool),
                          check=check)
    finally:
        database.after_admin()      # SQLite: files written as root go back to www-data
    return json.loads(p.stdout)["pool"] if check else p


def pool_list(database):
    try:
        p = harness.admin(database.driver, database.params, "pool-list")
    finally:
        database.after_admin()
    return {x["name"]: x for x in json.loads(p.stdout)["pools"]}


def disable_pools(database):
    from conftest import sql_exec
    sql_exec(database, "UPDATE ip_pools SET enabled = 0;")


@pytest.fixture(autouse=True)
def _no_pools_left_over(database):
    """Each test brings its own pools; those of the test before stop serving."""
    yield
    disable_pools(database)


def create(srv, world, who="alice"):
    return call(srv, "POST", "/api/server/create", world.tok[who], {"osId": 1, "tariffId": 1})


def deleted(srv, world, sid, timeout=30):
    """Deletes the server and waits until its record is gone (the destroy task's end)."""
    ok(call(srv, "DELETE", f"/api/server/{sid}", world.tok["alice"]))
    deadline = time.monotonic() + timeout
    while call(srv, "GET", f"/api/server/{sid}/tasks", world.tok["alice"]).status_code != 404:
        assert time.monotonic() < deadline, f"server {sid} was not removed"
        time.sleep(0.05)


def guest_conf(sim, vmid):
    return sim.data("GET", f"/nodes/{NODE}/lxc/{vmid}/config")


def test_a_new_server_gets_its_addresses_from_the_pools(srv, sim, world, database):
    """IPv4 and IPv6 pools on the node's bridge: the guest is created with both addresses,
    their gateways and the pools' DNS servers; the record and the create's answer show the
    IPv4 address; the pool's usage counts it."""
    v4 = pool_add(database, first="192.0.2.10", last="192.0.2.12", prefix=24,
                  gateway="192.0.2.1", dns="192.0.2.53", node=NODE)
    v6 = pool_add(database, first="2001:db8::100", last="2001:db8::1ff", prefix=64,
                  gateway="2001:db8::1", dns="2001:db8::53")
    assert v4["size"] == 3 and v6["size"] == 256 and v4["family"] == 4, (v4, v6)
    body = ok(create(srv, world), 201)
    world.secrets.append(body["rootPassword"])
    assert body["ipAddress"] == "192.0.2.10", body
    conf = guest_conf(sim, body["proxmoxId"])
    for part in ("ip=192.0.2.10/24", "gw=192.0.2.1", "ip6=2001:db8::100/64",
                 "gw6=2001:db8::1", "bridge=vmbr0"):
        assert part in conf["net0"].split(","), conf
    assert conf["nameserver"] == "192.0.2.53 2001:db8::53", conf
    wait_idle(srv, world, body["id"])
    server = ok(call(srv, "GET", f"/api/server/{body['id']}", world.tok["alice"]))
    assert server["ipAddress"] == "192.0.2.10", server
    usage = pool_list(database)
    assert (usage[v4["name"]]["used"], usage[v4["name"]]["free"]) == (1, 2), usage
    assert usage[v6["name"]]["used"] == 1, usage
    audit = database.query("SELECT actor_type, actor_id FROM audit_log "
                           "WHERE action = 'ippool.create' AND target_id = ?", [str(v4["id"])])
    assert audit == [{"actor_type": "admin", "actor_id": "ospab-admin"}], audit


def test_fifty_creates_at_once_never_share_an_address(srv, sim, world, database):
    """50 customers order at the same moment from a pool of 40 addresses: 40 servers with
    40 different addresses, 10 answers 409 naming the pool, nothing half-made; each admin is
    told once."""
    pool = pool_add(database, first="198.51.100.1", last="198.51.100.40", prefix=24,
                    gateway="198.51.100.254")
    sim.fault(kind="latency", seconds=0.2, path_prefix=f"/nodes/{NODE}/lxc", method="POST")
    try:
        rs = all_at_once(50, lambda _: create(srv, world))
    finally:
        sim.clear_faults()
    made = [r.json() for r in rs if r.status_code == 201]
    refused = [r for r in rs if r.status_code != 201]
    world.secrets.extend(b["rootPassword"] for b in made)
    assert len(made) == 40, [(r.status_code, r.text[:200]) for r in refused]
    for r in refused:
        err(r, 409, f"no free IP address is left in pool '{pool['name']}'")
    addresses = [b["ipAddress"] for b in made]
    assert len(set(addresses)) == 40, addresses
    assert all(a.startswith("198.51.100.") for a in addresses), addresses
    # on Proxmox too: every guest has the address of its record
    for b in made:
        assert f"ip=198.51.100.{b['ipAddress'].rsplit('.', 1)[1]}/24" in \
            guest_conf(sim, b["proxmoxId"])["net0"]
    held = database.query("SELECT vps_id, address FROM ip_addresses WHERE pool_id = ? "
                          "AND vps_id IS NOT NULL", [pool["id"]])
    assert len(held) == 40 and len({h["vps_id"] for h in held}) == 40, held
    # the refused creates left no record behind
    assert database.count("SELECT COUNT(*) FROM vps v WHERE ip_address LIKE '198.51.100.%' "
                          "OR (status = 'creating' AND NOT EXISTS (SELECT 1 FROM "
                          "ip_addresses a WHERE a.vps_id = v.id))") == 40
    mails = database.query("SELECT to_addr, subject FROM email_outbox "
                           "WHERE dedupe_key LIKE ?", [f"ippool-exhausted:{pool['name']}:%"])
    assert mails == [{"to_addr": "admin@ospab.local",
                      "subject": f"IP pool '{pool['name']}' has no free address"}], mails
    for b in made:
        wait_idle(srv, world, b["id"])


def test_a_deleted_servers_address_rests_before_it_is_given_again(srv, sim, world, database):
    """Delete gives the address back; with the pool's cooldown it is not handed out again
    at once (the next server gets the next address, and the pool answers 409 once only the
    resting one is left); with cooldown 0 it is."""
    resting = pool_add(database, first="203.0.113.1", last="203.0.113.2", prefix=24,
                       cooldown=3600)
    a = ok(create(srv, world), 201)
    world.secrets.append(a["rootPassword"])
    assert a["ipAddress"] == "203.0.113.1"
    wait_idle(srv, world, a["id"])
    deleted(srv, world, a["id"])
    usage = pool_list(database)[resting["name"]]
    assert (usage["used"], usage["cooling"], usage["free"]) == (0, 1, 1), usage
    b = ok(create(srv, world), 201)
    world.secrets.append(b["rootPassword"])
    assert b["ipAddress"] == "203.0.113.2", b
    err(create(srv, world), 409, f"pool '{resting['name']}'")
    disable_pools(database)

    quick = pool_add(database, first="203.0.113.100", last="203.0.113.100", prefix=24,
                     cooldown=0)
    c = ok(create(srv, world), 201)
    world.secrets.append(c["rootPassword"])
    assert c["ipAddress"] == "203.0.113.100"
    wait_idle(srv, world, c["id"])
    deleted(srv, world, c["id"])
    d = ok(create(srv, world), 201)
    world.secrets.append(d["rootPassword"])
    assert d["ipAddress"] == "203.0.113.100", (quick, d)
    wait_idle(srv, world, b["id"])
    wait_idle(srv, world, d["id"])


@pytest.mark.allow_log(PVE_ERRORS)
def test_a_create_proxmox_refuses_gives_its_address_back_at_once(srv, sim, world, database):
    """Proxmox refuses the create: the record goes and its address is free again without a
    cooldown (no guest ever had it)."""
    pool = pool_add(database, first="203.0.113.200", last="203.0.113.200", prefix=24)
    sim.fault(kind="status", code=500, message="storage 'local-lvm' is not online",
              path_prefix=f"/nodes/{NODE}/lxc", method="POST")
    try:
        r = create(srv, world)
    finally:
        sim.clear_faults()
    assert r.status_code >= 400, r.text
    usage = pool_list(database)[pool["name"]]
    assert (usage["used"], usage["cooling"], usage["free"]) == (0, 0, 1), usage
    body = ok(create(srv, world), 201)
    world.secrets.append(body["rootPassword"])
    assert body["ipAddress"] == "203.0.113.200"
    wait_idle(srv, world, body["id"])


def test_pools_that_cannot_be(database):
    """Overlapping another pool, a taken name, a range that is not one network: refused, and
    nothing is made."""
    first = pool_add(database, first="192.0.2.100", last="192.0.2.110", prefix=24)
    before = database.count("SELECT COUNT(*) FROM ip_addresses")
    p = pool_add(database, check=False, first="192.0.2.105", last="192.0.2.120", prefix=24)
    assert p.returncode == 2 and "overlaps another IP pool" in p.stderr, p
    p = pool_add(database, check=False, name=first["name"], first="192.0.2.200",
                 last="192.0.2.201", prefix=24)
    assert p.returncode == 2 and "exists already" in p.stderr, p
    p = pool_add(database, check=False, first="192.0.2.200", last="192.0.3.1", prefix=24)
    assert p.returncode == 1 and "last" in p.stderr, p
    p = pool_add(database, check=False, first="10.0.0.0", last="10.1.0.0", prefix=8)
    assert p.returncode == 1 and "at most 65536" in p.stderr, p
    assert database.count("SELECT COUNT(*) FROM ip_addresses") == before


def admin(srv, world, method, path, body=None):
    return call(srv, method, path, world.tok["admin"], body)


def test_pools_through_the_admin_api(srv, sim, world, database):
    """/api/admin/ip-pools: made, listed with its usage, changed (a disabled pool hands out
    nothing: the next server gets DHCP), refused to delete while a server holds one of its
    addresses, deleted once none does; each change audited as the admin; customers 403."""
    err(call(srv, "GET", "/api/admin/ip-pools", world.tok["alice"]), 403, "admin role")
    r = admin(srv, world, "POST", "/api/admin/ip-pools",
              {"name": "api-pool", "bridge": "vmbr0", "first": "192.0.2.50",
               "last": "192.0.2.51", "prefix": 24, "gateway": "192.0.2.1", "cooldown": 0})
    pool = ok(r, 201)["pool"]
    assert pool["size"] == 2 and pool["name"] == "api-pool", pool
    e = err(admin(srv, world, "POST", "/api/admin/ip-pools",
                  {"name": "bad", "bridge": "vmbr0", "first": "192.0.2.60",
                   "last": "192.0.2.59", "prefix": 24, "mask": 1}), 400)
    assert "mask" in e["fields"], e
    a = ok(create(srv, world), 201)
    world.secrets.append(a["rootPassword"])
    assert a["ipAddress"] == "192.0.2.50"
    listed = {p["name"]: p for p in ok(admin(srv, world, "GET", "/api/admin/ip-pools"))["pools"]}
    assert (listed["api-pool"]["used"], listed["api-pool"]["free"]) == (1, 1), listed
    err(admin(srv, world, "DELETE", f"/api/admin/ip-pools/{pool['id']}"), 409,
        "1 address of pool 'api-pool' is held")
    changed = ok(admin(srv, world, "PUT", f"/api/admin/ip-pools/{pool['id']}",
                       {"enabled": False, "dns": "192.0.2.53"}))["pool"]
    assert changed["enabled"] is False and changed["dns"] == "192.0.2.53", changed
    err(admin(srv, world, "PUT", f"/api/admin/ip-pools/{pool['id']}",
              {"gateway": "198.51.100.1"}), 400, "gateway")
    b = ok(create(srv, world), 201)
    world.secrets.append(b["rootPassword"])
    assert b["ipAddress"] is None, b                      # DHCP: no pool serves the bridge
    assert "ip=dhcp" in guest_conf(sim, b["proxmoxId"])["net0"]
    wait_idle(srv, world, a["id"])
    deleted(srv, world, a["id"])
    ok(admin(srv, world, "DELETE", f"/api/admin/ip-pools/{pool['id']}"))
    assert pool["name"] not in pool_list(database)
    assert database.count("SELECT COUNT(*) FROM ip_addresses WHERE pool_id = ?",
                          [pool["id"]]) == 0
    actions = [r["action"] for r in database.query(
        "SELECT action FROM audit_log WHERE target_type = 'ip_pool' AND target_id = ? "
        "AND actor_type = 'admin' ORDER BY id", [str(pool["id"])])]
    assert actions == ["ippool.create", "ippool.update", "ippool.delete"], actions
    wait_idle(srv, world, b["id"])
