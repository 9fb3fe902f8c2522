"""Runs wrk against one Apache with mod_ospab: a static JSON file, our routes, a ceiling module
answering our GET /api/server bytes from memory in the same Apache, and a peer (Node/Express,
bench/peer) serving the same GET /api/server from the same database, measured in the same run;
prints req/s, p50, p99, the ratios to the static file and to the ceiling, and ours/peer."""
import argparse
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import harness  # noqa: E402

BENCH = REPO / "bench"
PEER = BENCH / "peer"
# built by bench/run (apxs) from bench/ceiling/mod_ceiling.c
CEILING_SO = REPO / "run" / "bench-ceiling" / ".libs" / "mod_ceiling.so"
# ours must serve GET /api/server at least this many times as fast as the peer (issue 17)
PEER_GOAL = 2.0


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


def post(url, path, body, headers=None):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def login_answer(url, key, user_id):
    """Gives the user a password through the sync API and logs in: a real token (and its
    login's refresh token)."""
    post(url, "/api/users/sync", {"action": "update", "user": {"id": user_id,
                                                               "password": "bench-password"}},
         {"X-API-Key": key})
    return post(url, "/api/auth/login", {"email": f"bench{user_id}@example.com",
                                         "password": "bench-password"})


def login(url, key, user_id):
    return login_answer(url, key, user_id)["accessToken"]


def get(url, token=None):
    """(status, headers, body) of a GET, errors included."""
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token}
                                 if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def ordered_json(body):
    """The JSON document with every object as its list of (key, value) pairs: equal only if
    the keys come in the same order with the same values."""
    return json.loads(body, object_pairs_hook=list)


def start_peer(db, server, httpd, rundir):
    """bench/peer (Node cluster of 2 workers) on its own port, over db, verifying tokens
    with the Apache's JWT key; as www-data like Apache's children (the SQLite file is
    theirs). Returns (process, base URL)."""
    if not (PEER / "node_modules" / "better-sqlite3").is_dir():
        sys.exit("bench/peer/node_modules missing: bench/run installs it (npm ci)")
    port = harness.free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NODE_ENV": "production",
           "OSPAB_PEER_PORT": str(port), "OSPAB_PEER_JWT_KEY": httpd.jwt_secret}
    if server is None:
        env.update(OSPAB_PEER_DB="sqlite", OSPAB_PEER_SQLITE=str(db.path))
    else:
        env.update(OSPAB_PEER_DB="mysql", OSPAB_PEER_MYSQL_SOCKET=str(server.socket),
                   OSPAB_PEER_MYSQL_USER=server.user, OSPAB_PEER_MYSQL_PASSWORD=server.password,
                   OSPAB_PEER_MYSQL_DATABASE=db.name)
    log = open(rundir / "peer.log", "w")
    as_www = {"user": harness.WWW_USER, "group": harness.WWW_USER} if os.geteuid() == 0 else {}
    proc = subprocess.Popen(["node", str(PEER / "server.js")], cwd=PEER, env=env,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            **as_www)
    log.close()
    if not harness.wait_port(port, proc=proc, timeout=30):
        proc.kill()
        sys.exit(f"the peer did not come up:\n{(rundir / 'peer.log').read_text()}")
    return proc, f"http://127.0.0.1:{port}"


def stop_peer(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def check_same_answers(base, ceiling_url, peer_url, token, body, refused):
    """Before measuring: the ceiling answers our very bytes and the peer our JSON (the same
    keys in the same order, the same values) with the same headers that matter, and the peer
    refuses what we refuse (a forged signature and the tokens of refused_tokens()).
    Returns a note on whether the peer's bytes are ours too."""
    _, ours_headers, _ = get(base + "/api/server", token)
    status, headers, ceiling = get(ceiling_url)
    if status != 200 or ceiling != body:
        sys.exit(f"the ceiling does not answer our bytes: {status} {ceiling[:200]!r}")
    status, peer_headers, peer = get(peer_url, token)
    if status != 200:
        sys.exit(f"the peer answered {status}: {peer[:300]!r}")
    if ordered_json(peer) != ordered_json(body):
        sys.exit(f"the peer's answer differs from ours:\nours: {body[:400]!r}\n"
                 f"peer: {peer[:400]!r}")
    for h in ("Content-Type", "Cache-Control", "X-Content-Type-Options", "Content-Length"):
        for who, hs in (("ceiling", headers), ("peer", peer_headers)):
            if hs.get(h) != ours_headers.get(h):
                sys.exit(f"the {who}'s {h} is {hs.get(h)!r}, ours {ours_headers.get(h)!r}")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for what, t in [("a forged signature", forged), *refused.items()]:
        answers = {who: get(url, t) for who, url in (("ours", base + "/api/server"),
                                                     ("peer", peer_url))}
        for who, (status, _, answer) in answers.items():
            if status != 401:
                sys.exit(f"{who} answered {status} to {what}: {answer[:200]!r}")
        if ordered_json(answers["peer"][2]) != ordered_json(answers["ours"][2]):
            sys.exit(f"to {what} ours answered {answers['ours'][2]!r}, the peer "
                     f"{answers['peer'][2]!r}")
    return "same bytes" if peer == body else "same JSON, other bytes"


def refused_tokens(base, key, user_id):
    """Tokens that are well signed and unexpired but that ours and the peer must refuse: one
    of a user disabled after logging in, one of a login that logged out since."""
    disabled = login(base, key, user_id)
    post(base, "/api/users/sync", {"action": "update", "user": {"id": user_id, "enabled": False}},
         {"X-API-Key": key})
    ended = login_answer(base, key, user_id + 1)
    post(base, "/api/auth/logout", {"refreshToken": ended["refreshToken"]})
    return {"a disabled user": disabled, "a login that logged out": ended["accessToken"]}


def median_round(rounds):
    """The round with the median req/s, with the non-2xx answers and socket errors of all
    rounds."""
    rs = sorted(rounds, key=lambda r: r["rps"])
    median = dict(rs[len(rs) // 2])
    median["non2xx"] = sum(r["non2xx"] for r in rs)
    median["socket_errors"] = sum(r["socket_errors"] for r in rs)
    return median


OURS = "GET /api/server (10 of 100k rows)"
PEER_ROW = "peer: GET /api/server (Node/Express, 2 workers)"
CEILING = "GET /ceiling (memory, same bytes)"


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
    peer = None
    try:
        base = httpd.url("")
        user_id = populate(db)
        vps_id = create_vps(base, httpd.sync_key)
        env = {"OSPAB_SYNC_KEY": httpd.sync_key, "OSPAB_VPS_ID": str(vps_id),
               "OSPAB_TOKEN": login(base, httpd.sync_key, user_id)}
        refused = refused_tokens(base, httpd.sync_key, user_id + 1)
        # the same bytes as a static file: what serving this response costs without us
        status, _, body = get(base + "/api/server", env["OSPAB_TOKEN"])
        if status != 200:
            sys.exit(f"GET /api/server answered {status}: {body[:300]!r}")
        listing = httpd.docroot / "server-list.json"
        listing.write_bytes(body)
        os.chmod(listing, 0o644)
        # and from memory, in a module of the same Apache: it reads the file at start-up
        httpd.stop()
        httpd.extra_conf += [f"LoadModule ceiling_module {CEILING_SO}",
                             '<Location "/ceiling">', "  SetHandler ceiling",
                             f'  CeilingFile "{listing}"', "</Location>"]
        httpd.start()
        peer, peer_base = start_peer(db, server, httpd, httpd.rundir)
        same = check_same_answers(base, base + "/ceiling", peer_base + "/api/server",
                                  env["OSPAB_TOKEN"], body, refused)
        cases = [("GET /static.json", base + "/static.json", "static.lua"),
                 (f"GET /server-list.json ({len(body)} B)", base + "/server-list.json",
                  "static.lua"),
                 (CEILING, base + "/ceiling", "static.lua"),
                 (OURS, base + "/api/server", "server.lua"),
                 (PEER_ROW, peer_base + "/api/server", "server.lua"),
                 ("POST /api/vps/sync (update)", base + "/api/vps/sync", "sync.lua")]
        for name, url, script in cases:       # warm up: pools, page cache, V8's JIT
            wrk(url, script, 2, args.connections, env)
        # the cases take turns, several rounds, and each keeps its median round: a virtual
        # machine's speed drifts by tens of percent over a minute, the turns cancel that
        runs = {name: [] for name, _, _ in cases}
        for _ in range(args.rounds):
            for name, url, script in cases:
                runs[name].append(wrk(url, script, args.duration, args.connections, env))
        if peer.poll() is not None:
            sys.exit(f"the peer died during the run:\n{(httpd.rundir / 'peer.log').read_text()}")
        results = {name: median_round(rs) for name, rs in runs.items()}
    finally:
        if peer:
            stop_peer(peer)
        httpd.stop()
        if server:
            server.stop()
    return results, same


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
    if not CEILING_SO.exists():
        sys.exit(f"{CEILING_SO} missing: bench/run builds it")
    print(f"wrk: 2 threads, {args.connections} connections; {args.rounds} rounds of "
          f"{args.duration} s per route, taking turns, median round shown; Apache "
          f"{args.mpm} MPM; {os.cpu_count()} CPUs shared by wrk, Apache, the peer and the "
          f"database")
    header = (f"{'database':9} {'route':48} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'non-2xx':>8} {'vs static':>9} {'vs ceiling':>10}")
    print(header)
    failed = False
    summary = []
    for kind in kinds:
        results, same = run_one(kind, args)
        static = results["GET /static.json"]
        ceiling = results[CEILING]
        for name, r in results.items():
            print(f"{kind:9} {name:48} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
                  f"{r['non2xx']:8d} {r['rps'] / static['rps']:9.3f} "
                  f"{r['rps'] / ceiling['rps']:10.3f}")
            # a handful of socket errors are wrk closing its connections at the end of a
            # round; more than 1 in 10,000 requests would mean the server dropped some
            failed |= r["non2xx"] > 0 or r["socket_errors"] * 10000 > r["requests"] * args.rounds
            if r["socket_errors"]:
                print(f"          ({r['socket_errors']} socket errors in {name})")
        vs_peer = results[OURS]["rps"] / results[PEER_ROW]["rps"]
        summary.append((kind, vs_peer, results[OURS]["rps"] / ceiling["rps"], same))
    for kind, vs_peer, vs_ceiling, same in summary:
        print(f"{kind:9} GET /api/server: ours/peer {vs_peer:.2f} (goal >= {PEER_GOAL:g}: "
              f"{'met' if vs_peer >= PEER_GOAL else 'NOT met'}), ours/ceiling "
              f"{vs_ceiling:.3f}; the peer's answer: {same}")
    if failed:
        print("some requests failed: the figures above are not valid", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
