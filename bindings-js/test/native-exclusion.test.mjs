// Node and native processes on one directory exclude each other in both directions
// (docs/FORMAT.md, "Sharing a directory between processes"): the native host keeps a marker in
// `<root>/native/` while it has the directory open and refuses while `node.lock` is live; Node
// waits (or, past `waitMs`, refuses) while a live marker exists. And both read the directory's
// config.json the same way. The CLI comes from $OCICACHE_BIN or $CARGO_TARGET_DIR/debug/ocicache
// (target/ when unset); without it the tests skip and say why (in CI they fail).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { openCache, DirectoryInUseError, FullError } from '../src/node.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.OCICACHE_BIN
  || path.join(path.resolve(REPO, process.env.CARGO_TARGET_DIR || 'target'), 'debug/ocicache');
const NODE_ENTRY = new URL('../src/node.js', import.meta.url).href;
const skip = fs.existsSync(BIN) ? false : `the ocicache CLI is not built (${BIN}); set OCICACHE_BIN or build host-native`;
if (skip) console.log(`# SKIP native exclusion: ${skip}`);
if (skip && process.env.CI) throw new Error(`native exclusion cannot run in CI: ${skip}`);

const cli = (dir, ...args) => execFileSync(BIN, ['--dir', dir, ...args], { maxBuffer: 64 << 20, timeout: 180_000 });

function tempDir(t) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-excl-'));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Every file under `dir` with its bytes, sorted: a byte-exact picture of the directory. */
function tree(dir) {
  const out = [];
  const walk = (d, rel) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const full = path.join(d, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        out.push([r, 'dir']);
        walk(full, r);
      } else {
        out.push([r, fs.readFileSync(full).toString('base64')]);
      }
    }
  };
  walk(dir, '');
  return JSON.stringify(out);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `cond` every 10 ms, for at most `ms`; fails the test if it never holds. Generous: the
 * CLI's first run on a machine compiles its component (tens of seconds on a loaded one).
 */
async function until(cond, what, ms = 180_000) {
  for (let waited = 0; waited < ms; waited += 10) {
    if (cond()) return;
    await sleep(10);
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** Spawns the CLI; resolves `done` to { code, stdout, stderr }. Killed at the end of the test. */
function spawnCli(t, dir, args, env = {}) {
  const child = spawn(BIN, ['--dir', dir, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => {}); // a child killed at the end of a failed test
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const done = new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
  t.after(() => child.exitCode === null && child.kill('SIGKILL'));
  return { child, done };
}

/** A directory holding a few blobs, written by Node and closed; returns their digests. */
function populated(dir) {
  const cache = openCache(dir);
  const digests = [1, 2, 3].map((i) => cache.putBlob(`blob ${i} `.repeat(1000 * i)));
  cache.close();
  return digests;
}

/** A CLI `repair` that holds the directory, in the middle of the repair, until `release()`. */
async function pausedRepair(t, dir) {
  const go = path.join(path.dirname(dir), `${path.basename(dir)}-go`);
  // Acquisition 2 of the directory lock: 1 is the open, 2 the repair, 3 the close.
  const run = spawnCli(t, dir, ['repair'], { OCICACHE_TEST_HOLD_LOCK: `2:${go}` });
  await until(() => fs.existsSync(`${go}.held`) || run.child.exitCode !== null, 'the repair to hold the directory');
  assert.equal(run.child.exitCode, null, 'the repair is running');
  return { ...run, release: () => fs.writeFileSync(go, '') };
}

test('a Node open during a native repair is refused (waitMs 0) and changes nothing', { skip }, async (t) => {
  const base = tempDir(t);
  const dir = path.join(base, 'cache');
  populated(dir);
  const repair = await pausedRepair(t, dir);
  const markers = fs.readdirSync(path.join(dir, 'native'));
  assert.equal(markers.length, 1, 'the native process announced itself');
  const before = tree(dir);
  assert.throws(() => openCache(dir, { waitMs: 0 }), (e) => {
    assert.ok(e instanceof DirectoryInUseError, e.stack);
    assert.match(e.message, new RegExp(`native process ${repair.child.pid}`));
    assert.equal(e.details.native[0].pid, repair.child.pid);
    return true;
  });
  assert.equal(tree(dir), before, 'no recovery ran, no node.lock left behind');
  repair.release();
  const r = await repair.done;
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'native')), [], 'the marker goes with the process');
  const cache = openCache(dir, { waitMs: 0 });
  assert.equal(cache.checkIntegrity().healthy, true);
  cache.close();
});

test('a Node open during a native repair waits for it, then opens after the clean close', { skip }, async (t) => {
  const base = tempDir(t);
  const dir = path.join(base, 'cache');
  const digests = populated(dir);
  const repair = await pausedRepair(t, dir);
  // The opener runs in its own process: a waiting open blocks its thread.
  const opener = spawn(process.execPath, ['--input-type=module', '-e', `
    import { openCache } from ${JSON.stringify(NODE_ENTRY)};
    const cache = openCache(${JSON.stringify(dir)}, { waitMs: 60000 });
    console.log(JSON.stringify({ recovery: cache.recovery(), entries: cache.contents().length }));
    cache.close();
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => opener.exitCode === null && opener.kill('SIGKILL'));
  let out = '';
  opener.stdout.on('data', (d) => { out += d; });
  const opened = new Promise((resolve) => opener.once('exit', resolve));
  // Let the opener reach its wait (it cannot get past the marker), then let the repair finish.
  await until(() => fs.existsSync(path.join(dir, 'native')) && opener.pid !== undefined, 'the opener to start');
  await sleep(300);
  assert.equal(opener.exitCode, null, 'the opener waits while the repair holds the directory');
  repair.release();
  const r = await repair.done;
  assert.equal(r.code, 0, `the repair and its close succeed: ${r.stderr}`);
  assert.equal(await opened, 0);
  const seen = JSON.parse(out);
  assert.equal(seen.recovery.clean_shutdown, true, 'Node opened after the native close, not during the repair');
  assert.equal(seen.entries, digests.length);
});

test("a native writer's temp survives a Node open, and its put commits", { skip }, async (t) => {
  const base = tempDir(t);
  const dir = path.join(base, 'cache');
  populated(dir);
  const put = spawnCli(t, dir, ['blob', 'put', '-']);
  const data = Buffer.alloc(3 << 20, 7);
  put.child.stdin.write(data.subarray(0, 1 << 20));
  const tmp = path.join(dir, 'tmp');
  await until(() => fs.readdirSync(tmp).length > 0, 'the writer\'s temp');
  const temps = fs.readdirSync(tmp);
  assert.throws(() => openCache(dir, { waitMs: 0 }), DirectoryInUseError);
  assert.deepEqual(fs.readdirSync(tmp), temps, 'the live writer\'s temp is still there');
  put.child.stdin.end(data.subarray(1 << 20));
  const r = await put.done;
  assert.equal(r.code, 0, r.stderr);
  const digest = r.stdout.trim().split(/\s+/).pop();
  const cache = openCache(dir, { waitMs: 0 });
  try {
    assert.deepEqual(Buffer.from(cache.getBlob(digest)), data);
  } finally {
    cache.close();
  }
});

test('the marker of a native process that is gone is stale: Node opens and removes it', { skip }, (t) => {
  const dir = tempDir(t);
  populated(dir);
  const dead = Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).toString());
  fs.mkdirSync(path.join(dir, 'native'), { recursive: true });
  const marker = path.join(dir, 'native', `${dead}-0-00000000`);
  fs.writeFileSync(marker, JSON.stringify({ pid: dead, hostname: os.hostname(), start_ticks: '1' }));
  // This process with another start time: a pid reused since the marker was written.
  const reused = path.join(dir, 'native', `${process.pid}-0-00000001`);
  fs.writeFileSync(reused, JSON.stringify({ pid: process.pid, hostname: os.hostname(), start_ticks: '1' }));
  openCache(dir, { waitMs: 0 }).close();
  assert.deepEqual(fs.readdirSync(path.join(dir, 'native')), []);
});

test('a FIFO as node.lock or config.json: the CLI fails at once with a clear error', { skip }, (t) => {
  for (const [name, code, message] of [
    ['node.lock', 6, /node\.lock is a FIFO, not a regular file/],
    ['config.json', 8, /config\.json: is a FIFO, not a regular file/],
  ]) {
    const dir = tempDir(t);
    populated(dir);
    execFileSync('mkfifo', [path.join(dir, name)]);
    let failure;
    try {
      execFileSync(BIN, ['--dir', dir, 'ls'], { timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      failure = e;
    }
    assert.ok(failure, `${name}: the CLI must refuse`);
    assert.equal(failure.signal, null, `${name}: the CLI hung (killed by the timeout)`);
    assert.equal(failure.status, code, failure.stderr.toString());
    assert.match(failure.stderr.toString(), message);
  }
});

test('a directory capped at 1 MiB by config.json: Node and the CLI refuse and evict alike', { skip }, (t) => {
  const base = tempDir(t);
  const big = path.join(base, 'big');
  fs.writeFileSync(big, Buffer.alloc(3_000_000, 1));
  const parts = [0, 1].map((i) => {
    const f = path.join(base, `part${i}`);
    fs.writeFileSync(f, Buffer.alloc(600_000, 10 + i));
    return f;
  });
  const outcomes = {};
  for (const host of ['node', 'cli']) {
    const dir = path.join(base, host);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ max_bytes: 1 << 20 }));
    let refused;
    if (host === 'node') {
      const cache = openCache(dir);
      try {
        cache.putBlob(fs.readFileSync(big));
      } catch (e) {
        refused = e instanceof FullError ? 'full' : e.code;
      }
      for (const f of parts) cache.putBlob(fs.readFileSync(f));
      cache.close();
    } else {
      try {
        cli(dir, 'blob', 'put', big);
      } catch (e) {
        refused = e.status === 5 ? 'full' : `exit ${e.status}`;
      }
      for (const f of parts) cli(dir, 'blob', 'put', f);
    }
    const ls = JSON.parse(cli(dir, '--json', 'ls').toString());
    outcomes[host] = { refused, contents: ls.contents.map((e) => [e.digest, e.size]), max: ls.config?.max_bytes };
  }
  assert.equal(outcomes.node.refused, 'full');
  assert.deepEqual(outcomes.node, outcomes.cli);
  assert.equal(outcomes.node.contents.length, 1, 'the second 600 kB blob evicted the first under the 1 MiB cap');
});
