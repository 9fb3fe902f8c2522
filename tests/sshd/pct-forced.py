#!/usr/bin/python3
"""OpenSSH forced command that stands in for `pct exec <vmid> -- chpasswd` on a
Proxmox node, for the tests of lib/ospab_ssh.c (see tests/sshd/sshd.py).

    command="/usr/bin/python3 .../pct-forced.py CONF.json",restrict ssh-ed25519 ...

CONF.json: {"control": "https://127.0.0.1:PORT/_sim", "ca": "<pvesim ca.pem>",
            "node": "pve1", "log": "<file>"}

* $SSH_ORIGINAL_COMMAND must be exactly `pct exec <vmid> -- chpasswd`; anything
  else is refused (exit 2).
* Like `pct exec` (PVE::LXC::Config->load_config), a vmid that is not a container
  on this node fails with "Configuration file 'nodes/<node>/lxc/<vmid>.conf' does
  not exist" and exit 255 (what Perl's die gives; real pct may exit with the
  errno left over instead: callers must not rely on the number, only on != 0).
* A stopped container fails as lxc-attach does (exit 1).
* Standard input is read as chpasswd reads it: "user:password" lines, split at
  the first ':'. Each root line is recorded through the simulator's control API
  (`POST /_sim/guest/{vmid}/password`, which stores only a SHA-256). Other users
  give chpasswd's "user 'x' does not exist", a line without ':' its "missing new
  password"; errors make the exit status 1 (PAM mode: earlier lines stay applied).
* One JSON line per run goes to the log: the command, vmid, users, exit status,
  what was printed on stderr. Never a password.
"""

import http.client
import json
import os
import re
import ssl
import sys
import time
import urllib.parse

COMMAND = re.compile(r"pct exec ([1-9][0-9]{2,8}) -- chpasswd")
STDIN_MAX = 64 * 1024


class Refused(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class Control:
    def __init__(self, conf):
        url = urllib.parse.urlsplit(conf["control"])
        self.host, self.port, self.base = url.hostname, url.port, url.path.rstrip("/")
        self.ctx = ssl.create_default_context(cafile=conf["ca"])

    def call(self, method, path, body=None):
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=10)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, self.base + path, body=data,
                         headers={"Content-Type": "application/json"} if data else {})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"null")
        finally:
            conn.close()


def chpasswd(control, vmid, data):
    """Applies "user:password" lines; returns (users changed, error lines)."""
    users, errors = [], []
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for n, raw in enumerate(lines, 1):
        line = raw.decode("utf-8", "surrogateescape")
        name, sep, password = line.partition(":")
        if not sep:
            errors.append("chpasswd: line %d: missing new password" % n)
            continue
        if name != "root":
            errors.append("chpasswd: line %d: user '%s' does not exist" % (n, name))
            continue
        status, body = control.call("POST", "/guest/%d/password" % vmid,
                                    {"user": name, "password": password})
        if status != 200:
            errors.append("chpasswd: (line %d, user %s) password not changed" % (n, name))
            continue
        users.append(name)
    return users, errors


def run(conf, record):
    original = os.environ.get("SSH_ORIGINAL_COMMAND")
    record["command"] = original
    m = COMMAND.fullmatch(original or "")
    if not m:
        raise Refused(2, "ospab test node: this key may only run "
                         "`pct exec <vmid> -- chpasswd`\n")
    vmid = int(m.group(1))
    record["vmid"] = vmid
    control = Control(conf)
    node = conf.get("node", "pve")
    status, guest = control.call("GET", "/guest/%d" % vmid)
    if status == 404 or (status == 200 and (guest.get("type") != "lxc"
                                            or guest.get("node") != node)):
        raise Refused(255, "Configuration file 'nodes/%s/lxc/%d.conf' does not exist\n"
                      % (node, vmid))
    if status != 200:
        raise Refused(70, "ospab test node: simulator answered %d\n" % status)
    if guest.get("status") != "running":
        raise Refused(1, "lxc-attach: %d: ../src/lxc/attach.c: get_attach_context: 405 "
                         "Connection refused - Failed to get init pid\n"
                         "lxc-attach: %d: ../src/lxc/attach.c: lxc_attach: 1470 Connection "
                         "refused - Failed to get attach context\n" % (vmid, vmid))
    data = sys.stdin.buffer.read(STDIN_MAX + 1)
    if len(data) > STDIN_MAX:
        raise Refused(1, "chpasswd: line too long\n")
    users, errors = chpasswd(control, vmid, data)
    record["users"] = users
    if errors:
        raise Refused(1, "".join(e + "\n" for e in errors))
    return 0


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: pct-forced.py CONF.json\n")
        return 64
    with open(sys.argv[1]) as f:
        conf = json.load(f)
    record = {"time": round(time.time(), 3), "pid": os.getpid()}
    try:
        status = run(conf, record)
        message = ""
    except Refused as e:
        status, message = e.status, e.message
    except Exception as e:      # the simulator is down, or a bug here
        status, message = 70, "ospab test node: %s: %s\n" % (type(e).__name__, e)
    if message:
        sys.stderr.write(message)
    record.update(exit=status, stderr=message)
    with open(conf["log"], "a") as f:
        f.write(json.dumps(record) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
