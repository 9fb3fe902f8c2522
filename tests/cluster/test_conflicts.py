"""Issue 18, 3: write conflicts between the two Apache nodes (two Galera nodes).

Galera certifies a transaction at COMMIT against the ones other nodes committed meanwhile;
the loser gets error 1213 ("Deadlock found"). The module retries such a request's
transaction (bounded, and only while it has not called Proxmox yet), so two nodes changing
the same rows at once never answer 5xx. Each test fires the two requests through two threads
released together, many rounds, and counts what the module's /metrics say it retried
(`ospab_db_conflict_retries_total`, when the module has it).
"""

import pytest

import test_agent          # tests/integration: make_guest
from .conftest import SIM_NODE, figure, itc, together, wait_for

ROUNDS = 30
POWER_ROUNDS = 8
RETRIES = "ospab_db_conflict_retries_total"


def retries(env):
    """{node: the module's conflict retries so far} (None: the module has no such counter)."""
    return {n: env.metric(n, RETRIES) for n in ("A", "B")}


def report_retries(env, before, what):
    after = retries(env)
    for n in ("A", "B"):
        if after[n] is None:
            figure(f"conflict retries, {what}, Apache {n}", f"no {RETRIES} in /metrics")
        else:
            figure(f"conflict retries, {what}, Apache {n}", int(after[n] - (before[n] or 0)))


def no_5xx(results, what):
    for r in results:
        assert not isinstance(r, Exception), f"{what}: {r!r}"
        assert r.status_code < 500, (what, r.status_code, r.text)


def test_same_vps_changed_through_both_nodes_at_once(env, customer):
    """Round after round, Apache A and Apache B update the same record at the same moment:
    both answer 200 (the loser of the certification was retried), and afterwards every
    Galera node has the same record, one of the two writes of the last round."""
    before = retries(env)
    vid = env.api("A").create_vps(user_id=customer.id, name=itc.unique("conflict"))["id"]
    env.replicated("SELECT COUNT(*) FROM vps WHERE id = ?", [vid])
    statuses = []
    for r in range(ROUNDS):
        a, b = together(
            lambda: env.api("A").vps("update", {"id": vid, "name": f"a-{r}", "cpu": 1 + r % 4}),
            lambda: env.api("B").vps("update", {"id": vid, "name": f"b-{r}", "cpu": 5 + r % 4}))
        no_5xx((a, b), f"round {r}")
        statuses.append((a.status_code, b.status_code))
    report_retries(env, before, "same VPS updated through A and B")
    assert set(statuses) == {(200, 200)}, statuses
    last = ROUNDS - 1
    want = ({"name": f"a-{last}", "cpu": str(1 + last % 4)},
            {"name": f"b-{last}", "cpu": str(5 + last % 4)})

    def same_everywhere():
        rows = [env.dbs[n].query("SELECT name, cpu FROM vps WHERE id = ?", [vid])[0]
                for n in (1, 2, 3)]
        return rows[0] if rows[0] == rows[1] == rows[2] else None
    final = wait_for(same_everywhere, what="the same record on every Galera node")
    assert final in want, final


def test_one_idempotency_key_sent_to_both_nodes_at_once(env, customer):
    """The same sync create with the same Idempotency-Key through A and B at once: exactly
    one record; one answer 201, the other the replay of it (Idempotent-Replayed: true, the
    same record) or 409 — never a 5xx, never two records."""
    before = retries(env)
    outcomes = []
    for r in range(ROUNDS):
        key = itc.unique("idem-key")
        name = itc.unique("idem")
        body = {"action": "create", "vps": itc.new_vps(user_id=customer.id, name=name)}
        a, b = together(*[
            (lambda n=n: env.api(n).post("/api/vps/sync", json=body,
                                         headers={"Idempotency-Key": key}))
            for n in ("A", "B")])
        no_5xx((a, b), f"round {r}")
        env.replicated("SELECT COUNT(*) FROM vps WHERE name = ?", [name])
        counts = [env.dbs[n].count("SELECT COUNT(*) FROM vps WHERE name = ?", [name])
                  for n in (1, 2, 3)]
        assert counts == [1, 1, 1], (r, counts, a.text, b.text)
        first = [x for x in (a, b) if x.status_code == 201
                 and x.headers.get("Idempotent-Replayed") != "true"]
        assert len(first) == 1, (r, a.status_code, dict(a.headers), b.status_code,
                                 dict(b.headers))
        other = b if first[0] is a else a
        if other.status_code == 409:
            outcomes.append("409")
        else:
            assert other.status_code == 201, other.text
            assert other.headers.get("Idempotent-Replayed") == "true", dict(other.headers)
            assert other.json() == first[0].json(), (other.text, first[0].text)
            outcomes.append("replay")
    report_retries(env, before, "one Idempotency-Key through A and B")
    figure("idempotent pairs answered replay/409",
           f"{outcomes.count('replay')}/{outcomes.count('409')}")


def active_tasks(env, node, sid):
    return env.dbs[node].count("SELECT COUNT(*) FROM tasks WHERE vps_id = ? "
                               "AND status IN ('queued', 'running')", [sid])


def sim_upids(env, vmid):
    return {t["upid"] for t in env.sim.control("GET", f"/tasks?vmid={vmid}")}


def test_power_on_one_server_through_both_nodes_at_once(env, customer):
    """The customer's stop (then start, ...) of one server through A and B at the same
    moment: one 200 and one 409 ("operation ... is still running"), and Proxmox got exactly
    one task — one operation per server holds across Galera nodes."""
    before = retries(env)
    vmid = test_agent.make_guest(env.sim, node=SIM_NODE)
    sid = env.api("A").create_vps(name=f"power-{vmid}", node=SIM_NODE, vmid=vmid, kind="lxc",
                                  status="running", user_id=customer.id)["id"]
    env.replicated("SELECT COUNT(*) FROM vps WHERE id = ?", [sid])
    for r in range(POWER_ROUNDS):
        verb = ("stop", "start")[r % 2]

        def idle():
            # the task list follows the tasks up; the nodes agree that none is running
            t = customer.call("A", "GET", f"/api/server/{sid}/tasks")
            assert t.status_code == 200, t.text
            return (not any(x["status"] in ("queued", "running") for x in t.json())
                    and active_tasks(env, 1, sid) == 0 and active_tasks(env, 2, sid) == 0)
        wait_for(idle, what=f"server {sid} idle before round {r}")
        upids = sim_upids(env, vmid)
        rows = env.db.count("SELECT COUNT(*) FROM tasks WHERE vps_id = ?", [sid])
        a, b = together(*[(lambda n=n: customer.call(n, "POST", f"/api/server/{sid}/{verb}"))
                          for n in ("A", "B")])
        no_5xx((a, b), f"round {r} ({verb})")
        new = sim_upids(env, vmid) - upids
        assert sorted([a.status_code, b.status_code]) == [200, 409], \
            (r, verb, a.status_code, a.text, b.status_code, b.text, sorted(new))
        assert len(new) == 1, (r, verb, sorted(new))
        loser = a if a.status_code == 409 else b
        assert "still running" in loser.json()["error"], loser.text
        # one task row for the round (read on node 1 once node 2's row, if any, is there)
        wait_for(lambda: env.dbs[1].count("SELECT COUNT(*) FROM tasks WHERE vps_id = ?", [sid])
                 == env.dbs[2].count("SELECT COUNT(*) FROM tasks WHERE vps_id = ?", [sid]),
                 what="the task rows on nodes 1 and 2 to agree")
        assert env.db.count("SELECT COUNT(*) FROM tasks WHERE vps_id = ?", [sid]) == rows + 1
    report_retries(env, before, "power through A and B")
