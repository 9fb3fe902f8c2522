"""ospab-admin's node and server commands (node-add, node-set, node-del, node-list, servers),
on SQLite and MariaDB: they run the admin API's core functions, so what they print is what
/api/admin/nodes and /api/admin/servers answer, their changes are audited as actor
admin/ospab-admin, and a refusal of the core is its message on stderr with exit status 2
(bad usage: 1). docs/operations.md "ospab-admin"."""

import json

import requests

import harness
from conftest import access_token, create_user, sql_exec, sql_quote, unique

ADMIN_ID = 1                    # sql/seed/demo.sql


def cli(database, *args, check=True):
    """ospab-admin on the module's database; the finished process."""
    try:
        return harness.admin(database.driver, database.params, *args, check=check)
    finally:
        database.after_admin()      # SQLite: files written as root go back to www-data


def refused(database, *args, status=2):
    """A run that must fail with that exit status and print nothing on stdout: its stderr."""
    p = cli(database, *args, check=False)
    assert p.returncode == status, (p.returncode, p.stdout, p.stderr)
    assert p.stdout == "", p.stdout
    return p.stderr


def node_add(database, **body):
    body.setdefault("name", unique("pve"))
    return json.loads(cli(database, "node-add", json.dumps(body)).stdout)["node"]


def node_list(database):
    return {n["id"]: n for n in json.loads(cli(database, "node-list").stdout)["nodes"]}


def servers(database, *filters):
    """`servers` with filters: the records, one JSON object a line."""
    out = cli(database, "servers", *filters).stdout
    return [json.loads(line) for line in out.splitlines()]


def audit(database, action, target_id):
    return [(r["actor_type"], r["actor_id"]) for r in database.query(
        "SELECT actor_type, actor_id FROM audit_log WHERE action = ? AND target_id = ? "
        "ORDER BY id", [action, str(target_id)])]


def admin_get(apache, path, params=None):
    r = requests.get(apache.url(path), params=params, timeout=30, headers={
        "Authorization": f"Bearer {access_token(apache, ADMIN_ID, role='admin')}"})
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


# ------------------------------------------------------------------------ nodes --

def test_node_add_then_node_list_shows_it(database):
    name = unique("pve")
    node = node_add(database, name=name, storage="local-lvm", mem_ratio=120, ssh_host="10.0.0.2")
    assert node["name"] == name and node["storage"] == "local-lvm", node
    assert node["mem_ratio"] == 120 and node["cpu_ratio"] == 400, node    # 400: the default
    assert node["accepts"] is True and node["sample"] is None, node
    assert node_list(database)[node["id"]] == node
    assert audit(database, "node.create", node["id"]) == [("admin", "ospab-admin")]


def test_node_list_is_what_the_admin_api_answers(database, apache):
    node_add(database)
    assert json.loads(cli(database, "node-list").stdout) == admin_get(apache, "/api/admin/nodes")


def test_node_set_changes_the_fields_given(database):
    node = node_add(database, storage="local-lvm", bridge="vmbr0")
    p = cli(database, "node-set", str(node["id"]), '{"cpu_ratio": 800, "accepts": false}')
    changed = json.loads(p.stdout)["node"]
    assert (changed["cpu_ratio"], changed["accepts"]) == (800, False), changed
    # the fields not given stay as they were
    assert {k: v for k, v in changed.items() if k not in ("cpu_ratio", "accepts")} \
        == {k: v for k, v in node.items() if k not in ("cpu_ratio", "accepts")}
    assert node_list(database)[node["id"]] == changed
    assert audit(database, "node.update", node["id"]) == [("admin", "ospab-admin")]


def test_node_add_with_a_bad_body_exits_2_with_the_core_message(database):
    before = node_list(database)
    err = refused(database, "node-add", json.dumps({"name": "no spaces!", "cpu_ratio": 1}))
    assert "ospab-admin: error: invalid node: name: must be a Proxmox node name" in err, err
    # the message counts the other bad field; the lines after it name it
    assert "(and 1 more)" in err and "cpu_ratio: must be an integer" in err, err
    err = refused(database, "node-add", "[1, 2]")
    assert "request body must be a JSON object" in err, err
    assert node_list(database) == before


def test_node_add_of_a_name_registered_already_exits_2(database):
    node = node_add(database)
    err = refused(database, "node-add", json.dumps({"name": node["name"]}))
    assert f"node '{node['name']}' is registered already" in err, err
    assert [n["name"] for n in node_list(database).values()].count(node["name"]) == 1


def test_node_commands_bad_usage_exits_1(database):
    node = node_add(database)
    assert "JSON argument" in refused(database, "node-add", "{name: x}", status=1)
    assert "ID must be a positive integer" in refused(database, "node-set", "0", "{}",
                                                      status=1)
    assert "ID must be a positive integer" in refused(database, "node-del", "pve1", status=1)
    assert "usage: ospab-admin [OPTIONS] node-set ID JSON" in refused(
        database, "node-set", str(node["id"]), status=1)
    assert "only apply to servers" in refused(database, "--status", "running", "node-list",
                                              status=1)
    assert node_list(database)[node["id"]] == node


def test_node_del_removes_it(database):
    keep, gone = node_add(database), node_add(database)
    p = cli(database, "node-del", str(gone["id"]))
    assert json.loads(p.stdout)["status"] == "success", p.stdout
    nodes = node_list(database)
    assert gone["id"] not in nodes and nodes[keep["id"]] == keep
    assert audit(database, "node.delete", gone["id"]) == [("admin", "ospab-admin")]
    # gone: a second delete and a change are refused as the API's 404s are
    assert "node not found" in refused(database, "node-del", str(gone["id"]))
    assert "node not found" in refused(database, "node-set", str(gone["id"]), '{"accepts": true}')


# ---------------------------------------------------------------------- servers --

def test_servers_lists_and_filters(database, api):
    user, other = create_user(api), create_user(api)
    node = unique("pve")
    run = api.create_vps(user_id=user["id"], status="running", node=node, vmid=4101)
    stop = api.create_vps(user_id=user["id"], status="stopped")
    theirs = api.create_vps(user_id=other["id"], status="running", node=node, vmid=4102)

    every = {s["id"]: s for s in servers(database)}
    for rec in (run, stop, theirs):
        assert every[rec["id"]] == rec
    assert [s["id"] for s in servers(database)] == sorted(every)      # id order
    assert servers(database, "--user", str(user["id"])) == [run, stop]
    assert servers(database, "--user", str(user["id"]), "--status", "running") == [run]
    assert servers(database, "--status", "stopped", "--user", str(other["id"])) == []
    assert servers(database, "--node", node) == [run, theirs]
    # the route's own checks refuse a filter it cannot read
    assert "status: must be one of" in refused(database, "servers", "--status", "up")
    assert "user: must be a positive whole number" in refused(database, "servers", "--user",
                                                               "alice")


def test_servers_is_every_page_the_admin_api_hands_out(database, api, apache):
    """More servers than one page (200): the command follows the route's cursor to the end,
    and prints what the pages of GET /api/admin/servers hold."""
    user = create_user(api)
    rows = ", ".join("(" + ", ".join(sql_quote(v) for v in (
        f"bulk-{i}", "stopped", 1, 512, 5, "Debian 12", user["id"], "proxmox",
        "2026-01-02 03:04:05.678", "2026-01-02 03:04:05.678")) + ")" for i in range(250))
    sql_exec(database, "INSERT INTO vps (name, status, cpu, ram, disk, os, user_id, hypervisor, "
                       "created_at, updated_at) VALUES " + rows + ";")
    listed = servers(database, "--user", str(user["id"]))
    assert [s["name"] for s in listed] == [f"bulk-{i}" for i in range(250)]

    pages, params = [], {"user": user["id"], "limit": 100}
    while True:
        body = admin_get(apache, "/api/admin/servers", params)
        pages += body["servers"]
        if body["next"] is None:
            break
        params["after"] = body["next"]
    assert listed == pages
