// Against a real registry (Debian's docker-registry through the harness's registry-peers, see
// test/support/registry-peers.mjs): a Node pull aborted through its AbortSignal in the middle
// of a layer keeps what arrived, and the next pull — by Node after the directory was opened
// again, or by the `ocicache` CLI — asks for the rest with Range; every byte verifies.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { openCache } from '../src/node.js';
import { Peers, peersSkip, CLI_BIN } from './support/registry-peers.mjs';

const skip = peersSkip;
if (skip) console.log(`# SKIP registry partials: ${skip}`);
const cliSkip = skip || (fs.existsSync(CLI_BIN) ? false : `the ocicache CLI is not built (${CLI_BIN})`);
if (cliSkip && !skip && process.env.CI) throw new Error(`registry partials cannot run in CI: ${cliSkip}`);

const sha256 = (bytes) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const partialFile = (dir, digest) => path.join(dir, 'partials', 'sha256', digest.slice('sha256:'.length));

let peers;
before(async () => {
  if (!skip) peers = new Peers();
});
after(async () => {
  await peers?.close();
});

/**
 * Pulls `ref` into the cache at `dir` and aborts as soon as bytes of `layer` arrived; returns
 * how many bytes of it the directory then keeps.
 */
async function abortMidLayer(dir, ref, layer) {
  const cache = openCache(dir);
  try {
    const controller = new AbortController();
    const onProgress = (e) => {
      if (e.type === 'bytes' && e.digest === layer.digest) controller.abort();
    };
    await assert.rejects(cache.pull(ref, { signal: controller.signal, onProgress }), (e) => e.name === 'AbortError');
    assert.equal(cache.hasBlob(layer.digest), false);
  } finally {
    cache.close();
  }
  const kept = fs.statSync(partialFile(dir, layer.digest)).size;
  assert.ok(kept > 0 && kept < layer.size, `kept ${kept} of ${layer.size} bytes`);
  return kept;
}

test('a Node pull aborted mid-layer is continued with Range, by Node and by the CLI', { skip: cliSkip, timeout: 180_000 }, async () => {
  const registry = await peers.registry();
  const built = await registry.push('team/abort:1.0', { seed: 21, layers: [4_000_000] });
  const layer = built.images[0].layers[0];
  const ref = registry.reference('team/abort:1.0');
  const layerGets = async () => (await registry.requests())
    .filter((r) => r.method === 'GET' && r.path.endsWith(layer.digest))
    .map((r) => r.range);

  // Node continues what Node kept, in a cache opened again on the directory.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-abort-node-'));
  try {
    await registry.clearRequests();
    const kept = await abortMidLayer(dir, ref, layer);
    const cache = openCache(dir);
    try {
      const report = await cache.pull(ref);
      assert.equal(report.tag.state, 'fetched');
      assert.equal(report.blobs.find((b) => b.digest === layer.digest).resumed_from, kept);
      assert.deepEqual(await layerGets(), [null, `bytes=${kept}-`]);
      const bytes = cache.getBlob(layer.digest);
      assert.equal(bytes.length, layer.size);
      assert.equal(sha256(bytes), layer.digest);
      assert.equal(cache.checkIntegrity().healthy, true);
    } finally {
      cache.close();
    }
    assert.equal(fs.existsSync(partialFile(dir, layer.digest)), false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  // The CLI continues what Node kept.
  const dir2 = fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-abort-cli-'));
  try {
    await registry.clearRequests();
    const kept = await abortMidLayer(dir2, ref, layer);
    const report = JSON.parse(execFileSync(CLI_BIN, ['--dir', dir2, '--json', 'pull', ref]).toString());
    assert.equal(report.blobs.find((b) => b.digest === layer.digest).resumed_from, kept);
    assert.deepEqual(await layerGets(), [null, `bytes=${kept}-`]);
    assert.equal(JSON.parse(execFileSync(CLI_BIN, ['--dir', dir2, '--json', 'verify']).toString()).healthy, true);
  } finally {
    fs.rmSync(dir2, { recursive: true, force: true });
  }
});
