// The shared layout of a ThreadedHasher lane: control words (BigInt64Array indices), where the
// digest and the ring start, and the states a hash goes through. Used by threaded-hasher.js
// (the caller's side) and threaded-hasher-worker.js (the worker's side).

export const DOORBELL = 0; // bumped by the caller on every change the worker must see
export const PRODUCED = 1; // bytes the caller has put into the ring, in total
export const CONSUMED = 2; // bytes the worker has hashed, in total
export const STATE = 3;
export const ALGORITHM = 4; // index into ALGORITHMS
export const DIGEST_LEN = 5;
export const CONTROL_WORDS = 8;
export const DIGEST_AT = 64; // up to 64 digest bytes
export const RING_AT = 128;

// STATE values. The caller moves IDLE → RUNNING → FINISHING or ABANDONING, and DONE → IDLE;
// the worker moves FINISHING → DONE, ABANDONING → IDLE, and anything → FAILED.
export const IDLE = 0n;
export const RUNNING = 1n;
export const FINISHING = 2n;
export const DONE = 3n;
export const ABANDONING = 4n;
export const FAILED = 5n;

export const ALGORITHMS = ['sha256', 'sha384', 'sha512'];
