// Plays every conformance scenario inside this dedicated Worker, the cache on OPFS.
import { Cache, initEngine } from '../../src/cache.js';
import { OpfsStorage } from '../../src/opfs-storage.js';
import { ManualClock } from '../../src/clock.js';
import { play } from '../conformance/player.js';

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
  self.postMessage({ total: names.length, passed, steps, failed });
} catch (e) {
  self.postMessage({ error: String(e?.stack ?? e) });
}
