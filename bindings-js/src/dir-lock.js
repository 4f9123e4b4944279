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
// The native host (`host-native/src/lock.rs`) checks this file under its own flock before every
// operation and refuses while it names a live process; Node cannot take that flock in return.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { DirectoryInUseError } from './errors.js';

export const LOCK_FILE = 'node.lock';
const BREAK_FILE = 'node.lock.break';
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

/** The lock's content: an owner object, null if there is no lock, 'unreadable' otherwise. */
function readOwner(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e.code === 'ENOENT') return null;
    throw e;
  }
  try {
    const o = JSON.parse(text);
    if (Number.isSafeInteger(o?.pid) && typeof o.token === 'string') return o;
  } catch {
    // being written, or damaged
  }
  return 'unreadable';
}

function ageMs(file) {
  const st = fs.statSync(file, { throwIfNoEntry: false });
  return st ? Date.now() - st.mtimeMs : 0;
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

function releaseAllOnExit() {
  for (const [file, token] of held) release(file, token);
}

/** Claims `root` for this thread: returns the lock to `release`, or throws DirectoryInUseError. */
export function acquire(root) {
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
