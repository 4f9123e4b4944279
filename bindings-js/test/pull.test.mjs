// cache.pull through the real global fetch (undici) against a tiny registry served by this
// test on 127.0.0.1: one image (a manifest, its config and one layer). The engine tries TLS
// first and falls back to plain HTTP, as it does for every loopback registry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { image as fixtureImage } from './registry-fixture.mjs';
import { once } from 'node:events';
import { Cache, MemoryStorage } from '../src/node.js';

// A 200 000-byte layer: the cut below (70 000) falls inside it.
const image = () => fixtureImage(200_000);

/**
 * A registry serving `img` as `app:1.0`. `requests` lists what it was asked (method, path,
 * range). `breakLayer`: the next layer response sends that many bytes, then the connection
 * is cut. `nextStall()`: the next layer response sends half, then hangs (until the test ends);
 * `stalled` resolves when it does. `failManifest`: that many tag manifest GETs answer 503.
 */
async function registry(img) {
  const blobs = new Map([[img.digests.config, img.config], [img.digests.layer, img.layer]]);
  const state = { requests: [], breakLayer: null, stallLayer: false, stalled: null, failManifest: 0 };
  let onStall = null;
  state.nextStall = () => {
    state.stallLayer = true;
    state.stalled = new Promise((resolve) => {
      onStall = resolve;
    });
  };
  const server = http.createServer((req, res) => {
    state.requests.push({ method: req.method, path: req.url, range: req.headers.range ?? null });
    if (req.url === '/v2/app/manifests/1.0' && state.failManifest > 0) {
      state.failManifest--;
      res.writeHead(503, { 'Content-Type': 'application/json' });
      res.end('{"errors":[{"code":"UNAVAILABLE"}]}');
      return;
    }
    if (req.url === '/v2/app/manifests/1.0' || req.url === `/v2/app/manifests/${img.digests.manifest}`) {
      res.writeHead(200, {
        'Content-Type': 'application/vnd.oci.image.manifest.v1+json',
        'Docker-Content-Digest': img.digests.manifest,
        'Content-Length': img.manifest.length,
      });
      res.end(req.method === 'HEAD' ? undefined : img.manifest);
      return;
    }
    const m = /^\/v2\/app\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url);
    const blob = m && blobs.get(m[1]);
    if (!blob) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end('{"errors":[{"code":"BLOB_UNKNOWN"}]}');
      return;
    }
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) start = Number(range[1]);
    const body = blob.subarray(start);
    res.writeHead(range ? 206 : 200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': body.length,
      ...(range ? { 'Content-Range': `bytes ${start}-${blob.length - 1}/${blob.length}` } : {}),
    });
    if (m[1] === img.digests.layer && state.breakLayer !== null) {
      const n = state.breakLayer;
      state.breakLayer = null;
      res.write(body.subarray(0, n), () => res.socket.destroy());
      return;
    }
    if (m[1] === img.digests.layer && state.stallLayer) {
      state.stallLayer = false;
      res.write(body.subarray(0, body.length >> 1), () => onStall());
      return;
    }
    res.end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.reference = `127.0.0.1:${server.address().port}/app:1.0`;
  state.close = () => {
    server.closeAllConnections();
    server.close();
  };
  return state;
}

function assertStored(cache, img) {
  assert.deepEqual(Buffer.from(cache.getManifest(img.digests.manifest).bytes), img.manifest);
  assert.deepEqual(Buffer.from(cache.getBlob(img.digests.config)), img.config);
  assert.deepEqual(Buffer.from(cache.getBlob(img.digests.layer)), img.layer);
}

test('a cold pull stores the exact bytes, a warm one makes no request', { timeout: 60_000 }, async () => {
  const img = image();
  const reg = await registry(img);
  const cache = Cache.open({ storage: new MemoryStorage() });
  try {
    const events = [];
    const report = await cache.pull(reg.reference, { onProgress: (e) => events.push(e) });
    assert.equal(report.digest, img.digests.manifest);
    assert.equal(report.tag.state, 'fetched');
    assert.equal(report.blobs.length, 2);
    assert.equal(report.bytes_fetched, img.manifest.length + img.config.length + img.layer.length);
    assertStored(cache, img);
    assert.equal(cache.resolveTag(reg.reference).state, 'fresh');
    // The GETs the registry saw: the manifest and each blob once.
    assert.deepEqual(reg.requests.map((r) => r.path).sort(), [
      '/v2/app/blobs/' + img.digests.config,
      '/v2/app/blobs/' + img.digests.layer,
      '/v2/app/manifests/1.0',
    ].sort());
    for (const d of [img.digests.config, img.digests.layer]) {
      const mine = events.filter((e) => e.digest === d);
      assert.equal(mine[0].type, 'started');
      assert.equal(mine.at(-1).type, 'done');
      const bytes = mine.filter((e) => e.type === 'bytes').reduce((s, e) => s + e.bytes, 0);
      assert.equal(bytes, d === img.digests.layer ? img.layer.length : img.config.length);
    }

    const seen = reg.requests.length;
    const warmEvents = [];
    const warm = await cache.pull(reg.reference, { onProgress: (e) => warmEvents.push(e) });
    assert.equal(reg.requests.length, seen, 'the warm pull reached the registry');
    assert.equal(warm.requests, 0);
    assert.equal(warm.tag.state, 'fresh');
    assert.equal(warm.bytes_from_cache, img.manifest.length + img.config.length + img.layer.length);
    assert.deepEqual(warmEvents.map((e) => e.type), ['from-cache', 'from-cache']);
  } finally {
    cache.close();
    reg.close();
  }
});

test('a blob cut mid-way resumes with Range', { timeout: 60_000 }, async () => {
  const img = image();
  const reg = await registry(img);
  const cache = Cache.open({ storage: new MemoryStorage() });
  try {
    reg.breakLayer = 70_000;
    // A given fetch is the one used: every request the registry saw went through it.
    const urls = [];
    const counted = (url, init) => {
      urls.push(url);
      return fetch(url, init);
    };
    const report = await cache.pull(reg.reference, { concurrency: 1, fetch: counted });
    for (const r of reg.requests) assert.ok(urls.some((u) => u.endsWith(r.path)), r.path);
    const layer = report.blobs.find((b) => b.digest === img.digests.layer);
    assert.ok(layer.resumed_from > 0 && layer.resumed_from <= 70_000, `resumed_from ${layer.resumed_from}`);
    const asked = reg.requests.filter((r) => r.path.endsWith(img.digests.layer));
    assert.deepEqual(asked.map((r) => r.range), [null, `bytes=${layer.resumed_from}-`]);
    assertStored(cache, img);
  } finally {
    cache.close();
    reg.close();
  }
});

test('an aborted pull rejects with the signal reason and leaves no manifest or tag', { timeout: 60_000 }, async () => {
  const img = image();
  const reg = await registry(img);
  const cache = Cache.open({ storage: new MemoryStorage() });
  try {
    reg.nextStall();
    const controller = new AbortController();
    let configStored;
    const configDone = new Promise((resolve) => {
      configStored = resolve;
    });
    const onProgress = (e) => {
      if (e.type === 'done' && e.digest === img.digests.config) configStored();
    };
    const pulling = cache.pull(reg.reference, { signal: controller.signal, onProgress });
    // Both blobs download at once: the config is stored while the layer hangs half-way.
    await Promise.all([reg.stalled, configDone]);
    controller.abort();
    await assert.rejects(pulling, (e) => e.name === 'AbortError');
    // The verified config stays; the half layer, the manifest and the tag do not exist.
    assert.equal(cache.hasBlob(img.digests.config), true);
    assert.equal(cache.hasManifest(img.digests.manifest), false);
    assert.equal(cache.hasBlob(img.digests.layer), false);
    assert.throws(() => cache.getTag(reg.reference), (e) => e.code === 'not_found');
    assert.equal(cache.storage.tempCount?.() ?? 0, 0);
    // An aborted signal refuses at once.
    await assert.rejects(cache.pull(reg.reference, { signal: controller.signal }), (e) => e.name === 'AbortError');
    // The next pull completes.
    const report = await cache.pull(reg.reference);
    assert.equal(report.tag.state, 'fetched');
    assertStored(cache, img);
  } finally {
    cache.close();
    reg.close();
  }
});

test('a 503 is retried after the engine\'s delay', { timeout: 60_000 }, async () => {
  const img = image();
  const reg = await registry(img);
  const cache = Cache.open({ storage: new MemoryStorage() });
  try {
    reg.failManifest = 1;
    const report = await cache.pull(reg.reference);
    assert.equal(report.tag.state, 'fetched');
    const asked = reg.requests.filter((r) => r.path === '/v2/app/manifests/1.0');
    assert.equal(asked.length, 2);
    assertStored(cache, img);
  } finally {
    cache.close();
    reg.close();
  }
});

test('options are checked', { timeout: 60_000 }, async () => {
  const cache = Cache.open({ storage: new MemoryStorage() });
  try {
    await assert.rejects(cache.pull(42), (e) => e.code === 'invalid_reference');
    await assert.rejects(cache.pull('127.0.0.1:1/a:1', { concurrency: 0 }), (e) => e.code === 'invalid_argument');
    await assert.rejects(cache.pull('127.0.0.1:1/a:1', { platform: 'linux' }), (e) => e.code === 'invalid_argument');
    await assert.rejects(cache.pull('127.0.0.1:1/a:1', { allow_stale: true }), (e) => e.code === 'invalid_argument');
    await assert.rejects(cache.pull('127.0.0.1:1/a:1', { offline: true }), (e) => e.code === 'network');
  } finally {
    cache.close();
  }
});
