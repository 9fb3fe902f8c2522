"""The core library's Proxmox client (lib/ospab_pve.c) against the simulator.

Each call runs tests/pvesim-client/pvecall (built by `make check`), which makes one
ospab_pve_call (or --repeat/--threads of them over one client) and prints one JSON line
per call: outcome, status, message, errors, data, elapsed_ms, the client's calls/connects
counters and, for a UPID, what ospab_upid_parse made of it. No Apache is started here.

    /usr/bin/python3 -m pytest tests/integration/test_pve_client.py -q
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

import harness
from conftest import simulated

sys.path.insert(0, str(harness.REPO / "tests" / "pvesim"))

# OSPAB_PVECALL=<path> runs another build of the driver (say, one with sanitizers)
PVECALL = harness.Path(os.environ.get("OSPAB_PVECALL")
                       or harness.REPO / "tests" / "pvesim-client" / "pvecall")
TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
NET0 = "name=eth0,bridge=vmbr0,ip=dhcp"


def _check_driver():
    if not PVECALL.exists():
        pytest.fail(f"{PVECALL} is not built: run `make check`", pytrace=False)
    if os.environ.get("OSPAB_PVECALL"):
        return
    sources = [harness.REPO / "tests" / "pvesim-client" / "pvecall.c",
               harness.REPO / "lib" / "ospab_pve.c", harness.REPO / "lib" / "ospab_pve.h"]
    stale = [str(s.relative_to(harness.REPO)) for s in sources
             if s.exists() and s.stat().st_mtime > PVECALL.stat().st_mtime]
    if stale:
        pytest.fail(f"{PVECALL} is older than {', '.join(stale)}: run `make check`", pytrace=False)


@pytest.fixture(scope="module")
def sim():
    _check_driver()
    yield from simulated("pvesim-client-", nodes=("pve",), time_scale=0.1, auth_fail_delay=0.2)


@pytest.fixture(autouse=True)
def _no_faults_left(sim):
    yield
    sim.clear_faults()


def pvecall(sim, method, path, *params, token=None, ca=None, url=None, opts=(), timeout=60):
    """All result lines of one pvecall run (a list of dicts)."""
    args = [str(PVECALL), *[str(o) for o in opts], url or sim.url,
            sim.token if token is None else token, sim.ca if ca is None else ca,
            method, path, *params]
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    assert p.returncode in (0, 1) and not p.stderr, (p.returncode, p.stderr)
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    assert lines, p.stderr
    assert p.returncode == (0 if all(r["outcome"] == "ok" for r in lines) else 1)
    assert sim.token.split("=")[-1] not in p.stdout + p.stderr     # the secret never shows
    return lines


def call(sim, method, path, *params, **kw):
    (res,) = pvecall(sim, method, path, *params, **kw)
    return res


def ok(sim, method, path, *params, **kw):
    res = call(sim, method, path, *params, **kw)
    assert (res["outcome"], res["status"]) == ("ok", 200), res
    return res


def wait_task(sim, upid, timeout=30):
    """Polls the task through the client until it stops; returns its status."""
    node = upid.split(":")[1]
    deadline = time.monotonic() + timeout
    while True:
        st = ok(sim, "GET", f"/nodes/{node}/tasks/{upid}/status")["data"]
        if st["status"] == "stopped":
            return st
        assert st["status"] == "running", st
        assert time.monotonic() < deadline, f"task {upid} still running"
        time.sleep(0.1)


def create_ct(sim, vmid, *extra):
    res = ok(sim, "POST", "/nodes/pve/lxc", f"vmid={vmid}", f"ostemplate={TEMPLATE}",
             "rootfs=local-lvm:8", f"net0={NET0}", *extra)
    assert res["upid"] and res["upid"]["type"] == "vzcreate", res
    assert wait_task(sim, res["data"])["exitstatus"] == "OK"
    return res


# ------------------------------------------------------------------------- success --

def test_version(sim):
    res = ok(sim, "GET", "/version")
    assert res["data"]["version"].startswith("9.") and res["message"] is None
    assert res["errors"] is None


def test_nextid_arrives_as_a_string(sim):
    sim.reset()
    res = ok(sim, "GET", "/cluster/nextid")
    assert res["data"] == "100"


def test_create_poll_and_start_twice(sim):
    vmid = 210
    password = "pa ss&w=rd+1%"          # every form-encoding special character
    res = ok(sim, "POST", "/nodes/pve/lxc", f"vmid={vmid}", f"ostemplate={TEMPLATE}",
             "rootfs=local-lvm:8", f"net0={NET0}", f"password={password}")
    upid = res["data"]
    # what ospab_upid_parse made of it
    assert res["upid"] == {"node": "pve", "pid": int(upid.split(":")[2], 16),
                           "pstart": int(upid.split(":")[3], 16),
                           "starttime": int(upid.split(":")[4], 16),
                           "type": "vzcreate", "id": str(vmid), "user": sim.token.split("=")[0]}
    st = wait_task(sim, upid)
    assert st["exitstatus"] == "OK" and st["upid"] == upid and st["type"] == "vzcreate"

    conf = ok(sim, "GET", f"/nodes/pve/lxc/{vmid}/config")["data"]
    assert conf["rootfs"].startswith("local-lvm:") and conf["net0"].startswith("name=eth0,")
    assert (sim.guest_info(vmid)["passwords"]["root"]["sha256"]
            == hashlib.sha256(password.encode()).hexdigest())

    start = ok(sim, "POST", f"/nodes/pve/lxc/{vmid}/status/start")
    assert start["upid"]["type"] == "vzstart"
    assert wait_task(sim, start["data"])["exitstatus"] == "OK"
    assert ok(sim, "GET", f"/nodes/pve/lxc/{vmid}/status/current")["data"]["status"] == "running"

    again = call(sim, "POST", f"/nodes/pve/lxc/{vmid}/status/start")
    assert again["outcome"] == "http_error" and again["status"] == 500
    assert again["message"] == f"CT {vmid} already running"
    assert again["errors"] is None and again["data"] is None


def test_put_config_is_form_encoded_and_synchronous(sim):
    vmid = 211
    create_ct(sim, vmid)
    res = ok(sim, "PUT", f"/nodes/pve/lxc/{vmid}/config", "cores=3", "description=a&b=c d")
    assert res["data"] is None                       # JSON null is still "data"
    conf = ok(sim, "GET", f"/nodes/pve/lxc/{vmid}/config")["data"]
    assert conf["cores"] == 3 and conf["description"].rstrip("\n") == "a&b=c d"


def test_delete_sends_purge_in_the_query_string(sim):
    vmid = 212
    create_ct(sim, vmid)
    res = ok(sim, "DELETE", f"/nodes/pve/lxc/{vmid}", "purge=1", "destroy-unreferenced-disks=1")
    assert res["upid"]["type"] == "vzdestroy"        # a body would have got 501
    assert wait_task(sim, res["data"])["exitstatus"] == "OK"
    gone = call(sim, "GET", f"/nodes/pve/lxc/{vmid}/status/current")
    assert gone["status"] == 500
    assert gone["message"] == f"Configuration file 'nodes/pve/lxc/{vmid}.conf' does not exist"


# ---------------------------------------------------------------- Proxmox's refusals --

def test_unknown_parameter_gets_400_with_errors(sim):
    res = call(sim, "POST", "/nodes/pve/lxc", "vmid=213", f"ostemplate={TEMPLATE}",
               "rootfs=local-lvm:8", "bogus=1")
    assert (res["outcome"], res["status"]) == ("http_error", 400)
    assert res["message"] == "Parameter verification failed."
    assert res["errors"] == {"bogus": "property is not defined in schema and the schema "
                                      "does not allow additional properties"}


def test_unknown_task_names_the_upid_parameter(sim):
    upid = "UPID:pve:00000001:00000001:00000001:vzstart:100:root@pam:"
    res = call(sim, "GET", f"/nodes/pve/tasks/{upid}/status")
    assert res["status"] == 400 and res["errors"] == {"upid": "no such task"}


def test_bad_token_gets_401(sim):
    res = call(sim, "GET", "/version", token="root@pam!ospab=00000000-0000-0000-0000-000000000000")
    assert (res["outcome"], res["status"]) == ("http_error", 401)
    assert res["message"] == "Authentication failed!"     # reason phrase: the body is empty


# ----------------------------------------------------------------------- transport --

def test_untrusted_ca_is_unreachable(sim, tmp_path):
    other_ca = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=not the simulator's CA", "-keyout", str(tmp_path / "k.pem"),
                    "-out", str(other_ca)], check=True, capture_output=True)
    res = call(sim, "GET", "/version", ca=str(other_ca))
    assert (res["outcome"], res["status"]) == ("unreachable", 0)
    assert "certificate was not trusted" in res["message"]


def test_closed_port_is_unreachable(sim):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = call(sim, "GET", "/version", url=f"https://127.0.0.1:{port}")
    assert res["outcome"] == "unreachable" and "cannot connect" in res["message"]


def test_latency_beyond_the_timeout(sim):
    sim.fault(kind="latency", seconds=5, path_prefix="/version", count=1)
    t0 = time.monotonic()
    res = call(sim, "GET", "/version", opts=("--timeout-ms", 1000))
    wall = time.monotonic() - t0
    assert (res["outcome"], res["status"]) == ("timeout", 0), res
    assert 950 <= res["elapsed_ms"] <= 1300, res
    assert wall < 2.0, wall                         # the process, start-up included


def test_latency_within_the_timeout_is_fine(sim):
    sim.fault(kind="latency", seconds=0.5, path_prefix="/version", count=1)
    res = ok(sim, "GET", "/version", opts=("--timeout-ms", 3000))
    assert res["elapsed_ms"] >= 450


def test_500_fault_message_from_the_body(sim):
    sim.fault(kind="status", code=500, message="got timeout", count=1)
    res = call(sim, "GET", "/version")
    assert (res["outcome"], res["status"], res["message"]) == ("http_error", 500, "got timeout")


def test_595_has_no_body_message_from_the_reason(sim):
    sim.fault(kind="status", code=595, count=1)
    res = call(sim, "GET", "/nodes/pve/lxc")
    assert (res["outcome"], res["status"]) == ("http_error", 595)
    assert res["message"] == "No route to host" and res["errors"] is None


@pytest.mark.parametrize("mode", ["close", "reset"])
def test_dropped_connection_is_unreachable(sim, mode):
    sim.fault(kind="drop", mode=mode, count=1)
    res = call(sim, "GET", "/version")
    assert (res["outcome"], res["status"]) == ("unreachable", 0), res
    assert "dropped the connection" in res["message"]


@pytest.mark.parametrize("body,message", [
    ("not json", "not a JSON object"),
    ('{"x":1}', 'no "data" member'),
    ('["data"]', "not a JSON object"),
])
def test_2xx_without_envelope_is_a_bad_response(sim, body, message):
    sim.fault(kind="status", code=200, body=body, count=1)
    res = call(sim, "GET", "/version")
    assert (res["outcome"], res["status"]) == ("bad_response", 200)
    assert message in res["message"]


def test_response_size_limit(sim):
    size = len(json.dumps(sim.data("GET", "/version"))) + len('{"data":}')
    res = call(sim, "GET", "/version", opts=("--max-response", 40))
    assert res["outcome"] == "bad_response" and res["message"] == "response larger than 40 bytes"
    assert ok(sim, "GET", "/version", opts=("--max-response", size))["data"]["version"]


# ---------------------------------------------------------------------- keep-alive --

class CountingProxy:
    """A TCP forwarder between pvecall and the simulator that counts connections (the
    simulator counts requests, not connections). TLS passes through untouched."""

    def __init__(self, port):
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()


@pytest.fixture
def proxy(sim):
    p = CountingProxy(sim.port)
    yield p
    p.close()


def _requests(sim, key="GET /version"):
    return sim.state(guests=0, tasks=0)["requests_by_path"].get(key, 0)


def test_keep_alive_reuses_one_connection(sim, proxy):
    before = _requests(sim)
    lines = pvecall(sim, "GET", "/version", opts=("--repeat", 5),
                    url=f"https://127.0.0.1:{proxy.port}")
    assert [r["outcome"] for r in lines] == ["ok"] * 5
    assert _requests(sim) - before == 5
    assert proxy.connections == 1
    assert lines[-1]["connects"] == 1 and lines[-1]["calls"] == 5


def test_without_kept_handles_every_call_connects(sim, proxy):
    # the control case: shows the proxy does see each new connection
    lines = pvecall(sim, "GET", "/version", opts=("--repeat", 3, "--max-handles", 0),
                    url=f"https://127.0.0.1:{proxy.port}")
    assert [r["outcome"] for r in lines] == ["ok"] * 3
    assert proxy.connections == 3 and lines[-1]["connects"] == 3


def test_threads_share_the_handle_pool(sim, proxy):
    lines = pvecall(sim, "GET", "/cluster/nextid",
                    opts=("--threads", 4, "--repeat", 10, "--max-handles", 4),
                    url=f"https://127.0.0.1:{proxy.port}")
    assert len(lines) == 40 and all(r["outcome"] == "ok" for r in lines)
    assert max(r["calls"] for r in lines) == 40
    assert proxy.connections <= 4 and max(r["connects"] for r in lines) == proxy.connections


def test_a_kept_handle_recovers_after_a_dropped_connection(sim, proxy):
    sim.fault(kind="drop", count=1)
    lines = pvecall(sim, "GET", "/version", opts=("--repeat", 3),
                    url=f"https://127.0.0.1:{proxy.port}")
    assert [r["outcome"] for r in lines] == ["unreachable", "ok", "ok"]
    assert proxy.connections == 2 and lines[-1]["connects"] == 2
