//! Metrics computed from real bytes: hits, misses, bandwidth saved, per-kind operations,
//! evictions by reason, errors, latency histograms, peaks. Rendered as JSON (serde) or
//! Prometheus text ([`MetricsSnapshot::to_prometheus`]).

mod histogram;
mod prometheus;

pub use histogram::Histogram;

use crate::clock::Millis;
use crate::key::Kind;
use serde::{Deserialize, Serialize};

/// Why an entry left the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictionReason {
    /// Made room under the byte cap.
    Capacity,
    /// Its TTL had passed (cleanup).
    Expired,
}

/// Which latency an operation counts towards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    /// Reads.
    Get,
    /// Writes.
    Put,
    /// Deletes.
    Delete,
}

/// Live counters of a cache.
#[derive(Clone, Default)]
pub struct Metrics {
    opened_at: Millis,
    hits: u64,
    misses: u64,
    errors: u64,
    evictions_capacity: u64,
    evictions_expired: u64,
    bytes_evicted: u64,
    bytes_retrieved: u64,
    bytes_served: u64,
    bytes_downloaded: u64,
    network_requests: u64,
    manifest_gets: u64,
    manifest_puts: u64,
    blob_gets: u64,
    blob_puts: u64,
    tag_resolutions: u64,
    tag_puts: u64,
    deletes: u64,
    corruptions: u64,
    last_hit: Option<Millis>,
    last_miss: Option<Millis>,
    last_eviction: Option<Millis>,
    last_error: Option<Millis>,
    peak_bytes: u64,
    peak_entries: u64,
    peak_hit_rate: f64,
    get_latency: Histogram,
    put_latency: Histogram,
    delete_latency: Histogram,
}

impl Metrics {
    /// Fresh counters starting at `now`.
    pub fn new(now: Millis) -> Metrics {
        Metrics {
            opened_at: now,
            ..Metrics::default()
        }
    }

    pub(crate) fn hit(&mut self, now: Millis) {
        self.hits += 1;
        self.last_hit = Some(now);
        self.update_peak_hit_rate();
    }

    pub(crate) fn miss(&mut self, now: Millis) {
        self.misses += 1;
        self.last_miss = Some(now);
        self.update_peak_hit_rate();
    }

    /// A read counted as a hit turned out corrupted: it was a miss after all.
    pub(crate) fn hit_was_miss(&mut self, now: Millis) {
        self.hits = self.hits.saturating_sub(1);
        self.misses += 1;
        self.last_miss = Some(now);
    }

    fn update_peak_hit_rate(&mut self) {
        self.peak_hit_rate = self.peak_hit_rate.max(self.hit_rate());
    }

    fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }

    pub(crate) fn get(&mut self, kind: Kind) {
        match kind {
            Kind::Manifest => self.manifest_gets += 1,
            Kind::Blob => self.blob_gets += 1,
        }
    }

    /// Content the host fetched from the network and stored.
    pub(crate) fn put(&mut self, kind: Kind, bytes: u64) {
        match kind {
            Kind::Manifest => self.manifest_puts += 1,
            Kind::Blob => self.blob_puts += 1,
        }
        self.network_requests += 1;
        self.bytes_downloaded += bytes;
    }

    pub(crate) fn tag_put(&mut self) {
        self.tag_puts += 1;
        self.network_requests += 1;
    }

    pub(crate) fn tag_resolution(&mut self) {
        self.tag_resolutions += 1;
    }

    /// Bytes read from storage (served or verified).
    pub(crate) fn retrieved(&mut self, bytes: u64) {
        self.bytes_retrieved += bytes;
    }

    /// Bytes handed to a caller from the cache: each would otherwise have been downloaded.
    pub(crate) fn served(&mut self, bytes: u64) {
        self.bytes_served += bytes;
    }

    pub(crate) fn deleted(&mut self) {
        self.deletes += 1;
    }

    pub(crate) fn evicted(&mut self, now: Millis, reason: EvictionReason, bytes: u64) {
        match reason {
            EvictionReason::Capacity => self.evictions_capacity += 1,
            EvictionReason::Expired => self.evictions_expired += 1,
        }
        self.bytes_evicted += bytes;
        self.last_eviction = Some(now);
    }

    pub(crate) fn corrupted(&mut self) {
        self.corruptions += 1;
    }

    pub(crate) fn error(&mut self, now: Millis) {
        self.errors += 1;
        self.last_error = Some(now);
    }

    pub(crate) fn latency(&mut self, class: OpClass, nanos: u64) {
        match class {
            OpClass::Get => self.get_latency.record(nanos),
            OpClass::Put => self.put_latency.record(nanos),
            OpClass::Delete => self.delete_latency.record(nanos),
        }
    }

    pub(crate) fn usage(&mut self, bytes: u64, entries: u64) {
        self.peak_bytes = self.peak_bytes.max(bytes);
        self.peak_entries = self.peak_entries.max(entries);
    }

    /// Total errors so far.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Total evictions so far.
    pub fn evictions(&self) -> u64 {
        self.evictions_capacity + self.evictions_expired
    }

    /// A point-in-time view; `bytes`/`entries` are the index's current usage.
    pub fn snapshot(&self, now: Millis, bytes: u64, entries: u64) -> MetricsSnapshot {
        let since = |t: Option<Millis>| t.map(|t| now.saturating_sub(t));
        let (g, p, d) = (&self.get_latency, &self.put_latency, &self.delete_latency);
        MetricsSnapshot {
            hits: self.hits,
            misses: self.misses,
            hit_rate: self.hit_rate(),
            evictions: self.evictions(),
            evictions_capacity: self.evictions_capacity,
            evictions_expired: self.evictions_expired,
            bytes_evicted: self.bytes_evicted,
            errors: self.errors,
            corruptions: self.corruptions,
            bytes_stored: bytes,
            entries_stored: entries,
            bytes_retrieved: self.bytes_retrieved,
            network_requests: self.network_requests,
            bytes_downloaded: self.bytes_downloaded,
            bytes_served: self.bytes_served,
            bandwidth_saved: self.bytes_served,
            manifest_gets: self.manifest_gets,
            manifest_puts: self.manifest_puts,
            blob_gets: self.blob_gets,
            blob_puts: self.blob_puts,
            tag_resolutions: self.tag_resolutions,
            tag_puts: self.tag_puts,
            deletes: self.deletes,
            avg_get_latency_ns: g.mean(),
            avg_put_latency_ns: p.mean(),
            avg_delete_latency_ns: d.mean(),
            get_latency_p50_ns: g.quantile(0.5),
            get_latency_p95_ns: g.quantile(0.95),
            get_latency_p99_ns: g.quantile(0.99),
            put_latency_p50_ns: p.quantile(0.5),
            put_latency_p95_ns: p.quantile(0.95),
            put_latency_p99_ns: p.quantile(0.99),
            delete_latency_p50_ns: d.quantile(0.5),
            delete_latency_p95_ns: d.quantile(0.95),
            delete_latency_p99_ns: d.quantile(0.99),
            get_latency_samples: g.samples(),
            put_latency_samples: p.samples(),
            delete_latency_samples: d.samples(),
            uptime_ms: now.saturating_sub(self.opened_at),
            time_since_last_hit_ms: since(self.last_hit),
            time_since_last_miss_ms: since(self.last_miss),
            time_since_last_eviction_ms: since(self.last_eviction),
            time_since_last_error_ms: since(self.last_error),
            peak_bytes_stored: self.peak_bytes.max(bytes),
            peak_entries_stored: self.peak_entries.max(entries),
            peak_hit_rate: self.peak_hit_rate,
        }
    }
}

/// Every metric at one moment. Field names follow the seed's `MetricsSnapshot` (JSON names
/// unchanged), with evictions by reason, percentiles and a few counters added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// Manifest/blob reads answered from the cache, plus fresh tag resolutions.
    pub hits: u64,
    /// Reads the cache could not answer (absent, expired, corrupted), plus stale/unknown tags.
    pub misses: u64,
    /// hits / (hits + misses).
    pub hit_rate: f64,
    /// Entries evicted, all reasons.
    pub evictions: u64,
    /// Evicted to stay under the byte cap.
    pub evictions_capacity: u64,
    /// Removed because their TTL passed.
    pub evictions_expired: u64,
    /// Bytes freed by evictions.
    pub bytes_evicted: u64,
    /// Failed operations.
    pub errors: u64,
    /// Entries found corrupted and quarantined.
    pub corruptions: u64,
    /// Bytes of all entries now.
    pub bytes_stored: u64,
    /// Entries now.
    pub entries_stored: u64,
    /// Bytes read from storage (served or verified).
    pub bytes_retrieved: u64,
    /// Fetches the host reported (content puts and tag puts).
    pub network_requests: u64,
    /// Bytes of content put (fetched by the host).
    pub bytes_downloaded: u64,
    /// Bytes handed out from the cache.
    pub bytes_served: u64,
    /// Bytes that did not have to be downloaded because the cache served them.
    pub bandwidth_saved: u64,
    /// Manifest reads.
    pub manifest_gets: u64,
    /// Manifest writes.
    pub manifest_puts: u64,
    /// Blob reads.
    pub blob_gets: u64,
    /// Blob writes.
    pub blob_puts: u64,
    /// Tag resolutions.
    pub tag_resolutions: u64,
    /// Tag puts (reports from the host).
    pub tag_puts: u64,
    /// Explicit deletes.
    pub deletes: u64,
    /// Mean read latency.
    #[serde(rename = "avg_get_latency_ns")]
    pub avg_get_latency_ns: u64,
    /// Mean write latency.
    pub avg_put_latency_ns: u64,
    /// Mean delete latency.
    pub avg_delete_latency_ns: u64,
    /// Read latency, median.
    pub get_latency_p50_ns: u64,
    /// Read latency, 95th percentile.
    pub get_latency_p95_ns: u64,
    /// Read latency, 99th percentile.
    pub get_latency_p99_ns: u64,
    /// Write latency, median.
    pub put_latency_p50_ns: u64,
    /// Write latency, 95th percentile.
    pub put_latency_p95_ns: u64,
    /// Write latency, 99th percentile.
    pub put_latency_p99_ns: u64,
    /// Delete latency, median.
    pub delete_latency_p50_ns: u64,
    /// Delete latency, 95th percentile.
    pub delete_latency_p95_ns: u64,
    /// Delete latency, 99th percentile.
    pub delete_latency_p99_ns: u64,
    /// Read samples.
    pub get_latency_samples: u64,
    /// Write samples.
    pub put_latency_samples: u64,
    /// Delete samples.
    pub delete_latency_samples: u64,
    /// Time since the cache was opened.
    pub uptime_ms: u64,
    /// Time since the last hit, if any.
    pub time_since_last_hit_ms: Option<u64>,
    /// Time since the last miss, if any.
    pub time_since_last_miss_ms: Option<u64>,
    /// Time since the last eviction, if any.
    pub time_since_last_eviction_ms: Option<u64>,
    /// Time since the last error, if any.
    pub time_since_last_error_ms: Option<u64>,
    /// Most bytes stored at once since open.
    pub peak_bytes_stored: u64,
    /// Most entries stored at once since open.
    pub peak_entries_stored: u64,
    /// Highest hit rate seen since open.
    pub peak_hit_rate: f64,
}
