// The fetch driver of cache.pull (src/pull.js) with an asynchronous machine, as the browser's
// Worker gives it (each engine call a step on its queue): events that arrive while the driver
// awaits the machine are not lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pullOverFetch } from '../src/pull.js';

/** A machine whose every call resolves only when the test says so (`release()`). */
function gatedMachine() {
  const calls = [];
  let open = null;
  const gate = () => new Promise((resolve) => {
    open = resolve;
  });
  return {
    calls,
    release: (value) => open(value),
    poll: () => {
      calls.push('poll');
      return gate();
    },
    cancel: () => {
      calls.push('cancel');
    },
  };
}

test('an abort while the machine is polled is not lost: the pull rejects with the reason', { timeout: 10_000 }, async () => {
  const machine = gatedMachine();
  const controller = new AbortController();
  const pulling = pullOverFetch(machine, { signal: controller.signal, fetch: () => assert.fail('no request') });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(machine.calls, ['poll']);
  const reason = new Error('stop');
  controller.abort(reason); // while the poll is pending
  machine.release({ wait: true }); // the engine has nothing to do until an event
  await assert.rejects(pulling, (e) => e === reason);
  assert.deepEqual(machine.calls, ['poll', 'cancel']);
});
