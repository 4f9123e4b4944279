//! # ocicache
//!
//! The OCI artifact cache for Rust programs and the `ocicache` command line: manifests, blobs
//! and tag → digest mappings with history, TTLs, a byte cap with eviction, integrity
//! verification and repair — every rule from the pure core ([`ocicache_core`]), kept in a
//! directory of the real filesystem.
//!
//! - **Durable**: content and index are fsynced (file and directory) before an operation
//!   returns; a crash at any point leaves a directory that opens consistent.
//! - **Confined**: [`storage::FsStorage`] accepts only the paths the core builds, under its
//!   root, and never follows a symbolic link.
//! - **Shared**: [`Cache`] is `Send + Sync`; several processes may use one directory at once
//!   (an OS file lock serializes index changes; temps of live writers are never cleared).
//! - **One error vocabulary**: [`Error`] and [`ErrorKind`] are the core's.
//!
//! ```
//! use ocicache::{Cache, Digest, ErrorKind};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let cache = Cache::open(dir.path())?;
//! let digest = cache.put_blob(None, b"hello")?;
//! assert_eq!(cache.get_blob(&digest)?, b"hello");
//!
//! let unknown: Digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000".parse()?;
//! assert_eq!(cache.get_blob(&unknown).unwrap_err().kind(), ErrorKind::NotFound);
//! assert_eq!("sha256:../x".parse::<Digest>().unwrap_err().kind(), ErrorKind::InvalidDigest);
//! # Ok::<(), ocicache::Error>(())
//! ```

mod blob_io;
mod cache;
mod clock;
pub mod component;
mod credentials;
mod engine;
mod image_layout;
mod lock;
mod ownership;
pub mod pull;
pub mod storage;
#[doc(hidden)]
pub mod test_pause;
mod threaded_hasher;

pub use blob_io::{BlobReader, BlobWriter, error_of, to_io_error};
pub use cache::{CONFIG_FILE, Cache, CacheBuilder, EngineKind, load_config, load_pull_config};
pub use clock::SystemClock;
pub use credentials::{CredentialSources, DEFAULT_HELPER_TIMEOUT};
pub use image_layout::{ExportReport, ImportOptions, ImportReport, ImportedImage};
pub use ocicache_core;
pub use ocicache_core::pull::Credentials;
pub use ocicache_core::{
    CleanupReport, Clock, Config, DebugExport, DebugInfo, Digest, Durability, EntryInfo, Error,
    ErrorKind, IntegrityIssue, IntegrityReport, Key, Kind, Level, LogSink, Manifest, ManualClock,
    MediaType, MetricsSnapshot, PolicyConfig, RecoveryReport, Reference, RepairReport, Resolution,
    Result, Stats, StorageError, TagHistoryEntry, TagMapping, TagUpdate,
};
pub use threaded_hasher::ThreadedHasher;

#[cfg(test)]
mod tests;
