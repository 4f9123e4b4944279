// Types of the browser entry (`ocicache/browser`): the cache in a Worker, an async proxy here.
import type {
  Config, Resolution, OcicacheError, Manifest, Key, TagUpdate, TagMapping, TagHistoryEntry, Stats,
  MetricsSnapshot, EntryInfo, DebugInfo, IntegrityReport, RepairReport, CleanupReport,
  RecoveryReport, Kind, Bytes, PullOptions, PullReport, Durability,
} from './index.js';
export * from './index.js';

export class BrowserCache implements AsyncDisposable {
  call(method: string, ...args: unknown[]): Promise<unknown>;
  recovery(): Promise<RecoveryReport>;
  /** The durability level the storage honours (OPFS: both; memory: both, nothing to sync). */
  durability(): Promise<Durability>;
  putManifest(digest: string, data: Bytes, options?: { mediaType?: string }): Promise<string>;
  getManifest(digest: string): Promise<Manifest>;
  hasManifest(digest: string): Promise<boolean>;
  deleteManifest(digest: string): Promise<boolean>;
  manifestReferences(digest: string): Promise<Key[]>;
  putBlob(data: Bytes, options?: { digest?: string }): Promise<string>;
  putBlobStream(source: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options?: { digest?: string; size?: number }): Promise<string>;
  getBlob(digest: string): Promise<Uint8Array>;
  /**
   * Pulls `reference` from its registry into the cache; the Worker does the HTTP with its own
   * `fetch` and the browser follows redirects (see the README's "Pulling in the browser": the
   * registry must send CORS headers, or be reached through a same-origin proxy). `onProgress`
   * runs on this thread; `signal` stops the pull in the Worker, then the promise rejects with
   * `signal.reason`.
   */
  pull(reference: string, options?: BrowserPullOptions): Promise<PullReport>;
  blobStream(digest: string, options?: { chunkSize?: number }): ReadableStream<Uint8Array>;
  hasBlob(digest: string): Promise<boolean>;
  deleteBlob(digest: string): Promise<boolean>;
  pin(kind: Kind, digest: string): Promise<number>;
  unpin(kind: Kind, digest: string): Promise<number>;
  deleteEntry(kind: Kind, digest: string): Promise<boolean>;
  hasEntry(kind: Kind, digest: string): Promise<boolean>;
  putTag(reference: string, digest: string): Promise<TagUpdate>;
  getTag(reference: string): Promise<TagMapping>;
  hasTag(reference: string): Promise<boolean>;
  resolveTag(reference: string): Promise<Resolution>;
  resolveTags(references: string[]): Promise<Array<{ ok: Resolution } | { error: OcicacheError }>>;
  resolveFailed(reference: string): Promise<string>;
  detectMovement(reference: string, remoteDigest: string): Promise<boolean>;
  invalidateTag(reference: string): Promise<boolean>;
  deleteTag(reference: string): Promise<boolean>;
  tagHistory(reference: string): Promise<TagHistoryEntry[]>;
  tags(): Promise<TagMapping[]>;
  stats(): Promise<Stats>;
  metrics(): Promise<MetricsSnapshot>;
  prometheus(): Promise<string>;
  size(): Promise<number>;
  contents(): Promise<EntryInfo[]>;
  debugInfo(): Promise<DebugInfo>;
  exportDebugJson(): Promise<string>;
  checkIntegrity(): Promise<IntegrityReport>;
  validateDigests(): Promise<{ valid: number; invalid: string[] }>;
  repair(): Promise<RepairReport>;
  clearExpired(): Promise<number>;
  cleanup(): Promise<CleanupReport>;
  clear(): Promise<void>;
  flush(): Promise<void>;
  /**
   * Closes the cache, closes every OPFS handle, releases the directory's Web Lock (the next
   * opener waiting for it proceeds), and ends the worker. Pulls in flight are stopped first
   * (they reject with an AbortError). Idempotent.
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}
/**
 * `cache.pull`'s options in the browser: Node's, except `fetch` (the Worker's own is used). No
 * login files are read: credentials come from `credentials` only.
 */
export type BrowserPullOptions = Omit<PullOptions, 'fetch'>;
export interface BrowserOpenOptions {
  /** The OPFS directory under the origin's root (default "ocicache"). */
  directory?: string;
  /** In memory instead of OPFS (no lock, nothing shared). */
  memory?: boolean;
  config?: Partial<Config>;
  workerUrl?: string | URL;
  /**
   * If another tab or worker of the origin has `directory` open (it holds the Web Lock
   * `ocicache:<directory>`): wait until it closes (true, the default), or reject at once with a
   * DirectoryInUseError (false).
   */
  wait?: boolean;
  /** Gives up waiting: rejects with `signal.reason` (an AbortError by default); nothing opened. */
  signal?: AbortSignal;
}
/**
 * Opens a cache in a dedicated Worker, on OPFS (`directory`) or in memory. One OPFS directory
 * serves one cache at a time across the origin's tabs and workers (Web Locks).
 */
export function openCache(options?: BrowserOpenOptions): Promise<BrowserCache>;
