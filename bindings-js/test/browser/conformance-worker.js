// Plays every conformance scenario inside this dedicated Worker, the cache on OPFS.
import { Cache, initEngine } from '../../src/cache.js';
import { OpfsStorage } from '../../src/opfs-storage.js';
import { ManualClock } from '../../src/clock.js';
import { play } from '../conformance/player.js';

/**
 * The durability levels on OPFS: the level each one reports, and the sync access handles'
 * flush() calls made by five blob puts and tags under it, and the commits and appends they made.
 */
async function flushesPerLevel() {
  const proto = FileSystemSyncAccessHandle.prototype;
  const flush = proto.flush;
  const out = {};
  for (const level of ['strict', 'relaxed']) {
    const dir = `durability-${level}`;
    await OpfsStorage.destroy(dir);
    const storage = await OpfsStorage.open(dir);
    const cache = Cache.open({ storage, clock: new ManualClock(1_700_000_000_000), config: { durability: level } });
    let flushes = 0;
    proto.flush = function () {
      flushes++;
      return flush.call(this);
    };
    // Every committed temp and every append must be flushed under strict: count them.
    let writes = 0;
    for (const method of ['commitTemp', 'append']) {
      const original = storage[method].bind(storage);
      storage[method] = (...args) => {
        writes++;
        return original(...args);
      };
    }
    try {
      for (let i = 0; i < 5; i++) {
        cache.putTag('registry.example/app:1', cache.putBlob(new Uint8Array(1000).fill(i)));
        await storage.settle();
      }
    } finally {
      proto.flush = flush;
    }
    out[level] = { reported: cache.durability, flushes, writes, served: cache.getBlob(cache.getTag('registry.example/app:1').digest)[0] };
    cache.close();
    await storage.close();
    await OpfsStorage.destroy(dir);
  }
  return out;
}

try {
  await initEngine(new URL('../../dist/ocicache_js_bg.wasm', import.meta.url));
  const names = await (await fetch('/scenarios-index.json')).json();
  const failed = [];
  let passed = 0;
  let steps = 0;
  for (const [i, rel] of names.entries()) {
    const scenario = await (await fetch(`/scenarios/${rel}.json`)).json();
    const dir = `conformance-${i}`;
    let storage = null;
    const env = {
      Cache,
      ManualClock,
      newStorage: async () => {
        await OpfsStorage.destroy(dir);
        storage = await OpfsStorage.open(dir);
        return storage;
      },
      settle: (s) => s.settle(),
    };
    try {
      steps += await play(rel, scenario, env);
      passed++;
    } catch (e) {
      failed.push(`${rel}: ${e.message}`);
    } finally {
      await storage?.close();
      await OpfsStorage.destroy(dir);
    }
  }
  self.postMessage({ total: names.length, passed, steps, failed, durability: await flushesPerLevel() });
} catch (e) {
  self.postMessage({ error: String(e?.stack ?? e) });
}
