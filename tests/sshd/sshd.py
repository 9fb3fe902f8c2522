"""A private OpenSSH server on 127.0.0.1 that plays a Proxmox node's sshd for the
tests of lib/ospab_ssh.c: root may log in only with the panel's key, and that
key can only run the forced command pct-forced.py, which applies
`pct exec <vmid> -- chpasswd` to the simulator (tests/pvesim).

    from sshd import Sshd
    with Sshd(run_dir, control=sim.info["control"], ca=sim.ca, node="pve1") as node:
        node.port, node.client_key, node.known_hosts, node.log_text()

Everything lives in run_dir: host keys (Ed25519 and ECDSA), the client key pair
(Ed25519, OpenSSH format), authorized_keys, known_hosts (only the Ed25519 host
key, as "[127.0.0.1]:PORT"), sshd_config, sshd.log (LogLevel VERBOSE, -E) and
forced.log (one JSON line per forced-command run). Needs root (sshd must be
able to switch to root's session) and /usr/sbin/sshd (Debian: openssh-server).
Standard library only.
"""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FORCED = HERE / "pct-forced.py"
SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "/usr/bin/ssh-keygen"
PYTHON = "/usr/bin/python3"


class SshdError(RuntimeError):
    pass


def _free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def keygen(path, kind="ed25519", comment="ospab-test", pem=False):
    """A new key pair without passphrase at path / path.pub; returns path."""
    path = Path(path)
    for p in (path, path.with_name(path.name + ".pub")):
        if p.exists():
            p.unlink()
    args = [SSH_KEYGEN, "-q", "-t", kind, "-N", "", "-C", comment, "-f", str(path)]
    if kind == "rsa":
        args[4:4] = ["-b", "3072"]
    if pem:
        args[1:1] = ["-m", "PEM"]
    subprocess.run(args, check=True, capture_output=True, timeout=60)
    return path


def public_key(path):
    """"type base64" of a key pair's .pub file (without the comment)."""
    kind, b64 = Path(str(path) + ".pub").read_text().split()[:2]
    return f"{kind} {b64}"


def fingerprint(path):
    """ssh-keygen's "SHA256:..." fingerprint of a key pair."""
    out = subprocess.run([SSH_KEYGEN, "-l", "-E", "sha256", "-f", str(path) + ".pub"],
                         check=True, capture_output=True, text=True).stdout
    return out.split()[1]


def reap_orphans(base):
    """SIGTERM sshd masters a killed test run left listening, recognised by
    their -f <base>/.../sshd_config argument."""
    marker = (str(Path(base)) + "/").encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == b"sshd" and "-f".encode() in argv:
            cfg = argv[argv.index(b"-f") + 1] if argv.index(b"-f") + 1 < len(argv) else b""
            if cfg.startswith(marker) and cfg.endswith(b"/sshd_config"):
                try:
                    os.kill(int(d.name), signal.SIGTERM)
                except ProcessLookupError:
                    pass


class Sshd:
    def __init__(self, run_dir, control, ca, node="pve", host="127.0.0.1"):
        self.dir = Path(run_dir).resolve()
        self.host = host
        self.port = None
        self.control, self.ca, self.node = control, ca, node
        self.proc = None
        self.config = self.dir / "sshd_config"
        self.log = self.dir / "sshd.log"
        self.pidfile = self.dir / "sshd.pid"
        self.authorized_keys = self.dir / "authorized_keys"
        self.known_hosts = self.dir / "known_hosts"
        self.forced_conf = self.dir / "forced.json"
        self.forced_log = self.dir / "forced.log"
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.host_key_ecdsa = self.dir / "ssh_host_ecdsa_key"
        self.client_key = self.dir / "client_ed25519"
        self._authorized = []

    # --- set-up ---------------------------------------------------------------
    def _prepare(self):
        if os.geteuid() != 0:
            raise SshdError("the test sshd must run as root")
        if not os.access(SSHD, os.X_OK):
            raise SshdError(f"{SSHD} missing: apt-get install openssh-server")
        for p in (self.dir, self.ca, FORCED):
            if '"' in str(p) or "\n" in str(p):
                raise SshdError(f"unusable path for authorized_keys: {p!r}")
        self.dir.mkdir(parents=True, exist_ok=True)
        # privilege separation directory; Debian's init script makes it at boot
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        keygen(self.host_key, "ed25519", "pve-node-host-key")
        keygen(self.host_key_ecdsa, "ecdsa", "pve-node-host-key")
        keygen(self.client_key, "ed25519", "ospab-panel")
        self.forced_conf.write_text(json.dumps({
            "control": self.control, "ca": str(self.ca), "node": self.node,
            "log": str(self.forced_log)}))
        self.forced_log.touch()
        self._authorized = [self.forced_line(self.client_key)]
        self._write_authorized_keys()

    def forced_line(self, key, command=None):
        """An authorized_keys line that lets key run only command (default: the
        pct stand-in)."""
        command = command or f"{PYTHON} {FORCED} {self.forced_conf}"
        if '"' in command:
            raise ValueError("no double quotes in a forced command")
        return f'restrict,command="{command}" {public_key(key)} ospab-test'

    def authorize(self, key, command=None):
        """Adds a key (optionally with its own forced command); sshd reads
        authorized_keys at each login."""
        self._authorized.append(self.forced_line(key, command))
        self._write_authorized_keys()

    def _write_authorized_keys(self):
        self.authorized_keys.write_text("\n".join(self._authorized) + "\n")
        os.chmod(self.authorized_keys, 0o600)

    def known_hosts_line(self, key=None, name=None):
        """A known_hosts line for this server: its Ed25519 host key (or key)
        under "[127.0.0.1]:PORT" (or name)."""
        name = name or f"[{self.host}]:{self.port}"
        return f"{name} {public_key(key or self.host_key)}"

    def write_known_hosts(self, path, *lines):
        Path(path).write_text("".join(line + "\n" for line in lines))
        return Path(path)

    def _write_config(self):
        self.config.write_text(f"""\
# private sshd for the ospab tests (tests/sshd/sshd.py)
Port {self.port}
ListenAddress {self.host}
HostKey {self.host_key}
HostKey {self.host_key_ecdsa}
PidFile {self.pidfile}
AuthorizedKeysFile {self.authorized_keys}
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
AllowUsers root
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
PermitUserEnvironment no
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
PermitTTY no
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 50
LoginGraceTime 20
LogLevel VERBOSE
""")

    # --- process ----------------------------------------------------------------
    def start(self, timeout=15):
        self._prepare()
        last = ""
        for _attempt in range(3):
            self.port = _free_port(self.host)
            self._write_config()
            check = subprocess.run([SSHD, "-t", "-f", str(self.config)],
                                   capture_output=True, text=True, timeout=30)
            if check.returncode != 0:
                raise SshdError(f"sshd -t rejected {self.config}: {check.stderr.strip()}")
            offset = self.log.stat().st_size if self.log.exists() else 0
            self.proc = subprocess.Popen([SSHD, "-D", "-f", str(self.config), "-E", str(self.log)],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _port_open(self.port, self.host):
                    break
                time.sleep(0.05)
            if self.proc.poll() is None and _port_open(self.port, self.host):
                self.known_hosts.write_text(self.known_hosts_line() + "\n")
                return self
            self.stop()
            last = self.log.read_text(errors="replace")[offset:] if self.log.exists() else ""
            if "Address already in use" not in last:
                break
        raise SshdError(f"sshd did not start on {self.host}:{self.port}:\n{last}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- what happened ---------------------------------------------------------------
    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def forced_runs(self):
        """The forced command's records, oldest first."""
        text = self.forced_log.read_text() if self.forced_log.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]
