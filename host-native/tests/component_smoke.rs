//! The component itself: what it imports, and that it runs the core.

use ocicache::component::{ComponentCache, ComponentOptions, component_imports};
use ocicache_core::storage::MemoryStorage;
use ocicache_core::{Config, ManualClock, NoLog};

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
