// Hashing through node:crypto on worker threads, so that a large blob's hashing runs beside its
// storage writes instead of after them.
//
// A hash that stays small is computed inline: its bytes are held (at most `handoffBytes`) and
// hashed at `digest()`, because a thread hop costs more than hashing a few KiB. Once a hash
// passes `handoffBytes`, it takes a free *lane* — one worker thread and one SharedArrayBuffer
// ring — and from then on `update` only copies the bytes into the ring; the worker hashes them
// while the caller goes on to store them. `digest()` waits for the worker to drain the ring.
// With no free lane (more large hashes at once than threads), a hash runs inline.
//
// The lane protocol (single producer, the caller's thread; single consumer, the lane's worker)
// lives in shared 64-bit control words (hash-lane.js); threaded-hasher-worker.js is the
// worker's side.
import { createHash } from 'node:crypto';
import os from 'node:os';
import { Worker } from 'node:worker_threads';

import {
  DOORBELL, PRODUCED, CONSUMED, STATE, ALGORITHM, DIGEST_LEN, CONTROL_WORDS, DIGEST_AT, RING_AT,
  IDLE, RUNNING, FINISHING, DONE, ABANDONING, FAILED, ALGORITHMS,
} from './hash-lane.js';

// A worker that makes no progress for this long is taken to be gone (a worker thread that dies
// without reporting FAILED, e.g. out of memory, cannot be observed otherwise while the caller
// is blocked). Hashing 16 MiB takes milliseconds.
const STALL_MS = 120_000;

/** Threads worth using: one per core beyond the caller's, at most 4. */
function defaultThreads() {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(0, Math.min(4, cores - 1));
}

class HashFailure extends Error {}

/** One worker thread and its ring. */
class Lane {
  constructor(ringBytes) {
    this.sab = new SharedArrayBuffer(RING_AT + ringBytes);
    this.control = new BigInt64Array(this.sab, 0, CONTROL_WORDS);
    this.digestBytes = new Uint8Array(this.sab, DIGEST_AT, 64);
    this.ring = new Uint8Array(this.sab, RING_AT, ringBytes);
    this.worker = new Worker(new URL('./threaded-hasher-worker.js', import.meta.url), {
      workerData: this.sab,
    });
    // The worker never keeps the process alive, and its failures surface through STATE.
    this.worker.unref();
    this.worker.on('error', () => {});
    this.inUse = false;
    this.terminated = false;
    this.produced = 0n;
  }

  /** The worker reported a failure; the lane is of no further use. */
  get failed() {
    return Atomics.load(this.control, STATE) === FAILED;
  }

  /** Free for a new hash: not handed out, and the worker has let go of the previous one. */
  get idle() {
    return !this.inUse && Atomics.load(this.control, STATE) === IDLE;
  }

  #bell() {
    Atomics.add(this.control, DOORBELL, 1n);
    Atomics.notify(this.control, DOORBELL);
  }

  /** Moves STATE from `from` to `to` unless the worker has moved it (to FAILED) meanwhile. */
  #transition(from, to) {
    const was = Atomics.compareExchange(this.control, STATE, from, to);
    this.#bell();
    if (was !== from) throw new HashFailure('the hash worker failed');
  }

  /** Starts a hash on this lane (reserved by `acquire`). */
  begin(algorithm) {
    this.produced = 0n;
    Atomics.store(this.control, PRODUCED, 0n);
    Atomics.store(this.control, CONSUMED, 0n);
    Atomics.store(this.control, ALGORITHM, BigInt(ALGORITHMS.indexOf(algorithm)));
    this.#transition(IDLE, RUNNING);
  }

  /** Blocks until `index` differs from `seen`, failing on a dead or failed worker. */
  #awaitChange(index, seen) {
    if (this.terminated) throw new HashFailure('the hasher was closed');
    for (;;) {
      const r = Atomics.wait(this.control, index, seen, STALL_MS);
      if (Atomics.load(this.control, STATE) === FAILED) throw new HashFailure('the hash worker failed');
      if (r !== 'timed-out') return;
      if (Atomics.load(this.control, index) === seen) throw new HashFailure('the hash worker stalled');
    }
  }

  write(data) {
    const size = this.ring.length;
    let at = 0;
    while (at < data.length) {
      let free = size - Number(this.produced - Atomics.load(this.control, CONSUMED));
      while (free === 0) {
        this.#awaitChange(CONSUMED, this.produced - BigInt(size));
        free = size - Number(this.produced - Atomics.load(this.control, CONSUMED));
      }
      const offset = Number(this.produced % BigInt(size));
      const n = Math.min(free, data.length - at, size - offset);
      this.ring.set(data.subarray(at, at + n), offset);
      at += n;
      this.produced += BigInt(n);
      Atomics.store(this.control, PRODUCED, this.produced);
      this.#bell();
    }
  }

  finish() {
    try {
      this.#transition(RUNNING, FINISHING);
      for (let s = FINISHING; s !== DONE; s = Atomics.load(this.control, STATE)) this.#awaitChange(STATE, s);
      const digest = this.digestBytes.slice(0, Number(Atomics.load(this.control, DIGEST_LEN)));
      Atomics.store(this.control, STATE, IDLE);
      return digest;
    } finally {
      this.inUse = false;
    }
  }

  /** Drops the hash; waits for the worker to let go (at most the hashing of one ring's bytes). */
  abandon() {
    try {
      Atomics.compareExchange(this.control, STATE, RUNNING, ABANDONING);
      this.#bell();
      for (let s = ABANDONING; s === ABANDONING; s = Atomics.load(this.control, STATE)) this.#awaitChange(STATE, s);
    } finally {
      this.inUse = false;
    }
  }

  terminate() {
    this.terminated = true;
    return this.worker.terminate();
  }
}

/** One running hash: inline while small, then on a lane (or inline if none is free). */
class ThreadedHashState {
  #owner;
  #algorithm;
  #held = [];
  #heldBytes = 0;
  #inline = null;
  #lane = null;
  #failed = false;

  constructor(owner, algorithm) {
    this.#owner = owner;
    this.#algorithm = algorithm;
  }

  update(data) {
    if (this.#lane) {
      try {
        this.#lane.write(data);
      } catch (e) {
        this.#fail();
        throw e;
      }
      return;
    }
    if (this.#inline) {
      this.#inline.update(data);
      return;
    }
    if (this.#heldBytes + data.length <= this.#owner.handoffBytes) {
      this.#held.push(data.slice()); // `data` may be a view of memory the caller reuses
      this.#heldBytes += data.length;
      return;
    }
    const held = this.#held;
    this.#held = null;
    const lane = this.#owner.acquire();
    if (lane) {
      this.#lane = lane;
      lane.begin(this.#algorithm);
      for (const h of held) this.update(h);
    } else {
      this.#inline = createHash(this.#algorithm);
      for (const h of held) this.#inline.update(h);
    }
    this.update(data);
  }

  digest() {
    if (this.#failed) throw new HashFailure('the hash worker failed');
    if (this.#lane) {
      const lane = this.#lane;
      this.#lane = null;
      try {
        return lane.finish();
      } catch (e) {
        this.#owner.discard(lane);
        throw e;
      }
    }
    if (!this.#inline) {
      this.#inline = createHash(this.#algorithm);
      for (const h of this.#held) this.#inline.update(h);
      this.#held = null;
    }
    return new Uint8Array(this.#inline.digest());
  }

  /** Drops the hash unfinished (the cache calls this when a blob writer is aborted). */
  abandon() {
    this.#held = null;
    if (this.#lane) {
      const lane = this.#lane;
      this.#lane = null;
      try {
        lane.abandon();
      } catch {
        this.#owner.discard(lane);
      }
    }
  }

  #fail() {
    this.#failed = true;
    this.#owner.discard(this.#lane);
    this.#lane = null;
  }
}

/**
 * A hasher for `Cache.open` that hashes through node:crypto on worker threads, so that a large
 * blob is hashed while its bytes are being stored. Hashes of at most `handoffBytes` (default
 * 1 MiB) run inline. The Node entry's `Cache.open` uses one shared instance unless told
 * otherwise; with a single core it hashes inline.
 *
 * ```js
 * const hasher = new ThreadedHasher({ threads: 2 });
 * const cache = Cache.open({ storage, hasher });
 * ```
 */
export class ThreadedHasher {
  #lanes = [];
  #threads;
  #ringBytes;

  /**
   * @param {{threads?: number, handoffBytes?: number, ringBytes?: number}} [options]
   *   `threads`: worker threads at most (default: cores − 1, at most 4; 0 hashes inline);
   *   `handoffBytes`: a hash moves to a thread once it has seen more than this;
   *   `ringBytes`: the bytes in flight per thread (default 16 MiB).
   */
  constructor({ threads = defaultThreads(), handoffBytes = 1 << 20, ringBytes = 16 << 20 } = {}) {
    for (const [name, v, min] of [['threads', threads, 0], ['handoffBytes', handoffBytes, 0], ['ringBytes', ringBytes, 1]]) {
      if (!Number.isSafeInteger(v) || v < min) throw new TypeError(`${name} must be an integer >= ${min}`);
    }
    this.#threads = threads;
    this.handoffBytes = handoffBytes;
    this.#ringBytes = ringBytes;
  }

  /** A running hash of `algorithm` ('sha256', 'sha384' or 'sha512'). */
  start(algorithm) {
    if (!ALGORITHMS.includes(algorithm)) return null; // the core's built-in hashing takes over
    return new ThreadedHashState(this, algorithm);
  }

  /** Worker threads running. */
  get threads() {
    return this.#lanes.length;
  }

  /** Hashes running on a worker thread now. */
  get active() {
    return this.#lanes.filter((l) => l.inUse).length;
  }

  /** @internal A free lane, starting a thread if the limit allows; null if none. */
  acquire() {
    for (const l of this.#lanes.filter((l) => l.failed)) this.discard(l);
    let lane = this.#lanes.find((l) => l.idle);
    if (!lane && this.#lanes.length < this.#threads) {
      lane = new Lane(this.#ringBytes);
      this.#lanes.push(lane);
    }
    if (lane) lane.inUse = true;
    return lane ?? null;
  }

  /** @internal Retires a lane whose worker failed. */
  discard(lane) {
    if (!lane) return;
    this.#lanes = this.#lanes.filter((l) => l !== lane);
    lane.terminate();
  }

  /**
   * Stops the worker threads. A hash running on one fails (its blob is refused, nothing is
   * stored); hashes started afterwards start new threads.
   */
  async close() {
    const lanes = this.#lanes;
    this.#lanes = [];
    await Promise.all(lanes.map((l) => l.terminate()));
  }
}
