"""Start the real ospab-agent (monitor-agent/ospab-agent) for tests, the demo and the
benchmarks. Plain Python, no pytest:

    from agentharness import Agent
    agent = Agent(db, jwt_secret=apache.jwt_secret, clusters=[sim_cluster(sim)],
                  sections={"agent": {"poll_interval": "1s"}})
    agent.start()              # waits for "listening PORT" (or the start line)
    agent.port                 # the live-push port (websocket on by default)
    agent.kill9(); agent.start()   # crash and restart on the same config
    agent.stop()

The agent runs as www-data when the tests run as root, as in production (it shares the
SQLite file with Apache's children: a root-owned -wal/-shm would lock them out).
"""

import grp
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import harness

# OSPAB_AGENT_BIN: another build (scripts/sanitize runs the tests on an ASan/UBSan one)
AGENT_BIN = Path(os.environ.get("OSPAB_AGENT_BIN")
                 or harness.REPO / "monitor-agent" / "ospab-agent")
# "2026-11-22T19:40:01.123Z [warn] ..." lines at warn or error, and sanitizer reports
BAD_LINE = re.compile(r"^\S+ \[(warn|error)\] |ERROR: (AddressSanitizer|LeakSanitizer)|"
                      r"runtime error:|Segmentation fault")


def sim_cluster(sim, name="main", **extra):
    """A [cluster] section for a tests/pvesim PveSim."""
    c = {"url": sim.url, "token": sim.token, "ca": str(sim.ca), "timeout": "5s"}
    c.update(extra)
    return name, c


class Agent:
    """One ospab-agent process with its own run directory and config file.

    db:        a harness SqliteDatabase / MariadbDatabase
    jwt_secret: the module's OspabJWTKey (HS256) — the websocket checks tokens with it
    clusters:  [(name, {key: value})] for [cluster NAME] sections
    sections:  {"agent": {...}, "alerts": {...}, "smtp": {...}, ...} overriding defaults
    websocket: False turns [websocket] off
    user:      run as this user (and its group, plus www-data's for a shared SQLite file),
               with its config and JWT key root:<group> 0640 as the README's layout has
               them (tests/integration/test_layout.py); default: www-data
    etc:       where the config and the JWT key go (default: the run directory)
    """

    def __init__(self, db, jwt_secret=None, clusters=(), sections=None, websocket=True,
                 rundir=None, log_level="info", user=None, etc=None):
        self.db = db
        self.user = user
        self.jwt_secret = jwt_secret
        self.clusters = list(clusters)
        self.sections = {k: dict(v) for k, v in (sections or {}).items()}
        self.websocket = websocket
        self.rundir = Path(rundir) if rundir else harness.make_run_dir("agent-")
        etc = Path(etc) if etc else self.rundir
        self.conf_file = etc / "agent.conf"
        self.log_file = self.rundir / "agent.log"
        self.jwt_key_file = etc / "jwt.key"
        self.log_level = log_level
        self.proc = None
        self.port = None
        self.starts = 0

    # -- configuration ----------------------------------------------------------------
    def config(self):
        sec = {
            "database": {"driver": self.db.driver, "params": self.db.params},
            "agent": {"log_level": self.log_level, "poll_interval": "1s",
                      "task_interval": "500ms", "live_interval": "1s",
                      "event_interval": "200ms", "backoff_max": "4s"},
        }
        if self.websocket:
            sec["websocket"] = {"listen": "127.0.0.1:0", "ping_interval": "5s",
                                "ping_timeout": "5s"}
            sec["jwt"] = {"algorithm": "HS256", "key": f"file:{self.jwt_key_file}"}
        else:
            sec["websocket"] = {"listen": "off"}
        for name, values in self.sections.items():
            sec.setdefault(name, {}).update(values)
        return sec

    def config_text(self):
        lines = ["# written by tests/integration/agentharness.py"]
        for name, values in self.config().items():
            lines.append(f"[{name}]")
            lines += [f"{k} = {v}" for k, v in values.items() if v is not None]
        for name, values in self.clusters:
            lines.append(f"[cluster {name}]")
            lines += [f"{k} = {v}" for k, v in values.items() if v is not None]
        return "\n".join(lines) + "\n"

    def write_config(self):
        if self.user:
            # the README's layout: root owns them, the agent's group may read them
            gid = grp.getgrnam(self.user).gr_gid
            for path, text in ((self.jwt_key_file, self.jwt_secret),
                               (self.conf_file, self.config_text())):
                if text is not None:
                    harness.write_private(path, text, 0o640)
                    os.chown(path, 0, gid)
            return
        if self.jwt_secret is not None:
            harness.write_private(self.jwt_key_file, self.jwt_secret)
            harness._chown_www(self.jwt_key_file)
        harness.write_private(self.conf_file, self.config_text())
        harness._chown_www(self.conf_file)
        harness._chown_www(self.rundir)

    # -- control ------------------------------------------------------------------------
    def _popen_kw(self):
        kw = {}
        if self.user:
            kw = {"user": self.user, "group": self.user, "extra_groups": [harness.WWW_USER]}
        elif harness._is_root():
            kw = {"user": harness.WWW_USER, "group": harness.WWW_USER}
        return kw

    def check(self):
        """ospab-agent --check: (returncode, output)."""
        self.write_config()
        p = subprocess.run([str(AGENT_BIN), "-c", str(self.conf_file), "--check"],
                           capture_output=True, text=True, timeout=30, **self._popen_kw())
        return p.returncode, p.stdout + p.stderr

    def once(self, timeout=300):
        """ospab-agent --once: (returncode, stdout, stderr)."""
        self.write_config()
        p = subprocess.run([str(AGENT_BIN), "-c", str(self.conf_file), "--once"],
                           capture_output=True, text=True, timeout=timeout, **self._popen_kw())
        return p.returncode, p.stdout, p.stderr

    def start(self, timeout=20, write=True):
        if write:
            self.write_config()
        self.starts += 1
        log = open(self.log_file, "ab")
        log.write(f"==== start {self.starts}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [str(AGENT_BIN), "-c", str(self.conf_file), "--foreground"],
            stdout=subprocess.PIPE, stderr=log, **self._popen_kw())
        log.close()
        deadline = time.time() + timeout
        if self.websocket:
            line = b""
            while time.time() < deadline:
                line = self.proc.stdout.readline()
                if line.startswith(b"listening "):
                    self.port = int(line.split()[1])
                    break
                if not line and self.proc.poll() is not None:
                    break
            if self.port is None or self.proc.poll() is not None:
                raise harness.HarnessError(f"ospab-agent did not start:\n{self.log_tail()}")
        else:
            while time.time() < deadline:
                if "ospab-agent started" in self.log_text().split(f"==== start {self.starts}")[-1]:
                    break
                if self.proc.poll() is not None:
                    raise harness.HarnessError(f"ospab-agent exited:\n{self.log_tail()}")
                time.sleep(0.05)
            else:
                raise harness.HarnessError(f"ospab-agent did not start:\n{self.log_tail()}")
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=20):
        """SIGTERM; returns the exit status."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise harness.HarnessError("ospab-agent ignored SIGTERM")
        rc = self.proc.returncode
        self.proc.stdout.close()
        self.proc = None
        return rc

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        if self.proc:
            self.proc.stdout.close()
        self.proc = None

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def url(self):
        return f"http://127.0.0.1:{self.port}"

    # -- logs ----------------------------------------------------------------------------
    def log_text(self):
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def bad_log_lines(self, allow=()):
        bad = []
        for line in self.log_text().splitlines():
            if BAD_LINE.search(line) and not any(re.search(a, line) for a in allow):
                bad.append(line)
        return bad

    def wait_log(self, pattern, timeout=15.0):
        deadline = time.time() + timeout
        rx = re.compile(pattern)
        while time.time() < deadline:
            if rx.search(self.log_text()):
                return True
            time.sleep(0.05)
        return False

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.running():
            self.stop()
