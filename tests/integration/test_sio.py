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
    assert poll(stack, sid).status_code == 400


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
    """Straight to a driver of its own (no Apache): its limits are what is tested."""
    d = siolib.Driver(KEY, OWN, max_clients=2, max_subscriptions=2)
    try:
        base = f"http://127.0.0.1:{d.port}/socket.io/?EIO=4&transport=polling"
        first, second = requests.get(base, timeout=10), requests.get(base, timeout=10)
        assert first.status_code == second.status_code == 200
        third = requests.get(base, timeout=10)
        assert third.status_code == 503
        assert third.json() == {"code": 4, "message": "Too many clients"}
        sid = json.loads(first.text[1:])["sid"]
        requests.post(base + "&sid=" + sid, data="1", timeout=10)         # close one
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
