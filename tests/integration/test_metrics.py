"""Prometheus metrics of mod_ospab (issue 16): OspabMetrics in a <Location>, counted in
shared memory by every child, checked with Debian's `promtool check metrics` and by moving
each counter with real requests, on SQLite and MariaDB.

The agent's own metrics listener is test_agent_metrics.py's."""

import re
import subprocess
import time
import uuid

import pytest
import requests

import harness
from conftest import (Api, access_token, create_user, new_vps, served, simulated,
                      sql_exec)

NODE = "pve1"
GUEST = 100                        # tests/pvesim --guests 1: ct100 on pve1

SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)'
                    r'(?:\{(?P<labels>(?:\w+="(?:[^"\\]|\\.)*",?)*)\})? (?P<value>\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@pytest.fixture(scope="module")
def sim():
    yield from simulated(nodes=(NODE,), guests=1, time_scale=0.05)


# prefork with several children: the counters must add up over processes
CONF = ["<IfModule !authz_host_module>",
        f"  LoadModule authz_host_module {harness.APACHE_MODULES}/mod_authz_host.so",
        "</IfModule>",
        "<Location /metrics>", "  OspabMetrics On", "  Require ip 127.0.0.1", "</Location>",
        "OspabRateLimit 3 60"]


@pytest.fixture(scope="module")
def srv(database, sim):
    pve = [f"OspabProxmoxURL {sim.url}", f"OspabProxmoxToken {sim.token}",
           f"OspabProxmoxCA {sim.ca}", f"OspabProxmoxNode {NODE}"]
    yield from served(database, CONF + pve)


def scrape(srv):
    r = requests.get(srv.url("/metrics"), timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return r.text


def samples(text):
    """{(name, frozenset(labels.items())): value}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(LABEL.findall(m["labels"] or ""))
        out[(m["name"], labels)] = float(m["value"])
    return out


def value(text, name, **labels):
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def promtool(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                       capture_output=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def test_promtool_accepts_the_exposition(srv):
    requests.get(srv.url("/api/health"), timeout=10)
    requests.get(srv.url("/api/nope"), timeout=10)
    text = scrape(srv)
    rc, out = promtool(text)
    assert rc == 0, out
    assert "# TYPE ospab_http_request_duration_seconds histogram" in text
    # counted by the Galera suite (tests/cluster), where nodes' writes really conflict
    assert "# TYPE ospab_db_conflict_retries_total counter" in text


def test_route_counters_move_by_template_and_status_class(srv):
    api = Api(srv)
    user = create_user(api)["id"]
    tok = {"Authorization": f"Bearer {access_token(srv, user)}"}
    before = scrape(srv)
    for _ in range(3):
        assert requests.get(srv.url("/api/health"), timeout=10).status_code == 200
    # someone else's/no such server: the route template, never the id
    r = requests.get(srv.url("/api/server/987654321"), headers=tok, timeout=10)
    assert r.status_code == 404
    assert requests.get(srv.url("/api/definitely-not-a-route"), timeout=10).status_code == 404
    assert requests.put(srv.url("/api/health"), timeout=10).status_code == 405
    after = scrape(srv)

    def moved(**labels):
        return (value(after, "ospab_http_requests_total", **labels)
                - value(before, "ospab_http_requests_total", **labels))

    assert moved(method="GET", route="/api/health", status="2xx") == 3
    assert moved(method="GET", route="/api/server/{id}", status="4xx") == 1
    assert moved(method="", route="(unmatched)", status="4xx") == 2
    assert "987654321" not in after and "definitely-not-a-route" not in after
    # the histogram agrees with the counter, and its buckets are cumulative
    count = value(after, "ospab_http_request_duration_seconds_count", method="GET",
                  route="/api/health", status="2xx")
    assert count == value(after, "ospab_http_requests_total", method="GET",
                          route="/api/health", status="2xx")
    inf = value(after, "ospab_http_request_duration_seconds_bucket", method="GET",
                route="/api/health", status="2xx", le="+Inf")
    ten_s = value(after, "ospab_http_request_duration_seconds_bucket", method="GET",
                  route="/api/health", status="2xx", le="10")
    assert inf == count and 0 < ten_s <= inf


def test_login_failures_and_rate_limit_rejections(srv):
    email = f"m-{uuid.uuid4().hex[:8]}@example.com"
    create_user(Api(srv), password="right-password-123", email=email)
    before = scrape(srv)
    codes = [requests.post(srv.url("/api/auth/login"), timeout=10,
                           json={"email": email, "password": "Xq7-not-it"}).status_code
             for _ in range(5)]
    after = scrape(srv)
    assert codes == [401, 401, 401, 429, 429]          # OspabRateLimit 3 60
    assert (value(after, "ospab_login_failures_total")
            - value(before, "ospab_login_failures_total")) == 3
    assert (value(after, "ospab_rate_limited_total", limit="login")
            - value(before, "ospab_rate_limited_total", limit="login")) == 2
    # the password is never a label or a value
    assert "Xq7-not-it" not in after and email not in after


def test_idempotent_replays(srv):
    api = Api(srv)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = new_vps()
    before = scrape(srv)
    first = api.vps("create", body, headers=key)
    again = api.vps("create", body, headers=key)
    after = scrape(srv)
    assert first.status_code == 201 and again.status_code == 201, (first.text, again.text)
    assert again.json() == first.json()
    assert (value(after, "ospab_idempotent_replays_total")
            - value(before, "ospab_idempotent_replays_total")) == 1


@pytest.mark.allow_log(r"OSPAB00202: GET /api/server/\d+/status failed: Proxmox status: "
                       r"simulated failure")
def test_proxmox_calls_by_endpoint_template_and_outcome(srv, sim):
    api = Api(srv)
    user = create_user(api)["id"]
    made = api.vps("create", new_vps(user_id=user, node=NODE, vmid=GUEST, status="running"))
    assert made.status_code == 201, made.text
    vps = made.json()["vps"]["id"]
    tok = {"Authorization": f"Bearer {access_token(srv, user)}"}
    endpoint = "/nodes/{node}/lxc/{vmid}/status/current"
    before = scrape(srv)
    r = requests.get(srv.url(f"/api/server/{vps}/status"), headers=tok, timeout=30)
    assert r.status_code == 200, r.text
    mid = scrape(srv)
    assert (value(mid, "ospab_proxmox_requests_total", method="GET", endpoint=endpoint,
                  outcome="ok")
            - value(before, "ospab_proxmox_requests_total", method="GET", endpoint=endpoint,
                    outcome="ok")) >= 1
    assert value(mid, "ospab_proxmox_request_seconds_total", method="GET",
                 endpoint=endpoint) > 0
    # the node's name and the guest's id are label values nowhere
    assert f"/{GUEST}/" not in mid and f"/{NODE}/" not in mid
    # Proxmox answering with an error is another outcome of the same endpoint
    sim.fault(kind="status", code=500, message="simulated failure",
              path_prefix=f"/nodes/{NODE}/lxc/{GUEST}/status/current")
    try:
        r = requests.get(srv.url(f"/api/server/{vps}/status"), headers=tok, timeout=30)
    finally:
        sim.clear_faults()
    assert r.status_code == 502, r.text
    after = scrape(srv)
    assert (value(after, "ospab_proxmox_requests_total", method="GET", endpoint=endpoint,
                  outcome="http_error")
            - value(mid, "ospab_proxmox_requests_total", method="GET", endpoint=endpoint,
                    outcome="http_error")) >= 1


# the request may come to a connection of the pool not used before, whose statements then
# fail to prepare (OSPAB00119), or to one prepared before the change (OSPAB00202/00402)
@pytest.mark.allow_log(r"OSPAB00202: GET /api/tariffs failed",
                       r"OSPAB00402: user lookup failed",
                       r"OSPAB00119: setting up a new database connection: preparing \w+: "
                       r"(no such table|Table '\w+\.tariffs' doesn't exist)")
def test_database_statement_failures_are_counted(srv, database, start_apache):
    """A statement that fails (its table renamed away under a running Apache of its own,
    so that srv's prepared statements never see the schema change) is counted, and so is
    the 503 it ends in."""
    user = create_user(Api(srv))["id"]
    own = start_apache(extra_conf=CONF)
    tok = {"Authorization": f"Bearer {access_token(own, user)}"}
    assert requests.get(own.url("/api/tariffs"), headers=tok, timeout=10).status_code == 200
    before = scrape(own)
    sql_exec(database, "ALTER TABLE tariffs RENAME TO tariffs_away")
    try:
        r = requests.get(own.url("/api/tariffs"), headers=tok, timeout=10)
    finally:
        sql_exec(database, "ALTER TABLE tariffs_away RENAME TO tariffs")
    after = scrape(own)
    own.stop()
    assert r.status_code == 503, r.text
    assert (value(after, "ospab_db_errors_total", kind="statement")
            - value(before, "ospab_db_errors_total", kind="statement")) >= 1
    assert (value(after, "ospab_http_requests_total", method="GET", route="/api/tariffs",
                  status="5xx")
            - value(before, "ospab_http_requests_total", method="GET", route="/api/tariffs",
                    status="5xx")) == 1


def test_metrics_location_answers_get_only(srv):
    r = requests.post(srv.url("/metrics"), data=b"", timeout=10)
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD"
    assert r.json() == {"error": "metrics are read with GET"}
    h = requests.head(srv.url("/metrics"), timeout=10)
    assert h.status_code == 200 and h.content == b""


# Children start and end all the time here: none may log "database is locked" (AH00632,
# mod_dbd preparing statements at child init) - the module prepares its statements at a
# connection's first use and waits out SQLite's lock (harness: unexpected log lines fail).
def test_children_add_to_one_count(start_apache):
    """prefork: every request in its own child process (MaxConnectionsPerChild 1 ends a
    child after one connection), all counted in the one shared segment."""
    a = start_apache(mpm="prefork", extra_conf=CONF + [
        "StartServers 4", "MinSpareServers 4", "MaxSpareServers 8", "ServerLimit 16",
        "MaxRequestWorkers 16", "MaxConnectionsPerChild 1"])
    n = 12
    for _ in range(n):
        r = requests.get(a.url("/api/health"), timeout=10, headers={"Connection": "close"})
        assert r.status_code == 200
    # a child counts a request in its log phase, just after the client got the answer:
    # the last one may come a moment after the scrape
    deadline = time.monotonic() + 10
    while True:
        got = value(scrape(a), "ospab_http_requests_total", method="GET",
                    route="/api/health", status="2xx")
        if got >= n or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert got == n
