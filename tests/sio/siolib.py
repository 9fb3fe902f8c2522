"""Helpers for tests/integration/test_sio.py and bench/fanout: the sio-driver process
(monitor-agent/agent_sio.c alone), the node clients of tests/sio/*.js, raw Engine.IO
websockets, and the Apache lines that put the driver behind ProxyPass."""

import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path

SIO_DIR = Path(__file__).resolve().parent
REPO = SIO_DIR.parents[1]
DRIVER = Path(os.environ.get("OSPAB_SIO_DRIVER") or SIO_DIR / "sio-driver")  # e.g. an ASan build
NODE = os.environ.get("OSPAB_NODE", "node")
APACHE_MODULES = Path("/usr/lib/apache2/modules")


def proxy_conf(port):
    """Apache lines: /socket.io/ to the driver, websocket upgrades included."""
    return [
        f"LoadModule proxy_module {APACHE_MODULES}/mod_proxy.so",
        f"LoadModule proxy_http_module {APACHE_MODULES}/mod_proxy_http.so",
        f"LoadModule proxy_wstunnel_module {APACHE_MODULES}/mod_proxy_wstunnel.so",
        f"ProxyPass /socket.io/ http://127.0.0.1:{port}/socket.io/ upgrade=websocket",
    ]


def small_buffers_conf():
    """Socket buffers Apache would otherwise let the kernel grow to tens of MB per
    tunnel on loopback: with them a reader that stops shows up at the agent within a
    few MB, which is what a slow-consumer test needs to see."""
    return ["ProxyReceiveBufferSize 65536", "SendBufferSize 65536"]


class Lines:
    """Reads a process's stdout lines on a thread; wait() for one matching a test."""

    def __init__(self, stream, name):
        self.q = queue.Queue()
        self.seen = []
        self.skipped = []
        self.name = name
        self.t = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.t.start()

    def _pump(self, stream):
        for line in stream:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def wait(self, pred, timeout=10.0, what="line"):
        """The first line not yet returned for which pred(line) is true (lines skipped by
        an earlier wait stay available to later ones)."""
        for i, line in enumerate(self.skipped):
            if pred(line):
                del self.skipped[i]
                return line
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no {what} in {timeout}s; saw {self.seen[-20:]}")
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.q.put(None)
                raise EOFError(f"{self.name} ended; saw {self.seen[-20:]}")
            self.seen.append(line)
            if pred(line):
                return line
            self.skipped.append(line)

    def drain(self, wait=0.0):
        """Lines that arrive within `wait` seconds (or are already there)."""
        got, self.skipped = self.skipped, []
        deadline = time.monotonic() + wait
        while True:
            try:
                line = self.q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return got
            if line is None:
                self.q.put(None)
                return got
            self.seen.append(line)
            got.append(line)


class Driver:
    """tests/sio/sio-driver with HS256 auth; key in the environment, not on argv."""

    def __init__(self, key, own=(), **opts):
        args = [str(DRIVER), "--jwt-key-env", "OSPAB_SIO_KEY"]
        if own:
            args += ["--own", ",".join(f"{u}:{s}" for u, s in own)]
        for k, v in opts.items():
            args += ["--" + k.replace("_", "-"), str(v)]
        self.stderr_path = Path(os.environ.get("OSPAB_SIO_LOG", "/dev/null"))
        env = {**os.environ, "OSPAB_SIO_KEY": key}
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env, bufsize=1)
        self.lines = Lines(self.proc.stdout, "sio-driver")
        self.err = []
        threading.Thread(target=self._errpump, daemon=True).start()
        line = self.lines.wait(lambda l: l.startswith("listening "), 10, "listening line")
        self.port = int(line.split()[1])

    def _errpump(self):
        for line in self.proc.stderr:
            self.err.append(line.rstrip("\n"))

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def emit(self, server, event, data):
        self.send(f"emit {server} {event} {json.dumps(data, separators=(',', ':'))}")

    def sync(self, timeout=10):
        self.send("sync")
        self.lines.wait(lambda l: l == "sync", timeout, "sync")

    def stats(self):
        self.send("stats")
        line = self.lines.wait(lambda l: l.startswith("stats "), 10, "stats")
        return json.loads(line[6:])

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return -1

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / tick

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class NodeClient:
    """One tests/sio/*.js client: events come back as dicts."""

    def __init__(self, script, *args):
        self.proc = subprocess.Popen([NODE, str(SIO_DIR / script), *map(str, args)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1,
                                     cwd=SIO_DIR)
        self.lines = Lines(self.proc.stdout, script)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait(self, ev, timeout=10, **match):
        def pred(line):
            try:
                o = json.loads(line)
            except ValueError:
                return False
            return o.get("ev") == ev and all(o.get(k) == v for k, v in match.items())
        return json.loads(self.lines.wait(pred, timeout, f"{ev} {match}"))

    def events(self, wait=0.0):
        return [json.loads(l) for l in self.lines.drain(wait)]

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
