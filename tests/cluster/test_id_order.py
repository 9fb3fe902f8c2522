"""Issue 18, 7: auto-increment ids under Galera are not ordered by time. Each node hands out
its own ids (auto_increment_increment = 3, offset = the node's place: 1, 4, 7 / 2, 5, 8 /
...), an id is taken at INSERT and the row appears on the other nodes at COMMIT, so a row
with a smaller id can be newer than one with a larger id — the ordinary way: a transaction
on one node takes its id, another node takes a smaller one and commits first.

Queries that order by id while they mean "by time", or read "rows after the last id seen",
are found by `grep -n "ORDER BY.*id\\|MAX(id)" lib/ospab_sql*.c`; these tests make exactly
that situation (a root transaction held open on one node while the API writes through
another) and check what the panel shows:

* GET /api/server/{id}/tasks (ospab_task_list, ORDER BY id DESC LIMIT 50): newest first;
* the agents' live push (ospab_agent_events_after, "id > last ORDER BY id", re-reading a
  window of 64 ids): an event committed late is still pushed;
* GET /api/server?limit=&after= (keyset pages by id, documented "ordered by id"): pages over
  ids of both nodes, with gaps, are complete and do not overlap.
"""

import json
import time

import pytest

import test_agent          # tests/integration: make_guest, sio_client
from .conftest import APACHE_DB_NODE, SIM_NODE, figure, itc, wait_for
from .galera import GaleraError, Session


def bound_server(env, customer):
    vmid = test_agent.make_guest(env.sim, node=SIM_NODE)
    sid = env.api("A").create_vps(name=f"order-{vmid}", node=SIM_NODE, vmid=vmid, kind="lxc",
                                  status="running", user_id=customer.id)["id"]
    env.replicated("SELECT COUNT(*) FROM vps WHERE id = ?", [sid])
    return sid, vmid


def next_ids(env, table):
    """{node: the id its next INSERT into `table` gets} (its counter, its offset)."""
    out = {}
    for n in (1, 2, 3):
        node = env.galera.node(n)
        status = node.query(f"SHOW TABLE STATUS LIKE '{table}'", database=env.db.name)[0]
        counter = int(status["Auto_increment"])
        v = node.query("SELECT @@global.auto_increment_offset AS o, "
                       "@@global.auto_increment_increment AS i")[0]
        off, inc = int(v["o"]), int(v["i"])
        nxt = counter + (off - counter) % inc
        out[n] = nxt
    return out


def held_and_api_nodes(env, table):
    """An Apache ("A"/"B") and another Galera node such that the other node's next id in
    `table` is larger than the Apache's node's: a row the other node inserts first (and
    commits later) gets a larger id than the Apache's row made after it."""
    nxt = next_ids(env, table)
    for apache in sorted(("A", "B"), key=lambda a: nxt[APACHE_DB_NODE[a]]):
        mine = APACHE_DB_NODE[apache]
        others = [n for n in (1, 2, 3) if n != mine and nxt[n] > nxt[mine]]
        if others:
            return apache, max(others, key=lambda n: nxt[n])
    pytest.fail(f"no node hands out larger ids than an Apache's: {nxt}")


def tasks_idle(env, customer, sid, node="A"):
    def idle():
        r = customer.call(node, "GET", f"/api/server/{sid}/tasks")
        assert r.status_code == 200, r.text
        t = r.json()
        return (t,) if not any(x["status"] in ("queued", "running") for x in t) else None
    return wait_for(idle, what=f"the tasks of server {sid} to finish")[0]


def test_task_list_is_newest_first_when_ids_are_not(env, customer):
    """An operation recorded on one node takes its id, the customer's snapshot through an
    Apache on another node is recorded after it with a smaller id and commits first: the
    task list (through either Apache) shows the snapshot — the newer task — first."""
    sid, _ = bound_server(env, customer)
    tasks_idle(env, customer, sid)
    apache, held_node = held_and_api_nodes(env, "tasks")
    s = Session(env.galera.node(held_node), env.db.name)
    try:
        # an older operation's row: its id taken now, committed after the snapshot's
        s.run("BEGIN; INSERT INTO tasks (vps_id, user_id, node, upid, action, status, "
              "exitstatus, created_at, updated_at, finished_at) VALUES (NULL, "
              f"{customer.id}, '{SIM_NODE}', NULL, 'stop', 'ok', 'OK', UTC_TIMESTAMP(3), "
              "UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))")
        [older] = map(int, s.run("SELECT LAST_INSERT_ID()"))
        time.sleep(0.05)
        r = customer.call(apache, "POST", f"/api/server/{sid}/snapshots",
                          {"snapname": "order", "description": "newer than the stop"})
        assert r.status_code == 200, r.text
        upid = r.json()["taskId"]
        # the row joins the server's list in the same transaction (no foreign-key lock on
        # the server's record while the snapshot runs)
        s.run(f"UPDATE tasks SET vps_id = {sid} WHERE id = {older}; COMMIT")
    finally:
        s.close()
    newer = wait_for(lambda: env.dbs[held_node].scalar(
        "SELECT id FROM tasks WHERE COALESCE(first_upid, upid) = ?", [upid]),
        what="the snapshot's task row on the held node")
    newer = int(newer)
    figure("task ids: older row (held on node %d) / newer row (via Apache %s)"
           % (held_node, apache), f"{older} / {newer}")
    assert newer < older, ("the setup did not give the newer row the smaller id",
                           newer, older)
    env.replicated("SELECT COUNT(*) FROM tasks WHERE id = ? AND vps_id = ?", [older, sid])
    tasks_idle(env, customer, sid)
    for node in ("A", "B"):
        t = customer.call(node, "GET", f"/api/server/{sid}/tasks").json()
        ids = [x["id"] for x in t]
        assert ids.index(newer) < ids.index(older), (node, "newest first?", t)
        stamps = [x["createdAt"] for x in t]
        assert stamps == sorted(stamps, reverse=True), (node, "not newest first", t)


@pytest.mark.parametrize("meanwhile,beyond", [(25, 64), (100, 256)],
                         ids=["25-events", "burst-of-100"])
def test_an_event_committed_late_is_still_pushed(env, customer, meanwhile, beyond):
    """A status change's event row takes its id on one node and commits a second later,
    while `meanwhile` events of other changes commit through Apache A (Galera's ids step by
    3: 25 events move the ids on by more than 64, a burst of 100 by more than 256 — the
    agents' re-read window of event ids before and since issue 18): a browser subscribed
    through Apache A (agent 1) still gets the late one."""
    sid, _ = bound_server(env, customer)
    other = itc.create_user(env.api("A"))["id"]
    flip = env.api("A").create_vps(user_id=customer.id, hypervisor="kvm",
                                   name=itc.unique("flip"))["id"]
    c, got = test_agent.sio_client(env.apache("A"), customer.token)
    try:
        assert c.call("subscribe-server", sid, timeout=10) == {"ok": True, "serverId": sid}
        _, held_node = held_and_api_nodes(env, "webhook_outbox")
        payload = json.dumps({"event": "server.status", "createdAt": "2026-12-01T00:00:00.000Z",
                              "data": {"serverId": sid, "userId": customer.id,
                                       "status": "stopped", "previous": "running"}},
                             separators=(",", ":"))
        s = Session(env.galera.node(held_node), env.db.name)
        try:
            s.run("BEGIN; INSERT INTO webhook_outbox (event, payload, state, attempts, "
                  f"next_attempt_at, created_at) VALUES ('server.status', '{payload}', "
                  "'internal', 0, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))")
            [late] = map(int, s.run("SELECT LAST_INSERT_ID()"))
            # server.owner events through Apache A (the record handed back and forth), read
            # by the agent (every 200 ms) while the transaction is held for a second more
            for i in range(meanwhile):
                r = env.api("A").vps("update", {"id": flip,
                                                "user_id": (other, customer.id)[i % 2]})
                assert r.status_code == 200, r.text
            time.sleep(1.0)
            s.run("COMMIT")
        finally:
            s.close()
        last = int(env.db.scalar("SELECT MAX(id) FROM webhook_outbox"))
        figure(f"late event id / newest id when it committed ({meanwhile} meanwhile)",
               f"{late} / {last}")
        assert last - late > beyond, ("the late row is not that late", late, last)
        wait_for(lambda: [e for e in got["server-status"]
                          if e["serverId"] == sid and e["status"] == "stopped"],
                 timeout=10, what=f"the late event {late} on the socket (newest id {last})")
    finally:
        c.disconnect()


def test_server_pages_over_ids_of_both_nodes(env):
    """A customer's servers made alternately through A and B (ids of two nodes, with gaps):
    keyset pages (?limit=3&after=) read alternately through A and B list each server once,
    in id order, and say when more follow."""
    owner = itc.create_user(env.api("A"))
    tok = itc.access_token(env.apache("A"), owner["id"])
    made = [env.api("AB"[i % 2]).create_vps(user_id=owner["id"], hypervisor="kvm",
                                             name=itc.unique("page"))["id"]
            for i in range(11)]
    for n in (1, 2):
        wait_for(lambda n=n: env.dbs[n].count("SELECT COUNT(*) FROM vps WHERE user_id = ?",
                                              [owner["id"]]) == len(made),
                 what=f"the records on node {n}")
    assert sorted(made) != list(range(min(made), min(made) + len(made))), "no gaps?"
    seen, after, i = [], None, 0
    while True:
        path = "/api/server?limit=3" + (f"&after={after}" if after is not None else "")
        r = itc.Api(env.apache("AB"[i % 2])).get(path, key=None,
                                                  headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == 200, r.text
        page = [s["id"] for s in r.json()]
        assert page == sorted(page) and len(page) <= 3, page
        seen += page
        after = r.headers.get("X-Next-Cursor")
        i += 1
        if after is None:
            break
        assert int(after) == page[-1], (after, page)
        assert i < 10, seen
    assert seen == sorted(made), (seen, sorted(made))
