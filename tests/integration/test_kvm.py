"""KVM guests beside containers, and reinstall (issue 14), against a real Apache with
mod_ospab and the Proxmox simulator (tests/pvesim), each test on SQLite and on MariaDB.

A KVM OS entry names a template VM; a create clones it (qmclone), configures it with
cloud-init (qmconfig), grows its disk (qmresize) and starts it (qmstart), one task row
following the chain; each step failing in turn ends the create as a failed task and the
half-made VM is destroyed on the simulator. Reinstall makes a guest anew with the same
vmid, network and resources, for both kinds; snapshots need "confirm". The root password
of a KVM server goes through the QEMU guest agent, with a clear 409 when it does not
answer.
"""

import crypt
import hashlib
import re
import time

import pytest

# the module's simulator, Apache (LogLevel debug) and users are test_server.py's fixtures
from test_server import _sim_clean, sim, srv, world  # noqa: F401 (fixtures)
from test_server import (NODE, PASSWORD, PVE_ERRORS, UPID, call, console_token, err, ok,
                         pve_conf, server, task_list, wait_guest, wait_idle)

TEMPLATE = 9000
TEMPLATE_GB = 4
TARIFF2 = {"cores": 2, "memory": 2048, "disk": 20}        # sql/seed/demo.sql, tariff 2


@pytest.fixture(scope="module")
def kvm_os(srv, sim, world):
    """A cloud-init template VM on the node and its OS entry (kind qemu)."""
    # (the simulator serves both databases' runs of the module)
    if TEMPLATE not in [g["vmid"] for g in sim.state(tasks=0)["guests"]]:
        sim.make_template(TEMPLATE, name="debian-12-cloud", node=NODE, disk_gb=TEMPLATE_GB,
                          storage="local-lvm")
    r = call(srv, "POST", "/api/admin/os", world.tok["admin"],
             {"name": "Debian 12 (KVM)", "template": str(TEMPLATE), "kind": "qemu"})
    return ok(r, 201)["os"]["id"]


def create(srv, world, os_id, tariff_id=2, who="alice"):
    body = ok(call(srv, "POST", "/api/server/create", world.tok[who],
                   {"osId": os_id, "tariffId": tariff_id}), 201)
    world.secrets.append(body["rootPassword"])
    return body


def chain_of(database, sid):
    """The UPIDs the create's row followed, oldest first (the row keeps the latest)."""
    return database.query("SELECT action, status, upid, first_upid FROM tasks "
                          "WHERE vps_id = ? ORDER BY id", [sid])


# ---------------------------------------------------------------- the catalogue --

def test_os_list_shows_each_entrys_kind(srv, world, kvm_os):
    listed = ok(call(srv, "GET", "/api/os", world.tok["alice"]))
    kinds = {o["id"]: o["kind"] for o in listed}
    assert kinds[kvm_os] == "qemu" and kinds[1] == "lxc", listed


@pytest.mark.parametrize("body,field", [
    ({"name": "x", "template": "local:vztmpl/debian.tar.zst", "kind": "qemu"}, "template"),
    ({"name": "x", "template": "9000"}, "template"),                 # kind lxc by default
    ({"name": "x", "template": "99", "kind": "qemu"}, "template"),   # not a vmid
    ({"name": "x", "template": "09000", "kind": "qemu"}, "template"),
])
def test_an_os_template_must_be_of_its_kind(srv, world, database, body, field):
    before = database.count("SELECT COUNT(*) FROM os_templates")
    r = call(srv, "POST", "/api/admin/os", world.tok["admin"], body)
    assert err(r, 400)["fields"].keys() == {field}, r.text
    assert database.count("SELECT COUNT(*) FROM os_templates") == before


def test_changing_only_the_kind_is_checked_against_the_template(srv, world, database, kvm_os):
    r = call(srv, "PUT", f"/api/admin/os/{kvm_os}", world.tok["admin"], {"kind": "lxc"})
    assert err(r, 400)["fields"].keys() == {"template"}, r.text
    assert database.query("SELECT kind FROM os_templates WHERE id = ?",
                          [kvm_os])[0]["kind"] == "qemu"


# --------------------------------------------------------------------- create --

def test_kvm_create_end_to_end(srv, sim, world, database, kvm_os):
    """Seed 003's answer at once; the clone, cloud-init, the disk grown to the tariff's,
    the start, each a followed task; the VM runs with the customer's password set by
    cloud-init (its SHA-512 crypt hash, never the password itself, reached Proxmox)."""
    body = create(srv, world, kvm_os)
    assert PASSWORD.match(body["rootPassword"]), body
    vmid, sid = body["proxmoxId"], body["id"]
    m = UPID.match(body["taskId"])
    assert m and m["type"] == "qmclone" and m["id"] == str(TEMPLATE), body
    row = database.query("SELECT kind, name, node, vmid FROM vps WHERE id = ?", [sid])[0]
    assert row == {"kind": "qemu", "name": f"vm{vmid}", "node": NODE, "vmid": str(vmid)}, row

    tasks = wait_idle(srv, world, sid)
    assert [t["status"] for t in tasks] == ["ok"], tasks
    assert tasks[0]["action"] == "create" and tasks[0]["upid"] == body["taskId"], tasks
    last = chain_of(database, sid)[0]
    assert ":qmstart:" in last["upid"] and last["action"] == "create:start", last
    wait_guest(sim, vmid, "running")
    assert server(srv, world, sid)["status"] == "running"

    g = sim.guest_info(vmid)
    conf = g["conf"]
    assert g["type"] == "qemu" and not conf.get("template"), g
    assert int(conf["cores"]) == TARIFF2["cores"] and int(conf["memory"]) == TARIFF2["memory"]
    assert re.search(r"(^|,)size=20G(,|$)", conf["scsi0"]), conf["scsi0"]
    assert conf["ciuser"] == "root" and conf["ipconfig0"] == "ip=dhcp", conf
    assert "bridge=vmbr0" in conf["net0"], conf
    hashed = sim.cloudinit(vmid)["config"]["password"]["hash"]
    assert hashed.startswith("$6$") and crypt.crypt(body["rootPassword"], hashed) == hashed
    # the template itself is untouched
    assert sim.guest_info(TEMPLATE)["conf"]["template"] in (1, "1")
    # the chain's parameters (the password hash) are gone from the row
    assert database.query("SELECT params FROM tasks WHERE vps_id = ?", [sid])[0]["params"] \
        is None


@pytest.mark.parametrize("step", ["qmclone", "qmconfig", "resize", "qmstart"])
def test_each_create_step_failing_cleans_up(srv, sim, world, database, kvm_os, step):
    """The step's task fails: the create is a failed task with Proxmox's message (in the
    customer's words), the server is in "error" without a vmid, and no VM is left behind
    (Proxmox removes a failed clone; the panel destroys what a later step left)."""
    sim.fault(kind="task_error", type=step, message=f"{step} went wrong")
    body = create(srv, world, kvm_os)
    sid, vmid = body["id"], body["proxmoxId"]
    tasks = wait_idle(srv, world, sid)
    assert tasks[0]["status"] == "error", tasks
    admin_view = task_list(srv, world, sid, who="admin")
    assert f"{step} went wrong" in admin_view[0]["error"], admin_view
    rec = server(srv, world, sid)
    assert rec["status"] == "error" and rec["proxmoxId"] is None, rec
    deadline = time.monotonic() + 10
    while vmid in [g["vmid"] for g in sim.state(tasks=0)["guests"]]:
        assert time.monotonic() < deadline, f"VM {vmid} is still on the simulator"
        time.sleep(0.05)
    if step != "qmclone":
        audit = database.query("SELECT action, details FROM audit_log WHERE target_id = ? "
                               "AND action = 'vps.discard'", [str(sid)])
        assert len(audit) == 1 and '"removed":true' in audit[0]["details"].replace(" ", ""), \
            audit


@pytest.mark.allow_log(PVE_ERRORS)
def test_a_template_that_is_missing_is_503(srv, sim, world, database):
    """An OS entry naming a VM that is not a template in the cluster: nothing is made,
    the customer is told to ask support, the reason goes to the error log."""
    r = call(srv, "POST", "/api/admin/os", world.tok["admin"],
             {"name": "Gone (KVM)", "template": "9999", "kind": "qemu"})
    os_id = ok(r, 201)["os"]["id"]
    before = database.count("SELECT COUNT(*) FROM vps")
    r = call(srv, "POST", "/api/server/create", world.tok["alice"],
             {"osId": os_id, "tariffId": 2})
    err(r, 503, "this OS cannot be installed now")
    assert database.count("SELECT COUNT(*) FROM vps") == before


# ------------------------------------------------------------------- password --

@pytest.fixture(scope="module")
def kvm_server(srv, sim, world, kvm_os):
    body = create(srv, world, kvm_os)
    wait_idle(srv, world, body["id"])
    wait_guest(sim, body["proxmoxId"], "running")
    return body


def test_password_through_the_guest_agent(srv, sim, world, kvm_server):
    sid, vmid = kvm_server["id"], kvm_server["proxmoxId"]
    body = ok(call(srv, "POST", f"/api/server/{sid}/password", world.tok["alice"]))
    world.secrets.append(body["password"])
    rec = sim.guest_info(vmid)["passwords"]["root"]
    assert rec["source"] == "agent", rec
    assert rec["sha256"] == hashlib.sha256(body["password"].encode()).hexdigest()


def test_password_without_a_guest_agent_is_a_clear_409(srv, sim, world, kvm_server):
    sid, vmid = kvm_server["id"], kvm_server["proxmoxId"]
    before = sim.guest_info(vmid)["passwords"].get("root")
    sim.guest(vmid, agent_running=False)
    try:
        err(call(srv, "POST", f"/api/server/{sid}/password", world.tok["alice"]), 409,
            "the QEMU guest agent in the server does not answer")
    finally:
        sim.guest(vmid, agent_running=True)
    assert sim.guest_info(vmid)["passwords"].get("root") == before
    tasks = task_list(srv, world, sid)
    assert tasks[0]["action"] == "password" and tasks[0]["status"] == "error", tasks


def test_password_by_cloud_init_when_the_provider_allows_it(start_apache, sim, world,
                                                             kvm_server):
    """OspabPasswordCloudInit On: without a guest agent the password goes to cloud-init
    (its SHA-512 crypt hash) and the server reboots, which the answer says and the task row
    follows; the guest agent's own way still comes first."""
    from conftest import access_token
    a = start_apache(extra_conf=pve_conf(sim) + ["OspabPasswordCloudInit On"])
    tok = access_token(a, world.alice)
    sid, vmid = kvm_server["id"], kvm_server["proxmoxId"]
    sim.guest(vmid, agent_running=False)
    try:
        body = ok(call(a, "POST", f"/api/server/{sid}/password", tok))
        world.secrets.append(body["password"])
        assert body["method"] == "cloud-init" and "restarts" in body["note"], body
        assert UPID.match(body["taskId"])["type"] == "qmreboot", body
        hashed = sim.cloudinit(vmid)["config"]["password"]["hash"]
        assert crypt.crypt(body["password"], hashed) == hashed
        deadline = time.monotonic() + 15
        while (tasks := ok(call(a, "GET", f"/api/server/{sid}/tasks", tok)))[0]["status"] \
                in ("queued", "running"):
            assert time.monotonic() < deadline, tasks
            time.sleep(0.05)
        assert tasks[0]["action"] == "password" and tasks[0]["status"] == "ok", tasks
    finally:
        sim.guest(vmid, agent_running=True)
    body = ok(call(a, "POST", f"/api/server/{sid}/password", tok))
    world.secrets.append(body["password"])
    assert set(body) == {"status", "password"}, body
    assert sim.passwords(vmid)["root"]["source"] == "agent"


def test_resize_of_a_running_kvm_server_says_what_waits_for_a_restart(srv, sim, world,
                                                                      kvm_server):
    sid, vmid = kvm_server["id"], kvm_server["proxmoxId"]
    wait_guest(sim, vmid, "running")
    body = ok(call(srv, "PUT", f"/api/server/{sid}/resize", world.tok["alice"],
                   {"cores": 3, "memory": 3072}))
    assert body["data"]["pending"] == ["cores", "memory"], body
    assert "restarted" in body["data"]["note"], body
    wait_idle(srv, world, sid)
    # applied at the next start: a restart (stop + start) brings them
    ok(call(srv, "POST", f"/api/server/{sid}/restart", world.tok["alice"]))
    wait_idle(srv, world, sid)
    conf = sim.guest_info(vmid)["conf"]
    assert int(conf["cores"]) == 3 and int(conf["memory"]) == 3072, conf


def test_snapshot_with_the_vms_ram(srv, sim, world, kvm_server):
    sid, vmid = kvm_server["id"], kvm_server["proxmoxId"]
    wait_idle(srv, world, sid)
    ok(call(srv, "POST", f"/api/server/{sid}/snapshots", world.tok["alice"],
            {"snapname": "withram", "vmstate": True}))
    wait_idle(srv, world, sid)
    snaps = {s["name"]: s for s in sim.data("GET", f"/nodes/{NODE}/qemu/{vmid}/snapshot")}
    assert snaps["withram"].get("vmstate") in (1, "1"), snaps
    ok(call(srv, "DELETE", f"/api/server/{sid}/snapshots", world.tok["alice"],
            {"snapname": "withram"}))
    wait_idle(srv, world, sid)


def test_vmstate_is_for_kvm_servers_only(srv, sim, world):
    body = create(srv, world, 1, tariff_id=1)
    wait_idle(srv, world, body["id"])
    r = call(srv, "POST", f"/api/server/{body['id']}/snapshots", world.tok["alice"],
             {"snapname": "withram", "vmstate": True})
    err(r, 400, "vmstate is for KVM servers")
    assert task_list(srv, world, body["id"])[0]["action"] == "create"


# ------------------------------------------------------------------ reinstall --

def reinstall(srv, world, sid, os_id, who="alice", **extra):
    return call(srv, "POST", f"/api/server/{sid}/reinstall", world.tok[who],
                dict({"osId": os_id}, **extra))


def test_reinstall_a_container(srv, sim, world, database):
    """Same vmid, network and resources; a new root password (set as its hash), shown once;
    snapshots go, and only with confirm."""
    body = create(srv, world, 1, tariff_id=2)
    sid, vmid = body["id"], body["proxmoxId"]
    wait_idle(srv, world, sid)
    wait_guest(sim, vmid, "running")
    before = sim.guest_info(vmid)["conf"]
    ok(call(srv, "POST", f"/api/server/{sid}/snapshots", world.tok["alice"],
            {"snapname": "before"}))
    wait_idle(srv, world, sid)

    r = reinstall(srv, world, sid, 2)
    err(r, 409, "reinstalling deletes this server's 1 snapshot")
    out = ok(reinstall(srv, world, sid, 2, confirm=True))
    world.secrets.append(out["rootPassword"])
    assert out["status"] == "success" and out["action"] == "reinstall", out
    assert out["snapshotsDeleted"] == ["before"] and PASSWORD.match(out["rootPassword"]), out
    assert UPID.match(out["taskId"])["type"] == "vzdestroy", out
    tasks = wait_idle(srv, world, sid)
    assert tasks[0]["action"] == "reinstall" and tasks[0]["status"] == "ok", tasks
    wait_guest(sim, vmid, "running")
    g = sim.guest_info(vmid)
    after = g["conf"]
    assert after["net0"] == before["net0"] and after["rootfs"] == before["rootfs"], after
    assert after["cores"] == before["cores"] and after["memory"] == before["memory"], after
    assert after["ostype"] == "debian", after      # os 2: Debian 12
    hashed = g["passwords"]["root"]["hash"]
    assert crypt.crypt(out["rootPassword"], hashed) == hashed
    assert not [s for s in sim.data("GET", f"/nodes/{NODE}/lxc/{vmid}/snapshot")
                if s["name"] != "current"]
    rec = server(srv, world, sid)
    assert rec["status"] == "running" and rec["osId"] == 2 and rec["proxmoxId"] == vmid, rec


def test_reinstall_refuses_the_other_kind_and_strangers(srv, sim, world, kvm_os, kvm_server):
    sid = kvm_server["id"]
    err(reinstall(srv, world, sid, 1), 422, "for lxc servers")
    err(reinstall(srv, world, sid, kvm_os, who="bob"), 404)
    err(reinstall(srv, world, sid, "1"), 400)


def test_reinstall_a_kvm_server(srv, sim, world, database, kvm_os, kvm_server):
    sid, vmid = kvm_server["id"], kvm_server["proxmoxId"]
    before = sim.guest_info(vmid)["conf"]
    out = ok(reinstall(srv, world, sid, kvm_os))
    world.secrets.append(out["rootPassword"])
    assert UPID.match(out["taskId"])["type"] == "qmstop", out
    tasks = wait_idle(srv, world, sid)
    assert tasks[0]["status"] == "ok", tasks
    wait_guest(sim, vmid, "running")
    after = sim.guest_info(vmid)["conf"]
    assert after["net0"] == before["net0"] and after["ipconfig0"] == before["ipconfig0"]
    assert re.search(r"size=20G", after["scsi0"]), after
    hashed = sim.cloudinit(vmid)["config"]["password"]["hash"]
    assert crypt.crypt(out["rootPassword"], hashed) == hashed
    assert server(srv, world, sid)["status"] == "running"


def test_no_secret_in_the_logs(srv, sim, world):
    assert world.secrets
    text = srv.error_log.read_text(errors="replace") + srv.access_log.read_text(errors="replace")
    for s in world.secrets:
        assert s not in text
    assert "$6$" not in text, "a password hash is in Apache's logs"


# ------------------------------------------------------- seed 003 on a KVM server --

def test_seed_003_flow_on_a_kvm_server(srv, sim, world, kvm_os, database):
    """Seed 003's requests with its own bodies (only osId names the KVM entry), each answer
    in the seed's shape: create, list, detail, status with rrdData, stop/start/restart,
    password (the guest agent), resize, snapshots, console (the panel's VNC page), delete."""
    from test_seeds_verbatim import conforms, seed003_endpoints
    eps = seed003_endpoints()
    tok = world.tok["alice"]

    def api(method, path, body=None):
        return call(srv, method, "/api" + path, tok, body)

    def done(sid):
        tasks = wait_idle(srv, world, sid)
        assert tasks[0]["status"] == "ok", tasks

    ep = eps[("POST", "/server/create")]
    made = ok(api("POST", "/server/create", dict(ep["body"], osId=kvm_os)), 201)
    world.secrets.append(made["rootPassword"])
    conforms(made, ep["answer"], "POST /server/create")
    sid, vmid = made["id"], made["proxmoxId"]
    done(sid)
    wait_guest(sim, vmid, "running")
    item = {k: v for k, v in eps[("GET", "/server")]["answer"][0].items() if k != "rootPassword"}
    conforms(ok(api("GET", "/server")), [item], "GET /server")
    conforms(ok(api("GET", f"/server/{sid}")), eps[("GET", "/server/:id")]["answer"])
    st = ok(api("GET", f"/server/{sid}/status"))
    conforms(st, eps[("GET", "/server/:id/status")]["answer"], "GET /server/:id/status")
    assert st["stats"]["data"]["vmid"] == vmid and st["stats"]["data"]["rrdData"], st
    for verb, after in (("stop", "stopped"), ("start", "running"), ("restart", "running")):
        body = ok(api("POST", f"/server/{sid}/{verb}"))
        conforms(body, eps[("POST", f"/server/:id/{verb}")]["answer"], verb)
        assert UPID.match(body["taskId"])["type"].startswith("qm"), body
        done(sid)
        wait_guest(sim, vmid, after)
    # seed 001's reboot: the guest's own (ACPI) reboot, qmreboot
    rb = ok(api("POST", f"/vps/{sid}/reboot"))
    assert rb["action"] == "reboot" and UPID.match(rb["taskId"])["type"] == "qmreboot", rb
    done(sid)
    pw = ok(api("POST", f"/server/{sid}/password"))
    world.secrets.append(pw["password"])
    conforms(pw, eps[("POST", "/server/:id/password")]["answer"], "password")
    assert sim.passwords(vmid)["root"]["sha256"] == \
        hashlib.sha256(pw["password"].encode()).hexdigest()
    ep = eps[("PUT", "/server/:id/resize")]
    rz = ok(api("PUT", f"/server/{sid}/resize", ep["body"]))
    conforms(rz, ep["answer"], "resize")
    done(sid)
    conf = sim.guest_info(vmid)["conf"]
    assert re.search(r"size=80G", conf["scsi0"]), conf
    for method, path in (("POST", "/server/:id/snapshots"), ("GET", "/server/:id/snapshots"),
                         ("POST", "/server/:id/snapshots/rollback"),
                         ("DELETE", "/server/:id/snapshots")):
        ep = eps[(method, path)]
        out = ok(api(method, path.replace(":id", str(sid)), ep["body"]))
        conforms(out, ep["answer"], f"{method} {path}")
        if method != "GET":
            done(sid)
    ep = eps[("POST", "/server/console")]
    r = api("POST", "/server/console", {"vmid": vmid})
    conforms(ok(r), ep["answer"], "console")
    # a KVM server's console is a VNC screen on the panel's own page, not Proxmox's noVNC
    world.secrets.append(console_token(r, srv.url("/"), "vnc", sid, sim, database))
    gone = ok(api("DELETE", f"/server/{sid}"))
    conforms(gone, eps[("DELETE", "/server/:id")]["answer"], "delete")
    wait_idle(srv, world, sid)
    assert api("GET", f"/server/{sid}").status_code == 404
    with pytest.raises(RuntimeError):
        sim.guest_info(vmid)


# ------------------------------------------------------------------- SSH keys --

def test_chosen_ssh_keys_reach_the_guest(srv, sim, world, kvm_os, tmp_path):
    """Keys of /api/account/ssh-keys chosen at create (sshKeyIds): a container gets them as
    ssh-public-keys, a KVM server as cloud-init's sshkeys; another account's key id is a
    400 and nothing is made."""
    from test_ssh_keys import Keygen
    gen = Keygen(tmp_path)
    ids, lines = [], []
    for name in ("laptop", "ci"):
        pub, _, _ = gen.make("ed25519", comment=f"{name}@example")
        k = ok(call(srv, "POST", "/api/account/ssh-keys", world.tok["alice"],
                    {"name": name, "publicKey": pub}), 201)["key"]
        ids.append(k["id"])
        lines.append(k["publicKey"])
    pub, _, _ = gen.make("ed25519", comment="bob@example")
    bobs = ok(call(srv, "POST", "/api/account/ssh-keys", world.tok["bob"],
                   {"name": "bob", "publicKey": pub}), 201)["key"]["id"]
    r = call(srv, "POST", "/api/server/create", world.tok["alice"],
             {"osId": kvm_os, "tariffId": 2, "sshKeyIds": [ids[0], bobs]})
    assert err(r, 400)["fields"] == {"sshKeyIds": f"unknown SSH key id {bobs}"}, r.text
    for os_id in (kvm_os, 1):
        made = ok(call(srv, "POST", "/api/server/create", world.tok["alice"],
                       {"osId": os_id, "tariffId": 2, "sshKeyIds": ids}), 201)
        world.secrets.append(made["rootPassword"])
        wait_idle(srv, world, made["id"])
        vmid = made["proxmoxId"]
        g = sim.guest_info(vmid)
        got = (sim.cloudinit(vmid)["config"]["sshkeys"] if os_id == kvm_os
               else g["ssh_public_keys"].split("\n"))
        assert got == lines, (os_id, got, lines)
