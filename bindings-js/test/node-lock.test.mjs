// One Node cache per directory: FsStorage claims `<root>/node.lock` (src/dir-lock.js). A second
// opener — in this process, a worker thread, another process — gets a DirectoryInUseError; a
// lock left by a process that is gone is taken over, by exactly one of several racing openers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { openCache, FsStorage, Cache, DirectoryInUseError, StorageError } from '../src/node.js';

const NODE_ENTRY = new URL('../src/node.js', import.meta.url).href;
const tmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-lock-'));
const lockOf = (dir) => path.join(dir, 'node.lock');
const readLock = (dir) => JSON.parse(fs.readFileSync(lockOf(dir), 'utf8'));

function assertInUse(f, pattern) {
  assert.throws(f, (e) => {
    assert.ok(e instanceof DirectoryInUseError, `${e?.name}: ${e?.message}`);
    assert.ok(e instanceof StorageError);
    assert.equal(e.code, 'storage');
    assert.equal(e.storageKind, 'io');
    assert.match(e.message, /is in use by/);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

/** A pid that existed a moment ago and is gone now. */
function deadPid() {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

/** A child process that opens `dir`, writes a blob, prints its digest, and waits for stdin to end. */
const children = new Set();
function holder(dir) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    import { openCache } from ${JSON.stringify(NODE_ENTRY)};
    const cache = openCache(${JSON.stringify(dir)});
    console.log(cache.putBlob('held by ' + process.pid));
    process.stdin.resume();
    process.stdin.on('end', () => { cache.close(); process.exit(0); });
  `], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const digest = new Promise((resolve, reject) => {
    child.stdout.once('data', (d) => resolve(d.toString().trim()));
    child.once('exit', (code) => reject(new Error(`holder exited (${code})`)));
  });
  return { child, digest };
}

test('a second opener in this process is refused; close releases the directory', () => {
  const dir = tmpDir();
  try {
    const a = openCache(dir);
    assert.equal(readLock(dir).pid, process.pid);
    assertInUse(() => openCache(dir), /this process/);
    assertInUse(() => new FsStorage(dir));
    const d = a.putBlob('still mine');
    assert.equal(new TextDecoder().decode(a.getBlob(d)), 'still mine', 'the first cache is untouched');
    a.close();
    assert.equal(fs.existsSync(lockOf(dir)), false, 'close removes node.lock');
    const b = openCache(dir);
    assert.equal(b.hasBlob(d), true);
    b.close();
    // A storage the caller owns holds the directory until the storage is closed.
    const s = new FsStorage(dir);
    const c = Cache.open({ storage: s });
    c.close();
    assertInUse(() => openCache(dir));
    s.close();
    s.close(); // idempotent
    openCache(dir).close();
    // Opting out: no claim, no check.
    const free = new FsStorage(dir, { lock: false });
    assert.equal(free.locked, false);
    assert.equal(fs.existsSync(lockOf(dir)), false);
    const held = openCache(dir);
    held.close();
    free.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a worker thread of this process is refused too', async () => {
  const dir = tmpDir();
  const cache = openCache(dir);
  try {
    const w = new Worker(`
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.entry).then(({ openCache }) => {
        try { openCache(workerData.dir).close(); parentPort.postMessage('opened'); }
        catch (e) { parentPort.postMessage(e.name + ' ' + e.code + ' ' + e.message); }
      });
    `, { eval: true, workerData: { entry: NODE_ENTRY, dir } });
    const [msg] = await Promise.all([new Promise((r) => w.once('message', r)), new Promise((r) => w.once('exit', r))]);
    assert.match(msg, /^DirectoryInUseError storage .*this process/);
  } finally {
    cache.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('another process is refused while one holds the directory, and may take it after a crash', async () => {
  const dir = tmpDir();
  try {
    const { child, digest } = holder(dir);
    const d = await digest;
    assertInUse(() => openCache(dir), new RegExp(`process ${child.pid} on ${os.hostname()}`));
    try {
      openCache(dir);
    } catch (e) {
      assert.equal(e.details.holder.pid, child.pid);
      assert.equal(e.details.directory, dir);
      assert.equal(e.details.lockFile, lockOf(dir));
    }
    // The holder dies without closing: its node.lock stays, naming a dead pid.
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    assert.equal(readLock(dir).pid, child.pid, 'a killed process leaves its lock behind');
    const cache = openCache(dir);
    try {
      assert.equal(readLock(dir).pid, process.pid, 'the stale lock was taken over');
      assert.equal(cache.hasBlob(d), true, "the dead process's committed blob is there");
      assert.equal(cache.recovery().clean_shutdown, false);
    } finally {
      cache.close();
    }
    // A clean holder removes its lock on close, and one that exits without close on exit.
    const second = holder(dir);
    await second.digest;
    const done = new Promise((r) => second.child.once('exit', r));
    second.child.stdin.end();
    assert.equal(await done, 0);
    assert.equal(fs.existsSync(lockOf(dir)), false);
    const r = spawnSync(process.execPath, ['--input-type=module', '-e',
      `import { openCache } from ${JSON.stringify(NODE_ENTRY)}; openCache(${JSON.stringify(dir)}); process.exit(0);`]);
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(fs.existsSync(lockOf(dir)), false, 'process exit releases a cache left open');
  } finally {
    for (const c of children) c.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('stale and foreign locks: dead pid, this pid reused, another host, a lock being written', () => {
  const dir = tmpDir();
  const plant = (owner) => fs.writeFileSync(lockOf(dir), typeof owner === 'string' ? owner : JSON.stringify(owner));
  const base = { hostname: os.hostname(), since: '2020-01-01T00:00:00.000Z', token: 'planted' };
  try {
    fs.mkdirSync(dir, { recursive: true });
    plant({ ...base, pid: deadPid(), started: 0 });
    openCache(dir).close();
    // This pid, but a process that started long before this one (a restarted container's pid 1).
    plant({ ...base, pid: process.pid, started: Date.now() - process.uptime() * 1000 - 3_600_000 });
    openCache(dir).close();
    // Another machine (a shared filesystem): its pid cannot be checked, so it counts as alive.
    plant({ ...base, pid: deadPid(), hostname: 'elsewhere.example', started: 0 });
    assertInUse(() => openCache(dir), /on elsewhere\.example/);
    // Empty (a lock being written) counts as held; once old, as abandoned.
    plant('');
    assertInUse(() => openCache(dir), /being written/);
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(lockOf(dir), old, old);
    openCache(dir).close();
    // A live process of this host (our parent) holds it.
    plant({ ...base, pid: process.ppid, started: 0 });
    assertInUse(() => openCache(dir), new RegExp(`process ${process.ppid}`));
    assert.equal(readLock(dir).token, 'planted', 'a refused opener leaves the lock alone');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('several processes racing for a stale lock: exactly one wins', async () => {
  const dir = tmpDir();
  try {
    fs.writeFileSync(lockOf(dir), JSON.stringify({ pid: deadPid(), hostname: os.hostname(), started: 0, since: 'then', token: 'stale' }));
    const at = Date.now() + 2500;
    const run = () => new Promise((resolve, reject) => {
      const c = spawn(process.execPath, ['--input-type=module', '-e', `
        import { openCache } from ${JSON.stringify(NODE_ENTRY)};
        while (Date.now() < ${at});
        let cache;
        try { cache = openCache(${JSON.stringify(dir)}); } catch (e) { console.log(e.name); process.exit(0); }
        console.log('won');
        setTimeout(() => { cache.close(); }, 4000);
      `], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      c.stdout.on('data', (d) => { out += d; });
      const timer = setTimeout(() => { c.kill('SIGKILL'); reject(new Error('a racer hung')); }, 30_000);
      c.on('exit', () => { clearTimeout(timer); resolve(out.trim()); });
    });
    const results = await Promise.all([run(), run(), run(), run()]);
    assert.deepEqual(results.filter((r) => r === 'won').length, 1, results.join(', '));
    assert.deepEqual(results.filter((r) => r !== 'won'), ['DirectoryInUseError', 'DirectoryInUseError', 'DirectoryInUseError']);
    assert.equal(fs.existsSync(lockOf(dir)), false);
    assert.equal(fs.existsSync(path.join(dir, 'node.lock.break')), false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('node.lock is invisible to the cache and its inspection helpers', () => {
  const dir = tmpDir();
  try {
    const s = new FsStorage(dir);
    const cache = Cache.open({ storage: s });
    cache.putBlob('x');
    assert.ok(fs.existsSync(lockOf(dir)));
    assert.ok(s.paths().every((p) => !p.startsWith('node.lock')), s.paths().join(' '));
    assert.equal(cache.checkIntegrity().healthy, true);
    assert.equal(cache.repair().removed_unindexed, 0);
    assert.ok(fs.existsSync(lockOf(dir)), 'repair leaves node.lock alone');
    cache.close();
    s.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
