"""Root password of an existing container over SSH (lib/ospab_ssh.c): the panel
runs `pct exec <vmid> -- chpasswd` on the node with libssh2, key auth, the
password on standard input.

A real OpenSSH server on 127.0.0.1 (tests/sshd/sshd.py) plays node pve1: the
panel's key may only run tests/sshd/pct-forced.py, which applies the chpasswd
input to the Proxmox simulator. The C side is driven through
tests/sshd/ssh-driver (built by `make check`; this file builds nothing).
"""

import hashlib
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "pvesim"))
sys.path.insert(0, str(REPO / "tests" / "sshd"))
import harness  # noqa: E402
from simctl import PveSim  # noqa: E402
import sshd as sshdmod  # noqa: E402

DRIVER = REPO / "tests" / "sshd" / "ssh-driver"
NODE = "pve1"
CT = 101                     # running container on pve1

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the test sshd needs root")


# ------------------------------------------------------------------ fixtures --

@pytest.fixture(scope="module")
def driver():
    if not os.access(DRIVER, os.X_OK):
        pytest.fail(f"{DRIVER} is not built: run `make check` (or scripts/build) first; "
                    "this test builds nothing", pytrace=False)
    return DRIVER


@pytest.fixture(scope="module")
def sim():
    run = harness.make_run_dir("sshpw-sim-")
    s = PveSim(str(run / "pvesim"), nodes=(NODE, "pve2"), guests=0, auth_fail_delay=0)
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def node(sim, driver):
    sshdmod.reap_orphans(harness.RUN_BASE)
    run = harness.make_run_dir("sshpw-node-")
    n = sshdmod.Sshd(run / "node", control=sim.info["control"], ca=sim.ca, node=NODE)
    n.start()
    yield n
    n.stop()


@pytest.fixture
def ct(sim):
    """CT 101 running on pve1, with no password record yet."""
    try:
        sim.control("DELETE", f"/guest/{CT}")
    except RuntimeError:        # 404: not there yet
        pass
    sim.guest(CT, node=NODE, type="lxc", status="running")
    assert sim.guest_info(CT)["passwords"] == {}
    return CT


def new_password():
    # a ':' (chpasswd splits at the first one only), a space and non-ASCII
    return f"Pw:{secrets.token_urlsafe(12)} ü:x"


def run_driver(node, password, vmid=CT, key=None, known_hosts=None, port=None,
               timeout_ms=None, pub=None, exec_command=None, threads=None, host_key=None):
    args = [str(DRIVER)]
    if host_key:
        args += ["--host-key", host_key]
    if threads:
        args += ["--threads", str(threads)]
    if exec_command is not None:
        args.append("--exec")
    if pub:
        args += ["--pub", str(pub)]
    if timeout_ms:
        args += ["--timeout", str(timeout_ms)]
    args += ["127.0.0.1", str(port or node.port), "root", str(key or node.client_key),
             str(known_hosts or node.known_hosts),
             exec_command if exec_command is not None else str(vmid)]
    data = password.encode() if isinstance(password, str) else password
    t0 = time.monotonic()
    p = subprocess.run(args, input=data, capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode(errors="replace"), time.monotonic() - t0


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def accepted_logins(node):
    return node.log_text().count("Accepted publickey for root")


class Snapshot:
    """What a refused attempt must leave untouched: the CT's password record,
    the forced command's runs and the node's accepted logins."""

    def __init__(self, sim, node, vmid=CT):
        self.sim, self.node, self.vmid = sim, node, vmid
        self.passwords = sim.guest_info(vmid)["passwords"]
        self.runs = len(node.forced_runs())
        self.logins = accepted_logins(node)

    def assert_unchanged(self, logins=True):
        assert self.sim.guest_info(self.vmid)["passwords"] == self.passwords
        assert len(self.node.forced_runs()) == self.runs, self.node.forced_runs()[self.runs:]
        if logins:
            assert accepted_logins(self.node) == self.logins


# ------------------------------------------------------------------- success --

@pytest.mark.parametrize("known_hosts", ["ed25519", "ecdsa", "hashed"])
def test_sets_root_password(sim, node, ct, known_hosts, tmp_path):
    """The CT's password changes to exactly what was sent; it travels only on
    standard input. known_hosts may hold the node's Ed25519 or ECDSA key
    (libssh2 offers only those types in the key exchange) or hashed names."""
    kh = tmp_path / "known_hosts"
    if known_hosts == "ecdsa":
        node.write_known_hosts(kh, node.known_hosts_line(key=node.host_key_ecdsa))
    else:
        node.write_known_hosts(kh, node.known_hosts_line())
    if known_hosts == "hashed":
        subprocess.run(["ssh-keygen", "-H", "-f", str(kh)], check=True, capture_output=True)
        assert kh.read_text().startswith("|1|")
    password = new_password()
    before, logins = time.time(), accepted_logins(node)

    rc, out, _ = run_driver(node, password, known_hosts=kh)

    assert (rc, out) == (0, "ok\n")
    rec = sim.guest_info(ct)["passwords"]["root"]
    assert rec["sha256"] == sha256(password)
    assert rec["changed_at"] >= before - 1
    run = node.forced_runs()[-1]
    assert run["command"] == f"pct exec {ct} -- chpasswd"     # nothing else on the command line
    assert (run["users"], run["exit"]) == (["root"], 0)
    assert accepted_logins(node) == logins + 1
    for log in (node.log, node.forced_log):
        assert password not in log.read_text(), log
        assert password.split(":", 1)[1] not in log.read_text(), log


def test_public_key_file_given(sim, node, ct):
    password = new_password()
    rc, out, _ = run_driver(node, password, pub=f"{node.client_key}.pub")
    assert (rc, out) == (0, "ok\n")
    assert sim.guest_info(ct)["passwords"]["root"]["sha256"] == sha256(password)


def test_second_change_replaces_first(sim, node, ct):
    first, second = new_password(), new_password()
    assert run_driver(node, first)[0] == 0
    assert run_driver(node, second)[0] == 0
    assert sim.guest_info(ct)["passwords"]["root"]["sha256"] == sha256(second)


def test_concurrent_calls(sim, node, ct):
    """Eight threads of one process, eight sessions at once (Apache's worker
    threads): all succeed."""
    password = new_password()
    runs = len(node.forced_runs())
    rc, out, _ = run_driver(node, password, threads=8)
    assert (rc, out) == (0, "ok\n")
    new = node.forced_runs()[runs:]
    assert len(new) == 8 and all(r["exit"] == 0 for r in new), new
    assert sim.guest_info(ct)["passwords"]["root"]["sha256"] == sha256(password)


# --------------------------------------------------------------- host keys --

def test_host_key_mismatch_refused(sim, node, ct, tmp_path):
    """A different key recorded for [127.0.0.1]:PORT: refused before
    authentication, naming the host and the key it presented."""
    impostor = sshdmod.keygen(tmp_path / "impostor", "ed25519")
    kh = node.write_known_hosts(tmp_path / "known_hosts", node.known_hosts_line(key=impostor))
    snap = Snapshot(sim, node)

    rc, out, _ = run_driver(node, new_password(), known_hosts=kh)

    assert rc == 4, out
    assert "HOST KEY MISMATCH" in out
    assert f"[127.0.0.1]:{node.port}" in out
    assert sshdmod.fingerprint(node.host_key) in out
    snap.assert_unchanged()


def test_registered_host_key_instead_of_known_hosts(sim, node, ct, tmp_path):
    """A registered node's ssh_host_key (issue 13: nodes as data) is checked instead of a
    known_hosts file: the node's own key lets the password through with no file at all;
    another key is a mismatch naming the registered key, before authentication."""
    password = new_password()
    key = sshdmod.public_key(node.host_key)
    rc, out, _ = run_driver(node, password, known_hosts="-", host_key=key)
    assert (rc, out) == (0, "ok\n")
    assert sim.guest_info(ct)["passwords"]["root"]["sha256"] == sha256(password)
    impostor = sshdmod.public_key(sshdmod.keygen(tmp_path / "impostor", "ed25519"))
    snap = Snapshot(sim, node)
    rc, out, _ = run_driver(node, new_password(), known_hosts="-", host_key=impostor)
    assert rc == 4, out
    assert "HOST KEY MISMATCH" in out and "registered for the node" in out, out
    assert sshdmod.fingerprint(node.host_key) in out
    snap.assert_unchanged()


@pytest.mark.parametrize("entries", ["empty", "other host", "host without port"])
def test_unknown_host_refused(sim, node, ct, tmp_path, entries):
    """No key for [127.0.0.1]:PORT. A plain "127.0.0.1" entry is for port 22
    only, as in OpenSSH (libssh2's own port fallback is not used)."""
    lines = {"empty": [],
             "other host": [node.known_hosts_line(name=f"[127.0.0.2]:{node.port}"),
                            node.known_hosts_line(name="pve2.example.org")],
             "host without port": [node.known_hosts_line(name="127.0.0.1"),
                                   node.known_hosts_line(key=node.host_key_ecdsa,
                                                         name="127.0.0.1")]}[entries]
    kh = node.write_known_hosts(tmp_path / "known_hosts", *lines)
    snap = Snapshot(sim, node)

    rc, out, _ = run_driver(node, new_password(), known_hosts=kh)

    assert rc == 4, out
    assert "unknown host key" in out
    assert f"[127.0.0.1]:{node.port}" in out and str(kh) in out
    assert (sshdmod.fingerprint(node.host_key) in out
            or sshdmod.fingerprint(node.host_key_ecdsa) in out)
    snap.assert_unchanged()


def test_missing_known_hosts_file_refused(sim, node, ct, tmp_path):
    snap = Snapshot(sim, node)
    rc, out, _ = run_driver(node, new_password(), known_hosts=tmp_path / "absent")
    assert rc == 4 and "cannot read known_hosts file" in out, out
    snap.assert_unchanged()


# ----------------------------------------------------------- authentication --

def test_wrong_client_key_refused(sim, node, ct, tmp_path):
    stranger = sshdmod.keygen(tmp_path / "stranger", "ed25519")
    snap = Snapshot(sim, node)

    rc, out, _ = run_driver(node, new_password(), key=stranger)

    assert rc == 4, out
    assert "public key authentication as root" in out and "refused" in out
    assert str(stranger) in out
    snap.assert_unchanged()


def test_rsa_client_key_refused_with_hint(sim, node, ct, tmp_path):
    """Debian 12's ssh-keygen makes RSA keys by default; libssh2 1.10 can only
    sign them with SHA-1, which OpenSSH >= 8.8 refuses even for an authorized
    key. The message says so instead of a bare "refused"."""
    rsa = sshdmod.keygen(tmp_path / "rsa", "rsa")
    node.authorize(rsa)
    snap = Snapshot(sim, node)

    rc, out, _ = run_driver(node, new_password(), key=rsa)

    if rc == 0:
        pytest.fail("libssh2 now authenticates with RSA keys (>= 1.11?): drop this test "
                    "and the RSA hint in lib/ospab_ssh.c")
    assert rc == 4, out
    assert "RSA key" in out and "Ed25519" in out
    snap.assert_unchanged()


def test_missing_private_key(sim, node, ct, tmp_path):
    rc, out, _ = run_driver(node, new_password(), key=tmp_path / "nokey")
    assert rc == 4 and "cannot read private key" in out, out


# ------------------------------------------------------------- connections --

def test_sshd_down_fails_fast(sim, node, ct):
    port = harness.free_port()
    snap = Snapshot(sim, node)
    rc, out, elapsed = run_driver(node, new_password(), port=port, timeout_ms=3000)
    assert rc == 5, out
    assert "cannot connect" in out and f"127.0.0.1:{port}" in out
    assert elapsed < 3
    snap.assert_unchanged()


def test_silent_server_times_out(sim, node, ct):
    """A node that accepts TCP but never speaks SSH: the call gives up after
    timeout_ms, not later."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        port = s.getsockname()[1]
        rc, out, elapsed = run_driver(node, new_password(), port=port, timeout_ms=1500)
    assert rc == 3, out
    assert "timed out after 1500 ms" in out and "handshake" in out
    assert 1.4 < elapsed < 4


def test_hanging_command_times_out(sim, node, tmp_path):
    """The whole exchange is bounded too, not only the connection."""
    key = sshdmod.keygen(tmp_path / "sleeper", "ed25519")
    node.authorize(key, command="/bin/sleep 20")
    rc, out, elapsed = run_driver(node, "", key=key, timeout_ms=1500, exec_command="true")
    assert rc == 3, out
    assert "timed out after 1500 ms while running the command" in out
    assert 1.4 < elapsed < 4


def test_output_is_bounded(node, tmp_path):
    """ospab_ssh_exec keeps 64 KiB of output and still gets the exit status."""
    key = sshdmod.keygen(tmp_path / "chatty", "ed25519")
    node.authorize(key, command="/bin/sh -c 'head -c 300000 /dev/zero | tr \\\\0 x; exit 3'")
    rc, out, _ = run_driver(node, "", key=key, exec_command="anything")
    head, _, body = out.partition("\n")
    assert head == "exit 3", out[:200]
    assert body == "x" * 65536


# ----------------------------------------------------------------- the node --

@pytest.mark.parametrize("vmid,why", [(999, "missing"), (103, "other node"), (104, "qemu")])
def test_not_a_container_on_this_node(sim, node, vmid, why):
    """pct's own error and exit status come back in the message."""
    if why == "other node":
        sim.guest(vmid, node="pve2", type="lxc", status="running")
    elif why == "qemu":
        sim.guest(vmid, node=NODE, type="qemu", status="running")
    rc, out, _ = run_driver(node, new_password(), vmid=vmid)
    assert rc == 6, out
    assert f"Configuration file 'nodes/{NODE}/lxc/{vmid}.conf' does not exist" in out
    assert "exited with status 255" in out
    assert node.forced_runs()[-1]["exit"] == 255
    if why != "missing":
        assert sim.guest_info(vmid)["passwords"] == {}


def test_stopped_container(sim, node):
    sim.guest(102, node=NODE, type="lxc", status="stopped")
    rc, out, _ = run_driver(node, new_password(), vmid=102)
    assert rc == 6, out
    assert "exited with status 1" in out and "Failed to get init pid" in out
    assert sim.guest_info(102)["passwords"] == {}


def test_forced_command_allows_nothing_else(node):
    """The panel's key cannot run anything but `pct exec <vmid> -- chpasswd`
    (and ospab_ssh_exec reports a command's exit status and output)."""
    rc, out, _ = run_driver(node, "", exec_command="cat /etc/shadow")
    assert rc == 6
    assert out.startswith("exit 2\n") and "may only run" in out
    assert node.forced_runs()[-1]["command"] == "cat /etc/shadow"


# -------------------------------------------------------- refused locally --

@pytest.mark.parametrize("password", ["new\nroot:other", "carriage\rreturn", "", "x" * 1025])
def test_bad_password_refused_locally(sim, node, ct, password):
    """A line break would end chpasswd's line (and could start one for another
    user): refused before connecting, as are empty and over-long passwords."""
    snap = Snapshot(sim, node)
    connections = node.log_text().count("Connection from")
    rc, out, _ = run_driver(node, password)
    assert rc == 2, out
    assert out.startswith("error: the password ")
    snap.assert_unchanged()
    assert node.log_text().count("Connection from") == connections


@pytest.mark.parametrize("vmid", [0, 99, 1000000000, -5])
def test_vmid_out_of_range_refused_locally(sim, node, vmid):
    runs = len(node.forced_runs())
    rc, out, _ = run_driver(node, new_password(), vmid=vmid)
    assert rc == 2 and "out of range" in out, out
    assert len(node.forced_runs()) == runs
