// The browser entry of ocicache: the cache runs in a dedicated Worker on OPFS (src/worker.js);
// this side is an async proxy with the same methods as the Node Cache, returning Promises.
import { ERROR_CLASSES, OcicacheError, DirectoryInUseError, InvalidArgumentError } from './errors.js';
import { iterateStream } from './streams.js';
import { WORKER_METHODS } from './worker-methods.js';

export * from './errors.js';
export { MemoryStorage } from './memory.js';
export { ManualClock, systemClock } from './clock.js';

function revive(e) {
  const Cls = e.name === 'DirectoryInUseError' ? DirectoryInUseError : ERROR_CLASSES[e.code];
  if (Cls) {
    const err = new Cls(e.message, { details: e.details ?? {} });
    if (e.storageKind) err.storageKind = e.storageKind;
    return err;
  }
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}

/** The cache, running in a Worker. Every method returns a Promise. */
export class BrowserCache {
  #worker;
  #pending = new Map();
  #next = 0;
  #closing = null;

  constructor(worker) {
    this.#worker = worker;
    worker.onmessage = (event) => {
      const { id, ok, result, error, progress } = event.data;
      const p = this.#pending.get(id);
      if (!p) return;
      if (progress !== undefined) {
        p.progress?.(progress);
        return;
      }
      this.#pending.delete(id);
      if (ok) p.resolve(result);
      else p.reject(revive(error));
    };
    worker.onerror = (event) => {
      const err = new OcicacheError(`ocicache worker failed: ${event.message}`, { code: 'storage' });
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    };
  }

  /** Calls a method in the worker. */
  call(method, ...args) {
    const id = ++this.#next;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, method, args });
    });
  }

  /**
   * Pulls `reference` from its registry into the cache. The Worker does the HTTP with its own
   * `fetch` (the bytes go from the network to OPFS without crossing to this thread); the
   * browser follows redirects. Options as in Node's `cache.pull` (no `fetch`): `onProgress`
   * is called here with the Worker's events; `signal` cancels the pull in the Worker, and the
   * promise rejects with `signal.reason` once the pull has stopped there. If `onProgress`
   * throws, the pull stops and rejects with what it threw.
   */
  pull(reference, options = {}) {
    const { signal, onProgress, ...rest } = options ?? {};
    if (onProgress !== undefined && typeof onProgress !== 'function') {
      return Promise.reject(new InvalidArgumentError('options.onProgress must be a function'));
    }
    if ('fetch' in rest) {
      return Promise.reject(new InvalidArgumentError('options.fetch: the browser entry pulls with the Worker\'s own fetch'));
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    const id = ++this.#next;
    return new Promise((resolve, reject) => {
      // Why this thread stopped the pull: the signal's reason, or what onProgress threw.
      let stopped = null;
      const stop = (reason, fromProgress) => {
        if (stopped) return;
        stopped = { reason, fromProgress };
        this.#worker.postMessage({ cancel: id });
      };
      const onAbort = () => stop(signal.reason, false);
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle = () => signal?.removeEventListener('abort', onAbort);
      this.#pending.set(id, {
        // A pull that completed before the Worker saw the abort resolves, as in Node.
        resolve: (report) => {
          settle();
          if (stopped?.fromProgress) reject(stopped.reason);
          else resolve(report);
        },
        reject: (e) => {
          settle();
          reject(stopped ? stopped.reason : e);
        },
        progress: onProgress && ((event) => {
          if (stopped) return;
          try {
            onProgress(event);
          } catch (e) {
            stop(e, true);
          }
        }),
      });
      try {
        this.#worker.postMessage({ id, method: 'pull', args: [reference, { ...rest, progress: !!onProgress }] });
      } catch (e) {
        this.#pending.delete(id);
        settle();
        reject(new InvalidArgumentError(`pull options cannot be sent to the Worker: ${e?.message ?? e}`));
      }
    });
  }

  /** Resolves each reference: `{ok: Resolution}` or `{error: OcicacheError}`, in order. */
  async resolveTags(references) {
    const items = await this.call('resolveTags', references);
    return items.map((r) => ('ok' in r ? r : { error: revive(r.error) }));
  }

  /** Stores a blob from a ReadableStream or (async) iterable of Uint8Array chunks. */
  async putBlobStream(source, options = {}) {
    const h = await this.call('beginBlob', options);
    try {
      const it = typeof source?.getReader === 'function' && !source[Symbol.asyncIterator]
        ? iterateStream(source)
        : source;
      for await (const chunk of it) await this.call('writeBlob', h, chunk);
      return await this.call('commitBlob', h);
    } catch (e) {
      await this.call('abortBlob', h).catch(() => {});
      throw e;
    }
  }

  /** A blob as a ReadableStream of verified chunks. */
  blobStream(digest, { chunkSize = 1 << 20 } = {}) {
    let handle = null;
    const self = this;
    return new ReadableStream({
      async start() {
        [handle] = await self.call('openBlob', digest);
      },
      async pull(controller) {
        try {
          const chunk = await self.call('readBlob', handle, chunkSize);
          if (chunk.length === 0) {
            await self.call('closeBlob', handle);
            controller.close();
          } else {
            controller.enqueue(chunk);
          }
        } catch (e) {
          await self.call('closeBlob', handle).catch(() => {});
          controller.error(e);
        }
      },
      async cancel() {
        await self.call('closeBlob', handle);
      },
    }, { highWaterMark: 0 });
  }

  /** The durability level the storage honours (`'strict'` or `'relaxed'`). */
  durability() {
    return this.call('durability');
  }

  /**
   * Closes the cache (clean shutdown), which releases the directory to the next opener, and
   * terminates the worker. Closing again returns the first close's promise.
   */
  close() {
    this.#closing ??= (async () => {
      try {
        await this.call('close');
      } finally {
        this.#worker.terminate();
      }
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose ?? Symbol.for('Symbol.asyncDispose')]() {
    await this.close();
  }
}

for (const m of WORKER_METHODS) {
  BrowserCache.prototype[m] = function (...args) {
    return this.call(m, ...args);
  };
}


/**
 * Opens a cache in a dedicated Worker: on OPFS in `directory` (default "ocicache"), or in memory
 * with `memory: true`.
 *
 * One directory serves one cache at a time, across tabs and workers of the origin (the worker
 * holds the Web Lock `ocicache:<directory>` until `close()`). If another one has it open, this
 * waits until it is closed; with `wait: false` it rejects at once with a DirectoryInUseError
 * (a StorageError, code `storage`). `signal` (an AbortSignal) gives up waiting: the promise
 * rejects with `signal.reason` and the worker ends, nothing opened.
 */
export async function openCache({ directory = 'ocicache', memory = false, config = {}, workerUrl, wait = true, signal } = {}) {
  signal?.throwIfAborted();
  const worker = new Worker(workerUrl ?? new URL('./worker.js', import.meta.url), { type: 'module' });
  const cache = new BrowserCache(worker);
  let onAbort;
  try {
    const opened = cache.call('open', { directory, memory, config, wait: wait !== false });
    if (signal) {
      const aborted = new Promise((_, reject) => {
        onAbort = () => reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
      });
      // Ending the worker drops its pending lock request (or the lock, if just granted).
      await Promise.race([opened, aborted]);
    } else {
      await opened;
    }
  } catch (e) {
    worker.terminate();
    throw e;
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
  return cache;
}
