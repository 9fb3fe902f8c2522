"""Read-your-writes across the Apache nodes (docs/scaling.md: wsrep_sync_wait = 1 on every
Galera node, as galera.py starts them): what the billing site wrote through one Apache is
there at once for the next request through the other — no waiting for replication."""

from .conftest import figure, itc

ROUNDS = 40


def test_a_write_through_one_node_is_read_at_once_through_the_other(env):
    """Round after round, without any pause: a user synced through one Apache, a VPS for it
    synced through the other (its user_id must exist there: 422 otherwise), the user's
    password set through the first and its login through the second (401 otherwise)."""
    refused = []
    for r in range(ROUNDS):
        first, second = ("A", "B") if r % 2 == 0 else ("B", "A")
        u = itc.create_user(env.api(first))
        v = env.api(second).vps("create", itc.new_vps(user_id=u["id"], hypervisor="kvm"))
        if v.status_code != 201:
            refused.append((r, "vps create", second, v.status_code, v.text))
        pw = f"password-{itc.unique('pw')}"
        p = env.api(first).user("update", {"id": u["id"], "password": pw})
        assert p.status_code == 200, p.text
        login = itc.Api(env.apache(second)).post("/api/auth/login", key=None,
                                                 json={"email": u["email"], "password": pw})
        if login.status_code != 200:
            refused.append((r, "login", second, login.status_code, login.text))
    figure("read-your-writes across nodes: refused of rounds", f"{len(refused)} of {ROUNDS}")
    assert not refused, refused
