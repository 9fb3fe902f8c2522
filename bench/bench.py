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


def populate(db, users=10000, per_user=10):
    """users x per_user servers (100,000 rows by default) straight into the tables: the
    benchmark is about reading them, not about the sync API's write rate."""
    ts = "'2026-01-01 00:00:00.000'"
    user_rows = [f"({u}, 'bench{u}@example.com', 'Bench {u}', 'user', NULL, 1, {ts}, {ts})"
                 for u in range(1000, 1000 + users)]
    vps_rows = [f"('bench-{u}-{i}', 'running', '10.{u % 250}.{i}.{u % 200 + 1}', 2, 2048, 20, "
                f"'Ubuntu 22.04', {u}, 'proxmox', {1 + i % 3}, {1 + u % 3}, {ts}, {ts})"
                for u in range(1000, 1000 + users) for i in range(per_user)]
    stmts = []
    for i in range(0, len(user_rows), 1000):
        stmts.append("INSERT INTO users (id, email, name, role, password_hash, enabled, "
                     "created_at, updated_at) VALUES " + ",".join(user_rows[i:i + 1000]) + ";")
    for i in range(0, len(vps_rows), 1000):
        stmts.append("INSERT INTO vps (name, status, ip_address, cpu, ram, disk, os, user_id, "
                     "hypervisor, os_id, tariff_id, created_at, updated_at) VALUES "
                     + ",".join(vps_rows[i:i + 1000]) + ";")
    harness.bulk_sql(db, "BEGIN;\n" + "\n".join(stmts) + "\nCOMMIT;\n")
    return 1000 + users // 2        # a user in the middle of the table


def login(url, key, user_id):
    """Gives the user a password through the sync API and logs in: a real token."""
    def post(path, body, headers=None):
        req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json",
                                                             **(headers or {})})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)
    post("/api/users/sync", {"action": "update", "user": {"id": user_id,
                                                          "password": "bench-password"}},
         {"X-API-Key": key})
    return post("/api/auth/login", {"email": f"bench{user_id}@example.com",
                                    "password": "bench-password"})["accessToken"]


def median_round(rounds):
    """The round with the median req/s, with the non-2xx answers and socket errors of all
    rounds."""
    rs = sorted(rounds, key=lambda r: r["rps"])
    median = dict(rs[len(rs) // 2])
    median["non2xx"] = sum(r["non2xx"] for r in rs)
    median["socket_errors"] = sum(r["socket_errors"] for r in rs)
    return median


def start_db(kind):
    """A migrated and seeded database of kind sqlite or mariadb, and the MariaDB server to
    stop afterwards (None for SQLite)."""
    server = None
    if kind == "sqlite":
        db = harness.SqliteDatabase.create()
    else:
        server = harness.Mariadb()
        server.start()
        db = server.create_database()
    harness.prepare_database(db)
    return db, server


def run_one(kind, args):
    db, server = start_db(kind)
    # keep-alive connections live for the whole measurement, as a browser's would
    httpd = harness.Apache(db, mpm=args.mpm, extra_conf=["MaxKeepAliveRequests 0"] + args.conf)
    httpd.start()
    try:
        base = httpd.url("")
        user_id = populate(db)
        vps_id = create_vps(base, httpd.sync_key)
        env = {"OSPAB_SYNC_KEY": httpd.sync_key, "OSPAB_VPS_ID": str(vps_id),
               "OSPAB_TOKEN": login(base, httpd.sync_key, user_id)}
        # the same bytes as a static file: what serving this response costs without us
        req = urllib.request.Request(base + "/api/server",
                                     headers={"Authorization": "Bearer " + env["OSPAB_TOKEN"]})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        (httpd.docroot / "server-list.json").write_bytes(body)
        os.chmod(httpd.docroot / "server-list.json", 0o644)
        cases = [("GET /static.json", "/static.json", "static.lua"),
                 (f"GET /server-list.json ({len(body)} B)", "/server-list.json", "static.lua"),
                 ("GET /api/server (10 of 100k rows)", "/api/server", "server.lua"),
                 ("POST /api/vps/sync (update)", "/api/vps/sync", "sync.lua")]
        for name, path, script in cases:       # warm up: pools, page cache
            wrk(base + path, script, 2, args.connections, env)
        # the cases take turns, several rounds, and each keeps its median round: a virtual
        # machine's speed drifts by tens of percent over a minute, the turns cancel that
        runs = {name: [] for name, _, _ in cases}
        for _ in range(args.rounds):
            for name, path, script in cases:
                runs[name].append(wrk(base + path, script, args.duration, args.connections,
                                      env))
        results = {name: median_round(rs) for name, rs in runs.items()}
    finally:
        httpd.stop()
        if server:
            server.stop()
    return results


def main():
    ap = argparse.ArgumentParser(prog="bench/run")
    ap.add_argument("--db", choices=["sqlite", "mariadb", "both"], default="both")
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--mpm", choices=["event", "worker", "prefork"], default="event")
    ap.add_argument("--conf", action="append", default=[],
                    help="an extra Apache directive (repeatable), e.g. 'ThreadsPerChild 8'")
    args = ap.parse_args()
    kinds = ["sqlite", "mariadb"] if args.db == "both" else [args.db]
    print(f"wrk: 2 threads, {args.connections} connections; {args.rounds} rounds of "
          f"{args.duration} s per route, taking turns, median round shown; Apache "
          f"{args.mpm} MPM; {os.cpu_count()} CPUs shared by wrk, Apache and the database")
    print(f"{'database':9} {'route':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'non-2xx':>8} {'vs static':>9}")
    failed = False
    for kind in kinds:
        results = run_one(kind, args)
        static = results["GET /static.json"]
        for name, r in results.items():
            ratio = r["rps"] / static["rps"]
            print(f"{kind:9} {name:34} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
                  f"{r['non2xx']:8d} {ratio:9.3f}")
            # a handful of socket errors are wrk closing its connections at the end of a
            # round; more than 1 in 10,000 requests would mean the server dropped some
            failed |= r["non2xx"] > 0 or r["socket_errors"] * 10000 > r["requests"] * args.rounds
            if r["socket_errors"]:
                print(f"          ({r['socket_errors']} socket errors in {name})")
    if failed:
        print("some requests failed: the figures above are not valid", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
