// cache.pull in Node against the plain download it replaces, in the same run, from the same
// local docker-registry (started here through the test harness, test/support/):
//   cold:     an image of 4 layers (256 MiB in all) pulled into an empty cache directory
//             (node:fs storage: verified, fsynced, journaled), against fetching the same
//             manifest and blobs with the global fetch into createHash + a file written with
//             node:fs (no cache), the layers 4 at a time as the pull does: without fsync (the
//             issue's baseline) and with an fsync of each file (what the cache's default
//             durability costs, for scale);
//             Also the cold pull with `durability: 'relaxed'` (no fsync), like for like with the
//             plain download;
//   warm:     the same pull again with the tag fresh (no request), in the open cache, and
//             with the open and close of the directory counted too.
// Reports, never asserts. Runs are interleaved; the figures are medians.
//   node bench/pull.mjs [totalMiB] [runs]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { openCache } from '../src/node.js';
import { Peers, peersSkip } from '../test/support/registry-peers.mjs';

const TOTAL_MIB = Number(process.argv[2] ?? 256);
const RUNS = Number(process.argv[3] ?? 3);
const WARM_RUNS = 20;
if (peersSkip) {
  console.error(`cannot run: ${peersSkip}`);
  process.exit(1);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;
const MANIFEST_ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';

/** What cache.pull replaces: fetch, hash while streaming, write the file; 4 blobs at a time. */
async function plainDownload(registryUrl, repo, tag, dir, { sync = false } = {}) {
  const manifestResponse = await fetch(`${registryUrl}/v2/${repo}/manifests/${tag}`, { headers: { Accept: MANIFEST_ACCEPT } });
  const manifestBytes = Buffer.from(await manifestResponse.arrayBuffer());
  fs.writeFileSync(path.join(dir, 'manifest.json'), manifestBytes);
  const manifest = JSON.parse(manifestBytes);
  const queue = [manifest.config, ...manifest.layers];
  const worker = async () => {
    for (let blob = queue.shift(); blob; blob = queue.shift()) {
      const response = await fetch(`${registryUrl}/v2/${repo}/blobs/${blob.digest}`);
      const hash = createHash('sha256');
      const file = await fs.promises.open(path.join(dir, blob.digest.replace(':', '-')), 'w');
      try {
        for await (const chunk of response.body) {
          hash.update(chunk);
          await file.write(chunk);
        }
        if (sync) await file.sync();
      } finally {
        await file.close();
      }
      if (`sha256:${hash.digest('hex')}` !== blob.digest) throw new Error(`bad digest ${blob.digest}`);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

const peers = new Peers();
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-pull-bench-'));
try {
  const registry = await peers.registry();
  const layer = Math.floor((TOTAL_MIB << 20) / 4);
  console.log(`pushing a 4-layer image of ${TOTAL_MIB} MiB to ${registry.url} …`);
  const built = await registry.push('bench/image:1.0', { seed: 99, layers: [layer, layer, layer, layer] });
  const mib = built.total_size / 2 ** 20;
  const ref = registry.reference('bench/image:1.0');

  const cold = [];
  const coldRelaxed = [];
  const plain = [];
  const plainSync = [];
  const warm = [];
  const warmOpenClose = [];
  for (let run = 0; run < RUNS; run++) {
    const plainDir = fs.mkdtempSync(path.join(base, 'plain-'));
    let t0 = process.hrtime.bigint();
    await plainDownload(registry.url, 'bench/image', '1.0', plainDir);
    plain.push(seconds(t0));
    fs.rmSync(plainDir, { recursive: true });
    const syncDir = fs.mkdtempSync(path.join(base, 'plain-sync-'));
    t0 = process.hrtime.bigint();
    await plainDownload(registry.url, 'bench/image', '1.0', syncDir, { sync: true });
    plainSync.push(seconds(t0));
    fs.rmSync(syncDir, { recursive: true });

    const cacheDir = fs.mkdtempSync(path.join(base, 'cache-'));
    t0 = process.hrtime.bigint();
    let cache = openCache(cacheDir, { config: { max_bytes: 2 * built.total_size } });
    const report = await cache.pull(ref);
    cache.close();
    cold.push(seconds(t0));
    if (report.digest !== built.digest) throw new Error('pulled the wrong image');

    const relaxedDir = fs.mkdtempSync(path.join(base, 'relaxed-'));
    t0 = process.hrtime.bigint();
    const relaxed = openCache(relaxedDir, { config: { max_bytes: 2 * built.total_size, durability: 'relaxed' } });
    await relaxed.pull(ref);
    relaxed.close();
    coldRelaxed.push(seconds(t0));
    fs.rmSync(relaxedDir, { recursive: true });

    cache = openCache(cacheDir);
    for (let i = 0; i < WARM_RUNS; i++) {
      t0 = process.hrtime.bigint();
      const again = await cache.pull(ref);
      warm.push(seconds(t0));
      if (again.requests !== 0) throw new Error('a warm pull made requests');
    }
    cache.close();
    for (let i = 0; i < WARM_RUNS; i++) {
      t0 = process.hrtime.bigint();
      cache = openCache(cacheDir);
      await cache.pull(ref);
      cache.close();
      warmOpenClose.push(seconds(t0));
    }
    fs.rmSync(cacheDir, { recursive: true });
  }
  const [c, p, ps] = [median(cold), median(plain), median(plainSync)];
  console.log(`image: ${mib.toFixed(1)} MiB in ${built.images[0].layers.length} layers; ${RUNS} runs, medians`);
  console.log(`cold  cache.pull (open, pull, close): ${c.toFixed(3)} s  ${(mib / c).toFixed(0)} MiB/s`);
  const cr = median(coldRelaxed);
  console.log(`cold  cache.pull, durability relaxed:  ${cr.toFixed(3)} s  ${(mib / cr).toFixed(0)} MiB/s`);
  console.log(`cold  fetch + createHash + node:fs:   ${p.toFixed(3)} s  ${(mib / p).toFixed(0)} MiB/s`);
  console.log(`cold  fetch + createHash + node:fs + fsync: ${ps.toFixed(3)} s  ${(mib / ps).toFixed(0)} MiB/s`);
  console.log(`cold  ratio (plain time / pull time, ≥ 0.8 wanted): ${(p / c).toFixed(2)}; against plain + fsync: ${(ps / c).toFixed(2)}`);
  console.log(`cold  ratio, relaxed (plain time / relaxed pull time): ${(p / cr).toFixed(2)}`);
  console.log(`warm  cache.pull, cache open:          ${(median(warm) * 1000).toFixed(2)} ms (${WARM_RUNS * RUNS} pulls)`);
  console.log(`warm  open + cache.pull + close:       ${(median(warmOpenClose) * 1000).toFixed(2)} ms`);
} finally {
  await peers.close();
  fs.rmSync(base, { recursive: true, force: true });
}
