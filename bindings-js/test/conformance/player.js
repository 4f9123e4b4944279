// The JS conformance player: plays a scenario of tests/scenarios/ (format in its README.md)
// against the package's Cache, mirroring the reference runner core/tests/conformance.rs.
// Shared by Node (node --test) and the browser (inside a dedicated Worker on OPFS).
//
// env = {
//   Cache,                     the package's Cache class (opened with Cache.open)
//   ManualClock,               the package's manual clock
//   newStorage(): storage|Promise  fresh, empty storage with the inspection helpers
//                              get/put/corrupt/truncate/paths/tempCount (+ list/remove)
//   settle?(): Promise         awaited after every step (OPFS applies its directory changes)
//   hasher?                    optional hasher passed to Cache.open
// }

export const DEFAULT_START_MS = 1_700_000_000_000;

class Harness extends Error {}
const harness = (m) => new Harness(m);

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

function hex(bytes) {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

function fromHex(h) {
  if (typeof h !== 'string' || h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h)) {
    throw harness(`bad data_hex ${JSON.stringify(h)}`);
  }
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The shape every byte-returning op uses. */
export function bytesValue(b) {
  let data = null;
  try {
    data = strictDecoder.decode(b);
  } catch {
    data = null;
  }
  return { size: b.length, data, data_hex: hex(b) };
}

class Args {
  constructor(v) {
    if (v === undefined || v === null) this.map = null;
    else if (typeof v === 'object' && !Array.isArray(v)) this.map = v;
    else throw harness(`args must be an object, got ${JSON.stringify(v)}`);
  }
  get(name) {
    const v = this.map?.[name];
    return v === null ? undefined : v;
  }
  has(name) {
    return this.get(name) !== undefined;
  }
  str(name) {
    const v = this.get(name);
    if (v === undefined) throw harness(`missing arg ${name}`);
    if (typeof v !== 'string') throw harness(`arg ${name} must be a string, got ${JSON.stringify(v)}`);
    return v;
  }
  u64(name) {
    const v = this.get(name);
    if (!Number.isSafeInteger(v) || v < 0) throw harness(`arg ${name} must be a non-negative integer`);
    return v;
  }
  optU64(name) {
    return this.has(name) ? this.u64(name) : undefined;
  }
  bool(name) {
    const v = this.get(name);
    if (v === undefined) return false;
    if (typeof v !== 'boolean') throw harness(`arg ${name} must be a boolean`);
    return v;
  }
  kind() {
    const k = this.str('kind');
    if (k !== 'manifest' && k !== 'blob') throw harness(`unknown kind ${k}`);
    return k;
  }
  bytes() {
    const data = this.get('data');
    const dataHex = this.get('data_hex');
    let once;
    if (data !== undefined && dataHex === undefined && typeof data === 'string') once = encoder.encode(data);
    else if (data === undefined && typeof dataHex === 'string') once = fromHex(dataHex);
    else if (data === undefined && dataHex === undefined) throw harness('missing data or data_hex');
    else throw harness('give exactly one of data (string) and data_hex (string)');
    const repeat = this.get('repeat');
    if (repeat === undefined) return once;
    if (!Number.isSafeInteger(repeat) || repeat < 0) throw harness('repeat must be a non-negative integer');
    const out = new Uint8Array(once.length * repeat);
    for (let i = 0; i < repeat; i++) out.set(once, i * once.length);
    return out;
  }
  /** `path`, or the entry path of `kind` + `digest` (the digest must parse, like the core's). */
  path() {
    if (this.has('path')) return this.str('path');
    const kind = this.kind();
    const digest = this.str('digest');
    const m = /^(sha256|sha384|sha512):([0-9a-f]+)$/.exec(digest);
    const len = { sha256: 64, sha384: 96, sha512: 128 };
    if (!m || m[2].length !== len[m[1]]) throw new CodeError('invalid_digest');
    return `${kind === 'manifest' ? 'manifests' : 'blobs'}/${m[1]}/${m[2]}`;
  }
}

/** A failure with an error code produced by the player itself. */
class CodeError extends Error {
  constructor(code) {
    super(code);
    this.code = code;
  }
}

const CODES = new Set([
  'not_found', 'expired', 'corrupted', 'full', 'invalidated', 'invalid_digest',
  'invalid_reference', 'digest_mismatch', 'size_mismatch', 'invalid_manifest', 'too_large',
  'invalid_argument', 'invalid_config', 'storage', 'network', 'unauthorized',
]);

/** Bounds a scenario's pull (a script cannot make the player loop). */
const MAX_PULL_STEPS = 10_000;

class Runner {
  constructor(env, config, startMs) {
    this.env = env;
    this.storage = null; // set by play(): env.newStorage() may be async (OPFS)
    this.clock = new env.ManualClock(startMs);
    this.config = config;
    this.cache = null;
    this.writers = new Map();
    this.readers = new Map();
  }

  open() {
    this.cache = this.env.Cache.open({
      storage: this.storage,
      clock: this.clock,
      config: this.config,
      ...(this.env.hasher ? { hasher: this.env.hasher } : {}),
    });
    return this.cache.recovery();
  }

  close(flush) {
    const readers = [...this.readers.values()];
    this.readers.clear();
    this.writers.clear();
    const cache = this.cache;
    this.cache = null;
    if (cache) {
      for (const r of readers) r.close();
      if (flush) cache.close();
      else cache.abandon();
    }
  }

  c() {
    if (!this.cache) throw harness('no cache is open (a cache.reopen failed or cache.close ran)');
    return this.cache;
  }

  step(op, a) {
    switch (op) {
      case 'cache.reopen':
        this.close(true);
        if (a.has('config')) this.config = a.get('config');
        return this.open();
      case 'cache.close':
        this.close(true);
        return null;
      case 'cache.crash':
        this.close(false);
        return null;
      case 'cache.flush':
        this.c().flush();
        return null;
      case 'cache.recovery':
        return this.c().recovery();
      case 'clock.advance':
        this.clock.advance(a.u64('ms'));
        return null;
      case 'clock.set':
        this.clock.set(a.u64('ms'));
        return null;

      case 'manifest.put': {
        const digest = a.str('digest');
        const bytes = a.bytes();
        const mediaType = a.has('media_type') ? a.str('media_type') : undefined;
        return this.c().putManifest(digest, bytes, { mediaType });
      }
      case 'manifest.get': {
        const m = this.c().getManifest(a.str('digest'));
        let data;
        try {
          data = strictDecoder.decode(m.bytes);
        } catch {
          throw harness('a served manifest is not UTF-8');
        }
        return { digest: m.digest, media_type: m.mediaType, data };
      }
      case 'manifest.has':
        return this.c().hasManifest(a.str('digest'));
      case 'manifest.delete':
        return this.c().deleteManifest(a.str('digest'));
      case 'manifest.references':
        return this.c().manifestReferences(a.str('digest'));

      case 'blob.put':
        return this.blobPut(a);
      case 'blob.begin': {
        const handle = a.str('handle');
        const digest = a.has('digest') ? a.str('digest') : undefined;
        const size = a.optU64('size');
        this.writers.set(handle, this.c().beginBlob({ digest, size }));
        return null;
      }
      case 'blob.write': {
        const handle = a.str('handle');
        const bytes = a.bytes();
        this.c();
        const w = this.writers.get(handle);
        if (!w) throw harness(`no writer ${handle}`);
        w.write(bytes);
        return null;
      }
      case 'blob.commit': {
        const handle = a.str('handle');
        const w = this.writers.get(handle);
        if (!w) throw harness(`no writer ${handle}`);
        this.writers.delete(handle);
        this.c();
        return w.commit();
      }
      case 'blob.abort': {
        const handle = a.str('handle');
        const w = this.writers.get(handle);
        if (!w) throw harness(`no writer ${handle}`);
        this.writers.delete(handle);
        this.c();
        w.abort();
        return null;
      }
      case 'blob.get': {
        const digest = a.str('digest');
        const chunk = a.optU64('chunk');
        const cache = this.c();
        if (chunk === undefined) return bytesValue(cache.getBlob(digest));
        const r = cache.openBlob(digest);
        try {
          return bytesValue(readUpTo(r, Infinity, chunk));
        } finally {
          r.close();
        }
      }
      case 'blob.open': {
        const handle = a.str('handle');
        const r = this.c().openBlob(a.str('digest'));
        this.readers.set(handle, r);
        return { size: r.size };
      }
      case 'blob.read': {
        const handle = a.str('handle');
        const max = a.optU64('max') ?? Infinity;
        this.c();
        const r = this.readers.get(handle);
        if (!r) throw harness(`no reader ${handle}`);
        const data = readUpTo(r, max, 1 << 16);
        return { ...bytesValue(data), len: data.length };
      }
      case 'blob.close': {
        const handle = a.str('handle');
        const r = this.readers.get(handle);
        if (!r) throw harness(`no reader ${handle}`);
        this.readers.delete(handle);
        this.c();
        r.close();
        return null;
      }
      case 'blob.has':
        return this.c().hasBlob(a.str('digest'));
      case 'blob.delete':
        return this.c().deleteBlob(a.str('digest'));

      case 'entry.pin':
        return this.c().pin(a.kind(), a.str('digest'));
      case 'entry.unpin':
        return this.c().unpin(a.kind(), a.str('digest'));
      case 'entry.delete':
        return this.c().deleteEntry(a.kind(), a.str('digest'));

      case 'tag.put':
        return this.c().putTag(a.str('reference'), a.str('digest'));
      case 'tag.get':
        return this.c().getTag(a.str('reference'));
      case 'tag.has':
        return this.c().hasTag(a.str('reference'));
      case 'tag.resolve':
        return this.c().resolveTag(a.str('reference'));
      case 'tag.resolve_many': {
        const list = a.get('references');
        if (!Array.isArray(list) || list.some((r) => typeof r !== 'string')) {
          throw harness('references must be an array of strings');
        }
        return this.c().resolveTags(list).map((item) =>
          'ok' in item ? { ok: item.ok } : { error: codeOf(item.error) });
      }
      case 'tag.resolve_failed':
        return this.c().resolveFailed(a.str('reference'));
      case 'tag.detect_movement':
        return this.c().detectMovement(a.str('reference'), a.str('digest'));
      case 'tag.invalidate':
        return this.c().invalidateTag(a.str('reference'));
      case 'tag.delete':
        return this.c().deleteTag(a.str('reference'));
      case 'tag.history':
        return this.c().tagHistory(a.str('reference'));
      case 'tag.list':
        return this.c().tags();

      case 'stats':
        return this.c().stats();
      case 'metrics':
        return this.c().metrics();
      case 'size':
        return this.c().size();
      case 'contents':
        return this.c().contents();
      case 'debug_info':
        return this.c().debugInfo();
      case 'integrity.check':
        return this.c().checkIntegrity();
      case 'integrity.repair':
        return this.c().repair();
      case 'integrity.validate_digests':
        return this.c().validateDigests();
      case 'clear_expired':
        return this.c().clearExpired();
      case 'cleanup':
        return this.c().cleanup();
      case 'clear':
        this.c().clear();
        return null;

      case 'storage.corrupt':
        return this.storage.corrupt(a.path(), a.u64('offset'));
      case 'storage.truncate': {
        const path = a.path();
        const size = this.storage.get(path)?.length ?? 0;
        const drop = a.optU64('drop');
        const len = drop !== undefined ? Math.max(0, size - drop) : a.u64('len');
        this.storage.truncate(path, len);
        return null;
      }
      case 'storage.remove':
        try {
          this.storage.remove(a.path());
        } catch (e) {
          throw harness(`storage.remove: ${e.message}`);
        }
        return null;
      case 'storage.plant':
        this.storage.put(a.path(), a.bytes());
        return null;
      case 'storage.exists':
        return this.storage.get(a.path()) !== null;
      case 'storage.read': {
        const b = this.storage.get(a.path());
        return b === null ? null : bytesValue(b);
      }
      case 'storage.list':
        try {
          return this.storage.list(a.str('dir'));
        } catch (e) {
          throw harness(`storage.list: ${e.message}`);
        }
      case 'storage.bytes': {
        const prefix = a.str('dir').replace(/\/+$/, '') + '/';
        let total = 0;
        for (const p of this.storage.paths()) {
          if (p.startsWith(prefix)) total += this.storage.get(p)?.length ?? 0;
        }
        return total;
      }
      case 'storage.temps':
        return this.storage.tempCount();

      case 'pull':
        return playPull(this, a);

      default:
        throw harness(`unknown op ${JSON.stringify(op)}`);
    }
  }

  blobPut(a) {
    const digest = a.has('digest') ? a.str('digest') : undefined;
    const size = a.optU64('size');
    const bytes = a.bytes();
    let chunks = [bytes.length];
    const given = a.get('chunks');
    if (given !== undefined) {
      if (!Array.isArray(given)) throw harness('chunks must be an array');
      if (given.some((n) => !Number.isSafeInteger(n) || n < 0)) throw harness('chunks must be integers');
      chunks = given;
    }
    if (chunks.reduce((s, n) => s + n, 0) !== bytes.length) {
      throw harness('chunk sizes must add up to the data length');
    }
    const abort = a.bool('abort');
    const w = this.c().beginBlob({ digest, size });
    let at = 0;
    for (const n of chunks) {
      w.write(bytes.subarray(at, at + n)); // on error the core aborts the writer itself
      at += n;
    }
    if (abort) {
      w.abort();
      return null;
    }
    return w.commit();
  }
}

/**
 * The `pull` step, as tests/conformance-runner/src/pull.rs plays it: the engine over the open
 * cache, one request at a time, each answered by the script's next exchange (in chunks of
 * 1000 bytes; `cut_after` then a transport error); a sleep sets the clock to its end. Every
 * exchange must be used.
 */
function playPull(runner, a) {
  const options = { max_concurrent: 1, retry_base_ms: 100, ...(a.get('options') ?? {}) };
  const script = a.get('http') ?? [];
  if (!Array.isArray(script)) throw harness('http must be an array');
  const machine = runner.c().pullMachine(a.str('reference'), options);
  let next = 0;
  const unused = () => script.length - next;
  let finished = false;
  try {
    for (let step = 0; step < MAX_PULL_STEPS; step++) {
      let action;
      try {
        action = machine.poll();
      } catch (e) {
        finished = true;
        if (unused() !== 0) throw harness(`the pull failed (${e?.code}: ${e?.message}) with ${unused()} exchange(s) of the script unused`);
        throw e;
      }
      if (action.done) {
        finished = true;
        if (unused() !== 0) throw harness(`the pull ended with ${unused()} exchange(s) of the script unused`);
        return action.done;
      }
      if (action.sleep !== undefined) {
        runner.clock.set(action.sleep);
        continue;
      }
      if (action.wait) throw harness('the pull waits with nothing in flight');
      const request = action.send;
      const exchange = script[next];
      if (exchange === undefined) {
        throw harness(`request ${request.method} ${request.url} beyond the script's ${script.length} exchange(s)`);
      }
      next++;
      checkRequest(next, exchange, request);
      if (typeof exchange.error === 'string') {
        machine.onError(request.id, exchange.error);
        continue;
      }
      const response = exchange.response;
      if (!response || typeof response !== 'object') throw harness(`exchange ${next}: no response or error`);
      if (!Number.isInteger(response.status)) throw harness(`exchange ${next}: response.status`);
      const headers = response.headers ?? [];
      if (!Array.isArray(headers) || headers.some((h) => !Array.isArray(h) || h.length !== 2 || h.some((x) => typeof x !== 'string'))) {
        throw harness(`exchange ${next}: headers are [name, value] pairs`);
      }
      if (!machine.onHead(request.id, response.status, headers)) continue;
      const full = encoder.encode(response.body ?? '');
      const cut = response.cut_after;
      const body = cut === undefined || cut === null ? full : full.subarray(0, Math.min(cut, full.length));
      let more = true;
      for (let at = 0; at < body.length; at += 1000) {
        if (!machine.onBody(request.id, body.subarray(at, at + 1000))) {
          more = false;
          break;
        }
      }
      if (more && cut !== undefined && cut !== null) machine.onError(request.id, 'connection reset');
      else machine.onEnd(request.id);
    }
    throw harness('the pull did not end');
  } finally {
    if (!finished) machine.cancel();
  }
}

function checkRequest(n, exchange, request) {
  const want = exchange?.request;
  if (!want || typeof want !== 'object') throw harness(`exchange ${n}: no request`);
  const shown = `${request.method} ${request.url}`;
  if (want.method !== request.method || want.url !== request.url) {
    throw harness(`exchange ${n}: expected ${want.method ?? '?'} ${want.url ?? '?'}, the pull sent ${shown}`);
  }
  for (const [name, value] of Object.entries(want.headers ?? {})) {
    const got = request.headers.find(([h]) => h.toLowerCase() === name.toLowerCase())?.[1] ?? null;
    if (got !== value) {
      throw harness(`exchange ${n} (${shown}): header ${name} is ${JSON.stringify(got)}, expected ${JSON.stringify(value)}`);
    }
  }
}

function readUpTo(reader, max, chunk) {
  const parts = [];
  let total = 0;
  while (total < max) {
    const want = Math.min(max - total, Math.max(chunk, 1));
    const b = reader.read(want);
    if (b.length === 0) break;
    parts.push(b);
    total += b.length;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function codeOf(e) {
  if (e && typeof e.code === 'string' && CODES.has(e.code)) return e.code;
  return null;
}

/**
 * Whether `actual` matches `expected`: objects as subsets, arrays element-wise with equal
 * length, numbers numerically (non-integers with relative tolerance 1e-9), the rest by equality.
 * Returns null, or where it differs.
 */
export function mismatch(expected, actual, at = '$') {
  const t = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
  if (t(expected) === 'object' && t(actual) === 'object') {
    for (const [k, ev] of Object.entries(expected)) {
      if (!Object.hasOwn(actual, k)) return `${at}.${k}: missing (expected ${JSON.stringify(ev)})`;
      const m = mismatch(ev, actual[k], `${at}.${k}`);
      if (m) return m;
    }
    return null;
  }
  if (t(expected) === 'array' && t(actual) === 'array') {
    if (expected.length !== actual.length) {
      return `${at}: expected ${expected.length} elements, got ${actual.length}`;
    }
    for (let i = 0; i < expected.length; i++) {
      const m = mismatch(expected[i], actual[i], `${at}[${i}]`);
      if (m) return m;
    }
    return null;
  }
  if (t(expected) === 'number' && t(actual) === 'number') {
    const same = Number.isInteger(expected) && Number.isInteger(actual)
      ? expected === actual
      : Math.abs(expected - actual) <= 1e-9 * Math.max(Math.abs(expected), Math.abs(actual), 1);
    return same ? null : `${at}: expected ${expected}, got ${actual}`;
  }
  if (t(expected) === t(actual) && expected === actual) return null;
  return `${at}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
}

function shown(r) {
  return r.ok ? `ok ${JSON.stringify(r.value)}` : `error ${JSON.stringify(r.code)}`;
}

/**
 * Plays one scenario; resolves to the number of steps, or rejects with a message naming the
 * failing step. `rel` is the file's path under tests/scenarios without `.json`.
 */
export async function play(rel, scenario, env) {
  if (scenario?.name !== rel) {
    throw new Error(`name ${JSON.stringify(scenario?.name)} does not match its file ${JSON.stringify(rel)}`);
  }
  const config = scenario.config ?? {};
  const start = scenario.start_ms ?? DEFAULT_START_MS;
  if (!Number.isSafeInteger(start) || start < 0) throw new Error('start_ms must be a non-negative integer');
  if (!Array.isArray(scenario.steps)) throw new Error('missing steps');
  const runner = new Runner(env, config, start);
  runner.storage = await env.newStorage();
  let passed = false;
  try {
    try {
      runner.open();
    } catch (e) {
      throw new Error(`opening with the scenario's config failed: ${codeOf(e) ?? e.message}`);
    }
    await env.settle?.(runner.storage);
    for (const [i, step] of scenario.steps.entries()) {
      const op = step.op;
      if (typeof op !== 'string') throw new Error(`step ${i}: missing op`);
      const fail = (m) => new Error(`step ${i} (${op}): ${m}`);
      let result;
      try {
        result = { ok: true, value: runner.step(op, new Args(step.args)) };
      } catch (e) {
        if (e instanceof Harness) throw fail(`runner: ${e.message}`);
        const code = codeOf(e);
        if (code === null) throw fail(`unexpected exception: ${e?.stack ?? e}`);
        result = { ok: false, code };
      } finally {
        await env.settle?.(runner.storage);
      }
      const expect = step.expect;
      if (expect === undefined) {
        if (!result.ok) throw fail(`expected success, got error ${JSON.stringify(result.code)}`);
      } else if (expect && typeof expect === 'object' && Object.keys(expect).length === 1 && 'ok' in expect) {
        if (!result.ok) throw fail(`expected ok ${JSON.stringify(expect.ok)}, got ${shown(result)}`);
        // Results cross as JSON, like the Rust runner's serde values.
        const actual = result.value === undefined ? null : JSON.parse(JSON.stringify(result.value));
        const m = mismatch(expect.ok, actual);
        if (m) throw fail(`${m}\n      actual: ${shown(result)}`);
      } else if (expect && typeof expect === 'object' && Object.keys(expect).length === 1 && 'error' in expect) {
        if (typeof expect.error !== 'string') throw fail('error must be a code');
        if (result.ok || result.code !== expect.error) {
          throw fail(`expected error ${JSON.stringify(expect.error)}, got ${shown(result)}`);
        }
      } else {
        throw fail(`bad expect ${JSON.stringify(expect)}`);
      }
    }
    passed = true;
    return scenario.steps.length;
  } finally {
    let closeError = null;
    try {
      runner.close(true);
    } catch (e) {
      closeError = e;
    }
    await env.settle?.(runner.storage);
    // A failing close fails a scenario that passed so far (one that already failed keeps its
    // own message): its records did not all reach the storage.
    if (passed && closeError !== null) {
      throw new Error(`closing the cache after the last step failed: ${codeOf(closeError) ?? ''} ${closeError?.stack ?? closeError}`);
    }
  }
}
