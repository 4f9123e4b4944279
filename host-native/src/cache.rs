//! [`Cache`]: the thread-safe, multi-process cache over a directory.

use crate::blob_io::{BlobReader, BlobWriter};
use crate::clock::SystemClock;
use crate::engine::Engine;
use crate::engine::native::NativeEngine;
use crate::lock::{Announced, DirLock, io_to_storage};
use crate::storage::FsStorage;
use ocicache_core::{
    CleanupReport, Clock, Config, DebugInfo, Digest, Durability, EntryInfo, Error, IntegrityReport,
    Key, LogSink, Manifest, MediaType, MetricsSnapshot, NoLog, RecoveryReport, Reference,
    RepairReport, Resolution, Result, Stats, TagHistoryEntry, TagMapping, TagUpdate,
};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// The configuration file read from the cache directory when no configuration is given.
pub use ocicache_core::CONFIG_FILE;
use ocicache_core::MAX_CONFIG_FILE_BYTES;

/// Which engine runs the core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EngineKind {
    /// The core inside the `ocicache.wasm` component, run by wasmtime: the sandboxed engine,
    /// the same one the JavaScript hosts run.
    #[default]
    Component,
    /// The core linked natively into this program.
    Native,
}

impl EngineKind {
    /// The engine's name as the CLI spells it (`native`).
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Native => "native",
            EngineKind::Component => "component",
        }
    }
}

/// Builds a [`Cache`]; see [`Cache::builder`].
pub struct CacheBuilder {
    dir: PathBuf,
    config: Option<Config>,
    engine: EngineKind,
    component: crate::component::ComponentOptions,
    clock: Box<dyn Clock>,
    log: Box<dyn LogSink>,
    adopt_existing: bool,
}

impl CacheBuilder {
    /// The configuration, in place of the directory's for this process only (`config.json`
    /// is not changed). Without it, `config.json` in the cache directory is used if present
    /// (the core's `Config` in its serde form; any subset of fields; see [`load_config`]),
    /// else the defaults.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }
    /// The engine (default [`EngineKind::Component`]).
    pub fn engine(mut self, engine: EngineKind) -> Self {
        self.engine = engine;
        self
    }
    /// How the component engine runs (memory cap, host hashing); ignored by the native one.
    pub fn component_options(mut self, options: crate::component::ComponentOptions) -> Self {
        self.component = options;
        self
    }
    /// The clock (default [`SystemClock`]); tests pass an [`ocicache_core::ManualClock`].
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }
    /// Where the core's log records go (default: nowhere).
    pub fn log(mut self, log: impl LogSink + 'static) -> Self {
        self.log = Box::new(log);
        self
    }
    /// Whether to create a cache in a directory that holds other files but no cache index
    /// (default false: such a directory is refused with `InvalidConfig` and left unchanged).
    /// With `true`, blobs and manifests under `blobs/` and `manifests/` whose bytes match their
    /// digest are adopted, and every other file is left alone (`ocicache init`).
    pub fn adopt_existing(mut self, adopt: bool) -> Self {
        self.adopt_existing = adopt;
        self
    }
    /// Opens the directory (creating it if missing) under its file lock: replays the index,
    /// reconciles it with the stored files and clears temps of writers that are gone.
    ///
    /// Fails with `Storage` (`InvalidPath`) if the path exists and is not a directory, and
    /// with `InvalidConfig` for a bad configuration or a directory that holds other files but
    /// no cache index (see [`CacheBuilder::adopt_existing`]); none of these changes anything.
    pub fn open(self) -> Result<Cache> {
        let config = match self.config {
            Some(c) => c,
            None => load_config(&self.dir)?.unwrap_or_default(),
        };
        // Validate before touching the directory: a bad configuration changes nothing.
        config.validate()?;
        if !self.adopt_existing {
            crate::ownership::refuse_foreign_directory(&self.dir)?;
        }
        let storage = FsStorage::open(&self.dir)?;
        let root = storage.root().to_path_buf();
        let lock = DirLock::open(&root)?;
        // From here until close, Node stays out (it waits for this marker to go); announced
        // before the first look at the index, so that a Node opener and this one never both
        // go on.
        let announced = lock.announce()?;
        // The engine keeps the clock; the pull reads the same one (token lifetimes, retries).
        let clock = crate::clock::SharedClock::new(self.clock);
        let engine_clock: Box<dyn Clock> = Box::new(clock.clone());
        let engine: Box<dyn Engine> = {
            let _held = lock.acquire()?;
            lock.remove_stale_markers();
            match self.engine {
                EngineKind::Native => Box::new(NativeEngine::open(
                    storage,
                    config,
                    engine_clock,
                    self.log,
                    self.adopt_existing,
                )?),
                EngineKind::Component => Box::new(crate::engine::component::open(
                    storage,
                    config,
                    engine_clock,
                    self.log,
                    crate::component::ComponentOptions {
                        adopt_existing: self.adopt_existing,
                        ..self.component
                    },
                )?),
            }
        };
        Ok(Cache {
            shared: Arc::new(Shared {
                clock,
                root,
                inner: Mutex::new(Inner {
                    engine: Some(engine),
                    lock,
                    announced: Some(announced),
                }),
            }),
        })
    }
}

/// Reads `config.json` from a cache directory: `Ok(None)` if there is none, `InvalidConfig`
/// if it is not a valid configuration or not a regular file. The bytes are parsed by the core
/// ([`Config::from_file_bytes`]), as every host does, so the keys, checks and errors are the
/// same everywhere. The file is opened with `O_NOFOLLOW | O_NONBLOCK`: a symlink or a FIFO
/// under that name is refused at once, never followed or waited on.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// assert!(ocicache::load_config(dir.path())?.is_none());
/// std::fs::write(dir.path().join("config.json"), r#"{"max_bytes": 1048576}"#)?;
/// assert_eq!(ocicache::load_config(dir.path())?.unwrap().max_bytes, 1 << 20);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_config(dir: &Path) -> Result<Option<Config>> {
    match read_config_file(dir)? {
        Some(bytes) => Config::from_file_bytes(&bytes).map(Some),
        None => Ok(None),
    }
}

/// Reads the pull's settings (`platform`, `auth_file`, `registries`) from a cache directory's
/// `config.json`, as [`load_config`] reads the cache's: the default when there is no file.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("config.json"), r#"{"platform": "linux/arm64"}"#)?;
/// let pull = ocicache::load_pull_config(dir.path())?;
/// assert_eq!(pull.platform.as_deref(), Some("linux/arm64"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_pull_config(dir: &Path) -> Result<ocicache_core::pull::PullConfig> {
    match read_config_file(dir)? {
        Some(bytes) => ocicache_core::pull::PullConfig::from_file_bytes(&bytes),
        None => Ok(ocicache_core::pull::PullConfig::default()),
    }
}

/// The bytes of `dir/config.json`, bounded; `None` if there is none.
fn read_config_file(dir: &Path) -> Result<Option<Vec<u8>>> {
    let path = dir.join(CONFIG_FILE);
    // Never waits: a FIFO (or device) planted as the file is refused, not read.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        // `dir` itself is a file: there is no config in it (opening reports the real problem).
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(not_a_regular_file("a symbolic link"));
        }
        Err(e) => return Err(io_to_storage(e, &path)),
    };
    let kind = file
        .metadata()
        .map_err(|e| io_to_storage(e, &path))?
        .file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        return Err(not_a_regular_file(if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_dir() {
            "a directory"
        } else {
            "a special file"
        }));
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_to_storage(e, &path))?;
    Ok(Some(bytes))
}

/// The error for a `config.json` that is not a regular file (the Node host words it the same).
fn not_a_regular_file(what: &str) -> Error {
    Error::InvalidConfig(format!("{CONFIG_FILE}: is {what}, not a regular file"))
}

/// An OCI artifact cache in a directory: manifests, blobs and tag mappings, durable, verified,
/// bounded, and shareable between threads (`Send + Sync`) and between processes.
///
/// Every call into the core, each streamed blob chunk included, runs under an in-process mutex
/// and the directory's OS file lock, after catching up with what other processes appended: any
/// call may write the journal (a reader that finds its file cut short quarantines the blob),
/// and an append must follow everything the others appended. The lock is held per call, so a
/// long download interleaves with other processes instead of blocking them.
///
/// ```
/// use ocicache::{Cache, Digest};
/// use std::io::{Read, Write};
///
/// let dir = tempfile::tempdir()?;
/// let cache = Cache::open(dir.path())?;
///
/// let mut writer = cache.blob_writer(None, None)?;
/// writer.write_all(b"layer bytes")?;
/// let digest = writer.commit()?;
///
/// let mut text = String::new();
/// cache.blob_reader(&digest)?.read_to_string(&mut text)?;
/// assert_eq!(text, "layer bytes");
///
/// let nginx = "nginx:1.25".parse()?;
/// cache.put_tag(&nginx, &digest)?;
/// assert_eq!(cache.resolve_tag(&nginx)?, ocicache::Resolution::Fresh(digest));
/// cache.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Cache {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) clock: crate::clock::SharedClock,
    root: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    /// `None` once closed or abandoned.
    engine: Option<Box<dyn Engine>>,
    lock: DirLock,
    /// This process's marker in `native/`, from open until the engine (with its open temps) is
    /// gone: a Node process does not open the directory meanwhile.
    announced: Option<Announced>,
}

fn closed() -> Error {
    Error::InvalidArgument("the cache is closed".into())
}

impl Shared {
    /// Runs `op` under the mutex and the directory's file lock, after catching up with other
    /// processes: the only way to reach the engine, so that no journal append can skip either.
    pub(crate) fn locked<T>(&self, op: impl FnOnce(&mut dyn Engine) -> Result<T>) -> Result<T> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Inner { engine, lock, .. } = &mut *inner;
        let engine = engine.as_deref_mut().ok_or_else(closed)?;
        let _held = lock.acquire()?;
        engine.refresh()?;
        op(engine)
    }

    /// Abandons the engine (as a crash would), then withdraws this process's marker.
    fn abandon(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        drop(inner.engine.take());
        inner.announced = None;
    }

    fn close(&self) -> Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Inner {
            engine,
            lock,
            announced,
        } = &mut *inner;
        let Some(mut engine) = engine.take() else {
            return Ok(());
        };
        // The engine is consumed (closed, or dropped on failure) inside.
        let result = (move || {
            let _held = lock.acquire()?;
            engine.refresh()?;
            if lock.others_present() {
                // Another cache is open (or died with a change half done): a clean-shutdown
                // record now would make the next open trust an index that may miss its
                // committed file. Flush instead; the last to close records the clean shutdown.
                engine.flush()
            } else {
                engine.close()
            }
        })();
        if result.is_err() {
            // A failed close may leave a removal whose record is still owed (no space): like a
            // crash, it keeps this process's marker until the process is gone, so that no
            // other process records a clean shutdown over a row without its file meanwhile.
            std::mem::forget(announced.take());
            return result;
        }
        // The engine, and with it every temp it had open, is gone: Node may come in.
        *announced = None;
        result
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl Cache {
    /// Opens the cache in `dir` with the default engine, its `config.json` (if any) and the
    /// system clock. See [`CacheBuilder::open`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Cache> {
        Cache::builder(dir).open()
    }

    /// Starts building a cache in `dir`.
    ///
    /// ```
    /// use ocicache::{Cache, Config, EngineKind};
    /// let dir = tempfile::tempdir().unwrap();
    /// let cache = Cache::builder(dir.path())
    ///     .config(Config { max_bytes: 64 << 20, ..Config::default() })
    ///     .engine(EngineKind::Native)
    ///     .open()?;
    /// assert_eq!(cache.config()?.max_bytes, 64 << 20);
    /// # Ok::<(), ocicache::Error>(())
    /// ```
    pub fn builder(dir: impl AsRef<Path>) -> CacheBuilder {
        CacheBuilder {
            dir: dir.as_ref().to_path_buf(),
            config: None,
            engine: EngineKind::default(),
            component: crate::component::ComponentOptions::default(),
            clock: Box::new(SystemClock::new()),
            log: Box::new(NoLog),
            adopt_existing: false,
        }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.shared.root
    }

    fn locked<T>(&self, op: impl FnOnce(&mut dyn Engine) -> Result<T>) -> Result<T> {
        self.shared.locked(op)
    }

    // ----- manifests -----

    /// Stores a manifest after checking its size, that it hashes to `digest` and that it is a
    /// valid OCI or Docker v2 manifest or index; `media_type` is the registry's
    /// `Content-Type`, if known. Returns the media type.
    pub fn put_manifest(
        &self,
        digest: &Digest,
        bytes: &[u8],
        media_type: Option<&str>,
    ) -> Result<MediaType> {
        self.locked(|e| e.put_manifest(digest, bytes, media_type))
    }
    /// Returns a manifest, re-hashed before it is returned (`Corrupted` on mismatch).
    pub fn get_manifest(&self, digest: &Digest) -> Result<Manifest> {
        self.locked(|e| e.get_manifest(digest))
    }
    /// Whether a servable manifest is stored.
    pub fn has_manifest(&self, digest: &Digest) -> Result<bool> {
        self.locked(|e| e.has_manifest(digest))
    }
    /// Deletes a manifest; `false` if absent.
    pub fn delete_manifest(&self, digest: &Digest) -> Result<bool> {
        self.locked(|e| e.delete_manifest(digest))
    }
    /// The content a stored manifest references.
    pub fn manifest_references(&self, digest: &Digest) -> Result<Vec<Key>> {
        self.locked(|e| e.manifest_references(digest))
    }

    // ----- blobs -----

    /// Stores a small blob in one call (see [`Cache::blob_writer`] for streaming).
    pub fn put_blob(&self, expected: Option<&Digest>, bytes: &[u8]) -> Result<Digest> {
        self.locked(|e| e.put_blob(expected, bytes))
    }
    /// Reads a whole (small) blob, verified (see [`Cache::blob_reader`] for streaming).
    pub fn get_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        self.locked(|e| e.get_blob(digest))
    }
    /// Whether a servable blob is stored.
    pub fn has_blob(&self, digest: &Digest) -> Result<bool> {
        self.locked(|e| e.has_blob(digest))
    }
    /// Deletes a blob; `false` if absent.
    pub fn delete_blob(&self, digest: &Digest) -> Result<bool> {
        self.locked(|e| e.delete_blob(digest))
    }
    /// Starts streaming a blob in: write it through [`std::io::Write`], then
    /// [`BlobWriter::commit`]. With `expected` the bytes must hash to it (otherwise they are
    /// stored under their SHA-256); with `size` they must have that length. Dropping the
    /// writer without committing aborts it. Each write takes the directory lock (about 15 µs):
    /// write chunks of 64 KiB or more (wrap the writer in a [`std::io::BufWriter`] for
    /// `io::copy`, whose 8 KiB pieces would halve the throughput).
    pub fn blob_writer(&self, expected: Option<&Digest>, size: Option<u64>) -> Result<BlobWriter> {
        let handle = self.locked(|e| e.begin_blob(expected, size))?;
        Ok(BlobWriter::new(self.shared.clone(), handle))
    }

    /// A writer continuing the download of `expected` that an earlier pull kept (see
    /// `ocicache_core::Cache::resume_blob`), with the bytes it holds; `None` where the engine's
    /// storage keeps no partials.
    pub(crate) fn resume_writer(
        &self,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<Option<(BlobWriter, u64)>> {
        Ok(self
            .locked(|e| e.resume_blob(expected, size))?
            .map(|(h, n)| (BlobWriter::resumed(self.shared.clone(), h, n), n)))
    }
    /// Opens a blob for streaming out through [`std::io::Read`]. The bytes are re-hashed as
    /// they stream; a mismatch fails the final read with an error wrapping the core's
    /// `Corrupted` (see [`crate::error_of`]). The blob is protected from eviction until the
    /// reader is dropped.
    pub fn blob_reader(&self, digest: &Digest) -> Result<BlobReader> {
        let (handle, size) = self.locked(|e| e.open_blob(digest))?;
        Ok(BlobReader::new(
            self.shared.clone(),
            handle,
            size,
            digest.clone(),
        ))
    }

    // ----- any entry -----

    /// Pins an entry so that eviction never takes it; returns the pin count.
    pub fn pin(&self, key: &Key) -> Result<u32> {
        self.locked(|e| e.pin(key))
    }
    /// Removes one pin; returns the pins left.
    pub fn unpin(&self, key: &Key) -> Result<u32> {
        self.locked(|e| e.unpin(key))
    }
    /// Deletes an entry and its bytes; `false` if absent.
    pub fn delete(&self, key: &Key) -> Result<bool> {
        self.locked(|e| e.delete(key))
    }

    // ----- tags -----

    /// Records what a tag points to (as the registry just reported it).
    pub fn put_tag(&self, reference: &Reference, digest: &Digest) -> Result<TagUpdate> {
        self.locked(|e| e.put_tag(reference, digest))
    }
    /// The tag's mapping (`Expired` once stale, `Invalidated`, `NotFound`).
    pub fn get_tag(&self, reference: &Reference) -> Result<TagMapping> {
        self.locked(|e| e.get_tag(reference))
    }
    /// Whether a fresh, valid mapping exists.
    pub fn has_tag(&self, reference: &Reference) -> Result<bool> {
        self.locked(|e| e.has_tag(reference))
    }
    /// The core's decision for a tag: fresh, stale (revalidate) or unknown (fetch).
    pub fn resolve_tag(&self, reference: &Reference) -> Result<Resolution> {
        self.locked(|e| e.resolve_tag(reference))
    }
    /// [`Cache::resolve_tag`] for many references at once, under one lock.
    pub fn resolve_tags(&self, references: &[Reference]) -> Result<Vec<Result<Resolution>>> {
        self.locked(|e| e.resolve_tags(references))
    }
    /// The host's revalidation failed: the stale digest to fall back on, if allowed.
    pub fn resolve_failed(&self, reference: &Reference) -> Result<Digest> {
        self.locked(|e| e.resolve_failed(reference))
    }
    /// Whether the registry's `remote` digest differs from the cached one.
    pub fn detect_movement(&self, reference: &Reference, remote: &Digest) -> Result<bool> {
        self.locked(|e| e.detect_movement(reference, remote))
    }
    /// Invalidates a tag until it is put again; `false` if absent.
    pub fn invalidate_tag(&self, reference: &Reference) -> Result<bool> {
        self.locked(|e| e.invalidate_tag(reference))
    }
    /// Deletes a tag mapping; `false` if absent.
    pub fn delete_tag(&self, reference: &Reference) -> Result<bool> {
        self.locked(|e| e.delete_tag(reference))
    }
    /// The digests a tag pointed to, oldest first.
    pub fn tag_history(&self, reference: &Reference) -> Result<Vec<TagHistoryEntry>> {
        self.locked(|e| e.tag_history(reference))
    }
    /// Every tag mapping, by canonical reference.
    pub fn tags(&self) -> Result<Vec<TagMapping>> {
        self.locked(|e| e.tags())
    }

    // ----- inspection and maintenance -----

    /// Current counts.
    pub fn stats(&self) -> Result<Stats> {
        self.locked(|e| e.stats())
    }
    /// Every metric of this process since it opened the cache.
    pub fn metrics(&self) -> Result<MetricsSnapshot> {
        self.locked(|e| e.metrics())
    }
    /// The metrics as Prometheus text.
    pub fn metrics_prometheus(&self) -> Result<String> {
        self.locked(|e| e.metrics_prometheus())
    }
    /// Bytes of all entries.
    pub fn size(&self) -> Result<u64> {
        self.locked(|e| e.size())
    }
    /// Every entry, manifests first, then by digest.
    pub fn contents(&self) -> Result<Vec<EntryInfo>> {
        self.locked(|e| e.contents())
    }
    /// Configuration, policy, stats, metrics, journal and recovery in one value.
    pub fn debug_info(&self) -> Result<DebugInfo> {
        self.locked(|e| e.debug_info())
    }
    /// Debug info, contents and tags as pretty JSON.
    pub fn export_debug_json(&self) -> Result<String> {
        self.locked(|e| e.export_debug_json())
    }
    /// Re-hashes every entry and lists stray files; changes nothing.
    pub fn check_integrity(&self) -> Result<IntegrityReport> {
        self.locked(|e| e.check_integrity())
    }
    /// Removes corrupted and missing entries, adopts or removes unindexed files, clears temps
    /// of writers that are gone.
    pub fn repair(&self) -> Result<RepairReport> {
        self.locked(|e| e.repair())
    }
    /// Re-hashes every entry: how many are valid, and which are not.
    pub fn validate_digests(&self) -> Result<(u64, Vec<String>)> {
        self.locked(|e| e.validate_digests())
    }
    /// Removes expired entries; returns how many.
    pub fn clear_expired(&self) -> Result<u64> {
        self.locked(|e| e.clear_expired())
    }

    /// Fails with `Full`, changing nothing, if `bytes` more could not fit under the cap even
    /// after evicting everything evictable but `keep` (see `ocicache_core::Cache::check_room`).
    pub fn check_room(&self, bytes: u64, keep: &[Key]) -> Result<()> {
        self.locked(|e| e.check_room(bytes, keep))
    }
    /// Removes expired entries, evicts down to the low watermark if over the high one, and
    /// compacts the index.
    pub fn cleanup(&self) -> Result<CleanupReport> {
        self.locked(|e| e.cleanup())
    }
    /// Removes every entry and tag.
    pub fn clear(&self) -> Result<()> {
        self.locked(|e| e.clear())
    }
    /// The configuration in force.
    pub fn config(&self) -> Result<Config> {
        self.locked(|e| e.config())
    }
    /// The durability level the storage honours: `config.durability` (both levels on the real
    /// filesystem), or `Strict` over a storage that cannot relax.
    pub fn durability(&self) -> Result<Durability> {
        self.locked(|e| e.durability())
    }
    /// What opening found and fixed.
    pub fn recovery_report(&self) -> Result<RecoveryReport> {
        self.locked(|e| e.recovery_report())
    }
    /// Writes buffered access records.
    pub fn flush(&self) -> Result<()> {
        self.locked(|e| e.flush())
    }
    /// Closes the cache, recording a clean shutdown (the next open is fast) when no other cache
    /// has the directory open and none died with its marker in place (otherwise it only
    /// flushes: the last to close records it, and an open after a crash walks the files). Open
    /// readers are
    /// closed and open writers abandoned (their temps are cleared by the next open); using
    /// them afterwards fails. Dropping a cache closes it
    /// too, ignoring errors.
    pub fn close(self) -> Result<()> {
        self.shared.close()
    }
    /// Drops the cache without flushing or recording a clean shutdown, as a crash would
    /// (buffered access records are lost; the next open reconciles with the stored files).
    /// For tests of crash recovery.
    pub fn abandon(self) {
        self.shared.abandon();
    }
}
