// Resumable partial downloads in the JS storages: a pull cancelled through its AbortSignal keeps
// what arrived (`partials/<alg>/<hex>`), and the next pull — in this cache, a cache opened
// again on the directory, another process, or the native `ocicache` CLI — asks the registry
// only for the rest, with `Range`. A partial is continued by one writer at a time, and a
// cleanup removes the partials nobody holds. The registry is served by this test on
// 127.0.0.1 (test/registry-fixture.mjs) and reached through the real global fetch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Cache, MemoryStorage, FsStorage, openCache, DirectoryInUseError } from '../src/node.js';
import { image, registry, sha256 } from './registry-fixture.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const NODE_ENTRY = new URL('../src/node.js', import.meta.url).href;
const partialPath = (digest) => `partials/sha256/${digest.slice('sha256:'.length)}`;
const tmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-partials-'));

/**
 * Pulls with an AbortSignal and aborts once `n` bytes of the layer arrived (the registry sends
 * exactly `n`, then hangs): the pull rejects with an AbortError.
 */
async function abortedPull(cache, reg, img, n) {
  reg.stallLayer(n);
  const controller = new AbortController();
  const onProgress = (e) => {
    if (e.type === 'bytes' && e.digest === img.digests.layer && e.received >= n) controller.abort();
  };
  await assert.rejects(cache.pull(reg.reference, { signal: controller.signal, onProgress }), (e) => e.name === 'AbortError');
}

/** The next pull continues the layer from byte `n` with `Range`, and every byte verifies. */
async function assertResumedFrom(cache, reg, img, n) {
  const before = reg.layerRequests().length;
  const report = await cache.pull(reg.reference);
  assert.equal(report.tag.state, 'fetched');
  const asked = reg.layerRequests().slice(before);
  assert.deepEqual(asked.map((r) => r.range), [`bytes=${n}-`]);
  const layer = report.blobs.find((b) => b.digest === img.digests.layer);
  assert.equal(layer.resumed_from, n);
  assert.equal(layer.fetched, img.layer.length - n);
  assert.deepEqual(Buffer.from(cache.getBlob(img.digests.layer)), img.layer);
  assert.deepEqual(Buffer.from(cache.getManifest(img.digests.manifest).bytes), img.manifest);
  assert.equal(cache.checkIntegrity().healthy, true);
  return report;
}

test('MemoryStorage: a pull aborted mid-layer is resumed with Range by the next pull', { timeout: 60_000 }, async () => {
  const img = image();
  const reg = await registry(img);
  const storage = new MemoryStorage();
  const cache = Cache.open({ storage });
  try {
    await abortedPull(cache, reg, img, 120_000);
    assert.deepEqual(reg.layerRequests().map((r) => r.range), [null]);
    // Kept where every host keeps it, and not as a cache entry.
    assert.deepEqual(Buffer.from(storage.get(partialPath(img.digests.layer))), img.layer.subarray(0, 120_000));
    assert.equal(cache.hasBlob(img.digests.layer), false);
    assert.equal(storage.tempCount(), 0);
    await assertResumedFrom(cache, reg, img, 120_000);
    assert.equal(storage.get(partialPath(img.digests.layer)), null, 'the partial became the blob');
  } finally {
    cache.close();
    reg.close();
  }
});

test('FsStorage: a pull aborted mid-layer is resumed with Range, in the same cache and after a reopen', { timeout: 60_000 }, async () => {
  const img = image();
  const reg = await registry(img);
  const dir = tmpDir();
  try {
    let cache = openCache(dir);
    try {
      await abortedPull(cache, reg, img, 100_000);
      assert.deepEqual(fs.readFileSync(path.join(dir, partialPath(img.digests.layer))), img.layer.subarray(0, 100_000));
      assert.deepEqual(fs.readdirSync(path.join(dir, 'tmp')), [], 'no temp left behind');
      await assertResumedFrom(cache, reg, img, 100_000);
      assert.equal(fs.existsSync(path.join(dir, partialPath(img.digests.layer))), false);
    } finally {
      cache.close();
    }

    // A second image pull into a fresh directory, aborted, then continued by a cache opened
    // again on the directory (as the next run of a program would).
    const dir2 = tmpDir();
    try {
      cache = openCache(dir2);
      await abortedPull(cache, reg, img, 64_000);
      cache.close();
      cache = openCache(dir2);
      await assertResumedFrom(cache, reg, img, 64_000);
    } finally {
      cache.close();
      fs.rmSync(dir2, { recursive: true, force: true });
    }
  } finally {
    reg.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a partial whose bytes are wrong never reaches the cache: removed, the next pull starts over', { timeout: 60_000 }, async () => {
  const img = image();
  const reg = await registry(img);
  const dir = tmpDir();
  try {
    let cache = openCache(dir);
    await abortedPull(cache, reg, img, 80_000);
    cache.close();
    const file = path.join(dir, partialPath(img.digests.layer));
    const bytes = fs.readFileSync(file);
    bytes[1000] ^= 0xff;
    fs.writeFileSync(file, bytes);
    cache = openCache(dir);
    try {
      const before = reg.layerRequests().length;
      await assert.rejects(cache.pull(reg.reference), (e) => e.code === 'digest_mismatch');
      assert.deepEqual(reg.layerRequests().slice(before).map((r) => r.range), ['bytes=80000-']);
      assert.equal(cache.hasBlob(img.digests.layer), false);
      assert.equal(fs.existsSync(file), false, 'bytes that failed verification are not kept');
      const report = await cache.pull(reg.reference);
      assert.deepEqual(reg.layerRequests().slice(before).map((r) => r.range), ['bytes=80000-', null]);
      assert.equal(report.tag.state, 'fetched');
      assert.deepEqual(Buffer.from(cache.getBlob(img.digests.layer)), img.layer);
    } finally {
      cache.close();
    }
  } finally {
    reg.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** A storage with only the required methods: no partials, pulls start over as before. */
class PlainStorage {
  #inner = new MemoryStorage();
  constructor() {
    for (const m of ['createTemp', 'writeTemp', 'commitTemp', 'abortTemp', 'append', 'readAt', 'size', 'list', 'remove', 'clearTemps']) {
      this[m] = (...args) => this.#inner[m](...args);
    }
    this.paths = () => this.#inner.paths();
  }
}

test('a storage without openPartial keeps no partial: the next pull starts the layer over', { timeout: 60_000 }, async () => {
  const img = image();
  const reg = await registry(img);
  const storage = new PlainStorage();
  const cache = Cache.open({ storage });
  try {
    await abortedPull(cache, reg, img, 90_000);
    assert.equal(storage.paths().some((p) => p.startsWith('partials/')), false);
    const report = await cache.pull(reg.reference);
    assert.deepEqual(reg.layerRequests().map((r) => r.range), [null, null]);
    assert.equal(report.blobs.find((b) => b.digest === img.digests.layer).resumed_from, null);
    assert.deepEqual(Buffer.from(cache.getBlob(img.digests.layer)), img.layer);
  } finally {
    cache.close();
    reg.close();
  }
});

for (const [name, make] of [
  ['MemoryStorage', () => ({ storage: new MemoryStorage(), done() {} })],
  ['FsStorage', () => {
    const dir = tmpDir();
    return { storage: new FsStorage(dir), dir, done() { fs.rmSync(dir, { recursive: true, force: true }); } };
  }],
]) {
  test(`${name}: cleanup removes an idle partial and keeps one held open; one partial has one writer`, () => {
    const { storage, done } = make();
    const cache = Cache.open({ storage });
    try {
      const idle = partialPath(sha256('idle'));
      const held = partialPath(sha256('held'));
      const stray = 'partials/sha256/not-a-digest';
      const a = storage.openPartial(idle);
      assert.deepEqual(a, { id: a.id, size: 0 });
      storage.writeTemp(a.id, Buffer.from('idle bytes'));
      storage.keepPartial(a.id);
      const b = storage.openPartial(held);
      storage.writeTemp(b.id, Buffer.from('held'));
      // While it is open, nobody else gets it (the cache's cleanup included).
      assert.equal(storage.openPartial(held), null);
      storage.append(stray, Buffer.from('x'));
      // Reopened, a kept partial stands where it was left.
      const again = storage.openPartial(idle);
      assert.equal(again.size, 'idle bytes'.length);
      storage.keepPartial(again.id);

      cache.cleanup();
      assert.equal(storage.size(idle), null, 'the idle partial is removed');
      assert.equal(storage.size(held), 4, 'the held one stays');
      assert.equal(storage.size(stray), 1, 'names the core does not write are left alone');
      storage.writeTemp(b.id, Buffer.from(' on'));
      storage.keepPartial(b.id);
      const c = storage.openPartial(held);
      assert.equal(c.size, 'held on'.length);
      storage.keepPartial(c.id);
      cache.cleanup();
      assert.equal(storage.size(held), null, 'once kept, it is idle, and removed');
    } finally {
      cache.close();
      storage.close?.();
      done();
    }
  });
}

test('a partial outlives clearTemps (a cache opened again), and FsStorage.close() keeps one still open', () => {
  const dir = tmpDir();
  try {
    for (const storage of [new MemoryStorage(), new FsStorage(dir)]) {
      const p = partialPath(sha256(`left open in ${storage.constructor.name}`));
      const a = storage.openPartial(p);
      storage.writeTemp(a.id, Buffer.from('12345'));
      const t = storage.createTemp();
      storage.writeTemp(t, Buffer.from('an ordinary temp'));
      // Opening a cache clears temps: the ordinary one goes, the partial stays, closed.
      const cache = Cache.open({ storage });
      cache.close();
      assert.equal(storage.tempCount(), 0);
      assert.equal(storage.size(p), 5);
      const b = storage.openPartial(p);
      assert.equal(b.size, 5, 'no longer held: it opens again where it stood');
      storage.writeTemp(b.id, Buffer.from('678'));
      storage.close?.();
      if (storage instanceof FsStorage) {
        const again = new FsStorage(dir);
        const c = again.openPartial(p);
        assert.equal(c.size, 8, 'close() kept it');
        assert.deepEqual(Buffer.from(again.get(p)), Buffer.from('12345678'));
        again.close();
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * A child process that opens `dir` (FsStorage, claiming it), opens the layer's partial and
 * writes its first `n` bytes, says "ready", then waits to be killed.
 */
function partialHolder(dir, img, n) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    import { FsStorage } from ${JSON.stringify(NODE_ENTRY)};
    import fs from 'node:fs';
    const storage = new FsStorage(${JSON.stringify(dir)});
    const p = storage.openPartial(${JSON.stringify(partialPath(img.digests.layer))});
    const layer = fs.readFileSync(0 /* stdin: the layer */);
    storage.writeTemp(p.id, layer.subarray(0, ${n}));
    console.log('ready ' + p.size);
    setInterval(() => {}, 1000);
  `], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdin.end(img.layer);
  const ready = new Promise((resolve, reject) => {
    child.stdout.once('data', (d) => resolve(d.toString().trim()));
    child.once('exit', (code) => reject(new Error(`holder exited (${code})`)));
  });
  return { child, ready };
}

test('two Node processes: a partial open in one is out of reach of the other; after a crash it is continued', { timeout: 60_000 }, async () => {
  const img = image();
  const reg = await registry(img);
  const dir = tmpDir();
  const { child, ready } = partialHolder(dir, img, 50_000);
  try {
    assert.equal(await ready, 'ready 0');
    // The directory's claim keeps this process from the partial the other one appends to.
    assert.throws(() => new FsStorage(dir, { waitMs: 0 }), DirectoryInUseError);
    assert.throws(() => openCache(dir, { waitMs: 0 }), DirectoryInUseError);
    // The holder dies without keeping it (a crash): what it wrote is continued.
    child.kill('SIGKILL');
    await once(child, 'exit');
    const cache = openCache(dir, { waitMs: 0 });
    try {
      await assertResumedFrom(cache, reg, img, 50_000);
    } finally {
      cache.close();
    }
  } finally {
    child.kill('SIGKILL');
    reg.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ----- the native CLI -----

const BIN = process.env.OCICACHE_BIN
  || path.join(path.resolve(REPO, process.env.CARGO_TARGET_DIR || 'target'), 'debug/ocicache');
const skipCli = fs.existsSync(BIN) ? false : `the ocicache CLI is not built (${BIN}); set OCICACHE_BIN or build host-native`;
if (skipCli) console.log(`# SKIP partials with the CLI: ${skipCli}`);
if (skipCli && process.env.CI) throw new Error(`partials with the CLI cannot run in CI: ${skipCli}`);

/** Runs the CLI without blocking the event loop (the registry is served from this process). */
function cli(dir, ...args) {
  return new Promise((resolve, reject) => {
    execFile(BIN, ['--dir', dir, ...args], { maxBuffer: 64 << 20, encoding: 'buffer' }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stderr }));
      else resolve(stdout);
    });
  });
}

test('a partial left by Node is continued by the ocicache CLI with Range', { skip: skipCli, timeout: 120_000 }, async () => {
  const img = image();
  const reg = await registry(img);
  const dir = tmpDir();
  try {
    const cache = openCache(dir);
    await abortedPull(cache, reg, img, 110_000);
    cache.close();
    const before = reg.layerRequests().length;
    const report = JSON.parse((await cli(dir, '--json', 'pull', reg.reference)).toString());
    assert.deepEqual(reg.layerRequests().slice(before).map((r) => r.range), ['bytes=110000-']);
    assert.equal(report.blobs.find((b) => b.digest === img.digests.layer).resumed_from, 110_000);
    assert.equal(JSON.parse((await cli(dir, '--json', 'verify')).toString()).healthy, true);
    assert.deepEqual(Buffer.from(await cli(dir, 'blob', 'get', img.digests.layer)), img.layer);
  } finally {
    reg.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a partial left by the CLI (killed mid-layer) is continued by Node with Range', { skip: skipCli, timeout: 240_000 }, async () => {
  const img = image();
  const reg = await registry(img);
  const dir = tmpDir();
  try {
    // The native driver writes in chunks of 256 KiB: the registry sends more than one.
    reg.stallLayer(290_000);
    const file = path.join(dir, partialPath(img.digests.layer));
    const child = spawn(BIN, ['--dir', dir, 'pull', reg.reference], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    let exited = false;
    const exit = once(child, 'exit').then(() => {
      exited = true;
    });
    const held = () => fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
    // Bounded (up to ~2 min, for a loaded machine): the CLI writes what arrived as it arrives.
    for (let i = 0; i < 2400 && held() === 0 && !exited; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(exited, false, `the CLI ended before it stored anything: ${stderr}`);
    child.kill('SIGKILL');
    await exit;
    const n = held();
    assert.ok(n > 0 && n <= 290_000, `the CLI kept ${n} bytes`);
    // The killed process's marker is stale: Node removes it and goes on.
    const cache = openCache(dir, { waitMs: 0 });
    try {
      await assertResumedFrom(cache, reg, img, n);
    } finally {
      cache.close();
    }
  } finally {
    reg.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
