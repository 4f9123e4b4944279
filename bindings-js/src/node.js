// The Node entry of ocicache: the cache over node:fs storage, hashing with node:crypto.
import fs from 'node:fs';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Cache as BaseCache, initEngineSync } from './cache.js';
import { FsStorage } from './fs-storage.js';
import { MemoryStorage } from './memory.js';
import { ManualClock, systemClock } from './clock.js';
import { ThreadedHasher } from './threaded-hasher.js';
import { InvalidArgumentError } from './errors.js';
import { lookupCredentials } from './credentials.js';
import { exportLayout, importLayout } from './image-layout.js';
import { pullCredentialHosts, pullAuthFile } from '../dist/ocicache_js.js';

initEngineSync(fs.readFileSync(new URL('../dist/ocicache_js_bg.wasm', import.meta.url)));

/**
 * Hashing through node:crypto (OpenSSL) on the calling thread: about 3× the core's built-in
 * SHA-256 in wasm.
 */
export const nodeHasher = Object.freeze({
  start(algorithm) {
    return createHash(algorithm);
  },
});

/**
 * The default hasher of the Node entry: node:crypto, with a large blob hashed on a worker thread
 * while its bytes are stored (see ThreadedHasher). Shared by every cache of the process.
 */
export const threadedHasher = new ThreadedHasher();

/** The cache, with Node conveniences: `openCache(dir)`, hashing through node:crypto, Node streams. */
export class Cache extends BaseCache {
  /** Like `Cache.open`, with `hasher` defaulting to node:crypto on worker threads (`threadedHasher`). */
  static open(options = {}) {
    if (options === null || typeof options !== 'object') return super.open(options);
    const o = { ...options };
    if (o.hasher === undefined) o.hasher = threadedHasher;
    return super.open(o);
  }
  /**
   * A pull given no `credentials` looks them up for every host it may talk to (its mirrors'
   * and its registry's) where docker, podman and skopeo keep them, as the native host does:
   * the cache directory's `auth_file` setting, Docker's `config.json` (`auths`, `credsStore`,
   * `credHelpers`), containers' `auth.json`.
   */
  async findCredentials(reference, options) {
    const hosts = pullCredentialHosts(reference, JSON.stringify(options));
    const configFile = typeof this.storage?.readConfigFile === 'function' ? this.storage.readConfigFile() : null;
    const authFile = configFile ? pullAuthFile(configFile) : undefined;
    return lookupCredentials(hosts, { authFile });
  }
  /**
   * Writes the image `reference` names, as the cache holds it (a tag through its cached
   * mapping, fresh or stale; no network), into `dir` as an OCI image layout, as `ocicache
   * export` does; resolves to its report. See the README's "OCI image layouts".
   */
  async export(reference, dir) {
    const root = this.storage instanceof FsStorage ? this.storage.root : undefined;
    return exportLayout(this, reference, dir, root);
  }
  /**
   * Reads the OCI image layout in `dir` into the cache, every blob verified, as `ocicache
   * import` does; resolves to its report. `options.tag`: only the image of that
   * `org.opencontainers.image.ref.name`; `options.repository`: the repository of the layout's
   * tags, for layouts that do not say.
   */
  async import(dir, options = {}) {
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options must be an object');
    const { tag, repository, ...rest } = options;
    const unknown = Object.keys(rest);
    if (unknown.length > 0) throw new InvalidArgumentError(`unknown import option ${JSON.stringify(unknown[0])}`);
    for (const [name, v] of [['tag', tag], ['repository', repository]]) {
      if (v !== undefined && typeof v !== 'string') throw new InvalidArgumentError(`options.${name} must be a string`);
    }
    return importLayout(this, dir, { tag, repository, maxManifestBytes: this.config.max_manifest_bytes });
  }
  /** A blob as a Node `Readable` stream. */
  blobReadable(digest, options) {
    return Readable.fromWeb(this.blobStream(digest, options));
  }
  close() {
    try {
      super.close();
    } finally {
      if (this.storage instanceof FsStorage && this.storage.ownedByCache) this.storage.close();
    }
  }
  abandon() {
    try {
      super.abandon();
    } finally {
      // A crash would end the process, and with it the claim on the directory.
      if (this.storage instanceof FsStorage && this.storage.ownedByCache) this.storage.close();
    }
  }
}

/**
 * Opens (creating if needed) the cache directory `dir` on the filesystem, with the settings of
 * its `config.json` (if any) under those of `options.config`. The directory is claimed
 * (`dir/node.lock`) until `close()`: if another Node process or thread has it open, this throws
 * a DirectoryInUseError (a StorageError). While a native process (the `ocicache` CLI, a Rust
 * program) has it open, this waits for it to close, up to `options.waitMs` (default 10 s; 0:
 * no wait), then throws a DirectoryInUseError. The native host refuses to operate while the
 * claim is held.
 */
export function openCache(dir, options = {}) {
  const storage = new FsStorage(dir, { waitMs: options?.waitMs });
  storage.ownedByCache = true;
  try {
    return Cache.open({ ...options, storage });
  } catch (e) {
    storage.close();
    throw e;
  }
}

export { FsStorage, MemoryStorage, ManualClock, systemClock, ThreadedHasher };
export { BlobReader, BlobWriter } from './cache.js';
export * from './errors.js';
