"""Helpers for bench/fanout: the servers it compares (the agent's sio-driver, a Node
socket.io server, the whole ospab-agent, that agent behind a real Apache), the Node client
processes, the one clock every process reads, the delivery and latency checks, and what the
machine was doing meanwhile (load, other processes' CPU, Apache's memory and threads).

The clock: every stamp and every receipt is the wall clock (CLOCK_REALTIME) in whole
milliseconds since the epoch — time.time_ns() // 10**6 here, Date.now() in Node,
apr_time_as_msec(apr_time_now()) in the agent. A receipt minus a stamp taken by another
process on the same machine is then never below zero; a run in which one is, or in which
the wall clock stepped, is refused (check()).
"""

import collections
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "sio"))
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO / "tests" / "pvesim"))
import authmatrix  # noqa: E402
import harness  # noqa: E402
import siolib  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def now_ms():
    """The benchmark's clock: wall time in whole ms (what Date.now() and the agent read)."""
    return time.time_ns() // 1_000_000


def wall_minus_mono_ms():
    """Wall clock minus the monotonic clock: changes only when the wall clock is stepped
    (NTP slewing moves both), which would make receipt - stamp meaningless."""
    return (time.time_ns() - time.monotonic_ns()) / 1e6


# ------------------------------------------------------------------------ /proc ---

def proc_cpu(pid):
    """user + system seconds of a process (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid, *keys):
    """Values (kB or counts) of /proc/PID/status lines, e.g. VmHWM, VmRSS, Threads."""
    out = dict.fromkeys(keys, 0)
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in out:
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def proc_pss_kb(pid):
    """Proportional set size: shared pages divided among the processes sharing them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def wait_load(limit, poll=20.0, give_up=1800.0, say=print):
    """Wait until the 1-minute load average is below `limit` (poll every 20 s, up to 30
    min). True when it is."""
    t0 = time.monotonic()
    while True:
        la = loadavg()
        if la < limit:
            say(f"load {la:.2f} < {limit}: starting")
            return True
        if time.monotonic() - t0 > give_up:
            say(f"load still {la:.2f} after {give_up / 60:.0f} min: giving up")
            return False
        say(f"load {la:.2f} >= {limit}: waiting {poll:.0f} s")
        time.sleep(poll)


def _scan():
    """{pid: (ppid, cpu seconds, name)} of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                head, tail = f.read().rsplit(")", 1)
        except OSError:
            continue
        fields = tail.split()
        out[int(d)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK,
                       head.partition("(")[2])
    return out


class Watch:
    """Samples, every `period` seconds while a row runs, (1) the CPU time of processes
    that are not the benchmark's (neither descendants of this one nor `also` pids, e.g.
    Apache's daemonised children; kernel threads left out) — another test run sharing
    the two cores shows up there — and (2) the memory and threads of `groups` of pids."""

    def __init__(self, period=2.0):
        self.period = period
        self.also = set()
        self.groups = {}           # name -> callable returning pids
        self.peaks = collections.defaultdict(lambda: collections.defaultdict(int))
        self._stop = threading.Event()
        self._base = _scan()
        self._last = {}
        self._names = {}
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _ours(self, table, pid):
        me = os.getpid()
        seen = 0
        while pid > 1 and seen < 64:
            if pid == me or pid in self.also:
                return True
            pid = table.get(pid, (0, 0))[0]
            seen += 1
        return False

    def _sample(self):
        table = _scan()
        for pid, (ppid, cpu, name) in table.items():
            if pid == 2 or ppid == 2 or self._ours(table, pid):
                continue
            base = self._base.get(pid, (ppid, 0.0))[1]
            self._last[pid] = max(0.0, cpu - base)
            self._names[pid] = f"{name}[{pid}, parent {ppid}]"
        for name, pids in self.groups.items():
            tot = collections.Counter()
            for pid in pids():
                st = proc_status(pid, "VmRSS", "Threads")
                tot["rss_kb"] += st["VmRSS"]
                tot["threads"] += st["Threads"]
                tot["pss_kb"] += proc_pss_kb(pid)
                tot["procs"] += 1
            for k, v in tot.items():
                self.peaks[name][k] = max(self.peaks[name][k], v)

    def _run(self):
        while not self._stop.wait(self.period):
            self._sample()

    def stop(self):
        self._stop.set()
        self._t.join()
        self._sample()
        top = sorted(((v, p) for p, v in self._last.items() if v > 0.05), reverse=True)[:3]
        return sum(self._last.values()), [f"{self._names[p]} {v:.1f}s" for v, p in top]


# ----------------------------------------------------------------------- servers ---

def bench_limits(n):
    """The live push's abuse limits (issue 9) lifted for the benchmark: its N clients all
    come from 127.0.0.1 and open within a quarter of a second (100 every 20 ms per client
    process), which the defaults (1,000 unauthenticated sessions at once, 50 and 500 per
    address, 5 s to send a good CONNECT) rightly take for a flood. What is measured is the
    fan-out to connected clients, as before those limits existed."""
    return {"max_pending": n, "max_pending_per_address": n, "max_per_address": n,
            "connect_timeout": 60000}


class Driver(siolib.Driver):
    """tests/sio/sio-driver: monitor-agent/agent_sio.c alone."""
    kind = "agent"


class NodeServer:
    """tests/sio/bench-server.js with the same stdin protocol as sio-driver."""
    kind = "node"

    def __init__(self, key):
        env = {**os.environ, "OSPAB_SIO_KEY": key}
        args = [siolib.NODE, str(siolib.SIO_DIR / "bench-server.js")]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1, env=env, cwd=siolib.SIO_DIR)
        self.lines = siolib.Lines(self.proc.stdout, "bench-server.js")
        self.port = int(self.lines.wait(lambda l: l.startswith("listening "), 10).split()[1])

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def sync(self, timeout=60):
        self.send("sync")
        self.lines.wait(lambda l: l == "sync", timeout)

    def stop(self):
        try:
            self.send("quit")
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class RealAgent:
    """ospab-agent (SQLite, `servers` servers on the Proxmox simulator) publishing its own
    live-stats rounds every `interval` seconds; sentAt is its apr_time_now() in ms."""
    kind = "ospab-agent"

    def __init__(self, key, servers, interval, max_clients):
        from agentharness import Agent, sim_cluster
        from simctl import PveSim
        self.dirs = []
        simdir = harness.make_run_dir("pvesim-")
        self.dirs.append(simdir)
        self.sim = PveSim(str(simdir), nodes=("pve",), guests=servers,
                          resources_lag=1.0).start(timeout=60)
        self.agent = None
        try:
            db = harness.prepare_database(harness.SqliteDatabase.create(), with_seed=True)
            self.dirs.append(db.path.parent.parent)
            ts = "'2026-01-01 00:00:00.000'"
            rows = ",".join(f"({i}, 'bench-{i}', 'running', 1, 512, 8, 'Debian 12', 5, "
                            f"'proxmox', 'pve', {99 + i}, 'lxc', {ts}, {ts})"
                            for i in range(1, servers + 1))
            harness.bulk_sql(db, "INSERT INTO vps (id, name, status, cpu, ram, disk, os, "
                                 "user_id, hypervisor, node, vmid, kind, created_at, "
                                 "updated_at) VALUES " + rows + ";")
            self.agent = Agent(db, jwt_secret=key, clusters=[sim_cluster(self.sim, node="pve")],
                               log_level="warn", sections={
                                   "agent": {"poll_interval": "30s",
                                             "live_interval": f"{int(interval * 1000)}ms",
                                             "task_interval": "30s"},
                                   "websocket": {"listen": "127.0.0.1:0",
                                                 "max_clients": str(max_clients),
                                                 **{k: (f"{v // 1000}s"
                                                        if k == "connect_timeout"
                                                        else str(v)) for k, v in
                                                    bench_limits(max_clients).items()},
                                                 "ping_interval": "25s",
                                                 "ping_timeout": "20s"}})
            self.dirs.append(self.agent.rundir)
            self.agent.start(timeout=30)
        except BaseException:
            self.stop()
            raise
        self.proc = self.agent.proc
        self.port = self.agent.port
        self.sim_cpu0 = proc_cpu(self.sim.proc.pid)

    def sim_cpu(self):
        return proc_cpu(self.sim.proc.pid) - self.sim_cpu0

    def stop(self):
        if self.agent is not None:
            bad = self.agent.bad_log_lines()
            if bad:
                print("ospab-agent log:\n  " + "\n  ".join(bad[:10]), file=sys.stderr)
            self.agent.stop()
        self.sim.stop()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


class ProxyApache(harness.Apache):
    """A real Apache httpd (event MPM) in front of a live-push server, configured as
    conf/ospab.conf does it (mod_proxy + mod_proxy_http, ProxyPass upgrade=websocket, no
    mod_proxy_wstunnel), sized for `clients` connections: Apache 2.4 tunnels each websocket
    (and each held long-poll) synchronously, one worker thread per connected client for its
    whole life, so MaxRequestWorkers must exceed the client count. mod_ospab is not loaded:
    only the proxy is measured. Written here rather than with harness.Apache's own
    config (16 threads x 4 children)."""

    def __init__(self, backend_port, clients, threads_per_child=64, margin=None):
        super().__init__(None, load_dbd=False)
        self.backend_port = backend_port
        self.threads_per_child = threads_per_child
        margin = margin if margin is not None else max(threads_per_child, clients // 10)
        self.children = math.ceil((clients + margin) / threads_per_child)
        self.workers = self.children * threads_per_child

    def config_text(self):
        mods = harness.APACHE_MODULES
        r = self.rundir
        be = f"http://127.0.0.1:{self.backend_port}/socket.io/"
        return "\n".join([
            "# written by bench/fanoutlib.py (ProxyApache)",
            f'ServerRoot "{r}"',
            "ServerName 127.0.0.1",
            f"Listen 127.0.0.1:{self.port}",
            "ListenBacklog 4096",
            f'PidFile "{self.pid_file}"',
            f'DefaultRuntimeDir "{r}"',
            f"Mutex file:{r} default",
            f'ErrorLog "{self.error_log}"',
            f"LogLevel {self.log_level}",
            'LogFormat "%h %l %u %t \\"%r\\" %>s %b %D" bench',
            f'CustomLog "{self.access_log}" bench',
            "User www-data",
            "Group www-data",
            f"LoadModule mpm_event_module {mods}/mod_mpm_event.so",
            # every child started at once and none retired: the pool a site needs for
            # this many live clients, there before they come
            f"ServerLimit {self.children}",
            f"StartServers {self.children}",
            f"ThreadLimit {self.threads_per_child}",
            f"ThreadsPerChild {self.threads_per_child}",
            f"MaxRequestWorkers {self.workers}",
            f"MinSpareThreads {self.threads_per_child}",
            f"MaxSpareThreads {self.workers}",
            "MaxConnectionsPerChild 0",
            "GracefulShutdownTimeout 10",
            f"LoadModule authz_core_module {mods}/mod_authz_core.so",
            f"LoadModule proxy_module {mods}/mod_proxy.so",
            f"LoadModule proxy_http_module {mods}/mod_proxy_http.so",
            f'DocumentRoot "{self.docroot}"',
            '<Directory "/">',
            "  AllowOverride None",
            "  Require all denied",
            "</Directory>",
            f'ProxyPass "/socket.io/" "{be}" upgrade=websocket',
            f'ProxyPassReverse "/socket.io/" "{be}"',
        ]) + "\n"

    def write_config(self):
        self.docroot.mkdir(mode=0o755, exist_ok=True)
        self.conf_file.write_text(self.config_text())

    def pids(self):
        return harness.pids_mentioning(self.conf_file)

    def totals(self):
        """Sum over Apache's processes: RSS and PSS (kB), threads, CPU seconds."""
        tot = collections.Counter()
        for pid in self.pids():
            st = proc_status(pid, "VmRSS", "Threads")
            tot["rss_kb"] += st["VmRSS"]
            tot["threads"] += st["Threads"]
            tot["pss_kb"] += proc_pss_kb(pid)
            tot["cpu"] += proc_cpu(pid)
            tot["procs"] += 1
        return tot

    def wait_workers(self, timeout=60):
        """Until every child has started its threads (children + their listener and main
        threads + the parent)."""
        want = self.children * (self.threads_per_child + 1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.totals()
            if t["threads"] >= want:
                return t
            time.sleep(0.5)
        return self.totals()


# ----------------------------------------------------------------------- clients ---

class Clients:
    """N socket.io-client connections over `procs` node processes; client i subscribes
    to server (i % servers) + 1, or with forms="half" (bench/pushbytes) clients 2k and
    2k+1 to server (k % servers) + 1, the odd one to the compact form."""

    def __init__(self, url, token, n, servers, procs, transport, base=0, forms="full"):
        """base: the ms since the epoch that stamps below 10^12 count from."""
        self.n, self.servers = n, servers
        self.subs = collections.Counter((i >> 1) % servers + 1 if forms == "half"
                                        else i % servers + 1 for i in range(n))
        per = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        self.procs, offset = [], 0
        for count in per:
            if not count:
                continue
            p = subprocess.Popen([siolib.NODE, str(siolib.SIO_DIR / "bench-client.js"), url,
                                  token, str(count), str(servers), str(offset), transport,
                                  str(base), forms],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 bufsize=1, cwd=siolib.SIO_DIR)
            self.procs.append((p, siolib.Lines(p.stdout, "bench-client.js")))
            offset += count

    def pids(self):
        return [p.pid for p, _ in self.procs]

    def wait_ready(self, timeout=180):
        deadline = time.monotonic() + timeout
        for _, lines in self.procs:
            lines.wait(lambda l: l == "ready", max(1, deadline - time.monotonic()), "ready")

    def send(self, line):
        for p, _ in self.procs:
            p.stdin.write(line + "\n")
            p.stdin.flush()

    def clock_offsets(self):
        """For each client process, how far its Date.now() lies outside [before, after] of
        this process's clock around the question (0: the same clock)."""
        out = []
        for p, lines in self.procs:
            before = now_ms()
            p.stdin.write("clock\n")
            p.stdin.flush()
            theirs = int(lines.wait(lambda l: l.startswith("clock "), 30, "clock").split()[1])
            after = now_ms()
            out.append(theirs - before if theirs < before else
                       theirs - after if theirs > after else 0)
        return out

    def report(self):
        """Merged over the processes: {(server, sentAt): [latency ms]} and counters."""
        events = collections.defaultdict(list)
        counters = collections.Counter()
        self.send("report")
        for _, lines in self.procs:
            rep = json.loads(lines.wait(lambda l: l.startswith("{"), 120, "report"))
            for k, lat in rep.pop("events").items():
                s, t = k.split(":")
                events[(int(s), int(t))] += lat
            counters.update(rep)
        return events, counters

    def counted(self):
        """What each client counted in the window given with `window T0 T1`
        (bench-client.js), over the processes: a list of dicts."""
        out = []
        self.send("bytes")
        for _, lines in self.procs:
            out += json.loads(lines.wait(lambda l: l.startswith('{"clients"'), 120,
                                         "bytes"))["clients"]
        return out

    def close(self):
        for p, _ in self.procs:
            try:
                p.stdin.close()
            except OSError:
                pass
        for p, _ in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# ------------------------------------------------------------------------ checks ---

def window(events, t0, t1):
    """The publishes (server, sentAt) seen with t0 <= sentAt < t1: {server: [sentAt]}."""
    out = collections.defaultdict(list)
    for s, t in events:
        if t0 <= t < t1:
            out[s].append(t)
    return {s: sorted(ts) for s, ts in out.items()}


def check(subs, publishes, events, exact):
    """Every publish ({server: [sentAt, ...]}) must have reached every client subscribed to
    its server (subs: {server: clients}) exactly once. `exact`: the publishes are known
    (driver, Node), so a receipt of anything else is an error too; otherwise (the agent's
    own rounds, seen through what arrived) every subscribed server must have been published
    to as often as the others (+-1 at the window's ends). Returns (latencies of those
    publishes, sorted; delivered; expected; problems)."""
    problems, lat = [], []
    delivered = expected = 0
    for s, want in subs.items():
        for t in publishes.get(s, []):
            got = events.get((s, t), [])
            expected += want
            delivered += min(len(got), want)
            lat += got
            if len(got) < want:
                problems.append(f"server {s} sentAt {t}: {want - len(got)} of {want} "
                                f"deliveries missing")
            elif len(got) > want:
                problems.append(f"server {s} sentAt {t}: {len(got) - want} duplicates")
    if exact:
        known = {(s, t) for s, ts in publishes.items() for t in ts}
        extra = [k for k in events if k not in known]
        if extra:
            problems.append(f"{len(extra)} events nobody published, e.g. {extra[:3]}")
    else:
        counts = {s: len(publishes.get(s, [])) for s in subs}
        if max(counts.values()) - min(counts.values()) > 1:
            few = sorted(counts, key=counts.get)[:5]
            problems.append(f"publishes per server from {min(counts.values())} to "
                            f"{max(counts.values())} (fewest: servers {few}): publishes "
                            f"missing")
    neg = [x for v in events.values() for x in v if x < 0]
    if neg:
        problems.insert(0, f"{len(neg)} negative latencies (min {min(neg)} ms): the "
                           f"stamp and the receipt were not read from the same clock")
    return sorted(lat), delivered, expected, problems


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[i]


def admin_token(key):
    return authmatrix.token(authmatrix.claims(1, "admin", ttl=3600), key)
