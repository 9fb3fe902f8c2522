"""The demo behind scripts/demo (see there). Uses the integration harness to run Apache."""
import argparse
import grp
import json
import os
import secrets
import signal
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO / "tests" / "pvesim"))
sys.path.insert(0, str(REPO / "tests" / "sshd"))
import harness  # noqa: E402
from simctl import PveSim  # noqa: E402
from agentharness import Agent, sim_cluster  # noqa: E402
from smtpserver import SmtpServer  # noqa: E402
from webhookreceiver import Receiver  # noqa: E402
from panelconf import panel_conf  # noqa: E402
import sshd as sshdmod  # noqa: E402

WEBHOOK_SECRET = "demo-webhook-secret-" + "0123456789abcdef"

DEMO_PASSWORD = "demo-password"
CREATE = {"action": "create", "vps": {"user_id": 5, "name": "test", "cpu": 2, "ram": 2048,
                                      "disk": 50, "os": "Ubuntu 22.04", "status": "creating",
                                      "hypervisor": "proxmox"}}


# the demo customer's first server: the simulator's container 101 (running, a month old)
WEB1 = {"action": "create", "vps": {"user_id": 5, "name": "web-1", "status": "running",
                                    "ip_address": "10.0.0.101", "cpu": 2, "ram": 1024,
                                    "disk": 24, "os": "Debian 12", "os_id": 2,
                                    "hypervisor": "proxmox", "node": "pve1", "vmid": 101,
                                    "kind": "lxc", "external_id": "demo-web-1"}}


# reads the id out of an answer, so the next lines can use it (jq is not on every box)
ID_OF = "python3 -c 'import json, sys; print(json.load(sys.stdin){path})'"


def curl_lines(url, key_var="$OSPAB_SYNC_KEY"):
    """The lines the demo prints, in order, for one shell that loaded demo.env: the ones that
    create something keep its id in a shell variable the later ones use."""
    create = json.dumps(CREATE, separators=(",", ":"))
    user = json.dumps({"action": "create", "user": {"email": "anna@example.com",
                                                    "name": "Anna", "role": "user"}},
                      separators=(",", ":"))
    sync = (f'curl -s -X POST {url}/api/vps/sync -H "Content-Type: application/json" '
            f'-H "X-API-Key: {key_var}"')
    login = json.dumps({"email": "demo@ospab.local", "password": DEMO_PASSWORD},
                       separators=(",", ":"))
    auth = '-H "Authorization: Bearer $OSPAB_TOKEN"'
    server = json.dumps({"osId": 1, "tariffId": 1}, separators=(",", ":"))
    vps_id = ID_OF.format(path='["vps"]["id"]')
    server_id = ID_OF.format(path='["id"]')
    # the record's id comes from the shell: the JSON stops quoting around $VPS_ID
    update = ('{"action":"update","vps":{"id":' + "'$VPS_ID'"
              + ',"status":"running","ip_address":"10.0.0.5"}}')
    delete = '{"action":"delete","vps":{"id":' + "'$VPS_ID'" + '}}'
    return [
        f"curl -s {url}/api/health",
        f"curl -s {url}/api/tariffs {auth}",
        # what can be installed: containers (kind lxc) and KVM servers (kind qemu)
        f"curl -s {url}/api/os {auth}",
        # the provider's admin API (docs/operations.md) with the seed's admin, user 1
        f'curl -s {url}/api/admin/users -H "Authorization: Bearer $OSPAB_ADMIN_TOKEN"',
        f'curl -s {url}/api/admin/nodes -H "Authorization: Bearer $OSPAB_ADMIN_TOKEN"',
        f'curl -s {url}/api/admin/clusters -H "Authorization: Bearer $OSPAB_ADMIN_TOKEN"',
        (f'curl -s -X POST {url}/api/auth/login -H "Content-Type: application/json" '
         f"-d '{login}'"),
        # the billing site (seed 000): a record, its status, the customer's list, its end
        (f"export VPS_ID=$({sync} -d '{create}' | {vps_id})"
         '; echo "VPS_ID=$VPS_ID"'),
        f"{sync} -d '{update}'",
        f"curl -s {url}/api/server {auth}",
        f"{sync} -d '{delete}'",
        (f'curl -s -X POST {url}/api/users/sync -H "Content-Type: application/json" '
         f'-H "X-API-Key: {key_var}" -d \'{user}\''),
        # a container on the (simulated) Proxmox node, its task, its live status
        (f"export SERVER_ID=$(curl -s -X POST {url}/api/server/create {auth} "
         f"-H \"Content-Type: application/json\" -d '{server}' | "
         f"{server_id})" '; echo "SERVER_ID=$SERVER_ID"'),
        f"curl -s {url}/api/server/$SERVER_ID/tasks {auth}",
        f"curl -s {url}/api/server/$SERVER_ID/status {auth}",
        # a new root password, set over the node's SSH (shown this once)
        f"curl -s -X POST {url}/api/server/$SERVER_ID/password {auth}",
        # its console: a one-time link (60 s) to the panel's console page, which the agent
        # relays to the container's terminal; open it in a browser (docs/console.md)
        (f"curl -s -X POST {url}/api/server/console {auth} "
         f"-H \"Content-Type: application/json\" -d \"{{\\\"serverId\\\": $SERVER_ID}}\""),
    ]


def live_line():
    """Seed 003's live push, through Apache, with python-socketio: the first server-stats
    of $SERVER_ID (the container the curl lines above create)."""
    return ("/usr/bin/python3 -c \"import os, json, socketio; s = socketio.Client(); "
            "s.on('server-stats', lambda d: (print(json.dumps(d)[:300]), s.disconnect())); "
            "s.connect(os.environ['OSPAB_URL'], auth={'token': os.environ['OSPAB_TOKEN']}, "
            "socketio_path='/socket.io'); "
            "s.emit('subscribe-server', int(os.environ['SERVER_ID'])); s.wait()\"")


DEMO_NODES = ("pve1", "pve2")
# a node of the simulated cluster that is not registered: the one a provider adds
# (docs/operations.md, "Nodes and placement")
SPARE_NODE = "pve3"
# the template VM of the demo's KVM OS entry, and the shared storage it is on
KVM_TEMPLATE = 9000
KVM_STORAGE = "shared-nfs"
DEMO_POOL = {"name": "demo-v4", "bridge": "vmbr0", "first": "192.168.200.10",
             "last": "192.168.200.250", "prefix": 24, "gateway": "192.168.200.1",
             "dns": "192.168.200.1", "cooldown": 600}


def demo_admin(url, token, path, body=None):
    """The admin API as the seed's admin (GET, or POST with body); the answer's JSON."""
    req = urllib.request.Request(url + path, method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json",
                                          "Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def post(url, key, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "X-API-Key": key})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def stop_old_simulator(state_dir):
    """A demo killed without Ctrl-C leaves its simulator running: stop it."""
    try:
        pid = json.loads((state_dir / "pvesim.json").read_text())["pid"]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError):
        return
    if b"pvesim" in cmdline:
        os.kill(pid, signal.SIGTERM)


def main():
    ap = argparse.ArgumentParser(prog="scripts/demo")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--run-dir", default=str(REPO / "run" / "demo"),
                    help="where the demo keeps its database, Apache and demo.env")
    ap.add_argument("--check", action="store_true",
                    help="start, run the create example, verify it, stop")
    args = ap.parse_args()

    base = Path(args.run_dir).resolve()
    stop_old_simulator(base / "pvesim")
    harness.reap_run_base(base)          # a previous demo killed without Ctrl-C
    base.mkdir(parents=True, mode=0o755)
    harness.make_run_dir("x", base=base).rmdir()   # makes every level traversable
    if harness.port_open(args.port):
        sys.exit(f"scripts/demo: port {args.port} is busy; use --port N")

    db = harness.SqliteDatabase.create(base=base)
    harness.prepare_database(db)
    # the Proxmox VE simulator (tests/pvesim) stands in for a Proxmox node
    # two containers exist already (vmids 100 and 101, made "30 days ago", 101 running for
    # days): 101 becomes the demo customer's web-1, with a month of graphs in the panel
    # two nodes (new servers are placed on the one with the most free memory: pve2 starts
    # emptier; docs/operations.md "Nodes and placement")
    sim = PveSim(str(base / "pvesim"), nodes=DEMO_NODES + (SPARE_NODE,), time_scale=0.25,
                 guests=2).start()
    sim.node("pve1", base_mem=6 * 1024 ** 3)
    # where the e-mail goes: a local SMTP server (STARTTLS, AUTH) that keeps every message
    # as an .eml file; the billing site's webhook: a receiver that checks the signatures
    maildir = base / "mail"
    maildir.mkdir(mode=0o755)
    (base / "smtp-tls").mkdir(mode=0o755)
    smtp = SmtpServer(users={"panel": "demo-smtp-password"}, rundir=base / "smtp-tls",
                      maildir=maildir).start()
    hooks = Receiver(secret=WEBHOOK_SECRET, log_file=base / "webhooks.log").start()
    # the node's SSH for root password resets (pct exec ... chpasswd): a private sshd whose
    # forced command sets the password on the simulator (tests/sshd); it needs root
    node = node2 = None
    ssh_conf = []
    ssh_hosts = {}
    if os.geteuid() == 0:
        sshdmod.reap_orphans(base)
        node = sshdmod.Sshd(base / "sshd", control=sim.info["control"], ca=sim.ca,
                            node="pve1").start()
        # pve2's own sshd (its registered ssh_host), taking the panel's one key; one
        # known_hosts file holds both nodes' host keys
        node2 = sshdmod.Sshd(base / "sshd2", control=sim.info["control"], ca=sim.ca,
                             node="pve2").start()
        node2.authorize(node.client_key)
        known = node.write_known_hosts(base / "known_hosts", node.known_hosts_line(),
                                       node2.known_hosts_line())
        ssh_hosts["pve2"] = f"127.0.0.1:{node2.port}"
        ssh_conf = [f"OspabProxmoxSSHHost 127.0.0.1:{node.port}", "OspabProxmoxSSHUser root",
                    f"OspabProxmoxSSHKey {node.client_key}",
                    f"OspabProxmoxSSHKnownHosts {known}"]
    rundir = base / "httpd"
    rundir.mkdir(mode=0o755)
    # the key sealing the clusters' API tokens in the database (OspabSecretKey, the agent's
    # [secrets] key): root and the agent's group (www-data) read it, nobody else
    seal_key = base / "secret.key"
    seal_key.write_text(secrets.token_hex(32) + "\n")
    os.chown(seal_key, 0, grp.getgrnam("www-data").gr_gid)
    seal_key.chmod(0o640)
    agent_port = harness.free_port()
    agent_metrics_port = harness.free_port()
    mods = harness.APACHE_MODULES
    httpd = harness.Apache(db, port=args.port, rundir=rundir, extra_conf=ssh_conf + [
        f"OspabSecretKey file:{seal_key}", f"OspabProxmoxURL {sim.url}", f"OspabProxmoxToken {sim.token}",
        f"OspabProxmoxCA {sim.ca}", "OspabProxmoxNode pve1", "OspabSelfService On",
        # the agent's live push on the same origin (conf/ospab.conf)
        f"LoadModule proxy_module {mods}/mod_proxy.so",
        f"LoadModule proxy_http_module {mods}/mod_proxy_http.so",
        f"LoadModule proxy_wstunnel_module {mods}/mod_proxy_wstunnel.so",
        f'ProxyPass "/socket.io/" "http://127.0.0.1:{agent_port}/socket.io/" upgrade=websocket',
        # the server console's WebSocket: the agent relays it to Proxmox (docs/console.md)
        f'ProxyPass "/console/ws" "http://127.0.0.1:{agent_port}/console/ws" upgrade=websocket',
        # its worker budget: half of the demo's 64 workers, so idle sockets never starve
        # /api/ (conf/ospab.conf)
        '<Location "/socket.io/">', "  OspabLivePush workers=32 per-address=16", "</Location>",
        # Prometheus metrics at $OSPAB_URL/metrics, for this machine only (conf/ospab.conf)
        f"LoadModule authz_host_module {mods}/mod_authz_host.so",
        '<Location "/metrics">', "  OspabMetrics On", "  Require ip 127.0.0.1 ::1",
        "</Location>",
        # the customer panel (www/) at the site root: conf/ospab.conf's panel block
        *panel_conf(at="/"),
        # the API's OpenAPI document as text a browser shows (a <Location>'s Alias comes
        # before the panel's Alias "/")
        '<Location "/openapi.yaml">', f'  Alias "{REPO}/docs/openapi.yaml"',
        "  Require all granted", '  ForceType "text/plain; charset=utf-8"',
        '  Header set X-Content-Type-Options "nosniff"', "</Location>"])
    (base / "agent").mkdir(mode=0o755)
    # the section's name is the module's name for its configured cluster: whichever imports
    # it first (docs/operations.md, "Clusters"), the row is "default"
    agent = Agent(db, jwt_secret=httpd.jwt_secret,
                  clusters=[sim_cluster(sim, name="default", node="pve1")],
                  rundir=base / "agent", sections={
                      "agent": {"poll_interval": "10s", "live_interval": "2s",
                                "task_interval": "1s", "event_interval": "500ms",
                                "metrics_listen": f"127.0.0.1:{agent_metrics_port}"},
                      "websocket": {"listen": f"127.0.0.1:{agent_port}",
                                    "ping_interval": "25s", "ping_timeout": "20s"},
                      "smtp": {"url": smtp.url, "user": "panel",
                               "password": "demo-smtp-password", "ca": smtp.ca,
                               "from": "ospab panel <panel@ospab.local>", "interval": "1s"},
                      "webhook": {"url": hooks.url, "secret": WEBHOOK_SECRET,
                                  "interval": "1s"},
                      "secrets": {"key": f"file:{seal_key}"}})

    def stop_all():
        for part in (agent, httpd, sim, smtp, hooks, node, node2):
            if part is not None:
                try:
                    part.stop()
                except Exception as e:          # the rest must stop all the same
                    print(f"scripts/demo: stopping {type(part).__name__}: {e}",
                          file=sys.stderr)

    try:
        httpd.start()
        agent.start()
    except Exception:
        stop_all()
        raise
    url = f"http://127.0.0.1:{args.port}"
    # the demo customer (user 5) gets a password and a token
    post(url + "/api/users/sync", httpd.sync_key,
         {"action": "update", "user": {"id": 5, "password": DEMO_PASSWORD}})
    token = harness.admin(db.driver, db.params, "--jwt-key", f"file:{httpd.jwt_key_file}",
                          "--ttl", "86400", "token", "5").stdout.strip()
    # the seed's admin (user 1, sql/seed/demo.sql) for the admin API
    admin_token = harness.admin(db.driver, db.params, "--jwt-key",
                                f"file:{httpd.jwt_key_file}", "--ttl", "86400", "token",
                                "1").stdout.strip()
    # the provider's side: both nodes registered for placement, and an IPv4 pool new servers
    # take their addresses from (docs/operations.md)
    # (the simulated cluster is the configured one, a row of the clusters table by now)
    cluster = demo_admin(url, admin_token, "/api/admin/clusters")["clusters"][0]["id"]
    for name in DEMO_NODES:
        demo_admin(url, admin_token, "/api/admin/nodes",
                   dict({"name": name, "cluster_id": cluster},
                        **({"ssh_host": ssh_hosts[name]} if name in ssh_hosts else {})))
    try:
        harness.admin(db.driver, db.params, "pool-add", json.dumps(DEMO_POOL))
    finally:
        db.after_admin()
    # KVM servers (docs/proxmox.md "KVM servers"): a cloud-init template VM on storage every
    # node shares, so any node can take its clones, and its OS entry
    sim.add_storage(KVM_STORAGE, type="nfs", shared=True)
    sim.make_template(KVM_TEMPLATE, name="debian-12-cloud", node="pve1", disk_gb=4,
                      storage=KVM_STORAGE)
    demo_admin(url, admin_token, "/api/admin/os", {"name": "Debian 12 (KVM)",
                                                   "template": str(KVM_TEMPLATE),
                                                   "kind": "qemu"})
    # placement needs the agent's first sample of the nodes
    deadline = time.monotonic() + 30
    while not all(n["sample"] for n in demo_admin(url, admin_token, "/api/admin/nodes")["nodes"]):
        if time.monotonic() > deadline:
            stop_all()
            raise SystemExit("scripts/demo: the agent did not sample the nodes in 30 s")
        time.sleep(0.25)
    # a server of the demo customer's own, so the panel's "My servers" is not empty: the
    # running container, bound by the billing site's sync (as seed 000 would)
    # (the simulator spreads its first guests over the nodes: 101 is on whichever it chose)
    WEB1["vps"]["node"] = sim.guest_info(101)["node"]
    post(url + "/api/vps/sync", httpd.sync_key, WEB1)
    env_file = base / "demo.env"
    # exported: the printed python line runs as a child of the shell that loads it
    harness.write_private(env_file, f"export OSPAB_URL={url}\n"
                                    f"export OSPAB_SYNC_KEY={httpd.sync_key}\n"
                                    f"export OSPAB_TOKEN={token}\n"
                                    f"export OSPAB_ADMIN_TOKEN={admin_token}\n")

    if args.check:
        try:
            status, body = post(url + "/api/vps/sync", httpd.sync_key, CREATE)
            rows = db.count("SELECT COUNT(*) FROM vps WHERE name = 'test'")
            req = urllib.request.Request(url + "/api/server",
                                         headers={"Authorization": "Bearer " + token})
            with urllib.request.urlopen(req, timeout=10) as r:
                servers = json.load(r)
            print(f"demo check: GET /api/server with OSPAB_TOKEN -> {len(servers)} server(s)")
            ok = (status == 201 and any(s["id"] == body["vps"]["id"] for s in servers) and body.get("status") == "success"
                  and body.get("message") == "VPS synced successfully"
                  and body["vps"]["name"] == "test" and rows == 1)
            print(f"demo check: create -> {status}, rows in SQLite: {rows}: "
                  f"{'ok' if ok else 'FAILED'}")
            print(json.dumps(body))
            req = urllib.request.Request(url + "/api/server/create", method="POST",
                                         data=b'{"osId":1,"tariffId":1}',
                                         headers={"Authorization": "Bearer " + token,
                                                  "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                created = json.load(r)
            print(f"demo check: POST /api/server/create -> container {created['proxmoxId']}, "
                  f"task {created['taskId']}")
            ok = ok and bool(created.get("rootPassword")) and created["status"] == "creating"
            # the agent follows the create to its end and pushes the server's stats
            import socketio
            got = []
            c = socketio.Client(reconnection=False)
            c.on("server-stats", lambda d: got.append(d))
            c.connect(url, auth={"token": token}, socketio_path="/socket.io", wait_timeout=10)
            c.emit("subscribe-server", created["id"])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not got:
                time.sleep(0.1)
            c.disconnect()
            status_now = db.scalar("SELECT status FROM vps WHERE id = ?", [created["id"]])
            print(f"demo check: live push -> {len(got)} server-stats; server "
                  f"{created['id']} is {status_now}")
            ok = ok and bool(got) and got[0]["serverId"] == created["id"]
        finally:
            stop_all()
        sys.exit(0 if ok else 1)

    print(f"""
ospab panel demo is running
  panel:      {url}/   (open it in a browser; log in as demo@ospab.local / {DEMO_PASSWORD})
  API:        {url}/api/   (described: {url}/openapi.yaml)
  database:   SQLite {db.path}
  Apache:     {rundir}/httpd.conf (error log: {httpd.error_log})
  Proxmox:    simulator at {sim.url} (node pve1; self-service on)
  agent:      ospab-agent, config {agent.conf_file} (log: {agent.log_file});
              live push at {url}/socket.io/ (Apache -> 127.0.0.1:{agent_port})
  metrics:    {url}/metrics (the module's, Prometheus text format);
              http://127.0.0.1:{agent_metrics_port}/metrics (the agent's)
  e-mail:     SMTP sink {smtp.url}: every message lands in {maildir}/ as an .eml file
  webhooks:   receiver {hooks.url}: each signed delivery is a line of {base / "webhooks.log"}
  node SSH:   {f"sshd 127.0.0.1:{node.port} (root password resets of containers)" if node
               else "not started (needs root): POST /api/server/ID/password answers 503"}
  sync key:   {httpd.sync_key}
  customer:   demo@ospab.local / {DEMO_PASSWORD} (user 5), token valid 24 h:
  token:      {token}
  admin:      admin@ospab.local (user 1, role admin), token valid 24 h (OSPAB_ADMIN_TOKEN):
  admin token: {admin_token}

Load the settings into your shell, then try the API (in this order: the lines that
create something keep its id in $VPS_ID / $SERVER_ID for the next ones):
  . {env_file}
""")
    for line in curl_lines("$OSPAB_URL"):
        print("  " + line)
    print("\nLive push (seed 003's socket.emit('subscribe-server', id)) of $SERVER_ID, "
          "through Apache:")
    print("  " + live_line())
    print(f"\nSettings written to {env_file}\nCtrl-C stops the demo.", flush=True)

    def stop(*_):
        stop_all()
        print("\ndemo stopped", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
