"""A webhook receiver on 127.0.0.1 (http.server in a thread) for the agent's webhook tests
and the demo: it verifies the X-Ospab-Signature as docs/agent.md tells a receiver to, and
records what it got. Plain Python, no pytest.

    r = Receiver(secret=SECRET, log_file=path).start()
    r.url                  # for the agent's [webhook] url
    r.delivered            # the requests answered 2xx
    r.stop()
"""

import hashlib
import hmac
import json
import select
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE = 300


def verify(secret, header, body, now=None):
    """What a receiver does (docs/agent.md): t and v1 from the header, HMAC-SHA256 of
    "<t>.<body>", compared in constant time, t within the tolerance."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    t = int(parts["t"])
    if abs((now or time.time()) - t) > TOLERANCE:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


class Receiver:
    """Records each POST it answered with 2xx (`delivered`) and every request seen
    (`seen`). `statuses` are answers for the next requests; `delay` holds each answer
    back, `frozen` every answer until it is cleared; a request whose client went away
    meanwhile is not delivered."""

    def __init__(self, secret=None, log_file=None):
        """secret and log_file: each delivery is also appended to log_file as a JSON line
        (event, id, whether its signature checks out against secret) — the demo's log."""
        self.secret = secret
        self.log_file = log_file
        self.lock = threading.Lock()
        self.seen = []
        self.delivered = []
        self.statuses = []
        self.always = None
        self.delay = 0.0
        self.frozen = False         # True: every answer held until it is False again
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                req = {"headers": dict(self.headers), "body": body, "at": time.monotonic()}
                with outer.lock:
                    outer.seen.append(req)
                    status = outer.always or (outer.statuses.pop(0) if outer.statuses else 200)
                if outer.delay or outer.frozen:
                    time.sleep(outer.delay)
                    while outer.frozen:
                        time.sleep(0.01)
                    r, _, _ = select.select([self.connection], [], [], 0)
                    if r and not self.connection.recv(1, 0x40):   # MSG_DONTWAIT: EOF = gone
                        req["gone"] = True
                        return
                answer = b'{"ok":true}' if status < 300 else b'{"error":"nope"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                with outer.lock:
                    req["done"] = time.monotonic()
                    if status < 300:
                        outer.delivered.append(req)
                if outer.log_file and status < 300:
                    outer.log(req)

        class Server(ThreadingHTTPServer):
            request_queue_size = 64     # the default 5 drops a batch's SYNs (1 s resend)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def log(self, req):
        try:
            doc = json.loads(req["body"])
        except ValueError:
            doc = {}
        sig = req["headers"].get("X-Ospab-Signature", "")
        line = {"event": doc.get("event"), "id": doc.get("id"), "data": doc.get("data"),
                "signature": "valid" if self.secret and sig and verify(self.secret, sig,
                                                                        req["body"])
                else "INVALID"}
        with open(self.log_file, "a") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/ospab"

    def held(self, age):
        """True while a request older than `age` seconds waits for its answer and no
        answer went out in the last `age` seconds: a kill now lands inside a request,
        not between an answer and the sender's record of it."""
        now = time.monotonic()
        with self.lock:
            waiting = [r for r in self.seen if "done" not in r and "gone" not in r]
            last = max((r["done"] for r in self.seen if "done" in r), default=0)
        return any(now - r["at"] > age for r in waiting) and now - last > age

    def ids(self, which="delivered"):
        with self.lock:
            return [json.loads(r["body"])["id"] for r in getattr(self, which)]


