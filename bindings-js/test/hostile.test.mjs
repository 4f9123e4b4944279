// Bad input from JS throws a typed error and changes nothing; a storage that throws surfaces
// as StorageError with nothing half-written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Cache, MemoryStorage, ManualClock, OcicacheError, StorageError, ERROR_CLASSES,
  InvalidArgumentError, InvalidDigestError, InvalidReferenceError, InvalidConfigError,
  NotFoundError, FullError, DigestMismatchError,
} from '../src/node.js';
import { errorCodes } from '../dist/ocicache_js.js';

const enc = new TextEncoder();
const A = 'sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881'; // "x"

function fresh() {
  const storage = new MemoryStorage();
  const cache = Cache.open({ storage, clock: new ManualClock(1_700_000_000_000) });
  cache.putBlob('x');
  cache.putTag('app:1', A);
  return { storage, cache };
}

/** Everything observable: entries, tags, the bytes of every stored file (the index too), temps. */
function snapshot({ storage, cache }) {
  return JSON.stringify({
    contents: cache.contents(),
    tags: cache.tags(),
    files: storage.paths().map((p) => [p, Buffer.from(storage.get(p)).toString('base64')]),
    temps: storage.tempCount(),
    size: cache.size(),
  });
}

test('one error class per core error kind, each with its stable code', () => {
  assert.deepEqual(Object.keys(ERROR_CLASSES).sort(), errorCodes().sort());
  for (const [code, Cls] of Object.entries(ERROR_CLASSES)) {
    const e = new Cls('m');
    assert.ok(e instanceof OcicacheError && e instanceof Error);
    assert.equal(e.code, code);
    assert.equal(e.name, Cls.name);
  }
});

test('wrong types, negative sizes, bad chunks, digests and references: typed errors, nothing changes', () => {
  const ctx = fresh();
  const { cache } = ctx;
  const before = snapshot(ctx);
  const cases = [
    [() => cache.getBlob(42), InvalidDigestError],
    [() => cache.getBlob(null), InvalidDigestError],
    [() => cache.getBlob({ toString: () => A }), InvalidDigestError],
    [() => cache.getBlob('sha256:ABC'), InvalidDigestError],
    [() => cache.putBlob('y', { digest: 'md5:d41d8cd98f00b204e9800998ecf8427e' }), InvalidDigestError],
    [() => cache.putBlob('y', { digest: 7 }), InvalidDigestError],
    [() => cache.putBlob(123), InvalidArgumentError],
    [() => cache.putBlob([1, 2, 3]), InvalidArgumentError],
    [() => cache.putBlob(new ArrayBuffer(3)), InvalidArgumentError],
    [() => cache.putBlob('y', 'not options'), InvalidArgumentError],
    [() => cache.beginBlob({ size: -1 }), InvalidArgumentError],
    [() => cache.beginBlob({ size: 1.5 }), InvalidArgumentError],
    [() => cache.beginBlob({ size: NaN }), InvalidArgumentError],
    [() => cache.beginBlob({ size: '10' }), InvalidArgumentError],
    [() => cache.beginBlob({ size: -1n }), InvalidArgumentError],
    [() => cache.beginBlob({ size: 2 ** 60 }), InvalidArgumentError],
    [() => cache.putManifest(A, 12), InvalidArgumentError],
    [() => cache.putManifest(A, '{}', { mediaType: 5 }), InvalidArgumentError],
    [() => cache.putManifest(undefined, '{}'), InvalidDigestError],
    [() => cache.putTag(5, A), InvalidReferenceError],
    [() => cache.putTag('App:1', A), InvalidReferenceError],
    [() => cache.putTag('../../etc/passwd', A), InvalidReferenceError],
    [() => cache.putTag('app:2', 'sha256:nope'), InvalidDigestError],
    [() => cache.resolveTag({}), InvalidReferenceError],
    [() => cache.resolveTags('app:1'), InvalidArgumentError],
    [() => cache.pin('layer', A), InvalidArgumentError],
    [() => cache.pin('blob', 'sha256:' + 'a'.repeat(63)), InvalidDigestError],
    [() => cache.blobStream(A, { chunkSize: -1 }), InvalidArgumentError],
  ];
  for (const [f, Cls] of cases) {
    assert.throws(f, (e) => e instanceof Cls && e.code === Cls.code, f.toString());
  }
  const w = cache.beginBlob();
  for (const chunk of ['abc', [1, 2], 42, null, new ArrayBuffer(2), new DataView(new ArrayBuffer(2))]) {
    assert.throws(() => w.write(chunk), InvalidArgumentError);
  }
  w.abort();
  assert.equal(snapshot(ctx), before);
  // (reads below count as accesses: checked after the snapshot)
  const items = cache.resolveTags(['app:1', 5, 'Bad:Ref']);
  assert.equal(items[0].ok.state, 'fresh');
  assert.ok(items[1].error instanceof InvalidReferenceError);
  assert.ok(items[2].error instanceof InvalidReferenceError);
  const r = cache.openBlob(A);
  assert.throws(() => r.read(-5), InvalidArgumentError);
  assert.throws(() => r.read('1'), InvalidArgumentError);
  r.close();
});

test('core refusals are typed too, with details, and change nothing', () => {
  const ctx = fresh();
  const { cache } = ctx;
  const before = snapshot(ctx);
  assert.throws(() => cache.getBlob('sha256:' + 'b'.repeat(64)), NotFoundError);
  assert.throws(() => cache.putBlob('tampered', { digest: A }), (e) => e instanceof DigestMismatchError && e.details.expected === A);
  const w = cache.beginBlob({ size: 2 });
  assert.throws(() => w.write(enc.encode('abc')), (e) => e.code === 'size_mismatch' && e.details.expected === 2);
  assert.throws(() => w.commit(), InvalidArgumentError);
  assert.equal(snapshot(ctx), before);
  const small = Cache.open({ storage: new MemoryStorage(), config: { max_bytes: 4 } });
  assert.throws(() => small.putBlob('too big'), (e) => e instanceof FullError && e.details.capacity === 4);
});

test('bad configurations and options are refused at open', () => {
  for (const config of [{ max_bytes: -1 }, { max_bytes: 1.5 }, { nope: 1 }, { max_bytes: 0 }, { eviction: 'random' }, [], 'x', { max_bytes: NaN }, { max_bytes: 10n }]) {
    assert.throws(() => Cache.open({ storage: new MemoryStorage(), config }), InvalidConfigError, JSON.stringify(String(config)));
  }
  assert.throws(() => Cache.open({}), InvalidArgumentError);
  assert.throws(() => Cache.open({ storage: { createTemp() {} } }), InvalidArgumentError);
  assert.throws(() => Cache.open({ storage: new MemoryStorage(), clock: Date }), InvalidArgumentError);
  assert.throws(() => Cache.open('dir'), InvalidArgumentError);
});

test('a closed cache refuses operations; close and dispose are idempotent', () => {
  const { cache } = fresh();
  cache.close();
  assert.throws(() => cache.getBlob(A), InvalidArgumentError);
  cache.close();
  cache[Symbol.dispose]();
});

/** A MemoryStorage whose chosen method fails with the given error from the nth call on. */
function failing(method, makeError, fromCall = 1) {
  const inner = new MemoryStorage();
  let calls = 0;
  let armed = false;
  return {
    inner,
    arm() { armed = true; calls = 0; },
    disarm() { armed = false; },
    storage: new Proxy(inner, {
      get(target, prop) {
        const v = Reflect.get(target, prop, target);
        if (typeof v !== 'function') return v;
        return (...args) => {
          if (armed && prop === method && ++calls >= fromCall) {
            // The contract: a temp is gone after commitTemp, whether it succeeds or fails.
            if (prop === 'commitTemp') target.abortTemp(args[0]);
            throw makeError();
          }
          return v.apply(target, args);
        };
      },
    }),
  };
}

const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
const quota = () => new DOMException('The quota has been exceeded.', 'QuotaExceededError');

for (const [method, mk, kind] of [
  ['writeTemp', enospc, 'no_space'],
  ['commitTemp', quota, 'no_space'],
  ['append', enospc, 'no_space'],
  ['createTemp', () => new Error('EIO: i/o error'), 'io'],
]) {
  test(`a throwing storage.${method} surfaces as StorageError(${kind}) with nothing half-written`, () => {
    const f = failing(method, mk);
    const clock = new ManualClock(1_700_000_000_000);
    const cache = Cache.open({ storage: f.storage, clock });
    cache.putBlob('kept');
    const before = JSON.stringify({ c: cache.contents(), blobs: f.inner.list('blobs/sha256') });
    f.arm();
    assert.throws(() => cache.putBlob('new content'), (e) => {
      assert.ok(e instanceof StorageError, e.stack);
      assert.equal(e.code, 'storage');
      assert.equal(e.storageKind, kind);
      assert.ok(e.cause !== undefined, 'the storage exception is the cause');
      return true;
    });
    f.disarm();
    assert.equal(JSON.stringify({ c: cache.contents(), blobs: f.inner.list('blobs/sha256') }), before);
    assert.equal(f.inner.tempCount(), 0, 'no temp left behind');
    cache.close();
    const again = Cache.open({ storage: f.storage, clock });
    assert.equal(again.checkIntegrity().healthy, true);
    assert.equal(again.contents().length, 1);
    assert.equal(new TextDecoder().decode(again.getBlob(again.contents()[0].digest)), 'kept');
    assert.equal(again.putBlob('new content').startsWith('sha256:'), true, 'works again once space is back');
    again.close();
  });
}

test('a storage returning nonsense is an I/O storage error, not a crash', () => {
  const inner = new MemoryStorage();
  const cache = Cache.open({ storage: inner });
  const d = cache.putBlob('abc');
  cache.close();
  const liar = new Proxy(inner, {
    get(t, p) {
      const v = Reflect.get(t, p, t);
      if (p === 'readAt') return (path, ...rest) => (path.startsWith('blobs/') ? 'lots' : t.readAt(path, ...rest));
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
  const c2 = Cache.open({ storage: liar });
  assert.throws(() => c2.getBlob(d), (e) => e instanceof StorageError && e.storageKind === 'io');
});

test('a throwing hasher is a storage (host) error and lets nothing in', () => {
  for (const hasher of [
    { start: () => ({ update() { throw new Error('boom'); }, digest: () => new Uint8Array(32) }) },
    { start: () => ({ update() {}, digest() { throw new Error('boom'); } }) },
    { start: () => ({ update() {}, digest: () => new Uint8Array(5) }) },
  ]) {
    const storage = new MemoryStorage();
    const cache = Cache.open({ storage, hasher });
    for (const options of [{ digest: A }, undefined]) {
      assert.throws(() => cache.putBlob('x', options), (e) => e instanceof StorageError && /hasher failed/.test(e.message));
    }
    assert.equal(cache.stats().total_entries, 0);
    assert.equal(storage.tempCount(), 0);
    cache.close();
  }
});
