"""Issue 18, 4: 1,000 mixed requests spread over both Apache nodes by a pool of threads —
creates of distinct users and VPS records, creates whose external_id is sent to both nodes
at once, pairs of updates that change DIFFERENT fields of one record through the two nodes
at once, and reads. Afterwards the database is counted on every Galera node: no duplicate
row, every update there (no lost update), and no 5xx answer on the way."""

import itertools
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from .conftest import figure, itc, together, wait_for

N_USERS = 150            # user creates
N_VPS = 300              # creates of distinct records (distinct external ids)
N_DUP = 50               # external ids created through both nodes at once (2 requests each)
N_PAIRS = 200            # records updated through both nodes at once (2 requests each)
N_READS = 50             # customer reads (list, one record) through either node
TOTAL = N_USERS + N_VPS + 2 * N_DUP + 2 * N_PAIRS + N_READS
THREADS = 12


def test_thousand_mixed_requests_over_both_nodes(env, customer):
    assert TOTAL == 1000
    tag = itc.unique("mix")
    rng = random.Random(18)
    nodes = itertools.cycle(("A", "B"))
    answers = []                    # (what, node, status)

    def record(what, node, r):
        if isinstance(r, Exception):
            answers.append((what, node, repr(r)))
        else:
            answers.append((what, node, r.status_code))
        return r

    def create_user(i, node):
        r = env.api(node).user("create", {"email": f"{tag}-u{i}@example.com",
                                          "name": f"Load {i}", "role": "user"})
        return record("user create", node, r)

    def vps(ext):
        # not a Proxmox record: the agents leave it alone (no adoption attempts)
        return itc.new_vps(user_id=customer.id, external_id=ext, name=ext, hypervisor="kvm")

    def create_vps(ext, node):
        return record("vps create", node, env.api(node).vps("create", vps(ext)))

    def dup_create(ext):
        body = vps(ext)
        a, b = together(lambda: env.api("A").vps("create", body),
                        lambda: env.api("B").vps("create", body))
        record("duplicate create", "A", a)
        record("duplicate create", "B", b)
        return a, b

    def read(node):
        return record("read", node, customer.call(node, "GET", "/api/vps"))

    # ---- phase 1: creates (distinct and duplicated) and reads, shuffled
    jobs = ([(create_user, (i, next(nodes))) for i in range(N_USERS)]
            + [(create_vps, (f"{tag}-e{i}", next(nodes))) for i in range(N_VPS)]
            + [(dup_create, (f"{tag}-d{i}",)) for i in range(N_DUP)]
            + [(read, (next(nodes),)) for i in range(N_READS // 2)])
    rng.shuffle(jobs)
    t0 = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        phase1 = list(pool.map(lambda j: j[0](*j[1]), jobs))

    # ---- phase 2: pairs of updates of different fields of one record, through A and B at
    # once, on records of phase 1 that every node has
    created = [r.json()["vps"]["id"] for r in phase1
               if not isinstance(r, tuple) and not isinstance(r, Exception)
               and r.status_code == 201 and "vps" in r.json()]
    assert len(created) >= N_PAIRS, len(created)
    targets = rng.sample(created, N_PAIRS)
    for n in (1, 2):
        wait_for(lambda n=n: env.dbs[n].count(
            f"SELECT COUNT(*) FROM vps WHERE id IN ({','.join(map(str, targets))})")
            == N_PAIRS, what=f"the records on node {n}")
    want = {vid: (1 + i % 16, 1024 + 128 * (i % 64)) for i, vid in enumerate(targets)}

    def update_pair(vid):
        cpu, ram = want[vid]
        a, b = together(lambda: env.api("A").vps("update", {"id": vid, "cpu": cpu}),
                        lambda: env.api("B").vps("update", {"id": vid, "ram": ram}))
        record("update pair", "A", a)
        record("update pair", "B", b)

    jobs = ([(update_pair, (vid,)) for vid in targets]
            + [(read, (next(nodes),)) for i in range(N_READS - N_READS // 2)])
    rng.shuffle(jobs)
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda j: j[0](*j[1]), jobs))
    elapsed = time.monotonic() - t0
    figure("1,000 mixed requests, s", elapsed)
    by = Counter((what, status) for what, _, status in answers)
    figure("1,000 mixed requests, answers", dict(sorted(by.items(), key=str)))
    assert len(answers) == TOTAL, len(answers)

    # ---- no 5xx (nor a connection failure), each kind of request its own answers
    bad = [a for a in answers if not isinstance(a[2], int) or a[2] >= 500]
    assert not bad, (len(bad), bad[:20], by)
    assert by[("user create", 201)] == N_USERS, by
    assert by[("vps create", 201)] == N_VPS, by
    assert by[("read", 200)] == N_READS, by
    assert by[("update pair", 200)] == 2 * N_PAIRS, by
    # a create whose external_id exists answers 200 with that record (docs/sync-api.md)
    for a, b in (r for r in phase1 if isinstance(r, tuple)):
        assert sorted([a.status_code, b.status_code]) == [200, 201], (a.text, b.text)
        assert a.json()["vps"]["id"] == b.json()["vps"]["id"], (a.text, b.text)

    # ---- the database, on every node: no duplicates, no lost update
    def settled():
        counts = [(env.dbs[n].count("SELECT COUNT(*) FROM users WHERE email LIKE ?",
                                    [f"{tag}-u%"]),
                   env.dbs[n].count("SELECT COUNT(*) FROM vps WHERE name LIKE ?", [f"{tag}-%"]))
                  for n in (1, 2, 3)]
        return counts if counts[0] == counts[1] == counts[2] else None
    counts = wait_for(settled, what="every node to have the same rows")
    assert counts[0] == (N_USERS, N_VPS + N_DUP), counts
    for n in (1, 2, 3):
        dups = env.dbs[n].query("SELECT external_id, COUNT(*) AS n FROM vps WHERE name LIKE ? "
                                "GROUP BY external_id HAVING COUNT(*) > 1", [f"{tag}-%"])
        assert dups == [], (n, dups)
        rows = env.dbs[n].query(
            f"SELECT id, cpu, ram FROM vps WHERE id IN ({','.join(map(str, targets))})")
        lost = [(r["id"], (r["cpu"], r["ram"]), want[int(r["id"])]) for r in rows
                if (int(r["cpu"]), int(r["ram"])) != want[int(r["id"])]]
        assert not lost, (f"node {n}: {len(lost)} records lost an update", lost[:10])
