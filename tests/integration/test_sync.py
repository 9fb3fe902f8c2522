"""The sync API (docs/sync-api.md) against a real Apache with mod_ospab, each
test once on SQLite and once on MariaDB."""

import json
import os
import re
import secrets
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import harness
from conftest import SEED_USER_ID, Api, new_vps, unique

DOC = harness.REPO / "docs" / "sync-api.md"
WWW_AUTHENTICATE = 'ApiKey realm="ospab", header="X-API-Key"'
VPS_KEYS = {"id", "external_id", "name", "status", "ip_address", "cpu", "ram", "disk", "os",
            "user_id", "hypervisor", "node", "vmid", "kind", "tariff_id", "os_id",
            "created_at", "updated_at"}
USER_KEYS = {"id", "email", "name", "role", "enabled", "created_at", "updated_at"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
MISSING = object()
NO_SUCH_ID = 987654321


def error_of(r, status):
    """Assert an error response of the documented shape and return its body."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    return body


def vps_count(database, name=None):
    if name is None:
        return database.count("SELECT COUNT(*) FROM vps")
    return database.count("SELECT COUNT(*) FROM vps WHERE name = ?", [name])


def vps_row(database, vps_id):
    rows = database.query("SELECT * FROM vps WHERE id = ?", [vps_id])
    return rows[0] if rows else None


def table_counts(database):
    return {t: database.count(f"SELECT COUNT(*) FROM {t}")
            for t in ("vps", "users", "audit_log", "idempotency_keys")}


def run_curl(command, apache, key):
    """Run a curl line from the docs/seeds through bash with the host, port and
    key replaced; returns (status, parsed body)."""
    command = re.sub(r"http://(localhost|127\.0\.0\.1):\d+", f"http://127.0.0.1:{apache.port}",
                     command.strip())
    command = command.replace("your_secret_api_key_here_min_32_chars_change_this", key)
    command += " -sS -w '\\n%{http_code}'"
    p = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30,
                       env={**os.environ, "OSPAB_SYNC_KEY": key})
    assert p.returncode == 0, p.stderr
    body, _, code = p.stdout.rpartition("\n")
    return int(code), json.loads(body)


def assert_seed_shape(status, body, expected_status=201):
    assert status == expected_status, body
    assert body["status"] == "success"
    assert body["message"] == "VPS synced successfully"
    vps = body["vps"]
    assert set(vps) >= VPS_KEYS, sorted(VPS_KEYS - set(vps))
    assert isinstance(vps["id"], int) and vps["id"] > 0
    assert TIMESTAMP.match(vps["created_at"]), vps["created_at"]
    assert TIMESTAMP.match(vps["updated_at"]), vps["updated_at"]
    return vps


# ------------------------------------------------------------ the seeds' curl --

SEED_001_CURL = """curl -X POST http://localhost:5050/api/vps/sync \\
  -H "Content-Type: application/json" \\
  -H "X-API-Key: your_secret_api_key_here_min_32_chars_change_this" \\
  -d '{"action":"create","vps":{"user_id":5,"name":"test","cpu":2,"ram":2048,"disk":50,"os":"Ubuntu 22.04","status":"creating","hypervisor":"proxmox"}}'"""

SEED_002_CURL = """curl -X POST http://localhost:5050/api/vps/sync \\
  -H "Content-Type: application/json" \\
  -H "X-API-Key: your_secret_api_key_here_min_32_chars_change_this" \\
  -d '{
    "action": "create",
    "vps": {
      "user_id": 5,
      "name": "test-vps-01",
      "status": "creating",
      "cpu": 2,
      "ram": 2048,
      "disk": 50,
      "os": "Ubuntu 22.04 LTS",
      "hypervisor": "proxmox"
    }
  }'"""


def doc_curl_create():
    """The create example of docs/sync-api.md, as written there."""
    text = DOC.read_text()
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        if "curl" in block and '"action":"create"' in block:
            return block
    raise AssertionError("docs/sync-api.md has no curl create example")


@pytest.mark.parametrize("example", ["docs", "seed-001", "seed-002"])
def test_curl_create_example(apache, database, example):
    command = {"docs": doc_curl_create, "seed-001": lambda: SEED_001_CURL,
               "seed-002": lambda: SEED_002_CURL}[example]()
    status, body = run_curl(command, apache, apache.sync_key)
    vps = assert_seed_shape(status, body)
    sent = json.loads(re.search(r"-d '(.*)'", command, re.S).group(1))["vps"]
    for k, v in sent.items():
        assert vps[k] == v, k
    for k in ("external_id", "ip_address", "node", "vmid", "kind", "tariff_id", "os_id"):
        assert vps[k] is None, k
    row = vps_row(database, vps["id"])
    assert row is not None, "the row is not in the database"
    assert row["name"] == sent["name"] and row["os"] == sent["os"]
    assert (row["cpu"], row["ram"], row["disk"], row["user_id"]) == ("2", "2048", "50", "5")
    assert (row["status"], row["hypervisor"]) == ("creating", "proxmox")


def test_update_status_to_running(api, database):
    vps = api.create_vps()
    # seed 000: updateVPSStatusOnPanel(createdVPS.id, 'running')
    r = api.vps("update", {"id": vps["id"], "status": "running"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success" and body["message"] == "VPS synced successfully"
    updated = body["vps"]
    assert updated["status"] == "running"
    for k in VPS_KEYS - {"status", "updated_at"}:
        assert updated[k] == vps[k], k          # partial: nothing else changed
    assert updated["updated_at"] >= vps["updated_at"]
    assert vps_row(database, vps["id"])["status"] == "running"
    # the docs' example: status and address together
    r = api.vps("update", {"id": vps["id"], "status": "stopped", "ip_address": "10.0.0.5"})
    assert r.status_code == 200, r.text
    row = vps_row(database, vps["id"])
    assert (row["status"], row["ip_address"]) == ("stopped", "10.0.0.5")


def test_update_by_external_id(api, database):
    ext = unique("ext")
    vps = api.create_vps(external_id=ext)
    r = api.vps("update", {"external_id": ext, "cpu": 4})
    assert r.status_code == 200, r.text
    assert r.json()["vps"]["id"] == vps["id"] and r.json()["vps"]["cpu"] == 4
    assert vps_row(database, vps["id"])["cpu"] == "4"


def test_update_with_id_can_set_external_id(api, database):
    vps = api.create_vps()
    ext = unique("ext")
    r = api.vps("update", {"id": vps["id"], "external_id": ext})
    assert r.status_code == 200, r.text
    assert vps_row(database, vps["id"])["external_id"] == ext


def test_delete_returns_the_record(api, database):
    vps = api.create_vps(status="running", ip_address="192.0.2.7")
    r = api.vps("delete", {"id": vps["id"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success" and body["message"] == "VPS synced successfully"
    assert body["vps"] == vps
    assert vps_row(database, vps["id"]) is None
    body = error_of(api.vps("delete", {"id": vps["id"]}), 404)
    assert body["error"] == "VPS not found"
    assert error_of(api.vps("update", {"id": vps["id"], "cpu": 3}), 404)["error"] == "VPS not found"


def test_update_unknown_id_404(api):
    assert error_of(api.vps("update", {"id": NO_SUCH_ID, "status": "running"}), 404)["error"] \
        == "VPS not found"
    error_of(api.vps("update", {"external_id": unique("nope"), "status": "running"}), 404)


# ------------------------------------------------------------------- validation --

INVALID_CREATE = [
    ("name", ""), ("name", "x" * 256), ("name", "a\x01b"), ("name", "line\nbreak"),
    ("name", "tab\there"), ("name", 5), ("name", None), ("name", MISSING),
    ("status", "deleted"), ("status", "Running"), ("status", None), ("status", 1),
    ("ip_address", "999.1.1.1"), ("ip_address", "not-an-ip"), ("ip_address", "10.0.0.1/24"),
    ("ip_address", "1.2.3"), ("ip_address", "2001:db8:::1"), ("ip_address", 10),
    ("cpu", 0), ("cpu", -1), ("cpu", 1025), ("cpu", None), ("cpu", MISSING),
    ("ram", 127), ("ram", 4194305), ("ram", 0), ("ram", None), ("ram", MISSING),
    ("disk", 0), ("disk", 1048577), ("disk", None), ("disk", MISSING),
    ("os", "x" * 101), ("os", 22), ("os", "bad\x7fchar"),
    ("user_id", 0), ("user_id", -5), ("user_id", None), ("user_id", MISSING),
    ("hypervisor", "docker"), ("hypervisor", "Proxmox"), ("hypervisor", None),
    ("node", "pve_1"), ("node", "pve 1"), ("node", "n" * 64), ("node", ""), ("node", 7),
    ("vmid", 99), ("vmid", 1000000000), ("vmid", 0),
    ("kind", "vm"), ("kind", "LXC"),
    ("tariff_id", 0), ("tariff_id", -1), ("os_id", 0), ("os_id", -3),
    ("external_id", ""), ("external_id", "x" * 129), ("external_id", "a\tb"),
    ("external_id", 12345),
    ("id", 1), ("created_at", "2026-11-22T17:20:00.123Z"),
    ("updated_at", "2026-11-22T17:20:00.123Z"),
]


def _case_id(case):
    field, value = case
    if value is MISSING:
        return f"{field}-missing"
    text = repr(value)
    return f"{field}={text[:20]}" + ("..." if len(text) > 20 else "")


@pytest.mark.parametrize("field,value", INVALID_CREATE, ids=map(_case_id, INVALID_CREATE))
def test_create_rejects_invalid_field(api, database, field, value):
    body = new_vps(node=unique("n")[:20], vmid=4242) if field == "vmid" else new_vps()
    if value is MISSING:
        del body[field]
    else:
        body[field] = value
    before = vps_count(database)
    err = error_of(api.vps("create", body), 400)
    assert err["error"].startswith("invalid vps"), err
    assert isinstance(err.get("fields"), dict), err
    assert isinstance(err["fields"].get(field), str) and err["fields"][field], err
    assert set(err["fields"]) == {field}, err          # the other fields were fine
    assert vps_count(database) == before


def test_ram_in_gb_gets_a_hint(api, database):
    body = new_vps(ram=8)
    err = error_of(api.vps("create", body), 400)
    msg = err["fields"]["ram"]
    assert "MB" in msg and "did you send GB" in msg and "8" in msg, msg
    assert "ram" in err["error"]
    assert vps_count(database, body["name"]) == 0


def test_every_error_reported_at_once(api, database):
    body = new_vps(cpu=0, ram=8, hypervisor="docker", cpus=4)
    err = error_of(api.vps("create", body), 400)
    assert set(err["fields"]) == {"cpu", "ram", "hypervisor", "cpus"}, err
    assert err["fields"]["cpus"] == "unknown field"
    assert vps_count(database, body["name"]) == 0


@pytest.mark.parametrize("field", ["cpus", "memory", "password", "api_key"])
def test_unknown_field_is_named(api, database, field):
    body = new_vps(**{field: 4})
    err = error_of(api.vps("create", body), 400)
    assert err["fields"] == {field: "unknown field"}, err
    assert field in err["error"]
    assert vps_count(database, body["name"]) == 0


INT_FIELDS = ["cpu", "ram", "disk", "user_id", "vmid", "tariff_id", "os_id"]
NOT_INTEGERS = ["2", 2.5, True, 2048.0]


@pytest.mark.parametrize("value", NOT_INTEGERS, ids=["string", "real", "bool", "real-whole"])
@pytest.mark.parametrize("field", INT_FIELDS)
def test_integers_must_be_json_integers(api, database, field, value):
    body = new_vps(**{field: value})
    if field == "vmid":
        body["node"] = unique("n")[:20]
    err = error_of(api.vps("create", body), 400)
    assert field in err["fields"], err
    assert vps_count(database, body["name"]) == 0


def test_update_rejects_invalid_fields(api, database):
    vps = api.create_vps()
    for change in ({"cpu": 0}, {"ram": 8}, {"status": "gone"}, {"created_at": "x"},
                   {"name": ""}, {"bogus": 1}):
        err = error_of(api.vps("update", {"id": vps["id"], **change}), 400)
        assert set(err["fields"]) == set(change), err
    row = vps_row(database, vps["id"])
    assert (row["cpu"], row["ram"], row["status"], row["name"]) == \
        ("2", "2048", "creating", vps["name"])


@pytest.mark.parametrize("action", ["update", "delete"])
def test_update_delete_need_an_identifier(api, action):
    err = error_of(api.vps(action, {"status": "running"} if action == "update" else {}), 400)
    assert "fields" in err or "id" in err["error"], err


@pytest.mark.parametrize("payload", [
    {"vps": {"name": "x"}},                              # no action
    {"action": "destroy", "vps": {"id": 1}},              # unknown action
    {"action": 1, "vps": {"id": 1}},
    {"action": "create"},                                 # no vps
    {"action": "create", "vps": [1, 2]},                  # vps not an object
    {"action": "create", "vps": "x"},
], ids=["no-action", "bad-action", "action-int", "no-vps", "vps-array", "vps-string"])
def test_bad_envelope(api, database, payload):
    before = vps_count(database)
    error_of(api.post("/api/vps/sync", json=payload), 400)
    assert vps_count(database) == before


def test_unknown_top_level_field(api, database):
    body = new_vps()
    err = error_of(api.post("/api/vps/sync", json={"action": "create", "vps": body,
                                                     "extra": 1}), 400)
    assert "extra" in json.dumps(err), err
    assert vps_count(database, body["name"]) == 0


def _tariff_id(database):
    v = database.scalar("SELECT MIN(id) FROM tariffs")
    return int(v) if v is not None else None


def _os_id(database):
    v = database.scalar("SELECT MIN(id) FROM os_templates")
    return int(v) if v is not None else None


VALID_CREATE = [
    ("cpu", 1), ("cpu", 1024), ("ram", 128), ("ram", 4194304), ("disk", 1), ("disk", 1048576),
    ("name", "x" * 255), ("name", "я" * 255), ("name", "Сервер №1 (test) — ok"),
    ("os", "o" * 100), ("os", None), ("ip_address", "192.0.2.1"), ("ip_address", "2001:db8::1"),
    ("ip_address", "::1"), ("ip_address", None), ("status", "creating"), ("status", "running"),
    ("status", "stopped"), ("status", "suspended"), ("hypervisor", "proxmox"),
    ("hypervisor", "vmware"), ("hypervisor", "hyperv"), ("hypervisor", "kvm"),
    ("hypervisor", "xen"), ("kind", "lxc"), ("kind", "qemu"), ("kind", None),
    ("vmid", 100), ("vmid", 999999999), ("node", "pve-1.example.com"), ("node", None),
    ("tariff_id", None), ("os_id", None), ("tariff_id", "seeded"), ("os_id", "seeded"),
    ("external_id", "e" * 128), ("external_id", None),
]


@pytest.mark.parametrize("field,value", VALID_CREATE, ids=map(_case_id, VALID_CREATE))
def test_create_accepts_boundary_values(api, database, field, value):
    if value == "seeded":
        value = _tariff_id(database) if field == "tariff_id" else _os_id(database)
        assert value is not None, f"sql/seed/demo.sql has no {field}"
    body = new_vps(**{field: value})
    if field == "vmid":
        body["node"] = unique("n")[:20]
    if field == "node" and value:
        body["node"] = value + "-" + secrets.token_hex(3)
        value = body["node"]
    if field == "external_id" and value:
        body[field] = value = value[:-12] + secrets.token_hex(6)
    r = api.vps("create", body)
    assert r.status_code == 201, r.text
    vps = r.json()["vps"]
    assert vps[field] == value
    row = vps_row(database, vps["id"])
    assert row[field] == (None if value is None else str(value))


def test_status_defaults_to_creating_and_hypervisor_to_proxmox(api):
    body = new_vps()
    del body["status"], body["hypervisor"], body["os"]
    r = api.vps("create", body)
    assert r.status_code == 201, r.text
    vps = r.json()["vps"]
    assert (vps["status"], vps["hypervisor"], vps["os"]) == ("creating", "proxmox", None)


# ------------------------------------------------------------------ references --

@pytest.mark.parametrize("field", ["user_id", "tariff_id", "os_id"])
def test_missing_reference_422(api, database, field):
    body = new_vps(**{field: NO_SUCH_ID})
    err = error_of(api.vps("create", body), 422)
    assert field in err["fields"], err
    if field == "user_id":
        assert err["fields"]["user_id"] == f"user {NO_SUCH_ID} does not exist"
    assert vps_count(database, body["name"]) == 0


def test_update_to_missing_user_422(api, database):
    vps = api.create_vps()
    err = error_of(api.vps("update", {"id": vps["id"], "user_id": NO_SUCH_ID}), 422)
    assert "user_id" in err["fields"]
    assert vps_row(database, vps["id"])["user_id"] == str(SEED_USER_ID)


def test_constraint_failure_the_recheck_cannot_explain(api, database):
    """An INSERT refused for a foreign key that the re-check then finds in place: on
    MariaDB that is a Galera node checking the key before another node's write (the user)
    was applied, a write conflict, run again, so the create succeeds, once. A test trigger
    stands in for the race: it refuses the insert of one name once, counted in a
    non-transactional Aria table that the statement's rollback does not undo. (Not on
    SQLite, where writers are serialised and this path answers the generic 409: a trigger
    created there would expire the running Apache's prepared statements.)"""
    from conftest import sql_exec
    if not isinstance(database, harness.MariadbDatabase):
        pytest.skip("MySQL/Galera only: SQLite serialises writers")
    name = unique("fk-race")
    sql_exec(database, "CREATE TABLE test_fail_once (n INT NOT NULL) ENGINE=Aria;\n"
             "INSERT INTO test_fail_once VALUES (1);\n"
             "DELIMITER //\n"
             "CREATE TRIGGER test_fk_race BEFORE INSERT ON vps FOR EACH ROW\n"
             f"IF NEW.name = '{name}' AND (SELECT n FROM test_fail_once) > 0 THEN\n"
             "  UPDATE test_fail_once SET n = n - 1;\n"
             "  SIGNAL SQLSTATE '23000' SET MYSQL_ERRNO = 1452,\n"
             "    MESSAGE_TEXT = 'Cannot add or update a child row: test';\n"
             "END IF //\n"
             "DELIMITER ;\n")
    try:
        r = api.vps("create", new_vps(name=name))
        assert r.status_code == 201, r.text
        assert database.scalar("SELECT n FROM test_fail_once") == "0"   # it did refuse once
        assert vps_count(database, name) == 1
    finally:
        sql_exec(database, "DROP TRIGGER test_fk_race; DROP TABLE test_fail_once;")


# ------------------------------------------------------------------ uniqueness --

def test_external_id_upsert(api, database):
    ext = unique("billing")
    body = new_vps(external_id=ext)
    r1 = api.vps("create", body)
    assert r1.status_code == 201, r1.text
    audit_before = database.count("SELECT COUNT(*) FROM audit_log")
    # a retry without Idempotency-Key, even with other values, creates nothing
    r2 = api.vps("create", {**body, "cpu": 8})
    vps = assert_seed_shape(r2.status_code, r2.json(), expected_status=200)
    assert vps == r1.json()["vps"]
    assert database.count("SELECT COUNT(*) FROM vps WHERE external_id = ?", [ext]) == 1
    assert vps_row(database, vps["id"])["cpu"] == "2"
    assert database.count("SELECT COUNT(*) FROM audit_log") == audit_before


def test_duplicate_external_id_on_update_409(api, database):
    a = api.create_vps(external_id=unique("ext"))
    b = api.create_vps(external_id=unique("ext"))
    error_of(api.vps("update", {"id": b["id"], "external_id": a["external_id"]}), 409)
    assert vps_row(database, b["id"])["external_id"] == b["external_id"]


def test_duplicate_node_vmid_409(api, database):
    node = unique("pve")[:20]
    api.create_vps(node=node, vmid=101)
    body = new_vps(node=node, vmid=101)
    error_of(api.vps("create", body), 409)
    assert vps_count(database, body["name"]) == 0
    api.create_vps(node=node, vmid=102)
    api.create_vps(node=node + "x", vmid=101)


# ----------------------------------------------------------------- authentication --

def test_missing_key_401(api, database):
    body = new_vps()
    r = api.vps("create", body, key=None)
    assert error_of(r, 401) == {"error": "missing X-API-Key header"}
    assert r.headers.get("WWW-Authenticate") == WWW_AUTHENTICATE
    assert vps_count(database, body["name"]) == 0


def _wrong_keys(key):
    flipped = key[:-1] + ("0" if key[-1] != "0" else "1")
    return {"same-length": flipped, "short": "short", "prefix": key[:-1],
            "longer": key + "0", "32-chars": "a" * 32, "upper-case": key.upper()
            if key.upper() != key else key + "X", "inner-space": key[:32] + " " + key[32:]}


@pytest.mark.parametrize("kind", ["same-length", "short", "prefix", "longer", "32-chars",
                                  "upper-case", "inner-space"])
def test_wrong_key_401(api, database, kind):
    body = new_vps()
    r = api.vps("create", body, key=_wrong_keys(api.key)[kind])
    assert error_of(r, 401) == {"error": "invalid API key"}
    assert r.headers.get("WWW-Authenticate") == WWW_AUTHENTICATE
    assert vps_count(database, body["name"]) == 0


def test_empty_key_401(api, database):
    body = new_vps()
    r = api.vps("create", body, key="")
    error_of(r, 401)
    assert r.headers.get("WWW-Authenticate") == WWW_AUTHENTICATE
    assert vps_count(database, body["name"]) == 0


def test_header_name_is_case_insensitive(api):
    r = api.post("/api/vps/sync", json={"action": "create", "vps": new_vps()}, key=None,
                 headers={"x-api-key": api.key})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("where", ["api_key", "X-API-Key", "key"])
def test_key_in_body_is_not_accepted(api, database, where):
    body = new_vps()
    r = api.post("/api/vps/sync", json={"action": "create", "vps": body, where: api.key},
                 key=None)
    error_of(r, 401)
    assert r.headers.get("WWW-Authenticate") == WWW_AUTHENTICATE
    r = api.post("/api/vps/sync", json={"action": "create", "vps": {**body, where: api.key}},
                 key=None)
    error_of(r, 401)
    assert vps_count(database, body["name"]) == 0


def test_key_in_query_or_bearer_is_not_accepted(start_apache, database):
    # a separate Apache: the access log of this one will hold the key
    a = start_apache()
    api = Api(a)
    body = new_vps()
    for q in ("api_key", "key", "X-API-Key"):
        r = api.post(f"/api/vps/sync?{q}={a.sync_key}", json={"action": "create", "vps": body},
                     key=None)
        error_of(r, 401)
    r = api.post("/api/vps/sync", json={"action": "create", "vps": body}, key=None,
                 headers={"Authorization": f"Bearer {a.sync_key}"})
    error_of(r, 401)
    assert vps_count(database, body["name"]) == 0


def test_authentication_comes_before_parsing(api):
    r = api.post("/api/vps/sync", data=b"{not json", key=None)
    assert error_of(r, 401) == {"error": "missing X-API-Key header"}
    r = api.post("/api/vps/sync", data=b"{not json", key="wrong" * 8)
    assert error_of(r, 401) == {"error": "invalid API key"}


# ------------------------------------------------------------------ content type --

@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/jsonx",
                                   "text/json"])
def test_content_type_must_be_json_415(api, database, ctype):
    body = new_vps()
    r = api.post("/api/vps/sync", data=json.dumps({"action": "create", "vps": body}).encode(),
                 content_type=ctype)
    assert error_of(r, 415) == {"error": "Content-Type must be application/json"}
    assert vps_count(database, body["name"]) == 0


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8",
                                   "application/json;charset=UTF-8", "Application/JSON"])
def test_content_type_variants_accepted(api, ctype):
    r = api.post("/api/vps/sync", data=json.dumps({"action": "create", "vps": new_vps()}).encode(),
                 content_type=ctype)
    assert r.status_code == 201, r.text


# ------------------------------------------------------------------- body size --

LIMIT = 1048576


def padded_body(vps, size):
    """A valid create request of exactly `size` bytes (JSON white space pads it)."""
    raw = json.dumps({"action": "create", "vps": vps})
    assert len(raw) < size
    return (raw[:-1] + " " * (size - len(raw)) + "}").encode()


def test_body_of_exactly_the_limit_is_accepted(api, database):
    body = new_vps()
    r = api.post("/api/vps/sync", data=padded_body(body, LIMIT))
    assert r.status_code == 201, r.text
    assert vps_count(database, body["name"]) == 1


def test_body_over_the_limit_413(api, database):
    body = new_vps()
    r = api.post("/api/vps/sync", data=padded_body(body, LIMIT + 1))
    assert error_of(r, 413) == {"error": "request body too large (limit 1048576 bytes)"}
    assert vps_count(database, body["name"]) == 0


def test_chunked_body_over_the_limit_413(api, database):
    body = new_vps()
    data = padded_body(body, 2 * LIMIT)

    def chunks():
        for i in range(0, len(data), 65536):
            yield data[i:i + 65536]

    r = api.post("/api/vps/sync", data=chunks())
    assert error_of(r, 413) == {"error": "request body too large (limit 1048576 bytes)"}
    assert vps_count(database, body["name"]) == 0


def test_chunked_body_within_the_limit(api, database):
    body = new_vps()
    data = json.dumps({"action": "create", "vps": body}).encode()
    r = api.post("/api/vps/sync", data=iter([data[:10], data[10:]]))
    assert r.status_code == 201, r.text


def test_max_body_size_directive(start_apache, database):
    a = start_apache(extra_conf=["OspabMaxBodySize 1024"])
    api = Api(a)
    body = new_vps()
    r = api.post("/api/vps/sync", data=padded_body(body, 1025))
    assert error_of(r, 413) == {"error": "request body too large (limit 1024 bytes)"}
    r = api.post("/api/vps/sync", data=padded_body(body, 1024))
    assert r.status_code == 201, r.text


# ------------------------------------------------------------- malformed bodies --

MALFORMED = {
    "truncated": b'{"action":"create",',
    "trailing-comma": b'{"action":"create","vps":{"name":"x",}}',
    "single-quotes": b"{'action':'create'}",
    "trailing-garbage": b'{"action":"create","vps":{}} x',
    "two-objects": b'{"action":"create"}{"action":"create"}',
    "nan": b'{"action":"create","vps":{"cpu":NaN}}',
    "white-space": b"   \n ",
    "deep-nesting": b'{"a":' + b"[" * 100000 + b"]" * 100000 + b"}",
    "huge-integer": b'{"action":"create","vps":{"cpu":123456789012345678901234567890}}',
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_json_400(api, database, name):
    before = vps_count(database)
    err = error_of(api.post("/api/vps/sync", data=MALFORMED[name]), 400)
    assert err["error"].startswith("malformed JSON"), err
    for k in ("line", "column", "position"):
        assert isinstance(err.get(k), int) and not isinstance(err.get(k), bool), err
    assert vps_count(database) == before


def test_empty_body_400(api, database):
    before = vps_count(database)
    error_of(api.post("/api/vps/sync", data=b""), 400)
    assert vps_count(database) == before


def test_malformed_json_position(api):
    data = b'{\n  "action": "create",\n  "vps": {oops}\n}'
    err = error_of(api.post("/api/vps/sync", data=data), 400)
    assert err["line"] == 3, err
    assert data[:err["position"]].count(b"\n") == 2, err      # position points into line 3
    assert 1 <= err["column"] <= len("  \"vps\": {oops}") + 1, err


INVALID_UTF8 = {
    "ff": b"\xff\xfe",
    "overlong-slash": b"\xc0\xaf",
    "truncated-sequence": b"\xe2\x82",
    "encoded-surrogate": b"\xed\xa0\x80",
    "latin1": "café".encode("latin-1"),
    "escaped-lone-surrogate": b"\\ud800",
}


@pytest.mark.parametrize("name", list(INVALID_UTF8))
def test_invalid_utf8_400(api, database, name):
    before = vps_count(database)
    data = b'{"action":"create","vps":{"user_id":5,"name":"bad' + INVALID_UTF8[name] + \
        b'","cpu":2,"ram":2048,"disk":50}}'
    err = error_of(api.post("/api/vps/sync", data=data), 400)
    assert err["error"].startswith("malformed JSON"), err
    assert vps_count(database) == before


def test_nul_character_refused(api, database):
    before = vps_count(database)
    error_of(api.post("/api/vps/sync", data=b'{"action":"create","vps":{"user_id":5,'
                      b'"name":"a\\u0000b","cpu":2,"ram":2048,"disk":50}}'), 400)
    assert vps_count(database) == before


@pytest.mark.parametrize("data", [b"[]", b'[{"action":"create"}]', b'"create"', b"42", b"null",
                                  b"true"])
def test_body_must_be_an_object(api, data):
    assert error_of(api.post("/api/vps/sync", data=data), 400) == \
        {"error": "request body must be a JSON object"}


# -------------------------------------------------------------- routes, methods --

@pytest.mark.parametrize("path", ["/api/nope", "/api/vps/syncx", "/api/vps/sync/batch/x",
                                  "/api/users", "/api/", "/api/vps/sync/x/y",
                                  "/api/users/sync/batch"])
def test_unknown_route_404(api, path):
    assert error_of(api.post(path, json={}), 404) == {"error": "not found"}


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/api/vps/sync", "/api/vps/sync/batch", "/api/users/sync"])
def test_wrong_method_405(api, method, path):
    r = api.request(method, path, json={})
    assert error_of(r, 405) == {"error": f"method {method} not allowed"}
    allow = [m.strip() for m in r.headers.get("Allow", "").split(",")]
    assert "POST" in allow, r.headers


# ------------------------------------------------------------------ idempotency --

def test_idempotency_key_replay(api, database):
    key = unique("idem")
    body = new_vps()
    r1 = api.vps("create", body, headers={"Idempotency-Key": key})
    assert r1.status_code == 201, r1.text
    assert r1.headers.get("Idempotent-Replayed") != "true"
    r2 = api.vps("create", body, headers={"Idempotency-Key": key})
    assert r2.status_code == 201, r2.text
    assert r2.headers.get("Idempotent-Replayed") == "true"
    assert r2.json() == r1.json()
    assert vps_count(database, body["name"]) == 1
    # same key, another body
    other = {**body, "cpu": 3}
    error_of(api.vps("create", other, headers={"Idempotency-Key": key}), 409)
    assert vps_count(database, body["name"]) == 1
    # a replayed update returns the first response, not the current state
    vps_id = r1.json()["vps"]["id"]
    ukey = unique("idem")
    u1 = api.vps("update", {"id": vps_id, "status": "running"}, headers={"Idempotency-Key": ukey})
    assert u1.status_code == 200
    assert api.vps("update", {"id": vps_id, "status": "stopped"}).status_code == 200
    u2 = api.vps("update", {"id": vps_id, "status": "running"}, headers={"Idempotency-Key": ukey})
    assert u2.status_code == 200 and u2.headers.get("Idempotent-Replayed") == "true"
    assert u2.json() == u1.json()
    assert vps_row(database, vps_id)["status"] == "stopped"


def test_idempotency_failed_request_can_be_corrected(api, database):
    key = unique("idem")
    body = new_vps(ram=8)
    error_of(api.vps("create", body, headers={"Idempotency-Key": key}), 400)
    body["ram"] = 8192
    r = api.vps("create", body, headers={"Idempotency-Key": key})
    assert r.status_code == 201, r.text
    assert r.headers.get("Idempotent-Replayed") != "true"
    assert vps_count(database, body["name"]) == 1


@pytest.mark.parametrize("key", ["", "k" * 256], ids=["empty", "256-chars"])
def test_idempotency_key_format(api, database, key):
    body = new_vps()
    error_of(api.vps("create", body, headers={"Idempotency-Key": key}), 400)
    assert vps_count(database, body["name"]) == 0


def test_idempotency_key_of_255_chars(api, database):
    body = new_vps()
    r = api.vps("create", body, headers={"Idempotency-Key": "k" * 243 + secrets.token_hex(6)})
    assert r.status_code == 201, r.text


def test_parallel_creates_with_one_idempotency_key(api, database):
    key = unique("idem")
    body = new_vps()
    barrier = threading.Barrier(20)

    def one(_):
        barrier.wait(timeout=30)
        return api.vps("create", body, headers={"Idempotency-Key": key})

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(one, range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 20, [(r.status_code, r.text) for r in responses]
    ids = {r.json()["vps"]["id"] for r in responses}
    assert len(ids) == 1, ids
    executed = [r for r in responses if r.headers.get("Idempotent-Replayed") != "true"]
    assert len(executed) == 1, len(executed)
    assert vps_count(database, body["name"]) == 1
    assert database.count("SELECT COUNT(*) FROM audit_log WHERE action = 'vps.create' "
                          "AND target_id = ?", [str(ids.pop())]) == 1


def in_parallel(n, fn):
    """Run fn(i) for i in range(n) in n threads released together."""
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait(timeout=30)
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def test_parallel_creates_with_one_external_id(api, database):
    """A billing site retrying without an Idempotency-Key, all at once."""
    ext = unique("ext")
    responses = in_parallel(10, lambda i: api.vps("create", new_vps(external_id=ext)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 9 + [201], [(r.status_code, r.text) for r in responses]
    assert len({r.json()["vps"]["id"] for r in responses}) == 1
    assert database.count("SELECT COUNT(*) FROM vps WHERE external_id = ?", [ext]) == 1


@pytest.mark.parametrize("what", ["node+vmid", "email", "user id"])
def test_parallel_duplicates_conflict(api, database, what):
    if what == "node+vmid":
        node = unique("pve")[:20]
        responses = in_parallel(10, lambda i: api.vps("create", new_vps(node=node, vmid=555)))
        count = database.count("SELECT COUNT(*) FROM vps WHERE node = ?", [node])
    elif what == "email":
        email = f"{unique('dup')}@example.com"
        responses = in_parallel(10, lambda i: api.user("create", new_user(email=email)))
        count = database.count("SELECT COUNT(*) FROM users WHERE email = ?", [email])
    else:
        uid = 100000 + secrets.randbelow(800000000)
        responses = in_parallel(10, lambda i: api.user("create", new_user(id=uid)))
        count = database.count("SELECT COUNT(*) FROM users WHERE id = ?", [uid])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 9, [(r.status_code, r.text) for r in responses]
    assert count == 1


def test_user_delete_racing_creates_leaves_no_orphans(api, database):
    uid = api.user("create", new_user()).json()["user"]["id"]

    def one(i):
        if i == 0:
            return api.user("delete", {"id": uid})
        return api.vps("create", new_vps(user_id=uid))

    responses = in_parallel(8, one)
    servers = database.count("SELECT COUNT(*) FROM vps WHERE user_id = ?", [uid])
    user_left = database.count("SELECT COUNT(*) FROM users WHERE id = ?", [uid])
    assert all(r.status_code in (200, 201, 409, 422) for r in responses), \
        [(r.status_code, r.text) for r in responses]
    assert servers == sum(r.status_code == 201 for r in responses[1:])
    assert user_left == (0 if responses[0].status_code == 200 else 1)
    assert not (servers and not user_left), "servers owned by a deleted user"


# ------------------------------------------------------------------------- batch --

def test_batch_of_1000_with_a_bad_item(api, database):
    prefix = unique("batch")
    ops = [{"action": "create", "vps": new_vps(name=f"{prefix}-{i:04d}")} for i in range(1000)]
    ops[500]["vps"]["ram"] = 8
    started = time.monotonic()
    r = api.post("/api/vps/sync/batch", json={"operations": ops}, timeout=240)
    elapsed = time.monotonic() - started
    assert r.status_code == 200, r.text[:2000]
    body = r.json()
    assert (body["status"], body["succeeded"], body["failed"]) == ("partial", 999, 1), \
        {k: body.get(k) for k in ("status", "succeeded", "failed")}
    results = body["results"]
    assert len(results) == 1000
    assert [x["index"] for x in results] == list(range(1000))
    bad = results[500]
    assert bad["status"] == 400 and "ram" in bad["fields"], bad
    assert "did you send GB" in bad["fields"]["ram"]
    assert all(x["status"] == 201 for i, x in enumerate(results) if i != 500)
    assert results[0]["message"] == "VPS synced successfully"
    assert results[0]["vps"]["name"] == f"{prefix}-0000"
    assert len({x["vps"]["id"] for x in results if x["status"] == 201}) == 999
    assert database.count("SELECT COUNT(*) FROM vps WHERE name LIKE ?", [prefix + "-%"]) == 999
    assert vps_count(database, f"{prefix}-0500") == 0
    print(f"batch of 1000 took {elapsed:.1f} s")


def test_batch_mixed_actions(api, database):
    a = api.create_vps()
    b = api.create_vps()
    ext = unique("ext")
    ops = [
        {"action": "update", "vps": {"id": a["id"], "status": "running"}},
        {"action": "delete", "vps": {"id": b["id"]}},
        {"action": "create", "vps": new_vps(external_id=ext)},
        {"action": "update", "vps": {"external_id": ext, "status": "stopped"}},
        {"action": "update", "vps": {"id": NO_SUCH_ID, "status": "running"}},
        {"action": "create", "vps": new_vps(user_id=NO_SUCH_ID)},
        {"action": "explode", "vps": {}},
    ]
    r = api.post("/api/vps/sync/batch", json={"operations": ops})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["status"] for x in body["results"]] == [200, 200, 201, 200, 404, 422, 400], body
    assert (body["status"], body["succeeded"], body["failed"]) == ("partial", 4, 3)
    assert vps_row(database, a["id"])["status"] == "running"
    assert vps_row(database, b["id"]) is None
    assert database.scalar("SELECT status FROM vps WHERE external_id = ?", [ext]) == "stopped"


def test_batch_all_ok_and_all_failed(api, database):
    r = api.post("/api/vps/sync/batch", json={"operations": [
        {"action": "create", "vps": new_vps()} for _ in range(3)]})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["succeeded"], r.json()["failed"]) == ("success", 3, 0)
    before = vps_count(database)
    r = api.post("/api/vps/sync/batch", json={"operations": [
        {"action": "create", "vps": new_vps(cpu=0)} for _ in range(3)]})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["succeeded"], r.json()["failed"]) == ("failed", 0, 3)
    assert vps_count(database) == before


@pytest.mark.parametrize("payload", [
    {"operations": []},
    {"operations": [{"action": "create", "vps": {}}] * 1001},
    {"operations": {"action": "create"}},
    {},
    {"operations": [], "extra": 1},
], ids=["empty", "1001", "not-array", "missing", "extra-field"])
def test_batch_envelope_errors(api, database, payload):
    before = vps_count(database)
    error_of(api.post("/api/vps/sync/batch", json=payload), 400)
    assert vps_count(database) == before


# ------------------------------------------------------------------------- users --

def new_user(**fields):
    u = {"email": f"{unique('u')}@example.com", "name": "Anna", "role": "user"}
    u.update(fields)
    return u


def test_users_sync_lifecycle(api, database):
    password = "correct horse " + secrets.token_hex(4)
    user = new_user(password=password)
    r = api.user("create", user)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "success" and body["message"] == "User synced successfully"
    u = body["user"]
    assert set(u) == USER_KEYS, u
    assert (u["email"], u["name"], u["role"], u["enabled"]) == \
        (user["email"], "Anna", "user", True)
    assert password not in r.text
    row = database.query("SELECT * FROM users WHERE id = ?", [u["id"]])[0]
    assert row["email"] == user["email"]
    assert row["password_hash"] and password not in row["password_hash"]
    assert row["password_hash"].startswith(("$y$", "$2b$", "$2y$", "$gy$")), row["password_hash"]

    # the user can now own servers
    vps = api.create_vps(user_id=u["id"])
    assert vps["user_id"] == u["id"]

    r = api.user("update", {"id": u["id"], "name": "Anna K.", "role": "admin", "enabled": False})
    assert r.status_code == 200, r.text
    assert (r.json()["user"]["name"], r.json()["user"]["role"], r.json()["user"]["enabled"]) == \
        ("Anna K.", "admin", False)
    assert database.query("SELECT name, role FROM users WHERE id = ?", [u["id"]])[0] == \
        {"name": "Anna K.", "role": "admin"}

    # deleting a user who owns servers is refused
    api.create_vps(user_id=u["id"])
    api.create_vps(user_id=u["id"])
    err = error_of(api.user("delete", {"id": u["id"]}), 409)
    assert err["error"].startswith(f"user {u['id']} still owns 3 servers"), err
    assert database.count("SELECT COUNT(*) FROM users WHERE id = ?", [u["id"]]) == 1

    for v in database.query("SELECT id FROM vps WHERE user_id = ?", [u["id"]]):
        assert api.vps("delete", {"id": int(v["id"])}).status_code == 200
    r = api.user("delete", {"id": u["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == u["id"] and r.json()["user"]["name"] == "Anna K."
    assert database.count("SELECT COUNT(*) FROM users WHERE id = ?", [u["id"]]) == 0
    error_of(api.user("delete", {"id": u["id"]}), 404)
    error_of(api.user("update", {"id": u["id"], "name": "x"}), 404)


def test_user_create_with_id_and_duplicates(api, database):
    uid = 100000 + secrets.randbelow(800000000)
    user = new_user(id=uid)
    r = api.user("create", user)
    assert r.status_code == 201, r.text
    assert r.json()["user"]["id"] == uid
    error_of(api.user("create", new_user(id=uid)), 409)                        # same id
    error_of(api.user("create", new_user(email=user["email"].upper())), 409)   # same e-mail
    other = api.user("create", new_user()).json()["user"]
    error_of(api.user("update", {"id": other["id"], "email": user["email"]}), 409)
    assert database.count("SELECT COUNT(*) FROM users WHERE email = ?", [other["email"]]) == 1


def test_user_password_can_be_changed(api, database):
    u = api.user("create", new_user()).json()["user"]
    before = database.scalar("SELECT password_hash FROM users WHERE id = ?", [u["id"]])
    r = api.user("update", {"id": u["id"], "password": "n3w-passw0rd"})
    assert r.status_code == 200, r.text
    assert "n3w-passw0rd" not in r.text and "password" not in r.json()["user"]
    h = database.scalar("SELECT password_hash FROM users WHERE id = ?", [u["id"]])
    assert h and h != before and "n3w-passw0rd" not in h


INVALID_USERS = [
    ("email", "not-an-email"), ("email", "@example.com"), ("email", "a@"), ("email", MISSING),
    ("email", "a" * 250 + "@example.com"), ("email", 5),
    ("role", "root"), ("role", None), ("password", "short7c"), ("password", "p" * 257),
    ("password", 12345678), ("enabled", "yes"), ("enabled", 1), ("name", "n" * 256),
    ("name", "a\x01b"), ("id", 0), ("id", -1), ("id", "5"), ("admin", True),
]


@pytest.mark.parametrize("field,value", INVALID_USERS, ids=map(_case_id, INVALID_USERS))
def test_user_validation(api, database, field, value):
    user = new_user()
    if value is MISSING:
        del user[field]
    else:
        user[field] = value
    before = database.count("SELECT COUNT(*) FROM users")
    err = error_of(api.user("create", user), 400)
    assert field in err.get("fields", {}), err
    assert database.count("SELECT COUNT(*) FROM users") == before


@pytest.mark.parametrize("password", ["p" * 8, "p" * 256, "пароль" * 41 + "паро"],
                         ids=["8", "256", "250-cyrillic-500-bytes"])
def test_user_password_boundaries(api, database, password):
    r = api.user("create", new_user(password=password))
    assert r.status_code == 201, r.text
    h = database.scalar("SELECT password_hash FROM users WHERE id = ?", [r.json()["user"]["id"]])
    assert h and password not in h


@pytest.mark.parametrize("password,why", [("p" * 257, "256"), ("ж" * 251, "500 bytes"),
                                          ("😀" * 126, "500 bytes")],
                         ids=["257-chars", "502-bytes", "504-bytes-emoji"])
def test_user_password_too_long(api, database, password, why):
    """libcrypt stops at 512 bytes: longer passwords are a clear 400, not a 500."""
    before = database.count("SELECT COUNT(*) FROM users")
    r = api.user("create", new_user(password=password))
    assert r.status_code == 400, r.text
    assert why in r.json()["fields"]["password"]
    assert database.count("SELECT COUNT(*) FROM users") == before


# ------------------------------------------------------------------------- audit --

def audit_rows(database, target_type, target_id):
    return database.query("SELECT actor_type, action, target_type, target_id, details, "
                          "remote_addr FROM audit_log WHERE target_type = ? AND target_id = ? "
                          "ORDER BY id", [target_type, str(target_id)])


def test_audit_log_row_per_change(api, database):
    vps = api.create_vps()
    api.vps("update", {"id": vps["id"], "status": "running"})
    api.vps("delete", {"id": vps["id"]})
    rows = audit_rows(database, "vps", vps["id"])
    assert [r["action"] for r in rows] == ["vps.create", "vps.update", "vps.delete"], rows
    assert all(r["actor_type"] == "sync" for r in rows)
    assert all(r["remote_addr"] == "127.0.0.1" for r in rows), rows
    assert "status" in rows[1]["details"] and "running" in rows[1]["details"]

    password = "audit-" + secrets.token_hex(8)
    u = api.user("create", new_user(password=password)).json()["user"]
    api.user("update", {"id": u["id"], "name": "B", "password": password + "x"})
    api.user("delete", {"id": u["id"]})
    rows = audit_rows(database, "user", u["id"])
    assert [r["action"] for r in rows] == ["user.create", "user.update", "user.delete"], rows
    for r in rows:
        assert password not in (r["details"] or ""), r


def test_nothing_written_on_failure(api, database):
    before = table_counts(database)
    vps = api.create_vps(external_id=unique("ext"))
    after_create = table_counts(database)
    assert after_create["vps"] == before["vps"] + 1
    assert after_create["audit_log"] == before["audit_log"] + 1
    failing = [
        api.vps("create", new_vps(), key=None),                                   # 401
        api.vps("create", new_vps(), key="x" * 64),                               # 401
        api.post("/api/vps/sync", data=b"{}", content_type="text/plain"),         # 415
        api.post("/api/vps/sync", data=padded_body(new_vps(), LIMIT + 1)),        # 413
        api.post("/api/vps/sync", data=b'{"action":'),                           # 400
        api.vps("create", new_vps(ram=8)),                                        # 400
        api.vps("create", new_vps(user_id=NO_SUCH_ID)),                           # 422
        api.vps("update", {"id": NO_SUCH_ID, "cpu": 2}),                          # 404
        api.vps("update", {"id": vps["id"], "cpu": 0}),                           # 400
        api.vps("update", {"id": vps["id"], "user_id": NO_SUCH_ID}),              # 422
        api.user("create", new_user(email="broken")),                            # 400
        api.user("delete", {"id": SEED_USER_ID}),                                 # 409
        api.vps("create", new_vps(), headers={"Idempotency-Key": ""}),            # 400
    ]
    assert [r.status_code for r in failing] == \
        [401, 401, 415, 413, 400, 400, 422, 404, 400, 422, 400, 409, 400], \
        [(r.status_code, r.text[:200]) for r in failing]
    assert table_counts(database) == after_create
    row = vps_row(database, vps["id"])
    assert (row["cpu"], row["user_id"]) == ("2", str(SEED_USER_ID))


SQL_NASTY = [
    "x'); DROP TABLE vps; --",
    "Robert\"; DELETE FROM users WHERE \"1\"=\"1",
    "back\\slash \\' \\\" \\0 \\n",
    "100% _wild_ %%",
    "`tick` /* comment */ -- dash # hash",
    "' OR '1'='1",
]


@pytest.mark.parametrize("name", SQL_NASTY, ids=range(len(SQL_NASTY)))
def test_sql_metacharacters_stored_verbatim(api, database, name):
    users_before = database.count("SELECT COUNT(*) FROM users")
    vps = api.create_vps(name=name, os=name[:100], external_id=name)
    assert vps["name"] == name and vps["os"] == name[:100] and vps["external_id"] == name
    row = vps_row(database, vps["id"])
    assert (row["name"], row["os"], row["external_id"]) == (name, name[:100], name)
    # found by exactly that external_id, nothing else
    r = api.vps("update", {"external_id": name, "status": "running"})
    assert r.status_code == 200 and r.json()["vps"]["id"] == vps["id"], r.text
    assert database.count("SELECT COUNT(*) FROM users") == users_before
    assert api.vps("delete", {"id": vps["id"]}).json()["vps"]["name"] == name


def test_sql_metacharacters_match_nothing(api, database):
    for ext in ("' OR 'a'='a", "%", "_", "x' --", "1 OR 1=1"):
        error_of(api.vps("update", {"external_id": ext, "status": "suspended"}), 404)
    assert database.count("SELECT COUNT(*) FROM vps WHERE status = 'suspended' "
                          "AND external_id IN ('%', '_')") == 0


# ---------------------------------------------------------------- Apache itself --

def test_static_file_is_served(apache):
    r = requests.get(apache.url("/static.json"), timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "success"
    assert r.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("mpm", ["worker", "prefork"])
def test_other_mpms(start_apache, database, mpm):
    a = start_apache(mpm=mpm)
    api = Api(a)
    vps = api.create_vps()
    assert api.vps("update", {"id": vps["id"], "status": "running"}).status_code == 200
    assert vps_row(database, vps["id"])["status"] == "running"


@pytest.mark.parametrize("mpm,mechanism", [("event", "default"), ("prefork", "fcntl"),
                                           ("prefork", "sem"), ("event", "pthread")])
def test_concurrent_writers_take_turns_on_the_write_lock(start_apache, database, tmp_path, mpm,
                                                        mechanism):
    """16 writers at once, in threads and in child processes: on SQLite they queue on the
    module's lock (any mechanism Apache's Mutex directive names) before each transaction;
    every write answers 200 and is in the database with its audit row."""
    os.chmod(tmp_path, 0o777)
    lock = "default" if mechanism == "default" else \
        f"fcntl:{tmp_path}" if mechanism == "fcntl" else mechanism
    a = start_apache(mpm=mpm, extra_conf=[f"Mutex {lock} ospab-sqlite-write"])
    api = Api(a)
    ids = [api.create_vps()["id"] for _ in range(16)]
    audit_before = database.count("SELECT COUNT(*) FROM audit_log WHERE action = 'vps.update'")
    rounds = 8
    answers = []

    def writer(vps_id):
        with requests.Session() as s:
            for n in range(rounds):
                r = s.post(a.url("/api/vps/sync"), timeout=30,
                           data=json.dumps({"action": "update",
                                            "vps": {"id": vps_id, "cpu": n + 1}}),
                           headers={"Content-Type": "application/json",
                                    "X-API-Key": a.sync_key})
                answers.append(r.status_code)

    threads = [threading.Thread(target=writer, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert answers == [200] * (16 * rounds)
    for i in ids:
        assert vps_row(database, i)["cpu"] in (rounds, str(rounds))
    assert database.count("SELECT COUNT(*) FROM audit_log WHERE action = 'vps.update'") \
        == audit_before + 16 * rounds


@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_graceful_restart_loses_no_request(start_apache, database, mpm):
    a = start_apache(mpm=mpm)
    api = Api(a)
    vps_ids = [api.create_vps()["id"] for _ in range(4)]
    stop = threading.Event()
    results = []          # (status or exception text)
    lock = threading.Lock()

    def worker(vps_id):
        n = 0
        while not stop.is_set():
            n += 1
            status = "running" if n % 2 else "stopped"
            try:
                r = requests.post(a.url("/api/vps/sync"), timeout=30,
                                  data=json.dumps({"action": "update",
                                                   "vps": {"id": vps_id, "status": status}}),
                                  headers={"Content-Type": "application/json",
                                           "X-API-Key": a.sync_key, "Connection": "close"})
                outcome = r.status_code if r.status_code == 200 else f"{r.status_code} {r.text}"
            except requests.RequestException as e:
                outcome = f"lost: {e!r}"
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=worker, args=(i,)) for i in vps_ids]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        a.graceful()
        time.sleep(2.0)
        a.graceful()
        time.sleep(2.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    failures = [x for x in results if x != 200]
    assert len(results) > 40, f"only {len(results)} requests in 5.5 s"
    assert not failures, f"{len(failures)} of {len(results)} requests failed: {failures[:5]}"
    # Apache really restarted twice
    restarts = [l for l in a.error_log_lines() if re.search(r"(?i)graceful restart", l)]
    assert len(restarts) == 2, restarts


@pytest.mark.allow_log(r"\[dbd:", r"\[ospab:error\]", r"\[ospab:warn\]")
def test_database_unavailable_503(start_apache, database):
    if isinstance(database, harness.SqliteDatabase):
        broken = harness.SqliteDatabase(database.path.parent / "no-such-dir" / "ospab.db")
    else:
        broken = harness.MariadbDatabase(database.server, database.name)
        broken.server = type("S", (), {"socket": database.server.socket, "user": "ospab",
                                       "password": "wrong-password"})()
    a = start_apache(db=broken)
    r = Api(a).vps("create", new_vps())
    assert error_of(r, 503) == {"error": "database unavailable"}


# ------------------------------------------------------------------ configuration --

def test_configtest_ok(database):
    rc, out = harness.Apache(database).configtest()
    assert rc == 0, out
    assert "Syntax OK" in out


@pytest.mark.parametrize("length", [0, 16, 31])
def test_configtest_short_key_fails(database, length):
    key = secrets.token_hex(16)[:length]
    a = harness.Apache(database, key_directive=f'OspabSyncKey "{key}"')
    rc, out = a.configtest()
    assert rc != 0, out
    assert "OspabSyncKey" in out


def test_configtest_literal_key_of_32_chars(start_apache, database):
    key = secrets.token_hex(16)
    a = harness.Apache(database, key_directive=f"OspabSyncKey {key}")
    rc, out = a.configtest()
    assert rc == 0, out
    assert key not in out
    a = start_apache(sync_key=key, key_directive=f"OspabSyncKey {key}")
    assert Api(a).vps("create", new_vps()).status_code == 201


def test_configtest_short_key_in_file_fails(database):
    a = harness.Apache(database)
    a.write_key_file("too-short")
    rc, out = a.configtest()
    assert rc != 0 and "OspabSyncKey" in out, out


def test_configtest_missing_key_file_fails(database):
    a = harness.Apache(database, key_directive="OspabSyncKey file:/nonexistent/ospab/sync.key")
    rc, out = a.configtest()
    assert rc != 0 and "OspabSyncKey" in out, out


def test_configtest_unset_env_fails(database):
    a = harness.Apache(database, key_directive="OspabSyncKey env:OSPAB_TEST_UNSET_KEY")
    rc, out = a.configtest()
    assert rc != 0 and "OspabSyncKey" in out, out


def test_env_indirection(start_apache, database):
    key = secrets.token_hex(32)
    a = start_apache(sync_key=key, key_directive="OspabSyncKey env:OSPAB_TEST_SYNC_KEY",
                     env={"OSPAB_TEST_SYNC_KEY": key})
    api = Api(a)
    assert api.vps("create", new_vps()).status_code == 201
    assert api.vps("create", new_vps(), key="OSPAB_TEST_SYNC_KEY").status_code == 401
    assert api.vps("create", new_vps(), key="env:OSPAB_TEST_SYNC_KEY").status_code == 401


def test_file_indirection_with_trailing_newline(database):
    key = secrets.token_hex(24)
    a = harness.Apache(database, sync_key=key)
    a.write_key_file(key + "\n")
    a.start()
    try:
        api = Api(a)
        assert api.vps("create", new_vps()).status_code == 201
        assert api.vps("create", new_vps(), key=key + "x").status_code == 401
    finally:
        a.stop()


def test_configtest_without_mod_dbd_fails(database):
    a = harness.Apache(database, load_dbd=False)
    rc, out = a.configtest()
    assert rc != 0, out
    assert "mod_dbd" in out, out


def test_key_directive_not_allowed_per_directory(database):
    key = secrets.token_hex(32)
    a = harness.Apache(database, location_conf=[f"OspabSyncKey {key}"])
    rc, out = a.configtest()
    assert rc != 0, out
    assert "OspabSyncKey" in out, out
    assert key not in out


def test_key_never_logged_at_debug(start_apache, database):
    a = start_apache(log_level="debug")
    api = Api(a)
    wrong = _wrong_keys(a.sync_key)
    api.vps("create", new_vps())
    api.vps("update", {"id": NO_SUCH_ID, "cpu": 2})
    for k in wrong.values():
        api.vps("create", new_vps(), key=k)
    api.vps("create", new_vps(), key=None)
    api.post("/api/vps/sync", data=b"{", content_type="text/plain")
    api.post("/api/vps/sync", data=b"{")
    password = "pw-" + secrets.token_hex(8)
    api.user("create", new_user(password=password))
    a.stop()
    logs = a.error_log.read_text(errors="replace") + a.access_log.read_text(errors="replace")
    secrets_seen = [s for s in [a.sync_key, password, *[w for w in wrong.values()
                                                          if len(w) >= 16]] if s in logs]
    assert not secrets_seen, "secret found in a log"


def test_key_never_logged(apache):
    """Runs last in the module: all requests above used the module's Apache."""
    logs = apache.error_log.read_text(errors="replace") + \
        apache.access_log.read_text(errors="replace")
    assert apache.sync_key not in logs
    assert apache.sync_key.upper() not in logs


def test_audit_rows_say_what_changed(api, database):
    """Issue 10 item 9: an update's audit row holds the old and the new value of each field
    it changed (nothing for fields sent unchanged), and never a password."""
    vps = api.create_vps(status="creating", cpu=2)
    api.vps("update", {"id": vps["id"], "status": "running", "cpu": 2, "ram": 4096})
    row = audit_rows(database, "vps", vps["id"])[-1]
    assert json.loads(row["details"]) == {
        "status": {"from": "creating", "to": "running"},
        "ram": {"from": str(vps["ram"]), "to": "4096"}}, row
    password = "audit-" + secrets.token_hex(8)
    u = api.user("create", new_user(password=password)).json()["user"]
    api.user("update", {"id": u["id"], "name": "New Name", "role": "user",
                        "password": password + "x"})
    row = audit_rows(database, "user", u["id"])[-1]
    assert json.loads(row["details"]) == {
        "name": {"from": u["name"], "to": "New Name"}, "password": "changed"}, row
    assert password not in row["details"]
