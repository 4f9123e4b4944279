// The `durability` setting in Node (issue 12): FsStorage fsyncs every put, tag and removal under
// `strict` (the default) and none under `relaxed`; the level round-trips through config.json
// and the `config` option; a storage that cannot relax reports `strict`; compactions stay
// synced at either level.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openCache, Cache, MemoryStorage, InvalidConfigError } from '../src/node.js';

function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-durability-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** fsync and fdatasync calls made by this thread while `f` runs. */
function syncsDuring(f) {
  const orig = { fsyncSync: fs.fsyncSync, fdatasyncSync: fs.fdatasyncSync };
  let n = 0;
  fs.fsyncSync = (fd) => {
    n++;
    return orig.fsyncSync(fd);
  };
  fs.fdatasyncSync = (fd) => {
    n++;
    return orig.fdatasyncSync(fd);
  };
  try {
    f();
  } finally {
    Object.assign(fs, orig);
  }
  return n;
}

/** Five blob puts and tags, and a delete. */
function work(cache) {
  for (let i = 0; i < 5; i++) {
    const digest = cache.putBlob(new Uint8Array(1000).fill(i));
    cache.putTag('registry.example/app:1', digest);
  }
  cache.deleteBlob(cache.putBlob(new Uint8Array(100).fill(9)));
}

test('strict (the default) fsyncs every put, tag and delete; relaxed none', (t) => {
  const cases = [
    [undefined, 'strict'],
    ['strict', 'strict'],
    ['relaxed', 'relaxed'],
  ];
  for (const [setting, level] of cases) {
    const root = tempDir(t);
    if (setting) fs.writeFileSync(path.join(root, 'config.json'), JSON.stringify({ durability: setting }));
    const cache = openCache(root);
    try {
      assert.equal(cache.config.durability, level);
      assert.equal(cache.durability, level);
      const syncs = syncsDuring(() => work(cache));
      // Each put: file, directory, journal; each tag: journal; the delete: directory, journal.
      if (level === 'strict') assert.ok(syncs >= 17, `${setting}: ${syncs} syncs`);
      else assert.equal(syncs, 0, `${setting}`);
    } finally {
      cache.close();
    }
    // What a relaxed cache wrote is there for the next opener (a process crash loses nothing).
    const again = openCache(root);
    try {
      assert.equal(again.getBlob(again.getTag('registry.example/app:1').digest)[0], 4);
    } finally {
      again.close();
    }
  }
});

test('the config option overrides config.json for this cache only', (t) => {
  const root = tempDir(t);
  fs.writeFileSync(path.join(root, 'config.json'), JSON.stringify({ durability: 'relaxed' }));
  const strict = openCache(root, { config: { durability: 'strict' } });
  assert.equal(strict.durability, 'strict');
  assert.ok(syncsDuring(() => work(strict)) > 0);
  strict.close();
  const relaxed = openCache(root);
  assert.equal(relaxed.durability, 'relaxed');
  relaxed.close();
  assert.equal(JSON.parse(fs.readFileSync(path.join(root, 'config.json'), 'utf8')).durability, 'relaxed');
});

test('bad durability settings are invalid_config, changing nothing', (t) => {
  for (const config of [{ durability: 'none' }, { durability: true }, { durability: 'relaxed', verify_reads: false }]) {
    const root = tempDir(t);
    fs.writeFileSync(path.join(root, 'config.json'), JSON.stringify(config));
    assert.throws(() => openCache(root), InvalidConfigError, JSON.stringify(config));
    assert.throws(
      () => Cache.open({ storage: new MemoryStorage(), config }),
      InvalidConfigError,
      JSON.stringify(config),
    );
    assert.deepEqual(fs.readdirSync(root).filter((n) => n !== 'config.json' && n !== 'tmp'), []);
  }
});

test('MemoryStorage honours both levels; a storage without setDurability stays strict', () => {
  const memory = Cache.open({ storage: new MemoryStorage(), config: { durability: 'relaxed' } });
  assert.equal(memory.durability, 'relaxed');
  memory.close();
  // The storage methods the cache calls, and no setDurability.
  const inner = new MemoryStorage();
  const names = ['createTemp', 'writeTemp', 'commitTemp', 'abortTemp', 'append', 'readAt', 'size', 'list', 'remove', 'clearTemps'];
  const plain = Object.fromEntries(names.map((n) => [n, (...args) => inner[n](...args)]));
  const cache = Cache.open({ storage: plain, config: { durability: 'relaxed' } });
  assert.equal(cache.config.durability, 'relaxed');
  assert.equal(cache.durability, 'strict');
  const digest = cache.putBlob(new Uint8Array([1, 2, 3]));
  assert.deepEqual([...cache.getBlob(digest)], [1, 2, 3]);
  cache.close();
  // A storage that answers something else than a level stays strict too.
  const odd = Object.assign(Object.create(null), plain, { setDurability: () => 42 });
  const oddCache = Cache.open({ storage: odd, config: { durability: 'relaxed' } });
  assert.equal(oddCache.durability, 'strict');
  oddCache.close();
});

test('a relaxed cache is asked for strict around each compaction, and its fsyncs happen there', (t) => {
  const root = tempDir(t);
  fs.writeFileSync(path.join(root, 'config.json'), JSON.stringify({ durability: 'relaxed' }));
  const cache = openCache(root);
  const storage = cache.storage;
  const asked = [];
  const set = storage.setDurability.bind(storage);
  storage.setDurability = (level) => {
    asked.push(level);
    return set(level);
  };
  try {
    work(cache);
    assert.deepEqual(asked, [], 'no compaction yet');
    const syncs = syncsDuring(() => cache.cleanup());
    assert.deepEqual(asked, ['strict', 'relaxed']);
    // The new journal, the snapshot and its directory, the old journal's removal.
    assert.ok(syncs >= 3, `${syncs} syncs`);
    assert.equal(syncsDuring(() => work(cache)), 0, 'relaxed again');
  } finally {
    cache.close();
  }
});
