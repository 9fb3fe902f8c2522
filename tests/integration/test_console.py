"""The console proxied through the panel (issue 15, docs/console.md), end to end: Apache with
mod_ospab (POST /api/server/console hands out a one-time token), Apache's mod_proxy_wstunnel
in front of ospab-agent's /console/ws, and the Proxmox simulator's termproxy, vncproxy and
vncwebsocket speaking the real protocols over verified TLS.

The client here is a plain RFC 6455 client (tests/pvesim/simctl.py's WebSocket) talking to
Apache only, as the console page does: its first message is {"token": ...}; the agent answers
{"status":"ok"} and then relays termproxy's messages, or speaks RFB 3.8 with security type
None (it has done the VNC authentication with Proxmox itself). The browser's side (xterm.js,
noVNC) is tests/browser's."""
import json
import os
import re
import struct
import sys
import time
import urllib.parse

import pytest
import requests

import harness
from conftest import sql_exec
from test_agent import (sim, _sim_clean, agent_port, srv, world, agent, allow_agent_log,  # noqa: F401
                        make_guest, ours, wait_for, NODES)

sys.path.insert(0, str(harness.REPO / "tests" / "pvesim"))
from simctl import WebSocket, WebSocketRefused  # noqa: E402

PROTOCOL = "ospab-console"


def call(srv, method, path, tok, body=None):
    return requests.request(method, srv.url(path), json=body, timeout=30,
                            headers={"Authorization": f"Bearer {tok}"})


class _Plain:
    """simctl's WebSocket speaks TLS to Proxmox; Apache is plain HTTP here."""
    def wrap_socket(self, sock, server_hostname=None):
        return sock


def console_url(srv, tok, sid):
    r = call(srv, "POST", "/api/server/console", tok, {"serverId": sid})
    assert r.status_code == 200, r.text
    return r.json()["url"]


def token_of(url):
    frag = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).fragment))
    return frag["token"], frag["kind"], frag["server"]


def connect(srv, protocols=(PROTOCOL,), path="/console/ws"):
    u = urllib.parse.urlsplit(srv.url("/"))
    return WebSocket.connect(u.hostname, u.port, _Plain(), path, protocols=protocols)


def open_console(srv, token, **extra):
    """The page's first step: (socket, the agent's first answer as JSON, or None at close)."""
    ws = connect(srv)
    ws.send(json.dumps(dict({"token": token}, **extra)))
    first = ws.recv(timeout=20)
    return ws, (json.loads(first) if first is not None else None)


def read_until(ws, needle, timeout=10):
    got = b""
    deadline = time.monotonic() + timeout
    while needle not in got:
        left = deadline - time.monotonic()
        assert left > 0, f"no {needle!r} in {got!r}"
        chunk = ws.recv(timeout=left)
        assert chunk is not None, f"closed ({ws.close_code}) before {needle!r}: {got!r}"
        got += chunk
    return got


def terminal(srv, world, sid):
    """alice's console of container sid, open, at its prompt."""
    token, _, _ = token_of(console_url(srv, world.tok["alice"], sid))
    ws, first = open_console(srv, token)
    assert first["status"] == "ok", first
    read_until(ws, b"# ")
    return ws


def term_input(text):
    data = text.encode()
    return f"0:{len(data)}:{text}"


def closed_with(ws, timeout=15):
    """Reads until the agent closes: (close code, the last error message seen)."""
    message = None
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "the console was not closed"
        data = ws.recv(timeout=left)
        if data is None:
            return ws.close_code, message
        try:
            o = json.loads(data)
            if isinstance(o, dict) and o.get("status") == "error":
                message = o["error"]
        except ValueError:
            pass


def sim_session(sim, vmid, state="connected"):
    for s in sim.consoles()["sessions"]:
        if s["vmid"] == vmid and s["state"] == state:
            return s
    return None


def audit(database, sid, action):
    return database.query("SELECT * FROM audit_log WHERE action = ? AND target_id = ? "
                          "ORDER BY id", [action, str(sid)])


@pytest.fixture
def lxc(sim, world):
    vmid = make_guest(sim)
    return vmid, ours(world, vmid)


KVM_TEMPLATE = 9100


@pytest.fixture(scope="module")
def kvm_template(sim):
    sim.make_template(KVM_TEMPLATE, name="debian-12-cloud", node="pve1")
    return KVM_TEMPLATE


@pytest.fixture
def kvm(sim, world, kvm_template):
    """A running KVM guest (cloned from a template, as the panel makes them) of alice's."""
    vmid = make_guest(sim, running=False) + 50000
    upid = sim.data("POST", f"/nodes/pve1/qemu/{kvm_template}/clone",
                    {"newid": vmid, "name": f"kvm{vmid}", "full": 1})
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    upid = sim.data("POST", f"/nodes/pve1/qemu/{vmid}/status/start")
    assert sim.wait_task(upid)["exitstatus"] == "OK"
    v = world.api.create_vps(name=f"kvm-{vmid}", node="pve1", vmid=vmid, kind="qemu",
                             status="running", user_id=world.alice)
    return vmid, v["id"]


# ---------------------------------------------------------------------- terminal --

def test_terminal_end_to_end_through_apache(srv, sim, world, database, agent, lxc):
    vmid, sid = lxc
    a = agent()
    url = console_url(srv, world.tok["alice"], sid)
    token, kind, server = token_of(url)
    assert (kind, server) == ("terminal", str(sid))
    ws, first = open_console(srv, token)
    with ws:
        assert first == {"status": "ok", "kind": "terminal", "server": str(sid),
                         "name": f"srv-{vmid}"}, first
        assert ws.protocol == PROTOCOL
        read_until(ws, b"# ")
        ws.send(term_input("echo hello\r"))
        out = read_until(ws, b"hello\r\n")
        assert b"echo hello" in out
        ws.send(term_input("hostname\r"))
        read_until(ws, b"\r\n")
        ws.send("1:100:30:")
        ws.send("2")
        wait_for(lambda: (sim_session(sim, vmid) or {}).get("cols") == 100, what="resize")
        s = sim_session(sim, vmid)
        assert (s["cols"], s["rows"], s["authenticated"]) == (100, 30, True), s
        assert s["commands"][:1] == ["echo hello"], s
        # the shell's exit ends the console: the page is told why
        ws.send(term_input("exit\r"))
        code, _ = closed_with(ws)
        assert code == 4502
    wait_for(lambda: audit(database, sid, "console.close"), what="the end's audit")
    opened, ended = audit(database, sid, "console.open"), audit(database, sid, "console.close")
    assert len(opened) == 1 and opened[0]["actor_id"] == str(world.alice)
    d = json.loads(ended[0]["details"])
    assert d["kind"] == "terminal" and d["bytesToGuest"] > 20 and d["bytesToBrowser"] > 20, d
    log = a.log_text()
    assert token not in log and "PVEVNC" not in log


def test_a_token_opens_one_console_once(srv, sim, world, agent, lxc):
    vmid, sid = lxc
    agent()
    token, _, _ = token_of(console_url(srv, world.tok["alice"], sid))
    ws, first = open_console(srv, token)
    with ws:
        assert first["status"] == "ok"
        ws2, again = open_console(srv, token)
        with ws2:
            assert again["status"] == "error" and "open the console again" in again["error"]
            assert closed_with(ws2)[0] == 4401
        read_until(ws, b"# ")          # the first one is untouched


def test_an_expired_or_unknown_token_is_refused(srv, sim, world, database, agent, lxc):
    vmid, sid = lxc
    agent()
    token, _, _ = token_of(console_url(srv, world.tok["alice"], sid))
    sql_exec(database, "UPDATE console_tokens SET expires_at = '2000-01-01 00:00:00' "
                       f"WHERE vps_id = {sid} AND used_at IS NULL;")
    for t in (token, "x" * 43):
        ws, first = open_console(srv, t)
        with ws:
            assert first["status"] == "error", first
            assert closed_with(ws)[0] == 4401
    assert not sim_session(sim, vmid, "waiting") and not sim_session(sim, vmid)


def test_a_token_is_for_its_server_and_its_owner(srv, sim, world, database, agent, lxc):
    vmid, sid = lxc
    agent()
    other = ours(world, make_guest(sim))
    # another server's page cannot use it
    token, _, _ = token_of(console_url(srv, world.tok["alice"], sid))
    ws, first = open_console(srv, token, server=str(other))
    with ws:
        assert first["status"] == "error" and closed_with(ws)[0] == 4401
    # the server went to bob after the token was given to alice: refused
    token, _, _ = token_of(console_url(srv, world.tok["alice"], sid))
    sql_exec(database, f"UPDATE vps SET user_id = {world.bob} WHERE id = {sid};")
    try:
        ws, first = open_console(srv, token)
        with ws:
            assert first["status"] == "error" and "no longer yours" in first["error"]
            assert closed_with(ws)[0] == 4403
    finally:
        sql_exec(database, f"UPDATE vps SET user_id = {world.alice} WHERE id = {sid};")


def test_a_bad_first_message_or_a_wrong_upgrade(srv, world, agent):
    agent()
    ws = connect(srv)
    with ws:
        ws.send("hello")
        first = ws.recv()
        assert json.loads(first)["status"] == "error"
        assert closed_with(ws)[0] == 4400
    # the console's path speaks only its subprotocol, and Socket.IO's path not it
    with pytest.raises(WebSocketRefused) as e:
        connect(srv, protocols=("binary",))
    assert e.value.status in (400, 404, 502, 503), e.value.status
    with pytest.raises(WebSocketRefused):
        connect(srv, path="/socket.io/?EIO=4&transport=websocket")


def test_proxmox_dropping_the_console_closes_the_page_with_a_message(srv, sim, world, agent,
                                                                      lxc, request):
    vmid, sid = lxc
    agent()
    with terminal(srv, world, sid) as ws:
        port = wait_for(lambda: sim_session(sim, vmid), what="the session")["port"]
        sim.drop_console(port, mode="reset")
        code, _ = closed_with(ws)
        assert code == 4502


def test_suspension_or_deletion_ends_an_open_console(srv, sim, world, database, agent, lxc):
    vmid, sid = lxc
    agent()
    with terminal(srv, world, sid) as ws:
        sql_exec(database, f"UPDATE vps SET status = 'suspended' WHERE id = {sid};")
        code, _ = closed_with(ws, timeout=20)
        assert code == 4403
    wait_for(lambda: not sim_session(sim, vmid), what="the Proxmox side to end")


def test_the_agent_stopping_tells_the_page(srv, sim, world, agent, lxc):
    vmid, sid = lxc
    a = agent()
    with terminal(srv, world, sid) as ws:
        assert a.stop() == 0, a.log_tail()
        code, _ = closed_with(ws)
        assert code == 1001
    wait_for(lambda: not sim_session(sim, vmid), what="the Proxmox side to end")


def test_a_user_has_a_limited_number_of_consoles(srv, sim, world, agent, lxc):
    vmid, sid = lxc
    agent(sections={"console": {"max_per_user": "2"}})
    held = []
    try:
        for _ in range(2):
            token, _, _ = token_of(console_url(srv, world.tok["alice"], sid))
            ws, first = open_console(srv, token)
            held.append(ws)
            assert first["status"] == "ok", first
        token, _, _ = token_of(console_url(srv, world.tok["alice"], sid))
        ws, first = open_console(srv, token)
        with ws:
            assert first["status"] == "error" and closed_with(ws)[0] == 4429
        # a place comes back when one is closed
        held.pop().close()
        time.sleep(0.5)
        token, _, _ = token_of(console_url(srv, world.tok["alice"], sid))
        ws, first = open_console(srv, token)
        held.append(ws)
        assert first["status"] == "ok", first
    finally:
        for ws in held:
            ws.shutdown()


def test_a_stopped_guest_is_a_clear_refusal(srv, sim, world, agent):
    vmid = make_guest(sim, running=False)
    sid = ours(world, vmid, status="stopped")
    agent()
    r = call(srv, "POST", "/api/server/console", world.tok["alice"], {"serverId": sid})
    if r.status_code != 200:
        return          # the route itself refuses a stopped guest: nothing reaches the agent
    token, _, _ = token_of(r.json()["url"])
    ws, first = open_console(srv, token)
    with ws:
        if first["status"] == "ok":
            # termproxy of a stopped container: Proxmox says so after OK, then ends
            out = b""
            while True:
                chunk = ws.recv(timeout=10)
                if chunk is None:
                    break
                out += chunk
            assert b"not running" in out and ws.close_code == 4502
        else:
            assert closed_with(ws)[0] == 4502


# --------------------------------------------------------------------------- VNC --

def rfb_handshake(ws):
    """The page's side of RFB 3.8 against the agent: security type None only."""
    buf = bytearray()

    def read(n):
        while len(buf) < n:
            chunk = ws.recv(timeout=10)
            assert chunk is not None, f"closed after {bytes(buf)!r}"
            buf.extend(chunk)
        out = bytes(buf[:n])
        del buf[:n]
        return out

    assert read(12) == b"RFB 003.008\n"
    ws.send(b"RFB 003.008\n")
    n = read(1)[0]
    assert read(n) == b"\x01", "the page is offered None only"
    ws.send(b"\x01")
    assert read(4) == b"\0\0\0\0"
    ws.send(b"\x01")                                   # ClientInit, shared
    init = read(24)
    width, height = struct.unpack(">HH", init[:4])
    name = read(struct.unpack(">I", init[20:24])[0])
    return width, height, name, read


def test_vnc_end_to_end_without_a_password(srv, sim, world, database, agent, kvm):
    vmid, sid = kvm
    a = agent()
    token, kind, _ = token_of(console_url(srv, world.tok["alice"], sid))
    assert kind == "vnc"
    ws, first = open_console(srv, token)
    with ws:
        assert first["status"] == "ok" and first["kind"] == "vnc", first
        width, height, name, read = rfb_handshake(ws)
        assert (width, height) == (64, 48) and name == f"QEMU (kvm{vmid})".encode(), name
        ws.send(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))    # a full update
        head = read(4)
        assert head[0] == 0 and struct.unpack(">H", head[2:4])[0] == 1
        rect = read(12)
        x, y, w, h, enc = struct.unpack(">HHHHi", rect)
        pixels = read(w * h * 4)
        assert (w, h, enc) == (64, 48, 0) and len(set(pixels)) > 4, "a blank screen"
        ws.send(struct.pack(">BBxxI", 4, 1, 0xFFE3))    # KeyEvent, down
        s = wait_for(lambda: (sim_session(sim, vmid) or {}).get("keys"), what="the key")
        assert s == [[0xFFE3, True]], s
        st = sim_session(sim, vmid)
        assert st["authenticated"] and st["kind"] == "vnc", st
    log = a.log_text()
    assert token not in log and "PVEVNC" not in log


@pytest.mark.allow_log(r"MaxRequestWorkers")
def test_a_slow_reader_keeps_the_agents_memory_bounded(srv, sim, world, agent, kvm, lxc):
    """50 consoles at once; one of them asks for 3,000 full screens (37 MB) and reads
    nothing for a while: the agent stops reading Proxmox (back-pressure) instead of
    buffering it, the others go on, and every byte arrives once the reader catches up."""
    vmid, sid = kvm
    lvmid, lsid = lxc
    metrics = harness.free_port()
    a = agent(sections={"console": {"max_per_user": "64", "max_buffer": "262144"},
                        "agent": {"metrics_listen": f"127.0.0.1:{metrics}"}})

    def queued():
        text = requests.get(f"http://127.0.0.1:{metrics}/metrics", timeout=10).text
        return int(re.search(r"^ospab_agent_console_queued_bytes (\d+)$", text, re.M).group(1))

    held = []
    try:
        for _ in range(49):
            held.append(terminal(srv, world, lsid))
        token, _, _ = token_of(console_url(srv, world.tok["alice"], sid))
        slow, first = open_console(srv, token)
        held.append(slow)
        assert first["status"] == "ok"
        width, height, _, read = rfb_handshake(slow)
        rss0 = a.rss_kb()
        n = 3000
        per = 4 + 12 + width * height * 4
        req = struct.pack(">BxHHHH", 3, 0, 0, width, height)
        slow.send(req * n)

        # Proxmox's sending stalls well before the 37 MB: what is in flight is the sockets'
        # buffers (the simulator's, Apache's, the reader's), not the agent's memory
        def stalled():
            before = sim_session(sim, vmid)["bytes_out"]
            time.sleep(1.5)
            after = sim_session(sim, vmid)["bytes_out"]
            return after if after == before and after < n * per else None
        sent = wait_for(stalled, timeout=60, what="Proxmox's sending to stall")
        rss1 = a.rss_kb()
        # what the agent holds: at most the queue's limit and what one read brings
        held_bytes = queued()
        assert 0 < held_bytes <= 2 * 262144, held_bytes
        # its memory too, unless ASan keeps freed memory in quarantine (scripts/sanitize
        # runs this test against such a build; the queue's figure above holds there too)
        if "/asan/" not in os.environ.get("OSPAB_AGENT_BIN", ""):
            assert rss1 - rss0 < 16 * 1024, f"agent grew {rss1 - rss0} kB"
        # the other consoles go on meanwhile
        held[0].send(term_input("echo still-here\r"))
        read_until(held[0], b"still-here\r\n")
        for i in range(n):
            head = read(4)
            assert head[0] == 0 and struct.unpack(">H", head[2:4])[0] == 1, i
            x, y, w, h, enc = struct.unpack(">HHHHi", read(12))
            assert (w, h, enc) == (width, height, 0), i
            read(w * h * 4)
        assert queued() == 0
        print(f"\nconsoles: 50 open; slow reader: Proxmox stalled after {sent} of {n * per} "
              f"bytes; the agent held {held_bytes} bytes, its RSS {rss0} -> {rss1} kB; all {n} "
              "screens arrived afterwards")
    finally:
        for ws in held:
            ws.shutdown()
