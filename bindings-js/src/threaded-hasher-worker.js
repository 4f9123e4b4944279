// The worker side of ThreadedHasher (threaded-hasher.js, which describes the lane protocol; hash-lane.js has its layout):
// hashes what the caller puts into the shared ring, through node:crypto. It never returns to
// its event loop; it sleeps in Atomics.wait on the doorbell between changes.
import { createHash } from 'node:crypto';
import { workerData } from 'node:worker_threads';

import {
  DOORBELL, PRODUCED, CONSUMED, STATE, ALGORITHM, DIGEST_LEN, CONTROL_WORDS, DIGEST_AT, RING_AT,
  IDLE, RUNNING, FINISHING, DONE, ABANDONING, FAILED, ALGORITHMS,
} from './hash-lane.js';

const sab = workerData;
const control = new BigInt64Array(sab, 0, CONTROL_WORDS);
const digestBytes = new Uint8Array(sab, DIGEST_AT, 64);
const ring = new Uint8Array(sab, RING_AT);
const size = BigInt(ring.length);

function settle(state) {
  Atomics.store(control, STATE, state);
  Atomics.notify(control, STATE);
}

/** Hashes one blob's bytes, from RUNNING to DONE (or back to IDLE if abandoned). */
function hashOne() {
  const hash = createHash(ALGORITHMS[Number(Atomics.load(control, ALGORITHM))]);
  let consumed = 0n;
  for (;;) {
    const bell = Atomics.load(control, DOORBELL);
    const state = Atomics.load(control, STATE);
    if (state === ABANDONING) return settle(IDLE);
    const produced = Atomics.load(control, PRODUCED);
    if (produced > consumed) {
      const offset = Number(consumed % size);
      const n = Math.min(Number(produced - consumed), ring.length - offset);
      hash.update(ring.subarray(offset, offset + n));
      consumed += BigInt(n);
      Atomics.store(control, CONSUMED, consumed);
      Atomics.notify(control, CONSUMED);
      continue;
    }
    if (state === FINISHING) {
      const digest = hash.digest();
      digestBytes.set(digest);
      Atomics.store(control, DIGEST_LEN, BigInt(digest.length));
      return settle(DONE);
    }
    Atomics.wait(control, DOORBELL, bell);
  }
}

try {
  for (;;) {
    const bell = Atomics.load(control, DOORBELL);
    const state = Atomics.load(control, STATE);
    // The caller may have begun, filled and finished (or abandoned) a hash before this thread
    // looked: whatever is not IDLE or DONE is a hash to take up.
    if (state === RUNNING || state === FINISHING || state === ABANDONING) hashOne();
    else Atomics.wait(control, DOORBELL, bell);
  }
} catch (e) {
  settle(FAILED);
  Atomics.notify(control, CONSUMED);
  throw e;
}
