// ocicache (Node package, node:fs storage) against npm's cacache on the same workload, in the
// same run: 10,000 small entries put and read back, then 100 × 10 MiB blobs put and read back.
// Reports, never asserts.   node bench/cacache.mjs [smallCount] [bigCount]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomFillSync } from 'node:crypto';
import cacache from 'cacache';
import { openCache } from '../src/node.js';

const SMALL = Number(process.argv[2] ?? 10_000);
const BIG = Number(process.argv[3] ?? 100);
const SMALL_SIZE = 1024;
const BIG_SIZE = 10 << 20;

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-vs-cacache-'));
const small = Array.from({ length: SMALL }, () => randomFillSync(new Uint8Array(SMALL_SIZE)));
const big = Array.from({ length: BIG }, () => randomFillSync(new Uint8Array(BIG_SIZE)));

async function time(f) {
  const t0 = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const rows = [];

// ocicache: durable (every put: temp write, fsync, rename, fsync dir, fsynced journal append).
{
  const cache = openCache(path.join(base, 'ocicache'), { config: { max_bytes: 4 * 2 ** 30 } });
  const digests = [];
  rows.push(['ocicache', 'small put', await time(() => { for (const b of small) digests.push(cache.putBlob(b)); })]);
  rows.push(['ocicache', 'small get', await time(() => {
    for (const d of digests) if (cache.getBlob(d).length !== SMALL_SIZE) throw new Error('short');
  })]);
  const bigDigests = [];
  rows.push(['ocicache', 'big put', await time(() => { for (const b of big) bigDigests.push(cache.putBlob(b)); })]);
  rows.push(['ocicache', 'big get (streamed, verified)', await time(async () => {
    for (const d of bigDigests) {
      let n = 0;
      for (const chunk of cache.openBlob(d)) n += chunk.length;
      if (n !== BIG_SIZE) throw new Error('short');
    }
  })]);
  cache.close();
}

// cacache: the cache npm uses (content-addressed by sha512, index by key; no fsync).
{
  const dir = path.join(base, 'cacache');
  const keys = small.map((_, i) => `small-${i}`);
  rows.push(['cacache', 'small put', await time(async () => {
    for (let i = 0; i < SMALL; i++) await cacache.put(dir, keys[i], small[i]);
  })]);
  rows.push(['cacache', 'small get', await time(async () => {
    for (const k of keys) if ((await cacache.get(dir, k)).data.length !== SMALL_SIZE) throw new Error('short');
  })]);
  rows.push(['cacache', 'big put', await time(async () => {
    for (let i = 0; i < BIG; i++) await cacache.put(dir, `big-${i}`, big[i]);
  })]);
  rows.push(['cacache', 'big get (streamed, verified)', await time(async () => {
    for (let i = 0; i < BIG; i++) {
      let n = 0;
      for await (const chunk of cacache.get.stream(dir, `big-${i}`)) n += chunk.length;
      if (n !== BIG_SIZE) throw new Error('short');
    }
  })]);
}

fs.rmSync(base, { recursive: true, force: true });
console.log(`ocicache vs cacache (node ${process.version}); ${SMALL} × ${SMALL_SIZE} B and ${BIG} × ${BIG_SIZE >> 20} MiB`);
const phases = [...new Set(rows.map((r) => r[1]))];
for (const phase of phases) {
  const o = rows.find((r) => r[0] === 'ocicache' && r[1] === phase)[2];
  const c = rows.find((r) => r[0] === 'cacache' && r[1] === phase)[2];
  const n = phase.startsWith('small') ? SMALL : BIG;
  console.log(`  ${phase.padEnd(30)} ocicache ${o.toFixed(3)} s (${(n / o).toFixed(0)} ops/s)   cacache ${c.toFixed(3)} s (${(n / c).toFixed(0)} ops/s)   ocicache/cacache speed ${(c / o).toFixed(2)}×`);
}
