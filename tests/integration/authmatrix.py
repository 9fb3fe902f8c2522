"""The authorization matrix: every route x every kind of credential -> the exact
answer (docs/auth.md, docs/sync-api.md).

A new route joins by adding one `Route` row to ROUTES; test_auth.py runs it
against every entry of CREDENTIALS, on SQLite and MariaDB, and fails if a
route of the API's route table (lib/ospab_route.c) has no row.

Route fields
  method, path   "{id}" in the path is replaced by the id of a VPS owned by
                 the matrix's "owner" user
  auth           "sync" (X-API-Key) | "jwt" (Authorization: Bearer) |
                 "none" (public, or authenticated by the body: login/refresh/logout)
  body           ctx -> a valid JSON body (None: no body)
  ok             the status with the right credentials
  scope          for "jwt" routes, what "another user's token" gets:
                   "owned"     /{id} of the owner's resource: 404, like a missing id
                   "list"      a list: 200 with only the caller's own records
                   "self"      the caller's own record (/api/auth/me): 200
                   "catalogue" the same for everybody: 200
                   "admin"     the admin API: 403 for any customer (set in `expect`)
                   "account"   the caller's own account (SSH keys): every token its own
                               (set in `expect`)
  owner_field    the field of a record naming its owner ("user_id", "userId")
  written        sync routes: (database, body) -> rows the body made (0 if refused)
  keys           keys the success body must have
  expect         per-credential overrides, ((credential name, Expect), ...), for routes
                 whose answer to the right credentials depends on more than them: the
                 server-management routes (see SERVER ROUTES below), the admin API's
  id_of          ctx -> the id that replaces "{id}" (default: the owner's VPS id)

`ctx` is built by test_auth.py (MatrixContext): sync_key, the users
(owner/other/admin ids, owner e-mail and password), their tokens, the owner's
VPS id, fresh_refresh_token(), and a `mint(...)` for forged tokens.

The second half of this module mints JWTs (HS256/HS512 with hmac, RS256/ES256
with python3-cryptography) so tests can forge exactly the tokens they need.
"""

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Optional

# --------------------------------------------------------------------- routes --


def _name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _vps_body(ctx):
    return {"user_id": ctx.owner_id, "name": _name("matrix"), "cpu": 1, "ram": 512,
            "disk": 10, "os": "Debian 12"}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    auth: str                                   # "sync" | "jwt" | "none"
    body: Optional[Callable] = None             # ctx -> dict
    ok: int = 200
    scope: Optional[str] = None                 # jwt routes: owned | list | self | catalogue
    owner_field: Optional[str] = None
    # sync routes: how many rows the request's body made (0 when refused, 1 when it wrote)
    written: Optional[Callable] = None          # (database, body) -> int rows
    keys: frozenset = frozenset()               # what the success body has at least
    expect: tuple = ()                          # ((credential name, Expect), ...) overrides
    id_of: Optional[Callable] = None            # ctx -> the id in the path

    @property
    def id(self):
        return f"{self.method} {self.path}"

    def url_path(self, ctx):
        the_id = self.id_of(ctx) if self.id_of else ctx.owner_vps_id
        return self.path.replace("{id}", str(the_id))


TOKENS = frozenset({"accessToken", "refreshToken", "tokenType", "expiresIn", "user"})

ROUTES = [
    # -- sync API (billing site): X-API-Key ------------------------------------------------
    Route("POST", "/api/vps/sync", "sync", ok=201, keys=frozenset({"status", "vps"}),
          body=lambda ctx: {"action": "create", "vps": _vps_body(ctx)},
          written=lambda db, b: db.count("SELECT COUNT(*) FROM vps WHERE name = ?",
                                         [b["vps"]["name"]])),
    Route("POST", "/api/vps/sync/batch", "sync", ok=200,
          keys=frozenset({"status", "succeeded", "failed", "results"}),
          body=lambda ctx: {"operations": [{"action": "create", "vps": _vps_body(ctx)}]},
          written=lambda db, b: db.count("SELECT COUNT(*) FROM vps WHERE name = ?",
                                         [b["operations"][0]["vps"]["name"]])),
    Route("POST", "/api/users/sync", "sync", ok=201, keys=frozenset({"status", "user"}),
          body=lambda ctx: {"action": "create",
                            "user": {"email": _name("matrix") + "@example.com"}},
          written=lambda db, b: db.count("SELECT COUNT(*) FROM users WHERE email = ?",
                                         [b["user"]["email"]])),
    Route("POST", "/api/notify", "sync", ok=202, keys=frozenset({"status", "id"}),
          body=lambda ctx: {"to": _name("matrix") + "@example.com", "subject": "matrix",
                            "text": "authorization matrix", "key": _name("matrix")},
          written=lambda db, b: db.count("SELECT COUNT(*) FROM email_outbox "
                                         "WHERE dedupe_key = ?", ["notify:" + b["key"]])),
    # -- public -----------------------------------------------------------------------------
    Route("GET", "/api/health", "none", keys=frozenset({"status", "database"})),
    # -- identity: authenticated by the body, never by a header ----------------------------
    Route("POST", "/api/auth/login", "none", keys=TOKENS,
          body=lambda ctx: {"email": ctx.owner_email, "password": ctx.owner_password}),
    Route("POST", "/api/auth/refresh", "none", keys=TOKENS,
          body=lambda ctx: {"refreshToken": ctx.fresh_refresh_token()}),
    Route("POST", "/api/auth/logout", "none", keys=frozenset({"status", "message"}),
          body=lambda ctx: {"refreshToken": ctx.fresh_refresh_token()}),
    # -- customer routes: Bearer JWT -----------------------------------------------------------
    Route("GET", "/api/auth/me", "jwt", scope="self",
          keys=frozenset({"id", "email", "role", "enabled"})),
    Route("GET", "/api/vps", "jwt", scope="list", owner_field="user_id"),
    Route("GET", "/api/vps/{id}", "jwt", scope="owned", owner_field="user_id"),
    Route("GET", "/api/server", "jwt", scope="list", owner_field="userId"),
    Route("GET", "/api/server/{id}", "jwt", scope="owned", owner_field="userId"),
    Route("GET", "/api/tariffs", "jwt", scope="catalogue"),
    Route("GET", "/api/os", "jwt", scope="catalogue"),
]


# ---------------------------------------------------------------- credentials --


@dataclass(frozen=True)
class Credential:
    name: str
    headers: Callable                  # ctx -> dict of request headers
    server: str = "hs256"              # the Apache it needs: "hs256" (default) | "rs256"
    who: Optional[str] = None          # whose valid token it is: owner | other | admin


CREDENTIALS = [
    Credential("none", lambda ctx: {}),
    Credential("malformed_header", lambda ctx: {"Authorization": "Basic b3duZXI6cGFzc3dvcmQ="}),
    Credential("wrong_api_key", lambda ctx: {"X-API-Key": "0" * 64}),
    Credential("api_key", lambda ctx: {"X-API-Key": ctx.sync_key}),
    Credential("jwt", lambda ctx: bearer(ctx.owner_token), who="owner"),
    Credential("expired", lambda ctx: bearer(ctx.mint(ctx.owner_id, iat=-7200, exp=-3600))),
    Credential("alg_none", lambda ctx: bearer(unsigned_token(claims(ctx.owner_id)))),
    # the classic key confusion: HS256 with the RS256 public key (PEM text) as the secret
    Credential("hs256_with_rsa_public_key",
               lambda ctx: bearer(token(claims(ctx.owner_id), ctx.public_pem, "HS256")),
               server="rs256"),
    Credential("tampered_payload",
               lambda ctx: bearer(tamper(ctx.owner_token, sub=str(ctx.other_id), role="admin"))),
    Credential("other_user", lambda ctx: bearer(ctx.other_token), who="other"),
    Credential("admin", lambda ctx: bearer(ctx.admin_token), who="admin"),
]


def bearer(tok):
    return {"Authorization": f"Bearer {tok}"}


# ---------------------------------------------------------------- expectations --

@dataclass(frozen=True)
class Expect:
    status: object              # an int, or "ok": the route's own success status
    check: Optional[str] = None  # what else the test verifies (see test_auth.CHECKS)
    description: tuple = ()     # acceptable error_description values for invalid_token


OK = Expect("ok")
SYNC_MISSING = Expect(401, "apikey", ("missing X-API-Key header",))
SYNC_WRONG = Expect(401, "apikey", ("invalid API key",))
BEARER_MISSING = Expect(401, "bearer-missing")
BEARER_MALFORMED = Expect(401, "invalid_request")


def invalid_token(*descriptions):
    return Expect(401, "invalid_token", descriptions)


# what each kind of credential gets on a route of each kind of auth
EXPECT = {
    "sync": {
        "none": SYNC_MISSING,
        "malformed_header": SYNC_MISSING,
        "wrong_api_key": SYNC_WRONG,
        "api_key": Expect("ok", "written"),
        "jwt": SYNC_MISSING,
        "expired": SYNC_MISSING,
        "alg_none": SYNC_MISSING,
        "hs256_with_rsa_public_key": SYNC_MISSING,
        "tampered_payload": SYNC_MISSING,
        "other_user": SYNC_MISSING,
        "admin": SYNC_MISSING,
    },
    "jwt": {
        "none": BEARER_MISSING,
        "malformed_header": BEARER_MALFORMED,
        "wrong_api_key": BEARER_MISSING,
        "api_key": BEARER_MISSING,
        "jwt": Expect("ok", "own"),
        "expired": invalid_token("token expired"),
        # "x.y." (empty signature) may be refused as malformed before the header is read
        "alg_none": invalid_token("algorithm not accepted", "malformed token"),
        "hs256_with_rsa_public_key": invalid_token("algorithm not accepted"),
        "tampered_payload": invalid_token("invalid signature"),
        "other_user": None,                      # by scope, below
        "admin": Expect("ok", "sees-all"),
    },
    "none": {c.name: Expect("ok") for c in CREDENTIALS},
}

OTHER_USER_BY_SCOPE = {
    "owned": Expect(404, "not-found"),
    "list": Expect(200, "own"),
    "self": Expect(200, "own"),
    "catalogue": Expect(200, "own"),
}


# -- server management (seed 003, the power routes of seed 001): Bearer JWT ---------------
# These routes act on Proxmox. The matrix's Apache (conftest's `apache` fixture) has Proxmox
# configured at an address nobody listens on, and the owner's VPS comes from the sync API
# without node/vmid (and no agent links it): the right credentials (the owner's token, an
# admin's) therefore get past authentication and ownership as far as `409 {"error": "this
# server is not linked to its guest on Proxmox yet: …"}`, before any call to Proxmox; another
# user's token gets the byte-identical 404 of a missing server (scope "owned"). `ok` and
# `keys` name the real success answer (test_server.py checks it against the simulator).
# Self-service ordering is off on the matrix's Apache: a user's create is 403 and an admin's
# reaches the catalogue check (422 for a tariff that does not exist).
NO_VMID = 409


def _reaches_proxmox(*extra):
    """the right credentials get the 409 of a VPS without node/vmid"""
    return (("jwt", Expect(NO_VMID)), ("admin", Expect(NO_VMID))) + tuple(extra)


def _server(method, path, ok=200, keys=(), body=None, expect=None):
    return Route(method, path, "jwt", body=body, ok=ok, scope="owned", owner_field="userId",
                 keys=frozenset(keys), expect=_reaches_proxmox() if expect is None else expect)


_ACTION = ("status", "action", "taskId")
_SNAP = lambda ctx: {"snapname": "matrix1", "description": "authorization matrix"}  # noqa: E731

ROUTES += [
    Route("POST", "/api/server/create", "jwt", ok=201,
          keys=frozenset({"id", "status", "proxmoxId", "ipAddress", "rootPassword", "taskId"}),
          body=lambda ctx: {"osId": 1, "tariffId": 987654321},
          expect=(("jwt", Expect(403)), ("other_user", Expect(403)), ("admin", Expect(422)))),
    Route("POST", "/api/server/console", "jwt", scope="owned", keys=frozenset({"status", "url"}),
          body=lambda ctx: {"serverId": ctx.owner_vps_id}, expect=_reaches_proxmox()),
    _server("DELETE", "/api/server/{id}", keys=("status", "taskId")),
    _server("GET", "/api/server/{id}/status", keys=("id", "status", "stats")),
    _server("POST", "/api/server/{id}/start", keys=_ACTION),
    _server("POST", "/api/server/{id}/stop", keys=_ACTION),
    _server("POST", "/api/server/{id}/restart", keys=_ACTION),
    _server("POST", "/api/server/{id}/password", keys=("status", "password")),
    _server("PUT", "/api/server/{id}/resize", keys=("status", "data"),
            body=lambda ctx: {"cores": 2}),
    _server("POST", "/api/server/{id}/reinstall",
            keys=_ACTION + ("rootPassword", "snapshotsDeleted"), body=lambda ctx: {"osId": 1}),
    _server("GET", "/api/server/{id}/snapshots", keys=("status", "data")),
    _server("POST", "/api/server/{id}/snapshots", keys=("status", "taskId", "snapname"),
            body=_SNAP),
    _server("DELETE", "/api/server/{id}/snapshots", keys=("status", "taskId"), body=_SNAP),
    _server("POST", "/api/server/{id}/snapshots/rollback", keys=("status", "taskId"),
            body=_SNAP),
    # the task list needs no Proxmox call to answer: the owner's (empty) list, a 200
    _server("GET", "/api/server/{id}/tasks", expect=(("jwt", OK), ("admin", OK))),
    _server("POST", "/api/vps/{id}/start", keys=_ACTION),
    _server("POST", "/api/vps/{id}/stop", keys=_ACTION),
    _server("POST", "/api/vps/{id}/restart", keys=_ACTION),
    _server("POST", "/api/vps/{id}/reboot", keys=_ACTION),
    _server("GET", "/api/vps/{id}/stats", keys=("id", "status", "stats")),
]


# -- the caller's own account: SSH keys (docs/ssh-keys.md). Any role, its own keys only:
# another user's token (an admin's too) lists its own keys, adds to its own account and gets
# the owner's key as a missing one (404). "own-keys": the list holds the caller's keys and
# nothing else (the owner's key MatrixContext made among them, for the owner only);
# "key-added": the new key is the caller's; the delete's {id} is a fresh key of the owner's
# for every cell (MatrixContext.fresh_ssh_key): "key-deleted" it is gone, "key-not-found"
# the 404 is the one of a missing key and the key is still there.
def ssh_public_key(comment="matrix"):
    """A new real Ed25519 public key line ("ssh-ed25519 AAAA... comment")."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    line = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}"


_OWN_KEYS = Expect(200, "own-keys")
_KEY_ADDED = Expect(201, "key-added")
_KEY_NOT_FOUND = Expect(404, "key-not-found")

ROUTES += [
    Route("GET", "/api/account/ssh-keys", "jwt", scope="account",
          expect=(("jwt", _OWN_KEYS), ("other_user", _OWN_KEYS), ("admin", _OWN_KEYS))),
    Route("POST", "/api/account/ssh-keys", "jwt", ok=201, scope="account",
          keys=frozenset({"status", "key"}),
          body=lambda ctx: {"name": _name("matrix"), "publicKey": ssh_public_key()},
          expect=(("jwt", _KEY_ADDED), ("other_user", _KEY_ADDED), ("admin", _KEY_ADDED))),
    Route("DELETE", "/api/account/ssh-keys/{id}", "jwt", scope="account",
          keys=frozenset({"status", "message"}), id_of=lambda ctx: ctx.fresh_ssh_key(),
          expect=(("jwt", Expect(200, "key-deleted")), ("other_user", _KEY_NOT_FOUND),
                  ("admin", _KEY_NOT_FOUND))),
]


# -- the admin API (docs/operations.md): role admin only. A customer's token (the owner's, or
# another user's) is 403 {"error": "admin role required"}, whatever the record. The ids are
# chosen so an admin's cell changes nothing another cell relies on: the admin's own account
# for disable (409: an admin cannot disable themself), an enabled account for enable, seed
# records rewritten with the values they have, ids nobody has for delete and retry (404).
ADMIN_ONLY = Expect(403)


def _address():
    """A fresh address of 10.0.0.0/8 for a one-address pool (_address.last: the same)."""
    n = uuid.uuid4().int & 0xFFFFFF
    _address.last = f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}"
    return _address.last
MISSING = 987654321


def _admin(method, path, ok=200, keys=("status",), body=None, id_of=None, admin=None):
    expect = (("jwt", ADMIN_ONLY), ("other_user", ADMIN_ONLY),
              ("admin", admin if admin is not None else OK))
    return Route(method, path, "jwt", body=body, ok=ok, scope="admin", keys=frozenset(keys),
                 expect=expect, id_of=id_of)


ROUTES += [
    _admin("GET", "/api/admin/users", keys=("status", "users", "next")),
    _admin("GET", "/api/admin/users/{id}", keys=("status", "user"), id_of=lambda c: c.owner_id),
    _admin("POST", "/api/admin/users/{id}/disable", id_of=lambda c: c.admin_id,
           admin=Expect(409)),
    _admin("POST", "/api/admin/users/{id}/enable", keys=("status", "user"),
           id_of=lambda c: c.other_id),
    _admin("GET", "/api/admin/tariffs", keys=("status", "tariffs")),
    _admin("POST", "/api/admin/tariffs", ok=201, keys=("status", "tariff"),
           body=lambda ctx: {"name": _name("matrix"), "price": 1, "cores": 1, "memory": 512,
                             "disk": 5}),
    _admin("GET", "/api/admin/tariffs/{id}", keys=("status", "tariff"), id_of=lambda c: 1),
    _admin("PUT", "/api/admin/tariffs/{id}", keys=("status", "tariff"), id_of=lambda c: 1,
           body=lambda ctx: {"price": 150}),
    _admin("DELETE", "/api/admin/tariffs/{id}", id_of=lambda c: MISSING, admin=Expect(404)),
    _admin("GET", "/api/admin/os", keys=("status", "os")),
    _admin("POST", "/api/admin/os", ok=201, keys=("status", "os"),
           body=lambda ctx: {"name": _name("matrix"),
                             "template": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}),
    _admin("GET", "/api/admin/os/{id}", keys=("status", "os"), id_of=lambda c: 1),
    _admin("PUT", "/api/admin/os/{id}", keys=("status", "os"), id_of=lambda c: 1,
           body=lambda ctx: {"kind": "lxc"}),
    _admin("DELETE", "/api/admin/os/{id}", id_of=lambda c: MISSING, admin=Expect(404)),
    _admin("GET", "/api/admin/audit", keys=("status", "entries", "next")),
    _admin("GET", "/api/admin/alerts", keys=("status", "alerts", "next")),
    # without ?kind= (the matrix's paths are the table's): a 400 naming the parameter
    _admin("GET", "/api/admin/outbox", admin=Expect(400)),
    _admin("POST", "/api/admin/outbox/email/{id}/retry", id_of=lambda c: MISSING,
           admin=Expect(404)),
    _admin("POST", "/api/admin/outbox/webhook/{id}/retry", id_of=lambda c: MISSING,
           admin=Expect(404)),
    # servers: suspending a missing one (the owner's would turn the owner's cells into
    # 403s), unsuspending one that is not suspended, moving a missing one
    _admin("GET", "/api/admin/servers", keys=("status", "servers", "next")),
    _admin("POST", "/api/admin/servers/{id}/suspend", id_of=lambda c: MISSING,
           admin=Expect(404)),
    _admin("POST", "/api/admin/servers/{id}/unsuspend", admin=Expect(409)),
    _admin("POST", "/api/admin/servers/{id}/owner", id_of=lambda c: MISSING,
           body=lambda ctx: {"userId": ctx.owner_id}, admin=Expect(404)),
    # a pool of one address on a bridge no server uses
    _admin("GET", "/api/admin/ip-pools", keys=("status", "pools")),
    _admin("POST", "/api/admin/ip-pools", ok=201, keys=("status", "pool"),
           body=lambda ctx: {"name": _name("matrix"), "bridge": "vmbrmatrix",
                             "first": _address(), "last": _address.last, "prefix": 32}),
    _admin("PUT", "/api/admin/ip-pools/{id}", id_of=lambda c: MISSING, admin=Expect(404),
           body=lambda ctx: {"enabled": False}),
    _admin("DELETE", "/api/admin/ip-pools/{id}", id_of=lambda c: MISSING, admin=Expect(404)),
    # nodes: a registered node turns placement on for every create; the matrix's is refused
    # (not a node name), the rest name a node nobody has
    _admin("GET", "/api/admin/nodes", keys=("status", "nodes")),
    _admin("POST", "/api/admin/nodes", body=lambda ctx: {"name": "not a node"},
           admin=Expect(400)),
    _admin("GET", "/api/admin/nodes/{id}", id_of=lambda c: MISSING, admin=Expect(404)),
    _admin("PUT", "/api/admin/nodes/{id}", id_of=lambda c: MISSING, admin=Expect(404),
           body=lambda ctx: {"accepts": False}),
    _admin("DELETE", "/api/admin/nodes/{id}", id_of=lambda c: MISSING, admin=Expect(404)),
    # clusters: the matrix's create is refused (no URL, no token; the matrix's Apache may
    # have no OspabSecretKey), the rest name a cluster nobody has
    _admin("GET", "/api/admin/clusters", keys=("status", "clusters")),
    _admin("POST", "/api/admin/clusters", body=lambda ctx: {"name": "matrix"},
           admin=Expect(400)),
    _admin("GET", "/api/admin/clusters/{id}", id_of=lambda c: MISSING, admin=Expect(404)),
    _admin("PUT", "/api/admin/clusters/{id}", id_of=lambda c: MISSING, admin=Expect(404),
           body=lambda ctx: {"enabled": False}),
    _admin("DELETE", "/api/admin/clusters/{id}", id_of=lambda c: MISSING, admin=Expect(404)),
    _admin("POST", "/api/admin/clusters/{id}/test", id_of=lambda c: MISSING,
           admin=Expect(404)),
]


def expected(route, cred):
    """The Expect for one cell; its status resolved to an int."""
    e = dict(route.expect).get(cred.name, EXPECT[route.auth][cred.name])
    if e is None:
        e = OTHER_USER_BY_SCOPE[route.scope]
    status = route.ok if e.status == "ok" else e.status
    return Expect(status, e.check, e.description)


def cells():
    """Every (route, credential) pair, for pytest.mark.parametrize."""
    return [(r, c) for r in ROUTES for c in CREDENTIALS]


# ------------------------------------------------------------------ JWT minting --

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def segment(obj):
    raw = obj if isinstance(obj, (bytes, bytearray)) else \
        json.dumps(obj, separators=(",", ":")).encode()
    return b64url(raw)


def claims(user_id, role="user", ttl=900, **extra):
    """A panel-shaped claim set; role=None or extra=None removes a claim. iat/exp/nbf given
    as small ints (|v| < 10^8) are taken relative to now."""
    now = int(time.time())
    c = {"sub": str(user_id), "role": role, "jti": uuid.uuid4().hex, "iat": now,
         "exp": now + ttl}
    if role is None:
        del c["role"]
    for k, v in extra.items():
        if v is None:
            c.pop(k, None)
        elif k in ("iat", "exp", "nbf") and isinstance(v, int) and abs(v) < 10**8:
            c[k] = now + v
        else:
            c[k] = v
    return c


def _sign(alg, key, data):
    if alg in ("HS256", "HS384", "HS512"):
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384,
                  "HS512": hashlib.sha512}[alg]
        k = key.encode() if isinstance(key, str) else key
        return hmac.new(k, data, digest).digest()
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    pk = key
    if isinstance(key, (str, bytes)):
        pem = key.encode() if isinstance(key, str) else key
        pk = serialization.load_pem_private_key(pem, password=None)
    if alg == "RS256":
        return pk.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if alg == "ES256":
        r, s = decode_dss_signature(pk.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    raise ValueError(f"cannot sign {alg}")


def token(claim_set, key, alg="HS256", header=None):
    """A signed JWT. header overrides/extends {"alg": alg, "typ": "JWT"}
    (header={"alg": "X"} signs with `alg` but says X)."""
    h = {"alg": alg, "typ": "JWT"}
    h.update(header or {})
    signing_input = f"{segment(h)}.{segment(claim_set)}".encode()
    return signing_input.decode() + "." + b64url(_sign(alg, key, signing_input))


def unsigned_token(claim_set, alg="none", signature=""):
    return f"{segment({'alg': alg, 'typ': 'JWT'})}.{segment(claim_set)}.{signature}"


def parts(tok):
    """(header, claims, signature bytes) of a token."""
    h, c, s = tok.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(c)), b64url_decode(s)


def tamper(tok, **changes):
    """The token with its claims changed after signing (signature kept)."""
    h, c, s = tok.split(".")
    body = json.loads(b64url_decode(c))
    body.update(changes)
    return f"{h}.{segment(body)}.{s}"


def verify_rs256(tok, public_pem):
    """True if an RS256 token's signature verifies with the PEM public key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    pub = serialization.load_pem_public_key(public_pem.encode())
    h, c, s = tok.split(".")
    try:
        pub.verify(b64url_decode(s), f"{h}.{c}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return True
    except InvalidSignature:
        return False


def verify_hs256(tok, secret):
    h, c, s = tok.split(".")
    mac = hmac.new(secret.encode(), f"{h}.{c}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(mac, b64url_decode(s))
