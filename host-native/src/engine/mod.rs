//! Engines: what actually runs the core behind [`crate::Cache`].
//!
//! [`Engine`] is the core's whole operation set in the core's own types, with blob writers and
//! readers addressed by `u32` handles, so that an engine whose writers and readers live on the
//! other side of a boundary (the WebAssembly component, where they are resources) implements it
//! the same way as the one that links the core natively ([`native::NativeEngine`]).
//!
//! Engines know nothing about locking: [`crate::Cache`] serializes calls (an in-process mutex
//! plus the directory's file lock) and calls [`Engine::refresh`] first under the file lock.

pub(crate) mod component;
pub(crate) mod native;

use ocicache_core::{
    CleanupReport, Clock, Config, DebugInfo, Digest, Durability, EntryInfo, IntegrityReport, Key,
    Level, LogSink, Manifest, MediaType, MetricsSnapshot, RecoveryReport, Reference, RepairReport,
    Resolution, Result, Stats, TagHistoryEntry, TagMapping, TagUpdate,
};

/// Adapts a boxed clock to the core's builder, which takes `impl Clock`.
pub(crate) struct BoxedClock(pub(crate) Box<dyn Clock>);

impl Clock for BoxedClock {
    fn now_millis(&self) -> u64 {
        self.0.now_millis()
    }
    fn monotonic_nanos(&self) -> u64 {
        self.0.monotonic_nanos()
    }
}

/// Adapts a boxed log sink likewise.
pub(crate) struct BoxedLog(pub(crate) Box<dyn LogSink>);

impl LogSink for BoxedLog {
    fn log(&self, level: Level, message: &str, fields: &[(&str, &str)]) {
        self.0.log(level, message, fields);
    }
}

/// A blob writer or reader, named by the engine.
pub(crate) type Handle = u32;

/// The core's operations, over handles. Every method maps to one `ocicache_core::Cache` method
/// of the same name unless documented otherwise.
pub(crate) trait Engine: Send {
    /// Catches up with journal records appended by other processes sharing the directory;
    /// `true` if anything changed.
    fn refresh(&mut self) -> Result<bool>;

    // ----- manifests -----
    fn put_manifest(
        &mut self,
        digest: &Digest,
        bytes: &[u8],
        media_type: Option<&str>,
    ) -> Result<MediaType>;
    fn get_manifest(&mut self, digest: &Digest) -> Result<Manifest>;
    fn has_manifest(&mut self, digest: &Digest) -> Result<bool>;
    fn delete_manifest(&mut self, digest: &Digest) -> Result<bool>;
    fn manifest_references(&mut self, digest: &Digest) -> Result<Vec<Key>>;

    // ----- blobs -----
    fn put_blob(&mut self, expected: Option<&Digest>, bytes: &[u8]) -> Result<Digest>;
    fn get_blob(&mut self, digest: &Digest) -> Result<Vec<u8>>;
    fn has_blob(&mut self, digest: &Digest) -> Result<bool>;
    fn delete_blob(&mut self, digest: &Digest) -> Result<bool>;
    /// Starts a streamed write; the handle stays valid until commit or abort.
    fn begin_blob(&mut self, expected: Option<&Digest>, size: Option<u64>) -> Result<Handle>;
    /// Appends a chunk; a failed write finishes the writer (the handle stays until
    /// commit/abort, which then fail or do nothing).
    fn write_blob(&mut self, writer: Handle, chunk: &[u8]) -> Result<()>;
    /// Verifies and commits; the handle is gone afterwards, whatever the outcome.
    fn commit_blob(&mut self, writer: Handle) -> Result<Digest>;
    /// Discards a writer; unknown handles are ignored.
    fn abort_blob(&mut self, writer: Handle);
    /// Starts or continues a download whose bytes the storage keeps across processes
    /// (`ocicache_core::Cache::resume_blob`): the writer and the bytes it holds, or `None`
    /// where the engine's storage keeps none (the default).
    fn resume_blob(
        &mut self,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<Option<(Handle, u64)>> {
        let _ = (expected, size);
        Ok(None)
    }
    /// Keeps a resumable writer's bytes for a later `resume_blob` (others are aborted).
    fn keep_blob(&mut self, writer: Handle) {
        self.abort_blob(writer);
    }
    /// Opens a reader; returns its handle and the blob's size.
    fn open_blob(&mut self, digest: &Digest) -> Result<(Handle, u64)>;
    /// Reads the next chunk (`Ok(0)` at the end; the last chunk only after verification).
    fn read_blob(&mut self, reader: Handle, buf: &mut [u8]) -> Result<usize>;
    /// Closes a reader; unknown handles are ignored.
    fn close_blob(&mut self, reader: Handle);

    // ----- any entry -----
    fn pin(&mut self, key: &Key) -> Result<u32>;
    fn unpin(&mut self, key: &Key) -> Result<u32>;
    fn delete(&mut self, key: &Key) -> Result<bool>;

    // ----- tags -----
    fn put_tag(&mut self, reference: &Reference, digest: &Digest) -> Result<TagUpdate>;
    fn get_tag(&mut self, reference: &Reference) -> Result<TagMapping>;
    fn has_tag(&mut self, reference: &Reference) -> Result<bool>;
    fn resolve_tag(&mut self, reference: &Reference) -> Result<Resolution>;
    fn resolve_tags(&mut self, references: &[Reference]) -> Result<Vec<Result<Resolution>>>;
    fn resolve_failed(&mut self, reference: &Reference) -> Result<Digest>;
    fn detect_movement(&mut self, reference: &Reference, remote: &Digest) -> Result<bool>;
    fn invalidate_tag(&mut self, reference: &Reference) -> Result<bool>;
    fn delete_tag(&mut self, reference: &Reference) -> Result<bool>;
    fn tag_history(&mut self, reference: &Reference) -> Result<Vec<TagHistoryEntry>>;
    fn tags(&mut self) -> Result<Vec<TagMapping>>;

    // ----- inspection and maintenance -----
    fn stats(&mut self) -> Result<Stats>;
    fn metrics(&mut self) -> Result<MetricsSnapshot>;
    /// The metrics as Prometheus text (rendered by the core).
    fn metrics_prometheus(&mut self) -> Result<String>;
    fn size(&mut self) -> Result<u64>;
    fn contents(&mut self) -> Result<Vec<EntryInfo>>;
    fn debug_info(&mut self) -> Result<DebugInfo>;
    fn export_debug_json(&mut self) -> Result<String>;
    fn check_integrity(&mut self) -> Result<IntegrityReport>;
    fn repair(&mut self) -> Result<RepairReport>;
    fn validate_digests(&mut self) -> Result<(u64, Vec<String>)>;
    fn clear_expired(&mut self) -> Result<u64>;
    /// `Full`, changing nothing, if `bytes` more could not fit under the cap, keeping `keep`.
    fn check_room(&mut self, bytes: u64, keep: &[Key]) -> Result<()>;
    fn cleanup(&mut self) -> Result<CleanupReport>;
    fn clear(&mut self) -> Result<()>;
    fn config(&mut self) -> Result<Config>;
    fn durability(&mut self) -> Result<Durability>;
    fn recovery_report(&mut self) -> Result<RecoveryReport>;
    fn flush(&mut self) -> Result<()>;
    /// Closes open readers, abandons open writers (their temps are cleared by the next open)
    /// and records a clean shutdown.
    fn close(self: Box<Self>) -> Result<()>;
}
