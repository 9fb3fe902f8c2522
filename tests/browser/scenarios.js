// The panel's scenarios, one per test of tests/integration/test_panel.py. Each gets the
// Test (lib.js) and its config: {url, user, server: {id, vmid, name}, ...}.
'use strict';

const crypto = require('crypto');
const { assert, equal, sleep } = require('./lib');

const LOGIN = /\/api\/auth\/login$/;
const REFRESH = /\/api\/auth\/refresh$/;

// ---- helpers on the panel's own markup ------------------------------------------------

const badge = (page) => page.$eval('.page-head .badge', (el) => el.dataset.status);

async function waitBadge(t, page, status, timeout = 40000) {
  await t.until(page, (s) => document.querySelector('.page-head .badge')?.dataset.status === s,
                status, { timeout, what: `the badge to say ${status}` });
}

async function openServer(t, page, server) {
  await t.open(page, `/servers/${server.id}`);
  await page.waitForSelector(`section.server-page[data-server="${server.id}"]`);
}

async function outcome(t, page, timeout = 40000) {
  await t.until(page, () => !document.querySelector('[data-testid=op]')
                            && document.querySelector('[data-testid=outcome]'),
                null, { timeout, what: 'the operation to end' });
  return t.text(page, '[data-testid=outcome]');
}

// marks the document so a later check can tell it was never reloaded
const mark = (page) => page.evaluate(() => { window.__sameDocument = 42; });
const sameDocument = (page) => page.evaluate(() => window.__sameDocument === 42);

async function confirmDialog(t, page) {
  await page.waitForSelector('dialog[open] [data-testid=confirm]');
  await page.click('dialog[open] [data-testid=confirm]');
  await t.until(page, () => !document.querySelector('dialog[open]'), null,
                { what: 'the dialog to close' });
}

async function rowBadge(page, id) {
  return page.$eval(`tr[data-server="${id}"] .badge`, (el) => el.dataset.status);
}

// ---- the console page (docs/console.md) -------------------------------------------------

// <panel>/console.html#token=<43>&kind=…&server=<id>, nothing of Proxmox in it
function checkConsoleUrl(t, c, href, kind, server = c.server) {
  const u = new URL(href);
  equal(`${u.origin}${u.pathname}`, `${t.url}/console.html`, 'the panel\'s console page');
  equal(u.search, '', 'no query');
  const p = new URLSearchParams(u.hash.slice(1));
  assert(/^[A-Za-z0-9_-]{43}$/.test(p.get('token') || ''), `a 43-character token: ${u.hash}`);
  equal(p.get('kind'), kind, 'the console\'s kind');
  equal(p.get('server'), String(server.id), 'this server');
  equal([...p.keys()].sort().join(','), 'kind,server,token', 'nothing else in the fragment');
  const sim = new URL(c.sim);
  assert(!href.includes(sim.host) && !/PVEVNC|vncticket|port=/.test(href),
         'nothing of Proxmox in the URL');
}

// The URL the server page's Console button gives, its token unused: window.open is held
// back, and the scenario opens the URL in a page of its own (with the guards)
async function consoleUrl(t, c, page, server, kind) {
  await openServer(t, page, server);
  await waitBadge(t, page, 'running');
  await page.evaluate(() => {
    window.__opened = null;
    window.open = (u) => {
      window.__opened = u;
      return null;
    };
  });
  await t.click(page, '[data-action=console]');
  const url = await t.until(page, () => window.__opened, null, { what: 'the console URL' });
  checkConsoleUrl(t, c, url, kind, server);
  return url;
}

async function consoleLink(t, c, page, kind) {
  await t.login(page, c.user);
  return consoleUrl(t, c, page, c.server, kind);
}

async function consoleState(t, page, state, timeout = 30000) {
  await t.until(page, (s) => document.getElementById('console-status')?.dataset.state === s,
                state, { timeout, what: `the console to be ${state}` });
  return t.text(page, '#console-status');
}

// the terminal's lines as xterm.js's DOM renderer shows them
const termLines = (page) => page.$$eval('.xterm-rows > div', (rows) => rows.map((r) => r.textContent.trimEnd()));

async function openConsole(t, url) {
  const tab = await t.page();
  await tab.goto(url, { waitUntil: 'load' });
  return tab;
}

// a connected terminal: the prompt comes, `echo hello` typed prints hello
async function echoHello(t, tab) {
  await t.until(tab, () => [...document.querySelectorAll('.xterm-rows > div')]
    .some((r) => /# $/.test(r.textContent.trimEnd() + ' ')), null, { what: 'the prompt' });
  await tab.click('.xterm-screen');
  await tab.keyboard.type('echo hello');
  await tab.keyboard.press('Enter');
  await t.until(tab, () => [...document.querySelectorAll('.xterm-rows > div')]
    .some((r) => r.textContent.trim() === 'hello'), null, { what: 'hello in the terminal' });
  assert((await termLines(tab)).some((l) => /# echo hello$/.test(l)), 'the echoed command');
}

// a connected VNC console: the screen is drawn (the simulator's colour bars: most pixels
// are not black)
async function vncDrawn(t, tab) {
  await t.until(tab, () => {
    const canvas = document.querySelector('#console-screen canvas');
    if (!canvas || !canvas.width) return false;
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let lit = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] || d[i + 1] || d[i + 2]) lit += 1;
    return lit > (d.length / 4) / 4;
  }, null, { what: 'the VNC screen drawn' });
}

// c.server: a running container
exports.console_terminal = async (t, c) => {
  const page = await t.page();
  const url = await consoleLink(t, c, page, 'terminal');
  const tab = await openConsole(t, url);
  await consoleState(t, tab, 'connected');
  equal(await tab.evaluate(() => location.hash), '', 'the token has left the address bar');
  assert((await t.text(tab, '#console-title')).includes(c.server.name) ||
         (await t.text(tab, '#console-title')).includes(String(c.server.id)), 'the title');
  await echoHello(t, tab);
  await t.shot(tab, 'console-terminal');
  // the same link again: the token was used
  const again = await openConsole(t, url);
  const refused = await consoleState(t, again, 'closed');
  assert(/already been used/.test(refused), `the refusal: ${refused}`);
  assert(!(await again.$eval('#console-again', (e) => e.hidden)), 'how to connect again');
  // Proxmox drops the session: the page says the connection to the server was lost
  await t.rpc('drop_console', { vmid: c.server.vmid });
  const closed = await consoleState(t, tab, 'closed');
  assert(/connection to the server was lost/.test(closed), `the end: ${closed}`);
  await t.shot(tab, 'console-closed');
};

// c.server: a running KVM server
exports.console_vnc = async (t, c) => {
  const page = await t.page();
  const url = await consoleLink(t, c, page, 'vnc');
  const tab = await openConsole(t, url);
  await consoleState(t, tab, 'connected');
  await vncDrawn(t, tab);
  const before = await t.rpc('console_session', { vmid: c.server.vmid });
  await tab.click('[data-action=ctrl-alt-del]');
  await tab.type('#console-paste-text', 'pasted text');
  await tab.click('[data-action=paste]');
  await t.until(tab, () => document.getElementById('console-paste-text').value === '', null,
                { what: 'the paste sent' });
  await t.shot(tab, 'console-vnc');
  let session = before;
  for (let i = 0; i < 50 && !((session.cut_text || []).length && session.keys.length > before.keys.length); i += 1) {
    await sleep(200);
    session = await t.rpc('console_session', { vmid: c.server.vmid });
  }
  equal(session.cut_text[session.cut_text.length - 1], 'pasted text', 'the paste reached the server');
  assert(session.keys.length >= before.keys.length + 6, 'Ctrl-Alt-Del: three keys down and up');
  await t.rpc('drop_console', { vmid: c.server.vmid });
  const closed = await consoleState(t, tab, 'closed');
  assert(/connection to the server was lost/.test(closed), `the end: ${closed}`);
};

// The demo (tests/integration/test_demo.py, issue 15's "Done when"): its customer opens
// the console of a container (c.terminal) and of a KVM server (c.vnc) from the panel and
// uses both; every request and WebSocket of every tab goes to the panel's origin.
exports.demo_consoles = async (t, c) => {
  const page = await t.page();
  await t.login(page, c.user);
  const term = await openConsole(t, await consoleUrl(t, c, page, c.terminal, 'terminal'));
  await consoleState(t, term, 'connected');
  await echoHello(t, term);
  await t.shot(term, 'demo-console-terminal');
  const vnc = await openConsole(t, await consoleUrl(t, c, page, c.vnc, 'vnc'));
  await consoleState(t, vnc, 'connected');
  await vncDrawn(t, vnc);
  const Q = 0x71;                 // the keysym of "q"
  const pressed = (s) => s.keys.some(([k, down]) => k === Q && down)
                         && s.keys.some(([k, down]) => k === Q && !down);
  assert(!pressed(await t.rpc('console_session', { vmid: c.vnc.vmid })), 'no q before');
  await vnc.click('#console-screen canvas');
  await vnc.keyboard.press('q');
  let session;
  for (let i = 0; i < 50; i += 1) {
    session = await t.rpc('console_session', { vmid: c.vnc.vmid });
    if (pressed(session)) break;
    await sleep(200);
  }
  assert(pressed(session), `q down and up reached the server: ${JSON.stringify(session.keys)}`);
  await t.shot(vnc, 'demo-console-vnc');
  // what the tabs asked of the network: the panel's origin (http:, ws:) and nothing else
  const origin = new URL(t.url);
  const sim = new URL(c.sim);
  const seen = t.requests.filter((r) => !/^(data|blob):/.test(r.url));
  const elsewhere = seen.filter((r) => {
    const u = new URL(r.url);
    const scheme = r.kind === 'websocket' ? origin.protocol.replace(/^http/, 'ws')
      : origin.protocol;
    return u.protocol !== scheme || u.host !== origin.host || u.port === sim.port
           || /PVEVNC|vncticket|ticket=/i.test(r.url);
  });
  assert(!elsewhere.length, `requests elsewhere: ${JSON.stringify(elsewhere)}`);
  // the record holds what each tab did: the panel's Socket.IO, each console's socket
  const sockets = (p) => seen.filter((r) => r.page === p.__tag && r.kind === 'websocket')
    .map((r) => new URL(r.url).pathname);
  assert(sockets(page).some((x) => x.startsWith('/socket.io/')), 'the panel\'s live push');
  for (const tab of [term, vnc]) {
    equal(sockets(tab).join(','), '/console/ws', `${tab.__tag}: one console socket`);
    assert(seen.some((r) => r.page === tab.__tag && r.kind === 'document'
                            && new URL(r.url).pathname === '/console.html'), 'the page');
  }
  t.result = { requests: seen };
};

// ---- scenarios --------------------------------------------------------------------------

exports.login = async (t, c) => {
  const page = await t.page();
  t.expectHttp(401, LOGIN, 'POST');
  await t.open(page);
  await page.waitForSelector('input[type=email]');
  await t.assertA11y(page, 'login');
  await t.shot(page, 'login');
  // keyboard alone: Tab reaches the e-mail field within the first few stops
  let tabs = 0;
  while (tabs < 5 && !(await page.evaluate(() => document.activeElement?.type === 'email'))) {
    await page.keyboard.press('Tab');
    tabs += 1;
  }
  assert(tabs < 5, 'the e-mail field is reachable by Tab');
  const ring = await page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return { style: s.outlineStyle, width: parseFloat(s.outlineWidth) };
  });
  assert(ring.style !== 'none' && ring.width >= 2, `a visible focus ring (${JSON.stringify(ring)})`);
  await page.keyboard.type(c.user.email);
  await page.keyboard.press('Tab');
  await page.keyboard.type('not-the-password');
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-testid=login-error]');
  equal(await t.text(page, '[data-testid=login-error]'), 'Wrong e-mail or password.',
        'a wrong password in words');
  await t.shot(page, 'login-wrong-password');
  // the password field again, by keyboard: Shift+Tab from the button
  await page.focus('input[type=password]');
  await page.keyboard.down('Control');
  await page.keyboard.press('KeyA');
  await page.keyboard.up('Control');
  await page.keyboard.type(c.user.password);
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-testid=who]');
  equal(await t.text(page, 'main h1'), 'My servers', 'the list after login');
  equal(await t.text(page, '[data-testid=who]'), c.user.email, 'who is logged in');
  // the heading has focus: keyboard users start at the content
  assert(await page.evaluate(() => document.activeElement?.tagName === 'H1'), 'focus on h1');
  // on to ordering, by keyboard: the first link in the empty list
  await page.waitForSelector('.empty a');
  await page.focus('.empty a');
  await page.keyboard.press('Enter');
  await page.waitForSelector('form.create');
  await t.assertA11y(page, 'create');
};

exports.rate_limit = async (t, c) => {
  const page = await t.page();
  t.expectHttp(429, LOGIN, 'POST');
  await t.open(page);
  await page.waitForSelector('input[type=email]');
  await page.type('input[type=email]', c.user.email);
  await page.type('input[type=password]', c.user.password);
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-testid=login-error]');
  const text = await t.text(page, '[data-testid=login-error]');
  assert(/^Too many attempts\. Try again in \d+ (minutes?|seconds?)\.$/.test(text), text);
  await t.shot(page, 'login-rate-limited');
};

exports.create = async (t, c) => {
  const page = await t.page();
  await t.login(page, c.user);
  await page.waitForSelector('.empty');
  await t.shot(page, 'servers-empty');
  await page.click('.empty a.button');
  await page.waitForSelector('form.create input[name=tariff]');
  // tariff "Базовый" (2) and Debian 12 (2) from /api/tariffs and /api/os
  const tariffs = await page.$$eval('form.create input[name=tariff]', (els) => els.map(
    (e) => e.closest('label').textContent));
  assert(tariffs.some((x) => x.includes('Базовый')), `tariffs ${tariffs}`);
  await page.click('input[name=tariff][value="2"]');
  await page.click('input[name=os][value="2"]');
  await t.shot(page, 'create');
  await mark(page);
  await page.click('form.create button[type=submit]');
  await page.waitForSelector('dialog[open] .secret input');
  const password = await page.$eval('dialog[open] .secret input', (el) => el.value);
  assert(/^[A-Za-z0-9]{20}$/.test(password), `a root password (${password.length} chars)`);
  const once = await t.text(page, 'dialog[open] .once');
  assert(/shown only now/.test(once), once);
  await page.click('dialog[open] .secret button');
  await t.until(page, () => /Copied/.test(document.querySelector('dialog[open] .secret [role=status]')?.textContent || ''),
                null, { what: 'the copy to be confirmed' });
  equal(await page.evaluate(() => navigator.clipboard.readText()), password, 'the clipboard');
  await t.shot(page, 'create-password-once');
  await page.click('dialog[open] .actions button');
  await page.waitForSelector('section.server-page');
  // shown once: nowhere on the page any more
  assert(!(await page.evaluate((pw) => document.body.innerHTML.includes(pw), password)),
         'the password left the page');
  const id = await page.$eval('section.server-page', (el) => Number(el.dataset.server));
  const first = await badge(page);
  assert(['creating', 'running'].includes(first), `a new server is ${first}`);
  await waitBadge(t, page, 'running', 60000);
  await t.until(page, () => /^\d+\.\d+\.\d+\.\d+$/.test(document.querySelector('[data-testid=ip]')?.textContent || ''),
                null, { what: 'its IP address' });
  assert(await sameDocument(page), 'no reload happened');
  t.result.createdFirst = first;
  // the list shows it, with OS and tariff
  await page.click('nav a[href="#/servers"]');
  await page.waitForSelector(`tr[data-server="${id}"]`);
  const row = await page.$eval(`tr[data-server="${id}"]`, (el) => el.textContent);
  assert(row.includes('Debian 12') && row.includes('Базовый') && row.includes('Running'), row);
  await t.assertA11y(page, 'servers');
  await t.shot(page, 'servers');
};

exports.power = async (t, c) => {
  const page = await t.page();
  const list = await t.page();
  await t.login(page, c.user);
  await t.login(list, c.user);
  await list.waitForSelector(`tr[data-server="${c.server.id}"]`);
  await mark(list);
  await openServer(t, page, c.server);
  await waitBadge(t, page, 'running');
  await mark(page);
  await t.until(list, () => document.querySelector('.live')?.dataset.live === 'live', null,
                { what: 'the list to be live' });
  await t.until(page, () => document.querySelector('.live')?.dataset.live === 'live', null,
                { what: 'the server page to be live' });
  for (const [action, status, said] of [['stop', 'stopped', 'The server has stopped.'],
                                        ['start', 'running', 'The server has started.'],
                                        ['restart', 'running', 'The server has restarted.'],
                                        ['reboot', 'running', 'The server has rebooted.']]) {
    await t.click(page, `button[data-action=${action}]`);
    // while it runs: its progress, and every power button waits
    await page.waitForSelector(`[data-testid=op][data-op=${action}]`, { timeout: 5000 })
      .catch(() => {});      // a fast task may already be over
    const disabled = await page.$$eval('.power button', (bs) => bs.map((b) => b.disabled));
    const running = await page.$('[data-testid=op]');
    if (running) {
      assert(disabled.every(Boolean), `all power buttons wait while ${action} runs`);
      if (action === 'stop') await t.shot(page, 'server-operation-running');
    }
    equal(await outcome(t, page), said, `the outcome of ${action}`);
    await waitBadge(t, page, status);
    await t.until(list, ([id, s]) => document.querySelector(`tr[data-server="${id}"] .badge`)?.dataset.status === s,
                  [c.server.id, status], { timeout: 30000, what: `the list's badge: ${status}` });
    if (action === 'stop') {
      equal(await rowBadge(list, c.server.id), 'stopped', 'the other tab saw the stop');
      await t.shot(list, 'servers-live-stopped');
    }
  }
  assert(await sameDocument(page) && await sameDocument(list), 'no page was reloaded');
  await t.shot(page, 'server');
};

exports.graphs = async (t, c) => {
  const page = await t.page();
  await t.login(page, c.user);
  await openServer(t, page, c.server);
  const points = (tf) => page.$$eval('figure.chart', (fs, want) => fs.map((f) => (
    f.dataset.timeframe === want && f.querySelector('canvas') ? Number(f.dataset.points || 0) : 0)), tf);
  for (const tf of ['hour', 'day', 'week', 'month', 'year']) {
    if (tf !== 'hour') await page.click(`.segmented button[data-timeframe=${tf}]`);
    await t.until(page, (want) => {
      const fs = [...document.querySelectorAll('figure.chart')];
      return fs.length === 4 && fs.every((f) => f.dataset.timeframe === want
        && f.querySelector('canvas') && Number(f.dataset.points) > 0);
    }, tf, { what: `four graphs with points for ${tf}` });
    const n = await points(tf);
    t.log(`${tf}: points ${n.join(', ')}`);
    t.result[tf] = n;
    assert(await page.$eval(`.segmented button[data-timeframe=${tf}]`, (b) => b.getAttribute('aria-pressed')) === 'true',
           'the chosen period is marked');
    if (tf === 'day' || tf === 'year') await t.shot(page, `server-graphs-${tf}`);
  }
  // live samples (server-stats) extend the hour's graphs
  await page.click('.segmented button[data-timeframe=hour]');
  await t.until(page, () => document.querySelector('figure.chart')?.dataset.timeframe === 'hour'
                            && Number(document.querySelector('figure.chart').dataset.points) > 0);
  await t.until(page, () => document.querySelector('.live')?.dataset.live === 'live', null,
                { what: 'live updates' });
  const before = (await points('hour'))[0];
  t.log(`hour before live: ${before}`);
  await t.until(page, (b) => Number(document.querySelector('figure.chart[data-metric=cpu]').dataset.points) > b + 1,
                before, { what: 'live points to extend the CPU graph' });
  await t.shot(page, 'server-graphs-hour');
};

exports.snapshots = async (t, c) => {
  const page = await t.page();
  await t.login(page, c.user);
  await openServer(t, page, c.server);
  await page.waitForSelector('[data-action=snapshot]:not([disabled])');
  const name = page.$('form.inline-form input.mono');
  const setName = async (v) => {
    const el = await name;
    await el.click({ clickCount: 3 });
    await page.keyboard.press('Backspace');
    await el.type(v);
  };
  // Proxmox's rule, said before asking
  let asked = 0;
  page.on('request', (r) => { if (/\/snapshots$/.test(r.url()) && r.method() === 'POST') asked += 1; });
  await setName('1-not-a-name');
  await page.click('[data-action=snapshot]');
  await page.waitForSelector('.field.has-error .field-error');
  equal(asked, 0, 'an invalid name is not sent');
  await setName('before-update');
  await page.click('[data-action=snapshot]');
  equal(await outcome(t, page), 'The snapshot has been taken.', 'snapshot');
  await page.waitForSelector('tr[data-snapshot="before-update"]');
  await t.shot(page, 'server-snapshots');
  // roll back, after saying yes
  await t.click(page, 'tr[data-snapshot="before-update"] [data-action=rollback]');
  await page.waitForSelector('dialog[open]');
  const q = await t.text(page, 'dialog[open] h2');
  equal(q, 'Roll back to before-update?', 'the question');
  await t.shot(page, 'confirm-rollback');
  await confirmDialog(t, page);
  equal(await outcome(t, page), 'The server has been rolled back to the snapshot.', 'rollback');
  await waitBadge(t, page, 'running');
  // delete, after saying yes; "Cancel" first changes nothing
  await t.click(page, 'tr[data-snapshot="before-update"] [data-action=delete-snapshot]');
  await page.waitForSelector('dialog[open]');
  await page.click('dialog[open] button.ghost');
  await t.until(page, () => !document.querySelector('dialog[open]'));
  assert(await page.$('tr[data-snapshot="before-update"]'), 'cancel keeps the snapshot');
  await t.click(page, 'tr[data-snapshot="before-update"] [data-action=delete-snapshot]');
  await confirmDialog(t, page);
  equal(await outcome(t, page), 'The snapshot has been deleted.', 'delete');
  await t.until(page, () => !document.querySelector('tr[data-snapshot="before-update"]'), null,
                { what: 'the snapshot to leave the list' });
};

exports.password = async (t, c) => {
  const page = await t.page();
  await t.login(page, c.user);
  await openServer(t, page, c.server);
  await t.click(page, '[data-action=password]');
  await page.waitForSelector('dialog[open]');
  await t.shot(page, 'password-confirm');
  await page.click('dialog[open] [data-testid=confirm]');
  await page.waitForSelector('dialog[open] .secret input');
  const password = await page.$eval('dialog[open] .secret input', (el) => el.value);
  assert(/shown only now/.test(await t.text(page, 'dialog[open] .once')), 'shown only now');
  const info = await t.rpc('guest_info', { vmid: c.server.vmid });
  equal(info.passwords.root.sha256, crypto.createHash('sha256').update(password).digest('hex'),
        'the password shown is the one the node got');
  await t.shot(page, 'password-shown-once');
  await page.click('dialog[open] [data-testid=password-done]');
  await t.until(page, () => !document.querySelector('dialog[open]'));
  assert(!(await page.evaluate((pw) => document.body.innerHTML.includes(pw), password)),
         'the password left the page');
  equal(await t.text(page, '[data-testid=outcome]'), 'The root password has been changed.', 'outcome');
};

exports.resize = async (t, c) => {
  const page = await t.page();
  t.expectHttp(403, /\/resize$/, 'PUT');
  await t.login(page, c.user);
  await openServer(t, page, c.server);
  const form = 'form[data-testid=resize]';
  await page.waitForSelector(`${form} input`);
  const inputs = await page.$$(`${form} input`);
  const set = async (i, v) => {
    await inputs[i].click({ clickCount: 3 });
    await page.keyboard.press('Backspace');
    await inputs[i].type(String(v));
  };
  let asked = 0;
  page.on('request', (r) => { if (/\/resize$/.test(r.url())) asked += 1; });
  // the disk only grows: said before asking
  await set(2, 5);
  await page.click('[data-action=resize]');
  await page.waitForSelector(`${form} .field.has-error .field-error`);
  assert(/can only grow/.test(await t.text(page, `${form} .field-error`)), 'disk grows');
  equal(asked, 0, 'a smaller disk is not sent');
  // beyond the tariff: the API's words for the field, next to it
  await set(2, 10);
  await set(0, 8);
  await page.click('[data-action=resize]');
  await page.waitForSelector('[data-testid=resize-error]');
  const err = await page.evaluate((f) => {
    const input = document.querySelectorAll(`${f} input`)[0];
    const ids = (input.getAttribute('aria-describedby') || '').split(' ');
    const msg = ids.map((id) => document.getElementById(id)).find((el) => el?.classList.contains('field-error'));
    return { invalid: input.getAttribute('aria-invalid'), text: msg?.textContent || '',
             near: input.closest('.field').contains(msg) };
  }, form);
  assert(err.invalid === 'true' && err.near && /at most 1 on tariff/.test(err.text),
         `the cores field's error: ${JSON.stringify(err)}`);
  t.result.fieldError = err.text;
  await t.shot(page, 'resize-field-error');
  // a bigger tariff is fine
  await page.select('[data-testid=tariff]', '3');
  await page.click('[data-action=move]');
  equal(await outcome(t, page), 'The new size has been applied.', 'the move');
  await t.until(page, () => /4 vCPU/.test(document.querySelector('.facts')?.textContent || ''),
                null, { what: 'the new size in the facts' });
};

exports.alerts = async (t, c) => {
  const page = await t.page();
  await t.login(page, c.user);
  await openServer(t, page, c.server);
  await t.until(page, () => document.querySelector('.live')?.dataset.live === 'live');
  await t.rpc('guest', { vmid: c.server.vmid, fields: { cpu: 0.97 } });
  await t.until(page, () => /CPU usage is at 97/.test(document.querySelector('[data-testid=alerts]')?.textContent || ''),
                null, { timeout: 30000, what: 'the CPU alert' });
  const notice = await page.$eval('[data-testid=alerts] .notice', (el) => ({
    role: el.getAttribute('role'), text: el.textContent.trim(), cls: el.className }));
  assert(notice.role === 'alert' && /Critical/.test(notice.text), JSON.stringify(notice));
  await t.shot(page, 'server-alert');
  await t.rpc('guest', { vmid: c.server.vmid, fields: { cpu: 0.1 } });
  await t.until(page, () => !document.querySelector('[data-testid=alerts] .notice'), null,
                { timeout: 30000, what: 'the alert to clear' });
};

exports.refresh = async (t, c) => {
  // a: an ordinary tab; b: one whose long timers never fire (a laptop that slept through
  // the scheduled renewal) and without live push, so its only way is the 401
  const a = await t.page();
  const b = await t.page();
  await b.evaluateOnNewDocument(() => {
    const st = window.setTimeout;
    window.setTimeout = (fn, ms, ...rest) => (ms >= 30000 ? 0 : st(fn, ms, ...rest));
  });
  await b.setRequestInterception(true);
  b.on('request', (r) => (/\/socket\.io\//.test(r.url()) ? r.abort('aborted') : r.continue()));
  t.expectHttp(401, /\/api\/server\/\d+\/status/, 'GET', b);
  const seen = { a: [], b: [] };
  for (const [k, p] of [['a', a], ['b', b]]) {
    p.on('response', (r) => { if (/\/api\//.test(r.url())) seen[k].push(`${r.request().method()} ${r.url().replace(/^.*\/api/, '/api')} ${r.status()}`); });
  }
  await t.login(a, c.user);
  await t.login(b, c.user);
  const started = Date.now();
  await openServer(t, a, c.server);
  await openServer(t, b, c.server);
  await mark(a);
  await mark(b);
  await t.until(a, () => document.querySelector('.live')?.dataset.live === 'live');
  // past the access tokens' lifetime (and the agent's end of a's first socket)
  await sleep(Math.max(0, (c.ttl + 6) * 1000 - (Date.now() - started)));
  for (const p of [a, b]) {
    await p.click('.segmented button[data-timeframe=day]');
    await t.until(p, () => document.querySelector('figure.chart')?.dataset.timeframe === 'day'
                           && Number(document.querySelector('figure.chart').dataset.points) > 0,
                  null, { what: 'the day graphs after expiry' });
  }
  const done = (k) => seen[k].some((x) => /status\?timeframe=day 200$/.test(x));
  const deadline = Date.now() + 20000;
  while (!(done('a') && done('b')) && Date.now() < deadline) await sleep(100);
  // a renewed before expiry and never got a 401; b got exactly one, renewed, repeated
  t.log(`a: ${seen.a.join(' | ')}`);
  t.log(`b: ${seen.b.join(' | ')}`);
  assert(seen.a.some((x) => /^POST \/api\/auth\/refresh 200$/.test(x)), 'a renewed');
  assert(!seen.a.some((x) => / 401$/.test(x)), 'a never saw a 401');
  const b401 = seen.b.filter((x) => / 401$/.test(x));
  equal(b401.length, 1, 'b got one 401');
  const i = seen.b.indexOf(b401[0]);
  assert(/^POST \/api\/auth\/refresh 200$/.test(seen.b[i + 1] || ''), `b renewed after it: ${seen.b[i + 1]}`);
  assert(/status\?timeframe=day 200$/.test(seen.b[i + 2] || ''), `b repeated it: ${seen.b[i + 2]}`);
  // a's live push goes on with a fresh token: a new figure arrives
  await t.rpc('guest', { vmid: c.server.vmid, fields: { cpu: 0.33 } });
  await t.until(a, () => /33/.test(document.querySelector('[data-gauge=cpu]')?.textContent || ''),
                null, { timeout: 30000, what: 'a live figure after the token expired' });
  await t.rpc('guest', { vmid: c.server.vmid, fields: { cpu: 0.1 } });
  assert(await sameDocument(a) && await sameDocument(b), 'no page was reloaded');
  assert(!(await a.$('input[type=password]')) && !(await b.$('input[type=password]')),
         'nobody was sent to the login page');
};

exports.not_found = async (t, c) => {
  const page = await t.page();
  const other = new RegExp(`/api/(server|vps)/${c.server.id}(/tasks)?$`);
  t.expectHttp(404, other, 'GET');
  await t.login(page, c.user);
  await t.open(page, `/servers/${c.server.id}`);
  await page.waitForSelector('[data-testid=not-found]');
  equal(await t.text(page, '[data-testid=not-found]'), 'Server not found', 'the heading');
  assert(!(await page.evaluate((n) => document.body.textContent.includes(n), c.server.name)),
         'nothing of the server shows');
  await t.shot(page, 'server-not-found');
};

exports.logout = async (t, c) => {
  const page = await t.page();
  await t.login(page, c.user);
  const cookies = await page.cookies(`${t.url}/api/auth/refresh`);
  const rt = cookies.find((x) => x.name === 'ospab_refresh');
  assert(rt && rt.httpOnly && rt.sameSite === 'Strict' && rt.path === '/api/auth/',
         `the refresh cookie: ${JSON.stringify(rt && { ...rt, value: '…' })}`);
  assert(!(await page.evaluate(() => document.cookie)).includes('ospab_refresh'),
         'JavaScript cannot read it');
  await openServer(t, page, c.server);
  await page.click('[data-testid=logout]');
  await page.waitForSelector('input[type=email]');
  await page.reload({ waitUntil: 'load' });
  await page.waitForSelector('input[type=email]');
  assert(!(await page.cookies(`${t.url}/api/auth/refresh`)).some((x) => x.name === 'ospab_refresh'),
         'the cookie is gone');
  // a login ended elsewhere (its refresh token used for a logout): back to the login page
  t.expectHttp(401, REFRESH, 'POST');
  t.expectHttp(401, /\/api\//, 'GET');
  await t.login(page, c.user, { open: false });
  await openServer(t, page, c.server);
  await t.until(page, () => document.querySelector('.live')?.dataset.live === 'live');
  const value = (await page.cookies(`${t.url}/api/auth/refresh`))
    .find((x) => x.name === 'ospab_refresh').value;
  equal(await t.rpc('logout', { refreshToken: value }), 200, 'the logout elsewhere');
  await page.waitForSelector('input[type=email]', { timeout: 30000 });
  assert(/session has ended/.test(await t.text(page, '.login-card')), 'the notice');
  await t.shot(page, 'login-session-ended');
};

exports.console_delete = async (t, c) => {
  const page = await t.page();
  await t.login(page, c.user);
  await openServer(t, page, c.server);
  await waitBadge(t, page, 'running');
  // the Console button opens the panel's own console page in a new tab
  const context = page.browserContext();
  const opened = context.waitForTarget((x) => /\/console\.html/.test(x.url()),
                                       { timeout: 20000 });
  await t.click(page, '[data-action=console]');
  const target = await opened;
  const tab = await target.page();
  if (tab) await tab.close();
  await page.waitForSelector('.op-area a[target=_blank]');
  const href = await page.$eval('.op-area a[target=_blank]', (a) => a.href);
  checkConsoleUrl(t, c, href, 'terminal');
  // delete: the name must be typed
  await t.click(page, '[data-action=delete]');
  await page.waitForSelector('dialog[open] input');
  const go = 'dialog[open] [data-testid=confirm]';
  assert(await page.$eval(go, (b) => b.disabled), 'disabled before the name');
  await page.type('dialog[open] input', c.server.name.slice(0, -1));
  assert(await page.$eval(go, (b) => b.disabled), 'disabled for a wrong name');
  await page.type('dialog[open] input', c.server.name.slice(-1));
  assert(!(await page.$eval(go, (b) => b.disabled)), 'enabled for the name');
  await t.shot(page, 'delete-confirm');
  // once the record has gone, asking for its tasks is a 404: that is how the page learns
  t.expectHttp(404, new RegExp(`/api/server/${c.server.id}/tasks$`), 'GET');
  await page.click(go);
  await page.waitForSelector('main h1');
  await t.until(page, () => location.hash === '#/servers', null,
                { timeout: 40000, what: 'the list after the delete' });
  await t.until(page, (n) => document.querySelector('.notice-ok')?.textContent.includes(n),
                c.server.name, { what: 'the notice' });
  assert(!(await page.$(`tr[data-server="${c.server.id}"]`)), 'the server left the list');
  equal(await t.rpc('status', { id: c.server.id }), null, 'the record is gone');
};

// c.snapshot: a snapshot the server has; c.osId / c.newOsId: its OS and the one to install;
// c.otherKind: the name of an OS entry of the other kind (never offered)
exports.reinstall = async (t, c) => {
  const page = await t.page();
  await t.login(page, c.user);
  await openServer(t, page, c.server);
  await waitBadge(t, page, 'running');
  await page.waitForSelector(`tr[data-snapshot="${c.snapshot}"]`);
  await mark(page);
  const sent = [];
  page.on('request', (r) => { if (/\/reinstall$/.test(r.url())) sent.push(r.postData()); });
  await t.click(page, '[data-action=reinstall]');
  await page.waitForSelector('dialog[open] [data-testid=reinstall-os]');
  // the OS entries of the server's kind, the one it runs chosen
  const options = await page.$$eval('dialog[open] [data-testid=reinstall-os] option',
                                    (os) => os.map((o) => ({ value: o.value, text: o.textContent })));
  t.log(`offered: ${options.map((o) => `${o.value} ${o.text}`).join(' | ')}`);
  assert(!options.some((o) => o.text.includes(c.otherKind)), `no ${c.otherKind} for a container`);
  assert(options.some((o) => o.value === String(c.newOsId)), 'the new OS is offered');
  const chosen = await page.$eval('dialog[open] [data-testid=reinstall-os]', (el) => el.value);
  equal(chosen, String(c.osId), 'the OS it runs is chosen');
  await t.until(page, () => document.activeElement?.dataset.testid === 'reinstall-os', null,
                { what: 'the focus on the OS choice' });
  // said before anything is sent: the disk is erased, and its one snapshot goes
  const warning = await t.text(page, 'dialog[open] [data-testid=reinstall-warning]');
  assert(/disk is erased/.test(warning), warning);
  assert(/\b1 snapshot is deleted too: /.test(warning) && warning.includes(c.snapshot), warning);
  equal(await page.$eval('dialog[open] [data-testid=reinstall-warning] .notice',
                         (el) => el.getAttribute('role')), 'alert', 'the warning is announced');
  // the name must be typed
  const go = 'dialog[open] [data-testid=confirm]';
  assert(await page.$eval(go, (b) => b.disabled), 'disabled before the name');
  await page.select('dialog[open] [data-testid=reinstall-os]', String(c.newOsId));
  await page.type('dialog[open] input', c.server.name.slice(0, -1));
  assert(await page.$eval(go, (b) => b.disabled), 'disabled for a wrong name');
  await page.type('dialog[open] input', c.server.name.slice(-1));
  assert(!(await page.$eval(go, (b) => b.disabled)), 'enabled for the name');
  equal(sent.length, 0, 'nothing sent before the confirmation');
  await t.assertA11y(page, 'reinstall');
  await t.shot(page, 'reinstall-confirm');
  await page.click(go);
  await page.waitForSelector('dialog[open] .secret input');
  equal(sent.length, 1, 'one request');
  equal(sent[0], JSON.stringify({ osId: c.newOsId, confirm: true }), 'confirmed after the warning');
  const password = await page.$eval('dialog[open] .secret input', (el) => el.value);
  // 20 of lib/ospab_server.c's alphabet (no 0, 1, I, O, l, o)
  assert(/^[a-km-np-zA-HJ-NP-Z2-9]{20}$/.test(password), `a root password (${password.length} chars)`);
  assert(/shown only now/.test(await t.text(page, 'dialog[open] .once')), 'shown only now');
  assert((await t.text(page, 'dialog[open] [data-testid=snapshots-deleted]')).includes(c.snapshot),
         'the deleted snapshot is named');
  await page.click('dialog[open] .secret button');
  await t.until(page, () => /Copied/.test(document.querySelector('dialog[open] .secret [role=status]')?.textContent || ''),
                null, { what: 'the copy to be confirmed' });
  equal(await page.evaluate(() => navigator.clipboard.readText()), password, 'the clipboard');
  await t.shot(page, 'reinstall-password-once');
  await page.click('dialog[open] [data-testid=reinstall-done]');
  await t.until(page, () => !document.querySelector('dialog[open]'), null,
                { what: 'the dialog to close' });
  assert(!(await page.evaluate((pw) => document.body.innerHTML.includes(pw), password)),
         'the password left the page');
  // the page follows it as an operation, then says how it ended
  equal(await outcome(t, page, 90000), 'The server has been reinstalled.', 'the outcome');
  await waitBadge(t, page, 'running');
  await t.until(page, (n) => document.querySelector('.facts')?.textContent.includes(n),
                c.newOsName, { what: 'the new OS in the facts' });
  await t.until(page, () => !document.querySelector('tr[data-snapshot]'), null,
                { what: 'the snapshot to leave the list' });
  await t.until(page, () => /^Reinstall/.test(document.querySelector('[data-testid=tasks] tbody td')?.textContent || ''),
                null, { what: 'the reinstall in the recent operations' });
  assert(await sameDocument(page), 'no page was reloaded');
  await t.shot(page, 'server-reinstalled');
  t.result.password = password;
};

exports.admin = async (t, c) => {
  const page = await t.page();
  await t.login(page, c.user);
  equal(await t.text(page, 'main h1'), 'All servers', 'the admin heading');
  await page.waitForSelector(`tr[data-server="${c.server.id}"]`);
  const owner = await page.$eval(`tr[data-server="${c.server.id}"] td[data-label=Owner]`,
                                 (el) => el.textContent.trim());
  equal(owner, `user #${c.owner.id}`, 'whose it is');
  await t.shot(page, 'servers-admin');
  // keyset pages: 25, then the rest with "Show more" (?after=<last id>)
  const rows = () => page.$$eval('tr[data-server]', (els) => els.map((e) => Number(e.dataset.server)));
  const first = await rows();
  equal(first.length, 25, 'the first page');
  while (await page.$('[data-testid=more]')) {
    const n = (await rows()).length;
    await t.click(page, '[data-testid=more]');
    await t.until(page, (k) => document.querySelectorAll('tr[data-server]').length > k, n,
                  { what: 'the next page' });
  }
  const all = await rows();
  equal(all.length, c.total, 'every server, once');
  assert(all.every((id, i) => i === 0 || id > all[i - 1]), 'in id order');
  await openServer(t, page, c.server);
  await waitBadge(t, page, 'running');
};

exports.suspended = async (t, c) => {
  const page = await t.page();
  await t.login(page, c.user);
  await page.waitForSelector(`tr[data-server="${c.server.id}"]`);
  equal(await rowBadge(page, c.server.id), 'suspended', 'the list says suspended');
  await openServer(t, page, c.server);
  await waitBadge(t, page, 'suspended');
  await page.waitForSelector('[data-testid=suspended]');
  assert((await t.text(page, '[data-testid=suspended]')).includes('contact support'),
         'the notice tells what to do');
  const enabled = await page.$$eval('section.server-page button[data-action]',
                                    (els) => els.filter((b) => !b.disabled)
                                                .map((b) => b.dataset.action));
  equal(enabled.join(','), '', 'no action can be started');
  assert(!(await page.$('section[aria-labelledby=snap-h], section[aria-labelledby=resize-h]')),
         'no resize form, no snapshot list');
  await t.shot(page, 'server-suspended');
};

exports.languages = async (t, c) => {
  const page = await t.page({ lang: ['ru-RU', 'ru'] });
  await t.open(page);
  await page.waitForSelector('input[type=email]');
  equal(await t.text(page, 'main h1'), 'Вход', 'Russian from the browser');
  equal(await page.evaluate(() => document.documentElement.lang), 'ru', 'html lang');
  await t.shot(page, 'ru-login');
  await t.login(page, c.user, { open: false });
  equal(await t.text(page, 'main h1'), 'Мои серверы', 'My servers in Russian');
  await page.waitForSelector(`tr[data-server="${c.server.id}"]`);
  const row = await page.$eval(`tr[data-server="${c.server.id}"]`, (el) => el.textContent);
  assert(row.includes('Базовый') && row.includes('Работает') && row.includes('₽'), row);
  // Russian dates: "4 дек. 2026 г., 15:20"
  assert(/\d{1,2} [а-я]+\.? \d{4}/.test(row), `a Russian date in ${row}`);
  await t.shot(page, 'ru-servers');
  await openServer(t, page, c.server);
  await t.until(page, () => /ГиБ/.test(document.querySelector('.facts')?.textContent || ''));
  await t.until(page, () => /\d(,\d)?\s%/.test(document.querySelector('[data-gauge=cpu]')?.textContent || ''),
                null, { what: 'a Russian percentage' });
  await t.shot(page, 'ru-server');
  // the switch
  await page.select('[data-testid=language]', 'en');
  await t.until(page, () => document.documentElement.lang === 'en'
                            && /Power/.test(document.body.textContent));
  assert(/GiB/.test(await t.text(page, '.facts')), 'English sizes');
  await page.reload({ waitUntil: 'load' });
  await page.waitForSelector('section.server-page');
  equal(await page.evaluate(() => document.documentElement.lang), 'en', 'the choice stays');
  await t.until(page, () => /Power/.test(document.body.textContent));
};

exports.phone = async (t, c) => {
  const page = await t.page({ width: 375, height: 812, mobile: true });
  await t.open(page);
  await page.waitForSelector('input[type=email]');
  await t.assertFits(page, 'login');
  await t.shot(page, 'phone-login');
  await t.login(page, c.user, { open: false });
  await page.waitForSelector(`tr[data-server="${c.server.id}"]`);
  await t.assertFits(page, 'servers');
  await t.shot(page, 'phone-servers');
  await openServer(t, page, c.server);
  await t.until(page, () => [...document.querySelectorAll('figure.chart')].every((f) => Number(f.dataset.points) > 0));
  await t.assertFits(page, 'server');
  await t.assertA11y(page, 'server');
  await t.shot(page, 'phone-server');
  await t.open(page, '/servers/new');
  await page.waitForSelector('form.create');
  await t.assertFits(page, 'create');
  await t.shot(page, 'phone-create');
};

exports.first_load = async (t, c) => {
  const page = await t.page();
  const cdp = await page.createCDPSession();
  await cdp.send('Network.enable');
  const seen = new Map();            // requestId -> {url, type, fromCache}
  let bytes = 0;
  let files = 0;
  const headers = {};
  cdp.on('Network.responseReceived', (e) => {
    seen.set(e.requestId, { url: e.response.url, type: e.type, fromCache: e.response.fromDiskCache
                            || e.response.fromMemoryCache, status: e.response.status });
    if (/\/vendor\//.test(e.response.url)) headers[e.response.url] = e.response.headers;
  });
  cdp.on('Network.requestServedFromCache', (e) => {
    const s = seen.get(e.requestId);
    if (s) s.fromCache = true;
  });
  let body = 0;
  const perFile = {};
  // encodedDataLength of loadingFinished: the whole response as it crossed the network
  // (headers and compressed body); of dataReceived: the compressed body alone
  cdp.on('Network.dataReceived', (e) => {
    const s = seen.get(e.requestId);
    if (s && (s.type === 'Script' || s.type === 'Stylesheet')) body += e.encodedDataLength;
  });
  cdp.on('Network.loadingFinished', (e) => {
    const s = seen.get(e.requestId);
    if (s && (s.type === 'Script' || s.type === 'Stylesheet')) {
      bytes += e.encodedDataLength;
      files += 1;
      perFile[s.url.replace(/^https?:\/\/[^/]+\//, '')] = e.encodedDataLength;
    }
  });
  await t.open(page);
  await page.waitForSelector('input[type=email]');
  await sleep(300);
  t.result.loginBytes = bytes;
  await t.login(page, c.user, { open: false });
  await openServer(t, page, c.server);
  await t.until(page, () => [...document.querySelectorAll('figure.chart')].every((f) => Number(f.dataset.points) > 0));
  await sleep(300);
  t.result.firstLoadBytes = bytes;
  t.result.firstLoadBodyBytes = body;
  t.result.firstLoadFiles = files;
  t.result.perFile = perFile;
  for (const [url, h] of Object.entries(headers)) {
    const lower = Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
    assert(/max-age=31536000/.test(lower['cache-control'] || ''), `vendor cached for long: ${url}`);
    if (/\.(m?js|css)$/.test(url)) equal(lower['content-encoding'], 'gzip', `compressed: ${url}`);
  }
  // a second visit in the same browser: vendor/ from the cache, the rest revalidated
  const again = await page.browserContext().newPage();
  t.pages.push(again);
  const cdp2 = await again.createCDPSession();
  await cdp2.send('Network.enable');
  const second = new Map();
  bytes = 0;
  cdp2.on('Network.responseReceived', (e) => {
    second.set(e.requestId, { url: e.response.url, type: e.type, status: e.response.status,
                              fromCache: e.response.fromDiskCache || e.response.fromMemoryCache });
  });
  cdp2.on('Network.loadingFinished', (e) => {
    const s = second.get(e.requestId);
    if (s && !s.fromCache && (s.type === 'Script' || s.type === 'Stylesheet')) bytes += e.encodedDataLength;
  });
  await again.goto(`${t.url}/#/servers/${c.server.id}`, { waitUntil: 'load' });
  await again.waitForSelector('section.server-page');
  await t.until(again, () => [...document.querySelectorAll('figure.chart')].every((f) => Number(f.dataset.points) > 0));
  await sleep(300);
  const vendor = [...second.values()].filter((s) => /\/vendor\//.test(s.url));
  assert(vendor.length >= 5 && vendor.every((s) => s.fromCache),
         `vendor from the cache: ${JSON.stringify(vendor)}`);
  const own = [...second.values()].filter((s) => /\.js$/.test(s.url) && !/\/vendor\//.test(s.url));
  t.result.revalidated = own.filter((s) => s.status === 304).length;
  t.result.secondLoadBytes = bytes;
};

// SSH keys: the create view sends customers without keys to the keys page; a private key
// is refused at the field with the API's words; a key is added (its fingerprint the one
// ssh-keygen -lf prints) and refused once more as a duplicate; a server is ordered with it
// ticked (none is by default); then the key is deleted after a confirmation.
exports.ssh_keys = async (t, c) => {
  const KEYS = /\/api\/account\/ssh-keys$/;
  t.expectHttp(400, KEYS, 'POST');
  t.expectHttp(409, KEYS, 'POST');
  const page = await t.page();
  await t.login(page, c.user);
  // ordering without keys: a short way to the keys page, and each OS says its kind
  await page.click('nav a[href="#/servers/new"]');
  await page.waitForSelector('[data-testid=create-keys-link]');
  const kinds = await page.$$eval('form.create input[name=os]', (els) => els.map((e) => ({
    id: e.value, kind: e.closest('label').querySelector('[data-kind]')?.textContent.trim() })));
  t.log(`OS kinds: ${JSON.stringify(kinds)}`);
  assert(kinds.length > 0 && kinds.every((k) => k.kind === 'Container' || k.kind === 'KVM'),
         `every OS has its kind: ${JSON.stringify(kinds)}`);
  equal(kinds.find((k) => k.id === String(c.osId))?.kind, 'Container', 'a container OS');
  if (c.kvmOsId) equal(kinds.find((k) => k.id === String(c.kvmOsId))?.kind, 'KVM', 'a KVM OS');
  await page.click('[data-testid=create-keys-link]');
  await page.waitForSelector('form.sshkey-add textarea');
  equal(await t.text(page, 'main h1'), 'SSH keys', 'the keys page');
  equal(await page.$eval('nav a[href="#/keys"]', (a) => a.getAttribute('aria-current')), 'page',
        'the menu marks the page');
  assert(await page.evaluate(() => document.activeElement?.tagName === 'H1'), 'focus on h1');
  await page.waitForSelector('[data-testid=sshkeys-none]');
  await t.assertA11y(page, 'ssh keys');
  // a private key: the API's message at the key's field, which gets the focus
  const textarea = 'form.sshkey-add textarea';
  await page.type(textarea, c.privateKey);
  await page.click('form.sshkey-add button[type=submit]');
  await page.waitForSelector('form.sshkey-add .field.has-error .field-error');
  const said = await page.$eval('form.sshkey-add .field.has-error', (f) => ({
    error: f.querySelector('.field-error').textContent,
    invalid: f.querySelector('textarea')?.getAttribute('aria-invalid'),
    described: (f.querySelector('textarea')?.getAttribute('aria-describedby') || '').split(' ')
      .includes(f.querySelector('.field-error').id),
  }));
  assert(said.error.startsWith('this is a private key: paste the .pub file'),
         `the API's words: ${said.error}`);
  assert(said.invalid === 'true' && said.described, `the field is marked ${JSON.stringify(said)}`);
  await t.until(page, () => document.activeElement?.tagName === 'TEXTAREA', null,
                { what: 'the focus on the key' });
  await t.shot(page, 'ssh-keys-private-refused');
  // a short RSA key: its own message
  if (c.smallRsa) {
    await page.$eval(textarea, (el) => { el.select(); });
    await page.keyboard.press('Backspace');
    await page.type(textarea, c.smallRsa);
    await page.click('form.sshkey-add button[type=submit]');
    await t.until(page, () => /at least 2048 bits/.test(document.querySelector('form.sshkey-add .field-error')?.textContent || ''),
                  null, { what: 'the RSA size refusal' });
  }
  // the real one, named
  await page.$eval(textarea, (el) => { el.select(); });
  await page.keyboard.press('Backspace');
  await page.type(textarea, c.publicKey);
  await page.type('form.sshkey-add input[name=name]', c.keyName);
  await page.click('form.sshkey-add button[type=submit]');
  await page.waitForSelector('tr[data-key]');
  const row = await page.$eval('tr[data-key]', (tr) => ({
    id: Number(tr.dataset.key), name: tr.querySelector('th').textContent.trim(),
    type: tr.querySelectorAll('td')[0].textContent.trim(),
    fingerprint: tr.querySelector('[data-testid=key-fingerprint]').textContent.trim(),
    added: tr.querySelectorAll('td')[2].textContent.trim() }));
  t.log(`listed: ${JSON.stringify(row)}`);
  equal(row.name, c.keyName, 'its name');
  equal(row.type, 'ssh-ed25519', 'its type');
  equal(row.fingerprint, c.fingerprint, 'the fingerprint ssh-keygen -lf prints');
  assert(/\d{4}/.test(row.added), `an added date: ${row.added}`);
  equal(await t.text(page, '[data-testid=sshkeys-flash]'), `The key ${c.keyName} has been added.`,
        'said');
  equal(await t.text(page, '[data-testid=sshkeys-count]'), '1 key of at most 32', 'the count');
  assert(!(await page.$('form.sshkey-add .field-error')), 'no error left');
  equal(await page.$eval(textarea, (el) => el.value), '', 'the form is empty again');
  // the same key again: 409, at the field
  await page.type(textarea, c.publicKey);
  await page.click('form.sshkey-add button[type=submit]');
  await t.until(page, () => /saved already/.test(document.querySelector('form.sshkey-add .field-error')?.textContent || ''),
                null, { what: 'the duplicate refusal' });
  await page.$eval(textarea, (el) => { el.select(); });
  await page.keyboard.press('Backspace');
  await t.assertA11y(page, 'ssh keys with one');
  await t.shot(page, 'ssh-keys');
  // a phone: the list fits
  const phone = await t.page({ width: 375, height: 812, mobile: true });
  await t.login(phone, c.user);
  await t.open(phone, '/keys');
  await phone.waitForSelector('tr[data-key]');
  await t.assertFits(phone, 'ssh keys');
  await t.shot(phone, 'phone-ssh-keys');
  // ordering: the key offered, not ticked; ticked, it is sent
  await page.click('nav a[href="#/servers/new"]');
  await page.waitForSelector(`[data-testid=create-keys] input[type=checkbox][value="${row.id}"]`);
  const boxes = await page.$$eval('[data-testid=create-keys] input[type=checkbox]',
                                  (els) => els.map((e) => e.checked));
  equal(JSON.stringify(boxes), '[false]', 'none ticked by default');
  assert((await t.text(page, '[data-testid=create-keys]')).includes(c.fingerprint),
         'the key shown by its fingerprint');
  await t.assertA11y(page, 'create with keys');
  const sent = [];
  page.on('request', (r) => { if (/\/api\/server\/create$/.test(r.url())) sent.push(r.postData()); });
  await page.click(`input[name=tariff][value="${c.tariffId}"]`);
  await page.click(`input[name=os][value="${c.osId}"]`);
  await page.click(`[data-testid=create-keys] input[value="${row.id}"]`);
  equal(await t.text(page, '[data-testid=create-keys-chosen]'), '1 key chosen.', 'the count');
  await t.shot(page, 'create-ssh-keys');
  await page.click('form.create button[type=submit]');
  await page.waitForSelector('dialog[open] .secret input');
  equal(sent.length, 1, 'one order');
  equal(JSON.stringify(JSON.parse(sent[0])), JSON.stringify({ osId: c.osId, tariffId: c.tariffId,
                                                              sshKeyIds: [row.id] }), 'the order');
  await page.click('dialog[open] .actions button');
  await page.waitForSelector('section.server-page');
  t.result.serverId = await page.$eval('section.server-page', (el) => Number(el.dataset.server));
  t.result.keyId = row.id;
  // deleting the key: asked first, then gone from the list, the focus on the list
  await page.click('nav a[href="#/keys"]');
  await page.waitForSelector(`tr[data-key="${row.id}"] [data-action=delete-key]`);
  await page.click(`tr[data-key="${row.id}"] [data-action=delete-key]`);
  await page.waitForSelector('dialog[open] [data-testid=confirm]');
  const question = await t.text(page, 'dialog[open]');
  assert(question.includes(`Delete the key ${c.keyName}?`) && question.includes(c.fingerprint),
         question);
  await t.shot(page, 'ssh-keys-delete');
  await confirmDialog(t, page);
  await page.waitForSelector('[data-testid=sshkeys-none]');
  equal(await t.text(page, '[data-testid=sshkeys-flash]'), `The key ${c.keyName} has been deleted.`,
        'said');
  await t.until(page, () => document.activeElement?.tagName === 'H2', null,
                { what: 'the focus on the list' });
  // in Russian, the page's words
  await page.select('[data-testid=language]', 'ru');
  await t.until(page, () => document.querySelector('main h1')?.textContent === 'SSH-ключи', null,
                { what: 'the page in Russian' });
  await page.select('[data-testid=language]', 'en');
};
