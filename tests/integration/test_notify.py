"""POST /api/notify (docs/sync-api.md): the main site queues its own e-mails in the
panel's outbox (docs/agent.md, "E-mail"). Each test on SQLite and on MariaDB."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import SEED_USER_ID, unique

TEMPLATE_DATA = {
    "server-created": {"serverName": "web-1", "ipAddress": "203.0.113.7", "os": "Debian 12",
                       "tariff": "Start"},
    "alert": {"serverId": 12, "serverName": "web-1", "type": "cpu", "value": 97.5,
              "level": "critical", "message": "3 samples above 90%"},
    "password-reset": {"resetUrl": "https://ospab.example/reset?t=abc", "expiresInMinutes": 30},
    "root-password": {"serverName": "web-1"},
    "payment-reminder": {"amount": 499, "dueDate": "2026-12-01", "serverName": "web-1",
                         "payUrl": "https://ospab.example/pay/1"},
    "ticket-reply": {"ticketId": 77, "ticketSubject": "Не работает SSH",
                     "message": "Добрый день!\nПерезапустили sshd.\n\nПоддержка"},
    "raw": {"subject": "Плановые работы", "text": "Завтра с 02:00 до 03:00."},
}


def rows(database, row_id):
    return database.query("SELECT to_addr, subject, body_text, template, dedupe_key, state, "
                          "attempts FROM email_outbox WHERE id = ?", [row_id])


def outbox_count(database):
    return database.count("SELECT COUNT(*) FROM email_outbox")


def queued(r):
    assert r.status_code == 202, (r.status_code, r.text)
    body = r.json()
    assert body["status"] == "queued" and isinstance(body["id"], int), body
    return body


def invalid(r, *fields):
    assert r.status_code == 400, (r.status_code, r.text)
    body = r.json()
    assert body["error"].startswith("invalid notice: "), body
    assert set(fields) <= set(body.get("fields", {})), body
    return body


def user_email(database, user_id=SEED_USER_ID):
    return database.scalar("SELECT email FROM users WHERE id = ?", [user_id])


# ------------------------------------------------------------------------ queueing --

def test_raw_notice_is_queued_with_its_audit_row(api, database):
    to = unique("raw") + "@example.com"
    body = queued(api.post("/api/notify", json={"to": to, "subject": "Привет, мир",
                                                "text": "строка 1\r\nстрока 2"}))
    [row] = rows(database, body["id"])
    assert row["to_addr"] == to and row["template"] == "raw"
    assert row["subject"] == "Привет, мир"
    assert row["body_text"] == "строка 1\nстрока 2"          # one kind of line end
    assert (row["state"], row["attempts"], row["dedupe_key"]) == ("pending", "0", None)
    [audit] = database.query("SELECT actor_type, action, target_type, details FROM audit_log "
                             "WHERE action = 'notify.queue' AND target_id = ?",
                             [str(body["id"])])
    assert (audit["actor_type"], audit["target_type"]) == ("sync", "email")
    assert "строка" not in audit["details"]                     # no message text in the log


@pytest.mark.parametrize("template", sorted(TEMPLATE_DATA))
def test_every_template_renders_for_a_user(api, database, template):
    data = TEMPLATE_DATA[template]
    req = {"userId": SEED_USER_ID, "template": template, "data": data}
    body = queued(api.post("/api/notify", json=req))
    [row] = rows(database, body["id"])
    assert row["to_addr"] == user_email(database)
    assert row["template"] == template
    assert row["subject"] and "\n" not in row["subject"]
    for key, value in data.items():
        # the alert's type and level come out in Russian words
        if isinstance(value, str) and template != "raw" and key not in ("type", "level"):
            assert value in row["body_text"] or value in row["subject"], (value, row)


def test_user_name_greets_and_data_name_wins(api, database):
    name = database.scalar("SELECT name FROM users WHERE id = ?", [SEED_USER_ID])
    body = queued(api.post("/api/notify", json={"userId": SEED_USER_ID,
                                                "template": "payment-reminder",
                                                "data": {"amount": "1 200,50"}}))
    [row] = rows(database, body["id"])
    if name:
        assert f"Здравствуйте, {name}!" in row["body_text"]
    assert "1 200,50 ₽" in row["body_text"]
    body = queued(api.post("/api/notify", json={"userId": SEED_USER_ID,
                                                "template": "payment-reminder",
                                                "data": {"amount": 5, "name": "Анна"}}))
    assert "Здравствуйте, Анна!" in rows(database, body["id"])[0]["body_text"]


def test_server_created_never_carries_a_password(api, database):
    data = dict(TEMPLATE_DATA["server-created"], rootPassword="Sup3rSecretPw",
                password="Sup3rSecretPw")
    body = queued(api.post("/api/notify", json={"to": "owner@example.com",
                                                "template": "server-created", "data": data}))
    [row] = rows(database, body["id"])
    assert "Sup3rSecretPw" not in row["body_text"] + row["subject"]
    assert "203.0.113.7" in row["body_text"] and "Debian 12" in row["body_text"]


def test_alert_subject_names_level_server_and_value(api, database):
    body = queued(api.post("/api/notify", json={"to": "ops@example.com", "template": "alert",
                                                "data": TEMPLATE_DATA["alert"]}))
    [row] = rows(database, body["id"])
    assert row["subject"] == "[критично] Сервер «web-1»: загрузка процессора 97.5%"


# ---------------------------------------------------------------------- validation --

@pytest.mark.parametrize("req, fields", [
    ({"subject": "s", "text": "t"}, ["to"]),
    ({"to": "a@example.com", "userId": SEED_USER_ID, "subject": "s", "text": "t"}, ["to"]),
    ({"to": "a@example.com"}, ["subject", "text"]),
    ({"to": "a@example.com", "template": "nope"}, ["template"]),
    ({"to": "a@example.com", "template": "alert", "data": []}, ["data"]),
    ({"to": "a@example.com", "template": "alert", "data": {}},
     ["data.serverName", "data.type", "data.value"]),
    ({"to": "a@example.com", "template": "alert", "subject": "x", "data": {}}, ["subject"]),
    ({"to": "a@example.com", "subject": "s", "text": "t", "cc": "b@example.com"}, ["cc"]),
    ({"userId": "5", "subject": "s", "text": "t"}, ["userId"]),
    ({"userId": 0, "subject": "s", "text": "t"}, ["userId"]),
    ({"to": "a@example.com", "subject": "s" * 201, "text": "t"}, ["subject"]),
    ({"to": "a@example.com", "subject": "s", "text": "t", "key": ""}, ["key"]),
    ({"to": "a@example.com", "subject": "s", "text": "t", "key": "k" * 121}, ["key"]),
    ({"to": "a@example.com", "template": "password-reset",
      "data": {"resetUrl": "javascript:alert(1)"}}, ["data.resetUrl"]),
    ({"to": "a@example.com", "template": "ticket-reply",
      "data": {"ticketId": 1, "message": "x" * 20001}}, ["data.message"]),
])
def test_invalid_notices_write_nothing(api, database, req, fields):
    before = outbox_count(database)
    invalid(api.post("/api/notify", json=req), *fields)
    assert outbox_count(database) == before


@pytest.mark.parametrize("req, field", [
    ({"to": "victim@example.com\r\nBcc: all@example.com", "subject": "s", "text": "t"}, "to"),
    ({"to": "victim@example.com\nBcc: all@example.com", "subject": "s", "text": "t"}, "to"),
    ({"to": "Victim <victim@example.com>", "subject": "s", "text": "t"}, "to"),
    ({"to": "a@example.com, b@example.com", "subject": "s", "text": "t"}, "to"),
    ({"to": "a@example.com", "subject": "hi\r\nBcc: all@example.com", "text": "t"}, "subject"),
    ({"to": "a@example.com", "subject": "hi\rBcc: all@example.com", "text": "t"}, "subject"),
    ({"to": "a@example.com", "subject": "hi\u0085there", "text": "t"}, "subject"),
    ({"to": "a@example.com", "template": "root-password",
      "data": {"serverName": "web\r\nBcc: all@example.com"}}, "data.serverName"),
    ({"to": "a@example.com", "template": "ticket-reply",
      "data": {"ticketId": 1, "ticketSubject": "x\nBcc: y@example.com", "message": "m"}},
     "data.ticketSubject"),
    ({"to": "a@example.com", "subject": "s", "text": "bell \u0007 in text"}, "text"),
])
def test_header_injection_is_refused_at_queue_time(api, database, req, field):
    before = outbox_count(database)
    invalid(api.post("/api/notify", json=req), field)
    assert outbox_count(database) == before


def test_unknown_user_is_404(api, database):
    before = outbox_count(database)
    r = api.post("/api/notify", json={"userId": 987654321, "subject": "s", "text": "t"})
    assert r.status_code == 404 and r.json() == {"error": "user not found"}
    assert outbox_count(database) == before


def test_wrong_key_is_refused_before_the_body_is_read(api, database):
    before = outbox_count(database)
    r = api.post("/api/notify", json={"to": "a@example.com", "subject": "s", "text": "t"},
                 key="0" * 64)
    assert r.status_code == 401 and "X-API-Key" in r.headers["WWW-Authenticate"]
    assert outbox_count(database) == before


# ------------------------------------------------------------------------- dedupe --

def test_same_key_queues_once(api, database):
    key = unique("reminder")
    req = {"userId": SEED_USER_ID, "template": "payment-reminder", "data": {"amount": 10},
           "key": key}
    first = queued(api.post("/api/notify", json=req))
    again = queued(api.post("/api/notify", json=req))
    assert again == {"status": "queued", "id": first["id"], "duplicate": True}
    assert "duplicate" not in first
    assert database.count("SELECT COUNT(*) FROM email_outbox WHERE dedupe_key = ?",
                          ["notify:" + key]) == 1
    assert database.count("SELECT COUNT(*) FROM audit_log WHERE action = 'notify.queue' "
                          "AND target_id = ?", [str(first["id"])]) == 1


def test_idempotency_key_header_is_the_key(api, database):
    key = unique("idem")
    req = {"to": "a@example.com", "subject": "s", "text": "t"}
    first = queued(api.post("/api/notify", json=req, headers={"Idempotency-Key": key}))
    again = queued(api.post("/api/notify", json=dict(req, key=key)))
    assert again["id"] == first["id"] and again["duplicate"] is True
    invalid(api.post("/api/notify", json=dict(req, key=key + "x"),
                     headers={"Idempotency-Key": key}), "key")


def test_concurrent_requests_with_one_key_make_one_row(api, database):
    key = unique("race")
    req = {"to": "a@example.com", "subject": "s", "text": "t", "key": key}
    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(lambda _: api.post("/api/notify", json=req), range(16)))
    ids = {queued(r)["id"] for r in results}
    assert len(ids) == 1
    assert sum(1 for r in results if not r.json().get("duplicate")) == 1
    assert database.count("SELECT COUNT(*) FROM email_outbox WHERE dedupe_key = ?",
                          ["notify:" + key]) == 1
