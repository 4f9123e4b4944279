// A cache directory written by the Node host opens with the native `ocicache` CLI with every
// entry intact and `verify` healthy, and one written by the CLI opens in Node the same way.
// The CLI comes from $OCICACHE_BIN or $CARGO_TARGET_DIR/debug/ocicache (target/ when unset, a
// relative one taken from the repo root as cargo does; built from host-native/); without
// it the test skips and says why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { openCache } from '../src/node.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.OCICACHE_BIN
  || path.join(path.resolve(REPO, process.env.CARGO_TARGET_DIR || 'target'), 'debug/ocicache');
const skip = fs.existsSync(BIN) ? false : `the ocicache CLI is not built (${BIN}); set OCICACHE_BIN or build host-native`;
if (skip) console.log(`# SKIP CLI interop: ${skip}`);
// In CI nothing may skip: a missing prerequisite is a failure there.
if (skip && process.env.CI) throw new Error(`CLI interop cannot run in CI: ${skip}`);

const cli = (dir, ...args) => execFileSync(BIN, ['--dir', dir, ...args], { maxBuffer: 64 << 20 });
const cliJson = (dir, ...args) => JSON.parse(cli(dir, '--json', ...args).toString());
const enc = new TextEncoder();

const LAYER = 'sha256:' + 'f'.repeat(64);
function manifestFor(layers) {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: layers[0], size: 2 },
    layers: layers.slice(1).map((d) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: d, size: 1 })),
  });
}

test('Node writes, the CLI reads: entries intact, verify healthy', { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-node2cli-'));
  try {
    const cache = openCache(dir);
    const small = cache.putBlob('{}');
    const big = new Uint8Array(5 << 20).map((_, i) => (i * 7) % 256);
    const bigDigest = await cache.putBlobStream([big.subarray(0, 1 << 20), big.subarray(1 << 20)]);
    const m = manifestFor([small, bigDigest, LAYER]);
    const { createHash } = await import('node:crypto');
    const md = 'sha256:' + createHash('sha256').update(m).digest('hex');
    cache.putManifest(md, m);
    cache.putTag('example.com/app:1', md);
    const contents = cache.contents().map((e) => [e.kind, e.digest, e.size]);
    cache.close();

    const verify = cliJson(dir, 'verify');
    assert.equal(verify.healthy, true);
    assert.equal(verify.checked, 3);
    const ls = cliJson(dir, 'ls');
    assert.deepEqual(ls.contents.map((e) => [e.kind, e.digest, e.size]), contents);
    assert.deepEqual(Buffer.compare(cli(dir, 'blob', 'get', bigDigest), Buffer.from(big)), 0);
    assert.equal(cli(dir, 'manifest', 'get', md).toString(), m);
    assert.match(cli(dir, 'tag', 'get', 'example.com/app:1').toString(), new RegExp(md));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the CLI writes, Node reads: entries intact, integrity healthy', { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-cli2node-'));
  try {
    const file = path.join(dir, '..', `${path.basename(dir)}-blob`);
    const data = new Uint8Array(3 << 20).map((_, i) => (i * 13) % 256);
    fs.writeFileSync(file, data);
    const digest = cli(dir, 'blob', 'put', file).toString().trim().split(/\s+/).pop();
    fs.rmSync(file);
    assert.match(digest, /^sha256:[0-9a-f]{64}$/);
    cli(dir, 'tag', 'set', 'example.com/tool:2', digest);
    const listed = cliJson(dir, 'ls').contents.map((e) => [e.kind, e.digest, e.size]);

    const cache = openCache(dir);
    try {
      assert.deepEqual(cache.contents().map((e) => [e.kind, e.digest, e.size]), listed);
      assert.equal(cache.checkIntegrity().healthy, true);
      assert.deepEqual(cache.getBlob(digest), data);
      assert.deepEqual(cache.resolveTag('example.com/tool:2'), { state: 'fresh', digest });
      assert.equal(cache.putBlob(enc.encode('from node')).startsWith('sha256:'), true);
    } finally {
      cache.close();
    }
    assert.equal(cliJson(dir, 'verify').healthy, true, 'and back again');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("Node's node.lock is invisible to the CLI: verify healthy, repair leaves it; Node takes a stale one over", { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-nodelock-cli-'));
  try {
    const cache = openCache(dir);
    const digest = cache.putBlob('node wrote this');
    cache.close();
    // As a Node process killed while it had the directory open leaves it.
    const dead = Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).toString());
    fs.writeFileSync(path.join(dir, 'node.lock'), JSON.stringify({ pid: dead, hostname: os.hostname(), started: 0, since: 'then', token: 't' }));
    assert.equal(cliJson(dir, 'verify').healthy, true);
    cli(dir, 'repair');
    assert.ok(fs.existsSync(path.join(dir, 'node.lock')), 'the CLI leaves node.lock alone');
    assert.equal(Buffer.from(cli(dir, 'blob', 'get', digest)).toString(), 'node wrote this');
    const again = openCache(dir);
    try {
      assert.equal(again.hasBlob(digest), true);
    } finally {
      again.close();
    }
    assert.equal(fs.existsSync(path.join(dir, 'node.lock')), false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the CLI stays out of a directory a live Node cache has open, and comes back after close', { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-nodelock-live-'));
  try {
    const cache = openCache(dir);
    const digest = cache.putBlob('held by node');
    const before = fs.readdirSync(path.join(dir, 'index')).sort();
    let failure;
    try {
      cli(dir, 'blob', 'put', '-');
    } catch (e) {
      failure = e;
    }
    assert.ok(failure, 'the CLI must refuse while Node holds the directory');
    assert.equal(failure.status, 6, 'storage error exit code');
    assert.match(failure.stderr.toString(), /^ocicache: storage: .*Node process/);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'index')).sort(), before, 'nothing changed');
    cache.close();
    assert.equal(Buffer.from(cli(dir, 'blob', 'get', digest)).toString(), 'held by node');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
