//! Unit tests of the public API over the native engine.

use super::*;
use std::io::{Read, Write};

fn open(dir: &std::path::Path) -> Cache {
    Cache::builder(dir)
        .clock(ManualClock::new(1_700_000_000_000))
        .open()
        .unwrap()
}

#[test]
fn cache_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Cache>();
    fn send<T: Send>() {}
    send::<BlobWriter>();
    send::<BlobReader>();
}

#[test]
fn streams_in_and_out() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path());
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
    let mut w = cache.blob_writer(None, Some(data.len() as u64)).unwrap();
    for chunk in data.chunks(10_000) {
        w.write_all(chunk).unwrap();
    }
    assert_eq!(w.written(), data.len() as u64);
    let digest = w.commit().unwrap();
    let mut r = cache.blob_reader(&digest).unwrap();
    assert_eq!(r.size(), data.len() as u64);
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert_eq!(out, data);
}

#[test]
fn a_dropped_writer_is_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path());
    let mut w = cache.blob_writer(None, None).unwrap();
    w.write_all(b"partial").unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        1
    );
    drop(w);
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
    assert_eq!(cache.stats().unwrap().total_entries, 0);
}

#[test]
fn a_corrupted_blob_fails_the_last_read() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path());
    let data = vec![1u8; 200_000];
    let digest = cache.put_blob(None, &data).unwrap();
    let path = dir.path().join("blobs/sha256").join(digest.hex());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[150_000] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let mut r = cache.blob_reader(&digest).unwrap();
    let mut out = Vec::new();
    let err = r.read_to_end(&mut out).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert_eq!(error_of(&err).unwrap().kind(), ErrorKind::Corrupted);
    assert!(out.len() < data.len(), "the last chunk is withheld");
    drop(r);
    assert_eq!(
        cache.get_blob(&digest).unwrap_err().kind(),
        ErrorKind::Corrupted
    );
}

#[test]
fn mismatched_digest_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path());
    let other = cache.put_blob(None, b"other").unwrap();
    cache.delete_blob(&other).unwrap();
    let mut w = cache.blob_writer(Some(&other), None).unwrap();
    w.write_all(b"not other").unwrap();
    assert_eq!(w.commit().unwrap_err().kind(), ErrorKind::DigestMismatch);
    assert!(!cache.has_blob(&other).unwrap());
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}

#[test]
fn reopens_what_was_stored_and_close_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path());
    let d = cache.put_blob(None, b"kept").unwrap();
    let r: Reference = "example.com/app:1".parse().unwrap();
    cache.put_tag(&r, &d).unwrap();
    cache.close().unwrap();
    let cache = open(dir.path());
    assert_eq!(cache.get_blob(&d).unwrap(), b"kept");
    assert_eq!(cache.get_tag(&r).unwrap().digest, d);
    assert_eq!(cache.recovery_report().unwrap().orphans_adopted, 0);
}

#[test]
fn writers_outliving_a_closed_cache_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path());
    let mut w = cache.blob_writer(None, None).unwrap();
    w.write_all(b"x").unwrap();
    cache.close().unwrap();
    assert!(w.write_all(b"y").is_err());
    assert_eq!(w.commit().unwrap_err().kind(), ErrorKind::InvalidArgument);
}

#[test]
fn config_json_is_read_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(CONFIG_FILE), r#"{"max_bytes": 12345}"#).unwrap();
    assert_eq!(open(dir.path()).config().unwrap().max_bytes, 12345);
    std::fs::write(dir.path().join(CONFIG_FILE), r#"{"max_bytes": -1}"#).unwrap();
    let err = Cache::open(dir.path()).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    std::fs::write(dir.path().join(CONFIG_FILE), r#"{"max_bytes": 0}"#).unwrap();
    let err = Cache::open(dir.path()).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
}

#[test]
fn a_file_at_the_cache_path_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"unrelated").unwrap();
    let err = Cache::open(&file).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Storage);
    assert_eq!(std::fs::read(&file).unwrap(), b"unrelated");
}

#[test]
fn threads_share_one_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = std::sync::Arc::new(open(dir.path()));
    let handles: Vec<_> = (0..4u8)
        .map(|t| {
            let cache = cache.clone();
            std::thread::spawn(move || {
                (0..20u8)
                    .map(|i| {
                        let mut w = cache.blob_writer(None, None).unwrap();
                        w.write_all(&[t, i, 42]).unwrap();
                        w.commit().unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for h in handles {
        for d in h.join().unwrap() {
            assert!(cache.has_blob(&d).unwrap());
        }
    }
    assert_eq!(cache.stats().unwrap().blobs, 80);
    assert!(cache.check_integrity().unwrap().healthy);
}

#[test]
fn two_caches_on_one_directory_see_each_other_through_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        compaction_min_records: 4,
        ..Config::default()
    };
    let a = std::sync::Arc::new(
        Cache::builder(dir.path())
            .config(config.clone())
            .open()
            .unwrap(),
    );
    let b = std::sync::Arc::new(Cache::builder(dir.path()).config(config).open().unwrap());
    let worker = |me: std::sync::Arc<Cache>, other: std::sync::Arc<Cache>, seed: u8| {
        std::thread::spawn(move || {
            let mut mine = Vec::new();
            for i in 0..40u8 {
                let d = me.put_blob(None, &[seed, i, 1, 2, 3]).unwrap();
                assert!(
                    other.has_blob(&d).unwrap(),
                    "the other instance sees it at once"
                );
                mine.push(d);
            }
            let r: Reference = format!("example.com/app{seed}:1").parse().unwrap();
            me.put_tag(&r, &mine[0]).unwrap();
            mine
        })
    };
    let ta = worker(a.clone(), b.clone(), 1);
    let tb = worker(b.clone(), a.clone(), 2);
    let (ma, mb) = (ta.join().unwrap(), tb.join().unwrap());
    for d in ma.iter().chain(&mb) {
        assert!(a.has_blob(d).unwrap() && b.has_blob(d).unwrap());
    }
    assert_eq!(a.stats().unwrap().blobs, 80);
    assert_eq!(b.stats().unwrap().tags, 2);
    let removed = &ma[5];
    assert!(b.delete_blob(removed).unwrap());
    assert_eq!(a.get_blob(removed).unwrap_err().kind(), ErrorKind::NotFound);
    drop((a, b));
    let c = Cache::open(dir.path()).unwrap();
    assert_eq!(c.stats().unwrap().blobs, 79);
    assert!(c.check_integrity().unwrap().healthy);
}

#[test]
fn a_large_blob_hashed_on_a_thread_with_early_writeback_is_stored_intact() {
    // 40 MiB in odd-sized pieces: past the hasher's 1 MiB hand-off and several 16 MiB writeback
    // steps, with pieces straddling both.
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..40u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let want = ocicache_core::hashing::digest_of(
        &ocicache_core::BuiltinHasher,
        ocicache_core::Algorithm::Sha256,
        &data,
    )
    .unwrap();
    for engine in [EngineKind::Native, EngineKind::Component] {
        let cache = Cache::builder(dir.path()).engine(engine).open().unwrap();
        let mut w = cache.blob_writer(None, None).unwrap();
        for chunk in data.chunks(1_000_003) {
            w.write_all(chunk).unwrap();
        }
        assert_eq!(w.commit().unwrap(), want, "{engine:?}");
        // An aborted large writer leaves no temp behind.
        let mut dropped = cache.blob_writer(None, None).unwrap();
        dropped.write_all(&data[..20 << 20]).unwrap();
        drop(dropped);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        let mut out = Vec::new();
        cache
            .blob_reader(&want)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert!(out == data, "{engine:?}: the bytes read back differ");
        assert!(cache.delete_blob(&want).unwrap());
    }
}

#[test]
fn a_short_file_found_mid_stream_is_recorded_under_the_directory_lock() {
    // A reads a blob in chunks; meanwhile B (another instance on the directory, as another
    // process would be) records a tag, and the blob file is cut short. A's next chunk (not the
    // last) finds the file short and quarantines the blob, a journal append: it must first
    // catch up with B under the directory lock, or A's view of the journal goes wrong and what
    // B appended is lost to A, and to everyone once A compacts.
    for engine in [EngineKind::Native, EngineKind::Component] {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            Cache::builder(dir.path())
                .engine(engine)
                .clock(ManualClock::new(1_700_000_000_000))
                .open()
                .unwrap()
        };
        let (a, b) = (open(), open());
        let data: Vec<u8> = (0..256u32 << 10).map(|i| (i * 13 % 251) as u8).collect();
        let digest = a.put_blob(None, &data).unwrap();
        let mut reader = a.blob_reader(&digest).unwrap();
        let mut buf = vec![0u8; 64 << 10];
        assert_eq!(reader.read(&mut buf).unwrap(), 64 << 10);

        let tag: Reference = "example.com/app:1".parse().unwrap();
        b.put_tag(&tag, &digest).unwrap();
        let file = dir.path().join(format!("blobs/sha256/{}", digest.hex()));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(64 << 10)
            .unwrap();

        let err = reader.read(&mut buf).unwrap_err();
        assert_eq!(
            crate::error_of(&err).map(Error::kind),
            Some(ErrorKind::Corrupted),
            "{engine:?}: {err}"
        );
        drop(reader);
        assert_eq!(
            a.get_tag(&tag).unwrap().digest,
            digest,
            "{engine:?}: A sees B's tag"
        );
        a.cleanup().unwrap();
        assert_eq!(
            b.get_tag(&tag).unwrap().digest,
            digest,
            "{engine:?}: after A compacted"
        );
        assert!(
            !b.has_blob(&digest).unwrap(),
            "{engine:?}: B sees the quarantine"
        );
        a.close().unwrap();
        b.close().unwrap();

        let c = open();
        assert_eq!(
            c.get_tag(&tag).unwrap().digest,
            digest,
            "{engine:?}: after reopening"
        );
        assert!(!c.recovery_report().unwrap().torn_tail, "{engine:?}");
        let report = c.check_integrity().unwrap();
        assert_eq!(report.quarantined.len(), 1, "{engine:?}: {report:?}");
        assert!(
            report.corrupted.is_empty() && report.missing.is_empty(),
            "{engine:?}"
        );
    }
}

/// The markers of `dir/native/` (docs/FORMAT.md, "Sharing a directory between processes").
fn native_markers(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_dir(dir.join("native"))
        .map(|d| {
            d.map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_open_cache_announces_itself_to_node_until_it_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    for abandon in [false, true] {
        let cache = open(dir.path());
        let markers = native_markers(dir.path());
        assert_eq!(markers.len(), 1, "{markers:?}");
        assert_eq!(markers[0]["pid"], std::process::id());
        assert!(markers[0]["start_ticks"].is_string(), "{markers:?}");
        let mut w = cache.blob_writer(None, None).unwrap();
        w.write_all(b"in flight").unwrap();
        assert_eq!(native_markers(dir.path()).len(), 1, "one marker per cache");
        drop(w);
        if abandon {
            cache.abandon();
        } else {
            cache.close().unwrap();
        }
        assert_eq!(native_markers(dir.path()), Vec::<serde_json::Value>::new());
    }
}

#[test]
fn a_live_node_lock_refuses_the_open_and_leaves_no_marker() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path()).close().unwrap();
    let lock = serde_json::json!({
        "pid": std::process::id(),
        "hostname": std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(),
        "token": "t",
    });
    std::fs::write(dir.path().join("node.lock"), lock.to_string()).unwrap();
    let err = Cache::open(dir.path()).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Storage);
    assert!(err.to_string().contains("open in a Node process"), "{err}");
    assert_eq!(native_markers(dir.path()), Vec::<serde_json::Value>::new());
}

#[test]
fn a_partial_in_use_is_refused_to_other_openers_and_survives_another_process_gc() {
    use ocicache_core::Storage;
    let dir = tempfile::tempdir().unwrap();
    let mut a = crate::storage::FsStorage::open(dir.path()).unwrap();
    let mut b = crate::storage::FsStorage::open(dir.path()).unwrap();
    let path = "partials/sha256/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let (t, len) = a
        .open_partial(path)
        .unwrap()
        .expect("the native host keeps partials");
    assert_eq!(len, 0);
    a.write_temp(t, b"half of it").unwrap();
    // Held (flock): another opener, in this process or another, gets none.
    assert_eq!(b.open_partial(path).unwrap(), None);
    a.keep_partial(t).unwrap();
    // Kept: it outlives clear_temps, and the next opener continues after its bytes.
    b.clear_temps().unwrap();
    let (t2, len) = b.open_partial(path).unwrap().unwrap();
    assert_eq!(len, 10);
    b.write_temp(t2, b", the rest").unwrap();
    b.commit_temp(
        t2,
        "blobs/sha256/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    let mut buf = [0u8; 64];
    let n = b
        .read_at(
            "blobs/sha256/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            0,
            &mut buf,
        )
        .unwrap();
    assert_eq!(&buf[..n], b"half of it, the rest");
    assert_eq!(
        b.size(path).unwrap(),
        None,
        "committed: the partial is gone"
    );
}

/// fsyncs of files and directories by this thread during `f` (the engines call the storage on
/// the caller's thread).
fn fsyncs_during(f: impl FnOnce()) -> u64 {
    use crate::storage::fs::{SYNCED_DIRS, SYNCED_FILES};
    SYNCED_FILES.with(|n| n.set(0));
    SYNCED_DIRS.with(|s| s.borrow_mut().clear());
    f();
    SYNCED_FILES.with(|n| n.get()) + SYNCED_DIRS.with(|s| s.borrow().len() as u64)
}

#[test]
fn durability_from_config_json_reaches_the_storage_on_both_engines() {
    for engine in [EngineKind::Native, EngineKind::Component] {
        for (setting, level) in [
            (None, Durability::Strict),
            (Some("strict"), Durability::Strict),
            (Some("relaxed"), Durability::Relaxed),
        ] {
            let what = format!("{engine:?}, {setting:?}");
            let dir = tempfile::tempdir().unwrap();
            if let Some(s) = setting {
                std::fs::write(
                    dir.path().join(CONFIG_FILE),
                    format!(r#"{{"durability": "{s}", "compaction_min_records": 1000000}}"#),
                )
                .unwrap();
            }
            let cache = Cache::builder(dir.path())
                .engine(engine)
                .clock(ManualClock::new(1_700_000_000_000))
                .open()
                .unwrap();
            assert_eq!(cache.config().unwrap().durability, level, "{what}");
            assert_eq!(cache.durability().unwrap(), level, "{what}");
            let reference: Reference = "registry.example/app:1".parse().unwrap();
            let syncs = fsyncs_during(|| {
                for i in 0..5u8 {
                    let digest = cache.put_blob(None, &[i; 1000]).unwrap();
                    cache.put_tag(&reference, &digest).unwrap();
                }
                let digest = cache.put_blob(None, &[9; 100]).unwrap();
                cache.delete(&Key::blob(digest)).unwrap();
            });
            match level {
                // Each put: file, directory, journal; each tag: journal; the delete: directory.
                Durability::Strict => assert!(syncs >= 17, "{what}: {syncs} fsyncs"),
                Durability::Relaxed => assert_eq!(syncs, 0, "{what}"),
            }
            cache.close().unwrap();
        }
    }
}
