"""pytest fixtures for the cluster tests (issue 18): the panel as it runs for availability —
a three-node MariaDB Galera cluster, two Apache httpd with mod_ospab on different database
nodes, two ospab-agents sharing two Proxmox clusters (tests/pvesim) by their leases, an
SMTP sink and a webhook receiver.

    Galera node 1 ── Apache A (:port)  ── /socket.io/ → agent 1
                 └── agent 1 (websocket, smtp, webhook, both [cluster] sections)
    Galera node 2 ── Apache B (:port)  ── /socket.io/ → agent 2
    Galera node 3 ── agent 2

Everything is started once per session (`env`, a ClusterEnv) and reused: the tests name
their rows uniquely, so counting never depends on other tests. Tests that break a part on
purpose (kill -9 a database node or an agent) restore it; every test starts with a healthy
setup (`healthy`, autouse): three Synced nodes, both agents running.

The modules of tests/integration (harness, agentharness, smtpserver, webhookreceiver and the
integration conftest's helpers) are imported, not copied. This directory is a package
(__init__.py) so that its conftest and test modules do not take the names of
tests/integration's when both directories run in one pytest session (scripts/test).

Log guard: a test fails if an Apache error.log or an agent log gained a line at warn level or
worse that the test did not allow: `@pytest.mark.allow_log(regex)` / the `allow_log`
fixture for Apache, `@pytest.mark.allow_agent_log(regex)` / `allow_agent_log` for agents
(matched against "agent N (node M): <line>", so a pattern can name the agent).
"""

import contextlib
import os
import re
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
INTEGRATION = HERE.parent / "integration"
for p in (HERE.parent / "sshd", HERE.parent / "pvesim", INTEGRATION):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import harness  # noqa: E402
import conftest as itc  # noqa: E402  (tests/integration/conftest.py: Api, helpers, RUN_BASE)
from agentharness import AGENT_BIN, BAD_LINE, Agent, sim_cluster  # noqa: E402
from smtpserver import SmtpServer  # noqa: E402
from webhookreceiver import Receiver  # noqa: E402
from .galera import GaleraCluster, fixed_port, pids_naming  # noqa: E402
import test_server  # noqa: E402  (pve_conf, ssh_conf, call, ok)
import test_agent  # noqa: E402  (proxy_conf)

SIM_NODE = "pve1"            # the Apaches' Proxmox (cluster "alpha"); seed 000-003 name it
SIM2_NODE = "pve7"           # the second Proxmox cluster ("beta"), polled by the agents only
TIME_SCALE = 0.05
POLL = "1s"                  # agents' poll interval: a lease lasts 3 polls (docs/agent.md)
LEASE_POLLS = 3
WEBHOOK_SECRET = "whsec-cluster-" + "0123456789abcdef" * 3
SMTP_USER, SMTP_PASSWORD = "mailer", "mailer-password"
MAIL_FROM = "ospab panel <noreply@ospab.test>"
CUSTOMER_ID = 5              # the demo seed's customer (demo@ospab.local)
CUSTOMER_PASSWORD = "cluster-customer-password"
DB_NAME = "ospab"
APACHE_DB_NODE = {"A": 1, "B": 2}
AGENT_DB_NODE = (1, 3)       # agent 1, agent 2
WAIT = 30.0


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "allow_log(*regex): error.log lines (warn or worse) this test may cause")
    config.addinivalue_line(
        "markers", "allow_agent_log(*regex): agent log lines (warn or error) this test may "
                   "cause")


# What the tests measured (start and rejoin times, takeover, retries, ...), printed at the end
# of the run (pytest_terminal_summary) whether the tests pass or not.
FIGURES = {}


def figure(name, value):
    FIGURES[name] = value


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.write_sep("-", "cluster figures (tests/cluster)")
        for k, v in FIGURES.items():
            terminalreporter.write_line(f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}")


def together(*calls):
    """Runs the calls at the same moment (threads released by one barrier); their results,
    an exception standing for a call that raised."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, fn):
        barrier.wait()
        try:
            results[i] = fn()
        except Exception as e:          # noqa: BLE001 (reported by the caller)
            results[i] = e

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def wait_for(fn, timeout=WAIT, interval=0.05, what="condition"):
    """fn() until truthy; that value (test_agent.py's, with this suite's wait)."""
    return test_agent.wait_for(fn, timeout=timeout, interval=interval, what=what)


# ------------------------------------------------------------------ the setup --

class ClusterEnv:
    """Everything the session started. Attributes:

    galera                  the GaleraCluster
    dbs[i]                  MariadbDatabase of the panel's database on node i (1-3)
    db                      dbs[1]
    sim, sim2               the two Proxmox simulators (clusters alpha and beta)
    smtp, hooks             the SMTP sink (maildir) and the webhook receiver (log file)
    apaches["A"/"B"]        Apache on node 1 / node 2
    agents[0], agents[1]    agent 1 (node 1, live push behind Apache A) / agent 2 (node 3,
                            behind Apache B)
    """

    def __init__(self, stack):
        self.stack = stack
        self.base = harness.make_run_dir("cluster-")

    # -- start --------------------------------------------------------------------
    def start(self):
        st = self.stack
        self.galera = GaleraCluster(self.base / "galera")
        st.callback(self.galera.stop)
        self.galera.start()
        figure("Galera start (3 nodes Synced), s", self.galera.start_seconds)
        self.db = self.galera.create_database(DB_NAME)
        harness.prepare_database(self.db)          # migrations and demo seed, once, via node 1
        self.dbs = {i: self.galera.database(i, DB_NAME) for i in (1, 2, 3)}

        self.sim = self._sim("pvesim-alpha-", SIM_NODE)
        self.sim2 = self._sim("pvesim-beta-", SIM2_NODE)
        self.sshd = self._sshd()

        self.maildir = self.base / "mail"
        self.maildir.mkdir(mode=0o755)
        self.smtp = SmtpServer(users={SMTP_USER: SMTP_PASSWORD}, maildir=self.maildir,
                               rundir=harness.make_run_dir("smtp-", base=self.base)).start()
        st.callback(self.smtp.stop)
        self.hooks_log = self.base / "webhooks.log"
        self.hooks = Receiver(secret=WEBHOOK_SECRET, log_file=self.hooks_log).start()
        st.callback(self.hooks.stop)

        self.sync_key = harness.secrets.token_hex(32)
        self.jwt_secret = harness.secrets.token_hex(32)
        # fixed for the session (Apache proxies to them; a killed agent restarts on its
        # own): outside the range the OS hands out to outgoing connections
        self.agent_ports = [fixed_port(), fixed_port()]
        self.apaches = {}
        for name, agent_port in (("A", self.agent_ports[0]), ("B", self.agent_ports[1])):
            a = harness.Apache(self.dbs[APACHE_DB_NODE[name]], sync_key=self.sync_key,
                               jwt_secret=self.jwt_secret,
                               rundir=harness.make_run_dir(f"httpd-{name}-", base=self.base),
                               extra_conf=self.apache_conf(agent_port))
            self.apaches[name] = a
            st.callback(a.stop)
            itc._started(a)
        self.agents = []
        self.agent_metrics_ports = [fixed_port(), fixed_port()]
        for i, (node, port) in enumerate(zip(AGENT_DB_NODE, self.agent_ports), 1):
            ag = Agent(self.agent_database(i, node), jwt_secret=self.jwt_secret,
                       clusters=[sim_cluster(self.sim, "alpha", node=SIM_NODE),
                                 sim_cluster(self.sim2, "beta", node=SIM2_NODE)],
                       rundir=harness.make_run_dir(f"agent{i}-", base=self.base),
                       sections=self.agent_sections(port, self.agent_metrics_ports[i - 1]))
            ag.name = f"agent {i} (node {node})"
            self.agents.append(ag)
            st.callback(self._stop_agent, ag)
            ag.start()
        # the seed's customer logs in with a password (seed 003's flow)
        r = self.api("A").user("update", {"id": CUSTOMER_ID, "password": CUSTOMER_PASSWORD})
        assert r.status_code == 200, r.text
        return self

    def agent_database(self, i, node):
        """The panel's database on `node` for agent i, as a database user of its own
        (ospab_agent<i>, the same rights as the module's): its connections can be told
        apart from Apache's in the node's process list (agent_connected)."""
        user, password = f"ospab_agent{i}", harness.secrets.token_hex(16)
        for host in ("localhost", "127.0.0.1"):
            self.galera.node(1).sql(
                f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}';\n"
                f"GRANT ALL PRIVILEGES ON `{DB_NAME}`.* TO '{user}'@'{host}';\n")
        return AgentDatabase(self.galera.node(node), DB_NAME, user, password)

    def agent_connected(self, ag):
        """Until each of the agent's workers (monitor, mailer, webhooks: three) has its
        database connection (after its node came back, they reconnect with a back-off)."""
        user = ag.db.user
        wait_for(lambda: ag.db.server.running() and ag.db.count(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?", [user]) >= 3,
            timeout=90, interval=0.2, what=f"{ag.name}'s database connections")

    def _sim(self, prefix, node):
        """tests/pvesim (as the integration conftest's simulated() starts it), its state in
        this setup's directory: everything the setup runs names a path below it."""
        from simctl import PveSim
        sim = PveSim(str(harness.make_run_dir(prefix, base=self.base)), nodes=(node,),
                     time_scale=TIME_SCALE, resources_lag=0.2, auth_fail_delay=0.2)
        sim.start()
        self.stack.callback(sim.stop)
        return sim

    def _sshd(self):
        import sshd as sshdmod
        sshdmod.reap_orphans(harness.RUN_BASE)
        n = sshdmod.Sshd(harness.make_run_dir("sshd-", base=self.base) / "node",
                         control=self.sim.info["control"], ca=self.sim.ca, node=SIM_NODE)
        n.start()
        self.stack.callback(n.stop)
        return n

    def apache_conf(self, agent_port):
        mods = harness.APACHE_MODULES
        return (test_server.pve_conf(self.sim) + test_server.ssh_conf(self.sshd)
                + test_agent.proxy_conf(agent_port)
                + ["OspabServerQuota 0",
                   # a worker budget for the live push (conf/ospab.conf), as the demo has
                   '<Location "/socket.io/">', "  OspabLivePush workers=24 per-address=24",
                   "</Location>",
                   f"LoadModule authz_host_module {mods}/mod_authz_host.so",
                   '<Location "/metrics">', "  OspabMetrics On", "  Require ip 127.0.0.1",
                   "</Location>"])

    def agent_sections(self, port, metrics_port):
        return {
            "agent": {"poll_interval": POLL, "task_interval": "500ms", "live_interval": "1s",
                      "event_interval": "200ms", "backoff_max": "2s", "retry_max": "2s",
                      "metrics_listen": f"127.0.0.1:{metrics_port}"},
            "websocket": {"listen": f"127.0.0.1:{port}"},
            "smtp": {"url": self.smtp.url, "user": SMTP_USER, "password": SMTP_PASSWORD,
                     "from": MAIL_FROM, "ca": self.smtp.ca, "timeout": "3s",
                     "interval": "200ms", "retry_base": "500ms", "max_attempts": 10},
            "webhook": {"url": self.hooks.url, "secret": WEBHOOK_SECRET, "timeout": "3s",
                        "interval": "200ms", "retry_base": "500ms", "max_attempts": 10},
        }

    @staticmethod
    def _stop_agent(ag):
        if ag.running():
            ag.stop()

    # -- access -------------------------------------------------------------------
    def apache(self, name):
        return self.apaches[name]

    def api(self, name):
        return itc.Api(self.apaches[name])

    def other(self, name):
        return "B" if name == "A" else "A"

    def agent_of(self, name):
        """The agent behind an Apache's /socket.io/."""
        return self.agents[0 if name == "A" else 1]

    def replicated(self, sql, args=(), nodes=(1, 2, 3), timeout=WAIT):
        """Until `sql` (a COUNT) is non-zero on every node: a row written through one node
        is there on the others (Galera applies write sets asynchronously after the commit,
        wsrep_sync_wait is left at 0 as in a default installation)."""
        return wait_for(lambda: all(self.dbs[n].count(sql, args) for n in nodes),
                        timeout=timeout, what=f"replication of {sql} {args}")

    def metric(self, name, family, labels=None):
        """A counter's value from Apache `name`'s /metrics (None when it has no such
        family): the sum over its samples, or the sample with these labels."""
        return self._metric(self.apaches[name].url("/metrics"), family, labels)

    def agent_metric(self, i, family, labels=None):
        """The same from agent i's (0, 1) metrics listener; None while it is down."""
        return self._metric(f"http://127.0.0.1:{self.agent_metrics_ports[i]}/metrics",
                            family, labels)

    @staticmethod
    def _metric(url, family, labels):
        import requests
        try:
            r = requests.get(url, timeout=10)
        except requests.ConnectionError:
            return None
        if r.status_code != 200:
            return None
        total, seen = 0.0, False
        for line in r.text.splitlines():
            m = re.match(rf"^{re.escape(family)}(\{{[^}}]*\}})?\s+(\S+)$", line)
            if m and (labels is None or labels in (m.group(1) or "")):
                total += float(m.group(2))
                seen = True
        return total if seen else None

    # -- health -------------------------------------------------------------------
    def heal(self):
        """Every Galera node running and Synced, both agents running (a test that killed
        one and failed before restoring it leaves it so)."""
        restarted = False
        for n in self.galera.nodes:
            if not n.running():
                n.start()
                restarted = True
        self.galera.wait_synced(timeout=120)
        for ag in self.agents:
            if not ag.running():
                ag.start()
                restarted = True
            self.agent_connected(ag)
        return restarted


class AgentDatabase(harness.MariadbDatabase):
    """The panel's database reached as another MariaDB user (an agent's own)."""

    def __init__(self, server, name, user, password):
        super().__init__(server, name)
        self.user, self.password = user, password

    @property
    def params(self):
        return (f"sock={self.server.socket} user={self.user} pass={self.password} "
                f"dbname={self.name}")


@pytest.fixture(scope="session")
def env():
    with contextlib.ExitStack() as stack:
        e = ClusterEnv(stack)
        try:
            e.start()
        except BaseException:
            print(f"\ncluster setup failed; logs in {e.base}")
            raise
        yield e
        figure("agent transactions run again after a write conflict (agents 1 / 2, since "
               "their last start)",
               " / ".join(str(int(v)) if v is not None else "?" for v in
                          (e.agent_metric(i, "ospab_agent_db_conflict_retries_total")
                           for i in (0, 1))))


def pytest_sessionstart(session):
    """As tests/integration's: the build must be there, and what a killed run left behind
    below the run base (daemons included) is removed first."""
    missing = [str(p) for p in (harness.MOD_OSPAB, harness.OSPAB_ADMIN, AGENT_BIN)
               if not Path(p).exists()]
    if missing:
        raise pytest.UsageError("not built: " + ", ".join(missing) + " (run scripts/build)")
    _reap_clusters(harness.RUN_BASE)
    harness.reap_run_base(harness.RUN_BASE)


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 0 and not os.environ.get("OSPAB_KEEP_RUN"):
        _reap_clusters(harness.RUN_BASE)
        harness.reap_run_base(harness.RUN_BASE)
    elif harness.RUN_BASE.exists():
        print(f"\nlogs and databases of this run: {harness.RUN_BASE}")


def _reap_clusters(base):
    """What a killed run left running below base/cluster-* — mariadbd (as mysql), an SST's
    rsync daemon, Apache, the agents (as www-data), the simulators, sshd — by pid: every
    process the setup starts names a path below its directory (found whether or not the
    directory is still there). harness.reap_run_base knows Apache and MariaDB one directory
    level down only."""
    harness.kill_pids(pids_naming(f"{Path(base)}/cluster-"))


@pytest.fixture(autouse=True)
def healthy(env):
    env.heal()
    yield


# --------------------------------------------------------------------- log guard --

@pytest.fixture(autouse=True)
def _log_guard(request, env):
    """Where every Apache error.log and agent log stood before the test; checked in
    pytest_runtest_makereport (so that it fails the test, not its teardown)."""
    node = request.node
    node._ospab_allow = [a for m in node.iter_markers("allow_log") for a in m.args]
    node._agent_allow = [a for m in node.iter_markers("allow_agent_log") for a in m.args]
    node._ospab_env = env
    node._ospab_offsets = {id(a): a.error_log_size() for a in env.apaches.values()}
    node._agent_offsets = {id(ag): len(ag.log_text()) for ag in env.agents}
    yield


@pytest.fixture
def allow_log(request):
    """allow_log(regex, ...): Apache error.log lines this test is expected to cause."""
    return lambda *patterns: request.node._ospab_allow.extend(patterns)


@pytest.fixture
def allow_agent_log(request):
    """allow_agent_log(regex, ...): agent log lines this test is expected to cause."""
    return lambda *patterns: request.node._agent_allow.extend(patterns)


def _new_agent_lines(ag, start):
    return ag.log_text()[start:].splitlines()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not hasattr(item, "_ospab_offsets"):
        return
    env = item._ospab_env
    problems, context = harness.new_log_lines(env.apaches.values(), item._ospab_offsets,
                                              item._ospab_allow)
    for ag in env.agents:
        lines = _new_agent_lines(ag, item._agent_offsets.get(id(ag), 0))
        # a pattern may name the agent: it is matched against "agent 2 (node 3): <line>"
        bad = [l for l in lines if BAD_LINE.search(l)
               and not any(re.search(p, f"{ag.name}: {l}") for p in item._agent_allow)]
        if bad:
            problems.append(f"{ag.name} {ag.log_file}:\n  " + "\n  ".join(bad))
        if lines:
            context.append(f"{ag.name} {ag.log_file}:\n" + "\n".join(lines[-60:]))
        for secret in (env.jwt_secret, env.sim.token.split("=", 1)[1], SMTP_PASSWORD,
                       WEBHOOK_SECRET):
            if any(secret in l for l in lines):
                problems.append(f"{ag.name}: a secret in its log")
    harness.report_log_lines(rep, problems, context, "Apache and agent logs (this test)",
                             "the logs (allow them with allow_log / allow_agent_log")


# ------------------------------------------------------------------- customers --

class Customer:
    """A panel user of its own (created through Apache A) and its tokens, valid on both
    Apaches (one JWT secret)."""

    def __init__(self, env, password=None):
        self.env = env
        u = itc.create_user(env.api("A"), password=password)
        self.id = u["id"]
        self.email = u["email"]
        self.token = itc.access_token(env.apache("A"), self.id)
        env.replicated("SELECT COUNT(*) FROM users WHERE id = ?", [self.id])

    def call(self, node, method, path, body=None, timeout=30):
        return test_server.call(self.env.apache(node), method, path, self.token, body,
                                timeout=timeout)


@pytest.fixture
def customer(env):
    return Customer(env)
