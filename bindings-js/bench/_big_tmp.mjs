import fs from 'node:fs'; import os from 'node:os'; import path from 'node:path';
import { randomFillSync } from 'node:crypto';
import cacache from 'cacache';
import { openCache } from '../src/node.js';
const N = Number(process.argv[2] ?? 30);
const CH = Number(process.argv[3] ?? (1 << 20));
const big = Array.from({ length: N }, () => randomFillSync(new Uint8Array(10 << 20)));
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const res = {};
for (let r = 0; r < 3; r++) for (const kind of ['whole', 'chunked', 'cacache']) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'big-'));
  const t0 = process.hrtime.bigint();
  if (kind === 'cacache') { for (let i = 0; i < N; i++) await cacache.put(dir, `k${i}`, big[i]); }
  else {
    const cache = openCache(dir, { config: { durability: 'relaxed', max_bytes: 2 ** 32 } });
    for (const b of big) {
      if (kind === 'whole') cache.putBlob(b);
      else { const w = cache.beginBlob({ size: b.length }); for (let o = 0; o < b.length; o += CH) w.write(b.subarray(o, o + CH)); w.commit(); }
    }
    cache.close();
  }
  (res[kind] ??= []).push(ms(t0) / N);
  fs.rmSync(dir, { recursive: true, force: true });
}
for (const [k, v] of Object.entries(res)) console.log(k, v.map((x) => x.toFixed(1)).join(' '), 'ms/put');
