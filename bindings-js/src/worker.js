// The browser entry's Worker: runs the cache synchronously on OPFS (or in memory) and answers
// the main thread's calls (src/browser.js). Start it with
//   new Worker(new URL('ocicache/worker', import.meta.url), { type: 'module' })
// or let `openCache()` of the browser entry do it.
//
// One OPFS directory serves one cache at a time (sync access handles are exclusive per file):
// before it opens any handle, the worker takes the exclusive Web Lock `ocicache:<directory>`
// and holds it until `close` has closed every handle (or until the worker ends). A second
// opener of the directory (another tab, another worker) waits for it, or with `wait: false`
// fails at once with a DirectoryInUseError.
import { Cache, initEngine } from './cache.js';
import { OpfsStorage } from './opfs-storage.js';
import { MemoryStorage } from './memory.js';
import { OcicacheError, DirectoryInUseError, StorageError } from './errors.js';
import { WORKER_METHODS } from './worker-methods.js';
import { engineOptions, pullOverFetch } from './pull.js';

let cache = null;
let storage = null;
let lock = null; // { release(), done: Promise } while this worker holds the directory's Web Lock
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

/** The name of the Web Lock that guards the OPFS directory `directory`. */
const lockName = (directory) => `ocicache:${directory}`;

/**
 * Takes the exclusive Web Lock `name`: resolves to `{ release, done }` once held (waiting for
 * the current holder unless `wait` is false), or to null if `wait` is false and it is held.
 */
function takeLock(name, wait) {
  if (!globalThis.navigator?.locks) {
    return Promise.reject(new StorageError('ocicache: Web Locks (navigator.locks) are unavailable here; ' +
      'they guard the OPFS directory against a second tab (both need a secure context)', { storageKind: 'io' }));
  }
  return new Promise((resolve, reject) => {
    const done = navigator.locks.request(name, { mode: 'exclusive', ifAvailable: !wait }, (held) => {
      if (!held) {
        resolve(null);
        return undefined;
      }
      return new Promise((release) => resolve({ release, done }));
    });
    done.catch(reject);
  });
}

async function releaseLock() {
  const l = lock;
  lock = null;
  if (l) {
    l.release();
    await l.done;
  }
}

const handlers = {
  async open({ directory, memory, config, wasmUrl, wait = true }) {
    await initEngine(wasmUrl ? new URL(wasmUrl) : new URL('../dist/ocicache_js_bg.wasm', import.meta.url));
    if (cache) throw new Error('a cache is already open in this worker');
    if (memory) {
      storage = new MemoryStorage();
    } else {
      const dir = directory ?? 'ocicache';
      const name = lockName(dir);
      lock = await takeLock(name, wait !== false);
      if (!lock) {
        throw new DirectoryInUseError(`the OPFS directory "${dir}" is in use by another tab or worker ` +
          `(it holds the Web Lock "${name}"); close it there, or open with wait: true to wait for it`,
        { details: { kind: 'io', directory: dir, lock: name } });
      }
      try {
        storage = await OpfsStorage.open(dir);
      } catch (e) {
        await releaseLock();
        throw e;
      }
    }
    try {
      cache = Cache.open({ storage, config: config ?? {} });
    } catch (e) {
      try {
        await storage?.close?.();
      } finally {
        storage = null;
        await releaseLock();
      }
      throw e;
    }
    return cache.recovery();
  },
  async close() {
    try {
      if (cache) cache.close();
    } finally {
      cache = null;
      try {
        if (storage?.close) await storage.close();
      } finally {
        storage = null;
        // Only once every sync access handle is closed may the next opener take the directory.
        await releaseLock();
      }
    }
    return null;
  },
  durability() {
    return cache.durability;
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
const CACHE_METHODS = new Set(WORKER_METHODS);

function dispatch(method, args) {
  if (Object.hasOwn(handlers, method)) {
    if (method !== 'open' && method !== 'close' && !cache) throw new Error('no cache is open');
    return handlers[method](...args);
  }
  if (method === 'resolveTags') {
    return cache.resolveTags(...args).map((r) => ('ok' in r ? r : { error: serializeError(r.error) }));
  }
  if (CACHE_METHODS.has(method)) {
    if (!cache) throw new Error('no cache is open');
    return cache[method](...args);
  }
  throw new Error(`unknown method ${method}`);
}

// One step at a time, in arrival order: the cache is single-threaded, and the OPFS changes of a
// step settle before the next one runs (a call from the main thread is one step; a pull is
// many, one per engine call, so that other calls and other pulls interleave with it).
let chain = Promise.resolve();
function run(job) {
  const step = chain.then(async () => {
    let result;
    try {
      result = await job();
    } catch (e) {
      try {
        if (storage?.settle) await storage.settle();
      } catch {
        // report the first error
      }
      throw e;
    }
    if (storage?.settle) await storage.settle();
    return result;
  });
  chain = step.then(() => {}, () => {});
  return step;
}

/** The pulls running, by call id: `{controller, done}` (the main thread's `cancel` aborts). */
const pulls = new Map();

function startPull(id, reference, options) {
  const controller = new AbortController();
  const done = pull(id, controller, reference, options).finally(() => pulls.delete(id));
  pulls.set(id, { controller, done });
  return done;
}

/**
 * A pull, with its HTTP done here by the Worker's `fetch`; the browser follows redirects (a
 * manual redirect is opaque in a browser). Requests carry no cookies and no credentials of the
 * browser's (`credentials: 'omit'`): the engine answers the registry's challenges, and a `401`
 * with `WWW-Authenticate: Basic` from the page's own origin reaches it instead of opening the
 * browser's login prompt. Each engine call is a step on the queue; progress events are posted
 * to the main thread as `{id, progress}`.
 */
async function pull(id, controller, reference, options) {
  const { progress = false, ...rest } = options ?? {};
  const machine = await run(() => {
    if (!cache) throw new Error('no cache is open');
    return cache.pullMachine(reference, engineOptions(rest));
  });
  const steps = {};
  for (const m of ['poll', 'onHead', 'onBody', 'onEnd', 'onError', 'slept', 'cancel']) {
    steps[m] = (...args) => run(() => machine[m](...args));
  }
  return pullOverFetch(steps, {
    signal: controller.signal,
    onProgress: progress ? (event) => self.postMessage({ id, progress: event }) : undefined,
    hasBlob: (digest) => run(() => cache?.hasBlob(digest) ?? false),
    redirect: 'follow',
    credentials: 'omit',
  });
}

/** Stops every pull (each one's requests aborted, its engine cancelled) and waits for them. */
function stopPulls() {
  const running = [...pulls.values()];
  for (const p of running) p.controller.abort();
  return Promise.allSettled(running.map((p) => p.done));
}

self.onmessage = (event) => {
  const { id, method, args, cancel } = event.data ?? {};
  if (cancel !== undefined) {
    // Not queued: it must reach a pull that waits on the network.
    pulls.get(cancel)?.controller.abort();
    return;
  }
  let done;
  if (method === 'pull') done = startPull(id, ...args);
  // Closing stops the pulls first: they reject, then the cache closes.
  else if (method === 'close') done = stopPulls().then(() => run(() => dispatch(method, args)));
  else done = run(() => dispatch(method, args));
  done.then(
    (result) => self.postMessage({ id, ok: true, result }, transferables(result)),
    (e) => self.postMessage({ id, ok: false, error: serializeError(e) }),
  );
};
