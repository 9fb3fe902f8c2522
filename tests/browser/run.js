// node run.js <scenario>: one scenario of scenarios.js against the browser and panel named
// in the JSON file $OSPAB_PANEL_TEST (tests/integration/test_panel.py writes it). Prints
// "@@result {...}" and exits 0, or prints why and exits 1.
'use strict';

const fs = require('fs');
const { Test } = require('./lib');
const scenarios = require('./scenarios');

async function main() {
  const name = process.argv[2];
  const fn = scenarios[name];
  if (!fn) {
    process.stderr.write(`unknown scenario ${name}; known: ${Object.keys(scenarios).join(', ')}\n`);
    return 2;
  }
  const config = JSON.parse(fs.readFileSync(process.env.OSPAB_PANEL_TEST, 'utf8'));
  const t = new Test(config);
  let failure = null;
  try {
    await t.connect();
    await fn(t, config);
    await t.check();
  } catch (e) {
    failure = e;
  }
  await t.close().catch(() => {});
  if (!failure && t.problems.length) {
    failure = new Error(`the page reported problems:\n  ${t.problems.join('\n  ')}`);
  } else if (failure && t.problems.length) {
    failure.message += `\nand the page reported:\n  ${t.problems.join('\n  ')}`;
  }
  if (failure) {
    process.stderr.write(`${failure.stack || failure}\n`);
    return 1;
  }
  process.stdout.write(`@@result ${JSON.stringify({ ...t.result, screenshots: t.shots })}\n`);
  return 0;
}

main().then((code) => process.exit(code), (e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
