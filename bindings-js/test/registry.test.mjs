// cache.pull in Node against a real registry: Debian's docker-registry (CNCF distribution
// 2.8) started by the test on 127.0.0.1, filled with skopeo, behind the harness's recording
// forwarder (test/support/registry-peers.mjs), so request counts are the registry's own.
// Also the cross-host checks: what Node pulls, the `ocicache` CLI verifies and exports; what
// the CLI pulls, Node reads.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { Cache, MemoryStorage, ManualClock, NetworkError, openCache } from '../src/node.js';
import { Peers, peersSkip, CLI_BIN } from './support/registry-peers.mjs';

const skip = peersSkip;
if (skip) console.log(`# SKIP registry tests: ${skip}`);
const cliSkip = skip || (fs.existsSync(CLI_BIN) ? false : `the ocicache CLI is not built (${CLI_BIN})`);
if (cliSkip && !skip && process.env.CI) throw new Error(`registry tests cannot run in CI: ${cliSkip}`);

const sha256 = (bytes) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const TAG_TTL_MS = 5 * 60 * 1000; // the default freshness window of a tag

let peers;
before(async () => {
  if (!skip) peers = new Peers();
});
after(async () => {
  await peers?.close();
});

function tempDir(name) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `ocicache-${name}-`));
}

/** Every blob of a pushed single image, with its path on the registry. */
function blobsOf(built) {
  const image = built.images[0];
  return [image.config, ...image.layers];
}

function assertHolds(cache, built) {
  assert.deepEqual(Buffer.from(cache.getManifest(built.digest).bytes), built.top);
  for (const blob of blobsOf(built)) {
    const bytes = cache.getBlob(blob.digest);
    assert.equal(bytes.length, blob.size);
    assert.equal(sha256(bytes), blob.digest);
  }
}

test('cold, warm, revalidated and stale pulls from a real registry', { skip, timeout: 180_000 }, async () => {
  const registry = await peers.registry();
  const built = await registry.push('team/app:1.0', { seed: 11, layers: [300_000, 70_000] });
  const ref = registry.reference('team/app:1.0');
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const cache = Cache.open({ storage: new MemoryStorage(), clock });
  try {
    // Cold: the manifest and each blob fetched once, verified, stored.
    await registry.clearRequests();
    const cold = await cache.pull(ref);
    assert.equal(cold.digest, built.digest);
    assert.equal(cold.tag.state, 'fetched');
    assertHolds(cache, built);
    assert.equal(await registry.count('GET', '/v2/team/app/manifests/'), 1);
    for (const blob of blobsOf(built)) {
      assert.equal(await registry.count('GET', `/v2/team/app/blobs/${blob.digest}`), 1, blob.digest);
    }

    // Warm, with the tag fresh: no request at all.
    await registry.clearRequests();
    const warm = await cache.pull(ref);
    assert.equal(warm.tag.state, 'fresh');
    assert.equal(warm.requests, 0);
    assert.equal(warm.bytes_fetched, 0);
    assert.deepEqual(await registry.requests(), []);

    // Past the tag's freshness window: one HEAD, no blob GET.
    clock.advance(TAG_TTL_MS + 1000);
    await registry.clearRequests();
    const revalidated = await cache.pull(ref);
    assert.equal(revalidated.tag.state, 'revalidated');
    const seen = await registry.requests();
    assert.deepEqual(seen.filter((r) => r.path !== '/v2/').map((r) => `${r.method} ${r.path}`), [
      'HEAD /v2/team/app/manifests/1.0',
    ]);

    // The registry down: the cached tag is served stale (allowed by default), an uncached
    // one fails with a NetworkError naming the registry.
    clock.advance(TAG_TTL_MS + 1000);
    await registry.stop();
    const stale = await cache.pull(ref);
    assert.equal(stale.tag.state, 'stale');
    assert.equal(stale.digest, built.digest);
    await assert.rejects(cache.pull(ref, { allowStale: false }), NetworkError);
    await assert.rejects(cache.pull(registry.reference('team/other:1.0')), (e) => {
      assert.ok(e instanceof NetworkError, String(e));
      assert.match(e.message, new RegExp(registry.host.replace(/\./g, '\\.')));
      return true;
    });
    await registry.start();
  } finally {
    cache.close();
  }
});

test('a blob cut mid-body resumes with Range in the same pull, and verifies', { skip, timeout: 120_000 }, async () => {
  const registry = await peers.registry();
  const built = await registry.push('team/cut:1.0', { seed: 12, layers: [2_000_000] });
  const layer = built.images[0].layers[0];
  await registry.inject('GET', `/v2/team/cut/blobs/${layer.digest}`, { cut_body: 700_000 });
  const cache = Cache.open({ storage: new MemoryStorage() });
  try {
    await registry.clearRequests();
    const report = await cache.pull(registry.reference('team/cut:1.0'));
    assertHolds(cache, built);
    const gets = (await registry.requests()).filter((r) => r.method === 'GET' && r.path.endsWith(layer.digest));
    assert.equal(gets.length, 2);
    assert.equal(gets[0].range, null);
    assert.match(gets[1].range ?? '', /^bytes=(\d+)-$/);
    const offset = Number(/^bytes=(\d+)-$/.exec(gets[1].range)[1]);
    assert.ok(offset > 0 && offset <= 700_000, `resumed from ${offset}`);
    const blob = report.blobs.find((b) => b.digest === layer.digest);
    assert.equal(blob.resumed_from, offset);
  } finally {
    cache.close();
  }
});

test('a flipped byte is refused with digest_mismatch and nothing is stored', { skip, timeout: 120_000 }, async () => {
  const registry = await peers.registry();
  const built = await registry.push('team/flip:1.0', { seed: 13, layers: [100_000] });
  const layer = built.images[0].layers[0];
  await registry.inject('GET', `/v2/team/flip/blobs/${layer.digest}`, { flip_byte: 5000 }, 100);
  const cache = Cache.open({ storage: new MemoryStorage() });
  try {
    await assert.rejects(cache.pull(registry.reference('team/flip:1.0')), (e) => {
      assert.equal(e.code, 'digest_mismatch', String(e));
      return true;
    });
    assert.equal(cache.hasBlob(layer.digest), false);
    assert.equal(cache.resolveTag(registry.reference('team/flip:1.0')).state, 'unknown');
  } finally {
    cache.close();
  }
});

test('token auth: no credentials is a typed unauthorized error; a reader pulls with Bearer tokens', { skip, timeout: 120_000 }, async () => {
  const tokens = await peers.tokenServer({ users: [['alice', 'secret']], readers: [['bob', 'hunter2']], anonymous: false });
  const registry = await peers.registry({ auth: { token: tokens.id } });
  const built = await registry.push('team/private:1.0', { seed: 14, layers: [50_000], credentials: ['alice', 'secret'] });
  const ref = registry.reference('team/private:1.0');
  const cache = Cache.open({ storage: new MemoryStorage() });
  try {
    // No credentials and no anonymous access: a typed error naming the registry.
    await assert.rejects(cache.pull(ref), (e) => {
      assert.equal(e.code, 'unauthorized', String(e));
      assert.match(e.message, new RegExp(registry.host.replace(/\./g, '\\.')));
      return true;
    });
    const wrong = { [registry.host]: { username: 'bob', password: 'wrong' } };
    await assert.rejects(cache.pull(ref, { credentials: wrong }), (e) => e.code === 'unauthorized');

    const before = (await peers.command('token-requests', { server: tokens.id })).length;
    await registry.clearRequests();
    const right = { [registry.host]: { username: 'bob', password: 'hunter2' } };
    const report = await cache.pull(ref, { credentials: right });
    assert.equal(report.digest, built.digest);
    assertHolds(cache, built);
    const requests = await registry.requests();
    // Every request after the challenge carried the Bearer token.
    assert.ok(requests.some((r) => r.status === 401));
    const authorized = requests.filter((r) => r.status !== 401);
    assert.ok(authorized.length >= 3);
    assert.ok(authorized.every((r) => r.auth_scheme === 'Bearer'), JSON.stringify(authorized));
    const asked = (await peers.command('token-requests', { server: tokens.id })).slice(before);
    const granted = asked.filter((r) => r.status === 200);
    assert.ok(granted.length >= 1);
    assert.ok(granted.every((r) => r.user === 'bob'));
    assert.ok(granted.some((r) => r.scopes.includes('repository:team/private:pull')), JSON.stringify(granted));
  } finally {
    cache.close();
  }
});

test('blob GETs redirected to another origin are followed without the credentials', { skip, timeout: 120_000 }, async () => {
  // A "CDN" on another loopback port serving the registry's storage directory, as S3 would,
  // recording whether each request carried Authorization.
  const cdnRequests = [];
  let storageDir = null;
  const cdn = http.createServer((req, res) => {
    cdnRequests.push({ path: req.url, authorization: req.headers.authorization ?? null });
    const file = path.join(storageDir, decodeURIComponent(new URL(req.url, 'http://x').pathname));
    if (!file.startsWith(storageDir + path.sep) || !fs.existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    const bytes = fs.readFileSync(file);
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': bytes.length });
    res.end(bytes);
  });
  cdn.listen(0, '127.0.0.1');
  await once(cdn, 'listening');
  try {
    const registry = await peers.registry({
      auth: { basic: [['carol', 'pw']] },
      redirect_blobs: `http://127.0.0.1:${cdn.address().port}`,
    });
    storageDir = registry.storageDir;
    const built = await registry.push('team/cdn:1.0', { seed: 17, layers: [80_000, 9_000], credentials: ['carol', 'pw'] });
    const cache = Cache.open({ storage: new MemoryStorage() });
    try {
      await registry.clearRequests();
      const credentials = { [registry.host]: { username: 'carol', password: 'pw' } };
      await cache.pull(registry.reference('team/cdn:1.0'), { credentials });
      assertHolds(cache, built);
      // The registry answered every blob GET with a redirect, with Basic credentials.
      const blobGets = (await registry.requests()).filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
      assert.equal(blobGets.length, blobsOf(built).length);
      assert.ok(blobGets.every((r) => r.status === 307 && r.auth_scheme === 'Basic'), JSON.stringify(blobGets));
      // The CDN served each blob, and never saw the credentials.
      assert.equal(cdnRequests.length, blobsOf(built).length);
      assert.deepEqual(cdnRequests.map((r) => r.authorization), cdnRequests.map(() => null));
    } finally {
      cache.close();
    }
  } finally {
    cdn.closeAllConnections();
    cdn.close();
  }
});

test('Node pulls into a directory; the CLI verifies it and exports it for skopeo', { skip: cliSkip, timeout: 180_000 }, async () => {
  const registry = await peers.registry();
  const built = await registry.push('team/cross:2.0', { seed: 15, layers: [120_000, 8_000] });
  const ref = registry.reference('team/cross:2.0');
  const dir = tempDir('node-pull');
  const layoutDir = tempDir('node-pull-layout');
  try {
    const cache = openCache(dir);
    try {
      await cache.pull(ref);
    } finally {
      cache.close();
    }
    const verify = JSON.parse(execFileSync(CLI_BIN, ['--dir', dir, '--json', 'verify']).toString());
    assert.equal(verify.healthy, true, JSON.stringify(verify));
    execFileSync(CLI_BIN, ['--dir', dir, 'export', ref, layoutDir]);
    const raw = execFileSync('skopeo', ['inspect', '--raw', `oci:${layoutDir}:2.0`]);
    assert.deepEqual(raw, built.top);
    // A pull by the CLI on the same directory now is warm: the registry sees nothing.
    await registry.clearRequests();
    const cliReport = JSON.parse(execFileSync(CLI_BIN, ['--dir', dir, '--json', 'pull', ref]).toString());
    assert.equal(cliReport.tag.state, 'fresh');
    assert.deepEqual(await registry.requests(), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(layoutDir, { recursive: true, force: true });
  }
});

test('the CLI pulls into a directory; Node reads the manifest and layers', { skip: cliSkip, timeout: 180_000 }, async () => {
  const registry = await peers.registry();
  const built = await registry.push('team/cross:3.0', { seed: 16, layers: [90_000, 4_000] });
  const ref = registry.reference('team/cross:3.0');
  const dir = tempDir('cli-pull');
  try {
    execFileSync(CLI_BIN, ['--dir', dir, '--json', 'pull', ref]);
    const cache = openCache(dir);
    try {
      assertHolds(cache, built);
      const tag = cache.resolveTag(ref);
      assert.equal(tag.state, 'fresh');
      assert.equal(tag.digest, built.digest);
      // And Node's own pull of it is warm.
      await registry.clearRequests();
      const report = await cache.pull(ref);
      assert.equal(report.tag.state, 'fresh');
      assert.deepEqual(await registry.requests(), []);
    } finally {
      cache.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
