// The customer panel in a real browser: what every scenario of scenarios.js gets.
//
// tests/integration/test_panel.py starts Apache (module, panel, agent, simulator) and one
// Debian chromium (test_demo.py: scripts/demo's), then runs `node run.js <scenario>` with
// OSPAB_PANEL_TEST naming a JSON file: {url, ws, screens, ...world}. A scenario asks
// Python for things only Python can do (make a guest hot, read the simulator, revoke a
// login) with t.rpc(op, args): a line "@@rpc {...}" on stdout, answered by a JSON line on
// stdin.
//
// Every page gets guards: a console error, an uncaught exception, a failed request or an
// HTTP error the scenario did not declare with t.expectHttp(), or a CSP violation fails the
// scenario. t.requests lists what every page asked of the network, WebSockets included.
'use strict';

const fs = require('fs');
const path = require('path');
const readline = require('readline');
const puppeteer = require('puppeteer-core');

const DEFAULT_WAIT = 20000;

class Rpc {
  constructor() {
    this.n = 0;
    this.waiting = new Map();
    this.rl = readline.createInterface({ input: process.stdin });
    this.rl.on('line', (line) => {
      let m;
      try {
        m = JSON.parse(line);
      } catch {
        return;
      }
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.error) w.reject(new Error(`rpc: ${m.error}`));
      else w.resolve(m.result);
    });
  }

  call(op, args = {}) {
    const id = ++this.n;
    process.stdout.write(`@@rpc ${JSON.stringify({ id, op, args })}\n`);
    return new Promise((resolve, reject) => this.waiting.set(id, { resolve, reject }));
  }

  close() {
    this.rl.close();
  }
}

class Test {
  constructor(config) {
    this.config = config;
    this.url = config.url;
    this.rpcClient = new Rpc();
    this.problems = [];
    this.expected = [];           // [{method, url: RegExp, status}]
    this.contexts = [];
    this.pages = [];
    this.result = {};
    this.shots = [];
    this.requests = [];           // every page's: [{page, kind, url}], WebSockets too
  }

  async connect() {
    this.browser = await puppeteer.connect({ browserWSEndpoint: this.config.ws,
                                             defaultViewport: null });
  }

  log(...args) {
    process.stdout.write(`@@log ${args.join(' ')}\n`);
  }

  rpc(op, args) {
    return this.rpcClient.call(op, args);
  }

  // an HTTP error this scenario causes on purpose: status, a URL regex, the method, and
  // the page it is expected on (any page when not given)
  expectHttp(status, url, method = null, page = null) {
    this.expected.push({ status, url: url instanceof RegExp ? url : new RegExp(url), method,
                         page });
  }

  isExpected(status, url, method, page) {
    return this.expected.some((e) => e.status === status && e.url.test(url)
                                      && (!e.method || !method || e.method === method)
                                      && (!e.page || e.page === page));
  }

  // A fresh browser context (its own cookies and storage) and a page in it, with guards.
  // lang: the browser's languages (navigator.languages); width/height; mobile.
  async page({ lang = ['en-US', 'en'], width = 1280, height = 900, mobile = false } = {}) {
    const context = await this.browser.createBrowserContext();
    this.contexts.push(context);
    await context.overridePermissions(this.url, ['clipboard-read', 'clipboard-write',
                                                 'clipboard-sanitized-write']);
    const page = await context.newPage();
    this.pages.push(page);
    page.setDefaultTimeout(DEFAULT_WAIT);
    await page.setViewport({ width, height, isMobile: mobile, hasTouch: mobile,
                             deviceScaleFactor: 1 });
    await page.evaluateOnNewDocument((langs) => {
      Object.defineProperty(navigator, 'languages', { get: () => langs });
      Object.defineProperty(navigator, 'language', { get: () => langs[0] });
      window.__csp = [];
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
      });
    }, lang);
    const tag = `page${this.pages.length}`;
    page.__tag = tag;
    page.__closing = false;
    // what the page asks of the network: puppeteer's requests leave WebSockets out, the
    // DevTools protocol's Network.webSocketCreated names them
    page.on('request', (req) => this.requests.push({ page: tag, kind: req.resourceType(),
                                                     url: req.url() }));
    const cdp = await page.createCDPSession();
    await cdp.send('Network.enable');
    cdp.on('Network.webSocketCreated', (e) => this.requests.push({ page: tag,
                                                                   kind: 'websocket',
                                                                   url: e.url }));
    page.on('console', (msg) => {
      if (page.__closing) return;
      const type = msg.type();
      const loc = msg.location()?.url || '';
      const text = msg.text();
      if (type === 'error' || type === 'assert') {
        // the browser's own line for an HTTP error we expected
        const m = text.match(/^Failed to load resource: the server responded with a status of (\d+)/);
        if (m && this.isExpected(Number(m[1]), loc, null, page)) return;
        this.problems.push(`${tag}: console.${type}: ${text} (${loc})`);
      } else if (/Content[- ]Security[- ]Policy|Refused to/i.test(text)) {
        this.problems.push(`${tag}: CSP: ${text}`);
      }
    });
    page.on('pageerror', (e) => {
      if (!page.__closing) this.problems.push(`${tag}: uncaught: ${e.message}`);
    });
    page.on('requestfailed', (req) => {
      if (page.__closing) return;
      const why = req.failure()?.errorText || '';
      // Socket.IO ends its own long-polls when it upgrades or reconnects
      if (why === 'net::ERR_ABORTED' && /\/socket\.io\//.test(req.url())) return;
      this.problems.push(`${tag}: request failed: ${req.method()} ${req.url()} ${why}`);
    });
    page.on('response', (res) => {
      if (page.__closing || res.status() < 400) return;
      const req = res.request();
      if (this.isExpected(res.status(), res.url(), req.method(), page)) return;
      this.problems.push(`${tag}: HTTP ${res.status()} ${req.method()} ${res.url()}`);
    });
    return page;
  }

  async open(page, hash = '') {
    await page.goto(`${this.url}/${hash ? `#${hash}` : ''}`, { waitUntil: 'load' });
  }

  // Logs in through the form, by keyboard like a person; waits for the list.
  async login(page, user, { open = true } = {}) {
    if (open) await this.open(page);
    await page.waitForSelector('input[type=email]');
    await page.click('input[type=email]');
    await page.keyboard.type(user.email);
    await page.keyboard.press('Tab');
    await page.keyboard.type(user.password);
    await page.keyboard.press('Enter');
    await page.waitForSelector('[data-testid=who]');
  }

  async shot(page, name) {
    const file = path.join(this.config.screens, `${name}.png`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    await page.screenshot({ path: file, fullPage: true });
    this.shots.push(file);
  }

  // fn() in the page until it returns something truthy; that value
  async until(page, fn, arg, { timeout = DEFAULT_WAIT, what = 'a condition' } = {}) {
    try {
      const h = await page.waitForFunction(fn, { timeout, polling: 100 }, arg);
      return await h.jsonValue();
    } catch (e) {
      throw new Error(`timed out waiting for ${what}: ${e.message}`);
    }
  }

  async text(page, selector) {
    return page.$eval(selector, (el) => el.textContent.trim());
  }

  // the button with this text (or data-action), when it is enabled
  async click(page, selector) {
    await page.waitForSelector(`${selector}:not([disabled])`);
    await page.click(selector);
  }

  // What keyboard and screen-reader users need on this screen: every field has a label,
  // every button a name, every image an alt; returns the offenders.
  async a11y(page) {
    return page.evaluate(() => {
      const bad = [];
      const visible = (el) => el.getClientRects().length > 0;
      for (const el of document.querySelectorAll('input, select, textarea')) {
        if (!visible(el) || el.type === 'hidden') continue;
        if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label')) {
          bad.push(`unlabelled ${el.tagName.toLowerCase()} ${el.name || el.id}`);
        }
      }
      for (const el of document.querySelectorAll('button, a[href]')) {
        if (!visible(el)) continue;
        if (!el.textContent.trim() && !el.getAttribute('aria-label')) bad.push(`nameless ${el.outerHTML.slice(0, 80)}`);
      }
      for (const el of document.querySelectorAll('img')) {
        if (!el.hasAttribute('alt')) bad.push(`img without alt ${el.src}`);
      }
      return bad;
    });
  }

  async assertA11y(page, screen) {
    const bad = await this.a11y(page);
    if (bad.length) throw new Error(`${screen}: ${bad.join('; ')}`);
  }

  // no sideways scrolling at this width
  async assertFits(page, screen) {
    const w = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    if (w[0] > w[1]) throw new Error(`${screen}: ${w[0]} px wide on a ${w[1]} px screen`);
  }

  async check() {
    for (const page of this.pages) {
      if (page.isClosed()) continue;
      try {
        const csp = await page.evaluate(() => window.__csp || []);
        for (const v of csp) this.problems.push(`CSP violation: ${v}`);
      } catch {
        // a page that navigated away mid-check
      }
    }
  }

  async close() {
    for (const page of this.pages) page.__closing = true;
    for (const c of this.contexts) {
      try {
        await c.close();
      } catch {
        // already gone
      }
    }
    this.rpcClient.close();
    if (this.browser) await this.browser.disconnect();
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

function equal(a, b, message) {
  if (a !== b) throw new Error(`assertion failed: ${message}: ${JSON.stringify(a)} !== ${JSON.stringify(b)}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

module.exports = { Test, assert, equal, sleep };
