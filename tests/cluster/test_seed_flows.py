"""Issue 18, 1: the seed clients' flows pass against either Apache node of the cluster.

tests/integration/test_seeds_verbatim.py runs the four seeds as written (seed 000's Node
snippet, seed 001/002's curl lines, seed 003's calls, Socket.IO events, the e-mails and the
webhooks they cause) against the demo. Its test functions take a "demo" object that only
tells where things are (base URL, sync key, customer, simulator, mail folder, webhook log);
here they run unchanged against Apache A (Galera node 1, live push by agent 1) and Apache B
(node 2, agent 2), one after the other, with the seed's customer (user 5) and its
record web-server-01 that the agents adopt.
"""

import pytest

import test_seeds_verbatim as sv   # tests/integration (on sys.path through conftest)

from .conftest import CUSTOMER_ID, CUSTOMER_PASSWORD


class SeedTarget:
    """What test_seeds_verbatim's tests read of their `demo`, for one Apache node."""

    def __init__(self, env, node, rundir):
        a = env.apache(node)
        self.port = a.port
        self.local = f"http://localhost:{a.port}"      # the seeds' examples talk to localhost
        self.base_url = a.url("").rstrip("/")
        self.api = self.local + "/api"
        self.key = env.sync_key
        self.rundir = rundir
        self.sim = env.sim
        self.email, self.password, self.customer_id = ("demo@ospab.local", CUSTOMER_PASSWORD,
                                                       CUSTOMER_ID)
        self.maildir = env.maildir
        self.hooks_log = env.hooks_log
        self.error_log = a.error_log

    def url(self, path):
        return self.local + path


@pytest.fixture(scope="module", params=["A", "B"])
def target(request, env):
    """The seeds' flow against one node; its state (test_seeds_verbatim.STATE) kept for the
    node's steps, and what the integration suite keeps there restored afterwards. The seed 000
    record goes afterwards and its guest is renamed, so that the next node's flow finds the one
    guest named web-server-01 that its own snippet makes (the guest stays: its vmid taken,
    the next node's container gets another number, so its e-mails name another ctNNN)."""
    import harness
    saved = dict(sv.STATE)
    sv.STATE.clear()
    yield SeedTarget(env, request.param,
                     harness.make_run_dir(f"seeds-{request.param}-", base=env.base))
    vid, vmid = sv.STATE.get("vps_id"), sv.STATE.get("guest_vmid")
    sv.STATE.clear()
    sv.STATE.update(saved)
    if vid:
        env.api("A").vps("delete", {"id": vid, "keep_guest": True})
    if vmid:
        env.sim.guest(vmid, hostname=f"seed000-done-{request.param}")


def test_seed_000_node_snippet(target):
    sv.test_seed_000_node_snippet_creates_and_updates_web_server_01(target)


def test_seed_001_curl_lines(target):
    sv.test_seed_001_curl_lines_create_and_list(target)


def test_seed_002_curl_create(target):
    sv.test_seed_002_curl_create_answers_as_documented(target)


def test_seed_000_record_adopted_and_powered(target):
    sv.test_seed_000_record_is_adopted_and_its_customer_powers_it(target)


def test_seed_003_server_management(target):
    sv.test_seed_003_server_management_on_a_new_container(target)


def test_mails_of_the_flow(target):
    sv.test_demo_mail_folder_fills(target)


def test_webhooks_of_the_flow(target):
    sv.test_demo_webhook_receiver_logs_signed_deliveries(target)
