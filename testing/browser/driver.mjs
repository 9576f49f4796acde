// Drives headless Chromium (Debian's /usr/bin/chromium, through
// playwright-core) for browser_test.go. The Go test owns the scenario: it
// writes one JSON command per line on stdin and reads one JSON answer per
// line on stdout ({ok: true, ...} or {ok: false, error}). Page console
// output goes to stderr with tokens blanked out.
//
// Commands: open {url}; waitBadge {count}; waitItem {title}; waitStatus
// {prefix}; click {title}; state; closes (the codes of the page client's
// close events); screenshot {path}; quit. Waits take {timeout} in ms
// (default 15000).

import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const redact = (s) => String(s).replace(/token=[^&\s'"]+/g, 'token=REDACTED');
const log = (...args) => process.stderr.write(redact(args.join(' ')) + '\n');

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
page.on('console', (m) => log(`console.${m.type()}:`, m.text()));
page.on('pageerror', (e) => log('pageerror:', e.message));
page.on('requestfailed', (r) => log('requestfailed:', r.url(), r.failure()?.errorText ?? ''));

// state reads what the page shows.
function state() {
  return page.evaluate(() => ({
    badge: document.getElementById('badge')?.dataset.count,
    status: document.getElementById('status')?.textContent,
    items: [...document.querySelectorAll('#list li .title')].map((e) => e.textContent),
  }));
}

const commands = {
  async open({ url }) {
    await page.goto(url, { waitUntil: 'load' });
    // Record the close codes the page's client sees (window.herald is the page's client).
    await page.evaluate(() => {
      window.__closes = [];
      window.herald.on('close', (e) => window.__closes.push(e.code));
    });
  },
  async closes() {
    return { closes: await page.evaluate(() => window.__closes) };
  },
  async waitBadge({ count, timeout }) {
    await page.waitForFunction((n) => document.getElementById('badge')?.dataset.count === String(n),
      count, { timeout });
  },
  async waitItem({ title, timeout }) {
    await page.waitForFunction((t) => [...document.querySelectorAll('#list li .title')]
      .some((e) => e.textContent === t), title, { timeout });
  },
  async waitStatus({ prefix, timeout }) {
    await page.waitForFunction((p) => document.getElementById('status')?.textContent.startsWith(p),
      prefix, { timeout });
  },
  async click({ title, timeout }) {
    await page.locator('#list li', { hasText: title }).first().click({ timeout });
  },
  async state() {
    return state();
  },
  async screenshot({ path }) {
    await page.screenshot({ path, fullPage: true });
  },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const { cmd, ...args } = JSON.parse(line);
  if (cmd === 'quit') break;
  args.timeout ??= 15_000;
  let answer;
  try {
    if (!commands[cmd]) throw new Error(`unknown command ${cmd}`);
    answer = { ok: true, ...(await commands[cmd](args)) };
  } catch (err) {
    answer = { ok: false, error: redact(err.message.split('\n')[0]), state: await state().catch(() => null) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
await browser.close();
