// cache.export and cache.import in Node: OCI image layouts read by the real skopeo and umoci,
// exchanged with the native `ocicache export` / `import`, refused when a blob is corrupted,
// added to when they exist. The CLI comes from $OCICACHE_BIN or
// $CARGO_TARGET_DIR/debug/ocicache (target/ when unset); skopeo, umoci and tar are the Debian
// packages. Without one of them the tests that need it skip and say why (never in CI).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Cache, MemoryStorage, ManualClock, openCache, DigestMismatchError, NotFoundError, InvalidArgumentError } from '../src/node.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.OCICACHE_BIN
  || path.join(path.resolve(REPO, process.env.CARGO_TARGET_DIR || 'target'), 'debug/ocicache');
const onPath = (tool) => {
  try {
    execFileSync(tool, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const missing = (what, present) => {
  if (present) return false;
  const why = `${what} is not installed`;
  if (process.env.CI) throw new Error(`image layout tests cannot run in CI: ${why}`);
  console.log(`# SKIP: ${why}`);
  return why;
};
const noTools = missing('skopeo or umoci', onPath('skopeo') && onPath('umoci'));
const noCli = missing(`the ocicache CLI (${BIN})`, fs.existsSync(BIN));

const sha256 = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const tmp = (name) => fs.mkdtempSync(path.join(os.tmpdir(), `ocicache-layout-${name}-`));
const cli = (dir, ...args) => execFileSync(BIN, ['--dir', dir, ...args], { maxBuffer: 64 << 20 });
const cliJson = (dir, ...args) => JSON.parse(cli(dir, '--json', ...args).toString());
const skopeo = (...args) => execFileSync('skopeo', ['--insecure-policy', ...args], { maxBuffer: 64 << 20 });
const blobFile = (root, digest) => path.join(root, 'blobs', ...digest.split(':'));
const indexJson = (dir) => JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8'));

/** A tar (by the `tar` command) holding hello.txt with `text`. */
function tarOf(text) {
  const src = tmp('tar');
  try {
    fs.writeFileSync(path.join(src, 'hello.txt'), text);
    execFileSync('tar', ['-C', src, '-cf', path.join(src, 'layer.tar'), 'hello.txt']);
    return fs.readFileSync(path.join(src, 'layer.tar'));
  } finally {
    fs.rmSync(src, { recursive: true, force: true });
  }
}

/** A real image put in `cache`: one tar layer holding hello.txt, its config, its manifest. */
function putImage(cache, text, arch = 'amd64') {
  const layerBytes = tarOf(text);
  const layer = cache.putBlob(layerBytes);
  const configBytes = Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: [layer] }, config: {} }));
  const config = cache.putBlob(configBytes);
  const manifestBytes = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: configBytes.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer, size: layerBytes.length }],
  }));
  const manifest = sha256(manifestBytes);
  cache.putManifest(manifest, manifestBytes);
  return { manifest, manifestBytes, layer, layerBytes, config, configBytes };
}

test('a Node export is read by skopeo, unpacked by umoci, with blobs hard-linked', { skip: noTools, timeout: 120_000 }, async () => {
  const root = tmp('export');
  const cache = openCache(path.join(root, 'cache'));
  try {
    const image = putImage(cache, 'hello from the layer\n');
    cache.putTag('localhost:5000/demo/app:v1', image.manifest);
    const layout = path.join(root, 'layout');
    const report = await cache.export('localhost:5000/demo/app:v1', layout);
    assert.equal(report.digest, image.manifest);
    assert.equal(report.media_type, OCI_MANIFEST);
    assert.equal(report.tag, 'v1');
    assert.equal(report.tag_stale, false);
    assert.deepEqual([report.manifests, report.blobs, report.bytes], [1, 2, image.layerBytes.length + image.configBytes.length]);
    assert.deepEqual([report.linked, report.copied, report.already_present], [2, 0, 0]);

    // skopeo finds the image by its tag and gives back the exact manifest bytes.
    assert.deepEqual(skopeo('inspect', '--raw', `oci:${layout}:v1`), image.manifestBytes);
    const entry = indexJson(layout).manifests[0];
    assert.equal(entry.digest, image.manifest);
    assert.equal(entry.annotations['org.opencontainers.image.ref.name'], 'v1');
    assert.equal(entry.annotations['io.containerd.image.name'], 'localhost:5000/demo/app:v1');
    assert.equal(fs.readFileSync(path.join(layout, 'oci-layout'), 'utf8'), '{"imageLayoutVersion":"1.0.0"}');

    // umoci unpacks the tar layer.
    const bundle = path.join(root, 'bundle');
    execFileSync('umoci', ['unpack', '--image', `${layout}:v1`, bundle], { stdio: 'pipe' });
    assert.equal(fs.readFileSync(path.join(bundle, 'rootfs/hello.txt'), 'utf8'), 'hello from the layer\n');

    // Same filesystem: the layout's blobs are the cache's files; no temp is left behind.
    for (const d of [image.layer, image.config]) {
      const [a, b] = [fs.statSync(blobFile(layout, d)), fs.statSync(blobFile(path.join(root, 'cache'), d))];
      assert.deepEqual([a.dev, a.ino], [b.dev, b.ino]);
    }
    assert.deepEqual(fs.readdirSync(path.join(layout, 'blobs/sha256')).filter((n) => n.startsWith('.')), []);
  } finally {
    cache.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('a cached blob gone bad is never exported', { timeout: 60_000 }, async () => {
  const root = tmp('bad');
  const cache = openCache(path.join(root, 'cache'));
  try {
    const image = putImage(cache, 'will rot\n');
    cache.putTag('example.com/app:v1', image.manifest);
    const file = blobFile(path.join(root, 'cache'), image.layer);
    const bytes = fs.readFileSync(file);
    bytes[10] ^= 1;
    fs.writeFileSync(file, bytes);
    const layout = path.join(root, 'layout');
    await assert.rejects(cache.export('example.com/app:v1', layout), (e) => e.code === 'corrupted');
    // Neither linked nor copied: nothing under the layer's name, no temp left.
    const dir = path.join(layout, 'blobs/sha256');
    assert.equal(fs.existsSync(blobFile(layout, image.layer)), false);
    assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('.')), []);
    assert.equal(fs.existsSync(path.join(layout, 'index.json')), false);
  } finally {
    cache.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('a cache without a directory exports by copying, verified', { skip: noTools, timeout: 60_000 }, async () => {
  const root = tmp('copy');
  const cache = Cache.open({ storage: new MemoryStorage() });
  try {
    const image = putImage(cache, 'copied\n');
    const report = await cache.export(`example.com/app@${image.manifest}`, root);
    assert.equal(report.tag, null);
    assert.deepEqual([report.linked, report.copied], [0, 2]);
    assert.deepEqual(fs.readFileSync(blobFile(root, image.layer)), image.layerBytes);
    assert.equal(indexJson(root).manifests[0].annotations['io.containerd.image.name'], `example.com/app@${image.manifest}`);
    // The layout's only image, untagged.
    assert.deepEqual(skopeo('inspect', '--raw', `oci:${root}`), image.manifestBytes);
  } finally {
    cache.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('exporting into an existing layout adds to it; a moved tag replaces its entry', { skip: noTools, timeout: 60_000 }, async () => {
  const root = tmp('add');
  const cache = Cache.open({ storage: new MemoryStorage() });
  try {
    const one = putImage(cache, 'one\n');
    const two = putImage(cache, 'two\n', 'arm64');
    cache.putTag('example.com/app:1', one.manifest);
    cache.putTag('example.com/app:2', two.manifest);
    await cache.export('example.com/app:1', root);
    const second = await cache.export('example.com/app:2', root);
    assert.deepEqual(second.replaced, []);
    assert.deepEqual(indexJson(root).manifests.map((m) => m.annotations['org.opencontainers.image.ref.name']), ['1', '2']);
    assert.deepEqual(skopeo('inspect', '--raw', `oci:${root}:1`), one.manifestBytes);
    assert.deepEqual(skopeo('inspect', '--raw', `oci:${root}:2`), two.manifestBytes);

    // Tag 1 moves to image two: its entry is replaced, the files stay.
    cache.putTag('example.com/app:1', two.manifest);
    const moved = await cache.export('example.com/app:1', root);
    assert.deepEqual(moved.replaced, [one.manifest]);
    assert.equal(moved.already_present, 2);
    const entries = indexJson(root).manifests;
    assert.deepEqual(entries.map((m) => [m.annotations['org.opencontainers.image.ref.name'], m.digest]), [['2', two.manifest], ['1', two.manifest]]);
    assert.ok(fs.existsSync(blobFile(root, one.layer)));

    // A file already in the layout with other bytes is an error naming it, and stays.
    const damaged = blobFile(root, two.config);
    fs.writeFileSync(damaged, 'not the config');
    await assert.rejects(cache.export('example.com/app:2', root), (e) => e instanceof DigestMismatchError
      && e.message.includes(damaged) && e.details.expected === two.config);
    assert.equal(fs.readFileSync(damaged, 'utf8'), 'not the config');

    // A directory that is not an image layout is refused and left unchanged.
    const other = tmp('other');
    fs.writeFileSync(path.join(other, 'notes.txt'), 'mine');
    await assert.rejects(cache.export('example.com/app:1', other), InvalidArgumentError);
    assert.deepEqual(fs.readdirSync(other), ['notes.txt']);
    fs.rmSync(other, { recursive: true });
    // What the cache does not hold is NotFound, and creates nothing.
    const nowhere = path.join(root, 'nowhere');
    await assert.rejects(cache.export('example.com/app:404', nowhere), NotFoundError);
    assert.equal(fs.existsSync(nowhere), false);
  } finally {
    cache.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('a stale tag is exported as cached, without asking anyone', { timeout: 60_000 }, async () => {
  const root = tmp('stale');
  const clock = new ManualClock(1_000_000);
  const cache = Cache.open({ storage: new MemoryStorage(), clock, config: { tag_ttl_ms: 1000 } });
  try {
    const image = putImage(cache, 'stale\n');
    cache.putTag('example.com/app:old', image.manifest);
    clock.advance(5000);
    assert.equal(cache.resolveTag('example.com/app:old').state, 'stale');
    const report = await cache.export('example.com/app:old', root);
    assert.equal(report.tag_stale, true);
    assert.equal(report.digest, image.manifest);
    assert.equal(indexJson(root).manifests[0].digest, image.manifest);
  } finally {
    cache.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('a corrupted blob in a layout is refused on import with nothing stored', { timeout: 60_000 }, async () => {
  const root = tmp('corrupt');
  const source = Cache.open({ storage: new MemoryStorage() });
  const cache = Cache.open({ storage: new MemoryStorage() });
  try {
    const image = putImage(source, 'to be damaged\n');
    source.putTag('example.com/app:v1', image.manifest);
    await source.export('example.com/app:v1', root);
    const file = blobFile(root, image.layer);
    const bytes = fs.readFileSync(file);
    bytes[100] ^= 1;
    fs.writeFileSync(file, bytes);

    await assert.rejects(cache.import(root), (e) => {
      assert.ok(e instanceof DigestMismatchError, e);
      assert.equal(e.details.expected, image.layer);
      return true;
    });
    assert.deepEqual(cache.contents(), []);
    assert.deepEqual(cache.tags(), []);

    // Whole again, it imports: every entry and the tag under its containerd name.
    bytes[100] ^= 1;
    fs.writeFileSync(file, bytes);
    const report = await cache.import(root);
    assert.deepEqual(report.images, [{ digest: image.manifest, media_type: OCI_MANIFEST, tag: 'example.com/app:v1' }]);
    assert.deepEqual([report.blobs_stored, report.manifests_stored, report.bytes_stored], [2, 1, image.layerBytes.length + image.configBytes.length]);
    assert.deepEqual(Buffer.from(cache.getBlob(image.layer)), image.layerBytes);
    assert.equal(cache.getTag('example.com/app:v1').digest, image.manifest);
    const again = await cache.import(root, { tag: 'v1', repository: 'ghcr.io/org/other' });
    assert.deepEqual([again.blobs_present, again.manifests_present, again.blobs_stored], [2, 1, 0]);
    assert.equal(again.images[0].tag, 'ghcr.io/org/other:v1');

    // A symbolic link in the layout is never followed.
    fs.rmSync(file);
    fs.symlinkSync(path.join(root, 'index.json'), file);
    const fresh = Cache.open({ storage: new MemoryStorage() });
    await assert.rejects(fresh.import(root), InvalidArgumentError);
    assert.deepEqual(fresh.contents(), []);
    fresh.close();
  } finally {
    source.close();
    cache.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('Node exports, the CLI imports; the CLI exports, Node imports', { skip: noCli || noTools, timeout: 120_000 }, async () => {
  const root = tmp('interop');
  try {
    // Node → CLI.
    const node = openCache(path.join(root, 'node'));
    const image = putImage(node, 'from node\n');
    node.putTag('example.com/team/app:1.0', image.manifest);
    await node.export('example.com/team/app:1.0', path.join(root, 'from-node'));
    node.close();
    const imported = cliJson(path.join(root, 'cli'), 'import', path.join(root, 'from-node'));
    assert.equal(imported.images[0].digest, image.manifest);
    assert.equal(imported.images[0].tag, 'example.com/team/app:1.0');
    assert.equal(cliJson(path.join(root, 'cli'), 'verify').healthy, true);
    assert.deepEqual(cli(path.join(root, 'cli'), 'blob', 'get', image.layer), image.layerBytes);

    // CLI → Node: the CLI's export of what it imported, into a fresh Node cache.
    const exported = cliJson(path.join(root, 'cli'), 'export', 'example.com/team/app:1.0', path.join(root, 'from-cli'));
    assert.equal(exported.digest, image.manifest);
    const cache = openCache(path.join(root, 'node2'));
    try {
      const report = await cache.import(path.join(root, 'from-cli'));
      assert.deepEqual(report.images, [{ digest: image.manifest, media_type: OCI_MANIFEST, tag: 'example.com/team/app:1.0' }]);
      assert.deepEqual(Buffer.from(cache.getManifest(image.manifest).bytes), image.manifestBytes);
      assert.deepEqual(Buffer.from(cache.getBlob(image.layer)), image.layerBytes);
      assert.equal(cache.checkIntegrity().healthy, true);
    } finally {
      cache.close();
    }
    // And skopeo's own layout (no containerd name): the repository must be given.
    skopeo('copy', `oci:${path.join(root, 'from-cli')}:1.0`, `oci:${path.join(root, 'skopeo')}:latest`);
    const third = Cache.open({ storage: new MemoryStorage() });
    try {
      await assert.rejects(third.import(path.join(root, 'skopeo')), (e) => e instanceof InvalidArgumentError && e.message.includes('--name'));
      const r = await third.import(path.join(root, 'skopeo'), { repository: 'localhost:5000/copy' });
      assert.equal(r.images[0].tag, 'localhost:5000/copy:latest');
      assert.equal(third.resolveTag('localhost:5000/copy:latest').digest, r.images[0].digest);
    } finally {
      third.close();
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
