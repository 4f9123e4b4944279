// Ingest throughput of a 1 GiB blob through the Node package, as a ratio of
// crypto.createHash('sha256') over the same bytes in the same run. Reports, never asserts.
//   node bench/ingest.mjs [MiB]   (default 1024)
import { createHash, randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Cache, MemoryStorage, FsStorage } from '../src/node.js';

const MIB = 1 << 20;
const total = Number(process.argv[2] ?? 1024) * MIB;
const CHUNK = MIB;
// 64 distinct 1 MiB chunks, cycled: the same byte sequence for every contender.
const pool = Array.from({ length: 64 }, () => randomFillSync(new Uint8Array(CHUNK)));
const chunks = function* (bytes) {
  for (let i = 0; i * CHUNK < bytes; i++) yield pool[i % pool.length];
};

function hashOnly(bytes) {
  const h = createHash('sha256');
  for (const c of chunks(bytes)) h.update(c);
  return 'sha256:' + h.digest('hex');
}

function ingest(cache, bytes) {
  const w = cache.beginBlob({ size: bytes });
  for (const c of chunks(bytes)) w.write(c);
  return w.commit();
}

function time(f) {
  const t0 = process.hrtime.bigint();
  const v = f();
  return [Number(process.hrtime.bigint() - t0) / 1e9, v];
}

const mibs = (bytes, s) => bytes / MIB / s;
const results = [];

// Warm-up (V8 and wasm tier up; TOOLCHAIN.md): 128 MiB of each path.
hashOnly(128 * MIB);
{
  const c = Cache.open({ storage: new MemoryStorage() });
  ingest(c, 128 * MIB);
  c.close();
}

const [tHash, expected] = time(() => hashOnly(total));
results.push(['crypto.createHash sha256 (baseline)', tHash]);

// Storage that keeps nothing: isolates the cache's own cost (copy into wasm, hashing through
// node:crypto, size/digest checks, commit bookkeeping) from the storage's.
const sink = {
  createTemp: () => 1, writeTemp() {}, commitTemp() {}, abortTemp() {}, append() {},
  readAt: () => 0, size: () => null, list: () => [], remove() {}, clearTemps: () => 0,
};
// And for scale: a plain copy of the same bytes into one fresh 1 GiB Uint8Array (page faults).
const [tCopy] = time(() => {
  const big = new Uint8Array(total);
  let at = 0;
  for (const c of chunks(total)) { big.set(c, at); at += c.length; }
});

for (const [name, open, cleanup] of [
  ['ocicache over a discarding storage (the cache\'s own cost)', () => Cache.open({ storage: sink })],
  ['ocicache MemoryStorage, node:crypto hasher', () => Cache.open({ storage: new MemoryStorage() })],
  ['ocicache MemoryStorage, built-in sha2 (wasm)', () => Cache.open({ storage: new MemoryStorage(), hasher: null })],
  (() => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-bench-'));
    return ['ocicache FsStorage (write + fsync + rename), node:crypto', () => Cache.open({ storage: new FsStorage(dir) }), () => fs.rmSync(dir, { recursive: true, force: true })];
  })(),
]) {
  const cache = open();
  const [t, digest] = time(() => ingest(cache, total));
  if (digest !== expected) throw new Error(`${name}: digest ${digest} != ${expected}`);
  cache.close();
  cleanup?.();
  results.push([name, t]);
}

results.push(['(for scale: Uint8Array.set into a fresh buffer, no hashing)', tCopy]);
console.log(`ingest of ${total / MIB} MiB in ${CHUNK / MIB} MiB chunks (node ${process.version})`);
for (const [name, t] of results) {
  console.log(`  ${name.padEnd(62)} ${t.toFixed(3)} s  ${mibs(total, t).toFixed(0).padStart(5)} MiB/s  ratio ${(tHash / t).toFixed(2)}`);
}
