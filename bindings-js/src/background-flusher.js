// Flushes large temp files to disk on a worker thread while they are still being written, so
// that the commit's fsync finds little left to do and a 1 GiB put does not pay for writing and
// flushing one after the other. Node has no sync_file_range and no way to learn that an async
// fs call finished while the caller stays synchronous, hence a worker that calls fdatasync on
// the storage's own file descriptors (they are per process) and reports through shared words.
//
// One request at a time: `request(fd)` is dropped while a flush is running (the next one will
// catch up). Before the storage closes a file descriptor, `settle(fd)` waits for a flush of it
// to end, so the worker never syncs a reused descriptor. A failed background flush is
// remembered per descriptor and reported by `settle`: an fsync error is reported once per open
// file, so the commit's own fsync might not see it again.
import { Worker } from 'node:worker_threads';

// Int32Array indices, shared with background-flusher-worker.js.
const REQUESTED = 0; // sequence number of the last request
const FINISHED = 1; // sequence number of the last request the worker finished
const FD = 2; // the descriptor of the last request
const ERRNO = 3; // 0, or the errno of the last request's fdatasync (negated by libuv)
const STALL_MS = 60_000;

export class BackgroundFlusher {
  #control = null;
  #worker = null;
  #seq = 0;
  #failed = new Set();

  /** Asks for `fd` to be flushed in the background; false if a flush is already running. */
  request(fd) {
    if (!this.#control) this.#start();
    if (!this.#idle()) return false;
    this.#collect();
    Atomics.store(this.#control, FD, fd);
    Atomics.store(this.#control, ERRNO, 0);
    Atomics.store(this.#control, REQUESTED, ++this.#seq);
    Atomics.notify(this.#control, REQUESTED);
    return true;
  }

  /**
   * Waits until no background flush of `fd` is running; throws (an `EIO`-like error with the
   * errno's code) if one of them failed. Call before closing `fd`.
   */
  settle(fd) {
    if (!this.#control) return;
    if (Atomics.load(this.#control, FD) === fd) {
      for (;;) {
        const done = Atomics.load(this.#control, FINISHED);
        if (done === this.#seq) break;
        if (Atomics.wait(this.#control, FINISHED, done, STALL_MS) === 'timed-out' && Atomics.load(this.#control, FINISHED) === done) {
          throw Object.assign(new Error('the background flush stalled'), { code: 'EIO' });
        }
      }
      this.#collect();
    }
    if (this.#failed.delete(fd)) {
      throw Object.assign(new Error('a background flush of the file failed'), { code: 'EIO' });
    }
  }

  /** Stops the worker (a running flush finishes in the kernel regardless). */
  close() {
    this.#worker?.terminate();
    this.#worker = null;
    this.#control = null;
  }

  #idle() {
    return Atomics.load(this.#control, FINISHED) === this.#seq;
  }

  /** Records the outcome of the last finished request. */
  #collect() {
    if (this.#seq > 0 && this.#idle() && Atomics.load(this.#control, ERRNO) !== 0) {
      this.#failed.add(Atomics.load(this.#control, FD));
      Atomics.store(this.#control, ERRNO, 0);
    }
  }

  #start() {
    this.#control = new Int32Array(new SharedArrayBuffer(16));
    this.#worker = new Worker(new URL('./background-flusher-worker.js', import.meta.url), {
      workerData: this.#control.buffer,
    });
    this.#worker.unref();
    this.#worker.on('error', () => {});
  }
}
