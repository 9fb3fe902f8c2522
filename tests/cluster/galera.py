"""A three-node MariaDB Galera cluster on 127.0.0.1 for the cluster tests (issue 18).
Plain Python, no pytest:

    from .galera import GaleraCluster        (tests/cluster is a package)
    cluster = GaleraCluster(harness.make_run_dir("galera-")).start()
    db = cluster.create_database("ospab")        # through node 1; replicates
    cluster.database(2, "ospab")                 # the same database, reached on node 2
    cluster.nodes[2].kill9(); cluster.nodes[2].start(); cluster.wait_synced()
    cluster.stop()

Each node is a harness.Mariadb (its datadir, socket, client port, error log and the
harness's sql/query/create_database) started with Galera's options instead of the
harness's single-server ones: --no-defaults, wsrep on, its own group-communication,
IST and SST ports, binlog_format=ROW, innodb_autoinc_lock_mode=2, wsrep_sync_wait=1 (the
settings docs/scaling.md asks for), rsync state transfer.
The servers run as the `mysql` user (the state transfer fails as root), so every node's
directory belongs to mysql; it stays 0755 so that Apache's www-data children reach the
socket. Node 1 bootstraps the cluster (--wsrep-new-cluster), the others join with an
empty datadir and get it by SST (or IST after a kill -9 and restart).
"""

import os
import pwd
import random
import secrets
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import harness

PROVIDER = "/usr/lib/galera/libgalera_smm.so"
MYSQL_USER = "mysql"
# Failure detection tuned for a test on one machine: a kill -9'ed node is declared dead
# after ~2 s instead of Galera's default 5-15 s (evs.* in Galera's documentation);
# gcache large enough for the IST of everything a test writes while a node is down.
PROVIDER_OPTIONS = ("evs.keepalive_period=PT0.5S;evs.suspect_timeout=PT2S;"
                    "evs.inactive_check_period=PT0.5S;evs.inactive_timeout=PT4S;"
                    "evs.install_timeout=PT4S;gcache.size=128M;pc.wait_prim_timeout=PT30S")
SST_TOOLS = ("/usr/bin/wsrep_sst_rsync", "/usr/bin/rsync")


class GaleraError(harness.HarnessError):
    pass


def _mysql_ids():
    pw = pwd.getpwnam(MYSQL_USER)
    return pw.pw_uid, pw.pw_gid


def _chown_tree(path, uid, gid):
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def _ephemeral_range():
    try:
        lo, hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


_taken = set()


def fixed_port(host="127.0.0.1"):
    """A free TCP port below the kernel's ephemeral range. A node's ports are chosen once
    and bound much later (the IST listener only when a restarted node rejoins); a port the
    OS hands out (harness.free_port) may meanwhile be the local end of some outgoing
    connection — Galera's own among them — and the bind fails. Ports below the range are
    never given to outgoing connections."""
    lo, _ = _ephemeral_range()
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(max(1024, lo - 12000), lo)
        if port in _taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _taken.add(port)
        return port
    raise GaleraError("no free port below the ephemeral range")


class GaleraNode(harness.Mariadb):
    """One node of a GaleraCluster (1-based `index`). Its ports are chosen once, so that a
    restarted node has the address the others know it by."""

    def __init__(self, cluster, index, base, password):
        super().__init__(base=base)
        self.cluster = cluster
        self.index = index
        self.name = f"node{index}"
        self.password = password            # the same ospab password on every node
        self.port, self.gport, self.ist_port, self.sst_port = (fixed_port() for _ in range(4))
        self.starts = 0

    @property
    def gcomm(self):
        return f"127.0.0.1:{self.gport}"

    def argv(self, new_cluster=False):
        peers = ",".join(n.gcomm for n in self.cluster.nodes)
        args = [
            self._first(self.SERVER_CANDIDATES), "--no-defaults", f"--user={MYSQL_USER}",
            f"--datadir={self.datadir}", f"--socket={self.socket}", f"--port={self.port}",
            "--bind-address=127.0.0.1", f"--pid-file={self.pid_file}",
            f"--log-error={self.log_file}", "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=48M",
            # test data need not survive a power cut (Galera's copies are the durability)
            "--innodb-flush-log-at-trx-commit=2", "--max-connections=500",
            "--skip-log-bin", "--binlog-format=ROW", "--innodb-autoinc-lock-mode=2",
            "--default-storage-engine=InnoDB",
            "--wsrep-on=ON", f"--wsrep-provider={PROVIDER}",
            f"--wsrep-cluster-name={self.cluster.name}",
            f"--wsrep-cluster-address=gcomm://{peers}",
            f"--wsrep-node-name={self.name}", "--wsrep-node-address=127.0.0.1",
            f"--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{self.gport};"
            f"ist.recv_addr=127.0.0.1:{self.ist_port};{PROVIDER_OPTIONS}",
            f"--wsrep-sst-receive-address=127.0.0.1:{self.sst_port}",
            "--wsrep-sst-method=rsync", "--wsrep-slave-threads=2",
            # read-your-writes across nodes, as docs/scaling.md has every node configured: a
            # read first waits until its node has applied what was committed before it
            "--wsrep-sync-wait=1",
            # every certification failure and brute-force abort in the node's error log,
            # with the keys and statements involved (what a failing test points at)
            "--wsrep-log-conflicts=ON",
        ]
        if new_cluster:
            args.append("--wsrep-new-cluster")
        return args

    def start(self, new_cluster=False, timeout=120):
        """Starts mariadbd and returns once it answers on its socket (a joiner answers only
        after its state transfer); wait_synced() for Galera's view of it."""
        uid, gid = _mysql_ids()
        os.chown(self.base, uid, gid)
        os.chmod(self.base, 0o755)
        if not self.datadir.exists():
            self.datadir.mkdir(mode=0o700)
            os.chown(self.datadir, uid, gid)
            if new_cluster:
                # the bootstrap node gets the system tables; joiners get everything by SST
                proc = subprocess.run(
                    [self._first(self.INSTALL_CANDIDATES), "--no-defaults",
                     f"--user={MYSQL_USER}", f"--datadir={self.datadir}",
                     "--auth-root-authentication-method=normal", "--skip-test-db"],
                    capture_output=True, text=True, timeout=120)
                if proc.returncode != 0:
                    raise GaleraError("mariadb-install-db failed:\n" + proc.stdout + proc.stderr)
                _chown_tree(self.datadir, uid, gid)
        self.starts += 1
        with open(self.log_file, "ab") as f:
            f.write(f"==== start {self.starts} of {self.name}\n".encode())
        os.chown(self.log_file, uid, gid)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
        self.proc = subprocess.Popen(self.argv(new_cluster), env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.alive_sql():
            if self.proc.poll() is not None:
                raise GaleraError(f"{self.name} exited at start:\n" + self.log_tail())
            if time.monotonic() > deadline:
                raise GaleraError(f"{self.name} did not answer in time:\n" + self.log_tail())
            time.sleep(0.2)
        return self

    def alive_sql(self):
        r = subprocess.run([self.ADMIN, "--no-defaults", f"--socket={self.socket}",
                            "--user=root", "--connect-timeout=2", "ping"],
                           capture_output=True, text=True)
        return r.returncode == 0 and "alive" in r.stdout

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wsrep(self):
        """The node's wsrep_* status variables ({} when it does not answer)."""
        try:
            rows = self.query("SHOW GLOBAL STATUS LIKE 'wsrep_%'")
        except harness.HarnessError:
            return {}
        return {r["Variable_name"]: r["Value"] for r in rows}

    def synced(self, size=None):
        s = self.wsrep()
        return (s.get("wsrep_local_state_comment") == "Synced" and s.get("wsrep_ready") == "ON"
                and (size is None or s.get("wsrep_cluster_size") == str(size)))

    def kill9(self):
        """SIGKILL, as a crash: no shutdown, grastate.dat left unsafe."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def __repr__(self):
        return f"GaleraNode({self.name}, port {self.port}, {self.base})"


class GaleraCluster:
    def __init__(self, base, size=3, name="ospab-test"):
        for tool in (PROVIDER,) + SST_TOOLS:
            if not os.path.exists(tool):
                raise GaleraError(f"{tool} is missing (scripts/deps installs galera-4 and rsync)")
        self.base = Path(base)
        self.base.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.name = name
        self.password = secrets.token_hex(16)
        self.nodes = []
        for i in range(1, size + 1):
            d = self.base / f"node{i}"
            d.mkdir(mode=0o755)
            self.nodes.append(GaleraNode(self, i, d, self.password))

    def node(self, index):
        """1-based, as the nodes are named."""
        return self.nodes[index - 1]

    def start(self, timeout=180):
        t0 = time.monotonic()
        first, rest = self.nodes[0], self.nodes[1:]
        first.start(new_cluster=True, timeout=timeout)
        self.wait_synced([first], size=1, timeout=timeout)
        # the joiners one after the other: one donor serves one SST at a time anyway
        for n in rest:
            n.start(timeout=timeout)
        self.wait_synced(timeout=timeout)
        self.start_seconds = time.monotonic() - t0
        return self

    def wait_synced(self, nodes=None, size=None, timeout=120):
        """Until every node of `nodes` (default: all) is Synced in a cluster of `size`
        (default: all nodes); the seconds it took."""
        nodes = nodes if nodes is not None else self.nodes
        size = size if size is not None else len(self.nodes)
        t0 = time.monotonic()
        while not all(n.synced(size) for n in nodes):
            for n in nodes:
                if n.proc is None or n.proc.poll() is not None:
                    raise GaleraError(f"{n.name} is not running:\n{n.log_tail()}")
            if time.monotonic() - t0 > timeout:
                raise GaleraError("the cluster did not sync in time: " + "; ".join(
                    f"{n.name}: {n.wsrep().get('wsrep_local_state_comment')}/"
                    f"{n.wsrep().get('wsrep_cluster_size')}" for n in nodes))
            time.sleep(0.2)
        return time.monotonic() - t0

    def create_database(self, name):
        """The database and the ospab user, made through node 1 (CREATE USER, GRANT and
        CREATE DATABASE replicate); a MariadbDatabase on node 1."""
        return self.nodes[0].create_database(name)

    def database(self, index, name):
        return harness.MariadbDatabase(self.node(index), name)

    def stop(self):
        """Every node shut down at once (a leftover is killed)."""
        threads = [threading.Thread(target=self._stop_one, args=(n,)) for n in self.nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.reap()

    @staticmethod
    def _stop_one(node):
        try:
            node.stop(timeout=30)
        except Exception:
            node.kill9()

    def reap(self):
        """Any process still naming this cluster's directory (a mariadbd, an SST's rsync
        daemon or script), by pid."""
        harness.kill_pids(pids_below(self.base))


def pids_below(base):
    """Processes (other than this one) whose command line names a path below `base`."""
    return pids_naming(str(base).rstrip("/") + "/")


def pids_naming(text):
    """Processes (other than this one) whose command line contains `text`."""
    marker = str(text).encode()
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if marker in (d / "cmdline").read_bytes():
                found.append(int(d.name))
        except OSError:
            continue
    return found


class Session:
    """One open connection to a node as root (the mariadb client reading statements from a
    pipe), to hold a transaction open across other requests:

        s = Session(node, "ospab")
        s.run("BEGIN; INSERT INTO t (v) VALUES (1)")
        [x] = s.run("SELECT LAST_INSERT_ID()")
        ...
        s.run("COMMIT"); s.close()

    run() returns the output lines (tab-separated columns, no header) of the statements; an
    SQL error raises GaleraError (the client stops at the first error)."""

    MARK = "@@ospab-session-done@@"

    def __init__(self, node, database):
        self.node = node
        self.proc = subprocess.Popen(
            [harness.Mariadb.CLIENT, "--no-defaults", f"--socket={node.socket}", "--user=root",
             "--default-character-set=utf8mb4", "--batch", "--skip-column-names",
             "--unbuffered", database],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run(self, statements):
        self.proc.stdin.write(f"{statements.rstrip().rstrip(';')};\nSELECT '{self.MARK}';\n")
        self.proc.stdin.flush()
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait(10)
                raise GaleraError(f"on {self.node.name}: {statements}\n{self.proc.stderr.read()}")
            line = line.rstrip("\n")
            if line == self.MARK:
                return lines
            lines.append(line)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc.stdout.close()
        self.proc.stderr.close()
