// The conformance scenarios in headless Chromium (Debian's, driven by playwright-core), the
// cache in a dedicated Worker on OPFS; plus the browser entry's main-thread API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { serve } from './browser/serve.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

let chromium = null;
let skip = false;
if (!fs.existsSync(CHROMIUM)) skip = `no Chromium at ${CHROMIUM} (apt-get install -y chromium)`;
else {
  try {
    ({ chromium } = await import('playwright-core'));
  } catch {
    skip = 'playwright-core is not installed (npm install in bindings-js)';
  }
}
if (skip) console.log(`# SKIP browser tests: ${skip}`);
// In CI nothing may skip: a missing prerequisite is a failure there.
if (skip && process.env.CI) throw new Error(`browser tests cannot run in CI: ${skip}`);

async function withPage(path, f) {
  const server = await serve(0);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`http://127.0.0.1:${server.address().port}${path}`);
    await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 300_000 });
    const result = await page.evaluate(() => window.__result);
    await f(result, errors);
  } finally {
    await browser.close();
    server.close();
  }
}

test('conformance scenarios in a Worker on OPFS (headless Chromium)', { skip, timeout: 600_000 }, async () => {
  await withPage('/test/browser/conformance.html', (r) => {
    assert.equal(r.error, undefined, r.error);
    console.log(`# browser conformance: ${r.passed} of ${r.total} scenarios passed (${r.steps} steps)`);
    assert.deepEqual(r.failed, []);
    assert.ok(r.total >= 80);
    assert.equal(r.passed, r.total);
  });
});

test('browser entry: async API over the Worker, typed errors, streams, reopen on OPFS', { skip, timeout: 120_000 }, async () => {
  await withPage('/test/browser/rpc.html', (log, errors) => {
    assert.deepEqual(errors, []);
    const failures = log.filter(([s]) => s !== 'ok');
    assert.deepEqual(failures, []);
    assert.ok(log.length >= 9);
  });
});

test('the example page works when served from localhost', { skip, timeout: 120_000 }, async () => {
  const server = await serve(0);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`http://127.0.0.1:${server.address().port}/examples/browser/index.html`);
    await page.waitForFunction(() => window.__done === true || document.body.dataset.failed, null, { timeout: 60_000 });
    const text = await page.textContent('#out');
    assert.deepEqual(errors, []);
    assert.match(text, /stored sha256:[0-9a-f]{64}/);
    assert.match(text, /"state":"fresh"/);
    assert.match(text, /streamed 11 bytes back/);
    assert.match(text, /NotFoundError \(not_found\)/);
  } finally {
    await browser.close();
    server.close();
  }
});
