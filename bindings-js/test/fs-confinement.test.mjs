// FsStorage keeps to the cache directory as the native host does (host-native/src/storage/fs.rs):
// no symlink below the root is followed, names the cache cannot address do not break a listing,
// special files where the host keeps its own files (node.lock, config.json) are refused instead
// of hanging, removals are durable, and the directory's config.json is read with the native
// host's keys, checks and errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import {
  openCache, FsStorage, StorageError, InvalidConfigError, FullError,
} from '../src/node.js';

function tempDir(t) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-confine-'));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Every file under `dir` with its bytes (symlinks as their target), sorted: a byte-exact picture. */
function tree(dir) {
  const out = [];
  const walk = (d, rel) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const full = path.join(d, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isSymbolicLink()) out.push([r, `-> ${fs.readlinkSync(full)}`]);
      else if (e.isDirectory()) walk(full, r);
      else if (e.isFile()) out.push([r, fs.readFileSync(full).toString('base64')]);
      else out.push([r, 'special']);
    }
  };
  walk(dir, '');
  return JSON.stringify(out);
}

/** A cache-level error for a symlink: StorageError of kind invalid_path. */
const isInvalidPath = (e) => e instanceof StorageError && e.storageKind === 'invalid_path';
/** What FsStorage itself throws for a symlink (the cache turns it into the above). */
const isInvalidPathFailure = (e) => e?.storageKind === 'invalid_path' && /symbolic link/.test(e.message);

test('a symlinked index/journal-0 is not followed: nothing is appended outside the root', (t) => {
  const base = tempDir(t);
  const root = path.join(base, 'cache');
  const outside = path.join(base, 'outside');
  fs.mkdirSync(outside);
  let cache = openCache(root);
  const first = cache.putBlob('first');
  cache.abandon(); // a crash: the journal is the whole index (no snapshot written at close)
  const journal = path.join(root, 'index', 'journal-0');
  fs.renameSync(journal, path.join(outside, 'journal-0'));
  fs.symlinkSync(path.join(outside, 'journal-0'), journal);
  const before = tree(outside);

  // As in the native host, a symlink where a file is expected is not the cache's file and is
  // never followed. With no other index file left, the directory holds blobs and no index: the
  // open is refused as not a cache (explicit adoption would be needed), changing nothing.
  const inside = tree(root);
  assert.throws(() => openCache(root), (e) => {
    assert.equal(e.code, 'invalid_config', e.stack);
    assert.match(e.message, /not an ocicache directory/);
    return true;
  });
  assert.equal(tree(outside), before, 'the file outside the root is unchanged');
  assert.equal(tree(root), inside, 'nothing inside the root changed');
  assert.ok(first.startsWith('sha256:'));
});

test('a symlinked index/ directory: the open fails with a clear storage error, nothing written outside', (t) => {
  const base = tempDir(t);
  const root = path.join(base, 'cache');
  const outside = path.join(base, 'outside');
  let cache = openCache(root);
  cache.putBlob('first');
  cache.close();
  fs.renameSync(path.join(root, 'index'), outside);
  fs.symlinkSync(outside, path.join(root, 'index'));
  const before = tree(outside);
  assert.throws(() => openCache(root), (e) => {
    assert.ok(isInvalidPath(e), e.stack);
    assert.match(e.message, /index.*a directory component is a symbolic link/);
    return true;
  });
  assert.equal(tree(outside), before);
  assert.equal(fs.existsSync(path.join(root, 'node.lock')), false, 'the claim is released');
});

test('a symlinked blobs/sha256: no blob is committed outside the root', (t) => {
  const base = tempDir(t);
  const root = path.join(base, 'cache');
  const outside = path.join(base, 'outside');
  fs.mkdirSync(outside);
  fs.mkdirSync(path.join(root, 'blobs'), { recursive: true });
  fs.symlinkSync(outside, path.join(root, 'blobs', 'sha256'));
  let refused = null;
  try {
    const cache = openCache(root);
    try {
      cache.putBlob('a blob that must not leave the root');
    } catch (e) {
      refused = e;
    }
    cache.close();
  } catch (e) {
    refused ??= e;
  }
  assert.ok(refused, 'storing through the symlinked directory must fail');
  assert.ok(isInvalidPath(refused), `a storage error of kind invalid_path, got ${refused?.stack}`);
  assert.deepEqual(fs.readdirSync(outside), [], 'nothing written outside the root');
});

test('a symlinked blob file is not followed: not counted, not read, not listed', (t) => {
  const base = tempDir(t);
  const secret = path.join(base, 'secret');
  fs.writeFileSync(secret, 'secret');
  const storage = new FsStorage(path.join(base, 'cache'));
  t.after(() => storage.close());
  fs.mkdirSync(path.join(storage.root, 'blobs', 'sha256'), { recursive: true });
  const name = 'a'.repeat(64);
  fs.symlinkSync(secret, path.join(storage.root, 'blobs', 'sha256', name));
  assert.equal(storage.size(`blobs/sha256/${name}`), null);
  assert.throws(() => storage.readAt(`blobs/sha256/${name}`, 0, new Uint8Array(6)), isInvalidPathFailure);
  assert.throws(() => storage.append(`blobs/sha256/${name}`, new Uint8Array(1)), isInvalidPathFailure);
  assert.deepEqual(storage.list('blobs/sha256'), []);
  assert.equal(fs.readFileSync(secret, 'utf8'), 'secret');
});

test('the path grammar and reserved names are the native host\'s', (t) => {
  const storage = new FsStorage(tempDir(t), { lock: false });
  for (const bad of ['', '/etc/passwd', 'a/../b', 'a//b', './a', 'a/', 'a\0b', 'tmp/x', 'tmp', 'lock', 'config.json', 'a b', 'é', 'x'.repeat(256)]) {
    assert.throws(() => storage.size(bad), (e) => e?.storageKind === 'invalid_path', JSON.stringify(bad));
  }
  for (const good of ['blobs/sha256/ab12', 'lock2', 'index/journal-0', 'x'.repeat(255)]) {
    assert.equal(storage.size(good), null, good);
  }
});

test('entries the cache cannot address (odd names, a directory, a symlink, a FIFO) do not fail a reconciling open', (t) => {
  const root = tempDir(t);
  let cache = openCache(root);
  const d = cache.putBlob('kept');
  cache.abandon(); // a crash: the next open reconciles the index with every listed file
  const dir = path.join(root, 'blobs', 'sha256');
  fs.writeFileSync(path.join(dir, 'a b'), 'not ours');
  fs.writeFileSync(path.join(dir, 'notes~'), 'not ours either');
  fs.mkdirSync(path.join(dir, 'sub dir'));
  fs.symlinkSync('/etc/hostname', path.join(dir, 'link'));
  execFileSync('mkfifo', [path.join(dir, 'fifo')]);
  const storage = new FsStorage(root, { lock: false });
  assert.deepEqual(storage.list('blobs/sha256'), [d.slice('sha256:'.length)], 'only what the cache can address');
  cache = openCache(root);
  assert.equal(cache.recovery().clean_shutdown, false, 'reconciled');
  assert.equal(new TextDecoder().decode(cache.getBlob(d)), 'kept');
  cache.close();
  assert.equal(fs.readFileSync(path.join(dir, 'a b'), 'utf8'), 'not ours', 'left alone');
  assert.ok(fs.statSync(path.join(dir, 'sub dir')).isDirectory());
});

test('a FIFO as node.lock or as config.json is refused at once, never waited on', (t) => {
  for (const name of ['node.lock', 'config.json']) {
    const root = tempDir(t);
    execFileSync('mkfifo', [path.join(root, name)]);
    // In a child with a timeout, so that a regression hangs the child, not this test.
    const script = `
      import { openCache } from ${JSON.stringify(new URL('../src/node.js', import.meta.url).href)};
      try { openCache(${JSON.stringify(root)}).close(); console.log('opened'); }
      catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }
    `;
    let out;
    try {
      out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000, encoding: 'utf8' });
    } catch (e) {
      assert.fail(`${name}: the open did not finish (${e.signal ?? e.message})`);
    }
    const r = JSON.parse(out.trim().split('\n').pop());
    if (name === 'node.lock') {
      assert.equal(r.code, 'storage', out);
      assert.match(r.message, /node\.lock is a FIFO, not a regular file/);
    } else {
      assert.equal(r.code, 'invalid_config', out);
      assert.match(r.message, /config\.json: is a FIFO, not a regular file/);
    }
    assert.ok(fs.lstatSync(path.join(root, name)).isFIFO(), 'left in place');
  }
});

test('a symlink as node.lock or config.json is refused, not followed', (t) => {
  const base = tempDir(t);
  const target = path.join(base, 'target.json');
  fs.writeFileSync(target, '{"max_bytes": 4096}');
  for (const name of ['node.lock', 'config.json']) {
    const root = path.join(base, name);
    fs.mkdirSync(root);
    fs.symlinkSync(target, path.join(root, name));
    assert.throws(() => openCache(root), (e) => (name === 'node.lock'
      ? e instanceof StorageError && /symbolic link/.test(e.message)
      : e instanceof InvalidConfigError && /config\.json: is a symbolic link/.test(e.message)));
  }
  assert.equal(fs.readFileSync(target, 'utf8'), '{"max_bytes": 4096}');
});

test('remove fsyncs the directory it removed from', (t) => {
  const storage = new FsStorage(tempDir(t), { lock: false });
  storage.append('blobs/sha256/ab', new Uint8Array([1]));
  const orig = fs.fsyncSync;
  const synced = [];
  fs.fsyncSync = (fd) => {
    synced.push(fs.fstatSync(fd).isDirectory() ? 'dir' : 'file');
    return orig(fd);
  };
  try {
    storage.remove('blobs/sha256/ab');
  } finally {
    fs.fsyncSync = orig;
  }
  assert.equal(storage.size('blobs/sha256/ab'), null);
  assert.deepEqual(synced, ['dir']);
});

test("the directory's config.json is read: keys, checks and errors as in the native host", (t) => {
  const root = tempDir(t);
  fs.writeFileSync(path.join(root, 'config.json'), JSON.stringify({ max_bytes: 1 << 20, tag_ttl_ms: 7 }));
  let cache = openCache(root);
  assert.equal(cache.config.max_bytes, 1 << 20);
  assert.equal(cache.config.tag_ttl_ms, 7);
  // The cap holds: a 3 MB blob is refused, as the CLI refuses it.
  assert.throws(() => cache.putBlob(new Uint8Array(3_000_000)), FullError);
  assert.equal(cache.stats().total_entries, 0);
  cache.close();
  // A setting passed in code overrides the file's for this cache only.
  cache = openCache(root, { config: { max_bytes: 8 << 20 } });
  assert.equal(cache.config.max_bytes, 8 << 20);
  assert.equal(cache.config.tag_ttl_ms, 7, 'the file\'s other settings stay');
  cache.close();
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(root, 'config.json'), 'utf8')), { max_bytes: 1 << 20, tag_ttl_ms: 7 });
  for (const [text, why] of [
    ['{"max_byte": 1}', /config\.json: unknown field `max_byte`/],
    ['{"max_bytes": -1}', /config\.json: invalid value/],
    ['{"max_bytes": 0}', /max_bytes must be positive/],
    ['not json', /config\.json: expected/],
    [' '.repeat((1 << 20) + 1), /config\.json is larger than 1048576 bytes/],
  ]) {
    fs.writeFileSync(path.join(root, 'config.json'), text);
    assert.throws(() => openCache(root), (e) => e instanceof InvalidConfigError && why.test(e.message), text.slice(0, 20));
  }
  // The pull's keys (platform, auth_file, registries) share the file; the cache's reader skips them.
  fs.writeFileSync(path.join(root, 'config.json'), JSON.stringify({
    max_bytes: 1 << 20, platform: 'linux/arm64', auth_file: '/x.json', registries: { 'docker.io': { mirrors: ['https://m.example'] } },
  }));
  cache = openCache(root);
  assert.equal(cache.config.max_bytes, 1 << 20);
  cache.close();
  // The code's settings can repair a bad file's for this process, as the CLI's --max-bytes can.
  fs.writeFileSync(path.join(root, 'config.json'), '{"max_bytes": 0}');
  openCache(root, { config: { max_bytes: 1 << 20 } }).close();
});
