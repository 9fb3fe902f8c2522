"""The agent's mailer (docs/agent.md, "E-mail") against a real SMTP server on 127.0.0.1
(smtpserver.py: aiosmtpd with STARTTLS and AUTH). Notices are queued through
POST /api/notify on the module, as the main site does; each test on SQLite and MariaDB."""

import re
import time
from email.utils import parsedate_to_datetime

import pytest

import harness
from agentharness import Agent
from conftest import sql_exec, sql_quote, unique
from smtpserver import SmtpServer, make_cert

FROM = "ospab panel <noreply@ospab.test>"
MESSAGE_ID = re.compile(r"^<outbox-(\d+)\.[0-9a-f]{16}@ospab>$")


def wait_for(cond, timeout=20.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(step)
    return cond()


@pytest.fixture
def smtp():
    s = SmtpServer(users={"mailer": "mailer-password"}).start()
    yield s
    s.stop()


@pytest.fixture
def start_agent(database):
    """start_agent(smtp_server, **[smtp] overrides) -> a running Agent on the module's
    database; stopped after the test."""
    agents = []

    def start(server, agent=None, **smtp):
        section = {"url": server.url, "user": "mailer", "password": "mailer-password",
                   "from": FROM, "ca": server.ca, "timeout": "5s", "interval": "100ms",
                   "retry_base": "200ms", "max_attempts": 5}
        section.update(smtp)
        a = Agent(database, websocket=False,
                  sections={"smtp": section, "agent": dict({"retry_max": "2s"}, **(agent or {}))})
        agents.append(a)
        return a.start()

    yield start
    for a in agents:
        if a.running():
            a.stop()


def queue(api, to=None, subject="Проверка", text="Привет!\nВторая строка.", **extra):
    to = to or unique("rcpt") + "@example.com"
    r = api.post("/api/notify", json=dict({"to": to, "subject": subject, "text": text},
                                          **extra))
    assert r.status_code == 202, r.text
    return r.json()["id"], to


def row(database, row_id):
    [r] = database.query("SELECT state, attempts, last_error, sent_at FROM email_outbox "
                         "WHERE id = ?", [row_id])
    return r


def to_of(server, to):
    return [m for m in server.received() if m.rcpt_tos == [to]]


# ----------------------------------------------------------------------------- sending --

def test_mail_arrives_over_starttls_with_auth_and_proper_headers(api, database, smtp,
                                                                start_agent):
    subject = "Сервер «web-1» создан — проверка длинной темы письма в UTF-8, " * 2
    subject = subject.strip()[:190]
    text = "Здравствуйте!\n\n.одна точка в начале строки\nIP-адрес: 203.0.113.7\n"
    row_id, to = queue(api, subject=subject, text=text)
    agent = start_agent(smtp)
    [m] = wait_for(lambda: to_of(smtp, to))
    assert m.tls and m.login == "mailer"
    assert m.mail_from == "noreply@ospab.test"
    msg = m.message
    assert msg["From"] == FROM and msg["To"] == to
    assert msg["Subject"] == subject
    assert MESSAGE_ID.match(msg["Message-ID"]).group(1) == str(row_id)
    assert msg["MIME-Version"] == "1.0"
    assert msg.get_content_type() == "text/plain" and msg.get_content_charset() == "utf-8"
    assert msg.get_content().replace("\r\n", "\n") == text
    assert abs(time.time() - parsedate_to_datetime(msg["Date"]).timestamp()) < 120
    # every header line is 7-bit ASCII: the UTF-8 subject went out as encoded-words
    head = m.data.split(b"\r\n\r\n", 1)[0]
    assert all(b < 0x80 for b in head) and b"=?UTF-8?B?" in head
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    r = wait_for(lambda: row(database, row_id)["state"] == "sent" and row(database, row_id))
    assert (r["state"], r["attempts"], r["last_error"]) == ("sent", "1", None) and r["sent_at"]
    assert not agent.bad_log_lines()


# these servers ask for AUTH without STARTTLS on purpose (implicit TLS; a server that
# offers no STARTTLS): aiosmtpd's warning about that setup is expected here
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtps_with_implicit_tls(api, database, start_agent):
    with SmtpServer(implicit_tls=True) as server:
        row_id, to = queue(api)
        start_agent(server)
        [m] = wait_for(lambda: to_of(server, to))
        assert m.tls and m.login == "mailer"


def test_transient_failures_are_retried_with_backoff_and_delivered_once(api, database, smtp,
                                                                       start_agent):
    smtp.fail_next("451 4.3.0 try again later", "421 4.7.0 busy")
    row_id, to = queue(api)
    started = time.monotonic()
    start_agent(smtp, retry_base="1s")
    [m] = wait_for(lambda: to_of(smtp, to), timeout=30)
    elapsed = time.monotonic() - started
    # waits of 1 s and 2 s, less up to a half of jitter: at least 1.5 s in all
    assert elapsed >= 1.4, elapsed
    r = wait_for(lambda: row(database, row_id)["state"] == "sent" and row(database, row_id))
    assert (r["attempts"], r["last_error"]) == ("3", None)
    time.sleep(1)
    assert len(to_of(smtp, to)) == 1


def test_permanent_rejection_fails_at_once(api, database, smtp, start_agent):
    smtp.always = "554 5.7.1 message refused"
    row_id, to = queue(api)
    start_agent(smtp)
    r = wait_for(lambda: row(database, row_id)["state"] == "failed" and row(database, row_id))
    assert r["attempts"] == "1" and "554" in r["last_error"]
    assert to_of(smtp, to) == []


def test_temporary_failures_fail_after_max_attempts(api, database, smtp, start_agent):
    smtp.always = "451 4.3.0 try again later"
    row_id, to = queue(api)
    start_agent(smtp, max_attempts=3, retry_base="100ms")
    r = wait_for(lambda: row(database, row_id)["state"] == "failed" and row(database, row_id))
    assert r["attempts"] == "3" and "451" in r["last_error"]
    assert to_of(smtp, to) == []


def test_wrong_password_keeps_the_mail_queued_until_a_reload_fixes_it(api, database, smtp,
                                                                       start_agent):
    row_id, to = queue(api)
    agent = start_agent(smtp, password="wrong", max_attempts=50)
    assert wait_for(lambda: row(database, row_id)["attempts"] not in ("0", "1"))
    r = row(database, row_id)
    assert r["state"] in ("pending", "sending") and r["last_error"]
    assert ("PLAIN", "mailer", False) in smtp.logins or ("LOGIN", "mailer", False) in smtp.logins
    # SIGHUP with the right password: the mailer notices the new config
    agent.sections["smtp"]["password"] = "mailer-password"
    agent.write_config()
    agent.reload()
    [m] = wait_for(lambda: to_of(smtp, to), timeout=30)
    assert m.login == "mailer"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_no_starttls_means_nothing_is_sent_and_no_password_goes_out(api, database,
                                                                   start_agent):
    with SmtpServer(tls=False) as plain:
        row_id, to = queue(api)
        start_agent(plain)
        assert wait_for(lambda: row(database, row_id)["attempts"] not in ("0", "1"))
        assert plain.logins == [] and to_of(plain, to) == []
        assert row(database, row_id)["state"] in ("pending", "sending")


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_stripped_starttls_keeps_the_login_and_says_why(api, database, start_agent):
    """L7: a server (or a man in the middle) that offers AUTH without STARTTLS gets neither
    the login nor the message, and last_error says so in words."""
    with SmtpServer(tls=False) as plain:
        row_id, to = queue(api)
        start_agent(plain)
        assert wait_for(lambda: row(database, row_id)["attempts"] not in ("0", "1"))
        assert plain.logins == [] and to_of(plain, to) == []
        r = row(database, row_id)
        assert r["state"] in ("pending", "sending", "failed")
        assert "offers no STARTTLS" in r["last_error"], r
        assert "login is not sent without TLS" in r["last_error"], r


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_plaintext_login_only_when_allowed_in_so_many_words(api, database, start_agent):
    """L7: starttls = off with a user and password fails --check (the password would go
    out in clear text wherever STARTTLS is missing or stripped) unless
    allow_plaintext_auth = yes; with it, the login is sent without TLS."""
    with SmtpServer(tls=False) as plain:
        section = {"url": plain.url, "user": "mailer", "password": "mailer-password",
                   "from": FROM, "starttls": "off"}
        a = Agent(database, websocket=False, sections={"smtp": section})
        rc, out = a.check()
        assert rc == 1 and "allow_plaintext_auth" in out and "clear text" in out, out
        a = Agent(database, websocket=False,
                  sections={"smtp": dict(section, allow_plaintext_auth="on")})
        rc, out = a.check()
        assert rc == 0, out
        a = Agent(database, websocket=False,
                  sections={"smtp": dict(section, allow_plaintext_auth="perhaps")})
        rc, out = a.check()
        assert rc == 1 and re.search(r"agent\.conf:\d+: \[smtp\] allow_plaintext_auth: "
                                     r"'perhaps' is not on/off", out), out
        row_id, to = queue(api)
        start_agent(plain, starttls="off", allow_plaintext_auth="yes")
        [m] = wait_for(lambda: to_of(plain, to))
        assert m.login == "mailer" and not m.tls
        assert ("PLAIN", "mailer", True) in plain.logins or ("LOGIN", "mailer", True) in plain.logins


def test_a_certificate_of_another_ca_is_refused(api, database, smtp, start_agent):
    other, _ = make_cert(harness.make_run_dir("otherca-"))
    row_id, to = queue(api)
    start_agent(smtp, ca=str(other))
    assert wait_for(lambda: row(database, row_id)["attempts"] not in ("0", "1"))
    assert smtp.logins == [] and to_of(smtp, to) == []
    assert "certificate" in row(database, row_id)["last_error"].lower()


# ------------------------------------------------------------------------------ crashes --

def test_kill9_mid_batch_then_restart_delivers_every_mail_exactly_once(api, database, smtp,
                                                                      start_agent):
    # e-mails earlier tests of this module left queued (a refused certificate's retries)
    # would be sent by this agent too: a kill could then interrupt one of those rather
    # than one of this test's, and the count of second attempts below would be short
    sql_exec(database, "UPDATE email_outbox SET state = 'failed' "
                       "WHERE state IN ('pending', 'sending');")
    tag = unique("batch")
    ids = [queue(api, to=f"{tag}-{i}@example.com")[0] for i in range(12)]
    smtp.delay = 1.5               # the kill lands well inside the wait for the 250
    agent = start_agent(smtp, timeout="3s")
    mine = lambda: [m for m in smtp.received() if m.rcpt_tos[0].startswith(tag)]  # noqa: E731
    kills = 0
    for target in (3, 7):
        assert wait_for(lambda: len(mine()) >= target, timeout=60)
        # a message is in flight: its DATA came, its 250 has not (each earlier kill left
        # one DATA that was never answered: counted out)
        assert wait_for(lambda: smtp.attempts - len(smtp.received()) > kills, timeout=10)
        time.sleep(0.1)
        agent.kill9()
        kills += 1
        agent.start()
    assert wait_for(lambda: len(mine()) >= len(ids), timeout=90), len(mine())
    time.sleep(1)
    got = mine()
    message_ids = [m.message_id for m in got]
    assert len(got) == len(ids) and len(set(message_ids)) == len(ids)
    assert sorted(int(MESSAGE_ID.match(x).group(1)) for x in message_ids) == sorted(ids)
    states = wait_for(lambda: {row(database, i)["state"] for i in ids} == {"sent"}
                      and {row(database, i)["state"] for i in ids}, timeout=30)
    assert states == {"sent"}
    # the interrupted messages took a second attempt
    assert sum(int(row(database, i)["attempts"]) for i in ids) >= len(ids) + kills


# ----------------------------------------------------------------------------- pruning --

def test_sent_mail_older_than_the_retention_is_pruned(api, database, smtp, start_agent):
    old = "2000-01-01 00:00:00.000"
    keys = {s: unique("old") for s in ("sent", "failed", "pending")}
    sql_exec(database, "".join(
        "INSERT INTO email_outbox (to_addr, subject, body_text, template, dedupe_key, state, "
        f"attempts, next_attempt_at, created_at) VALUES ('old@example.com', 's', 't', 'raw', "
        f"{sql_quote(k)}, {sql_quote(s)}, 1, '2999-01-01 00:00:00.000', '{old}');\n"
        for s, k in keys.items()))
    start_agent(smtp, agent={"outbox_keep_days": 30})
    gone = lambda k: database.count("SELECT COUNT(*) FROM email_outbox WHERE dedupe_key = ?",  # noqa: E731
                                    [k]) == 0
    assert wait_for(lambda: gone(keys["sent"]))
    assert not gone(keys["failed"]) and not gone(keys["pending"])


# ------------------------------------------- e-mails the module queues on its own --

from test_server import NODE, call, create, ok, sim, srv, wait_idle, world  # noqa: E402,F401


def test_create_and_password_change_queue_their_notices(srv, sim, world, database):
    body = create(srv, world)
    sid, password = body["id"], body["rootPassword"]
    wait_idle(srv, world, sid)
    email = database.scalar("SELECT email FROM users WHERE id = ?", [world.alice])
    [m] = wait_for(lambda: database.query(
        "SELECT to_addr, subject, body_text, template, state FROM email_outbox "
        "WHERE dedupe_key = ?", [f"server-created:{sid}"]))
    assert (m["to_addr"], m["template"], m["state"]) == (email, "server-created", "pending")
    ip = database.scalar("SELECT ip_address FROM vps WHERE id = ?", [sid])
    assert ip and ip in m["body_text"] and password not in m["body_text"] + m["subject"]
    # following the finished task again queues nothing more
    wait_idle(srv, world, sid)
    assert database.count("SELECT COUNT(*) FROM email_outbox WHERE dedupe_key = ?",
                          [f"server-created:{sid}"]) == 1

    vmid = 9100 + world.alice % 500
    sim.guest(vmid, type="qemu", node=NODE, name=f"vm{vmid}", status="running",
              conf={"agent": "1"}, agent_running=True)
    qid = world.api.create_vps(user_id=world.alice, node=NODE, vmid=vmid, kind="qemu",
                               status="running", name="mail-vm")["id"]
    new = ok(call(srv, "POST", f"/api/server/{qid}/password", world.tok["alice"]))["password"]
    world.secrets.append(new)
    [n] = database.query("SELECT to_addr, subject, body_text FROM email_outbox "
                         "WHERE template = 'root-password' AND to_addr = ? "
                         "AND subject LIKE ?", [email, "%mail-vm%"])
    assert new not in n["body_text"] + n["subject"] and "mail-vm" in n["body_text"]
    sim.control("DELETE", f"/guest/{vmid}")
