"""Customers' SSH keys (issue 14 item 3, docs/ssh-keys.md): GET/POST /api/account/ssh-keys and
DELETE /api/account/ssh-keys/{id} against a real Apache with mod_ospab, each test once on
SQLite and once on MariaDB. Keys are made by ssh-keygen while the tests run and their
fingerprints compared with what `ssh-keygen -lf` prints; every refusal names its reason and
writes nothing (no key, no audit row); another account's key is a 404 like a missing one;
at most 32 keys per account, also when adds race."""

import base64
import json
import re
import struct
import subprocess
import uuid

import pytest
import requests

import authmatrix as am
from conftest import Api, access_token, all_at_once, create_user

KEYS = "/api/account/ssh-keys"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
NOT_FOUND = {"error": "SSH key not found"}


# ------------------------------------------------------------------------ helpers --

class Keygen:
    """Keys made by ssh-keygen into a directory: (public line, fingerprint, private text)."""

    def __init__(self, directory):
        self.dir = directory

    def make(self, kind, bits=None, comment="test"):
        f = self.dir / f"k-{uuid.uuid4().hex[:8]}"
        cmd = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment, "-f", str(f)]
        if bits:
            cmd += ["-b", str(bits)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        pub = f.with_name(f.name + ".pub")
        fp = subprocess.run(["ssh-keygen", "-lf", str(pub)], check=True, capture_output=True,
                            text=True, timeout=30).stdout.split()[1]
        return pub.read_text(), fp, f.read_text()


@pytest.fixture(scope="module")
def keygen(tmp_path_factory):
    return Keygen(tmp_path_factory.mktemp("ssh-keys"))


class Account:
    """A user of the module's Apache and their token."""

    def __init__(self, apache, role="user"):
        self.apache = apache
        self.user = create_user(Api(apache), role=role)
        self.id = self.user["id"]
        self.token = access_token(apache, self.id, role)

    def call(self, method, path=KEYS, body=None, data=None, headers=None):
        h = {"Authorization": f"Bearer {self.token}", "Connection": "close"}
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        return requests.request(method, self.apache.url(path), data=data, headers=h,
                                timeout=30)

    def add(self, public_key, name=None, **extra):
        body = {"publicKey": public_key, **extra}
        if name is not None:
            body["name"] = name
        return self.call("POST", body=body)

    def added(self, public_key, name=None):
        r = self.add(public_key, name)
        assert r.status_code == 201, r.text
        return r.json()["key"]

    def keys(self):
        r = self.call("GET")
        assert r.status_code == 200, r.text
        return r.json()

    def delete(self, key_id):
        return self.call("DELETE", f"{KEYS}/{key_id}")


@pytest.fixture
def alice(apache):
    return Account(apache)


@pytest.fixture
def bob(apache):
    return Account(apache)


def stored(database, user_id):
    return database.count("SELECT COUNT(*) FROM ssh_keys WHERE user_id = ?", [user_id])


def audits(database, actor_id, action=None):
    sql = "SELECT COUNT(*) FROM audit_log WHERE actor_id = ?"
    args = [str(actor_id)]
    if action:
        sql += " AND action = ?"
        args.append(action)
    return database.count(sql, args)


def err(r, status, *phrases):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    for phrase in phrases:
        assert phrase in body["error"], (phrase, body)
    return body


def ssh_string(b):
    return struct.pack(">I", len(b)) + b


def fields(line):
    """The strings of a key line's key data."""
    blob = base64.b64decode(line.split()[1])
    out, i = [], 0
    while i < len(blob):
        n = struct.unpack(">I", blob[i:i + 4])[0]
        out.append(blob[i + 4:i + 4 + n])
        i += 4 + n
    return out


def with_data(type_word, blob, comment="test"):
    return f"{type_word} {base64.b64encode(blob).decode()} {comment}"


# -------------------------------------------------------------------------- tests --

def test_keys_of_every_kind_are_kept_with_ssh_keygens_fingerprints(alice, keygen, database):
    """ed25519, RSA 2048 and 4096, ECDSA on its three curves: each added (a name given, or
    the comment as the name), answered and listed as `ssh-keygen -lf` sees it, stored as
    the .pub line without its line end, audited."""
    made = []
    for kind, bits, name in (("ed25519", None, "laptop"), ("rsa", 2048, None),
                             ("rsa", 4096, "big"), ("ecdsa", 256, None), ("ecdsa", 384, None),
                             ("ecdsa", 521, "p521")):
        pub, fp, _ = keygen.make(kind, bits, comment=f"{kind}{bits or ''}@host")
        r = alice.add(pub, name)
        assert r.status_code == 201, r.text
        body = r.json()
        assert set(body) == {"status", "key"} and body["status"] == "success", body
        key = body["key"]
        assert key["fingerprint"] == fp, (kind, bits, key, fp)
        assert key["publicKey"] == pub.strip() and key["comment"] == f"{kind}{bits or ''}@host"
        assert key["type"] == pub.split()[0]
        assert key["name"] == (name or key["comment"])
        assert TIMESTAMP.match(key["createdAt"]), key
        made.append(key)
    assert alice.keys() == made
    rows = database.query("SELECT id, public_key, fingerprint FROM ssh_keys WHERE user_id = ? "
                          "ORDER BY id", [alice.id])
    assert [(int(r["id"]), r["public_key"], r["fingerprint"]) for r in rows] == \
        [(k["id"], k["publicKey"], k["fingerprint"]) for k in made]
    for k in made:
        a = database.query("SELECT actor_type, actor_id, target_type, details FROM audit_log "
                           "WHERE action = 'sshkey.add' AND target_id = ?", [str(k["id"])])
        assert len(a) == 1 and a[0]["actor_type"] == "user", a
        assert (a[0]["actor_id"], a[0]["target_type"]) == (str(alice.id), "ssh_key"), a
        assert json.loads(a[0]["details"]) == {"user_id": str(alice.id), "name": k["name"],
                                               "type": k["type"],
                                               "fingerprint": k["fingerprint"]}


def test_a_pasted_key_is_normalised(alice, keygen):
    """Blanks and tabs between the fields, a CRLF line end: stored with single spaces, the
    comment's own spaces kept."""
    pub, fp, _ = keygen.make("ed25519", comment="x")
    kind, data = pub.split()[:2]
    key = alice.added(f"  {kind}\t {data}   Alice's work laptop \r\n", name="work")
    assert key["publicKey"] == f"{kind} {data} Alice's work laptop", key
    assert (key["comment"], key["fingerprint"]) == ("Alice's work laptop", fp), key


def test_delete_is_audited_and_once(alice, keygen, database):
    first = alice.added(keygen.make("ed25519")[0], name="one")
    second = alice.added(keygen.make("ed25519")[0], name="two")
    r = alice.delete(first["id"])
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "success", "message": "SSH key deleted"}
    assert alice.keys() == [second]
    a = database.query("SELECT actor_id, details FROM audit_log WHERE action = 'sshkey.delete' "
                       "AND target_id = ?", [str(first["id"])])
    assert len(a) == 1 and a[0]["actor_id"] == str(alice.id), a
    assert json.loads(a[0]["details"])["fingerprint"] == first["fingerprint"], a
    assert alice.delete(first["id"]).json() == NOT_FOUND
    assert audits(database, alice.id, "sshkey.delete") == 1


def test_another_accounts_key_is_a_404_like_a_missing_one(apache, alice, bob, keygen, database):
    key = alice.added(keygen.make("ed25519")[0], name="alice's")
    admin = Account(apache, role="admin")
    theirs, missing = bob.delete(key["id"]), bob.delete(987654321)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.content == missing.content and theirs.json() == NOT_FOUND
    assert admin.delete(key["id"]).json() == NOT_FOUND
    assert bob.keys() == [] and admin.keys() == []
    assert alice.keys() == [key]
    assert audits(database, bob.id) == 0 and audits(database, admin.id) == 0
    # an admin keeps keys of their own, audited as the admin
    mine = admin.added(keygen.make("ed25519")[0], name="admin's")
    assert admin.keys() == [mine] and alice.keys() == [key]
    assert database.query("SELECT actor_type FROM audit_log WHERE action = 'sshkey.add' AND "
                          "target_id = ?", [str(mine["id"])]) == [{"actor_type": "admin"}]


def test_the_same_key_twice_is_409_naming_the_first(alice, bob, keygen, database):
    pub, _, _ = keygen.make("ed25519", comment="first")
    key = alice.added(pub, name="laptop")
    kind, data = pub.split()[:2]
    # the same key data with another comment and another name
    err(alice.add(f"{kind} {data} second", name="again"), 409,
        f"this key is saved already, as 'laptop' (id {key['id']})")
    assert stored(database, alice.id) == 1
    assert audits(database, alice.id, "sshkey.add") == 1
    # another account may keep the same key
    assert bob.added(pub, name="bob's")["fingerprint"] == key["fingerprint"]


def test_an_account_keeps_at_most_32_keys(alice, bob, database):
    ids = [alice.added(am.ssh_public_key(f"k{i}"))["id"] for i in range(32)]
    err(alice.add(am.ssh_public_key("k32")), 409,
        "you have 32 SSH keys, the most one account may keep: delete one first")
    assert stored(database, alice.id) == 32
    assert audits(database, alice.id, "sshkey.add") == 32
    assert bob.add(am.ssh_public_key("bob")).status_code == 201
    assert alice.delete(ids[0]).status_code == 200
    assert alice.add(am.ssh_public_key("k33")).status_code == 201


def test_adds_at_once_never_pass_the_limit_nor_store_a_key_twice(alice, bob, database):
    """Adds of one account queue on its row: 10 different keys at once with room for 2
    store 2; the same key sent 8 times at once is stored once."""
    for i in range(30):
        alice.added(am.ssh_public_key(f"k{i}"))
    lines = [am.ssh_public_key(f"race{i}") for i in range(10)]
    rs = all_at_once(10, lambda i: alice.add(lines[i]))
    assert sorted(r.status_code for r in rs) == [201] * 2 + [409] * 8, [r.text for r in rs]
    assert stored(database, alice.id) == 32
    same = am.ssh_public_key("twin")
    rs = all_at_once(8, lambda i: bob.add(same, name=f"twin {i}"))
    assert sorted(r.status_code for r in rs) == [201] + [409] * 7, [r.text for r in rs]
    assert stored(database, bob.id) == 1
    assert audits(database, bob.id, "sshkey.add") == 1


# (name, what the body's publicKey / name are, what the 400 says): made from keys ssh-keygen
# made in the test (k: the Keygen), so every refusal is of an otherwise good key
def _refusals():
    def trailing(k):
        pub = k.make("ed25519")[0]
        blob = base64.b64decode(pub.split()[1]) + ssh_string(b"extra")
        return {"publicKey": with_data("ssh-ed25519", blob)}

    def curve(k):
        q = fields(k.make("ecdsa", 256)[0])[2]
        blob = ssh_string(b"ecdsa-sha2-nistp256") + ssh_string(b"nistp384") + ssh_string(q)
        return {"publicKey": with_data("ecdsa-sha2-nistp256", blob)}

    def pub(kind="ed25519", bits=None):
        return lambda k: k.make(kind, bits)[0].strip()

    return [
        ("rsa-1024", lambda k: {"publicKey": pub("rsa", 1024)(k)},
         "publicKey: RSA keys must be at least 2048 bits (this one has 1024)"),
        ("private-key", lambda k: {"publicKey": k.make("ed25519")[2]},
         "publicKey: this is a private key: paste the .pub file"),
        ("options", lambda k: {"publicKey": 'command="uptime",no-pty ' + pub()(k)},
         "publicKey: authorized_keys options (command=, from=, no-pty, ...) are not accepted"),
        ("two-lines", lambda k: {"publicKey": pub()(k) + "\n" + pub()(k)},
         "publicKey: must be one line"),
        ("control-character", lambda k: {"publicKey": pub()(k) + "\x07"},
         "publicKey: must not contain control characters"),
        ("over-16-kb", lambda k: {"publicKey": pub()(k) + " " + "x" * 16384},
         "publicKey: must be at most 16384 bytes"),
        ("bytes-after-the-key", trailing,
         "publicKey: not an OpenSSH public key: there are bytes after the key"),
        ("type-word-of-another-key",
         lambda k: {"publicKey": "ssh-rsa " + pub()(k).split(" ", 1)[1]},
         "publicKey: not an OpenSSH public key: the key data is of type ssh-ed25519, not "
         "ssh-rsa"),
        ("curve-of-another-type", curve,
         "publicKey: not an OpenSSH public key: the key data's curve is not nistp256"),
        ("dsa", lambda k: {"publicKey": pub("dsa")(k)},
         "publicKey: DSA keys (ssh-dss) are not accepted"),
        ("not-base64", lambda k: {"publicKey": "ssh-ed25519 AAAA$$$$ x"},
         "publicKey: not an OpenSSH public key: the key data is not valid base64"),
        ("unknown-type", lambda k: {"publicKey": "ssh-foo AAAAB3NzaC1yc2E x"},
         "publicKey: not an OpenSSH public key: unknown key type 'ssh-foo'"),
        ("comment-over-255", lambda k: {"publicKey": pub()(k).rsplit(" ", 1)[0] + " " +
                                        "c" * 256},
         "publicKey: the comment after the key may have at most 255 characters"),
        ("missing", lambda k: {"name": "x"}, "publicKey: is required"),
        ("not-a-string", lambda k: {"publicKey": ["ssh-ed25519"]},
         "publicKey: must be a string"),
        ("name-over-64", lambda k: {"publicKey": pub()(k), "name": "n" * 65},
         "name: must be 1 to 64 printable characters"),
        ("no-name-no-comment", lambda k: {"publicKey": pub()(k).rsplit(" ", 1)[0]},
         "name: is required: the key has no comment to name it by"),
        ("unknown-field", lambda k: {"publicKey": pub()(k), "userId": 1},
         "userId: unknown field"),
    ]


@pytest.mark.parametrize("case,make,says", _refusals(), ids=[c[0] for c in _refusals()])
def test_a_refused_key_says_why_and_writes_nothing(alice, keygen, database, case, make, says):
    body = make(keygen)
    r = alice.call("POST", body=body)
    got = err(r, 400, "invalid SSH key: " + says)
    field = says.split(":")[0]
    assert field in got["fields"], got
    assert stored(database, alice.id) == 0 and audits(database, alice.id) == 0


def test_bodies_that_are_no_key_request(alice, keygen, database):
    pub = keygen.make("ed25519")[0]
    # JSON's \u0000 inside the key: refused by the JSON reader already
    r = alice.call("POST", data=b'{"publicKey": "ssh-ed25519 AAAA\\u0000x"}')
    err(r, 400, "malformed JSON")
    err(alice.call("POST", data=json.dumps({"publicKey": pub}).encode(),
                   headers={"Content-Type": "text/plain"}), 415)
    err(alice.call("POST", data=b"[1]"), 400, "invalid SSH key: body: must be a JSON object")
    err(alice.call("POST", data=b'{"publicKey":'), 400, "malformed JSON")
    err(alice.call("POST", data=b""), 400)
    assert stored(database, alice.id) == 0 and audits(database, alice.id) == 0


def test_without_a_token_nothing_is_answered_nor_written(apache, alice, keygen, database):
    key = alice.added(keygen.make("ed25519")[0], name="kept")
    for method, path, body in (("GET", KEYS, None),
                               ("POST", KEYS, {"publicKey": keygen.make("ed25519")[0]}),
                               ("DELETE", f"{KEYS}/{key['id']}", None)):
        for headers in ({}, {"X-API-Key": apache.sync_key}):
            r = requests.request(method, apache.url(path), json=body, headers=headers,
                                 timeout=30)
            assert r.status_code == 401, (method, r.text)
            assert r.headers["WWW-Authenticate"] == 'Bearer realm="ospab"', r.headers
            assert r.json() == {"error": "missing bearer token"}
    assert alice.keys() == [key]
    assert stored(database, alice.id) == 1 and audits(database, alice.id) == 1


def test_a_deleted_account_takes_its_keys_along(apache, keygen, database):
    """The sync API's user delete: on SQLite too, whose connections do not enforce the
    foreign key's cascade."""
    gone = Account(apache)
    gone.added(keygen.make("ed25519")[0], name="a")
    gone.added(keygen.make("ecdsa", 256)[0], name="b")
    assert stored(database, gone.id) == 2
    r = Api(apache).user("delete", {"id": gone.id})
    assert r.status_code == 200, r.text
    assert stored(database, gone.id) == 0
