//! Per-operation latency, component engine vs native engine (issue 3).
//!
//! `cargo bench -p ocicache --bench engines`
//!
//! Operations: manifest put / get, tag set / get, 1 KiB blob put / get. Each runs
//! - through the public `ocicache::Cache` over the real filesystem (`FsStorage` in a tempdir,
//!   directory lock, every put durable: fsync of file and directory, journal append fsync'd),
//!   with `EngineKind::Component` and `EngineKind::Native`;
//! - and over in-memory `MemoryStorage` (no fsync, no lock): `ComponentCache` vs the core's
//!   `Cache` linked natively, which isolates the engine's own overhead.
//!
//! Every put stores new content (a distinct manifest or blob; a tag alternating between two
//! digests), prepared before the timer starts. After criterion's own report, a summary prints the
//! median time per operation over criterion's samples and the component/native ratio per op,
//! then the crossing floor: the time of the cheapest call (`size()`), which for the component is
//! what entering the guest and coming back costs before any work.

#![allow(missing_docs)]

use criterion::{Criterion, criterion_group};
use ocicache::EngineKind;
use ocicache::component::{ComponentCache, ComponentOptions};
use ocicache_core::storage::MemoryStorage;
use ocicache_core::{Config, Digest, ManualClock, NoLog, Reference};
use sha2::Digest as _;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const MEDIA: &str = "application/vnd.oci.image.manifest.v1+json";
const SAMPLES: usize = 20;

/// The operations every engine offers, as the bench uses them.
trait Target {
    fn put_manifest(&mut self, digest: &Digest, body: &[u8]);
    fn get_manifest(&mut self, digest: &Digest);
    fn put_tag(&mut self, reference: &Reference, digest: &Digest);
    fn get_tag(&mut self, reference: &Reference);
    fn put_blob(&mut self, digest: &Digest, data: &[u8]);
    fn get_blob(&mut self, digest: &Digest);
    /// The cheapest call there is (no argument, a number back): for the component, the fixed
    /// cost of crossing into the guest and back.
    fn size(&mut self) -> u64;
}

impl Target for ocicache::Cache {
    fn put_manifest(&mut self, digest: &Digest, body: &[u8]) {
        ocicache::Cache::put_manifest(self, digest, body, Some(MEDIA)).expect("put manifest");
    }
    fn get_manifest(&mut self, digest: &Digest) {
        ocicache::Cache::get_manifest(self, digest).expect("get manifest");
    }
    fn put_tag(&mut self, reference: &Reference, digest: &Digest) {
        ocicache::Cache::put_tag(self, reference, digest).expect("put tag");
    }
    fn get_tag(&mut self, reference: &Reference) {
        ocicache::Cache::get_tag(self, reference).expect("get tag");
    }
    fn put_blob(&mut self, digest: &Digest, data: &[u8]) {
        ocicache::Cache::put_blob(self, Some(digest), data).expect("put blob");
    }
    fn get_blob(&mut self, digest: &Digest) {
        ocicache::Cache::get_blob(self, digest).expect("get blob");
    }
    fn size(&mut self) -> u64 {
        ocicache::Cache::size(self).expect("size")
    }
}

impl Target for ComponentCache {
    fn put_manifest(&mut self, digest: &Digest, body: &[u8]) {
        ComponentCache::put_manifest(self, digest, body, Some(MEDIA)).expect("put manifest");
    }
    fn get_manifest(&mut self, digest: &Digest) {
        ComponentCache::get_manifest(self, digest).expect("get manifest");
    }
    fn put_tag(&mut self, reference: &Reference, digest: &Digest) {
        ComponentCache::put_tag(self, reference, digest).expect("put tag");
    }
    fn get_tag(&mut self, reference: &Reference) {
        ComponentCache::get_tag(self, reference).expect("get tag");
    }
    fn put_blob(&mut self, digest: &Digest, data: &[u8]) {
        ComponentCache::put_blob(self, Some(digest), data).expect("put blob");
    }
    fn get_blob(&mut self, digest: &Digest) {
        ComponentCache::get_blob(self, digest).expect("get blob");
    }
    fn size(&mut self) -> u64 {
        ComponentCache::size(self).expect("size")
    }
}

impl Target for ocicache_core::Cache {
    fn put_manifest(&mut self, digest: &Digest, body: &[u8]) {
        ocicache_core::Cache::put_manifest(self, digest, body, Some(MEDIA)).expect("put manifest");
    }
    fn get_manifest(&mut self, digest: &Digest) {
        ocicache_core::Cache::get_manifest(self, digest).expect("get manifest");
    }
    fn put_tag(&mut self, reference: &Reference, digest: &Digest) {
        ocicache_core::Cache::put_tag(self, reference, digest).expect("put tag");
    }
    fn get_tag(&mut self, reference: &Reference) {
        ocicache_core::Cache::get_tag(self, reference).expect("get tag");
    }
    fn put_blob(&mut self, digest: &Digest, data: &[u8]) {
        ocicache_core::Cache::put_blob(self, Some(digest), data).expect("put blob");
    }
    fn get_blob(&mut self, digest: &Digest) {
        ocicache_core::Cache::get_blob(self, digest).expect("get blob");
    }
    fn size(&mut self) -> u64 {
        ocicache_core::Cache::size(self)
    }
}

fn sha256(data: &[u8]) -> Digest {
    Digest::from_raw(
        ocicache_core::Algorithm::Sha256,
        &sha2::Sha256::digest(data),
    )
    .expect("32 bytes")
}

/// Distinct content number `n`, per family.
struct Content {
    next: u64,
}

impl Content {
    fn manifest(&mut self) -> (Digest, Vec<u8>) {
        self.next += 1;
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MEDIA}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{:064x}","size":1}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:{:064x}","size":1024}}]}}"#,
            self.next,
            self.next + (1 << 40)
        )
        .into_bytes();
        (sha256(&body), body)
    }
    fn blob(&mut self) -> (Digest, Vec<u8>) {
        self.next += 1;
        let mut data = vec![0x5a; 1024];
        data[..8].copy_from_slice(&self.next.to_le_bytes());
        (sha256(&data), data)
    }
}

/// What criterion handed each `iter_custom` call, by (operation, setting/engine).
type Runs = BTreeMap<(String, String), Vec<(u64, Duration)>>;

#[derive(Default)]
struct Recorder {
    runs: RefCell<Runs>,
}

impl Recorder {
    fn record(&self, op: &str, engine: &str, iters: u64, elapsed: Duration) {
        self.runs
            .borrow_mut()
            .entry((op.to_owned(), engine.to_owned()))
            .or_default()
            .push((iters, elapsed));
    }
    /// Median time per iteration over the last `SAMPLES` calls (criterion's measurement).
    fn median_ns(&self, op: &str, engine: &str) -> Option<f64> {
        let runs = self.runs.borrow();
        let calls = runs.get(&(op.to_owned(), engine.to_owned()))?;
        let mut per: Vec<f64> = calls[calls.len().saturating_sub(SAMPLES)..]
            .iter()
            .filter(|(i, _)| *i > 0)
            .map(|(i, d)| d.as_nanos() as f64 / *i as f64)
            .collect();
        per.sort_by(f64::total_cmp);
        per.get(per.len() / 2).copied()
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

const OPS: [&str; 6] = [
    "manifest_put",
    "manifest_get",
    "tag_set",
    "tag_get",
    "blob_1k_put",
    "blob_1k_get",
];

fn bench_target(
    c: &mut Criterion,
    rec: &Recorder,
    setting: &str,
    engine: &str,
    target: &mut dyn Target,
) {
    let mut content = Content { next: 0 };
    let label = format!("{setting}/{engine}");
    let mut g = c.benchmark_group(&label);
    g.sample_size(SAMPLES)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let target = RefCell::new(target);

    // Fixtures for the gets (and the tag's two digests).
    let (md, mb) = content.manifest();
    target.borrow_mut().put_manifest(&md, &mb);
    let (bd, bb) = content.blob();
    target.borrow_mut().put_blob(&bd, &bb);
    let (md2, mb2) = content.manifest();
    target.borrow_mut().put_manifest(&md2, &mb2);
    let reference = Reference::parse("registry.example:5000/team/app:latest").expect("reference");
    target.borrow_mut().put_tag(&reference, &md);

    let content = RefCell::new(content);
    g.bench_function("manifest_put", |b| {
        b.iter_custom(|iters| {
            let items: Vec<_> = (0..iters)
                .map(|_| content.borrow_mut().manifest())
                .collect();
            let mut t = target.borrow_mut();
            let start = Instant::now();
            for (d, body) in &items {
                t.put_manifest(d, body);
            }
            let el = start.elapsed();
            rec.record("manifest_put", &label, iters, el);
            el
        })
    });
    g.bench_function("manifest_get", |b| {
        b.iter_custom(|iters| {
            let mut t = target.borrow_mut();
            let start = Instant::now();
            for _ in 0..iters {
                t.get_manifest(&md);
            }
            let el = start.elapsed();
            rec.record("manifest_get", &label, iters, el);
            el
        })
    });
    g.bench_function("tag_set", |b| {
        b.iter_custom(|iters| {
            let mut t = target.borrow_mut();
            let start = Instant::now();
            for i in 0..iters {
                // Alternate so that every set is a real change (history stays bounded).
                t.put_tag(&reference, if i % 2 == 0 { &md2 } else { &md });
            }
            let el = start.elapsed();
            rec.record("tag_set", &label, iters, el);
            el
        })
    });
    g.bench_function("tag_get", |b| {
        b.iter_custom(|iters| {
            let mut t = target.borrow_mut();
            let start = Instant::now();
            for _ in 0..iters {
                t.get_tag(&reference);
            }
            let el = start.elapsed();
            rec.record("tag_get", &label, iters, el);
            el
        })
    });
    g.bench_function("blob_1k_put", |b| {
        b.iter_custom(|iters| {
            let items: Vec<_> = (0..iters).map(|_| content.borrow_mut().blob()).collect();
            let mut t = target.borrow_mut();
            let start = Instant::now();
            for (d, data) in &items {
                t.put_blob(d, data);
            }
            let el = start.elapsed();
            rec.record("blob_1k_put", &label, iters, el);
            el
        })
    });
    g.bench_function("blob_1k_get", |b| {
        b.iter_custom(|iters| {
            let mut t = target.borrow_mut();
            let start = Instant::now();
            for _ in 0..iters {
                t.get_blob(&bd);
            }
            let el = start.elapsed();
            rec.record("blob_1k_get", &label, iters, el);
            el
        })
    });
    g.finish();
}

fn config() -> Config {
    Config {
        max_bytes: 8 << 30,
        ..Config::default()
    }
}

fn engines(c: &mut Criterion) {
    let rec = Recorder::default();
    let clock = || ManualClock::new(1_700_000_000_000);

    for (engine, kind) in [
        ("component", EngineKind::Component),
        ("native", EngineKind::Native),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cache = ocicache::Cache::builder(dir.path())
            .config(config())
            .engine(kind)
            .open()
            .expect("open");
        bench_target(c, &rec, "fs", engine, &mut cache);
        cache.close().expect("close");
    }
    let mut comp = ComponentCache::open(
        MemoryStorage::new(),
        clock(),
        NoLog,
        config(),
        ComponentOptions::default(),
    )
    .expect("open component");
    bench_target(c, &rec, "mem", "component", &mut comp);
    let mut native = ocicache_core::Cache::builder(MemoryStorage::new(), clock())
        .config(config())
        .open()
        .expect("open native");
    bench_target(c, &rec, "mem", "native", &mut native);

    let floor = |target: &mut dyn Target| {
        let mut per: Vec<f64> = (0..9)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..20_000 {
                    std::hint::black_box(target.size());
                }
                start.elapsed().as_nanos() as f64 / 20_000.0
            })
            .collect();
        per.sort_by(f64::total_cmp);
        per[per.len() / 2]
    };
    let (comp_floor, native_floor) = (floor(&mut comp), floor(&mut native));

    println!(
        "\nsummary: median time per operation over criterion's {SAMPLES} samples; \
         fs = ocicache::Cache over FsStorage (puts fsync file, directory and journal), \
         mem = MemoryStorage (engine overhead only)"
    );
    println!(
        "  {:<14} {:>11} {:>11} {:>7} | {:>11} {:>11} {:>7}",
        "op", "fs comp", "fs native", "ratio", "mem comp", "mem native", "ratio"
    );
    for op in OPS {
        let cell = |setting: &str| {
            let comp = rec.median_ns(op, &format!("{setting}/component"));
            let native = rec.median_ns(op, &format!("{setting}/native"));
            match (comp, native) {
                (Some(c), Some(n)) => (fmt_ns(c), fmt_ns(n), format!("{:.2}", c / n)),
                _ => ("-".into(), "-".into(), "-".into()),
            }
        };
        let (fc, fnat, fr) = cell("fs");
        let (mc, mn, mr) = cell("mem");
        println!("  {op:<14} {fc:>11} {fnat:>11} {fr:>7} | {mc:>11} {mn:>11} {mr:>7}");
    }
    println!(
        "  crossing floor (size(): no argument, a number back; median of 9 x 20,000 calls, mem): \
         component {}, native {}",
        fmt_ns(comp_floor),
        fmt_ns(native_floor)
    );
}

criterion_group!(benches, engines);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
