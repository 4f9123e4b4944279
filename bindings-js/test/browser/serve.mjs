// A tiny static server on 127.0.0.1 for the browser tests and the example page: serves the
// package directory at / and the conformance scenarios at /scenarios/ (plus an index).
//   node test/browser/serve.mjs [port]
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { playable } from '../conformance/scenarios.js';

const PKG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCENARIOS = path.resolve(PKG, '../tests/scenarios');
const TYPES = {
  '.js': 'text/javascript', '.mjs': 'text/javascript', '.html': 'text/html',
  '.json': 'application/json', '.wasm': 'application/wasm', '.css': 'text/css',
};

function scenarioIndex() {
  const out = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.json')) out.push(path.relative(SCENARIOS, p).replace(/\\/g, '/').replace(/\.json$/, ''));
    }
  };
  walk(SCENARIOS);
  // The areas the package cannot play yet are left out (conformance/scenarios.js, NOT_YET).
  return out.filter(playable).sort();
}

/** `extra(req, res)`, if given, answers first (a registry on the same origin); true if it did. */
export function serve(port = 0, extra = null) {
  const server = http.createServer((req, res) => {
    if (extra?.(req, res)) return;
    const url = new URL(req.url, 'http://localhost');
    let file;
    if (url.pathname === '/scenarios-index.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(scenarioIndex()));
      return;
    }
    if (url.pathname.startsWith('/scenarios/')) file = path.join(SCENARIOS, url.pathname.slice('/scenarios/'.length));
    else file = path.join(PKG, url.pathname === '/' ? 'examples/browser/index.html' : url.pathname);
    file = path.normalize(decodeURIComponent(file));
    if (!file.startsWith(PKG) && !file.startsWith(SCENARIOS)) {
      res.writeHead(403).end();
      return;
    }
    fs.readFile(file, (err, data) => {
      if (err) {
        res.writeHead(404).end('not found');
        return;
      }
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(data);
    });
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

/**
 * An `extra` for `serve` that passes `/v2/…` through to the registry at `base` (method, path,
 * headers but Host): a same-origin proxy, so that a page pulls `<this host>/repo:tag` from a
 * registry that sends no CORS headers.
 */
export function registryProxy(base) {
  return (req, res) => {
    if (!(req.url === '/v2' || req.url.startsWith('/v2/'))) return false;
    const headers = { ...req.headers };
    delete headers.host;
    const up = http.request(new URL(req.url, base), { method: req.method, headers }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
    return true;
  };
}

// node test/browser/serve.mjs [port] [registry base URL, passed through at /v2/]
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const server = await serve(Number(process.argv[2] ?? 8080), process.argv[3] ? registryProxy(process.argv[3]) : null);
  console.log(`serving ${PKG} on http://127.0.0.1:${server.address().port}/`);
}
