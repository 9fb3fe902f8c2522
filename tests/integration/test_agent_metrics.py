"""ospab-agent's Prometheus metrics (issue 16): [agent] metrics_listen serves GET /metrics
on its own port from the live-push event loop; `promtool check metrics` accepts it and the
counters move as the agent works (polls, guests seen, drift corrected, Socket.IO clients
and pushes, the mail queue, the cluster lease), on SQLite and MariaDB."""

import json
import re
import time

import pytest
import requests

import harness
from agentharness import Agent, sim_cluster
from conftest import Api, access_token, create_user, served, simulated, sql_exec
from test_metrics import CONF, promtool, value

WAIT = 20.0
GUESTS = 3                          # tests/pvesim --guests: ct100..ct102 on pve1


def wait_for(fn, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def sim():
    yield from simulated(nodes=("pve1",), guests=GUESTS, time_scale=0.05, resources_lag=0.2)


@pytest.fixture(scope="module")
def srv(database):
    yield from served(database, CONF)


@pytest.fixture(scope="module")
def ports():
    return harness.free_port(), harness.free_port()


@pytest.fixture(scope="module")
def agent(database, sim, srv, ports):
    live, metrics = ports
    a = Agent(database, jwt_secret=srv.jwt_secret, clusters=[sim_cluster(sim)],
              sections={"agent": {"metrics_listen": f"127.0.0.1:{metrics}"},
                        "websocket": {"listen": f"127.0.0.1:{live}"}})
    a.start()
    yield a
    assert a.stop() == 0, a.log_tail()
    bad = a.bad_log_lines()
    assert not bad, "agent logged problems:\n" + "\n".join(bad)


def scrape(ports):
    r = requests.get(f"http://127.0.0.1:{ports[1]}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return r.text


def test_promtool_accepts_it_and_the_poll_is_counted(agent, ports, sim):
    text = wait_for(lambda: (lambda t: t if value(t, "ospab_agent_cluster_polls_total") >= 1
                             and value(t, "ospab_agent_guests") > 0 else None)(scrape(ports)),
                    "a first poll")
    rc, out = promtool(text)
    assert rc == 0, out
    listed = len(sim.data("GET", "/cluster/resources", {"type": "vm"}))
    assert value(text, "ospab_agent_guests") == listed == GUESTS
    assert value(text, "ospab_agent_poll_duration_seconds_count") >= 1
    assert value(text, "ospab_agent_cluster_lease", cluster="main") == 1
    assert f"metrics: http://127.0.0.1:{ports[1]}/metrics" in agent.log_text()
    # the Proxmox token is nowhere in it
    assert sim.token.split("=", 1)[1] not in text


def test_drift_corrections_move(agent, ports, srv, database, sim):
    before = value(scrape(ports), "ospab_agent_drift_corrections_total")
    # the record says the opposite of what Proxmox says: the agent corrects it
    actual = sim.data("GET", "/nodes/pve1/lxc/100/status/current")["status"]
    api = Api(srv)
    vps = api.create_vps(node="pve1", vmid=100, kind="lxc",
                         status="stopped" if actual == "running" else "running")
    wait_for(lambda: database.scalar("SELECT status FROM vps WHERE id = ?", [vps["id"]])
             == actual, "the drift to be corrected")
    after = wait_for(lambda: (lambda t: t if value(t, "ospab_agent_drift_corrections_total")
                              >= before + 1 else None)(scrape(ports)), "the counter")
    assert value(after, "ospab_agent_drift_corrections_total") == before + 1


def test_socketio_clients_and_pushes(agent, ports, srv):
    import socketio
    api = Api(srv)
    user = create_user(api)["id"]
    vps = api.create_vps(node="pve1", vmid=101, kind="lxc", status="running", user_id=user)
    before = scrape(ports)
    c = socketio.Client(reconnection=False)
    stats = []
    c.on("server-stats", stats.append)
    c.connect(f"http://127.0.0.1:{ports[0]}", auth={"token": access_token(srv, user)},
              socketio_path="/socket.io", transports=["websocket"], wait_timeout=10)
    try:
        assert c.call("subscribe-server", vps["id"], timeout=10)["ok"] is True
        wait_for(lambda: stats, "server-stats")
        during = scrape(ports)
        assert value(during, "ospab_agent_socketio_sessions", state="connected") == (
            value(before, "ospab_agent_socketio_sessions", state="connected") + 1)
        assert value(during, "ospab_agent_socketio_rooms") >= 1
        assert (value(during, "ospab_agent_pushes_total", result="delivered")
                > value(before, "ospab_agent_pushes_total", result="delivered"))
    finally:
        c.disconnect()
    wait_for(lambda: value(scrape(ports), "ospab_agent_socketio_sessions", state="connected")
             == value(before, "ospab_agent_socketio_sessions", state="connected"),
             "the session to end")


def test_mail_queue_depth_follows_the_outbox(agent, ports, database):
    # no [smtp] url: e-mails stay queued, and the gauge counts them
    sql_exec(database, "INSERT INTO email_outbox (to_addr, subject, body_text, state, "
             "next_attempt_at, created_at) VALUES "
             "('a@example.com', 's', 'b', 'pending', '2026-01-01 00:00:00', "
             "'2026-01-01 00:00:00'), "
             "('b@example.com', 's', 'b', 'pending', '2026-01-01 00:00:00', "
             "'2026-01-01 00:00:00')")
    queued = database.count(
        "SELECT COUNT(*) FROM email_outbox WHERE state IN ('pending', 'sending')")
    assert queued >= 2
    wait_for(lambda: value(scrape(ports), "ospab_agent_outbox_queued", outbox="mail")
             == queued, f"the mail queue gauge to read {queued}")


def test_only_get_metrics_is_served(agent, ports):
    base = f"http://127.0.0.1:{ports[1]}"
    assert requests.get(base + "/", timeout=10).status_code == 404
    assert requests.get(base + "/socket.io/?EIO=4&transport=polling",
                        timeout=10).status_code == 404
    assert requests.post(base + "/metrics", data=b"x", timeout=10).status_code == 405
    # the live-push listener does not answer /metrics
    assert requests.get(f"http://127.0.0.1:{ports[0]}/metrics", timeout=10).status_code == 404


def test_metrics_listen_needs_the_websocket_listener(database, sim, srv):
    a = Agent(database, jwt_secret=srv.jwt_secret, clusters=[sim_cluster(sim)],
              websocket=False, sections={"agent": {"metrics_listen": "127.0.0.1:0"}})
    rc, out = a.check()
    assert rc != 0
    assert "metrics_listen needs the live-push listener" in out


def test_the_grafana_dashboard_uses_names_both_expose(agent, ports, srv):
    """docs/grafana-ospab.json is built on the metrics' real names: every ospab_* series
    its queries use is a family the module or the agent declares."""
    families = set()
    for text in (scrape(ports), requests.get(srv.url("/metrics"), timeout=10).text):
        families |= set(re.findall(r"^# TYPE (\S+) (\S+)", text, re.M))
    names = set()
    for name, kind in families:
        names.add(name)
        if kind == "histogram":
            names |= {name + "_bucket", name + "_sum", name + "_count"}
    dash = json.loads((harness.REPO / "docs" / "grafana-ospab.json").read_text())
    used = set()
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            used |= set(re.findall(r"\b(ospab_[a-z0-9_]+)", t["expr"]))
    assert len(used) >= 20, used
    assert used <= names, f"the dashboard uses names nobody exposes: {sorted(used - names)}"
