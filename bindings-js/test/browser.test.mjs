// The conformance scenarios in headless Chromium (Debian's, driven by playwright-core), the
// cache in a dedicated Worker on OPFS; plus the browser entry's main-thread API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { serve, registryProxy } from './browser/serve.mjs';
import { corsRegistry, image, EXPOSE } from './browser/cors-registry.mjs';
import { Peers, peersSkip } from './support/registry-peers.mjs';
import { decodePng, shareOfColour } from './support/png.mjs';

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
    assert.ok(strict.writes >= 10, `strict: ${strict.writes} commits and appends`);
    assert.ok(strict.flushes >= strict.writes, `strict: ${strict.flushes} flushes for ${strict.writes} commits and appends`);
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

// ----- cache.pull in the browser: the Worker does the HTTP against a CORS-enabled registry -----

/**
 * Runs `f(page, host)` in a fresh tab with the browser entry as `window.ocicache`; the page's
 * server passes `/v2/` through to `registry` (a base URL) if given.
 */
async function withTab(f, registry) {
  const server = await serve(0, registry ? registryProxy(registry) : null);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`http://127.0.0.1:${server.address().port}/test/browser/tab.html`);
    await page.waitForFunction(() => window.__ready === true);
    await f(page, `127.0.0.1:${server.address().port}`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    server.close();
  }
}

test('pull in the Worker from a CORS registry: cold, warm with no request, progress, nothing fetched on the main thread', { skip, timeout: 120_000 }, async () => {
  const img = image();
  const reg = await corsRegistry(img);
  try {
    await withTab(async (page) => {
      const r = await page.evaluate(async ({ reference, dir }) => {
        // The main thread's fetch is not used: the Worker has its own.
        let mainFetches = 0;
        const realFetch = window.fetch;
        window.fetch = (...a) => { mainFetches++; return realFetch(...a); };
        const hex = async (bytes) => [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))]
          .map((b) => b.toString(16).padStart(2, '0')).join('');
        let cache = await window.ocicache.openCache({ directory: dir });
        const events = [];
        const cold = await cache.pull(reference, { onProgress: (e) => events.push(e) });
        const warm = await cache.pull(reference);
        await cache.close();
        cache = await window.ocicache.openCache({ directory: dir });
        const layer = await cache.getBlob(cold.blobs.find((b) => b.size > 1000).digest);
        const out = {
          cold, warm, events, mainFetches,
          layerSha: `sha256:${await hex(layer)}`,
          manifestSha: `sha256:${await hex((await cache.getManifest(cold.digest)).bytes)}`,
          tag: await cache.resolveTag(reference),
          healthy: (await cache.checkIntegrity()).healthy,
        };
        await cache.close();
        await (await navigator.storage.getDirectory()).removeEntry(dir, { recursive: true });
        return out;
      }, { reference: reg.reference, dir: `pull-${Date.now()}` });
      assert.equal(r.mainFetches, 0);
      assert.equal(r.cold.digest, img.digests.manifest);
      assert.equal(r.cold.tag.state, 'fetched');
      assert.equal(r.cold.bytes_fetched, img.manifest.length + img.config.length + img.layer.length);
      assert.equal(r.layerSha, img.digests.layer);
      assert.equal(r.manifestSha, img.digests.manifest);
      assert.equal(r.tag.state, 'fresh');
      assert.ok(r.healthy);
      assert.equal(r.warm.requests, 0);
      assert.equal(r.warm.tag.state, 'fresh');
      // One GET each for the manifest and the blobs (after the TLS attempt that fails on a
      // plain-HTTP loopback port), each after a CORS preflight.
      const gets = reg.requests.filter((q) => q.method === 'GET').map((q) => q.path).sort();
      assert.deepEqual(gets, [`/v2/app/blobs/${img.digests.config}`, `/v2/app/blobs/${img.digests.layer}`, '/v2/app/manifests/1.0'].sort());
      assert.ok(reg.requests.some((q) => q.method === 'OPTIONS'), 'the Accept header needs a preflight');
      assert.ok(reg.requests.every((q) => q.origin === null || q.origin.startsWith('http://127.0.0.1:')));
      // Progress crossed the worker boundary: started, bytes adding up to the layer, done.
      const layerEvents = r.events.filter((e) => e.digest === img.digests.layer);
      assert.equal(layerEvents[0].type, 'started');
      assert.equal(layerEvents.at(-1).type, 'done');
      const bytes = layerEvents.filter((e) => e.type === 'bytes');
      assert.equal(bytes.reduce((n, e) => n + e.bytes, 0), img.layer.length);
      assert.equal(bytes.at(-1).received, img.layer.length);
    });
  } finally {
    reg.close();
  }
});

test('pull in the browser: signal stops it in the Worker, the next pull completes; errors arrive typed', { skip, timeout: 120_000 }, async () => {
  const img = image();
  const reg = await corsRegistry(img);
  const bare = await corsRegistry(img, { cors: false });
  try {
    await withTab(async (page) => {
      await page.evaluate(async ({ reference, dir }) => {
        window.cache = await window.ocicache.openCache({ directory: dir });
        window.dir = dir;
        const controller = new AbortController();
        window.reason = new Error('stopped by the test');
        window.events = [];
        window.aborted = window.cache.pull(reference, {
          signal: controller.signal,
          onProgress: (e) => window.events.push(e.type),
        }).then(() => 'resolved', (e) => (e === window.reason ? 'rejected with the reason' : `rejected: ${e}`));
        window.abort = () => controller.abort(window.reason);
      }, { reference: reg.reference, dir: `pull-abort-${Date.now()}` });
      reg.nextStall();
      await reg.stalled; // half the layer has reached the Worker, the rest hangs
      // Other calls run between the pull's steps: the layer is not stored yet.
      assert.equal(await page.evaluate((d) => window.cache.hasBlob(d), img.digests.layer), false);
      await page.evaluate(() => window.abort());
      assert.equal(await page.evaluate(() => window.aborted), 'rejected with the reason');
      await reg.closed; // the Worker's fetch was aborted: its connection went away
      const r = await page.evaluate(async ({ reference, bareReference }) => {
        const out = {};
        out.hasTag = await window.cache.hasTag(reference);
        out.report = await window.cache.pull(reference);
        const fail = async (p) => p.then(() => 'resolved', (e) => ({
          name: e.name, code: e.code, details: e.details, typed: e instanceof window.ocicache.OcicacheError,
          network: e instanceof window.ocicache.NetworkError, message: e.message,
          registry: e.registry, status: e.status, registryCode: e.registryCode,
        }));
        out.badRequest = await fail(window.cache.pull(reference.replace('app:1.0', 'broken:1')));
        out.notFound = await fail(window.cache.pull(reference.replace('app:1.0', 'app:2.0')));
        out.noCors = await fail(window.cache.pull(bareReference, { allowStale: false }));
        out.unknownOption = await fail(window.cache.pull(reference, { retries: 3 }));
        out.fetchOption = await fail(window.cache.pull(reference, { fetch: window.fetch }));
        const thrown = new Error('from onProgress');
        // A warm pull reports the cached blobs (from-cache): the first event throws.
        out.progressThrew = await window.cache.pull(reference, {
          onProgress: () => { throw thrown; },
        }).then(() => 'resolved', (e) => e === thrown || `${e}`);
        out.healthy = (await window.cache.checkIntegrity()).healthy;
        await window.cache.clear();
        return out;
      }, { reference: reg.reference, bareReference: bare.reference });
      // close() during a pull: the pull stops (its request aborted) and rejects; close resolves.
      reg.nextStall();
      await page.evaluate((reference) => {
        window.closing = window.cache.pull(reference).then(() => 'resolved', (e) => `rejected: ${e.name}`);
      }, reg.reference);
      await reg.stalled;
      assert.equal(await page.evaluate(async () => {
        await window.cache.close();
        await (await navigator.storage.getDirectory()).removeEntry(window.dir, { recursive: true });
        return window.closing;
      }), 'rejected: AbortError');
      await reg.closed;
      assert.equal(r.hasTag, false, 'an aborted pull records no tag');
      assert.equal(r.report.digest, img.digests.manifest);
      assert.equal(r.report.tag.state, 'fetched');
      // The aborted download was kept (a partial in OPFS) and continued with Range.
      const layer = r.report.blobs.find((b) => b.digest === img.digests.layer);
      assert.ok(layer.resumed_from > 0, JSON.stringify(layer));
      assert.ok(reg.requests.some((q) => q.range === `bytes=${layer.resumed_from}-`));
      assert.ok(r.healthy);
      assert.equal(r.notFound.name, 'NotFoundError');
      assert.ok(r.notFound.typed);
      assert.equal(r.noCors.name, 'NetworkError');
      assert.ok(r.noCors.network);
      assert.equal(r.noCors.code, 'network');
      assert.equal(r.noCors.details.registry, bare.host);
      assert.deepEqual([r.noCors.registry, r.noCors.status], [bare.host, null]);
      assert.deepEqual([r.badRequest.name, r.badRequest.registry, r.badRequest.status, r.badRequest.registryCode],
        ['NetworkError', reg.host, 400, 'NAME_INVALID']);
      assert.equal(r.unknownOption.name, 'InvalidArgumentError');
      assert.equal(r.fetchOption.name, 'InvalidArgumentError');
      assert.equal(r.progressThrew, true, 'rejects with what onProgress threw');
    });
  } finally {
    reg.close();
    bare.close();
  }
});

test('pull in the browser: token auth, blobs redirected to another origin, where the browser drops the Authorization', { skip, timeout: 120_000 }, async () => {
  const img = image(1 << 20);
  const authed = await corsRegistry(img, { bearer: true, redirectBlobs: true });
  try {
    await withTab(async (page) => {
      const r = await page.evaluate(async ({ reference, dir }) => {
        document.cookie = 'session=page-secret; path=/';
        const cache = await window.ocicache.openCache({ directory: dir });
        const report = await cache.pull(reference);
        const healthy = (await cache.checkIntegrity()).healthy;
        await cache.close();
        await (await navigator.storage.getDirectory()).removeEntry(dir, { recursive: true });
        return { report, healthy };
      }, { reference: authed.reference, dir: `pull-auth-${Date.now()}` });
      assert.ok(r.healthy);
      assert.equal(r.report.digest, img.digests.manifest);
      assert.deepEqual(r.report.blobs.map((b) => b.fetched), r.report.blobs.map((b) => b.size));
      // The registry got the token with every request after the challenge; the browser followed
      // the 307s to the other origin and dropped the Authorization there (the fetch standard).
      const blobGets = authed.requests.filter((q) => q.method === 'GET' && q.path.includes('/blobs/'));
      assert.equal(blobGets.length, 2);
      assert.ok(blobGets.every((q) => q.authorization === 'Bearer tok-browser'));
      // A blob request has no Accept: its preflight is for the Authorization.
      assert.ok(authed.requests.some((q) => q.method === 'OPTIONS' && q.path.includes('/blobs/')));
      const cdnGets = authed.cdn.requests.filter((q) => q.method === 'GET');
      assert.equal(cdnGets.length, 2);
      assert.deepEqual(cdnGets.map((q) => q.authorization), [null, null]);
      // A cross-origin redirect makes the request's origin opaque.
      assert.ok(cdnGets.every((q) => q.origin === 'null'), JSON.stringify(cdnGets));
    });
  } finally {
    authed.close();
  }
});

test('pull in the browser: the exposed headers the README lists are the ones the engine reads', { skip, timeout: 120_000 }, async () => {
  const img = image(1 << 20);
  const without = (h) => EXPOSE.filter((x) => x !== h);
  const regs = {
    full: await corsRegistry(img),
    noDigest: await corsRegistry(img, { expose: without('Docker-Content-Digest') }),
    noRange: await corsRegistry(img, { expose: without('Content-Range') }),
    noChallenge: await corsRegistry(img, { bearer: true, expose: without('WWW-Authenticate') }),
  };
  const CUT = 300_000;
  try {
    await withTab(async (page) => {
      await page.evaluate(async (dir) => {
        // Tags go stale after 1 ms, so that a second pull revalidates.
        window.cache = await window.ocicache.openCache({ directory: dir, config: { tag_ttl_ms: 1 } });
        window.dir = dir;
        window.fail = (p) => p.then(() => 'resolved', (e) => e.name);
      }, `pull-expose-${Date.now()}`);
      // A layer download broken after CUT bytes resumes with Range when Content-Range is
      // exposed, and fails when it is not.
      const breakOnce = async (reg, expression) => {
        reg.nextStall(CUT);
        await page.evaluate(async (ref) => {
          await window.cache.clear(); // the registries serve one image
          window.received = 0;
          window.result = window.cache.pull(ref, {
            allowStale: false,
            onProgress: (e) => { if (e.type === 'bytes') window.received = e.received; },
          });
        }, reg.reference);
        await reg.stalled;
        await page.waitForFunction((n) => window.received >= n, CUT);
        reg.cut();
        return page.evaluate(expression);
      };
      const full = await breakOnce(regs.full, () => window.result);
      const noRange = await breakOnce(regs.noRange, () => window.fail(window.result));
      assert.ok(regs.full.requests.some((q) => q.range === `bytes=${CUT}-`));
      regs.full.requests.length = 0;
      const r = await page.evaluate(async (refs) => {
        const out = {};
        for (const name of ['full', 'noDigest']) {
          await window.cache.clear();
          await window.cache.pull(refs[name]);
          await new Promise((resolve) => setTimeout(resolve, 20));
          out[name] = await window.cache.pull(refs[name]);
        }
        await window.cache.clear();
        out.noChallenge = await window.fail(window.cache.pull(refs.noChallenge));
        await window.cache.close();
        await (await navigator.storage.getDirectory()).removeEntry(window.dir, { recursive: true });
        return out;
      }, Object.fromEntries(Object.entries(regs).map(([k, v]) => [k, v.reference])));
      const layer = full.blobs.find((b) => b.digest === img.digests.layer);
      assert.equal(layer.resumed_from, CUT);
      assert.equal(noRange, 'NetworkError');
      assert.ok(regs.noRange.requests.some((q) => q.range === `bytes=${CUT}-`));
      // Revalidation: one HEAD when Docker-Content-Digest is exposed, a HEAD and a GET when not.
      const tagRequests = (reg) => reg.requests.filter((q) => q.path === '/v2/app/manifests/1.0' && q.method !== 'OPTIONS')
        .map((q) => q.method);
      assert.equal(r.full.tag.state, 'revalidated');
      assert.deepEqual(tagRequests(regs.full), ['GET', 'HEAD']);
      assert.equal(r.noDigest.tag.state, 'revalidated');
      assert.deepEqual(tagRequests(regs.noDigest), ['GET', 'HEAD', 'GET']);
      assert.equal(r.noChallenge, 'UnauthorizedError');
    });
  } finally {
    for (const reg of Object.values(regs)) reg.close();
  }
});

test('pull in the browser through a same-origin proxy from a registry without CORS headers', { skip, timeout: 120_000 }, async () => {
  const img = image(1 << 20);
  const bare = await corsRegistry(img, { cors: false });
  try {
    await withTab(async (page, host) => {
      const r = await page.evaluate(async ({ reference, dir }) => {
        document.cookie = 'session=page-secret; path=/';
        const cache = await window.ocicache.openCache({ directory: dir });
        const report = await cache.pull(reference);
        const layer = await cache.hasBlob(report.blobs.find((b) => b.size > 1000).digest);
        await cache.close();
        await (await navigator.storage.getDirectory()).removeEntry(dir, { recursive: true });
        return { report, layer };
      }, { reference: `${host}/app:1.0`, dir: `pull-proxy-${Date.now()}` });
      assert.equal(r.report.digest, img.digests.manifest);
      assert.equal(r.report.reference, `${host}/app:1.0`);
      assert.ok(r.layer);
      // Same origin: no preflight, and the registry never answered with a CORS header.
      assert.equal(bare.requests.filter((q) => q.method === 'OPTIONS').length, 0);
      assert.equal(bare.requests.filter((q) => q.method === 'GET').length, 3);
      // The page's cookie stays in the page (credentials: 'omit').
      assert.deepEqual(bare.requests.map((q) => q.cookie).filter(Boolean), []);
    }, `http://${bare.host}`);
  } finally {
    bare.close();
  }
});

// The example page's status colours (examples/browser/pull.html).
const SUCCESS = [0x1a, 0x7f, 0x37];
const FAILURE = [0xcf, 0x22, 0x2e];

test('the pull example page pulls from a real CORS-enabled docker-registry into OPFS and shows it (screenshot)', { skip: skip || peersSkip, timeout: 240_000 }, async () => {
  const peers = new Peers();
  const server = await serve(0);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  try {
    const cors = await peers.registry({ cors: '*' });
    const bare = await peers.registry();
    const built = await cors.push('demo/hello:1.0', { seed: 5, layers: [150_000, 40_000] });
    await bare.push('demo/hello:1.0', { seed: 5, layers: [150_000, 40_000] });
    const open = async (registry) => {
      const page = await browser.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      const ref = encodeURIComponent(registry.reference('demo/hello:1.0'));
      await page.goto(`http://127.0.0.1:${server.address().port}/examples/browser/pull.html?ref=${ref}`);
      await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.state), null, { timeout: 180_000 });
      assert.deepEqual(errors, []);
      return page;
    };

    const page = await open(cors);
    const status = await page.textContent('#status');
    assert.equal(await page.evaluate(() => document.body.dataset.state), 'done', status);
    // The digest the page shows is the one the registry serves for the tag.
    const head = await fetch(`${cors.url}/v2/demo/hello/manifests/1.0`, {
      method: 'HEAD', headers: { Accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json' },
    });
    assert.equal(head.status, 200);
    assert.equal(await page.textContent('#digest'), head.headers.get('docker-content-digest'));
    assert.equal(built.digest, head.headers.get('docker-content-digest'));
    assert.equal(await page.textContent('#reference'), cors.reference('demo/hello:1.0'));
    const rows = await page.$$eval('#layers tr', (trs) => trs.map((tr) => tr.textContent));
    assert.equal(rows.length, 2);
    assert.match(await page.textContent('#bytes'), /MiB fetched/);
    // docker-registry itself answered the preflights.
    const log = await cors.requests();
    assert.ok(log.some((r) => r.method === 'OPTIONS' && r.status === 200), JSON.stringify(log));
    // What the page shows: the status area in the success colour.
    const shot = decodePng(await page.locator('#status').screenshot());
    assert.ok(shareOfColour(shot, SUCCESS) > 0.5, `success colour in ${shareOfColour(shot, SUCCESS)} of the status area`);
    if (process.env.OCICACHE_SCREENSHOTS) {
      fs.writeFileSync(path.join(process.env.OCICACHE_SCREENSHOTS, 'pull-example.png'), await page.screenshot({ fullPage: true }));
    }

    // The same page against a registry without CORS headers fails, and the check sees it.
    const failed = await open(bare);
    assert.equal(await failed.evaluate(() => document.body.dataset.state), 'failed');
    assert.match(await failed.textContent('#status'), /NetworkError/);
    const red = decodePng(await failed.locator('#status').screenshot());
    assert.ok(shareOfColour(red, SUCCESS) < 0.01);
    assert.ok(shareOfColour(red, FAILURE) > 0.5);
  } finally {
    await browser.close();
    server.close();
    await peers.close();
  }
});

test('a real docker-registry with auth refuses the preflight; through a same-origin proxy the browser pulls with credentials', { skip: skip || peersSkip, timeout: 240_000 }, async () => {
  const peers = new Peers();
  try {
    const tokens = await peers.tokenServer({ users: [['reader', 's3cret']], anonymous: false });
    const basic = await peers.registry({ cors: '*', auth: { basic: [['reader', 's3cret']] } });
    const token = await peers.registry({ cors: '*', auth: { token: tokens.id } });
    const built = await basic.push('team/app:2.0', { seed: 8, layers: [60_000], credentials: ['reader', 's3cret'] });
    await token.push('team/app:2.0', { seed: 8, layers: [60_000], credentials: ['reader', 's3cret'] });
    const creds = (host) => ({ [host]: { username: 'reader', password: 's3cret' } });
    // Directly: distribution authenticates the preflight OPTIONS too (401), so the browser
    // never sends the request.
    await withTab(async (page) => {
      const r = await page.evaluate(async ({ refs, dir }) => {
        const cache = await window.ocicache.openCache({ directory: dir });
        const out = {};
        for (const [name, [ref, credentials]] of Object.entries(refs)) {
          out[name] = await cache.pull(ref, { credentials }).then(() => 'resolved', (e) => e.name);
        }
        await cache.close();
        await (await navigator.storage.getDirectory()).removeEntry(dir, { recursive: true });
        return out;
      }, {
        refs: {
          basic: [basic.reference('team/app:2.0'), creds(basic.host)],
          token: [token.reference('team/app:2.0'), creds(token.host)],
        },
        dir: `pull-auth-direct-${Date.now()}`,
      });
      assert.deepEqual(r, { basic: 'NetworkError', token: 'NetworkError' });
      for (const registry of [basic, token]) {
        const preflights = (await registry.requests()).filter((q) => q.method === 'OPTIONS');
        assert.ok(preflights.length > 0 && preflights.every((q) => q.status === 401), JSON.stringify(preflights));
      }
    });
    // Through a proxy on the page's origin there is no preflight: the registry's challenge
    // reaches the engine, which answers it with the credentials given for the page's host.
    await basic.clearRequests();
    await withTab(async (page, host) => {
      const r = await page.evaluate(async ({ reference, credentials, dir }) => {
        const cache = await window.ocicache.openCache({ directory: dir });
        const fail = (p) => p.then(() => 'resolved', (e) => e.name);
        const out = {
          anonymous: await fail(cache.pull(reference)),
          wrong: await fail(cache.pull(reference, { credentials: { [Object.keys(credentials)[0]]: { username: 'reader', password: 'nope' } } })),
          report: await cache.pull(reference, { credentials }),
        };
        await cache.close();
        await (await navigator.storage.getDirectory()).removeEntry(dir, { recursive: true });
        return out;
      }, { reference: `${host}/team/app:2.0`, credentials: creds(host), dir: `pull-auth-proxy-${Date.now()}` });
      assert.equal(r.anonymous, 'UnauthorizedError');
      assert.equal(r.wrong, 'UnauthorizedError');
      assert.equal(r.report.digest, built.digest);
      const log = await basic.requests();
      assert.ok(log.every((q) => q.method !== 'OPTIONS'));
      assert.ok(log.some((q) => q.auth_scheme?.toLowerCase() === 'basic' && q.status === 200 && q.path.includes('/blobs/')));
    }, basic.url);
  } finally {
    await peers.close();
  }
});
