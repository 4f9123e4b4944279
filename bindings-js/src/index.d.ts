// Types of the ocicache package (Node entry `ocicache`, plus `ocicache/memory`, `ocicache/errors`).
// Result shapes are the core's serde forms (tests/scenarios/README.md, "Result shapes").

export type Kind = 'manifest' | 'blob';
export type ErrorCode =
  | 'not_found' | 'expired' | 'corrupted' | 'full' | 'invalidated' | 'invalid_digest'
  | 'invalid_reference' | 'digest_mismatch' | 'size_mismatch' | 'invalid_manifest' | 'too_large'
  | 'invalid_argument' | 'invalid_config' | 'storage' | 'network' | 'unauthorized';

/** Base class of every error the cache throws; `code` is stable. */
export class OcicacheError extends Error {
  constructor(message: string, options?: { code?: ErrorCode; details?: Record<string, unknown>; cause?: unknown });
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;
}
export class NotFoundError extends OcicacheError { readonly code: 'not_found'; }
export class ExpiredError extends OcicacheError { readonly code: 'expired'; }
export class CorruptedError extends OcicacheError { readonly code: 'corrupted'; }
export class FullError extends OcicacheError { readonly code: 'full'; }
export class InvalidatedError extends OcicacheError { readonly code: 'invalidated'; }
export class InvalidDigestError extends OcicacheError { readonly code: 'invalid_digest'; }
export class InvalidReferenceError extends OcicacheError { readonly code: 'invalid_reference'; }
export class DigestMismatchError extends OcicacheError { readonly code: 'digest_mismatch'; }
export class SizeMismatchError extends OcicacheError { readonly code: 'size_mismatch'; }
export class InvalidManifestError extends OcicacheError { readonly code: 'invalid_manifest'; }
export class TooLargeError extends OcicacheError { readonly code: 'too_large'; }
export class InvalidArgumentError extends OcicacheError { readonly code: 'invalid_argument'; }
export class InvalidConfigError extends OcicacheError { readonly code: 'invalid_config'; }
/**
 * A registry could not be reached or kept failing (after retries), answered another 4xx than
 * 401, 403 and 404 (those are UnauthorizedError and NotFoundError), or offline with nothing
 * cached. `details` holds the same fields and the registry's `message`.
 */
export class NetworkError extends OcicacheError {
  readonly code: 'network';
  /** The registry, `host[:port]`. */
  readonly registry: string | null;
  /** The last HTTP status; null when no response came (refused, reset, TLS, offline). */
  readonly status: number | null;
  /** The registry's error code from its JSON error body (e.g. `UNAVAILABLE`), or null. */
  readonly registryCode: string | null;
  readonly details: { registry: string; status: number | null; message: string; registryCode: string | null };
}
/** A registry refused access; `details`: registry, message. */
export class UnauthorizedError extends OcicacheError { readonly code: 'unauthorized'; }
/** The host's storage failed; nothing committed changed. `cause` is what the storage threw. */
export class StorageError extends OcicacheError {
  readonly code: 'storage';
  readonly storageKind: 'not_found' | 'no_space' | 'invalid_path' | 'io';
}
/**
 * The cache directory is open elsewhere, and a directory serves one cache at a time: another
 * Node process or thread (or another FsStorage here) holds `<root>/node.lock`, a native process
 * (the `ocicache` CLI, a Rust program) has it open (`<root>/native/`, after `waitMs`), or another
 * browser tab or worker holds the Web Lock `ocicache:<directory>`. Nothing was opened or changed.
 */
export class DirectoryInUseError extends StorageError {
  readonly storageKind: 'io';
  readonly details: {
    kind: 'io';
    directory: string;
    /** Node: the lock file. */
    lockFile?: string;
    /** Node: the native processes that have the directory open (their markers). */
    native?: Array<{ file: string; pid: number | null; hostname?: string }>;
    /** Node: who holds it (null if its lock file is being written). */
    holder?: { pid: number; hostname: string; started: number; since: string; token: string } | null;
    /** Browser: the Web Lock's name. */
    lock?: string;
  };
}
export const ERROR_CLASSES: Readonly<Record<ErrorCode, typeof OcicacheError>>;
/** An error for storage implementations to throw with an explicit kind. */
export function storageFailure(kind: 'not_found' | 'no_space' | 'invalid_path' | 'io', message: string): Error;

/**
 * Storage a host lends the cache: synchronous methods mirroring the WIT `storage` interface.
 * `data` and `buf` arguments are views of wasm memory, valid only during the call.
 * Throw `code` ENOENT/ENOSPC/EDQUOT, a `QuotaExceededError`, or `storageFailure(...)`.
 */
export interface Storage {
  createTemp(sizeHint?: number): number;
  writeTemp(id: number, data: Uint8Array): void;
  /** Atomically and durably makes the temp the content of `path`; the temp is gone either way. */
  commitTemp(id: number, path: string): void;
  abortTemp(id: number): void;
  /** Durable append, creating `path` if needed. */
  append(path: string, data: Uint8Array): void;
  /** Fills `buf` from `offset`; returns the bytes read (0 at the end). */
  readAt(path: string, offset: number, buf: Uint8Array): number;
  size(path: string): number | null;
  list(dir: string): string[];
  remove(path: string): void;
  clearTemps(): number;
  /**
   * Optional: asked once the cache has opened (and for `'strict'` around each compaction of its
   * index); returns the level it honours from then on. A storage without it stays strict.
   */
  setDurability?(level: Durability): Durability;
  /**
   * Optional: the bytes of the directory's `config.json`, or null if it has none. When present,
   * `Cache.open` takes the directory's settings from it (parsed by the core, as every host does).
   */
  readConfigFile?(): Uint8Array | null;
  /**
   * Optional, with `keepPartial`: opens the partial download at `path`
   * (`partials/<alg>/<hex>`, created empty if absent) as a temp whose writes append to it and
   * which outlives `clearTemps` and the process, until it is committed or aborted. `readAt(path)`
   * reads it. Returns its temp id and current length, or null while it is open already (in this
   * storage or elsewhere), so that one partial never has two writers. A storage without it
   * keeps no partials: a cancelled or broken blob download then starts over in the next pull.
   */
  openPartial?(path: string): { id: number; size: number } | null;
  /** Closes a temp opened by `openPartial`, its bytes kept (durably) for a later one. */
  keepPartial?(id: number): void;
}
/** Inspection helpers offered by the package's storages (tests, debugging). */
export interface InspectableStorage extends Storage {
  get(path: string): Uint8Array | null;
  put(path: string, data: Uint8Array): void;
  corrupt(path: string, offset: number): boolean;
  truncate(path: string, len: number): void;
  paths(): string[];
  tempCount(): number;
}
export class MemoryStorage implements InspectableStorage {
  createTemp(sizeHint?: number): number; writeTemp(id: number, data: Uint8Array): void;
  commitTemp(id: number, path: string): void; abortTemp(id: number): void;
  append(path: string, data: Uint8Array): void; readAt(path: string, offset: number, buf: Uint8Array): number;
  size(path: string): number | null; list(dir: string): string[]; remove(path: string): void; clearTemps(): number;
  /** Keeps partials: refuses (null) one it has open already. */
  openPartial(path: string): { id: number; size: number } | null; keepPartial(id: number): void;
  get(path: string): Uint8Array | null; put(path: string, data: Uint8Array): void;
  corrupt(path: string, offset: number): boolean; truncate(path: string, len: number): void;
  paths(): string[]; tempCount(): number;
  setDurability(level: Durability): Durability;
}
/**
 * Durable node:fs storage over a directory (byte-compatible with the native CLI's), confined
 * by the native host's rules: its path grammar and reserved names, and no symlink below the
 * root ever followed (a symlinked directory component is an `invalid_path` StorageError, files
 * are opened with O_NOFOLLOW). `list` leaves out what the cache cannot address (symlinks,
 * special files, names such as `a b`) instead of failing; `remove` fsyncs the directory.
 *
 * It claims the directory until `close()` by creating `<root>/node.lock` (pid, host name,
 * token): a directory another Node process or thread, or another FsStorage of this process,
 * has open throws a DirectoryInUseError. A lock whose process is gone (pid dead on this host, or
 * this pid with another start time) is taken over. While a native process has the directory
 * open (its marker in `<root>/native/`), the constructor waits for it to close, up to `waitMs`
 * (default 10 000; 0: no wait), then throws a DirectoryInUseError; the native `ocicache` CLI
 * and Rust crate, in return, refuse to operate while a live Node cache holds the directory.
 * `{ lock: false }` skips the claim and the wait; the caller then guarantees that nothing else
 * uses the directory. A `node.lock` that is not a regular file (a FIFO, a symlink) is refused.
 *
 * Partial downloads live in `<root>/partials/<alg>/<hex>`, the native host's files: a partial
 * left by Node is continued by the `ocicache` CLI and the other way round. While this storage
 * has one open, the claim keeps every other process away from it; `close()` keeps open ones.
 */
export class FsStorage extends MemoryStorage {
  constructor(root: string, options?: { lock?: boolean; waitMs?: number });
  readonly root: string;
  /**
   * The bytes of `<root>/config.json`, or null: `Cache.open` reads the directory's settings
   * from it. A symlink, FIFO or directory there is an InvalidConfigError.
   */
  readConfigFile(): Uint8Array | null;
  /** Whether this storage holds `<root>/node.lock`. */
  readonly locked: boolean;
  /** Closes every file descriptor and releases the directory (idempotent). */
  close(): void;
}

export interface Clock { nowMillis(): number; monotonicNanos(): number; }
export const systemClock: Clock;
export class ManualClock implements Clock {
  constructor(startMs?: number);
  nowMillis(): number; monotonicNanos(): number;
  advance(ms: number): void; set(ms: number): void;
}
/**
 * A running hash (Node's `crypto.Hash` is one). `abandon`, if present, is called when the hash
 * is dropped unfinished (an aborted blob writer), so a state holding a resource can free it.
 */
export interface HashState { update(data: Uint8Array): unknown; digest(): Uint8Array; abandon?(): void; }
/** Hash provider: `start` returns a state, or null to use the core's built-in SHA-2. */
export interface Hasher { start(algorithm: 'sha256' | 'sha384' | 'sha512'): HashState | null; }
/** node:crypto on the calling thread. */
export const nodeHasher: Hasher;
/**
 * node:crypto on worker threads: a hash that passes `handoffBytes` (default 1 MiB) moves to a
 * worker thread, which hashes while the caller stores the bytes; smaller hashes run inline.
 * The Node entry's default hasher is one shared instance (`threadedHasher`).
 */
export class ThreadedHasher implements Hasher {
  /**
   * `threads`: worker threads at most (default: cores − 1, at most 4; 0 hashes inline);
   * `handoffBytes`: a hash moves to a thread once it has seen more than this;
   * `ringBytes`: bytes in flight per thread (default 16 MiB).
   */
  constructor(options?: { threads?: number; handoffBytes?: number; ringBytes?: number });
  readonly handoffBytes: number;
  start(algorithm: 'sha256' | 'sha384' | 'sha512'): HashState | null;
  /** Worker threads running. */
  readonly threads: number;
  /** Hashes running on a worker thread now. */
  readonly active: number;
  /** Stops the worker threads; a hash running on one fails (its blob is refused). */
  close(): Promise<void>;
}
/** The Node entry's default hasher. */
export const threadedHasher: ThreadedHasher;
export type LogFn = (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields: Record<string, string>) => void;

export type Policy = 'lru' | 'size' | 'ttl' | 'expired' | { composite: Array<[number, Policy]> };
export interface Config {
  max_bytes: number; high_watermark_percent: number; low_watermark_percent: number;
  default_ttl_ms: number; manifest_ttl_ms: number | null; blob_ttl_ms: number | null;
  tag_ttl_ms: number; sliding_ttl: boolean; max_tag_history: number; max_manifest_bytes: number;
  stale_if_error: boolean; verify_reads: boolean; eviction: Policy; compaction_min_records: number;
  /** `'strict'` (default): every put is on disk when it returns; `'relaxed'`: no sync (needs verify_reads). */
  durability: Durability;
}
/**
 * How hard the storage works to keep puts across a power loss (bindings-js/README.md says what
 * each level means for FsStorage, OPFS and memory).
 */
export type Durability = 'strict' | 'relaxed';
/**
 * `config`: settings passed in code. They override, for this cache only, those of the
 * directory's `config.json` (read when the storage has `readConfigFile`, as FsStorage and the
 * browser's OPFS storage do;
 * the same keys, checks and errors as the native host), which override the defaults. The file
 * is never changed.
 */
export interface OpenOptions {
  storage: Storage; clock?: Clock; config?: Partial<Config>; hasher?: Hasher | null; log?: LogFn;
}

export interface Key { kind: Kind; digest: string; }
export interface Manifest { digest: string; mediaType: string; bytes: Uint8Array; text: string; }
export type Resolution = { state: 'fresh' | 'stale'; digest: string } | { state: 'unknown' };
export interface TagUpdate { previous: string | null; moved: boolean; }
export interface TagHistoryEntry { digest: string; changed_at: number; }
export interface TagMapping {
  reference: string; digest: string; created_at: number; updated_at: number; validated_at: number;
  fresh_until: number | null; invalidated: boolean; access_count: number; history: TagHistoryEntry[];
}
export interface EntryInfo {
  kind: Kind; digest: string; size: number; created_at: number; accessed_at: number;
  expires_at: number | null; expired: boolean; access_count: number; pins: number; referrers: number;
  media_type: string | null; quarantined: boolean;
}
export interface Stats {
  total_entries: number; manifests: number; blobs: number; tags: number; expired_entries: number;
  pinned_entries: number; quarantined_entries: number; total_size_bytes: number; max_size_bytes: number;
  hit_rate: number; total_evictions: number; total_errors: number; last_compaction: number | null;
  average_access_count: number;
}
/** Every field of the core's MetricsSnapshot (see tests/scenarios/README.md). */
export type MetricsSnapshot = Record<string, number | null>;
export interface IntegrityIssue { what: string; detail: string; }
export interface IntegrityReport {
  checked: number; valid: number; corrupted: IntegrityIssue[]; missing: IntegrityIssue[];
  quarantined: IntegrityIssue[]; unindexed: IntegrityIssue[]; healthy: boolean;
}
export interface RepairReport {
  before: IntegrityReport; removed_corrupted: number; removed_missing: number; adopted: number;
  removed_unindexed: number; temps_removed: number; left_alone: number;
}
export interface CleanupReport { expired_removed: number; evicted: number; bytes_freed: number; compacted: boolean; }
export interface RecoveryReport {
  snapshot_generation: number | null; snapshot_damaged: boolean; journal_records: number; torn_tail: boolean;
  journal_damaged_regions: number; journal_damaged_bytes: number;
  stale_journals_removed: number; temps_removed: number; orphans_adopted: number; orphans_removed: number;
  missing_dropped: number; evicted: number; compacted: boolean; clean_shutdown: boolean;
  /** Index rows whose size was not their file's: re-hashed, then adopted or removed. */
  size_mismatches: number;
  /** Files in the cache's directories it did not write: reported and left in place. */
  foreign_files: number; [more: string]: unknown;
}
export interface DebugInfo {
  config: Config; policy: string; stats: Stats; metrics: MetricsSnapshot; journal_generation: number;
  journal_records: number; recovery: RecoveryReport;
}
export type Bytes = Uint8Array | string;

export class BlobWriter implements Disposable {
  write(chunk: Uint8Array): void;
  readonly written: number;
  commit(): string;
  abort(): void;
  [Symbol.dispose](): void;
}
export class BlobReader implements Disposable, Iterable<Uint8Array> {
  readonly size: number;
  read(max?: number): Uint8Array;
  close(): void;
  [Symbol.iterator](): Iterator<Uint8Array>;
  [Symbol.dispose](): void;
}

/** What became of the tag in a pull. */
export type TagOutcome =
  | { state: 'digest' | 'fresh' | 'revalidated' | 'fetched' }
  | { state: 'moved'; previous: string }
  | { state: 'stale'; reason: string };
/** One manifest of a pulled graph (`fetched`: bytes downloaded, 0 when it came from the cache). */
export interface ManifestReport { digest: string; media_type: string; platform: string | null; fetched: number; }
/** One blob of a pulled graph. */
export interface BlobReport {
  digest: string;
  media_type: string;
  size: number;
  platform: string | null;
  /** Body bytes received for it (more than `size` when a download restarted). */
  fetched: number;
  /** Its size when it was already cached, else 0. */
  from_cache: number;
  /** Where a download resumed with `Range` after a break, if it did. */
  resumed_from: number | null;
}
/** What a pull did: the Rust `PullReport`, with its field names. */
export interface PullReport {
  reference: string;
  digest: string;
  media_type: string;
  tag: TagOutcome;
  manifests: ManifestReport[];
  blobs: BlobReport[];
  /** HTTP requests made (token requests included). */
  requests: number;
  bytes_fetched: number;
  bytes_from_cache: number;
}
/** What `cache.export` wrote (the native `ExportReport`). */
export interface ExportReport {
  /** The reference exported, canonical (`docker.io/library/nginx:1.25`). */
  reference: string;
  digest: string;
  media_type: string;
  /** The tag written as `org.opencontainers.image.ref.name`, if the reference has one. */
  tag: string | null;
  /** The cached tag was past its freshness window (exported as cached, nothing asked). */
  tag_stale: boolean;
  dir: string;
  /** Manifests and blobs of the image's graph, and the blobs' bytes. */
  manifests: number;
  blobs: number;
  bytes: number;
  /** Blobs hard-linked from the cache directory, copied, or already in the layout. */
  linked: number;
  copied: number;
  already_present: number;
  /** Digests the tag named in `index.json` before, now replaced (their files stay). */
  replaced: string[];
}
/** What `cache.import` stored (the native `ImportReport`). */
export interface ImportReport {
  dir: string;
  /** The images taken from `index.json`, with the tag mapping recorded for each (canonical), if any. */
  images: { digest: string; media_type: string; tag: string | null }[];
  manifests_stored: number;
  manifests_present: number;
  blobs_stored: number;
  blobs_present: number;
  bytes_stored: number;
}
export interface ImportOptions {
  /** Only the image whose `org.opencontainers.image.ref.name` is this tag. */
  tag?: string;
  /** The repository of the layout's tags (`ghcr.io/org/app`), for layouts that do not say (skopeo's). */
  repository?: string;
}
/** Per-blob progress of a pull. `bytes` events carry the chunk's length and the bytes held so far. */
export type PullProgress =
  | { type: 'started'; digest: string; size: number; offset: number }
  | { type: 'bytes'; digest: string; bytes: number; received: number; size: number }
  | { type: 'done'; digest: string; size: number }
  | { type: 'from-cache'; digest: string; size: number };
export interface PullOptions {
  /** `os/arch[/variant]` taken from an index (default `linux/amd64`). */
  platform?: string;
  /** Every platform of an index. */
  allPlatforms?: boolean;
  /** Serve a cached tag stale when the registry is unreachable or answers 5xx (default true). */
  allowStale?: boolean;
  /** Only what the cache holds: no request at all. */
  offline?: boolean;
  /** Plain HTTP allowed for this registry (always allowed on loopback). */
  plainHttp?: boolean;
  /** Mirror base URLs tried before the registry. */
  mirrors?: string[];
  /**
   * Per registry host (`host[:port]`). When absent, Node looks them up for the registry and
   * each mirror where docker, podman and skopeo keep them (the cache directory's `auth_file`,
   * Docker's `config.json` with its credential helpers, containers' `auth.json`); `{}` sends
   * none and reads no file. The browser entry reads no file.
   */
  credentials?: Record<string, { username: string; password: string } | { identityToken: string }>;
  /** Blob downloads in flight at once (default 4). */
  concurrency?: number;
  /** Cancels the pull: in-flight requests are aborted and the promise rejects with `signal.reason`. */
  signal?: AbortSignal;
  onProgress?: (event: PullProgress) => void;
  /** The fetch to use (default the global `fetch`); it must not follow redirects itself. */
  fetch?: typeof globalThis.fetch;
}

/** An OCI artifact cache (synchronous; in browsers it lives in a Worker, see `ocicache/browser`). */
export class Cache implements Disposable {
  static open(options: OpenOptions): Cache;
  readonly storage: Storage;
  readonly isOpen: boolean;
  readonly config: Config;
  /** The durability level the storage honours: `config.durability`, or `'strict'` if it cannot relax. */
  readonly durability: Durability;
  recovery(): RecoveryReport;
  putManifest(digest: string, data: Bytes, options?: { mediaType?: string }): string;
  getManifest(digest: string): Manifest;
  hasManifest(digest: string): boolean;
  deleteManifest(digest: string): boolean;
  manifestReferences(digest: string): Key[];
  putBlob(data: Bytes, options?: { digest?: string }): string;
  beginBlob(options?: { digest?: string; size?: number | bigint }): BlobWriter;
  putBlobStream(source: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options?: { digest?: string; size?: number | bigint }): Promise<string>;
  getBlob(digest: string): Uint8Array;
  openBlob(digest: string): BlobReader;
  /**
   * Pulls `reference` from its registry over `fetch` (Node 20+) into the cache; see the
   * README's "Pulling from a registry". A fresh tag with its graph cached makes no request.
   */
  pull(reference: string, options?: PullOptions): Promise<PullReport>;
  blobStream(digest: string, options?: { chunkSize?: number }): ReadableStream<Uint8Array>;
  /** Node only: the blob as a Node Readable. */
  blobReadable(digest: string, options?: { chunkSize?: number }): import('node:stream').Readable;
  /**
   * Node only: writes the image `reference` names, from the cache alone, into `dir` as an OCI
   * image layout (added to an existing one); see the README's "OCI image layouts".
   */
  export(reference: string, dir: string): Promise<ExportReport>;
  /** Node only: reads the OCI image layout in `dir` into the cache, every blob verified. */
  import(dir: string, options?: ImportOptions): Promise<ImportReport>;
  hasBlob(digest: string): boolean;
  deleteBlob(digest: string): boolean;
  pin(kind: Kind, digest: string): number;
  unpin(kind: Kind, digest: string): number;
  deleteEntry(kind: Kind, digest: string): boolean;
  hasEntry(kind: Kind, digest: string): boolean;
  /**
   * Records that `reference` points to `digest`. Tag operations take a tag without a digest
   * (`nginx:1`, not `nginx:1@sha256:…`, which is `invalid_reference`); `resolveTag` takes both.
   */
  putTag(reference: string, digest: string): TagUpdate;
  getTag(reference: string): TagMapping;
  hasTag(reference: string): boolean;
  resolveTag(reference: string): Resolution;
  resolveTags(references: string[]): Array<{ ok: Resolution } | { error: OcicacheError }>;
  resolveFailed(reference: string): string;
  detectMovement(reference: string, remoteDigest: string): boolean;
  invalidateTag(reference: string): boolean;
  deleteTag(reference: string): boolean;
  tagHistory(reference: string): TagHistoryEntry[];
  tags(): TagMapping[];
  stats(): Stats;
  metrics(): MetricsSnapshot;
  prometheus(): string;
  size(): number;
  contents(): EntryInfo[];
  debugInfo(): DebugInfo;
  exportDebugJson(): string;
  checkIntegrity(): IntegrityReport;
  validateDigests(): { valid: number; invalid: string[] };
  repair(): RepairReport;
  clearExpired(): number;
  cleanup(): CleanupReport;
  clear(): void;
  flush(): void;
  close(): void;
  abandon(): void;
  [Symbol.dispose](): void;
}
/**
 * Opens (creating if needed) a cache directory on the filesystem (Node), with the settings of
 * its `config.json` under those of `options.config`, claiming it until `close()` (see
 * FsStorage): throws a DirectoryInUseError if another Node process or thread has it open, or if
 * a native process still has it open after `options.waitMs` (default 10 000). One directory is
 * used by one Node cache, or by native processes, at a time: the CLI refuses to operate while
 * the claim is held.
 */
export function openCache(dir: string, options?: Omit<OpenOptions, 'storage'> & { waitMs?: number }): Cache;
