// A registry for the pull tests, served on 127.0.0.1 with node:http: one image (a manifest,
// its config, one layer, 300 000 bytes unless asked otherwise) as `app:1.0`, answering `Range`
// with 206. `image()` and `sha256` serve every pull test (the browser's CORS registry too).
import http from 'node:http';
import { createHash } from 'node:crypto';
import { once } from 'node:events';

export const sha256 = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** One image: a config and one layer of `layerBytes` patterned bytes, with their digests. */
export function image(layerBytes = 300_000) {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layer = Buffer.alloc(layerBytes);
  for (let i = 0; i < layer.length; i++) layer[i] = (i * 7 + (i >> 9)) & 0xff;
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
  }));
  return { manifest, config, layer, digests: { manifest: sha256(manifest), config: sha256(config), layer: sha256(layer) } };
}

/**
 * The registry's state and request handler for `img` (`app:1.0`), to mount on any server:
 * `handle(req, res)` answers `/v2/app/…` and returns true, or returns false for other paths.
 * `requests` lists what it was asked (method, path, range). `stallLayer(n)`: the next layer
 * response sends its first `n` bytes, then hangs until the server closes its connections.
 */
export function registryState(img) {
  const blobs = new Map([[img.digests.config, img.config], [img.digests.layer, img.layer]]);
  const state = { requests: [], stall: null };
  state.stallLayer = (n) => {
    state.stall = n;
  };
  state.layerRequests = () => state.requests.filter((r) => r.path.endsWith(img.digests.layer));
  state.handle = (req, res) => {
    if (!req.url.startsWith('/v2/')) return false;
    state.requests.push({ method: req.method, path: req.url, range: req.headers.range ?? null });
    if (req.url === '/v2/app/manifests/1.0' || req.url === `/v2/app/manifests/${img.digests.manifest}`) {
      res.writeHead(200, {
        'Content-Type': 'application/vnd.oci.image.manifest.v1+json',
        'Docker-Content-Digest': img.digests.manifest,
        'Content-Length': img.manifest.length,
      });
      res.end(req.method === 'HEAD' ? undefined : img.manifest);
      return true;
    }
    const m = /^\/v2\/app\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url);
    const blob = m && blobs.get(m[1]);
    if (!blob) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end('{"errors":[{"code":"BLOB_UNKNOWN"}]}');
      return true;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    const body = blob.subarray(start);
    res.writeHead(range ? 206 : 200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': body.length,
      ...(range ? { 'Content-Range': `bytes ${start}-${blob.length - 1}/${blob.length}` } : {}),
    });
    if (m[1] === img.digests.layer && state.stall !== null) {
      const n = state.stall;
      state.stall = null;
      res.write(body.subarray(0, n)); // and nothing more: the download hangs
      return true;
    }
    res.end(body);
    return true;
  };
  return state;
}

/** `registryState(img)` on its own server on 127.0.0.1: `reference`, `port`, `close()`. */
export async function registry(img) {
  const state = registryState(img);
  const server = http.createServer((req, res) => {
    if (!state.handle(req, res)) res.writeHead(404).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.port = server.address().port;
  state.reference = `127.0.0.1:${state.port}/app:1.0`;
  state.close = () => {
    server.closeAllConnections();
    server.close();
  };
  return state;
}
