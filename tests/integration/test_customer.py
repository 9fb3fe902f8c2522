"""The customer read routes (docs/auth.md "Read routes") against a real Apache
with mod_ospab, each test once on SQLite and once on MariaDB: the seed-003
server shape, ownership (someone else's server is a 404 like a missing one),
catalogues, and keyset pagination, also for a user with 5,000 servers."""

import re

import pytest
import requests

from conftest import Api, access_token, create_user, sql_exec, sql_quote

SERVER_KEYS = {"id", "userId", "tariffId", "osId", "name", "status", "proxmoxId", "ipAddress",
               "createdAt", "updatedAt", "os", "tariff"}
VPS_KEYS = {"id", "external_id", "name", "status", "ip_address", "cpu", "ram", "disk", "os",
            "user_id", "hypervisor", "node", "vmid", "kind", "tariff_id", "os_id",
            "created_at", "updated_at"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SEED_TARIFFS = [
    {"id": 1, "name": "Старт", "price": 150, "cores": 1, "memory": 1024, "disk": 10},
    {"id": 2, "name": "Базовый", "price": 300, "cores": 2, "memory": 2048, "disk": 20},
    {"id": 3, "name": "Про", "price": 600, "cores": 4, "memory": 4096, "disk": 40},
]
SEED_OS = [
    {"id": 1, "name": "Ubuntu 22.04", "type": "linux", "kind": "lxc"},
    {"id": 2, "name": "Debian 12", "type": "linux", "kind": "lxc"},
    {"id": 3, "name": "AlmaLinux 9", "type": "linux", "kind": "lxc"},
]
NOT_FOUND = {"error": "server not found"}
NO_SUCH_ID = 987654321
MANY = 5000


def get(apache, path, tok, **kw):
    r = requests.get(apache.url(path), headers={"Authorization": f"Bearer {tok}",
                                                "Connection": "close"}, timeout=30, **kw)
    assert r.headers.get("Content-Type", "").startswith("application/json"), \
        (r.status_code, r.headers, r.text[:200])
    return r


def ok(apache, path, tok):
    r = get(apache, path, tok)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def no_password_anywhere(value, where="response"):
    """No key mentioning a password (rootPassword, password_hash, ...) at any depth."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert "password" not in k.lower(), f"{where} has {k!r}"
            no_password_anywhere(v, where)
    elif isinstance(value, list):
        for v in value:
            no_password_anywhere(v, where)


def walk(apache, path, tok):
    """Follow Link rel="next" from `path` to the end; returns the pages."""
    pages, url = [], path
    for _ in range(1000):
        r = get(apache, url, tok)
        assert r.status_code == 200, (url, r.text)
        page = r.json()
        pages.append(page)
        link = r.headers.get("Link")
        cursor = r.headers.get("X-Next-Cursor")
        if link is None:
            assert cursor is None, r.headers
            return pages
        m = re.fullmatch(r'<([^>]+)>; rel="next"', link)
        assert m, link
        assert page and cursor == str(page[-1]["id"]), (cursor, page[-1]["id"] if page else None)
        url = m.group(1)
    raise AssertionError("pagination did not end")


# ---------------------------------------------------------------------- data --

class World:
    """Users and servers of this module: alice (3 servers with and without
    tariff/OS), bob (1), pager (120, made through the sync batch API), many
    (5,000 rows inserted with SQL), and the seed admin (user 1)."""

    def __init__(self, apache, database):
        api = Api(apache)
        self.alice = create_user(api)
        self.bob = create_user(api)
        self.pager = create_user(api)
        self.many = create_user(api)
        self.alice_vps = [
            api.create_vps(user_id=self.alice["id"], status="running", ip_address="10.0.0.5",
                           node="pve1", vmid=100 + self.alice["id"] * 10, kind="lxc",
                           tariff_id=2, os_id=1, external_id="ext-" + str(self.alice["id"])),
            api.create_vps(user_id=self.alice["id"]),                    # no tariff, no OS
            api.create_vps(user_id=self.alice["id"], tariff_id=3, os_id=2, status="stopped",
                           ip_address="2001:db8::7"),
        ]
        self.bob_vps = [api.create_vps(user_id=self.bob["id"], tariff_id=1, os_id=3)]
        ops = [{"action": "create", "vps": {"user_id": self.pager["id"], "name": f"p-{i}",
                                            "cpu": 1, "ram": 512, "disk": 10}}
               for i in range(120)]
        r = api.post("/api/vps/sync/batch", json={"operations": ops})
        assert r.status_code == 200 and r.json()["succeeded"] == 120, r.text[:500]
        self.pager_ids = sorted(x["vps"]["id"] for x in r.json()["results"])
        self.insert_many(database)
        self.many_ids = [int(x["id"]) for x in database.query(
            "SELECT id FROM vps WHERE user_id = ? ORDER BY id", [self.many["id"]])]
        assert len(self.many_ids) == MANY
        self.tokens = {who: access_token(apache, getattr(self, who)["id"])
                       for who in ("alice", "bob", "pager", "many")}
        self.tokens["admin"] = access_token(apache, 1, role="admin")

    def insert_many(self, database):
        uid = self.many["id"]
        stmts = []
        for start in range(0, MANY, 500):
            rows = ", ".join(
                "(" + ", ".join(sql_quote(v) for v in (
                    f"many-{i}", "running", f"10.1.{i // 250}.{i % 250 + 1}", 1, 1024, 10,
                    "Ubuntu 22.04", uid, "proxmox", 1 + i % 3, 1 + i % 3,
                    "2026-01-02 03:04:05.678", "2026-01-02 03:04:05.678")) + ")"
                for i in range(start, start + 500))
            stmts.append("INSERT INTO vps (name, status, ip_address, cpu, ram, disk, os, user_id, "
                         "hypervisor, tariff_id, os_id, created_at, updated_at) VALUES "
                         + rows + ";")
        sql_exec(database, "\n".join(stmts))


@pytest.fixture(scope="module")
def world(apache, database):
    return World(apache, database)


# ------------------------------------------------------------ server shape --

def expected_server(v):
    """/api/server's record for a VPS record of the sync API."""
    tariffs = {t["id"]: t for t in SEED_TARIFFS}
    oses = {o["id"]: o for o in SEED_OS}
    t, o = tariffs.get(v["tariff_id"]), oses.get(v["os_id"])
    return {
        "id": v["id"], "userId": v["user_id"], "tariffId": v["tariff_id"], "osId": v["os_id"],
        "name": v["name"], "status": v["status"], "proxmoxId": v["vmid"],
        "ipAddress": v["ip_address"], "createdAt": v["created_at"],
        "updatedAt": v["updated_at"],
        "os": {"id": o["id"], "name": o["name"], "type": o["type"]} if o else synced_os(v),
        "tariff": ({"id": t["id"], "name": t["name"], "price": t["price"]} if t
                   else synced_tariff(v)),
    }


def synced_os(v):
    """A record synced without os_id: its OS as the billing site wrote it (issue 10)."""
    return {"id": None, "name": v["os"],
            "type": "windows" if v["os"] and "windows" in v["os"].lower() else "linux"}


def synced_tariff(v):
    """A record synced without tariff_id: the enabled tariff of its sizes, else its sizes."""
    for t in SEED_TARIFFS:
        if (t["cores"], t["memory"], t["disk"]) == (v["cpu"], v["ram"], v["disk"]):
            return {"id": t["id"], "name": t["name"], "price": t["price"]}
    return {"id": None, "name": f"{v['cpu']} vCPU / {v['ram']} MB / {v['disk']} GB",
            "price": None}


def test_server_list_shape(apache, world):
    servers = ok(apache, "/api/server", world.tokens["alice"])
    assert [s["id"] for s in servers] == [v["id"] for v in world.alice_vps]
    for s, v in zip(servers, world.alice_vps):
        assert set(s) == SERVER_KEYS, sorted(set(s) ^ SERVER_KEYS)
        assert TIMESTAMP.match(s["createdAt"]) and TIMESTAMP.match(s["updatedAt"]), s
        assert s == expected_server(v)
    first = servers[0]
    assert first["os"] == {"id": 1, "name": "Ubuntu 22.04", "type": "linux"}
    assert first["tariff"] == {"id": 2, "name": "Базовый", "price": 300}
    assert first["proxmoxId"] == world.alice_vps[0]["vmid"] and first["status"] == "running"
    # synced without OS and tariff ids: objects all the same, so server.os.name works
    assert servers[1]["os"] == {"id": None, "name": "Ubuntu 22.04", "type": "linux"}
    assert servers[1]["tariff"] == {"id": None, "name": "2 vCPU / 2048 MB / 50 GB",
                                    "price": None}
    no_password_anywhere(servers)


def test_server_get(apache, world):
    for v in world.alice_vps:
        s = ok(apache, f"/api/server/{v['id']}", world.tokens["alice"])
        assert s == expected_server(v)
        no_password_anywhere(s)


def test_vps_list_and_get(apache, world):
    listed = ok(apache, "/api/vps", world.tokens["alice"])
    assert listed == world.alice_vps          # the sync API's records, exactly
    for v in world.alice_vps:
        got = ok(apache, f"/api/vps/{v['id']}", world.tokens["alice"])
        assert set(got) == VPS_KEYS and got == v
    no_password_anywhere(listed)


@pytest.mark.parametrize("route", ["/api/server", "/api/vps"])
def test_foreign_server_is_a_404_like_a_missing_one(apache, world, route):
    alice, bob = world.tokens["alice"], world.tokens["bob"]
    bobs = world.bob_vps[0]["id"]
    assert get(apache, f"{route}/{bobs}", bob).status_code == 200
    foreign = get(apache, f"{route}/{bobs}", alice)
    missing = get(apache, f"{route}/{NO_SUCH_ID}", alice)
    for r in (foreign, missing):
        assert r.status_code == 404 and r.json() == NOT_FOUND, r.text
    assert foreign.content == missing.content
    assert foreign.headers.get("Content-Type") == missing.headers.get("Content-Type")
    assert foreign.headers.get("Content-Length") == missing.headers.get("Content-Length")
    # and the lists never show it
    assert bobs not in {s["id"] for s in ok(apache, route, alice)}
    assert {s["id"] for s in ok(apache, route, bob)} == {bobs}


def test_no_root_password_in_any_read_route(apache, world):
    tok = world.tokens["alice"]
    vid = world.alice_vps[0]["id"]
    for path in ("/api/server", f"/api/server/{vid}", "/api/vps", f"/api/vps/{vid}",
                 "/api/tariffs", "/api/os", "/api/auth/me", "/api/server?limit=200"):
        r = get(apache, path, tok)
        assert r.status_code == 200, (path, r.text)
        no_password_anywhere(r.json(), path)
        assert "rootpassword" not in r.text.lower() and "password_hash" not in r.text.lower()


def test_admin_sees_everything(apache, world):
    admin = world.tokens["admin"]
    for v in world.alice_vps + world.bob_vps:
        assert ok(apache, f"/api/server/{v['id']}", admin) == expected_server(v)
        assert ok(apache, f"/api/vps/{v['id']}", admin) == v
    first = world.alice_vps[0]["id"]
    page = ok(apache, f"/api/server?limit=10&after={first - 1}", admin)
    assert [s["id"] for s in page] == sorted(s["id"] for s in page)
    assert {world.alice["id"], world.bob["id"]} <= {s["userId"] for s in page}, page
    # the first page of everything: bounded like anyone's
    r = get(apache, "/api/server", admin)
    assert r.status_code == 200 and len(r.json()) == 50 and r.headers.get("X-Next-Cursor")


# --------------------------------------------------------------- catalogues --

def test_tariffs_and_os(apache, world, database):
    tok = world.tokens["bob"]
    assert ok(apache, "/api/os", tok) == SEED_OS
    assert ok(apache, "/api/tariffs", tok) == SEED_TARIFFS
    sql_exec(database,
             "INSERT INTO tariffs (id, name, price, cores, memory, disk, enabled, created_at, "
             "updated_at) VALUES (90, 'Старый', 99, 1, 512, 5, 0, '2026-01-01 00:00:00.000', "
             "'2026-01-01 00:00:00.000'), (91, 'Макс', 1200, 8, 8192, 80, 1, "
             "'2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000');\n"
             "INSERT INTO os_templates (id, name, type, template, kind, enabled, created_at, "
             "updated_at) VALUES (90, 'Windows 2022', 'windows', 'local:iso/w.iso', 'qemu', 1, "
             "'2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000'), (91, 'CentOS 7', 'linux', "
             "'local:vztmpl/c7.tar.xz', 'lxc', 0, '2026-01-01 00:00:00.000', "
             "'2026-01-01 00:00:00.000');")
    try:
        assert ok(apache, "/api/tariffs", tok) == SEED_TARIFFS + [
            {"id": 91, "name": "Макс", "price": 1200, "cores": 8, "memory": 8192, "disk": 80}]
        assert ok(apache, "/api/os", tok) == SEED_OS + [
            {"id": 90, "name": "Windows 2022", "type": "windows", "kind": "qemu"}]
    finally:
        sql_exec(database, "DELETE FROM tariffs WHERE id IN (90, 91);\n"
                           "DELETE FROM os_templates WHERE id IN (90, 91);")


# --------------------------------------------------------------- pagination --

def test_default_page_and_next_link(apache, world):
    """Without ?limit a customer gets every server (seed 003's "Get All Servers", issue
    10); a cursor asks for pages of 50 with a Link to the next."""
    r = get(apache, "/api/server", world.tokens["pager"])
    assert r.status_code == 200
    assert [s["id"] for s in r.json()] == world.pager_ids
    assert "Link" not in r.headers and "X-Next-Cursor" not in r.headers
    r = get(apache, "/api/server?after=0", world.tokens["pager"])
    page = r.json()
    assert [s["id"] for s in page] == world.pager_ids[:50]
    last = world.pager_ids[49]
    assert r.headers["Link"] == f'</api/server?limit=50&after={last}>; rel="next"', r.headers
    assert r.headers["X-Next-Cursor"] == str(last)


@pytest.mark.parametrize("route", ["/api/server", "/api/vps"])
@pytest.mark.parametrize("limit,sizes", [(None, [120]), (40, [40, 40, 40]),
                                         (200, [120]), (7, [7] * 17 + [1])])
def test_walk_all_pages(apache, world, route, limit, sizes):
    start = route if limit is None else f"{route}?limit={limit}"
    pages = walk(apache, start, world.tokens["pager"])
    assert [len(p) for p in pages] == sizes
    ids = [s["id"] for p in pages for s in p]
    assert ids == world.pager_ids, "pages with gaps, duplicates or out of order"


def test_after_cursor(apache, world):
    tok, ids = world.tokens["pager"], world.pager_ids
    assert [s["id"] for s in ok(apache, f"/api/server?after={ids[59]}&limit=5", tok)] == ids[60:65]
    # a cursor between ids, and before the first one
    assert ok(apache, f"/api/server?after={ids[-1]}", tok) == []
    r = get(apache, f"/api/server?after={ids[-1]}", tok)
    assert "Link" not in r.headers and "X-Next-Cursor" not in r.headers
    assert [s["id"] for s in ok(apache, "/api/server?limit=3&after=1", tok)] == ids[:3]
    # the last page that is exactly full announces no next page
    r = get(apache, f"/api/server?after={ids[-51]}", tok)
    assert len(r.json()) == 50 and "Link" not in r.headers


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=abc", "limit=-1", "limit=1.5",
                                   "limit=", "limit=1e2", "limit=%20", "after=abc",
                                   "after=-5", "after=1.5"])
@pytest.mark.parametrize("route", ["/api/server", "/api/vps"])
def test_bad_page_parameters(apache, world, route, query):
    r = get(apache, f"{route}?{query}", world.tokens["pager"])
    assert r.status_code == 400, (query, r.status_code, r.text[:200])
    assert isinstance(r.json().get("error"), str) and r.json()["error"]


def test_limit_bounds(apache, world):
    tok = world.tokens["many"]
    assert len(ok(apache, "/api/server?limit=1", tok)) == 1
    assert len(ok(apache, "/api/server?limit=200", tok)) == 200
    assert len(ok(apache, "/api/vps?limit=200", tok)) == 200


def test_five_thousand_servers_bounded(apache, world):
    tok = world.tokens["many"]
    for route, cap in (("/api/server?after=0", 50), ("/api/vps?after=0", 50),
                       ("/api/server?limit=200", 200), ("/api/vps?limit=200", 200)):
        r = get(apache, route, tok)
        assert r.status_code == 200
        body = r.json()
        assert len(body) == cap, (route, len(body))
        assert len(r.content) < cap * 600, (route, len(r.content))
        assert r.headers["X-Next-Cursor"] == str(body[-1]["id"])
        assert [x["id"] for x in body] == world.many_ids[:cap]
    # all of them at once without ?limit, in order
    for route in ("/api/server", "/api/vps"):
        assert [x["id"] for x in ok(apache, route, tok)] == world.many_ids
    # every one of them is reachable, once, in order
    pages = walk(apache, "/api/server?limit=200", tok)
    assert len(pages) == MANY // 200
    assert [s["id"] for p in pages for s in p] == world.many_ids
    s = pages[3][7]
    i = 3 * 200 + 7
    assert s["tariff"]["id"] == 1 + i % 3 and s["os"]["id"] == 1 + i % 3, s
    assert s["createdAt"] == "2026-01-02T03:04:05.678Z"
    # and nobody else's list grew
    assert [x["id"] for x in ok(apache, "/api/server", world.tokens["alice"])] == \
        [v["id"] for v in world.alice_vps]
