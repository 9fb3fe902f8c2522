"""Tests of the Proxmox VE simulator: its route table against the official
schema, and its behaviour against BEHAVIOUR.md (auth, envelope, errors, UPIDs,
tasks, locks, lag, faults, snapshots, resize, consoles, storages and templates per
node, node load, /cluster/status, two simulators side by side).

Run: /usr/bin/python3 -m pytest tests/pvesim -q
"""

import http.client
import itertools
import json
import os
import re
import socket
import ssl
import time
import urllib.parse

import pytest

import pvesim
import schema_check
from pveparams import MISSING, NOT_DEFINED
import vncdes
from simctl import PveSim, RfbClient, TermClient, WebSocketRefused

TOKEN = "root@pam!ospab=4f4c3a52-1d3e-4b8e-9a43-0d7f0e6b8c11"
AUTH_DELAY = 0.3
TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
UBUNTU = "local:vztmpl/ubuntu-22.04-standard_22.04-1_amd64.tar.zst"
ALMA = "local:vztmpl/almalinux-9-default_20240911_amd64.tar.xz"
GiB = 2 ** 30
UPID_RE = re.compile(r"^UPID:([a-zA-Z0-9-]+):([0-9A-F]{8}):([0-9A-F]{8,9}):([0-9A-F]{8}):"
                     r"([^:\s]+):([^:\s]*):([^:\s]+):$")
_vmids = itertools.count(300)


@pytest.fixture(scope="module")
def schema():
    return schema_check.load_schema()


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    s = PveSim(str(tmp_path_factory.mktemp("pvesim")), nodes=("pve1", "pve2"), guests=4,
               qemu_guests=1, time_scale=0.05, resources_lag=1.0,
               auth_fail_delay=AUTH_DELAY, token=TOKEN)
    s.start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def no_faults(request):
    yield
    if "sim" in request.fixturenames:
        request.getfixturevalue("sim").clear_faults()


def new_vmid():
    return next(_vmids)


def create_ct(sim, vmid=None, node="pve1", wait=True, **extra):
    vmid = vmid or new_vmid()
    params = {"vmid": vmid, "ostemplate": TEMPLATE, "rootfs": "local-lvm:8",
              "net0": "name=eth0,bridge=vmbr0,ip=dhcp", "hostname": "ct%d" % vmid,
              "memory": 1024, "cores": 2, "password": "s3cret-pw"}
    params.update(extra)
    upid = sim.data("POST", "/nodes/%s/lxc" % node, params)
    if wait:
        assert sim.wait_task(upid)["exitstatus"] == "OK"
    return vmid, upid


def start_ct(sim, vmid, node="pve1"):
    upid = sim.data("POST", "/nodes/%s/lxc/%d/status/start" % (node, vmid))
    assert sim.wait_task(upid)["exitstatus"] == "OK"


def raw_request(sim, data, timeout=10):
    """Send raw bytes over verified TLS; return everything the server sent."""
    sock = socket.create_connection((sim.host, sim.port), timeout=timeout)
    tls = sim.ssl_context().wrap_socket(sock, server_hostname=sim.host)
    try:
        tls.sendall(data)
        out = b""
        while True:
            try:
                chunk = tls.recv(65536)
            except (ssl.SSLError, ConnectionError):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        tls.close()


# ---------------------------------------------------------------------------
# The route table against the official schema

def test_route_table_matches_official_schema(schema):
    assert schema_check.check_routes(pvesim.ROUTES, schema) == []


def test_schema_check_catches_a_wrong_parameter(schema):
    route = pvesim.Route("POST", "/nodes/{node}/lxc", "lxc_create",
                         dict(pvesim.LXC_CREATE, memory=pvesim.Int(8, opt=1),
                              bogus=pvesim.Str(opt=1)))
    problems = schema_check.check_routes([route], schema)
    assert any("memory: minimum 8, schema says 16" in p for p in problems)
    assert any("bogus: not in the schema" in p for p in problems)


def test_every_required_path_is_served():
    served = {(r.method, r.path) for r in pvesim.ROUTES}
    lxc = "/nodes/{node}/lxc/{vmid}"
    for key in [("GET", "/version"), ("POST", "/access/ticket"), ("GET", "/cluster/nextid"),
                ("GET", "/cluster/resources"), ("GET", "/nodes"),
                ("GET", "/nodes/{node}/status"), ("GET", "/nodes/{node}/lxc"),
                ("POST", "/nodes/{node}/lxc"), ("GET", lxc), ("DELETE", lxc),
                ("GET", lxc + "/status/current"), ("GET", lxc + "/config"),
                ("PUT", lxc + "/config"), ("PUT", lxc + "/resize"),
                ("GET", lxc + "/snapshot"), ("POST", lxc + "/snapshot"),
                ("DELETE", lxc + "/snapshot/{snapname}"),
                ("POST", lxc + "/snapshot/{snapname}/rollback"), ("GET", lxc + "/rrddata"),
                ("POST", lxc + "/vncproxy"), ("POST", lxc + "/termproxy"),
                ("GET", lxc + "/vncwebsocket"), ("GET", "/nodes/{node}/qemu/{vmid}/vncwebsocket"),
                ("POST", "/access/vncticket"),
                ("GET", lxc + "/interfaces"), ("GET", "/nodes/{node}/tasks"),
                ("GET", "/nodes/{node}/tasks/{upid}/status"),
                ("GET", "/nodes/{node}/tasks/{upid}/log"),
                ("POST", "/nodes/{node}/qemu/{vmid}/agent/set-user-password"),
                ("GET", "/cluster/status"), ("GET", "/nodes/{node}/storage"),
                ("GET", "/nodes/{node}/storage/{storage}/status"),
                ("GET", "/nodes/{node}/storage/{storage}/content")] + \
            [("POST", lxc + "/status/" + a) for a in
             ("start", "stop", "shutdown", "reboot", "suspend", "resume")]:
        assert key in served, key


# ---------------------------------------------------------------------------
# Authentication

def test_missing_credentials_get_401_no_ticket_after_a_delay(sim):
    t0 = time.monotonic()
    status, reason, headers, body = sim.request("GET", "/version", token=False)
    assert (status, reason, body) == (401, "No ticket", None)
    assert time.monotonic() - t0 >= AUTH_DELAY
    assert headers.get("Connection") == "close"


@pytest.mark.parametrize("auth", [
    "PVEAPIToken=root@pam!ospab=00000000-0000-0000-0000-000000000000",
    "PVEAPIToken=root@pam!other=4f4c3a52-1d3e-4b8e-9a43-0d7f0e6b8c11",
    "PVEAPIToken=garbage",
    "PVEAuthCookie=PVE:root@pam:6B000000::forged",
])
def test_bad_credentials_get_401_authentication_failed(sim, auth):
    status, reason, _, body = sim.request("GET", "/version", token=auth)
    assert (status, reason, body) == (401, "Authentication failed!", None)


def test_unknown_path_needs_auth_first_then_501(sim):
    assert sim.request("GET", "/nope", token=False)[:2] == (401, "No ticket")
    status, reason, _, body = sim.request("GET", "/nope")
    assert (status, reason) == (501, "Method 'GET /nope' not implemented")
    assert body == {"data": None, "message": "Method 'GET /nope' not implemented"}


def test_ticket_login_cookie_csrf_and_renewal(sim):
    status, reason, _, body = sim.request(
        "POST", "/access/ticket", {"username": "root@pam", "password": "wrong"}, token=False)
    assert (status, reason) == (401, "authentication failure")
    assert body == {"data": None, "message": "authentication failure\n"}

    d = sim.data("POST", "/access/ticket",
                 {"username": "root@pam", "password": sim.info["password"]}, token=False)
    assert d["username"] == "root@pam"
    assert re.fullmatch(r"PVE:root@pam:[0-9A-F]{8}::\S+", d["ticket"])
    assert re.fullmatch(r"[0-9A-F]{8}:\S+", d["CSRFPreventionToken"])
    cookie = {"Cookie": "PVEAuthCookie=%s" % urllib.parse.quote(d["ticket"])}
    assert sim.request("GET", "/version", token=False, headers=cookie)[0] == 200
    # writes with a ticket need the CSRF header
    status, reason, _, _ = sim.request("POST", "/nodes/pve1/lxc/100/status/start",
                                       token=False, headers=cookie)
    assert (status, reason) == (401, "Permission denied - invalid csrf token")
    status, reason, _, _ = sim.request(
        "PUT", "/nodes/pve1/lxc/100/config", {"description": "x"}, token=False,
        headers=dict(cookie, CSRFPreventionToken=d["CSRFPreventionToken"]))
    assert status == 200
    # the Authorization header form, and renewal with the ticket as password
    hdr = "PVEAuthCookie=%s" % d["ticket"]
    assert sim.request("GET", "/version", token=hdr)[0] == 200
    again = sim.data("POST", "/access/ticket",
                     {"username": "root@pam", "password": d["ticket"]}, token=False)
    assert again["ticket"].startswith("PVE:root@pam:")


def test_tokens_need_no_csrf(sim):
    vmid, _ = create_ct(sim)
    status, _, _, body = sim.request("PUT", "/nodes/pve1/lxc/%d/config" % vmid,
                                     {"description": "by token"})
    assert (status, body) == (200, {"data": None})


# ---------------------------------------------------------------------------
# Envelope, types and parameter errors

def test_envelope_headers_and_types(sim, schema):
    status, reason, headers, body = sim.request("GET", "/version")
    assert (status, reason) == (200, "OK")
    assert headers["Content-Type"] == "application/json;charset=UTF-8"
    assert headers["Server"] == "pve-api-daemon/3.0"
    assert set(body) == {"data"}
    assert schema_check.check_returns(schema, "GET", "/version", body["data"]) == []
    for path, spath in [("/nodes", "/nodes"), ("/nodes/pve1/status", "/nodes/{node}/status"),
                        ("/nodes/pve1/lxc", "/nodes/{node}/lxc"),
                        ("/nodes/pve1/lxc/100/status/current",
                         "/nodes/{node}/lxc/{vmid}/status/current"),
                        ("/nodes/pve1/lxc/100/config", "/nodes/{node}/lxc/{vmid}/config"),
                        ("/nodes/pve1/lxc/100/snapshot", "/nodes/{node}/lxc/{vmid}/snapshot"),
                        ("/cluster/resources", "/cluster/resources"),
                        ("/nodes/pve1/qemu/104/status/current",
                         "/nodes/{node}/qemu/{vmid}/status/current"),
                        ("/nodes/pve1/qemu/104/config", "/nodes/{node}/qemu/{vmid}/config")]:
        data = sim.data("GET", path)
        assert schema_check.check_returns(schema, "GET", spath, data) == [], path
    st = sim.data("GET", "/nodes/pve1/lxc/100/status/current")
    assert isinstance(st["vmid"], int) and isinstance(st["maxmem"], int)
    assert st["ha"] == {"managed": 0}


def test_nextid_is_a_string_and_checks_a_given_vmid(sim, schema):
    nextid = sim.data("GET", "/cluster/nextid")
    assert isinstance(nextid, str) and int(nextid) >= 100
    assert schema_check.check_returns(schema, "GET", "/cluster/nextid", nextid,
                                      allow_numeric_strings=True) == []
    status, reason, _, body = sim.request("GET", "/cluster/nextid", {"vmid": 100})
    assert (status, reason) == (400, "Parameter verification failed.")
    assert body["errors"] == {"vmid": "VM 100 already exists"}
    assert sim.data("GET", "/cluster/nextid", {"vmid": 99999}) == "99999"


def test_unknown_parameter_gets_proxmox_400(sim):
    status, reason, _, body = sim.request("POST", "/nodes/pve1/lxc",
                                          {"vmid": new_vmid(), "ostemplate": TEMPLATE,
                                           "colour": "blue"})
    assert (status, reason) == (400, "Parameter verification failed.")
    assert body == {"data": None, "message": "Parameter verification failed.\n",
                    "errors": {"colour": NOT_DEFINED}}


@pytest.mark.parametrize("params, field, message", [
    ({}, "ostemplate", MISSING),
    ({"memory": 8}, "memory", "value must have a minimum value of 16"),
    ({"cores": "two"}, "cores", "type check ('integer') failed - got 'two'"),
    ({"unprivileged": "true"}, "unprivileged", "type check ('boolean') failed - got 'true'"),
    ({"password": "abc"}, "password", "value must be at least 5 characters long"),
    ({"hostname": "bad_name"}, "hostname", "invalid format - value does not look like a "
                                           "valid DNS name\n"),
    ({"arch": "sparc"}, "arch", "value 'sparc' does not have a value in the enumeration "
                                "'amd64, i386, arm64, armhf, riscv32, riscv64'"),
    ({"net0": "bridge=vmbr0"}, "net0", "invalid format - format error\n"
                                       "net0.name: property is missing and it is not optional\n"),
    ({"net0": "name=eth0,ip=10.0.0.5"}, "net0", "invalid format - format error\nnet0.ip: "
     "invalid format - value does not look like a valid IPv4 network configuration\n"),
    ({"net32": "name=eth0"}, "net32", NOT_DEFINED),
])
def test_parameter_errors_have_proxmox_texts(sim, params, field, message):
    p = {"vmid": new_vmid(), "ostemplate": TEMPLATE}
    p.update(params)
    if "ostemplate" not in params and field == "ostemplate":
        del p["ostemplate"]
    status, _, _, body = sim.request("POST", "/nodes/pve1/lxc", p)
    assert status == 400
    assert body["errors"][field] == message


def test_json_body_accepts_true_false(sim):
    vmid = new_vmid()
    upid = sim.data("POST", "/nodes/pve1/lxc",
                    {"vmid": vmid, "ostemplate": TEMPLATE, "rootfs": "local-lvm:4",
                     "unprivileged": True, "start": False, "memory": 256},
                    json_body=True)
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    conf = sim.data("GET", "/nodes/pve1/lxc/%d/config" % vmid)
    assert conf["unprivileged"] == 1 and conf["memory"] == 256


def test_get_and_delete_bodies_are_refused(sim):
    raw = raw_request(sim, b"DELETE /api2/json/nodes/pve1/lxc/100 HTTP/1.1\r\nHost: x\r\n"
                           b"Authorization: PVEAPIToken=" + TOKEN.encode() +
                           b"\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                           b"Content-Length: 7\r\nConnection: close\r\n\r\npurge=1")
    assert raw.startswith(b"HTTP/1.1 501 Unexpected content for method 'DELETE'\r\n")


def test_unknown_vmid_node_and_bad_vmid(sim):
    status, reason, _, body = sim.request("GET", "/nodes/pve1/lxc/99999/status/current")
    assert (status, reason) == (500, "Configuration file 'nodes/pve1/lxc/99999.conf' "
                                     "does not exist")
    assert body["message"].endswith("does not exist\n")
    # a guest on another node, or of the other kind, is "missing" too
    assert sim.request("GET", "/nodes/pve2/lxc/100/config")[0] == 500
    assert sim.request("GET", "/nodes/pve1/qemu/100/config")[1] == \
        "Configuration file 'nodes/pve1/qemu-server/100.conf' does not exist"
    status, reason, _, _ = sim.request("GET", "/nodes/nope/lxc/100/status/current")
    assert status == 500 and reason.startswith("hostname lookup 'nope' failed")
    status, _, _, body = sim.request("GET", "/nodes/pve1/lxc/12/status/current")
    assert status == 400
    assert body["errors"] == {"vmid": "value must have a minimum value of 100"}


def test_storage_checks_on_create(sim):
    status, _, _, body = sim.request("POST", "/nodes/pve1/lxc",
                                     {"vmid": new_vmid(), "ostemplate": TEMPLATE,
                                      "rootfs": "8"})
    assert status == 400
    assert body["errors"] == {"storage": "storage 'local' does not support container "
                                         "directories"}
    status, reason, _, _ = sim.request("POST", "/nodes/pve1/lxc",
                                       {"vmid": new_vmid(), "ostemplate": TEMPLATE,
                                        "rootfs": "fast:8"})
    assert (status, reason) == (500, "storage 'fast' does not exist")


def test_create_existing_vmid_is_refused(sim):
    status, reason, _, _ = sim.request("POST", "/nodes/pve2/lxc",
                                       {"vmid": 100, "ostemplate": TEMPLATE})
    assert (status, reason) == (500, "CT 100 already exists on node 'pve1'")


# ---------------------------------------------------------------------------
# UPIDs and tasks

def test_upid_format_and_task_lifecycle(sim, schema):
    t0 = int(time.time())
    vmid, upid = create_ct(sim, wait=False)
    m = UPID_RE.match(upid)
    assert m, upid
    node, pid, pstart, start, ttype, tid, user = m.groups()
    assert (node, ttype, tid, user) == ("pve1", "vzcreate", str(vmid), "root@pam!ospab")
    assert abs(int(start, 16) - t0) <= 2
    path = "/nodes/pve1/tasks/%s/status" % urllib.parse.quote(upid, safe="")
    st = sim.data("GET", path)
    assert st["status"] == "running" and "exitstatus" not in st
    # while creating, the config is locked
    assert sim.data("GET", "/nodes/pve1/lxc/%d/config" % vmid)["lock"] == "create"
    st = sim.wait_task(upid)
    assert st == {"upid": upid, "node": "pve1", "pid": int(pid, 16),
                  "pstart": int(pstart, 16), "starttime": int(start, 16), "type": "vzcreate",
                  "id": str(vmid), "user": "root@pam", "tokenid": "ospab",
                  "status": "stopped", "exitstatus": "OK"}
    assert schema_check.check_returns(schema, "GET", "/nodes/{node}/tasks/{upid}/status",
                                      st) == []
    status, _, _, body = sim.request("GET", "/nodes/pve1/tasks/%s/log" %
                                     urllib.parse.quote(upid, safe=""), {"limit": 1000})
    assert body["data"][-1] == {"n": body["total"], "t": "TASK OK"}
    assert any("extracting archive" in line["t"] for line in body["data"])
    conf = sim.data("GET", "/nodes/pve1/lxc/%d/config" % vmid)
    assert "lock" not in conf
    assert conf["rootfs"] == "local-lvm:vm-%d-disk-0,size=8G" % vmid
    assert re.fullmatch(r"name=eth0,bridge=vmbr0,hwaddr=BC:24:11:[0-9A-F:]{8},ip=dhcp,"
                        r"type=veth", conf["net0"])
    assert conf["unprivileged"] == 1
    tasks = sim.data("GET", "/nodes/pve1/tasks", {"vmid": vmid})
    assert [t["upid"] for t in tasks] == [upid] and tasks[0]["status"] == "OK"
    assert schema_check.check_returns(schema, "GET", "/nodes/{node}/tasks", tasks) == []


def test_unknown_and_garbled_upids(sim):
    good = "UPID:pve1:00001234:0A1B2C3D:6718A3B2:vzstart:100:root@pam:"
    status, _, _, body = sim.request("GET", "/nodes/pve1/tasks/%s/status" %
                                     urllib.parse.quote(good, safe=""))
    assert (status, body["errors"]) == (400, {"upid": "no such task"})
    status, _, _, body = sim.request("GET", "/nodes/pve1/tasks/garbage/status")
    assert status == 400 and body["errors"]["upid"].startswith("unable to parse worker upid")


def test_start_stop_reboot_and_their_refusals(sim):
    vmid, _ = create_ct(sim)
    base = "/nodes/pve1/lxc/%d/status/" % vmid
    status, reason, _, body = sim.request("POST", base + "stop")
    assert (status, reason) == (500, "CT %d not running" % vmid)
    assert body == {"data": None, "message": "CT %d not running\n" % vmid}
    assert sim.request("POST", base + "reboot")[1] == "VM %d not running" % vmid
    upid = sim.data("POST", base + "start")
    assert UPID_RE.match(upid).group(5) == "vzstart"
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    assert sim.data("GET", base + "current")["status"] == "running"
    assert sim.request("POST", base + "start")[1] == "CT %d already running" % vmid
    for action, ttype in (("reboot", "vzreboot"), ("shutdown", "vzshutdown")):
        upid = sim.data("POST", base + action)
        assert UPID_RE.match(upid).group(5) == ttype
        assert sim.wait_task(upid)["exitstatus"] == "OK"
    assert sim.data("GET", base + "current")["status"] == "stopped"


def test_ip_after_start_in_interfaces(sim, schema):
    vmid, _ = create_ct(sim)
    path = "/nodes/pve1/lxc/%d/interfaces" % vmid
    assert sim.request("GET", path)[1] == "CT %d not running" % vmid
    start_ct(sim, vmid)
    ifaces = sim.data("GET", path)
    assert schema_check.check_returns(schema, "GET", "/nodes/{node}/lxc/{vmid}/interfaces",
                                      ifaces) == []
    eth0 = [i for i in ifaces if i["name"] == "eth0"][0]
    assert eth0["inet"] == "%s/16" % pvesim.guest_ipv4(vmid)
    assert eth0["inet"].startswith("10.")


def test_start_with_create_forks_a_separate_start_task(sim):
    vmid, upid = create_ct(sim, start=1)
    deadline = time.time() + 10
    while sim.data("GET", "/nodes/pve1/lxc/%d/status/current" % vmid)["status"] != "running":
        assert time.time() < deadline
        time.sleep(0.05)
    types = [t["type"] for t in sim.data("GET", "/nodes/pve1/tasks", {"vmid": vmid})]
    assert sorted(types) == ["vzcreate", "vzstart"]


def test_task_error_fault_and_create_failure_removes_the_ct(sim):
    sim.fault(kind="task_error", type="vzcreate", message="no space left on device", count=1)
    vmid, upid = create_ct(sim, wait=False)
    st = sim.wait_task(upid)
    assert st["exitstatus"] == "unable to create CT %d - no space left on device" % vmid
    log = sim.data("GET", "/nodes/pve1/tasks/%s/log" % urllib.parse.quote(upid, safe=""))
    assert log[-1]["t"] == "TASK ERROR: unable to create CT %d - no space left on device" % vmid
    assert sim.request("GET", "/nodes/pve1/lxc/%d/config" % vmid)[0] == 500


def test_task_can_be_stopped(sim):
    vmid, _ = create_ct(sim)
    start_ct(sim, vmid)
    sim.guest(vmid, shutdown_hangs=True)
    upid = sim.data("POST", "/nodes/pve1/lxc/%d/status/shutdown" % vmid, {"timeout": 600})
    assert sim.data("DELETE", "/nodes/pve1/tasks/%s" % urllib.parse.quote(upid, safe="")) \
        is None
    assert sim.wait_task(upid)["exitstatus"] == "received interrupt"


def test_shutdown_timeout_and_force_stop(sim):
    vmid, _ = create_ct(sim)
    start_ct(sim, vmid)
    sim.guest(vmid, shutdown_hangs=True)
    base = "/nodes/pve1/lxc/%d/status/" % vmid
    st = sim.wait_task(sim.data("POST", base + "shutdown", {"timeout": 2}))
    assert st["exitstatus"] == "container did not stop"
    st = sim.wait_task(sim.data("POST", base + "shutdown", {"timeout": 2, "forceStop": 1}))
    assert st["exitstatus"] == "OK"
    assert sim.data("GET", base + "current")["status"] == "stopped"


# ---------------------------------------------------------------------------
# lock: semantics

def test_lock_conflicts_give_the_real_errors(sim):
    sim.configure(time_scale=0.3)          # keep the creates running a while (2.4 s)
    try:
        vmid, upid = create_ct(sim, wait=False)
        vmid2, upid2 = create_ct(sim, wait=False)
        path = "/nodes/pve1/lxc/%d" % vmid
        # DELETE and resize check the lock before their fork, without the config file lock
        assert sim.request("DELETE", path)[1] == "CT is locked (create)"
        assert sim.request("PUT", path + "/resize",
                           {"disk": "rootfs", "size": "+1G"})[1] == "CT is locked (create)"
        st = sim.state(vmid=vmid, guests=0)
        assert st["locks"] == {str(vmid): "create", str(vmid2): "create"}
        assert sim.data("GET", path + "/status/current")["lock"] == "create"
        # the create's worker holds the config file lock (lock_config in create_vm) ...
        assert sim.guest_info(vmid)["flock"] == "exclusive"
        # ... so start (in its worker) and PUT config wait for it, then find no lock
        start = sim.data("POST", path + "/status/start")
        t0 = time.monotonic()
        status, reason, _, body = sim.request("PUT", path + "/config", {"cores": 3})
        assert (status, body) == (200, {"data": None}), reason
        assert time.monotonic() - t0 > 0.5
        assert sim.data("GET", "/nodes/pve1/tasks/%s/status" % urllib.parse.quote(upid))[
            "exitstatus"] == "OK"
        # a snapshot waits for the lock as well
        snap = sim.data("POST", "/nodes/pve1/lxc/%d/snapshot" % vmid2, {"snapname": "early"})
    finally:
        sim.configure(time_scale=0.05)
    assert sim.wait_task(start)["exitstatus"] == "OK"
    assert sim.data("GET", path + "/config")["cores"] == 3
    assert sim.wait_task(upid2)["exitstatus"] == "OK"
    assert sim.wait_task(snap)["exitstatus"] == "OK"
    assert [s["name"] for s in sim.data("GET", "/nodes/pve1/lxc/%d/snapshot" % vmid2)] == \
        ["early", "current"]


def test_a_create_longer_than_the_lock_timeout_times_the_update_out(sim):
    sim.configure(time_scale=0.15, lock_timeout=0.4)      # a create of 1.2 s
    try:
        vmid, upid = create_ct(sim, wait=False)
        path = "/nodes/pve1/lxc/%d" % vmid
        t0 = time.monotonic()
        status, reason, _, body = sim.request("PUT", path + "/config", {"cores": 3})
        assert (status, reason) == (500, "can't lock file '/run/lock/lxc/pve-config-%d.lock' "
                                         "- got timeout" % vmid)
        assert body["message"] == reason + "\n"
        assert 0.35 < time.monotonic() - t0 < 2
        start = sim.data("POST", path + "/status/start")
        assert sim.wait_task(start)["exitstatus"] == reason
    finally:
        sim.configure(time_scale=0.05, lock_timeout=10)
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    assert sim.data("GET", path + "/config")["cores"] == 2


def test_protection_running_and_forced_destroy(sim):
    vmid, _ = create_ct(sim)
    path = "/nodes/pve1/lxc/%d" % vmid
    sim.data("PUT", path + "/config", {"protection": 1})
    assert sim.request("DELETE", path)[1] == "can't remove CT %d - protection mode enabled" % vmid
    sim.data("PUT", path + "/config", {"delete": "protection"})
    start_ct(sim, vmid)
    assert sim.request("DELETE", path)[1] == \
        "unable to destroy CT %d - container is running" % vmid
    upid = sim.data("DELETE", path, {"purge": 1, "force": 1,
                                     "destroy-unreferenced-disks": 1})
    assert UPID_RE.match(upid).group(5) == "vzdestroy"
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    assert sim.request("GET", path + "/config")[0] == 500


def test_config_digest_delete_and_pending(sim):
    vmid, _ = create_ct(sim)
    path = "/nodes/pve1/lxc/%d/config" % vmid
    conf = sim.data("GET", path)
    assert re.fullmatch(r"[0-9a-f]{40}", conf["digest"])
    sim.data("PUT", path, {"cores": 4, "memory": 2048, "swap": 0, "digest": conf["digest"]})
    status, reason, _, _ = sim.request("PUT", path, {"cores": 1, "digest": conf["digest"]})
    assert (status, reason) == (500, "detected modified configuration - file changed by "
                                     "other user? Try again.")
    assert sim.request("PUT", path, {"password": "newpass1"})[3]["errors"] == \
        {"password": NOT_DEFINED}
    start_ct(sim, vmid)
    sim.data("PUT", path, {"cores": 1, "features": "nesting=1", "delete": "swap"})
    now_conf = sim.data("GET", path, {"current": 1})
    assert now_conf["cores"] == 1 and "swap" not in now_conf       # hot-plugged
    assert "features" not in now_conf                              # pending
    assert sim.data("GET", path)["features"] == "nesting=1"
    pending = {e["key"]: e for e in sim.data("GET", "/nodes/pve1/lxc/%d/pending" % vmid)}
    assert pending["features"] == {"key": "features", "pending": "nesting=1"}


# ---------------------------------------------------------------------------
# /cluster/resources lag

def test_cluster_resources_lag_behind_status_current(sim):
    vmid, _ = create_ct(sim)
    sim.configure(resources_lag=60)
    try:
        sim.refresh()
        entry = lambda: [e for e in sim.data("GET", "/cluster/resources", {"type": "vm"})
                         if e.get("vmid") == vmid][0]
        assert entry()["status"] == "stopped"
        start_ct(sim, vmid)
        assert sim.data("GET", "/nodes/pve1/lxc/%d/status/current" % vmid)["status"] == \
            "running"
        assert entry()["status"] == "stopped"          # not refreshed yet
        # a new guest is listed at once, with status unknown until the next sample
        new, _ = create_ct(sim)
        fresh = [e for e in sim.data("GET", "/cluster/resources", {"type": "vm"})
                 if e["vmid"] == new][0]
        assert fresh["status"] == "unknown" and "mem" not in fresh
        sim.configure(resources_lag=0.5)
        deadline = time.time() + 5
        while entry()["status"] != "running":
            assert time.time() < deadline
            time.sleep(0.1)
    finally:
        sim.configure(resources_lag=1.0)


def test_cluster_resources_types_and_driven_usage(sim, schema):
    sim.guest(101, status="running", cpu=0.97, mem=123456789)
    sim.refresh()
    res = sim.data("GET", "/cluster/resources")
    assert schema_check.check_returns(schema, "GET", "/cluster/resources", res) == []
    assert {e["type"] for e in res} == {"lxc", "qemu", "node", "storage"}
    e = [x for x in res if x.get("vmid") == 101][0]
    assert (e["id"], e["cpu"], e["mem"], e["status"]) == ("lxc/101", 0.97, 123456789,
                                                         "running")
    nodes = sim.data("GET", "/cluster/resources", {"type": "node"})
    assert sorted(n["node"] for n in nodes) == ["pve1", "pve2"]
    assert sim.request("GET", "/cluster/resources", {"type": "vms"})[0] == 400


def test_cluster_resources_for_10000_guests_is_fast(tmp_path):
    with PveSim(str(tmp_path), nodes=["pve%d" % i for i in range(1, 11)], guests=10000,
                auth_fail_delay=AUTH_DELAY, token=TOKEN) as big:
        conn = big.connection()
        try:
            big.request("GET", "/cluster/resources", {"type": "vm"}, conn=conn)  # warm up
            for _ in range(3):
                t0 = time.monotonic()
                status, _, _, body = big.request("GET", "/cluster/resources",
                                                 {"type": "vm"}, conn=conn)
                elapsed = time.monotonic() - t0
                assert status == 200 and len(body["data"]) == 10000
                assert elapsed < 0.5, elapsed
        finally:
            conn.close()
        nodes = {e["node"] for e in body["data"]}
        assert len(nodes) == 10


# ---------------------------------------------------------------------------
# Faults

def test_fault_latency(sim):
    sim.fault(kind="latency", seconds=1.0, path_prefix="/version", count=1)
    t0 = time.monotonic()
    assert sim.request("GET", "/version")[0] == 200
    assert time.monotonic() - t0 >= 1.0
    t0 = time.monotonic()
    sim.request("GET", "/version")
    assert time.monotonic() - t0 < 0.5


def test_fault_status_500_and_595(sim):
    sim.fault(kind="status", code=500, message="got timeout", path_prefix="/nodes/pve1/",
              count=1)
    status, reason, _, body = sim.request("GET", "/nodes/pve1/lxc")
    assert (status, reason, body) == (500, "got timeout",
                                      {"data": None, "message": "got timeout\n"})
    sim.fault(kind="status", code=595, path_prefix="/nodes/pve2/", method="GET")
    status, reason, _, body = sim.request("GET", "/nodes/pve2/lxc")
    assert (status, reason, body) == (595, "No route to host", None)
    assert sim.request("GET", "/nodes/pve1/lxc")[0] == 200
    counts = sim.state(guests=0, tasks=0)["requests"]
    assert counts["GET /nodes/{node}/lxc"] >= 3


def test_fault_drop_closes_without_answer(sim):
    sim.fault(kind="drop", path_prefix="/version", count=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
        sim.request("GET", "/version")
    assert sim.request("GET", "/version")[0] == 200


def test_offline_node_gives_595_for_proxied_calls(sim):
    sim.node("pve2", False)
    try:
        status, reason, _, body = sim.request("GET", "/nodes/pve2/lxc")
        assert (status, reason, body) == (595, "No route to host", None)
        nodes = {n["node"]: n["status"] for n in sim.data("GET", "/nodes")}
        assert nodes == {"pve1": "online", "pve2": "offline"}
        res = sim.data("GET", "/cluster/resources", {"type": "vm"})
        assert {e["status"] for e in res if e["node"] == "pve2"} == {"unknown"}
    finally:
        sim.node("pve2", True)


# ---------------------------------------------------------------------------
# Snapshots, resize, rrd, consoles

@pytest.mark.parametrize("name", ["1abc", "a", "bad name", "x" * 41, "snap.1", "-x"])
def test_snapshot_names_follow_pve_configid(sim, name):
    status, _, _, body = sim.request("POST", "/nodes/pve1/lxc/100/snapshot",
                                     {"snapname": name})
    assert status == 400
    assert "snapname" in body["errors"]


def test_snapshot_create_list_rollback_delete(sim, schema):
    vmid, _ = create_ct(sim)
    base = "/nodes/pve1/lxc/%d/snapshot" % vmid
    assert sim.request("POST", base, {"snapname": "current"})[1] == \
        "unable to use snapshot name 'current' (reserved name)"
    upid = sim.data("POST", base, {"snapname": "Before_Upgrade-1", "description": "pre"})
    assert UPID_RE.match(upid).group(5) == "vzsnapshot"
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    again = sim.wait_task(sim.data("POST", base, {"snapname": "Before_Upgrade-1"}))
    assert again["exitstatus"] == "snapshot name 'Before_Upgrade-1' already used"
    sim.data("PUT", "/nodes/pve1/lxc/%d/config" % vmid, {"cores": 7})
    snaps = sim.data("GET", base)
    assert schema_check.check_returns(schema, "GET", "/nodes/{node}/lxc/{vmid}/snapshot",
                                      snaps) == []
    assert [s["name"] for s in snaps] == ["Before_Upgrade-1", "current"]
    assert snaps[0]["description"] == "pre" and isinstance(snaps[0]["snaptime"], int)
    assert snaps[-1]["parent"] == "Before_Upgrade-1" and snaps[-1]["running"] == 0
    upid = sim.data("POST", base + "/Before_Upgrade-1/rollback")
    assert UPID_RE.match(upid).group(5) == "vzrollback"
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    assert sim.data("GET", "/nodes/pve1/lxc/%d/config" % vmid)["cores"] == 2
    missing = sim.wait_task(sim.data("DELETE", base + "/nothere"))
    assert missing["exitstatus"] == "snapshot 'nothere' does not exist"
    upid = sim.data("DELETE", base + "/Before_Upgrade-1")
    assert UPID_RE.match(upid).group(5) == "vzdelsnapshot"
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    assert [s["name"] for s in sim.data("GET", base)] == ["current"]


def test_resize_only_grows(sim):
    vmid, _ = create_ct(sim)
    path = "/nodes/pve1/lxc/%d/resize" % vmid
    assert sim.request("PUT", path, {"disk": "rootfs", "size": "4G"})[:2] == \
        (500, "unable to shrink disk size")
    assert sim.request("PUT", path, {"disk": "rootfs", "size": "8G"})[1] == \
        "disk is already at specified size"
    assert sim.request("PUT", path, {"disk": "rootfs", "size": "-1G"})[3]["errors"] == \
        {"size": "value does not match the regex pattern"}
    assert sim.request("PUT", path, {"disk": "mp0", "size": "+1G"})[1] == \
        "disk 'mp0' does not exist"
    upid = sim.data("PUT", path, {"disk": "rootfs", "size": "+2G"})
    assert UPID_RE.match(upid).group(5) == "resize"
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    assert sim.data("PUT", path, {"disk": "rootfs", "size": "20G"})
    time.sleep(0.3)
    conf = sim.data("GET", "/nodes/pve1/lxc/%d/config" % vmid)
    assert conf["rootfs"] == "local-lvm:vm-%d-disk-0,size=20G" % vmid
    assert sim.data("GET", "/nodes/pve1/lxc/%d/status/current" % vmid)["maxdisk"] == 20 * 2**30


@pytest.mark.parametrize("timeframe, step, points", [
    ("hour", 60, 60), ("day", 60, 1440), ("week", 1800, 336), ("year", 21600, 1440)])
def test_rrddata_points(sim, timeframe, step, points):
    data = sim.data("GET", "/nodes/pve1/lxc/101/rrddata", {"timeframe": timeframe,
                                                           "cf": "AVERAGE"})
    assert len(data) == points
    assert all(b["time"] - a["time"] == step for a, b in zip(data, data[1:]))
    last = data[-1]
    for field in ("cpu", "maxcpu", "mem", "maxmem", "disk", "maxdisk", "netin", "netout",
                  "diskread", "diskwrite"):
        assert isinstance(last[field], float), field


def test_rrddata_follows_driven_usage_and_validates(sim):
    sim.guest(102, status="running", cpu=0.5)
    data = sim.data("GET", "/nodes/pve1/lxc/102/rrddata", {"timeframe": "hour", "cf": "MAX"})
    assert data[-1]["cpu"] == 0.5
    assert sim.request("GET", "/nodes/pve1/lxc/102/rrddata",
                       {"timeframe": "decade"})[0] == 400
    assert sim.request("GET", "/nodes/pve1/lxc/102/rrddata", {})[3]["errors"] == \
        {"timeframe": MISSING}


def test_vncproxy_and_termproxy_shapes(sim, schema):
    d = sim.data("POST", "/nodes/pve1/lxc/100/vncproxy", {"websocket": 1})
    assert schema_check.check_returns(schema, "POST", "/nodes/{node}/lxc/{vmid}/vncproxy",
                                      d) == []
    assert set(d) == {"user", "ticket", "port", "upid", "cert", "password"}
    assert 5900 <= d["port"] <= 5999
    # websocket=1: an 8-character VNC password ('!' .. '`'), also put before the ticket
    assert re.fullmatch(r"[!-`]{8}", d["password"])
    assert d["ticket"].startswith(d["password"] + ":PVEVNC:")
    assert d["user"] == "root@pam!ospab"
    with open(sim.ca) as f:
        assert d["cert"] == f.read()
    assert UPID_RE.match(d["upid"]).group(5) == "vncproxy"
    t = sim.data("POST", "/nodes/pve1/lxc/100/termproxy")
    assert set(t) == {"user", "ticket", "port", "upid"} and t["port"] != d["port"]
    assert schema_check.check_returns(schema, "POST", "/nodes/{node}/lxc/{vmid}/termproxy",
                                      t) == []
    assert re.fullmatch(r"PVEVNC:[0-9A-F]{8}::\S+", t["ticket"])
    # without websocket an LXC vncproxy has no password (vncterm checks the ticket)
    assert "password" not in sim.data("POST", "/nodes/pve1/lxc/100/vncproxy")


# ---------------------------------------------------------------------------
# Consoles: termproxy, RFB and the vncwebsocket

def test_des_and_vnc_authentication_known_answers():
    h = bytes.fromhex
    # FIPS 46-3 worked example, and the classic "Now is the time for all "
    assert vncdes.encrypt_block(h("133457799BBCDFF1"), h("0123456789ABCDEF")) == \
        h("85E813540F0AB405")
    assert vncdes.decrypt_block(h("133457799BBCDFF1"), h("85E813540F0AB405")) == \
        h("0123456789ABCDEF")
    assert vncdes.ecb_encrypt(h("0123456789ABCDEF"), b"Now is the time for all ") == \
        h("3FA40E8A984D48156A271787AB8883F9893D51EC4B563B53")
    assert vncdes.encrypt_block(h("FFFFFFFFFFFFFFFF"), h("FFFFFFFFFFFFFFFF")) == \
        h("7359B2163E4EDC58")
    assert vncdes.encrypt_block(h("FEDCBA9876543210"), h("0123456789ABCDEF")) == \
        h("ED39D950FA74BCC4")
    # NBS known-answer tests (SP 800-17): variable plaintext and variable key
    assert vncdes.encrypt_block(h("0101010101010101"), h("8000000000000000")) == \
        h("95F8A5E5DD31D900")
    assert vncdes.encrypt_block(h("8001010101010101"), h("0000000000000000")) == \
        h("95A8D72813DAA94D")
    # VNC: the password's bytes bit-reversed, NUL-padded to 8, longer ones cut
    assert vncdes.vnc_key("\x01\x02") == b"\x80\x40" + b"\0" * 6
    assert vncdes.vnc_key("password") == vncdes.vnc_key("password-and-more")
    # "password" → key 0E86CECEEEF64E26; the answer to a zero challenge, as
    # `openssl enc -des-ecb -K 0E86CECEEEF64E26 -nopad` (legacy provider) computes it
    assert vncdes.vnc_key("password") == h("0E86CECEEEF64E26")
    assert vncdes.vnc_response("password", bytes(16)) == h("FF97502E9422F089" * 2)
    challenge = bytes(range(16))
    key = vncdes.vnc_key("s3cret")
    answer = vncdes.vnc_response("s3cret", challenge)
    assert answer == vncdes.encrypt_block(key, challenge[:8]) + \
        vncdes.encrypt_block(key, challenge[8:])
    assert vncdes.decrypt_block(key, answer[8:]) == challenge[8:]


@pytest.fixture
def console_vm(sim):
    """console_vm(**fields): a scratch VM on pve1, removed afterwards (its disk would
    show in the storage tests)."""
    made = []

    def make(**fields):
        made.append(qemu_vm(sim, **fields))
        return made[-1]
    yield make
    for vmid in made:
        sim.control("DELETE", "/guest/%d" % vmid)


def running_ct(sim, node="pve1"):
    vmid, _ = create_ct(sim, node=node)
    start_ct(sim, vmid, node)
    return vmid


def test_termproxy_line_shell_over_the_vncwebsocket(sim, schema):
    vmid = running_ct(sim)
    term = sim.termproxy(vmid, node="pve1")
    info = term.info
    assert schema_check.check_returns(schema, "POST", "/nodes/{node}/lxc/{vmid}/termproxy",
                                      info) == []
    assert term.ws.protocol == "binary"         # the request's subprotocol, echoed
    prompt = "root@ct%d:~# " % vmid
    term.read_until(re.escape(prompt.encode()) + b"$")
    term.ws.ping(b"hi")                         # a WebSocket ping gets its pong
    assert term.ws.recv_frame() == (0x8A, b"hi")
    assert term.run("echo hello") == "hello\r\n"
    assert term.run("echo  'two  words' x") == "two  words x\r\n"
    assert term.run("hostname") == "ct%d\r\n" % vmid
    assert term.run("frobnicate --now") == "-bash: frobnicate: command not found\r\n"
    # typing arrives as several messages, with a backspace, a resize and pings between
    start = len(term.output)
    term.send_input("echo hx")
    term.send_input("\x7f")
    term.resize(132, 43)
    term.ping()
    term.ws.send("0:4:ello")                   # xterm.js sends text frames
    term.ws.send(b"0:1:\r2")
    term.read_until(b"hello\r\n" + re.escape(prompt.encode()) + b"$")
    assert term.output[start:].startswith(b"echo hx\b \bello\r\nhello\r\n")
    st = sim.console(info["port"])
    assert st["kind"] == "term" and st["state"] == "connected" and st["authenticated"]
    assert (st["cols"], st["rows"], st["resizes"], st["pings"]) == (132, 43, 1, 2)
    assert st["commands"][0] == "echo hello" and st["commands"][-1] == "echo hello"
    assert st["bytes_in"] > 40 and st["bytes_out"] > 100 and st["user"] == sim.token_id
    assert st["upid"] == info["upid"]
    assert sim.data("GET", "/nodes/pve1/tasks/%s/status" % urllib.parse.quote(
        info["upid"], safe=""))["status"] == "running"
    # exit: "logout", then Proxmox drops the socket (no close frame)
    term.send_input("exit\r")
    term.read_until(b"logout\r\n")
    while term.ws.recv() is not None:
        pass
    assert term.ws.closed_by == "eof"
    st = sim.wait_task(info["upid"])
    assert (st["exitstatus"], st["type"]) == ("OK", "vncproxy")
    log = sim.data("GET", "/nodes/pve1/tasks/%s/log" % urllib.parse.quote(
        info["upid"], safe=""))
    assert log[0]["t"].startswith("client connection: 127.0.0.1:")
    assert sim.console(info["port"])["end_reason"] == "shell exited"


def test_termproxy_of_a_qemu_vm_and_a_stopped_guest(sim, console_vm):
    vmid = console_vm(status="running", name="web-1")
    term = sim.termproxy(vmid, node="pve1", kind="qemu")
    term.read_until(rb"root@web-1:~# $")
    assert term.run("hostname") == "web-1\r\n"
    term.ws.close()
    assert term.ws.recv() is None
    assert sim.wait_task(term.info["upid"])["exitstatus"] == "OK"
    assert sim.console(term.info["port"])["end_reason"] == "client close (1000)"
    # a stopped CT: "OK", the console command's complaint, and the end
    vmid, _ = create_ct(sim)
    term = sim.termproxy(vmid, node="pve1")
    term.read_until(b"is not running\r\n")
    assert term.ws.recv() is None


def test_vnc_rfb_38_with_vnc_authentication_and_a_framebuffer(sim, schema, console_vm):
    vmid = console_vm(status="running", name="desk-1")
    rfb = sim.vnc(vmid, node="pve1")
    info = rfb.info
    assert schema_check.check_returns(schema, "POST", "/nodes/{node}/qemu/{vmid}/vncproxy",
                                      info) == []
    assert set(info) == {"user", "ticket", "port", "upid", "cert", "password"}
    assert info["ticket"].startswith(info["password"] + ":PVEVNC:")
    assert rfb.server_version == b"RFB 003.008\n"
    assert (rfb.width, rfb.height, rfb.name) == (64, 48, "QEMU (desk-1)")
    assert rfb.pixel_format == (32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
    rfb.set_encodings([0, -223])
    rfb.request_update(incremental=False)
    [(x, y, w, h, enc, pixels)] = rfb.read_update()
    assert (x, y, w, h, enc) == (0, 0, 64, 48, 0) and len(pixels) == 64 * 48 * 4
    colours = {pixels[i:i + 4] for i in range(0, len(pixels), 4)}
    assert len(colours) > 8 and b"\0\0\0\0" in colours and b"\xff\xff\xff\0" in colours
    # a part of the screen; an incremental request waits for a change (a key press)
    rfb.request_update(incremental=False, x=8, y=4, w=4, h=2)
    assert [r[:4] for r in rfb.read_update()] == [(8, 4, 4, 2)]
    rfb.request_update(incremental=True)
    with pytest.raises(socket.timeout):
        rfb.read(1, timeout=0.3)
    rfb.key(0xFF0D, True)
    rfb.key(0xFF0D, False)
    [(_, _, w, h, _, changed)] = rfb.read_update()
    assert (w, h) == (64, 48) and changed != pixels
    # 16 bpp on request; pointer and clipboard are taken
    rfb.set_pixel_format(bpp=16, depth=16, rmax=31, gmax=63, bmax=31, rshift=11, gshift=5,
                         bshift=0)
    rfb.pointer(10, 20, 1)
    rfb.cut_text("clip")
    rfb.request_update(incremental=False)
    assert len(rfb.read_update()[0][5]) == 64 * 48 * 2
    st = sim.console(info["port"])
    assert st["kind"] == "vnc" and st["authenticated"] and st["auth_failures"] == 0
    assert st["keys"] == [[0xFF0D, 1], [0xFF0D, 0]] and st["pointer"] == [10, 20, 1]
    assert st["cut_text"] == ["clip"] and st["encodings"] == [0, -223]
    assert st["updates"] == 4 and st["client_version"] == "RFB 003.008"
    rfb.ws.close()
    assert sim.wait_task(info["upid"])["exitstatus"] == "OK"
    # the password alone works as well (the first 8 characters are what counts)
    rfb = sim.vnc(vmid, node="pve1", auth="password")
    assert rfb.width == 64 and sim.console(rfb.info["port"])["authenticated"]
    rfb.ws.shutdown()


def test_vnc_authentication_failure_and_a_stopped_vm(sim, console_vm):
    vmid = console_vm(status="running")
    info = sim.data("POST", qpath("pve1", vmid, "/vncproxy"), {"websocket": 1})
    with sim.vncwebsocket(vmid, info["port"], info["ticket"], node="pve1",
                          kind="qemu") as ws:
        rfb = RfbClient(ws)
        assert rfb.handshake("wrong-pw") == (1, b"Authentication failed\0")
        assert ws.recv() is None
    assert sim.console(info["port"])["auth_failures"] == 1
    # a stopped VM: qm vncproxy fails, the socket closes at once
    vmid = console_vm()
    info = sim.data("POST", qpath("pve1", vmid, "/vncproxy"), {"websocket": 1})
    with sim.vncwebsocket(vmid, info["port"], info["ticket"], node="pve1",
                          kind="qemu") as ws:
        assert ws.recv() is None
    assert sim.wait_task(info["upid"])["exitstatus"] == "Failed to run vncproxy."


def test_vncwebsocket_refusals(sim, schema):
    vmid = running_ct(sim)
    other = running_ct(sim)
    t = sim.data("POST", "/nodes/pve1/lxc/%d/termproxy" % vmid)

    def refused(**kw):
        args = dict(vmid=vmid, port=t["port"], vncticket=t["ticket"], node="pve1")
        args.update(kw)
        with pytest.raises(WebSocketRefused) as e:
            sim.vncwebsocket(args.pop("vmid"), args.pop("port"), args.pop("vncticket"),
                             **args)
        return e.value

    bad = "permission denied - invalid PVEVNC ticket"
    for e in (refused(vncticket="PVEVNC:00000000::bogus"),
              refused(vmid=other),                              # another guest's path
              refused(port=t["port"] + 1 if t["port"] < 5999 else 5900)):
        assert (e.status, e.reason) == (401, bad)
        assert json.loads(e.body) == {"data": None, "message": bad + "\n"}
    # another user (root@pam with a ticket cookie) may not use the token's ticket
    d = sim.data("POST", "/access/ticket",
                 {"username": "root@pam", "password": sim.info["password"]}, token=False)
    e = refused(token=False, headers={
        "Cookie": "PVEAuthCookie=%s" % urllib.parse.quote(d["ticket"])})
    assert (e.status, e.reason) == (401, bad)
    assert refused(token=False).reason == "No ticket"
    # without Upgrade: the API answer {"port": "N"}
    data = sim.data("GET", "/nodes/pve1/lxc/%d/vncwebsocket" % vmid,
                    {"port": t["port"], "vncticket": t["ticket"]})
    assert data == {"port": str(t["port"])}
    assert schema_check.check_returns(schema, "GET", "/nodes/{node}/lxc/{vmid}/vncwebsocket",
                                      data) == []
    # a wrong websocket version: pve-http-server's 500 with a plain body
    q = urllib.parse.urlencode({"port": t["port"], "vncticket": t["ticket"]})
    raw = raw_request(sim, (
        "GET /api2/json/nodes/pve1/lxc/%d/vncwebsocket?%s HTTP/1.1\r\nHost: x\r\n"
        "Authorization: PVEAPIToken=%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
        % (vmid, q, TOKEN)).encode())
    assert raw.startswith(b"HTTP/1.1 500 unsupported websocket-version '8'\r\n")
    assert raw.endswith(b"\r\n\r\nunsupported websocket-version '8'\n")
    # the real thing works once; a second connection to the port finds nothing
    ws = sim.vncwebsocket(vmid, t["port"], t["ticket"], node="pve1", protocols=())
    assert ws.protocol is None                  # no subprotocol asked, none answered
    assert refused().status is None
    # a wrong ticket line: termproxy closes the connection, its task fails
    term = TermClient(ws, t)
    assert term.login(ticket="PVEVNC:00000000::bogus") is False
    assert sim.wait_task(t["upid"])["exitstatus"] == "authentication request failed"
    # an expired ticket
    sim.console_settings(ticket_lifetime=0)
    try:
        t2 = sim.data("POST", "/nodes/pve1/lxc/%d/termproxy" % vmid)
        assert refused(port=t2["port"], vncticket=t2["ticket"]).status == 401
    finally:
        sim.console_settings(ticket_lifetime=40)
    # /access/vncticket, as termproxy asks it
    t3 = sim.data("POST", "/nodes/pve1/lxc/%d/termproxy" % vmid)
    ok = {"authid": t3["user"], "vncticket": t3["ticket"], "path": "/vms/%d" % vmid,
          "privs": "VM.Console", "port": t3["port"]}
    assert sim.request("POST", "/access/vncticket", ok, token=False)[:2] == (200, "OK")
    status, reason, _, body = sim.request("POST", "/access/vncticket",
                                          dict(ok, port=5999 if t3["port"] != 5999 else 5998),
                                          token=False)
    assert (status, reason, body) == (401, "authentication failure",
                                      {"data": None, "message": "authentication failure\n"})


def test_console_drop_timeout_and_slow_reader(sim, console_vm):
    vmid = running_ct(sim)
    term = sim.termproxy(vmid, node="pve1")
    term.read_until(rb"# $")
    assert [s["port"] for s in sim.consoles()["sessions"]].count(term.info["port"]) == 1
    out = sim.drop_console(term.info["port"])
    assert out["dropped"] == "close" and out["state"] == "closed"
    assert term.ws.recv() is None and term.ws.closed_by == "eof"
    assert sim.wait_task(term.info["upid"])["exitstatus"] == "OK"
    closed = [s for s in sim.consoles()["closed"] if s["upid"] == term.info["upid"]]
    assert closed and closed[0]["end_reason"] == "dropped"
    # "reset": a TCP RST instead of the orderly close
    term = sim.termproxy(vmid, node="pve1")
    term.read_until(rb"# $")
    assert sim.drop_console(term.info["port"], mode="reset")["dropped"] == "reset"
    assert term.ws.recv() is None
    # a proxy nobody connects to gives up after the timeout
    sim.console_settings(timeout=1.0)
    try:
        t = sim.data("POST", "/nodes/pve1/lxc/%d/termproxy" % vmid)
        assert sim.wait_task(t["upid"])["exitstatus"] == "failed waiting for client: timed out"
        vm = console_vm(status="running")
        v = sim.data("POST", qpath("pve1", vm, "/vncproxy"), {"websocket": 1})
        assert sim.wait_task(v["upid"])["exitstatus"] == "connection timed out"
        # vncterm (LXC) waits twice as long and exits quietly
        t0 = time.monotonic()
        v = sim.data("POST", "/nodes/pve1/lxc/%d/vncproxy" % vmid, {"websocket": 1})
        assert sim.wait_task(v["upid"])["exitstatus"] == "OK"
        assert time.monotonic() - t0 > 1.8
        with pytest.raises(WebSocketRefused):
            sim.vncwebsocket(vmid, t["port"], t["ticket"], node="pve1")
        # and one that does not send its ticket line in time
        t = sim.data("POST", "/nodes/pve1/lxc/%d/termproxy" % vmid)
        with sim.vncwebsocket(vmid, t["port"], t["ticket"], node="pve1") as ws:
            assert ws.recv() is None
        assert sim.wait_task(t["upid"])["exitstatus"] == "failed reading ticket: timed out"
    finally:
        sim.console_settings(timeout=10)
    # slow reader: every frame waits before the server reads it
    term = sim.termproxy(vmid, node="pve1")
    term.read_until(rb"# $")
    sim.console_settings(read_delay=0.3)
    try:
        t0 = time.monotonic()
        term.send_input("echo sl")
        term.send_input("ow\r")
        term.read_until(rb"\r\nslow\r\n[^\n]*# $")
        assert time.monotonic() - t0 >= 0.3
    finally:
        sim.console_settings(read_delay=0)
    # DELETE on the task ends the session too
    upid = term.info["upid"]
    sim.data("DELETE", "/nodes/pve1/tasks/%s" % urllib.parse.quote(upid, safe=""))
    assert term.ws.recv() is None
    assert sim.wait_task(upid)["exitstatus"] == "received interrupt"


# ---------------------------------------------------------------------------
# QEMU, passwords, transport

def test_qemu_status_power_and_agent_password(sim):
    base = "/nodes/pve1/qemu/104"
    sim.guest(104, status="stopped")
    st = sim.data("GET", base + "/status/current")
    assert st["status"] == "stopped" and st["qmpstatus"] == "stopped" and st["agent"] == 1
    assert sim.request("POST", base + "/agent/set-user-password",
                       {"username": "root", "password": "newpass1"})[1] == \
        "VM 104 is not running"
    upid = sim.data("POST", base + "/status/start")
    assert UPID_RE.match(upid).group(5) == "qmstart"
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    assert sim.data("POST", base + "/agent/set-user-password",
                    {"username": "root", "password": "newpass1"}) == {"result": {}}
    rec = sim.guest_info(104)["passwords"]["root"]
    assert rec["source"] == "agent" and len(rec["sha256"]) == 64
    sim.guest(104, agent_running=False)
    assert sim.request("POST", base + "/agent/set-user-password",
                       {"username": "root", "password": "newpass2"})[1] == \
        "QEMU guest agent is not running"
    assert sim.request("DELETE", base)[1] == "VM 104 is running - destroy failed"
    upid = sim.data("POST", base + "/status/stop")
    assert sim.wait_task(upid)["exitstatus"] == "OK"


def test_control_password_record_for_the_ssh_forced_command(sim):
    vmid, _ = create_ct(sim)
    info = sim.guest_info(vmid)
    assert info["passwords"]["root"]["source"] == "create"
    before = info["passwords"]["root"]["changed_at"]
    out = sim.set_password(vmid, password="Zx9!pass-new")
    assert out["record"]["changed_at"] >= before
    import hashlib
    assert sim.guest_info(vmid)["passwords"]["root"]["sha256"] == \
        hashlib.sha256(b"Zx9!pass-new").hexdigest()


def test_keep_alive_reuses_the_connection(sim):
    conn = sim.connection()
    try:
        sim.request("GET", "/version", conn=conn)
        first = conn.sock
        sim.request("GET", "/nodes", conn=conn)
        assert conn.sock is first
    finally:
        conn.close()


def test_plain_http_is_redirected(sim):
    with socket.create_connection((sim.host, sim.port), timeout=5) as s:
        s.sendall(b"GET /api2/json/version HTTP/1.1\r\nHost: x\r\n\r\n")
        head = s.recv(4096).decode()
    assert head.startswith("HTTP/1.1 301 ")
    assert "Location: https://127.0.0.1:%d/api2/json/version" % sim.port in head


def test_certificate_names_and_state_file(sim):
    info = json.load(open(os.path.join(sim.state_dir, "pvesim.json")))
    assert info["token"] == TOKEN and info["url"] == "https://127.0.0.1:%d" % sim.port
    for name in ("pve-ssl.pem", "pve-ssl.key", "ca.pem"):
        assert os.path.exists(os.path.join(sim.state_dir, name))
    ctx = ssl.create_default_context(cafile=sim.ca)
    for host in ("localhost", "127.0.0.1"):
        with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname=host) as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")


# ---------------------------------------------------------------------------
# Storages, templates, node load, clusters

def lvm_status(sim, node):
    return sim.data("GET", "/nodes/%s/storage/local-lvm/status" % node)


def test_storage_index_and_its_filters(sim, schema):
    path = "/nodes/pve1/storage"
    data = sim.data("GET", path)
    assert schema_check.check_returns(schema, "GET", "/nodes/{node}/storage", data) == []
    by_id = {d["storage"]: d for d in data}
    assert sorted(by_id) == ["local", "local-lvm"]
    assert (by_id["local"]["type"], by_id["local"]["content"]) == ("dir", "backup,iso,vztmpl")
    assert (by_id["local-lvm"]["type"], by_id["local-lvm"]["content"]) == \
        ("lvmthin", "images,rootdir")
    for d in data:
        assert (d["enabled"], d["active"], d["shared"]) == (1, 1, 0)
        assert d["used"] + d["avail"] == d["total"] > 0
        assert d["used_fraction"] == d["used"] / d["total"]
        assert "formats" not in d
    assert [d["storage"] for d in sim.data("GET", path, {"content": "vztmpl"})] == ["local"]
    assert [d["storage"] for d in sim.data("GET", path, {"content": "rootdir,iso"})] == \
        ["local", "local-lvm"]
    assert [d["storage"] for d in sim.data("GET", path, {"content": "snippets"})] == []
    assert [d["storage"] for d in sim.data("GET", path, {"storage": "local-lvm"})] == \
        ["local-lvm"]
    fmt = sim.data("GET", path, {"format": 1, "storage": "local-lvm"})
    assert schema_check.check_returns(schema, "GET", "/nodes/{node}/storage", fmt) == []
    assert fmt[0]["formats"] == {"default": "raw", "supported": ["raw", "subvol"]}
    assert sim.data("GET", path, {"target": "pve2"}) == []         # nothing is shared
    assert len(sim.data("GET", path, {"target": "pve1"})) == 2
    status, _, _, body = sim.request("GET", path, {"storage": "nope"})
    assert (status, body["errors"]) == (400, {"storage": "No such storage."})
    status, _, _, body = sim.request("GET", path, {"content": "vm"})
    assert (status, body["errors"]) == (400, {"content": "invalid format - invalid content "
                                                         "type 'vm'\n"})
    # a disabled storage: listed with enabled 0 and no usage, gone with enabled=1 or content
    sim.node("pve1", storages={"local-lvm": {"enabled": False}})
    try:
        off = {d["storage"]: d for d in sim.data("GET", path)}["local-lvm"]
        assert (off["enabled"], off["active"], off["total"]) == (0, 0, 0)
        assert [d["storage"] for d in sim.data("GET", path, {"enabled": 1})] == ["local"]
        assert sim.data("GET", path, {"content": "rootdir"}) == []
        assert sim.request("GET", "/nodes/pve1/storage/local-lvm/content")[:2] == \
            (500, "storage 'local-lvm' is disabled")
        res = sim.data("GET", "/cluster/resources", {"type": "storage"})
        assert "storage/pve1/local-lvm" not in [e["id"] for e in res]
    finally:
        sim.node("pve1", storages={"local-lvm": {"enabled": True}})


def test_storage_status_and_usage_follow_guests(sim, schema):
    path = "/nodes/pve2/storage/local-lvm/status"
    before = sim.data("GET", path)
    assert schema_check.check_returns(schema, "GET", "/nodes/{node}/storage/{storage}/status",
                                      before) == []
    assert set(before) == {"type", "content", "shared", "enabled", "active", "total", "used",
                           "avail"}
    vmid, _ = create_ct(sim, node="pve2", rootfs="local-lvm:8")
    assert lvm_status(sim, "pve2")["used"] == before["used"] + 8 * GiB
    assert lvm_status(sim, "pve2")["avail"] == before["avail"] - 8 * GiB
    upid = sim.data("PUT", "/nodes/pve2/lxc/%d/resize" % vmid, {"disk": "rootfs", "size": "+2G"})
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    assert lvm_status(sim, "pve2")["used"] == before["used"] + 10 * GiB
    res = {e["id"]: e for e in sim.data("GET", "/cluster/resources", {"type": "storage"})}
    entry = res["storage/pve2/local-lvm"]
    assert (entry["disk"], entry["maxdisk"], entry["status"]) == \
        (before["used"] + 10 * GiB, before["total"], "available")
    upid = sim.data("DELETE", "/nodes/pve2/lxc/%d" % vmid)
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    assert lvm_status(sim, "pve2")["used"] == before["used"]
    # the missing storage: read_status raises a parameter error
    status, reason, _, body = sim.request("GET", "/nodes/pve2/storage/nope/status")
    assert (status, reason, body["errors"]) == (400, "Parameter verification failed.",
                                                {"storage": "No such storage."})
    assert sim.request("GET", "/nodes/pve2/storage/bad$id/status")[3]["errors"] == \
        {"storage": "invalid format - storage ID 'bad$id' contains illegal characters\n"}
    # storage totals can be driven, e.g. to make a node's pool nearly full
    sim.node("pve2", storages={"local-lvm": {"total": 100 * GiB}})
    try:
        st = lvm_status(sim, "pve2")
        assert (st["total"], st["avail"]) == (100 * GiB, 100 * GiB - st["used"])
    finally:
        sim.node("pve2", storages={"local-lvm": {"total": 1024 * GiB}})


def test_storage_content_lists_templates_and_guest_volumes(sim, schema):
    rpath = "/nodes/{node}/storage/{storage}/content"
    local = sim.data("GET", "/nodes/pve1/storage/local/content")
    assert schema_check.check_returns(schema, "GET", rpath, local) == []
    assert [e["volid"] for e in local] == [ALMA, TEMPLATE, UBUNTU]
    for e in local:
        assert e["content"] == "vztmpl" and "vmid" not in e
        assert e["format"] == ("txz" if e["volid"].endswith(".xz") else "tzst")
        assert isinstance(e["size"], int) and e["size"] > 50 * 2 ** 20
        assert isinstance(e["ctime"], int) and e["ctime"] < time.time()
    assert sim.data("GET", "/nodes/pve1/storage/local/content", {"content": "vztmpl"}) == local
    assert sim.data("GET", "/nodes/pve1/storage/local/content", {"content": "iso"}) == []
    assert sim.data("GET", "/nodes/pve1/storage/local/content", {"vmid": 100}) == []
    assert sim.data("GET", "/nodes/pve1/storage/local/content", {"content": "rootdir"}) == []
    # guest volumes: rootfs of containers (rootdir) and disks of VMs (images), vmid 104 is
    # the VM on pve1
    lvm = sim.data("GET", "/nodes/pve1/storage/local-lvm/content")
    assert schema_check.check_returns(schema, "GET", rpath, lvm) == []
    vols = {e["volid"]: e for e in lvm}
    assert vols["local-lvm:vm-100-disk-0"] == {
        "volid": "local-lvm:vm-100-disk-0", "content": "rootdir", "format": "raw",
        "vmid": 100, "size": 16 * GiB, "ctime": vols["local-lvm:vm-100-disk-0"]["ctime"]}
    assert vols["local-lvm:vm-104-disk-0"]["content"] == "images"
    assert vols["local-lvm:vm-104-disk-0"]["size"] == 32 * GiB
    assert "local-lvm:vm-101-disk-0" not in vols                     # on pve2
    assert [e["volid"] for e in sim.data("GET", "/nodes/pve2/storage/local-lvm/content",
                                         {"vmid": 101})] == ["local-lvm:vm-101-disk-0"]
    images = sim.data("GET", "/nodes/pve1/storage/local-lvm/content", {"content": "images"})
    assert {e["vmid"] for e in images} == {104}
    vmid, _ = create_ct(sim, rootfs="local-lvm:4")
    new = sim.data("GET", "/nodes/pve1/storage/local-lvm/content", {"vmid": vmid})
    assert [(e["volid"], e["size"], e["content"]) for e in new] == \
        [("local-lvm:vm-%d-disk-0" % vmid, 4 * GiB, "rootdir")]
    assert sim.data("GET", "/nodes/pve1/storage/local-lvm/content",
                    {"content": "vztmpl"}) == []
    status, reason, _, body = sim.request("GET", "/nodes/pve1/storage/nope/content")
    assert (status, reason, body) == (500, "storage 'nope' does not exist",
                                      {"data": None, "message": "storage 'nope' does not exist\n"})
    assert sim.request("GET", "/nodes/pve1/storage/local/content",
                       {"content": "templates"})[3]["errors"] == \
        {"content": "invalid format - invalid content type 'templates'\n"}
    assert sim.data("GET", "/nodes/pve1/storage/local")[0] == {"subdir": "content"}


def test_templates_per_node_and_a_missing_template_fails_the_create(sim):
    assert sim.templates("pve1") == [TEMPLATE, UBUNTU, ALMA]
    assert sim.templates() == {"pve1": [TEMPLATE, UBUNTU, ALMA],
                               "pve2": [TEMPLATE, UBUNTU, ALMA]}
    try:
        assert sim.set_templates("pve2", [TEMPLATE]) == [TEMPLATE]
        assert [e["volid"] for e in sim.data("GET", "/nodes/pve2/storage/local/content")] == \
            [TEMPLATE]
        assert len(sim.data("GET", "/nodes/pve1/storage/local/content")) == 3
        # pve-container 9 checks only the volume ID and its content type before the fork;
        # the archive is looked up in the worker, after the disks are made
        vmid = new_vmid()
        upid = sim.data("POST", "/nodes/pve2/lxc", {"vmid": vmid, "ostemplate": UBUNTU,
                                                   "rootfs": "local-lvm:8"})
        st = sim.wait_task(upid)
        assert st["exitstatus"] == \
            "unable to create CT %d - can't find file '%s'" % (vmid, UBUNTU)
        log = sim.data("GET", "/nodes/pve2/tasks/%s/log" % urllib.parse.quote(upid))
        assert log[-1]["t"] == "TASK ERROR: " + st["exitstatus"]
        assert sim.request("GET", "/nodes/pve2/lxc/%d/status/current" % vmid)[0] == 500
        assert "local-lvm:vm-%d-disk-0" % vmid not in [
            e["volid"] for e in sim.data("GET", "/nodes/pve2/storage/local-lvm/content")]
        # the same template on a node that has it
        create_ct(sim, node="pve1", ostemplate=UBUNTU)
        # refused before the fork: not a template volume, unknown storage
        status, reason, _, _ = sim.request("POST", "/nodes/pve2/lxc", {
            "vmid": new_vmid(), "ostemplate": "local-lvm:vm-100-disk-0"})
        assert (status, reason) == (500, "unable to use volume local-lvm:vm-100-disk-0 - "
                                         "content type needs to be 'vztmpl'")
        assert sim.request("POST", "/nodes/pve2/lxc", {
            "vmid": new_vmid(), "ostemplate": "nas:vztmpl/x.tar.zst"})[:2] == \
            (500, "storage 'nas' does not exist")
        assert sim.add_template("pve2", ALMA) == [TEMPLATE, ALMA]
        create_ct(sim, node="pve2", ostemplate=ALMA)
        assert sim.remove_template("pve2", ALMA) == [TEMPLATE]
        with pytest.raises(RuntimeError, match="400"):
            sim.set_templates("pve2", ["local-lvm:vztmpl/x.tar.zst"])
        with pytest.raises(RuntimeError, match="400"):
            sim.set_templates("pve2", ["local:iso/x.iso"])
        assert sim.templates("pve2") == [TEMPLATE]
    finally:
        sim.set_templates("pve2", [TEMPLATE, UBUNTU, ALMA])
    assert sim.templates("pve2") == [TEMPLATE, UBUNTU, ALMA]


def test_node_entries_and_memory_follow_running_guests(sim, schema):
    def node_entry(name):
        sim.refresh()
        return [e for e in sim.data("GET", "/cluster/resources", {"type": "node"})
                if e["node"] == name][0]
    e = node_entry("pve2")
    assert schema_check.check_returns(schema, "GET", "/cluster/resources", [e]) == []
    assert (e["id"], e["type"], e["status"], e["level"]) == ("node/pve2", "node", "online", "")
    for key in ("maxcpu", "cpu", "maxmem", "mem", "maxdisk", "disk", "uptime"):
        assert key in e, key
    assert e["maxmem"] == 128 * GiB and e["maxcpu"] == 16
    # a node's mem is its own base plus the memory its running guests use
    vmid = new_vmid()
    sim.guest(vmid, node="pve2", memory=4096, status="stopped")
    base = node_entry("pve2")["mem"]
    try:
        sim.guest(vmid, status="running", mem=3 * GiB)
        assert node_entry("pve2")["mem"] == base + 3 * GiB
        status = sim.data("GET", "/nodes/pve2/status")
        assert status["memory"]["used"] == base + 3 * GiB        # live, no lag
        assert status["memory"]["free"] == 128 * GiB - base - 3 * GiB
        sim.guest(vmid, status="stopped")
        assert node_entry("pve2")["mem"] == base
        # make pve2 a small, busy node
        info = sim.node("pve2", memory=32 * GiB, base_mem=20 * GiB, cpus=4, base_cpu=0.5)
        assert (info["memory"], info["cpus"]) == (32 * GiB, 4)
        e = node_entry("pve2")
        assert (e["maxmem"], e["maxcpu"]) == (32 * GiB, 4)
        assert e["mem"] == base - 3 * GiB + 20 * GiB and e["cpu"] >= 0.5
        st = sim.data("GET", "/nodes/pve2/status")
        assert st["memory"]["total"] == 32 * GiB and st["cpuinfo"]["cpus"] == 4
        assert [n for n in sim.data("GET", "/nodes") if n["node"] == "pve2"][0]["maxmem"] == \
            32 * GiB
    finally:
        sim.control("DELETE", "/guest/%d" % vmid)
        sim.node("pve2", memory=128 * GiB, base_mem=3 * GiB, cpus=16, base_cpu=0.02)
    with pytest.raises(RuntimeError, match="400"):
        sim.node("pve2", memory=0)


def test_cluster_status_has_the_cluster_name_and_the_nodes(sim, schema):
    data = sim.data("GET", "/cluster/status")
    assert schema_check.check_returns(schema, "GET", "/cluster/status", data) == []
    assert data[0] == {"type": "cluster", "id": "cluster", "name": "pvesim", "nodes": 2,
                       "quorate": 1, "version": 2}
    nodes = data[1:]
    assert [(n["type"], n["name"], n["nodeid"], n["online"], n["local"]) for n in nodes] == \
        [("node", "pve1", 1, 1, 1), ("node", "pve2", 2, 1, 0)]
    assert all(n["ip"] and n["id"] == "node/" + n["name"] for n in nodes)
    sim.node("pve2", online=False)
    try:
        data = sim.data("GET", "/cluster/status")
        assert data[0]["quorate"] == 0 and data[2]["online"] == 0
    finally:
        sim.node("pve2", online=True)


def test_two_clusters_side_by_side(tmp_path):
    a = PveSim(str(tmp_path / "a"), nodes=("pve1", "pve2"), guests=2, cluster_name="alpha",
               time_scale=0.05, auth_fail_delay=AUTH_DELAY)
    b = PveSim(str(tmp_path / "b"), nodes=("node-b1",), guests=1, cluster_name="beta",
               time_scale=0.05, auth_fail_delay=AUTH_DELAY, node_memory="64G", node_cpus=8)
    with a, b:
        assert a.port != b.port and a.token != b.token and a.ca != b.ca
        assert (a.cluster_name, b.cluster_name) == ("alpha", "beta")
        assert a.data("GET", "/cluster/status")[0]["name"] == "alpha"
        assert b.data("GET", "/cluster/status")[0]["name"] == "beta"
        assert [n["node"] for n in b.data("GET", "/nodes")] == ["node-b1"]
        # each has its own tokens, guests, templates and node facts
        assert b.request("GET", "/version", token="PVEAPIToken=" + a.token)[0] == 401
        vmid, _ = create_ct(a, vmid=150, node="pve1")
        assert [g["vmid"] for g in a.data("GET", "/cluster/resources", {"type": "vm"})] == \
            [100, 101, 150]
        assert [g["vmid"] for g in b.data("GET", "/cluster/resources", {"type": "vm"})] == [100]
        b.set_templates("node-b1", [TEMPLATE])
        assert a.templates("pve1") == [TEMPLATE, UBUNTU, ALMA]
        b.refresh()
        node = b.data("GET", "/cluster/resources", {"type": "node"})[0]
        assert (node["maxmem"], node["maxcpu"]) == (64 * GiB, 8)
        st = b.data("GET", "/nodes/node-b1/storage/local-lvm/content")
        assert [e["volid"] for e in st] == ["local-lvm:vm-100-disk-0"]
        # the same vmid can exist in both clusters
        assert a.data("GET", "/cluster/nextid") == "102"
        assert b.data("GET", "/cluster/nextid") == "101"


# ---------------------------------------------------------------------------
# Privileges: /access/permissions, restricted tokens, 403s and filtered lists

TOKEN_ID = TOKEN.rpartition("=")[0]
ALL = {p: 1 for p in pvesim.PRIVILEGES}


@pytest.fixture
def restrict(sim):
    """restrict(privs) limits the suite's token to privs on "/"; undone afterwards."""
    yield lambda privs: sim.token_privs(TOKEN_ID, privs)
    sim.token_privs(TOKEN_ID, None)


def forbidden(sim, method, path, params=None, **kw):
    """(reason, body) of a call that must be refused with 403."""
    status, reason, _, body = sim.request(method, path, params, **kw)
    assert status == 403, (status, reason, body)
    assert body == {"data": None, "message": reason + "\n"}
    return reason


def root_ticket(sim):
    """Headers for root@pam with a ticket (and its CSRF token)."""
    d = sim.data("POST", "/access/ticket",
                 {"username": "root@pam", "password": sim.info["password"]}, token=False)
    return {"Cookie": "PVEAuthCookie=%s" % urllib.parse.quote(d["ticket"]),
            "CSRFPreventionToken": d["CSRFPreventionToken"]}


def test_privilege_list_covers_the_schema(schema):
    used = schema_check.privileges_in_schema(schema)
    assert {"VM.Allocate", "VM.PowerMgmt", "Datastore.AllocateSpace", "Sys.Audit",
            "SDN.Use"} <= used
    assert used - set(pvesim.PRIVILEGES) == set()
    assert len(pvesim.PRIVILEGES) == 47 and "VM.Monitor" not in pvesim.PRIVILEGES


def test_schema_check_catches_a_wrong_permission(schema):
    start = pvesim.ROUTES_BY_KEY[("POST", "/nodes/{node}/lxc/{vmid}/status/start")]
    wrong = pvesim.Route(start.method, start.path, start.handler, start.params,
                         perm=["perm", "/vms/{vmid}", ["VM.Audit"]])
    none = pvesim.Route(start.method, start.path, start.handler, start.params)
    assert any("permission check" in p for p in schema_check.check_routes([wrong], schema))
    assert any("permission check None" in p for p in schema_check.check_routes([none], schema))
    assert schema_check.check_routes([start], schema) == []


def test_permissions_of_a_full_token(sim, schema):
    data = sim.data("GET", "/access/permissions")
    assert schema_check.check_returns(schema, "GET", "/access/permissions", data) == []
    assert sorted(data) == sorted(pvesim.DEFAULT_ACL_PATHS)
    assert data["/"] == ALL and data["/"]["VM.Allocate"] == 1
    assert all(privs == ALL for privs in data.values())
    # path: only that path, computed even where no ACL sits
    assert sim.data("GET", "/access/permissions", {"path": "/vms/100"}) == {"/vms/100": ALL}
    # itself by name, and its owner (Sys.Audit on /access)
    assert sim.data("GET", "/access/permissions", {"userid": TOKEN_ID})["/"] == ALL
    assert sim.data("GET", "/access/permissions", {"userid": "root@pam"})["/"] == ALL
    assert sim.data("GET", "/access/permissions", {"userid": "nobody@pve"}) == {}
    status, _, _, body = sim.request("GET", "/access/permissions", {"userid": "root"})
    assert (status, body["errors"]) == (400, {"userid": "value does not match the regex "
                                                        "pattern"})


def test_permissions_of_a_restricted_token(sim, restrict):
    assert restrict(["Sys.Audit", "VM.Audit"]) == {"tokenid": TOKEN_ID,
                                                   "privs": ["Sys.Audit", "VM.Audit"]}
    data = sim.data("GET", "/access/permissions")
    assert data["/"] == {"Sys.Audit": 1, "VM.Audit": 1}
    assert data["/vms"] == data["/"]
    assert sim.data("GET", "/access/permissions", {"path": "/storage/local"}) == \
        {"/storage/local": {"Sys.Audit": 1, "VM.Audit": 1}}
    restrict([])
    assert sim.data("GET", "/access/permissions") == {}
    assert sim.data("GET", "/access/permissions", {"path": "/"}) == {"/": {}}
    assert sim.all_token_privs() == {TOKEN_ID: []}
    with pytest.raises(RuntimeError, match="400.*invalid privilege 'VM.Monitor'"):
        sim.token_privs(TOKEN_ID, ["VM.Audit", "VM.Monitor"])
    with pytest.raises(RuntimeError, match="404.*no such token"):
        sim.token_privs("root@pam!nope", ["VM.Audit"])
    assert sim.all_token_privs() == {TOKEN_ID: []}            # unchanged by the refusals


def test_permissions_of_someone_else_need_sys_audit_on_access(sim, restrict):
    restrict(["VM.Audit", "VM.PowerMgmt"])
    # itself: allowed
    own = sim.data("GET", "/access/permissions", {"userid": TOKEN_ID, "path": "/"})
    assert own == {"/": {"VM.Audit": 1, "VM.PowerMgmt": 1}}
    # its owner or another id: 403 without Sys.Audit on /access
    for other in ("root@pam", "root@pam!other"):
        reason = forbidden(sim, "GET", "/access/permissions", {"userid": other})
        assert reason == "Permission check failed (/access, Sys.Audit)"
    # root@pam (a ticket) may read its own token's permissions
    assert sim.data("GET", "/access/permissions", {"userid": TOKEN_ID, "path": "/vms/101"},
                    token=False, headers=root_ticket(sim)) == \
        {"/vms/101": {"VM.Audit": 1, "VM.PowerMgmt": 1}}
    restrict(["Sys.Audit"])
    assert sim.data("GET", "/access/permissions", {"userid": "root@pam"})["/"] == ALL


def test_restricted_token_gets_proxmox_403(sim, restrict):
    vmid, _ = create_ct(sim)
    restrict(["VM.Audit"])
    path = "/nodes/pve1/lxc/%d/status/start" % vmid
    reason = forbidden(sim, "POST", path)
    assert reason == "Permission check failed (/vms/%d, VM.PowerMgmt)" % vmid
    assert sim.data("GET", "/nodes/pve1/lxc/%d/status/current" % vmid)["status"] == "stopped"
    assert not [t for t in sim.state(guests=0)["tasks"] if t["type"] == "vzstart" and
                t["id"] == str(vmid)]
    # the check comes before the guest lookup and the parameter checks
    assert forbidden(sim, "POST", "/nodes/pve1/lxc/999999/status/start") == \
        "Permission check failed (/vms/999999, VM.PowerMgmt)"
    # "any" checks name every privilege
    assert forbidden(sim, "PUT", "/nodes/pve1/lxc/%d/config" % vmid, {"memory": 256}) == (
        "Permission check failed (/vms/%d, VM.Config.Disk|VM.Config.CPU|VM.Config.Memory|"
        "VM.Config.Network|VM.Config.Options)" % vmid)
    assert forbidden(sim, "GET", "/nodes/pve1/status") == \
        "Permission check failed (/nodes/pve1, Sys.Audit)"
    assert forbidden(sim, "POST", "/nodes/pve1/lxc/%d/termproxy" % vmid) == \
        "Permission check failed (/vms/%d, VM.Console)" % vmid
    assert forbidden(sim, "POST", "/nodes/pve1/lxc/%d/snapshot" % vmid,
                     {"snapname": "s1"}) == \
        "Permission check failed (/vms/%d, VM.Snapshot)" % vmid
    # the option-by-option rules of PUT config
    restrict(["VM.Audit", "VM.Config.CPU"])
    assert forbidden(sim, "PUT", "/nodes/pve1/lxc/%d/config" % vmid,
                     {"cores": 2, "memory": 256}) == \
        "Permission check failed (/vms/%d, VM.Config.Memory)" % vmid
    # back to every privilege: the same calls work
    restrict(None)
    upid = sim.data("POST", path)
    assert sim.wait_task(upid)["exitstatus"] == "OK"


def test_create_needs_allocate_config_storage_and_bridge_privileges(sim, restrict):
    vmid = new_vmid()
    params = {"vmid": vmid, "ostemplate": TEMPLATE, "rootfs": "local-lvm:8",
              "net0": "name=eth0,bridge=vmbr0,ip=dhcp", "memory": 1024, "cores": 2}
    needed = ["VM.Allocate", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network",
              "VM.Config.Disk", "SDN.Use", "Datastore.AllocateSpace"]
    restrict(["VM.Audit"])
    # no VM.Allocate: raise_perm_exc() without details
    assert forbidden(sim, "POST", "/nodes/pve1/lxc", params) == "Permission check failed"
    for missing, what in [("VM.Config.CPU", "/vms/%d, VM.Config.CPU" % vmid),
                          ("SDN.Use", "/sdn/zones/localnetwork/vmbr0, SDN.Use"),
                          ("Datastore.AllocateSpace",
                           "/storage/local-lvm, Datastore.AllocateSpace")]:
        restrict([p for p in needed if p != missing])
        assert forbidden(sim, "POST", "/nodes/pve1/lxc", params) == \
            "Permission check failed (%s)" % what
    assert sim.data("GET", "/cluster/nextid", {"vmid": vmid}) == str(vmid)   # not created
    restrict(needed)
    assert sim.wait_task(sim.data("POST", "/nodes/pve1/lxc", params))["exitstatus"] == "OK"


def test_cluster_resources_and_lists_are_filtered(sim, restrict):
    full = sim.data("GET", "/cluster/resources")
    vms = sorted(e["id"] for e in full if e["type"] in ("lxc", "qemu"))
    storages = sorted(e["id"] for e in full if e["type"] == "storage")
    assert vms and storages
    restrict(list(pvesim.PRIVILEGES))             # every privilege, named: the same answer
    assert sim.data("GET", "/cluster/resources") == full

    restrict(["VM.Audit"])
    res = sim.data("GET", "/cluster/resources")
    assert sorted(e["id"] for e in res if e["type"] in ("lxc", "qemu")) == vms
    assert [e for e in res if e["type"] == "storage"] == []
    nodes = [e for e in res if e["type"] == "node"]
    assert sorted(n["node"] for n in nodes) == ["pve1", "pve2"]
    assert all("maxmem" not in n and "cpu" not in n and n["status"] == "online"
               for n in nodes)
    assert [d["vmid"] for d in sim.data("GET", "/nodes/pve1/lxc")]
    assert sim.data("GET", "/nodes/pve1/storage") == []

    restrict(["Sys.Audit", "Datastore.Audit"])
    res = sim.data("GET", "/cluster/resources")
    assert [e for e in res if e["type"] in ("lxc", "qemu")] == []
    assert sorted(e["id"] for e in res if e["type"] == "storage") == storages
    assert all("maxmem" in e for e in res if e["type"] == "node")
    assert sim.data("GET", "/cluster/resources", {"type": "vm"}) == []
    assert sim.data("GET", "/nodes/pve1/lxc") == []
    assert sim.data("GET", "/nodes/pve2/qemu") == []
    assert [d["storage"] for d in sim.data("GET", "/nodes/pve1/storage")] == \
        ["local", "local-lvm"]
    # guest volumes need VM.Config.Disk on their guest, templates do not
    content = sim.data("GET", "/nodes/pve1/storage/local/content")
    assert TEMPLATE in [v["volid"] for v in content]
    assert sim.data("GET", "/nodes/pve1/storage/local-lvm/content") == []


def test_tasks_of_others_need_sys_audit(sim, restrict):
    vmid, upid = create_ct(sim)                   # a task of the suite's token
    restrict(["VM.Audit"])
    # its own task: readable; /cluster/tasks compares the owner user with the token: none
    assert sim.data("GET", "/nodes/pve1/tasks/%s/status" % urllib.parse.quote(upid))[
        "exitstatus"] == "OK"
    assert sim.data("GET", "/cluster/tasks") == []
    # a root@pam task is someone else's
    ticket = root_ticket(sim)
    other = sim.data("POST", "/nodes/pve1/lxc/%d/snapshot" % vmid, {"snapname": "byroot"},
                     token=False, headers=ticket)
    assert other.endswith(":root@pam:")
    assert forbidden(sim, "GET", "/nodes/pve1/tasks/%s/status" % urllib.parse.quote(other)) \
        == "Permission check failed (/nodes/pve1, Sys.Audit)"
    listed = [t["upid"] for t in sim.data("GET", "/nodes/pve1/tasks", {"source": "all",
                                                                        "limit": 1000})]
    assert upid in listed and other not in listed
    restrict(["Sys.Audit"])
    assert other in [t["upid"] for t in sim.data("GET", "/cluster/tasks")]
    assert sim.data("GET", "/nodes/pve1/tasks/%s/status" % urllib.parse.quote(other))[
        "user"] == "root@pam"


def test_token_privs_option_and_two_clusters_with_the_same_token(tmp_path):
    # the same token id and secret in two clusters: privileges are per process
    a = PveSim(str(tmp_path / "a"), nodes=("pve1",), guests=1, cluster_name="alpha",
               time_scale=0.05, auth_fail_delay=AUTH_DELAY, token=TOKEN,
               token_privs={TOKEN_ID: ["VM.Audit", "Sys.Audit"]})
    b = PveSim(str(tmp_path / "b"), nodes=("pve1",), guests=1, cluster_name="beta",
               time_scale=0.05, auth_fail_delay=AUTH_DELAY, token=TOKEN)
    with a, b:
        assert a.info["token_privs"] == {TOKEN_ID: ["Sys.Audit", "VM.Audit"]}
        assert b.info["token_privs"] == {}
        assert a.data("GET", "/access/permissions")["/"] == {"Sys.Audit": 1, "VM.Audit": 1}
        assert b.data("GET", "/access/permissions")["/"] == ALL
        assert forbidden(a, "DELETE", "/nodes/pve1/lxc/100") == \
            "Permission check failed (/vms/100, VM.Allocate)"
        assert b.request("GET", "/cluster/status")[0] == 200
        b.token_privs(TOKEN_ID, [])
        assert b.data("GET", "/access/permissions") == {}
        assert a.data("GET", "/access/permissions")["/"] == {"Sys.Audit": 1, "VM.Audit": 1}
        assert a.data("GET", "/cluster/status")[0]["name"] == "alpha"
        assert forbidden(b, "GET", "/cluster/status") == \
            "Permission check failed (/, Sys.Audit)"
        # /_sim/reset goes back to the start-up privileges
        a.token_privs(TOKEN_ID, None)
        assert a.data("GET", "/access/permissions")["/"] == ALL
        a.reset()
        assert a.all_token_privs() == {TOKEN_ID: ["Sys.Audit", "VM.Audit"]}
        b.reset()
        assert b.all_token_privs() == {TOKEN_ID: None}
    # a bad option stops the start
    bad = PveSim(str(tmp_path / "c"), token=TOKEN, token_privs={TOKEN_ID: ["VM.Bogus"]})
    with pytest.raises(RuntimeError, match="exited with 2"):
        bad.start(timeout=10)
    bad.stop()
    assert "invalid privilege 'VM.Bogus'" in (tmp_path / "c" / "pvesim.stderr").read_text()


# ---------------------------------------------------------------------------
# QEMU: templates, clones, config, resize, guest agent, status and tasks

_template_ids = itertools.count(9000)
MAC_RE = r"BC:24:11:[0-9A-F]{2}:[0-9A-F]{2}:[0-9A-F]{2}"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPq3JxPz1Bf5 admin@ospab"


def qpath(node, vmid, tail=""):
    return "/nodes/%s/qemu/%d%s" % (node, vmid, tail)


def make_template(sim, node="pve1", **kw):
    vmid = next(_template_ids)
    sim.make_template(vmid, name=kw.pop("name", "debian-12-cloud"), node=node, **kw)
    return vmid


def qemu_vm(sim, node="pve1", **fields):
    vmid = new_vmid()
    sim.guest(vmid, type="qemu", node=node, **dict({"status": "stopped"}, **fields))
    return vmid


def clone(sim, template, node="pve1", wait=True, **params):
    newid = params.pop("newid", None) or new_vmid()
    upid = sim.data("POST", qpath(node, template, "/clone"), dict(params, newid=newid))
    if wait:
        assert sim.wait_task(upid)["exitstatus"] == "OK"
    return newid, upid


def task_log(sim, upid):
    return [line["t"] for line in sim.data("GET", "/nodes/%s/tasks/%s/log" % (
        upid.split(":")[1], urllib.parse.quote(upid, safe="")), {"limit": 1000})]


def wait_for(pred, timeout=10):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_new_qemu_routes_are_served_and_match_the_schema(schema):
    served = {(r.method, r.path) for r in pvesim.ROUTES}
    vm = "/nodes/{node}/qemu/{vmid}"
    for key in [("POST", vm + "/clone"), ("POST", vm + "/template"), ("POST", vm + "/config"),
                ("PUT", vm + "/config"), ("GET", vm + "/pending"), ("PUT", vm + "/resize"),
                ("POST", vm + "/agent/ping")]:
        assert key in served, key
    # every option of the schema's POST/PUT config, property strings key by key
    assert schema_check.check_routes([r for r in pvesim.ROUTES if r.path.startswith(vm)],
                                     schema) == []
    put = pvesim.ROUTES_BY_KEY[("PUT", vm + "/config")]
    assert {"sshkeys", "cipassword", "ipconfig[n]", "net[n]", "scsi[n]", "agent"} <= \
        set(put.params)
    # and the checker sees a wrong alias or a wrong and/or permission
    wrong = dict(put.params, **{"net[n]": pvesim.PropStr(
        dict(pvesim.QM_NET_KEYS, virtio=pvesim.Alias("bridge", key_alias="model")),
        opt=1, count=32)})
    problems = schema_check.check_routes([pvesim.Route("PUT", vm + "/config", "x", wrong,
                                                       perm=put.perm)], schema)
    assert any("virtio: alias 'bridge', schema says 'macaddr'" in p for p in problems)
    cl = pvesim.ROUTES_BY_KEY[("POST", vm + "/clone")]
    bad = pvesim.Route("POST", cl.path, cl.handler, cl.params,
                       perm=["and", ["perm", "/vms/{vmid}", ["VM.Clone"]]])
    assert any("permission check" in p for p in schema_check.check_routes([bad], schema))


def test_property_strings_with_aliases_and_requires():
    from pveparams import FormatError, parse_property_string, print_property_string
    net = parse_property_string(pvesim.QM_NET_KEYS,
                                "virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=5")
    assert net == {"model": "virtio", "macaddr": "BC:24:11:00:00:01", "bridge": "vmbr0",
                   "tag": 5}
    assert print_property_string(pvesim.QM_NET_KEYS, net) == \
        "virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=5"
    assert parse_property_string(pvesim.QM_NET_KEYS, "e1000,bridge=vmbr1") == \
        {"model": "e1000", "bridge": "vmbr1"}
    with pytest.raises(FormatError, match="key alias 'model' is already defined"):
        parse_property_string(pvesim.QM_NET_KEYS,
                              "virtio=BC:24:11:00:00:01,e1000=BC:24:11:00:00:02")
    with pytest.raises(FormatError, match="model: property is missing"):
        parse_property_string(pvesim.QM_NET_KEYS, "bridge=vmbr0")


def test_template_control_call_makes_a_cloud_init_template(sim, schema):
    vmid = make_template(sim, disk_gb=4)
    conf = sim.data("GET", qpath("pve1", vmid, "/config"))
    assert schema_check.check_returns(schema, "GET", "/nodes/{node}/qemu/{vmid}/config",
                                      conf) == []
    assert conf["template"] == 1 and conf["name"] == "debian-12-cloud"
    assert conf["scsi0"] == "local-lvm:base-%d-disk-0,size=4G" % vmid
    assert conf["ide2"] == "local-lvm:vm-%d-cloudinit,media=cdrom" % vmid
    assert (conf["agent"], conf["ostype"], conf["boot"]) == ("1", "l26", "order=scsi0")
    assert re.fullmatch(r"virtio=%s,bridge=vmbr0" % MAC_RE, conf["net0"])
    assert "lock" not in conf
    st = sim.data("GET", qpath("pve1", vmid, "/status/current"))
    assert schema_check.check_returns(schema, "GET", "/nodes/{node}/qemu/{vmid}/status/current",
                                      st) == []
    assert (st["status"], st["template"], st["disk"], st["maxdisk"]) == ("stopped", 1, 0,
                                                                       4 * GiB)
    e = [x for x in sim.data("GET", "/cluster/resources", {"type": "vm"}) if x["vmid"] == vmid]
    assert e[0]["template"] == 1 and e[0]["type"] == "qemu"
    assert vmid in [x["vmid"] for x in sim.data("GET", "/nodes/pve1/qemu") if x.get("template")]
    # a template does not start, and takes no snapshot
    upid = sim.data("POST", qpath("pve1", vmid, "/status/start"))
    assert UPID_RE.match(upid).group(5) == "qmstart"
    assert sim.wait_task(upid)["exitstatus"] == "you can't start a vm if it's a template"
    upid = sim.data("POST", qpath("pve1", vmid, "/snapshot"), {"snapname": "s1"})
    assert sim.wait_task(upid)["exitstatus"] == "you can't take a snapshot if it's a template"
    with pytest.raises(RuntimeError, match="400.*already exists"):
        sim.make_template(vmid)
    with pytest.raises(RuntimeError, match="400.*does not support vm images"):
        sim.make_template(next(_template_ids), storage="local")


def test_qemu_templates_start_option(tmp_path):
    with PveSim(str(tmp_path / "a"), nodes=("pve1", "pve2"), auth_fail_delay=AUTH_DELAY,
                qemu_templates=[{"vmid": 9000, "name": "debian-12-cloud", "node": "pve2",
                                 "disk_gb": 8}, "9001:ubuntu-24-04"]) as s:
        conf = s.data("GET", "/nodes/pve2/qemu/9000/config")
        assert (conf["template"], conf["scsi0"]) == (1, "local-lvm:base-9000-disk-0,size=8G")
        assert s.data("GET", "/nodes/pve1/qemu/9001/config")["name"] == "ubuntu-24-04"
        s.control("DELETE", "/guest/9001")
        s.reset()                               # the start-up templates come back
        assert s.data("GET", "/nodes/pve1/qemu/9001/config")["template"] == 1
    bad = PveSim(str(tmp_path / "b"), qemu_templates=["9000:x:nonode"])
    with pytest.raises(RuntimeError, match="exited with 2"):
        bad.start(timeout=10)
    bad.stop()


def test_convert_a_vm_to_a_template(sim, schema):
    vmid = qemu_vm(sim, name="golden", disk_gb=10)
    upid = sim.data("POST", qpath("pve1", vmid, "/template"))
    assert UPID_RE.match(upid).groups()[4:6] == ("qmtemplate", str(vmid))
    assert schema_check.check_returns(schema, "POST", "/nodes/{node}/qemu/{vmid}/template",
                                      upid) == []
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    conf = sim.data("GET", qpath("pve1", vmid, "/config"))
    assert conf["template"] == 1
    assert conf["scsi0"].startswith("local-lvm:base-%d-disk-0," % vmid)
    assert sim.request("POST", qpath("pve1", vmid, "/template"))[:2] == \
        (500, "you can't convert a template to a template")
    running = qemu_vm(sim, status="running")
    assert sim.request("POST", qpath("pve1", running, "/template"))[1] == \
        "you can't convert a VM to template if VM is running"
    snapped = qemu_vm(sim)
    assert sim.wait_task(sim.data("POST", qpath("pve1", snapped, "/snapshot"),
                                  {"snapname": "s1"}))["exitstatus"] == "OK"
    assert sim.request("POST", qpath("pve1", snapped, "/template"))[1] == \
        "unable to create template, because VM contains snapshots"
    sim.guest(snapped, lock="backup")
    assert sim.request("POST", qpath("pve1", snapped, "/template"))[1] == "VM is locked (backup)"
    # destroy_vm checks the lock in the worker
    upid = sim.data("DELETE", qpath("pve1", snapped))
    assert UPID_RE.match(upid).group(5) == "qmdestroy"
    assert sim.wait_task(upid)["exitstatus"] == "VM is locked (backup)"
    assert sim.wait_task(sim.data("DELETE", qpath("pve1", snapped), {"skiplock": 1}))[
        "exitstatus"] == "OK"
    assert sim.request("GET", qpath("pve1", snapped, "/config"))[0] == 500


def test_linked_clone_of_a_template(sim, schema):
    tid = make_template(sim, disk_gb=4)
    tconf = sim.data("GET", qpath("pve1", tid, "/config"))
    sim.configure(time_scale=0.5)           # a linked clone: 1 s
    try:
        newid, upid = clone(sim, tid, wait=False, name="web-1", description="for a customer")
        assert schema_check.check_returns(schema, "POST", "/nodes/{node}/qemu/{vmid}/clone",
                                          upid) == []
        assert UPID_RE.match(upid).groups()[0] == "pve1"
        assert UPID_RE.match(upid).groups()[4:6] == ("qmclone", str(tid))
        # while the task runs: the new VM holds lock: clone, the template its config lock
        wait_for(lambda: sim.request("GET", qpath("pve1", newid, "/config"))[0] == 200)
        assert sim.data("GET", qpath("pve1", newid, "/config"))["lock"] == "clone"
        assert sim.guest_info(tid)["flock"] == "shared"
        assert "lock" not in sim.data("GET", qpath("pve1", tid, "/config"))
        status, reason, _, _ = sim.request("PUT", qpath("pve1", newid, "/config"), {"cores": 4})
        assert (status, reason) == (500, "VM is locked (clone)")
        e = [x for x in sim.data("GET", "/cluster/resources", {"type": "vm"})
             if x["vmid"] == newid]
        assert e[0]["lock"] == "clone"
    finally:
        sim.configure(time_scale=0.05)
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    conf = sim.data("GET", qpath("pve1", newid, "/config"))
    assert schema_check.check_returns(schema, "GET", "/nodes/{node}/qemu/{vmid}/config",
                                      conf) == []
    assert "template" not in conf and "lock" not in conf
    assert (conf["name"], conf["description"]) == ("web-1", "for a customer")
    assert conf["scsi0"] == "local-lvm:base-%d-disk-0/vm-%d-disk-0,size=4G" % (tid, newid)
    assert conf["ide2"] == "local-lvm:vm-%d-cloudinit,media=cdrom,size=4M" % newid
    assert re.fullmatch(r"virtio=%s,bridge=vmbr0" % MAC_RE, conf["net0"])
    assert conf["net0"] != tconf["net0"]
    assert conf["smbios1"] != tconf["smbios1"] and conf["vmgenid"] != tconf["vmgenid"]
    for key in ("agent", "ostype", "memory", "cores", "boot", "scsihw", "serial0", "vga"):
        assert conf[key] == tconf[key], key
    log = task_log(sim, upid)
    assert log[0] == "creating a clone of VM %d with ID %d" % (tid, newid)
    assert "create linked clone of drive scsi0 (local-lvm:base-%d-disk-0)" % tid in log
    assert log[-1] == "TASK OK"
    vols = [v["volid"] for v in sim.data("GET", "/nodes/pve1/storage/local-lvm/content",
                                         {"vmid": newid})]
    assert sorted(vols) == ["local-lvm:base-%d-disk-0/vm-%d-disk-0" % (tid, newid),
                            "local-lvm:vm-%d-cloudinit" % newid]
    assert upid in [t["upid"] for t in sim.data("GET", "/nodes/pve1/tasks",
                                                 {"typefilter": "qmclone", "limit": 500})]
    # it starts like any VM
    assert sim.wait_task(sim.data("POST", qpath("pve1", newid, "/status/start")))[
        "exitstatus"] == "OK"
    # the template stays while a linked clone uses its base volume
    st = sim.wait_task(sim.data("DELETE", qpath("pve1", tid)))
    assert st["exitstatus"] == \
        "base volume 'local-lvm:base-%d-disk-0' is still in use by linked cloned" % tid
    assert sim.data("GET", qpath("pve1", tid, "/config"))["template"] == 1


def test_full_clone_and_the_clone_refusals(sim):
    tid = make_template(sim, name="alma-9", disk_gb=6)
    newid, upid = clone(sim, tid, full=1, storage="local-lvm")
    conf = sim.data("GET", qpath("pve1", newid, "/config"))
    assert conf["name"] == "Copy-of-VM-alma-9"
    assert conf["scsi0"] == "local-lvm:vm-%d-disk-0,size=6G" % newid
    assert "create full clone of drive scsi0 (local-lvm:base-%d-disk-0)" % tid in \
        task_log(sim, upid)
    # a normal VM is always copied in full
    vm = qemu_vm(sim, name="plain", disk_gb=4)
    copy, _ = clone(sim, vm)
    assert sim.data("GET", qpath("pve1", copy, "/config"))["scsi0"].startswith(
        "local-lvm:vm-%d-disk-0," % copy)
    refusals = [
        ({"newid": copy}, 500, "unable to create VM %d: config file already exists" % copy),
        ({"newid": new_vmid(), "target": "pve2"}, 500,
         "can't clone VM to node 'pve2' (VM uses local storage)"),
        ({"newid": new_vmid(), "storage": "local-lvm"}, 500,
         "parameter 'storage' not allowed for linked clones"),
        ({"newid": new_vmid(), "format": "qcow2"}, 500,
         "parameter 'format' not allowed for linked clones"),
        ({"newid": new_vmid(), "full": 1, "storage": "nope"}, 500,
         "storage 'nope' does not exist"),
        ({"newid": new_vmid(), "snapname": "nosnap"}, 500, "snapshot 'nosnap' does not exist"),
        ({"newid": new_vmid(), "target": "pve9"}, 500, "no such cluster node 'pve9'"),
        ({"newid": 99}, 400, "Parameter verification failed."),
    ]
    for params, code, reason in refusals:
        status, got, _, body = sim.request("POST", qpath("pve1", tid, "/clone"), params)
        assert (status, got) == (code, reason), params
    status, _, _, body = sim.request("POST", qpath("pve1", tid, "/clone"),
                                     {"newid": new_vmid(), "full": 1, "storage": "local"})
    assert (status, body["errors"]) == (400, {"storage": "storage 'local' does not support "
                                                         "vm images"})
    assert sim.request("POST", qpath("pve1", vm, "/clone"), {"newid": new_vmid(), "full": 0})[
        1] == "Linked clone feature is not supported for 'local-lvm:vm-%d-disk-0' (scsi0)" % vm
    assert sim.request("POST", "/nodes/pve1/qemu/99999/clone", {"newid": new_vmid()})[:2] == \
        (500, "Configuration file 'nodes/pve1/qemu-server/99999.conf' does not exist")
    sim.guest(vm, lock="backup")
    assert sim.request("POST", qpath("pve1", vm, "/clone"), {"newid": new_vmid()})[1] == \
        "VM is locked (backup)"
    sim.guest(vm, lock="")
    # a vmid another guest (here a container) has: pmxcfs refuses the config in the task
    st = sim.wait_task(sim.data("POST", qpath("pve1", tid, "/clone"), {"newid": 100}))
    assert st["exitstatus"] == "close (rename) atomic file '/etc/pve/nodes/pve1/qemu-server/" \
                               "100.conf' failed: File exists"
    assert sim.data("GET", "/nodes/pve1/lxc/100/config")["hostname"] == "ct100"


def test_clone_to_another_node_needs_shared_storage(sim):
    sim.add_storage("nfs-shared", type="nfs", content=("images", "rootdir"), shared=True)
    made = []
    try:
        tid = make_template(sim, storage="nfs-shared", disk_gb=8)
        made.append(tid)
        tconf = sim.data("GET", qpath("pve1", tid, "/config"))
        assert tconf["scsi0"] == "nfs-shared:%d/base-%d-disk-0.qcow2,size=8G" % (tid, tid)
        newid, upid = clone(sim, tid, target="pve2", name="far-away")
        made.append(newid)
        assert UPID_RE.match(upid).group(1) == "pve1"          # the source's node
        conf = sim.data("GET", qpath("pve2", newid, "/config"))
        assert conf["scsi0"] == "nfs-shared:%d/base-%d-disk-0.qcow2/%d/vm-%d-disk-0.qcow2," \
                                "size=8G" % (tid, tid, newid, newid)
        assert conf["ide2"] == "nfs-shared:%d/vm-%d-cloudinit.qcow2,media=cdrom,size=4M" % (
            newid, newid)
        assert sim.request("GET", qpath("pve1", newid, "/config"))[1] == \
            "Configuration file 'nodes/pve1/qemu-server/%d.conf' does not exist" % newid
        # a shared storage: the same volumes on both nodes, offered as a target
        for node in ("pve1", "pve2"):
            vols = [v["volid"] for v in sim.data("GET", "/nodes/%s/storage/nfs-shared/content"
                                                 % node, {"vmid": newid})]
            assert len(vols) == 2, node
        assert [s["storage"] for s in sim.data("GET", "/nodes/pve1/storage",
                                                {"target": "pve2"})] == ["nfs-shared"]
        st = {s["storage"]: s for s in sim.data("GET", "/nodes/pve2/storage")}
        assert st["nfs-shared"]["shared"] == 1 and st["local-lvm"]["shared"] == 0
        # a full clone to a storage that is not shared cannot go to another node
        assert sim.request("POST", qpath("pve1", tid, "/clone"), {
            "newid": new_vmid(), "target": "pve2", "full": 1, "storage": "local-lvm"})[1] == \
            "can't clone to non-shared storage 'local-lvm'"
    finally:
        for vmid in made:
            sim.control("DELETE", "/guest/%d" % vmid)
        sim.remove_storage("nfs-shared")
    assert "nfs-shared" not in [s["storage"] for s in sim.data("GET", "/nodes/pve1/storage")]


def test_a_failed_clone_leaves_nothing(sim):
    tid = make_template(sim)
    sim.fault(kind="task_error", type="qmclone", vmid=tid, message="lvcreate failed", count=1)
    newid, upid = clone(sim, tid, wait=False)
    st = sim.wait_task(upid)
    assert st["exitstatus"] == "clone failed: lvcreate failed"
    assert task_log(sim, upid)[-1] == "TASK ERROR: clone failed: lvcreate failed"
    assert sim.request("GET", qpath("pve1", newid, "/config"))[0] == 500
    assert sim.data("GET", "/nodes/pve1/storage/local-lvm/content", {"vmid": newid}) == []
    assert sim.data("GET", "/cluster/nextid", {"vmid": newid}) == str(newid)
    # the next one works
    clone(sim, tid, newid=newid)


def test_clone_permissions(sim, restrict):
    tid = make_template(sim)
    newid = new_vmid()
    path = qpath("pve1", tid, "/clone")
    restrict(["VM.Audit", "VM.Clone"])
    # the 'or' of VM.Allocate on /vms/{newid} and on /pool/{pool}: a bare 403
    assert forbidden(sim, "POST", path, {"newid": newid}) == "Permission check failed"
    restrict(["VM.Audit", "VM.Allocate"])
    assert forbidden(sim, "POST", path, {"newid": newid}) == \
        "Permission check failed (/vms/%d, VM.Clone)" % tid
    restrict(["VM.Clone", "VM.Allocate"])
    assert forbidden(sim, "POST", path, {"newid": newid}) == \
        "Permission check failed (/storage/local-lvm, Datastore.AllocateSpace)"
    restrict(["VM.Clone", "VM.Allocate", "Datastore.AllocateSpace"])
    assert forbidden(sim, "POST", path, {"newid": newid}) == \
        "Permission check failed (/sdn/zones/localnetwork/vmbr0, SDN.Use)"
    restrict(["VM.Clone", "VM.Allocate", "Datastore.AllocateSpace", "SDN.Use"])
    assert sim.wait_task(sim.data("POST", path, {"newid": newid}))["exitstatus"] == "OK"
    restrict(None)
    assert forbidden(sim, "POST", path, {"newid": new_vmid(), "pool": "customers"}) == \
        "Permission check failed (pool 'customers' does not exist)"


def test_a_clone_holds_the_config_locks(sim):
    tid = make_template(sim)
    sim.configure(time_scale=0.5)           # a linked clone: 1 s
    try:
        newid, upid = clone(sim, tid, wait=False)
        wait_for(lambda: sim.request("GET", qpath("pve1", newid, "/config"))[0] == 200)
        # start waits in its worker for the new VM's config lock, then finds no lock
        start = sim.data("POST", qpath("pve1", newid, "/status/start"))
        # a second clone of the template runs beside it (both hold the lock shared)
        other, upid2 = clone(sim, tid, wait=False)
        # an update of the template waits for the shared lock to go
        t0 = time.monotonic()
        status, reason, _, _ = sim.request("PUT", qpath("pve1", tid, "/config"),
                                           {"description": "golden image"})
        assert (status, reason) == (200, "OK")
        assert time.monotonic() - t0 > 0.3
        assert sim.data("GET", "/nodes/pve1/tasks/%s/status" % urllib.parse.quote(upid))[
            "status"] == "stopped"
        assert sim.wait_task(start)["exitstatus"] == "OK"
        assert sim.wait_task(upid2)["exitstatus"] == "OK"
        assert sim.data("GET", qpath("pve1", newid, "/status/current"))["status"] == "running"
        # a clone longer than the lock timeout (1.5 s): start and the update give up
        sim.configure(lock_timeout=0.2, time_scale=0.75)
        third, upid3 = clone(sim, tid, wait=False)
        wait_for(lambda: sim.request("GET", qpath("pve1", third, "/config"))[0] == 200)
        start = sim.data("POST", qpath("pve1", third, "/status/start"))
        assert sim.wait_task(start)["exitstatus"] == \
            "can't lock file '/var/lock/qemu-server/lock-%d.conf' - got timeout" % third
        assert sim.request("PUT", qpath("pve1", tid, "/config"), {"description": "x"})[:2] == \
            (500, "can't lock file '/var/lock/qemu-server/lock-%d.conf' - got timeout" % tid)
        assert sim.wait_task(upid3)["exitstatus"] == "OK"
    finally:
        sim.configure(time_scale=0.05, lock_timeout=10)


def test_qemu_config_put_post_and_cloud_init(sim, schema):
    vmid, _ = clone(sim, make_template(sim))
    path = qpath("pve1", vmid, "/config")
    keys = SSH_KEY + "\nssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 ops@ospab"
    assert schema_check.check_returns(schema, "PUT", "/nodes/{node}/qemu/{vmid}/config",
                                      sim.data("PUT", path, {"onboot": 0})) == []
    assert sim.data("PUT", path, {
        "cores": 4, "sockets": 1, "memory": "4096", "name": "web-2", "description": "shop",
        "net0": "virtio,bridge=vmbr0,firewall=1", "ipconfig0": "ip=10.0.0.5/24,gw=10.0.0.1",
        "ciuser": "admin", "cipassword": "S3cret-pw", "sshkeys": urllib.parse.quote(keys, safe=""),
        "nameserver": "1.1.1.1 8.8.8.8", "searchdomain": "example.com", "onboot": 1,
        "agent": "enabled=1,fstrim_cloned_disks=1"}) is None
    conf = sim.data("GET", path)
    assert schema_check.check_returns(schema, "GET", "/nodes/{node}/qemu/{vmid}/config",
                                      conf) == []
    assert (conf["cores"], conf["memory"], conf["name"], conf["onboot"]) == \
        (4, "4096", "web-2", 1)
    assert re.fullmatch(r"virtio=%s,bridge=vmbr0,firewall=1" % MAC_RE, conf["net0"])
    assert conf["ipconfig0"] == "ip=10.0.0.5/24,gw=10.0.0.1"
    assert (conf["ciuser"], conf["cipassword"]) == ("admin", "**********")
    assert conf["sshkeys"] == urllib.parse.quote(keys, safe="")     # shown URL-encoded
    assert conf["nameserver"] == "1.1.1.1 8.8.8.8" and conf["searchdomain"] == "example.com"
    st = sim.data("GET", qpath("pve1", vmid, "/status/current"))
    assert st["cpus"] == 4 and st["maxmem"] == 4096 * 2 ** 20
    # the password is kept crypt()ed, and the API never shows it
    info = sim.guest_info(vmid)
    assert info["conf"]["cipassword"].startswith("$5$")
    everything = json.dumps([sim.data("GET", path), sim.data("GET", qpath("pve1", vmid,
                                                                          "/pending")),
                             sim.data("GET", qpath("pve1", vmid, "/status/current"))])
    assert "S3cret-pw" not in everything and info["conf"]["cipassword"] not in everything
    ci = sim.cloudinit(vmid)
    import hashlib
    assert ci["config"]["user"] == "admin"
    assert ci["config"]["password"] == {"sha256": hashlib.sha256(b"S3cret-pw").hexdigest()}
    assert ci["config"]["sshkeys"] == keys.split("\n")
    assert ci["config"]["ipconfig"] == {"ipconfig0": "ip=10.0.0.5/24,gw=10.0.0.1"}
    assert ci["applied"] is None                            # not started yet
    # POST: the same in a qmconfig task
    upid = sim.data("POST", path, {"cores": 2, "delete": "description,searchdomain"})
    assert UPID_RE.match(upid).groups()[4:6] == ("qmconfig", str(vmid))
    assert schema_check.check_returns(schema, "POST", "/nodes/{node}/qemu/{vmid}/config",
                                      upid) == []
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    # pending values are typed as in GET config (parse_vm_config's check_type makes
    # numbers), although the schema calls them strings: only the numbers differ
    problems = schema_check.check_returns(schema, "GET", "/nodes/{node}/qemu/{vmid}/pending",
                                          sim.data("GET", qpath("pve1", vmid, "/pending")))
    assert problems and all(re.search(r"\.value: \d+, schema says string$", p)
                            for p in problems), problems
    assert any(line.startswith("update VM %d: -cores 2 -delete description,searchdomain" % vmid)
               for line in task_log(sim, upid))
    conf = sim.data("GET", path)
    assert conf["cores"] == 2 and "description" not in conf and "searchdomain" not in conf
    assert sim.data("POST", path, {"cores": 3, "background_delay": 5}) is None
    # the cloud-init data goes to the guest at the next start
    assert sim.wait_task(sim.data("POST", qpath("pve1", vmid, "/status/start")))[
        "exitstatus"] == "OK"
    ci = sim.cloudinit(vmid)
    assert ci["applied"]["user"] == "admin" and ci["applied"]["hostname"] == "web-2"
    pw = sim.passwords(vmid)["admin"]
    assert (pw["source"], pw["sha256"]) == ("cloudinit", hashlib.sha256(b"S3cret-pw").hexdigest())
    # a hash given as cipassword is stored as it is
    sim.data("PUT", path, {"cipassword": "$6$salt$" + "x" * 86})
    assert sim.guest_info(vmid)["conf"]["cipassword"] == "$6$salt$" + "x" * 86
    assert sim.data("GET", path)["cipassword"] == "**********"


@pytest.mark.parametrize("params, field, message", [
    ({"sshkeys": SSH_KEY}, "sshkeys", "invalid format - invalid urlencoded string: %s\n"
     % SSH_KEY),
    ({"sshkeys": urllib.parse.quote_plus(SSH_KEY)}, "sshkeys",
     "invalid format - invalid urlencoded string: %s\n" % urllib.parse.quote_plus(SSH_KEY)),
    ({"ipconfig0": "ip=10.0.0.5"}, "ipconfig0", "invalid format - format error\nipconfig0.ip: "
     "invalid format - value does not look like a valid IPv4 network configuration\n"),
    ({"ipconfig0": "gw=10.0.0.1"}, "ipconfig0", "invalid format - format error\nipconfig0.ip: "
     "missing property required by 'ipconfig0.gw'\n"),
    ({"net0": "bridge=vmbr0"}, "net0", "invalid format - format error\n"
     "net0.model: property is missing and it is not optional\n"),
    ({"net0": "virtio,bridge=vm br"}, "net0", "invalid format - format error\n"
     "net0.bridge: invalid format - invalid bridge ID 'vm br'\n"),
    ({"name": "web_1"}, "name", "invalid format - value does not look like a valid DNS name\n"),
    ({"cores": 0}, "cores", "value must have a minimum value of 1"),
    ({"memory": "8"}, "memory", "invalid format - format error\n"
     "memory.current: value must have a minimum value of 16\n"),
    ({"agent": "enabled=2"}, "agent", "invalid format - format error\n"
     "agent.enabled: type check ('boolean') failed - got '2'\n"),
    ({"onboot": "yes"}, "onboot", "type check ('boolean') failed - got 'yes'"),
    ({"ipconfig32": "ip=dhcp"}, "ipconfig32", NOT_DEFINED),
    ({"delete": "cores", "cores": 2}, "delete",
     "you can't use '-cores' and -delete cores' at the same time"),
    ({"delete": "colour"}, "delete", "unknown option 'colour'"),
    ({"force": 1}, "delete", "missing property required by 'force'"),
])
def test_qemu_config_parameter_errors(sim, params, field, message):
    status, reason, _, body = sim.request("PUT", "/nodes/pve1/qemu/104/config", params)
    assert (status, reason) == (400, "Parameter verification failed.")
    assert body["errors"][field] == message


def test_qemu_config_refusals_and_locks(sim):
    vmid = qemu_vm(sim)
    path = qpath("pve1", vmid, "/config")
    assert sim.request("PUT", path, {})[:2] == (500, "no options specified")
    bad = urllib.parse.quote("ssh-ed25519 not-base64! me", safe="")
    assert sim.request("PUT", path, {"sshkeys": bad})[1] == "SSH public key validation error"
    digest = sim.data("GET", path)["digest"]
    sim.data("PUT", path, {"cores": 3, "digest": digest})
    assert sim.request("PUT", path, {"cores": 1, "digest": digest})[1] == \
        "checksum mismatch (file change by other user?)"
    sim.guest(vmid, lock="backup")
    for method in ("PUT", "POST"):
        assert sim.request(method, path, {"cores": 2})[:2] == (500, "VM is locked (backup)")
    assert sim.data("PUT", path, {"cores": 2, "skiplock": 1}) is None
    sim.guest(vmid, lock="")
    assert sim.request("PUT", "/nodes/pve1/qemu/99999/config", {"cores": 2})[1] == \
        "Configuration file 'nodes/pve1/qemu-server/99999.conf' does not exist"
    assert sim.request("PUT", "/nodes/pve2/qemu/%d/config" % vmid, {"cores": 2})[1] == \
        "Configuration file 'nodes/pve2/qemu-server/%d.conf' does not exist" % vmid
    # deleting what is not set only warns
    upid = sim.data("POST", path, {"delete": "ciuser"})
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    assert "cannot delete 'ciuser' - not set in current configuration!" in task_log(sim, upid)
    # a new disk, and a disk deleted: its volume stays as unused0
    sim.data("PUT", path, {"scsi1": "local-lvm:2,iothread=1"})
    conf = sim.data("GET", path)
    assert conf["scsi1"] == "local-lvm:vm-%d-disk-1,iothread=1,size=2G" % vmid
    sim.data("PUT", path, {"delete": "scsi1"})
    conf = sim.data("GET", path)
    assert "scsi1" not in conf and conf["unused0"] == "local-lvm:vm-%d-disk-1" % vmid


def test_qemu_config_permissions(sim, restrict):
    vmid = qemu_vm(sim)
    path = qpath("pve1", vmid, "/config")
    restrict(["VM.Audit"])
    assert forbidden(sim, "PUT", path, {"cores": 2}) == (
        "Permission check failed (/vms/%d, VM.Config.Disk|VM.Config.CDROM|VM.Config.CPU|"
        "VM.Config.Memory|VM.Config.Network|VM.Config.HWType|VM.Config.Options|"
        "VM.Config.Cloudinit)" % vmid)
    restrict(["VM.Config.CPU"])
    assert forbidden(sim, "PUT", path, {"cores": 2, "memory": "1024"}) == \
        "Permission check failed (/vms/%d, VM.Config.Memory)" % vmid
    assert forbidden(sim, "PUT", path, {"ciuser": "admin"}) == \
        "Permission check failed (/vms/%d, VM.Config.Cloudinit|VM.Config.Network)" % vmid
    restrict(["VM.Config.Cloudinit"])
    assert sim.data("PUT", path, {"ciuser": "admin", "ipconfig0": "ip=dhcp"}) is None
    assert forbidden(sim, "PUT", path, {"net0": "virtio,bridge=vmbr0"}) == \
        "Permission check failed (/vms/%d, VM.Config.Network)" % vmid
    restrict(["VM.Config.Network"])
    assert forbidden(sim, "PUT", path, {"net0": "virtio,bridge=vmbr0"}) == \
        "Permission check failed (/sdn/zones/localnetwork/vmbr0, SDN.Use)"
    restrict(["VM.Config.Disk"])
    assert forbidden(sim, "PUT", path, {"scsi2": "local-lvm:1"}) == \
        "Permission check failed (/storage/local-lvm, Datastore.AllocateSpace)"


def test_qemu_config_of_a_running_vm_goes_pending(sim):
    vmid = qemu_vm(sim, status="running", cores=2, memory=2048)
    path = qpath("pve1", vmid, "/config")
    sim.data("PUT", path, {"cores": 6, "memory": "8192", "name": "renamed", "ciuser": "ops",
                           "net0": "virtio,bridge=vmbr1", "description": "live"})
    current = sim.data("GET", path, {"current": 1})
    assert (current["cores"], current["memory"]) == (2, "2048")           # not hot-pluggable
    assert (current["name"], current["ciuser"], current["description"]) == \
        ("renamed", "ops", "live")                                          # at once
    assert current["net0"].endswith(",bridge=vmbr1")                        # hot-plugged
    assert sim.data("GET", path)["cores"] == 6                              # pending shown
    pending = {e["key"]: e for e in sim.data("GET", qpath("pve1", vmid, "/pending"))}
    assert pending["cores"] == {"key": "cores", "value": 2, "pending": 6}
    assert pending["memory"] == {"key": "memory", "value": "2048", "pending": "8192"}
    assert "pending" not in pending["name"] and "digest" in pending
    sim.data("PUT", path, {"delete": "description,tags"})
    assert "description" not in sim.data("GET", path, {"current": 1})
    upid = sim.data("POST", qpath("pve1", vmid, "/status/reboot"))
    assert UPID_RE.match(upid).group(5) == "qmreboot"
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    current = sim.data("GET", path, {"current": 1})
    assert (current["cores"], current["memory"]) == (6, "8192")
    assert all("pending" not in e for e in sim.data("GET", qpath("pve1", vmid, "/pending")))


def test_qemu_resize(sim, schema):
    vmid = qemu_vm(sim, disk_gb=10)
    path = qpath("pve1", vmid, "/resize")
    before = lvm_status(sim, "pve1")["used"]
    upid = sim.data("PUT", path, {"disk": "scsi0", "size": "+2G"})
    assert UPID_RE.match(upid).groups()[4:6] == ("resize", str(vmid))
    assert schema_check.check_returns(schema, "PUT", "/nodes/{node}/qemu/{vmid}/resize",
                                      upid) == []
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    conf = sim.data("GET", qpath("pve1", vmid, "/config"))
    assert conf["scsi0"] == "local-lvm:vm-%d-disk-0,iothread=1,size=12G" % vmid
    assert sim.data("GET", qpath("pve1", vmid, "/status/current"))["maxdisk"] == 12 * GiB
    assert lvm_status(sim, "pve1")["used"] == before + 2 * GiB
    assert sim.wait_task(sim.data("PUT", path, {"disk": "scsi0", "size": "20G"}))[
        "exitstatus"] == "OK"
    assert sim.data("GET", qpath("pve1", vmid, "/config"))["scsi0"].endswith(",size=20G")
    # every check runs in the worker: refusals are failed tasks
    for params, exitstatus in [
            ({"disk": "scsi0", "size": "10G"}, "shrinking disks is not supported"),
            ({"disk": "scsi5", "size": "+1G"}, "disk 'scsi5' does not exist"),
            ({"disk": "scsi0", "size": "+1G", "digest": "0" * 40},
             "checksum mismatch (file change by other user?)"),
            ({"disk": "scsi0", "size": "20G"}, "OK")]:        # the same size: nothing to do
        assert sim.wait_task(sim.data("PUT", path, params))["exitstatus"] == exitstatus, params
    assert sim.wait_task(sim.data("PUT", "/nodes/pve1/qemu/99999/resize", {
        "disk": "scsi0", "size": "+1G"}))["exitstatus"] == \
        "Configuration file 'nodes/pve1/qemu-server/99999.conf' does not exist"
    tid = make_template(sim)
    assert sim.wait_task(sim.data("PUT", qpath("pve1", tid, "/resize"), {
        "disk": "ide2", "size": "+1G"}))["exitstatus"] == "you can't resize a cdrom"
    sim.guest(vmid, lock="snapshot")
    assert sim.wait_task(sim.data("PUT", path, {"disk": "scsi0", "size": "+1G"}))[
        "exitstatus"] == "VM is locked (snapshot)"
    sim.guest(vmid, lock="")
    status, _, _, body = sim.request("PUT", path, {"disk": "scsi0", "size": "-1G"})
    assert (status, body["errors"]) == (400, {"size": "value does not match the regex pattern"})
    status, _, _, body = sim.request("PUT", path, {"disk": "rootfs", "size": "1G"})
    assert status == 400 and "enumeration" in body["errors"]["disk"]


def test_guest_agent_ping_and_password(sim, schema):
    vmid = qemu_vm(sim)
    base = qpath("pve1", vmid, "/agent/")
    pw = {"username": "root", "password": "N3w-pass"}
    assert sim.request("POST", base + "ping")[:2] == (500, "VM %d is not running" % vmid)
    assert sim.request("POST", base + "set-user-password", pw)[1] == \
        "VM %d is not running" % vmid
    sim.guest(vmid, status="running")
    res = sim.data("POST", base + "ping")
    assert res == {"result": {}}
    assert schema_check.check_returns(schema, "POST", "/nodes/{node}/qemu/{vmid}/agent/ping",
                                      res) == []
    assert sim.data("POST", base + "set-user-password", pw) == {"result": {}}
    import hashlib
    rec = sim.passwords(vmid)["root"]
    assert (rec["source"], rec["sha256"]) == ("agent", hashlib.sha256(b"N3w-pass").hexdigest())
    sim.data("POST", base + "set-user-password", {"username": "deploy", "crypted": 1,
                                                   "password": "$6$abc$xyz"})
    assert sim.passwords(vmid)["deploy"]["hash"] == "$6$abc$xyz"
    assert "N3w-pass" not in json.dumps(sim.data("GET", qpath("pve1", vmid, "/config")))
    sim.agent(vmid, running=False)
    for cmd in ("ping", "set-user-password"):
        assert sim.request("POST", base + cmd, pw if cmd != "ping" else None)[1] == \
            "QEMU guest agent is not running"
    sim.agent(vmid, running=True)
    sim.guest(vmid, conf={"agent": "0"})         # configured, but disabled
    assert sim.request("POST", base + "ping")[1] == "QEMU guest agent is not running"
    assert "agent" not in sim.data("GET", qpath("pve1", vmid, "/status/current"))
    sim.guest(vmid, conf={"agent": None})
    assert sim.request("POST", base + "ping")[1] == "No QEMU guest agent configured"


def test_qemu_status_list_and_rrddata_fields(sim, schema):
    vmid = qemu_vm(sim, conf={"name": None})
    cur = qpath("pve1", vmid, "/status/current")
    st = sim.data("GET", cur)
    assert st["name"] == "VM %d" % vmid
    assert (st["status"], st["qmpstatus"], st["disk"], st["ha"]) == \
        ("stopped", "stopped", 0, {"managed": 0})
    for key in ("diskread", "diskwrite", "running-qemu", "running-machine", "pid"):
        assert key not in st, key
    sim.guest(vmid, status="running", uptime=100)
    st = sim.data("GET", cur)
    assert schema_check.check_returns(schema, "GET", "/nodes/{node}/qemu/{vmid}/status/current",
                                      st) == []
    assert (st["qmpstatus"], st["running-qemu"], st["running-machine"]) == \
        ("running", pvesim.QEMU_VERSION, pvesim.QEMU_MACHINE)
    assert st["disk"] == 0 and st["maxdisk"] == 32 * GiB and st["agent"] == 1
    assert isinstance(st["diskread"], int) and st["netin"] > 0 and st["pid"] > 0
    assert st["nics"] == {"tap%di0" % vmid: {"netin": st["netin"], "netout": st["netout"]}}
    sim.guest(vmid, paused=True)
    assert sim.data("GET", cur)["qmpstatus"] == "paused"
    plain = [d for d in sim.data("GET", "/nodes/pve1/qemu") if d["vmid"] == vmid][0]
    assert "qmpstatus" not in plain and "diskread" not in plain
    full = [d for d in sim.data("GET", "/nodes/pve1/qemu", {"full": 1}) if d["vmid"] == vmid][0]
    assert full["qmpstatus"] == "paused" and "diskread" in full
    assert schema_check.check_returns(schema, "GET", "/nodes/{node}/qemu", [full]) == []
    rrd = sim.data("GET", qpath("pve1", vmid, "/rrddata"), {"timeframe": "hour"})
    for key in ("memhost", "pressurecpufull", "pressureiofull", "pressurememoryfull", "cpu",
                "diskread"):
        assert isinstance(rrd[-1][key], float), key
    # a stopped VM's last point has no usage (pvestatd writes unknowns)
    sim.guest(vmid, status="stopped")
    rrd = sim.data("GET", qpath("pve1", vmid, "/rrddata"), {"timeframe": "hour"})
    assert set(rrd[-1]) == {"time", "maxcpu", "maxmem", "maxdisk", "disk"}
    assert rrd[-1]["disk"] == 0.0 and rrd[-1]["maxdisk"] == 32.0 * GiB


def test_qemu_task_types_and_durations(sim):
    vmid = qemu_vm(sim)
    base = qpath("pve1", vmid)
    done = {}
    for ttype, method, tail, params in [
            ("qmconfig", "POST", "/config", {"cores": 2}),
            ("qmstart", "POST", "/status/start", None),
            ("qmsuspend", "POST", "/status/suspend", None),
            ("qmresume", "POST", "/status/resume", None),
            ("qmreboot", "POST", "/status/reboot", None),
            ("qmsnapshot", "POST", "/snapshot", {"snapname": "s1"}),
            ("qmrollback", "POST", "/snapshot/s1/rollback", None),
            ("qmdelsnapshot", "DELETE", "/snapshot/s1", None),
            ("qmshutdown", "POST", "/status/shutdown", None),
            ("qmstart", "POST", "/status/start", None),
            ("qmstop", "POST", "/status/stop", None),
            ("resize", "PUT", "/resize", {"disk": "scsi0", "size": "+1G"}),
            ("qmclone", "POST", "/clone", {"newid": new_vmid()}),
            ("qmtemplate", "POST", "/template", None),
            ("qmdestroy", "DELETE", "", None)]:
        upid = sim.data(method, base + tail, params)
        assert UPID_RE.match(upid).groups()[4:6] == (ttype, str(vmid)), tail
        assert sim.wait_task(upid)["exitstatus"] == "OK", tail
        done.setdefault(ttype, []).append(upid)
    for ttype, upids in done.items():
        listed = [t["upid"] for t in sim.data("GET", "/nodes/pve1/tasks", {
            "vmid": vmid, "typefilter": ttype, "limit": 100})]
        assert sorted(listed) == sorted(upids), ttype
    # durations follow --time-scale: a qmclone of a template is 2 s, a qmconfig 0.5 s
    tid = make_template(sim)
    sim.configure(time_scale=0.25)
    try:
        t0 = time.monotonic()
        clone(sim, tid)
        assert 0.4 < time.monotonic() - t0 < 2.0
    finally:
        sim.configure(time_scale=0.05)
