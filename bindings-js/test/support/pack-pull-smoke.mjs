// The npm pack smoke test's pull half (scripts/test.sh): runs APP_DIR/pull.mjs (the README's
// pull example, as printed, importing the packed package) twice against a docker-registry
// started here, and checks what it printed: a cold pull that fetched every blob, then a warm
// one with no request. Exits non-zero on any difference.
//   node test/support/pack-pull-smoke.mjs APP_DIR
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Peers, peersSkip } from './registry-peers.mjs';

const app = process.argv[2];
if (peersSkip) {
  // registry-peers.mjs already threw in CI.
  console.log(`# SKIP the README's pull example: ${peersSkip}`);
  process.exit(0);
}
const peers = new Peers();
try {
  const registry = await peers.registry();
  const built = await registry.push('smoke/tool:1.0', { seed: 5, layers: [40_000, 3_000] });
  const ref = registry.reference('smoke/tool:1.0');
  const blobs = [built.images[0].config, ...built.images[0].layers];
  const run = () => execFileSync('node', ['pull.mjs', ref], { cwd: app, encoding: 'utf8' });

  const cold = run();
  console.log(cold.trimEnd());
  assert.match(cold, new RegExp(`^fetched ${built.digest} \\d+ requests$`, 'm'));
  for (const b of blobs) assert.match(cold, new RegExp(`^${b.digest} ${b.size} fetched$`, 'm'));

  await registry.clearRequests();
  const warm = run();
  console.log(warm.trimEnd());
  assert.match(warm, new RegExp(`^fresh ${built.digest} 0 requests$`, 'm'));
  for (const b of blobs) assert.match(warm, new RegExp(`^${b.digest} ${b.size} from cache$`, 'm'));
  assert.deepEqual(await registry.requests(), []);
  console.log('README pull example: ok');
} finally {
  await peers.close();
}
