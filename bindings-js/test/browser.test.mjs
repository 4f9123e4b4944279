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
    // Durability on OPFS: strict flushes every committed temp and append, relaxed none.
    const { strict, relaxed } = r.durability;
    assert.deepEqual([strict.reported, relaxed.reported], ['strict', 'relaxed']);
    assert.ok(strict.flushes >= 10, `strict: ${strict.flushes} flushes`);
    assert.equal(relaxed.flushes, 0);
    assert.deepEqual([strict.served, relaxed.served], [4, 4]);
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

test('Web Locks: one cache per OPFS directory in a page (fail fast, wait, abort, other directories)', { skip, timeout: 120_000 }, async () => {
  await withPage('/test/browser/locks.html', (log, errors) => {
    assert.deepEqual(errors, []);
    const failures = log.filter(([s]) => s !== 'ok');
    assert.deepEqual(failures, []);
    assert.ok(log.length >= 20, `only ${log.length} checks ran`);
  });
});

test('Web Locks across tabs: a second tab fails fast or waits; closing a tab releases the directory', { skip, timeout: 120_000 }, async () => {
  const server = await serve(0);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  try {
    const context = await browser.newContext();
    const errors = [];
    const tab = async () => {
      const page = await context.newPage();
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(`http://127.0.0.1:${server.address().port}/test/browser/tab.html`);
      await page.waitForFunction(() => window.__ready === true);
      return page;
    };
    const dir = `tabs-test-${Date.now()}`;
    const [one, two] = [await tab(), await tab()];
    const digest = await one.evaluate(async (dir) => {
      window.cache = await window.ocicache.openCache({ directory: dir });
      return window.cache.putBlob('from tab one');
    }, dir);
    const failed = await two.evaluate(async (dir) => {
      try {
        await window.ocicache.openCache({ directory: dir, wait: false });
        return null;
      } catch (e) {
        return { name: e.name, code: e.code, storage: e instanceof window.ocicache.StorageError, message: e.message };
      }
    }, dir);
    assert.deepEqual({ ...failed, message: undefined }, { name: 'DirectoryInUseError', code: 'storage', storage: true, message: undefined });
    assert.match(failed.message, /in use by another tab/);
    await two.evaluate((dir) => {
      window.state = 'pending';
      window.opening = window.ocicache.openCache({ directory: dir })
        .then((c) => { window.cache = c; window.state = 'resolved'; }, (e) => { window.state = `rejected: ${e}`; });
    }, dir);
    await new Promise((r) => setTimeout(r, 750));
    assert.equal(await two.evaluate(() => window.state), 'pending', 'tab two waits while tab one has the directory');
    await one.evaluate(() => window.cache.close());
    await two.waitForFunction(() => window.state !== 'pending', null, { timeout: 10_000 });
    assert.equal(await two.evaluate(() => window.state), 'resolved');
    assert.equal(await two.evaluate(async (d) => new TextDecoder().decode(await window.cache.getBlob(d)), digest), 'from tab one');

    // Tab two goes away without closing its cache: its worker ends, and so does its lock.
    await one.evaluate((dir) => {
      window.state = 'pending';
      window.opening = window.ocicache.openCache({ directory: dir })
        .then((c) => { window.cache = c; window.state = 'resolved'; }, (e) => { window.state = `rejected: ${e}`; });
    }, dir);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await one.evaluate(() => window.state), 'pending');
    await two.close();
    await one.waitForFunction(() => window.state !== 'pending', null, { timeout: 10_000 });
    assert.equal(await one.evaluate(() => window.state), 'resolved');
    assert.equal(await one.evaluate(async (d) => window.cache.hasBlob(d), digest), true);
    await one.evaluate(async (dir) => {
      await window.cache.close();
      await (await navigator.storage.getDirectory()).removeEntry(dir, { recursive: true });
    }, dir);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    server.close();
  }
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
