"""bench/soak: the whole stack under a steady, mixed load for --minutes (issue 17, item 5).

On 127.0.0.1: tests/pvesim with --guests containers on two nodes (real task durations), a
vps row for each owned by --users users (about 3 servers each), Apache with mod_ospab
(SQLite, or MariaDB with --db mariadb) pointed at the simulator and proxying /socket.io/ to
ospab-agent as conf/ospab.conf does (OspabLivePush with a budget for the sockets), the
agent polling every guest every --poll-interval and publishing live stats, and --sockets
Socket.IO clients (bench/fanoutlib's node clients) connected through Apache for the whole
run, subscribed to --watched servers.

The load, at fixed rates (paced workers, not a throughput run; the rates are printed):
reads (GET /api/server, /api/server/{id}, /api/server/{id}/status: Proxmox's live status),
sync writes with X-API-Key (update of a bound record, create of an unbound one deleted a
few seconds later), power operations (stop/start/restart of guests kept for them, each
followed through GET /api/server/{id}/tasks until its task has ended; every guest belongs
to one power worker, which runs one operation at a time, so no 409 "busy" is expected),
and sessions (login, refreshes, logout). Every rate is an option; 0 leaves that part out,
to run one part of the load alone (--power-workers 0, --sockets 0 likewise), and --conf adds
Apache directives.

Every --sample seconds: the RSS (VmRSS) of Apache's parent and each child, and of the
agent; the clients' socket counters. At the end: requests, errors, p50/p99 per route;
socket events and disconnects; the RSS over time and its growth per 10 minutes after
warm-up (least squares over the samples after the first 5 minutes, or after the first
third of a shorter run). Exit status 1 when any request failed (5xx, connection error,
timeout, a 4xx not asked for, a task that did not end ok), a socket was dropped, a
delivery went missing, or Apache or the agent logged a problem."""
import argparse
import collections
import itertools
import json
import math
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import bench  # noqa: E402  (start_db, populate (users), login_answer)
import fanoutlib as fl  # noqa: E402  (Clients, bench_limits, proc_status, proc_cpu)
import poll  # noqa: E402  (populate: a vps row per simulated guest)
import authmatrix  # noqa: E402  (tests/integration: signed access tokens)
import harness  # noqa: E402
from agentharness import Agent, sim_cluster  # noqa: E402
from simctl import PveSim  # noqa: E402

NODES = ("pve1", "pve2")
FIRST_USER = 1000                 # bench.populate's first user id
PASSWORD = "bench-password"       # bench.login_answer's
THREADS_PER_CHILD = 64
API_WORKERS = 128                 # Apache's workers kept for /api/ beside the sockets


def say(msg):
    print(f"soak: {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------ Apache ---

class SoakApache(harness.Apache):
    """harness.Apache (mod_ospab, the database, the keys) with the MPM sized for the live
    sockets as docs/live-push.md says (one worker thread per proxied websocket): every
    child started at once and none ever retired (MaxSpareThreads = MaxRequestWorkers,
    MaxConnectionsPerChild 0), so RSS over time is that of the same processes."""

    MPM_LINES = ("StartServers ", "ThreadsPerChild ", "MinSpareThreads ", "MaxSpareThreads ",
                 "MaxRequestWorkers ", "ServerLimit ")

    def __init__(self, db, sockets, **kw):
        super().__init__(db, **kw)
        self.children = math.ceil((sockets + API_WORKERS) / THREADS_PER_CHILD)
        self.workers = self.children * THREADS_PER_CHILD

    def config_text(self):
        lines = [l for l in super().config_text().splitlines()
                 if not l.startswith(self.MPM_LINES)]
        at = next(i for i, l in enumerate(lines) if l.startswith("LoadModule mpm_")) + 1
        lines[at:at] = [f"ServerLimit {self.children}", f"StartServers {self.children}",
                        f"ThreadLimit {THREADS_PER_CHILD}",
                        f"ThreadsPerChild {THREADS_PER_CHILD}",
                        f"MaxRequestWorkers {self.workers}",
                        f"MinSpareThreads {THREADS_PER_CHILD}",
                        f"MaxSpareThreads {self.workers}", "MaxConnectionsPerChild 0",
                        "ListenBacklog 4096"]
        return "\n".join(lines) + "\n"


def apache_conf(sim, agent_port, sockets):
    mods = harness.APACHE_MODULES
    be = f"http://127.0.0.1:{agent_port}/socket.io/"
    return [f"OspabProxmoxURL {sim.url}", f"OspabProxmoxToken {sim.token}",
            f"OspabProxmoxCA {sim.ca}", f"OspabProxmoxNode {NODES[0]}",
            "OspabProxmoxStorage local-lvm", "OspabProxmoxBridge vmbr0",
            "OspabProxmoxTimeout 3 10", "OspabSelfService On",
            f"LoadModule proxy_module {mods}/mod_proxy.so",
            f"LoadModule proxy_http_module {mods}/mod_proxy_http.so",
            f'ProxyPass "/socket.io/" "{be}" upgrade=websocket',
            f'ProxyPassReverse "/socket.io/" "{be}"',
            # all the clients come from 127.0.0.1: no per-address cap
            '<Location "/socket.io/">',
            f"  OspabLivePush workers={sockets + API_WORKERS // 4} per-address=0",
            "</Location>"]


# ------------------------------------------------------------------------- stats ---

class Stats:
    """Per route: latencies, error answers (with bodies), 409s of power routes."""

    def __init__(self):
        self.lock = threading.Lock()
        self.lat = collections.defaultdict(list)
        self.errors = collections.defaultdict(list)
        self.busy = collections.defaultdict(list)

    def ok(self, route, seconds):
        with self.lock:
            self.lat[route].append(seconds)

    def error(self, route, what, seconds=None):
        with self.lock:
            if seconds is not None:
                self.lat[route].append(seconds)
            self.errors[route].append((time.time(), what))

    def busy_answer(self, route, what, seconds):
        with self.lock:
            self.lat[route].append(seconds)
            self.busy[route].append((time.time(), what))

    def done(self, counts, what):
        with self.lock:
            counts[what] += 1

    def total(self):
        with self.lock:
            return sum(len(v) for v in self.lat.values()), sum(len(v) for v in
                                                               self.errors.values())


class Client:
    """One keep-alive connection (requests.Session) to Apache, timing every call."""

    def __init__(self, base, stats):
        self.base = base
        self.stats = stats
        self.s = requests.Session()

    def call(self, route, method, path, expect=(200,), token=None, key=None, body=None):
        """The answer's JSON (or None) if its status is in expect; else an error is
        recorded (409 of a power route as busy) and None returned."""
        h = {}
        if token:
            h["Authorization"] = f"Bearer {token}"
        if key:
            h["X-API-Key"] = key
        t0 = time.perf_counter()
        try:
            r = self.s.request(method, self.base + path, headers=h, json=body, timeout=30)
            dt = time.perf_counter() - t0
        except requests.RequestException as e:
            self.stats.error(route, f"{method} {path}: {type(e).__name__}: {e}")
            self.s.close()
            self.s = requests.Session()
            return None
        if r.status_code in expect:
            self.stats.ok(route, dt)
            try:
                return r.json()
            except ValueError:
                self.stats.error(route, f"{method} {path}: {r.status_code} not JSON: "
                                        f"{r.text[:200]!r}")
                return None
        what = f"{method} {path}: {r.status_code} {r.text[:300]!r}"
        if r.status_code == 409 and "/api/server/" in path and method == "POST":
            self.stats.busy_answer(route, what, dt)
        else:
            self.stats.error(route, what, dt)
        return None


def paced(stop, rate, fn):
    """Calls fn() `rate` times a second on average until stop is set (a late call is made
    at once, but a backlog of more than 2 s is forgotten, not made up in a burst)."""
    period = 1.0 / rate
    nxt = time.monotonic() + random.random() * period
    while not stop.is_set():
        now = time.monotonic()
        if nxt > now:
            if stop.wait(nxt - now):
                return
        elif now - nxt > 2.0:
            nxt = now
        fn()
        nxt += period


# ------------------------------------------------------------------------- load ---

class World:
    """Who owns what: guest i (vps id i + 1, vmid 100 + i) belongs to user
    FIRST_USER + i % users; the last `power` guests that run are the power workers'."""

    def __init__(self, args, httpd):
        self.args = args
        self.httpd = httpd
        self.users = args.users
        ttl = int(args.minutes * 60) + 3600
        self.tokens = {u: authmatrix.token(authmatrix.claims(u, "user", ttl=ttl),
                                           httpd.jwt_secret)
                       for u in range(FIRST_USER, FIRST_USER + args.users)}
        running = [i for i in range(args.guests) if (100 + i) % 5]
        self.power = running[-args.power_guests:] if args.power_guests else []
        busy = set(self.power)
        self.readable = [i for i in range(args.guests) if i not in busy]
        self.login_users = list(range(FIRST_USER, FIRST_USER + args.login_users))

    def owner(self, i):
        return FIRST_USER + i % self.users


def reader(world, stats, stop, kind, rate):
    c = Client(world.httpd.url(""), stats)
    rnd = random.Random()

    def one():
        i = rnd.choice(world.readable)
        tok = world.tokens[world.owner(i)]
        if kind == "list":
            c.call("GET /api/server", "GET", "/api/server", token=tok)
        elif kind == "detail":
            c.call("GET /api/server/{id}", "GET", f"/api/server/{i + 1}", token=tok)
        else:
            c.call("GET /api/server/{id}/status", "GET",
                   f"/api/server/{i + 1}/status?timeframe=hour", token=tok)
    paced(stop, rate, one)


def sync_updater(world, stats, stop, rate):
    c = Client(world.httpd.url(""), stats)
    rnd = random.Random()
    key = world.httpd.sync_key
    flip = collections.Counter()

    def one():
        i = rnd.choice(world.readable)
        flip[i] += 1
        c.call("POST /api/vps/sync (update)", "POST", "/api/vps/sync", key=key,
               body={"action": "update", "vps": {"id": i + 1,
                                                 "os": ("Debian 12", "Debian 12 (soak)")
                                                 [flip[i] % 2]}})
    paced(stop, rate, one)


def sync_creator(world, stats, stop, rate, live_for=5.0):
    """Creates an unbound record (as a billing site does before the guest exists) and
    deletes it live_for seconds later: the table keeps its size."""
    c = Client(world.httpd.url(""), stats)
    key = world.httpd.sync_key
    pending = collections.deque()
    n = itertools.count(1)

    def one():
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _, vid = pending.popleft()
            c.call("POST /api/vps/sync (delete)", "POST", "/api/vps/sync", key=key,
                   body={"action": "delete", "vps": {"id": vid}})
        k = next(n)
        ans = c.call("POST /api/vps/sync (create)", "POST", "/api/vps/sync", key=key,
                     expect=(201,),
                     body={"action": "create", "vps": {
                         "user_id": world.owner(k), "name": f"soak-{k}", "cpu": 1,
                         "ram": 512, "disk": 8, "os": "Debian 12", "status": "creating",
                         "hypervisor": "proxmox", "external_id": f"soak-{os.getpid()}-{k}"}})
        if ans:
            pending.append((now + live_for, ans["vps"]["id"]))
    paced(stop, rate, one)
    for _, vid in pending:
        c.call("POST /api/vps/sync (delete)", "POST", "/api/vps/sync", key=key,
               body={"action": "delete", "vps": {"id": vid}})


def power_worker(world, stats, stop, guests, counts, pause=1.0, follow=0.5, limit=60.0):
    """One operation at a time on its own guests, round robin: stop a running guest,
    start a stopped one, and every third time restart a running one instead; then GET
    /api/server/{id}/tasks every `follow` s until that task has ended (it must end ok)."""
    c = Client(world.httpd.url(""), stats)
    state = {i: "running" for i in guests}
    turn = collections.Counter()
    for i in itertools.cycle(guests):
        if stop.is_set():
            return
        tok = world.tokens[world.owner(i)]
        sid = i + 1
        turn[i] += 1
        if state[i] == "stopped":
            verb = "start"
        else:
            verb = "restart" if turn[i] % 3 == 0 else "stop"
        route = f"POST /api/server/{{id}}/{verb}"
        ans = c.call(route, "POST", f"/api/server/{sid}/{verb}", token=tok)
        if ans:
            upid = ans.get("taskId")
            deadline = time.monotonic() + limit
            while True:
                time.sleep(follow)
                tasks = c.call("GET /api/server/{id}/tasks", "GET", f"/api/server/{sid}/tasks",
                               token=tok)
                t = next((t for t in tasks or () if t.get("upid") == upid), None)
                if tasks is not None and t is None:
                    stats.error(route, f"task {upid} of server {sid} not in its task list")
                    break
                if t and t["status"] not in ("queued", "running"):
                    if t["status"] != "ok":
                        stats.error(route, f"task of {verb} on server {sid} ended "
                                           f"{t['status']}: {json.dumps(t)[:300]}")
                    else:
                        stats.done(counts, verb)
                    break
                if time.monotonic() > deadline:
                    stats.error(route, f"task {upid} of server {sid} not ended after "
                                       f"{limit:.0f} s: {json.dumps(t)[:300]}")
                    break
            state[i] = "stopped" if verb == "stop" else "running"
        elif not stop.is_set():
            # learn the guest's state from the record before the next try
            rec = c.call("GET /api/server/{id}", "GET", f"/api/server/{sid}", token=tok)
            if rec and rec.get("status") in ("running", "stopped"):
                state[i] = rec["status"]
        stop.wait(pause)


def sessions(world, stats, stop, rate, refreshes, gap=1.0):
    """A session: login, `refreshes` refreshes `gap` s apart (each refresh token used
    once), logout; `rate` sessions a second, the accounts taken in turn."""
    c = Client(world.httpd.url(""), stats)
    users = itertools.cycle(random.sample(world.login_users, len(world.login_users)))

    def one():
        u = next(users)
        ans = c.call("POST /api/auth/login", "POST", "/api/auth/login",
                     body={"email": f"bench{u}@example.com", "password": PASSWORD})
        if not ans:
            return
        rt = ans["refreshToken"]
        for _ in range(refreshes):
            if stop.wait(gap):
                break
            ans = c.call("POST /api/auth/refresh", "POST", "/api/auth/refresh",
                         body={"refreshToken": rt})
            if not ans:
                return
            rt = ans["refreshToken"]
        c.call("POST /api/auth/logout", "POST", "/api/auth/logout", body={"refreshToken": rt})
    paced(stop, rate, one)


# ------------------------------------------------------------------- sockets ---

class SocketTally:
    """The clients' server-stats receipts, fetched and then dropped by the clients every
    sample (so their memory stays flat): per publish (server, sentAt), how many of the
    clients subscribed to that server got it."""

    def __init__(self, clients, subs):
        self.clients = clients
        self.subs = subs                # {server id: clients subscribed}
        self.open = {}                  # (server, sentAt) -> latencies, not final yet
        self.received = 0
        self.lat = []
        self.publishes = 0
        self.missing = 0
        self.counters = collections.Counter()
        self.from_ms = None             # publishes before this are partial (subscribing)

    def fetch(self, final=False):
        events, counters = self.clients.report()
        self.counters = counters
        self.open.update(events)
        cut = fl.now_ms() - (10_000 if final else 20_000)
        done = [k for k in self.open if k[1] < cut]
        for k in done:
            got = self.open.pop(k)
            self.received += len(got)
            self.lat += got
            if self.from_ms is not None and k[1] >= self.from_ms:
                self.publishes += 1
                self.missing += max(0, self.subs.get(k[0], 0) - len(got))
        if not final:
            self.clients.send(f"drop {cut}")
        else:
            self.received += sum(len(v) for v in self.open.values())


# ------------------------------------------------------------------- sampling ---

def apache_rss(httpd):
    """(parent kB, {child pid: kB}, anonymous kB of all) of Apache's processes: VmRSS, and
    RssAnon (the heap and stacks, without the mapped files) to tell them apart."""
    parent = httpd.pid()
    kids = {}
    p_kb = anon = 0
    for pid in harness.pids_mentioning(httpd.conf_file):
        st = fl.proc_status(pid, "VmRSS", "RssAnon")
        anon += st["RssAnon"]
        if pid == parent:
            p_kb = st["VmRSS"]
        else:
            kids[pid] = st["VmRSS"]
    return p_kb, kids, anon


def sampler(t0, httpd, agent, sim, clients, tally, stats, samples, stop, period):
    while True:
        t = time.monotonic() - t0
        parent, kids, anon = apache_rss(httpd)
        ag = fl.proc_status(agent.pid, "VmRSS", "RssAnon")
        tally.fetch()
        reqs, errs = stats.total()
        s = {"t": t, "apache_parent_kb": parent, "apache_children": sorted(kids),
             "apache_sum_kb": parent + sum(kids.values()),
             "apache_max_child_kb": max(kids.values(), default=0),
             "apache_cpu_s": sum(fl.proc_cpu(p) for p in [httpd.pid(), *kids]),
             "apache_anon_kb": anon, "agent_kb": ag["VmRSS"], "agent_anon_kb": ag["RssAnon"],
             "agent_cpu_s": fl.proc_cpu(agent.pid),
             "sim_kb": fl.proc_status(sim.proc.pid, "VmRSS")["VmRSS"],
             "clients_kb": sum(fl.proc_status(p, "VmRSS")["VmRSS"] for p in clients.pids()),
             "requests": reqs, "errors": errs, "events": tally.received,
             "disconnects": tally.counters.get("disconnects", 0),
             "load": fl.loadavg()}
        samples.append(s)
        say(f"{t / 60:5.1f} min: Apache {s['apache_sum_kb'] / 1024:.1f} MB "
            f"({len(kids)} children, max {s['apache_max_child_kb'] / 1024:.1f} MB), agent "
            f"{s['agent_kb'] / 1024:.1f} MB; {reqs} requests, {errs} errors, "
            f"{tally.received} socket events, {s['disconnects']} disconnects; "
            f"load {s['load']:.2f}")
        if stop.wait(period):
            return


def slope_per_10min(samples, key, warmup):
    """Least-squares growth of samples[key] (kB) per 10 minutes, over the samples taken
    at or after warmup seconds; None with fewer than 3."""
    pts = [(s["t"], s[key]) for s in samples if s["t"] >= warmup]
    if len(pts) < 3:
        return None
    n = len(pts)
    mx = sum(t for t, _ in pts) / n
    my = sum(v for _, v in pts) / n
    sxx = sum((t - mx) ** 2 for t, _ in pts)
    sxy = sum((t - mx) * (v - my) for t, v in pts)
    return sxy / sxx * 600 if sxx else None


def pct(values, q):
    return fl.percentile(sorted(values), q)


# ----------------------------------------------------------------------- main ---

def parse():
    ap = argparse.ArgumentParser(prog="bench/soak")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--db", choices=["sqlite", "mariadb"], default="sqlite")
    ap.add_argument("--guests", type=int, default=1000)
    ap.add_argument("--users", type=int, default=300, help="owners of the guests' records")
    ap.add_argument("--sockets", type=int, default=1000)
    ap.add_argument("--watched", type=int, default=100,
                    help="servers the sockets subscribe to (socket i to server i %% N + 1)")
    ap.add_argument("--sample", type=float, default=30, help="seconds between RSS samples")
    ap.add_argument("--poll-interval", default="10s", help="the agent's poll_interval")
    ap.add_argument("--live-interval", default="5s", help="the agent's live_interval")
    ap.add_argument("--list-rate", type=float, default=6)
    ap.add_argument("--detail-rate", type=float, default=6)
    ap.add_argument("--status-rate", type=float, default=3)
    ap.add_argument("--update-rate", type=float, default=3)
    ap.add_argument("--create-rate", type=float, default=0.5)
    ap.add_argument("--session-rate", type=float, default=0.5)
    ap.add_argument("--refreshes", type=int, default=3, help="refreshes per session")
    ap.add_argument("--login-users", type=int, default=60)
    ap.add_argument("--power-workers", type=int, default=4)
    ap.add_argument("--power-guests", type=int, default=40)
    ap.add_argument("--client-procs", type=int, default=4)
    ap.add_argument("--conf", action="append", default=[],
                    help="an extra Apache directive (repeatable), e.g. 'MaxMemFree 256'")
    ap.add_argument("--apache-env", action="append", default=[], metavar="NAME=VALUE",
                    help="an environment variable for Apache (repeatable), e.g. "
                         "'MALLOC_ARENA_MAX=2'")
    ap.add_argument("--json", help="also write the figures to this file")
    return ap.parse_args()


def setup(args, stack):
    say(f"pvesim: {args.guests} containers on {len(NODES)} nodes")
    sim = PveSim(str(harness.make_run_dir("pvesim-")), nodes=NODES, guests=args.guests,
                 resources_lag=2.0, auth_fail_delay=0.5)
    sim.start(timeout=120)
    stack["sim"] = sim
    db, server = bench.start_db(args.db)
    stack["mariadb"] = server
    bench.populate(db, users=args.users, per_user=0)
    poll.populate(db, NODES, args.guests, owner=lambda i: FIRST_USER + i % args.users)
    agent_port = harness.free_port()
    httpd = SoakApache(db, args.sockets,
                       extra_conf=apache_conf(sim, agent_port, args.sockets) + args.conf,
                       env=dict(kv.split("=", 1) for kv in args.apache_env))
    httpd.start(timeout=60)
    stack["httpd"] = httpd
    say(f"Apache {httpd.url('')}: {httpd.children} children x {THREADS_PER_CHILD} threads "
        f"({httpd.rundir})")
    limits = fl.bench_limits(max(1, args.sockets))
    agent = Agent(db, jwt_secret=httpd.jwt_secret,
                  clusters=[sim_cluster(sim, timeout="30s")], log_level="warn",
                  sections={"agent": {"poll_interval": args.poll_interval,
                                      "live_interval": args.live_interval,
                                      "task_interval": "2s", "event_interval": "1s",
                                      "backoff_max": "60s"},
                            "websocket": {"listen": f"127.0.0.1:{agent_port}",
                                          "max_clients": str(args.sockets + 100),
                                          "max_pending": str(limits["max_pending"]),
                                          "max_pending_per_address":
                                              str(limits["max_pending_per_address"]),
                                          "max_per_address": str(limits["max_per_address"]),
                                          "connect_timeout": "60s",
                                          "ping_interval": "25s", "ping_timeout": "20s"}})
    agent.start(timeout=60)
    stack["agent"] = agent
    say(f"agent pid {agent.pid} ({agent.rundir})")
    return sim, db, httpd, agent


def interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    args = parse()
    if not (fl.siolib.SIO_DIR / "node_modules" / "socket.io-client").is_dir():
        sys.exit("tests/sio/node_modules missing: bench/soak installs it (npm ci)")
    signal.signal(signal.SIGTERM, interrupted)
    stack = {}
    stats = Stats()
    stop = threading.Event()
    samples = []
    problems = []
    threads = []
    clients = None
    power_counts = collections.Counter()
    try:
        sim, db, httpd, agent = setup(args, stack)
        world = World(args, httpd)
        base = httpd.url("")
        say(f"passwords for {len(world.login_users)} accounts")
        for u in world.login_users:
            bench.login_answer(base, httpd.sync_key, u)
        # the agent's first poll writes a metrics row per guest: wait for it
        deadline = time.monotonic() + 120
        while db.count("SELECT COUNT(*) FROM metrics_latest") < args.guests:
            if time.monotonic() > deadline:
                sys.exit("the agent's first poll did not write every guest's metrics")
            time.sleep(1)
        say(f"{args.sockets} Socket.IO clients through Apache, on {args.watched} servers")
        ttl = int(args.minutes * 60) + 3600
        token = authmatrix.token(authmatrix.claims(1, "admin", ttl=ttl), httpd.jwt_secret)
        clients = fl.Clients(base, token, args.sockets, args.watched, args.client_procs,
                             "websocket")
        clients.wait_ready(timeout=300)
        tally = SocketTally(clients, clients.subs)
        _, c0 = clients.report()
        if c0.get("nacked") or c0.get("errors"):
            problems.append(f"sockets at start: {dict(c0)}")
        # whole live rounds from here on reach every subscriber
        tally.from_ms = fl.now_ms() + 2000
        duration = args.minutes * 60
        rates = [("GET /api/server", args.list_rate), ("GET /api/server/{id}",
                 args.detail_rate), ("GET /api/server/{id}/status", args.status_rate),
                 ("POST /api/vps/sync (update)", args.update_rate),
                 ("POST /api/vps/sync (create, deleted 5 s later)", args.create_rate),
                 (f"sessions (login, {args.refreshes} refreshes 1 s apart, logout)",
                  args.session_rate)]
        print(f"bench/soak, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
              f"{args.minutes:g} min on {args.db}; {args.guests} guests on "
              f"{len(NODES)} simulated nodes (real task durations), {args.users} users; "
              f"Apache event MPM, {httpd.children} children x {THREADS_PER_CHILD} threads, "
              f"MaxConnectionsPerChild 0{''.join('; ' + c for c in args.conf)}"
              f"{''.join('; env ' + e for e in args.apache_env)}; agent "
              f"poll_interval {args.poll_interval}, "
              f"live_interval {args.live_interval}; {args.sockets} sockets (websocket, "
              f"through Apache) on {args.watched} servers; {os.cpu_count()} CPUs")
        print("load (requests a second): " + ", ".join(f"{n} {r:g}" for n, r in rates)
              + f"; power: {args.power_workers} workers on {len(world.power)} guests, "
              f"one operation at a time each, followed by GET /api/server/{{id}}/tasks "
              f"every 0.5 s, 1 s between operations")
        t0 = time.monotonic()
        def mk(fn, *a):
            threads.append(threading.Thread(target=fn, args=a, daemon=True))

        def paced_mk(fn, rate, *a):           # a rate of 0 leaves that part of the load out
            if rate > 0:
                mk(fn, *a)
        for kind, rate in (("list", args.list_rate), ("detail", args.detail_rate),
                           ("status", args.status_rate)):
            for _ in range(2):
                paced_mk(reader, rate, world, stats, stop, kind, rate / 2)
        for _ in range(2):
            paced_mk(sync_updater, args.update_rate, world, stats, stop, args.update_rate / 2)
        paced_mk(sync_creator, args.create_rate, world, stats, stop, args.create_rate)
        for _ in range(2):
            paced_mk(sessions, args.session_rate, world, stats, stop, args.session_rate / 2,
                     args.refreshes)
        for w in range(args.power_workers):
            mine = world.power[w::args.power_workers]
            if mine:
                mk(power_worker, world, stats, stop, mine, power_counts)
        sample_stop = threading.Event()
        st = threading.Thread(target=sampler, args=(t0, httpd, agent, sim, clients, tally,
                                                    stats, samples, sample_stop,
                                                    args.sample), daemon=True)
        for t in threads:
            t.start()
        st.start()
        end = t0 + duration
        while time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            if not agent.running():
                problems.append(f"the agent exited: {agent.log_tail()}")
                break
        stop.set()
        for t in threads:
            t.join(60)
        sample_stop.set()
        st.join(120)
        elapsed = time.monotonic() - t0
        # one last sample after the load (unless the last one was just taken), then the
        # receipts still open
        if not samples or time.monotonic() - t0 - samples[-1]["t"] > args.sample / 2:
            sampler(t0, httpd, agent, sim, clients, tally, stats, samples, sample_stop, 0)
        tally.fetch(final=True)
        problems += [f"Apache's error log: {l}" for l in httpd.bad_log_lines()[:20]]
        problems += [f"agent's log: {l}" for l in agent.bad_log_lines()[:20]]
        report(args, stats, samples, tally, power_counts, elapsed, problems, httpd)
    finally:
        stop.set()
        if clients:
            clients.close()
        for name in ("agent", "httpd", "sim", "mariadb"):
            if stack.get(name):
                try:
                    stack[name].stop()
                except Exception as e:  # noqa: BLE001  (stop the rest all the same)
                    say(f"stopping {name}: {e}")
    failed = sum(len(v) for v in stats.errors.values()) or problems
    if failed:
        print("\nthe soak FAILED: errors or problems above", file=sys.stderr)
    return 1 if failed else 0


def report(args, stats, samples, tally, power_counts, elapsed, problems, httpd):
    print(f"\nafter {elapsed / 60:.1f} min:\n")
    print(f"{'route':50} {'requests':>9} {'req/s':>6} {'errors':>6} {'409':>4} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    tot = errs = 0
    for route in sorted(stats.lat):
        lat = stats.lat[route]
        e = len(stats.errors.get(route, ()))
        tot += len(lat)
        errs += e
        print(f"{route:50} {len(lat):9d} {len(lat) / elapsed:6.2f} {e:6d} "
              f"{len(stats.busy.get(route, ())):4d} {pct(lat, 0.5) * 1000:7.1f} "
              f"{pct(lat, 0.99) * 1000:7.1f} {max(lat) * 1000:7.1f}")
    lone = {r: v for r, v in stats.errors.items() if r not in stats.lat}
    for route, v in lone.items():
        errs += len(v)
        print(f"{route:50} {0:9d} {0:6.2f} {len(v):6d}")
    print(f"{'all':50} {tot:9d} {tot / elapsed:6.2f} {errs:6d}")
    print(f"power operations ended ok: {dict(power_counts)}")
    for route, v in sorted(stats.errors.items()):
        print(f"\nerrors of {route} ({len(v)}; the first 10):")
        for t, what in v[:10]:
            print(f"  {time.strftime('%H:%M:%S', time.gmtime(t))} {what}")
    for route, v in sorted(stats.busy.items()):
        print(f"\n409 answers of {route} ({len(v)}; the first 5):")
        for t, what in v[:5]:
            print(f"  {time.strftime('%H:%M:%S', time.gmtime(t))} {what}")
    c = tally.counters
    lat = sorted(tally.lat)
    print(f"\nsockets: {args.sockets} connected at start; {tally.received} server-stats "
          f"events received ({tally.received / elapsed:.0f}/s); {tally.publishes} "
          f"publishes checked, {tally.missing} deliveries missing; emit-to-receipt "
          f"p50 {fl.percentile(lat, 0.5)} ms, p99 {fl.percentile(lat, 0.99)} ms; "
          f"disconnects {c.get('disconnects', 0)}, connect errors {c.get('errors', 0)}, "
          f"refused subscriptions {c.get('nacked', 0)}")
    if c.get("disconnects") or c.get("errors") or c.get("nacked"):
        problems.append(f"socket counters: {dict(c)}")
    if tally.missing:
        problems.append(f"{tally.missing} socket deliveries missing")

    print(f"\n{'min':>5} {'Apache MB':>9} {'anon':>6} {'parent':>7} {'max child':>9} "
          f"{'children':>8} {'agent MB':>8} {'anon':>5} {'sim MB':>7} {'clients MB':>10} "
          f"{'Apache cpu%':>11} {'agent cpu%':>10} {'load':>5}")
    prev = None
    for s in samples:
        if prev and s["t"] > prev["t"]:
            dt = s["t"] - prev["t"]
            acpu = f"{(s['apache_cpu_s'] - prev['apache_cpu_s']) / dt * 100:11.1f}"
            gcpu = f"{(s['agent_cpu_s'] - prev['agent_cpu_s']) / dt * 100:10.1f}"
        else:
            acpu, gcpu = f"{'':11}", f"{'':10}"
        print(f"{s['t'] / 60:5.1f} {s['apache_sum_kb'] / 1024:9.1f} "
              f"{s['apache_anon_kb'] / 1024:6.1f} "
              f"{s['apache_parent_kb'] / 1024:7.1f} {s['apache_max_child_kb'] / 1024:9.1f} "
              f"{len(s['apache_children']):8d} {s['agent_kb'] / 1024:8.1f} "
              f"{s['agent_anon_kb'] / 1024:5.1f} "
              f"{s['sim_kb'] / 1024:7.1f} {s['clients_kb'] / 1024:10.1f} {acpu} {gcpu} "
              f"{s['load']:5.2f}")
        prev = s
    kids = [set(s["apache_children"]) for s in samples]
    if kids and any(k != kids[0] for k in kids):
        gone = set().union(*kids) - kids[-1]
        print(f"Apache's children changed during the run ({len(gone)} ended): the RSS "
              f"sums are over different processes")
    else:
        print("Apache's children: the same processes from the first sample to the last "
              "(none recycled)")
    warmup = min(300.0, args.minutes * 60 / 3)
    growth = {}
    for key, name in (("apache_sum_kb", "Apache (sum)"),
                      ("apache_anon_kb", "Apache (sum, anonymous)"),
                      ("apache_max_child_kb", "Apache (largest child)"),
                      ("agent_kb", "agent")):
        g = slope_per_10min(samples, key, warmup)
        growth[key] = g
        first = next((s for s in samples if s["t"] >= warmup), samples[0])
        verdict = ("" if g is None else
                   "  (goal < 2 MB: " + ("met" if g / 1024 < 2 else "NOT met") + ")")
        print(f"{name:25} RSS {samples[0][key] / 1024:7.1f} MB at start, "
              f"{first[key] / 1024:7.1f} MB after warm-up ({warmup / 60:.1f} min), "
              f"{samples[-1][key] / 1024:7.1f} MB at the end; growth after warm-up "
              + ("n/a" if g is None else f"{g / 1024:+.2f} MB per 10 min") + verdict)
    if problems:
        print("\nproblems:")
        for p in problems:
            print(f"  {p}")
    print(f"\nApache's logs: {httpd.rundir}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "args": vars(args), "elapsed_s": elapsed,
            "routes": {r: {"requests": len(v), "errors": len(stats.errors.get(r, ())),
                           "busy409": len(stats.busy.get(r, ())),
                           "p50_ms": pct(v, 0.5) * 1000, "p99_ms": pct(v, 0.99) * 1000}
                       for r, v in stats.lat.items()},
            "errors": {r: v[:20] for r, v in stats.errors.items()},
            "sockets": {"received": tally.received, "publishes": tally.publishes,
                        "missing": tally.missing, **dict(c)},
            "growth_kb_per_10min": growth, "samples": samples, "problems": problems},
            indent=1))


if __name__ == "__main__":
    sys.exit(main())
