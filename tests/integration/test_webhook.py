"""The agent's webhook sender (docs/agent.md, "Webhooks") against a receiver on
127.0.0.1 (http.server in a thread): signatures, retries, the delivery log, concurrency,
skipping without a URL, pruning and kill -9. Events are webhook_outbox rows as
lib/ospab_events.c writes them. Each test on SQLite and MariaDB."""

import json
import time

import pytest

from agentharness import Agent
from conftest import sql_exec, sql_quote, unique
from webhookreceiver import Receiver, verify

SECRET = "whsec-" + "0123456789abcdef" * 3


def wait_for(cond, timeout=20.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(step)
    return cond()


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def start_agent(database):
    agents = []

    def start(url, agent=None, **webhook):
        section = {"url": url, "secret": SECRET, "timeout": "3s", "interval": "100ms",
                   "retry_base": "200ms", "max_attempts": 5}
        section.update(webhook)
        if url is None:
            section = {}
        a = Agent(database, websocket=False,
                  sections={"webhook": section,
                            "agent": dict({"retry_max": "2s"}, **(agent or {}))})
        agents.append(a)
        return a.start()

    yield start
    for a in agents:
        if a.running():
            a.stop()


@pytest.fixture(autouse=True)
def _quiet_outbox(database):
    """Rows of earlier tests in this module's database must not be delivered to this
    test's receiver: every older row is marked failed before the test."""
    sql_exec(database, "UPDATE webhook_outbox SET state = 'failed' "
                       "WHERE state IN ('pending', 'sending');\n")


def add_events(database, n, event="server.status", created="2026-11-22 10:00:00.000"):
    """n rows as ospab_event_add writes them; returns their ids."""
    tag = unique("ev")
    stmts = []
    for i in range(n):
        payload = json.dumps({"event": event, "createdAt": "2026-11-22T10:00:00.000Z",
                              "data": {"serverId": i + 1, "userId": 5, "status": "running",
                                       "previous": "stopped", "tag": tag}},
                             separators=(",", ":"), ensure_ascii=False)
        stmts.append("INSERT INTO webhook_outbox (event, payload, state, attempts, "
                     f"next_attempt_at, created_at) VALUES ({sql_quote(event)}, "
                     f"{sql_quote(payload)}, 'pending', 0, {sql_quote(created)}, "
                     f"{sql_quote(created)});\n")
    sql_exec(database, "".join(stmts))
    rows = database.query("SELECT id, payload FROM webhook_outbox ORDER BY id")
    return [int(r["id"]) for r in rows if tag in r["payload"]]


def outbox(database, row_id):
    [r] = database.query("SELECT state, attempts, last_status, last_error, delivered_at "
                         "FROM webhook_outbox WHERE id = ?", [row_id])
    return r


def deliveries(database, row_id):
    return database.query("SELECT attempt, http_status, error, duration_ms FROM "
                          "webhook_deliveries WHERE webhook_id = ? ORDER BY id", [row_id])


def state_is(database, row_id, state):
    return lambda: outbox(database, row_id)["state"] == state


# --------------------------------------------------------------------------- delivery --

def test_events_are_delivered_signed_and_logged(database, receiver, start_agent):
    ids = add_events(database, 3)
    agent = start_agent(receiver.url)
    assert wait_for(lambda: sorted(receiver.ids()) == ids), receiver.ids()
    for req in receiver.delivered:
        h, body = req["headers"], req["body"]
        payload = json.loads(body)
        assert h["Content-Type"] == "application/json"
        assert h["X-Ospab-Event"] == payload["event"] == "server.status"
        assert h["X-Ospab-Delivery"] == str(payload["id"])
        assert set(payload) == {"id", "event", "createdAt", "data"}
        assert verify(SECRET, h["X-Ospab-Signature"], body)
        assert not verify("another-secret-of-32-characters!", h["X-Ospab-Signature"], body)
        assert not verify(SECRET, h["X-Ospab-Signature"], body + b" ")
        assert not verify(SECRET, h["X-Ospab-Signature"], body, now=time.time() + 600)
    for i in ids:
        assert wait_for(state_is(database, i, "delivered"))
        r = outbox(database, i)
        assert (r["attempts"], r["last_status"], r["last_error"]) == ("1", "200", None)
        assert r["delivered_at"]
        [d] = deliveries(database, i)
        assert (d["attempt"], d["http_status"], d["error"]) == ("1", "200", None)
        assert d["duration_ms"] is not None
    assert not agent.bad_log_lines()


def test_server_errors_are_retried_with_each_attempt_logged(database, receiver, start_agent):
    receiver.statuses = [500, 503]
    [i] = add_events(database, 1)
    start_agent(receiver.url)
    assert wait_for(state_is(database, i, "delivered"))
    assert [(d["attempt"], d["http_status"]) for d in deliveries(database, i)] == \
        [("1", "500"), ("2", "503"), ("3", "200")]
    assert "HTTP 500" in deliveries(database, i)[0]["error"]
    assert receiver.ids() == [i]


def test_a_timeout_is_retried(database, receiver, start_agent):
    receiver.delay = 2.5
    [i] = add_events(database, 1)
    start_agent(receiver.url, timeout="1s")
    assert wait_for(lambda: len(deliveries(database, i)) >= 1, timeout=10)
    first = deliveries(database, i)[0]
    assert first["http_status"] is None and "timed out" in first["error"].lower()
    assert int(first["duration_ms"]) >= 900
    receiver.delay = 0
    assert wait_for(state_is(database, i, "delivered"), timeout=15)


@pytest.mark.parametrize("status, final, attempts", [(400, "failed", 1), (410, "failed", 1),
                                                     (429, "delivered", 2),
                                                     (408, "delivered", 2)])
def test_4xx_fails_at_once_except_408_and_429(database, receiver, start_agent, status, final,
                                              attempts):
    receiver.statuses = [status]
    [i] = add_events(database, 1)
    start_agent(receiver.url)
    assert wait_for(state_is(database, i, final))
    r = outbox(database, i)
    assert r["attempts"] == str(attempts)
    assert r["last_status"] == ("200" if final == "delivered" else str(status))


def test_failed_after_max_attempts(database, receiver, start_agent):
    receiver.always = 502
    [i] = add_events(database, 1)
    start_agent(receiver.url, max_attempts=3)
    assert wait_for(state_is(database, i, "failed"))
    assert [d["attempt"] for d in deliveries(database, i)] == ["1", "2", "3"]
    assert outbox(database, i)["last_status"] == "502"


def test_a_slow_receiver_does_not_serialise_a_batch(database, receiver, start_agent):
    receiver.delay = 1.0
    ids = add_events(database, 8)
    start_agent(receiver.url)
    assert wait_for(lambda: len(receiver.ids()) == 8, timeout=30)
    arrivals = [r["at"] for r in receiver.seen]
    # all eight were in flight together: one second apart each would take 7 s to arrive
    assert max(arrivals) - min(arrivals) < 1.0, arrivals
    assert sorted(receiver.ids()) == ids


def test_without_a_url_events_are_skipped(database, start_agent):
    ids = add_events(database, 2)
    start_agent(None)
    for i in ids:
        assert wait_for(state_is(database, i, "skipped"))
        assert outbox(database, i)["attempts"] == "0"


# ------------------------------------------------------------------------------ crashes --

def test_kill9_mid_delivery_every_event_arrives_once(database, receiver, start_agent):
    receiver.delay = 0.5
    ids = add_events(database, 20)
    agent = start_agent(receiver.url, timeout="2s")
    for target in (4, 12):
        assert wait_for(lambda: len(receiver.ids()) >= target, timeout=60)
        # requests are waiting for their answers: the kill lands inside them
        assert wait_for(lambda: receiver.held(0.15), timeout=30, step=0.01)
        agent.kill9()
        agent.start()
    assert wait_for(lambda: set(receiver.ids()) >= set(ids), timeout=90), \
        sorted(set(ids) - set(receiver.ids()))
    time.sleep(1)
    got = receiver.ids()
    assert sorted(got) == ids, "an event was delivered twice"
    assert len(receiver.seen) > len(ids), "no kill landed inside a request"
    for i in ids:
        assert wait_for(state_is(database, i, "delivered"))


# ----------------------------------------------------------------------------- pruning --

def test_old_delivered_and_skipped_rows_are_pruned_with_their_log(database, start_agent):
    old = "2000-01-01 00:00:00.000"
    ids = add_events(database, 3, created=old)
    sql_exec(database,
             f"UPDATE webhook_outbox SET state = 'delivered' WHERE id = {ids[0]};\n"
             f"UPDATE webhook_outbox SET state = 'skipped' WHERE id = {ids[1]};\n"
             f"UPDATE webhook_outbox SET state = 'failed' WHERE id = {ids[2]};\n"
             "INSERT INTO webhook_deliveries (webhook_id, attempt, http_status, error, "
             f"duration_ms, created_at) VALUES ({ids[0]}, 1, 200, NULL, 5, '{old}');\n")
    start_agent(None, agent={"outbox_keep_days": 30})
    gone = lambda i: database.count("SELECT COUNT(*) FROM webhook_outbox WHERE id = ?",  # noqa: E731
                                    [i]) == 0
    assert wait_for(lambda: gone(ids[0]) and gone(ids[1]))
    assert not gone(ids[2])
    assert database.count("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = ?",
                          [ids[0]]) == 0
