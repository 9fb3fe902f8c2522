"""The agent's live-push server (monitor-agent/agent_sio.c): Socket.IO v4 / Engine.IO v4
behind a real Apache (`ProxyPass /socket.io/ ... upgrade=websocket`), driven by the
clients browsers and scripts use: npm socket.io-client (tests/sio/*.js, with node) and
python-socketio, plus raw HTTP and raw websockets for what those clients never send.

The server runs inside tests/sio/sio-driver (built by `make check`): HS256 tokens checked
by the core, ownership given on its command line, events published from its stdin
thread as the agent's poller will. Short ping settings make the ping tests quick.
"""

import json
import os
import secrets
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "sio"))
import authmatrix  # noqa: E402
import harness  # noqa: E402
import siolib  # noqa: E402
from test_auth import _SourceAdapter  # noqa: E402

socketio = pytest.importorskip("socketio")
websocket = pytest.importorskip("websocket")

KEY = secrets.token_hex(32)
USER, OTHER, ADMIN = 5, 6, 1
# user 5 owns servers 1, 3 and 4; user 6 owns 2; nobody owns 777
OWN = [(USER, 1), (USER, 3), (USER, 4), (OTHER, 2)]
PING_MS = 1500
MAX_PAYLOAD = 100_000
QUEUE_MSGS, QUEUE_BYTES = 256, 512 * 1024


def token(user=USER, role="user", **claims):
    return authmatrix.token(authmatrix.claims(user, role, **claims), KEY)


# ------------------------------------------------------------------ fixtures --

class Stack:
    def __init__(self, driver, apache):
        self.driver = driver
        self.apache = apache
        self.url = apache.url("")          # socket.io clients add /socket.io/

    def eio(self, query=""):
        return self.apache.url("/socket.io/?EIO=4&transport=polling" + query)

    def ws_url(self, query=""):
        return f"ws://127.0.0.1:{self.apache.port}/socket.io/?EIO=4&transport=websocket{query}"


def _node_ready():
    if not (siolib.SIO_DIR / "node_modules" / "socket.io-client").is_dir():
        pytest.fail("tests/sio/node_modules missing: scripts/test runs `npm ci` there",
                    pytrace=False)


@pytest.fixture(scope="module")
def stack():
    if not os.access(siolib.DRIVER, os.X_OK):
        pytest.fail(f"{siolib.DRIVER} is not built: run `make check` first", pytrace=False)
    _node_ready()
    driver = siolib.Driver(KEY, OWN, ping_interval=PING_MS, ping_timeout=PING_MS,
                           max_payload=MAX_PAYLOAD, max_queue_msgs=QUEUE_MSGS,
                           max_queue_bytes=QUEUE_BYTES)
    # mod_ospab refuses to start without mod_dbd (its routes need it); no DBDriver is
    # needed because no /api/ route is called here
    apache = harness.Apache(
        None, load_dbd=False,
        extra_conf=[f"LoadModule dbd_module {harness.APACHE_MODULES}/mod_dbd.so",
                    *siolib.proxy_conf(driver.port), *siolib.small_buffers_conf()])
    apache.start()
    bad = apache.bad_log_lines()
    assert not bad, bad
    yield Stack(driver, apache)
    apache.stop()
    assert driver.stop() == 0, driver.err[-20:]


@pytest.fixture
def nodes():
    started = []

    def start(script, *args):
        c = siolib.NodeClient(script, *args)
        started.append(c)
        return c
    yield start
    for c in started:
        c.close()


@pytest.fixture
def pyclients():
    started = []

    def start():
        c = socketio.Client(reconnection=False)
        started.append(c)
        return c
    yield start
    for c in started:
        if c.connected:
            c.disconnect()


def emit_until(driver, server, payload, done, timeout=10.0, event="server-stats"):
    """Publishes every 0.2 s until done() is true: a subscription sent before the
    connect completes is in effect at some point we cannot observe from outside."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        driver.emit(server, event, payload)
        time.sleep(0.2)
        if done():
            return True
    return False


class Collector:
    """Events a python-socketio client got, by name."""

    def __init__(self, client, *names):
        self.got = {n: [] for n in names}
        self.cv = threading.Condition()
        for n in names:
            client.on(n, self._handler(n))

    def _handler(self, name):
        def h(data):
            with self.cv:
                self.got[name].append(data)
                self.cv.notify_all()
        return h

    def wait(self, name, pred=lambda d: True, timeout=10):
        with self.cv:
            ok = self.cv.wait_for(lambda: any(pred(d) for d in self.got[name]), timeout)
        assert ok, f"no {name} matching in {timeout}s: {self.got}"
        return next(d for d in self.got[name] if pred(d))


# --------------------------------------------------------------- Engine.IO --

def test_polling_handshake_through_apache(stack):
    r = requests.get(stack.eio(), timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text[0] == "0"
    o = json.loads(r.text[1:])
    assert o["upgrades"] == ["websocket"]
    assert o["pingInterval"] == PING_MS and o["pingTimeout"] == PING_MS
    assert o["maxPayload"] == MAX_PAYLOAD
    assert len(o["sid"]) == 20


def test_unknown_sid_and_bad_queries_are_400(stack):
    r = requests.get(stack.eio("&sid=nosuchsession00000"), timeout=10)
    assert r.status_code == 400
    assert r.json() == {"code": 1, "message": "Session ID unknown"}
    r = requests.post(stack.eio("&sid=nosuchsession00000"), data="40", timeout=10)
    assert r.status_code == 400 and r.json()["code"] == 1
    r = requests.get(stack.apache.url("/socket.io/?EIO=3&transport=polling"), timeout=10)
    assert r.status_code == 400 and r.json()["code"] == 5
    r = requests.get(stack.apache.url("/socket.io/?EIO=4&transport=carrier-pigeon"), timeout=10)
    assert r.status_code == 400 and r.json()["code"] == 0
    r = requests.post(stack.eio(), data="40", timeout=10)        # a handshake is a GET
    assert r.status_code == 400 and r.json()["code"] == 2


def handshake(stack):
    r = requests.get(stack.eio(), timeout=10)
    assert r.status_code == 200, r.text
    return json.loads(r.text[1:])["sid"]


def post(stack, sid, body, **kw):
    return requests.post(stack.eio("&sid=" + sid), data=body,
                         headers={"Content-Type": "text/plain;charset=UTF-8"}, timeout=10, **kw)


def poll(stack, sid, timeout=10):
    return requests.get(stack.eio("&sid=" + sid), timeout=timeout)


def test_raw_polling_connect_subscribe_and_receive(stack):
    sid = handshake(stack)
    r = post(stack, sid, "40" + json.dumps({"token": token()}))
    assert (r.status_code, r.text) == (200, "ok")
    r = poll(stack, sid)
    assert r.text.startswith('40{"sid":"'), r.text
    r = post(stack, sid, '421["subscribe-server",3]\x1e422["subscribe-server","2"]')
    assert r.text == "ok"
    packets = []
    while len(packets) < 3:
        packets += [p for p in poll(stack, sid).text.split("\x1e") if p != "2"]
    assert packets[0] == '431[{"ok":true,"serverId":3}]'
    refused = json.loads(packets[1][3:])[0]
    assert packets[1].startswith("432") and refused["ok"] is False and refused["serverId"] == 2
    assert packets[2].startswith('42["subscribe-error",')
    stack.driver.emit(3, "server-alerts", {"serverId": 3, "alerts": [{"type": "cpu"}]})
    stack.driver.emit(2, "server-alerts", {"serverId": 2, "alerts": []})
    stack.driver.emit(3, "server-stats", {"serverId": 3, "stats": {"cpu": 1}})
    got = []
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        got += [p for p in poll(stack, sid).text.split("\x1e") if p.startswith("42")]
    assert got == ['42["server-alerts",{"serverId":3,"alerts":[{"type":"cpu"}]}]',
                   '42["server-stats",{"serverId":3,"stats":{"cpu":1}}]']
    assert post(stack, sid, "1").text == "ok"                 # close
    r = poll(stack, sid)                    # a late poll: told it is closed
    assert (r.status_code, r.text) == (200, "1")


def test_second_concurrent_poll_closes_the_session(stack):
    sid = handshake(stack)
    post(stack, sid, "40" + json.dumps({"token": token()}))
    poll(stack, sid)                                            # the CONNECT answer
    first = {}
    t = threading.Thread(target=lambda: first.setdefault("r", poll(stack, sid)))
    t.start()
    time.sleep(0.3)                                             # the first poll is held
    second = poll(stack, sid)
    t.join(10)
    assert second.status_code == 400
    assert first["r"].text.split("\x1e")[-1] == "1"             # the close packet
    assert poll(stack, sid).status_code == 400


def test_malformed_packets_close_the_session_and_the_server_lives_on(stack):
    cases = ["4{not json", '42["subscribe-server",1]', "9", "451-[\"x\",{}]", "bAAAA"]
    for body in cases:
        sid = handshake(stack)
        if body.startswith("45") or body[0] in "9b":
            post(stack, sid, "40" + json.dumps({"token": token()}))
        r = post(stack, sid, body)
        assert r.status_code in (200, 400), (body, r.status_code)
        assert poll(stack, sid).status_code == 400 or poll(stack, sid).status_code == 400, body
    assert stack.driver.alive()
    assert handshake(stack)


def test_oversized_post_is_413_and_closes(stack):
    sid = handshake(stack)
    r = post(stack, sid, "4" + "x" * (MAX_PAYLOAD + 10))
    assert r.status_code == 413
    assert poll(stack, sid).status_code == 400
    assert stack.driver.alive() and handshake(stack)


def test_invalid_namespace(stack):
    sid = handshake(stack)
    post(stack, sid, "40/admin," + json.dumps({"token": token()}))
    r = poll(stack, sid)
    assert r.text == '44/admin,{"message":"Invalid namespace"}'


# ---------------------------------------------------------- websocket, raw --

def raw_ws(stack, query="", rcvbuf=None):
    opts = {"timeout": 10}
    if rcvbuf:
        opts["sockopt"] = [(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)]
    ws = websocket.create_connection(stack.ws_url(query), **opts)
    opened = ws.recv()
    assert opened.startswith("0{")
    assert json.loads(opened[1:])["upgrades"] == []
    return ws


def ws_connect(ws, tok):
    ws.send("40" + json.dumps({"token": tok}))
    while True:
        m = ws.recv()
        if m != "2":
            return m


def test_binary_frame_closes_websocket(stack):
    ws = raw_ws(stack)
    assert ws_connect(ws, token()).startswith("40{")
    ws.send_binary(b"\x04abc")
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        for _ in range(10):
            if ws.recv() in ("", None):
                raise websocket.WebSocketConnectionClosedException()
    assert stack.driver.alive()


def test_event_before_connect_closes_websocket(stack):
    ws = raw_ws(stack)
    ws.send('42["subscribe-server",1]')
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        for _ in range(10):
            if ws.recv() in ("", None):
                raise websocket.WebSocketConnectionClosedException()


def test_client_that_stops_ponging_is_dropped(stack):
    before = stack.driver.stats()["sessions"]
    ws = raw_ws(stack)
    assert ws_connect(ws, token()).startswith("40{")
    t0 = time.monotonic()
    pings = 0
    closed = False
    while time.monotonic() - t0 < 4 * PING_MS / 1000:
        try:
            m = ws.recv()
        except websocket.WebSocketConnectionClosedException:
            closed = True
            break
        if m == "2":
            pings += 1                      # heard, never answered
        elif m in ("", None):
            closed = True
            break
    elapsed = time.monotonic() - t0
    assert pings >= 1 and closed
    assert elapsed >= PING_MS / 1000       # not before interval + timeout
    assert stack.driver.stats()["sessions"] <= before


# ------------------------------------------------------------- node clients --

def test_seed_client_code_default_options_polling_then_upgrade(stack, nodes):
    c = nodes("seed-client.js", stack.url, token(), 1)
    c.wait("connect")
    # the upgrade event proves the session began on polling (it may finish before the
    # Socket.IO connect does)
    assert c.wait("upgrade")["transport"] == "websocket"
    stats = {"cpu": 0.25, "mem": 512}
    got = []

    def received():
        got.extend(e for e in c.events() if e["ev"] == "server-stats")
        return bool(got)
    assert emit_until(stack.driver, 1, {"serverId": 1, "stats": stats}, received)
    assert got[0]["data"] == {"serverId": 1, "stats": stats}
    assert got[0]["transport"] == "websocket"


@pytest.mark.parametrize("mode", ["default", "websocket", "polling"])
def test_node_client_subscribe_receive_unsubscribe(stack, nodes, mode):
    c = nodes("client.js", stack.url, token(), mode)
    transport = c.wait("connect")["transport"]
    assert transport == "polling" if mode == "polling" else transport in ("polling", "websocket")
    if mode == "default":
        assert c.wait("upgrade")["transport"] == "websocket"
    c.send("sub 1")
    assert c.wait("ack")["res"] == {"ok": True, "serverId": 1}
    c.send('sub "4"')
    assert c.wait("ack")["res"] == {"ok": True, "serverId": 4}
    stack.driver.emit(1, "server-stats", {"serverId": 1, "stats": {"n": 1}})
    e = c.wait("event", name="server-stats")
    assert e["data"] == {"serverId": 1, "stats": {"n": 1}}
    c.send("unsub 1")
    assert c.wait("ack")["res"] == {"ok": True, "serverId": 1}
    stack.driver.emit(1, "server-stats", {"serverId": 1, "stats": {"n": 2}})
    stack.driver.emit(4, "server-stats", {"serverId": 4, "stats": {"n": 3}})
    e = c.wait("event", name="server-stats")
    # the queue keeps order: had the unsubscribed event come, it would be here first
    assert e["data"] == {"serverId": 4, "stats": {"n": 3}}


def test_not_owned_server_is_refused_and_nothing_arrives(stack, nodes):
    c = nodes("client.js", stack.url, token(), "websocket")
    c.wait("connect")
    c.send("sub 2")                                   # user 6's server
    res = c.wait("ack")["res"]
    assert res["ok"] is False and res["serverId"] == 2 and res["error"]
    err = c.wait("event", name="subscribe-error")
    assert err["data"]["serverId"] == 2 and err["data"]["error"] == res["error"]
    for bad in ('"abc"', "-1", "0", "1.5", "null", '"12x"'):
        c.send(f"sub {bad}")
        assert c.wait("ack")["res"]["ok"] is False, bad
    c.send("sub 3")
    assert c.wait("ack")["res"]["ok"] is True
    stack.driver.emit(2, "server-stats", {"serverId": 2, "stats": {}})
    stack.driver.emit(3, "server-stats", {"serverId": 3, "stats": {}})
    e = c.wait("event", name="server-stats")
    assert e["data"]["serverId"] == 3


def test_unknown_event_gets_an_error_ack(stack, nodes):
    c = nodes("client.js", stack.url, token(), "websocket")
    c.wait("connect")
    c.send('emit get-root-password {"serverId":1}')
    assert c.wait("ack")["res"] == {"ok": False, "error": "unknown event"}


def test_admin_may_subscribe_to_any_server(stack, nodes):
    c = nodes("client.js", stack.url, token(ADMIN, "admin"), "default")
    c.wait("connect")
    c.send("sub 777")
    assert c.wait("ack")["res"] == {"ok": True, "serverId": 777}
    stack.driver.emit(777, "server-alerts", {"serverId": 777, "alerts": []})
    assert c.wait("event", name="server-alerts")["data"]["serverId"] == 777


@pytest.mark.parametrize("case", ["wrong-key", "expired", "alg-none", "missing", "garbage",
                                  "no-sub"])
def test_bad_tokens_get_connect_error(stack, nodes, case):
    claims = authmatrix.claims(USER)
    tok = {
        "wrong-key": lambda: authmatrix.token(claims, secrets.token_hex(32)),
        "expired": lambda: token(exp=-120, iat=-1000),
        "alg-none": lambda: authmatrix.unsigned_token(claims),
        "missing": lambda: "-",
        "garbage": lambda: "not.a.jwt",
        "no-sub": lambda: token(sub=None),
    }[case]()
    before = stack.driver.stats()["auth_failed"]
    c = nodes("client.js", stack.url, tok, "default")
    e = c.wait("connect_error")
    assert isinstance(e["message"], str) and e["message"]
    if case == "missing":
        assert "token" in e["message"]
    assert not [x for x in c.events(0.5) if x["ev"] == "connect"]
    assert stack.driver.stats()["auth_failed"] == before + 1


def test_token_expiry_disconnects(stack, nodes):
    c = nodes("client.js", stack.url, token(exp=3), "websocket")
    c.wait("connect")
    t0 = time.monotonic()
    assert c.wait("disconnect", timeout=10)["reason"] == "io server disconnect"
    assert time.monotonic() - t0 < 6


def test_a_polling_client_disconnected_by_the_server_is_told_to_close(stack):
    """The server ends a polling session ("41", here at token expiry): as with the
    reference server, the session stays known until the client has its close. The poll
    after the "41" gets the close packet and the client's own close ("1") an "ok" — not a
    400 for an unknown sid, which a browser reports as an error (the panel's logout test
    saw it)."""
    sid = handshake(stack)
    assert post(stack, sid, "40" + json.dumps({"token": token(exp=2)})).text == "ok"
    assert poll(stack, sid).text.startswith('40{"sid":')
    packets = []
    deadline = time.monotonic() + 10
    while "41" not in packets and time.monotonic() < deadline:
        packets += poll(stack, sid).text.split("\x1e")
    assert "41" in packets, packets
    open_now = stack.driver.stats()["sessions"]
    r = post(stack, sid, "1")
    assert (r.status_code, r.text) == (200, "ok")
    assert stack.driver.stats()["sessions"] == open_now - 1

    sid = handshake(stack)
    assert post(stack, sid, "40" + json.dumps({"token": token(exp=2)})).text == "ok"
    assert poll(stack, sid).text.startswith('40{"sid":')
    packets = []
    while "41" not in packets and time.monotonic() < deadline + 10:
        packets += poll(stack, sid).text.split("\x1e")
    assert "41" in packets, packets
    open_now = stack.driver.stats()["sessions"]
    r = poll(stack, sid)
    assert (r.status_code, r.text) == (200, "1")
    assert stack.driver.stats()["sessions"] == open_now - 1


def test_requests_that_cross_a_polling_close_are_answered_as_closed(stack):
    """A polling client's poll and POST travel on connections of their own, so one sent
    before the session closed can arrive after it (the panel's logout: its last poll came
    in after its own close packet, and the browser reported the 400). For a few seconds
    after a close by the protocol, a late poll gets the close packet and a late POST "ok"
    (dropped); from another address, after that time, and for a session closed for a
    fault, the sid is unknown as before."""
    unknown = (400, {"code": 1, "message": "Session ID unknown"})
    owner = from_address("127.0.0.2")
    sid = json.loads(owner.get(stack.eio(), timeout=10).text[1:])["sid"]
    r = owner.post(stack.eio("&sid=" + sid), data="40" + json.dumps({"token": token()}),
                   timeout=10)
    assert r.text == "ok"
    assert owner.get(stack.eio("&sid=" + sid), timeout=10).text.startswith('40{"sid":')
    # the client's own disconnect and close in one POST
    open_now = stack.driver.stats()["sessions"]
    r = owner.post(stack.eio("&sid=" + sid), data="41\x1e1", timeout=10)
    assert (r.status_code, r.text) == (200, "ok")
    closed = time.monotonic()
    assert stack.driver.stats()["sessions"] == open_now - 1
    r = owner.get(stack.eio("&sid=" + sid), timeout=10)
    assert (r.status_code, r.text) == (200, "1")
    r = owner.post(stack.eio("&sid=" + sid), data='42["subscribe-server",1]', timeout=10)
    assert (r.status_code, r.text) == (200, "ok")
    assert stack.driver.stats()["sessions"] == open_now - 1, "a late POST opened nothing"
    # not for another address, and the sid cannot be used for a websocket either
    thief = from_address(OTHER_HOST)
    assert eio_error(thief.get(stack.eio("&sid=" + sid), timeout=10)) == unknown
    assert eio_error(thief.post(stack.eio("&sid=" + sid), data="1", timeout=10)) == unknown
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(stack.ws_url("&sid=" + sid), timeout=10)
    # a session closed for a fault is unknown at once
    bad = handshake(stack)
    assert eio_error(post(stack, bad, b"40{\"token\":\"\xc0\xaf\"}"))[0] == 400
    assert eio_error(poll(stack, bad)) == unknown
    # the close is remembered for 10 s, then forgotten
    time.sleep(max(0.0, closed + 10.5 - time.monotonic()))
    assert eio_error(owner.get(stack.eio("&sid=" + sid), timeout=10)) == unknown


# ----------------------------------------------------------- python clients --

@pytest.mark.parametrize("transports", [None, ["websocket"], ["polling"]],
                         ids=["polling+upgrade", "websocket", "polling"])
def test_python_client(stack, pyclients, transports):
    sio = pyclients()
    col = Collector(sio, "server-stats", "subscribe-error")
    sio.connect(stack.url, auth={"token": token()}, transports=transports, wait_timeout=10)
    assert sio.call("subscribe-server", 1, timeout=10) == {"ok": True, "serverId": 1}
    refused = sio.call("subscribe-server", 2, timeout=10)
    assert refused["ok"] is False
    col.wait("subscribe-error", lambda d: d["serverId"] == 2)
    stack.driver.emit(1, "server-stats", {"serverId": 1, "stats": {"py": True}})
    col.wait("server-stats", lambda d: d == {"serverId": 1, "stats": {"py": True}})
    expected = "polling" if transports == ["polling"] else "websocket"
    deadline = time.monotonic() + 5
    while sio.transport() != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sio.transport() == expected


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]])
def test_ping_pong_keeps_session_across_intervals(stack, pyclients, transports):
    sio = pyclients()
    col = Collector(sio, "server-stats")
    drops = []
    sio.on("disconnect", lambda *a: drops.append(a))
    sio.connect(stack.url, auth={"token": token()}, transports=transports, wait_timeout=10)
    first_sid = sio.get_sid()
    time.sleep(2.5 * PING_MS / 1000 + 1)            # > 2 ping intervals
    assert sio.connected and not drops and sio.get_sid() == first_sid
    assert sio.call("subscribe-server", 1, timeout=10)["ok"] is True
    stack.driver.emit(1, "server-stats", {"serverId": 1, "stats": {"alive": 1}})
    col.wait("server-stats", lambda d: d["stats"] == {"alive": 1})


def test_many_sessions_each_expire_at_their_own_time(stack, pyclients):
    """The sessions' timers (one heap for all, monitor-agent/agent_sio.c): 24 clients whose
    tokens expire 2 to 5 s from now in shuffled order, their pings going on meanwhile, are
    each disconnected at their own token's expiry, not before it, and none is left."""
    import random
    exps = [2 + i % 4 for i in range(24)]
    random.shuffle(exps)
    gone, until = {}, {}
    for i, exp in enumerate(exps):
        sio = pyclients()
        sio.on("disconnect", lambda *a, i=i: gone.setdefault(i, time.time()))
        until[i] = int(time.time()) + exp       # the token's exp (whole seconds)
        sio.connect(stack.url, auth={"token": token(exp=exp)}, transports=["websocket"],
                    wait_timeout=10)
    deadline = time.monotonic() + 20
    while len(gone) < len(exps) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(gone) == list(range(len(exps)))
    for i in range(len(exps)):
        # not before the token's expiry (its second may have turned meanwhile), soon after
        assert until[i] - 1.0 <= gone[i] <= until[i] + 3.0, (i, gone[i] - until[i])


def test_python_client_connect_error(stack, pyclients):
    sio = pyclients()
    errors = []
    sio.on("connect_error", lambda data: errors.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        sio.connect(stack.url, auth={"token": token(exp=-60, iat=-1000)}, wait_timeout=5)
    assert errors and errors[0]["message"]


# ----------------------------------------------------- rooms and slow readers --

def test_rooms_open_and_close_with_subscribers(stack, pyclients):
    sio = pyclients()
    sio.connect(stack.url, auth={"token": token(ADMIN, "admin")}, transports=["websocket"],
                wait_timeout=10)
    room = 4000 + secrets.randbelow(1000)
    assert sio.call("subscribe-server", room, timeout=10)["ok"]
    stack.driver.lines.wait(lambda l: l == f"room {room}", 5, "room_opened")
    assert room in stack.driver.stats()["room_ids"]
    sio.disconnect()
    deadline = time.monotonic() + 5
    while room in stack.driver.stats()["room_ids"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert room not in stack.driver.stats()["room_ids"]


def test_slow_consumer_is_dropped_memory_bounded_others_served(stack, pyclients):
    d = stack.driver
    fast = pyclients()
    count = {"n": 0}
    done = threading.Event()
    n_events, size = 800, 16 * 1024

    def on_stats(data):
        count["n"] += 1
        if count["n"] == n_events:
            done.set()
    fast.on("server-stats", on_stats)
    fast.connect(stack.url, auth={"token": token()}, transports=["websocket"], wait_timeout=10)
    assert fast.call("subscribe-server", 4, timeout=10)["ok"]

    # never reads after subscribing, with a small receive buffer
    slow = raw_ws(stack, rcvbuf=4096)
    assert ws_connect(slow, token()).startswith("40{")
    slow.send('421["subscribe-server",4]')
    time.sleep(0.5)
    before = d.stats()
    rss0 = d.rss_kb()
    peak = rss0
    blob = "x" * size
    for i in range(0, n_events, 10):
        for j in range(i, i + 10):
            d.emit(4, "server-stats", {"serverId": 4, "stats": {"seq": j, "pad": blob}})
        d.sync()
        peak = max(peak, d.rss_kb())
        time.sleep(0.02)
        # the fast client keeps up: on a busy machine a Python client may lag, and a lag
        # past the per-client queue bound (512 KiB, 32 of these) would drop it as slow too;
        # the slow one never reads, so it overflows whatever the pace
        caught_up = time.monotonic() + 10
        while count["n"] < i + 10 - 16 and time.monotonic() < caught_up:
            time.sleep(0.01)
    assert done.wait(60), f"fast client got {count['n']} of {n_events}"
    after = d.stats()
    assert after["dropped_slow"] >= before["dropped_slow"] + 1
    assert fast.connected
    # 13 MB went through; the slow client's queue is bounded at 512 KiB
    assert peak - rss0 < 12 * 1024, (rss0, peak)
    slow.settimeout(10)
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError,
                        socket.timeout, websocket.WebSocketTimeoutException)):
        while True:
            if slow.recv() in ("", None):
                raise websocket.WebSocketConnectionClosedException()


def test_stats_count_what_happened(stack):
    s = stack.driver.stats()
    assert s["published"] > 0 and s["delivered"] > 0 and s["auth_failed"] > 0
    assert s["sessions"] >= 0 and s["websocket"] <= s["sessions"]


def test_post_with_a_body_to_an_unknown_sid_is_still_a_clean_400(stack):
    # the answer waits for the body: a proxy still sending it would otherwise see a
    # broken pipe and turn the 400 into its own 502
    r = post(stack, "nosuchsession00000", "4" + "x" * 8_000_000)
    assert r.status_code == 400 and r.json()["code"] == 1


def test_session_and_subscription_limits(pyclients):
    """Straight to a driver of its own (no Apache): its limits are what is tested.
    max_clients counts connected clients only: anonymous handshakes have limits of their
    own (before issue 9 two of them took both places here)."""
    d = siolib.Driver(KEY, OWN, max_clients=2, max_subscriptions=2)
    try:
        base = f"http://127.0.0.1:{d.port}/socket.io/?EIO=4&transport=polling"
        anonymous = [requests.get(base, timeout=10) for _ in range(5)]
        assert [r.status_code for r in anonymous] == [200] * 5
        first, second = pyclients(), pyclients()
        for c in (first, second):
            c.connect(f"http://127.0.0.1:{d.port}", auth={"token": token()},
                      transports=["websocket"], wait_timeout=10)
        third = requests.get(base, timeout=10)
        assert third.status_code == 503
        assert third.json() == {"code": 4, "message": "Too many clients"}
        first.disconnect()
        deadline = time.monotonic() + 5
        while d.stats()["sessions"] - d.stats()["pending"] > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        sio = pyclients()
        sio.connect(f"http://127.0.0.1:{d.port}", auth={"token": token()},
                    transports=["websocket"], wait_timeout=10)
        assert sio.call("subscribe-server", 1, timeout=10)["ok"]
        assert sio.call("subscribe-server", 3, timeout=10)["ok"]
        third_sub = sio.call("subscribe-server", 4, timeout=10)
        assert third_sub == {"ok": False, "serverId": 4, "error": "too many subscriptions"}
        sio.disconnect()
    finally:
        assert d.stop() == 0


def test_sigterm_stops_the_server_and_closes_clients(pyclients):
    d = siolib.Driver(KEY, OWN)
    sio = pyclients()
    gone = threading.Event()
    sio.on("disconnect", lambda *a: gone.set())
    sio.connect(f"http://127.0.0.1:{d.port}", auth={"token": token()},
                transports=["websocket"], wait_timeout=10)
    d.proc.terminate()
    assert d.proc.wait(10) == 0
    assert "stopped" in d.lines.drain(1)
    assert gone.wait(10)


# ------------------------------------------------- abuse limits (issue 9) --
#
# Loopback addresses other than 127.0.0.1 stand for other machines: a client socket bound
# to 127.0.0.3 is another client address to the driver, and (through Apache, which adds
# X-Forwarded-For) to the driver behind Apache too.

ATTACKER, OTHER_HOST = "127.0.0.3", "127.0.0.4"


def from_address(source):
    """A requests session whose connections come from another loopback address."""
    s = requests.Session()
    s.mount("http://", _SourceAdapter(source))
    return s


def eio_error(r):
    return r.status_code, r.json()


def flood(host, port, n, source, path="/socket.io/?EIO=4&transport=polling",
          headers=None):
    """n handshakes on one keep-alive connection from source, as fast as they go:
    {status: count}, the sids it got and the last refusal's body."""
    import http.client
    codes, sids, refusal = {}, [], None
    conn = http.client.HTTPConnection(host, port, timeout=20, source_address=(source, 0))
    for i in range(n):
        h = dict(headers or {})
        if "X-Forwarded-For" in h:               # a new made-up client every time
            h["X-Forwarded-For"] = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
        conn.request("GET", path, headers=h)
        r = conn.getresponse()
        body = r.read().decode()
        codes[r.status] = codes.get(r.status, 0) + 1
        if r.status == 200:
            sids.append(json.loads(body[1:])["sid"])
        else:
            refusal = json.loads(body)
        if r.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=20,
                                              source_address=(source, 0))
    conn.close()
    return codes, sids, refusal


def connect_timed(url, socketio_path="socket.io"):
    """A python-socketio client with the default transports: seconds until connected."""
    c = socketio.Client(reconnection=False)
    t0 = time.monotonic()
    c.connect(url, auth={"token": token()}, socketio_path=socketio_path, wait_timeout=10)
    took = time.monotonic() - t0
    return c, took


FLOOD_LIMITS = dict(connect_timeout=3000, max_pending=200, max_pending_per_address=20,
                    max_per_address=40, max_clients=50)


def check_flood(driver, host, port, url, spoof):
    """3000 anonymous handshakes from ATTACKER while a real client connects from
    127.0.0.1: the client is in at once; the flood gets at most its per-address share,
    then 429 with the Engine.IO error body, and what it got is closed after
    connect_timeout."""
    result = {}
    t = threading.Thread(target=lambda: result.update(zip(
        ("codes", "sids", "refusal"),
        flood(host, port, 3000, ATTACKER,
              headers={"X-Forwarded-For": "x"} if spoof else None))))
    t0 = time.monotonic()
    t.start()
    time.sleep(0.3)                                  # the flood is under way
    client, took = connect_timed(url)
    try:
        assert took < 2.5, took                      # at once, not after connect_timeout
        assert client.call("subscribe-server", 1, timeout=10)["ok"] is True
        t.join(120)
        elapsed = time.monotonic() - t0
        codes = result["codes"]
        # 20 at a time from that address, each gone after 3 s (a new share every 3 s)
        share = 20 * (int(elapsed / 3) + 2)
        assert codes.get(200, 0) <= share, (codes, elapsed)
        assert codes.get(429, 0) >= 3000 - share, codes
        assert set(codes) <= {200, 429}, codes
        assert result["refusal"] == {"code": 4, "message": "Too many sessions from this address"}
        # the flood's sessions are closed after connect_timeout; the client stays
        deadline = time.monotonic() + 8
        while driver.stats()["pending"] > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert driver.stats()["pending"] == 0
        last = result["sids"][-1]
        r = from_address(ATTACKER).get(
            f"http://{host}:{port}/socket.io/?EIO=4&transport=polling&sid={last}", timeout=10)
        assert eio_error(r) == (400, {"code": 1, "message": "Session ID unknown"})
        assert client.connected
        assert client.call("subscribe-server", 3, timeout=10)["ok"] is True
    finally:
        client.disconnect()


def test_anonymous_handshake_flood_straight():
    """Straight to the driver: the attacker's X-Forwarded-For is ignored (127.0.0.3 is no
    trusted proxy), each made-up address notwithstanding."""
    d = siolib.Driver(KEY, OWN, **FLOOD_LIMITS)
    try:
        check_flood(d, "127.0.0.1", d.port, f"http://127.0.0.1:{d.port}", spoof=True)
        assert d.alive()
    finally:
        assert d.stop() == 0


def test_anonymous_handshake_flood_through_apache():
    """Through Apache every connection comes from 127.0.0.1: the client address is the
    right-most X-Forwarded-For entry (Apache's), never what the client wrote to the left
    of it, and the real client from another address is not counted with the flood."""
    d = siolib.Driver(KEY, OWN, **FLOOD_LIMITS)
    apache = harness.Apache(
        None, load_dbd=False,
        extra_conf=[f"LoadModule dbd_module {harness.APACHE_MODULES}/mod_dbd.so",
                    *siolib.proxy_conf(d.port)])
    apache.start()
    try:
        check_flood(d, "127.0.0.1", apache.port, apache.url(""), spoof=True)
        assert not apache.bad_log_lines()
    finally:
        apache.stop()
        assert d.stop() == 0


def test_per_address_limit_counts_connected_clients_too(pyclients):
    d = siolib.Driver(KEY, OWN, max_per_address=3)
    try:
        base = f"http://127.0.0.1:{d.port}/socket.io/?EIO=4&transport=polling"
        clients = [pyclients() for _ in range(3)]
        for c in clients:
            c.connect(f"http://127.0.0.1:{d.port}", auth={"token": token()},
                      transports=["websocket"], wait_timeout=10)
        assert eio_error(requests.get(base, timeout=10)) == (
            429, {"code": 4, "message": "Too many sessions from this address"})
        # a websocket without a session is refused before the 101 as well
        with pytest.raises(websocket.WebSocketBadStatusException) as e:
            websocket.create_connection(
                f"ws://127.0.0.1:{d.port}/socket.io/?EIO=4&transport=websocket", timeout=10)
        assert e.value.status_code == 429
        # another address is not affected
        assert from_address(OTHER_HOST).get(base, timeout=10).status_code == 200
        clients[0].disconnect()
        deadline = time.monotonic() + 5
        while requests.get(base, timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the freed place was not given back"
            time.sleep(0.1)
    finally:
        assert d.stop() == 0


def test_oldest_pending_session_makes_room_for_a_new_one():
    d = siolib.Driver(KEY, OWN, max_pending=3)
    try:
        base = f"http://127.0.0.1:{d.port}/socket.io/?EIO=4&transport=polling"
        sids = [json.loads(from_address(f"127.0.1.{i}").get(base, timeout=10).text[1:])["sid"]
                for i in range(1, 5)]
        assert d.stats()["pending"] == 3
        alive = [from_address(f"127.0.1.{i}").post(base + "&sid=" + sid, data="6", timeout=10)
                 for i, sid in enumerate(sids, 1)]
        assert [r.status_code for r in alive] == [400, 200, 200, 200]
        assert alive[0].json()["code"] == 1
    finally:
        assert d.stop() == 0


def test_session_without_a_good_connect_is_closed_after_connect_timeout(pyclients):
    d = siolib.Driver(KEY, OWN, connect_timeout=1000)
    try:
        base = f"http://127.0.0.1:{d.port}/socket.io/?EIO=4&transport=polling"
        idle = json.loads(requests.get(base, timeout=10).text[1:])["sid"]
        refused = json.loads(requests.get(base, timeout=10).text[1:])["sid"]
        r = requests.post(base + "&sid=" + refused,
                          data="40" + json.dumps({"token": token(exp=-60, iat=-1000)}),
                          timeout=10)
        assert r.text == "ok"
        good = pyclients()
        good.connect(f"http://127.0.0.1:{d.port}", auth={"token": token()},
                     transports=["polling"], wait_timeout=10)
        time.sleep(1.6)
        for sid in (idle, refused):
            r = requests.post(base + "&sid=" + sid, data="6", timeout=10)
            assert eio_error(r) == (400, {"code": 1, "message": "Session ID unknown"})
        assert good.connected and good.call("subscribe-server", 1, timeout=10)["ok"]
        assert d.stats()["pending"] == 0
    finally:
        assert d.stop() == 0


def test_a_session_belongs_to_the_address_it_was_opened_from(stack):
    """Through Apache (X-Forwarded-For): the sid used from another address is as unknown
    as a made-up one — polling GET, POST and the websocket upgrade — and the session goes
    on for its own address."""
    owner, thief = from_address("127.0.0.2"), from_address(OTHER_HOST)
    r = owner.get(stack.eio(), timeout=10)
    sid = json.loads(r.text[1:])["sid"]
    unknown = (400, {"code": 1, "message": "Session ID unknown"})
    assert eio_error(thief.get(stack.eio("&sid=" + sid), timeout=10)) == unknown
    assert eio_error(thief.post(stack.eio("&sid=" + sid), data="40", timeout=10)) == unknown
    sock = socket.create_connection(("127.0.0.1", stack.apache.port), timeout=10,
                                    source_address=(OTHER_HOST, 0))
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(stack.ws_url("&sid=" + sid), socket=sock, timeout=10)
    assert e.value.status_code in (400, 502), e.value.status_code
    # the session is still the owner's: connect, and upgrade from its own address
    r = owner.post(stack.eio("&sid=" + sid), data="40" + json.dumps({"token": token()}),
                   timeout=10)
    assert r.text == "ok"
    assert owner.get(stack.eio("&sid=" + sid), timeout=10).text.startswith('40{"sid":')
    sock = socket.create_connection(("127.0.0.1", stack.apache.port), timeout=10,
                                    source_address=("127.0.0.2", 0))
    ws = websocket.create_connection(stack.ws_url("&sid=" + sid), socket=sock, timeout=10)
    ws.send("2probe")
    assert ws.recv() == "3probe"
    ws.send("5")
    ws.send('421["subscribe-server",1]')
    m = ws.recv()
    while m == "2":
        m = ws.recv()
    assert m == '431[{"ok":true,"serverId":1}]'
    ws.close()


def test_a_poll_sent_after_the_upgrade_probe_is_ended_at_once(stack):
    """The client pauses polling once the probe is answered and waits for its poll to end
    before it sends "5": a poll that arrives after the probe (the client had none held at
    that moment) must end at once with a noop, as the reference server's upgrade check
    does, not at the next ping. Held, it kept a browser's emits (its subscriptions) from
    being sent for a whole ping interval (issue 12's panel saw it)."""
    sid = handshake(stack)
    assert post(stack, sid, "40" + json.dumps({"token": token()})).text == "ok"
    assert poll(stack, sid).text.startswith('40{"sid":')          # nothing is held now
    ws = websocket.create_connection(stack.ws_url("&sid=" + sid), timeout=10)
    ws.send("2probe")
    assert ws.recv() == "3probe"
    started = time.monotonic()
    r = poll(stack, sid, timeout=PING_MS / 1000 * 3)
    took = time.monotonic() - started
    assert r.status_code == 200 and r.text == "6", r.text
    assert took < PING_MS / 1000 / 2, f"the poll was held {took:.2f} s"
    ws.send("5")
    ws.send('421["subscribe-server",1]')
    m = ws.recv()
    while m == "2":
        m = ws.recv()
    assert m == '431[{"ok":true,"serverId":1}]'
    ws.close()


def test_a_session_belongs_to_its_address_straight():
    d = siolib.Driver(KEY, OWN)
    try:
        base = f"http://127.0.0.1:{d.port}/socket.io/?EIO=4&transport=polling"
        sid = json.loads(from_address("127.0.0.2").get(base, timeout=10).text[1:])["sid"]
        r = from_address(OTHER_HOST).post(base + "&sid=" + sid, data="6", timeout=10)
        assert eio_error(r) == (400, {"code": 1, "message": "Session ID unknown"})
        # the trusted proxy is 127.0.0.1 only: X-Forwarded-For from elsewhere is no key
        r = from_address(OTHER_HOST).post(base + "&sid=" + sid, data="6", timeout=10,
                                          headers={"X-Forwarded-For": "127.0.0.2"})
        assert r.status_code == 400
        assert from_address("127.0.0.2").post(base + "&sid=" + sid, data="6",
                                              timeout=10).text == "ok"
    finally:
        assert d.stop() == 0


def ws_close_code(ws):
    """Reads until the server's close frame; its status code."""
    ws.settimeout(10)
    while True:
        op, frame = ws.recv_data_frame(control_frame=True)
        if op == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else None


@pytest.mark.parametrize("via", ["apache", "straight"])
def test_invalid_utf8_in_a_text_frame_is_closed_with_1007(stack, via):
    url = (stack.ws_url() if via == "apache"
           else f"ws://127.0.0.1:{stack.driver.port}/socket.io/?EIO=4&transport=websocket")
    ABNF = websocket.ABNF
    # a valid character split across two fragments is one message, accepted
    ws = websocket.create_connection(url, timeout=10)
    assert ws.recv().startswith("0{")
    ws.send_frame(ABNF(fin=0, opcode=ABNF.OPCODE_TEXT, data="40/\xc3".encode("latin-1")))
    ws.send_frame(ABNF(fin=1, opcode=ABNF.OPCODE_CONT, data="\xa9,{}".encode("latin-1")))
    m = ws.recv()
    while m == "2":
        m = ws.recv()
    assert m == '44/\u00e9,{"message":"Invalid namespace"}'
    # an invalid one in the second fragment, and in a whole frame
    ws.send_frame(ABNF(fin=0, opcode=ABNF.OPCODE_TEXT, data=b"40/\xc3"))
    ws.send_frame(ABNF(fin=1, opcode=ABNF.OPCODE_CONT, data=b"\x28,{}"))
    assert ws_close_code(ws) == 1007
    ws = websocket.create_connection(url, timeout=10)
    assert ws.recv().startswith("0{")
    ws.send_frame(ABNF(fin=1, opcode=ABNF.OPCODE_TEXT, data=b'42["x","\xff\xfe"]'))
    assert ws_close_code(ws) == 1007
    assert stack.driver.alive()


def test_invalid_utf8_in_a_polling_post_is_400_and_closes(stack):
    sid = handshake(stack)
    r = post(stack, sid, b'40{"token":"\xc0\xaf"}')
    assert eio_error(r) == (400, {"code": 3, "message": "Bad request"})
    assert eio_error(poll(stack, sid)) == (400, {"code": 1, "message": "Session ID unknown"})
