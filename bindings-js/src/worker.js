// The browser entry's Worker: runs the cache synchronously on OPFS (or in memory) and answers
// the main thread's calls (src/browser.js). Start it with
//   new Worker(new URL('ocicache/worker', import.meta.url), { type: 'module' })
// or let `openCache()` of the browser entry do it.
import { Cache, initEngine } from './cache.js';
import { OpfsStorage } from './opfs-storage.js';
import { MemoryStorage } from './memory.js';
import { OcicacheError } from './errors.js';

let cache = null;
let storage = null;
const writers = new Map();
const readers = new Map();
let nextHandle = 0;

function serializeError(e) {
  return {
    name: e?.name ?? 'Error',
    code: e instanceof OcicacheError ? e.code : e?.code,
    message: e?.message ?? String(e),
    details: e?.details,
    storageKind: e?.storageKind,
  };
}

function transferables(v) {
  return v instanceof Uint8Array ? [v.buffer] : [];
}

const handlers = {
  async open({ directory, memory, config, wasmUrl }) {
    await initEngine(wasmUrl ? new URL(wasmUrl) : new URL('../dist/ocicache_js_bg.wasm', import.meta.url));
    if (cache) throw new Error('a cache is already open in this worker');
    storage = memory ? new MemoryStorage() : await OpfsStorage.open(directory ?? 'ocicache');
    cache = Cache.open({ storage, config: config ?? {} });
    return cache.recovery();
  },
  async close() {
    if (cache) cache.close();
    cache = null;
    if (storage?.close) await storage.close();
    storage = null;
    return null;
  },
  beginBlob(options) {
    const h = ++nextHandle;
    writers.set(h, cache.beginBlob(options));
    return h;
  },
  writeBlob(h, chunk) {
    writers.get(h).write(chunk);
    return null;
  },
  commitBlob(h) {
    const w = writers.get(h);
    writers.delete(h);
    return w.commit();
  },
  abortBlob(h) {
    writers.get(h)?.abort();
    writers.delete(h);
    return null;
  },
  openBlob(digest) {
    const r = cache.openBlob(digest);
    const h = ++nextHandle;
    readers.set(h, r);
    return [h, r.size];
  },
  readBlob(h, max) {
    return readers.get(h).read(max);
  },
  closeBlob(h) {
    readers.get(h)?.close();
    readers.delete(h);
    return null;
  },
};

/** The Cache methods callable from the main thread. */
const CACHE_METHODS = new Set([
  'putManifest', 'getManifest', 'hasManifest', 'deleteManifest', 'manifestReferences',
  'putBlob', 'getBlob', 'hasBlob', 'deleteBlob', 'pin', 'unpin', 'deleteEntry', 'hasEntry',
  'putTag', 'getTag', 'hasTag', 'resolveTag', 'resolveFailed', 'detectMovement',
  'invalidateTag', 'deleteTag', 'tagHistory', 'tags', 'stats', 'metrics', 'prometheus', 'size',
  'contents', 'debugInfo', 'exportDebugJson', 'checkIntegrity', 'validateDigests', 'repair',
  'clearExpired', 'cleanup', 'clear', 'flush', 'recovery',
]);

// One call at a time, in arrival order: the cache is single-threaded and OPFS changes settle
// before the next call runs.
let chain = Promise.resolve();
self.onmessage = (event) => {
  const { id, method, args } = event.data ?? {};
  chain = chain.then(async () => {
    try {
      let result;
      if (Object.hasOwn(handlers, method)) {
        if (method !== 'open' && method !== 'close' && !cache) throw new Error('no cache is open');
        result = await handlers[method](...args);
      } else if (method === 'resolveTags') {
        result = cache.resolveTags(...args).map((r) => ('ok' in r ? r : { error: serializeError(r.error) }));
      } else if (CACHE_METHODS.has(method)) {
        if (!cache) throw new Error('no cache is open');
        result = cache[method](...args);
      } else {
        throw new Error(`unknown method ${method}`);
      }
      if (storage?.settle) await storage.settle();
      self.postMessage({ id, ok: true, result }, transferables(result));
    } catch (e) {
      try {
        if (storage?.settle) await storage.settle();
      } catch {
        // report the first error
      }
      self.postMessage({ id, ok: false, error: serializeError(e) });
    }
  });
};
