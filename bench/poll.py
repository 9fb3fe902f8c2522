"""bench/poll: `ospab-agent --once` (one GET /cluster/resources per cluster, the
guests matched to vps rows by node+vmid, metrics_latest written in one transaction, drift
and alerts decided) against tests/pvesim with N guests on M nodes, every guest one of ours.

Prints, per database, the median over the rounds of: the agent's own figure for the cycle
(from the request to the commit), the process's wall time, and its CPU time (user+system,
from wait4's rusage) — and, in the same run, the simulator's time to answer the one
/cluster/resources request on its own (a curl of the same URL), which bounds what the agent
can do. The first round inserts the metrics rows, the later ones replace them."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO / "tests" / "pvesim"))
import harness  # noqa: E402
from agentharness import Agent, sim_cluster  # noqa: E402
from simctl import PveSim  # noqa: E402


def populate(db, sim_nodes, guests, owner=lambda i: 5):
    """A vps row for every simulated guest (vmids from 100, round-robin over the nodes, as
    pvesim --guests makes them), guest i owned by user owner(i) (bench/soak spreads them
    over many users)."""
    ts = "'2026-01-01 00:00:00.000'"
    rows = []
    for i in range(guests):
        vmid = 100 + i
        node = sim_nodes[i % len(sim_nodes)]
        status = "stopped" if vmid % 5 == 0 else "running"
        rows.append(f"('g{vmid}', '{status}', NULL, 2, 2048, 20, 'Debian 12', {owner(i)}, "
                    f"'proxmox', '{node}', {vmid}, 'lxc', {ts}, {ts})")
    stmts = []
    for i in range(0, len(rows), 1000):
        stmts.append("INSERT INTO vps (name, status, ip_address, cpu, ram, disk, os, user_id, "
                     "hypervisor, node, vmid, kind, created_at, updated_at) VALUES "
                     + ",".join(rows[i:i + 1000]) + ";")
    harness.bulk_sql(db, "BEGIN;\n" + "\n".join(stmts) + "\nCOMMIT;\n")


def once(agent):
    """(agent's JSON, wall s, cpu s) of one `ospab-agent --once`."""
    kw = agent._popen_kw()
    t0 = time.monotonic()
    p = subprocess.Popen([str(harness.REPO / "monitor-agent" / "ospab-agent"), "-c",
                          str(agent.conf_file), "--once"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, **kw)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    out = p.stdout.read().decode()
    err = p.stderr.read().decode()
    p.stdout.close()
    p.stderr.close()
    if status != 0:
        raise RuntimeError(f"ospab-agent --once failed ({status}):\n{out}\n{err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1]), wall, ru.ru_utime + ru.ru_stime


def sim_alone(sim, rounds):
    """The simulator's answer time for the same request, by curl (the floor)."""
    times = []
    for _ in range(rounds):
        p = subprocess.run(["curl", "-sf", "-o", "/dev/null", "-w", "%{time_total} %{size_download}",
                            "--cacert", str(sim.ca), "-H",
                            f"Authorization: PVEAPIToken={sim.token}",
                            sim.url + "/api2/json/cluster/resources"],
                           capture_output=True, text=True, check=True)
        t, size = p.stdout.split()
        assert int(size) > 100 * 1000, f"the simulator's answer is only {size} bytes"
        times.append(float(t))
    return statistics.median(times)


def run(kind, args, sim, mariadb):
    if kind == "sqlite":
        db = harness.prepare_database(harness.SqliteDatabase.create(), with_seed=True)
    else:
        db = harness.prepare_database(mariadb.create_database(), with_seed=True)
    populate(db, sim.nodes, args.guests)
    agent = Agent(db, clusters=[sim_cluster(sim, timeout="60s")], websocket=False,
                  log_level="warn")
    agent.write_config()
    results = [once(agent) for _ in range(args.rounds)]
    first = results[0][0]
    assert first["guests"] == args.guests and first["matched"] == args.guests, first
    assert db.count("SELECT COUNT(*) FROM metrics_latest") == args.guests
    med = lambda i, k=None: statistics.median(r[0][k] if k else r[i] for r in results)  # noqa
    return {"db": kind, "guests": first["guests"], "matched": first["matched"],
            "cycle_s": med(0, "seconds"), "wall_s": med(1), "cpu_s": med(2),
            "first_cycle_s": first["seconds"]}


def main():
    ap = argparse.ArgumentParser(prog="bench/poll")
    ap.add_argument("--db", choices=["sqlite", "mariadb", "both"], default="both")
    ap.add_argument("--guests", type=int, default=10000)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    nodes = tuple(f"pve{i}" for i in range(1, args.nodes + 1))
    sim = PveSim(str(harness.make_run_dir("pvesim-")), nodes=nodes, guests=args.guests,
                 resources_lag=0.5)
    sim.start(timeout=120)
    sim.nodes = nodes
    mariadb = None
    try:
        floor = sim_alone(sim, args.rounds)
        kinds = ["sqlite", "mariadb"] if args.db == "both" else [args.db]
        if "mariadb" in kinds:
            mariadb = harness.Mariadb()
            mariadb.start()
        rows = [run(k, args, sim, mariadb) for k in kinds]
    finally:
        sim.stop()
        if mariadb:
            mariadb.stop()
    print(f"\nOne poll cycle, {args.guests} guests on {args.nodes} nodes, all ours "
          f"(median of {args.rounds}); the simulator alone answers the request in "
          f"{floor:.3f} s\n")
    print(f"{'db':8} {'cycle s':>8} {'wall s':>8} {'cpu s':>8} {'1st cycle s':>12} "
          f"{'cycle/sim':>10}")
    for r in rows:
        print(f"{r['db']:8} {r['cycle_s']:8.3f} {r['wall_s']:8.3f} {r['cpu_s']:8.3f} "
              f"{r['first_cycle_s']:12.3f} {r['cycle_s'] / floor:10.2f}")
    print("\ncycle: the agent's own timing from sending the request to committing the "
          "metrics; wall/cpu: the whole process (start-up, DB connect, statements).")


if __name__ == "__main__":
    main()
