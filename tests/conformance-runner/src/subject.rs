//! What a host implements to have the scenarios played against it.

use ocicache_core::{
    CleanupReport, Config, DebugInfo, Digest, EntryInfo, IntegrityReport, Key, Manifest, MediaType,
    MetricsSnapshot, RecoveryReport, Reference, RepairReport, Resolution, Result, Stats,
    TagHistoryEntry, TagMapping, TagUpdate,
};

/// A cache under test, with the storage and manual clock it was lent.
///
/// One subject serves one scenario: it starts with empty storage and a manual clock at the
/// scenario's start (the monotonic clock at 0), and no cache open. The runner calls the cache
/// operations only while a cache is open ([`Subject::is_open`]); the clock and `storage_*`
/// operations at any time. Cache operations mirror `ocicache_core::Cache` method for method;
/// the `storage_*` ones act on the stored objects directly, bypassing the cache, and fail only
/// for harness problems (the message fails the scenario).
pub trait Subject {
    /// An open blob writer.
    type Writer;
    /// An open blob reader.
    type Reader;
    /// A blob writer of the cache as a pull's store.
    type PullWriter;
    /// The open cache as a pull's store (`pull` scenarios drive the core's `Pull` over it).
    type PullStore<'a>: ocicache_core::pull::PullStore<Writer = Self::PullWriter>
    where
        Self: 'a;

    /// The open cache, lent to a pull for one call.
    fn pull_store(&mut self) -> Self::PullStore<'_>;

    // ----- lifecycle and time -----

    /// Opens a cache over the subject's storage and clock (none is open).
    fn open(&mut self, config: Config) -> Result<RecoveryReport>;
    /// Closes the open cache, if any. With `flush` it flushes and records a clean shutdown;
    /// without, it is dropped as a crash would drop it (buffered access records lost). Open
    /// writers are abandoned either way (their temps stay until the next open), open readers
    /// closed.
    fn close(
        &mut self,
        flush: bool,
        writers: Vec<Self::Writer>,
        readers: Vec<Self::Reader>,
    ) -> Result<()>;
    /// Whether a cache is open.
    fn is_open(&self) -> bool;
    /// Moves the wall and monotonic clocks forward.
    fn advance_clock(&mut self, ms: u64);
    /// Sets the wall clock.
    fn set_clock(&mut self, ms: u64);
    /// Writes buffered access records.
    fn flush(&mut self) -> Result<()>;
    /// What the last open found.
    fn recovery_report(&mut self) -> Result<RecoveryReport>;

    // ----- manifests -----

    /// See `Cache::put_manifest`.
    fn put_manifest(
        &mut self,
        digest: &Digest,
        bytes: &[u8],
        media_type: Option<&str>,
    ) -> Result<MediaType>;
    /// See `Cache::get_manifest`.
    fn get_manifest(&mut self, digest: &Digest) -> Result<Manifest>;
    /// See `Cache::has_manifest`.
    fn has_manifest(&mut self, digest: &Digest) -> Result<bool>;
    /// See `Cache::delete_manifest`.
    fn delete_manifest(&mut self, digest: &Digest) -> Result<bool>;
    /// See `Cache::manifest_references`.
    fn manifest_references(&mut self, digest: &Digest) -> Result<Vec<Key>>;

    // ----- blobs -----

    /// See `Cache::begin_blob`.
    fn begin_blob(&mut self, expected: Option<&Digest>, size: Option<u64>) -> Result<Self::Writer>;
    /// See `Cache::write_blob` (a failed write finishes the writer).
    fn write_blob(&mut self, writer: &mut Self::Writer, chunk: &[u8]) -> Result<()>;
    /// See `Cache::commit_blob`.
    fn commit_blob(&mut self, writer: Self::Writer) -> Result<Digest>;
    /// See `Cache::abort_blob` (also disposes of a writer a failed write finished).
    fn abort_blob(&mut self, writer: Self::Writer);
    /// See `Cache::open_blob`; returns the reader and the blob's size.
    fn open_blob(&mut self, digest: &Digest) -> Result<(Self::Reader, u64)>;
    /// See `Cache::read_blob`.
    fn read_blob(&mut self, reader: &mut Self::Reader, buf: &mut [u8]) -> Result<usize>;
    /// See `Cache::close_blob`.
    fn close_blob(&mut self, reader: Self::Reader);
    /// See `Cache::get_blob`.
    fn get_blob(&mut self, digest: &Digest) -> Result<Vec<u8>>;
    /// See `Cache::has_blob`.
    fn has_blob(&mut self, digest: &Digest) -> Result<bool>;
    /// See `Cache::delete_blob`.
    fn delete_blob(&mut self, digest: &Digest) -> Result<bool>;

    // ----- any entry -----

    /// See `Cache::pin`.
    fn pin(&mut self, key: &Key) -> Result<u32>;
    /// See `Cache::unpin`.
    fn unpin(&mut self, key: &Key) -> Result<u32>;
    /// See `Cache::delete`.
    fn delete(&mut self, key: &Key) -> Result<bool>;

    // ----- tags -----

    /// See `Cache::put_tag`.
    fn put_tag(&mut self, reference: &Reference, digest: &Digest) -> Result<TagUpdate>;
    /// See `Cache::get_tag`.
    fn get_tag(&mut self, reference: &Reference) -> Result<TagMapping>;
    /// See `Cache::has_tag`.
    fn has_tag(&mut self, reference: &Reference) -> Result<bool>;
    /// See `Cache::resolve_tag`.
    fn resolve_tag(&mut self, reference: &Reference) -> Result<Resolution>;
    /// See `Cache::resolve_tags`.
    fn resolve_tags(&mut self, references: &[Reference]) -> Result<Vec<Result<Resolution>>>;
    /// See `Cache::resolve_failed`.
    fn resolve_failed(&mut self, reference: &Reference) -> Result<Digest>;
    /// See `Cache::detect_movement`.
    fn detect_movement(&mut self, reference: &Reference, remote: &Digest) -> Result<bool>;
    /// See `Cache::invalidate_tag`.
    fn invalidate_tag(&mut self, reference: &Reference) -> Result<bool>;
    /// See `Cache::delete_tag`.
    fn delete_tag(&mut self, reference: &Reference) -> Result<bool>;
    /// See `Cache::tag_history`.
    fn tag_history(&mut self, reference: &Reference) -> Result<Vec<TagHistoryEntry>>;
    /// See `Cache::tags`.
    fn tags(&mut self) -> Result<Vec<TagMapping>>;

    // ----- inspection and maintenance -----

    /// See `Cache::stats`.
    fn stats(&mut self) -> Result<Stats>;
    /// See `Cache::metrics`.
    fn metrics(&mut self) -> Result<MetricsSnapshot>;
    /// See `Cache::size`.
    fn size(&mut self) -> Result<u64>;
    /// See `Cache::contents`.
    fn contents(&mut self) -> Result<Vec<EntryInfo>>;
    /// See `Cache::debug_info`.
    fn debug_info(&mut self) -> Result<DebugInfo>;
    /// See `Cache::check_integrity`.
    fn check_integrity(&mut self) -> Result<IntegrityReport>;
    /// See `Cache::repair`.
    fn repair(&mut self) -> Result<RepairReport>;
    /// See `Cache::validate_digests`.
    fn validate_digests(&mut self) -> Result<(u64, Vec<String>)>;
    /// See `Cache::clear_expired`.
    fn clear_expired(&mut self) -> Result<u64>;
    /// See `Cache::cleanup`.
    fn cleanup(&mut self) -> Result<CleanupReport>;
    /// See `Cache::clear`.
    fn clear(&mut self) -> Result<()>;

    // ----- the storage, bypassing the cache -----

    /// Flips all bits of the byte at `offset`; whether there was one.
    fn storage_corrupt(&mut self, path: &str, offset: u64) -> Result<bool, String>;
    /// Shortens the object to `len` bytes.
    fn storage_truncate(&mut self, path: &str, len: u64) -> Result<(), String>;
    /// Removes the object (a missing one is fine).
    fn storage_remove(&mut self, path: &str) -> Result<(), String>;
    /// Writes the object directly.
    fn storage_plant(&mut self, path: &str, data: &[u8]) -> Result<(), String>;
    /// The object's bytes, or `None` if absent.
    fn storage_read(&mut self, path: &str) -> Result<Option<Vec<u8>>, String>;
    /// Sorted names directly inside `dir` (a name is there if some object is at or under it).
    fn storage_list(&mut self, dir: &str) -> Result<Vec<String>, String>;
    /// Total bytes of every object under `dir`, recursively.
    fn storage_bytes(&mut self, dir: &str) -> Result<u64, String>;
    /// Temp objects that exist now (open writes and abandoned ones).
    fn storage_temps(&mut self) -> Result<u64, String>;
}
