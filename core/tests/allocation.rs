//! Index files and stored files are read, never trusted: every allocation their bytes drive is
//! bounded by bytes actually read (issue 9, item 6).
//!
//! This test binary caps its own address space at 2 GiB (`prlimit`, util-linux) before any test
//! runs, so an allocation sized by a hostile claim aborts the binary instead of succeeding
//! virtually. Each test plants such a claim (a snapshot or journal that reports 200 GiB, a
//! checksum-valid record claiming ~40 million references, a manifest file that reports 200 GiB)
//! and checks that opening and reading end cleanly.

// Setting the limit runs `prlimit` on this process: the one place this file needs the outside
// world, which the core's clippy configuration otherwise forbids.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;
use common::{image_manifest, sha256};
use ocicache_core::storage::MemoryStorage;
use ocicache_core::{Cache, ErrorKind, ManualClock, Storage, StorageError, TempId};
use std::sync::{Arc, Mutex, Once};

const GIB: u64 = 1 << 30;

/// Caps this process's address space at 2 GiB, once.
fn limit_address_space() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let status = std::process::Command::new("prlimit")
            .arg("--pid")
            .arg(std::process::id().to_string())
            .arg(format!("--as={}", 2 * GIB))
            .status()
            .expect("prlimit (util-linux) must be installed");
        assert!(status.success(), "prlimit failed: {status}");
    });
}

/// A `MemoryStorage` where some paths report a huge size and read as zeros (a sparse file).
#[derive(Clone)]
struct Sparse {
    inner: MemoryStorage,
    huge: Arc<Mutex<Vec<(String, u64)>>>,
}

impl Sparse {
    fn new(inner: MemoryStorage) -> Sparse {
        Sparse {
            inner,
            huge: Arc::default(),
        }
    }
    fn make_huge(&self, path: &str, size: u64) {
        self.huge.lock().unwrap().push((path.to_owned(), size));
    }
    fn huge_size(&self, path: &str) -> Option<u64> {
        let huge = self.huge.lock().unwrap();
        huge.iter().find(|(p, _)| p == path).map(|(_, s)| *s)
    }
}

impl Storage for Sparse {
    fn create_temp(&mut self, size_hint: Option<u64>) -> Result<TempId, StorageError> {
        self.inner.create_temp(size_hint)
    }
    fn write_temp(&mut self, temp: TempId, data: &[u8]) -> Result<(), StorageError> {
        self.inner.write_temp(temp, data)
    }
    fn commit_temp(&mut self, temp: TempId, path: &str) -> Result<(), StorageError> {
        self.huge.lock().unwrap().retain(|(p, _)| p != path);
        self.inner.commit_temp(temp, path)
    }
    fn abort_temp(&mut self, temp: TempId) -> Result<(), StorageError> {
        self.inner.abort_temp(temp)
    }
    fn append(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError> {
        assert!(self.huge_size(path).is_none(), "appended to a huge file");
        self.inner.append(path, data)
    }
    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        match self.huge_size(path) {
            Some(size) => {
                // The stored bytes (if any), then zeros up to the huge size.
                let n = (size.saturating_sub(offset)).min(buf.len() as u64) as usize;
                buf[..n].fill(0);
                let stored = self.inner.size(path)?.unwrap_or(0);
                if offset < stored {
                    let m = n.min((stored - offset) as usize);
                    self.inner.read_at(path, offset, &mut buf[..m])?;
                }
                Ok(n)
            }
            None => self.inner.read_at(path, offset, buf),
        }
    }
    fn size(&mut self, path: &str) -> Result<Option<u64>, StorageError> {
        match self.huge_size(path) {
            Some(size) => Ok(Some(size)),
            None => self.inner.size(path),
        }
    }
    fn list(&mut self, dir: &str) -> Result<Vec<String>, StorageError> {
        self.inner.list(dir)
    }
    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        self.huge.lock().unwrap().retain(|(p, _)| p != path);
        self.inner.remove(path)
    }
    fn clear_temps(&mut self) -> Result<u64, StorageError> {
        self.inner.clear_temps()
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn header(generation: u64) -> Vec<u8> {
    let mut body = vec![1u8];
    body.extend_from_slice(b"OCICACHE");
    body.extend_from_slice(&1u32.to_le_bytes());
    body.extend_from_slice(&generation.to_le_bytes());
    frame(&body)
}

/// A stored cache with one blob, one manifest and a tag, closed cleanly.
fn stored() -> (MemoryStorage, ocicache_core::Digest, ocicache_core::Digest) {
    let storage = MemoryStorage::new();
    let mut cache = Cache::builder(storage.clone(), ManualClock::new(1))
        .open()
        .unwrap();
    let blob = cache.put_blob(None, b"layer bytes").unwrap();
    let manifest = image_manifest(&blob, &[&blob]);
    let digest = sha256(&manifest);
    cache.put_manifest(&digest, &manifest, None).unwrap();
    cache.close().unwrap();
    (storage, blob, digest)
}

#[test]
fn a_snapshot_claiming_200_gib_opens_without_reserving_for_it() {
    limit_address_space();
    let (storage, blob, _) = stored();
    // Compact, so that a snapshot exists, then make it claim 200 GiB (zeros: damaged).
    let mut cache = Cache::builder(storage.clone(), ManualClock::new(2))
        .open()
        .unwrap();
    cache.cleanup().unwrap();
    cache.close().unwrap();
    storage.put("index/snapshot", b"");
    let sparse = Sparse::new(storage);
    sparse.make_huge("index/snapshot", 200 * GIB);
    let mut cache = Cache::builder(sparse, ManualClock::new(3)).open().unwrap();
    assert!(cache.recovery_report().snapshot_damaged);
    // The blob is adopted again from its file.
    assert_eq!(cache.get_blob(&blob).unwrap(), b"layer bytes");
}

#[test]
fn a_valid_snapshot_followed_by_200_gib_of_zeros_opens() {
    limit_address_space();
    let (storage, blob, manifest) = stored();
    let mut cache = Cache::builder(storage.clone(), ManualClock::new(2))
        .open()
        .unwrap();
    cache.cleanup().unwrap();
    cache.close().unwrap();
    // The valid frames come first: the index reserves as it reads them, never for the claim.
    let sparse = Sparse::new(storage);
    sparse.make_huge("index/snapshot", 200 * GIB);
    let mut cache = Cache::builder(sparse, ManualClock::new(3)).open().unwrap();
    assert!(cache.recovery_report().snapshot_damaged);
    assert_eq!(cache.get_blob(&blob).unwrap(), b"layer bytes");
    assert!(cache.has_manifest(&manifest));
}

#[test]
fn a_journal_claiming_200_gib_opens() {
    limit_address_space();
    let (storage, blob, _) = stored();
    let journals: Vec<String> = storage
        .paths()
        .into_iter()
        .filter(|p| p.starts_with("index/journal-"))
        .collect();
    assert_eq!(journals.len(), 1);
    let sparse = Sparse::new(storage);
    sparse.make_huge(&journals[0], 200 * GIB);
    let mut cache = Cache::builder(sparse, ManualClock::new(3)).open().unwrap();
    assert_eq!(cache.get_blob(&blob).unwrap(), b"layer bytes");
}

#[test]
fn a_record_claiming_millions_of_references_is_refused_without_allocating_them() {
    limit_address_space();
    let storage = MemoryStorage::new();
    // A checksum-valid `Put` whose reference count equals its body length (~40 MiB), which
    // earlier versions took as the capacity to allocate (66 bytes a key: 2.6 GB).
    let len = 40 << 20;
    let mut body = Vec::with_capacity(len);
    body.push(2u8); // Put
    body.extend_from_slice(&[2, 1]); // blob, sha256
    body.extend_from_slice(&[7u8; 32]);
    for _ in 0..4 {
        body.extend_from_slice(&1u64.to_le_bytes());
    }
    body.extend_from_slice(&[0; 4 + 4 + 1 + 1]); // access count, pins, media type, quarantined
    body.extend_from_slice(&(len as u32).to_le_bytes());
    body.resize(len, 0);
    let mut journal = header(0);
    journal.extend_from_slice(&frame(&body));
    drop(body);
    storage.put("index/journal-0", &journal);
    drop(journal);
    let cache = Cache::builder(storage.clone(), ManualClock::new(3))
        .open()
        .unwrap();
    assert_eq!(cache.stats().total_entries, 0);
}

#[test]
fn a_manifest_file_claiming_200_gib_is_not_read_whole() {
    limit_address_space();
    let (storage, _, manifest) = stored();
    let sparse = Sparse::new(storage);
    let path = format!("manifests/sha256/{}", manifest.hex());
    sparse.make_huge(&path, 200 * GIB);
    let mut cache = Cache::builder(sparse.clone(), ManualClock::new(3))
        .open()
        .unwrap();
    let err = cache.get_manifest(&manifest).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupted, "{err}");
}

#[test]
fn an_unindexed_manifest_file_claiming_200_gib_is_not_read_whole() {
    limit_address_space();
    let (storage, _, manifest) = stored();
    let sparse = Sparse::new(storage.clone());
    let path = format!("manifests/sha256/{}", manifest.hex());
    sparse.make_huge(&path, 200 * GIB);
    // Forget the index: an open asked to adopt the files re-hashes the unindexed one.
    for p in storage.paths() {
        if p.starts_with("index/") {
            Storage::remove(&mut storage.clone(), &p).unwrap();
        }
    }
    let cache = Cache::builder(sparse, ManualClock::new(3))
        .adopt_existing(true)
        .open()
        .unwrap();
    assert!(!cache.has_manifest(&manifest));
}
