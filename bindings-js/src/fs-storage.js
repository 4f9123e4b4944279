// Durable storage over a directory, with node:fs: temps are written in `tmp/`, committed with
// fsync + rename + fsync of the directory; appends are fsynced, and so is the directory after a
// removal. That is the `strict` durability; `relaxed` (setDurability) makes none of these
// fsyncs, nor the background flushes of large temps. Byte-compatible with the native host's directories (docs/FORMAT.md), including the
// `tmp/` temp area, and confined by the native host's rules (host-native/src/storage/fs.rs):
// the path grammar of paths.js, no directory component that is a symbolic link (checked with
// lstat, component by component), and final files opened with O_NOFOLLOW, so no symlink below
// the root is ever followed. While open it claims the directory with `<root>/node.lock`
// (src/dir-lock.js): one Node cache per directory, never at the same time as a native operation.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { checkPath, isValidComponent, TEMP_DIR } from './paths.js';
import { acquire, release, readHostFile, LOCK_FILE } from './dir-lock.js';
import { BackgroundFlusher } from './background-flusher.js';
import { storageFailure, InvalidConfigError } from './errors.js';

/** The directory's settings file, read at open by every host (core: `Config::from_file_bytes`). */
export const CONFIG_FILE = 'config.json';
/** The core's limit on its size (`MAX_CONFIG_FILE_BYTES`); one byte more is read to detect it. */
const MAX_CONFIG_FILE_BYTES = 1 << 20;

const { O_RDONLY, O_RDWR, O_WRONLY, O_APPEND, O_CREAT, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = fs.constants;
// A temp is flushed in the background every this many bytes, so a large put's commit does not
// wait for all of its bytes to reach the disk at once. Smaller temps never involve the thread.
const FLUSH_EVERY = 16 << 20;
const flusher = new BackgroundFlusher();
const MAX_READ_FDS = 64;
let tempCounter = 0;

function fsyncDir(dir) {
  const fd = fs.openSync(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** `fs.openSync` that never follows a symlink at `full` (ELOOP becomes an `invalid_path` failure). */
function openNoFollow(full, flags, rel, mode) {
  try {
    return fs.openSync(full, flags | O_NOFOLLOW, mode);
  } catch (e) {
    if (e.code === 'ELOOP') throw symlinkFailure(rel, 'is a symbolic link', e);
    throw e;
  }
}

function symlinkFailure(rel, what, cause) {
  const e = storageFailure('invalid_path', `${rel}: ${what}`);
  if (cause) e.cause = cause;
  return e;
}

function writeAll(fd, data, position) {
  let off = 0;
  while (off < data.length) {
    const n = fs.writeSync(fd, data, off, data.length - off, position === null ? null : position + off);
    if (n <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    off += n;
  }
}

/** The cache's storage over a directory of the real filesystem (Node). */
export class FsStorage {
  /** The cache directory. */
  root;
  #tmp;
  #temps = new Map();
  #nextTemp = 0;
  #appendFds = new Map();
  #readFds = new Map();
  #lock = null;
  /** Whether commits, appends and removals fsync (durability `strict`, the default). */
  #strict = true;

  /**
   * Uses `root` as the cache directory, creating it (and `root/tmp`) if missing, and claims it
   * (`root/node.lock`) until `close()`: a directory another Node process or thread (or another
   * FsStorage of this one) has open throws a DirectoryInUseError. `{ lock: false }` skips the
   * claim; the caller then guarantees that nobody else uses the directory meanwhile.
   */
  constructor(root, { lock = true, waitMs } = {}) {
    this.root = path.resolve(root);
    this.#tmp = path.join(this.root, TEMP_DIR);
    fs.mkdirSync(this.root, { recursive: true });
    this.#ensureDirs(TEMP_DIR);
    if (lock) this.#lock = acquire(this.root, { waitMs });
  }

  /**
   * The bytes of the directory's `config.json`, or null if it has none: what `Cache.open`
   * reads the directory's settings from (the core parses them, as for the native host). Opened
   * with O_NOFOLLOW | O_NONBLOCK: a symlink, FIFO or directory under that name is an
   * InvalidConfigError at once.
   */
  readConfigFile() {
    const bytes = readHostFile(
      path.join(this.root, CONFIG_FILE),
      MAX_CONFIG_FILE_BYTES + 1,
      (_file, what) => new InvalidConfigError(`${CONFIG_FILE}: is ${what}, not a regular file`),
    );
    return bytes === null ? null : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  }

  /** Honours both levels (`'strict'` or `'relaxed'`); returns the one in force. */
  setDurability(level) {
    this.#strict = level !== 'relaxed';
    return this.#strict ? 'strict' : 'relaxed';
  }

  /** Whether this storage holds the directory's `node.lock`. */
  get locked() {
    return this.#lock !== null;
  }

  /**
   * The absolute path of a core path: checked (paths.js), with every directory component below
   * the root a real directory (or missing), never a symlink.
   */
  #resolve(p) {
    const parts = checkPath(p);
    let at = this.root;
    for (let i = 0; i < parts.length - 1; i++) {
      at = path.join(at, parts[i]);
      const st = fs.lstatSync(at, { throwIfNoEntry: false });
      if (st?.isSymbolicLink()) throw symlinkFailure(p, 'a directory component is a symbolic link');
    }
    return path.join(at, parts[parts.length - 1]);
  }

  /** For the inspection helpers: confined, but may name the host's own files (`tmp/…`). */
  #resolveLoose(p) {
    if (typeof p !== 'string' || p.split('/').some((c) => !/^[A-Za-z0-9._-]+$/.test(c) || c === '.' || c === '..')) {
      throw Object.assign(new Error(`invalid path: ${p}`), { code: 'EINVALIDPATH' });
    }
    return path.join(this.root, ...p.split('/'));
  }

  /**
   * Creates the missing directories of `dir` (relative to the root, `/`-separated), fsyncing
   * the parent of each new one. A component that is a symlink is refused (`invalid_path`), one
   * that is another kind of file is an I/O error.
   */
  #ensureDirs(dir) {
    let at = this.root;
    for (const part of dir.split('/').filter((c) => c !== '')) {
      const parent = at;
      at = path.join(at, part);
      const st = fs.lstatSync(at, { throwIfNoEntry: false });
      if (st?.isDirectory()) continue;
      if (st?.isSymbolicLink()) throw symlinkFailure(dir, 'a directory component is a symbolic link');
      if (st) throw Object.assign(new Error(`${at}: not a directory`), { code: 'ENOTDIR' });
      try {
        fs.mkdirSync(at);
      } catch (e) {
        if (e.code === 'EEXIST') continue;
        throw e;
      }
      if (this.#strict) fsyncDir(parent);
    }
  }

  /** Creates the parent directories of the core path `p` (see #ensureDirs). */
  #ensureParent(p) {
    const i = p.lastIndexOf('/');
    if (i > 0) this.#ensureDirs(p.slice(0, i));
  }

  #forget(p) {
    for (const map of [this.#appendFds, this.#readFds]) {
      const fd = map.get(p);
      if (fd !== undefined) {
        map.delete(p);
        try {
          fs.closeSync(fd);
        } catch {
          // already closed
        }
      }
    }
  }

  createTemp(_sizeHint) {
    for (let attempt = 0; ; attempt++) {
      const name = `${process.pid}-${tempCounter++}-${randomBytes(4).toString('hex')}.tmp`;
      const full = path.join(this.#tmp, name);
      try {
        // O_EXCL: never through a symlink planted under this name.
        const fd = fs.openSync(full, 'wx');
        const id = ++this.#nextTemp;
        this.#temps.set(id, { fd, full, pos: 0, flushed: 0 });
        return id;
      } catch (e) {
        if (attempt >= 16) throw e;
        if (e.code === 'ENOENT') this.#ensureDirs(TEMP_DIR);
        else if (e.code !== 'EEXIST') throw e;
      }
    }
  }

  #temp(id) {
    const t = this.#temps.get(id);
    if (!t) throw Object.assign(new Error(`no such temp ${id}`), { code: 'ENOENT' });
    return t;
  }

  writeTemp(id, data) {
    const t = this.#temp(id);
    writeAll(t.fd, data, t.pos);
    t.pos += data.length;
    if (this.#strict && t.pos - t.flushed >= FLUSH_EVERY && flusher.request(t.fd)) t.flushed = t.pos;
  }

  /** Closes a temp's descriptor once no background flush uses it; errors are the caller's. */
  #closeTemp(t) {
    try {
      flusher.settle(t.fd);
    } finally {
      fs.closeSync(t.fd);
      t.fd = -1;
    }
  }

  commitTemp(id, p) {
    const t = this.#temp(id);
    this.#temps.delete(id);
    if (t.partial !== undefined) this.#forget(t.partial);
    try {
      const full = this.#resolve(p);
      if (this.#strict) fs.fsyncSync(t.fd);
      this.#closeTemp(t); // throws, before the rename, if a background flush of it failed
      this.#ensureParent(p);
      this.#forget(p);
      fs.renameSync(t.full, full);
      if (this.#strict) fsyncDir(path.dirname(full));
    } catch (e) {
      if (t.fd >= 0) {
        try {
          this.#closeTemp(t);
        } catch {
          // the commit already failed with `e`
        }
      }
      try {
        fs.unlinkSync(t.full);
      } catch {
        // renamed or gone
      }
      throw e;
    }
  }

  abortTemp(id) {
    const t = this.#temps.get(id);
    if (!t) return;
    this.#temps.delete(id);
    if (t.partial !== undefined) this.#forget(t.partial);
    try {
      this.#closeTemp(t);
    } catch {
      // the bytes are being thrown away: a failed flush of them does not matter
    }
    try {
      fs.unlinkSync(t.full);
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
  }

  /**
   * Opens the partial download at `p` (`partials/<alg>/<hex>`, created empty if absent) as a
   * temp whose writes append to it and which outlives `clearTemps` and the process: `{id,
   * size}`, or null while this storage has it open already. Other processes cannot have it
   * open: the directory's claim (`node.lock`) keeps every other Node cache and every native
   * process out while this one is open (the native host `flock`s its open partials instead).
   */
  openPartial(p) {
    for (const t of this.#temps.values()) if (t.partial === p) return null;
    const full = this.#resolve(p);
    this.#ensureParent(p);
    this.#forget(p);
    const fd = openNoFollow(full, O_RDWR | O_CREAT | O_NONBLOCK, p, 0o666);
    let size;
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw storageFailure('invalid_path', `${p}: not a regular file`);
      size = st.size;
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    const id = ++this.#nextTemp;
    this.#temps.set(id, { fd, full, pos: size, flushed: size, partial: p });
    return { id, size };
  }

  /** Closes a partial opened by `openPartial`, its bytes durable, for a later one to continue. */
  keepPartial(id) {
    const t = this.#temps.get(id);
    if (!t) return;
    this.#temps.delete(id);
    this.#forget(t.partial);
    try {
      fs.fdatasyncSync(t.fd);
    } finally {
      this.#closeTemp(t);
    }
  }

  append(p, data) {
    let fd = this.#appendFds.get(p);
    if (fd === undefined) {
      const full = this.#resolve(p);
      this.#ensureParent(p);
      const existed = fs.lstatSync(full, { throwIfNoEntry: false }) !== undefined;
      fd = openNoFollow(full, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK, p, 0o666);
      try {
        if (!fs.fstatSync(fd).isFile()) throw storageFailure('io', `${p}: not a regular file`);
      } catch (e) {
        fs.closeSync(fd);
        throw e;
      }
      this.#appendFds.set(p, fd);
      if (!existed && this.#strict) fsyncDir(path.dirname(full));
    }
    writeAll(fd, data, null);
    if (this.#strict) fs.fdatasyncSync(fd);
  }

  readAt(p, offset, buf) {
    let fd = this.#readFds.get(p);
    if (fd === undefined) {
      // O_NONBLOCK: a FIFO planted under this name must not hang the open; it is refused below.
      fd = openNoFollow(this.#resolve(p), O_RDONLY | O_NONBLOCK, p);
      try {
        if (!fs.fstatSync(fd).isFile()) throw storageFailure('io', `${p}: not a regular file`);
      } catch (e) {
        fs.closeSync(fd);
        throw e;
      }
      if (this.#readFds.size >= MAX_READ_FDS) {
        const [oldest, oldFd] = this.#readFds.entries().next().value;
        this.#readFds.delete(oldest);
        fs.closeSync(oldFd);
      }
      this.#readFds.set(p, fd);
    }
    return fs.readSync(fd, buf, 0, buf.length, offset);
  }

  size(p) {
    // Only regular files count: a symlink (not followed) or a directory is not one of ours.
    const st = fs.lstatSync(this.#resolve(p), { throwIfNoEntry: false });
    return st && st.isFile() ? st.size : null;
  }

  /**
   * The files and directories directly inside `dir` whose names the core could address, as the
   * native host lists them: a symlink, a special file or a name outside the path grammar
   * (`a b`) is not ours, cannot be reached through this storage, and is left out rather than
   * failing the listing.
   */
  list(dir) {
    const d = dir.replace(/\/+$/, '');
    const full = this.#resolve(d);
    const st = fs.lstatSync(full, { throwIfNoEntry: false });
    if (st?.isSymbolicLink()) throw symlinkFailure(d, 'is a symbolic link');
    if (!st?.isDirectory()) return [];
    let entries;
    try {
      entries = fs.readdirSync(full, { withFileTypes: true });
    } catch (e) {
      if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return [];
      throw e;
    }
    return entries
      .filter((e) => (e.isFile() || e.isDirectory()) && isValidComponent(e.name))
      .map((e) => e.name)
      .sort();
  }

  /** Removes `p` (a symlink itself, never its target), then fsyncs its directory: durable. */
  remove(p) {
    const full = this.#resolve(p);
    this.#forget(p);
    try {
      fs.unlinkSync(full);
    } catch (e) {
      if (e.code === 'ENOENT') return;
      throw e;
    }
    if (this.#strict) fsyncDir(path.dirname(full));
  }

  clearTemps() {
    // Called when a cache opens: every temp is a leftover (of a crashed process, or of a
    // cache abandoned in this one), since one storage serves one cache at a time. Partials
    // are only closed: they live outside tmp/, for a later openPartial.
    for (const t of this.#temps.values()) {
      try {
        this.#closeTemp(t);
      } catch {
        // a leftover: its bytes are thrown away (a partial's are rehashed when it is reopened)
      }
    }
    this.#temps.clear();
    let names;
    try {
      names = fs.readdirSync(this.#tmp);
    } catch (e) {
      if (e.code === 'ENOENT') return 0;
      throw e;
    }
    let removed = 0;
    for (const name of names) {
      try {
        fs.unlinkSync(path.join(this.#tmp, name));
        removed++;
      } catch (e) {
        if (e.code !== 'ENOENT' && e.code !== 'EISDIR' && e.code !== 'EPERM') throw e;
      }
    }
    if (removed > 0 && this.#strict) fsyncDir(this.#tmp);
    return removed;
  }

  /**
   * Closes every file descriptor (open temps are discarded, open partials kept) and releases
   * the directory.
   */
  close() {
    try {
      for (const [id, t] of [...this.#temps]) {
        if (t.partial === undefined) {
          this.abortTemp(id);
        } else {
          try {
            this.keepPartial(id);
          } catch {
            // closed all the same; a later open rehashes what is there
          }
        }
      }
      for (const p of [...this.#appendFds.keys(), ...this.#readFds.keys()]) this.#forget(p);
    } finally {
      if (this.#lock) release(this.#lock.file, this.#lock.token);
      this.#lock = null;
    }
  }

  // ----- inspection helpers (tests, debugging; not used by the cache) -----

  /** A copy of the object at `p`, or null. */
  get(p) {
    try {
      return new Uint8Array(fs.readFileSync(this.#resolveLoose(p)));
    } catch (e) {
      if (e.code === 'ENOENT') return null;
      throw e;
    }
  }
  /** Writes `p` directly (in place if it exists), bypassing temps. */
  put(p, data) {
    const full = this.#resolveLoose(p);
    this.#ensureParent(p);
    fs.writeFileSync(full, data);
  }
  /** Flips every bit of the byte at `offset`; false if there is no such byte. */
  corrupt(p, offset) {
    const b = this.get(p);
    if (!b || offset >= b.length) return false;
    const fd = fs.openSync(this.#resolveLoose(p), 'r+');
    try {
      fs.writeSync(fd, Uint8Array.of(b[offset] ^ 0xff), 0, 1, offset);
    } finally {
      fs.closeSync(fd);
    }
    return true;
  }
  /** Shortens `p` to `len` bytes. */
  truncate(p, len) {
    const full = this.#resolveLoose(p);
    const st = fs.statSync(full, { throwIfNoEntry: false });
    if (st) fs.truncateSync(full, Math.min(len, st.size));
  }
  /** Every object path under the root (temps excluded), sorted. */
  paths() {
    const out = [];
    const walk = (dir, rel) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        if (rel === '' && (e.name === TEMP_DIR || e.name.startsWith(LOCK_FILE))) continue;
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) walk(path.join(dir, e.name), r);
        else out.push(r);
      }
    };
    walk(this.root, '');
    return out.sort();
  }
  /** Temp files present (open writes and abandoned ones). */
  tempCount() {
    try {
      return fs.readdirSync(this.#tmp).length;
    } catch {
      return 0;
    }
  }
}
