// Resumable partials on OPFS, in headless Chromium: a pull aborted through its AbortSignal in a
// Worker keeps what arrived of the layer, and after the storage and cache are opened again (as
// after a reload) the next pull asks only for the rest, with `Range`; a cleanup removes an idle
// partial and keeps one held open. The registry is served on the page's own origin
// (test/registry-fixture.mjs mounted on test/browser/serve.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { serve } from './browser/serve.mjs';
import { image, registryState } from './registry-fixture.mjs';

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
if (skip) console.log(`# SKIP browser partials: ${skip}`);
if (skip && process.env.CI) throw new Error(`browser tests cannot run in CI: ${skip}`);

test('OPFS: a pull aborted mid-layer in a Worker is resumed with Range after a reopen; cleanup removes idle partials', { skip, timeout: 120_000 }, async () => {
  const img = image();
  const reg = registryState(img);
  const n = 120_000;
  reg.stallLayer(n);
  const server = await serve(0, reg.handle);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    const port = server.address().port;
    const q = new URLSearchParams({ ref: `127.0.0.1:${port}/app:1.0`, layer: img.digests.layer, n: String(n) });
    await page.goto(`http://127.0.0.1:${port}/test/browser/partials.html?${q}`);
    await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 100_000 });
    const r = await page.evaluate(() => window.__result);
    assert.equal(r.error, undefined, r.error);
    assert.deepEqual(errors, []);
    assert.equal(r.aborted, 'AbortError');
    assert.equal(r.hasLayerAfterAbort, false);
    assert.equal(r.partialAfterAbort, n, 'what arrived is kept');
    assert.equal(r.opfsPartialSize, n, 'in OPFS, under partials/sha256/<hex>');
    // The registry saw the whole layer asked for once, then only the rest.
    assert.deepEqual(reg.layerRequests().filter((x) => x.method === 'GET').map((x) => x.range), [null, `bytes=${n}-`]);
    assert.equal(r.resumedFrom, n);
    assert.equal(r.fetched, img.layer.length - n);
    assert.equal(`sha256:${r.layerHex}`, img.digests.layer);
    assert.equal(r.healthy, true);
    assert.equal(r.partialAfterResume, null);
    assert.equal(r.opfsPartialAfterResume, null);
    assert.equal(r.secondOpen, null, 'a partial open already is refused');
    assert.equal(r.idleAfterCleanup, null, 'cleanup removed the idle partial');
    assert.equal(r.heldAfterCleanup, 4, 'and kept the one held open');
  } finally {
    await browser.close();
    server.closeAllConnections();
    server.close();
  }
});
