// What a failed pull says about the registry: a NetworkError has `registry` (host:port),
// `status` (null when no response came) and `registryCode` (the code of the registry's JSON
// error body), its `code` staying 'network'; a 404 is a NotFoundError. Against registries
// served by this test on 127.0.0.1, through the real global fetch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { Cache, MemoryStorage, NetworkError, NotFoundError, OcicacheError } from '../src/node.js';

/** A registry answering every request with `status` and `body`; `requests` counts them. */
async function failing(status, body) {
  const state = { requests: 0 };
  const server = http.createServer((req, res) => {
    state.requests++;
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.host = `127.0.0.1:${server.address().port}`;
  state.close = () => {
    server.closeAllConnections();
    server.close();
  };
  return state;
}

async function pullError(reference, options) {
  const cache = Cache.open({ storage: new MemoryStorage() });
  try {
    await cache.pull(reference, options);
  } catch (e) {
    return e;
  } finally {
    cache.close();
  }
  assert.fail('the pull succeeded');
}

function assertNetwork(e, { registry, status, registryCode }) {
  assert.ok(e instanceof NetworkError, `${e?.name}: ${e?.message}`);
  assert.ok(e instanceof OcicacheError);
  assert.equal(e.code, 'network');
  assert.equal(e.name, 'NetworkError');
  assert.deepEqual({ registry: e.registry, status: e.status, registryCode: e.registryCode }, { registry, status, registryCode });
  assert.deepEqual(
    { registry: e.details.registry, status: e.details.status, registryCode: e.details.registryCode },
    { registry, status, registryCode },
  );
}

test('a 503 with an error body, after the retries: status 503 and the registry code', { timeout: 60_000 }, async () => {
  const reg = await failing(503, '{"errors":[{"code":"UNAVAILABLE","message":"down for maintenance"}]}');
  try {
    const e = await pullError(`${reg.host}/app:1.0`);
    assertNetwork(e, { registry: reg.host, status: 503, registryCode: 'UNAVAILABLE' });
    assert.match(e.details.message, /down for maintenance/);
    assert.equal(reg.requests, 4, 'retried (4 attempts), then given up');
  } finally {
    reg.close();
  }
});

test('another 4xx is not retried: its status and the first code of the body', { timeout: 60_000 }, async () => {
  const reg = await failing(400, '{"errors":[{"message":"without a code"},{"code":"NAME_INVALID","message":"invalid repository name"}]}');
  try {
    const e = await pullError(`${reg.host}/app:1.0`);
    assertNetwork(e, { registry: reg.host, status: 400, registryCode: 'NAME_INVALID' });
    assert.match(e.message, /invalid repository name/);
    assert.equal(reg.requests, 1);
  } finally {
    reg.close();
  }
});

test('a body that is not a registry error: the status, and no registry code', { timeout: 60_000 }, async () => {
  const reg = await failing(405, '<html>method not allowed</html>');
  try {
    assertNetwork(await pullError(`${reg.host}/app:1.0`), { registry: reg.host, status: 405, registryCode: null });
  } finally {
    reg.close();
  }
});

test('a 404 with MANIFEST_UNKNOWN is a NotFoundError naming the registry code', { timeout: 60_000 }, async () => {
  const reg = await failing(404, '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}');
  try {
    const e = await pullError(`${reg.host}/app:1.0`);
    assert.ok(e instanceof NotFoundError, `${e?.name}: ${e?.message}`);
    assert.equal(e.code, 'not_found');
    assert.match(e.message, new RegExp(`${reg.host} answered 404: MANIFEST_UNKNOWN: manifest unknown`));
  } finally {
    reg.close();
  }
});

test('a refused connection: the registry, no status, no code', { timeout: 60_000 }, async () => {
  // A port that was just listening and is closed now: nothing answers there.
  const server = http.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const host = `127.0.0.1:${server.address().port}`;
  server.close();
  await once(server, 'close');
  const e = await pullError(`${host}/app:1.0`);
  assertNetwork(e, { registry: host, status: null, registryCode: null });
  assert.match(e.message, /connection/);
});

test('offline with nothing cached: the registry, no status, no code', async () => {
  assertNetwork(await pullError('127.0.0.1:9/app:1.0', { offline: true }), { registry: '127.0.0.1:9', status: null, registryCode: null });
});

test('the properties follow the details an error is built from (as the browser entry rebuilds it)', () => {
  const e = new NetworkError('network: r: m (HTTP 429)', {
    details: { registry: 'r.example', status: 429, message: 'TOOMANYREQUESTS: slow down', registryCode: 'TOOMANYREQUESTS' },
  });
  assert.deepEqual([e.code, e.registry, e.status, e.registryCode], ['network', 'r.example', 429, 'TOOMANYREQUESTS']);
  const bare = new NetworkError('no details');
  assert.deepEqual([bare.registry, bare.status, bare.registryCode], [null, null, null]);
});
