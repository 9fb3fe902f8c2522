"""The admin API (/api/admin/..., docs/operations.md) against a real Apache, on SQLite and
MariaDB: role admin only, every change audited as the admin in its own transaction, keyset
pages (the audit trail's by created_at and id, which are not in time order on Galera)."""

import json
import uuid
from datetime import datetime, timezone

import pytest
import requests

from conftest import Api, access_token, create_user, sql_exec, sql_quote

ADMIN_ID = 1                    # sql/seed/demo.sql
TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"


def uid():
    return uuid.uuid4().hex[:10]


def call(apache, method, path, token, body=None, params=None):
    h = {"Authorization": f"Bearer {token}"} if token else {}
    if body is not None:
        h["Content-Type"] = "application/json"
    return requests.request(method, apache.url(path), headers=h, params=params,
                            data=json.dumps(body).encode() if body is not None else None,
                            timeout=30)


@pytest.fixture(scope="module")
def admin(apache):
    return access_token(apache, ADMIN_ID, role="admin")


def ok(r, status=200):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["status"] == "success", body
    return body


def login(apache, email, password):
    return requests.post(apache.url("/api/auth/login"), json={"email": email,
                         "password": password}, timeout=30)


def audit_rows(database, action, target_id):
    rows = database.query("SELECT actor_type, actor_id, details FROM audit_log "
                          "WHERE action = ? AND target_id = ? ORDER BY id",
                          [action, str(target_id)])
    return [(r["actor_type"], r["actor_id"], r["details"]) for r in rows]


# ------------------------------------------------------------------------- access --

def test_customer_gets_403_and_no_token_401(apache):
    api = Api(apache)
    user = create_user(api)
    tok = access_token(apache, user["id"])
    for method, path in (("GET", "/api/admin/users"), ("GET", "/api/admin/audit"),
                         ("POST", f"/api/admin/users/{user['id']}/disable"),
                         ("DELETE", "/api/admin/tariffs/1")):
        r = call(apache, method, path, tok)
        assert r.status_code == 403, (path, r.text)
        assert r.json() == {"error": "admin role required"}
        assert call(apache, method, path, None).status_code == 401
    # the role is the user row's: a customer's token claiming admin is still a customer
    forged = access_token(apache, user["id"], role="admin")
    assert call(apache, "GET", "/api/admin/users", forged).status_code == 403
    assert database_unchanged_tariff(apache)


def database_unchanged_tariff(apache):
    r = call(apache, "GET", "/api/tariffs", access_token(apache, 5))
    return any(t["id"] == 1 for t in r.json())


# -------------------------------------------------------------------------- users --

def test_users_search_pages_and_filters(apache, admin):
    api = Api(apache)
    tag = uid()
    made = [create_user(api, name=f"Page {tag} {i}") for i in range(5)]
    seen, after = [], None
    for expected in (2, 2, 1):
        params = {"q": tag, "limit": 2}
        if after:
            params["after"] = after
        body = ok(call(apache, "GET", "/api/admin/users", admin, params=params))
        assert len(body["users"]) == expected
        for u in body["users"]:
            assert "password_hash" not in u and "password" not in u
        seen += [u["id"] for u in body["users"]]
        after = body["next"]
    assert after is None
    assert seen == sorted(u["id"] for u in made)
    # by e-mail, case aside; LIKE's wildcards are plain characters
    first = made[0]["email"]
    body = ok(call(apache, "GET", "/api/admin/users", admin, params={"q": first.upper()}))
    assert [u["id"] for u in body["users"]] == [made[0]["id"]]
    assert ok(call(apache, "GET", "/api/admin/users", admin, params={"q": "%"}))["users"] == []
    body = ok(call(apache, "GET", "/api/admin/users", admin, params={"role": "admin"}))
    assert {u["role"] for u in body["users"]} == {"admin"}
    assert ADMIN_ID in [u["id"] for u in body["users"]]


@pytest.mark.parametrize("params,field", [
    ({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"after": "x"}, "after"),
    ({"role": "root"}, "role"), ({"enabled": "yes"}, "enabled"), ({"sort": "id"}, "sort"),
])
def test_users_bad_query(apache, admin, params, field):
    r = call(apache, "GET", "/api/admin/users", admin, params=params)
    assert r.status_code == 400, r.text
    assert field in r.json()["fields"], r.text


def test_user_get(apache, admin):
    user = create_user(Api(apache))
    body = ok(call(apache, "GET", f"/api/admin/users/{user['id']}", admin))
    assert body["user"]["email"] == user["email"] and "password_hash" not in body["user"]
    r = call(apache, "GET", "/api/admin/users/987654321", admin)
    assert r.status_code == 404 and r.json() == {"error": "user not found"}


def test_disable_ends_every_login_at_once_and_enable_lets_it_log_in(apache, admin, database):
    user = create_user(Api(apache), password="pw-" + uid())
    tokens = [login(apache, user["email"], user["password"]).json() for _ in range(2)]
    access, refresh = tokens[0]["accessToken"], tokens[1]["refreshToken"]
    assert call(apache, "GET", "/api/auth/me", access).status_code == 200
    body = ok(call(apache, "POST", f"/api/admin/users/{user['id']}/disable", admin))
    assert body["user"]["enabled"] is False
    # the access token is refused at once: each request checks the user row
    assert call(apache, "GET", "/api/auth/me", access).status_code == 401
    r = requests.post(apache.url("/api/auth/refresh"), json={"refreshToken": refresh},
                      timeout=30)
    assert r.status_code == 401, r.text
    assert database.count("SELECT COUNT(*) FROM refresh_tokens WHERE user_id = ? "
                          "AND revoked_at IS NULL", [user["id"]]) == 0
    assert login(apache, user["email"], user["password"]).status_code == 401
    rows = audit_rows(database, "user.disable", user["id"])
    assert len(rows) == 1 and (rows[0][0], rows[0][1]) == ("admin", str(ADMIN_ID))
    assert json.loads(rows[0][2])["sessions_revoked"] == 2
    body = ok(call(apache, "POST", f"/api/admin/users/{user['id']}/enable", admin))
    assert body["user"]["enabled"] is True
    # the old logins stay ended; a new one works
    r = requests.post(apache.url("/api/auth/refresh"), json={"refreshToken": refresh},
                      timeout=30)
    assert r.status_code == 401
    fresh = login(apache, user["email"], user["password"])
    assert fresh.status_code == 200, fresh.text
    assert call(apache, "GET", "/api/auth/me", fresh.json()["accessToken"]).status_code == 200
    assert len(audit_rows(database, "user.enable", user["id"])) == 1


def test_admin_cannot_disable_themself(apache, admin, database):
    r = call(apache, "POST", f"/api/admin/users/{ADMIN_ID}/disable", admin)
    assert r.status_code == 409, r.text
    assert database.scalar("SELECT enabled FROM users WHERE id = ?", [ADMIN_ID]) in (1, "1")
    r = call(apache, "POST", "/api/admin/users/987654321/disable", admin)
    assert r.status_code == 404


# ---------------------------------------------------------------------- catalogue --

def tariff_body(**kw):
    b = {"name": "T " + uid(), "price": 100, "cores": 1, "memory": 512, "disk": 5}
    b.update(kw)
    return b


def test_tariff_create_update_and_validation(apache, admin, database):
    body = ok(call(apache, "POST", "/api/admin/tariffs", admin, tariff_body(price=0)), 201)
    t = body["tariff"]
    assert t["price"] == 0 and t["enabled"] is True and t["memory"] == 512
    assert len(audit_rows(database, "tariff.create", t["id"])) == 1
    listed = ok(call(apache, "GET", "/api/admin/tariffs", admin))["tariffs"]
    assert t["id"] in [x["id"] for x in listed]
    body = ok(call(apache, "PUT", f"/api/admin/tariffs/{t['id']}", admin, {"price": 250}))
    assert body["tariff"]["price"] == 250 and body["tariff"]["name"] == t["name"]
    rows = audit_rows(database, "tariff.update", t["id"])
    assert len(rows) == 1 and json.loads(rows[0][2]) == {"price": 250}
    assert ok(call(apache, "GET", f"/api/admin/tariffs/{t['id']}", admin))["tariff"]["price"] == 250
    before = database.count("SELECT COUNT(*) FROM tariffs")
    r = call(apache, "POST", "/api/admin/tariffs", admin,
             {"name": "", "price": -1, "cores": 0, "memory": 64, "disk": 1, "colour": "red"})
    assert r.status_code == 400, r.text
    assert set(r.json()["fields"]) == {"name", "price", "cores", "memory", "colour"}
    assert r.json()["fields"]["colour"] == "unknown field"
    r = call(apache, "POST", "/api/admin/tariffs", admin, {"name": "x"})
    assert r.status_code == 400 and set(r.json()["fields"]) == {"price", "cores", "memory", "disk"}
    assert database.count("SELECT COUNT(*) FROM tariffs") == before
    assert call(apache, "PUT", f"/api/admin/tariffs/{t['id']}", admin, {}).status_code == 400
    assert call(apache, "PUT", f"/api/admin/tariffs/{t['id']}", admin,
                {"id": 5}).status_code == 400
    assert call(apache, "PUT", "/api/admin/tariffs/987654321", admin,
                {"price": 1}).status_code == 404
    assert call(apache, "GET", "/api/admin/tariffs/987654321", admin).status_code == 404


def test_disabled_tariff_is_hidden_but_servers_keep_it(apache, admin, database):
    t = ok(call(apache, "POST", "/api/admin/tariffs", admin, tariff_body()), 201)["tariff"]
    customer = access_token(apache, 5)
    assert t["id"] in [x["id"] for x in call(apache, "GET", "/api/tariffs", customer).json()]
    vps = Api(apache).create_vps(user_id=5, tariff_id=t["id"])
    ok(call(apache, "PUT", f"/api/admin/tariffs/{t['id']}", admin, {"enabled": False}))
    assert t["id"] not in [x["id"] for x in call(apache, "GET", "/api/tariffs", customer).json()]
    r = call(apache, "POST", "/api/server/create", admin, {"osId": 1, "tariffId": t["id"]})
    assert r.status_code == 422, r.text
    # still listed for admins, still on its server
    assert t["id"] in [x["id"] for x in ok(call(apache, "GET", "/api/admin/tariffs", admin))["tariffs"]]
    assert database.scalar("SELECT tariff_id FROM vps WHERE id = ?", [vps["id"]]) in (t["id"], str(t["id"]))
    # a referenced tariff cannot go; an unused one can
    r = call(apache, "DELETE", f"/api/admin/tariffs/{t['id']}", admin)
    assert r.status_code == 409 and "1 server" in r.json()["error"], r.text
    unused = ok(call(apache, "POST", "/api/admin/tariffs", admin, tariff_body()), 201)["tariff"]
    assert ok(call(apache, "DELETE", f"/api/admin/tariffs/{unused['id']}", admin))["tariff"]["id"] == unused["id"]
    assert call(apache, "GET", f"/api/admin/tariffs/{unused['id']}", admin).status_code == 404
    assert len(audit_rows(database, "tariff.delete", unused["id"])) == 1


def test_os_templates(apache, admin, database):
    r = call(apache, "POST", "/api/admin/os", admin,
             {"name": "Bad", "template": "debian 12", "kind": "lxd"})
    assert r.status_code == 400 and set(r.json()["fields"]) == {"template", "kind"}, r.text
    body = ok(call(apache, "POST", "/api/admin/os", admin,
                   {"name": "Debian " + uid(), "template": TEMPLATE}), 201)
    o = body["os"]
    assert o["kind"] == "lxc" and o["type"] == "linux" and o["template"] == TEMPLATE
    customer = access_token(apache, 5)
    assert o["id"] in [x["id"] for x in call(apache, "GET", "/api/os", customer).json()]
    ok(call(apache, "PUT", f"/api/admin/os/{o['id']}", admin, {"enabled": False}))
    assert o["id"] not in [x["id"] for x in call(apache, "GET", "/api/os", customer).json()]
    assert ok(call(apache, "DELETE", f"/api/admin/os/{o['id']}", admin))["os"]["id"] == o["id"]
    for action in ("os.create", "os.update", "os.delete"):
        assert len(audit_rows(database, action, o["id"])) == 1, action
    vps = Api(apache).create_vps(user_id=5, os_id=2)
    r = call(apache, "DELETE", "/api/admin/os/2", admin)
    assert r.status_code == 409, r.text
    assert vps["os_id"] == 2


# -------------------------------------------------------------------------- audit --

def test_audit_pages_by_time_then_id_not_by_id(apache, admin, database):
    tag = uid()
    action = f"test.{tag}.page"
    # ids out of time order (as on Galera), and ties on created_at
    rows = [(910005, "2030-01-01 00:00:00.000"), (910001, "2030-01-01 00:00:00.000"),
            (910003, "2030-01-01 00:00:00.000"), (910002, "2030-01-02 00:00:00.000"),
            (910009, "2029-12-31 00:00:00.000"), (910004, "2030-01-03 00:00:00.000"),
            (910007, "2030-01-01 00:00:00.000")]
    base = int(tag, 16) % 1000 * 100
    sql_exec(database, "".join(
        "INSERT INTO audit_log (id, actor_type, actor_id, action, target_type, target_id, "
        f"details, remote_addr, created_at) VALUES ({i + base}, 'agent', NULL, "
        f"{sql_quote(action)}, 'vps', '77', '{{\"n\": {i}}}', NULL, {sql_quote(at)});\n"
        for i, at in rows))
    expected = [i + base for i, at in sorted(rows, key=lambda r: (r[1], r[0]), reverse=True)]
    seen, before = [], None
    while True:
        params = {"action": action, "limit": 2}
        if before:
            params["before"] = before
        body = ok(call(apache, "GET", "/api/admin/audit", admin, params=params))
        seen += [e["id"] for e in body["entries"]]
        before = body["next"]
        if not before:
            break
    assert seen == expected
    entry = ok(call(apache, "GET", "/api/admin/audit", admin, params={"action": action,
                    "limit": 1}))["entries"][0]
    assert entry["details"] == {"n": 910004} and entry["created_at"] == "2030-01-03T00:00:00.000Z"
    # prefix, server, actor type, time range
    body = ok(call(apache, "GET", "/api/admin/audit", admin,
                   params={"action": f"test.{tag}.*", "limit": 200}))
    assert len(body["entries"]) == len(rows)
    assert ok(call(apache, "GET", "/api/admin/audit", admin,
                   params={"action": f"test.{tag}*x"}))["entries"] == []
    body = ok(call(apache, "GET", "/api/admin/audit", admin,
                   params={"action": action, "server": 77, "actor_type": "agent",
                           "since": "2030-01-01", "until": "2030-01-02"}))
    assert sorted(e["id"] for e in body["entries"]) == sorted(
        i + base for i, at in rows if at.startswith(("2030-01-01", "2030-01-02")))
    assert ok(call(apache, "GET", "/api/admin/audit", admin,
                   params={"action": action, "actor_type": "user"}))["entries"] == []


@pytest.mark.parametrize("params,field", [
    ({"before": "bm90IGEgY3Vyc29y"}, "before"), ({"before": "!!!!"}, "before"),
    ({"since": "yesterday"}, "since"), ({"until": "2030-02-30"}, "until"),
    ({"since": "2030-01-01T00:00:00+03:00"}, "since"), ({"actor_type": "robot"}, "actor_type"),
    ({"server": "0"}, "server"), ({"who": "me"}, "who"),
])
def test_audit_bad_query(apache, admin, params, field):
    r = call(apache, "GET", "/api/admin/audit", admin, params=params)
    assert r.status_code == 400, r.text
    assert field in r.json()["fields"], r.text


# ------------------------------------------------------------------ alerts, outbox --

def test_alerts(apache, admin, database):
    vps = Api(apache).create_vps(user_id=5)
    now = "2030-01-01 00:00:00.000"
    sql_exec(database, "".join(
        "INSERT INTO alerts (vps_id, type, level, message, value, state, opened_at, "
        f"cleared_at) VALUES ({vps['id']}, 'cpu', 'warning', 'cpu high', 91.5, "
        f"{sql_quote(state)}, {sql_quote(now)}, {sql_quote(now if state == 'cleared' else None)});\n"
        for state in ("open", "cleared", "cleared")))
    body = ok(call(apache, "GET", "/api/admin/alerts", admin, params={"server": vps["id"]}))
    assert len(body["alerts"]) == 3 and body["next"] is None
    assert body["alerts"][0]["value"] == 91.5 and body["alerts"][0]["server_id"] == vps["id"]
    body = ok(call(apache, "GET", "/api/admin/alerts", admin,
                   params={"server": vps["id"], "state": "closed", "limit": 1}))
    assert [a["state"] for a in body["alerts"]] == ["cleared"] and body["next"]
    body = ok(call(apache, "GET", "/api/admin/alerts", admin,
                   params={"server": vps["id"], "state": "closed", "after": body["next"]}))
    assert len(body["alerts"]) == 1 and body["next"] is None
    assert call(apache, "GET", "/api/admin/alerts", admin,
                params={"state": "gone"}).status_code == 400


def test_outbox_list_and_retry(apache, admin, database):
    tag = uid()
    old = "2020-01-01 00:00:00.000"
    sql_exec(database, "".join(
        "INSERT INTO email_outbox (to_addr, subject, body_text, template, dedupe_key, state, "
        f"attempts, next_attempt_at, last_error, created_at) VALUES ('{tag}@example.com', "
        f"'subject {tag}', 'secret body {tag}', NULL, '{tag}-{state}', '{state}', 5, "
        f"{sql_quote(old)}, 'smtp said no', {sql_quote(old)});\n"
        for state in ("failed", "sent")))
    body = ok(call(apache, "GET", "/api/admin/outbox", admin,
                   params={"kind": "email", "state": "failed", "limit": 200}))
    mine = [m for m in body["items"] if m["to"] == f"{tag}@example.com"]
    assert len(mine) == 1 and body["kind"] == "email"
    assert "body_text" not in mine[0] and "secret body" not in json.dumps(body)
    assert mine[0]["last_error"] == "smtp said no" and mine[0]["attempts"] == 5
    failed_id = mine[0]["id"]
    sent_id = database.scalar("SELECT id FROM email_outbox WHERE dedupe_key = ?", [f"{tag}-sent"])
    start = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    body = ok(call(apache, "POST", f"/api/admin/outbox/email/{failed_id}/retry", admin))
    assert body["item"]["state"] == "pending" and body["item"]["attempts"] == 0
    row = database.query(
        "SELECT state, attempts, next_attempt_at FROM email_outbox WHERE id = ?", [failed_id])[0]
    state, attempts, due = row["state"], row["attempts"], row["next_attempt_at"]
    assert state == "pending" and int(attempts) == 0 and str(due)[:19] >= start
    assert len(audit_rows(database, "outbox.retry", failed_id)) == 1
    r = call(apache, "POST", f"/api/admin/outbox/email/{sent_id}/retry", admin)
    assert r.status_code == 409 and "sent" in r.json()["error"], r.text
    assert call(apache, "POST", "/api/admin/outbox/email/987654321/retry", admin).status_code == 404
    r = call(apache, "GET", "/api/admin/outbox", admin)
    assert r.status_code == 400 and "kind" in r.json()["fields"]
    body = ok(call(apache, "GET", "/api/admin/outbox", admin, params={"kind": "webhook"}))
    assert all("payload" not in w and w["state"] != "internal" for w in body["items"])


# ------------------------------------------------------------------- ospab-admin --

def cli(database, *args, check=True):
    """ospab-admin on the module's database; on SQLite as the web server's user, as
    sql_exec does, so no root-owned -wal/-shm file appears under Apache"""
    import os
    import subprocess
    import harness
    cmd = [str(harness.OSPAB_ADMIN), "--driver", database.driver, "--params", database.params,
           "--sql-dir", str(harness.SQL_DIR), *[str(a) for a in args]]
    kw = {}
    if isinstance(database, harness.SqliteDatabase) and os.geteuid() == 0:
        kw = {"user": harness.WWW_USER, "group": harness.WWW_USER}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)
    assert not check or p.returncode == 0, p.stdout + p.stderr
    return p


def test_cli_users_list_disable_enable(apache, database):
    user = create_user(Api(apache), name="Cli " + uid(), password="pw-" + uid())
    out = cli(database, "--q", user["email"], "users", "list").stdout
    assert out.split("\t")[:4] == [str(user["id"]), user["email"], "user", "enabled"], out
    refresh = login(apache, user["email"], user["password"]).json()["refreshToken"]
    cli(database, "user", "disable", user["id"])
    r = requests.post(apache.url("/api/auth/refresh"), json={"refreshToken": refresh},
                      timeout=30)
    assert r.status_code == 401
    rows = audit_rows(database, "user.disable", user["id"])
    assert [(t, a) for t, a, _ in rows] == [("admin", "ospab-admin")]
    cli(database, "user", "enable", user["id"])
    assert login(apache, user["email"], user["password"]).status_code == 200
    p = cli(database, "user", "disable", 987654321, check=False)
    assert p.returncode != 0 and "user not found" in p.stderr
