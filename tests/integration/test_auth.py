"""Identity (docs/auth.md) against a real Apache with mod_ospab, each test once
on SQLite and once on MariaDB: the authorization matrix (authmatrix.py), JWT
hardening, login/refresh/logout/me, secrets kept out of the logs, and the
login rate limit across Apache children.

Failed logins are rate limited per client address, so tests that fail logins
on purpose send them from their own loopback address (127.77.x.y: all of
127/8 is local) and for their own users.
"""

import hashlib
import hmac
import itertools
import json
import re
import secrets
import subprocess
import threading
import time
import http.client as httpclient
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from requests.adapters import HTTPAdapter

import harness
from openapi_check import route_table   # the API's route table, read strictly
import authmatrix as am
from conftest import (Api, _started, access_token, create_user, new_vps, placeholder_proxmox_conf,
                      sql_exec)

ME = "/api/auth/me"
LOGIN = "/api/auth/login"
REFRESH = "/api/auth/refresh"
LOGOUT = "/api/auth/logout"
INVALID_LOGIN = {"error": "invalid email or password"}
REUSED = ("refresh token was already used: every session of this login has been revoked, "
          "log in again")
CHALLENGE = re.compile(r'^Bearer realm="ospab", error="(invalid_token|invalid_request)", '
                       r'error_description="([^"]*)"$')
APIKEY_CHALLENGE = 'ApiKey realm="ospab", header="X-API-Key"'
LOGIN_KEYS = {"accessToken", "refreshToken", "tokenType", "expiresIn", "user"}
ME_KEYS = {"id", "email", "name", "role", "enabled", "created_at", "updated_at"}


# ----------------------------------------------------------------- HTTP helpers --

class _SourceAdapter(HTTPAdapter):
    """Connect from a given local address (any 127.x.y.z is ours)."""

    def __init__(self, source):
        self._source = source
        super().__init__()

    def init_poolmanager(self, *args, **kw):
        kw["source_address"] = (self._source, 0)
        super().init_poolmanager(*args, **kw)


def http(apache, method, path, json=None, headers=None, source=None, data=None):
    """One request on a new connection (Connection: close), optionally from
    another loopback address."""
    h = {"Connection": "close"}
    if json is not None:
        data = _dumps(json)
    if data is not None:
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    with requests.Session() as s:
        if source:
            s.mount("http://", _SourceAdapter(source))
        return s.request(method, apache.url(path), data=data, headers=h, timeout=30)


def _dumps(obj):
    return json.dumps(obj).encode()


_addresses = itertools.count(1)


def fresh_address():
    """A loopback address no other test of this run has used."""
    n = next(_addresses)
    return f"127.77.{n // 250}.{n % 250 + 1}"


def login(apache, email, password, source=None, **kw):
    return http(apache, "POST", LOGIN, json={"email": email, "password": password},
                source=source, **kw)


def login_ok(apache, user):
    r = login(apache, user["email"], user["password"])
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def refresh(apache, token):
    return http(apache, "POST", REFRESH, json={"refreshToken": token})


def me(apache, tok, **kw):
    return http(apache, "GET", ME, headers={"Authorization": f"Bearer {tok}"}, **kw)


def password():
    return "pw-" + secrets.token_urlsafe(12)


def assert_invalid_token(r, *descriptions):
    """401 with WWW-Authenticate: Bearer ... error="invalid_token" and the
    description (one of `descriptions`, if given) also in {"error": ...}."""
    assert r.status_code == 401, (r.status_code, r.text)
    challenge = r.headers.get("WWW-Authenticate", "")
    m = CHALLENGE.match(challenge)
    assert m and m.group(1) == "invalid_token", challenge
    assert r.json() == {"error": m.group(2)}, (r.json(), challenge)
    if descriptions:
        assert m.group(2) in descriptions, (m.group(2), descriptions)
    return m.group(2)


def error_is(r, status, message):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    assert r.json() == {"error": message}, r.text


# ------------------------------------------------------------------ key pairs --

def _openssl(*args):
    p = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture(scope="session")
def keys():
    """PEM key pairs made with the openssl CLI: rsa (the panel's/IdP's),
    rsa2 (an attacker's), ec (P-256). keys[name] = (private path, public path,
    private PEM, public PEM)."""
    d = harness.make_run_dir("keys-")
    out = {}
    for name, gen in (("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                      ("rsa2", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                      ("ec", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])):
        priv, pub = d / f"{name}.key", d / f"{name}.pub.pem"
        _openssl("genpkey", *gen, "-out", str(priv))
        _openssl("pkey", "-in", str(priv), "-pubout", "-out", str(pub))
        out[name] = (priv, pub, priv.read_text(), pub.read_text())
    return out


def rs256_directives(keys, signing=True, alg="RS256", name="rsa"):
    priv, pub = keys[name][0], keys[name][1]
    lines = [f"OspabJWTAlgorithm {alg}", f'OspabJWTKey "file:{pub}"']
    if signing:
        lines.append(f'OspabJWTSigningKey "file:{priv}"')
    return lines


# --------------------------------------------------------------- the matrix --

class MatrixContext:
    """Users, their VPSes and tokens on one Apache, for authmatrix's rows."""

    def __init__(self, apache, alg="HS256", sign_key=None, public_pem=None):
        self.apache = apache
        self.api = Api(apache)
        self.sync_key = apache.sync_key
        self.alg = alg
        self.sign_key = sign_key if sign_key is not None else apache.jwt_secret
        self.public_pem = public_pem
        self.owner_password = password()
        owner = create_user(self.api, password=self.owner_password)
        other = create_user(self.api, password=password())
        self.owner_id, self.other_id, self.admin_id = owner["id"], other["id"], 1
        self.owner_email = owner["email"]
        self.owner_vps_id = self.api.create_vps(user_id=self.owner_id)["id"]
        self.other_vps_id = self.api.create_vps(user_id=self.other_id)["id"]
        # the owner's token is one the panel issued; the others are minted like an IdP would
        self.owner_token = login_ok(apache, owner)["accessToken"]
        self.other_token = self.mint(self.other_id)
        self.admin_token = self.mint(self.admin_id, role="admin")
        self.owner_key_id = self.fresh_ssh_key()

    def mint(self, user_id, role="user", **extra):
        return am.token(am.claims(user_id, role, **extra), self.sign_key, self.alg)

    def fresh_refresh_token(self):
        r = login(self.apache, self.owner_email, self.owner_password)
        assert r.status_code == 200, r.text
        return r.json()["refreshToken"]

    def fresh_ssh_key(self):
        """A new SSH key of the owner's (through the API); its id."""
        r = http(self.apache, "POST", "/api/account/ssh-keys", headers=am.bearer(self.owner_token),
                 json={"publicKey": am.ssh_public_key("matrix-owner")})
        assert r.status_code == 201, r.text
        return r.json()["key"]["id"]

    def user_of(self, who):
        return {"owner": self.owner_id, "other": self.other_id, "admin": self.admin_id}[who]

    def vps_of(self, who):
        return {"owner": self.owner_vps_id, "other": self.other_vps_id}.get(who)


# The matrix logs its owner in afresh for every refresh/logout cell: more logins of one
# account than OspabRateLimit's default 30 per window allow (test_login_count_limit).
MATRIX_RATE_LIMIT = "OspabRateLimit 10 300 100000"


@pytest.fixture(scope="module")
def hs_apache(database):
    a = harness.Apache(database, extra_conf=[*placeholder_proxmox_conf(), MATRIX_RATE_LIMIT])
    _started(a)
    yield a
    a.stop()


@pytest.fixture(scope="module")
def hs_ctx(hs_apache):
    return MatrixContext(hs_apache)


@pytest.fixture(scope="module")
def rs_apache(database, keys):
    """RS256 with a signing key: the panel issues and verifies RS256 tokens."""
    a = harness.Apache(database, jwt_directives=rs256_directives(keys),
                       extra_conf=[MATRIX_RATE_LIMIT])
    _started(a)
    yield a
    a.stop()


@pytest.fixture(scope="module")
def rs_ctx(rs_apache, keys):
    return MatrixContext(rs_apache, alg="RS256", sign_key=keys["rsa"][2],
                         public_pem=keys["rsa"][3].strip())


def _check_apikey(r, route, cred, ctx, e, body, database):
    assert r.headers.get("WWW-Authenticate") == APIKEY_CHALLENGE, r.headers
    assert r.json()["error"] in e.description, r.text
    assert route.written(database, body) == 0, "a refused sync request wrote"


def _check_written(r, route, cred, ctx, e, body, database):
    assert route.written(database, body) == 1, "the sync request did not write"


def _check_bearer_missing(r, route, cred, ctx, e, body, database):
    assert r.headers.get("WWW-Authenticate") == 'Bearer realm="ospab"', r.headers
    assert r.json() == {"error": "missing bearer token"}, r.text


def _check_invalid_request(r, route, cred, ctx, e, body, database):
    m = CHALLENGE.match(r.headers.get("WWW-Authenticate", ""))
    assert m and m.group(1) == "invalid_request", r.headers
    assert r.json() == {"error": m.group(2)}, r.text


def _check_invalid_token(r, route, cred, ctx, e, body, database):
    assert_invalid_token(r, *e.description)


def _items(r):
    data = r.json()
    assert isinstance(data, list), data
    return data


def _check_own(r, route, cred, ctx, e, body, database):
    uid = ctx.user_of(cred.who)
    if route.scope == "self":
        assert r.json()["id"] == uid, r.text
    elif route.scope == "list":
        items = _items(r)
        assert items, "the caller owns a server but the list is empty"
        assert {i[route.owner_field] for i in items} == {uid}, items
        assert ctx.vps_of(cred.who) in {i["id"] for i in items}
    elif route.scope == "owned":
        got = r.json()
        assert got["id"] == ctx.owner_vps_id and got[route.owner_field] == uid, got
    else:
        assert _items(r), "empty catalogue"


def _check_sees_all(r, route, cred, ctx, e, body, database):
    if route.scope == "self":
        assert r.json()["id"] == ctx.admin_id and r.json()["role"] == "admin", r.text
    elif route.scope == "list":
        owners = {i[route.owner_field] for i in _items(r)}
        assert owners - {ctx.admin_id}, "an admin sees other users' servers"
    elif route.scope == "owned":
        got = r.json()
        assert got["id"] == ctx.owner_vps_id and got[route.owner_field] == ctx.owner_id, got
    else:
        assert _items(r)


def _check_not_found(r, route, cred, ctx, e, body, database):
    assert r.json() == {"error": "server not found"}, r.text


def _key_owners(database, key_id):
    return [r["user_id"] for r in database.query("SELECT user_id FROM ssh_keys WHERE id = ?",
                                                 [key_id])]


def _path_id(r):
    return int(r.request.url.rsplit("/", 1)[1])


def _check_own_keys(r, route, cred, ctx, e, body, database):
    uid = ctx.user_of(cred.who)
    ids = [k["id"] for k in _items(r)]
    assert all(_key_owners(database, i) == [str(uid)] for i in ids), (cred.who, ids)
    assert len(ids) == database.count("SELECT COUNT(*) FROM ssh_keys WHERE user_id = ?",
                                      [uid]), ids
    assert (ctx.owner_key_id in ids) == (cred.who == "owner"), (cred.who, ids)


def _check_key_added(r, route, cred, ctx, e, body, database):
    key = r.json()["key"]
    assert key["publicKey"] == body["publicKey"] and key["name"] == body["name"], key
    assert _key_owners(database, key["id"]) == [str(ctx.user_of(cred.who))], key


def _check_key_deleted(r, route, cred, ctx, e, body, database):
    assert r.json() == {"status": "success", "message": "SSH key deleted"}, r.text
    assert _key_owners(database, _path_id(r)) == []


def _check_key_not_found(r, route, cred, ctx, e, body, database):
    assert r.json() == {"error": "SSH key not found"}, r.text
    assert _key_owners(database, _path_id(r)) == [str(ctx.owner_id)], "another's key went"


CHECKS = {
    None: lambda *a: None,
    "apikey": _check_apikey,
    "written": _check_written,
    "bearer-missing": _check_bearer_missing,
    "invalid_request": _check_invalid_request,
    "invalid_token": _check_invalid_token,
    "own": _check_own,
    "sees-all": _check_sees_all,
    "not-found": _check_not_found,
    "own-keys": _check_own_keys,
    "key-added": _check_key_added,
    "key-deleted": _check_key_deleted,
    "key-not-found": _check_key_not_found,
}


@pytest.mark.parametrize("route,cred", am.cells(),
                         ids=[f"{r.id}-{c.name}" for r, c in am.cells()])
def test_matrix(request, database, route, cred):
    ctx = request.getfixturevalue("hs_ctx" if cred.server == "hs256" else "rs_ctx")
    e = am.expected(route, cred)
    body = route.body(ctx) if route.body else None
    r = http(ctx.apache, route.method, route.url_path(ctx), json=body,
             headers=cred.headers(ctx))
    assert r.status_code == e.status, (route.id, cred.name, r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    if r.status_code == route.ok and route.keys:
        assert route.keys <= set(r.json()), (route.id, r.text[:300])
    CHECKS[e.check](r, route, cred, ctx, e, body, database)


def test_matrix_lists_every_route():
    """Every route of the API's table (lib/ospab_route.c) has a row in authmatrix.ROUTES
    (and no row names a route that does not exist)."""
    table = set(route_table())
    assert len(table) >= 14, table
    rows = {(r.method, r.path) for r in am.ROUTES}
    assert table - rows == set(), "routes missing from authmatrix.ROUTES"
    assert rows - table == set(), "authmatrix rows without a route"


def test_matrix_expects_every_credential():
    for route, cred in am.cells():
        e = am.expected(route, cred)
        assert isinstance(e.status, int) and 200 <= e.status < 500, (route.id, cred.name)


# ------------------------------------------------------------ JWT hardening --

@pytest.fixture(scope="module")
def owner(apache):
    """A user with a password and one VPS, on the module's Apache."""
    api = Api(apache)
    u = create_user(api, password=password())
    u["vps"] = api.create_vps(user_id=u["id"])["id"]
    return u


def hs(apache, user_id, role="user", **claims):
    return access_token(apache, user_id, role, **claims)


def test_valid_token_sub_as_string_or_number(apache, owner):
    for sub in (str(owner["id"]), owner["id"]):
        r = me(apache, hs(apache, owner["id"], sub=sub))
        assert r.status_code == 200, (sub, r.text)
        assert r.json()["id"] == owner["id"]


@pytest.mark.parametrize("alg,signature", [("none", ""), ("none", "c2ln"), ("None", "c2ln"),
                                           ("NONE", ""), ("", "c2ln")])
def test_alg_none_refused(apache, owner, alg, signature):
    tok = am.unsigned_token(am.claims(owner["id"]), alg=alg, signature=signature)
    if signature:
        assert_invalid_token(me(apache, tok), "algorithm not accepted")
    else:
        assert_invalid_token(me(apache, tok), "algorithm not accepted", "malformed token")


def test_alg_none_with_a_valid_hs256_signature_refused(apache, owner):
    """Header says none, signature is a real HS256 one over that header."""
    tok = am.token(am.claims(owner["id"]), apache.jwt_secret, "HS256", header={"alg": "none"})
    assert_invalid_token(me(apache, tok), "algorithm not accepted")


@pytest.mark.parametrize("header", [{"alg": "HS512"}, {"alg": "HS384"}, {"alg": "hs256"},
                                    {"alg": "RS256"}, {"alg": "ES256"}, {"alg": None},
                                    {"alg": ["HS256"]}])
def test_alg_header_mismatch(apache, owner, header):
    """Signed correctly with the secret (HMAC-SHA256 or the algorithm named),
    but the header does not name exactly HS256."""
    sign_alg = header["alg"] if header["alg"] in ("HS512", "HS384") else "HS256"
    tok = am.token(am.claims(owner["id"]), apache.jwt_secret, sign_alg, header=header)
    assert_invalid_token(me(apache, tok), "algorithm not accepted")


def test_no_alg_in_header(apache, owner):
    h = am.segment({"typ": "JWT"})
    c = am.segment(am.claims(owner["id"]))
    sig = am.b64url(hmac.new(apache.jwt_secret.encode(), f"{h}.{c}".encode(),
                              hashlib.sha256).digest())
    assert_invalid_token(me(apache, f"{h}.{c}.{sig}"), "algorithm not accepted")


@pytest.mark.parametrize("change", ["sub", "role", "exp"])
def test_tampered_payload(apache, owner, change):
    good = hs(apache, owner["id"])
    assert me(apache, good).status_code == 200
    value = {"sub": "1", "role": "admin", "exp": int(time.time()) + 86400 * 365}[change]
    assert_invalid_token(me(apache, am.tamper(good, **{change: value})), "invalid signature")


def test_wrong_signature(apache, owner):
    other_secret = secrets.token_hex(32)
    assert_invalid_token(me(apache, am.token(am.claims(owner["id"]), other_secret)),
                         "invalid signature")
    good = hs(apache, owner["id"])
    h, c, s = good.split(".")
    flipped = s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1]
    assert_invalid_token(me(apache, f"{h}.{c}.{flipped}"), "invalid signature")
    assert_invalid_token(me(apache, f"{h}.{c}.{s[:10]}"), "invalid signature")
    # the signature of another valid token
    other = hs(apache, owner["id"], role="admin").split(".")[2]
    assert_invalid_token(me(apache, f"{h}.{c}.{other}"), "invalid signature")


@pytest.mark.parametrize("tok", ["abc", "a.b", "a.b.c.d", "..", "e30.e30.", "!!!.e30.c2ln",
                                 "e30.!!!.c2ln", "e30.e30.c2ln", "x" * 8150,
                                 "eyJhbGciOiJIUzI1NiJ9." + "e" * 8100 + ".c2ln"],
                         ids=lambda t: t if len(t) < 40 else f"long-{len(t)}")
def test_garbage_tokens(apache, tok):
    assert_invalid_token(me(apache, tok))


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc",
                                   "Bearerabc", "JWT abc"])
def test_malformed_authorization_header(apache, value):
    r = http(apache, "GET", ME, headers={"Authorization": value})
    assert r.status_code == 401, r.text
    m = CHALLENGE.match(r.headers.get("WWW-Authenticate", ""))
    assert m and m.group(1) == "invalid_request", r.headers
    assert r.json() == {"error": m.group(2)}


def test_bearer_scheme_is_case_insensitive(apache, owner):
    r = http(apache, "GET", ME, headers={"Authorization": "bearer " + hs(apache, owner["id"])})
    assert r.status_code == 200, r.text


def test_no_credentials(apache):
    r = http(apache, "GET", "/api/server")
    error_is(r, 401, "missing bearer token")
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="ospab"'


def test_token_outside_the_authorization_header_is_ignored(apache, owner):
    tok = hs(apache, owner["id"])
    for path in (f"/api/server?access_token={tok}", f"/api/server?token={tok}"):
        error_is(http(apache, "GET", path), 401, "missing bearer token")
    error_is(http(apache, "GET", ME, headers={"X-Access-Token": tok, "Cookie": f"token={tok}"}),
             401, "missing bearer token")


def test_expired_and_default_leeway(apache, owner):
    """Default OspabJWTLeeway is 30 s."""
    assert_invalid_token(me(apache, hs(apache, owner["id"], iat=-7200, exp=-3600)),
                         "token expired")
    assert_invalid_token(me(apache, hs(apache, owner["id"], iat=-600, exp=-60)), "token expired")
    assert me(apache, hs(apache, owner["id"], iat=-600, exp=-5)).status_code == 200


def test_configured_leeway(start_apache, database, owner):
    a = start_apache(extra_conf=["OspabJWTLeeway 120"])
    assert me(a, hs(a, owner["id"], iat=-600, exp=-60)).status_code == 200
    assert me(a, hs(a, owner["id"], nbf=60)).status_code == 200
    assert_invalid_token(me(a, hs(a, owner["id"], iat=-600, exp=-200)), "token expired")
    assert_invalid_token(me(a, hs(a, owner["id"], nbf=200)), "token not yet valid")
    b = start_apache(extra_conf=["OspabJWTLeeway 0"])
    assert_invalid_token(me(b, hs(b, owner["id"], iat=-600, exp=-2)), "token expired")
    assert_invalid_token(me(b, hs(b, owner["id"], nbf=5)), "token not yet valid")


def test_nbf(apache, owner):
    assert_invalid_token(me(apache, hs(apache, owner["id"], nbf=3600)), "token not yet valid")
    assert me(apache, hs(apache, owner["id"], nbf=-60)).status_code == 200
    assert me(apache, hs(apache, owner["id"], nbf=10)).status_code == 200     # within leeway


@pytest.mark.parametrize("exp", [None, "9999999999", 9999999999.5, True])
def test_exp_required_as_integer(apache, owner, exp):
    claim_set = am.claims(owner["id"])
    if exp is None:
        claim_set.pop("exp")
    else:
        claim_set["exp"] = exp
    tok = am.token(claim_set, apache.jwt_secret)
    desc = assert_invalid_token(me(apache, tok))
    if exp is None:
        assert desc == "exp claim missing"


def test_cached_token_still_checks_expiry(start_apache, database, owner):
    """A child caches verified tokens; exp is checked at every use all the same."""
    a = start_apache(extra_conf=["OspabJWTLeeway 0"], mpm="prefork")
    tok = hs(a, owner["id"], exp=2)
    exp = am.parts(tok)[1]["exp"]
    with requests.Session() as s:                # one connection: one child, its cache
        assert s.get(a.url(ME), headers={"Authorization": f"Bearer {tok}"}).status_code == 200
        time.sleep(max(0.0, exp - time.time()) + 0.05)
        r = s.get(a.url(ME), headers={"Authorization": f"Bearer {tok}"})
    assert_invalid_token(r, "token expired")


def test_cached_token_still_checks_the_user(apache, owner):
    api = Api(apache)
    u = create_user(api)
    tok = hs(apache, u["id"])
    with requests.Session() as s:
        assert s.get(apache.url(ME), headers={"Authorization": f"Bearer {tok}"}).status_code == 200
        assert api.user("update", {"id": u["id"], "enabled": False}).status_code == 200
        r = s.get(apache.url(ME), headers={"Authorization": f"Bearer {tok}"})
    assert_invalid_token(r, "unknown or disabled user")


@pytest.fixture(scope="module")
def iss_apache(database):
    a = harness.Apache(database, extra_conf=["OspabJWTIssuer https://id.example.com/",
                                             "OspabJWTAudience ospab-panel"])
    _started(a)
    yield a
    a.stop()


@pytest.mark.parametrize("claims,ok,desc", [
    ({"iss": "https://id.example.com/", "aud": "ospab-panel"}, True, None),
    ({"iss": "https://id.example.com/", "aud": ["other", "ospab-panel"]}, True, None),
    ({"aud": "ospab-panel"}, False, "wrong issuer"),
    ({"iss": "https://id.example.com", "aud": "ospab-panel"}, False, "wrong issuer"),
    ({"iss": "https://evil.example.com/", "aud": "ospab-panel"}, False, "wrong issuer"),
    ({"iss": ["https://id.example.com/"], "aud": "ospab-panel"}, False, "wrong issuer"),
    ({"iss": "https://id.example.com/"}, False, "wrong audience"),
    ({"iss": "https://id.example.com/", "aud": "ospab"}, False, "wrong audience"),
    ({"iss": "https://id.example.com/", "aud": ["a", "b"]}, False, "wrong audience"),
    ({"iss": "https://id.example.com/", "aud": []}, False, "wrong audience"),
])
def test_issuer_and_audience(iss_apache, owner, claims, ok, desc):
    r = me(iss_apache, hs(iss_apache, owner["id"], **claims))
    if ok:
        assert r.status_code == 200, r.text
    else:
        assert_invalid_token(r, desc)


def test_issued_tokens_carry_issuer_and_audience(iss_apache, owner):
    body = login_ok(iss_apache, owner)
    _, c, _ = am.parts(body["accessToken"])
    assert c["iss"] == "https://id.example.com/" and c["aud"] == "ospab-panel", c
    assert me(iss_apache, body["accessToken"]).status_code == 200


def test_without_issuer_config_iss_aud_are_not_required(apache, owner):
    assert me(apache, hs(apache, owner["id"], iss="anyone", aud="anything")).status_code == 200


@pytest.mark.parametrize("sub", ["abc", 0, "0", -5, "-5", 1.5, "1.5", "", True, None, "5abc",
                                 " 5", "+5", [5], {"id": 5}, "99999999999999999999"],
                         ids=repr)
def test_sub_must_be_a_positive_integer(apache, sub):
    claim_set = am.claims(1)
    if sub is None:
        claim_set.pop("sub")
    else:
        claim_set["sub"] = sub
    assert_invalid_token(me(apache, am.token(claim_set, apache.jwt_secret)),
                         "sub must be a user id")


def test_sub_unknown_user(apache):
    assert_invalid_token(me(apache, hs(apache, 987654321)), "unknown or disabled user")


def test_sub_disabled_user(apache):
    api = Api(apache)
    u = create_user(api)
    tok = hs(apache, u["id"])
    assert me(apache, tok).status_code == 200
    r = api.user("update", {"id": u["id"], "enabled": False})
    assert r.status_code == 200 and r.json()["user"]["enabled"] is False, r.text
    assert_invalid_token(me(apache, tok), "unknown or disabled user")
    assert_invalid_token(http(apache, "GET", "/api/server",
                              headers={"Authorization": f"Bearer {tok}"}),
                         "unknown or disabled user")
    assert api.user("update", {"id": u["id"], "enabled": True}).status_code == 200
    assert me(apache, tok).status_code == 200


@pytest.mark.parametrize("role", ["superuser", "Admin", "ADMIN", "", 1, None, ["admin"]],
                         ids=repr)
def test_role_must_be_user_or_admin(apache, owner, role):
    claim_set = am.claims(owner["id"])
    claim_set["role"] = role
    assert_invalid_token(me(apache, am.token(claim_set, apache.jwt_secret)))


def test_role_comes_from_the_user_row(apache, owner):
    """The role claim is read (an unknown one is refused) but never believed: what the
    user may see is the users row's role (security fix M3: a demoted admin's token must
    not keep admin rights until it expires)."""
    tok = hs(apache, owner["id"], role=None)
    assert "role" not in am.parts(tok)[1]
    r = http(apache, "GET", "/api/server", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 200, r.text
    assert {s["userId"] for s in r.json()} == {owner["id"]}
    # a user's token saying "admin" does not see everything
    r = http(apache, "GET", "/api/server",
             headers={"Authorization": f"Bearer {hs(apache, owner['id'], role='admin')}"})
    assert r.status_code == 200 and {s["userId"] for s in r.json()} == {owner["id"]}, r.text
    # the admin's (user 1's) token without the claim does, being an admin in the database
    r = http(apache, "GET", "/api/server",
             headers={"Authorization": f"Bearer {hs(apache, 1, role=None)}"})
    assert r.status_code == 200 and {s["userId"] for s in r.json()} > {owner["id"]}, r.text


# -------------------------------------------------- RS256 / ES256 / configtest --

def test_rs256_login_issues_rs256_tokens(rs_apache, keys):
    api = Api(rs_apache)
    u = create_user(api, password=password())
    body = login_ok(rs_apache, u)
    h, c, _ = am.parts(body["accessToken"])
    assert h["alg"] == "RS256", h
    assert c["sub"] == str(u["id"]) and c["role"] == "user", c
    assert am.verify_rs256(body["accessToken"], keys["rsa"][3])
    assert not am.verify_rs256(body["accessToken"], keys["rsa2"][3])
    r = me(rs_apache, body["accessToken"])
    assert r.status_code == 200 and r.json()["id"] == u["id"], r.text
    # refresh issues RS256 tokens too
    r = refresh(rs_apache, body["refreshToken"])
    assert r.status_code == 200, r.text
    assert am.parts(r.json()["accessToken"])[0]["alg"] == "RS256"
    assert me(rs_apache, r.json()["accessToken"]).status_code == 200


def test_rs256_refuses_forgeries(rs_apache, keys):
    pub = keys["rsa"][3]
    c = am.claims(1, role="admin")
    for key in (pub, pub.strip(), pub.strip() + "\n"):
        assert_invalid_token(me(rs_apache, am.token(c, key, "HS256")), "algorithm not accepted")
    # the header claims RS256 but the signature is an HMAC with the public key
    assert_invalid_token(me(rs_apache, am.token(c, pub.strip(), "HS256",
                                                header={"alg": "RS256"})),
                         "invalid signature")
    assert_invalid_token(me(rs_apache, am.token(c, keys["rsa2"][2], "RS256")),
                         "invalid signature")
    assert_invalid_token(me(rs_apache, am.token(c, keys["ec"][2], "ES256")),
                         "algorithm not accepted")
    assert_invalid_token(me(rs_apache, am.unsigned_token(c)), "algorithm not accepted",
                         "malformed token")
    ok = am.token(c, keys["rsa"][2], "RS256")
    assert me(rs_apache, ok).status_code == 200
    assert_invalid_token(me(rs_apache, am.tamper(ok, sub="5")), "invalid signature")


def test_rs256_without_signing_key(start_apache, keys, owner):
    """Tokens come from an external IdP: login is 501, the IdP's tokens work."""
    a = start_apache(jwt_directives=rs256_directives(keys, signing=False))
    r = login(a, owner["email"], owner["password"])
    assert r.status_code == 501, r.text
    assert isinstance(r.json().get("error"), str) and r.json()["error"]
    idp = am.token(am.claims(owner["id"], iss="https://id.example.com/"), keys["rsa"][2], "RS256")
    r = me(a, idp)
    assert r.status_code == 200 and r.json()["id"] == owner["id"], r.text
    r = http(a, "GET", "/api/server", headers={"Authorization": f"Bearer {idp}"})
    assert r.status_code == 200 and {s["userId"] for s in r.json()} == {owner["id"]}
    admin = am.token(am.claims(1, role="admin"), keys["rsa"][2], "RS256")
    r = http(a, "GET", f"/api/server/{owner['vps']}", headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 200, r.text
    assert_invalid_token(me(a, am.token(am.claims(owner["id"]), a.jwt_secret)),
                         "algorithm not accepted")


def test_es256(start_apache, keys, owner):
    a = start_apache(jwt_directives=rs256_directives(keys, alg="ES256", name="ec"))
    tok = am.token(am.claims(owner["id"]), keys["ec"][2], "ES256")
    assert me(a, tok).status_code == 200
    body = login_ok(a, owner)
    assert am.parts(body["accessToken"])[0]["alg"] == "ES256"
    assert me(a, body["accessToken"]).status_code == 200
    assert_invalid_token(me(a, am.token(am.claims(owner["id"]), keys["rsa"][2], "RS256")),
                         "algorithm not accepted")
    assert_invalid_token(me(a, am.token(am.claims(owner["id"]), keys["ec"][3].strip(),
                                        "HS256")), "algorithm not accepted")


def _configtest(database, **kw):
    return harness.Apache(database, **kw).configtest()


@pytest.mark.parametrize("alg,key,signing", [
    ("ES256", "rsa", None),            # an RSA public key for ES256
    ("RS256", "ec", None),             # an EC public key for RS256
    ("RS256", "rsa-private", None),    # the private key where the public one belongs
    ("RS256", "hs-secret", None),      # not a PEM at all
    ("ES256", "ec", "rsa"),            # signing key of the wrong type
])
def test_configtest_rejects_wrong_keys(database, keys, alg, key, signing):
    paths = {"rsa": keys["rsa"][1], "ec": keys["ec"][1], "rsa-private": keys["rsa"][0]}
    lines = [f"OspabJWTAlgorithm {alg}"]
    if key == "hs-secret":
        lines.append(f"OspabJWTKey {secrets.token_hex(32)}")
    else:
        lines.append(f'OspabJWTKey "file:{paths[key]}"')
    if signing:
        lines.append(f'OspabJWTSigningKey "file:{keys[signing][0]}"')
    rc, out = _configtest(database, jwt_directives=lines)
    assert rc != 0, out
    assert ("OspabJWTSigningKey" if signing else "OspabJWTKey") in out, out


def test_configtest_accepts_good_asymmetric_keys(database, keys):
    for lines in (rs256_directives(keys), rs256_directives(keys, signing=False),
                  rs256_directives(keys, alg="ES256", name="ec")):
        rc, out = _configtest(database, jwt_directives=lines)
        assert rc == 0 and "Syntax OK" in out, (lines, out)


def test_configtest_without_jwt_key_fails(database):
    rc, out = _configtest(database, jwt_directives=[])
    assert rc != 0 and "OspabJWTKey" in out, out


@pytest.mark.parametrize("length,ok", [(0, False), (16, False), (31, False), (32, True)])
def test_configtest_hs256_secret_length(database, length, ok):
    secret = (secrets.token_hex(32))[:length]
    if length == 0:
        rc, out = _configtest(database, jwt_directives=['OspabJWTKey ""'])
    else:
        rc, out = _configtest(database, jwt_secret=secret)
    if ok:
        assert rc == 0, out
    else:
        assert rc != 0 and "OspabJWTKey" in out, out
    assert not secret or secret not in out


@pytest.mark.parametrize("line", ["OspabJWTAlgorithm none", "OspabJWTAlgorithm HS512",
                                  "OspabJWTAlgorithm hs256", "OspabJWTLeeway 301",
                                  "OspabJWTLeeway -1", "OspabRateLimit 0 60",
                                  "OspabRateLimit 3 0", "OspabAccessTokenTTL 59"])
def test_configtest_rejects_bad_directives(database, line):
    rc, out = _configtest(database, extra_conf=[line])
    assert rc != 0 and line.split()[0] in out, out


def test_configtest_hs256_with_signing_key_fails(database, keys):
    rc, out = _configtest(database, extra_conf=[f'OspabJWTSigningKey "file:{keys["rsa"][0]}"'])
    assert rc != 0 and "OspabJWTSigningKey" in out, out


def test_jwt_key_file_with_trailing_newline(start_apache, owner):
    secret = secrets.token_hex(32)
    d = harness.make_run_dir("jwtkey-")
    (d / "jwt.key").write_text(secret + "\n")
    a = start_apache(jwt_directives=[f'OspabJWTKey "file:{d / "jwt.key"}"'], jwt_secret=secret)
    assert me(a, hs(a, owner["id"])).status_code == 200
    body = login_ok(a, owner)
    assert am.verify_hs256(body["accessToken"], secret)


def test_jwt_key_from_env(start_apache, owner):
    secret = secrets.token_hex(32)
    a = start_apache(jwt_directives=["OspabJWTKey env:OSPAB_TEST_JWT_KEY"],
                     env={"OSPAB_TEST_JWT_KEY": secret}, jwt_secret=secret)
    assert me(a, hs(a, owner["id"])).status_code == 200
    assert login(a, owner["email"], owner["password"]).status_code == 200


# ------------------------------------------------------------------- login --

def test_login_success_shape(apache):
    api = Api(apache)
    u = create_user(api, password=password(), name="Анна")
    r = login(apache, u["email"], u["password"])
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert set(body) == LOGIN_KEYS, body
    assert body["tokenType"] == "Bearer" and body["expiresIn"] == 900
    assert body["user"] == {"id": u["id"], "email": u["email"], "name": "Анна", "role": "user"}
    assert re.fullmatch(r"[A-Za-z0-9_-]{32,}", body["refreshToken"]), body["refreshToken"]
    h, c, _ = am.parts(body["accessToken"])
    assert h["alg"] == "HS256", h
    assert am.verify_hs256(body["accessToken"], apache.jwt_secret)
    assert c["sub"] == str(u["id"]) and c["role"] == "user", c
    assert c["exp"] - c["iat"] == 900 and abs(c["iat"] - time.time()) < 60, c
    assert isinstance(c["jti"], str) and c["jti"]
    assert "iss" not in c and "aud" not in c
    # the token works; a second login gives other tokens
    assert me(apache, body["accessToken"]).json()["id"] == u["id"]
    again = login_ok(apache, u)
    assert again["accessToken"] != body["accessToken"]
    assert again["refreshToken"] != body["refreshToken"]


def test_login_admin_role(apache):
    u = create_user(Api(apache), password=password(), role="admin")
    body = login_ok(apache, u)
    assert body["user"]["role"] == "admin"
    assert am.parts(body["accessToken"])[1]["role"] == "admin"


def test_login_failures_look_the_same(apache):
    api = Api(apache)
    src = fresh_address()
    u = create_user(api, password=password())
    disabled = create_user(api, password=password())
    assert api.user("update", {"id": disabled["id"], "enabled": False}).status_code == 200
    nopass = create_user(api)
    answers = [
        login(apache, u["email"], u["password"] + "x", source=src),            # wrong password
        login(apache, "nobody-" + u["email"], u["password"], source=src),     # unknown e-mail
        login(apache, disabled["email"], disabled["password"], source=src),    # disabled
        login(apache, nopass["email"], "some-password", source=src),           # no password set
    ]
    answers.append(login(apache, u["email"], "x" * 20000, source=src))        # beyond libcrypt
    answers.append(login(apache, u["email"], u["password"].upper(), source=src))
    for r in answers:
        error_is(r, 401, INVALID_LOGIN["error"])
    assert len({r.content for r in answers}) == 1
    assert len({r.headers.get("WWW-Authenticate") for r in answers}) == 1


def test_login_and_refresh_401_carry_a_challenge(apache):
    """SPEC §2 (and RFC 7235 §3.1): every 401 carries WWW-Authenticate, also
    the ones of /api/auth/login and /api/auth/refresh."""
    u = create_user(Api(apache), password=password())
    answers = {
        "login": login(apache, u["email"], "wrong-password", source=fresh_address()),
        "refresh": refresh(apache, "no-such-token-" + secrets.token_urlsafe(8)),
    }
    for name, r in answers.items():
        assert r.status_code == 401, (name, r.text)
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer realm=\"ospab\""), \
            f"{name}: 401 without a WWW-Authenticate challenge: {dict(r.headers)}"


def test_unknown_email_costs_a_password_check(apache):
    """'the same answer, after the same amount of work': an unknown e-mail is
    not answered much faster than a wrong password (generous bound: a real
    hash check is ~20x a lookup)."""
    u = create_user(Api(apache), password=password())
    src = fresh_address()

    def median(email):
        times = []
        for _ in range(3):
            t = time.monotonic()
            assert login(apache, email, "wrong-password", source=src).status_code == 401
            times.append(time.monotonic() - t)
        return sorted(times)[1]

    wrong, unknown = median(u["email"]), median("nobody-" + u["email"])
    assert unknown > 0.3 * wrong, (unknown, wrong)


@pytest.mark.parametrize("body", [{}, {"email": "a@example.com"}, {"password": "password1"},
                                  {"email": "", "password": ""},
                                  {"email": "a@example.com", "password": ""},
                                  {"email": 1, "password": 2},
                                  {"email": None, "password": "password1"},
                                  {"email": ["a@example.com"], "password": "password1"}])
def test_login_missing_fields(apache, body):
    r = http(apache, "POST", LOGIN, json=body, source=fresh_address())
    assert r.status_code == 400, r.text
    assert isinstance(r.json()["error"], str)


def test_login_bad_bodies(apache):
    src = fresh_address()
    r = http(apache, "POST", LOGIN, data=b'{"email":', source=src)
    assert r.status_code == 400 and "error" in r.json()
    r = http(apache, "POST", LOGIN, data=b"[]", source=src)
    assert r.status_code == 400
    # a NUL inside the password is not JSON the panel accepts (and not a way around the hash)
    r = http(apache, "POST", LOGIN, data=b'{"email":"a@example.com","password":"ab\\u0000cd"}',
             source=src)
    assert r.status_code == 400, r.text
    r = http(apache, "POST", LOGIN, data=b'{"email":"a@example.com","password":"x"}',
             headers={"Content-Type": "text/plain"}, source=src)
    assert r.status_code == 415, r.text
    r = http(apache, "GET", LOGIN, source=src)
    assert r.status_code == 405 and r.headers.get("Allow") == "POST", (r.status_code, r.headers)


def test_me(apache):
    api = Api(apache)
    u = create_user(api, password=password(), name="Борис")
    tok = login_ok(apache, u)["accessToken"]
    r = me(apache, tok)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == ME_KEYS, body
    assert (body["id"], body["email"], body["name"], body["role"], body["enabled"]) == \
        (u["id"], u["email"], "Борис", "user", True)
    assert "password" not in json.dumps(body).lower()
    assert body["created_at"] == u["created_at"]


# ------------------------------------------------------- refresh and logout --

def _family(database, token):
    h = hashlib.sha256(token.encode()).hexdigest()
    fam = database.scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = ?", [h])
    assert fam, "the refresh token is not stored by its SHA-256"
    return database.query("SELECT * FROM refresh_tokens WHERE family_id = ? ORDER BY id", [fam])


def test_refresh_rotation(apache, database):
    u = create_user(Api(apache), password=password())
    first = login_ok(apache, u)
    seen = {first["refreshToken"]}
    current = first
    for _ in range(3):
        r = refresh(apache, current["refreshToken"])
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == LOGIN_KEYS and body["tokenType"] == "Bearer", body
        assert body["user"]["id"] == u["id"]
        assert body["refreshToken"] not in seen, "refresh must rotate the refresh token"
        seen.add(body["refreshToken"])
        assert me(apache, body["accessToken"]).json()["id"] == u["id"]
        current = body
    # a refreshed token carries the user's role as it is now
    assert Api(apache).user("update", {"id": u["id"], "role": "admin"}).status_code == 200
    r = refresh(apache, current["refreshToken"])
    assert r.status_code == 200, r.text
    assert am.parts(r.json()["accessToken"])[1]["role"] == "admin"
    assert r.json()["user"]["role"] == "admin"
    current = r.json()
    seen.add(current["refreshToken"])
    rows = _family(database, current["refreshToken"])
    assert len(rows) == 5, rows
    assert [r["used_at"] is not None for r in rows] == [True, True, True, True, False]
    assert all(r["revoked_at"] is None for r in rows)
    assert all(r["token_hash"] != t for r in rows for t in seen)     # only hashes stored


def test_refresh_reuse_revokes_the_family(apache, database):
    u = create_user(Api(apache), password=password())
    t1 = login_ok(apache, u)["refreshToken"]
    r2 = refresh(apache, t1)
    assert r2.status_code == 200
    t2 = r2.json()["refreshToken"]
    r3 = refresh(apache, t2)
    assert r3.status_code == 200
    t3 = r3.json()["refreshToken"]
    # an unrelated login of the same user is another family and survives
    other = login_ok(apache, u)["refreshToken"]

    error_is(refresh(apache, t1), 401, REUSED)            # t1 was spent: stolen copy
    error_is(refresh(apache, t3), 401, "refresh token revoked")   # the newest one is dead too
    error_is(refresh(apache, t2), 401, "refresh token revoked")
    rows = _family(database, t3)
    assert len(rows) == 3 and all(r["revoked_at"] is not None for r in rows), rows
    r = refresh(apache, other)
    assert r.status_code == 200, r.text


def test_refresh_concurrent_reuse(apache, database):
    """The same refresh token sent five times at once: one rotation wins, the
    others are reuse, and the family is revoked."""
    u = create_user(Api(apache), password=password())
    t = login_ok(apache, u)["refreshToken"]
    barrier = threading.Barrier(5)

    def go(_):
        barrier.wait()
        return refresh(apache, t)

    with ThreadPoolExecutor(5) as ex:
        answers = list(ex.map(go, range(5)))
    codes = sorted(r.status_code for r in answers)
    assert codes.count(200) <= 1 and codes.count(401) >= 4, codes
    for r in answers:
        if r.status_code == 401:
            assert r.json()["error"] in (REUSED, "refresh token revoked"), r.text
    rows = _family(database, t)
    assert all(r["revoked_at"] is not None for r in rows), rows


def test_refresh_errors(apache, database):
    error_is(refresh(apache, "no-such-token-" + secrets.token_urlsafe(16)), 401,
             "invalid refresh token")
    for body in ({}, {"refreshToken": ""}, {"refreshToken": 5}, {"refreshToken": "x" * 600}):
        r = http(apache, "POST", REFRESH, json=body)
        assert r.status_code == 400, (body, r.text)
    api = Api(apache)
    u = create_user(api, password=password())
    t = login_ok(apache, u)["refreshToken"]
    assert api.user("update", {"id": u["id"], "enabled": False}).status_code == 200
    # the billing site's disable ends every login, as an admin's does (issue 13): enabling
    # the account again does not bring the old one back
    error_is(refresh(apache, t), 401, "refresh token revoked")
    assert api.user("update", {"id": u["id"], "enabled": True}).status_code == 200
    error_is(refresh(apache, t), 401, "refresh token revoked")
    login_ok(apache, u)


def test_refresh_expired(apache, database):
    u = create_user(Api(apache), password=password())
    t = login_ok(apache, u)["refreshToken"]
    h = hashlib.sha256(t.encode()).hexdigest()
    sql_exec(database, "UPDATE refresh_tokens SET expires_at = '2001-01-01 00:00:00.000' "
                       f"WHERE token_hash = '{h}';")
    error_is(refresh(apache, t), 401, "refresh token expired")


def test_logout(apache, database):
    u = create_user(Api(apache), password=password())
    body = login_ok(apache, u)
    t2 = refresh(apache, body["refreshToken"]).json()["refreshToken"]
    r = http(apache, "POST", LOGOUT, json={"refreshToken": t2})
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "success", "message": "logged out"}
    error_is(refresh(apache, t2), 401, "refresh token revoked")
    assert all(row["revoked_at"] is not None for row in _family(database, t2))
    # the access tokens of that login end with it (security fix L1), the first one too
    r = me(apache, body["accessToken"])
    assert r.status_code == 401 and "session ended" in r.json()["error"], r.text
    # again, and with unknown tokens: still 200
    for t in (t2, "unknown-" + secrets.token_urlsafe(16)):
        r = http(apache, "POST", LOGOUT, json={"refreshToken": t})
        assert r.status_code == 200 and r.json()["message"] == "logged out", r.text
    r = http(apache, "POST", LOGOUT, json={})
    assert r.status_code == 400, r.text


# ---------------------------------------------------------- secrets in logs --

def test_secrets_never_logged(start_apache, database):
    a = start_apache(log_level="debug")
    api = Api(a)
    pw = "Secret-Pw-" + secrets.token_hex(8)
    wrong = "Wrong-Pw-" + secrets.token_hex(8)
    u = create_user(api, password=pw)                        # the password travels in a sync body
    src = fresh_address()
    assert login(a, u["email"], wrong, source=src).status_code == 401
    assert login(a, "nobody-" + u["email"], pw, source=src).status_code == 401
    # a body that is not JSON, with the password in it
    bad = http(a, "POST", LOGIN, data=('{"email":"%s","password":"%s"' % (u["email"], pw)).encode(),
               source=src)
    assert bad.status_code == 400
    body = login_ok(a, u)
    tokens = [body["refreshToken"], body["accessToken"]]
    r = refresh(a, body["refreshToken"])
    assert r.status_code == 200
    tokens += [r.json()["refreshToken"], r.json()["accessToken"]]
    assert refresh(a, body["refreshToken"]).status_code == 401        # reuse: logged at notice
    assert http(a, "POST", LOGOUT, json={"refreshToken": tokens[2]}).status_code == 200
    assert me(a, tokens[1]).status_code == 401                       # that login has ended
    assert me(a, am.tamper(tokens[1], role="admin")).status_code == 401   # debug: refused
    assert api.user("update", {"id": u["id"], "password": wrong}).status_code == 200
    time.sleep(0.3)                                  # access log lines are written after the response
    error_log = a.error_log.read_text(errors="replace")
    access_log = a.access_log.read_text(errors="replace")
    # the logs are not empty: debug and info lines of these requests are there
    assert "OSPAB00502" in error_log, "no 'failed login' info line at LogLevel debug"
    assert "OSPAB00401" in error_log, "no 'bearer token refused' debug line"
    assert "/api/auth/login" in access_log
    for secret in [pw, wrong, a.sync_key, a.jwt_secret] + tokens:
        for name, text in (("error.log", error_log), ("access.log", access_log)):
            assert secret not in text, f"a secret appears in {name}"
            assert secret[:16] not in text, f"part of a secret appears in {name}"
    # nor in the database: only hashes
    row = database.query("SELECT password_hash FROM users WHERE id = ?", [u["id"]])[0]
    assert row["password_hash"].startswith(("$y$", "$2b$", "$2y$")), row
    assert pw not in row["password_hash"] and wrong not in row["password_hash"]
    dump = json.dumps(database.query("SELECT * FROM audit_log")) + \
        json.dumps(database.query("SELECT * FROM refresh_tokens"))
    for secret in [pw, wrong] + tokens:
        assert secret not in dump


# --------------------------------------------------------------- rate limit --

RETRY = re.compile(r"^too many failed logins; try again in (\d+) seconds$")


def assert_limited(r, window):
    assert r.status_code == 429, (r.status_code, r.text)
    after = int(r.headers["Retry-After"])
    assert 1 <= after <= window, after
    m = RETRY.match(r.json()["error"])
    assert m and int(m.group(1)) == after, (r.json(), after)
    return after


def _raw_login(conn, email, pw):
    conn.request("POST", LOGIN, body=_dumps({"email": email, "password": pw}),
                 headers={"Content-Type": "application/json", "Connection": "close"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders())


def _wait_children(apache, n, timeout=10):
    """Wait until a prefork Apache runs at least n children."""
    deadline = time.monotonic() + timeout
    while len(harness.pids_mentioning(apache.conf_file)) < n + 1:      # + the parent
        assert time.monotonic() < deadline, f"fewer than {n} children"
        time.sleep(0.05)


def _open_connections(apache, n):
    """n connections opened at once before any request is sent: under prefork,
    each is held by its own child."""
    conns = [httpclient.HTTPConnection("127.0.0.1", apache.port, timeout=30) for _ in range(n)]
    for c in conns:
        c.connect()
    time.sleep(0.2)          # let the children accept them
    return conns


def _pid_log(apache, path, expected_lines, timeout=5):
    """The lines "pid status method path" of `path`'s requests in pid.log,
    once there are `expected_lines` of them (Apache writes each line after
    sending the response)."""
    log = apache.rundir / "pid.log"
    deadline = time.monotonic() + timeout
    while True:
        lines = [l.split() for l in (log.read_text().splitlines() if log.exists() else [])]
        lines = [l for l in lines if l[3] == path]
        if len(lines) >= expected_lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_rate_limit_shared_by_all_children(start_apache):
    a = start_apache(mpm="prefork", extra_conf=[
        "OspabRateLimit 3 60",
        # accept() on connect, not when data arrives (Linux's TCP_DEFER_ACCEPT): so an
        # idle open connection occupies a child
        "AcceptFilter http none",
        'LogFormat "%P %>s %m %U" pidlog',
        'CustomLog "pid.log" pidlog'])
    u = create_user(Api(a), password=password())
    _wait_children(a, 4)
    # three failures, each on a connection held by a different child
    conns = _open_connections(a, 3)
    for c in conns:
        assert _raw_login(c, u["email"], "wrong-password")[0] == 401
    # then four more attempts, again on connections held by different children
    conns = _open_connections(a, 4)
    answers = [_raw_login(c, u["email"], u["password"]) for c in conns]
    for status, headers in answers:
        assert status == 429, answers
        assert 1 <= int(headers["Retry-After"]) <= 60, headers
    r = login(a, u["email"], u["password"])
    assert_limited(r, 60)
    log = _pid_log(a, LOGIN, 8)
    failed = [pid for pid, status, *_ in log if status == "401"]
    limited = [pid for pid, status, *_ in log if status == "429"]
    assert len(failed) == 3 and len(limited) == 5, log
    assert len(set(failed)) >= 2, f"the failures were all served by one child: {log}"
    # no child saw `limit` failures itself: only a shared count explains the 429s
    assert max(failed.count(p) for p in failed) < 3, log
    assert len(set(limited)) >= 2, log
    assert set(limited) - set(failed), "a child that served no failure answered 429"


def test_rate_limit_per_account_and_per_address(start_apache):
    """From several loopback addresses: the account key and the address key
    each limit on their own."""
    a = start_apache(extra_conf=["OspabRateLimit 3 60"])
    api = Api(a)
    victim, bystander = (create_user(api, password=password()) for _ in range(2))
    # per account: three failures from three addresses (one each)
    for _ in range(3):
        assert login(a, victim["email"], "wrong-password", source=fresh_address()).status_code == 401
    fresh = fresh_address()
    assert_limited(login(a, victim["email"], victim["password"], source=fresh), 60)
    # ...the same address is not limited for another account
    r = login(a, bystander["email"], bystander["password"], source=fresh)
    assert r.status_code == 200, r.text
    # the account key ignores the e-mail's case
    assert_limited(login(a, victim["email"].upper(), victim["password"], source=fresh_address()),
                   60)

    # per address: three failures for three different accounts from one address
    src = fresh_address()
    others = [create_user(api, password=password()) for _ in range(4)]
    for o in others[:3]:
        assert login(a, o["email"], "wrong-password", source=src).status_code == 401
    assert_limited(login(a, others[3]["email"], others[3]["password"], source=src), 60)
    # ...and unknown e-mails count per address as well (and are limited the same)
    assert_limited(login(a, "nobody@example.com", "whatever1", source=src), 60)
    # ...while that fourth account from elsewhere is fine
    r = login(a, others[3]["email"], others[3]["password"], source=fresh_address())
    assert r.status_code == 200, r.text


def test_rate_limit_default_and_successes_not_counted(apache):
    """The default is 10 failures in 300 s; successful logins are not failures."""
    api = Api(apache)
    u = create_user(api, password=password())
    src = fresh_address()
    for _ in range(12):
        assert login(apache, u["email"], u["password"], source=src).status_code == 200
    for i in range(10):
        r = login(apache, u["email"], f"wrong-password-{i}", source=src)
        assert r.status_code == 401, (i, r.status_code, r.text)
    assert_limited(login(apache, u["email"], "wrong-password", source=src), 300)
    assert_limited(login(apache, u["email"], u["password"], source=src), 300)


def test_rate_limit_window_ends(start_apache):
    a = start_apache(extra_conf=["OspabRateLimit 2 1"])
    for _ in range(3):       # the two failures must fall into one 1-second window
        u, src = create_user(Api(a), password=password()), fresh_address()
        for _ in range(2):
            assert login(a, u["email"], "wrong-password", source=src).status_code == 401
        r = login(a, u["email"], u["password"], source=src)
        if r.status_code == 429:
            break
        assert r.status_code == 200, r.text
    time.sleep(assert_limited(r, 1) + 0.05)
    r = login(a, u["email"], u["password"], source=src)
    assert r.status_code == 200, r.text


def test_rate_limit_concurrent_burst(start_apache):
    """Eight wrong passwords sent at once with a limit of 3: no more than 3 may
    be checked; the rest must be 429. (Counting only after the password check
    lets a burst of parallel requests through.)"""
    a = start_apache(extra_conf=["OspabRateLimit 3 60"])
    u = create_user(Api(a), password=password())
    src = fresh_address()
    barrier = threading.Barrier(8)

    def go(i):
        barrier.wait()
        return login(a, u["email"], f"wrong-password-{i}", source=src)

    with ThreadPoolExecutor(8) as ex:
        codes = sorted(r.status_code for r in ex.map(go, range(8)))
    assert set(codes) <= {401, 429}, codes
    assert codes.count(401) <= 3, f"{codes.count(401)} passwords were tried with a limit of 3"


# ------------------------------------------------- security fixes (red-team pass) --

def test_logins_are_looked_up_by_the_normalised_email(start_apache, database):
    """M4: an address that only looks like an account's does not log into it, and one that
    is the same address (case, surrounding white space, NFC) shares its counters."""
    a = start_apache(extra_conf=["OspabRateLimit 3 60"])
    api = Api(a)
    tag = secrets.token_hex(4)
    u = create_user(api, password=password(), email=f"Demo-{tag}@Example.com")
    assert login(a, f"demo-{tag}@example.com", u["password"], source=fresh_address()).status_code == 200
    assert login(a, f"  DEMO-{tag}@EXAMPLE.COM \t", u["password"],
                 source=fresh_address()).status_code == 200
    # look-alikes: an accent (MariaDB's utf8mb4_unicode_ci calls it equal), full width
    for other in (f"démo-{tag}@example.com", f"\uff44emo-{tag}@example.com",
                  f"demo-{tag}@example.com\u200b"):
        error_is(login(a, other, u["password"], source=fresh_address()), 401,
                 INVALID_LOGIN["error"])
    # spellings of one address count as one account: three failures, then 429 for all
    for spelling in (f"demo-{tag}@example.com", f"DEMO-{tag}@example.com ",
                     f" Demo-{tag}@EXAMPLE.com"):
        assert login(a, spelling, "wrong-password", source=fresh_address()).status_code == 401
    assert_limited(login(a, f"demo-{tag}@example.com", u["password"], source=fresh_address()), 60)
    # the stored key is what the lookup uses
    row = database.query("SELECT email, email_key FROM users WHERE id = ?", [u["id"]])[0]
    assert row == {"email": f"Demo-{tag}@Example.com",
                   "email_key": f"demo-{tag}@example.com"}, row


def test_requests_without_a_password_count(start_apache):
    """M4: an attempt without a password counts like a wrong one (it used not to count,
    and filled the table)."""
    a = start_apache(extra_conf=["OspabRateLimit 3 60"])
    u = create_user(Api(a), password=password())
    src = fresh_address()
    for body in ({"email": u["email"]}, {"email": u["email"], "password": ""},
                 {"email": u["email"], "password": 5}):
        r = http(a, "POST", LOGIN, json=body, source=src)
        assert r.status_code == 400, r.text
    assert_limited(login(a, u["email"], u["password"], source=fresh_address()), 60)


def test_flooding_the_counters_does_not_reset_a_guessed_account(start_apache):
    """M4: thousands of fresh keys (other e-mails, other addresses, no passwords) cannot
    evict the counter of an account under attack: the 11th guess is still refused."""
    a = start_apache()
    u = create_user(Api(a), password=password())
    for i in range(9):
        assert login(a, u["email"], f"guess-{i}", source=fresh_address()).status_code == 401
    def flood(k):
        src = f"127.78.{k // 250}.{k % 250 + 1}"
        with requests.Session() as fs:
            fs.mount("http://", _SourceAdapter(src))
            for j in range(10):
                fs.post(a.url(LOGIN), json={"email": f"x{k}-{j}@flood.example"}, timeout=30)

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(flood, range(2000)))            # 20,000 keys, more than the table holds
    assert login(a, u["email"], "guess-9", source=fresh_address()).status_code == 401
    assert_limited(login(a, u["email"], "guess-10", source=fresh_address()), 300)


def test_login_count_limit(start_apache):
    """L5: successful logins of one account are limited too (third OspabRateLimit
    number), while the failure counters stay untouched by them."""
    a = start_apache(extra_conf=["OspabRateLimit 3 60 5"])
    u = create_user(Api(a), password=password())
    for _ in range(5):
        assert login(a, u["email"], u["password"], source=fresh_address()).status_code == 200
    r = login(a, u["email"], u["password"], source=fresh_address())
    assert r.status_code == 429, r.text
    assert re.match(r"^too many logins to this account; try again in \d+ seconds$",
                    r.json()["error"]), r.text
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    # another account is not affected
    v = create_user(Api(a), password=password())
    assert login(a, v["email"], v["password"], source=fresh_address()).status_code == 200


def test_refresh_reuse_ends_the_access_tokens_of_the_login(apache):
    """L1: when a reused refresh token revokes its family, the access tokens issued in
    that login stop working at once; another login of the same user goes on."""
    u = create_user(Api(apache), password=password())
    first, other = login_ok(apache, u), login_ok(apache, u)
    second = refresh(apache, first["refreshToken"]).json()
    for tok in (first["accessToken"], second["accessToken"], other["accessToken"]):
        assert me(apache, tok).status_code == 200
    assert refresh(apache, first["refreshToken"]).status_code == 401       # reuse
    for tok in (first["accessToken"], second["accessToken"]):
        error_is(me(apache, tok), 401, "session ended: log in again")
    assert me(apache, other["accessToken"]).status_code == 200


def test_a_deleted_users_token_does_not_serve_a_new_user_with_its_id(apache):
    """L2: the billing site deletes user N and later creates another user with id N: the
    old user's tokens belong to a login that no longer exists."""
    api = Api(apache)
    n = 900000 + secrets.randbelow(99999)
    u = create_user(api, password=password(), id=n)
    tok = login_ok(apache, u)["accessToken"]
    assert me(apache, tok).status_code == 200
    assert api.user("delete", {"id": n}).status_code == 200
    v = create_user(api, password=password(), id=n)
    assert v["id"] == n and v["email"] != u["email"]
    r = me(apache, tok)
    assert r.status_code == 401, r.text
    assert me(apache, login_ok(apache, v)["accessToken"]).json()["email"] == v["email"]


def test_demoted_admin_loses_admin_rights_at_once(apache):
    """M3: an admin's token stops seeing every server the moment the users sync demotes
    the account, although the token still says role admin."""
    api = Api(apache)
    adm = create_user(api, password=password(), role="admin")
    other = create_user(api)
    vps = api.vps("create", {**new_vps(), "user_id": other["id"]}).json()["vps"]
    tok = login_ok(apache, adm)["accessToken"]
    assert am.parts(tok)[1]["role"] == "admin"
    r = http(apache, "GET", f"/api/server/{vps['id']}", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 200, r.text
    assert api.user("update", {"id": adm["id"], "role": "user"}).status_code == 200
    r = http(apache, "GET", f"/api/server/{vps['id']}", headers={"Authorization": f"Bearer {tok}"})
    error_is(r, 404, "server not found")
    assert me(apache, tok).json()["role"] == "user"
