//! Index operation latency at 1k, 100k and 1M entries: get (hit, miss), put, put into a full
//! cache (evicting exactly one entry), and eviction cost per evicted entry (expiry cleanup).
//! Target: O(log n) — the 1M figure within 3× of the 1k figure.
//!
//! `cargo bench -p ocicache-core --bench index_ops`
//!
//! Over `MemoryStorage`, which keeps every byte and looks paths up in O(1) (an earlier version
//! keyed a `BTreeMap` by path strings, whose O(log n) string comparisons dominated at 1M).
//!
//! Each size is built once (32-byte blobs with unique contents, 1 ms of simulated time per put)
//! and reused by every benchmark of that size, in an order that keeps each benchmark's
//! preconditions: gets first (uniformly random hits with verified reads, through `get_blob` and
//! through `open_blob`/`read_blob`/`close_blob` with the caller's buffer; misses), which do not
//! change membership; then puts (each batch preceded, untimed, by deleting as many of the
//! oldest entries, so the size stays n and no put evicts); then puts into the full cache (each
//! evicts exactly one); then expiry cleanup (refilled untimed after each batch). Compaction is
//! deferred (see `common::latency_config`); its cost is timed by the `reopen` benchmark.

// Benchmarks time themselves: std::time is what the core's clippy config forbids in core code.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "common/mod.rs"]
mod common;

use common::{BLOB_BYTES, Recorder, Rng, SIZES, blob, fmt_ns, latency_config};
use criterion::Criterion;
use ocicache_core::storage::MemoryStorage;
use ocicache_core::{Cache, Digest, ManualClock};
use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

const SAMPLES: usize = 20;
/// Content family of entries that are stored; misses use another.
const STORED: u64 = 1;
const ABSENT: u64 = 2;

struct Fixture {
    cache: Cache,
    clock: ManualClock,
    /// Stored digests, oldest first (exact until the evicting benchmarks start).
    present: VecDeque<Digest>,
    next: u64,
    n: usize,
}

impl Fixture {
    fn build(n: usize) -> Fixture {
        let clock = ManualClock::new(1_700_000_000_000);
        let builder = Cache::builder(MemoryStorage::new(), clock.clone());
        let cache = builder.config(latency_config(n)).open().expect("open");
        let mut f = Fixture {
            cache,
            clock,
            present: VecDeque::with_capacity(n + 1),
            next: 0,
            n,
        };
        for _ in 0..n {
            let d = f.put_new();
            f.present.push_back(d);
        }
        f
    }

    /// Puts a new unique blob, 1 ms after the previous put.
    fn put_new(&mut self) -> Digest {
        self.clock.advance(1);
        self.next += 1;
        self.cache
            .put_blob(None, &blob(self.next, STORED))
            .expect("put")
    }

    fn full(&self) -> bool {
        self.cache.size() == self.n as u64 * BLOB_BYTES
    }
}

const BENCHES: [&str; 6] = [
    "get_hit",
    "get_hit_stream",
    "get_miss",
    "put",
    "put_evict1",
    "evict_expired",
];

fn main() {
    let mut c = Criterion::default()
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    let rec = Recorder::default();
    for (n, label) in SIZES {
        let t = Instant::now();
        let mut f = Fixture::build(n);
        println!(
            "built {label}: {n} entries in {:.2} s",
            t.elapsed().as_secs_f64()
        );
        bench_size(&mut c, &rec, &mut f, "", label);
        drop(f);
    }
    c.final_summary();
    summarize(&rec, "", "MemoryStorage");
}

fn bench_size(c: &mut Criterion, rec: &Recorder, f: &mut Fixture, prefix: &str, label: &str) {
    let n = f.n;
    assert!(f.full(), "the fixture starts exactly full");

    // get (hit): uniformly random stored entries; verified reads (the default).
    let digests: Vec<Digest> = f.present.iter().cloned().collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let name = format!("{prefix}get_hit/{label}");
    c.bench_function(&name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let d = &digests[rng.below(n)];
                black_box(f.cache.get_blob(d).expect("hit"));
            }
            let el = start.elapsed();
            rec.record(&name, iters, el);
            el
        })
    });

    // get (hit) through the streaming API with the caller's buffer: `get_blob` allocates and
    // zero-fills a 64 KiB read buffer per call, a constant that flatters the 1M/1k ratio.
    let mut buf = vec![0u8; 1 << 16];
    let name = format!("{prefix}get_hit_stream/{label}");
    c.bench_function(&name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let d = &digests[rng.below(n)];
                let mut r = f.cache.open_blob(d).expect("hit");
                while f.cache.read_blob(&mut r, &mut buf).expect("read") > 0 {}
                f.cache.close_blob(r);
                black_box(&buf);
            }
            let el = start.elapsed();
            rec.record(&name, iters, el);
            el
        })
    });
    drop(digests);

    // get (miss): digests of content never stored.
    let misses: Vec<Digest> = (0..4096)
        .map(|i| {
            ocicache_core::hashing::digest_of(
                &ocicache_core::BuiltinHasher,
                ocicache_core::Algorithm::Sha256,
                &blob(i, ABSENT),
            )
            .expect("the built-in hasher")
        })
        .collect();
    let mut i = 0usize;
    let name = format!("{prefix}get_miss/{label}");
    c.bench_function(&name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                i = (i + 1) % misses.len();
                black_box(f.cache.get_blob(&misses[i]).is_err());
            }
            let el = start.elapsed();
            rec.record(&name, iters, el);
            el
        })
    });

    // put: new unique content; batches of at most n/10 puts, each batch preceded (untimed) by
    // deleting as many of the oldest entries, so the cache stays at n entries and never evicts.
    let batch = (n / 10).max(1) as u64;
    let name = format!("{prefix}put/{label}");
    c.bench_function(&name, |b| {
        b.iter_custom(|iters| {
            let mut el = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let k = batch.min(iters - done);
                for _ in 0..k {
                    let old = f.present.pop_front().expect("present");
                    assert!(f.cache.delete_blob(&old).expect("delete"));
                }
                let start = Instant::now();
                for _ in 0..k {
                    let d = f.put_new();
                    f.present.push_back(d);
                }
                el += start.elapsed();
                done += k;
            }
            assert!(f.full());
            rec.record(&name, iters, el);
            el
        })
    });

    // put into a full cache: every put evicts exactly one entry (expired first, then LRU).
    let name = format!("{prefix}put_evict1/{label}");
    c.bench_function(&name, |b| {
        b.iter_custom(|iters| {
            let before = f.cache.stats().evictions;
            let start = Instant::now();
            for _ in 0..iters {
                black_box(f.put_new());
            }
            let el = start.elapsed();
            assert_eq!(
                f.cache.stats().evictions - before,
                iters,
                "one eviction per put"
            );
            rec.record(&name, iters, el);
            el
        })
    });
    f.present.clear(); // no longer exact

    // eviction per evicted entry: advance time so a batch of ~64 entries expires, time
    // `clear_expired` (which evicts them and journals the removals), refill untimed.
    let name = format!("{prefix}evict_expired/{label}");
    c.bench_function(&name, |b| {
        b.iter_custom(|iters| {
            let mut el = Duration::ZERO;
            let mut evicted = 0u64;
            while evicted < iters {
                f.clock.advance(64);
                let start = Instant::now();
                let k = f.cache.clear_expired().expect("clear expired");
                el += start.elapsed();
                evicted += k;
                for _ in 0..k {
                    f.next += 1;
                    f.cache
                        .put_blob(None, &blob(f.next, STORED))
                        .expect("refill");
                }
            }
            assert!(f.full());
            // One criterion iteration = one evicted entry.
            let el = el.mul_f64(iters as f64 / evicted as f64);
            rec.record(&name, iters, el);
            el
        })
    });
}

fn summarize(rec: &Recorder, prefix: &str, title: &str) {
    println!("\n== index_ops summary, {title} (median of {SAMPLES} samples; per operation) ==");
    for bench in BENCHES {
        let figs: Vec<Option<f64>> = SIZES
            .iter()
            .map(|(_, l)| rec.median_ns(&format!("{prefix}{bench}/{l}"), SAMPLES))
            .collect();
        let cells: Vec<String> = SIZES
            .iter()
            .zip(&figs)
            .map(|((_, l), v)| format!("{l} {}", v.map_or("-".into(), fmt_ns)))
            .collect();
        print!("{prefix}{bench:<14} {}", cells.join(", "));
        if let (Some(small), Some(large)) = (figs[0], figs[2]) {
            let ratio = large / small;
            print!(
                "   {prefix}{bench} 1M/1k = {ratio:.2}x ({})",
                if ratio <= 3.0 {
                    "within 3x: OK"
                } else {
                    "OVER 3x"
                }
            );
        }
        println!();
    }
    // Capacity eviction happens inside a put: its cost is the difference.
    for (_, l) in SIZES {
        if let (Some(p), Some(pe)) = (
            rec.median_ns(&format!("{prefix}put/{l}"), SAMPLES),
            rec.median_ns(&format!("{prefix}put_evict1/{l}"), SAMPLES),
        ) {
            println!(
                "{prefix}evict (capacity, = put_evict1 - put) @{l} = {}",
                fmt_ns(pe - p)
            );
        }
    }
}
