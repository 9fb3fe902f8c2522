"""OspabLivePush: the live-push proxy cannot starve /api/ of Apache workers (security
fix H1), and Engine.IO session ids stay out of the access log (L3).

Apache 2.4 ties a worker thread to every proxied websocket and every held long-poll for
as long as it lasts. Here /socket.io/ is proxied to a backend that never answers a poll
and holds every websocket it accepts (the worst a live-push backend can do): five times
MaxRequestWorkers idle sockets, websocket and polling, from many client addresses, must
leave /api/health and login answering, because the budget turns away what does not fit.
"""

import base64
import hashlib
import itertools
import json
import re
import socket
import threading
import time

import pytest
import requests

import harness
from conftest import Api, _started, create_user

WORKERS = 64                 # the harness's event MPM: 4 children x 16 threads
BUDGET = 24                  # OspabLivePush workers=
PER_ADDRESS = 4              # OspabLivePush per-address=
HELD = 5 * WORKERS           # idle sockets opened at once
ANSWER_WITHIN = 10           # seconds: "still answers" (a starved Apache never does)

_sources = itertools.count(1)


def fresh_source():
    """A loopback address no other test of this module used."""
    n = next(_sources)
    return f"127.91.{n // 250}.{n % 250 + 1}"


class Tarpit:
    """A backend that reads requests and never answers a poll; a websocket upgrade gets
    its 101 and is then held open without a byte more. Counts what it holds."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.held = 0
        self.most = 0
        self.lock = threading.Lock()
        self.conns = []
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            data = recv_head(c)
            if b"\r\n\r\n" not in data:
                return
            head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
            key = re.search(r"(?im)^sec-websocket-key:\s*(\S+)", head)
            if re.search(r"(?im)^upgrade:\s*websocket", head) and key:
                accept = base64.b64encode(hashlib.sha1(
                    (key.group(1) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
                c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            with self.lock:
                self.held += 1
                self.most = max(self.most, self.held)
            try:
                while c.recv(4096):
                    pass
            finally:
                with self.lock:
                    self.held -= 1
        except OSError:
            pass

    def drop_all(self):
        """Closes every connection it holds, as a backend that gives up would."""
        conns, self.conns = self.conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass

    def close(self):
        self.stopping = True
        self.sock.close()
        self.drop_all()


def proxy_conf(port, live_push):
    mods = harness.APACHE_MODULES
    lines = [f"LoadModule proxy_module {mods}/mod_proxy.so",
             f"LoadModule proxy_http_module {mods}/mod_proxy_http.so",
             f'ProxyPass "/socket.io/" "http://127.0.0.1:{port}/socket.io/" upgrade=websocket',
             "ProxyTimeout 120"]
    if live_push:
        lines += ['<Location "/socket.io/">', f"  {live_push}", "</Location>"]
    return lines


@pytest.fixture
def tarpit():
    t = Tarpit()
    yield t
    t.close()


def open_idle(apache, source, websocket):
    """One live-push request that the backend will hold, from `source`; returns the
    socket (still open) and the first bytes Apache answered with, if any, within 0.3 s."""
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(30)
    s.connect(("127.0.0.1", apache.port))
    if websocket:
        key = base64.b64encode(b"0123456789abcdef").decode()
        req = ("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
               "Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    else:
        req = ("GET /socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\n"
               "Host: 127.0.0.1\r\n\r\n")
    s.sendall(req.encode())
    return s


def recv_head(s):
    """What s brings until the end of an HTTP head (or until the peer closes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def read_answer(s, wait):
    """(status, headers, body) of an answer that came within `wait` seconds, else None."""
    s.settimeout(wait)
    try:
        data = recv_head(s)
    except socket.timeout:
        return None
    if not data:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
    n = int(headers.get("content-length", "0"))
    s.settimeout(5)
    while len(body) < n:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def timed(fn):
    t = time.monotonic()
    r = fn()
    return r, time.monotonic() - t


def api_answers(apache, user):
    """/api/health and a login, each on a new connection; both must answer."""
    h, t_health = timed(lambda: requests.get(apache.url("/api/health"), timeout=ANSWER_WITHIN,
                                             headers={"Connection": "close"}))
    assert h.status_code in (200, 503) and h.headers["Content-Type"].startswith(
        "application/json"), h.text
    lg, t_login = timed(lambda: requests.post(
        apache.url("/api/auth/login"), timeout=ANSWER_WITHIN,
        json={"email": user["email"], "password": user["password"]},
        headers={"Connection": "close"}))
    assert lg.status_code == 200, lg.text
    return t_health, t_login


def test_idle_live_sockets_cannot_starve_the_api(start_apache, tarpit, allow_log):
    allow_log(r"AH01102", r"AH00898")    # polls whose backend hung up at the end
    a = start_apache(extra_conf=proxy_conf(
        tarpit.port, f"OspabLivePush workers={BUDGET} per-address={PER_ADDRESS}"))
    user = create_user(Api(a), password="a-password-1234")
    socks, answers = [], {}
    try:
        # five times MaxRequestWorkers, half websockets and half polls, PER_ADDRESS from
        # each of HELD / PER_ADDRESS addresses: only the global budget stops them
        for i in range(HELD // PER_ADDRESS):
            src = fresh_source()
            for k in range(PER_ADDRESS):
                socks.append(open_idle(a, src, websocket=(i + k) % 2 == 0))
        time.sleep(1)
        for s in socks:
            r = read_answer(s, 0.01)
            if r:
                answers[s] = r
        # the API answers while they are all open
        t_health, t_login = api_answers(a, user)
        for s in socks:
            if s not in answers:
                r = read_answer(s, 0.01)
                if r:
                    answers[s] = r
        refused = [r for r in answers.values() if r[0] != 101]
        upgraded = [r for r in answers.values() if r[0] == 101]
        assert all(r[0] == 503 for r in refused), {r[0] for r in refused}
        for status, headers, body in refused[:20]:
            assert headers["content-type"].startswith("application/json"), headers
            assert json.loads(body) == {"error": "live updates are busy: try again shortly"}
            assert headers["retry-after"] == "5", headers
        # what the backend holds never exceeded the budget, and the budget was used
        assert tarpit.most <= BUDGET, tarpit.most
        assert tarpit.held >= BUDGET - 2, tarpit.held
        assert len(refused) >= HELD - BUDGET - 2, (len(refused), len(upgraded))
        print(f"\n{HELD} idle sockets: {len(refused)} refused with 503, backend held "
              f"{tarpit.most}; /api/health in {t_health * 1000:.0f} ms, "
              f"login in {t_login * 1000:.0f} ms")
    finally:
        for s in socks:
            s.close()
        tarpit.drop_all()
    # the places come back when the requests end: the budget is whole again
    deadline = time.monotonic() + 20
    while tarpit.held and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tarpit.held == 0
    s = open_idle(a, fresh_source(), websocket=True)
    try:
        r = read_answer(s, 5)
        assert r and r[0] == 101, r
    finally:
        s.close()


def test_per_address_cap(start_apache, tarpit, allow_log):
    allow_log(r"AH01102", r"AH00898")
    a = start_apache(extra_conf=proxy_conf(
        tarpit.port, f"OspabLivePush workers={BUDGET} per-address={PER_ADDRESS}"))
    src = fresh_source()
    socks = [open_idle(a, src, websocket=True) for _ in range(PER_ADDRESS)]
    try:
        for s in socks:
            r = read_answer(s, 5)
            assert r and r[0] == 101, r
        extra = open_idle(a, src, websocket=False)
        socks.append(extra)
        status, headers, body = read_answer(extra, 5)
        assert status == 429 and headers["retry-after"] == "10", (status, headers)
        assert json.loads(body) == {"error": "too many live connections from your address"}
        # another address still gets in
        other = open_idle(a, fresh_source(), websocket=True)
        socks.append(other)
        r = read_answer(other, 5)
        assert r and r[0] == 101, r
    finally:
        for s in socks:
            s.close()


def test_without_a_budget_idle_sockets_starve_apache(start_apache, tarpit, allow_log):
    """What the budget prevents, shown once: with no OspabLivePush the same flood takes
    every worker and /api/health stops answering."""
    allow_log(r"AH00484", r"AH01102", r"AH00898")   # MaxRequestWorkers reached; hang-ups
    a = start_apache(extra_conf=proxy_conf(tarpit.port, None))
    socks = []
    try:
        for i in range(2 * WORKERS):
            socks.append(open_idle(a, "127.0.0.1", websocket=i % 2 == 0))
        deadline = time.monotonic() + 20
        while tarpit.held < WORKERS and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tarpit.held == WORKERS, tarpit.held
        with pytest.raises(requests.exceptions.Timeout):
            requests.get(a.url("/api/health"), timeout=3, headers={"Connection": "close"})
    finally:
        for s in socks:
            s.close()
        tarpit.drop_all()


def test_configtest_names_the_directive(start_apache):
    for bad in ("OspabLivePush workers=0", "OspabLivePush workers=x",
                "OspabLivePush per-address=-1", "OspabLivePush size=3"):
        a = harness.Apache(None, load_dbd=False, extra_conf=[
            '<Location "/socket.io/">', bad, "</Location>"])
        rc, out = a.configtest()
        assert rc != 0 and "OspabLivePush" in out, (bad, out)
    a = harness.Apache(None, load_dbd=False, extra_conf=["OspabLivePush on"])
    rc, out = a.configtest()
    assert rc != 0 and "OspabLivePush" in out and "not allowed here" in out, out


def test_session_ids_stay_out_of_the_access_log(start_apache, tarpit, allow_log):
    """The Engine.IO sid in a live-push request's query never reaches the access log,
    whatever the LogFormat shows of the request (%r, %U%q, %q); other requests' queries
    are logged as they are."""
    allow_log(r"AH01102", r"AH00898")
    a = start_apache(extra_conf=proxy_conf(tarpit.port, "OspabLivePush On") + [
        'LogFormat "%U%q|%q" q', 'CustomLog "query.log" q'])
    sid = "Zq8sEcReTsId" + "x" * 8
    socks = [open_idle(a, fresh_source(), websocket=False)]
    s = socket.socket()
    s.connect(("127.0.0.1", a.port))
    s.sendall((f"GET /socket.io/?EIO=4&transport=polling&sid={sid}&t=1 HTTP/1.1\r\n"
               "Host: 127.0.0.1\r\n\r\n").encode())
    socks.append(s)
    ws = socket.socket()
    ws.connect(("127.0.0.1", a.port))
    ws.sendall((f"GET /socket.io/?EIO=4&transport=websocket&sid={sid} HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    socks.append(ws)
    assert read_answer(ws, 5)[0] == 101
    requests.get(a.url("/api/health?sid=visible"), timeout=10)
    time.sleep(0.5)
    for c in socks:
        c.close()
    tarpit.drop_all()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        access = a.access_log.read_text()
        query = (a.rundir / "query.log").read_text() if (a.rundir / "query.log").exists() else ""
        if access.count("/socket.io/") >= 3 and query.count("/socket.io/") >= 3:
            break
        time.sleep(0.2)
    assert access.count("/socket.io/") >= 3, access
    for text in (access, query, a.error_log.read_text()):
        assert sid not in text and "Zq8sEcReT" not in text, text
    assert "/socket.io/?EIO=4&transport=polling&sid=-&t=1" in access, access
    assert "/socket.io/?EIO=4&transport=websocket&sid=-" in query, query
    assert "?EIO=4&transport=polling&sid=-&t=1" in query, query
    assert "/api/health?sid=visible" in access, access
