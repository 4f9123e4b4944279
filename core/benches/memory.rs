//! Memory: index bytes per entry at 100k and 1M entries (target ≤ 256 B), and peak memory
//! during a 1 GiB blob ingest (target ≤ 16 MiB above baseline).
//!
//! `cargo bench -p ocicache-core --bench memory`
//!
//! A counting global allocator tracks live and peak heap bytes; memory use is deterministic, so
//! this is a plain program that prints its figures. For the bytes-per-entry and ingest figures
//! the storage is `common::DiscardingStorage`, which counts bytes and keeps none: the point is
//! the core's own memory, not the bytes an in-memory store would hold for it (with
//! `MemoryStorage` a 1 GiB ingest necessarily holds 1 GiB). It is used for nothing else. Also
//! printed: the index of a cache reopened at 1M entries (over `MemoryStorage`, which opening
//! must read; the store is allocated before the baseline and opening leaves it unchanged).

// The counting allocator must implement `GlobalAlloc`, an unsafe trait; the core crate itself
// keeps `#![forbid(unsafe_code)]`.
#![allow(unsafe_code)]

#[path = "common/mod.rs"]
mod common;

use common::{DiscardingStorage, blob};
use ocicache_core::{Cache, Config, ManualClock};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `System`, counting live and peak bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counters
// are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Resets the peak to the current live bytes and returns them (the baseline).
fn reset_peak() -> usize {
    let now = live();
    PEAK.store(now, Ordering::Relaxed);
    now
}

fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

const MIB: f64 = (1 << 20) as f64;

fn main() {
    println!("memory (counting allocator; DiscardingStorage keeps no bytes — see the file's docs)");
    println!(
        "size_of Option<index::Entry> = {} B (one slab slot)",
        size_of::<Option<ocicache_core::index::Entry>>()
    );
    let slot = size_of::<Option<ocicache_core::index::Entry>>() as f64;
    let mut verdicts = Vec::new();
    for (n, label) in [(100_000usize, "100k"), (1_000_000, "1M")] {
        let per = index_bytes_per_entry(n, label);
        // The slab is a Vec: after doubling it holds up to twice the slots in use.
        let slab = n.next_power_of_two() as f64 * slot / n as f64;
        verdicts.push(format!(
            "@{label} {per:.1} {} (of which slab {slab:.0})",
            if per <= 256.0 { "met" } else { "MISSED" }
        ));
    }
    println!("index bytes/entry target <= 256: {}", verdicts.join("; "));
    reopened_index(1_000_000, "1M");
    let chunk_len = 1 << 20;
    ingest_peak(chunk_len);
}

/// The index of a cache reopened from its snapshot (loaded in bulk: packed ordered sets), and
/// the transient peak of opening. The store is `MemoryStorage` here (opening must read it);
/// what the store holds is allocated before the baseline, and opening does not change it.
fn reopened_index(n: usize, label: &str) {
    let clock = ManualClock::new(1_700_000_000_000);
    let storage = ocicache_core::storage::MemoryStorage::new();
    let config = Config {
        max_bytes: 1 << 40,
        ..Config::default()
    };
    let mut cache = Cache::builder(storage.clone(), clock.clone())
        .config(config.clone())
        .open()
        .expect("open");
    for i in 0..n as u64 {
        clock.advance(1);
        cache.put_blob(None, &blob(i, 1)).expect("put");
    }
    cache.cleanup().expect("cleanup");
    drop(cache);
    let base = reset_peak();
    let cache = Cache::builder(storage.clone(), clock)
        .config(config)
        .open()
        .expect("reopen");
    let after = live();
    assert_eq!(cache.stats().total_entries, n as u64);
    println!(
        "index bytes/entry after reopen @{label} = {:.1} (peak while opening {:.1} MiB above \
         the store, of which {:.1} MiB transient)",
        (after - base) as f64 / n as f64,
        (peak() - base) as f64 / MIB,
        (peak() - after) as f64 / MIB,
    );
}

fn index_bytes_per_entry(n: usize, label: &str) -> f64 {
    let clock = ManualClock::new(1_700_000_000_000);
    let base = reset_peak();
    let mut cache = Cache::builder(DiscardingStorage::default(), clock.clone())
        .config(Config {
            max_bytes: 1 << 40,
            ..Config::default()
        })
        .open()
        .expect("open");
    let empty = live();
    for i in 0..n as u64 {
        clock.advance(1);
        cache.put_blob(None, &blob(i, 1)).expect("put");
    }
    let full = live();
    let build_peak = peak();
    let per = (full - empty) as f64 / n as f64;
    println!(
        "index bytes/entry @{label} = {per:.1} ({:.1} MiB for {n} entries; empty cache {} B; \
         peak while building {:.1} MiB above the empty cache, compactions included)",
        (full - empty) as f64 / MIB,
        empty - base,
        (build_peak - empty) as f64 / MIB,
    );
    drop(cache);
    per
}

fn ingest_peak(chunk_len: usize) {
    const GIB: u64 = 1 << 30;
    let clock = ManualClock::new(1_700_000_000_000);
    let mut cache = Cache::builder(DiscardingStorage::default(), clock)
        .config(Config {
            max_bytes: 4 * GIB,
            ..Config::default()
        })
        .open()
        .expect("open");
    let chunk = vec![0xa5u8; chunk_len]; // the host's buffer, allocated before the baseline
    let base = reset_peak();
    let mut w = cache.begin_blob(None, Some(GIB)).expect("begin");
    for _ in 0..GIB / chunk_len as u64 {
        cache.write_blob(&mut w, &chunk).expect("write");
    }
    let digest = cache.commit_blob(w).expect("commit");
    let above = peak() - base;
    println!(
        "peak during 1 GiB ingest ({} KiB chunks, DiscardingStorage) = {} B above baseline \
         ({:.3} MiB) — target <= 16 MiB: {}; blob {digest}",
        chunk_len >> 10,
        above,
        above as f64 / MIB,
        if above as f64 <= 16.0 * MIB {
            "met"
        } else {
            "MISSED"
        }
    );
}
