// A registry for the browser's pull tests, served by node:http on 127.0.0.1 with the CORS
// headers the README gives for docker-registry (another port is another origin than the page's).
// One image, `app:1.0`: a config and a layer; the repository `broken` answers 400 NAME_INVALID.
// Options:
//   cors: false             no CORS headers at all (what most registries send)
//   expose: [...]           the Access-Control-Expose-Headers list (default: the README's)
//   bearer: true            token auth: a 401 challenge, tokens from /token on this server
//   redirectBlobs: true     blobs answer 307 to a second server (another origin, a "CDN")
// `requests` and `cdn.requests` log what was asked (method, path, authorization, range,
// origin, cookie); `nextStall(n)` makes the next layer response send n bytes (default half) and hang,
// and resolves `stalled` then, and `closed` when the client goes away; `cut()` then breaks
// that connection.
import http from 'node:http';
import { image as fixtureImage } from '../registry-fixture.mjs';
import { once } from 'node:events';

/** The headers the README says a registry must expose to a browser for pulls. */
export const EXPOSE = ['Docker-Content-Digest', 'WWW-Authenticate', 'Content-Range', 'Retry-After'];

/** The image it serves: a 3 MiB layer unless asked otherwise. */
export function image(layerBytes = 3 << 20) {
  return fixtureImage(layerBytes);
}

function corsHeaders(expose) {
  return {
    'Access-Control-Allow-Origin': '*',
    'Access-Control-Allow-Methods': 'HEAD, GET, OPTIONS',
    'Access-Control-Allow-Headers': 'Authorization, Accept, Range',
    'Access-Control-Expose-Headers': expose.join(', '),
  };
}

async function listen(handler) {
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

export async function corsRegistry(img, { cors = true, expose = EXPOSE, bearer = false, redirectBlobs = false } = {}) {
  const blobs = new Map([[img.digests.config, img.config], [img.digests.layer, img.layer]]);
  const cross = cors ? corsHeaders(expose) : {};
  const log = (list, req) => list.push({
    method: req.method,
    path: req.url,
    authorization: req.headers.authorization ?? null,
    range: req.headers.range ?? null,
    origin: req.headers.origin ?? null,
    cookie: req.headers.cookie ?? null,
  });
  const state = { requests: [], cdn: { requests: [] }, stallLayer: null, stalled: null, closed: null };
  let onStall = null;
  let onClosed = null;
  let stalledSocket = null;
  state.cut = () => stalledSocket?.destroy();
  state.nextStall = (n = img.layer.length >> 1) => {
    state.stallLayer = n;
    state.stalled = new Promise((resolve) => {
      onStall = resolve;
    });
    state.closed = new Promise((resolve) => {
      onClosed = resolve;
    });
  };

  const serveBlob = (req, res, digest) => {
    const blob = blobs.get(digest);
    if (!blob) {
      res.writeHead(404, { ...cross, 'Content-Type': 'application/json' });
      res.end('{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}');
      return;
    }
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) start = Number(range[1]);
    const body = blob.subarray(start);
    res.writeHead(range ? 206 : 200, {
      ...cross,
      'Content-Type': 'application/octet-stream',
      'Content-Length': body.length,
      ...(range ? { 'Content-Range': `bytes ${start}-${blob.length - 1}/${blob.length}` } : {}),
    });
    if (digest === img.digests.layer && state.stallLayer !== null) {
      const n = state.stallLayer;
      state.stallLayer = null;
      stalledSocket = req.socket;
      req.socket.once('close', () => onClosed());
      res.write(body.subarray(0, n), () => onStall());
      return;
    }
    res.end(body);
  };

  const cdn = await listen((req, res) => {
    log(state.cdn.requests, req);
    if (req.method === 'OPTIONS') {
      res.writeHead(204, cross).end();
      return;
    }
    const m = /^\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url);
    serveBlob(req, res, m?.[1]);
  });

  const server = await listen((req, res) => {
    log(state.requests, req);
    if (req.method === 'OPTIONS') {
      res.writeHead(cors ? 200 : 405, cross).end();
      return;
    }
    const base = `http://127.0.0.1:${server.address().port}`;
    if (req.url.startsWith('/token?')) {
      res.writeHead(200, { ...cross, 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ token: 'tok-browser', expires_in: 300 }));
      return;
    }
    if (bearer && req.headers.authorization !== 'Bearer tok-browser') {
      res.writeHead(401, {
        ...cross,
        'Content-Type': 'application/json',
        'WWW-Authenticate': `Bearer realm="${base}/token",service="test",scope="repository:app:pull"`,
      });
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
      return;
    }
    if (req.url.startsWith('/v2/broken/')) {
      res.writeHead(400, { ...cross, 'Content-Type': 'application/json' });
      res.end('{"errors":[{"code":"NAME_INVALID","message":"invalid repository name"}]}');
      return;
    }
    if (req.url === '/v2/app/manifests/1.0' || req.url === `/v2/app/manifests/${img.digests.manifest}`) {
      res.writeHead(200, {
        ...cross,
        'Content-Type': 'application/vnd.oci.image.manifest.v1+json',
        'Docker-Content-Digest': img.digests.manifest,
        'Content-Length': img.manifest.length,
      });
      res.end(req.method === 'HEAD' ? undefined : img.manifest);
      return;
    }
    const m = /^\/v2\/app\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url);
    if (m && redirectBlobs) {
      res.writeHead(307, { ...cross, Location: `http://127.0.0.1:${cdn.address().port}/blobs/${m[1]}` });
      res.end();
      return;
    }
    if (m) {
      serveBlob(req, res, m[1]);
      return;
    }
    res.writeHead(404, { ...cross, 'Content-Type': 'application/json' });
    res.end('{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}');
  });
  state.host = `127.0.0.1:${server.address().port}`;
  state.reference = `${state.host}/app:1.0`;
  state.close = () => {
    for (const s of [server, cdn]) {
      s.closeAllConnections();
      s.close();
    }
  };
  return state;
}
