"""scripts/demo: it starts, the curl lines it prints work, demo.env is right, Ctrl-C stops it."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import harness

DEMO = harness.REPO / "scripts" / "demo.py"


@pytest.fixture(scope="module")
def demo():
    port = harness.free_port()
    rundir = harness.RUN_BASE / "test-demo"
    proc = subprocess.Popen([sys.executable, str(DEMO), "--port", str(port),
                             "--run-dir", str(rundir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line)
        if "Ctrl-C stops the demo" in line:
            break
    text = "".join(out)
    if "Ctrl-C stops the demo" not in text:
        proc.kill()
        pytest.fail(f"demo did not start:\n{text}")
    yield proc, port, text
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def env_of(text):
    m = re.search(r"Settings written to (\S+)", text)
    assert m, text
    return dict(l.split("=", 1) for l in open(m.group(1)).read().splitlines())


def test_demo_env_file(demo):
    _, port, text = demo
    env = env_of(text)
    assert env["OSPAB_URL"] == f"http://127.0.0.1:{port}"
    assert len(env["OSPAB_SYNC_KEY"]) >= 32 and env["OSPAB_SYNC_KEY"] in text
    assert env["OSPAB_TOKEN"].count(".") == 2 and env["OSPAB_TOKEN"] in text


def test_printed_curl_lines_work(demo):
    """Every printed curl line, run by a shell with demo.env loaded, answers JSON without an
    error; the create makes server 1, which the token then lists."""
    _, _, text = demo
    env = {**os.environ, **env_of(text)}
    lines = [l.strip() for l in text.splitlines() if l.strip().startswith("curl ")]
    assert len(lines) >= 6, text
    answers = []
    for line in lines:
        p = subprocess.run(["bash", "-c", line + ' -w "\\n%{http_code}"'], env=env,
                           capture_output=True, text=True, timeout=30)
        body, code = p.stdout.rsplit("\n", 1)
        assert code.startswith("2"), (line, code, body)
        answers.append((line, json.loads(body)))
    creates = [a for l, a in answers if '"action":"create","vps"' in l]
    assert creates and creates[0]["status"] == "success" and creates[0]["vps"]["id"] == 1
    logins = [a for l, a in answers if "/api/auth/login" in l]
    assert logins and logins[0]["user"]["id"] == 5 and logins[0]["accessToken"]
    # self-service create on the simulated Proxmox node, with the printed OSPAB_TOKEN
    servers = [a for l, a in answers if "/api/server/create" in l]
    assert servers and servers[0]["status"] == "creating" and servers[0]["rootPassword"]
    assert servers[0]["taskId"].startswith("UPID:pve1:")
    tasks = [a for l, a in answers if l.endswith("tasks " + '-H "Authorization: Bearer $OSPAB_TOKEN"')]
    assert tasks and tasks[0][0]["action"] == "create"


def test_printed_live_push_line_works(demo):
    """The printed python-socketio line (seed 003's subscribe-server through Apache to the
    demo's ospab-agent) prints server 2's first server-stats. Server 2 is the container the
    curl lines create (test_printed_curl_lines_work runs first)."""
    _, _, text = demo
    env = {**os.environ, **env_of(text)}
    line = next(l.strip() for l in text.splitlines() if "socketio.Client()" in l)
    p = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert '"serverId": 2' in p.stdout and '"vmid"' in p.stdout, p.stdout


def test_ctrl_c_stops_everything(demo):
    proc, port, text = demo
    assert harness.port_open(port)
    agent_log = re.search(r"\(log: (\S+)\);", text).group(1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    deadline = time.monotonic() + 10
    while harness.port_open(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not harness.port_open(port)
    assert "ospab-agent stopped" in open(agent_log).read()

