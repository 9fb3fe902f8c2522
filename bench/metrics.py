"""What OspabMetrics costs: GET /api/server on two Apaches over the same database and
rows, one without metrics and one with OspabMetrics On (every request counted into its
route's histogram), measured in turns in one run; prints each one's median round and the
ratio (issue 16: at most 3 % lost)."""
import argparse
import os
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402
from bench import harness  # noqa: E402

METRICS = [f"LoadModule authz_host_module {harness.APACHE_MODULES}/mod_authz_host.so",
           "<Location /metrics>", "  OspabMetrics On", "  Require ip 127.0.0.1",
           "</Location>"]


def main():
    ap = argparse.ArgumentParser(prog="bench/metrics")
    ap.add_argument("--db", choices=["sqlite", "mariadb"], default="sqlite")
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    db, server = bench.start_db(args.db)
    common = ["MaxKeepAliveRequests 0"]
    off = harness.Apache(db, extra_conf=common)
    on = harness.Apache(db, extra_conf=common + METRICS, sync_key=off.sync_key,
                        jwt_secret=off.jwt_secret)
    off.start()
    on.start()
    try:
        user_id = bench.populate(db)
        env = {"OSPAB_TOKEN": bench.login(off.url(""), off.sync_key, user_id)}
        cases = [("metrics off", off), ("OspabMetrics On", on)]
        for _, a in cases:
            bench.wrk(a.url("/api/server"), "server.lua", 2, args.connections, env)
        runs = {name: [] for name, _ in cases}
        for _ in range(args.rounds):
            for name, a in cases:
                runs[name].append(bench.wrk(a.url("/api/server"), "server.lua",
                                            args.duration, args.connections, env))
        with urllib.request.urlopen(on.url("/metrics"), timeout=10) as r:
            text = r.read().decode()
        counted = sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                      if l.startswith('ospab_http_requests_total{method="GET",route="/api/server"'))
    finally:
        on.stop()
        off.stop()
        if server:
            server.stop()
    print(f"GET /api/server (10 of 100k rows), {args.db}; wrk: 2 threads, {args.connections} "
          f"connections; {args.rounds} rounds of {args.duration} s each, taking turns, median "
          f"round; {os.cpu_count()} CPUs shared by wrk, Apache and the database")
    print(f"{'':18} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    med = {name: bench.median_round(rs) for name, rs in runs.items()}
    for name, r in med.items():
        print(f"{name:18} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
              f"{r['non2xx']:8d}")
    ratio = med["OspabMetrics On"]["rps"] / med["metrics off"]["rps"]
    print(f"with metrics / without: {ratio:.3f} ({(1 - ratio) * 100:+.1f} % lost); "
          f"requests the metrics counted: {counted:.0f}")
    bad = any(r["non2xx"] for r in med.values())
    return 1 if bad or counted == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
