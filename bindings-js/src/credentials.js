// Registry credentials from this machine's login files, for `cache.pull` in Node when no
// `credentials` are given: the files docker, podman and skopeo use, read the way the native
// host reads them. The rules (which file, which entry, which helper, what its answer means)
// are the core's (rust/credentials.rs); this file only reads the files and runs the helpers.
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { WasmCredentialLookup } from '../dist/ocicache_js.js';
import { InvalidConfigError } from './errors.js';

/** The largest login file or helper output read (the core's MAX_LOGIN_BYTES). */
const MAX_BYTES = 1024 * 1024;

/** How long a credential helper may take before it is killed, as in the native host. */
export const DEFAULT_HELPER_TIMEOUT_MS = 10_000;

/**
 * The login files of an environment, in the order they are asked: `authFile` (a cache's
 * `auth_file` setting) first, then `$DOCKER_CONFIG/config.json` or `$HOME/.docker/config.json`,
 * then `$REGISTRY_AUTH_FILE` or `$XDG_RUNTIME_DIR/containers/auth.json`, then
 * `$XDG_CONFIG_HOME/containers/auth.json` (default `$HOME/.config`). Empty variables count as
 * unset.
 */
export function loginFiles(env, authFile) {
  const v = (name) => (env[name] ? env[name] : undefined);
  const files = [];
  if (authFile) files.push({ path: authFile, kind: 'docker' });
  const dockerDir = v('DOCKER_CONFIG') ?? (v('HOME') && path.join(v('HOME'), '.docker'));
  if (dockerDir) files.push({ path: path.join(dockerDir, 'config.json'), kind: 'docker' });
  if (v('REGISTRY_AUTH_FILE')) {
    files.push({ path: v('REGISTRY_AUTH_FILE'), kind: 'containers' });
  } else if (v('XDG_RUNTIME_DIR')) {
    files.push({ path: path.join(v('XDG_RUNTIME_DIR'), 'containers', 'auth.json'), kind: 'containers' });
  }
  const configHome = v('XDG_CONFIG_HOME') ?? (v('HOME') && path.join(v('HOME'), '.config'));
  if (configHome) files.push({ path: path.join(configHome, 'containers', 'auth.json'), kind: 'containers' });
  return files;
}

/**
 * The credentials of `registries` (`host[:port]`), in the form of `cache.pull`'s
 * `credentials` option as the engine takes it. Rejects with an InvalidConfigError for a
 * malformed file or a failing helper (naming it and the file that names it).
 */
export async function lookupCredentials(registries, { env = process.env, authFile, helperTimeoutMs = DEFAULT_HELPER_TIMEOUT_MS } = {}) {
  const lookup = new WasmCredentialLookup();
  try {
    for (const file of loginFiles(env, authFile)) {
      const bytes = readBounded(file.path);
      if (bytes) lookup.addFile(file.path, file.kind, bytes);
    }
    lookup.start(registries);
    const searchPath = (env.PATH ?? '').split(path.delimiter).filter((d) => path.isAbsolute(d));
    for (;;) {
      const step = JSON.parse(lookup.poll());
      if (step.done) return step.done;
      const program = findExecutable(searchPath, step.run.program);
      if (!program) {
        lookup.helperNotInstalled();
        continue;
      }
      const outcome = await runHelper(program, step.run.input, helperTimeoutMs);
      if (outcome.failed) lookup.helperFailed(outcome.failed);
      else lookup.helperExited(outcome.success, outcome.status, outcome.stdout, outcome.stderr);
    }
  } finally {
    lookup.free();
  }
}

/** A file's bytes, at most MAX_BYTES; null when it does not exist. */
function readBounded(file) {
  const invalid = (what) => new InvalidConfigError(`invalid config: ${file}: ${what}`, { details: { reason: `${file}: ${what}` } });
  let fd;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return null;
    throw invalid(`cannot be opened: ${e.message}`);
  }
  try {
    const stat = fs.fstatSync(fd);
    if (stat.isDirectory()) throw invalid('is a directory, not a file');
    if (stat.size > MAX_BYTES) throw invalid(`larger than ${MAX_BYTES} bytes`);
    // The size check refuses a huge file unread; the bounded read covers devices and growth.
    const buf = Buffer.alloc(MAX_BYTES + 1);
    let n = 0;
    for (;;) {
      const got = fs.readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > MAX_BYTES) throw invalid(`larger than ${MAX_BYTES} bytes`);
    }
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/** The first executable regular file `name` in `dirs`. */
function findExecutable(dirs, name) {
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      if (fs.statSync(candidate).isFile()) {
        fs.accessSync(candidate, fs.constants.X_OK);
        return candidate;
      }
    } catch {
      // Not here.
    }
  }
  return null;
}

/**
 * Runs `program get` directly (no shell) with `input` on stdin: `{success, status, stdout,
 * stderr}` when it exited, `{failed: what}` when it could not run, took longer than
 * `timeoutMs` (then it is killed) or wrote more than MAX_BYTES.
 */
function runHelper(program, input, timeoutMs) {
  return new Promise((resolve) => {
    let settled = false;
    let guard;
    const settle = (outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      resolve(outcome);
    };
    const child = execFile(program, ['get'], {
      encoding: 'buffer',
      maxBuffer: MAX_BYTES,
      killSignal: 'SIGKILL',
      windowsHide: true,
    }, (err, stdout, stderr) => {
      if (!err) {
        settle({ success: true, status: 'exit status: 0', stdout, stderr });
      } else if (err.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') {
        settle({ failed: `wrote more than ${MAX_BYTES} bytes` });
      } else if (typeof err.code === 'number' || err.signal) {
        const status = err.signal ? `signal: ${err.signal}` : `exit status: ${err.code}`;
        settle({ success: false, status, stdout: stdout ?? Buffer.alloc(0), stderr: stderr ?? Buffer.alloc(0) });
      } else {
        settle({ failed: `cannot be started: ${err.message}` });
      }
    });
    // At the deadline a helper still running is killed. execFile answers only once the pipes
    // close, so one that exited but left a process holding them would keep it waiting: given
    // up on too, as the native host does.
    guard = setTimeout(() => {
      const running = child.exitCode === null && child.signalCode === null;
      if (running) child.kill('SIGKILL');
      child.stdout?.destroy();
      child.stderr?.destroy();
      settle({ failed: running ? `did not answer within ${timeoutMs} ms; killed` : 'did not close its stdout' });
    }, timeoutMs);
    // A helper that exits without reading gives EPIPE; its exit status tells the rest.
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}
