//! Conversions between the core's types and the WIT `types` interface.

use crate::bindings::ocicache::cache::storage::StorageError as WitStorageError;
use crate::bindings::ocicache::cache::types as wit;
use ocicache_core as core;

/// Converts a core value into its WIT counterpart.
pub trait ToWit<T> {
    /// The WIT value.
    fn to_wit(self) -> T;
}

macro_rules! identity {
    ($($t:ty),*) => { $(impl ToWit<$t> for $t { fn to_wit(self) -> $t { self } })* };
}
identity!((), u8, u32, u64, f64, bool, String);

impl ToWit<wit::Digest> for core::Digest {
    fn to_wit(self) -> wit::Digest {
        digest_to_wit(&self)
    }
}

/// The binary WIT digest for the core's: SHA-256 as four big-endian words.
pub fn digest_to_wit(d: &core::Digest) -> wit::Digest {
    match d {
        core::Digest::Sha256(b) => {
            let word = |i: usize| u64::from_be_bytes(b[i * 8..i * 8 + 8].try_into().expect("8"));
            wit::Digest::Sha256((word(0), word(1), word(2), word(3)))
        }
        core::Digest::Sha384(b) => wit::Digest::Sha384(b.to_vec()),
        core::Digest::Sha512(b) => wit::Digest::Sha512(b.to_vec()),
    }
}

/// The core's digest for a binary WIT one; a list of the wrong length is `invalid-digest`.
pub fn digest_from_wit(d: wit::Digest) -> core::Result<core::Digest> {
    let (algorithm, raw) = match d {
        wit::Digest::Sha256((a, b, c, d)) => {
            let mut raw = [0u8; 32];
            for (chunk, word) in raw.chunks_exact_mut(8).zip([a, b, c, d]) {
                chunk.copy_from_slice(&word.to_be_bytes());
            }
            return Ok(core::Digest::Sha256(raw));
        }
        wit::Digest::Sha384(raw) => (core::Algorithm::Sha384, raw),
        wit::Digest::Sha512(raw) => (core::Algorithm::Sha512, raw),
    };
    core::Digest::from_raw(algorithm, &raw).ok_or_else(|| core::Error::InvalidDigest {
        input: format!("{} digest of {} bytes", algorithm.name(), raw.len()),
        reason: format!(
            "{} needs {} bytes",
            algorithm.name(),
            algorithm.digest_len()
        ),
    })
}

impl ToWit<wit::MediaType> for core::MediaType {
    fn to_wit(self) -> wit::MediaType {
        match self {
            core::MediaType::OciManifest => wit::MediaType::OciManifest,
            core::MediaType::OciIndex => wit::MediaType::OciIndex,
            core::MediaType::DockerManifest => wit::MediaType::DockerManifest,
            core::MediaType::DockerManifestList => wit::MediaType::DockerManifestList,
        }
    }
}

impl<A: ToWit<B>, B> ToWit<Option<B>> for Option<A> {
    fn to_wit(self) -> Option<B> {
        self.map(ToWit::to_wit)
    }
}

impl<A: ToWit<B>, B> ToWit<Vec<B>> for Vec<A> {
    fn to_wit(self) -> Vec<B> {
        self.into_iter().map(ToWit::to_wit).collect()
    }
}

/// Implements `ToWit` for a record whose fields have the same names on both sides.
macro_rules! record {
    ($from:ty => $to:ident { $($field:ident),* $(,)? }) => {
        impl ToWit<wit::$to> for $from {
            fn to_wit(self) -> wit::$to {
                wit::$to { $($field: self.$field.to_wit()),* }
            }
        }
    };
}

impl ToWit<wit::Kind> for core::Kind {
    fn to_wit(self) -> wit::Kind {
        match self {
            core::Kind::Manifest => wit::Kind::Manifest,
            core::Kind::Blob => wit::Kind::Blob,
        }
    }
}

impl ToWit<wit::Durability> for core::Durability {
    fn to_wit(self) -> wit::Durability {
        match self {
            core::Durability::Strict => wit::Durability::Strict,
            core::Durability::Relaxed => wit::Durability::Relaxed,
        }
    }
}

/// The core's durability level from the WIT enum.
pub fn durability_from_wit(d: wit::Durability) -> core::Durability {
    match d {
        wit::Durability::Strict => core::Durability::Strict,
        wit::Durability::Relaxed => core::Durability::Relaxed,
    }
}

record!(core::Key => Key { kind, digest });
record!(core::TagHistoryEntry => TagHistoryEntry { digest, changed_at });
record!(core::TagMapping => TagMapping {
    reference, digest, created_at, updated_at, validated_at, fresh_until, invalidated,
    access_count, history,
});
record!(core::TagUpdate => TagUpdate { previous, moved });
record!(core::EntryInfo => EntryInfo {
    kind, digest, size, created_at, accessed_at, expires_at, expired, access_count, pins,
    referrers, media_type, quarantined,
});
record!(core::Stats => Stats {
    total_entries, manifests, blobs, tags, expired_entries, pinned_entries, quarantined_entries,
    total_size, max_size, hit_rate, evictions, errors, last_compaction, average_access_count,
});
record!(core::MetricsSnapshot => MetricsSnapshot {
    hits, misses, hit_rate, evictions, evictions_capacity, evictions_expired, bytes_evicted,
    errors, corruptions, bytes_stored, entries_stored, bytes_retrieved, network_requests,
    bytes_downloaded, bytes_served, bandwidth_saved, manifest_gets, manifest_puts, blob_gets,
    blob_puts, tag_resolutions, tag_puts, deletes, avg_get_latency_ns, avg_put_latency_ns,
    avg_delete_latency_ns, get_latency_p50_ns, get_latency_p95_ns, get_latency_p99_ns,
    put_latency_p50_ns, put_latency_p95_ns, put_latency_p99_ns, delete_latency_p50_ns,
    delete_latency_p95_ns, delete_latency_p99_ns, get_latency_samples, put_latency_samples,
    delete_latency_samples, uptime_ms, time_since_last_hit_ms, time_since_last_miss_ms,
    time_since_last_eviction_ms, time_since_last_error_ms, peak_bytes_stored,
    peak_entries_stored, peak_hit_rate,
});
record!(core::RecoveryReport => RecoveryReport {
    snapshot_generation, snapshot_damaged, journal_records, torn_tail, journal_damaged_regions,
    journal_damaged_bytes, stale_journals_removed, temps_removed, orphans_adopted,
    orphans_removed, missing_dropped, evicted, compacted, clean_shutdown, size_mismatches,
    foreign_files,
});
record!(core::DebugInfo => DebugInfo {
    config, policy, stats, metrics, journal_generation, journal_records, recovery,
});
record!(core::IntegrityIssue => IntegrityIssue { what, detail });
record!(core::IntegrityReport => IntegrityReport {
    checked, valid, corrupted, missing, quarantined, unindexed, healthy,
});
record!(core::RepairReport => RepairReport {
    before, removed_corrupted, removed_missing, adopted, removed_unindexed, temps_removed,
    left_alone,
});
record!(core::CleanupReport => CleanupReport { expired_removed, evicted, bytes_freed, compacted });

impl ToWit<wit::Manifest> for core::Manifest {
    fn to_wit(self) -> wit::Manifest {
        wit::Manifest {
            media_type: self.media_type.to_wit(),
            body: self.bytes,
        }
    }
}

impl ToWit<wit::Manifest> for (core::MediaType, Vec<u8>) {
    fn to_wit(self) -> wit::Manifest {
        wit::Manifest {
            media_type: self.0.to_wit(),
            body: self.1,
        }
    }
}

impl ToWit<wit::Resolution> for core::Resolution {
    fn to_wit(self) -> wit::Resolution {
        match self {
            core::Resolution::Fresh(d) => wit::Resolution::Fresh(d.to_wit()),
            core::Resolution::Stale(d) => wit::Resolution::Stale(d.to_wit()),
            core::Resolution::Unknown => wit::Resolution::Unknown,
        }
    }
}

/// Appends `p` and its descendants to `nodes` (parents before children); returns its index.
fn push_policy(p: &core::PolicyConfig, nodes: &mut Vec<wit::PolicyNode>) -> u32 {
    let index = nodes.len();
    nodes.push(wit::PolicyNode::Lru);
    let node = match p {
        core::PolicyConfig::Lru => wit::PolicyNode::Lru,
        core::PolicyConfig::Size => wit::PolicyNode::Size,
        core::PolicyConfig::Ttl => wit::PolicyNode::Ttl,
        core::PolicyConfig::Expired => wit::PolicyNode::Expired,
        core::PolicyConfig::Composite(tiers) => wit::PolicyNode::Composite(
            tiers
                .iter()
                .map(|(priority, child)| wit::PolicyTier {
                    priority: *priority,
                    node: push_policy(child, nodes),
                })
                .collect(),
        ),
    };
    nodes[index] = node;
    index as u32
}

impl ToWit<wit::EvictionPolicy> for core::PolicyConfig {
    fn to_wit(self) -> wit::EvictionPolicy {
        let mut nodes = Vec::new();
        push_policy(&self, &mut nodes);
        wit::EvictionPolicy { nodes }
    }
}

record!(core::Config => Config {
    max_bytes, high_watermark_percent, low_watermark_percent, default_ttl_ms, manifest_ttl_ms,
    blob_ttl_ms, tag_ttl_ms, sliding_ttl, max_tag_history, max_manifest_bytes, stale_if_error,
    verify_reads, eviction, compaction_min_records, durability,
});

/// The policy at `index`; children must come after their parent, which rules out cycles.
fn policy_from_wit(nodes: &[wit::PolicyNode], index: usize) -> core::Result<core::PolicyConfig> {
    let bad = || core::Error::InvalidConfig(format!("eviction policy node {index} is invalid"));
    Ok(match nodes.get(index).ok_or_else(bad)? {
        wit::PolicyNode::Lru => core::PolicyConfig::Lru,
        wit::PolicyNode::Size => core::PolicyConfig::Size,
        wit::PolicyNode::Ttl => core::PolicyConfig::Ttl,
        wit::PolicyNode::Expired => core::PolicyConfig::Expired,
        wit::PolicyNode::Composite(tiers) => core::PolicyConfig::Composite(
            tiers
                .iter()
                .map(|t| {
                    let child = t.node as usize;
                    if child <= index {
                        return Err(bad());
                    }
                    Ok((t.priority, policy_from_wit(nodes, child)?))
                })
                .collect::<core::Result<_>>()?,
        ),
    })
}

/// The core's configuration from the WIT record (validated when the cache opens).
pub fn config_from_wit(c: wit::Config) -> core::Result<core::Config> {
    Ok(core::Config {
        max_bytes: c.max_bytes,
        high_watermark_percent: c.high_watermark_percent,
        low_watermark_percent: c.low_watermark_percent,
        default_ttl_ms: c.default_ttl_ms,
        manifest_ttl_ms: c.manifest_ttl_ms,
        blob_ttl_ms: c.blob_ttl_ms,
        tag_ttl_ms: c.tag_ttl_ms,
        sliding_ttl: c.sliding_ttl,
        max_tag_history: c.max_tag_history,
        max_manifest_bytes: c.max_manifest_bytes,
        stale_if_error: c.stale_if_error,
        verify_reads: c.verify_reads,
        eviction: policy_from_wit(&c.eviction.nodes, 0)?,
        compaction_min_records: c.compaction_min_records,
        durability: durability_from_wit(c.durability),
    })
}

fn storage_error_to_wit(e: core::StorageError) -> WitStorageError {
    match e {
        core::StorageError::NotFound(p) => WitStorageError::NotFound(p),
        core::StorageError::NoSpace => WitStorageError::NoSpace,
        core::StorageError::InvalidPath(p) => WitStorageError::InvalidPath(p),
        core::StorageError::Io(m) => WitStorageError::Io(m),
    }
}

impl ToWit<wit::Error> for core::Error {
    fn to_wit(self) -> wit::Error {
        use core::Error as E;
        match self {
            E::NotFound(s) => wit::Error::NotFound(s),
            E::Expired(s) => wit::Error::Expired(s),
            E::Corrupted { what, detail } => {
                wit::Error::Corrupted(wit::Corruption { what, detail })
            }
            E::Full {
                needed,
                available,
                capacity,
            } => wit::Error::Full(wit::FullDetail {
                needed,
                available,
                capacity,
            }),
            E::Invalidated(s) => wit::Error::Invalidated(s),
            E::InvalidDigest { input, reason } => {
                wit::Error::InvalidDigest(wit::InvalidInput { input, reason })
            }
            E::InvalidReference { input, reason } => {
                wit::Error::InvalidReference(wit::InvalidInput { input, reason })
            }
            E::DigestMismatch { expected, actual } => {
                wit::Error::DigestMismatch(wit::Mismatch { expected, actual })
            }
            E::SizeMismatch { expected, actual } => {
                wit::Error::SizeMismatch(wit::SizeDetail { expected, actual })
            }
            E::InvalidManifest(s) => wit::Error::InvalidManifest(s),
            E::TooLarge { size, limit } => wit::Error::TooLarge(wit::SizeDetail {
                expected: limit,
                actual: size,
            }),
            E::InvalidArgument(s) => wit::Error::InvalidArgument(s),
            E::InvalidConfig(s) => wit::Error::InvalidConfig(s),
            E::Storage(e) => wit::Error::Storage(storage_error_to_wit(e)),
            E::Network {
                registry,
                status,
                message,
                registry_code,
            } => wit::Error::Network(wit::NetworkFailure {
                registry,
                status,
                message,
                registry_code,
            }),
            E::Unauthorized { registry, message } => {
                wit::Error::Unauthorized(wit::RegistryRefusal { registry, message })
            }
        }
    }
}
