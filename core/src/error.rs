//! The one error vocabulary of ocicache.
//!
//! Every host maps [`Error`] one-to-one: to the WIT `error` variant, to JS errors with a stable
//! `code` (see [`ErrorKind::code`]) and to CLI exit codes. Bad input always gets one of these and
//! changes nothing in the cache.

use crate::storage::StorageError;
use serde::{Deserialize, Serialize};

/// Everything that can go wrong in a cache operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The entry (manifest, blob or tag) is not in the cache.
    #[error("not found: {0}")]
    NotFound(String),
    /// The entry is in the cache but its TTL has passed. It stays `Expired` until re-put or removed.
    #[error("expired: {0}")]
    Expired(String),
    /// Stored bytes do not hash to their digest. The entry is quarantined and never served again.
    #[error("corrupted: {what}: {detail}")]
    Corrupted {
        /// The entry (`blob sha256:…`).
        what: String,
        /// What was found wrong.
        detail: String,
    },
    /// The entry cannot fit under the byte cap, even after evicting everything evictable.
    #[error(
        "cache full: {needed} bytes needed, {available} can be made available (cap {capacity})"
    )]
    Full {
        /// Size of the entry being stored.
        needed: u64,
        /// Bytes that eviction could free plus bytes already free.
        available: u64,
        /// The configured byte cap.
        capacity: u64,
    },
    /// The tag was explicitly invalidated and must be re-put before it answers again.
    #[error("invalidated: {0}")]
    Invalidated(String),
    /// A digest string that is not `algorithm:lower-case-hex` of the right length.
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest {
        /// What was given (truncated to 200 characters).
        input: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A reference that does not follow the OCI reference grammar.
    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference {
        /// What was given (truncated to 200 characters).
        input: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Content hashed to another digest than the one it was stored under.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the caller announced.
        expected: String,
        /// The digest of the bytes actually received.
        actual: String,
    },
    /// Content had another length than announced.
    #[error("size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The size the caller announced.
        expected: u64,
        /// The bytes received (at least; writing stops at the first excess byte).
        actual: u64,
    },
    /// A manifest body that is not a valid OCI or Docker v2 manifest or index.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// Input larger than its limit (manifests: 4 MiB by default).
    #[error("too large: {size} bytes, limit {limit}")]
    TooLarge {
        /// The offending size.
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// An argument that is out of range or a handle used after it was finished.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A configuration rejected at open.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The host failed — its storage, or a host hasher (which gives no digest rather than a
    /// wrong one); the operation changed nothing that was committed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// A registry could not be reached, or kept failing (after retries): connection errors,
    /// 5xx, 429, another 4xx than 401, 403 and 404, or offline with nothing cached. Carries the
    /// HTTP status if there was one, and the registry's own message and error code.
    #[error("network: {registry}: {message}{}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Network {
        /// The registry (`host[:port]`) the pull was for.
        registry: String,
        /// The last HTTP status, if a response came.
        status: Option<u16>,
        /// What went wrong, with the registry's message when it sent one.
        message: String,
        /// The registry's error code (`errors[].code` of its JSON error body, the first one
        /// given, e.g. `UNAVAILABLE`), if it sent one.
        registry_code: Option<String>,
    },
    /// A registry refused access: credentials missing, wrong, or without the right to pull.
    #[error("unauthorized: {registry}: {message}")]
    Unauthorized {
        /// The registry (`host[:port]`) that refused.
        registry: String,
        /// What it said.
        message: String,
    },
}

/// The kind of an [`Error`], without its details: what tests, scenarios and bindings match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// See [`Error::NotFound`].
    NotFound,
    /// See [`Error::Expired`].
    Expired,
    /// See [`Error::Corrupted`].
    Corrupted,
    /// See [`Error::Full`].
    Full,
    /// See [`Error::Invalidated`].
    Invalidated,
    /// See [`Error::InvalidDigest`].
    InvalidDigest,
    /// See [`Error::InvalidReference`].
    InvalidReference,
    /// See [`Error::DigestMismatch`].
    DigestMismatch,
    /// See [`Error::SizeMismatch`].
    SizeMismatch,
    /// See [`Error::InvalidManifest`].
    InvalidManifest,
    /// See [`Error::TooLarge`].
    TooLarge,
    /// See [`Error::InvalidArgument`].
    InvalidArgument,
    /// See [`Error::InvalidConfig`].
    InvalidConfig,
    /// See [`Error::Storage`].
    Storage,
    /// See [`Error::Network`].
    Network,
    /// See [`Error::Unauthorized`].
    Unauthorized,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 16] = [
        ErrorKind::NotFound,
        ErrorKind::Expired,
        ErrorKind::Corrupted,
        ErrorKind::Full,
        ErrorKind::Invalidated,
        ErrorKind::InvalidDigest,
        ErrorKind::InvalidReference,
        ErrorKind::DigestMismatch,
        ErrorKind::SizeMismatch,
        ErrorKind::InvalidManifest,
        ErrorKind::TooLarge,
        ErrorKind::InvalidArgument,
        ErrorKind::InvalidConfig,
        ErrorKind::Storage,
        ErrorKind::Network,
        ErrorKind::Unauthorized,
    ];

    /// The stable, snake_case code used by scenarios, JS errors and the CLI's `--json` output.
    ///
    /// ```
    /// assert_eq!(ocicache_core::ErrorKind::DigestMismatch.code(), "digest_mismatch");
    /// ```
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Expired => "expired",
            ErrorKind::Corrupted => "corrupted",
            ErrorKind::Full => "full",
            ErrorKind::Invalidated => "invalidated",
            ErrorKind::InvalidDigest => "invalid_digest",
            ErrorKind::InvalidReference => "invalid_reference",
            ErrorKind::DigestMismatch => "digest_mismatch",
            ErrorKind::SizeMismatch => "size_mismatch",
            ErrorKind::InvalidManifest => "invalid_manifest",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::Storage => "storage",
            ErrorKind::Network => "network",
            ErrorKind::Unauthorized => "unauthorized",
        }
    }
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Expired(_) => ErrorKind::Expired,
            Error::Corrupted { .. } => ErrorKind::Corrupted,
            Error::Full { .. } => ErrorKind::Full,
            Error::Invalidated(_) => ErrorKind::Invalidated,
            Error::InvalidDigest { .. } => ErrorKind::InvalidDigest,
            Error::InvalidReference { .. } => ErrorKind::InvalidReference,
            Error::DigestMismatch { .. } => ErrorKind::DigestMismatch,
            Error::SizeMismatch { .. } => ErrorKind::SizeMismatch,
            Error::InvalidManifest(_) => ErrorKind::InvalidManifest,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::InvalidConfig(_) => ErrorKind::InvalidConfig,
            Error::Storage(_) => ErrorKind::Storage,
            Error::Network { .. } => ErrorKind::Network,
            Error::Unauthorized { .. } => ErrorKind::Unauthorized,
        }
    }

    pub(crate) fn invalid_digest(input: &str, reason: impl Into<String>) -> Error {
        Error::InvalidDigest {
            input: truncate(input),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_reference(input: &str, reason: impl Into<String>) -> Error {
        Error::InvalidReference {
            input: truncate(input),
            reason: reason.into(),
        }
    }
}

/// Keeps hostile input from bloating error messages and logs.
fn truncate(input: &str) -> String {
    const MAX: usize = 200;
    if input.len() <= MAX {
        return input.to_owned();
    }
    let mut end = MAX;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &input[..end])
}

/// Shorthand for results of cache operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for kind in ErrorKind::ALL {
            let code = kind.code();
            assert!(seen.insert(code), "duplicate code {code}");
            assert!(code.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{code}\""), "serde name matches code");
        }
    }

    #[test]
    fn hostile_input_is_truncated_in_messages() {
        let long = "é".repeat(500);
        let err = Error::invalid_digest(&long, "bad");
        let Error::InvalidDigest { input, .. } = err else {
            panic!()
        };
        assert!(input.len() < 210);
    }
}
