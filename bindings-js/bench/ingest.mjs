// Ingest throughput of a 1 GiB blob through the Node package, as a ratio of
// crypto.createHash('sha256') over the same bytes, measured in each round of the same run.
// Reports, never asserts.
//   node bench/ingest.mjs [MiB] [rounds]   (defaults 1024 and 3)
// It re-runs itself with --expose-gc, so that each contender's garbage (a 1 GiB in-memory
// storage) is collected and freed before the next one starts instead of during it, and (glibc)
// with the allocator told to keep freed memory (MALLOC_MMAP_MAX_=0, no trimming), as the Rust
// ingest bench does with mallopt: the rounds then reuse memory the process owns, as a
// long-running host does, instead of measuring the kernel's cost of handing out 1 GiB of fresh
// pages (which, with the page cache full, varies from 0.3 to 0.9 s per GiB on this VM).
// `--fresh-memory` leaves the allocator alone.
import { createHash, randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Cache, MemoryStorage, FsStorage, nodeHasher } from '../src/node.js';

const freshMemory = process.argv.includes('--fresh-memory');
const positional = process.argv.slice(2).filter((a) => !a.startsWith('--'));
if (typeof globalThis.gc !== 'function') {
  const env = freshMemory
    ? process.env
    : { ...process.env, MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: String(2 ** 40), MALLOC_TOP_PAD_: '0' };
  const r = spawnSync(process.execPath, ['--expose-gc', ...process.argv.slice(1)], { stdio: 'inherit', env });
  process.exit(r.status ?? 1);
}

const MIB = 1 << 20;
const total = Number(positional[0] ?? 1024) * MIB;
const rounds = Number(positional[1] ?? 3);
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

const freeAtStart = os.freemem();
const mibs = (bytes, s) => bytes / MIB / s;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Collects the last contender's garbage and lets the freeing finish before the next one. */
async function quiesce() {
  globalThis.gc();
  await new Promise((r) => setTimeout(r, 300));
}

// Storage that keeps nothing: isolates the cache's own cost (copy into wasm, hashing through
// node:crypto, size/digest checks, commit bookkeeping) from the storage's.
const sink = {
  createTemp: () => 1, writeTemp() {}, commitTemp() {}, abortTemp() {}, append() {},
  readAt: () => 0, size: () => null, list: () => [], remove() {}, clearTemps: () => 0,
};
const contenders = [
  ['ocicache over a discarding storage (the cache\'s own cost)', () => ({ storage: sink })],
  ['ocicache MemoryStorage (default: node:crypto on a worker thread)', () => ({ storage: new MemoryStorage() })],
  ['ocicache MemoryStorage, node:crypto inline (nodeHasher)', () => ({ storage: new MemoryStorage(), hasher: nodeHasher })],
  ['ocicache MemoryStorage, built-in sha2 (wasm)', () => ({ storage: new MemoryStorage(), hasher: null })],
  ['ocicache FsStorage (write + fsync + rename), default hasher', (dir) => ({ storage: new FsStorage(dir) })],
  ['ocicache FsStorage, node:crypto inline (nodeHasher)', (dir) => ({ storage: new FsStorage(dir), hasher: nodeHasher })],
];

function runContender(options, expected, bytes = total) {
  const cache = Cache.open(options);
  const [t, digest] = time(() => ingest(cache, bytes));
  cache.close();
  if (digest !== expected) throw new Error(`digest ${digest} != ${expected}`);
  return t;
}

// Warm-up (V8 and wasm tier up; TOOLCHAIN.md): 128 MiB of each path.
hashOnly(128 * MIB);
runContender({ storage: new MemoryStorage() }, hashOnly(128 * MIB), 128 * MIB);

const times = new Map([['crypto.createHash sha256 (baseline)', []], ...contenders.map(([n]) => [n, []]), ['(for scale: Uint8Array.set into a fresh buffer, no hashing)', []]]);
const ratios = new Map([...times.keys()].map((k) => [k, []]));
for (let round = 0; round < rounds; round++) {
  await quiesce();
  const [tHash, expected] = time(() => hashOnly(total));
  const record = (name, t) => {
    times.get(name).push(t);
    ratios.get(name).push(tHash / t);
  };
  record('crypto.createHash sha256 (baseline)', tHash);
  for (const [name, options] of contenders) {
    await quiesce();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-bench-'));
    try {
      record(name, runContender(options(dir), expected));
    } catch (e) {
      throw new Error(`${name}: ${e.message}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  await quiesce();
  // For scale: a plain copy of the same bytes into one fresh buffer (page faults), no hashing.
  const [tCopy] = time(() => {
    const big = new Uint8Array(total);
    let at = 0;
    for (const c of chunks(total)) { big.set(c, at); at += c.length; }
  });
  record('(for scale: Uint8Array.set into a fresh buffer, no hashing)', tCopy);
}

console.log(`ingest of ${total / MIB} MiB in ${CHUNK / MIB} MiB chunks, ${rounds} rounds (node ${process.version}, ${os.availableParallelism?.() ?? os.cpus().length} cores); allocator keeps freed memory: ${freshMemory ? 'no (--fresh-memory)' : 'yes (glibc MALLOC_MMAP_MAX_=0)'}; free memory at the start: ${(freeAtStart / 2 ** 30).toFixed(1)} GiB (with a full page cache, every fresh page is reclaimed first)`);
console.log(`  ${'path'.padEnd(66)} ${'median s'.padStart(8)} ${'MiB/s'.padStart(6)}  ratio median (best)`);
for (const [name, ts] of times) {
  const t = median(ts);
  const rs = ratios.get(name);
  console.log(`  ${name.padEnd(66)} ${t.toFixed(3).padStart(8)} ${mibs(total, t).toFixed(0).padStart(6)}  ${median(rs).toFixed(2)} (${Math.max(...rs).toFixed(2)})`);
}
