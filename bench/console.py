"""bench/console: the console proxy (issue 15, docs/console.md) against Proxmox's own
vncwebsocket, in one run.

    bench/console [--rounds 7] [--updates 1000] [--echoes 200] [--consoles 10,50,200]
                  [--db sqlite|mariadb]

On 127.0.0.1: tests/pvesim (12 containers and 2 KVM guests on three nodes, since a
Proxmox node has 100 console ports; its real termproxy and RFB servers behind
vncwebsocket, over verified TLS), Apache with mod_ospab proxying
/console/ws to ospab-agent as conf/ospab.conf does (its MPM sized so that every open
console has a worker thread), and the agent with [console] max_per_user and max_sessions
raised above the largest --consoles. The client is one plain RFC 6455 client
(tests/pvesim/simctl.py's WebSocket) for both paths: through Apache it speaks the console
page's protocol (a one-time token from POST /api/server/console, then RFB with security
None, or termproxy's messages); directly it is simctl's own vncproxy/termproxy client over
TLS, as the agent is towards Proxmox.

1. Relay throughput: the same RFB client pipelines --updates non-incremental
   FramebufferUpdateRequests of the whole 64x48 screen (32 bpp: 12,304 bytes an update)
   and reads them all; through Apache -> agent -> simulator ("ours") and straight to the
   simulator's vncwebsocket ("direct"), a fresh console each, the two taking turns for
   --rounds rounds (medians). The CPU seconds per MB relayed of the agent, of Apache, of
   the simulator and of this client are from /proc/PID/stat (utime + stime) around each
   round: the agent's is its own cost, the simulator renders every update in Python.
2. Terminal round trip: --echoes times per round, one input byte (termproxy's "0:1:x") and
   the wait for the shell's echo of it; through the agent and directly to termproxy, taking
   turns; median and p99 over all.
3. Memory: the agent's VmRSS fresh, idle (after one console opened and closed: its TLS
   client context and the workers' statements exist), then with each --consoles count of
   terminal consoles open at once (opened one after the other, each up to its prompt),
   after they are closed, and with the largest count open again (memory kept by the
   allocator is reused, or it grows: a leak); kB per console over idle. Apache's VmRSS
   (all processes) beside it.

Exit status 1 when a console could not be opened, bytes went missing, or Apache or the
agent logged a warning or an error."""
import argparse
import json
import os
import statistics
import struct
import sys
import time
import urllib.parse
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import bench  # noqa: E402  (start_db, populate: the users)
import fanoutlib as fl  # noqa: E402  (proc_cpu, proc_status, percentile, loadavg)
import soak  # noqa: E402  (SoakApache: the MPM sized for proxied websockets)
import authmatrix  # noqa: E402  (tests/integration: signed access tokens)
import harness  # noqa: E402
from agentharness import Agent, sim_cluster  # noqa: E402
from simctl import PveSim, RfbClient, WebSocket  # noqa: E402

NODES = ("pve1", "pve2", "pve3")   # Proxmox has 100 console ports (5900-5999) a node
USER = 1000                       # bench.populate's first user
LXC = 12                          # containers 100..111, four in five running
KVM = 2                           # KVM guests 112, 113
PROTOCOL = "ospab-console"


def say(msg):
    print(f"console: {msg}", file=sys.stderr, flush=True)


class _Plain:
    """simctl's WebSocket speaks TLS to Proxmox; Apache is plain HTTP here."""
    def wrap_socket(self, sock, server_hostname=None):
        return sock


# ------------------------------------------------------------------------- stack ---

def node_of(vmid):
    """pvesim --guests/--qemu-guests spread the guests round-robin over the nodes."""
    return NODES[(vmid - 100) % len(NODES)]


def guests():
    """(running containers, a running KVM guest): pvesim --guests/--qemu-guests make
    vmids from 100, containers first, and start four in five."""
    lxc = [v for v in range(100, 100 + LXC) if v % 5]
    kvm = next(v for v in range(100 + LXC, 100 + LXC + KVM) if v % 5)
    return lxc, kvm


def add_rows(db, lxc, kvm):
    """A vps row of USER's for every guest used; {vmid: vps id}."""
    ts = "'2026-01-01 00:00:00.000'"
    rows = [(v, "lxc") for v in lxc] + [(kvm, "qemu")]
    harness.bulk_sql(db, "BEGIN;\n" + "\n".join(
        f"INSERT INTO vps (name, status, cpu, ram, disk, os, user_id, hypervisor, node, vmid, "
        f"kind, created_at, updated_at) VALUES ('c{v}', 'running', 1, 512, 8, 'Debian 12', "
        f"{USER}, 'proxmox', '{node_of(v)}', {v}, '{kind}', {ts}, {ts});" for v, kind in rows)
        + "\nCOMMIT;\n")
    return {int(r["vmid"]): int(r["id"]) for r in db.query("SELECT id, vmid FROM vps")}


def apache_conf(sim, agent_port):
    mods = harness.APACHE_MODULES
    be = f"http://127.0.0.1:{agent_port}/console/ws"
    return [f"OspabProxmoxURL {sim.url}", f"OspabProxmoxToken {sim.token}",
            f"OspabProxmoxCA {sim.ca}", f"OspabProxmoxNode {NODES[0]}",
            "OspabProxmoxStorage local-lvm", "OspabProxmoxBridge vmbr0",
            "OspabProxmoxTimeout 3 10",
            f"LoadModule proxy_module {mods}/mod_proxy.so",
            f"LoadModule proxy_http_module {mods}/mod_proxy_http.so",
            f"LoadModule proxy_wstunnel_module {mods}/mod_proxy_wstunnel.so",
            f'ProxyPass "/console/ws" "{be}" upgrade=websocket']


def setup(args, stack):
    say(f"pvesim: {LXC} containers and {KVM} KVM guests on {len(NODES)} nodes")
    sim = PveSim(str(harness.make_run_dir("pvesim-")), nodes=NODES, guests=LXC,
                 qemu_guests=KVM, resources_lag=0.5, auth_fail_delay=0.5)
    sim.start(timeout=60)
    stack["sim"] = sim
    db, server = bench.start_db(args.db)
    stack["mariadb"] = server
    bench.populate(db, users=1, per_user=0)
    lxc, kvm = guests()
    ids = add_rows(db, lxc, kvm)
    agent_port = harness.free_port()
    most = max(args.consoles)
    httpd = soak.SoakApache(db, most, extra_conf=apache_conf(sim, agent_port))
    httpd.start(timeout=60)
    stack["httpd"] = httpd
    say(f"Apache {httpd.url('')}: {httpd.children} children x {soak.THREADS_PER_CHILD} "
        f"threads ({httpd.rundir})")
    # the agent's other work (polls, live stats, tasks) kept out of its CPU figures
    agent = Agent(db, jwt_secret=httpd.jwt_secret, clusters=[sim_cluster(sim, timeout="30s")],
                  log_level="warn",
                  sections={"agent": {"poll_interval": "1h", "live_interval": "1h",
                                      "task_interval": "600s", "event_interval": "600s"},
                            "websocket": {"listen": f"127.0.0.1:{agent_port}"},
                            "console": {"max_per_user": str(most + 8),
                                        "max_sessions": str(most + 8)}})
    agent.start(timeout=60)
    stack["agent"] = agent
    say(f"agent pid {agent.pid} ({agent.rundir})")
    return sim, httpd, agent, ids, lxc, kvm


class Site:
    """The console page's side, through Apache: a token, then /console/ws."""

    def __init__(self, httpd, ids):
        self.httpd = httpd
        self.ids = ids
        self.http = requests.Session()
        self.jwt = authmatrix.token(authmatrix.claims(USER, "user", ttl=6 * 3600),
                                    httpd.jwt_secret)

    def token(self, vmid):
        r = self.http.post(self.httpd.url("/api/server/console"), timeout=30,
                           json={"serverId": self.ids[vmid]},
                           headers={"Authorization": f"Bearer {self.jwt}"})
        if r.status_code != 200:
            raise RuntimeError(f"POST /api/server/console: {r.status_code} {r.text[:300]}")
        frag = urllib.parse.urlsplit(r.json()["url"]).fragment
        return dict(urllib.parse.parse_qsl(frag))["token"]

    def open(self, vmid):
        """A console through Apache and the agent, past the agent's {"status":"ok"}."""
        token = self.token(vmid)
        u = urllib.parse.urlsplit(self.httpd.url("/"))
        ws = WebSocket.connect(u.hostname, u.port, _Plain(), "/console/ws",
                               protocols=(PROTOCOL,), timeout=30)
        ws.send(json.dumps({"token": token}))
        first = ws.recv(timeout=30)
        answer = json.loads(first) if first is not None else {"closed": ws.close_code}
        if answer.get("status") != "ok":
            ws.shutdown()
            raise RuntimeError(f"the agent refused the console of {vmid}: {answer}")
        return ws


def read_until(ws, needle, got=b"", timeout=10):
    deadline = time.monotonic() + timeout
    while needle not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {needle!r} in {got[-200:]!r}")
        chunk = ws.recv(timeout=left)
        if chunk is None:
            raise EOFError(f"closed ({ws.close_code}) before {needle!r}: {got[-200:]!r}")
        got += chunk
    return got


# --------------------------------------------------------------- 1. throughput ---

def rfb_via_agent(site, kvm):
    """An RfbClient past ServerInit through the agent: security type None, as noVNC."""
    rfb = RfbClient(site.open(kvm))
    if rfb.read(12) != b"RFB 003.008\n":
        raise RuntimeError("the agent did not offer RFB 3.8")
    rfb.ws.send(b"RFB 003.008\n")
    if rfb.read(rfb.read(1)[0]) != b"\x01":
        raise RuntimeError("the agent offered more than None")
    rfb.ws.send(b"\x01")
    if rfb.read(4) != b"\0\0\0\0":
        raise RuntimeError("security result not 0")
    rfb.ws.send(b"\x01")
    init = rfb.read(24)
    rfb.width, rfb.height = struct.unpack(">HH", init[:4])
    rfb.pixel_format = struct.unpack(">BBBBHHHBBB3x", init[4:20])
    rfb.read(struct.unpack(">I", init[20:24])[0])
    return rfb


def rfb_direct(sim, kvm):
    return sim.vnc(kvm, node=node_of(kvm))


def pump(rfb, n):
    """n pipelined full-screen updates: (bytes, seconds). Every byte is counted, the first
    update's header checked, and nothing may come beyond the n updates."""
    per = 16 + rfb.width * rfb.height * rfb.pixel_format[0] // 8
    want = n * per
    req = struct.pack(">BBHHHH", 3, 0, 0, 0, rfb.width, rfb.height)
    got = bytearray(rfb.buf)
    rfb.buf.clear()
    t0 = time.perf_counter()
    rfb.ws.send(req * n)
    size = len(got)
    while size < want:
        chunk = rfb.ws.recv(timeout=60)
        if chunk is None:
            raise EOFError(f"the console closed after {size} of {want} bytes")
        if len(got) < 16:
            got += chunk
        size += len(chunk)
    dt = time.perf_counter() - t0
    head = struct.unpack(">BxHHHHHi", bytes(got[:16]))
    if head != (0, 1, 0, 0, rfb.width, rfb.height, 0) or size != want:
        raise RuntimeError(f"unexpected updates: first header {head}, {size} of {want} bytes")
    return size, dt


class Cpu:
    """CPU seconds (utime + stime) of some processes between start() and stop()."""

    def __init__(self, pids):
        self.pids = pids

    def now(self):
        return {k: sum(fl.proc_cpu(p) for p in (ps() if callable(ps) else ps))
                for k, ps in self.pids.items()} | {"client": time.process_time()}

    def start(self):
        self.t0 = self.now()

    def stop(self):
        t1 = self.now()
        return {k: t1[k] - self.t0[k] for k in t1}


def throughput(args, sim, httpd, agent, site, kvm):
    apache_pids = lambda: harness.pids_mentioning(httpd.conf_file)  # noqa: E731
    cpu = Cpu({"agent": [agent.pid], "apache": apache_pids, "sim": [sim.proc.pid]})
    paths = {"ours": lambda: rfb_via_agent(site, kvm), "direct": lambda: rfb_direct(sim, kvm)}
    for name, opener in paths.items():            # warm up: TLS sessions, pools, the caches
        rfb = opener()
        pump(rfb, min(50, args.updates))
        rfb.ws.close()
        rfb.ws.shutdown()
    runs = {name: [] for name in paths}
    for r in range(args.rounds):
        order = list(paths) if r % 2 == 0 else list(reversed(paths))
        for name in order:
            rfb = paths[name]()
            cpu.start()
            size, dt = pump(rfb, args.updates)
            used = cpu.stop()
            rfb.ws.close()
            rfb.ws.shutdown()
            runs[name].append({"bytes": size, "s": dt, "cpu": used})
            say(f"round {r + 1} {name:6}: {size / dt / 1e6:6.2f} MB/s "
                f"({size} bytes in {dt:.3f} s)")
    out = {}
    for name, rs in runs.items():
        mb = sum(x["bytes"] for x in rs) / 1e6
        out[name] = {"mb_s": statistics.median(x["bytes"] / x["s"] / 1e6 for x in rs),
                     "rounds_mb_s": [x["bytes"] / x["s"] / 1e6 for x in rs],
                     "cpu_s_per_mb": {k: sum(x["cpu"][k] for x in rs) / mb
                                      for k in rs[0]["cpu"]},
                     "mb": mb}
    return out


# -------------------------------------------------------------- 2. round trip ---

def echoes(ws, n, out, clear_every=100):
    """n times: one typed byte, and the wait for the shell's echo of it."""
    for i in range(n):
        t0 = time.perf_counter()
        ws.send(b"0:1:x")
        got = b""
        while b"x" not in got:
            chunk = ws.recv(timeout=10)
            if chunk is None:
                raise EOFError(f"the terminal closed ({ws.close_code})")
            got += chunk
        out.append(time.perf_counter() - t0)
        if i % clear_every == clear_every - 1:    # ^C: a fresh line, the prompt again
            ws.send(b"0:1:\x03")
            read_until(ws, b"# ")


def round_trip(args, sim, site, vmid):
    def ours():
        ws = site.open(vmid)
        read_until(ws, b"# ")
        return ws

    def direct():
        term = sim.termproxy(vmid, node=node_of(vmid))
        term.read_until(rb"# $")
        return term.ws
    paths = {"ours": ours, "direct": direct}
    lat = {name: [] for name in paths}
    for name, opener in paths.items():           # warm up
        ws = opener()
        echoes(ws, 20, [])
        ws.close()
        ws.shutdown()
    for r in range(args.rounds):
        order = list(paths) if r % 2 == 0 else list(reversed(paths))
        for name in order:
            ws = paths[name]()
            echoes(ws, args.echoes, lat[name])
            ws.close()
            ws.shutdown()
    out = {}
    for name, v in lat.items():
        v.sort()
        out[name] = {"n": len(v), "p50_ms": fl.percentile(v, 0.5) * 1000,
                     "p99_ms": fl.percentile(v, 0.99) * 1000}
    return out


# ------------------------------------------------------------------- 3. memory ---

def apache_kb(httpd):
    return sum(fl.proc_status(p, "VmRSS")["VmRSS"]
               for p in harness.pids_mentioning(httpd.conf_file))


def memory(args, httpd, agent, site, lxc, fresh):
    def sample(what, n):
        time.sleep(1.0)
        st = fl.proc_status(agent.pid, "VmRSS", "RssAnon")
        row = {"what": what, "consoles": n, "agent_kb": st["VmRSS"],
               "agent_anon_kb": st["RssAnon"], "apache_kb": apache_kb(httpd)}
        say(f"memory: {what}: agent {row['agent_kb']} kB, Apache {row['apache_kb']} kB")
        return row
    ws = site.open(lxc[0])                       # one console: the one-time set-up
    read_until(ws, b"# ")
    ws.close()
    ws.shutdown()
    time.sleep(1.0)
    rows = [fresh, sample("idle (after one console)", 0)]
    def hold(counts, label):
        held = []
        try:
            for n in counts:
                t0 = time.monotonic()
                before = len(held)
                while len(held) < n:
                    ws = site.open(lxc[len(held) % len(lxc)])
                    held.append(ws)
                    read_until(ws, b"# ")
                say(f"{n} consoles open ({time.monotonic() - t0:.1f} s for the last "
                    f"{n - before})")
                rows.append(sample(label % n, n))
        finally:
            for ws in held:
                ws.close()
                ws.shutdown()
        time.sleep(2.0)
        rows.append(sample("all closed", 0))
    hold(args.consoles, "%d terminals open")
    hold(args.consoles[-1:], "%d open again")
    return rows


# ----------------------------------------------------------------------- main ---

def parse():
    ap = argparse.ArgumentParser(prog="bench/console", description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=["sqlite", "mariadb"], default="sqlite")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--updates", type=int, default=1000,
                    help="full-screen updates per round and path (12,304 bytes each)")
    ap.add_argument("--echoes", type=int, default=200, help="echoes per round and path")
    ap.add_argument("--consoles", default="10,50,200",
                    help="open terminal consoles at which the agent's RSS is read")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    args.consoles = sorted({int(x) for x in args.consoles.split(",") if x.strip()})
    if not args.consoles or args.consoles[0] < 1 or args.consoles[-1] > 80 * len(NODES):
        ap.error(f"--consoles: counts from 1 to {80 * len(NODES)} (the simulated nodes' "
                 f"console ports)")
    return args


def main():
    args = parse()
    stack = {}
    problems = []
    try:
        sim, httpd, agent, ids, lxc, kvm = setup(args, stack)
        site = Site(httpd, ids)
        st = fl.proc_status(agent.pid, "VmRSS", "RssAnon")
        fresh = {"what": "fresh (no console yet)", "consoles": 0, "agent_kb": st["VmRSS"],
                 "agent_anon_kb": st["RssAnon"], "apache_kb": apache_kb(httpd)}
        mem = memory(args, httpd, agent, site, lxc, fresh)
        tput = throughput(args, sim, httpd, agent, site, kvm)
        rtt = round_trip(args, sim, site, lxc[0])
        problems += [f"Apache's error log: {l}" for l in httpd.bad_log_lines()[:20]]
        problems += [f"agent's log: {l}" for l in agent.bad_log_lines()[:20]]
        report(args, mem, tput, rtt, problems)
    finally:
        for name in ("agent", "httpd", "sim", "mariadb"):
            if stack.get(name):
                try:
                    stack[name].stop()
                except Exception as e:  # noqa: BLE001  (stop the rest all the same)
                    say(f"stopping {name}: {e}")
    return 1 if problems else 0


def report(args, mem, tput, rtt, problems):
    per = 16 + 64 * 48 * 4
    print(f"bench/console, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
          f"{args.db}; {args.rounds} rounds taking turns; {os.cpu_count()} CPUs shared by "
          f"the client, Apache, the agent and the simulator; load {fl.loadavg():.2f}")
    o, d = tput["ours"], tput["direct"]
    print(f"\n1. Relay throughput: {args.updates} pipelined full-screen updates "
          f"({per:,} bytes each) per round, medians of the rounds")
    print(f"{'path':40} {'MB/s':>7}  {'rounds':30} {'CPU s per MB: agent':>20} "
          f"{'Apache':>7} {'sim':>6} {'client':>7}")
    for name, label in (("ours", "ours (Apache -> agent -> simulator)"),
                        ("direct", "direct (simulator's vncwebsocket, TLS)")):
        r = tput[name]
        c = r["cpu_s_per_mb"]
        print(f"{label:40} {r['mb_s']:7.2f}  "
              f"{' '.join(f'{x:.2f}' for x in r['rounds_mb_s']):30} "
              f"{c['agent']:20.4f} {c['apache']:7.4f} {c['sim']:6.3f} {c['client']:7.3f}")
    ratio = o["mb_s"] / d["mb_s"]
    print(f"ours/direct {ratio:.3f}; the agent used {o['cpu_s_per_mb']['agent'] * 1000:.1f} ms "
          f"of CPU per MB relayed (Apache {o['cpu_s_per_mb']['apache'] * 1000:.1f} ms); the "
          f"simulator {o['cpu_s_per_mb']['sim'] * 1000:.0f} ms per MB it rendered")
    sim_mb_s = 1 / d["cpu_s_per_mb"]["sim"]
    print(f"  the simulator renders every update in Python: {d['cpu_s_per_mb']['sim'] * 1000:.0f}"
          f" ms of CPU per MB, at most {sim_mb_s:.1f} MB/s on a whole core; it bounds both "
          f"paths, and on {os.cpu_count()} CPUs the agent's and Apache's work takes from it. "
          f"The agent alone would relay {1 / o['cpu_s_per_mb']['agent']:.0f} MB per CPU "
          f"second")
    print(f"\n2. Terminal round trip: one typed byte to its echo, {args.echoes} per round "
          f"and path, {rtt['ours']['n']} each")
    print(f"{'path':40} {'p50 ms':>7} {'p99 ms':>7}")
    for name, label in (("ours", "ours (Apache -> agent -> termproxy)"),
                        ("direct", "direct (termproxy's vncwebsocket, TLS)")):
        r = rtt[name]
        print(f"{label:40} {r['p50_ms']:7.3f} {r['p99_ms']:7.3f}")
    print(f"ours - direct: p50 {rtt['ours']['p50_ms'] - rtt['direct']['p50_ms']:+.3f} ms, "
          f"p99 {rtt['ours']['p99_ms'] - rtt['direct']['p99_ms']:+.3f} ms")
    idle = next(m for m in mem if m["what"].startswith("idle"))
    print("\n3. Memory (VmRSS) with terminal consoles open")
    print(f"{'state':28} {'consoles':>8} {'agent kB':>9} {'anon kB':>8} {'kB/console':>10} "
          f"{'Apache kB':>10} {'kB/console':>10}")
    for m in mem:
        n = m["consoles"]
        a = f"{(m['agent_kb'] - idle['agent_kb']) / n:10.1f}" if n else f"{'':10}"
        h = f"{(m['apache_kb'] - idle['apache_kb']) / n:10.1f}" if n else f"{'':10}"
        print(f"{m['what']:28} {n:8d} {m['agent_kb']:9d} {m['agent_anon_kb']:8d} {a} "
              f"{m['apache_kb']:10d} {h}")
    if problems:
        print("\nproblems:")
        for p in problems:
            print(f"  {p}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "throughput": tput,
                                               "round_trip": rtt, "memory": mem,
                                               "problems": problems}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
