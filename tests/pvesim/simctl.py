"""Start pvesim as a subprocess and talk to it (tests, scripts/demo, bench).

    from simctl import PveSim
    with PveSim(state_dir, nodes=("pve1", "pve2"), guests=10, time_scale=0.1) as sim:
        status, reason, headers, body = sim.request("GET", "/version")
        sim.fault(kind="latency", seconds=30, path_prefix="/nodes/pve1/")
        sim.guest(100, cpu=0.95, status="running")

TLS is always verified against the simulator's CA (``sim.ca``).  Standard
library only.
"""

import http.client
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
PVESIM = os.path.join(HERE, "pvesim.py")


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
