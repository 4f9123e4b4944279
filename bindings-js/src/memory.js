// In-memory storage: for tests and ephemeral caches (and the browser without OPFS).
import { checkPath, childNames } from './paths.js';
import { storageFailure } from './errors.js';

class Growable {
  constructor(capacity = 0) {
    let buf;
    try {
      buf = new Uint8Array(Math.min(capacity, 2 ** 31));
    } catch {
      buf = new Uint8Array(0); // a hint too large to reserve is ignored
    }
    this.buf = buf;
    this.len = 0;
  }
  push(data) {
    const need = this.len + data.length;
    if (need > this.buf.length) {
      const next = new Uint8Array(Math.max(need, this.buf.length * 2, 64));
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
    }
    this.buf.set(data, this.len); // copies: `data` may be a view of wasm memory
    this.len = need;
  }
  bytes() {
    return this.buf.subarray(0, this.len);
  }
}

function notFound(what) {
  const e = storageFailure('not_found', `no such object: ${what}`);
  e.code = 'ENOENT';
  return e;
}

/**
 * Storage held in memory. Keep a reference to it to reopen a cache over the same objects.
 * Besides the storage methods the cache calls, it offers inspection helpers (`get`, `put`,
 * `corrupt`, `truncate`, `paths`, `tempCount`) for tests and debugging.
 */
export class MemoryStorage {
  #files = new Map();
  #temps = new Map();
  /** Open partial downloads: temp id → path (their bytes live in #files under that path). */
  #partials = new Map();
  #next = 0;

  createTemp(sizeHint) {
    const id = ++this.#next;
    this.#temps.set(id, new Growable(typeof sizeHint === 'number' ? sizeHint : 0));
    return id;
  }
  writeTemp(id, data) {
    const t = this.#temps.get(id);
    if (!t) throw notFound(`temp ${id}`);
    t.push(data);
  }
  commitTemp(id, path) {
    const t = this.#temps.get(id);
    this.#temps.delete(id);
    const partial = this.#partials.get(id);
    this.#partials.delete(id);
    if (partial !== undefined) this.#files.delete(partial);
    checkPath(path);
    if (!t) throw notFound(`temp ${id}`);
    this.#files.set(path, t);
  }
  abortTemp(id) {
    this.#temps.delete(id);
    const partial = this.#partials.get(id);
    this.#partials.delete(id);
    if (partial !== undefined) this.#files.delete(partial);
  }
  /**
   * Opens the partial download at `path` (created empty if absent) as a temp that outlives
   * `clearTemps`: `{id, size}`, or null while it is open already (as a file storage's lock
   * refuses it), so that two writers never append to one partial.
   */
  openPartial(path) {
    checkPath(path);
    for (const p of this.#partials.values()) if (p === path) return null;
    let f = this.#files.get(path);
    if (!f) {
      f = new Growable(0);
      this.#files.set(path, f);
    }
    const id = ++this.#next;
    this.#temps.set(id, f);
    this.#partials.set(id, path);
    return { id, size: f.len };
  }
  /** Closes a partial opened by `openPartial`, keeping its bytes for a later one. */
  keepPartial(id) {
    if (this.#partials.delete(id)) this.#temps.delete(id);
  }
  append(path, data) {
    checkPath(path);
    let f = this.#files.get(path);
    if (!f) {
      f = new Growable(data.length);
      this.#files.set(path, f);
    }
    f.push(data);
  }
  readAt(path, offset, buf) {
    const f = this.#files.get(path);
    if (!f) throw notFound(path);
    const start = Math.min(offset, f.len);
    const n = Math.min(buf.length, f.len - start);
    buf.set(f.buf.subarray(start, start + n));
    return n;
  }
  size(path) {
    const f = this.#files.get(path);
    return f ? f.len : null;
  }
  list(dir) {
    return childNames(this.#files.keys(), dir);
  }
  remove(path) {
    this.#files.delete(path);
  }
  clearTemps() {
    // Open partials are closed, not removed: their bytes stay for a later openPartial.
    const n = this.#temps.size - this.#partials.size;
    this.#temps.clear();
    this.#partials.clear();
    return n;
  }
  /** Honours either level: there is nothing to sync, every call takes effect at once. */
  setDurability(level) {
    return level;
  }

  // ----- inspection helpers (not used by the cache) -----

  /** A copy of the object at `path`, or null. */
  get(path) {
    const f = this.#files.get(path);
    return f ? f.bytes().slice() : null;
  }
  /** Writes `path` directly, bypassing temps (plants orphans and damage in tests). */
  put(path, data) {
    const g = new Growable(data.length);
    g.push(data);
    this.#files.set(path, g);
  }
  /** Flips every bit of the byte at `offset`; false if there is no such byte. */
  corrupt(path, offset) {
    const f = this.#files.get(path);
    if (!f || offset >= f.len) return false;
    f.buf[offset] ^= 0xff;
    return true;
  }
  /** Shortens `path` to `len` bytes. */
  truncate(path, len) {
    const f = this.#files.get(path);
    if (f) f.len = Math.min(f.len, len);
  }
  /** Every object path, sorted. */
  paths() {
    return [...this.#files.keys()].sort();
  }
  /** Temp objects open or abandoned (open partials excluded). */
  tempCount() {
    return this.#temps.size - this.#partials.size;
  }
}
