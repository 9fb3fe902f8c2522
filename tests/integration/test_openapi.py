"""docs/openapi.yaml (issue 16): it names exactly the routes of lib/ospab_route.c's table, it
is a well-formed OpenAPI 3.1 document as far as can be checked here (references, path
parameters, responses, Draft 2020-12 schemas, examples that fit them), and real answers of
the module conform to it. (conftest.py checks every answer of every other test as well;
these tests ask for each kind of answer on purpose.)"""

import json
import re
import time
import urllib.parse

import jsonschema
import pytest
import requests

import openapi_check
from conftest import Api, access_token, create_user, served, simulated, unique

DOC = openapi_check.Document()
STATUS_KEY = re.compile(r"^(?:[1-5][0-9][0-9]|[1-5]XX|default)$")


# --------------------------------------------------------- the route table, both ways --

def test_every_route_of_the_table_is_documented_and_no_other():
    table = openapi_check.route_table()
    # every row of the table parsed (route_table() raises on a line it cannot read): as
    # many routes as the table has operation names, less its closing NULL row
    text = openapi_check._TABLE.search(openapi_check.ROUTES_C.read_text()).group(1)
    assert len(table) == text.count("OSPAB_OP_") - 1, table
    assert len(table) >= 30, table
    assert len(set(table)) == len(table), "a route twice in the table"
    documented = set(DOC.operations)
    missing = sorted(set(table) - documented)
    extra = sorted(documented - set(table))
    assert not missing and not extra, (
        "docs/openapi.yaml and lib/ospab_route.c disagree:\n"
        + "".join(f"  in the route table, not in the document: {m} {p}\n" for m, p in missing)
        + "".join(f"  in the document, not in the route table: {m} {p}\n" for m, p in extra))


@pytest.mark.parametrize("line", [
    '    {"GET", "/api/x", OSPAB_OP_HEALTH, NULL},',               # other spacing
    '    { "GET", "/api/x", OSPAB_OP_HEALTH, NULL }, /* note */',   # a trailing comment
    '    { "GET", "/api/x/{name}", OSPAB_OP_HEALTH, NULL },',      # a parameter not {id}
    '    { "GET", "/api/x", OSPAB_OP_HEALTH,',                      # a row over two lines
])
def test_route_table_reader_refuses_what_it_cannot_read(tmp_path, line):
    """A table line the strict pattern does not know fails the reader: a route can never be
    skipped without notice."""
    text = openapi_check.ROUTES_C.read_text()
    first = '    { "POST", "/api/vps/sync", OSPAB_OP_VPS_SYNC, NULL },'
    assert first in text
    changed = tmp_path / "ospab_route.c"
    changed.write_text(text.replace(first, first + "\n" + line))
    with pytest.raises(ValueError, match="does not parse"):
        openapi_check.route_table(changed)


# ---------------------------------------------------------- the document's structure --

def walk(node, where=""):
    """(JSON pointer, object) of every dict in the document."""
    if isinstance(node, dict):
        yield where, node
        for k, v in node.items():
            yield from walk(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{where}/{i}")


def operations():
    for (method, template), op in sorted(DOC.operations.items()):
        yield f"{method} {template}", DOC.deref(DOC.doc["paths"][template]), op


def media_types():
    """(where, media type object) of every request and response body."""
    for name, item, op in operations():
        if "requestBody" in op:
            for mt, media in DOC.deref(op["requestBody"])["content"].items():
                yield f"{name} request {mt}", media
        for status, resp in op["responses"].items():
            for mt, media in (DOC.deref(resp).get("content") or {}).items():
                yield f"{name} {status} {mt}", media
    for key, resp in DOC.doc["components"]["responses"].items():
        for mt, media in (resp.get("content") or {}).items():
            yield f"components/responses/{key} {mt}", media


def test_document_is_openapi_3_1():
    d = DOC.doc
    assert d["openapi"] == "3.1.0"
    assert d["info"]["title"] and d["info"]["version"]
    assert d["jsonSchemaDialect"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(d) <= {"openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks",
                      "components", "security", "tags", "externalDocs"}, set(d)
    assert all(p.startswith("/api/") for p in d["paths"]), list(d["paths"])


def references(node, where="", kind="openapi"):
    """(where, object with $ref, kind) for every reference: kind "schema" inside a JSON
    Schema (where $ref may have sibling keywords), "value" inside an example's literal value
    (where "$ref" would be data, not a reference), else "openapi" (a Reference Object)."""
    if isinstance(node, list):
        for i, v in enumerate(node):
            yield from references(v, f"{where}/{i}", kind)
        return
    if not isinstance(node, dict):
        return
    if "$ref" in node:
        yield where, node, kind
    for k, v in node.items():
        inner = kind
        if kind == "openapi" and (k == "schema" or where == "/components/schemas"):
            inner = "schema"
        elif kind != "value" and (k == "example" or (k == "value"
                                                      and "/examples/" in where + "/")):
            inner = "value"
        yield from references(v, f"{where}/{k}", inner)


def test_every_reference_resolves():
    refs = list(references(DOC.doc))
    assert len(refs) > 100, len(refs)
    broken = []
    for where, node, kind in refs:
        if kind == "value":
            broken.append(f"{where}: a $ref inside an example's value is data, not a reference")
            continue
        if kind == "openapi" and set(node) - {"$ref", "summary", "description"}:
            broken.append(f"{where}: a Reference Object has only summary and description "
                          f"beside $ref, not {sorted(set(node) - {'$ref'})}")
        try:
            DOC.pointer(node["$ref"])
        except (KeyError, IndexError, ValueError) as e:
            broken.append(f"{where}: {e}")
    assert not broken, "\n".join(broken)


def test_every_path_parameter_is_declared():
    for name, item, op in operations():
        template = name.split(" ", 1)[1]
        params = [DOC.deref(p) for p in item.get("parameters", []) + op.get("parameters", [])]
        declared = {p["name"] for p in params if p["in"] == "path"}
        assert declared == set(re.findall(r"\{([^}]+)\}", template)), name
        assert all(p["required"] is True for p in params if p["in"] == "path"), name
        assert all(p["in"] in ("path", "query", "header", "cookie") for p in params), name


def test_every_operation_is_described():
    ids, tags = [], {t["name"] for t in DOC.doc["tags"]}
    schemes = set(DOC.doc["components"]["securitySchemes"])
    for name, item, op in operations():
        assert op.get("operationId") and op.get("summary"), name
        ids.append(op["operationId"])
        assert op.get("tags") and set(op["tags"]) <= tags, name
        assert "security" in op, f"{name}: no security requirement (public: security: [])"
        for requirement in op["security"]:
            assert set(requirement) <= schemes, name
        assert op.get("responses"), name
        for status, resp in op["responses"].items():
            assert STATUS_KEY.match(status), (name, status)
            assert DOC.deref(resp).get("description"), (name, status)
    assert len(ids) == len(set(ids)), "an operationId twice"


def test_error_answers_are_the_one_error_shape():
    """SPEC §2: every error is {"error": ...} (the Error schema); only /api/health's 503
    answers with its own report."""
    error = {"$ref": "#/components/schemas/Error"}
    for name, item, op in operations():
        for status, resp in op["responses"].items():
            if int(status) < 400 or name == "GET /api/health":
                continue
            content = DOC.deref(resp)["content"]
            assert list(content) == ["application/json"], (name, status)
            assert content["application/json"]["schema"] == error, (name, status)


def test_answers_every_route_can_give_are_documented():
    """What the module answers on every route of a kind, whatever the route does: a 401
    with WWW-Authenticate where credentials are needed, 400/413/415 where a body is read,
    503 everywhere (every route reads the database)."""
    for name, item, op in operations():
        responses = op["responses"]
        assert "503" in responses, name
        if op["security"] and {} not in op["security"]:
            assert "401" in responses, name
            assert DOC.deref(responses["401"])["headers"]["WWW-Authenticate"], name
        if "requestBody" in op:
            assert {"400", "413", "415"} <= set(responses), name


def test_every_schema_is_a_valid_2020_12_schema():
    schemas = [(f"components/schemas/{k}", s)
               for k, s in DOC.doc["components"]["schemas"].items()]
    schemas += [(f"components/parameters/{k}", p["schema"])
                for k, p in DOC.doc["components"]["parameters"].items()]
    schemas += [(f"components/headers/{k}", h["schema"])
                for k, h in DOC.doc["components"]["headers"].items()]
    schemas += [(where, media["schema"]) for where, media in media_types()]
    assert len(schemas) > 100, len(schemas)
    for where, schema in schemas:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
            DOC.validator(schema)               # and every reference inside it resolves
        except (jsonschema.SchemaError, KeyError, ValueError) as e:
            pytest.fail(f"{where}: {e}")


def test_every_example_fits_its_schema():
    count = 0
    for where, media in media_types():
        for key, example in (media.get("examples") or {}).items():
            value = DOC.deref(example)["value"]
            errors = DOC.schema_errors(media["schema"], value)
            assert not errors, f"{where} example {key}: {errors}"
            count += 1
    assert count >= 40, count


# ----------------------------------------------------------- the checker can fail --

def test_checker_finds_what_the_document_does_not_describe(api):
    r = requests.get(api.apache.url("/api/health"), timeout=30)
    assert r.status_code == 200
    body = r.json()
    good = DOC.problems("GET", "/api/health", 200, r.headers, r.content)
    assert good == []

    def problems(status=200, headers=None, body_=None, method="GET", path="/api/health"):
        h = requests.structures.CaseInsensitiveDict(r.headers)
        h.update(headers or {})
        raw = json.dumps(body if body_ is None else body_).encode()
        return DOC.problems(method, path, status, h, raw)

    assert problems(status=418) and "not documented" in problems(status=418)[0]
    assert problems(headers={"Content-Type": "text/html"})
    missing = {k: v for k, v in body.items() if k != "database"}
    assert any("'database' is a required property" in p for p in problems(body_=missing))
    assert any("/status" in p for p in problems(body_={**body, "status": "fine"}))
    # a 401 without its challenge; a 405 without Allow; an unknown route that is not a 404
    h401 = {"Content-Type": "application/json"}
    assert DOC.problems("GET", "/api/auth/me", 401, h401, b'{"error":"x"}') == \
        ["GET /api/auth/me -> 401: header WWW-Authenticate is missing"]
    assert DOC.problems("PATCH", "/api/health", 405, h401, b'{"error":"x"}') == \
        ["PATCH /api/health (not a method of the path) -> 405: header Allow is missing"]
    assert DOC.problems("GET", "/api/nowhere", 200, h401, b"{}")
    # the Error shape is closed: another key is a mistake
    assert DOC.problems("GET", "/api/nowhere", 404, h401, b'{"error":"x","message":"y"}')
    # ids in paths are what the router takes: a leading zero is no route
    assert DOC.match("GET", "/api/vps/012") == (None, None)
    assert DOC.match("HEAD", "/api/vps/12")[1]["operationId"] == "getVps"


# ------------------------------------------------------------- real answers conform --

def conforms(r, operation_id, status):
    """r (a requests response) is the answer of operation_id with status, as documented."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(r.request.url).path)
    template, op = DOC.match(r.request.method, path)
    assert op is not None and op["operationId"] == operation_id, (r.request.method, path)
    assert r.status_code == status, (operation_id, r.status_code, r.text[:300])
    found = DOC.problems(r.request.method, path, r.status_code, r.headers, r.content)
    assert found == [], found
    return r


def test_sync_answers_conform(api, database):
    user = create_user(api)
    key = unique("idem")
    r = conforms(api.vps("create", {"user_id": user["id"], "name": unique("web"), "cpu": 2,
                                    "ram": 2048, "disk": 50, "os": "Ubuntu 22.04",
                                    "status": "creating", "hypervisor": "proxmox"},
                         headers={"Idempotency-Key": key}), "vpsSync", 201)
    vps = r.json()["vps"]
    again = conforms(api.vps("create", {"user_id": user["id"], "name": vps["name"], "cpu": 2,
                                        "ram": 2048, "disk": 50, "os": "Ubuntu 22.04",
                                        "status": "creating", "hypervisor": "proxmox"},
                             headers={"Idempotency-Key": key}), "vpsSync", 201)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == r.json()
    conforms(api.vps("update", {"id": vps["id"], "status": "running"}), "vpsSync", 200)
    conforms(api.vps("update", {"id": vps["id"], "ram": 8}), "vpsSync", 400)
    conforms(api.vps("create", {**{k: vps[k] for k in ("name", "cpu", "ram", "disk")},
                                "user_id": 2147483000}), "vpsSync", 422)
    conforms(api.vps("update", {"id": 2 ** 40, "status": "running"}), "vpsSync", 404)
    batch = conforms(api.post("/api/vps/sync/batch", json={"operations": [
        {"action": "create", "vps": {"user_id": user["id"], "name": unique("b"), "cpu": 1,
                                     "ram": 512, "disk": 10}},
        {"action": "update", "vps": {"id": vps["id"], "cpu": "2"}}]}), "vpsSyncBatch", 200)
    assert batch.json()["status"] == "partial"
    conforms(api.post("/api/notify", json={"userId": user["id"], "template": "payment-reminder",
                                           "data": {"amount": 499}}), "notify", 202)
    conforms(api.vps("delete", {"id": vps["id"]}), "vpsSync", 200)
    conforms(api.user("update", {"id": user["id"], "name": "Anna"}), "usersSync", 200)
    conforms(api.user("create", {"email": user["email"]}), "usersSync", 409)


def test_customer_answers_conform(api):
    user = create_user(api)
    ids = [api.create_vps(user_id=user["id"])["id"] for _ in range(2)]
    tok = {"Authorization": "Bearer " + access_token(api.apache, user["id"])}

    def get(path, method="GET"):
        return requests.request(method, api.apache.url(path), headers=tok, timeout=30)

    assert len(conforms(get("/api/vps"), "listVps", 200).json()) == 2
    page = conforms(get("/api/server?limit=1"), "listServers", 200)
    assert page.headers["X-Next-Cursor"] == str(ids[0]), page.headers
    conforms(get(f"/api/server/{ids[1]}"), "getServer", 200)
    conforms(get(f"/api/vps/{ids[1]}"), "getVps", 200)
    assert conforms(get(f"/api/vps/{ids[1]}", "HEAD"), "getVps", 200).content == b""
    conforms(get("/api/tariffs"), "listTariffs", 200)
    conforms(get("/api/os"), "listOs", 200)
    conforms(get("/api/auth/me"), "me", 200)
    conforms(get("/api/server?limit=0"), "listServers", 400)
    conforms(get(f"/api/server/{2 ** 40}"), "getServer", 404)
    r = conforms(requests.get(api.apache.url("/api/vps"), timeout=30), "listVps", 401)
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="ospab"'


def test_error_answers_conform(api):
    r = api.post("/api/vps/sync", data=b'{"action":', key=api.key)
    conforms(r, "vpsSync", 400)
    assert {"line", "column", "position"} <= set(r.json()), r.text
    r = conforms(api.vps("create", {}, key=None), "vpsSync", 401)
    assert r.headers["WWW-Authenticate"].startswith("ApiKey ")
    conforms(api.post("/api/vps/sync", data=b"{}", content_type="text/plain"), "vpsSync", 415)
    conforms(api.post("/api/vps/sync", data=b" " * (1024 * 1024 + 1)), "vpsSync", 413)
    # outside the routes: the module's 404 and 405, checked against components/responses
    r = api.get("/api/nowhere")
    assert r.status_code == 404 and DOC.problems("GET", "/api/nowhere", 404, r.headers,
                                                 r.content) == []
    r = api.request("PATCH", "/api/server/1")
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD, DELETE", r.headers
    assert DOC.problems("PATCH", "/api/server/1", 405, r.headers, r.content) == []


def test_session_answers_conform(api):
    user = create_user(api, password="a-long-password-" + unique())
    login = {"email": user["email"], "password": user["password"]}
    tokens = conforms(api.post("/api/auth/login", json=login, key=None), "login", 200).json()
    renewed = conforms(api.post("/api/auth/refresh", key=None,
                                json={"refreshToken": tokens["refreshToken"]}), "refresh", 200)
    conforms(api.post("/api/auth/refresh", key=None,
                      json={"refreshToken": tokens["refreshToken"]}), "refresh", 401)
    conforms(api.post("/api/auth/logout", key=None,
                      json={"refreshToken": renewed.json()["refreshToken"]}), "logout", 200)
    cookie = conforms(api.post("/api/auth/login", json={**login, "session": "cookie"},
                               key=None), "login", 200)
    assert "refreshToken" not in cookie.json() and cookie.cookies.get("ospab_refresh")
    conforms(api.post("/api/auth/login", json={**login, "password": "wrong"}, key=None),
             "login", 401)
    conforms(api.post("/api/auth/login", json={"email": user["email"]}, key=None),
             "login", 400)


# ------------------------------------------------- server management on the simulator --

NODE = "pve1"


@pytest.fixture(scope="module")
def sim():
    yield from simulated(nodes=(NODE,), time_scale=0.05)


@pytest.fixture(scope="module")
def pve_apache(database, sim):
    yield from served(database, [f"OspabProxmoxURL {sim.url}", f"OspabProxmoxToken {sim.token}",
                                 f"OspabProxmoxCA {sim.ca}", f"OspabProxmoxNode {NODE}",
                                 "OspabSelfService On", "OspabServerQuota 0",
                                 "OspabResize free"])


def test_server_management_answers_conform(pve_apache):
    api = Api(pve_apache)
    user = create_user(api)
    tok = {"Authorization": "Bearer " + access_token(pve_apache, user["id"])}

    def call(method, path, body=None):
        return requests.request(method, pve_apache.url(path), headers=tok, json=body,
                                timeout=30)

    def idle(sid):
        """The server's tasks once none runs (each poll follows them up)."""
        deadline = time.monotonic() + 20
        while True:
            tasks = conforms(call("GET", f"/api/server/{sid}/tasks"), "listTasks", 200).json()
            if all(t["status"] in ("ok", "error") for t in tasks) or time.monotonic() > deadline:
                return tasks
            time.sleep(0.2)

    created = conforms(call("POST", "/api/server/create", {"osId": 1, "tariffId": 1}),
                       "createServer", 201).json()
    sid = created["id"]
    assert [t["status"] for t in idle(sid)] == ["ok"]
    status = conforms(call("GET", f"/api/server/{sid}/status?timeframe=hour"),
                      "serverStatus", 200).json()
    assert status["stats"]["data"]["rrdData"], status
    conforms(call("GET", f"/api/vps/{sid}/stats?timeframe=week"), "vpsStats", 200)
    conforms(call("GET", f"/api/server/{sid}/status?timeframe=decade"), "serverStatus", 400)
    conforms(call("POST", f"/api/server/{sid}/start"), "serverStart", 409)   # running
    conforms(call("POST", f"/api/vps/{sid}/reboot"), "vpsReboot", 200)
    idle(sid)
    conforms(call("POST", f"/api/server/{sid}/snapshots", {"snapname": "before",
                                                          "description": "seed 003"}),
             "createSnapshot", 200)
    idle(sid)
    snaps = conforms(call("GET", f"/api/server/{sid}/snapshots"), "listSnapshots", 200)
    assert [s["name"] for s in snaps.json()["data"]] == ["before"]
    conforms(call("POST", f"/api/server/{sid}/snapshots/rollback", {"snapname": "before"}),
             "rollbackSnapshot", 200)
    idle(sid)
    conforms(call("DELETE", f"/api/server/{sid}/snapshots", {"snapname": "x"}),
             "deleteSnapshot", 400)
    conforms(call("DELETE", f"/api/server/{sid}/snapshots", {"snapname": "before"}),
             "deleteSnapshot", 200)
    idle(sid)
    conforms(call("PUT", f"/api/server/{sid}/resize", {"cores": 2, "disk": 20}),
             "serverResize", 200)
    idle(sid)
    conforms(call("PUT", f"/api/server/{sid}/resize", {"disk": 5}), "serverResize", 400)
    conforms(call("POST", "/api/server/console", {"vmid": created["proxmoxId"]}), "console", 200)
    conforms(call("POST", f"/api/server/{sid}/password"), "serverPassword", 503)   # no SSH
    conforms(call("POST", f"/api/server/{sid}/stop"), "serverStop", 200)
    idle(sid)
    conforms(call("DELETE", f"/api/server/{sid}"), "deleteServer", 200)
    other = create_user(api)
    theirs = {"Authorization": "Bearer " + access_token(pve_apache, other["id"])}
    r = requests.post(pve_apache.url(f"/api/server/{sid}/restart"), headers=theirs, timeout=30)
    conforms(r, "serverRestart", 404)


def test_other_hypervisors_answer_501(pve_apache):
    api = Api(pve_apache)
    user = create_user(api)
    vps = api.create_vps(user_id=user["id"], hypervisor="vmware")
    tok = {"Authorization": "Bearer " + access_token(pve_apache, user["id"])}
    r = requests.post(pve_apache.url(f"/api/vps/{vps['id']}/start"), headers=tok, timeout=30)
    conforms(r, "vpsStart", 501)
