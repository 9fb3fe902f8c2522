// The screenshots of docs/panel.md, taken from a running demo (scripts/demo):
//
//   node tests/browser/docshots.js http://127.0.0.1:8080 docs/panel
//
// Debian's chromium, headless, in a fresh profile; logs in as the demo customer, visits
// each screen in English (and the list in Russian) and writes <dir>/<screen>.png.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const puppeteer = require('puppeteer-core');

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
               '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const [url, dir] = process.argv.slice(2);
  if (!url || !dir) throw new Error('usage: docshots.js URL DIR');
  fs.mkdirSync(dir, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ospab-docshots-'));
  const browser = await puppeteer.launch({ executablePath: '/usr/bin/chromium', headless: true,
                                           ignoreDefaultArgs: true,
                                           args: [...FLAGS, `--user-data-dir=${profile}`,
                                                  'about:blank'] });
  try {
    const shot = async (page, name, opts = {}) => {
      await sleep(400);
      await page.screenshot({ path: path.join(dir, `${name}.png`), ...opts });
      process.stdout.write(`${name}.png\n`);
    };
    for (const lang of ['en', 'ru']) {
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      await page.setViewport({ width: 1200, height: 760 });
      await page.evaluateOnNewDocument((l) => localStorage.setItem('ospab.lang', l), lang);
      await page.goto(`${url}/`, { waitUntil: 'networkidle0' });
      await page.waitForSelector('input[type=email]');
      if (lang === 'en') await shot(page, 'login');
      await page.type('input[type=email]', 'demo@ospab.local');
      await page.type('input[type=password]', 'demo-password');
      await page.keyboard.press('Enter');
      await page.waitForSelector('tr[data-server]');
      await shot(page, lang === 'en' ? 'servers' : 'servers-ru');
      if (lang === 'en') {
        await page.click('tr[data-server] a');
        await page.waitForSelector('figure.chart[data-points]:not([data-points=""])');
        await page.click('.segmented button[data-timeframe=week]');
        await page.waitForFunction(() => [...document.querySelectorAll('figure.chart')]
          .every((f) => f.dataset.timeframe === 'week' && Number(f.dataset.points) > 0));
        await shot(page, 'server', { fullPage: true });
        await page.goto(`${url}/#/servers/new`);
        await page.waitForSelector('form.create');
        await shot(page, 'create');
        const phone = await context.newPage();
        await phone.setViewport({ width: 375, height: 760, isMobile: true, hasTouch: true });
        await phone.goto(`${url}/#/servers`, { waitUntil: 'networkidle0' });
        await phone.waitForSelector('tr[data-server]');
        await shot(phone, 'phone');
      }
      await context.close();
    }
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
