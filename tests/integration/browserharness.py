"""Debian's chromium and tests/browser's scenarios, for the tests that drive the panel in a
real browser (test_panel.py against its own Apache, test_demo.py against scripts/demo)."""
import json
import os
import queue
import signal
import subprocess
import threading
import time

import pytest

import harness

BROWSER_DIR = harness.REPO / "tests" / "browser"
SCREENS = harness.REPO / "run" / "panel-screens"
CHROMIUM = "/usr/bin/chromium"
SCENARIO_TIMEOUT = 240


def chromium():
    """One headless chromium (a fixture's body: yields its DevTools WebSocket URL, then
    stops it); each scenario opens its own contexts in it."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: scripts/deps installs Debian's chromium",
                    pytrace=False)
    if not (BROWSER_DIR / "node_modules" / "puppeteer-core").is_dir():
        pytest.fail("tests/browser/node_modules is missing: scripts/test runs `npm ci` there",
                    pytrace=False)
    profile = harness.make_run_dir("chromium-")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=open(profile / "chromium.log", "wb"),
        start_new_session=True)
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("chromium did not start:\n" + (profile / "chromium.log").read_text())
        time.sleep(0.1)
    port, path = port_file.read_text().splitlines()[:2]
    yield f"ws://127.0.0.1:{port}{path}"
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def run_scenario(scenario, cfg, rpc):
    """Runs `node tests/browser/run.js <scenario>` with cfg ({url, ws, ...}, tests/browser/
    lib.js) as its JSON file, answering its t.rpc(op, args) lines with rpc(op, args); its
    @@result. The test fails when the scenario does."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    cfg = {"screens": str(SCREENS), **cfg}
    d = harness.make_run_dir(f"panel-{scenario}-")
    cfg_file = d / "config.json"
    harness.write_private(cfg_file, json.dumps(cfg))
    proc = subprocess.Popen(["node", str(BROWSER_DIR / "run.js"), scenario],
                            cwd=BROWSER_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, bufsize=1,
                            env={**os.environ, "OSPAB_PANEL_TEST": str(cfg_file)})
    lines, err = queue.Queue(), []
    threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout] + [lines.put(None)],
                     daemon=True).start()
    threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()
    result, log = None, []
    deadline = time.monotonic() + SCENARIO_TIMEOUT
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            proc.kill()
            pytest.fail(f"{scenario}: no end within {SCENARIO_TIMEOUT} s\n" + "".join(log))
        if line is None:
            break
        if line.startswith("@@rpc "):
            req = json.loads(line[6:])
            try:
                answer = {"id": req["id"], "result": rpc(req["op"], req["args"])}
            except Exception as e:                   # the scenario fails on it
                answer = {"id": req["id"], "error": f"{type(e).__name__}: {e}"}
            proc.stdin.write(json.dumps(answer) + "\n")
            proc.stdin.flush()
        elif line.startswith("@@result "):
            result = json.loads(line[9:])
        else:
            log.append(line)
    rc = proc.wait(30)
    time.sleep(0.05)
    if rc != 0 or result is None:
        pytest.fail(f"scenario {scenario} failed (exit {rc}):\n{''.join(err)}\n"
                    f"{''.join(log)}", pytrace=False)
    for l in log:
        print(l.rstrip())
    return result
