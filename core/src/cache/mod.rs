//! The cache: every operation, over the host's storage, clock and log.
//!
//! Write order (the crash-safety argument, detailed in `docs/FORMAT.md`): content is committed
//! durably under its final path *before* the journal records it, and removed *before* the
//! journal forgets it. A crash between the two leaves either an orphan file (re-hashed and
//! adopted, or removed, at the next open) or an index row without a file (dropped at the next
//! open) — never an index row pointing at wrong bytes.

mod blobs;
mod debug;
mod maintenance;
mod manifests;
mod recovery;
mod tags;

pub use blobs::{BlobReader, BlobWriter};
pub use debug::{DebugExport, DebugInfo, IntegrityIssue, IntegrityReport, RepairReport};
pub use maintenance::CleanupReport;
pub use manifests::Manifest;
pub use recovery::RecoveryReport;

use crate::clock::{Clock, Millis};
use crate::config::{Config, Durability, expiry};
use crate::error::{Error, ErrorKind, Result};
use crate::eviction::{self, EvictionPolicy};
use crate::hashing::{BuiltinHasher, HashProvider};
use crate::index::{EntryId, Index, NewEntry};
use crate::journal::{Journal, Record};
use crate::key::{Key, Kind};
use crate::layout;
use crate::log::{Level, LogSink, NoLog};
use crate::metrics::{EvictionReason, Metrics, MetricsSnapshot, OpClass};
use crate::storage::Storage;
use crate::tags::TagStore;
use serde::{Deserialize, Serialize};

/// An OCI artifact cache.
///
/// ```
/// use ocicache_core::{Cache, Config, Digest, ManualClock, storage::MemoryStorage};
/// let mut cache = Cache::builder(MemoryStorage::new(), ManualClock::new(0)).open().unwrap();
/// let digest = cache.put_blob(None, b"hello").unwrap();
/// assert_eq!(cache.get_blob(&digest).unwrap(), b"hello");
/// ```
pub struct Cache {
    config: Config,
    storage: Box<dyn Storage>,
    /// The level the storage honours (its answer to `config.durability`).
    durability: Durability,
    clock: Box<dyn Clock>,
    log: Box<dyn LogSink>,
    hasher: Box<dyn HashProvider>,
    index: Index,
    tags: TagStore,
    journal: Journal,
    metrics: Metrics,
    last_compaction: Option<Millis>,
    recovery: RecoveryReport,
    /// Damage found in the index files when they were read: reported by the integrity check
    /// until [`Cache::repair`] rewrites the index.
    index_damage: Vec<IntegrityIssue>,
    /// Blob writers begun and not yet committed or aborted: their temps are live.
    open_writers: u64,
    /// Sizes announced by those writers: counted against the cap until they finish.
    reserved: u64,
    /// Without a snapshot, several journals were replayed: the older ones hold live records
    /// until a compaction's snapshot holds them.
    older_journals_live: bool,
    /// Records of removals already done to the stored files whose journal append failed (no
    /// space, say). The index already reflects them; they are written after the next catch-up
    /// with other processes (see `journal_pending`), and until they are, no clean shutdown is
    /// recorded.
    pending: Vec<Record>,
}

/// Assembles a [`Cache`] from its host parts.
pub struct CacheBuilder {
    config: Config,
    storage: Box<dyn Storage>,
    clock: Box<dyn Clock>,
    log: Box<dyn LogSink>,
    hasher: Box<dyn HashProvider>,
    policy: Option<Box<dyn EvictionPolicy>>,
    adopt_existing: bool,
}

impl CacheBuilder {
    /// The configuration (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }
    /// Where log records go (default: nowhere).
    pub fn log(mut self, log: impl LogSink + 'static) -> Self {
        self.log = Box::new(log);
        self
    }
    /// A host-accelerated hasher (default: `sha2`).
    pub fn hasher(mut self, hasher: impl HashProvider + 'static) -> Self {
        self.hasher = Box::new(hasher);
        self
    }
    /// A custom eviction policy, overriding `config.eviction`.
    pub fn policy(mut self, policy: Box<dyn EvictionPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }
    /// Whether to create a cache over a storage that holds files but no cache index (default
    /// false). Such a storage is not a cache (an OCI image layout's `blobs/`, say): opening it
    /// fails with `InvalidConfig` and changes nothing, because the cache would otherwise take
    /// its files over and could later evict them. With `true`, files named by a digest whose
    /// bytes match are adopted, and every other file is reported and left in place.
    ///
    /// ```
    /// use ocicache_core::{Cache, ErrorKind, ManualClock, storage::MemoryStorage};
    /// let storage = MemoryStorage::new();
    /// storage.put("blobs/sha256/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", b"hello");
    /// let refused = Cache::builder(storage.clone(), ManualClock::new(0)).open();
    /// assert_eq!(refused.err().map(|e| e.kind()), Some(ErrorKind::InvalidConfig));
    /// let cache = Cache::builder(storage, ManualClock::new(0)).adopt_existing(true).open()?;
    /// assert_eq!(cache.stats().blobs, 1);
    /// # Ok::<(), ocicache_core::Error>(())
    /// ```
    pub fn adopt_existing(mut self, adopt: bool) -> Self {
        self.adopt_existing = adopt;
        self
    }
    /// Validates the configuration, replays the persisted index and reconciles it with the
    /// stored files.
    pub fn open(self) -> Result<Cache> {
        self.config.validate()?;
        let policy = self
            .policy
            .unwrap_or_else(|| eviction::from_config(&self.config.eviction));
        let now = self.clock.now_millis();
        let mut cache = Cache {
            index: Index::new(policy),
            tags: TagStore::default(),
            journal: Journal::new(0, 0, 0),
            metrics: Metrics::new(now),
            last_compaction: None,
            recovery: RecoveryReport::default(),
            index_damage: Vec::new(),
            open_writers: 0,
            reserved: 0,
            older_journals_live: false,
            pending: Vec::new(),
            durability: Durability::Strict,
            config: self.config,
            storage: self.storage,
            clock: self.clock,
            log: self.log,
            hasher: self.hasher,
        };
        // Opening is durable at every level: a new cache's index exists on stable storage before
        // anything is stored in it, or a power loss could leave files that no index claims.
        cache.recover(self.adopt_existing)?;
        cache.durability = cache.storage.set_durability(cache.config.durability);
        Ok(cache)
    }
}

/// Counts describing the cache now (the seed's `Stats`, plus a few).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Manifests and blobs.
    pub total_entries: u64,
    /// Manifests.
    pub manifests: u64,
    /// Blobs.
    pub blobs: u64,
    /// Tag mappings.
    pub tags: u64,
    /// Entries whose TTL has passed but which are not removed yet.
    pub expired_entries: u64,
    /// Entries with at least one pin.
    pub pinned_entries: u64,
    /// Entries that failed verification (no bytes kept).
    pub quarantined_entries: u64,
    /// Bytes of all entries.
    #[serde(rename = "total_size_bytes")]
    pub total_size: u64,
    /// The byte cap.
    #[serde(rename = "max_size_bytes")]
    pub max_size: u64,
    /// Hit rate since open.
    pub hit_rate: f64,
    /// Evictions since open.
    #[serde(rename = "total_evictions")]
    pub evictions: u64,
    /// Errors since open.
    #[serde(rename = "total_errors")]
    pub errors: u64,
    /// When the index was last compacted by this process (ms), if it was.
    pub last_compaction: Option<Millis>,
    /// Mean reads per entry.
    pub average_access_count: f64,
}

/// One entry as debug listings show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    /// Manifest or blob.
    pub kind: Kind,
    /// Its digest.
    pub digest: crate::Digest,
    /// Bytes.
    pub size: u64,
    /// Stored at (ms).
    pub created_at: Millis,
    /// Last read (ms).
    pub accessed_at: Millis,
    /// Expiry (ms), if any.
    pub expires_at: Option<Millis>,
    /// Whether the TTL has passed.
    pub expired: bool,
    /// Reads.
    pub access_count: u32,
    /// Pins.
    pub pins: u32,
    /// Cached manifests referencing it.
    pub referrers: u32,
    /// Manifests: media type.
    pub media_type: Option<String>,
    /// Whether it failed verification.
    pub quarantined: bool,
}

impl Cache {
    /// Starts building a cache over `storage` with `clock`.
    pub fn builder(storage: impl Storage + 'static, clock: impl Clock + 'static) -> CacheBuilder {
        CacheBuilder {
            config: Config::default(),
            storage: Box::new(storage),
            clock: Box::new(clock),
            log: Box::new(NoLog),
            hasher: Box::new(BuiltinHasher),
            policy: None,
            adopt_existing: false,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The durability level the storage honours: `config().durability`, or
    /// [`Durability::Strict`] when the storage cannot relax (see [`Storage::set_durability`]).
    ///
    /// ```
    /// use ocicache_core::{Cache, Config, Durability, ManualClock, storage::MemoryStorage};
    /// let config = Config { durability: Durability::Relaxed, ..Config::default() };
    /// let cache = Cache::builder(MemoryStorage::new(), ManualClock::new(0)).config(config).open()?;
    /// assert_eq!(cache.durability(), Durability::Relaxed);
    /// # Ok::<(), ocicache_core::Error>(())
    /// ```
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// What opening found and fixed.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Current counts.
    pub fn stats(&self) -> Stats {
        let now = self.now();
        let counts = self.index.counts();
        let (mut pinned, mut quarantined, mut accesses) = (0, 0, 0u64);
        for (_, e) in self.index.iter() {
            pinned += u64::from(e.pins() > 0);
            quarantined += u64::from(e.is_quarantined());
            accesses += u64::from(e.access_count());
        }
        let total = self.index.len() as u64;
        let m = self.metrics.snapshot(now, self.index.bytes(), total);
        Stats {
            total_entries: total,
            manifests: counts.manifests,
            blobs: counts.blobs,
            tags: self.tags.len() as u64,
            expired_entries: self.index.expired_count(now) as u64,
            pinned_entries: pinned,
            quarantined_entries: quarantined,
            total_size: self.index.bytes(),
            max_size: self.config.max_bytes,
            hit_rate: m.hit_rate,
            evictions: m.evictions,
            errors: m.errors,
            last_compaction: self.last_compaction,
            average_access_count: if total == 0 {
                0.0
            } else {
                accesses as f64 / total as f64
            },
        }
    }

    /// Every metric now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics
            .snapshot(self.now(), self.index.bytes(), self.index.len() as u64)
    }

    /// Bytes of all entries (the seed's `Size`).
    pub fn size(&self) -> u64 {
        self.index.bytes()
    }

    /// Every content entry, sorted by kind then digest.
    pub fn contents(&self) -> Vec<EntryInfo> {
        let now = self.now();
        let mut out: Vec<EntryInfo> = self
            .index
            .iter()
            .map(|(_, e)| EntryInfo {
                kind: e.kind(),
                digest: e.digest().clone(),
                size: e.size(),
                created_at: e.created_at(),
                accessed_at: e.accessed_at(),
                expires_at: (e.expires_at() != u64::MAX).then_some(e.expires_at()),
                expired: e.is_expired(now),
                access_count: e.access_count(),
                pins: e.pins(),
                referrers: e.referrers(),
                media_type: e.media_type().map(|m| m.as_str().to_owned()),
                quarantined: e.is_quarantined(),
            })
            .collect();
        out.sort_by(|a, b| (a.kind, &a.digest).cmp(&(b.kind, &b.digest)));
        out
    }

    /// Every content entry, in no particular order (the index's iterator).
    pub fn entries(&self) -> impl Iterator<Item = &crate::index::Entry> {
        self.index.iter().map(|(_, e)| e)
    }

    /// Keys of the entries `filter` accepts (the seed's `Index.Keys`), sorted.
    ///
    /// ```
    /// # use ocicache_core::{Cache, ManualClock, Kind, storage::MemoryStorage};
    /// # let mut cache = Cache::builder(MemoryStorage::new(), ManualClock::new(0)).open()?;
    /// cache.put_blob(None, b"x")?;
    /// let big_blobs = cache.keys_where(|e| e.kind() == Kind::Blob && e.size() > 0);
    /// assert_eq!(big_blobs.len(), 1);
    /// # Ok::<(), ocicache_core::Error>(())
    /// ```
    pub fn keys_where(&self, filter: impl Fn(&crate::index::Entry) -> bool) -> Vec<Key> {
        let mut keys: Vec<Key> = self
            .entries()
            .filter(|e| filter(e))
            .map(|e| e.key())
            .collect();
        keys.sort();
        keys
    }

    /// Whether an entry is present and servable (not expired, not quarantined).
    pub fn has(&self, key: &Key) -> bool {
        self.index
            .find(key)
            .is_some_and(|id| self.check_servable(id, self.now()).is_ok())
    }

    /// Pins an entry so that eviction never takes it; pins are counted and persisted.
    pub fn pin(&mut self, key: &Key) -> Result<u32> {
        self.timed(OpClass::Put, |c| {
            let id = c
                .index
                .find(key)
                .ok_or_else(|| Error::NotFound(key.to_string()))?;
            if c.index.get(id).is_quarantined() {
                return Err(c.corrupted_error(key));
            }
            let pins = c.index.get(id).pins().saturating_add(1);
            c.journal.append(
                c.storage.as_mut(),
                &[Record::Pins {
                    key: key.clone(),
                    pins,
                }],
            )?;
            c.index.set_pins(id, pins);
            Ok(pins)
        })
    }

    /// Removes one pin; returns the pins left (0 if there were none).
    pub fn unpin(&mut self, key: &Key) -> Result<u32> {
        self.timed(OpClass::Put, |c| {
            let id = c
                .index
                .find(key)
                .ok_or_else(|| Error::NotFound(key.to_string()))?;
            let pins = c.index.get(id).pins();
            if pins == 0 {
                return Ok(0);
            }
            c.journal.append(
                c.storage.as_mut(),
                &[Record::Pins {
                    key: key.clone(),
                    pins: pins - 1,
                }],
            )?;
            c.index.set_pins(id, pins - 1);
            Ok(pins - 1)
        })
    }

    /// Fails with `Full`, changing nothing, if `incoming` more bytes could not fit under the
    /// cap even after evicting everything evictable but the entries `keep` (sizes announced by
    /// open writers count as stored). A pull asks this before it stores or pins anything,
    /// keeping what its graph already holds, so that one that cannot fit leaves the cache as
    /// it was.
    ///
    /// ```
    /// use ocicache_core::{Cache, Config, ErrorKind, Key, ManualClock, storage::MemoryStorage};
    /// let config = Config { max_bytes: 100, ..Config::default() };
    /// let mut cache = Cache::builder(MemoryStorage::new(), ManualClock::new(0)).config(config).open()?;
    /// let d = cache.put_blob(None, &[1; 60])?;
    /// cache.check_room(90, &[])?; // the 60 bytes could be evicted
    /// let kept = Key::blob(d);
    /// assert_eq!(cache.check_room(90, &[kept.clone()]).unwrap_err().kind(), ErrorKind::Full);
    /// cache.pin(&kept)?;
    /// assert_eq!(cache.check_room(90, &[]).unwrap_err().kind(), ErrorKind::Full);
    /// # Ok::<(), ocicache_core::Error>(())
    /// ```
    pub fn check_room(&self, incoming: u64, keep: &[Key]) -> Result<()> {
        let keep: Vec<EntryId> = keep.iter().filter_map(|k| self.index.find(k)).collect();
        self.fits_after_eviction(incoming.saturating_add(self.reserved), &keep)
    }

    /// `Full` if `incoming` (reservations included) could not fit under the cap even after
    /// evicting everything evictable but `keep`. O(n): for the cases the fast checks miss.
    fn fits_after_eviction(&self, incoming: u64, keep: &[EntryId]) -> Result<()> {
        let cap = self.config.max_bytes;
        let floor = self
            .index
            .bytes()
            .saturating_sub(self.index.eventually_evictable_bytes_keeping(keep));
        if floor.saturating_add(incoming) > cap {
            return Err(Error::Full {
                needed: incoming,
                available: cap.saturating_sub(floor),
                capacity: cap,
            });
        }
        Ok(())
    }

    /// Deletes an entry and its bytes; `false` if it was not there (idempotent).
    pub fn delete(&mut self, key: &Key) -> Result<bool> {
        self.timed(OpClass::Delete, |c| {
            let Some(id) = c.index.find(key) else {
                return Ok(false);
            };
            let size = c.remove_entry(id)?;
            c.metrics.deleted();
            c.log.log(
                Level::Info,
                "removed",
                &[
                    ("entry", &key.to_string()),
                    ("bytes", &size.to_string()),
                    ("reason", "explicit"),
                ],
            );
            Ok(true)
        })
    }

    /// Writes buffered access records; call before dropping the cache to keep LRU order exact.
    pub fn flush(&mut self) -> Result<()> {
        self.journal_pending()?;
        Ok(self.journal.flush(self.storage.as_mut())?)
    }

    /// Flushes and closes, recording a clean shutdown: the next open trusts the index instead
    /// of walking every stored file (a crash or a drop without `close` makes it walk them).
    pub fn close(mut self) -> Result<()> {
        // A removal whose record is still not written leaves the journal listing an entry
        // whose file is gone: the next open must walk the files, so no clean shutdown.
        self.journal_pending()?;
        if self.journal.closed_and_quiet() {
            // Nothing happened since the last clean close (a run that only listed, say): the
            // journal already says so, and a run that only reads writes nothing.
            return Ok(());
        }
        let closed = Record::Closed {
            entries: self.index.len() as u64,
            bytes: self.index.bytes(),
        };
        self.journal.append(self.storage.as_mut(), &[closed])?;
        Ok(())
    }

    // ----- shared helpers -----

    pub(crate) fn now(&self) -> Millis {
        self.clock.now_millis()
    }

    /// Runs an operation, recording its latency and counting unexpected errors.
    fn timed<T>(&mut self, class: OpClass, op: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let start = self.clock.monotonic_nanos();
        let result = self.counted(op);
        let elapsed = self.clock.monotonic_nanos().saturating_sub(start);
        self.metrics.latency(class, elapsed);
        result
    }

    /// Runs an operation, counting unexpected errors (not the normal answers `NotFound`,
    /// `Expired`, `Invalidated`).
    fn counted<T>(&mut self, op: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let result = op(self);
        if let Err(e) = &result
            && !matches!(
                e.kind(),
                ErrorKind::NotFound | ErrorKind::Expired | ErrorKind::Invalidated
            )
        {
            let now = self.now();
            self.metrics.error(now);
        }
        result
    }

    fn check_servable(&self, id: EntryId, now: Millis) -> Result<()> {
        let e = self.index.get(id);
        if e.is_quarantined() {
            return Err(self.corrupted_error(&e.key()));
        }
        if e.is_expired(now) {
            return Err(Error::Expired(e.key().to_string()));
        }
        Ok(())
    }

    fn corrupted_error(&self, key: &Key) -> Error {
        Error::Corrupted {
            what: key.to_string(),
            detail: "quarantined after failing verification; re-put or repair".into(),
        }
    }

    /// Finds a servable entry, counting the read as hit or miss.
    fn lookup_for_read(&mut self, key: &Key) -> Result<EntryId> {
        let now = self.now();
        self.metrics.get(key.kind);
        let found = match self.index.find(key) {
            Some(id) => self.check_servable(id, now).map(|()| id),
            None => Err(Error::NotFound(key.to_string())),
        };
        match &found {
            Ok(_) => self.metrics.hit(now),
            Err(_) => self.metrics.miss(now),
        }
        found
    }

    /// Records a read: access time, count and (sliding TTL) expiry; persisted lazily.
    /// With `open_reader`, also protects the entry from eviction until the reader closes and
    /// returns the incarnation the reader must hand back (0 otherwise).
    fn record_access(&mut self, id: EntryId, open_reader: bool) -> u32 {
        let now = self.now();
        let kind = self.index.get(id).kind();
        let new_expiry = self
            .config
            .sliding_ttl
            .then(|| expiry(now, self.config.ttl_ms(kind)));
        let incarnation = if open_reader {
            self.index.begin_read(id, now, new_expiry)
        } else {
            self.index.touch(id, now, new_expiry);
            0
        };
        let e = self.index.get(id);
        let record = Record::Touch {
            key: e.key(),
            accessed: e.accessed_at(),
            expires: e.expires_at(),
            access_count: e.access_count(),
        };
        if let Err(err) = self.journal.buffer(self.storage.as_mut(), &record) {
            // Access times are advisory: losing them reorders LRU after a restart, nothing more.
            self.journal.discard_buffered();
            self.warn(
                "could not write access records",
                &[("error", &err.to_string())],
            );
        }
        incarnation
    }

    /// Quarantines a corrupted entry found by a read: its bytes are removed and it answers
    /// `Corrupted` until re-put, deleted or repaired. Returns the error to report.
    fn quarantine(&mut self, id: EntryId, detail: String) -> Error {
        let key = self.index.get(id).key();
        // Best effort: without the marker, the next open may trust an index that lists the
        // entry unquarantined; its read then verifies the bytes again.
        let _ = self.content_changing();
        if let Err(e) = self.storage.remove(&layout::entry_path(&key)) {
            // The record below still quarantines it, here and at every later open (which
            // re-hashes the file and removes it), so the bytes are never served.
            self.log.log(
                Level::Error,
                "could not remove corrupted bytes",
                &[("entry", &key.to_string()), ("error", &e.to_string())],
            );
        }
        let record = Record::Quarantine { key: key.clone() };
        if let Err(e) = self
            .journal
            .append(self.storage.as_mut(), std::slice::from_ref(&record))
        {
            // Written later (`journal_pending`); meanwhile another process finds no file (or
            // re-hashes it) and quarantines the entry itself: still never served.
            self.pending.push(record);
            self.log.log(
                Level::Error,
                "could not journal quarantine",
                &[("entry", &key.to_string()), ("error", &e.to_string())],
            );
        }
        self.index.quarantine(id);
        self.metrics.corrupted();
        // Every quarantine happens during a read already counted as a hit.
        let now = self.now();
        self.metrics.hit_was_miss(now);
        self.log.log(
            Level::Warn,
            "corrupted entry quarantined",
            &[("entry", &key.to_string()), ("detail", &detail)],
        );
        Error::Corrupted {
            what: key.to_string(),
            detail,
        }
    }

    /// Removes an entry: bytes first, then the journal record, then the index row.
    fn remove_entry(&mut self, id: EntryId) -> Result<u64> {
        let key = self.index.get(id).key();
        self.content_changing()?;
        if !self.index.get(id).is_quarantined() {
            self.storage.remove(&layout::entry_path(&key))?;
        }
        let journaled = self.journal.append(
            self.storage.as_mut(),
            &[Record::Remove { key: key.clone() }],
        );
        // The bytes are gone either way: the row goes too. Without its record the removal is
        // not durable yet, so the operation reports the failure; the record is written after
        // the next catch-up with other processes (`journal_pending`), or, after a crash, the
        // next open drops the row since its file is missing.
        let size = self.index.remove(id).size();
        if let Err(e) = journaled {
            self.pending.push(Record::Remove { key });
            return Err(e.into());
        }
        Ok(size)
    }

    /// Evicts one entry; the caller journals the returned record (batched).
    fn evict(&mut self, id: EntryId, reason: EvictionReason) -> Result<Record> {
        let key = self.index.get(id).key();
        self.content_changing()?;
        self.storage.remove(&layout::entry_path(&key))?;
        let size = self.index.remove(id).size();
        let now = self.now();
        self.metrics.evicted(now, reason, size);
        let why = match reason {
            EvictionReason::Capacity => "capacity",
            EvictionReason::Expired => "expired",
        };
        // At info: every eviction is visible to a host that shows the log (`ocicache -v`).
        self.log.log(
            Level::Info,
            "evicted",
            &[
                ("entry", &key.to_string()),
                ("bytes", &size.to_string()),
                ("reason", why),
            ],
        );
        Ok(Record::Remove { key })
    }

    /// Makes room for `incoming` more bytes: evicts from the high watermark down to the low one,
    /// and journals the evictions. Fails with `Full`, evicting nothing, when even evicting every
    /// candidate would not fit it under the cap.
    fn make_room(&mut self, incoming: u64) -> Result<()> {
        // Sizes announced by blob writers still streaming count as if stored.
        let incoming = incoming.saturating_add(self.reserved);
        let cap = self.config.max_bytes;
        let used = self.index.bytes();
        if used.saturating_add(incoming) <= self.config.high_bytes() {
            return Ok(());
        }
        // Content referenced by an evictable manifest becomes a candidate once that manifest
        // goes, so only when the current candidates fall short is the exact (O(n)) bound needed.
        if used
            .saturating_sub(self.index.candidate_bytes())
            .saturating_add(incoming)
            > cap
        {
            self.fits_after_eviction(incoming, &[])?;
        }
        // Down to the low watermark; an entry larger than that only needs room under the cap.
        let low = self.config.low_bytes();
        let target = if incoming <= low { low } else { cap };
        let removed = self.evict_until(target.saturating_sub(incoming))?;
        if self.index.bytes().saturating_add(incoming) > cap {
            // Reached when the policy declined candidates the bound counted (e.g. expired-only).
            self.journal_best_effort(&removed);
            let floor = self
                .index
                .bytes()
                .saturating_sub(self.index.candidate_bytes());
            return Err(Error::Full {
                needed: incoming,
                available: cap.saturating_sub(floor),
                capacity: cap,
            });
        }
        // The evictions are done: journal them now, on their own, so that whatever becomes of
        // the caller's own write (it may still fail), every process agrees on what is stored.
        self.journal_removals(removed)
    }

    /// Evicts in policy order until usage is at most `limit` or nothing is evictable; returns
    /// the removal records for the caller to journal (on failure they are journaled here).
    fn evict_until(&mut self, limit: u64) -> Result<Vec<Record>> {
        let now = self.now();
        let mut removed = Vec::new();
        while self.index.bytes() > limit {
            let Some(victim) = self.index.next_victim(now) else {
                break;
            };
            match self.evict(victim, EvictionReason::Capacity) {
                Ok(r) => removed.push(r),
                Err(e) => {
                    self.journal_best_effort(&removed);
                    return Err(e);
                }
            }
        }
        Ok(removed)
    }

    /// Before committing `key`: a live entry with the same digest holds the same bytes, so it
    /// needs no room; otherwise make room for `size`. Returns whether the entry existed.
    fn prepare_put(&mut self, key: &Key, size: u64) -> Result<bool> {
        let existing = self
            .index
            .find(key)
            .is_some_and(|id| !self.index.get(id).is_quarantined());
        match self.index.find(key) {
            // Usage can be over the cap without any put (files adopted at open, a lowered
            // cap): a re-put brings it back under, evicting anything but the entry itself.
            Some(id) if existing && self.index.bytes() > self.config.max_bytes => {
                let pins = self.index.get(id).pins();
                self.index.set_pins(id, pins.saturating_add(1));
                let made = self.make_room(0);
                self.index.set_pins(id, pins);
                made?;
            }
            _ if existing => {}
            _ => self.make_room(size)?,
        }
        Ok(existing)
    }

    /// Journals removals already done to the stored files. On failure they wait in `pending`
    /// (the index already reflects them) and the operation reports the failure.
    fn journal_removals(&mut self, records: Vec<Record>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.journal.append(self.storage.as_mut(), &records) {
            self.pending.extend(records);
            return Err(e.into());
        }
        Ok(())
    }

    fn journal_best_effort(&mut self, records: &[Record]) {
        if !records.is_empty()
            && let Err(e) = self.journal.append(self.storage.as_mut(), records)
        {
            self.pending.extend_from_slice(records);
            self.warn("could not journal removals", &[("error", &e.to_string())]);
        }
    }

    /// Writes the records of removals whose first append failed, once this process has caught
    /// up with the others (hosts call `refresh` first under their lock, so appending here is
    /// as safe as in any operation). A record is written only while still true: its file is
    /// still missing (another process may have put the bytes again meanwhile). Written or not,
    /// the index keeps reflecting the removal (a reload may have brought the row back).
    pub(super) fn journal_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut still_true = Vec::with_capacity(self.pending.len());
        for record in std::mem::take(&mut self.pending) {
            let (Record::Remove { key } | Record::Quarantine { key }) = &record else {
                continue;
            };
            if self.storage.size(&layout::entry_path(key))?.is_none() {
                still_true.push(record);
            }
        }
        let written = if still_true.is_empty() {
            Ok(())
        } else {
            self.journal.append(self.storage.as_mut(), &still_true)
        };
        for record in &still_true {
            recovery::apply_record(
                &mut self.index,
                &mut self.tags,
                &self.config,
                record.clone(),
            );
        }
        self.metrics
            .usage(self.index.bytes(), self.index.len() as u64);
        if let Err(e) = written {
            self.pending = still_true;
            return Err(e.into());
        }
        Ok(())
    }

    /// Indexes newly committed content. `path` already holds its bytes durably; if the journal
    /// cannot record it, new content is removed again so that nothing half-written remains.
    fn index_committed(
        &mut self,
        new: NewEntry,
        references: Vec<Key>,
        existed: bool,
    ) -> Result<()> {
        let key = new.key.clone();
        let size = new.size;
        // A re-put keeps the entry's pins.
        let pins = self
            .index
            .find(&key)
            .map_or(0, |id| self.index.get(id).pins());
        let new = NewEntry { pins, ..new };
        let record = Record::Put {
            entry: new.clone(),
            references: references.clone(),
        };
        if let Err(e) = self.journal.append(self.storage.as_mut(), &[record]) {
            if !existed {
                let _ = self.storage.remove(&layout::entry_path(&key));
            }
            return Err(e.into());
        }
        self.index.insert(new, references);
        self.metrics.put(key.kind, size);
        self.metrics
            .usage(self.index.bytes(), self.index.len() as u64);
        self.maybe_compact();
        Ok(())
    }

    fn new_entry(&self, key: Key, size: u64) -> NewEntry {
        let now = self.now();
        let ttl = self.config.ttl_ms(key.kind);
        NewEntry {
            key,
            size,
            created: now,
            accessed: now,
            expires: expiry(now, ttl),
            access_count: 0,
            pins: 0,
            media_type: None,
            quarantined: false,
        }
    }

    /// Before content is committed or removed: makes sure the journal does not end in a
    /// clean-shutdown record (see `Journal::mark_active`).
    fn content_changing(&mut self) -> std::result::Result<(), crate::storage::StorageError> {
        if !self.pending.is_empty() {
            // Best effort: they are retried at every catch-up and before a clean shutdown.
            let _ = self.journal_pending();
        }
        self.journal.mark_active(self.storage.as_mut())
    }

    fn warn(&self, message: &str, fields: &[(&str, &str)]) {
        self.log.log(Level::Warn, message, fields);
    }
}

#[cfg(test)]
mod tests;
