"""Issue 18, 5: a Galera node dies (kill -9) under load. Apache A (node 1) and Apache B
(node 2) keep serving writes: the surviving nodes stall until they have declared the dead one
gone (Galera's evs.suspect_timeout, 2 s in galera.py), then go on as a cluster of two. Node 3
— agent 2's database — is the one killed; restarted, it rejoins (IST) and has every row
written while it was down."""

import threading
import time

import pytest

from .conftest import POLL, figure, itc, wait_for

KILLED = 3
WRITERS_PER_APACHE = 3
AFTER_NOTICED = 3.0          # seconds of load after the cluster noticed


@pytest.mark.allow_agent_log(
    # agent 2's database node is the one killed: its rounds fail until the node is back (a
    # round the kill cut off, at its COMMIT or before it, so that even its ROLLBACK finds no
    # server, is not stored; the next one writes its metrics)
    r"^agent 2 \(node 3\): .*(database connection lost|Can't connect to local server through "
    r"socket '.*/node3/|WSREP has not yet prepared node|lease|"
    r"not stored: (COMMIT|ROLLBACK) failed$)")
def test_kill9_a_node_under_load_then_it_rejoins(env):
    tag = itc.unique("nodefail")
    node = env.galera.node(KILLED)
    results = []            # (node, started, ended, status or exception text)
    lock = threading.Lock()
    stop = threading.Event()
    seq = iter(range(10 ** 9))

    def writer(apache):
        api = env.api(apache)
        while not stop.is_set():
            with lock:
                i = next(seq)
            t = time.monotonic()
            try:
                r = api.vps("create", itc.new_vps(name=f"{tag}-{i}", hypervisor="kvm"),
                            timeout=60)
                outcome = r.status_code
            except Exception as e:        # noqa: BLE001 (counted as a failure)
                outcome = repr(e)
            with lock:
                results.append((apache, t, time.monotonic(), outcome))

    threads = [threading.Thread(target=writer, args=(a,), daemon=True)
               for a in ("A", "B") for _ in range(WRITERS_PER_APACHE)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(results) >= 30, what="load before the kill")
        killed_at = time.monotonic()
        node.kill9()
        wait_for(lambda: env.galera.node(1).wsrep().get("wsrep_cluster_size") == "2",
                 timeout=60, interval=0.05, what="the cluster to notice the dead node")
        noticed_at = time.monotonic()
        time.sleep(AFTER_NOTICED)
        written_down = len(results)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    figure("node kill -9 noticed by the cluster after, s", noticed_at - killed_at)
    spanning = [e - s for _, s, e, _ in results if s <= killed_at <= e]
    figure("longest write in flight at the kill (the stall), s", max(spanning, default=0.0))
    failed = [(a, round(s - killed_at, 2), o) for a, s, _, o in results
              if not (isinstance(o, int) and o == 201)]
    before_noticed = [f for f in failed if killed_at + f[1] < noticed_at]
    after_noticed = [f for f in failed if killed_at + f[1] >= noticed_at]
    figure("writes through A/B during the node failure", len(results))
    figure("failed writes before / after the cluster noticed",
           f"{len(before_noticed)} / {len(after_noticed)}")
    assert not after_noticed, after_noticed[:20]
    assert not before_noticed, ("writes failed while the cluster had not yet noticed",
                                before_noticed[:20])
    assert written_down > 30

    # ---- node 3 back: it rejoins and has everything written meanwhile
    t0 = time.monotonic()
    node.start()
    env.galera.wait_synced(timeout=120)
    figure("killed node rejoined (start to Synced), s", time.monotonic() - t0)
    ok = sum(1 for *_, o in results if o == 201)
    counts = wait_for(lambda: (lambda c: c if c[0] == c[1] == c[2] == ok else None)(
        [env.dbs[n].count("SELECT COUNT(*) FROM vps WHERE name LIKE ?", [f"{tag}-%"])
         for n in (1, 2, 3)]), what="node 3 to have the rows written while it was down")
    assert counts == [ok] * 3
    # agent 2 back on node 3 (its reconnect back-off doubles up to several seconds), and a
    # round of it over: what it logs about the leases it lost meanwhile belongs to this test
    env.agent_connected(env.agents[1])
    time.sleep(2 * float(POLL.rstrip("s")))
