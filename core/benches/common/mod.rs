//! Helpers shared by the benchmarks (included with `#[path]`, not a bench target itself).

#![allow(dead_code)] // each bench uses a different subset

use ocicache_core::storage::{Storage, StorageError};
use ocicache_core::{Config, TempId};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

/// Size of every small blob in the index benchmarks.
pub const BLOB_BYTES: u64 = 32;

/// Index sizes the issue asks for, with their labels.
pub const SIZES: [(usize, &str); 3] = [(1_000, "1k"), (100_000, "100k"), (1_000_000, "1M")];

/// Unique 32-byte content number `i` (`salt` separates families, e.g. hits from misses).
pub fn blob(i: u64, salt: u64) -> [u8; BLOB_BYTES as usize] {
    let mut b = [0x5a; BLOB_BYTES as usize];
    b[..8].copy_from_slice(&i.to_le_bytes());
    b[8..16].copy_from_slice(&salt.to_le_bytes());
    b
}

/// A tiny deterministic PRNG (xorshift64*) for access patterns.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as usize % n
    }
}

/// A configuration with compaction deferred, so that latency benchmarks time the operation
/// itself; compaction is amortized O(1) per record and is timed by the `reopen` benchmark.
pub fn latency_config(entries: usize) -> Config {
    Config {
        // Exactly full at `entries` blobs, and eviction makes room for exactly one more blob:
        // every put into a full cache evicts exactly one entry.
        max_bytes: entries as u64 * BLOB_BYTES,
        high_watermark_percent: 100,
        low_watermark_percent: 100,
        // Longer than the build takes (1 ms per put), so nothing expires before the get benches.
        default_ttl_ms: 2 * entries as u64,
        compaction_min_records: u64::MAX,
        ..Config::default()
    }
}

/// Records what criterion hands an `iter_custom` routine, so that each bench binary can print
/// its own summary lines (criterion's sampling calls the routine for warm-up first, then once
/// per sample: the last `sample_size` calls are the measurement).
#[derive(Default)]
pub struct Recorder {
    runs: RefCell<BTreeMap<String, Vec<(u64, Duration)>>>,
}

impl Recorder {
    pub fn record(&self, name: &str, iters: u64, elapsed: Duration) {
        self.runs
            .borrow_mut()
            .entry(name.to_owned())
            .or_default()
            .push((iters, elapsed));
    }

    /// Median time per iteration (ns) over the last `samples` calls, if the bench ran.
    pub fn median_ns(&self, name: &str, samples: usize) -> Option<f64> {
        let runs = self.runs.borrow();
        let calls = runs.get(name)?;
        let mut per: Vec<f64> = calls[calls.len().saturating_sub(samples)..]
            .iter()
            .filter(|(iters, _)| *iters > 0)
            .map(|(iters, d)| d.as_nanos() as f64 / *iters as f64)
            .collect();
        if per.is_empty() {
            return None;
        }
        per.sort_by(f64::total_cmp);
        Some(per[per.len() / 2])
    }
}

/// Formats nanoseconds readably.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// A storage that counts bytes but keeps none of them. Used ONLY where the point is the core's
/// own memory (the memory benchmark), never for throughput figures.
#[derive(Default)]
pub struct DiscardingStorage {
    next_temp: u64,
    open_temps: usize,
    /// Bytes written to temps.
    pub temp_bytes: u64,
    /// Bytes appended (journal).
    pub appended_bytes: u64,
}

impl Storage for DiscardingStorage {
    fn create_temp(&mut self, _size_hint: Option<u64>) -> Result<TempId, StorageError> {
        self.next_temp += 1;
        self.open_temps += 1;
        Ok(TempId(self.next_temp))
    }
    fn write_temp(&mut self, _temp: TempId, data: &[u8]) -> Result<(), StorageError> {
        self.temp_bytes += data.len() as u64;
        Ok(())
    }
    fn commit_temp(&mut self, _temp: TempId, _path: &str) -> Result<(), StorageError> {
        self.open_temps -= 1;
        Ok(())
    }
    fn abort_temp(&mut self, _temp: TempId) -> Result<(), StorageError> {
        self.open_temps -= 1;
        Ok(())
    }
    fn append(&mut self, _path: &str, data: &[u8]) -> Result<(), StorageError> {
        self.appended_bytes += data.len() as u64;
        Ok(())
    }
    fn read_at(&mut self, path: &str, _: u64, _: &mut [u8]) -> Result<usize, StorageError> {
        Err(StorageError::NotFound(path.to_owned()))
    }
    fn size(&mut self, _path: &str) -> Result<Option<u64>, StorageError> {
        Ok(None)
    }
    fn list(&mut self, _dir: &str) -> Result<Vec<String>, StorageError> {
        Ok(Vec::new())
    }
    fn remove(&mut self, _path: &str) -> Result<(), StorageError> {
        Ok(())
    }
    fn clear_temps(&mut self) -> Result<u64, StorageError> {
        Ok(0)
    }
}
