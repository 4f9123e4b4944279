// In a dedicated Worker on OPFS: a pull of `ref` aborted once `n` bytes of the layer arrived
// (the registry, on this origin, sends that many and hangs), the storage and cache closed and
// opened again (as after a reload), then a pull that must continue the layer from byte `n`.
// Then a cleanup with one idle partial and one held open. Posts what it saw; the Node side
// checks the requests the registry got.
import { Cache, initEngine } from '../../src/cache.js';
import { OpfsStorage } from '../../src/opfs-storage.js';

const q = new URL(self.location.href).searchParams;
const ref = q.get('ref');
const layer = q.get('layer');
const n = Number(q.get('n'));
const DIR = 'partials-test';
const partial = (digest) => `partials/sha256/${digest.slice('sha256:'.length)}`;

/** The OPFS file at `path` under the directory (what is really there), or null. */
async function opfsFile(path) {
  let dir = await (await navigator.storage.getDirectory()).getDirectoryHandle(DIR);
  const parts = path.split('/');
  try {
    for (const p of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(p);
    return await (await dir.getFileHandle(parts.at(-1))).getFile();
  } catch (e) {
    if (e.name === 'NotFoundError') return null;
    throw e;
  }
}

try {
  await initEngine(new URL('../../dist/ocicache_js_bg.wasm', import.meta.url));
  await OpfsStorage.destroy(DIR);
  const out = {};
  let storage = await OpfsStorage.open(DIR);
  let cache = Cache.open({ storage });
  await storage.settle();
  const controller = new AbortController();
  const onProgress = (e) => {
    if (e.type === 'bytes' && e.digest === layer && e.received >= n) controller.abort();
  };
  try {
    await cache.pull(ref, { signal: controller.signal, onProgress });
    out.aborted = 'the pull completed';
  } catch (e) {
    out.aborted = e.name;
  }
  await storage.settle();
  out.partialAfterAbort = storage.size(partial(layer));
  out.hasLayerAfterAbort = cache.hasBlob(layer);
  cache.close();
  await storage.close();
  out.opfsPartialSize = (await opfsFile(partial(layer)))?.size ?? null;

  storage = await OpfsStorage.open(DIR);
  cache = Cache.open({ storage });
  await storage.settle();
  const report = await cache.pull(ref);
  await storage.settle();
  const b = report.blobs.find((x) => x.digest === layer);
  out.resumedFrom = b.resumed_from;
  out.fetched = b.fetched;
  const bytes = cache.getBlob(layer);
  out.layerHex = [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))].map((x) => x.toString(16).padStart(2, '0')).join('');
  out.healthy = cache.checkIntegrity().healthy;
  out.partialAfterResume = storage.size(partial(layer));
  out.opfsPartialAfterResume = (await opfsFile(partial(layer)))?.size ?? null;

  // cleanup: the idle partial goes, the held one stays.
  const idle = partial(`sha256:${'1'.repeat(64)}`);
  const held = partial(`sha256:${'2'.repeat(64)}`);
  const a = storage.openPartial(idle);
  storage.writeTemp(a.id, new TextEncoder().encode('idle'));
  storage.keepPartial(a.id);
  const h = storage.openPartial(held);
  storage.writeTemp(h.id, new TextEncoder().encode('held'));
  out.secondOpen = storage.openPartial(held);
  await storage.settle();
  cache.cleanup();
  await storage.settle();
  out.idleAfterCleanup = (await opfsFile(idle))?.size ?? null;
  out.heldAfterCleanup = storage.size(held);
  cache.close();
  await storage.close();
  await OpfsStorage.destroy(DIR);
  self.postMessage(out);
} catch (e) {
  self.postMessage({ error: String(e?.stack ?? e) });
}
