"""Issue 13 on Galera: placement and IP pools when creates come through both Apache nodes
(two Galera nodes) at once.

A create locks the chosen node's row and its pools' rows first in its transaction; on one
database the second create waits for the first, on Galera the two commit on different
nodes and the loser of the certification (1213) runs its transaction again, before it has
called Proxmox to make the guest. So the limits hold and no address is handed out twice
however the creates are spread over the nodes.
"""

import threading

from .conftest import SIM_NODE, figure, itc, wait_for
import test_server          # tests/integration: call

MiB = 1024 * 1024
ROOM = 8                    # servers of tariff 1 (1024 MB) the node has room for
POOL = 12                   # addresses of the pool
CREATES = 24                # at once, half through each Apache


def test_creates_through_both_nodes_never_overfill_a_node_or_share_an_address(env, customer):
    """SIM_NODE registered with memory for exactly ROOM more servers of tariff 1 and a pool
    of POOL addresses: CREATES creates at once, half through Apache A and half through B,
    make exactly ROOM servers, each with its own address of the pool, and answer 409 to the
    rest; no 5xx; every Galera node agrees."""
    a_admin = itc.access_token(env.apache("A"), 1, role="admin")

    def admin(method, path, body=None):
        return test_server.call(env.apache("A"), method, path, a_admin, body)

    given = int(env.dbs[1].scalar("SELECT COALESCE(SUM(ram), 0) FROM vps WHERE node = ?",
                                  [SIM_NODE]))
    memory = (given + ROOM * 1024 + 512) * MiB
    before = env.sim.node_info(SIM_NODE)["memory"]
    env.sim.node(SIM_NODE, memory=memory)
    node = test_server.ok(admin("POST", "/api/admin/nodes", {"name": SIM_NODE}), 201)["node"]
    pool = test_server.ok(admin("POST", "/api/admin/ip-pools", {
        "name": itc.unique("galera-pool"), "node": SIM_NODE, "bridge": "vmbr0",
        "first": "10.99.0.10", "last": f"10.99.0.{10 + POOL - 1}", "prefix": 24,
        "gateway": "10.99.0.1"}), 201)["pool"]
    made = []
    try:
        # the agents' sample of the node with its new size (they poll every second)
        wait_for(lambda: (test_server.ok(admin("GET", f"/api/admin/nodes/{node['id']}"))
                          ["node"]["sample"] or {}).get("maxmem") == memory,
                 what="the agents' sample of the node's new size")
        barrier = threading.Barrier(CREATES)
        results = [None] * CREATES

        def create(i):
            barrier.wait()
            try:
                results[i] = customer.call("AB"[i % 2], "POST", "/api/server/create",
                                           {"osId": 1, "tariffId": 1}, timeout=60)
            except Exception as e:          # noqa: BLE001 (reported below)
                results[i] = e

        threads = [threading.Thread(target=create, args=(i,)) for i in range(CREATES)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in results:
            assert not isinstance(r, Exception), r
            assert r.status_code in (201, 409), (r.status_code, r.text)
        made = [r.json() for r in results if r.status_code == 201]
        refused = [r.json()["error"] for r in results if r.status_code == 409]
        figure("Galera: creates at once through A and B -> servers / 409",
               f"{CREATES} -> {len(made)} / {len(refused)}")
        assert len(made) == ROOM, [r.text for r in results]
        assert all("no server of this size" in e for e in refused), refused
        addresses = [m["ipAddress"] for m in made]
        assert len(set(addresses)) == ROOM, addresses
        assert all(a.startswith("10.99.0.") for a in addresses), addresses
        ids = [m["id"] for m in made]
        marks = ",".join("?" * len(ids))
        for n in (1, 2, 3):
            env.replicated(f"SELECT COUNT(*) = {ROOM} FROM vps WHERE id IN ({marks})", ids,
                           nodes=(n,))
            held = env.dbs[n].query(
                "SELECT address FROM ip_addresses WHERE pool_id = ? AND vps_id IS NOT NULL",
                [pool["id"]])
            assert sorted(r["address"] for r in held) == sorted(addresses), (n, held)
        assert int(env.dbs[1].scalar("SELECT COUNT(*) FROM vps WHERE node = ? AND user_id = ?",
                                     [SIM_NODE, customer.id])) == ROOM
    finally:
        for m in made:          # their creates end, then the billing site deletes them
            wait_for(lambda m=m: customer.call("A", "GET", f"/api/server/{m['id']}")
                     .json().get("status") in ("running", "stopped", "error"),
                     what=f"server {m['id']} made")
            env.api("A").vps("delete", {"id": m["id"]})
        admin("PUT", f"/api/admin/ip-pools/{pool['id']}", {"enabled": False})
        admin("DELETE", f"/api/admin/nodes/{node['id']}")
        env.sim.node(SIM_NODE, memory=before)
