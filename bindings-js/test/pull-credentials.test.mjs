// cache.pull in Node finds credentials where the native host does when none are given: a
// cache's auth_file, Docker's config.json (auths, credsStore, credHelpers through
// docker-credential-<name>), containers' auth.json. Each test writes the files in a fresh HOME
// and checks the Authorization a Basic-auth registry on 127.0.0.1 (node:http) was sent.
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { Cache, MemoryStorage, openCache, InvalidConfigError, UnauthorizedError } from '../src/node.js';
import { Peers, peersSkip } from './support/registry-peers.mjs';

if (peersSkip) console.log(`# SKIP real-registry credential tests: ${peersSkip}`);
let peers;
before(() => {
  if (!peersSkip) peers = new Peers();
});
after(async () => {
  await peers?.close();
});

const sha256 = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const b64 = (s) => Buffer.from(s).toString('base64');
const basic = (user, password) => `Basic ${b64(`${user}:${password}`)}`;

const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
const layer = Buffer.from('a layer of a test image\n'.repeat(100));
const manifest = Buffer.from(JSON.stringify({
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
  layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
}));

/**
 * A registry serving `app:1.0` to requests whose Authorization is `authorization` (HTTP Basic;
 * anything else gets a 401 challenge). `seen` lists each request's Authorization (or null).
 */
async function registry(authorization) {
  const blobs = new Map([[sha256(config), config], [sha256(layer), layer]]);
  const state = { seen: [] };
  const server = http.createServer((req, res) => {
    state.seen.push(req.headers.authorization ?? null);
    if (req.headers.authorization !== authorization) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="test"', 'Content-Type': 'application/json' });
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
      return;
    }
    if (req.url === '/v2/app/manifests/1.0') {
      res.writeHead(200, {
        'Content-Type': 'application/vnd.oci.image.manifest.v1+json',
        'Docker-Content-Digest': sha256(manifest),
        'Content-Length': manifest.length,
      });
      res.end(req.method === 'HEAD' ? undefined : manifest);
      return;
    }
    const blob = blobs.get(/^\/v2\/app\/blobs\/(.*)$/.exec(req.url)?.[1]);
    res.writeHead(blob ? 200 : 404, { 'Content-Length': blob?.length ?? 0 });
    res.end(blob);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.host = `127.0.0.1:${server.address().port}`;
  state.reference = `${state.host}/app:1.0`;
  /** The Authorization values sent, without the unauthenticated first tries. */
  state.sent = () => [...new Set(state.seen.filter((a) => a !== null))];
  state.close = () => {
    server.closeAllConnections();
    server.close();
  };
  return state;
}

// Each test runs in a HOME of its own, with the login-file variables unset and its helper
// directory first in PATH. node --test runs this file in a process of its own.
const saved = { ...process.env };
let home;
beforeEach(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-creds-'));
  for (const v of ['DOCKER_CONFIG', 'REGISTRY_AUTH_FILE', 'XDG_RUNTIME_DIR', 'XDG_CONFIG_HOME']) delete process.env[v];
  process.env.HOME = home;
  process.env.PATH = `${path.join(home, 'bin')}${path.delimiter}${saved.PATH}`;
});
afterEach(() => {
  process.env = { ...saved };
  fs.rmSync(home, { recursive: true, force: true });
});

function write(rel, text) {
  const file = path.join(home, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, typeof text === 'string' ? text : JSON.stringify(text));
  return file;
}
const dockerConfig = (json) => write('.docker/config.json', json);

/**
 * Writes `docker-credential-<name>` in HOME/bin: a shell script that sees the server URL it is
 * asked for in `$url`, and logs each one to HOME/<name>.log.
 */
function helper(name, body) {
  const file = write(`bin/docker-credential-${name}`,
    `#!/bin/sh\n[ "$1" = get ] || exit 9\nIFS= read -r url || true\necho "$url" >> "${home}/${name}.log"\n${body}\n`);
  fs.chmodSync(file, 0o755);
}
const asked = (name) => {
  try {
    return fs.readFileSync(path.join(home, `${name}.log`), 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

/** A helper that knows one host's credentials and says "not found" for any other. */
function knowing(host, user, secret) {
  return `if [ "$url" = "${host}" ]; then echo '{"ServerURL":"${host}","Username":"${user}","Secret":"${secret}"}'; `
    + 'else echo "credentials not found in native keychain"; exit 1; fi';
}

async function pullWith(reg, options = {}, cache = Cache.open({ storage: new MemoryStorage() })) {
  try {
    const report = await cache.pull(reg.reference, options);
    assert.equal(report.digest, sha256(manifest));
    assert.deepEqual(Buffer.from(cache.getBlob(sha256(layer))), layer);
    return report;
  } finally {
    cache.close();
  }
}

test('an auths entry of config.json is sent', { timeout: 60_000 }, async () => {
  const reg = await registry(basic('alice', 'pa:ss'));
  try {
    dockerConfig({ auths: { [reg.host]: { auth: b64('alice:pa:ss') }, 'other.example': { auth: b64('x:y') } } });
    await pullWith(reg);
    assert.deepEqual(reg.sent(), [basic('alice', 'pa:ss')]);

    // `https://host` keys and username/password fields, in a config.json named by DOCKER_CONFIG.
    process.env.DOCKER_CONFIG = path.join(home, 'elsewhere');
    write('elsewhere/config.json', { auths: { [`https://${reg.host}/v2/`]: { username: 'alice', password: 'pa:ss' } } });
    fs.rmSync(path.join(home, '.docker'), { recursive: true });
    reg.seen.length = 0;
    await pullWith(reg);
    assert.deepEqual(reg.sent(), [basic('alice', 'pa:ss')]);
  } finally {
    reg.close();
  }
});

test('credsStore and credHelpers run docker-credential-<name> with the host on stdin', { timeout: 60_000 }, async () => {
  const reg = await registry(basic('store-user', 'store-secret'));
  try {
    helper('store', knowing(reg.host, 'store-user', 'store-secret'));
    dockerConfig({ credsStore: 'store', auths: { [reg.host]: { auth: b64('file:wrong') } } });
    await pullWith(reg);
    assert.deepEqual(reg.sent(), [basic('store-user', 'store-secret')]);
    assert.deepEqual(asked('store'), [reg.host]);

    // credHelpers names the helper for this registry alone, over credsStore.
    helper('special', knowing(reg.host, 'store-user', 'store-secret'));
    helper('broken', 'exit 7');
    dockerConfig({ credsStore: 'broken', credHelpers: { [reg.host]: 'special' } });
    reg.seen.length = 0;
    await pullWith(reg);
    assert.deepEqual(reg.sent(), [basic('store-user', 'store-secret')]);
    assert.deepEqual(asked('special'), [reg.host]);
    assert.deepEqual(asked('broken'), []);

    // A store that has nothing for the host: the auths entry answers.
    helper('empty', 'echo "credentials not found in native keychain"; exit 1');
    dockerConfig({ credsStore: 'empty', auths: { [reg.host]: { auth: b64('store-user:store-secret') } } });
    reg.seen.length = 0;
    await pullWith(reg);
    assert.deepEqual(reg.sent(), [basic('store-user', 'store-secret')]);
    assert.deepEqual(asked('empty'), [reg.host]);
  } finally {
    reg.close();
  }
});

test('containers auth.json answers when config.json has nothing', { timeout: 60_000 }, async () => {
  const reg = await registry(basic('podman', 'pw'));
  try {
    process.env.XDG_RUNTIME_DIR = path.join(home, 'run');
    write('run/containers/auth.json', { auths: { [reg.host]: { auth: b64('podman:pw') } } });
    dockerConfig({ auths: { 'other.example': { auth: b64('x:y') } } });
    await pullWith(reg);
    assert.deepEqual(reg.sent(), [basic('podman', 'pw')]);

    // And ~/.config/containers/auth.json (XDG_CONFIG_HOME's default).
    delete process.env.XDG_RUNTIME_DIR;
    write('.config/containers/auth.json', { auths: { [reg.host]: { auth: b64('podman:pw') } } });
    reg.seen.length = 0;
    await pullWith(reg);
    assert.deepEqual(reg.sent(), [basic('podman', 'pw')]);
  } finally {
    reg.close();
  }
});

test('precedence: the cache\'s auth_file, then config.json, then auth.json', { timeout: 60_000 }, async () => {
  const reg = await registry(basic('first', 'pw'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ocicache-creds-cache-'));
  try {
    process.env.XDG_RUNTIME_DIR = path.join(home, 'run');
    write('run/containers/auth.json', { auths: { [reg.host]: { auth: b64('third:pw') } } });
    dockerConfig({ auths: { [reg.host]: { auth: b64('second:pw') } } });
    const authFile = write('cache-auth.json', { auths: { [reg.host]: { auth: b64('first:pw') } } });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ auth_file: authFile }));
    await pullWith(reg, {}, openCache(dir));
    assert.deepEqual(reg.sent(), [basic('first', 'pw')]);

    // Without the auth_file, config.json wins over auth.json.
    fs.rmSync(path.join(dir, 'config.json'));
    reg.seen.length = 0;
    await assert.rejects(pullWith(reg), UnauthorizedError);
    assert.deepEqual(reg.sent(), [basic('second', 'pw')]);

    // Without config.json's entry, auth.json's is sent.
    dockerConfig({});
    reg.seen.length = 0;
    await assert.rejects(pullWith(reg), UnauthorizedError);
    assert.deepEqual(reg.sent(), [basic('third', 'pw')]);
  } finally {
    reg.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a failing or missing helper is an InvalidConfigError naming it, and nothing is requested', { timeout: 60_000 }, async () => {
  const reg = await registry(basic('u', 'p'));
  try {
    helper('locked', 'echo "the keychain is locked" >&2; exit 3');
    const file = dockerConfig({ credsStore: 'locked' });
    await assert.rejects(pullWith(reg), (e) => {
      assert.ok(e instanceof InvalidConfigError, e);
      for (const part of ['docker-credential-locked', 'credsStore', file, reg.host, 'the keychain is locked', 'exit status: 3']) {
        assert.ok(e.message.includes(part), `${part} missing in ${e.message}`);
      }
      return true;
    });
    assert.deepEqual(reg.seen, []);

    dockerConfig({ credHelpers: { [reg.host]: 'nowhere' } });
    await assert.rejects(pullWith(reg), (e) => e instanceof InvalidConfigError
      && /docker-credential-nowhere \(from credHelpers in .*\) for .*: not installed/.test(e.message));

    helper('garbled', 'echo hello');
    dockerConfig({ credsStore: 'garbled' });
    await assert.rejects(pullWith(reg), (e) => e instanceof InvalidConfigError
      && e.message.includes('answered something other than JSON'));

    // A malformed file names the file, never the secret.
    dockerConfig('{"auths": {"r.example": {"auth": "hunter2!"}}}');
    await assert.rejects(pullWith(reg), (e) => e instanceof InvalidConfigError
      && e.message.includes(file) && e.message.includes('auth is not valid base64') && !e.message.includes('hunter2'));
    assert.deepEqual(reg.seen, []);
  } finally {
    reg.close();
  }
});

test('a hanging helper is killed after the timeout, a flooding one at the output bound', { timeout: 60_000 }, async () => {
  const { lookupCredentials } = await import('../src/credentials.js');
  helper('hang', 'exec sleep 60');
  dockerConfig({ credsStore: 'hang' });
  await assert.rejects(lookupCredentials(['r.example'], { helperTimeoutMs: 200 }), (e) => e instanceof InvalidConfigError
    && e.message.includes('docker-credential-hang') && e.message.includes('did not answer within 200 ms'));
  // One that floods its output is stopped at the bound.
  helper('flood', 'exec yes');
  dockerConfig({ credsStore: 'flood' });
  await assert.rejects(lookupCredentials(['r.example']), (e) => e instanceof InvalidConfigError
    && e.message.includes('docker-credential-flood') && e.message.includes('more than 1048576 bytes'));
});

test('a helper leaving a process that holds its stdout does not hang the lookup', { timeout: 60_000 }, async () => {
  const { lookupCredentials } = await import('../src/credentials.js');
  // The background sleeper keeps stdout open after the helper exits; its pid is kept to stop it.
  helper('lingering', `sleep 30 & echo $! > "${home}/lingering.pid"; echo '{"Username":"u","Secret":"s"}'`);
  dockerConfig({ credsStore: 'lingering' });
  try {
    await assert.rejects(lookupCredentials(['r.example'], { helperTimeoutMs: 300 }), (e) => e instanceof InvalidConfigError
      && e.message.includes('docker-credential-lingering') && e.message.includes('did not close its stdout'));
  } finally {
    process.kill(Number(fs.readFileSync(path.join(home, 'lingering.pid'), 'utf8')), 'SIGKILL');
  }
});

test('given credentials win, and {} means none: the login files are not read', { timeout: 60_000 }, async () => {
  const reg = await registry(basic('given', 'pw'));
  try {
    helper('store', knowing(reg.host, 'store-user', 'store-secret'));
    dockerConfig({ credsStore: 'store', auths: { [reg.host]: { auth: b64('file:pw') } } });
    await pullWith(reg, { credentials: { [reg.host]: { username: 'given', password: 'pw' } } });
    assert.deepEqual(reg.sent(), [basic('given', 'pw')]);
    assert.deepEqual(asked('store'), []);

    dockerConfig('not even JSON');
    reg.seen.length = 0;
    await assert.rejects(pullWith(reg, { credentials: {} }), UnauthorizedError);
    assert.deepEqual(reg.sent(), []);
  } finally {
    reg.close();
  }
});

test('mirrors get their own credentials', { timeout: 60_000 }, async () => {
  const upstream = await registry(basic('upstream', 'pw'));
  const mirror = await registry(basic('mirror', 'pw'));
  try {
    dockerConfig({
      auths: {
        [upstream.host]: { auth: b64('upstream:pw') },
        [`http://${mirror.host}`]: { auth: b64('mirror:pw') },
      },
    });
    await pullWith(upstream, { mirrors: [`http://${mirror.host}`] });
    assert.deepEqual(mirror.sent(), [basic('mirror', 'pw')]);
    assert.deepEqual(upstream.seen, [], 'the mirror served the pull');
  } finally {
    upstream.close();
    mirror.close();
  }
});

test('a real docker-registry with htpasswd: login files, a helper, and a wrong password', { skip: peersSkip, timeout: 180_000 }, async () => {
  const registry = await peers.registry({ auth: { basic: [['alice', 'secret']] } });
  const built = await registry.push('team/private:1.0', { seed: 21, layers: [40_000], credentials: ['alice', 'secret'] });
  const ref = registry.reference('team/private:1.0');
  const pull = async () => {
    const cache = Cache.open({ storage: new MemoryStorage() });
    try {
      const report = await cache.pull(ref);
      assert.equal(report.digest, built.digest);
      assert.deepEqual(Buffer.from(cache.getManifest(built.digest).bytes), built.top);
      for (const layer of built.images[0].layers) assert.equal(cache.getBlob(layer.digest).length, layer.size);
    } finally {
      cache.close();
    }
  };
  const authorized = async () => (await registry.requests()).filter((r) => r.status !== 401);

  // config.json's auths.
  dockerConfig({ auths: { [registry.host]: { auth: b64('alice:secret') } } });
  await registry.clearRequests();
  await pull();
  const sent = await authorized();
  assert.ok(sent.length >= 3 && sent.every((r) => r.auth_scheme === 'Basic'), JSON.stringify(sent));

  // A credential helper named by credHelpers.
  helper('vault', knowing(registry.host, 'alice', 'secret'));
  dockerConfig({ credHelpers: { [registry.host]: 'vault' } });
  await pull();
  assert.deepEqual(asked('vault'), [registry.host]);

  // auth.json with the wrong password: the registry refuses, a typed error naming it.
  fs.rmSync(path.join(home, '.docker'), { recursive: true });
  process.env.XDG_RUNTIME_DIR = path.join(home, 'run');
  write('run/containers/auth.json', { auths: { [registry.host]: { auth: b64('alice:wrong') } } });
  await assert.rejects(pull(), (e) => e instanceof UnauthorizedError && e.message.includes(registry.host));
});
