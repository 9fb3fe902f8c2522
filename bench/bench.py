"""Runs wrk against one Apache with mod_ospab: a static JSON file and our routes, measured in
the same run, and prints req/s, p50, p99 and the ratio to the static file."""
import argparse
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import harness  # noqa: E402

BENCH = REPO / "bench"


def wrk(url, script, seconds, connections, env=None):
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
           str(BENCH / script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})}).stdout
    line = next(l for l in out.splitlines() if l.startswith("OSPAB "))
    n, dur_us, p50, p99, bad_status, sock_err = map(int, line.split()[1:])
    return {"rps": n / (dur_us / 1e6), "p50_ms": p50 / 1000, "p99_ms": p99 / 1000,
            "requests": n, "non2xx": bad_status, "socket_errors": sock_err}


def create_vps(url, key):
    body = json.dumps({"action": "create", "vps": {"user_id": 5, "name": "bench", "cpu": 2,
                                                   "ram": 2048, "disk": 50}}).encode()
    req = urllib.request.Request(url + "/api/vps/sync", data=body, method="POST",
                                 headers={"Content-Type": "application/json",
                                          "X-API-Key": key})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["vps"]["id"]


def run_one(kind, args):
    server = None
    if kind == "sqlite":
        db = harness.SqliteDatabase.create()
    else:
        server = harness.Mariadb()
        server.start()
        db = harness.MariadbDatabase(server, server.create_database())
    harness.prepare_database(db)
    httpd = harness.Apache(db)
    httpd.start()
    try:
        base = httpd.url("")
        vps_id = create_vps(base, httpd.sync_key)
        env = {"OSPAB_SYNC_KEY": httpd.sync_key, "OSPAB_VPS_ID": str(vps_id)}
        # warm both paths up (connection pools, page cache), then measure
        wrk(base + "/static.json", "static.lua", 2, args.connections)
        wrk(base + "/api/vps/sync", "sync.lua", 2, args.connections, env)
        static = wrk(base + "/static.json", "static.lua", args.duration, args.connections)
        sync = wrk(base + "/api/vps/sync", "sync.lua", args.duration, args.connections, env)
    finally:
        httpd.stop()
        if server:
            server.stop()
    return static, sync


def main():
    ap = argparse.ArgumentParser(prog="bench/run")
    ap.add_argument("--db", choices=["sqlite", "mariadb", "both"], default="both")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    kinds = ["sqlite", "mariadb"] if args.db == "both" else [args.db]
    print(f"wrk: 2 threads, {args.connections} connections, {args.duration} s per "
          f"measurement; Apache event MPM, 2 x 16 threads; {os.cpu_count()} CPUs")
    print(f"{'database':9} {'route':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'non-2xx':>8} {'vs static':>9}")
    failed = False
    for kind in kinds:
        static, sync = run_one(kind, args)
        for name, r in (("GET /static.json", static), ("POST /api/vps/sync (update)", sync)):
            ratio = r["rps"] / static["rps"]
            print(f"{kind:9} {name:34} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
                  f"{r['non2xx']:8d} {ratio:9.3f}")
            failed |= r["non2xx"] > 0 or r["socket_errors"] > 0
    if failed:
        print("some requests failed: the figures above are not valid", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
