// The Cache class shared by the Node entry and the browser worker: argument checks, result
// decoding and streams around the wasm engine (dist/, built from bindings-js/rust).
import init, { initSync, WasmCache, WasmPull, setErrorFactory } from '../dist/ocicache_js.js';
import {
  makeError,
  InvalidArgumentError,
  InvalidConfigError,
  InvalidDigestError,
  InvalidReferenceError,
} from './errors.js';
import { systemClock } from './clock.js';
import { iterateStream } from './streams.js';
import { PullMachine, engineOptions, pullOverFetch } from './pull.js';

let ready = false;

/** Instantiates the engine from the wasm bytes, synchronously (Node). */
export function initEngineSync(bytes) {
  if (ready) return;
  initSync({ module: bytes });
  setErrorFactory(makeError);
  ready = true;
}

/** Instantiates the engine from a URL or Response (browser worker). */
export async function initEngine(source) {
  if (ready) return;
  await init({ module_or_path: source });
  setErrorFactory(makeError);
  ready = true;
}

const STORAGE_METHODS = [
  'createTemp', 'writeTemp', 'commitTemp', 'abortTemp', 'append',
  'readAt', 'size', 'list', 'remove', 'clearTemps',
];
/** Blobs larger than this are put through a writer in pieces of this size (see putBlob). */
const PUT_PIECE = 1 << 20;
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: false });
export const DEFAULT_CHUNK = 1 << 20;

function digestArg(v, name = 'digest') {
  if (typeof v !== 'string') {
    throw new InvalidDigestError(`${name} must be a digest string, got ${typeOf(v)}`, {
      details: { input: String(v).slice(0, 200), reason: 'not a string' },
    });
  }
  return v;
}

function refArg(v, name = 'reference') {
  if (typeof v !== 'string') {
    throw new InvalidReferenceError(`${name} must be a reference string, got ${typeOf(v)}`, {
      details: { input: String(v).slice(0, 200), reason: 'not a string' },
    });
  }
  return v;
}

function kindArg(v) {
  if (v !== 'manifest' && v !== 'blob') {
    throw new InvalidArgumentError(`kind must be "manifest" or "blob", got ${typeOf(v)}`);
  }
  return v;
}

function bytesArg(v, name, allowString) {
  if (v instanceof Uint8Array) return v;
  if (allowString && typeof v === 'string') return encoder.encode(v);
  throw new InvalidArgumentError(
    `${name} must be a Uint8Array${allowString ? ' or a string' : ''}, got ${typeOf(v)}`,
  );
}

function countArg(v, name) {
  if (typeof v === 'bigint' && v >= 0n && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  throw new InvalidArgumentError(`${name} must be a non-negative integer, got ${typeOf(v)} ${String(v).slice(0, 40)}`);
}

function optional(v) {
  return v === undefined || v === null ? undefined : v;
}

function typeOf(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'object') return v.constructor?.name ?? 'object';
  return typeof v;
}

function optionsArg(v) {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object') throw new InvalidArgumentError(`options must be an object, got ${typeOf(v)}`);
  return v;
}

const disposeSym = Symbol.dispose ?? Symbol.for('Symbol.dispose');
const asyncDisposeSym = Symbol.asyncDispose ?? Symbol.for('Symbol.asyncDispose');

/** A blob being written: `write` chunks, then `commit` (or `abort`). */
export class BlobWriter {
  #engine;
  #handle;
  #done = false;
  constructor(engine, handle) {
    this.#engine = engine;
    this.#handle = handle;
  }
  /** Writes one chunk (a Uint8Array). A failed write finishes the writer. */
  write(chunk) {
    bytesArg(chunk, 'chunk', false);
    try {
      this.#engine.writeBlob(this.#handle, chunk);
    } catch (e) {
      if (e?.code !== 'invalid_argument') this.#done = true;
      throw e;
    }
  }
  /** Bytes written so far. */
  get written() {
    return this.#done ? 0 : this.#engine.writerWritten(this.#handle);
  }
  /** Verifies digest and size, then stores the blob; returns its digest. */
  commit() {
    this.#done = true;
    return this.#engine.commitBlob(this.#handle);
  }
  /** Discards what was written (a no-op once committed or aborted). */
  abort() {
    if (!this.#done) this.#engine.abortBlob(this.#handle);
    this.#done = true;
  }
  [disposeSym]() {
    this.abort();
  }
}

/** A blob being read: `read` until an empty chunk, then `close`. Protects it from eviction. */
export class BlobReader {
  #engine;
  #handle;
  #closed = false;
  /** The blob's size in bytes. */
  size;
  constructor(engine, handle, size) {
    this.#engine = engine;
    this.#handle = handle;
    this.size = size;
  }
  /** The next chunk of at most `max` bytes; empty at the end. Verified before the last one. */
  read(max = DEFAULT_CHUNK) {
    const n = countArg(max, 'max');
    return this.#engine.readBlob(this.#handle, Math.min(Math.max(n, 1), 2 ** 31 - 1));
  }
  /** Releases the reader. */
  close() {
    if (!this.#closed) this.#engine.closeBlob(this.#handle);
    this.#closed = true;
  }
  *[Symbol.iterator]() {
    try {
      for (;;) {
        const chunk = this.read();
        if (chunk.length === 0) return;
        yield chunk;
      }
    } finally {
      this.close();
    }
  }
  [disposeSym]() {
    this.close();
  }
}

function parse(json) {
  return JSON.parse(json);
}

/**
 * An OCI artifact cache over a storage object. Synchronous: in Node it runs on the calling
 * thread; in browsers it runs in a dedicated Worker (see the browser entry).
 */
export class Cache {
  #engine;
  #storage;

  /**
   * Opens a cache. `storage` is required; `clock` defaults to the system clock, `hasher` to the
   * built-in SHA-2 and `log` to nothing. The settings are the core defaults, then those of the
   * directory's `config.json` if the storage has one (`storage.readConfigFile()`, as FsStorage
   * does: every host reads that file the same way), then `config`: a setting passed here
   * overrides the file's for this cache only, and the file is not changed.
   */
  static open(options) {
    const { storage, clock = systemClock, config = {}, hasher, log } = optionsArg(options);
    if (!ready) throw new InvalidArgumentError('the ocicache engine is not initialized');
    if (storage === null || typeof storage !== 'object') {
      throw new InvalidArgumentError('options.storage must be a storage object');
    }
    for (const m of STORAGE_METHODS) {
      if (typeof storage[m] !== 'function') {
        throw new InvalidArgumentError(`options.storage.${m} must be a function`);
      }
    }
    if (typeof clock?.nowMillis !== 'function' || typeof clock?.monotonicNanos !== 'function') {
      throw new InvalidArgumentError('options.clock must have nowMillis() and monotonicNanos()');
    }
    if (hasher !== undefined && hasher !== null && typeof hasher?.start !== 'function') {
      throw new InvalidArgumentError('options.hasher must have start(algorithm)');
    }
    if (log !== undefined && log !== null && typeof log !== 'function') {
      throw new InvalidArgumentError('options.log must be a function');
    }
    let configJson;
    try {
      if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new Error('not an object');
      configJson = JSON.stringify(config);
    } catch (e) {
      throw new InvalidConfigError(`config must be a plain JSON object: ${e.message}`);
    }
    // The directory's own settings (config.json), for storages over a directory that has one.
    const configFile = typeof storage.readConfigFile === 'function' ? storage.readConfigFile() ?? undefined : undefined;
    if (configFile !== undefined && !(configFile instanceof Uint8Array)) {
      throw new InvalidArgumentError('options.storage.readConfigFile must return a Uint8Array or null');
    }
    const engine = WasmCache.open(storage, clock, configJson, configFile, hasher ?? undefined, log ?? undefined);
    const cache = new this(engine, storage);
    return cache;
  }

  constructor(engine, storage) {
    if (!(engine instanceof WasmCache)) throw new InvalidArgumentError('use Cache.open()');
    this.#engine = engine;
    this.#storage = storage;
  }

  /** The storage object this cache was opened over. */
  get storage() {
    return this.#storage;
  }
  /** Whether the cache is open. */
  get isOpen() {
    return this.#engine.isOpen();
  }
  /** The configuration in force. */
  get config() {
    return parse(this.#engine.configJson());
  }
  /**
   * The durability level the storage honours: the `durability` setting, or `'strict'` when the
   * storage cannot relax (it has no `setDurability`).
   */
  get durability() {
    return this.#engine.durability();
  }
  /** What opening found and fixed (RecoveryReport). */
  recovery() {
    return parse(this.#engine.recoveryJson());
  }

  // ----- manifests -----

  /** Stores a manifest (exact bytes) after verifying digest and body; returns its media type. */
  putManifest(digest, data, options) {
    const { mediaType } = optionsArg(options);
    digestArg(digest);
    const bytes = bytesArg(data, 'data', true);
    const mt = optional(mediaType);
    if (mt !== undefined && typeof mt !== 'string') {
      throw new InvalidArgumentError('mediaType must be a string');
    }
    return this.#engine.putManifest(digest, bytes, mt);
  }
  /** A manifest: `{digest, mediaType, bytes, text}` (`bytes` exactly as stored). */
  getManifest(digest) {
    const [d, mediaType, bytes] = this.#engine.getManifest(digestArg(digest));
    return { digest: d, mediaType, bytes, text: decoder.decode(bytes) };
  }
  hasManifest(digest) {
    return this.#engine.hasManifest(digestArg(digest));
  }
  deleteManifest(digest) {
    return this.#engine.deleteManifest(digestArg(digest));
  }
  /** The content a manifest references: `[{kind, digest}…]`. */
  manifestReferences(digest) {
    return parse(this.#engine.manifestReferencesJson(digestArg(digest)));
  }

  // ----- blobs -----

  /** Stores a blob held in memory; returns its digest (SHA-256 unless `digest` is given). */
  putBlob(data, options) {
    const { digest } = optionsArg(options);
    const d = optional(digest);
    if (d !== undefined) digestArg(d);
    const bytes = bytesArg(data, 'data', true);
    if (bytes.length <= PUT_PIECE) return this.#engine.putBlob(d, bytes);
    // A large blob goes in by pieces: each is copied into wasm memory, hashed and written while
    // it is still in the CPU's caches, instead of one copy of the whole blob first (about 2× as
    // fast for 10 MiB blobs here).
    const writer = this.beginBlob({ digest: d, size: bytes.length });
    try {
      for (let at = 0; at < bytes.length; at += PUT_PIECE) writer.write(bytes.subarray(at, at + PUT_PIECE));
      return writer.commit();
    } catch (e) {
      writer.abort();
      throw e;
    }
  }
  /** Starts a streamed blob write. With `size`, the bytes must have exactly that length. */
  beginBlob(options) {
    const { digest, size } = optionsArg(options);
    const d = optional(digest);
    if (d !== undefined) digestArg(d);
    const s = optional(size);
    const handle = this.#engine.beginBlob(d, s === undefined ? undefined : countArg(s, 'size'));
    return new BlobWriter(this.#engine, handle);
  }
  /**
   * Stores a blob from a `ReadableStream`, an async iterable (e.g. a Node stream) or an
   * iterable of Uint8Array chunks; returns its digest. On any error nothing is stored.
   */
  async putBlobStream(source, options) {
    const writer = this.beginBlob(options);
    try {
      const iterable = source && typeof source.getReader === 'function' && !source[Symbol.asyncIterator]
        ? iterateStream(source)
        : source;
      if (!iterable || (typeof iterable[Symbol.asyncIterator] !== 'function' && typeof iterable[Symbol.iterator] !== 'function')) {
        throw new InvalidArgumentError('source must be a ReadableStream or an (async) iterable of Uint8Array');
      }
      for await (const chunk of iterable) writer.write(chunk);
      return writer.commit();
    } catch (e) {
      writer.abort();
      throw e;
    }
  }
  /** A whole blob, verified. */
  getBlob(digest) {
    return this.#engine.getBlob(digestArg(digest));
  }
  /** Opens a blob for streamed, verified reading. */
  openBlob(digest) {
    const [handle, size] = this.#engine.openBlob(digestArg(digest));
    return new BlobReader(this.#engine, handle, size);
  }
  /** A blob as a Web `ReadableStream` of Uint8Array chunks (verified; errors at the end on corruption). */
  blobStream(digest, options) {
    const { chunkSize = DEFAULT_CHUNK } = optionsArg(options);
    const n = countArg(chunkSize, 'chunkSize');
    const reader = this.openBlob(digest);
    return new ReadableStream({
      pull(controller) {
        try {
          const chunk = reader.read(n);
          if (chunk.length === 0) {
            reader.close();
            controller.close();
          } else {
            controller.enqueue(chunk);
          }
        } catch (e) {
          reader.close();
          controller.error(e);
        }
      },
      cancel() {
        reader.close();
      },
    }, { highWaterMark: 0 });
  }
  hasBlob(digest) {
    return this.#engine.hasBlob(digestArg(digest));
  }
  deleteBlob(digest) {
    return this.#engine.deleteBlob(digestArg(digest));
  }

  // ----- any entry -----

  /** Pins an entry so eviction never takes it; returns its pin count. */
  pin(kind, digest) {
    return this.#engine.pin(kindArg(kind), digestArg(digest));
  }
  /** Removes one pin; returns the pins left. */
  unpin(kind, digest) {
    return this.#engine.unpin(kindArg(kind), digestArg(digest));
  }
  deleteEntry(kind, digest) {
    return this.#engine.deleteEntry(kindArg(kind), digestArg(digest));
  }
  hasEntry(kind, digest) {
    return this.#engine.hasEntry(kindArg(kind), digestArg(digest));
  }

  // ----- tags -----

  /** Records that `reference` points to `digest` now: `{previous, moved}`. */
  putTag(reference, digest) {
    return parse(this.#engine.putTagJson(refArg(reference), digestArg(digest)));
  }
  getTag(reference) {
    return parse(this.#engine.getTagJson(refArg(reference)));
  }
  hasTag(reference) {
    return this.#engine.hasTag(refArg(reference));
  }
  /** `{state: 'fresh'|'stale', digest}` or `{state: 'unknown'}`. */
  resolveTag(reference) {
    return parse(this.#engine.resolveTagJson(refArg(reference)));
  }
  /** One `{ok: Resolution}` or `{error: OcicacheError}` per reference, in order. */
  resolveTags(references) {
    if (!Array.isArray(references)) throw new InvalidArgumentError('references must be an array');
    const strings = references.map((r) => (typeof r === 'string' ? r : null));
    const items = this.#engine.resolveTagsJson(strings.map((s) => s ?? ''));
    return items.map((item, i) => {
      if (strings[i] === null) {
        try {
          refArg(references[i]);
        } catch (e) {
          return { error: e };
        }
      }
      return typeof item === 'string' ? { ok: parse(item) } : { error: item };
    });
  }
  /** Revalidation failed: the stale digest to fall back on (or the mapping's error). */
  resolveFailed(reference) {
    return this.#engine.resolveFailed(refArg(reference));
  }
  detectMovement(reference, remoteDigest) {
    return this.#engine.detectMovement(refArg(reference), digestArg(remoteDigest));
  }
  invalidateTag(reference) {
    return this.#engine.invalidateTag(refArg(reference));
  }
  deleteTag(reference) {
    return this.#engine.deleteTag(refArg(reference));
  }
  tagHistory(reference) {
    return parse(this.#engine.tagHistoryJson(refArg(reference)));
  }
  tags() {
    return parse(this.#engine.tagsJson());
  }

  // ----- pulling from registries -----

  /**
   * Pulls `reference` from its registry into the cache over the global `fetch`; resolves to
   * the pull's report (the Rust `PullReport`: `reference`, `digest`, `media_type`, `tag`,
   * `manifests`, `blobs`, `requests`, `bytes_fetched`, `bytes_from_cache`). A fresh tag with
   * its graph cached makes no request. Options: `platform`, `allPlatforms`, `allowStale`,
   * `offline`, `plainHttp`, `mirrors`, `credentials`, `concurrency` (blobs in flight, default
   * 4), `signal` (an AbortSignal: rejects with `signal.reason`), `onProgress` (per-blob
   * events `started`, `bytes`, `done`, `from-cache`). Failures are NetworkError,
   * UnauthorizedError, DigestMismatchError, … as the engine reports them.
   */
  async pull(reference, options) {
    const { signal, onProgress, fetch, ...rest } = optionsArg(options);
    if (onProgress !== undefined && typeof onProgress !== 'function') {
      throw new InvalidArgumentError('options.onProgress must be a function');
    }
    signal?.throwIfAborted();
    const engine = engineOptions(rest);
    if (engine.credentials === undefined) {
      engine.credentials = await this.findCredentials(refArg(reference), engine);
      signal?.throwIfAborted();
    }
    const machine = this.pullMachine(reference, engine);
    return pullOverFetch(machine, {
      signal,
      onProgress,
      fetch,
      hasBlob: (d) => this.#engine.hasBlob(d),
    });
  }

  /**
   * The credentials of a pull that was given none (`options` are the engine's), in the
   * engine's form. None here: the Node entry reads the login files.
   */
  async findCredentials(reference, options) {
    return {};
  }

  /**
   * The engine of a pull of `reference` over this cache, driven by the caller (the package's
   * `fetch` driver, the conformance player's script). `options` are the engine's keys
   * (rust/pull.rs). Internal to the package.
   */
  pullMachine(reference, options = {}) {
    return new PullMachine(this.#engine, new WasmPull(refArg(reference), JSON.stringify(options)));
  }

  /**
   * The core's plan of an export of `reference` from this cache (every manifest and blob of
   * its graph checked to be cached). Internal to the package: the Node entry's `export`.
   */
  exportPlan(reference) {
    return this.#engine.exportPlan(refArg(reference));
  }

  // ----- inspection and maintenance -----

  stats() {
    return parse(this.#engine.statsJson());
  }
  metrics() {
    return parse(this.#engine.metricsJson());
  }
  /** Metrics as Prometheus text exposition. */
  prometheus() {
    return this.#engine.prometheus();
  }
  /** Bytes of all entries. */
  size() {
    return this.#engine.size();
  }
  contents() {
    return parse(this.#engine.contentsJson());
  }
  debugInfo() {
    return parse(this.#engine.debugInfoJson());
  }
  /** Debug info, contents and tags as pretty JSON text. */
  exportDebugJson() {
    return this.#engine.exportDebugJson();
  }
  /** Re-hashes every entry and lists stray files; changes nothing. */
  checkIntegrity() {
    return parse(this.#engine.checkIntegrityJson());
  }
  validateDigests() {
    return parse(this.#engine.validateDigestsJson());
  }
  repair() {
    return parse(this.#engine.repairJson());
  }
  clearExpired() {
    return this.#engine.clearExpired();
  }
  cleanup() {
    return parse(this.#engine.cleanupJson());
  }
  clear() {
    this.#engine.clear();
  }
  /** Writes buffered access records. */
  flush() {
    this.#engine.flush();
  }
  /** Flushes and records a clean shutdown; open readers are closed, writers dropped. */
  close() {
    this.#engine.close();
  }
  /** Drops the cache without flushing (as a crash would): for tests and emergencies. */
  abandon() {
    this.#engine.abandon();
  }
  [disposeSym]() {
    this.close();
  }
  async [asyncDisposeSym]() {
    this.close();
  }
}

