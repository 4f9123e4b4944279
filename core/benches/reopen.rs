//! Reopen at 100k and 1M entries, two ways in the same run: after a clean `close()` (snapshot +
//! journal replay; the index is trusted) and after a crash (the same, plus reconciling every
//! stored file with the index). Target: under 1 s at 1M.
//!
//! `cargo bench -p ocicache-core --bench reopen`
//!
//! Each store is prepared once in `MemoryStorage`: n blob puts (compacting as configured), then
//! `cleanup()` (flush + a fresh snapshot), then journal records after the snapshot: n/100 more
//! puts, n/100 reads (access records), n/1000 deletes and a few tags, flushed. Only
//! `Cache::builder(..).open()` is timed; dropping the opened cache is not.

// Benchmarks time themselves: std::time is what the core's clippy config forbids in core code.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "common/mod.rs"]
mod common;

use common::{Recorder, blob, fmt_ns};
use criterion::{Criterion, SamplingMode};
use ocicache_core::storage::MemoryStorage;
use ocicache_core::{Cache, Config, ManualClock, Reference};
use std::time::{Duration, Instant};

const SAMPLES: usize = 10;
const SIZES: [(usize, &str); 2] = [(100_000, "100k"), (1_000_000, "1M")];

fn config() -> Config {
    Config {
        max_bytes: 1 << 30,
        ..Config::default()
    }
}

struct Store {
    storage: MemoryStorage,
    clock: ManualClock,
    entries: u64,
    journal_records: u64,
}

fn prepare(n: usize, label: &str) -> Store {
    let clock = ManualClock::new(1_700_000_000_000);
    let storage = MemoryStorage::new();
    let mut cache = Cache::builder(storage.clone(), clock.clone())
        .config(config())
        .open()
        .expect("open");
    let t = Instant::now();
    let mut digests = Vec::with_capacity(n);
    for i in 0..n as u64 {
        clock.advance(1);
        digests.push(cache.put_blob(None, &blob(i, 1)).expect("put"));
    }
    let t_puts = t.elapsed();
    let t = Instant::now();
    let report = cache.cleanup().expect("cleanup");
    let t_cleanup = t.elapsed();
    assert!(report.compacted);
    for i in 0..(n / 100) as u64 {
        clock.advance(1);
        cache.put_blob(None, &blob(i, 2)).expect("put");
    }
    for i in 0..n / 100 {
        cache.get_blob(&digests[i * 97 % n]).expect("get");
    }
    for i in 0..n / 1000 {
        assert!(cache.delete_blob(&digests[i * 89 % n]).expect("delete"));
    }
    for (i, digest) in digests.iter().take(10).enumerate() {
        let r: Reference = format!("registry.example:5000/team/app:v{i}")
            .parse()
            .expect("reference");
        cache.put_tag(&r, digest).expect("tag");
    }
    cache.flush().expect("flush");
    let entries = cache.stats().total_entries;
    drop(cache);
    println!(
        "prepared {label}: {n} puts in {:.2} s, cleanup (flush + snapshot of {n} entries) {}, \
         {entries} entries, {:.0} MiB stored",
        t_puts.as_secs_f64(),
        fmt_ns(t_cleanup.as_nanos() as f64),
        storage.total_bytes() as f64 / (1 << 20) as f64
    );
    // One untimed open to check the store is what we think it is.
    let cache = Cache::builder(storage.clone(), clock.clone())
        .config(config())
        .open()
        .expect("reopen");
    let r = cache.recovery_report().clone();
    assert_eq!(cache.stats().total_entries, entries);
    assert!(r.snapshot_generation.is_some() && r.journal_records > 0);
    assert!(!r.compacted && !r.torn_tail && r.orphans_adopted == 0 && r.missing_dropped == 0);
    println!(
        "  recovery report: snapshot generation {:?}, {} journal records replayed",
        r.snapshot_generation, r.journal_records
    );
    Store {
        storage,
        clock,
        entries,
        journal_records: r.journal_records,
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let rec = Recorder::default();
    for (n, label) in SIZES {
        let mut store = prepare(n, label);
        // First as left by a crash (flushed, never closed), then after a clean close.
        for clean in [false, true] {
            if clean {
                let cache = Cache::builder(store.storage.clone(), store.clock.clone())
                    .config(config())
                    .open()
                    .expect("reopen");
                cache.close().expect("close");
                store.journal_records += 1;
            }
            let case = if clean { "after close" } else { "after crash" };
            let name = format!("reopen/{label} {case}");
            let mut group = c.benchmark_group("reopen");
            group.sampling_mode(SamplingMode::Flat);
            // Flat sampling: one open per iteration; leave room for SAMPLES of them.
            group.measurement_time(Duration::from_secs(if n >= 1_000_000 { 25 } else { 3 }));
            group.bench_function(format!("{label} {case}"), |b| {
                b.iter_custom(|iters| {
                    let mut el = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let cache = Cache::builder(store.storage.clone(), store.clock.clone())
                            .config(config())
                            .open()
                            .expect("reopen");
                        el += start.elapsed();
                        assert_eq!(cache.stats().total_entries, store.entries);
                        let report = cache.recovery_report();
                        assert_eq!(report.journal_records, store.journal_records);
                        assert_eq!(report.clean_shutdown, clean);
                        drop(cache);
                    }
                    rec.record(&name, iters, el);
                    el
                })
            });
            group.finish();
        }
    }
    c.final_summary();
    println!("\n== reopen summary (median of {SAMPLES} samples) ==");
    for (_, label) in SIZES {
        for case in ["after close", "after crash"] {
            if let Some(ns) = rec.median_ns(&format!("reopen/{label} {case}"), SAMPLES) {
                let s = ns / 1e9;
                print!("reopen {label} {case} = {s:.3} s");
                if label == "1M" && case == "after close" {
                    print!(
                        " — target < 1 s: {}",
                        if s < 1.0 { "met" } else { "MISSED" }
                    );
                }
                println!();
            }
        }
    }
}
