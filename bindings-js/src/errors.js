// Errors of the ocicache package: one Error subclass per core error kind, each with the stable
// snake_case `code` of the core's `ErrorKind::code()` (tests/scenarios/README.md).

/** Base class of every error the cache throws. */
export class OcicacheError extends Error {
  /**
   * @param {string} message
   * @param {{code?: string, details?: object, cause?: unknown}} [options]
   */
  constructor(message, options = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    /** @type {string} */
    this.code = options.code ?? new.target.code ?? 'storage';
    /** Structured fields of the error (sizes, digests, …). */
    this.details = options.details ?? {};
  }
  get name() {
    return this.constructor.name;
  }
}

function kind(name, code) {
  const cls = {
    [name]: class extends OcicacheError {
      constructor(message, options = {}) {
        super(message, { ...options, code });
      }
    },
  }[name];
  cls.code = code;
  return cls;
}

/** The entry (manifest, blob or tag) is not in the cache. */
export const NotFoundError = kind('NotFoundError', 'not_found');
/** The entry is in the cache but its TTL has passed. */
export const ExpiredError = kind('ExpiredError', 'expired');
/** Stored bytes do not hash to their digest; the entry is quarantined. */
export const CorruptedError = kind('CorruptedError', 'corrupted');
/** The entry cannot fit under the byte cap. */
export const FullError = kind('FullError', 'full');
/** The tag was invalidated and must be put again. */
export const InvalidatedError = kind('InvalidatedError', 'invalidated');
/** Not a digest (`algorithm:lower-case-hex` of the right length), or not a string. */
export const InvalidDigestError = kind('InvalidDigestError', 'invalid_digest');
/** Not an OCI reference, or not a string. */
export const InvalidReferenceError = kind('InvalidReferenceError', 'invalid_reference');
/** Content hashed to another digest than announced. */
export const DigestMismatchError = kind('DigestMismatchError', 'digest_mismatch');
/** Content had another length than announced. */
export const SizeMismatchError = kind('SizeMismatchError', 'size_mismatch');
/** Not a valid OCI / Docker v2 manifest or index. */
export const InvalidManifestError = kind('InvalidManifestError', 'invalid_manifest');
/** Larger than its limit. */
export const TooLargeError = kind('TooLargeError', 'too_large');
/** An argument of the wrong type or out of range, or a finished handle / closed cache. */
export const InvalidArgumentError = kind('InvalidArgumentError', 'invalid_argument');
/** A configuration that does not deserialize or validate. */
export const InvalidConfigError = kind('InvalidConfigError', 'invalid_config');
/**
 * A registry could not be reached or kept failing (after retries), answered another 4xx than
 * 401, 403 and 404, or offline with nothing cached. `registry` is its `host[:port]`, `status`
 * the last HTTP status (null when no response came), `registryCode` the registry's own error
 * code from its JSON error body (`MANIFEST_UNKNOWN`, `UNAVAILABLE`, …; null if it sent none).
 * `code` stays `network`, as every error's `code` is its kind. The same in `details`, with the
 * registry's `message`.
 */
export class NetworkError extends OcicacheError {
  constructor(message, options = {}) {
    super(message, { ...options, code: 'network' });
    /** @type {string|null} */
    this.registry = this.details.registry ?? null;
    /** @type {number|null} */
    this.status = this.details.status ?? null;
    /** @type {string|null} */
    this.registryCode = this.details.registryCode ?? null;
  }
}
NetworkError.code = 'network';
/** A registry refused access. `details`: `registry`, `message`. */
export const UnauthorizedError = kind('UnauthorizedError', 'unauthorized');
/**
 * The host's storage failed; nothing committed was changed. `storageKind` is `not_found`,
 * `no_space`, `invalid_path` or `io`; `cause` holds what the storage threw, if anything.
 */
export class StorageError extends OcicacheError {
  constructor(message, options = {}) {
    super(message, { ...options, code: 'storage' });
    /** @type {'not_found'|'no_space'|'invalid_path'|'io'} */
    this.storageKind = options.storageKind ?? options.details?.kind ?? 'io';
  }
}
StorageError.code = 'storage';

/**
 * The cache directory is open elsewhere: in another Node process or thread (`<root>/node.lock`),
 * or in another browser tab or worker (the Web Lock `ocicache:<directory>`). A StorageError
 * (`code` `storage`, `storageKind` `io`); nothing was opened or changed. `details.directory`
 * names the directory; in Node `details.holder` the process holding it (`pid`, `hostname`, …).
 */
export class DirectoryInUseError extends StorageError {
  constructor(message, options = {}) {
    super(message, { storageKind: 'io', ...options });
  }
}
DirectoryInUseError.code = 'storage';

/** Every error class by its code. */
export const ERROR_CLASSES = Object.freeze({
  not_found: NotFoundError,
  expired: ExpiredError,
  corrupted: CorruptedError,
  full: FullError,
  invalidated: InvalidatedError,
  invalid_digest: InvalidDigestError,
  invalid_reference: InvalidReferenceError,
  digest_mismatch: DigestMismatchError,
  size_mismatch: SizeMismatchError,
  invalid_manifest: InvalidManifestError,
  too_large: TooLargeError,
  invalid_argument: InvalidArgumentError,
  invalid_config: InvalidConfigError,
  storage: StorageError,
  network: NetworkError,
  unauthorized: UnauthorizedError,
});

/** Builds the error for a core error (installed into the wasm module as its error factory). */
export function makeError(code, message, detailsJson, cause) {
  let details = {};
  try {
    details = detailsJson ? JSON.parse(detailsJson) : {};
  } catch {
    // keep {}
  }
  const Cls = ERROR_CLASSES[code] ?? OcicacheError;
  return new Cls(message, { code, details, cause });
}

/**
 * An error for a storage implementation to throw with an explicit kind (`not_found`,
 * `no_space`, `invalid_path`, `io`). Storages may also throw Node errors (`code` ENOENT,
 * ENOSPC, EDQUOT) or DOMExceptions (`QuotaExceededError`, `NotFoundError`).
 */
export function storageFailure(storageKind, message) {
  const e = new Error(message);
  e.storageKind = storageKind;
  if (storageKind === 'invalid_path') e.code = 'EINVALIDPATH';
  return e;
}
