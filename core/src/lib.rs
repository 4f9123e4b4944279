//! # ocicache-core
//!
//! The pure core of ocicache: a cache for OCI artifacts — manifests, blobs and tag → digest
//! mappings with history — with TTLs, a byte cap with pluggable eviction, integrity
//! verification and repair, metrics and debug tools.
//!
//! The core does no I/O of its own. Its host supplies a [`Storage`], a [`Clock`], a
//! [`LogSink`] and optionally a faster [`HashProvider`]; the same core runs natively, inside the
//! WebAssembly component hosted by wasmtime, and in JavaScript through wasm-bindgen. Talking to
//! registries is the host's job too: the core decides ([`Resolution`]) and the host reports
//! what it fetched.
//!
//! ```
//! use ocicache_core::{Cache, ManualClock, Reference, Resolution, storage::MemoryStorage};
//!
//! let clock = ManualClock::new(1_700_000_000_000);
//! let mut cache = Cache::builder(MemoryStorage::new(), clock.clone()).open()?;
//!
//! // Blobs stream in and out; nothing is stored unless it hashes to its digest.
//! let mut writer = cache.begin_blob(None, None)?;
//! cache.write_blob(&mut writer, b"layer ")?;
//! cache.write_blob(&mut writer, b"bytes")?;
//! let digest = cache.commit_blob(writer)?;
//! assert_eq!(cache.get_blob(&digest)?, b"layer bytes");
//!
//! // Tags: the core decides, the host fetches and reports back.
//! let nginx: Reference = "nginx:1.25".parse()?;
//! assert_eq!(cache.resolve_tag(&nginx)?, Resolution::Unknown);
//! cache.put_tag(&nginx, &digest)?;
//! assert_eq!(cache.resolve_tag(&nginx)?, Resolution::Fresh(digest.clone()));
//! clock.advance(10 * 60_000);
//! assert_eq!(cache.resolve_tag(&nginx)?, Resolution::Stale(digest));
//! # Ok::<(), ocicache_core::Error>(())
//! ```

#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::dbg_macro)]

pub mod cache;
pub mod clock;
pub mod config;
pub mod digest;
pub mod error;
pub mod eviction;
pub mod hashing;
pub mod image_layout;
pub mod index;
mod journal;
pub mod key;
pub mod layout;
pub mod log;
pub mod manifest;
pub mod metrics;
pub mod pull;
pub mod reference;
pub mod storage;
pub mod tags;

pub use cache::{
    BlobReader, BlobWriter, Cache, CacheBuilder, CleanupReport, DebugExport, DebugInfo, EntryInfo,
    IntegrityIssue, IntegrityReport, Manifest, RecoveryReport, RepairReport, Stats,
};
pub use clock::{Clock, ManualClock, Millis};
pub use config::{CONFIG_FILE, Config, Durability, MAX_CONFIG_FILE_BYTES, PolicyConfig};
pub use digest::{Algorithm, Digest};
pub use error::{Error, ErrorKind, Result};
pub use eviction::EvictionPolicy;
pub use hashing::{BuiltinHasher, HashProvider, HashState};
pub use key::{Key, Kind};
pub use log::{Level, LogSink, MemoryLog, NoLog};
pub use manifest::{MediaType, ParsedManifest};
pub use metrics::MetricsSnapshot;
pub use reference::Reference;
pub use storage::{Storage, StorageError, TempId};
pub use tags::{Resolution, TagHistoryEntry, TagMapping, TagUpdate};
