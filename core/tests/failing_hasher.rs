//! A host hasher that fails (a JS hasher that throws, a component host's hash that gives the
//! wrong length) is a host failure: every operation that needed the digest fails with the
//! storage error, nothing is stored under a made-up digest, and no good entry is quarantined or
//! removed as if its bytes were corrupt.

mod common;

use common::{image_manifest, pattern, sha256};
use ocicache_core::storage::MemoryStorage;
use ocicache_core::{
    Algorithm, BuiltinHasher, Cache, ErrorKind, HashProvider, HashState, ManualClock,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The built-in hasher, or (while `broken` is set) one whose digests come out empty.
#[derive(Clone, Default)]
struct SwitchableHasher {
    broken: Arc<AtomicBool>,
}

struct Empty;
impl HashState for Empty {
    fn update(&mut self, _: &[u8]) {}
    fn finish(self: Box<Self>) -> Vec<u8> {
        Vec::new()
    }
}

impl HashProvider for SwitchableHasher {
    fn start(&self, algorithm: Algorithm) -> Option<Box<dyn HashState>> {
        if self.broken.load(Ordering::SeqCst) {
            Some(Box::new(Empty))
        } else {
            BuiltinHasher.start(algorithm)
        }
    }
}

fn open(storage: &MemoryStorage, clock: &ManualClock, hasher: &SwitchableHasher) -> Cache {
    Cache::builder(storage.clone(), clock.clone())
        .hasher(hasher.clone())
        .open()
        .expect("open")
}

#[test]
fn nothing_is_stored_under_a_digest_the_hasher_did_not_give() {
    let (storage, clock, hasher) = (
        MemoryStorage::new(),
        ManualClock::new(0),
        SwitchableHasher::default(),
    );
    let mut cache = open(&storage, &clock, &hasher);
    hasher.broken.store(true, Ordering::SeqCst);

    let blob = pattern(1, 100_000);
    let e = cache.put_blob(None, &blob).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    assert!(e.to_string().contains("hasher failed"), "{e}");
    let e = cache.put_blob(Some(&sha256(&blob)), &blob).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");

    let config = sha256(b"{}");
    let manifest = image_manifest(&config, &[]);
    let e = cache
        .put_manifest(&sha256(&manifest), &manifest, None)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");

    assert!(cache.contents().is_empty());
    assert_eq!(storage.temp_count(), 0);
    assert!(
        storage.paths().iter().all(|p| p.starts_with("index/")),
        "{:?}",
        storage.paths()
    );
}

#[test]
fn a_failing_hasher_never_condemns_good_bytes() {
    let (storage, clock, hasher) = (
        MemoryStorage::new(),
        ManualClock::new(0),
        SwitchableHasher::default(),
    );
    let mut cache = open(&storage, &clock, &hasher);
    let blob = pattern(2, 3 << 20);
    let digest = cache.put_blob(None, &blob).expect("put");
    let config = cache.put_blob(None, b"{}").expect("config");
    let manifest = image_manifest(&config, &[&digest]);
    let mdigest = sha256(&manifest);
    cache
        .put_manifest(&mdigest, &manifest, None)
        .expect("manifest");

    hasher.broken.store(true, Ordering::SeqCst);
    // Verified reads fail, and the final chunk is withheld.
    let e = cache.get_blob(&digest).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    let mut reader = cache.open_blob(&digest).expect("open");
    let mut buf = vec![0u8; 1 << 20];
    let mut served = 0;
    let e = loop {
        match cache.read_blob(&mut reader, &mut buf) {
            Ok(0) => panic!("a read without a digest must not end cleanly"),
            Ok(n) => served += n,
            Err(e) => break e,
        }
    };
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    assert!(served < blob.len());
    let e = cache.get_manifest(&mdigest).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    // Checks and repairs stop instead of judging.
    assert_eq!(
        cache.check_integrity().unwrap_err().kind(),
        ErrorKind::Storage
    );
    assert_eq!(
        cache.validate_digests().unwrap_err().kind(),
        ErrorKind::Storage
    );
    assert_eq!(cache.repair().unwrap_err().kind(), ErrorKind::Storage);
    assert!(cache.contents().iter().all(|e| !e.quarantined));

    // An unindexed valid file is not removed as invalid while the hasher fails.
    let orphan = pattern(3, 5000);
    let orphan_digest = sha256(&orphan);
    let orphan_path =
        ocicache_core::layout::entry_path(&ocicache_core::Key::blob(orphan_digest.clone()));
    storage.put(&orphan_path, &orphan);
    assert!(cache.repair().is_err());
    assert_eq!(storage.get(&orphan_path).as_deref(), Some(&orphan[..]));

    // Once the hasher works again, everything is there and healthy.
    hasher.broken.store(false, Ordering::SeqCst);
    assert_eq!(cache.get_blob(&digest).expect("get"), blob);
    assert_eq!(
        cache.get_manifest(&mdigest).expect("manifest").bytes,
        manifest
    );
    let report = cache.repair().expect("repair");
    assert_eq!(report.removed_corrupted + report.removed_unindexed, 0);
    assert_eq!(report.adopted, 1);
    assert!(cache.check_integrity().expect("check").healthy);
}
