// Drives headless Chromium through two taskboard replicas for
// replicas_test.go: alice on replica 1 assigns task 17 to bob, whose page is
// served by replica 2 (and whose bell is fed by replica 2's Herald); bob's
// bell must light up. Then bob, with a second tab on replica 1, marks all
// read on replica 2, and the tab on replica 1 must follow.
//
//   node replicas.mjs URL1 URL2 OUTPUT_DIR
//
// playwright-core is taken from testing/browser/node_modules (env
// PLAYWRIGHT_PACKAGE names its package.json). Prints one JSON line: {ok, ...}.
import { createRequire } from 'node:module';
import path from 'node:path';

const [url1, url2, outDir] = process.argv.slice(2);
const require = createRequire(process.env.PLAYWRIGHT_PACKAGE);
const { chromium } = require('playwright-core');
const redact = (s) => String(s).replace(/token=[^&\s'"]+/g, 'token=REDACTED')
  .replace(/eyJ[\w-]+\.[\w-]+\.[\w-]+/g, 'JWT-REDACTED');
const log = (...args) => process.stderr.write(redact(args.join(' ')) + '\n');
const timeout = 30_000;

// A fresh profile (user-data-dir) per launch is playwright's default.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

async function openAs(context, base, user, name) {
  const page = await context.newPage();
  page.on('console', (m) => log(`${name} console.${m.type()}:`, m.text()));
  page.on('pageerror', (e) => log(`${name} pageerror:`, e.message));
  await page.goto(`${base}/login?user=${user}`, { waitUntil: 'load' });
  await page.waitForFunction(() => document.getElementById('bell-state')?.dataset.state === 'open',
    null, { timeout });
  return page;
}

const count = (page) => page.$eval('#bell-count', (e) => Number(e.dataset.count));
const waitCount = (page, n) => page.waitForFunction(
  (want) => document.getElementById('bell-count')?.dataset.count === String(want), n, { timeout });

let result;
try {
  const alice = await openAs(await browser.newContext(), url1, 'alice', 'alice@1');
  const bobContext = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const bob = await openAs(bobContext, url2, 'bob', 'bob@2');
  const before = await count(bob);

  // alice assigns task 17 to bob on replica 1.
  await alice.fill('#task-17 form.assign input[name=assignee]', 'bob');
  await alice.click('#task-17 form.assign button');
  await alice.waitForFunction(() => document.getElementById('status')?.textContent.includes('notified bob'),
    null, { timeout });

  // bob's bell, fed by replica 2's Herald, lights up.
  const t0 = Date.now();
  await waitCount(bob, before + 1);
  const latencyMs = Date.now() - t0;
  await bob.click('#bell-button');
  await bob.locator('#bell-list .notification', { hasText: 'Task 17 was assigned to you' })
    .waitFor({ timeout });
  const screenshots = [path.join(outDir, 'bob-on-replica-2.png'), path.join(outDir, 'alice-on-replica-1.png')];
  await bob.screenshot({ path: screenshots[0], fullPage: true });
  await alice.screenshot({ path: screenshots[1], fullPage: true });

  // Read state crosses replicas too: bob's tab on replica 1 follows a
  // "mark all read" made on replica 2.
  const bobOn1 = await openAs(bobContext, url1, 'bob', 'bob@1');
  await waitCount(bobOn1, before + 1);
  await bob.click('#mark-all');
  await waitCount(bob, 0);
  await waitCount(bobOn1, 0);

  result = { ok: true, before, after: before + 1, latencyMs, screenshots };
} catch (err) {
  result = { ok: false, error: redact(err.message.split('\n')[0]) };
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(result.ok ? 0 : 1);
