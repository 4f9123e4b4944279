// The worker side of BackgroundFlusher (background-flusher.js): fdatasync of the requested
// descriptor, the outcome in the shared words.
import fs from 'node:fs';
import { workerData } from 'node:worker_threads';

const REQUESTED = 0;
const FINISHED = 1;
const FD = 2;
const ERRNO = 3;
const control = new Int32Array(workerData);

for (let seen = 0; ; ) {
  Atomics.wait(control, REQUESTED, seen);
  seen = Atomics.load(control, REQUESTED);
  try {
    fs.fdatasyncSync(Atomics.load(control, FD));
  } catch (e) {
    Atomics.store(control, ERRNO, typeof e.errno === 'number' && e.errno !== 0 ? e.errno : -5);
  }
  Atomics.store(control, FINISHED, seen);
  Atomics.notify(control, FINISHED);
}
