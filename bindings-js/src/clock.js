// Clocks for the cache: the system clock (default) and a manual one for simulated time.

/** Wall clock from `Date.now()`, monotonic clock from `performance.now()`. */
export const systemClock = Object.freeze({
  nowMillis: () => Date.now(),
  monotonicNanos: () => Math.round(performance.now() * 1e6),
});

/** A clock that moves only when told (tests, simulations). */
export class ManualClock {
  #ms;
  #nanos = 0;
  /** @param {number} startMs milliseconds since the Unix epoch */
  constructor(startMs = 0) {
    this.#ms = startMs;
  }
  nowMillis() {
    return this.#ms;
  }
  monotonicNanos() {
    return this.#nanos;
  }
  /** Moves both clocks forward by `ms`. */
  advance(ms) {
    this.#ms += ms;
    this.#nanos += ms * 1e6;
  }
  /** Sets the wall clock (it may go backwards); the monotonic clock does not move. */
  set(ms) {
    this.#ms = ms;
  }
}
