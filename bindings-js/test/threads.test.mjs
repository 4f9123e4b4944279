// The Node entry's worker threads: ThreadedHasher (hashing beside the storage writes) and the
// background flush of FsStorage's large temps. Both must give exactly the results of doing the
// work inline, give their threads back, and fail loudly rather than store wrong bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomFillSync } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  Cache, MemoryStorage, ThreadedHasher, threadedHasher, openCache, StorageError, DigestMismatchError,
} from '../src/node.js';
import { BackgroundFlusher } from '../src/background-flusher.js';

const hex = (bytes) => Buffer.from(bytes).toString('hex');
const random = (n) => randomFillSync(new Uint8Array(n));

function hashBoth(hasher, algorithm, chunks) {
  const state = hasher.start(algorithm);
  const reference = createHash(algorithm);
  for (const c of chunks) {
    state.update(c);
    reference.update(c);
  }
  return [hex(state.digest()), reference.digest('hex')];
}

function split(bytes, size) {
  const out = [];
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size));
  return out;
}

test('a threaded hash equals node:crypto for sizes around the hand-off and the ring end', async () => {
  // A 1000-byte ring and a 100-byte hand-off put every size below on a boundary or across one.
  const hasher = new ThreadedHasher({ threads: 1, handoffBytes: 100, ringBytes: 1000 });
  try {
    const data = random(25_000);
    const cases = [
      [], [data.subarray(0, 50)], [data.subarray(0, 100)], [data.subarray(0, 101)],
      [data.subarray(0, 60), data.subarray(60, 101)], [data.subarray(0, 999)],
      [data.subarray(0, 1000), data.subarray(1000, 1001)], split(data.subarray(0, 3333), 7),
      [data.subarray(0, 5000)], // one chunk larger than the ring
      split(data, 997), split(data, 1000), split(data, 4096),
    ];
    for (const algorithm of ['sha256', 'sha384', 'sha512']) {
      for (const chunks of cases) {
        const [got, want] = hashBoth(hasher, algorithm, chunks);
        assert.equal(got, want, `${algorithm}, chunks ${chunks.map((c) => c.length)}`);
        assert.equal(hasher.active, 0);
      }
    }
    assert.equal(hasher.threads, 1);
    assert.equal(hasher.start('md5'), null, 'an unknown algorithm is left to the core');
  } finally {
    await hasher.close();
  }
});

test('the caller may reuse its buffer as soon as update returns', async () => {
  const hasher = new ThreadedHasher({ threads: 1, handoffBytes: 0, ringBytes: 64 * 1024 });
  try {
    const buf = new Uint8Array(10_000);
    const state = hasher.start('sha256');
    const reference = createHash('sha256');
    for (let i = 0; i < 200; i++) {
      buf.fill(i);
      state.update(buf);
      reference.update(buf);
    }
    assert.equal(hex(state.digest()), reference.digest('hex'));
  } finally {
    await hasher.close();
  }
});

test('with more large hashes than threads, the others run inline, all right', async () => {
  const hasher = new ThreadedHasher({ threads: 1, handoffBytes: 10, ringBytes: 4096 });
  try {
    const data = random(30_000);
    const states = [0, 1, 2].map(() => [hasher.start('sha256'), createHash('sha256')]);
    for (const [i, c] of split(data, 1500).entries()) {
      for (const [k, [s, r]] of states.entries()) {
        const piece = c.subarray(0, c.length - k); // each hash sees different bytes
        s.update(piece);
        r.update(piece);
      }
      if (i > 0) assert.equal(hasher.active, 1, 'one thread, one hash on it');
    }
    for (const [s, r] of states) assert.equal(hex(s.digest()), r.digest('hex'));
    assert.equal(hasher.active, 0);
    assert.equal(hasher.threads, 1);
  } finally {
    await hasher.close();
  }
});

test('an abandoned hash gives its thread back', async () => {
  const hasher = new ThreadedHasher({ threads: 1, handoffBytes: 10 });
  try {
    const first = hasher.start('sha256');
    first.update(random(100));
    assert.equal(hasher.active, 1);
    first.abandon();
    assert.equal(hasher.active, 0);
    const data = random(1 << 20);
    const second = hasher.start('sha256');
    second.update(data);
    assert.equal(hasher.active, 1, 'the next large hash gets the thread');
    assert.equal(hex(second.digest()), createHash('sha256').update(data).digest('hex'));
    assert.equal(hasher.threads, 1);
  } finally {
    await hasher.close();
  }
});

test('in a cache: an aborted blob writer gives the thread back, and the threaded digest is verified', async () => {
  const hasher = new ThreadedHasher({ threads: 1, handoffBytes: 1024 });
  const storage = new MemoryStorage();
  const cache = Cache.open({ storage, hasher });
  try {
    const w = cache.beginBlob();
    w.write(random(4096));
    assert.equal(hasher.active, 1);
    w.abort();
    assert.equal(hasher.active, 0, 'the core dropped the hash, which called abandon()');
    assert.equal(storage.tempCount(), 0);

    const data = random(5 << 20);
    const want = 'sha256:' + createHash('sha256').update(data).digest('hex');
    const good = cache.beginBlob({ digest: want });
    for (const c of split(data, 300_001)) good.write(c);
    assert.equal(good.commit(), want);
    assert.deepEqual(cache.getBlob(want), data);

    const wrong = 'sha256:' + '0'.repeat(64);
    const bad = cache.beginBlob({ digest: wrong });
    for (const c of split(data, 1 << 20)) bad.write(c);
    assert.throws(() => bad.commit(), DigestMismatchError);
    assert.equal(cache.hasBlob(wrong), false);
    assert.equal(hasher.active, 0);
  } finally {
    cache.close();
    await hasher.close();
  }
});

test('closing the hasher under a running hash fails that blob and stores nothing', async () => {
  const hasher = new ThreadedHasher({ threads: 1, handoffBytes: 1024 });
  const storage = new MemoryStorage();
  const cache = Cache.open({ storage, hasher });
  try {
    const w = cache.beginBlob();
    w.write(random(8192));
    await hasher.close();
    assert.throws(() => {
      w.write(random(8192));
      w.commit();
    }, (e) => e instanceof StorageError && /hasher failed/.test(e.message));
    assert.deepEqual(cache.contents(), []);
    assert.equal(storage.tempCount(), 0);
    assert.equal(cache.checkIntegrity().healthy, true);
    // A new hash starts a new thread.
    const data = random(1 << 20);
    assert.equal(cache.putBlob(data), 'sha256:' + createHash('sha256').update(data).digest('hex'));
  } finally {
    cache.close();
    await hasher.close();
  }
});

test('the Node entry hashes large blobs on its shared threaded hasher by default', () => {
  const cache = Cache.open({ storage: new MemoryStorage() });
  try {
    const w = cache.beginBlob();
    w.write(random(threadedHasher.handoffBytes + 1));
    assert.equal(threadedHasher.active, os.availableParallelism() > 1 ? 1 : 0);
    w.commit();
    assert.equal(threadedHasher.active, 0);
  } finally {
    cache.close();
  }
});

test('a failed background flush is reported when its file is settled, once', { skip: process.platform !== 'linux' && 'needs mkfifo and Linux fdatasync semantics' }, () => {
  // fdatasync of a FIFO fails (EINVAL): a stand-in for a disk that fails under a large write.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-flush-'));
  const fifo = path.join(dir, 'fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const fd = fs.openSync(fifo, 'r+'); // read-write: does not block waiting for a peer
  const flusher = new BackgroundFlusher();
  try {
    assert.equal(flusher.request(fd), true);
    assert.throws(() => flusher.settle(fd), (e) => e.code === 'EIO');
    flusher.settle(fd); // reported once
    const ok = fs.openSync(path.join(dir, 'file'), 'w');
    fs.writeSync(ok, random(1 << 20));
    assert.equal(flusher.request(ok), true);
    flusher.settle(ok); // a file flushes fine
    fs.closeSync(ok);
  } finally {
    flusher.close();
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('FsStorage: a 48 MiB blob in odd-sized pieces commits intact; an aborted large temp leaves nothing', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-large-'));
  const data = random(48 << 20);
  const want = 'sha256:' + createHash('sha256').update(data).digest('hex');
  try {
    let cache = openCache(dir);
    const w = cache.beginBlob({ size: data.length });
    for (const c of split(data, 777_777)) w.write(c);
    assert.equal(w.commit(), want);
    const dropped = cache.beginBlob();
    for (const c of split(data.subarray(0, 40 << 20), 1 << 20)) dropped.write(c);
    dropped.abort();
    assert.deepEqual(fs.readdirSync(path.join(dir, 'tmp')), []);
    cache.close();

    cache = openCache(dir);
    try {
      assert.deepEqual(cache.getBlob(want), data);
      assert.equal(cache.checkIntegrity().healthy, true);
    } finally {
      cache.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
