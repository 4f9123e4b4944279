// Real registries for the npm package's tests: Debian's docker-registry (CNCF distribution),
// a token server and images pushed with skopeo, all on 127.0.0.1, through the Rust test
// harness's `registry-peers` program (tests/registry-harness/src/bin/registry-peers.rs).
// One JSON line per command, one per answer; closing its stdin stops everything it started.
//
// The program comes from $OCICACHE_REGISTRY_PEERS or $CARGO_TARGET_DIR/debug/registry-peers
// (target/ when unset, a relative one taken from the repo root as cargo does). `peersSkip` says
// why the tests cannot run; in CI a missing prerequisite is a failure, not a skip.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { spawn, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const TARGET = path.resolve(REPO, process.env.CARGO_TARGET_DIR || 'target');
export const PEERS_BIN = process.env.OCICACHE_REGISTRY_PEERS || path.join(TARGET, 'debug/registry-peers');
/** The `ocicache` CLI built beside it. */
export const CLI_BIN = process.env.OCICACHE_BIN || path.join(TARGET, 'debug/ocicache');

function which(program) {
  try {
    execFileSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function whySkip() {
  if (!fs.existsSync(PEERS_BIN)) return `the harness is not built (${PEERS_BIN}); run cargo build -p ocicache-registry-harness`;
  for (const tool of ['docker-registry', 'skopeo', 'openssl']) {
    if (!which(tool)) return `${tool} is not installed (apt-get install -y docker-registry skopeo openssl)`;
  }
  return false;
}

export const peersSkip = whySkip();
if (peersSkip && process.env.CI) throw new Error(`registry tests cannot run in CI: ${peersSkip}`);

/** A command's time limit: starting a registry takes a second or two, a push of 256 MiB longer. */
const COMMAND_TIMEOUT_MS = 300_000;

/**
 * The running harness. Every method sends one command and resolves to its answer (rejects
 * with the harness's error message). `close()` stops every peer it started.
 */
export class Peers {
  #child;
  #lines;
  #queue = [];
  #exited = null;

  constructor() {
    this.#child = spawn(PEERS_BIN, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#lines = readline.createInterface({ input: this.#child.stdout });
    this.#lines.on('line', (line) => {
      const waiter = this.#queue.shift();
      if (!waiter) return;
      clearTimeout(waiter.timer);
      let answer;
      try {
        answer = JSON.parse(line);
      } catch (e) {
        waiter.reject(new Error(`registry-peers answered ${line}: ${e.message}`));
        return;
      }
      if ('error' in answer) waiter.reject(new Error(`registry-peers: ${answer.error}`));
      else waiter.resolve(answer.ok);
    });
    this.#exited = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.once('exit', (code) => {
      for (const waiter of this.#queue.splice(0)) {
        clearTimeout(waiter.timer);
        waiter.reject(new Error(`registry-peers exited (${code})`));
      }
    });
  }

  /** Sends `{cmd, ...fields}`; resolves to the answer's `ok`. */
  command(cmd, fields = {}) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`registry-peers: ${cmd} timed out`)), COMMAND_TIMEOUT_MS);
      this.#queue.push({ resolve, reject, timer });
      this.#child.stdin.write(`${JSON.stringify({ cmd, ...fields })}\n`);
    });
  }

  /** A token server: `{id, realm, service}`. */
  tokenServer(options = {}) {
    return this.command('token-server', options);
  }

  /**
   * A registry (`auth`: `{basic: [[user, password]]}` or `{token: serverId}`; `cors`: an
   * origin; `redirect_blobs`: a base URL blob GETs are redirected to; `tls`; `proxy_of`): a
   * {@link RegistryPeer}.
   */
  async registry(options = {}) {
    const info = await this.command('registry', options);
    return new RegistryPeer(this, info);
  }

  /** Stops every peer and the harness; resolves once it has exited. */
  async close() {
    this.#child.stdin.end();
    await this.#exited;
  }
}

/** One registry, with its `url` (`http://127.0.0.1:PORT`) and `host` (`127.0.0.1:PORT`). */
export class RegistryPeer {
  #peers;
  constructor(peers, info) {
    this.#peers = peers;
    this.id = info.id;
    this.url = info.url;
    this.host = info.host;
    this.caFile = info.ca_file;
    /** Where it keeps its files (what a `redirect_blobs` CDN serves). */
    this.storageDir = info.storage_dir;
  }
  #cmd(cmd, fields = {}) {
    return this.#peers.command(cmd, { registry: this.id, ...fields });
  }
  /** `HOST/NAME`, a reference to pull. */
  reference(name) {
    return `${this.host}/${name}`;
  }
  /**
   * Pushes a generated image as `repo:tag` (`kind`: image, multi_arch, docker_image,
   * docker_list, artifact; `seed`; `layers`: sizes). Resolves to what was pushed:
   * `{digest, media_type, total_size, top (Buffer), images: [{manifest, config, layers, platform}]}`.
   */
  async push(reference, { kind = 'image', seed = 1, layers = [1024], credentials, ...rest } = {}) {
    const built = await this.#cmd('push', { reference, kind, seed, layers, credentials, ...rest });
    return { ...built, top: Buffer.from(built.top_base64, 'base64') };
  }
  /** The access log: `[{method, path, query, status, range, auth_scheme}]`. */
  requests() {
    return this.#cmd('requests');
  }
  clearRequests() {
    return this.#cmd('clear-requests');
  }
  /** Requests of `method` whose path starts with `prefix`. */
  async count(method, prefix = '/') {
    return (await this.requests()).filter((r) => r.method === method && r.path.startsWith(prefix)).length;
  }
  /** Applies `fault` (`{cut_body: N}`, `{flip_byte: N}`, `{respond: {...}}`, `{set_header: [n, v]}`) to the next `times` matching responses. */
  inject(method, path, fault, times = 1) {
    return this.#cmd('inject', { method, path, fault, times });
  }
  stop() {
    return this.#cmd('stop');
  }
  start() {
    return this.#cmd('start');
  }
  restart() {
    return this.#cmd('restart');
  }
}
