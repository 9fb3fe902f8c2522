"""E-mails and webhooks queued through both Apache nodes at a brisk pace while both agents
send them: each arrives exactly once. Nothing is killed here, so docs/agent.md allows no
duplicate at all; on Galera the agents' own transactions (claim, record the outcome) meet
write sets of the other nodes — a record that fails on such a conflict must be retried,
not left for a second delivery after its lease."""

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from .conftest import figure, itc, wait_for

N_MAIL = 150
N_EVENTS = 600
THREADS = 12


def test_mail_and_webhooks_under_load_arrive_once(env, customer):
    tag = itc.unique("load")
    users = [customer.id, itc.create_user(env.api("A"))["id"]]
    records = [env.api("AB"[i % 2]).create_vps(user_id=customer.id, hypervisor="kvm",
                                               name=f"{tag}-{i}")["id"] for i in range(6)]
    for vid in records:
        env.replicated("SELECT COUNT(*) FROM vps WHERE id = ?", [vid])
    mails = {}

    def mail(i):
        to = f"{tag}-{i}@example.com"
        r = env.api("AB"[i % 2]).post("/api/notify", json={"to": to, "subject": "load",
                                                            "text": to})
        assert r.status_code == 202, r.text
        mails[int(r.json()["id"])] = to

    def event(i):
        # a record handed to the other user and back: a server.owner event each time it
        # changes hands (two updates of one record at once may leave one a no-op)
        vid = records[i % len(records)]
        r = env.api("AB"[i % 2]).vps("update", {"id": vid, "user_id": users[(i // 6) % 2 == 0]})
        assert r.status_code == 200, r.text

    t0 = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda f: f[0](f[1]), [(mail, i) for i in range(N_MAIL)]
                      + [(event, i) for i in range(N_EVENTS)]))
    ours = {int(r["id"]) for r in env.db.query(
        "SELECT id, payload FROM webhook_outbox WHERE event = 'server.owner'")
        if any(f'"serverId":{vid},' in r["payload"] for vid in records)}
    wait_for(lambda: {m.message_id for m in env.smtp.received()
                      if m.rcpt_tos and m.rcpt_tos[0].startswith(tag)}.__len__() == N_MAIL,
             timeout=90, what="every e-mail at the SMTP sink")
    wait_for(lambda: ours <= set(env.hooks.ids()), timeout=90,
             what="every event at the webhook receiver")
    figure("outbox under load: e-mails + events delivered, s", time.monotonic() - t0)
    # every row recorded as done: a row whose outcome could not be recorded stays 'sending'
    # until its lease ends (timeout + 10 s) and is then sent a second time
    ids = ",".join(map(str, sorted(ours)))
    wait_for(lambda: env.db.count(f"SELECT COUNT(*) FROM webhook_outbox WHERE id IN ({ids}) "
                                  "AND state <> 'delivered'") == 0,
             timeout=90, what="every event row recorded as delivered")
    mids = ",".join(map(str, sorted(mails)))
    wait_for(lambda: env.db.count(f"SELECT COUNT(*) FROM email_outbox WHERE id IN ({mids}) "
                                  "AND state <> 'sent'") == 0,
             timeout=90, what="every e-mail row recorded as sent")
    time.sleep(0.5)
    got_mail = [m.message_id for m in env.smtp.received()
                if m.rcpt_tos and m.rcpt_tos[0].startswith(tag)]
    got_events = [i for i in env.hooks.ids() if i in ours]
    dup_mail = {k: n for k, n in Counter(got_mail).items() if n > 1}
    dup_events = {k: n for k, n in Counter(got_events).items() if n > 1}
    figure("outbox under load: e-mails / events / duplicates",
           f"{len(set(got_mail))} / {len(set(got_events))} / {len(dup_mail) + len(dup_events)}")
    assert len(set(got_mail)) == N_MAIL and len(ours) >= N_EVENTS // 2
    assert not dup_mail, ("e-mails delivered twice", dup_mail)
    assert not dup_events, ("events delivered twice", dup_events)
