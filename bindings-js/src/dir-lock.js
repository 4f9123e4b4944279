// The Node host's claim on a cache directory: `<root>/node.lock`, created exclusively (`wx`)
// and holding the owner's pid, host name, process start time and a random token. Node has no
// `flock`, and the Node cache does not re-read the index before each operation the way the
// native host does (docs/FORMAT.md, "Sharing a directory between processes"), so one directory
// serves at most one Node cache at a time. A second opener (another process, another worker
// thread, another FsStorage in this process) gets a DirectoryInUseError.
//
// A lock whose owner is gone is taken over: the owner's pid no longer exists
// (`process.kill(pid, 0)` → ESRCH), or it is this process's pid with another start time (a
// restarted container reuses pid 1). Taking over is serialized by `<root>/node.lock.break`,
// created exclusively too, so two processes that both find a stale lock cannot both win.
//
// Exclusion with the native host, in both directions (docs/FORMAT.md, "Sharing a directory"):
// each side announces itself, then checks for the other, so that of two that start at the same
// time at least one sees the other. The native host (`host-native/src/lock.rs`), for as long as
// it has an operation, a blob writer or a blob reader in flight, keeps a marker file
// `<root>/native/<pid>-…` (JSON: pid, hostname, start_ticks); after creating it, it refuses to
// go on while `node.lock` names a live process. Node, after creating `node.lock`, checks
// `native/` and backs off (removes its claim, waits, retries) while a live marker is there; it
// also waits before claiming, so that it does not break a native operation's stride. After
// `waitMs` it gives up with a DirectoryInUseError naming the native process.
//
// `node.lock` and the markers are opened with O_NOFOLLOW | O_NONBLOCK and must be regular
// files: a symlink or a FIFO planted under those names is refused with a clear error instead of
// being followed or hanging the opener.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { DirectoryInUseError, StorageError } from './errors.js';

export const LOCK_FILE = 'node.lock';
/** The directory of the native host's markers (one per process with work in flight). */
export const NATIVE_DIR = 'native';
/** How long `acquire` waits, by default, for native operations in flight to finish. */
export const DEFAULT_WAIT_MS = 10_000;
const BREAK_FILE = 'node.lock.break';
const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
/** How old an unreadable lock (or a break lock) must be before it counts as abandoned. */
const ABANDONED_MS = 10_000;
const ATTEMPTS = 50;

/** Lock file → token, for the locks this thread holds. */
const held = new Map();
let exitHook = false;

/** When this process started (ms since the epoch; the same in every worker thread). */
const processStart = () => Date.now() - process.uptime() * 1000;

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** A StorageError for a host file that is not a regular file (a FIFO, a symlink, a directory). */
function notRegular(file, what) {
  return new StorageError(
    `${file} is ${what}, not a regular file: the cache refuses to use it (remove it if it is not yours)`,
    { storageKind: 'io', details: { kind: 'io', file } },
  );
}

/**
 * The bytes (at most `limit`) of a small host file, never following a symlink and never
 * blocking on a FIFO; null if it does not exist. Anything but a regular file throws
 * `refuse(file, what)` (by default a StorageError), `what` saying what it is.
 */
export function readHostFile(file, limit, refuse = notRegular) {
  let fd;
  try {
    fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return null;
    if (e.code === 'ELOOP') throw refuse(file, 'a symbolic link');
    throw e;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw refuse(file, st.isFIFO() ? 'a FIFO' : st.isDirectory() ? 'a directory' : 'a special file');
    const buf = Buffer.alloc(Math.min(st.size, limit));
    let n = 0;
    while (n < buf.length) {
      const r = fs.readSync(fd, buf, n, buf.length - n, n);
      if (r === 0) break;
      n += r;
    }
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/** The lock's content: an owner object, null if there is no lock, 'unreadable' otherwise. */
function readOwner(file) {
  const bytes = readHostFile(file, 64 << 10);
  if (bytes === null) return null;
  try {
    const o = JSON.parse(bytes.toString('utf8'));
    if (Number.isSafeInteger(o?.pid) && typeof o.token === 'string') return o;
  } catch {
    // being written, or damaged
  }
  return 'unreadable';
}

function ageMs(file) {
  const st = fs.lstatSync(file, { throwIfNoEntry: false });
  return st ? Date.now() - st.mtimeMs : 0;
}

/** The start time of process `pid` in clock ticks since boot (Linux /proc), or null. */
function startTicks(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Field 22, counted after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * The live native processes with work in flight in `root`: their markers in `root/native/`
 * (a marker is live while its pid runs on this host with the start time it recorded; one from
 * another host counts as live; one unreadable for under 10 s is being written). Markers of
 * processes that are gone are removed.
 */
export function liveNativeMarkers(root) {
  const dir = path.join(root, NATIVE_DIR);
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return [];
    throw e;
  }
  const live = [];
  for (const e of entries) {
    if (!e.isFile()) continue; // not a marker the native host writes
    const file = path.join(dir, e.name);
    let marker = null;
    try {
      const bytes = readHostFile(file, 4096);
      if (bytes === null) continue; // removed meanwhile: its operation ended
      marker = JSON.parse(bytes.toString('utf8'));
    } catch {
      // being written, or damaged
    }
    if (!Number.isSafeInteger(marker?.pid)) {
      if (ageMs(file) < ABANDONED_MS) live.push({ file, pid: null });
      continue;
    }
    const here = marker.hostname == null || marker.hostname === os.hostname();
    const alive = !here || (pidAlive(marker.pid)
      && (marker.start_ticks == null || startTicks(marker.pid) === null
        || String(marker.start_ticks) === startTicks(marker.pid)));
    if (alive) {
      live.push({ file, ...marker });
    } else {
      fs.rmSync(file, { force: true }); // its process is gone (crashed): stale
    }
  }
  return live;
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM'; // exists, owned by another user
  }
}

/** Whether `owner` (read from `file`) no longer holds the directory. */
function isStale(owner, file) {
  if (owner === 'unreadable') return ageMs(file) > ABANDONED_MS;
  if (owner.hostname !== os.hostname()) return false; // cannot tell: assume it is alive
  if (owner.pid === process.pid) {
    if ([...held.values()].includes(owner.token)) return false;
    // This pid with another start time: an earlier process that had the same pid.
    return !(Math.abs((owner.started ?? 0) - processStart()) < 2000);
  }
  return !pidAlive(owner.pid);
}

function tryCreate(file, body) {
  let fd;
  try {
    fd = fs.openSync(file, 'wx');
  } catch (e) {
    if (e.code === 'EEXIST') return false;
    throw e;
  }
  try {
    fs.writeSync(fd, body);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

/** Removes `file` if it still holds the stale owner `owner`; false if another process is busy at it. */
function breakStale(root, file, owner) {
  const brk = path.join(root, BREAK_FILE);
  if (!tryCreate(brk, String(process.pid))) {
    if (ageMs(brk) > ABANDONED_MS) fs.rmSync(brk, { force: true });
    return false;
  }
  try {
    const now = readOwner(file);
    const same = now === 'unreadable' || owner === 'unreadable'
      ? now === owner
      : now !== null && now.token === owner.token;
    if (same) fs.rmSync(file, { force: true });
  } finally {
    fs.rmSync(brk, { force: true });
  }
  return true;
}

function inUse(root, file, owner) {
  const who = owner === 'unreadable'
    ? 'another process (its lock file is being written)'
    : owner.pid === process.pid && owner.hostname === os.hostname()
      ? `this process (pid ${owner.pid}): close the other cache on it first`
      : `process ${owner.pid} on ${owner.hostname} since ${owner.since}`;
  return new DirectoryInUseError(
    `the cache directory ${root} is in use by ${who}; a directory may be open in one Node cache at a time ` +
      `(if that process is not an ocicache user, remove ${file})`,
    { details: { kind: 'io', directory: root, lockFile: file, holder: owner === 'unreadable' ? null : owner } },
  );
}

function nativeInUse(root, markers) {
  const who = markers
    .map((m) => (m.pid === null ? 'a native process (its marker is being written)' : `native process ${m.pid}${m.hostname && m.hostname !== os.hostname() ? ` on ${m.hostname}` : ''}`))
    .join(', ');
  return new DirectoryInUseError(
    `the cache directory ${root} is in use by ${who} (an ocicache command or program with an operation in flight); ` +
      'try again when it has finished',
    { details: { kind: 'io', directory: root, native: markers } },
  );
}

function releaseAllOnExit() {
  for (const [file, token] of held) release(file, token);
}

/**
 * Claims `root` for this thread: returns the lock to `release`, or throws DirectoryInUseError.
 * While a native process has work in flight in `root`, waits for it (up to `waitMs`, default
 * DEFAULT_WAIT_MS; 0 does not wait) without holding the claim.
 */
export function acquire(root, { waitMs = DEFAULT_WAIT_MS } = {}) {
  if (!(Number.isFinite(waitMs) && waitMs >= 0)) throw new TypeError('waitMs must be a non-negative number');
  const deadline = Date.now() + waitMs;
  for (;;) {
    // Check before announcing too: claiming while a native operation runs would make its next
    // step fail for nothing.
    let native = liveNativeMarkers(root);
    if (native.length === 0) {
      const lock = claim(root);
      // Announced: now a native operation that starts sees node.lock and refuses. One that
      // started before has its marker in place by now.
      native = liveNativeMarkers(root);
      if (native.length === 0) return lock;
      release(lock.file, lock.token);
    }
    const left = deadline - Date.now();
    if (left <= 0) throw nativeInUse(root, native);
    sleep(Math.min(20, left));
  }
}

function claim(root) {
  const file = path.join(root, LOCK_FILE);
  const token = randomBytes(12).toString('hex');
  const body = JSON.stringify({
    pid: process.pid,
    hostname: os.hostname(),
    started: Math.round(processStart()),
    since: new Date().toISOString(),
    token,
  }) + '\n';
  let owner = 'unreadable';
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (tryCreate(file, body)) {
      held.set(file, token);
      if (!exitHook) {
        exitHook = true;
        process.once('exit', releaseAllOnExit);
      }
      return { file, token };
    }
    owner = readOwner(file);
    if (owner === null) continue; // released in between
    if (!isStale(owner, file)) throw inUse(root, file, owner);
    if (!breakStale(root, file, owner)) sleep(10);
  }
  throw inUse(root, file, owner);
}

/** Gives up the claim (idempotent); leaves the file alone if it is no longer ours. */
export function release(file, token) {
  if (held.get(file) !== token) return;
  held.delete(file);
  try {
    const owner = readOwner(file);
    if (owner !== null && owner !== 'unreadable' && owner.token === token) fs.rmSync(file, { force: true });
  } catch {
    // the directory is gone
  }
}
