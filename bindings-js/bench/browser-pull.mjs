// cache.pull in headless Chromium (the browser entry: a Worker on OPFS) against the plain
// download in the same page, in the same run, from the same local docker-registry with CORS
// headers (started here through the test harness, test/support/):
//   cold:   an image of 4 layers (256 MiB in all) pulled into an empty OPFS directory
//           (verified, flushed, journaled; the Worker does the HTTP), the time of the pull;
//   plain:  the same manifest and blobs with the page's fetch → arrayBuffer (no hashing, no
//           storage), the layers 4 at a time as the pull does;
//   warm:   the same pull again with the tag fresh (no request);
//   memory: the cold pull into the Worker's in-memory storage instead of OPFS (the cost of the
//           engine and hashing without the disk).
// Reports MiB/s of blob bytes, never asserts. Runs are interleaved; the figures are medians.
//   node bench/browser-pull.mjs [totalMiB] [runs]      (defaults 256 and 3; e.g. 32 for a quick look)
import fs from 'node:fs';
import { serve } from '../test/browser/serve.mjs';
import { Peers, peersSkip } from '../test/support/registry-peers.mjs';

const TOTAL_MIB = Number(process.argv[2] ?? 256);
const RUNS = Number(process.argv[3] ?? 3);
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];
if (peersSkip || !fs.existsSync(CHROMIUM)) {
  console.error(`cannot run: ${peersSkip || `no Chromium at ${CHROMIUM}`}`);
  process.exit(1);
}
const { chromium } = await import('playwright-core');
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

const peers = new Peers();
const server = await serve(0);
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
try {
  const registry = await peers.registry({ cors: '*' });
  const layer = Math.floor((TOTAL_MIB << 20) / 4);
  console.log(`pushing a 4-layer image of ${TOTAL_MIB} MiB to ${registry.url} …`);
  const built = await registry.push('bench/image:1.0', { seed: 99, layers: [layer, layer, layer, layer] });
  const blobBytes = [built.images[0].config, ...built.images[0].layers].reduce((n, b) => n + b.size, 0);
  const mib = blobBytes / 2 ** 20;
  const ref = registry.reference('bench/image:1.0');

  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/test/browser/tab.html`);
  await page.waitForFunction(() => window.__ready === true);
  const version = browser.version();

  const cold = [];
  const plain = [];
  const warm = [];
  const memory = [];
  for (let run = 0; run < RUNS; run++) {
    const r = await page.evaluate(async ({ ref, url, maxBytes, run }) => {
      // The plain download: what the pull replaces, minus hashing and storing.
      const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
      let t0 = performance.now();
      const manifest = await (await fetch(`${url}/v2/bench/image/manifests/1.0`, { headers: { Accept: accept } })).json();
      const queue = [manifest.config, ...manifest.layers];
      let got = 0;
      const worker = async () => {
        for (let blob = queue.shift(); blob; blob = queue.shift()) {
          const body = await (await fetch(`${url}/v2/bench/image/blobs/${blob.digest}`)).arrayBuffer();
          got += body.byteLength;
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
      const plain = (performance.now() - t0) / 1000;

      const dir = `bench-${run}-${Date.now()}`;
      const cache = await window.ocicache.openCache({ directory: dir, config: { max_bytes: maxBytes } });
      t0 = performance.now();
      const report = await cache.pull(ref);
      const cold = (performance.now() - t0) / 1000;
      t0 = performance.now();
      const again = await cache.pull(ref);
      const warm = performance.now() - t0;
      await cache.close();
      await (await navigator.storage.getDirectory()).removeEntry(dir, { recursive: true });
      if (again.requests !== 0) throw new Error(`warm pull made ${again.requests} requests`);

      const inMemory = await window.ocicache.openCache({ memory: true, config: { max_bytes: maxBytes } });
      t0 = performance.now();
      await inMemory.pull(ref);
      const memory = (performance.now() - t0) / 1000;
      await inMemory.close();
      return { plain, cold, warm, memory, got, fetched: report.bytes_fetched };
    }, { ref, url: registry.url, maxBytes: 4 * built.total_size, run });
    if (r.got !== blobBytes) throw new Error(`plain download got ${r.got} of ${blobBytes} bytes`);
    plain.push(r.plain);
    cold.push(r.cold);
    warm.push(r.warm);
    memory.push(r.memory);
    console.log(`run ${run + 1}: plain ${(mib / r.plain).toFixed(0)} MiB/s, cold pull ${(mib / r.cold).toFixed(0)} MiB/s, ` +
      `warm ${r.warm.toFixed(1)} ms, into memory ${(mib / r.memory).toFixed(0)} MiB/s`);
  }
  console.log(`\nChromium ${version}, ${mib.toFixed(1)} MiB of blobs in 4 layers + config, median of ${RUNS}:`);
  console.log(`  fetch → arrayBuffer (page)      ${(mib / median(plain)).toFixed(0).padStart(5)} MiB/s  (${median(plain).toFixed(2)} s)`);
  console.log(`  cache.pull cold into OPFS       ${(mib / median(cold)).toFixed(0).padStart(5)} MiB/s  (${median(cold).toFixed(2)} s)` +
    `  = ${(median(plain) / median(cold)).toFixed(2)} of plain`);
  console.log(`  cache.pull warm (tag fresh)     ${median(warm).toFixed(1).padStart(5)} ms`);
  console.log(`  cache.pull cold, memory storage ${(mib / median(memory)).toFixed(0).padStart(5)} MiB/s  (${median(memory).toFixed(2)} s)`);
} finally {
  await browser.close();
  server.close();
  await peers.close();
}
