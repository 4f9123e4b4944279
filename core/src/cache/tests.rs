use super::*;
use crate::clock::ManualClock;
use crate::digest::Digest;
use crate::hashing::digest_of;
use crate::log::MemoryLog;
use crate::storage::MemoryStorage;
use crate::{Algorithm, PolicyConfig, Reference, Resolution};

const T0: u64 = 1_700_000_000_000;

fn open_with(storage: &MemoryStorage, clock: &ManualClock, config: Config) -> Cache {
    Cache::builder(storage.clone(), clock.clone())
        .config(config)
        .open()
        .unwrap()
}

fn small(max_bytes: u64) -> Config {
    Config {
        max_bytes,
        high_watermark_percent: 100,
        low_watermark_percent: 100,
        eviction: PolicyConfig::Lru,
        ..Config::default()
    }
}

fn sha(data: &[u8]) -> Digest {
    digest_of(&BuiltinHasher, Algorithm::Sha256, data).expect("the built-in hasher")
}

fn image_manifest(config: &Digest, layers: &[&Digest]) -> Vec<u8> {
    let layers: Vec<String> = layers
        .iter()
        .map(|d| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":1}}"#))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1}},"layers":[{}]}}"#,
        layers.join(",")
    )
    .into_bytes()
}

#[test]
fn an_entry_that_can_never_fit_is_full_and_evicts_nothing() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let mut cache = open_with(&s, &c, small(100));
    let a = cache.put_blob(None, &[1; 60]).unwrap();
    let err = cache.put_blob(None, &[2; 101]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Full);
    assert!(cache.has_blob(&a), "nothing was evicted for it");
    // Fits only if `a` goes: it does.
    cache.put_blob(None, &[3; 90]).unwrap();
    assert!(!cache.has_blob(&a));
    assert_eq!(
        s.paths().iter().filter(|p| p.starts_with("blobs/")).count(),
        1,
        "the evicted file is gone"
    );
}

#[test]
fn pinned_content_is_never_evicted_and_a_put_that_needs_it_is_full() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let mut cache = open_with(&s, &c, small(100));
    let a = cache.put_blob(None, &[1; 60]).unwrap();
    cache.pin(&Key::blob(a.clone())).unwrap();
    assert_eq!(
        cache.put_blob(None, &[2; 50]).unwrap_err().kind(),
        ErrorKind::Full
    );
    assert!(cache.has_blob(&a));
    cache.unpin(&Key::blob(a.clone())).unwrap();
    cache.put_blob(None, &[2; 50]).unwrap();
    assert!(!cache.has_blob(&a));
}

#[test]
fn watermarks_evict_down_to_the_low_mark() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let config = Config {
        max_bytes: 1000,
        high_watermark_percent: 90,
        low_watermark_percent: 50,
        ..small(1000)
    };
    let mut cache = open_with(&s, &c, config);
    for i in 0..9u8 {
        cache.put_blob(None, &[i; 100]).unwrap();
    }
    assert_eq!(cache.size(), 900);
    cache.put_blob(None, &[99; 100]).unwrap();
    assert_eq!(
        cache.size(),
        500,
        "evicted until usage incl. the new entry is at the low mark"
    );
    assert_eq!(cache.metrics().evictions_capacity, 5);
}

#[test]
fn referenced_blobs_outlive_their_manifest_in_eviction_order() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let mut cache = open_with(&s, &c, small(10_000));
    let config = cache.put_blob(None, b"{}").unwrap();
    let layer = cache.put_blob(None, &[7; 3000]).unwrap();
    let body = image_manifest(&config, &[&layer]);
    let m = sha(&body);
    cache.put_manifest(&m, &body, None).unwrap();
    // The layer is the least recently used, but the manifest referencing it must go first.
    let big = vec![9; 7000];
    cache.put_blob(None, &big).unwrap();
    assert!(!cache.has_manifest(&m));
    assert!(
        cache.has_blob(&layer),
        "the manifest went first, freeing enough"
    );
    assert_eq!(
        cache.manifest_references(&m).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn corrupted_bytes_are_refused_quarantined_and_repaired() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let log = MemoryLog::default();
    let mut cache = Cache::builder(s.clone(), c.clone())
        .log(log.clone())
        .open()
        .unwrap();
    let data = vec![5u8; 200_000];
    let d = cache.put_blob(None, &data).unwrap();
    let path = layout::entry_path(&Key::blob(d.clone()));
    assert!(s.corrupt(&path, 123_456));
    // Streaming: the final chunk fails, and the entry is never served again.
    let mut r = cache.open_blob(&d).unwrap();
    let mut buf = vec![0; 65536];
    let err = loop {
        match cache.read_blob(&mut r, &mut buf) {
            Ok(0) => panic!("corruption not detected"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    cache.close_blob(r);
    assert_eq!(err.kind(), ErrorKind::Corrupted);
    assert_eq!(cache.get_blob(&d).unwrap_err().kind(), ErrorKind::Corrupted);
    assert!(s.get(&path).is_none(), "quarantine removed the bytes");
    assert!(
        log.records()
            .iter()
            .any(|(l, m)| *l == Level::Warn && m.contains("quarantined"))
    );
    let report = cache.repair().unwrap();
    assert_eq!(report.removed_corrupted, 1);
    assert!(cache.check_integrity().unwrap().healthy);
    // Re-putting the right bytes heals it.
    cache.put_blob(Some(&d), &data).unwrap();
    assert_eq!(cache.get_blob(&d).unwrap(), data);
}

#[test]
fn reopen_adopts_valid_orphans_removes_invalid_ones_and_drops_missing_rows() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let mut cache = open_with(&s, &c, Config::default());
    let kept = cache.put_blob(None, b"kept").unwrap();
    let lost = cache.put_blob(None, b"lost").unwrap();
    drop(cache); // as a crash would: no clean shutdown recorded
    let orphan = sha(b"orphan");
    s.put(&layout::entry_path(&Key::blob(orphan.clone())), b"orphan");
    let liar = sha(b"truth");
    s.put(&layout::entry_path(&Key::blob(liar.clone())), b"lie");
    s.put("blobs/sha256/not-a-digest", b"x");
    Storage::remove(
        &mut s.clone(),
        &layout::entry_path(&Key::blob(lost.clone())),
    )
    .unwrap();

    let mut cache = open_with(&s, &c, Config::default());
    let r = cache.recovery_report().clone();
    assert_eq!(
        (r.orphans_adopted, r.orphans_removed, r.missing_dropped),
        (1, 1, 1)
    );
    // A name the cache never writes is not its file: reported, left in place.
    assert_eq!(r.foreign_files, 1);
    assert_eq!(s.get("blobs/sha256/not-a-digest").unwrap(), b"x");
    assert!(r.compacted);
    assert_eq!(cache.get_blob(&orphan).unwrap(), b"orphan");
    assert_eq!(cache.get_blob(&kept).unwrap(), b"kept");
    assert_eq!(
        cache.get_blob(&liar).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        cache.get_blob(&lost).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // The foreign file is reported until a repair, asked for, removes it.
    let report = cache.check_integrity().unwrap();
    assert_eq!(report.unindexed.len(), 1, "{report:?}");
    assert_eq!(cache.repair().unwrap().removed_unindexed, 1);
    assert!(cache.check_integrity().unwrap().healthy);
}

#[test]
fn a_torn_journal_tail_is_dropped_and_later_appends_survive() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let mut cache = open_with(&s, &c, Config::default());
    let a = cache.put_blob(None, b"a").unwrap();
    let t: Reference = "app:1".parse().unwrap();
    cache.put_tag(&t, &a).unwrap();
    drop(cache);
    let journal = layout::journal_path(0);
    let len = s.get(&journal).unwrap().len();
    s.truncate(&journal, len - 3);
    let mut cache = open_with(&s, &c, Config::default());
    assert!(cache.recovery_report().torn_tail);
    assert!(cache.has_blob(&a));
    assert_eq!(
        cache.resolve_tag(&t).unwrap(),
        Resolution::Unknown,
        "the torn record is gone"
    );
    cache.put_tag(&t, &a).unwrap();
    drop(cache);
    let mut cache = open_with(&s, &c, Config::default());
    assert!(!cache.recovery_report().torn_tail);
    assert_eq!(cache.resolve_tag(&t).unwrap(), Resolution::Fresh(a));
}

#[test]
fn compaction_keeps_everything_and_bounds_the_journal() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let config = Config {
        compaction_min_records: 10,
        ..Config::default()
    };
    let mut cache = open_with(&s, &c, config.clone());
    let mut digests = Vec::new();
    for i in 0..100u32 {
        digests.push(cache.put_blob(None, &i.to_le_bytes()).unwrap());
        c.advance(1);
    }
    let key = Key::blob(digests[3].clone());
    cache.pin(&key).unwrap();
    assert!(cache.stats().last_compaction.is_some());
    assert!(cache.debug_info().journal_records <= 101);
    let before = cache.contents();
    cache.close().unwrap();
    let cache = open_with(&s, &c, config);
    assert_eq!(cache.contents(), before);
    let journals = s
        .paths()
        .iter()
        .filter(|p| p.starts_with("index/journal-"))
        .count();
    assert_eq!(journals, 1, "old generations are removed");
}

#[test]
fn lru_order_survives_reopen_after_flush() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let mut cache = open_with(&s, &c, small(300));
    let a = cache.put_blob(None, &[1; 100]).unwrap();
    let b = cache.put_blob(None, &[2; 100]).unwrap();
    let d = cache.put_blob(None, &[3; 100]).unwrap();
    cache.get_blob(&a).unwrap(); // same millisecond: order comes from the logical clock
    cache.close().unwrap();
    let mut cache = open_with(&s, &c, small(300));
    cache.put_blob(None, &[4; 100]).unwrap();
    assert!(!cache.has_blob(&b), "b was least recently used");
    assert!(cache.has_blob(&a) && cache.has_blob(&d));
}

#[test]
fn expired_is_not_not_found_and_cleanup_frees_the_bytes() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let config = Config {
        default_ttl_ms: 1000,
        ..Config::default()
    };
    let mut cache = open_with(&s, &c, config);
    let a = cache.put_blob(None, b"soon gone").unwrap();
    c.advance(1000);
    assert_eq!(cache.get_blob(&a).unwrap_err().kind(), ErrorKind::Expired);
    assert_eq!(cache.stats().expired_entries, 1);
    assert_eq!(cache.clear_expired().unwrap(), 1);
    assert_eq!(cache.get_blob(&a).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(cache.size(), 0);
    assert!(s.paths().iter().all(|p| !p.starts_with("blobs/")));
    assert_eq!(cache.metrics().evictions_expired, 1);
}

#[test]
fn invalid_config_is_refused_at_open() {
    let r = Cache::builder(MemoryStorage::new(), ManualClock::new(0))
        .config(Config {
            max_bytes: 0,
            ..Config::default()
        })
        .open();
    assert_eq!(r.err().map(|e| e.kind()), Some(ErrorKind::InvalidConfig));
}

#[test]
fn a_damaged_snapshot_is_rebuilt_from_the_stored_files() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let mut cache = open_with(&s, &c, Config::default());
    let a = cache.put_blob(None, b"survivor").unwrap();
    cache.cleanup().unwrap();
    drop(cache);
    assert!(s.corrupt(layout::SNAPSHOT, 20));
    let mut cache = open_with(&s, &c, Config::default());
    assert!(cache.recovery_report().snapshot_damaged);
    assert_eq!(cache.get_blob(&a).unwrap(), b"survivor");
}

#[test]
fn an_entry_above_the_low_watermark_evicts_only_what_it_needs() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let config = Config {
        max_bytes: 1000,
        high_watermark_percent: 90,
        low_watermark_percent: 20,
        ..small(1000)
    };
    let mut cache = open_with(&s, &c, config);
    for i in 0..8u8 {
        cache.put_blob(None, &[i; 100]).unwrap();
    }
    cache.put_blob(None, &[9; 500]).unwrap();
    assert_eq!(cache.size(), 1000, "three evicted, not all eight");
}

#[test]
fn handles_can_move_to_other_threads() {
    fn send<T: Send>() {}
    send::<Cache>();
    send::<BlobWriter>();
    send::<BlobReader>();
}

#[test]
fn a_clean_close_lets_the_next_open_trust_the_index() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let mut cache = open_with(&s, &c, Config::default());
    let a = cache.put_blob(None, b"a").unwrap();
    cache.close().unwrap();
    let orphan = sha(b"planted");
    s.put(&layout::entry_path(&Key::blob(orphan.clone())), b"planted");

    let mut cache = open_with(&s, &c, Config::default());
    let r = cache.recovery_report().clone();
    assert!(r.clean_shutdown);
    assert_eq!(
        r.orphans_adopted, 0,
        "files are not walked after a clean close"
    );
    assert!(cache.has_blob(&a));
    // The file planted behind the cache's back is still found by the check and adopted by repair.
    let report = cache.check_integrity().unwrap();
    assert_eq!(report.unindexed.len(), 1);
    assert_eq!(cache.repair().unwrap().adopted, 1);
    assert_eq!(cache.get_blob(&orphan).unwrap(), b"planted");

    // Any record after `Closed` (here: the repair's) means the next open walks the files again.
    drop(cache);
    let cache = open_with(&s, &c, Config::default());
    assert!(!cache.recovery_report().clean_shutdown);
}

#[test]
fn a_custom_policy_survives_a_damaged_snapshot() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let mut cache = open_with(&s, &c, Config::default());
    let a = cache.put_blob(None, b"survivor").unwrap();
    cache.cleanup().unwrap();
    drop(cache);
    assert!(s.corrupt(layout::SNAPSHOT, 20));
    let custom = crate::eviction::CompositePolicy::new(vec![(
        7,
        Box::new(crate::eviction::LruPolicy::default()),
    )]);
    let mut cache = Cache::builder(s.clone(), c.clone())
        .policy(Box::new(custom))
        .open()
        .unwrap();
    assert!(cache.recovery_report().snapshot_damaged);
    assert_eq!(cache.debug_info().policy, "composite(7:lru)");
    assert_eq!(cache.get_blob(&a).unwrap(), b"survivor");
}

// ----- processes sharing one storage (issue 9, items 1–3 and 5) -----

/// A storage whose appends to one path fail once, as on a full disk.
struct FailAppendOnce {
    inner: MemoryStorage,
    path: String,
    armed: bool,
    /// The failure is a crash: every later call fails too.
    crash: bool,
    crashed: bool,
    /// Fails only an append that follows a commit or removal of a path with this prefix.
    after: Option<&'static str>,
}

impl FailAppendOnce {
    fn new(inner: &MemoryStorage, path: &str, crash: bool) -> FailAppendOnce {
        FailAppendOnce {
            inner: inner.clone(),
            path: path.to_owned(),
            armed: true,
            crash,
            crashed: false,
            after: None,
        }
    }
    /// Crashes at the first journal append after content under `prefix` was committed or
    /// removed: between a change and its record.
    fn crash_after(inner: &MemoryStorage, path: &str, prefix: &'static str) -> FailAppendOnce {
        FailAppendOnce {
            after: Some(prefix),
            ..FailAppendOnce::new(inner, path, true)
        }
    }
    fn saw(&mut self, path: &str) {
        if self.after.is_some_and(|p| path.starts_with(p)) {
            self.after = None;
        }
    }
    fn check(&self) -> Result<(), StorageError> {
        if self.crashed {
            return Err(StorageError::Io("crashed".into()));
        }
        Ok(())
    }
}

impl Storage for FailAppendOnce {
    fn create_temp(&mut self, hint: Option<u64>) -> Result<crate::storage::TempId, StorageError> {
        self.check()?;
        self.inner.create_temp(hint)
    }
    fn write_temp(&mut self, t: crate::storage::TempId, d: &[u8]) -> Result<(), StorageError> {
        self.check()?;
        self.inner.write_temp(t, d)
    }
    fn commit_temp(&mut self, t: crate::storage::TempId, p: &str) -> Result<(), StorageError> {
        self.check()?;
        self.saw(p);
        self.inner.commit_temp(t, p)
    }
    fn abort_temp(&mut self, t: crate::storage::TempId) -> Result<(), StorageError> {
        self.check()?;
        self.inner.abort_temp(t)
    }
    fn append(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError> {
        self.check()?;
        if self.armed && self.after.is_none() && path.starts_with(&self.path) {
            self.armed = false;
            self.crashed = self.crash;
            return Err(StorageError::NoSpace);
        }
        self.inner.append(path, data)
    }
    fn read_at(&mut self, p: &str, o: u64, b: &mut [u8]) -> Result<usize, StorageError> {
        self.check()?;
        self.inner.read_at(p, o, b)
    }
    fn size(&mut self, p: &str) -> Result<Option<u64>, StorageError> {
        self.check()?;
        self.inner.size(p)
    }
    fn list(&mut self, d: &str) -> Result<Vec<String>, StorageError> {
        self.check()?;
        self.inner.list(d)
    }
    fn remove(&mut self, p: &str) -> Result<(), StorageError> {
        self.check()?;
        self.saw(p);
        self.inner.remove(p)
    }
    fn clear_temps(&mut self) -> Result<u64, StorageError> {
        self.check()?;
        self.inner.clear_temps()
    }
}

use crate::storage::StorageError;

#[test]
fn records_appended_after_another_process_cut_a_torn_tail_are_seen_by_refresh() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let mut a = open_with(&s, &c, Config::default());
    let mut b = open_with(&s, &c, Config::default());
    // A third process dies in the middle of an append: a torn frame ends journal-0.
    s.clone()
        .append(&layout::journal_path(0), &[40, 0, 0, 0, 1, 2, 3])
        .unwrap();
    // B notices the torn tail during an operation.
    b.refresh().unwrap();
    // A cuts it and records a tag.
    a.refresh().unwrap();
    let r: Reference = "example.com/app:1".parse().unwrap();
    let d = sha(b"app");
    a.put_tag(&r, &d).unwrap();
    assert!(b.refresh().unwrap(), "B sees that the journal changed");
    assert_eq!(b.resolve_tag(&r).unwrap(), Resolution::Fresh(d.clone()));
    // B compacts: A's tag must survive it, for A and for a new process.
    b.cleanup().unwrap();
    a.refresh().unwrap();
    assert_eq!(a.resolve_tag(&r).unwrap(), Resolution::Fresh(d.clone()));
    let mut fresh = open_with(&s, &c, Config::default());
    assert_eq!(fresh.resolve_tag(&r).unwrap(), Resolution::Fresh(d));
}

#[test]
fn a_compaction_that_cannot_start_its_journal_loses_no_other_process_record() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let config = Config {
        compaction_min_records: 4,
        ..Config::default()
    };
    let failing = FailAppendOnce::new(&s, &layout::journal_path(1), false);
    let mut a = Cache::builder(failing, c.clone())
        .config(config.clone())
        .open()
        .unwrap();
    let mut b = open_with(&s, &c, config.clone());
    // A's puts trigger a compaction whose new journal cannot be created (no space).
    let mut blobs = Vec::new();
    for i in 0..20u8 {
        a.refresh().unwrap();
        blobs.push(a.put_blob(None, &[i; 10]).unwrap());
        if s.get(layout::SNAPSHOT).is_some() || s.get(&layout::journal_path(1)).is_some() {
            break;
        }
    }
    assert!(blobs.len() < 20, "a compaction was attempted");
    // B goes on recording a tag.
    let r: Reference = "example.com/app:1".parse().unwrap();
    let d = sha(b"app");
    b.refresh().unwrap();
    b.put_tag(&r, &d).unwrap();
    a.refresh().unwrap();
    assert_eq!(a.resolve_tag(&r).unwrap(), Resolution::Fresh(d.clone()));
    // A new process (or the next run) still has it, and every blob.
    let mut fresh = open_with(&s, &c, config);
    assert_eq!(fresh.resolve_tag(&r).unwrap(), Resolution::Fresh(d));
    for d in &blobs {
        assert!(fresh.has_blob(d), "blob {d}");
    }
}

#[test]
fn a_late_access_record_does_not_roll_back_a_renewal() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let config = Config {
        default_ttl_ms: 1000,
        ..Config::default()
    };
    let mut a = open_with(&s, &c, config.clone());
    let mut b = open_with(&s, &c, config.clone());
    let d = a.put_blob(None, b"renewed").unwrap();
    b.refresh().unwrap();
    // B reads it: an access record, buffered.
    assert_eq!(b.get_blob(&d).unwrap(), b"renewed");
    // Later, A re-puts (renews) it.
    c.advance(800);
    a.refresh().unwrap();
    a.put_blob(None, b"renewed").unwrap();
    // B's buffered access record lands after A's renewal.
    b.refresh().unwrap();
    b.flush().unwrap();
    c.advance(400);
    for cache in [&mut a, &mut b] {
        cache.refresh().unwrap();
        assert_eq!(cache.get_blob(&d).unwrap(), b"renewed", "still fresh");
    }
    let mut fresh = open_with(&s, &c, config);
    assert_eq!(
        fresh.get_blob(&d).unwrap(),
        b"renewed",
        "still fresh after reopen"
    );
}

#[test]
fn a_crash_after_a_clean_reopen_is_not_taken_for_a_clean_shutdown() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let mut cache = open_with(&s, &c, Config::default());
    let gone = cache.put_blob(None, b"to be deleted").unwrap();
    cache.close().unwrap();
    // A clean reopen, then a crash between a blob's commit and its journal record.
    let crashing = FailAppendOnce::crash_after(&s, "index/journal-", "blobs/");
    let mut cache = Cache::builder(crashing, c.clone()).open().unwrap();
    assert!(cache.recovery_report().clean_shutdown);
    cache
        .put_blob(None, b"committed, not journaled")
        .unwrap_err();
    drop(cache);
    let mut cache = open_with(&s, &c, Config::default());
    assert!(!cache.recovery_report().clean_shutdown, "the crash is seen");
    let report = cache.check_integrity().unwrap();
    assert!(report.healthy, "the file is adopted or removed: {report:?}");
    cache.close().unwrap();

    // A clean reopen, then a crash between a file's removal and its `Remove` record.
    let crashing = FailAppendOnce::crash_after(&s, "index/journal-", "blobs/");
    let mut cache = Cache::builder(crashing, c.clone()).open().unwrap();
    assert!(cache.recovery_report().clean_shutdown);
    cache.delete(&Key::blob(gone.clone())).unwrap_err();
    drop(cache);
    let mut cache = open_with(&s, &c, Config::default());
    assert!(!cache.has_blob(&gone), "no row without its file");
    let report = cache.check_integrity().unwrap();
    assert!(report.healthy, "{report:?}");
}

// ----- index files and directories the cache must not trust (issue 9, items 7, 9, 10) -----

/// Every path with its bytes: "changes nothing" compares this.
fn everything(s: &MemoryStorage) -> Vec<(String, Vec<u8>)> {
    s.paths()
        .into_iter()
        .map(|p| {
            let bytes = s.get(&p).unwrap_or_default();
            (p, bytes)
        })
        .collect()
}

#[test]
fn a_size_the_index_claims_is_checked_against_the_file_and_evicts_nothing() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let config = small(10_000);
    let mut cache = open_with(&s, &c, config.clone());
    let blobs: Vec<Digest> = (0..5u8)
        .map(|i| cache.put_blob(None, &[i; 1000]).unwrap())
        .collect();
    drop(cache);
    // A checksum-valid record claims 5 GB for a 1000-byte blob.
    let mut forged = Vec::new();
    Record::Put {
        entry: NewEntry {
            key: Key::blob(blobs[0].clone()),
            size: 5_000_000_000,
            created: T0,
            accessed: T0,
            expires: u64::MAX,
            access_count: 0,
            pins: 0,
            media_type: None,
            quarantined: false,
        },
        references: Vec::new(),
    }
    .encode_frame(&mut forged);
    s.clone().append(&layout::journal_path(0), &forged).unwrap();
    let log = MemoryLog::default();
    let mut cache = Cache::builder(s.clone(), c.clone())
        .config(config.clone())
        .log(log.clone())
        .open()
        .unwrap();
    assert_eq!(cache.recovery_report().size_mismatches, 1);
    assert_eq!(
        cache.size(),
        5000,
        "the stored sizes count, not the claimed one"
    );
    assert!(
        log.records()
            .iter()
            .any(|(level, _)| *level == Level::Error),
        "reported as an error"
    );
    cache.put_blob(None, &[9; 1000]).unwrap();
    for d in &blobs {
        assert!(cache.has_blob(d), "nothing evicted for a forged size: {d}");
    }
    assert!(cache.check_integrity().unwrap().healthy);
}

#[test]
fn a_storage_with_files_and_no_index_is_refused_unchanged() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    // An OCI image layout's blobs, and a file the cache never writes.
    let layer = b"a layer of someone else's image";
    s.put(&format!("blobs/sha256/{}", sha(layer).hex()), layer);
    s.put("blobs/sha256/README", b"not ours");
    let liar = format!("blobs/sha256/{}", sha(b"what the name says").hex());
    s.put(&liar, b"other bytes");
    let before = everything(&s);
    let err = Cache::builder(s.clone(), c.clone())
        .config(small(10))
        .open()
        .err()
        .expect("refused");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.to_string().contains("not an ocicache directory"),
        "{err}"
    );
    assert_eq!(everything(&s), before, "nothing written or removed");

    // Asked for explicitly: the matching file is adopted, the other left in place, and opening
    // evicts nothing even over the cap.
    let cache = Cache::builder(s.clone(), c.clone())
        .config(small(10))
        .adopt_existing(true)
        .open()
        .unwrap();
    assert_eq!(cache.recovery_report().orphans_adopted, 1);
    assert_eq!(cache.recovery_report().foreign_files, 2);
    assert_eq!(cache.recovery_report().orphans_removed, 0);
    assert_eq!(s.get("blobs/sha256/README").unwrap(), b"not ours");
    assert_eq!(
        s.get(&liar).unwrap(),
        b"other bytes",
        "not removed: not ours"
    );
    assert!(cache.has_blob(&sha(layer)));
}

#[test]
fn stray_entries_are_reported_and_do_not_block_opening() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let mut cache = open_with(&s, &c, Config::default());
    let kept = cache.put_blob(None, b"kept").unwrap();
    drop(cache); // not closed: the next open walks the files
    // A directory where a blob file belongs (readable as no file), and a name never written.
    let dir_like = format!("blobs/sha256/{}/inside", sha(b"other").hex());
    s.put(&dir_like, b"x");
    s.put("manifests/sha256/a b", b"y");
    let mut cache = open_with(&s, &c, Config::default());
    assert_eq!(cache.recovery_report().foreign_files, 2);
    assert_eq!(s.get(&dir_like).unwrap(), b"x");
    assert_eq!(s.get("manifests/sha256/a b").unwrap(), b"y");
    assert_eq!(cache.get_blob(&kept).unwrap(), b"kept");
}

#[test]
fn announced_sizes_of_concurrent_writers_count_against_the_cap() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let mut cache = open_with(&s, &c, small(100));
    let mut first = cache.begin_blob(None, Some(60)).unwrap();
    // A second writer cannot also fit: refused before it writes a byte.
    let err = cache.begin_blob(None, Some(60)).err().expect("refused");
    assert_eq!(err.kind(), ErrorKind::Full);
    assert_eq!(s.temp_count(), 1, "no temp for the refused writer");
    // A small one fits beside the first.
    let mut small_one = cache.begin_blob(None, Some(40)).unwrap();
    cache.write_blob(&mut small_one, &[2; 40]).unwrap();
    cache.write_blob(&mut first, &[1; 60]).unwrap();
    cache.commit_blob(first).unwrap();
    cache.commit_blob(small_one).unwrap();
    assert_eq!(cache.size(), 100, "never over the cap");
    // Aborting gives the reservation back.
    let mut aborted = cache.begin_blob(None, Some(100)).unwrap();
    assert_eq!(cache.size(), 0, "room was made for it up front");
    cache.abort_blob(&mut aborted);
    let d = cache.put_blob(None, &[3; 100]).unwrap();
    assert!(cache.has_blob(&d));
}

#[test]
fn every_eviction_and_removal_is_logged_at_info() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let log = MemoryLog::default();
    let mut cache = Cache::builder(s, c)
        .config(small(100))
        .log(log.clone())
        .open()
        .unwrap();
    let a = cache.put_blob(None, &[1; 60]).unwrap();
    let b = cache.put_blob(None, &[2; 60]).unwrap();
    cache.delete(&Key::blob(b.clone())).unwrap();
    let info: Vec<String> = log
        .records()
        .into_iter()
        .filter(|(level, _)| *level == Level::Info)
        .map(|(_, line)| line)
        .collect();
    let evicted = format!("evicted entry=blob {a} bytes=60 reason=capacity");
    let removed = format!("removed entry=blob {b} bytes=60 reason=explicit");
    assert!(info.contains(&evicted), "{info:?}");
    assert!(info.contains(&removed), "{info:?}");
    assert_eq!(cache.metrics().evictions_capacity, 1);
}

#[test]
fn a_crash_after_another_process_closed_is_not_taken_for_a_clean_shutdown() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let a = open_with(&s, &c, Config::default());
    let crashing = FailAppendOnce::crash_after(&s, "index/journal-", "blobs/");
    let mut b = Cache::builder(crashing, c.clone()).open().unwrap();
    // A closes cleanly while B is still open: the journal ends in `Closed`.
    a.close().unwrap();
    b.refresh().unwrap();
    // B crashes between a blob's commit and its record.
    b.put_blob(None, b"committed by b").unwrap_err();
    drop(b);
    let mut fresh = open_with(&s, &c, Config::default());
    assert!(!fresh.recovery_report().clean_shutdown);
    let report = fresh.check_integrity().unwrap();
    assert!(report.healthy, "{report:?}");
}

#[test]
fn damage_in_the_middle_of_the_journal_keeps_the_records_after_it() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let mut cache = open_with(&s, &c, Config::default());
    let a = cache.put_blob(None, b"a").unwrap();
    let journal = layout::journal_path(0);
    let tags: Vec<Reference> = ["app:1", "app:2", "app:3"]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    let mut ends = Vec::new();
    for t in &tags {
        cache.put_tag(t, &a).unwrap();
        ends.push(s.get(&journal).unwrap().len());
    }
    let b = cache.put_blob(None, b"b").unwrap();
    cache.close().unwrap();
    // Bit rot inside the record of the second tag: the records before and after it are whole.
    s.corrupt(&journal, (ends[0] + ends[1]) / 2);
    let log = MemoryLog::default();
    let mut cache = Cache::builder(s.clone(), c.clone())
        .log(log.clone())
        .open()
        .unwrap();
    assert_eq!(
        cache.resolve_tag(&tags[0]).unwrap(),
        Resolution::Fresh(a.clone())
    );
    assert_eq!(
        cache.resolve_tag(&tags[1]).unwrap(),
        Resolution::Unknown,
        "the damaged record is lost"
    );
    assert_eq!(
        cache.resolve_tag(&tags[2]).unwrap(),
        Resolution::Fresh(a.clone()),
        "a record after the damage is kept"
    );
    assert!(cache.has_blob(&b), "so is the blob put after it");
    assert!(!cache.check_integrity().unwrap().healthy);
}

#[test]
fn damage_in_the_middle_of_the_journal_is_reported_until_repair() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let mut cache = open_with(&s, &c, Config::default());
    let a = cache.put_blob(None, b"a").unwrap();
    let journal = layout::journal_path(0);
    let before = s.get(&journal).unwrap().len();
    cache.put_tag(&"app:1".parse().unwrap(), &a).unwrap();
    let after = s.get(&journal).unwrap().len();
    cache.put_tag(&"app:2".parse().unwrap(), &a).unwrap();
    drop(cache);
    s.corrupt(&journal, before + 10);
    let log = MemoryLog::default();
    let mut cache = Cache::builder(s.clone(), c.clone())
        .log(log.clone())
        .open()
        .unwrap();
    let report = cache.recovery_report().clone();
    assert_eq!(
        (
            report.journal_damaged_regions,
            report.journal_damaged_bytes,
            report.torn_tail
        ),
        (1, (after - before) as u64, false),
        "{report:?}"
    );
    assert!(
        log.records()
            .iter()
            .any(|(level, m)| *level == Level::Error && m.starts_with("journal damaged")),
        "logged as an error"
    );
    let check = cache.check_integrity().unwrap();
    assert!(!check.healthy);
    assert_eq!(check.corrupted.len(), 1);
    assert_eq!(check.corrupted[0].what, journal);
    // Until repaired, every open reports it again (the damaged journal is kept as evidence).
    drop(cache);
    let mut cache = open_with(&s, &c, Config::default());
    assert_eq!(cache.recovery_report().journal_damaged_regions, 1);
    assert!(!cache.check_integrity().unwrap().healthy);
    let repaired = cache.repair().unwrap();
    assert_eq!(repaired.before.corrupted.len(), 1);
    assert!(cache.check_integrity().unwrap().healthy);
    assert_eq!(
        cache.resolve_tag(&"app:2".parse().unwrap()).unwrap(),
        Resolution::Fresh(a.clone())
    );
    drop(cache);
    let mut cache = open_with(&s, &c, Config::default());
    assert_eq!(cache.recovery_report().journal_damaged_regions, 0);
    assert!(cache.check_integrity().unwrap().healthy);
    assert!(cache.has_blob(&a));
}

// ----- a removal whose record cannot be written (issue 9, item 13) -----

/// A storage whose journal appends fail while `full` is set, as on a full disk; everything
/// else (removing files among it) works.
struct JournalFull {
    inner: MemoryStorage,
    full: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl JournalFull {
    fn new(inner: &MemoryStorage) -> (JournalFull, std::sync::Arc<std::sync::atomic::AtomicBool>) {
        let full = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let storage = JournalFull {
            inner: inner.clone(),
            full: full.clone(),
        };
        (storage, full)
    }
}

impl Storage for JournalFull {
    fn create_temp(&mut self, hint: Option<u64>) -> Result<crate::storage::TempId, StorageError> {
        self.inner.create_temp(hint)
    }
    fn write_temp(&mut self, t: crate::storage::TempId, d: &[u8]) -> Result<(), StorageError> {
        self.inner.write_temp(t, d)
    }
    fn commit_temp(&mut self, t: crate::storage::TempId, p: &str) -> Result<(), StorageError> {
        self.inner.commit_temp(t, p)
    }
    fn abort_temp(&mut self, t: crate::storage::TempId) -> Result<(), StorageError> {
        self.inner.abort_temp(t)
    }
    fn append(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError> {
        if self.full.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StorageError::NoSpace);
        }
        self.inner.append(path, data)
    }
    fn read_at(&mut self, p: &str, o: u64, b: &mut [u8]) -> Result<usize, StorageError> {
        self.inner.read_at(p, o, b)
    }
    fn size(&mut self, p: &str) -> Result<Option<u64>, StorageError> {
        self.inner.size(p)
    }
    fn list(&mut self, d: &str) -> Result<Vec<String>, StorageError> {
        self.inner.list(d)
    }
    fn remove(&mut self, p: &str) -> Result<(), StorageError> {
        self.inner.remove(p)
    }
    fn clear_temps(&mut self) -> Result<u64, StorageError> {
        self.inner.clear_temps()
    }
}

#[test]
fn a_removal_whose_record_failed_is_journaled_by_the_next_call_and_seen_by_every_process() {
    use std::sync::atomic::Ordering;
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let (storage, full) = JournalFull::new(&s);
    let mut a = Cache::builder(storage, c.clone()).open().unwrap();
    let mut b = open_with(&s, &c, Config::default());
    let d = a.put_blob(None, b"deleted while the disk is full").unwrap();
    b.refresh().unwrap();
    // The delete removes the file (its first append, the active marker, is already there from
    // the put), then its record fails.
    full.store(true, Ordering::SeqCst);
    assert_eq!(
        a.delete_blob(&d).unwrap_err().kind(),
        ErrorKind::Storage,
        "not durable: reported"
    );
    // Still full: refreshes and reads go on; the record waits.
    a.refresh().unwrap();
    assert!(!a.has_blob(&d));
    b.refresh().unwrap();
    assert!(b.get_blob(&d).is_err(), "never served: its file is gone");
    // Space again: A's next call writes the record, and every process agrees.
    full.store(false, Ordering::SeqCst);
    a.refresh().unwrap();
    b.refresh().unwrap();
    assert!(!a.has_blob(&d) && !b.has_blob(&d));
    assert!(b.check_integrity().unwrap().missing.is_empty());
    // A new process sees it too, from the journal alone.
    let mut c2 = open_with(&s, &c, Config::default());
    assert!(!c2.has_blob(&d));
    assert!(c2.check_integrity().unwrap().healthy);
}

#[test]
fn a_removal_whose_record_never_got_written_keeps_the_close_from_claiming_a_clean_shutdown() {
    use std::sync::atomic::Ordering;
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let (storage, full) = JournalFull::new(&s);
    let mut a = Cache::builder(storage, c.clone()).open().unwrap();
    let d = a.put_blob(None, b"deleted while the disk is full").unwrap();
    full.store(true, Ordering::SeqCst);
    a.delete_blob(&d).unwrap_err();
    assert_eq!(
        a.close().unwrap_err().kind(),
        ErrorKind::Storage,
        "the close cannot write the record: it fails rather than claim a clean shutdown"
    );
    full.store(false, Ordering::SeqCst);
    // Had the close recorded a clean shutdown, this open would trust a row without a file.
    let mut reopened = open_with(&s, &c, Config::default());
    assert!(!reopened.recovery_report().clean_shutdown);
    assert!(!reopened.has_blob(&d));
    assert!(reopened.check_integrity().unwrap().healthy);

    // With space again before the close, the close writes the owed record first, then the
    // clean shutdown: the next open trusts an index that no longer lists the blob.
    let e = reopened
        .put_blob(None, b"deleted while the disk was full")
        .unwrap();
    reopened.close().unwrap();
    let (storage, full) = JournalFull::new(&s);
    let mut a = Cache::builder(storage, c.clone()).open().unwrap();
    // A first change marks the journal active (the delete below then appends only its record).
    a.put_blob(None, b"another").unwrap();
    full.store(true, Ordering::SeqCst);
    a.delete_blob(&e).unwrap_err();
    full.store(false, Ordering::SeqCst);
    a.close().unwrap();
    let mut trusted = open_with(&s, &c, Config::default());
    assert!(trusted.recovery_report().clean_shutdown);
    assert!(
        !trusted.has_blob(&e),
        "a trusted open lists no row without its file"
    );
    assert!(trusted.check_integrity().unwrap().healthy);
}

#[test]
fn a_removal_record_still_owed_is_not_written_over_bytes_put_again() {
    use std::sync::atomic::Ordering;
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let (storage, full) = JournalFull::new(&s);
    let mut a = Cache::builder(storage, c.clone()).open().unwrap();
    let mut b = open_with(&s, &c, Config::default());
    let d = a.put_blob(None, b"put again by another process").unwrap();
    b.refresh().unwrap();
    full.store(true, Ordering::SeqCst);
    a.delete_blob(&d).unwrap_err();
    // B still lists the blob; its read finds the file gone and drops it; B puts it again.
    b.refresh().unwrap();
    let _ = b.get_blob(&d);
    b.put_blob(None, b"put again by another process").unwrap();
    full.store(false, Ordering::SeqCst);
    // A's owed record is no longer true (the file is back): it is not written.
    a.refresh().unwrap();
    b.refresh().unwrap();
    assert_eq!(b.get_blob(&d).unwrap(), b"put again by another process");
    assert!(a.has_blob(&d), "A sees B's put");
    let mut fresh = open_with(&s, &c, Config::default());
    assert_eq!(fresh.get_blob(&d).unwrap(), b"put again by another process");
}

#[test]
fn manifest_bytes_are_the_verified_bytes_and_type_without_a_parse() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let mut cache = open_with(&s, &c, Config::default());
    let body = image_manifest(&sha(b"config"), &[&sha(b"layer")]);
    let d = sha(&body);
    cache.put_manifest(&d, &body, None).unwrap();
    let full = cache.get_manifest(&d).unwrap();
    let (media_type, bytes) = cache.get_manifest_bytes(&d).unwrap();
    assert_eq!((media_type, &bytes), (full.media_type, &full.bytes));
    assert_eq!(media_type, crate::MediaType::OciManifest);
    assert_eq!(
        cache.metrics().manifest_gets,
        2,
        "counted as a manifest read"
    );

    // Verified reads: bytes that no longer hash to the digest are refused and quarantined.
    let path = layout::entry_path(&Key::manifest(d.clone()));
    assert!(s.corrupt(&path, 3));
    let err = cache.get_manifest_bytes(&d).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupted);
    assert!(s.get(&path).is_none(), "quarantined");
    assert!(!cache.has_manifest(&d));
}

#[test]
fn manifest_bytes_are_parsed_when_reads_are_not_verified() {
    let (s, c) = (MemoryStorage::new(), ManualClock::new(T0));
    let config = Config {
        verify_reads: false,
        ..Config::default()
    };
    let mut cache = open_with(&s, &c, config);
    let body = image_manifest(&sha(b"config"), &[]);
    let d = sha(&body);
    cache.put_manifest(&d, &body, None).unwrap();
    // Same size, not JSON: without a hash check only the parse can tell.
    let path = layout::entry_path(&Key::manifest(d.clone()));
    s.put(&path, &vec![b'x'; body.len()]);
    let err = cache.get_manifest_bytes(&d).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupted);
    assert!(!cache.has_manifest(&d), "quarantined");
}
