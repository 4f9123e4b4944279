// Durable browser storage on the Origin Private File System, for a dedicated Worker.
//
// The cache calls its storage synchronously, but in OPFS only reads, writes, truncation and
// flush are synchronous (FileSystemSyncAccessHandle); creating, renaming and removing files
// are asynchronous. So: every file of the cache directory is opened with a sync access handle
// when the storage opens; new files are taken from a pool of pre-created empty files in
// `tmp/`; data is written and flushed synchronously; and the directory changes of an
// operation (move a committed temp onto its path, remove a file) are queued in order and
// applied by `settle()`, which the worker awaits after every cache operation before it
// answers. A crash before `settle()` ends leaves a prefix of those changes applied — the same
// states as a crash between two storage calls, which the core's recovery handles
// (docs/FORMAT.md) — and the operation never reported success.
//
// Durability `strict` (the default) flushes (`FileSystemSyncAccessHandle.flush()`) every
// committed temp and every append before the call returns; `relaxed` (setDurability) skips those
// flushes and leaves the write-back to the browser. Directory changes are applied by `settle()`
// at either level: OPFS has no way to sync a directory, so their persistence is the browser's.
import { checkPath, childNames } from './paths.js';
import { InvalidConfigError, storageFailure } from './errors.js';

/** The directory's settings file, read at open as every host reads it (docs/FORMAT.md). */
const CONFIG_FILE = 'config.json';
/** The core's limit on its size; one byte more is read so that the core reports it. */
const MAX_CONFIG_FILE_BYTES = 1 << 20;

const POOL = 8;
const TEMP_DIR = 'tmp';

function notFound(what) {
  return storageFailure('not_found', `no such object: ${what}`);
}

function split(p) {
  const i = p.lastIndexOf('/');
  return i < 0 ? ['', p] : [p.slice(0, i), p.slice(i + 1)];
}

let seq = 0;
const uniq = () => `${Date.now().toString(36)}-${(seq++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/** Cache storage on OPFS with synchronous methods (use in a dedicated Worker). */
export class OpfsStorage {
  #strict = true;
  #root;
  #dirs = new Map(); // logical dir → FileSystemDirectoryHandle
  #files = new Map(); // logical path → entry {file, handle, size, dir, name}
  #temps = new Map(); // id → entry
  #leftovers = []; // temp entries found at open
  #pool = [];
  #queue = [];
  #next = 0;
  #closed = false;

  /** Opens (creating) the directory `name` under the origin's OPFS root. */
  static async open(name = 'ocicache') {
    const top = await navigator.storage.getDirectory();
    const root = await top.getDirectoryHandle(name, { create: true });
    const s = new OpfsStorage(root);
    await s.#load();
    await s.settle();
    return s;
  }

  /** Removes the directory `name` and everything in it. */
  static async destroy(name = 'ocicache') {
    const top = await navigator.storage.getDirectory();
    try {
      await top.removeEntry(name, { recursive: true });
    } catch (e) {
      if (e.name !== 'NotFoundError') throw e;
    }
  }

  constructor(root) {
    this.#root = root;
    this.#dirs.set('', root);
  }

  async #load() {
    const walk = async (dir, rel) => {
      for await (const [name, h] of dir.entries()) {
        const p = rel ? `${rel}/${name}` : name;
        if (h.kind === 'directory') {
          this.#dirs.set(p, h);
          await walk(h, p);
        } else if (rel === TEMP_DIR) {
          if (name.startsWith('pool-')) await dir.removeEntry(name);
          else this.#leftovers.push({ dir, name });
        } else {
          const handle = await h.createSyncAccessHandle();
          this.#files.set(p, { file: h, handle, size: handle.getSize(), dir, name });
        }
      }
    };
    await walk(this.#root, '');
  }

  async #dir(p) {
    let d = this.#dirs.get(p);
    if (d) return d;
    const [parent, name] = split(p);
    d = await (await this.#dir(parent)).getDirectoryHandle(name, { create: true });
    this.#dirs.set(p, d);
    return d;
  }

  /** Applies queued directory changes in order, then refills the pool of empty files. */
  async settle() {
    while (this.#queue.length > 0) {
      const op = this.#queue.shift();
      await op();
    }
    if (this.#closed) return;
    const tmp = await this.#dir(TEMP_DIR);
    while (this.#pool.length < POOL) {
      const name = `pool-${uniq()}.tmp`;
      const file = await tmp.getFileHandle(name, { create: true });
      const handle = await file.createSyncAccessHandle();
      this.#pool.push({ file, handle, size: 0, dir: tmp, name });
    }
  }

  #take() {
    const e = this.#pool.pop();
    if (!e) throw storageFailure('io', 'OPFS: no pre-created file left in this operation');
    return e;
  }

  #queueMove(e, path) {
    const [dirPath, name] = split(path);
    this.#queue.push(async () => {
      e.handle.close();
      const dir = await this.#dir(dirPath);
      await e.file.move(dir, name);
      e.dir = dir;
      e.name = name;
      e.handle = await e.file.createSyncAccessHandle();
    });
  }

  #queueClose(e) {
    this.#queue.push(async () => {
      e.handle.close();
    });
  }

  #queueRemove(e) {
    this.#queue.push(async () => {
      try {
        e.handle.close();
      } catch {
        // already closed
      }
      try {
        await e.dir.removeEntry(e.name);
      } catch (err) {
        if (err.name !== 'NotFoundError') throw err;
      }
    });
  }

  #place(path, e) {
    const old = this.#files.get(path);
    // The old file's handle must be closed before the move replaces it.
    if (old) this.#queueClose(old);
    this.#files.set(path, e);
    this.#queueMove(e, path);
  }

  createTemp(_sizeHint) {
    const e = this.#take();
    const id = ++this.#next;
    this.#temps.set(id, e);
    return id;
  }
  writeTemp(id, data) {
    const e = this.#temps.get(id);
    if (!e) throw notFound(`temp ${id}`);
    let off = 0;
    while (off < data.length) off += e.handle.write(data.subarray(off), { at: e.size + off });
    e.size += data.length;
  }
  commitTemp(id, path) {
    const e = this.#temps.get(id);
    this.#temps.delete(id);
    if (!e) throw notFound(`temp ${id}`);
    this.#unlistPartial(e);
    try {
      checkPath(path);
      if (this.#strict) e.handle.flush();
    } catch (err) {
      this.#queueRemove(e);
      throw err;
    }
    this.#place(path, e);
  }
  abortTemp(id) {
    const e = this.#temps.get(id);
    if (!e) return;
    this.#temps.delete(id);
    this.#unlistPartial(e);
    this.#queueRemove(e);
  }
  /** A partial leaving its path (committed elsewhere or aborted) is no longer listed there. */
  #unlistPartial(e) {
    if (e.partial !== undefined && this.#files.get(e.partial) === e) this.#files.delete(e.partial);
    e.partial = undefined;
  }
  /**
   * Opens the partial download at `path` (created empty if absent) as a temp whose writes
   * append to it and which outlives `clearTemps` and the page: `{id, size}`, or null while it
   * is open already. Nothing else can have it open: the directory's Web Lock keeps every other
   * tab and worker out, and OPFS access handles are exclusive.
   */
  openPartial(path) {
    checkPath(path);
    for (const t of this.#temps.values()) if (t.partial === path) return null;
    let e = this.#files.get(path);
    if (!e) {
      e = this.#take();
      this.#place(path, e);
    }
    e.partial = path;
    const id = ++this.#next;
    this.#temps.set(id, e);
    return { id, size: e.size };
  }
  /** Closes a partial opened by `openPartial`, its bytes flushed, for a later one. */
  keepPartial(id) {
    const e = this.#temps.get(id);
    if (!e) return;
    this.#temps.delete(id);
    e.partial = undefined;
    e.handle.flush();
  }
  append(path, data) {
    checkPath(path);
    let e = this.#files.get(path);
    const fresh = !e;
    if (fresh) e = this.#take();
    let off = 0;
    try {
      while (off < data.length) off += e.handle.write(data.subarray(off), { at: e.size + off });
      if (this.#strict) e.handle.flush();
    } finally {
      e.size += off;
      if (fresh) this.#place(path, e);
    }
  }
  /**
   * The bytes of the directory's `config.json`, or null if it has none: what `Cache.open`
   * reads the directory's settings from (the core parses them, as for Node and the native
   * host). A directory under that name is an InvalidConfigError.
   */
  readConfigFile() {
    if (this.#dirs.has(CONFIG_FILE)) {
      throw new InvalidConfigError(`${CONFIG_FILE}: is a directory, not a regular file`);
    }
    const e = this.#files.get(CONFIG_FILE);
    if (!e) return null;
    const buf = new Uint8Array(Math.min(e.size, MAX_CONFIG_FILE_BYTES + 1));
    let off = 0;
    while (off < buf.length) {
      const n = e.handle.read(buf.subarray(off), { at: off });
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off);
  }
  readAt(path, offset, buf) {
    const e = this.#files.get(path);
    if (!e) throw notFound(path);
    if (offset >= e.size) return 0;
    return e.handle.read(buf.length > e.size - offset ? buf.subarray(0, e.size - offset) : buf, { at: offset });
  }
  size(path) {
    return this.#files.get(path)?.size ?? null;
  }
  list(dir) {
    return childNames(this.#files.keys(), dir);
  }
  remove(path) {
    const e = this.#files.get(path);
    if (!e) return;
    this.#files.delete(path);
    this.#queueRemove(e);
  }
  clearTemps() {
    // Called when a cache opens: every temp is a leftover (one storage serves one cache).
    let n = this.#leftovers.length;
    for (const { dir, name } of this.#leftovers) {
      this.#queue.push(async () => {
        try {
          await dir.removeEntry(name);
        } catch (err) {
          if (err.name !== 'NotFoundError') throw err;
        }
      });
    }
    this.#leftovers = [];
    for (const e of this.#temps.values()) {
      // An open partial is only closed: its bytes stay under its path for a later one.
      if (e.partial !== undefined) {
        e.partial = undefined;
        continue;
      }
      this.#queueRemove(e);
      n++;
    }
    this.#temps.clear();
    return n;
  }
  /** Honours both levels: `'relaxed'` skips the flushes of commits and appends. */
  setDurability(level) {
    this.#strict = level !== 'relaxed';
    return this.#strict ? 'strict' : 'relaxed';
  }

  /** Applies pending changes and closes every handle. */
  async close() {
    this.#closed = true;
    await this.settle();
    for (const e of [...this.#files.values(), ...this.#pool, ...this.#temps.values()]) {
      try {
        e.handle.close();
      } catch {
        // closed
      }
    }
    this.#files.clear();
    this.#pool = [];
  }

  // ----- inspection helpers (tests, debugging; not used by the cache) -----

  get(path) {
    const e = this.#files.get(path);
    if (!e) return null;
    const out = new Uint8Array(e.size);
    if (e.size > 0) e.handle.read(out, { at: 0 });
    return out;
  }
  put(path, data) {
    let e = this.#files.get(path);
    const fresh = !e;
    if (fresh) e = this.#take();
    e.handle.truncate(0);
    e.handle.write(data, { at: 0 });
    e.handle.flush();
    e.size = data.length;
    if (fresh) this.#place(path, e);
  }
  corrupt(path, offset) {
    const e = this.#files.get(path);
    if (!e || offset >= e.size) return false;
    const b = new Uint8Array(1);
    e.handle.read(b, { at: offset });
    b[0] ^= 0xff;
    e.handle.write(b, { at: offset });
    e.handle.flush();
    return true;
  }
  truncate(path, len) {
    const e = this.#files.get(path);
    if (!e) return;
    e.size = Math.min(e.size, len);
    e.handle.truncate(e.size);
    e.handle.flush();
  }
  paths() {
    return [...this.#files.keys()].sort();
  }
  tempCount() {
    let partials = 0;
    for (const e of this.#temps.values()) if (e.partial !== undefined) partials++;
    return this.#temps.size - partials + this.#leftovers.length;
  }
}
