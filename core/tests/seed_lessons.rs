//! Every failure listed in `SEED-LESSONS.md` ("Failures not to repeat", items 1–14) as named
//! tests that pass. Each test is named after its lesson; comments say what the seed did wrong
//! and, where a lesson needs a real host to show in full (fsync, OS memory), what the core can
//! show on its own.

mod common;
use common::{image_manifest, in_layout, pattern, sha256};
use ocicache_core::hashing::digest_of;
use ocicache_core::storage::{Fault, FaultyStorage, MemoryStorage};
use ocicache_core::{
    Algorithm, BlobWriter, BuiltinHasher, Cache, Config, Digest, ErrorKind, Key, Kind, Level,
    ManualClock, MediaType, MemoryLog, Reference, Resolution, Storage, StorageError, TempId,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

const T0: u64 = 1_700_000_000_000;
const HOUR: u64 = 3_600_000;

// ----- helpers -----

fn open_with(storage: impl Storage + 'static, clock: &ManualClock, config: Config) -> Cache {
    Cache::builder(storage, clock.clone())
        .config(config)
        .open()
        .expect("open")
}

fn open(storage: &MemoryStorage, clock: &ManualClock) -> Cache {
    open_with(storage.clone(), clock, Config::default())
}

fn capped(max_bytes: u64) -> Config {
    Config {
        max_bytes,
        ..Config::default()
    }
}

fn ref_(s: &str) -> Reference {
    s.parse().expect("valid reference")
}

/// An index (OCI index or Docker manifest list) of `children`.
fn index_manifest(media_type: MediaType, children: &[Digest]) -> Vec<u8> {
    let child_type = if media_type == MediaType::DockerManifestList {
        MediaType::DockerManifest
    } else {
        MediaType::OciManifest
    };
    let manifests: Vec<String> = children
        .iter()
        .map(|d| {
            format!(
                r#"{{"mediaType":"{}","digest":"{d}","size":7}}"#,
                child_type.as_str()
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
        media_type.as_str(),
        manifests.join(",")
    )
    .into_bytes()
}

/// Stores an image manifest (and returns its digest and bytes).
fn put_image(cache: &mut Cache, config: &Digest, layers: &[&Digest]) -> (Digest, Vec<u8>) {
    let bytes = image_manifest(config, layers);
    let digest = sha256(&bytes);
    cache
        .put_manifest(&digest, &bytes, None)
        .expect("put manifest");
    (digest, bytes)
}

fn assert_layout(storage: &MemoryStorage) {
    for p in storage.paths() {
        assert!(in_layout(&p), "path outside the layout: {p:?}");
    }
}

/// Content files (manifests and blobs) in storage.
fn content_files(storage: &MemoryStorage) -> BTreeSet<String> {
    storage
        .paths()
        .into_iter()
        .filter(|p| p.starts_with("blobs/") || p.starts_with("manifests/"))
        .collect()
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().name(), d.hex())
}

fn manifest_path(d: &Digest) -> String {
    format!("manifests/{}/{}", d.algorithm().name(), d.hex())
}

/// What a [`Recording`] storage saw.
#[derive(Debug, Default)]
struct Seen {
    calls: BTreeMap<&'static str, u64>,
    max_read_buf: usize,
    max_write_chunk: usize,
    paths: BTreeSet<String>,
}

impl Seen {
    fn count(&self, op: &str) -> u64 {
        self.calls.get(op).copied().unwrap_or(0)
    }
    fn total(&self) -> u64 {
        self.calls.values().sum()
    }
    fn writes(&self) -> u64 {
        [
            "create_temp",
            "write_temp",
            "commit_temp",
            "append",
            "remove",
        ]
        .iter()
        .map(|op| self.count(op))
        .sum()
    }
}

/// A storage that records every call the core makes (op, buffer sizes, paths).
#[derive(Clone)]
struct Recording {
    inner: MemoryStorage,
    seen: Arc<Mutex<Seen>>,
}

impl Recording {
    fn new(inner: MemoryStorage) -> Recording {
        Recording {
            inner,
            seen: Arc::default(),
        }
    }
    fn note(&self, op: &'static str, path: Option<&str>) {
        let mut s = self.seen.lock().unwrap();
        *s.calls.entry(op).or_default() += 1;
        if let Some(p) = path {
            s.paths.insert(p.to_owned());
        }
    }
    fn take(&self) -> Seen {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Storage for Recording {
    fn create_temp(&mut self, size_hint: Option<u64>) -> Result<TempId, StorageError> {
        self.note("create_temp", None);
        self.inner.create_temp(size_hint)
    }
    fn write_temp(&mut self, temp: TempId, data: &[u8]) -> Result<(), StorageError> {
        self.note("write_temp", None);
        let mut s = self.seen.lock().unwrap();
        s.max_write_chunk = s.max_write_chunk.max(data.len());
        drop(s);
        self.inner.write_temp(temp, data)
    }
    fn commit_temp(&mut self, temp: TempId, path: &str) -> Result<(), StorageError> {
        self.note("commit_temp", Some(path));
        self.inner.commit_temp(temp, path)
    }
    fn abort_temp(&mut self, temp: TempId) -> Result<(), StorageError> {
        self.note("abort_temp", None);
        self.inner.abort_temp(temp)
    }
    fn append(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError> {
        self.note("append", Some(path));
        self.inner.append(path, data)
    }
    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        self.note("read_at", Some(path));
        let mut s = self.seen.lock().unwrap();
        s.max_read_buf = s.max_read_buf.max(buf.len());
        drop(s);
        self.inner.read_at(path, offset, buf)
    }
    fn size(&mut self, path: &str) -> Result<Option<u64>, StorageError> {
        self.note("size", Some(path));
        self.inner.size(path)
    }
    fn list(&mut self, dir: &str) -> Result<Vec<String>, StorageError> {
        self.note("list", Some(dir));
        self.inner.list(dir)
    }
    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        self.note("remove", Some(path));
        self.inner.remove(path)
    }
    fn clear_temps(&mut self) -> Result<u64, StorageError> {
        self.note("clear_temps", None);
        self.inner.clear_temps()
    }
}

// ----- 1. re-putting a key deadlocked; removals never reached the eviction policy -----

#[test]
fn lesson_01_reputting_a_key_never_deadlocks_and_keeps_one_entry() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(T0);
    let mut cache = open_with(storage.clone(), &clock, capped(20_000));

    let layer = pattern(1, 1000);
    let d = cache.put_blob(None, &layer).unwrap();
    let (m, m_bytes) = put_image(&mut cache, &d, &[&d]);
    // Re-caching is the steady state: many re-puts of the same keys, some streamed, some one-shot.
    for i in 0..500 {
        if i % 2 == 0 {
            assert_eq!(cache.put_blob(Some(&d), &layer).unwrap(), d);
        } else {
            let mut w = cache.begin_blob(Some(&d), None).unwrap();
            for chunk in layer.chunks(333) {
                cache.write_blob(&mut w, chunk).unwrap();
            }
            assert_eq!(cache.commit_blob(w).unwrap(), d);
        }
        cache.put_manifest(&m, &m_bytes, None).unwrap();
        clock.advance(1);
    }
    let stats = cache.stats();
    assert_eq!((stats.blobs, stats.manifests), (1, 1));
    assert_eq!(cache.size(), (layer.len() + m_bytes.len()) as u64);
    assert_eq!(content_files(&storage).len(), 2);
    assert_eq!(cache.get_blob(&d).unwrap(), layer);

    // A re-put while a reader of the same key is open: the reader still gets correct bytes.
    let mut reader = cache.open_blob(&d).unwrap();
    cache.put_blob(Some(&d), &layer).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let n = cache.read_blob(&mut reader, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    cache.close_blob(reader);
    assert_eq!(out, layer);

    // Removals reach the eviction policy: delete and re-put the key, then make eviction run
    // many times. A stale policy entry would nominate a dead id (panic) or evict nothing.
    cache.delete_manifest(&m).unwrap();
    cache.delete_blob(&d).unwrap();
    cache.put_blob(Some(&d), &layer).unwrap();
    cache.put_blob(Some(&d), &layer).unwrap();
    let mut stored = vec![(d.clone(), layer.clone())];
    for i in 0..100u64 {
        let bytes = pattern(100 + i, 900 + i as usize);
        let digest = cache.put_blob(None, &bytes).unwrap();
        cache.put_blob(Some(&digest), &bytes).unwrap(); // and re-put each once
        stored.push((digest, bytes));
        assert!(cache.size() <= 20_000);
    }
    assert!(cache.metrics().evictions_capacity > 0);
    for (digest, bytes) in &stored {
        match cache.get_blob(digest) {
            Ok(got) => assert_eq!(&got, bytes),
            Err(e) => assert_eq!(e.kind(), ErrorKind::NotFound),
        }
    }
    let listed: u64 = cache.contents().iter().map(|e| e.size).sum();
    assert_eq!(listed, cache.size());
    assert_eq!(content_files(&storage).len(), cache.contents().len());
    assert!(cache.check_integrity().unwrap().healthy);
}

// ----- 2. nested locking deadlocked table-of-contents caching and debug info -----

/// The core takes `&mut self` and holds no locks of its own; the host serializes access. This
/// runs the seed's deadlocking paths — debug info collection while entries exist (and while a
/// reader and a writer are open), an index ("table of contents") whose children are cached, and
/// re-puts in the middle of walking the contents — and shows they complete.
#[test]
fn lesson_02_debug_info_and_reputs_during_iteration_never_deadlock() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(T0);
    let mut cache = open(&storage, &clock);

    let mut children = Vec::new();
    let mut blobs = Vec::new();
    for i in 0..5u64 {
        let bytes = pattern(i, 500);
        let d = cache.put_blob(None, &bytes).unwrap();
        let (m, _) = put_image(&mut cache, &d, &[&d]);
        children.push(m);
        blobs.push((d, bytes));
    }
    let toc = index_manifest(MediaType::OciIndex, &children);
    let toc_digest = sha256(&toc);
    cache.put_manifest(&toc_digest, &toc, None).unwrap();
    cache
        .put_tag(&ref_("example.com/app:1"), &toc_digest)
        .unwrap();
    cache.pin(&Key::manifest(toc_digest.clone())).unwrap();
    let mut expected_refs: Vec<Key> = children.iter().cloned().map(Key::manifest).collect();
    expected_refs.sort();
    assert_eq!(
        cache.manifest_references(&toc_digest).unwrap(),
        expected_refs
    );

    // Debug info with an open reader and an open writer.
    let reader = cache.open_blob(&blobs[0].0).unwrap();
    let mut writer = cache.begin_blob(None, None).unwrap();
    cache.write_blob(&mut writer, b"half").unwrap();
    let info = cache.debug_info();
    assert_eq!(info.stats.total_entries, 11);
    assert_eq!(info.stats.tags, 1);
    let json: serde_json::Value = serde_json::from_str(&cache.export_debug_json()).unwrap();
    assert_eq!(json["contents"].as_array().unwrap().len(), 11);
    assert!(cache.check_integrity().unwrap().healthy);
    assert_eq!(cache.validate_digests().unwrap().0, 11);
    cache.close_blob(reader);
    cache.abort_blob(&mut writer);

    // Re-put, read, pin and collect debug info for every entry while walking the listing.
    for entry in cache.contents() {
        let key = Key {
            kind: entry.kind,
            digest: entry.digest.clone(),
        };
        match entry.kind {
            Kind::Blob => {
                let bytes = cache.get_blob(&entry.digest).unwrap();
                cache.put_blob(Some(&entry.digest), &bytes).unwrap();
            }
            Kind::Manifest => {
                let m = cache.get_manifest(&entry.digest).unwrap();
                cache.put_manifest(&entry.digest, &m.bytes, None).unwrap();
            }
        }
        cache.pin(&key).unwrap();
        let _ = cache.debug_info();
        cache.unpin(&key).unwrap();
        let _ = cache.export_debug_json();
    }
    assert_eq!(cache.stats().total_entries, 11);
    assert_eq!(
        cache.stats().pinned_entries,
        1,
        "the index keeps its own pin"
    );
    let repaired = cache.repair().unwrap();
    assert!(repaired.before.healthy);
    assert_eq!(cache.stats().total_entries, 11);
}

/// A host shares one cache between threads behind a `Mutex` (the core is `Send`); several
/// threads re-putting, reading and collecting debug info all finish.
#[test]
#[allow(clippy::disallowed_methods)] // the threads are the host's, as in a real embedding
fn lesson_02_a_host_mutex_around_the_cache_serves_many_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Cache>();

    let storage = MemoryStorage::new();
    let clock = ManualClock::new(T0);
    let cache = Arc::new(Mutex::new(open(&storage, &clock)));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let cache = Arc::clone(&cache);
            std::thread::spawn(move || {
                let bytes = pattern(t, 2000);
                for _ in 0..50 {
                    let d = cache.lock().unwrap().put_blob(None, &bytes).unwrap();
                    let info = cache.lock().unwrap().debug_info();
                    assert!(info.stats.total_entries >= 1);
                    assert_eq!(cache.lock().unwrap().get_blob(&d).unwrap(), bytes);
                }
                sha256(&bytes)
            })
        })
        .collect();
    let digests: Vec<Digest> = threads.into_iter().map(|h| h.join().unwrap()).collect();
    let mut cache = cache.lock().unwrap();
    assert_eq!(cache.stats().blobs, 4);
    for (t, d) in digests.iter().enumerate() {
        assert_eq!(cache.get_blob(d).unwrap(), pattern(t as u64, 2000));
    }
}

// ----- 3. all writers shared one temp file; reads rewrote files -----

#[test]
fn lesson_03_concurrent_writers_never_mix_bytes() {
    let memory = MemoryStorage::new();
    let recording = Recording::new(memory.clone());
    let clock = ManualClock::new(T0);
    let mut cache = open_with(recording.clone(), &clock, Config::default());

    // Some content already cached, read while the writers are busy.
    let cfg_bytes = pattern(99, 300);
    let cfg = cache.put_blob(None, &cfg_bytes).unwrap();
    let (manifest, manifest_bytes) = put_image(&mut cache, &cfg, &[&cfg]);
    let before: BTreeMap<String, Vec<u8>> = content_files(&memory)
        .into_iter()
        .map(|p| {
            let b = memory.get(&p).unwrap();
            (p, b)
        })
        .collect();

    let contents: Vec<Vec<u8>> = (0..6u64)
        .map(|i| pattern(i, 20_000 + 3_001 * i as usize))
        .collect();
    let digests: Vec<Digest> = contents.iter().map(|c| sha256(c)).collect();
    // Mixed ways to open a writer: with digest and size, digest only, nothing.
    let mut writers: Vec<Option<BlobWriter>> = (0..6)
        .map(|i| {
            let w = match i % 3 {
                0 => cache.begin_blob(Some(&digests[i]), Some(contents[i].len() as u64)),
                1 => cache.begin_blob(Some(&digests[i]), None),
                _ => cache.begin_blob(None, None),
            };
            Some(w.unwrap())
        })
        .collect();
    // A writer announcing digest 0 but fed different bytes, interleaved with the others.
    let mut liar = cache.begin_blob(Some(&digests[0]), None).unwrap();

    let chunk_sizes = [1000, 4096, 777, 65_536, 1, 12_345];
    let mut offsets = [0usize; 6];
    let mut round = 0;
    recording.take();
    while offsets.iter().zip(&contents).any(|(o, c)| *o < c.len()) {
        for i in 0..6 {
            let c = &contents[i];
            let end = (offsets[i] + chunk_sizes[(i + round) % 6]).min(c.len());
            if offsets[i] < end {
                let w = writers[i].as_mut().unwrap();
                cache.write_blob(w, &c[offsets[i]..end]).unwrap();
                offsets[i] = end;
            }
        }
        cache
            .write_blob(&mut liar, &pattern(round as u64, 500))
            .unwrap();
        // Interleaved reads while writing.
        assert_eq!(cache.get_manifest(&manifest).unwrap().bytes, manifest_bytes);
        assert_eq!(cache.get_blob(&cfg).unwrap(), cfg_bytes);
        round += 1;
    }
    // Nothing is visible until committed.
    for d in &digests {
        assert!(!cache.has_blob(d));
    }
    assert_eq!(
        cache.commit_blob(liar).unwrap_err().kind(),
        ErrorKind::DigestMismatch
    );
    // Commit in a scrambled order.
    for i in [3, 0, 5, 1, 4, 2] {
        let d = cache.commit_blob(writers[i].take().unwrap()).unwrap();
        assert_eq!(d, digests[i]);
    }
    let seen = recording.take();
    assert!(seen.max_write_chunk <= 65_536);
    for (d, c) in digests.iter().zip(&contents) {
        assert_eq!(&cache.get_blob(d).unwrap(), c);
        assert_eq!(
            &memory.get(&blob_path(d)).unwrap(),
            c,
            "stored bytes are its own"
        );
    }
    // Reads never rewrote a content file; every file still holds its own bytes.
    for (p, b) in &before {
        assert_eq!(&memory.get(p).unwrap(), b, "{p} was rewritten");
    }
    assert_eq!(memory.temp_count(), 0);
    assert!(cache.check_integrity().unwrap().healthy);

    // Two writers of the same content at once: one entry, right bytes.
    let same = pattern(1234, 5000);
    let mut a = cache.begin_blob(None, None).unwrap();
    let mut b = cache.begin_blob(None, None).unwrap();
    for chunk in same.chunks(1000) {
        cache.write_blob(&mut a, chunk).unwrap();
        cache.write_blob(&mut b, chunk).unwrap();
    }
    let da = cache.commit_blob(a).unwrap();
    let db = cache.commit_blob(b).unwrap();
    assert_eq!(da, db);
    assert_eq!(cache.get_blob(&da).unwrap(), same);
    assert_eq!(cache.stats().blobs, 8);
}

#[test]
fn lesson_03_reads_do_not_write_content_files() {
    let memory = MemoryStorage::new();
    let recording = Recording::new(memory.clone());
    let clock = ManualClock::new(T0);
    let mut cache = open_with(recording.clone(), &clock, Config::default());
    let cfg = cache.put_blob(None, b"{}").unwrap();
    let mut manifests = Vec::new();
    for i in 0..10u64 {
        let layer = cache.put_blob(None, &pattern(i, 100)).unwrap();
        manifests.push(put_image(&mut cache, &cfg, &[&layer]));
    }
    recording.take();
    for _ in 0..20 {
        for (d, bytes) in &manifests {
            assert_eq!(&cache.get_manifest(d).unwrap().bytes, bytes);
        }
    }
    let seen = recording.take();
    assert_eq!(seen.writes(), 0, "reads wrote to storage: {seen:?}");
    for (d, bytes) in &manifests {
        assert_eq!(&memory.get(&manifest_path(d)).unwrap(), bytes);
    }
}

// ----- 4. eviction used fake sizes, emptied everything, deleted no files -----

#[test]
fn lesson_04_eviction_uses_real_sizes_frees_files_and_stops_at_low_watermark() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(T0);
    // High watermark 95 000 bytes, low 85 000.
    let mut cache = open_with(storage.clone(), &clock, capped(100_000));
    let mut blobs = Vec::new();
    for i in 0..10u64 {
        let bytes = pattern(i, 9_000);
        blobs.push((cache.put_blob(None, &bytes).unwrap(), bytes));
        clock.advance(1);
    }
    // Real sizes, not digest lengths.
    assert_eq!(cache.size(), 90_000);
    assert_eq!(storage.total_bytes() - index_bytes(&storage), 90_000);
    assert_eq!(cache.metrics().evictions, 0);
    // Use blobs 0 and 1 so that 2 and 3 are the least recently used.
    cache.get_blob(&blobs[0].0).unwrap();
    cache.get_blob(&blobs[1].0).unwrap();

    // 90 000 + 9 000 > 95 000: evict down to 85 000 including the newcomer, i.e. two entries.
    let new = pattern(10, 9_000);
    let new_digest = cache.put_blob(None, &new).unwrap();
    assert_eq!(cache.metrics().evictions_capacity, 2, "not the whole index");
    assert_eq!(cache.metrics().bytes_evicted, 18_000);
    assert_eq!(cache.size(), 81_000);
    assert!(cache.size() <= 85_000);
    for (i, (d, bytes)) in blobs.iter().enumerate() {
        if i == 2 || i == 3 {
            assert_eq!(cache.get_blob(d).unwrap_err().kind(), ErrorKind::NotFound);
            assert!(storage.get(&blob_path(d)).is_none(), "evicted file deleted");
        } else {
            assert_eq!(&cache.get_blob(d).unwrap(), bytes);
        }
    }
    assert_eq!(cache.get_blob(&new_digest).unwrap(), new);
    assert_eq!(storage.total_bytes() - index_bytes(&storage), 81_000);

    // A large entry evicts as many as needed and no more.
    let big = pattern(11, 50_000);
    let before = cache.size();
    cache.put_blob(None, &big).unwrap();
    let evicted_bytes = cache.metrics().bytes_evicted - 18_000;
    assert_eq!(cache.size(), before + 50_000 - evicted_bytes);
    assert!(cache.size() <= 85_000, "stops at the low watermark");
    assert!(
        cache.size() + 9_000 > 85_000,
        "one victim fewer would not have been enough"
    );
    assert_eq!(storage.total_bytes() - index_bytes(&storage), cache.size());
    assert_eq!(content_files(&storage).len(), cache.contents().len());
}

fn index_bytes(storage: &MemoryStorage) -> u64 {
    storage
        .paths()
        .iter()
        .filter(|p| p.starts_with("index/"))
        .map(|p| storage.get(p).unwrap().len() as u64)
        .sum()
}

// ----- 5. index and data disagreed; the check flagged everything and repair wiped it -----

#[test]
fn lesson_05_integrity_check_is_clean_on_a_healthy_cache_and_repair_keeps_valid_entries() {
    let mut storage = MemoryStorage::new();
    let clock = ManualClock::new(T0);
    let mut cache = open(&storage, &clock);
    let cfg = cache.put_blob(None, b"{\"config\":true}").unwrap();
    let mut layers = Vec::new();
    for i in 0..4u64 {
        layers.push(cache.put_blob(None, &pattern(i, 3000)).unwrap());
    }
    let (m1, _) = put_image(&mut cache, &cfg, &[&layers[0], &layers[1]]);
    let (m2, _) = put_image(&mut cache, &cfg, &[&layers[2], &layers[3]]);
    let idx = index_manifest(MediaType::DockerManifestList, &[m1.clone(), m2.clone()]);
    let idx_digest = sha256(&idx);
    cache.put_manifest(&idx_digest, &idx, None).unwrap();
    cache
        .put_tag(&ref_("example.com/a:1"), &idx_digest)
        .unwrap();

    let report = cache.check_integrity().unwrap();
    assert!(report.healthy, "{report:?}");
    assert_eq!((report.checked, report.valid), (8, 8));
    let contents = cache.contents();
    let repair = cache.repair().unwrap();
    assert_eq!(
        (
            repair.removed_corrupted,
            repair.removed_missing,
            repair.adopted,
            repair.removed_unindexed
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(
        cache.contents(),
        contents,
        "repair left valid entries alone"
    );

    // Manifests are stored as their exact bytes at the path the index names, so a fresh open
    // agrees too.
    drop(cache);
    let mut cache = open(&storage, &clock);
    assert!(cache.check_integrity().unwrap().healthy);
    assert_eq!(cache.recovery_report().orphans_adopted, 0);
    assert_eq!(cache.recovery_report().missing_dropped, 0);

    // Now real problems: one corrupted, one missing, one valid orphan, one invalid orphan and
    // a stray name.
    assert!(storage.corrupt(&blob_path(&layers[0]), 10));
    storage.remove(&blob_path(&layers[1])).unwrap();
    let orphan = pattern(77, 640);
    let orphan_digest = sha256(&orphan);
    storage.put(&blob_path(&orphan_digest), &orphan);
    let liar = sha256(b"something else");
    storage.put(&blob_path(&liar), b"not what the name says");
    storage.put("blobs/sha256/garbage", b"x");
    let report = cache.check_integrity().unwrap();
    assert!(!report.healthy);
    assert_eq!(report.corrupted.len(), 1);
    assert_eq!(
        report.corrupted[0].what,
        Key::blob(layers[0].clone()).to_string()
    );
    assert_eq!(report.missing.len(), 1);
    assert_eq!(
        report.missing[0].what,
        Key::blob(layers[1].clone()).to_string()
    );
    assert_eq!(report.unindexed.len(), 3);
    assert_eq!(report.valid, 6);

    let repair = cache.repair().unwrap();
    assert_eq!(repair.removed_corrupted, 1);
    assert_eq!(repair.removed_missing, 1);
    assert_eq!(repair.adopted, 1);
    assert_eq!(repair.removed_unindexed, 2);
    assert!(cache.check_integrity().unwrap().healthy);
    assert_eq!(cache.get_blob(&orphan_digest).unwrap(), orphan);
    for d in [&layers[2], &layers[3], &cfg] {
        assert!(cache.has_blob(d));
    }
    for d in [&m1, &m2, &idx_digest] {
        assert!(cache.has_manifest(d));
    }
    assert_layout(&storage);
    // Still true after a reopen.
    drop(cache);
    let mut cache = open(&storage, &clock);
    assert!(cache.check_integrity().unwrap().healthy);
    assert_eq!(cache.stats().total_entries, 7);
}

// ----- 6. expired blob refs orphaned their data; TTLs never refreshed -----

#[test]
fn lesson_06_expired_blobs_free_their_bytes() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(T0);
    let config = Config {
        default_ttl_ms: HOUR,
        tag_ttl_ms: 60_000,
        ..Config::default()
    };
    let mut cache = open_with(storage.clone(), &clock, config.clone());
    let pinned = cache.put_blob(None, &pattern(1, 1000)).unwrap();
    cache.pin(&Key::blob(pinned.clone())).unwrap();
    let plain = cache.put_blob(None, &pattern(2, 2000)).unwrap();
    let referenced = cache.put_blob(None, &pattern(3, 3000)).unwrap();
    let (m, m_bytes) = put_image(&mut cache, &referenced, &[&referenced]);
    let content_bytes = |s: &MemoryStorage| s.total_bytes() - index_bytes(s);
    assert_eq!(content_bytes(&storage), 6000 + m_bytes.len() as u64);

    clock.advance(2 * HOUR);
    assert_eq!(
        cache.get_blob(&plain).unwrap_err().kind(),
        ErrorKind::Expired
    );
    assert_eq!(cache.stats().expired_entries, 4);
    // The plain blob, the manifest and (once its manifest is gone) the blob it referenced go;
    // the pinned blob stays (answering Expired).
    assert_eq!(cache.clear_expired().unwrap(), 3);
    assert!(storage.get(&blob_path(&plain)).is_none());
    assert!(storage.get(&manifest_path(&m)).is_none());
    assert!(storage.get(&blob_path(&referenced)).is_none());
    assert_eq!(content_bytes(&storage), 1000);
    assert_eq!(cache.clear_expired().unwrap(), 0);
    assert_eq!(cache.size(), 1000);
    assert_eq!(
        cache.get_blob(&pinned).unwrap_err().kind(),
        ErrorKind::Expired
    );
    cache.unpin(&Key::blob(pinned.clone())).unwrap();
    assert_eq!(cache.cleanup().unwrap().expired_removed, 1);
    assert_eq!(content_bytes(&storage), 0);
    assert_eq!(cache.metrics().evictions_expired, 4);

    // TTLs refresh: a re-put renews an expired blob, a put renews a tag's freshness.
    let d = cache.put_blob(None, b"again").unwrap();
    clock.advance(2 * HOUR);
    assert_eq!(cache.get_blob(&d).unwrap_err().kind(), ErrorKind::Expired);
    cache.put_blob(Some(&d), b"again").unwrap();
    assert_eq!(cache.get_blob(&d).unwrap(), b"again");
    let info = cache
        .contents()
        .into_iter()
        .find(|e| e.digest == d)
        .unwrap();
    assert_eq!(info.expires_at, Some(clock_now(&clock) + HOUR));
    let r = ref_("example.com/app:stable");
    cache.put_tag(&r, &d).unwrap();
    clock.advance(120_000);
    assert_eq!(cache.resolve_tag(&r).unwrap(), Resolution::Stale(d.clone()));
    cache.put_tag(&r, &d).unwrap();
    assert_eq!(cache.resolve_tag(&r).unwrap(), Resolution::Fresh(d.clone()));

    // With a sliding TTL a hit extends expiry.
    drop(cache);
    let mut cache = open_with(
        storage.clone(),
        &clock,
        Config {
            sliding_ttl: true,
            ..config
        },
    );
    clock.advance(HOUR / 2);
    cache.get_blob(&d).unwrap();
    let info = cache
        .contents()
        .into_iter()
        .find(|e| e.digest == d)
        .unwrap();
    assert_eq!(info.expires_at, Some(clock_now(&clock) + HOUR));
    clock.advance(HOUR * 3 / 4);
    assert_eq!(
        cache.get_blob(&d).unwrap(),
        b"again",
        "kept alive by the hit"
    );
}

fn clock_now(clock: &ManualClock) -> u64 {
    use ocicache_core::Clock;
    clock.now_millis()
}

// ----- 7. distinct tag references collided on one file -----

#[test]
fn lesson_07_distinct_references_never_collide() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(T0);
    let mut cache = open(&storage, &clock);
    // Each of these mapped to the same file name in the seed (`/`, `:`, `@` → `_`).
    let refs = [
        "example.com/team/app:v1",
        "example.com/team_app:v1",
        "example.com/team/app_v1",
        "example.com/team/app/v1",
        "localhost:5000/app:v1",
        "localhost/5000/app:v1",
        "localhost:5000/app_v1",
        "nginx:1.25",
        "nginx_1.25",
        "nginx/1.25:latest",
        "example.com:443/team/app:v1",
        "[::1]:5000/team/app:v1",
        "example.com/team/app:v1@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ];
    let mut expected = BTreeMap::new();
    for (i, r) in refs.iter().enumerate() {
        let reference = ref_(r);
        // A reference that pins a digest names no tag mapping: it is refused, even when put
        // to its own digest, rather than silently keyed by its tag.
        if let Some(pinned) = reference.digest() {
            let err = cache.put_tag(&reference, pinned).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidReference, "{r}");
            continue;
        }
        let d = sha256(format!("manifest {i}").as_bytes());
        cache.put_tag(&reference, &d).unwrap();
        expected.insert(reference.to_string(), d);
    }
    assert_eq!(expected.len(), refs.len() - 1);
    let check = |cache: &mut Cache, expected: &BTreeMap<String, Digest>| {
        assert_eq!(cache.tags().len(), expected.len());
        for (key, d) in expected {
            assert_eq!(
                cache.resolve_tag(&ref_(key)).unwrap(),
                Resolution::Fresh(d.clone()),
                "{key}"
            );
        }
    };
    check(&mut cache, &expected);
    // Equivalent spellings do share one mapping.
    let d = sha256(b"library nginx");
    cache.put_tag(&ref_("nginx"), &d).unwrap();
    assert_eq!(
        cache
            .resolve_tag(&ref_("docker.io/library/nginx:latest"))
            .unwrap(),
        Resolution::Fresh(d.clone())
    );
    assert_eq!(
        cache
            .resolve_tag(&ref_("index.docker.io/library/nginx"))
            .unwrap(),
        Resolution::Fresh(d.clone())
    );
    expected.insert("docker.io/library/nginx:latest".into(), d);
    drop(cache);
    let mut cache = open(&storage, &clock);
    check(&mut cache, &expected);
    assert_layout(&storage);
}

// ----- 8. content was never hashed; a failed download committed its partial data -----

#[test]
fn lesson_08_content_is_hashed_and_failed_downloads_commit_nothing() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(T0);
    let mut cache = open(&storage, &clock);
    let bytes = pattern(8, 10_000);
    let digest = sha256(&bytes);
    let other = sha256(b"other");

    // Wrong digest, one-shot and streamed.
    let e = cache.put_blob(Some(&other), &bytes).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch);
    let mut w = cache.begin_blob(Some(&other), None).unwrap();
    for c in bytes.chunks(999) {
        cache.write_blob(&mut w, c).unwrap();
    }
    assert_eq!(
        cache.commit_blob(w).unwrap_err().kind(),
        ErrorKind::DigestMismatch
    );
    // Wrong size: short (a dropped connection noticed at commit) and long.
    let mut w = cache
        .begin_blob(Some(&digest), Some(bytes.len() as u64))
        .unwrap();
    cache.write_blob(&mut w, &bytes[..5000]).unwrap();
    assert_eq!(
        cache.commit_blob(w).unwrap_err().kind(),
        ErrorKind::SizeMismatch
    );
    let mut w = cache.begin_blob(None, Some(100)).unwrap();
    assert_eq!(
        cache.write_blob(&mut w, &bytes[..101]).unwrap_err().kind(),
        ErrorKind::SizeMismatch
    );
    assert!(cache.write_blob(&mut w, b"more").is_err(), "writer is dead");
    // A download the host gives up on.
    let mut w = cache.begin_blob(Some(&digest), None).unwrap();
    cache.write_blob(&mut w, &bytes[..3000]).unwrap();
    cache.abort_blob(&mut w);
    // A manifest under the wrong digest, and a non-manifest under its right digest.
    let cfg = sha256(b"{}");
    let m = image_manifest(&cfg, &[&cfg]);
    assert_eq!(
        cache.put_manifest(&other, &m, None).unwrap_err().kind(),
        ErrorKind::DigestMismatch
    );
    assert_eq!(
        cache
            .put_manifest(&digest, &bytes, None)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidManifest
    );
    assert!(content_files(&storage).is_empty());
    assert_eq!(storage.temp_count(), 0);
    assert_eq!(cache.stats().total_entries, 0);

    // A download whose writer is simply dropped: nothing visible, and the next open clears it.
    let mut w = cache.begin_blob(Some(&digest), None).unwrap();
    cache.write_blob(&mut w, &bytes[..4000]).unwrap();
    drop(w);
    assert!(!cache.has_blob(&digest));
    drop(cache);
    assert_eq!(storage.temp_count(), 1);
    let mut cache = open(&storage, &clock);
    assert_eq!(storage.temp_count(), 0);
    assert!(content_files(&storage).is_empty());

    // Storage failing at each call of a download in turn: nothing committed.
    let probe = FaultyStorage::new(MemoryStorage::new(), None);
    drop(Cache::builder(probe.clone(), clock.clone()).open().unwrap());
    let base = probe.calls();
    for n in base + 1..=base + 6 {
        let faulty = FaultyStorage::new(
            MemoryStorage::new(),
            Some(Fault::FailAt {
                n,
                error: StorageError::Io("network drop".into()),
            }),
        );
        let mut c = Cache::builder(faulty.clone(), clock.clone())
            .open()
            .unwrap();
        let result = (|| {
            let mut w = c.begin_blob(Some(&digest), None)?;
            for chunk in bytes.chunks(4000) {
                c.write_blob(&mut w, chunk)?;
            }
            c.commit_blob(w)
        })();
        match result {
            Ok(d) => assert_eq!(c.get_blob(&d).unwrap(), bytes),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Storage);
                assert!(!c.has_blob(&digest));
                assert!(faulty.inner().get(&blob_path(&digest)).is_none());
                assert_eq!(faulty.inner().temp_count(), 0);
            }
        }
    }

    // Bytes corrupted at rest are never served, not even twice.
    let d = cache.put_blob(None, &bytes).unwrap();
    let (m, _) = put_image(&mut cache, &d, &[&d]);
    assert!(storage.corrupt(&blob_path(&d), 9_999));
    assert!(storage.corrupt(&manifest_path(&m), 5));
    for _ in 0..2 {
        assert_eq!(cache.get_blob(&d).unwrap_err().kind(), ErrorKind::Corrupted);
        assert_eq!(
            cache.get_manifest(&m).unwrap_err().kind(),
            ErrorKind::Corrupted
        );
    }
    assert!(!cache.has_blob(&d));
    assert_eq!(cache.metrics().corruptions, 2);
    // A streaming reader gets an error on the final chunk, never a clean end.
    cache.put_blob(Some(&d), &bytes).unwrap();
    assert!(storage.corrupt(&blob_path(&d), 0));
    let mut r = cache.open_blob(&d).unwrap();
    let mut buf = vec![0u8; 4096];
    let end = loop {
        match cache.read_blob(&mut r, &mut buf) {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
    };
    cache.close_blob(r);
    assert_eq!(end.unwrap_err().kind(), ErrorKind::Corrupted);
    // A verified re-put repairs it.
    cache.put_blob(Some(&d), &bytes).unwrap();
    assert_eq!(cache.get_blob(&d).unwrap(), bytes);
}

// ----- 9. unvalidated digests and keys were joined into paths -----

#[test]
fn lesson_09_hostile_digests_and_references_never_reach_storage() {
    let memory = MemoryStorage::new();
    let recording = Recording::new(memory.clone());
    let clock = ManualClock::new(T0);
    let mut cache = open_with(recording.clone(), &clock, Config::default());

    let hostile_digests = [
        "sha256:../../../../etc/passwd",
        "sha256:../../../../../../../../../../../../../../../../../tmp/evil",
        "../blobs/sha256:00",
        "sha256:/etc/passwd",
        "sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "sha256:000000000000000000000000000000000000000000000000000000000000000\\",
        "sha256:00000000000000000000000000000000000000000000000000000000000000/0",
        "sha256:00000000000000000000000000000000000000000000000000000000000000\x000",
        "sha1:0000000000000000000000000000000000000000",
        "sha256:",
        "",
        ":",
        "sha256:0000000000000000000000000000000000000000000000000000000000000000/..",
    ];
    for h in hostile_digests {
        assert_eq!(
            h.parse::<Digest>().unwrap_err().kind(),
            ErrorKind::InvalidDigest,
            "{h:?}"
        );
        assert!(serde_json::from_str::<Digest>(&format!("{h:?}")).is_err());
    }
    let hostile_refs = [
        "../../etc/passwd:latest",
        "example.com/../../etc:passwd",
        "example.com/a/..:1",
        "example.com/./a:1",
        "/etc/passwd:1",
        "example.com//a:1",
        "a:../../x",
        "a:x/../../y",
        "a\0b:1",
        "a b:1",
        "example.com/a\\b:1",
        "a@sha256:../../../etc/passwd",
        "a:",
        "",
        "..",
        "example.com:99999/a:1",
        "exa_mple.com/a:1",
    ];
    for h in hostile_refs {
        assert_eq!(
            h.parse::<Reference>().unwrap_err().kind(),
            ErrorKind::InvalidReference,
            "{h:?}"
        );
    }
    // Hostile digests inside a manifest are refused too.
    let bad_manifest = image_manifest(&sha256(b"x"), &[&sha256(b"y")])
        .iter()
        .map(|&b| b as char)
        .collect::<String>()
        .replacen("sha256:", "sha256:../../", 1)
        .into_bytes();
    assert_eq!(
        cache
            .put_manifest(&sha256(&bad_manifest), &bad_manifest, None)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidManifest
    );
    // Valid but odd references are keys in the journal, never path components.
    for r in [
        "localhost:5000/a/b/c/d/e/f:v1",
        "[::1]:5000/x:y",
        "example.com/a__b---c/d.e:V_1.-x",
        "sub.example.com:1/x/y/z:t@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        // A mapping is named by the reference without its digest.
        let reference = ref_(r).without_digest();
        cache.put_tag(&reference, &sha256(r.as_bytes())).unwrap();
    }
    for alg in Algorithm::ALL {
        let bytes = pattern(alg.digest_len() as u64, 100);
        let d = digest_of(&BuiltinHasher, alg, &bytes).unwrap();
        cache.put_blob(Some(&d), &bytes).unwrap();
    }
    cache.cleanup().unwrap();
    drop(cache);
    let _ = open_with(recording.clone(), &clock, Config::default());

    let seen = recording.take();
    for p in &seen.paths {
        let dir_listing = ["index", "manifests", "blobs", "partials"]
            .iter()
            .any(|k| p == k || p.strip_prefix(k).is_some_and(in_layout_dir));
        assert!(
            in_layout(p) || dir_listing,
            "the core handed storage a path outside the layout: {p:?}"
        );
        assert!(!p.contains(".."));
    }
    assert_layout(&memory);
}

/// `/sha256` etc.: a listed algorithm directory.
fn in_layout_dir(rest: &str) -> bool {
    rest.strip_prefix('/')
        .is_some_and(|a| Algorithm::from_name(a).is_some())
}

// ----- 10. no streaming: a 16 MiB read allocated ~136 MB -----

/// The core's memory use while streaming is what it asks the storage to fill: the workspace
/// forbids `unsafe` (so no counting global allocator here), and the core never allocates a
/// buffer for a blob read — it reads into the caller's buffer. So this shows the equivalent
/// deterministically: while a 64 MiB blob streams in and out in 64 KiB chunks, no storage call
/// ever gets a buffer larger than the caller's chunk, reads happen exactly chunk by chunk, and
/// no whole-file helper is used (which would ask for the whole size at once).
#[test]
fn lesson_10_streaming_reads_use_constant_memory() {
    const CHUNK: usize = 64 << 10;
    const SIZE: usize = 64 << 20;
    let memory = MemoryStorage::new();
    let recording = Recording::new(memory.clone());
    let clock = ManualClock::new(T0);
    let mut cache = open_with(recording.clone(), &clock, Config::default());

    // Cheap deterministic content: chunk i is a fixed pattern with i stamped in.
    let base = pattern(10, CHUNK);
    let chunk_of = |i: usize, buf: &mut Vec<u8>| {
        buf.clear();
        buf.extend_from_slice(&base);
        buf[..8].copy_from_slice(&(i as u64).to_le_bytes());
    };
    let mut chunk = Vec::with_capacity(CHUNK);
    recording.take();
    let mut w = cache.begin_blob(None, Some(SIZE as u64)).unwrap();
    for i in 0..SIZE / CHUNK {
        chunk_of(i, &mut chunk);
        cache.write_blob(&mut w, &chunk).unwrap();
    }
    let digest = cache.commit_blob(w).unwrap();
    let seen = recording.take();
    assert_eq!(
        seen.max_write_chunk, CHUNK,
        "writes pass chunks straight through"
    );
    assert_eq!(seen.count("read_at"), 0);

    let mut reader = cache.open_blob(&digest).unwrap();
    assert_eq!(reader.size(), SIZE as u64);
    let mut buf = vec![0u8; CHUNK];
    let mut i = 0;
    loop {
        let n = cache.read_blob(&mut reader, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert_eq!(n, CHUNK);
        chunk_of(i, &mut chunk);
        assert!(buf == chunk, "chunk {i}");
        i += 1;
    }
    cache.close_blob(reader);
    assert_eq!(i, SIZE / CHUNK);
    let seen = recording.take();
    assert!(
        seen.max_read_buf <= CHUNK,
        "the core asked storage for {} bytes at once",
        seen.max_read_buf
    );
    assert_eq!(seen.count("read_at"), (SIZE / CHUNK) as u64);
    assert_eq!(seen.writes(), 0);
    assert_eq!(cache.metrics().bytes_served, SIZE as u64);
}

// ----- 11. crash safety: index persisted rarely, huge lines broke open, temps leaked -----

/// fsync itself is the host's job (the native host syncs file and directory on `commit_temp`
/// and `append`). What the core controls is the order and timing: every committed operation
/// has reached storage through `commit_temp`/`append` *before* it returns, so a crash right
/// after any return loses nothing. `crash.rs` enumerates every crash point; this test shows
/// the contract at operation boundaries.
#[test]
fn lesson_11_every_committed_put_survives_a_crash_and_an_oversized_record_does_not_break_open() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(T0);
    let config = Config {
        max_tag_history: 10_000,
        ..Config::default()
    };
    let mut cache = open_with(storage.clone(), &clock, config.clone());
    let mut blobs = Vec::new();
    for i in 0..50u64 {
        let bytes = pattern(i, 100 + i as usize);
        blobs.push((cache.put_blob(None, &bytes).unwrap(), bytes));
        // "Crash" after each put: a fresh process opens the same storage (no flush, no close).
        let mut other = open_with(storage.clone(), &clock, config.clone());
        for (d, b) in &blobs {
            assert_eq!(&other.get_blob(d).unwrap(), b);
        }
    }
    let r = ref_("example.com/app:latest");
    cache.put_tag(&r, &blobs[0].0).unwrap();
    cache.pin(&Key::blob(blobs[1].0.clone())).unwrap();

    // Oversized records: an index with 3000 children (~100 KiB journal record) and a tag with
    // 3000 history entries (a ~120 KiB snapshot record).
    let children: Vec<Digest> = (0..3000u32).map(|i| sha256(&i.to_le_bytes())).collect();
    let big = index_manifest(MediaType::OciIndex, &children);
    let big_digest = sha256(&big);
    cache.put_manifest(&big_digest, &big, None).unwrap();
    for d in &children {
        clock.advance(1);
        cache.put_tag(&ref_("example.com/busy:tag"), d).unwrap();
    }
    std::mem::forget(cache); // a crash: no flush, no close, no destructor

    let check = |cache: &mut Cache| {
        for (d, b) in &blobs {
            assert_eq!(&cache.get_blob(d).unwrap(), b);
        }
        assert_eq!(
            cache.resolve_tag(&r).unwrap(),
            Resolution::Fresh(blobs[0].0.clone())
        );
        assert_eq!(
            cache
                .contents()
                .iter()
                .find(|e| e.digest == blobs[1].0)
                .unwrap()
                .pins,
            1
        );
        assert_eq!(cache.get_manifest(&big_digest).unwrap().bytes, big);
        assert_eq!(cache.manifest_references(&big_digest).unwrap().len(), 3000);
        let h = cache.tag_history(&ref_("example.com/busy:tag")).unwrap();
        assert_eq!(h.len(), 3000);
        assert_eq!(h.last().unwrap().digest, children[2999]);
    };
    let mut cache = open_with(storage.clone(), &clock, config.clone());
    check(&mut cache);
    // Through the snapshot as well.
    cache.cleanup().unwrap();
    drop(cache);
    let mut cache = open_with(storage.clone(), &clock, config.clone());
    assert!(cache.recovery_report().snapshot_generation.is_some());
    check(&mut cache);

    // Temps of a crashed run are removed at open.
    let mut w = cache.begin_blob(None, None).unwrap();
    cache.write_blob(&mut w, b"partial download").unwrap();
    std::mem::forget(w);
    std::mem::forget(cache);
    assert_eq!(storage.temp_count(), 1);
    let mut cache = open_with(storage.clone(), &clock, config.clone());
    assert_eq!(cache.recovery_report().temps_removed, 1);
    assert_eq!(storage.temp_count(), 0);
    assert!(cache.check_integrity().unwrap().healthy);
}

#[test]
fn lesson_11_a_crash_inside_a_put_keeps_every_earlier_put() {
    let clock = ManualClock::new(T0);
    let bytes = pattern(11, 30_000);
    let digest = sha256(&bytes);
    // Count the calls of the interrupted put.
    let probe = FaultyStorage::new(MemoryStorage::new(), None);
    let mut c = Cache::builder(probe.clone(), clock.clone()).open().unwrap();
    c.put_blob(None, b"earlier").unwrap();
    let start = probe.calls();
    let mut w = c.begin_blob(Some(&digest), None).unwrap();
    for ch in bytes.chunks(10_000) {
        c.write_blob(&mut w, ch).unwrap();
    }
    c.commit_blob(w).unwrap();
    let end = probe.calls();

    for k in start..=end {
        for torn in [0, 1, 7, 40] {
            let faulty = FaultyStorage::new(
                MemoryStorage::new(),
                Some(Fault::CrashAfter {
                    n: k,
                    torn_bytes: torn,
                }),
            );
            let mut c = Cache::builder(faulty.clone(), clock.clone())
                .open()
                .unwrap();
            let earlier = c.put_blob(None, b"earlier").unwrap();
            let result = (|| {
                let mut w = c.begin_blob(Some(&digest), None)?;
                for ch in bytes.chunks(10_000) {
                    c.write_blob(&mut w, ch)?;
                }
                c.commit_blob(w)
            })();
            std::mem::forget(c);
            let storage = faulty.inner().clone();
            let mut after = open(&storage, &clock);
            assert_eq!(after.get_blob(&earlier).unwrap(), b"earlier", "k={k}");
            match after.get_blob(&digest) {
                Ok(b) => assert_eq!(b, bytes),
                Err(e) => {
                    assert!(result.is_err(), "k={k}: a returned put was lost");
                    assert_eq!(e.kind(), ErrorKind::NotFound);
                }
            }
            assert_eq!(storage.temp_count(), 0);
            assert!(after.check_integrity().unwrap().healthy, "k={k}");
        }
    }
}

// ----- 12. costs grew with size: every put rewrote the index -----

/// Costs are shown by benchmarks; what a test can show deterministically is that the *amount
/// of storage work* per operation does not depend on how many entries the cache holds.
#[test]
fn lesson_12_puts_do_not_rewrite_the_index() {
    let faulty = FaultyStorage::new(MemoryStorage::new(), None);
    let clock = ManualClock::new(T0);
    let mut cache = Cache::builder(faulty.clone(), clock.clone())
        .open()
        .unwrap();
    let mut next = 0u64;
    let mut put = |cache: &mut Cache| {
        next += 1;
        cache
            .put_blob(None, format!("blob number {next}").as_bytes())
            .unwrap()
    };
    let measure = |cache: &mut Cache, put: &mut dyn FnMut(&mut Cache) -> Digest| {
        let mut per_put = Vec::new();
        let mut digests = Vec::new();
        for _ in 0..100 {
            let before = faulty.calls();
            digests.push(put(cache));
            per_put.push(faulty.calls() - before);
        }
        (per_put, digests)
    };
    for _ in 0..100 {
        put(&mut cache);
    }
    let (small, small_digests) = measure(&mut cache, &mut put);
    while cache.stats().total_entries < 10_000 {
        put(&mut cache);
    }
    let (large, large_digests) = measure(&mut cache, &mut put);

    let typical = |v: &[u64]| {
        let mut s = v.to_vec();
        s.sort_unstable();
        s[s.len() / 2]
    };
    assert_eq!(typical(&small), typical(&large), "{small:?} vs {large:?}");
    assert!(typical(&large) <= 4, "temp, write, commit, journal append");
    // Compaction is amortized: at most one in a hundred puts, costing a handful of calls.
    let spikes = large.iter().filter(|&&c| c > typical(&large)).count();
    assert!(spikes <= 1, "{large:?}");
    assert!(large.iter().sum::<u64>() <= small.iter().sum::<u64>() + 8);

    // Deletes too (the seed rewrote the index on every delete below 7,500 entries).
    let delete_calls = |cache: &mut Cache, digests: &[Digest]| -> Vec<u64> {
        digests
            .iter()
            .map(|d| {
                let before = faulty.calls();
                cache.delete_blob(d).unwrap();
                faulty.calls() - before
            })
            .collect()
    };
    let large_deletes = delete_calls(&mut cache, &large_digests);
    let small_deletes = delete_calls(&mut cache, &small_digests);
    assert_eq!(typical(&small_deletes), typical(&large_deletes));
    assert!(typical(&large_deletes) <= 2, "remove file, journal append");

    // Reads touch nothing on storage but the file they read.
    let cfg = cache.put_blob(None, b"{}").unwrap();
    let (m, _) = put_image(&mut cache, &cfg, &[&cfg]);
    for _ in 0..100 {
        let before = faulty.calls();
        cache.get_manifest(&m).unwrap();
        assert!(faulty.calls() - before <= 2, "size + one read");
    }

    // Clearing is linear: one removal per entry plus one snapshot.
    let entries = cache.stats().total_entries;
    let before = faulty.calls();
    cache.clear().unwrap();
    assert!(faulty.calls() - before <= entries + 8);
    assert_eq!(cache.stats().total_entries, 0);
}

// ----- 13. dead API: Full / Invalidated never returned, metrics never fed, Expired → NotFound -----

#[test]
fn lesson_13_full_invalidated_expired_errors_are_returned_and_metrics_are_fed() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(T0);
    let config = Config {
        max_bytes: 10_000,
        default_ttl_ms: HOUR,
        tag_ttl_ms: 60_000,
        ..Config::default()
    };
    let mut cache = open_with(storage.clone(), &clock, config);

    // Full: too big for the cap, announced or streamed, and nothing is evicted for it.
    let small = cache.put_blob(None, &pattern(1, 500)).unwrap();
    assert_eq!(
        cache
            .put_blob(None, &pattern(2, 10_001))
            .unwrap_err()
            .kind(),
        ErrorKind::Full
    );
    let mut w = cache.begin_blob(None, None).unwrap();
    let e = loop {
        if let Err(e) = cache.write_blob(&mut w, &[0u8; 4096]) {
            break e;
        }
    };
    assert_eq!(e.kind(), ErrorKind::Full);
    assert!(cache.has_blob(&small));
    // Full because pinned content leaves no room.
    let pinned = cache.put_blob(None, &pattern(3, 9_000)).unwrap();
    cache.pin(&Key::blob(pinned.clone())).unwrap();
    assert!(cache.has_blob(&small));
    assert_eq!(
        cache.put_blob(None, &pattern(4, 2_000)).unwrap_err().kind(),
        ErrorKind::Full
    );
    assert!(
        cache.has_blob(&small),
        "nothing evicted for an entry that cannot fit"
    );
    assert_eq!(storage.temp_count(), 0);
    cache.unpin(&Key::blob(pinned.clone())).unwrap();
    let fits = cache.put_blob(None, &pattern(4, 2_000)).unwrap();
    assert!(cache.has_blob(&fits));
    assert!(cache.metrics().evictions_capacity >= 1);

    // Invalidated.
    let r = ref_("example.com/app:v1");
    cache.put_tag(&r, &fits).unwrap();
    assert!(cache.invalidate_tag(&r).unwrap());
    assert_eq!(
        cache.get_tag(&r).unwrap_err().kind(),
        ErrorKind::Invalidated
    );
    assert_eq!(cache.resolve_tag(&r).unwrap(), Resolution::Unknown);
    assert_eq!(
        cache.resolve_failed(&r).unwrap_err().kind(),
        ErrorKind::Invalidated
    );
    cache.put_tag(&r, &fits).unwrap();
    assert_eq!(cache.get_tag(&r).unwrap().digest, fits);

    // Expired, not "not found", for every kind.
    let cfg = cache.put_blob(None, b"{}").unwrap();
    let (m, _) = put_image(&mut cache, &cfg, &[&cfg]);
    clock.advance(2 * HOUR);
    assert_eq!(
        cache.get_blob(&fits).unwrap_err().kind(),
        ErrorKind::Expired
    );
    assert_eq!(
        cache.get_manifest(&m).unwrap_err().kind(),
        ErrorKind::Expired
    );
    assert_eq!(cache.get_tag(&r).unwrap_err().kind(), ErrorKind::Expired);
    assert_eq!(
        cache.resolve_failed(&r).unwrap(),
        fits,
        "stale-if-error serves the stale digest"
    );
    cache.clear_expired().unwrap();
    cache.clear_expired().unwrap();
    assert_eq!(
        cache.get_blob(&fits).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Metrics are fed from real bytes.
    let layer = pattern(5, 3_000);
    let d = cache.put_blob(None, &layer).unwrap();
    for _ in 0..3 {
        cache.get_blob(&d).unwrap();
    }
    let manifest = image_manifest(&d, &[&d]);
    let md = sha256(&manifest);
    cache.put_manifest(&md, &manifest, None).unwrap();
    cache.get_manifest(&md).unwrap();
    let _ = cache.get_blob(&sha256(b"absent"));
    let doomed = cache.put_blob(None, b"doomed").unwrap();
    assert!(cache.delete_blob(&doomed).unwrap());
    cache.resolve_tag(&r).unwrap();
    let m = cache.metrics();
    assert_eq!(m.bytes_served, 9_000 + manifest.len() as u64);
    assert_eq!(m.bandwidth_saved, m.bytes_served);
    assert!(m.bandwidth_saved > 0);
    assert!(m.hits >= 4 && m.misses >= 1);
    assert!(m.hit_rate > 0.0 && m.hit_rate < 1.0);
    assert!(m.blob_gets >= 4 && m.manifest_gets >= 1);
    assert!(m.blob_puts >= 4 && m.manifest_puts >= 2);
    assert!(m.bytes_downloaded >= 3_000);
    assert_eq!(m.tag_puts, 2);
    assert!(m.tag_resolutions >= 2);
    assert_eq!(m.deletes, 1);
    assert!(m.evictions_capacity >= 1 && m.evictions_expired >= 1);
    assert!(m.errors >= 3, "Full errors are counted");
    assert!(m.get_latency_samples > 0 && m.put_latency_samples > 0);
    assert!(m.peak_bytes_stored >= 9_500);
    let prom = m.to_prometheus();
    assert!(prom.contains("bandwidth_saved_bytes_total"));
    assert_eq!(cache.stats().errors, m.errors);
}

// ----- 14. tag resolution ignored index types, used a wrong header, printed, went online -----

/// The core has no network and no stdout at all (clippy's disallowed types and methods enforce
/// it for the library); what a test can show is that resolution touches nothing but memory, that
/// every index/manifest media type is accepted, that the digest is always the body's, and that
/// library messages reach the host's log sink.
#[test]
fn lesson_14_tag_resolution_is_sans_io_and_accepts_index_media_types() {
    let memory = MemoryStorage::new();
    let recording = Recording::new(memory.clone());
    let clock = ManualClock::new(T0);
    let log = MemoryLog::default();
    let mut cache = Cache::builder(recording.clone(), clock.clone())
        .log(log.clone())
        .open()
        .unwrap();

    // Resolution is a decision: no storage, no network, nothing but the in-memory state.
    let r = ref_("registry.example.com:5000/team/app:1.0");
    recording.take();
    assert_eq!(cache.resolve_tag(&r).unwrap(), Resolution::Unknown);
    let pinned = ref_(
        "registry.example.com:5000/team/app@sha256:1111111111111111111111111111111111111111111111111111111111111111",
    );
    assert_eq!(
        cache.resolve_tag(&pinned).unwrap(),
        Resolution::Fresh(pinned.digest().unwrap().clone())
    );
    assert_eq!(recording.take().total(), 0);

    // The host fetches an index (each media type in turn) and reports what it got.
    let cfg = cache.put_blob(None, b"{}").unwrap();
    let (child, _) = put_image(&mut cache, &cfg, &[&cfg]);
    let mut last = None;
    for (mt, declared) in [
        (
            MediaType::OciIndex,
            Some("application/vnd.oci.image.index.v1+json"),
        ),
        (
            MediaType::DockerManifestList,
            Some("application/vnd.docker.distribution.manifest.list.v2+json; charset=utf-8"),
        ),
        (MediaType::OciIndex, None),
    ] {
        let body = index_manifest(mt, std::slice::from_ref(&child));
        let digest = sha256(&body);
        assert_eq!(cache.put_manifest(&digest, &body, declared).unwrap(), mt);
        assert_eq!(
            cache.manifest_references(&digest).unwrap(),
            vec![Key::manifest(child.clone())]
        );
        assert!(cache.get_manifest(&digest).unwrap().media_type.is_index());
        let update = cache.put_tag(&r, &digest).unwrap();
        assert_eq!(update.moved, last.is_some());
        last = Some(digest);
        clock.advance(1000);
    }
    let current = last.unwrap();
    recording.take();
    assert_eq!(
        cache.resolve_tag(&r).unwrap(),
        Resolution::Fresh(current.clone())
    );
    assert_eq!(recording.take().total(), 0);
    assert_eq!(cache.tag_history(&r).unwrap().len(), 3);

    // Single manifests of both families resolve too.
    let docker = image_manifest(&cfg, &[&cfg])
        .iter()
        .map(|&b| b as char)
        .collect::<String>()
        .replace(
            MediaType::OciManifest.as_str(),
            MediaType::DockerManifest.as_str(),
        );
    let docker_digest = sha256(docker.as_bytes());
    assert_eq!(
        cache
            .put_manifest(
                &docker_digest,
                docker.as_bytes(),
                Some(MediaType::DockerManifest.as_str())
            )
            .unwrap(),
        MediaType::DockerManifest
    );
    // A declared type that disagrees with the body is refused.
    let body = index_manifest(MediaType::OciIndex, std::slice::from_ref(&child));
    assert_eq!(
        cache
            .put_manifest(&sha256(&body), &body, Some(MediaType::OciManifest.as_str()))
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidManifest
    );
    // The digest is the body's, never a header's: a wrong one is refused.
    assert_eq!(
        cache
            .put_manifest(&docker_digest, &body, None)
            .unwrap_err()
            .kind(),
        ErrorKind::DigestMismatch
    );

    // Stale → the host revalidates; movement is detected and reported through the log sink.
    clock.advance(10 * 60_000);
    assert_eq!(
        cache.resolve_tag(&r).unwrap(),
        Resolution::Stale(current.clone())
    );
    assert!(cache.detect_movement(&r, &docker_digest).unwrap());
    assert!(!cache.detect_movement(&r, &current).unwrap());
    assert_eq!(cache.resolve_failed(&r).unwrap(), current, "stale-if-error");
    let update = cache.put_tag(&r, &docker_digest).unwrap();
    assert!(update.moved);
    assert_eq!(update.previous, Some(current));
    assert_eq!(
        cache.resolve_tags(&[r.clone(), ref_("other:1")]),
        vec![
            Ok(Resolution::Fresh(docker_digest)),
            Ok(Resolution::Unknown)
        ]
    );
    assert!(
        log.records()
            .iter()
            .any(|(level, line)| *level == Level::Info && line.starts_with("tag moved")),
        "library output goes to the host's log sink: {:?}",
        log.records()
    );
    // A tagless, digestless reference means :latest; a digest-only one names no tag mapping.
    assert_eq!(
        cache
            .put_tag(&ref_("example.com/x@sha256:1111111111111111111111111111111111111111111111111111111111111111"), &cfg)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidReference
    );
    cache.put_tag(&ref_("example.com/x"), &cfg).unwrap();
    assert_eq!(
        cache.resolve_tag(&ref_("example.com/x:latest")).unwrap(),
        Resolution::Fresh(cfg)
    );
}
