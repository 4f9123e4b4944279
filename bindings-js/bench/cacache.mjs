// ocicache (Node package, node:fs storage) at both durability levels against npm's cacache on
// the same workload, in the same run: 10,000 small entries put and read back, then 100 × 10 MiB
// blobs put and read back. Rounds are interleaved (the contenders' order rotates each round) and
// medians reported, since the machine may be shared. Reports, never asserts.
//   node bench/cacache.mjs [smallCount] [bigCount] [rounds]
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

const ROUNDS = Number(process.argv[4] ?? 5);

/** One run of ocicache's four phases in `dir` at `durability`: seconds per phase. */
async function ocicache(dir, durability) {
  const cache = openCache(dir, { config: { max_bytes: 4 * 2 ** 30, durability } });
  const t = {};
  const digests = [];
  t['small put'] = await time(() => { for (const b of small) digests.push(cache.putBlob(b)); });
  t['small get'] = await time(() => {
    for (const d of digests) if (cache.getBlob(d).length !== SMALL_SIZE) throw new Error('short');
  });
  const bigDigests = [];
  t['big put'] = await time(() => { for (const b of big) bigDigests.push(cache.putBlob(b)); });
  t['big get (streamed, verified)'] = await time(async () => {
    for (const d of bigDigests) {
      let n = 0;
      for (const chunk of cache.openBlob(d)) n += chunk.length;
      if (n !== BIG_SIZE) throw new Error('short');
    }
  });
  cache.close();
  return t;
}

/** cacache, the cache npm uses (content-addressed by sha512, index by key; no fsync). */
async function npmCacache(dir) {
  const t = {};
  const keys = small.map((_, i) => `small-${i}`);
  t['small put'] = await time(async () => {
    for (let i = 0; i < SMALL; i++) await cacache.put(dir, keys[i], small[i]);
  });
  t['small get'] = await time(async () => {
    for (const k of keys) if ((await cacache.get(dir, k)).data.length !== SMALL_SIZE) throw new Error('short');
  });
  t['big put'] = await time(async () => {
    for (let i = 0; i < BIG; i++) await cacache.put(dir, `big-${i}`, big[i]);
  });
  t['big get (streamed, verified)'] = await time(async () => {
    for (let i = 0; i < BIG; i++) {
      let n = 0;
      for await (const chunk of cacache.get.stream(dir, `big-${i}`)) n += chunk.length;
      if (n !== BIG_SIZE) throw new Error('short');
    }
  });
  return t;
}

// strict: every put is a temp write, fsync, rename, fsync of the directory and an fsynced
// journal append; relaxed: the same without any fsync (cacache's durability).
const contenders = {
  'ocicache strict': (dir) => ocicache(dir, 'strict'),
  'ocicache relaxed': (dir) => ocicache(dir, 'relaxed'),
  cacache: npmCacache,
};
const names = Object.keys(contenders);
const times = Object.fromEntries(names.map((n) => [n, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (let i = 0; i < names.length; i++) {
    const name = names[(round + i) % names.length];
    const dir = path.join(base, `${round}-${name.replace(' ', '-')}`);
    times[name].push(await contenders[name](dir));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
fs.rmSync(base, { recursive: true, force: true });

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
console.log(`ocicache vs cacache (node ${process.version}); ${SMALL} × ${SMALL_SIZE} B and ${BIG} × ${BIG_SIZE >> 20} MiB; medians of ${ROUNDS} interleaved rounds`);
for (const phase of Object.keys(times.cacache[0])) {
  const n = phase.startsWith('small') ? SMALL : BIG;
  const m = Object.fromEntries(names.map((name) => [name, median(times[name].map((t) => t[phase]))]));
  const cells = names.map((name) => `${name} ${m[name].toFixed(3)} s (${(n / m[name]).toFixed(0)}/s)`);
  const ratio = (name) => (m.cacache / m[name]).toFixed(2);
  console.log(`  ${phase.padEnd(29)} ${cells.join('   ')}`);
  console.log(`  ${''.padEnd(29)} speed ÷ cacache: strict ${ratio('ocicache strict')}×, relaxed ${ratio('ocicache relaxed')}×`);
}
