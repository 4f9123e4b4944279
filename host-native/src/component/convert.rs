//! Conversions between the WIT `types` interface (as wasmtime's bindings see it) and the core's
//! types, so that both engines answer with the same Rust values.

use super::bindings::ocicache::cache::storage::StorageError as WitStorageError;
use super::bindings::ocicache::cache::types as wit;
use ocicache_core::{self as core, Digest, Error, StorageError};

/// Converts a WIT value into the core's.
pub(crate) trait FromWit<T>: Sized {
    fn from_wit(value: T) -> Result<Self, Error>;
}

macro_rules! identity {
    ($($t:ty),*) => { $(impl FromWit<$t> for $t { fn from_wit(v: $t) -> Result<$t, Error> { Ok(v) } })* };
}
identity!((), u8, u32, u64, f64, bool, String);

impl FromWit<wit::Digest> for Digest {
    fn from_wit(v: wit::Digest) -> Result<Digest, Error> {
        let (algorithm, raw) = match v {
            wit::Digest::Sha256((a, b, c, d)) => {
                let mut raw = [0u8; 32];
                for (chunk, word) in raw.chunks_exact_mut(8).zip([a, b, c, d]) {
                    chunk.copy_from_slice(&word.to_be_bytes());
                }
                return Ok(Digest::Sha256(raw));
            }
            wit::Digest::Sha384(raw) => (core::Algorithm::Sha384, raw),
            wit::Digest::Sha512(raw) => (core::Algorithm::Sha512, raw),
        };
        // The component only hands out digests it holds; failing here means a broken guest.
        Digest::from_raw(algorithm, &raw).ok_or_else(|| Error::InvalidDigest {
            input: format!("{} digest of {} bytes", algorithm.name(), raw.len()),
            reason: format!(
                "{} needs {} bytes",
                algorithm.name(),
                algorithm.digest_len()
            ),
        })
    }
}

/// A reference's canonical text, as `Display` writes it but built directly: the formatting
/// machinery is a measurable part of a tag lookup.
pub(crate) fn reference_text(r: &core::Reference) -> String {
    let tag = r.tag().unwrap_or_default();
    let mut text = String::with_capacity(r.registry().len() + r.repository().len() + tag.len() + 2);
    text.push_str(r.registry());
    text.push('/');
    text.push_str(r.repository());
    if let Some(tag) = r.tag() {
        text.push(':');
        text.push_str(tag);
    }
    if let Some(digest) = r.digest() {
        text.push('@');
        text.push_str(&digest.to_string());
    }
    text
}

/// The binary WIT digest for the core's: SHA-256 as four big-endian words.
pub(crate) fn digest_to_wit(d: &Digest) -> wit::Digest {
    match d {
        Digest::Sha256(b) => {
            let word = |i: usize| u64::from_be_bytes(b[i * 8..i * 8 + 8].try_into().expect("8"));
            wit::Digest::Sha256((word(0), word(1), word(2), word(3)))
        }
        Digest::Sha384(b) => wit::Digest::Sha384(b.to_vec()),
        Digest::Sha512(b) => wit::Digest::Sha512(b.to_vec()),
    }
}

impl FromWit<wit::MediaType> for core::MediaType {
    fn from_wit(v: wit::MediaType) -> Result<core::MediaType, Error> {
        Ok(match v {
            wit::MediaType::OciManifest => core::MediaType::OciManifest,
            wit::MediaType::OciIndex => core::MediaType::OciIndex,
            wit::MediaType::DockerManifest => core::MediaType::DockerManifest,
            wit::MediaType::DockerManifestList => core::MediaType::DockerManifestList,
        })
    }
}

impl<A, B: FromWit<A>> FromWit<Option<A>> for Option<B> {
    fn from_wit(v: Option<A>) -> Result<Option<B>, Error> {
        v.map(B::from_wit).transpose()
    }
}

impl<A, B: FromWit<A>> FromWit<Vec<A>> for Vec<B> {
    fn from_wit(v: Vec<A>) -> Result<Vec<B>, Error> {
        v.into_iter().map(B::from_wit).collect()
    }
}

impl FromWit<wit::Kind> for core::Kind {
    fn from_wit(v: wit::Kind) -> Result<core::Kind, Error> {
        Ok(match v {
            wit::Kind::Manifest => core::Kind::Manifest,
            wit::Kind::Blob => core::Kind::Blob,
        })
    }
}

impl FromWit<wit::Durability> for core::Durability {
    fn from_wit(v: wit::Durability) -> Result<core::Durability, Error> {
        Ok(match v {
            wit::Durability::Strict => core::Durability::Strict,
            wit::Durability::Relaxed => core::Durability::Relaxed,
        })
    }
}

/// The WIT durability level for the core's.
pub(crate) fn durability_to_wit(d: core::Durability) -> wit::Durability {
    match d {
        core::Durability::Strict => wit::Durability::Strict,
        core::Durability::Relaxed => wit::Durability::Relaxed,
    }
}

/// Implements `FromWit` for a record by naming each field once.
macro_rules! plain {
    ($from:ident => core::$to:ident { $($field:ident),* $(,)? }) => {
        impl FromWit<wit::$from> for core::$to {
            fn from_wit(v: wit::$from) -> Result<core::$to, Error> {
                Ok(core::$to { $($field: FromWit::from_wit(v.$field)?),* })
            }
        }
    };
}

plain!(Key => core::Key { kind, digest });
plain!(TagHistoryEntry => core::TagHistoryEntry { digest, changed_at });
plain!(TagMapping => core::TagMapping {
    reference, digest, created_at, updated_at, validated_at, fresh_until, invalidated,
    access_count, history,
});
plain!(TagUpdate => core::TagUpdate { previous, moved });
plain!(EntryInfo => core::EntryInfo {
    kind, digest, size, created_at, accessed_at, expires_at, expired, access_count, pins,
    referrers, media_type, quarantined,
});
plain!(Stats => core::Stats {
    total_entries, manifests, blobs, tags, expired_entries, pinned_entries, quarantined_entries,
    total_size, max_size, hit_rate, evictions, errors, last_compaction, average_access_count,
});
plain!(MetricsSnapshot => core::MetricsSnapshot {
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
plain!(RecoveryReport => core::RecoveryReport {
    snapshot_generation, snapshot_damaged, journal_records, torn_tail, journal_damaged_regions,
    journal_damaged_bytes, stale_journals_removed, temps_removed, orphans_adopted,
    orphans_removed, missing_dropped, evicted, compacted, clean_shutdown, size_mismatches,
    foreign_files,
});
plain!(DebugInfo => core::DebugInfo {
    config, policy, stats, metrics, journal_generation, journal_records, recovery,
});
plain!(IntegrityIssue => core::IntegrityIssue { what, detail });
plain!(IntegrityReport => core::IntegrityReport {
    checked, valid, corrupted, missing, quarantined, unindexed, healthy,
});
plain!(RepairReport => core::RepairReport {
    before, removed_corrupted, removed_missing, adopted, removed_unindexed, temps_removed,
    left_alone,
});
plain!(CleanupReport => core::CleanupReport { expired_removed, evicted, bytes_freed, compacted });
plain!(Config => core::Config {
    max_bytes, high_watermark_percent, low_watermark_percent, default_ttl_ms, manifest_ttl_ms,
    blob_ttl_ms, tag_ttl_ms, sliding_ttl, max_tag_history, max_manifest_bytes, stale_if_error,
    verify_reads, eviction, compaction_min_records, durability,
});

impl FromWit<wit::Resolution> for core::Resolution {
    fn from_wit(v: wit::Resolution) -> Result<core::Resolution, Error> {
        Ok(match v {
            wit::Resolution::Fresh(d) => core::Resolution::Fresh(Digest::from_wit(d)?),
            wit::Resolution::Stale(d) => core::Resolution::Stale(Digest::from_wit(d)?),
            wit::Resolution::Unknown => core::Resolution::Unknown,
        })
    }
}

/// The policy at `index`; children come after their parent, which rules out cycles.
fn policy_from_wit(nodes: &[wit::PolicyNode], index: usize) -> Result<core::PolicyConfig, Error> {
    let bad = || Error::InvalidConfig(format!("eviction policy node {index} is invalid"));
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
                .collect::<Result<_, Error>>()?,
        ),
    })
}

impl FromWit<wit::EvictionPolicy> for core::PolicyConfig {
    fn from_wit(v: wit::EvictionPolicy) -> Result<core::PolicyConfig, Error> {
        policy_from_wit(&v.nodes, 0)
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

/// The WIT config for the core's.
pub(crate) fn config_to_wit(c: &core::Config) -> wit::Config {
    wit::Config {
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
        eviction: {
            let mut nodes = Vec::new();
            push_policy(&c.eviction, &mut nodes);
            wit::EvictionPolicy { nodes }
        },
        compaction_min_records: c.compaction_min_records,
        durability: durability_to_wit(c.durability),
    }
}

/// The WIT key for the core's.
pub(crate) fn key_to_wit(k: &core::Key) -> wit::Key {
    wit::Key {
        kind: match k.kind {
            core::Kind::Manifest => wit::Kind::Manifest,
            core::Kind::Blob => wit::Kind::Blob,
        },
        digest: digest_to_wit(&k.digest),
    }
}

fn storage_error(e: WitStorageError) -> StorageError {
    match e {
        WitStorageError::NotFound(p) => StorageError::NotFound(p),
        WitStorageError::NoSpace => StorageError::NoSpace,
        WitStorageError::InvalidPath(p) => StorageError::InvalidPath(p),
        WitStorageError::Io(m) => StorageError::Io(m),
    }
}

/// The core's error for the component's.
pub(crate) fn error_from_wit(e: wit::Error) -> Error {
    match e {
        wit::Error::NotFound(s) => Error::NotFound(s),
        wit::Error::Expired(s) => Error::Expired(s),
        wit::Error::Corrupted(c) => Error::Corrupted {
            what: c.what,
            detail: c.detail,
        },
        wit::Error::Full(f) => Error::Full {
            needed: f.needed,
            available: f.available,
            capacity: f.capacity,
        },
        wit::Error::Invalidated(s) => Error::Invalidated(s),
        wit::Error::InvalidDigest(i) => Error::InvalidDigest {
            input: i.input,
            reason: i.reason,
        },
        wit::Error::InvalidReference(i) => Error::InvalidReference {
            input: i.input,
            reason: i.reason,
        },
        wit::Error::DigestMismatch(m) => Error::DigestMismatch {
            expected: m.expected,
            actual: m.actual,
        },
        wit::Error::SizeMismatch(s) => Error::SizeMismatch {
            expected: s.expected,
            actual: s.actual,
        },
        wit::Error::InvalidManifest(s) => Error::InvalidManifest(s),
        wit::Error::TooLarge(s) => Error::TooLarge {
            size: s.actual,
            limit: s.expected,
        },
        wit::Error::InvalidArgument(s) => Error::InvalidArgument(s),
        wit::Error::InvalidConfig(s) => Error::InvalidConfig(s),
        wit::Error::Storage(e) => Error::Storage(storage_error(e)),
        wit::Error::Network(n) => Error::Network {
            registry: n.registry,
            status: n.status,
            message: n.message,
            registry_code: n.registry_code,
        },
        wit::Error::Unauthorized(r) => Error::Unauthorized {
            registry: r.registry,
            message: r.message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_text_is_the_display_form() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        for text in [
            "nginx",
            "localhost:5000/team/app/api:v1.2",
            &format!("nginx@{d}"),
            &format!("registry.example:5000/a/b:t@{d}"),
        ] {
            let r = core::Reference::parse(text).unwrap();
            assert_eq!(reference_text(&r), r.to_string(), "{text}");
        }
    }

    #[test]
    fn digests_cross_in_binary_and_a_wrong_length_is_an_invalid_digest() {
        for (algorithm, len) in [
            (core::Algorithm::Sha256, 32),
            (core::Algorithm::Sha384, 48),
            (core::Algorithm::Sha512, 64),
        ] {
            let raw: Vec<u8> = (0..len as u8).collect();
            let d = Digest::from_raw(algorithm, &raw).unwrap();
            let wit = digest_to_wit(&d);
            if let wit::Digest::Sha256((a, ..)) = &wit {
                // Big-endian words: the first byte is the first word's most significant.
                assert_eq!(*a, 0x0001_0203_0405_0607);
            }
            assert_eq!(Digest::from_wit(wit).unwrap(), d);
        }
        let err = Digest::from_wit(wit::Digest::Sha384(vec![0; 32])).unwrap_err();
        assert_eq!(err.kind(), core::ErrorKind::InvalidDigest);
    }
}
