//! The component itself: what it imports, and that it runs the core.

use ocicache::component::{ComponentCache, ComponentOptions, component_imports};
use ocicache_core::hashing::{BuiltinHasher, digest_of};
use ocicache_core::storage::MemoryStorage;
use ocicache_core::{Algorithm, Config, ErrorKind, Key, ManualClock, NoLog, Reference, Resolution};

#[test]
fn the_component_imports_only_our_interfaces() {
    let imports = component_imports().unwrap();
    assert!(!imports.is_empty());
    for name in &imports {
        assert!(
            name.starts_with("ocicache:cache/"),
            "unexpected import {name} (no WASI or other interfaces allowed)"
        );
    }
    for wanted in ["storage", "clock", "log", "hasher"] {
        assert!(
            imports
                .iter()
                .any(|n| n.starts_with(&format!("ocicache:cache/{wanted}@"))),
            "{wanted} is imported"
        );
    }
}

#[test]
fn the_component_runs_the_core() {
    let storage = MemoryStorage::new();
    let t = std::time::Instant::now();
    let mut cache = ComponentCache::open(
        storage.clone(),
        ManualClock::new(1_000),
        NoLog,
        Config::default(),
        ComponentOptions::default(),
    )
    .unwrap();
    eprintln!("open {:?}", t.elapsed());
    let d = cache.put_blob(None, b"hello").unwrap();
    assert_eq!(cache.get_blob(&d).unwrap(), b"hello");
    let w = cache.begin_blob(Some(&d), Some(5)).unwrap();
    cache.write_blob(w, b"hel").unwrap();
    cache.write_blob(w, b"lo").unwrap();
    assert_eq!(cache.commit_blob(w).unwrap(), d);
    cache.close().unwrap();
    assert!(
        storage
            .paths()
            .iter()
            .any(|p| p.starts_with("blobs/sha256/"))
    );
}

#[test]
fn the_memory_cap_fails_a_call_with_a_typed_error_and_the_next_call_recovers() {
    let storage = MemoryStorage::new();
    let options = ComponentOptions {
        memory_limit: 24 << 20,
        ..ComponentOptions::default()
    };
    let mut cache = ComponentCache::open(
        storage.clone(),
        ManualClock::new(1_000),
        NoLog,
        Config::default(),
        options,
    )
    .unwrap();
    let kept = cache.put_blob(None, b"committed before the trap").unwrap();
    // 32 MiB cannot even be lowered into a guest capped at 24 MiB.
    let huge = vec![7u8; 32 << 20];
    let err = cache.put_blob(None, &huge).unwrap_err();
    assert_eq!(err.kind(), ocicache_core::ErrorKind::Storage, "{err}");
    assert!(err.to_string().contains("component"), "{err}");
    // A fresh instance reopens the cache from storage: nothing committed is lost.
    assert_eq!(cache.get_blob(&kept).unwrap(), b"committed before the trap");
    let small = cache.put_blob(None, &huge[..1 << 20]).unwrap();
    assert!(cache.has_blob(&small).unwrap());
    assert_eq!(storage.temp_count(), 0);
}

fn open_component(storage: &MemoryStorage) -> ComponentCache {
    ComponentCache::open(
        storage.clone(),
        ManualClock::new(1_000),
        NoLog,
        Config::default(),
        ComponentOptions::default(),
    )
    .unwrap()
}

/// `open-blob` answers with the size (no second call), and every algorithm's digest crosses
/// in binary both ways (SHA-256 as words, the others as bytes).
#[test]
fn open_blob_answers_with_its_size_and_digests_of_every_algorithm_cross() {
    let mut cache = open_component(&MemoryStorage::new());
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    for algorithm in [Algorithm::Sha256, Algorithm::Sha384, Algorithm::Sha512] {
        let d = digest_of(&BuiltinHasher, algorithm, &data).unwrap();
        assert_eq!(cache.put_blob(Some(&d), &data).unwrap(), d);
        let (reader, size) = cache.open_blob(&d).unwrap();
        assert_eq!(size, data.len() as u64);
        let mut out = Vec::new();
        let mut buf = vec![0; 64 << 10];
        loop {
            match cache.read_blob(reader, &mut buf).unwrap() {
                0 => break,
                n => out.extend_from_slice(&buf[..n]),
            }
        }
        cache.close_blob(reader);
        assert_eq!(out, data);
        let key = Key::blob(d.clone());
        assert!(cache.has(&key).unwrap());
        assert!(cache.contents().unwrap().iter().any(|e| e.digest == d));
        // A tag can point at any algorithm's digest; history and movement answer with it.
        let r = Reference::parse("registry.example/app:x").unwrap();
        cache.put_tag(&r, &d).unwrap();
        assert_eq!(cache.get_tag(&r).unwrap().digest, d);
        assert_eq!(cache.tag_history(&r).unwrap().last().unwrap().digest, d);
        assert!(!cache.detect_movement(&r, &d).unwrap());
    }
    let sha256_of = |b: &[u8]| digest_of(&BuiltinHasher, Algorithm::Sha256, b).unwrap();
    let w = cache.begin_blob(None, None).unwrap();
    cache.write_blob(w, b"streamed").unwrap();
    assert_eq!(cache.commit_blob(w).unwrap(), sha256_of(b"streamed"));
}

/// The component keeps parsed references by their text: past its bound, texts it forgot are
/// parsed again; a reference that names no tag is refused each time; texts naming the same
/// tag share it.
#[test]
fn references_resolve_the_same_however_often_they_are_seen() {
    let mut cache = open_component(&MemoryStorage::new());
    let d = cache.put_blob(None, b"target").unwrap();
    let nginx = Reference::parse("nginx").unwrap();
    cache.put_tag(&nginx, &d).unwrap();
    // More distinct references than the component keeps (1024).
    for i in 0..1500 {
        let r = Reference::parse(&format!("registry.example/team/app{i}:v1")).unwrap();
        assert_eq!(cache.resolve_tag(&r).unwrap(), Resolution::Unknown);
        if i % 500 == 0 {
            cache.put_tag(&r, &d).unwrap();
        }
    }
    for i in [0, 500, 1000] {
        let r = Reference::parse(&format!("registry.example/team/app{i}:v1")).unwrap();
        assert_eq!(cache.get_tag(&r).unwrap().digest, d);
        assert!(cache.has_tag(&r).unwrap());
    }
    assert_eq!(
        cache.get_tag(&nginx).unwrap().reference,
        "docker.io/library/nginx:latest"
    );
    assert!(cache.invalidate_tag(&nginx).unwrap());
    assert!(!cache.has_tag(&nginx).unwrap());
    // A reference with a digest names no tag mapping: refused on every call.
    let pinned = Reference::parse(&format!("nginx:1@{d}")).unwrap();
    for _ in 0..2 {
        let err = cache.get_tag(&pinned).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidReference, "{err}");
    }
    assert!(cache.delete_tag(&nginx).unwrap());
    assert_eq!(
        cache.get_tag(&nginx).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}
