"""Start pvesim as a subprocess and talk to it (tests, scripts/demo, bench).

    from simctl import PveSim
    with PveSim(state_dir, nodes=("pve1", "pve2"), guests=10, time_scale=0.1) as sim:
        status, reason, headers, body = sim.request("GET", "/version")
        sim.fault(kind="latency", seconds=30, path_prefix="/nodes/pve1/")
        sim.guest(100, cpu=0.95, status="running")

TLS is always verified against the simulator's CA (``sim.ca``).  Standard
library only.
"""

import base64
import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.parse

import vncdes

HERE = os.path.dirname(os.path.abspath(__file__))
PVESIM = os.path.join(HERE, "pvesim.py")
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WebSocketRefused(Exception):
    """The server did not switch protocols: status, reason, headers (lower-case
    names) and body, or status None when it closed the connection without an answer."""

    def __init__(self, status, reason, headers=None, body=b""):
        super().__init__("%s %s" % (status, reason))
        self.status = status
        self.reason = reason
        self.headers = headers or {}
        self.body = body


class WebSocket:
    """A small RFC 6455 client over verified TLS (standard library only): masked
    frames out, ping answered, close frame or EOF seen as the end.  recv() returns
    the payload of the next data frame, or None once the server has gone
    (``closed_by`` then says "close frame" or "eof")."""

    def __init__(self, sock, rest=b"", protocol=None, headers=None):
        self.sock = sock
        self.buf = bytearray(rest)
        self.protocol = protocol
        self.headers = headers or {}
        self.closed_by = None
        self.close_code = None

    @classmethod
    def connect(cls, host, port, ctx, path, headers=None, protocols=("binary",), timeout=10):
        raw = socket.create_connection((host, port), timeout=timeout)
        sock = ctx.wrap_socket(raw, server_hostname=host)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port),
                 "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        if protocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(protocols))
        for name, value in (headers or {}).items():
            lines.append("%s: %s" % (name, value))
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (OSError, ssl.SSLError):
            pass
        if b"\r\n\r\n" not in data:
            sock.close()
            raise WebSocketRefused(None, "connection closed without an answer")
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *hlines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        status, reason = int(parts[1]), parts[2] if len(parts) > 2 else ""
        hdrs = {}
        for line in hlines:
            name, _, value = line.partition(":")
            hdrs[name.strip().lower()] = value.strip()
        if status != 101:
            length = int(hdrs.get("content-length") or 0)
            try:
                while len(rest) < length:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    rest += chunk
            except (OSError, ssl.SSLError):
                pass
            sock.close()
            raise WebSocketRefused(status, reason, hdrs, rest)
        want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if hdrs.get("sec-websocket-accept") != want:
            sock.close()
            raise WebSocketRefused(status, "bad Sec-WebSocket-Accept", hdrs, rest)
        return cls(sock, rest, hdrs.get("sec-websocket-protocol"), hdrs)

    # --- frames -------------------------------------------------------------------
    def send_frame(self, payload, opcode=2):
        n = len(payload)
        if n <= 125:
            head = struct.pack(">BB", 0x80 | opcode, 0x80 | n)
        elif n <= 0xFFFF:
            head = struct.pack(">BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack(">BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        key = (mask * (n // 4 + 1))[:n]
        body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big") \
            if n else b""
        self.sock.sendall(head + mask + body)

    def send(self, data):
        """A binary frame (bytes) or a text frame (str)."""
        if isinstance(data, str):
            self.send_frame(data.encode(), 1)
        else:
            self.send_frame(bytes(data), 2)

    def ping(self, payload=b""):
        self.send_frame(payload, 9)

    def close(self, code=1000):
        try:
            self.send_frame(struct.pack(">H", code), 8)
        except OSError:
            pass

    def shutdown(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def _take(self, n):
        self._fill(n)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def recv_frame(self, timeout=None):
        """(opcode, payload) of the next frame; None at EOF.  socket.timeout if
        nothing came within timeout."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            b0, b1 = self._take(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._take(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._take(8))[0]
            mask = self._take(4) if b1 & 0x80 else None
            payload = self._take(n) if n else b""
        except (EOFError, ConnectionError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return None
        if mask:
            key = (mask * (n // 4 + 1))[:n]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")) \
                .to_bytes(n, "big")
        return b0, payload

    def recv(self, timeout=10):
        """The next data payload (binary or text), or None once the server has gone."""
        while True:
            frame = self.recv_frame(timeout)
            if frame is None:
                self.closed_by = self.closed_by or "eof"
                return None
            b0, payload = frame
            op = b0 & 0x0F
            if op in (0, 1, 2):
                return payload
            if op == 8:
                self.closed_by = "close frame"
                self.close_code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 \
                    else None
                return None
            if op == 9:
                self.send_frame(payload, 10)
            # 10 (pong): ignored

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()


class TermClient:
    """termproxy's client side (as pve-xtermjs does it) over a vncwebsocket."""

    def __init__(self, ws, info):
        self.ws = ws
        self.info = info        # the termproxy answer: user, ticket, port, upid
        self.output = b""

    def login(self, user=None, ticket=None):
        """Send "user:ticket\n"; True if the server answered "OK" (any output after
        it is kept in .output), False if it closed the connection."""
        self.ws.send(("%s:%s\n" % (user or self.info["user"],
                                     ticket or self.info["ticket"])).encode())
        data = b""
        while len(data) < 2:
            chunk = self.ws.recv()
            if chunk is None:
                return False
            data += chunk
        if data[:2] != b"OK":
            return False
        self.output = data[2:]
        return True

    def send_input(self, text):
        raw = text.encode() if isinstance(text, str) else text
        self.ws.send(b"0:%d:" % len(raw) + raw)

    def resize(self, cols, rows):
        self.ws.send(b"1:%d:%d:" % (cols, rows))

    def ping(self):
        self.ws.send(b"2")

    def read_until(self, pattern, timeout=10):
        """Read output until it matches pattern (bytes regex); returns the output so
        far (the whole of it stays in .output).  Raises TimeoutError, or EOFError
        when the server closed first."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while not rx.search(self.output):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no %r in %r" % (pattern, self.output))
            try:
                chunk = self.ws.recv(timeout=left)
            except socket.timeout:
                continue
            if chunk is None:
                raise EOFError("connection closed; output %r" % self.output)
            self.output += chunk
        return self.output

    def run(self, command, timeout=10):
        """Type a command and Enter; returns what it printed (between the echoed
        line and the next prompt)."""
        start = len(self.output)
        self.send_input(command + "\r")
        deadline = time.monotonic() + timeout
        while True:
            tail = self.output[start:]
            m = re.search(re.escape(command.encode()) + rb"\r\n(.*?)([^\r\n]*[#$] )$",
                          tail, re.S)
            if m:
                return m.group(1).decode("utf-8", "replace")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no prompt after %r: %r" % (command, tail))
            chunk = self.ws.recv(timeout=left)
            if chunk is None:
                raise EOFError("connection closed; output %r" % tail)
            self.output += chunk


class RfbClient:
    """An RFB 3.8 client over a vncwebsocket: VNC Authentication (DES), ClientInit,
    ServerInit, then requests and Raw updates."""

    def __init__(self, ws):
        self.ws = ws
        self.buf = bytearray()
        self.width = self.height = None
        self.pixel_format = None
        self.name = None
        self.server_version = None

    def read(self, n, timeout=10):
        while len(self.buf) < n:
            chunk = self.ws.recv(timeout=timeout)
            if chunk is None:
                raise EOFError("connection closed after %r" % bytes(self.buf))
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def handshake(self, password, version=b"RFB 003.008\n", shared=True):
        """Version, security type 2 and the DES answer, ClientInit, ServerInit.
        Returns (security result, reason): (0, None) when authenticated; then width,
        height, pixel_format and name are set."""
        self.server_version = self.read(12)
        self.ws.send(version)
        types = self.read(self.read(1)[0])
        if 2 not in types:
            raise ValueError("no VNC Authentication in %r" % types)
        self.ws.send(b"\x02")
        challenge = self.read(16)
        self.ws.send(vncdes.vnc_response(password, challenge))
        result = struct.unpack(">I", self.read(4))[0]
        if result != 0:
            reason = self.read(struct.unpack(">I", self.read(4))[0])
            return result, reason
        self.ws.send(b"\x01" if shared else b"\x00")
        init = self.read(24)
        self.width, self.height = struct.unpack(">HH", init[:4])
        self.pixel_format = struct.unpack(">BBBBHHHBBB3x", init[4:20])
        self.name = self.read(struct.unpack(">I", init[20:24])[0]).decode("utf-8", "replace")
        return 0, None

    def set_encodings(self, encodings=(0,)):
        self.ws.send(struct.pack(">BxH", 2, len(encodings)) +
                     struct.pack(">%di" % len(encodings), *encodings))

    def set_pixel_format(self, bpp=32, depth=24, big_endian=0, true_colour=1, rmax=255,
                         gmax=255, bmax=255, rshift=16, gshift=8, bshift=0):
        pf = (bpp, depth, big_endian, true_colour, rmax, gmax, bmax, rshift, gshift, bshift)
        self.ws.send(struct.pack(">B3x", 0) + struct.pack(">BBBBHHHBBB3x", *pf))
        self.pixel_format = pf

    def request_update(self, incremental=False, x=0, y=0, w=None, h=None):
        self.ws.send(struct.pack(">BBHHHH", 3, 1 if incremental else 0, x, y,
                                 self.width if w is None else w,
                                 self.height if h is None else h))

    def read_update(self, timeout=10):
        """One FramebufferUpdate: [(x, y, w, h, encoding, raw pixel bytes)]."""
        msg = self.read(1, timeout)[0]
        if msg != 0:
            raise ValueError("expected a FramebufferUpdate, got message type %d" % msg)
        n = struct.unpack(">xH", self.read(3, timeout))[0]
        bpp = self.pixel_format[0] // 8
        rects = []
        for _ in range(n):
            x, y, w, h, enc = struct.unpack(">HHHHi", self.read(12, timeout))
            if enc != 0:
                raise ValueError("unexpected encoding %d" % enc)
            rects.append((x, y, w, h, enc, self.read(w * h * bpp, timeout)))
        return rects

    def key(self, keysym, down=True):
        self.ws.send(struct.pack(">BBxxI", 4, 1 if down else 0, keysym))

    def pointer(self, x, y, mask=0):
        self.ws.send(struct.pack(">BBHH", 5, mask, x, y))

    def cut_text(self, text):
        raw = text.encode("latin-1")
        self.ws.send(struct.pack(">BxxxI", 6, len(raw)) + raw)


class PveSim:
    def __init__(self, state_dir, port=0, host="127.0.0.1", nodes=("pve",), guests=0,
                 qemu_guests=0, time_scale=1.0, resources_lag=5.0, auth_fail_delay=3.0,
                 token=None, extra_args=(), python="/usr/bin/python3", cluster_name=None,
                 node_memory=None, node_cpus=None, token_privs=None, qemu_templates=(),
                 lock_timeout=None):
        self.state_dir = state_dir
        self.args = [python, PVESIM, "--host", host, "--port", str(port),
                     "--state-dir", state_dir, "--nodes", ",".join(nodes),
                     "--guests", str(guests), "--qemu-guests", str(qemu_guests),
                     "--time-scale", str(time_scale), "--resources-lag", str(resources_lag),
                     "--auth-fail-delay", str(auth_fail_delay)] + list(extra_args)
        if token:
            self.args += ["--token", token]
        if cluster_name:
            self.args += ["--cluster-name", cluster_name]
        if node_memory is not None:
            self.args += ["--node-memory", str(node_memory)]
        if node_cpus is not None:
            self.args += ["--node-cpus", str(node_cpus)]
        for tokenid, privs in (token_privs or {}).items():     # {tokenid: [privilege…]}
            self.args += ["--token-privs", "%s=%s" % (tokenid, ",".join(privs))]
        # [{"vmid": 9000, "name": "debian-12-cloud", "node": "pve1", "disk_gb": 4,
        #   "storage": "local-lvm"}] or "VMID:NAME[:NODE[:DISK_GB[:STORAGE]]]" strings
        for t in qemu_templates or ():
            if not isinstance(t, str):
                t = ":".join(str(x) for x in (t["vmid"], t["name"], t.get("node", ""),
                                              t.get("disk_gb", ""), t.get("storage", "")))
            self.args += ["--qemu-templates", t.rstrip(":")]
        if lock_timeout is not None:
            self.args += ["--lock-timeout", str(lock_timeout)]
        self.proc = None
        self.info = None
        self._ctx = None

    # --- process ----------------------------------------------------------------
    @classmethod
    def attach(cls, state_dir):
        """A PveSim for a simulator another process started in state_dir (e.g. the
        demo's): its facts and control API, not its process."""
        sim = cls(state_dir)
        with open(os.path.join(state_dir, "pvesim.json")) as f:
            sim.info = json.load(f)
        sim._ctx = ssl.create_default_context(cafile=sim.info["ca"])
        return sim

    def start(self, timeout=30):
        os.makedirs(self.state_dir, exist_ok=True)
        log = open(os.path.join(self.state_dir, "pvesim.stderr"), "ab")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith(b"pvesim listening on "):
                break
            if not line and self.proc.poll() is not None:
                raise RuntimeError("pvesim exited with %s; see %s/pvesim.stderr"
                                   % (self.proc.returncode, self.state_dir))
        else:
            self.stop()
            raise RuntimeError("pvesim did not start within %ss" % timeout)
        with open(os.path.join(self.state_dir, "pvesim.json")) as f:
            self.info = json.load(f)
        self._ctx = ssl.create_default_context(cafile=self.info["ca"])
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- facts ------------------------------------------------------------------
    @property
    def url(self):
        return self.info["url"]

    @property
    def host(self):
        return self.info["host"]

    @property
    def port(self):
        return self.info["port"]

    @property
    def cluster_name(self):
        return self.info.get("cluster_name")

    @property
    def ca(self):
        return self.info["ca"]

    @property
    def token(self):
        """USER@REALM!TOKENID=SECRET"""
        return self.info["token"]

    @property
    def token_id(self):
        """USER@REALM!TOKENID"""
        return self.info["token_id"]

    def ssl_context(self):
        return self._ctx

    def connection(self, timeout=30):
        return http.client.HTTPSConnection(self.host, self.port, context=self._ctx,
                                           timeout=timeout)

    # --- the PVE API --------------------------------------------------------------
    def request(self, method, path, params=None, token=True, json_body=False,
                headers=None, conn=None, timeout=30):
        """One API call below /api2/json.  Returns (status, reason, headers, parsed body).

        params go to the query string for GET/DELETE and to a form (or JSON) body
        otherwise.  token=True uses the simulator's token, a string another
        Authorization value, False none."""
        hdrs = dict(headers or {})
        if token is True:
            hdrs["Authorization"] = "PVEAPIToken=%s" % self.token
        elif token:
            hdrs["Authorization"] = token
        url = "/api2/json" + path
        body = None
        if params and method in ("GET", "DELETE"):
            url += "?" + urllib.parse.urlencode(params)
        elif params is not None:
            if json_body:
                body = json.dumps(params).encode()
                hdrs["Content-Type"] = "application/json"
            else:
                body = urllib.parse.urlencode(params).encode()
                hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        own = conn is None
        conn = conn or self.connection(timeout)
        try:
            conn.request(method, url, body=body, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            parsed = json.loads(raw) if raw else None
            return resp.status, resp.reason, dict(resp.getheaders()), parsed
        finally:
            if own:
                conn.close()

    def data(self, method, path, params=None, **kw):
        """The ``data`` of a successful call (raises on any other status)."""
        status, reason, _, body = self.request(method, path, params, **kw)
        if status != 200:
            raise RuntimeError("%s %s: %d %s %s" % (method, path, status, reason, body))
        return body["data"]

    def wait_task(self, upid, timeout=60, interval=0.05):
        """Poll a task until it stops; returns its status object."""
        node = upid.split(":")[1]
        path = "/nodes/%s/tasks/%s/status" % (node, urllib.parse.quote(upid, safe=""))
        deadline = time.monotonic() + timeout
        while True:
            st = self.data("GET", path)
            if st["status"] == "stopped":
                return st
            if time.monotonic() > deadline:
                raise TimeoutError("task %s still running" % upid)
            time.sleep(interval)

    # --- the control API ---------------------------------------------------------
    def control(self, method, path, body=None):
        conn = self.connection()
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, "/_sim" + path, body=data,
                         headers={"Content-Type": "application/json"} if data else {})
            resp = conn.getresponse()
            out = json.loads(resp.read() or b"null")
            if resp.status != 200:
                raise RuntimeError("/_sim%s: %d %s" % (path, resp.status, out))
            return out
        finally:
            conn.close()

    def state(self, **query):
        q = ("?" + urllib.parse.urlencode(query)) if query else ""
        return self.control("GET", "/state" + q)

    def fault(self, **spec):
        return self.control("POST", "/fault", spec)

    def clear_faults(self):
        return self.control("POST", "/fault", {"kind": "clear"})

    def guest(self, vmid, **fields):
        return self.control("POST", "/guest/%d" % vmid, fields)

    def guest_info(self, vmid):
        return self.control("GET", "/guest/%d" % vmid)

    def set_password(self, vmid, password=None, hashed=None, user="root"):
        body = {"user": user}
        if password is not None:
            body["password"] = password
        if hashed is not None:
            body["hash"] = hashed
        return self.control("POST", "/guest/%d/password" % vmid, body)

    # --- QEMU: templates, guest agent, cloud-init, storages ---------------------------
    def make_template(self, vmid, name="debian-12-cloud", node=None, disk_gb=4,
                      storage="local-lvm", **fields):
        """A stopped cloud-init template VM (POST /_sim/template); fields: cores,
        memory (MiB), bridge.  Returns the guest's detail."""
        body = dict(fields, vmid=vmid, name=name, disk_gb=disk_gb, storage=storage)
        if node:
            body["node"] = node
        return self.control("POST", "/template", body)

    def agent(self, vmid, running=True):
        """Start or stop the QEMU guest agent inside a VM (agent_running)."""
        return self.guest(vmid, agent_running=bool(running))

    def cloudinit(self, vmid):
        """{"config": what a start would write to the cloud-init drive now, "applied":
        what the last start wrote}; each {drive, citype, hostname, user, password
        ({sha256} or {hash}, never the password), sshkeys [lines], ipconfig {ipconfigN},
        nameserver, searchdomain, ciupgrade} or None without a cloud-init drive."""
        return self.guest_info(vmid)["cloudinit"]

    def passwords(self, vmid):
        """{user: {changed_at, source (create|agent|cloudinit|sim), sha256?, hash?}}"""
        return self.guest_info(vmid)["passwords"]

    def add_storage(self, storage, type="nfs", content=("images", "rootdir"), shared=True,
                    total=None, nodes=None):
        """A storage on the nodes (every node by default); a shared one is one storage
        every node sees (so a VM on it may be cloned to another node).  Returns
        {node: its status}."""
        body = {"storage": storage, "type": type, "content": list(content), "shared": shared}
        if total is not None:
            body["total"] = int(total)
        if nodes:
            body["nodes"] = list(nodes)
        return self.control("POST", "/storage", body)

    def remove_storage(self, storage):
        return self.control("DELETE", "/storage/%s" % urllib.parse.quote(storage))

    def node(self, name, online=None, **fields):
        """Set node facts: online, cpus, memory (bytes), base_mem (bytes the host
        uses without guests), base_cpu (fraction), templates [volid…],
        storages {sid: {total, base_used, enabled, active}}.  Returns the node's info."""
        body = dict(fields, node=name)
        if online is not None:
            body["online"] = online
        return self.control("POST", "/node", body)

    def node_info(self, name):
        return self.control("GET", "/node/%s" % urllib.parse.quote(name))

    def templates(self, node=None, volids=None):
        """Without volids: the node's template volids (every node's, by name, when
        node is None).  With volids: set the node's list and return it."""
        if volids is not None:
            return self.set_templates(node, volids)
        q = "?" + urllib.parse.urlencode({"node": node}) if node else ""
        out = self.control("GET", "/templates" + q)
        return out[node] if node else out

    def set_templates(self, node, volids):
        """Replace the templates a node's storages hold (node None: every node)."""
        out = self.control("POST", "/templates", {"node": node, "templates": list(volids)})
        return out[node] if node else out

    def add_template(self, node, volid):
        return self.control("POST", "/templates", {"node": node, "add": [volid]})[node]

    def remove_template(self, node, volid):
        return self.control("POST", "/templates", {"node": node, "remove": [volid]})[node]

    def token_privs(self, tokenid=None, privs=None):
        """Restrict a token (default: the simulator's own) to these privileges on "/",
        propagated to every path; privs=None gives it every privilege again.
        Returns {"tokenid": …, "privs": [sorted privileges] or None}."""
        return self.control("POST", "/token-privs", {
            "tokenid": tokenid or self.token_id,
            "privs": None if privs is None else list(privs)})

    def all_token_privs(self):
        """{tokenid: [privileges] or None (every privilege)} for every token."""
        return self.control("GET", "/token-privs")

    # --- consoles ------------------------------------------------------------------------
    def vncwebsocket(self, vmid, port, vncticket, node="pve", kind="lxc", token=True,
                     headers=None, protocols=("binary",), timeout=10):
        """Open GET /nodes/{node}/{kind}/{vmid}/vncwebsocket?port=…&vncticket=… as a
        WebSocket (Authorization: PVEAPIToken by default; token=False for none, or a
        string for another Authorization value).  Raises WebSocketRefused."""
        hdrs = dict(headers or {})
        if token is True:
            hdrs["Authorization"] = "PVEAPIToken=%s" % self.token
        elif token:
            hdrs["Authorization"] = token
        path = "/api2/json/nodes/%s/%s/%d/vncwebsocket?%s" % (
            node, kind, vmid, urllib.parse.urlencode({"port": port, "vncticket": vncticket},
                                                     quote_via=urllib.parse.quote))
        return WebSocket.connect(self.host, self.port, self._ctx, path, hdrs, protocols,
                                 timeout)

    def termproxy(self, vmid, node="pve", kind="lxc", login=True, **params):
        """POST termproxy, open its vncwebsocket, and (login=True) send the
        "user:ticket" line and wait for "OK".  Returns a TermClient (.info is the
        termproxy answer); read the prompt with read_until(rb"# $")."""
        info = self.data("POST", "/nodes/%s/%s/%d/termproxy" % (node, kind, vmid),
                         params or None)
        ws = self.vncwebsocket(vmid, info["port"], info["ticket"], node=node, kind=kind)
        term = TermClient(ws, info)
        if login and not term.login():
            ws.shutdown()
            raise RuntimeError("termproxy refused the ticket line")
        return term

    def vnc(self, vmid, node="pve", kind="qemu", auth="ticket", **params):
        """POST vncproxy with websocket=1, open its vncwebsocket, complete RFB 3.8 with
        VNC Authentication and ServerInit.  auth "ticket" answers the challenge with the
        ticket (whose first 8 characters are the password),
        "password" with the returned password, anything else with that string.
        Returns an RfbClient (.info: the vncproxy answer)."""
        info = self.data("POST", "/nodes/%s/%s/%d/vncproxy" % (node, kind, vmid),
                         dict({"websocket": 1}, **params))
        ws = self.vncwebsocket(vmid, info["port"], info["ticket"], node=node, kind=kind)
        rfb = RfbClient(ws)
        rfb.info = info
        secret = {"ticket": info["ticket"], "password": info.get("password")}.get(auth, auth)
        result, reason = rfb.handshake(secret)
        if result != 0:
            ws.shutdown()
            raise RuntimeError("VNC authentication failed: %r" % reason)
        return rfb

    def consoles(self):
        """GET /_sim/console: {"sessions": [open], "closed": [ended], "timeout",
        "ticket_lifetime", "read_delay"}"""
        return self.control("GET", "/console")

    def console(self, port):
        """The newest console session on a port (open or ended)."""
        return self.control("GET", "/console/%d" % port)

    def drop_console(self, port, mode="close"):
        """Close the session from the server side (no close frame; "reset": a TCP RST)."""
        return self.control("POST", "/console/%d/drop" % port, {"mode": mode})

    def console_settings(self, timeout=None, ticket_lifetime=None, read_delay=None):
        body = {k: v for k, v in (("timeout", timeout), ("ticket_lifetime", ticket_lifetime),
                                  ("read_delay", read_delay)) if v is not None}
        return self.control("POST", "/console", body)

    def refresh(self):
        return self.control("POST", "/refresh", {})

    def configure(self, **settings):
        return self.control("POST", "/config", settings)

    def reset(self, **kw):
        return self.control("POST", "/reset", kw)


if __name__ == "__main__":
    # Quick manual start: python3 simctl.py STATE_DIR [pvesim options...]
    sim = PveSim(sys.argv[1], extra_args=sys.argv[2:])
    sim.start()
    print(json.dumps(sim.info, indent=2))
    try:
        sim.proc.wait()
    except KeyboardInterrupt:
        sim.stop()
