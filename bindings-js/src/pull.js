// Pulling from registries: the core's sans-I/O pull engine (bindings-js/rust/pull.rs) as a
// synchronous machine, and the host that drives it over the global `fetch`. No registry
// client in JavaScript: the engine decides every request (auth, redirects, retries, Range);
// this file only performs them and reports what came back.
import { InvalidArgumentError } from './errors.js';

/**
 * The engine of one pull, bound to its cache: `poll()` says what to do next; responses are
 * reported with `onHead`, `onBody`, `onEnd`, `onError`. Synchronous, so that a scripted driver
 * (the conformance player) and the `fetch` driver below share it.
 */
export class PullMachine {
  #cache;
  #pull;
  constructor(cacheEngine, wasmPull) {
    this.#cache = cacheEngine;
    this.#pull = wasmPull;
  }
  /**
   * `{send: {id, method, url, headers: [[name, value]…], purpose: {kind: 'manifest'|'token'}
   * | {kind: 'blob', digest, size, offset}}}`, `{sleep: untilMs, delay_ms}`, `{wait: true}` or
   * `{done: report}`. Throws the pull's error (it has then released what it held).
   */
  poll() {
    return JSON.parse(this.#pull.poll(this.#cache));
  }
  /** Status and headers (`[[name, value]…]`) of request `id`; whether to read its body. */
  onHead(id, status, headers) {
    return this.#pull.onHead(this.#cache, id, status, JSON.stringify(headers));
  }
  /** A chunk of request `id`'s body (a Uint8Array); whether to read on. */
  onBody(id, chunk) {
    return this.#pull.onBody(this.#cache, id, chunk);
  }
  /** Request `id`'s body is complete (also after `onBody` said to stop). */
  onEnd(id) {
    this.#pull.onEnd(this.#cache, id);
  }
  /** Request `id` failed in transport, before or during its body. */
  onError(id, message) {
    this.#pull.onError(this.#cache, id, String(message));
  }
  /** The host waited until the last `sleep`'s time, by its own clock. */
  slept() {
    this.#pull.slept();
  }
  /** Gives up: open blob writers are aborted, pins dropped; what is stored stays. */
  cancel() {
    this.#pull.cancel(this.#cache);
    this.#pull.free();
  }
}

const DEFAULT_CONCURRENCY = 4;

/**
 * The engine's options (rust/pull.rs) from `cache.pull`'s: `platform` ('os/arch[/variant]'),
 * `allPlatforms`, `allowStale`, `offline`, `plainHttp`, `mirrors`, `credentials`
 * (`{host: {username, password} | {identityToken}}`), `concurrency`.
 */
const OPTION_NAMES = new Set([
  'platform', 'allPlatforms', 'allowStale', 'offline', 'plainHttp', 'mirrors', 'credentials', 'concurrency',
]);

export function engineOptions(options) {
  for (const name of Object.keys(options)) {
    if (!OPTION_NAMES.has(name)) throw new InvalidArgumentError(`unknown pull option ${JSON.stringify(name)}`);
  }
  const {
    platform, allPlatforms = false, allowStale, offline, plainHttp, mirrors, credentials,
    concurrency = DEFAULT_CONCURRENCY,
  } = options;
  const out = {};
  if (allPlatforms) out.platform = 'all';
  else if (platform !== undefined) {
    if (typeof platform !== 'string') throw new InvalidArgumentError('options.platform must be a string');
    out.platform = platform;
  }
  for (const [name, key, v] of [['allowStale', 'allow_stale', allowStale], ['offline', 'offline', offline], ['plainHttp', 'plain_http', plainHttp]]) {
    if (v === undefined) continue;
    if (typeof v !== 'boolean') throw new InvalidArgumentError(`options.${name} must be a boolean`);
    out[key] = v;
  }
  if (mirrors !== undefined) out.mirrors = mirrors;
  if (credentials !== undefined) {
    if (credentials === null || typeof credentials !== 'object') {
      throw new InvalidArgumentError('options.credentials must be an object by registry host');
    }
    out.credentials = Object.fromEntries(Object.entries(credentials).map(([host, c]) => [
      host,
      c?.identityToken !== undefined ? { identity_token: c.identityToken } : c,
    ]));
  }
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new InvalidArgumentError('options.concurrency must be a positive integer');
  }
  out.max_concurrent = concurrency;
  return out;
}

/**
 * Drives `machine` over `fetch` until the pull is done; resolves to its report. Requests go
 * out as soon as the engine asks (it keeps at most `concurrency` blobs in flight), with
 * `redirect: 'manual'` (the engine follows redirects itself, credentials kept to their
 * origin) unless `redirect` says `'follow'`: in a browser, where a manual redirect is opaque
 * (no `Location`), the browser follows them and the engine sees only the final answer. Bodies
 * stream chunk by chunk into the engine. `credentials`, if given, is fetch's credentials mode
 * (the Worker's `'omit'`). `signal` aborts: in-flight fetches are cancelled, the engine
 * releases its writers, and the promise rejects with `signal.reason`. The machine's methods and
 * `hasBlob` may return promises (the Worker runs each step on its queue).
 */
export async function pullOverFetch(machine, {
  signal, onProgress, hasBlob, fetch = globalThis.fetch, redirect = 'manual', credentials,
} = {}) {
  if (typeof fetch !== 'function') throw new InvalidArgumentError('no global fetch (Node 20+ or a browser)');
  const controllers = new Set();
  let wake = null;
  // An event while nobody waited (the loop was awaiting an asynchronous machine's poll): the
  // next wait returns at once, so that an abort or a response is never missed.
  let missed = false;
  let fatal = null;
  let done = false;
  const notify = () => {
    const w = wake;
    wake = null;
    if (w) w();
    else missed = true;
  };
  const nextEvent = () => {
    if (missed) {
      missed = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      wake = resolve;
    });
  };
  const progress = (event) => {
    if (onProgress) onProgress(event);
  };
  const started = new Set();
  const finished = new Set();

  const perform = async (req) => {
    const { id, purpose } = req;
    const blob = purpose.kind === 'blob' ? purpose.digest : null;
    const controller = new AbortController();
    controllers.add(controller);
    try {
      if (blob) {
        started.add(blob);
        progress({ type: 'started', digest: blob, size: purpose.size, offset: purpose.offset });
      }
      let response;
      try {
        response = await fetch(req.url, {
          method: req.method,
          headers: req.headers,
          redirect,
          ...(credentials ? { credentials } : {}),
          signal: controller.signal,
        });
      } catch (e) {
        if (!controller.signal.aborted) await machine.onError(id, errorText(e));
        return;
      }
      if (controller.signal.aborted) return;
      if (!await machine.onHead(id, response.status, [...response.headers])) {
        await response.body?.cancel().catch(() => {});
        return;
      }
      const reader = response.body?.getReader();
      let received = purpose.offset ?? 0;
      try {
        for (;;) {
          const { done: end, value } = reader ? await reader.read() : { done: true };
          if (end) break;
          received += value.length;
          const more = await machine.onBody(id, value);
          if (blob) progress({ type: 'bytes', digest: blob, bytes: value.length, received, size: purpose.size });
          if (!more) {
            await reader.cancel().catch(() => {});
            break;
          }
        }
      } catch (e) {
        if (!controller.signal.aborted) await machine.onError(id, errorText(e));
        return;
      }
      await machine.onEnd(id);
      if (blob && !finished.has(blob) && await hasBlob?.(blob)) {
        finished.add(blob);
        progress({ type: 'done', digest: blob, size: purpose.size });
      }
    } catch (e) {
      // The engine or a progress callback threw: the pull fails with it.
      fatal ??= { error: e };
    } finally {
      controllers.delete(controller);
      notify();
    }
  };

  const onAbort = () => notify();
  signal?.addEventListener('abort', onAbort);
  try {
    for (;;) {
      signal?.throwIfAborted();
      if (fatal) throw fatal.error;
      const action = await machine.poll();
      if (action.send) {
        perform(action.send);
      } else if (action.done) {
        done = true;
        for (const b of action.done.blobs) {
          if (b.from_cache > 0 && !started.has(b.digest)) {
            progress({ type: 'from-cache', digest: b.digest, size: b.size });
          }
        }
        return action.done;
      } else if (action.sleep !== undefined) {
        let timer;
        const woke = await Promise.race([
          nextEvent().then(() => true),
          new Promise((resolve) => {
            // The engine's delay, not its clock: the cache may run on simulated time.
            timer = setTimeout(resolve, action.delay_ms, false);
          }),
        ]);
        clearTimeout(timer);
        if (!woke) {
          wake = null; // an event from now on is not lost to the abandoned wait
          await machine.slept();
        }
      } else {
        await nextEvent();
      }
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    for (const c of controllers) c.abort();
    if (!done) await machine.cancel();
  }
}

function errorText(e) {
  // undici puts the reason (ECONNREFUSED, a reset) in `cause`.
  const cause = e?.cause?.code ?? e?.cause?.message;
  return cause ? `${e?.message ?? e}: ${cause}` : String(e?.message ?? e);
}
