//! Cache configuration, validated at open.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// One hour in milliseconds.
pub const HOUR_MS: u64 = 3_600_000;

/// How the cache chooses what to evict. A custom [`crate::EvictionPolicy`] can be given to
/// [`crate::CacheBuilder::policy`] instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyConfig {
    /// Least recently used first.
    Lru,
    /// Expired entries first, then the largest.
    Size,
    /// Soonest to expire first.
    Ttl,
    /// Only entries whose TTL has passed, soonest-expired first (useful first in a composite).
    Expired,
    /// Several policies with priorities: the lowest priority number that nominates a victim wins.
    Composite(Vec<(u32, PolicyConfig)>),
}

/// How hard the host's storage works to keep what the cache stores across a power loss.
///
/// Either way a crash of the process loses nothing that returned `Ok`, reads verify (a
/// `relaxed` cache requires [`Config::verify_reads`]) and opening reconciles the index with the
/// stored files, so no level ever serves wrong bytes. A storage learns the level at open
/// ([`crate::Storage::set_durability`]); [`crate::Cache::durability`] says which one it honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Every put, removal and journal record is on stable storage when it returns (native:
    /// fsync of the file, its directory and the journal). The default.
    #[default]
    Strict,
    /// Nothing is synced but the index's compactions: a power loss may lose recent entries (or
    /// leave their files torn, which reads then find corrupted and quarantine), never yield
    /// wrong bytes, never keep the cache from opening. For throwaway disks and browser tabs.
    Relaxed,
}

/// Settings of a cache. Every field has a documented default; JSON may give any subset.
///
/// ```
/// let cfg: ocicache_core::Config = serde_json::from_str(r#"{"max_bytes": 1048576}"#).unwrap();
/// assert_eq!(cfg.max_tag_history, 10);
/// cfg.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Byte cap over all manifests and blobs (default 1 GiB), plus the sizes announced by blob
    /// writers still streaming. Never exceeded once a put, cleanup or repair returns. Opening
    /// never evicts: usage can be over a lowered cap, or over the cap after an open adopted
    /// files, until the next put, cleanup or repair.
    pub max_bytes: u64,
    /// Eviction starts when a put would take usage above this percentage of the cap (default 95).
    pub high_watermark_percent: u8,
    /// Eviction stops once usage (including the entry being put) is at or below this percentage
    /// (default 85).
    pub low_watermark_percent: u8,
    /// TTL of manifests and blobs unless overridden, in ms; 0 means never expire (default 24 h).
    pub default_ttl_ms: u64,
    /// TTL of manifests, overriding the default.
    pub manifest_ttl_ms: Option<u64>,
    /// TTL of blobs, overriding the default.
    pub blob_ttl_ms: Option<u64>,
    /// Freshness window of tag mappings in ms; 0 means always fresh (default 5 min). A stale
    /// mapping is kept and answers `Stale` so the host can revalidate it.
    pub tag_ttl_ms: u64,
    /// Whether a hit also extends the entry's expiry (sliding TTL). Default false.
    pub sliding_ttl: bool,
    /// Digests remembered per tag, oldest dropped first; 0 disables history (default 10).
    pub max_tag_history: u32,
    /// Largest manifest accepted, in bytes (default 4 MiB).
    pub max_manifest_bytes: u64,
    /// Whether a failed revalidation may fall back to the stale digest (default true).
    pub stale_if_error: bool,
    /// Whether reads re-hash content and refuse corrupted bytes (default true).
    pub verify_reads: bool,
    /// The eviction policy (default: expired first, then least recently used).
    pub eviction: PolicyConfig,
    /// Journal records tolerated before compaction, at least (default 1000); compaction also
    /// waits until the journal outnumbers the live index, so its cost is amortized O(1).
    pub compaction_min_records: u64,
    /// Whether puts wait for stable storage (default [`Durability::Strict`]); `relaxed` needs
    /// `verify_reads`.
    pub durability: Durability,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_bytes: 1 << 30,
            high_watermark_percent: 95,
            low_watermark_percent: 85,
            default_ttl_ms: 24 * HOUR_MS,
            manifest_ttl_ms: None,
            blob_ttl_ms: None,
            tag_ttl_ms: 5 * 60_000,
            sliding_ttl: false,
            max_tag_history: 10,
            max_manifest_bytes: 4 << 20,
            stale_if_error: true,
            verify_reads: true,
            eviction: PolicyConfig::Composite(vec![
                (0, PolicyConfig::Expired),
                (1, PolicyConfig::Lru),
            ]),
            compaction_min_records: 1000,
            durability: Durability::Strict,
        }
    }
}

/// The name of a cache directory's configuration file, read by every host at open.
pub const CONFIG_FILE: &str = "config.json";
/// Largest configuration file accepted, in bytes.
pub const MAX_CONFIG_FILE_BYTES: usize = 1 << 20;

impl Config {
    /// Parses a cache directory's [`CONFIG_FILE`] from its bytes: the JSON of a `Config`, any
    /// subset of its fields, no other key but the pull's ([`crate::pull::PULL_KEYS`], read by
    /// [`crate::pull::PullConfig::from_file_bytes`]). Every host reads the file through this function, so
    /// that one directory has the same settings and the same errors everywhere. Fails with
    /// `InvalidConfig` (naming the file) for more than [`MAX_CONFIG_FILE_BYTES`] bytes or JSON
    /// that does not deserialize; the settings are checked by [`Config::validate`] at open,
    /// after the caller's own settings are applied.
    ///
    /// ```
    /// use ocicache_core::{Config, ErrorKind};
    /// let cfg = Config::from_file_bytes(br#"{"max_bytes": 1048576}"#)?;
    /// assert_eq!(cfg.max_bytes, 1 << 20);
    /// assert_eq!(cfg.max_tag_history, Config::default().max_tag_history);
    /// let e = Config::from_file_bytes(br#"{"max_byte": 1}"#).unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    /// assert!(e.to_string().contains("config.json"));
    /// # Ok::<(), ocicache_core::Error>(())
    /// ```
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Config> {
        if bytes.len() > MAX_CONFIG_FILE_BYTES {
            return Err(Error::InvalidConfig(format!(
                "{CONFIG_FILE} is larger than {MAX_CONFIG_FILE_BYTES} bytes"
            )));
        }
        let bad = |e: serde_json::Error| Error::InvalidConfig(format!("{CONFIG_FILE}: {e}"));
        let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(bad)?;
        if let serde_json::Value::Object(map) = &mut value {
            for key in crate::pull::PULL_KEYS {
                map.remove(key);
            }
        }
        serde_json::from_value(value).map_err(bad)
    }

    /// This configuration with the settings of `overrides` (a JSON object with any subset of
    /// the fields, as [`Config`] deserializes) put in place of its own; the others stay. How a
    /// host applies the settings its caller passes in code over the directory's file: for that
    /// process only, the file is not changed.
    ///
    /// ```
    /// use ocicache_core::Config;
    /// let file = Config::from_file_bytes(br#"{"max_bytes": 1048576, "tag_ttl_ms": 7}"#)?;
    /// let cfg = file.with_overrides_json(r#"{"max_bytes": 2048}"#)?;
    /// assert_eq!((cfg.max_bytes, cfg.tag_ttl_ms), (2048, 7));
    /// # Ok::<(), ocicache_core::Error>(())
    /// ```
    pub fn with_overrides_json(&self, overrides: &str) -> Result<Config> {
        let invalid = |e: serde_json::Error| Error::InvalidConfig(e.to_string());
        let serde_json::Value::Object(overrides) =
            serde_json::from_str::<serde_json::Value>(overrides).map_err(invalid)?
        else {
            return Err(Error::InvalidConfig(
                "the settings must be a JSON object".into(),
            ));
        };
        let serde_json::Value::Object(mut merged) = serde_json::to_value(self).map_err(invalid)?
        else {
            return Err(Error::InvalidConfig("a Config is a JSON object".into()));
        };
        merged.extend(overrides);
        serde_json::from_value(serde_json::Value::Object(merged)).map_err(invalid)
    }

    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidConfig(m.to_owned()));
        if self.max_bytes == 0 {
            return bad("max_bytes must be positive");
        }
        if self.high_watermark_percent == 0 || self.high_watermark_percent > 100 {
            return bad("high_watermark_percent must be in 1..=100");
        }
        if self.low_watermark_percent > self.high_watermark_percent {
            return bad("low_watermark_percent must not exceed high_watermark_percent");
        }
        if self.max_manifest_bytes == 0 || self.max_manifest_bytes > 64 << 20 {
            return bad("max_manifest_bytes must be in 1..=64 MiB");
        }
        if self.max_tag_history > 10_000 {
            return bad("max_tag_history must be at most 10000");
        }
        if self.durability == Durability::Relaxed && !self.verify_reads {
            // Only verified reads keep a file torn by a power loss from being served.
            return bad("durability \"relaxed\" requires verify_reads");
        }
        validate_policy(&self.eviction)
    }

    /// The TTL of a kind in ms (0: never expires).
    pub fn ttl_ms(&self, kind: crate::Kind) -> u64 {
        match kind {
            crate::Kind::Manifest => self.manifest_ttl_ms.unwrap_or(self.default_ttl_ms),
            crate::Kind::Blob => self.blob_ttl_ms.unwrap_or(self.default_ttl_ms),
        }
    }

    pub(crate) fn high_bytes(&self) -> u64 {
        percent_of(self.max_bytes, self.high_watermark_percent)
    }

    pub(crate) fn low_bytes(&self) -> u64 {
        percent_of(self.max_bytes, self.low_watermark_percent)
    }
}

fn percent_of(total: u64, percent: u8) -> u64 {
    (u128::from(total) * u128::from(percent) / 100) as u64
}

fn validate_policy(p: &PolicyConfig) -> Result<()> {
    if let PolicyConfig::Composite(members) = p {
        if members.is_empty() {
            return Err(Error::InvalidConfig(
                "a composite policy needs members".into(),
            ));
        }
        for (_, m) in members {
            validate_policy(m)?;
        }
    }
    Ok(())
}

/// Expiry time for something stored at `now` with `ttl_ms` (`u64::MAX`: never).
pub(crate) fn expiry(now: u64, ttl_ms: u64) -> u64 {
    if ttl_ms == 0 {
        u64::MAX
    } else {
        now.saturating_add(ttl_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.max_bytes, 1 << 30);
        assert_eq!(c.default_ttl_ms, 24 * HOUR_MS);
    }

    #[test]
    fn rejects_bad_settings() {
        let cases = [
            Config {
                max_bytes: 0,
                ..Config::default()
            },
            Config {
                high_watermark_percent: 101,
                ..Config::default()
            },
            Config {
                low_watermark_percent: 99,
                ..Config::default()
            },
            Config {
                max_manifest_bytes: 0,
                ..Config::default()
            },
            Config {
                eviction: PolicyConfig::Composite(vec![]),
                ..Config::default()
            },
            Config {
                durability: Durability::Relaxed,
                verify_reads: false,
                ..Config::default()
            },
        ];
        for c in cases {
            assert_eq!(c.validate().unwrap_err().kind(), ErrorKind::InvalidConfig);
        }
        assert!(
            serde_json::from_str::<Config>(r#"{"max_byte": 1}"#).is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn durability_is_strict_by_default_and_read_from_the_file() {
        assert_eq!(Config::default().durability, Durability::Strict);
        let cfg = Config::from_file_bytes(br#"{"durability": "relaxed"}"#).unwrap();
        assert_eq!(cfg.durability, Durability::Relaxed);
        cfg.validate().unwrap();
        let cfg = Config::from_file_bytes(br#"{"durability": "strict"}"#).unwrap();
        assert_eq!(cfg.durability, Durability::Strict);
        let json = serde_json::to_value(Config {
            durability: Durability::Relaxed,
            ..Config::default()
        })
        .unwrap();
        assert_eq!(json["durability"], "relaxed");
        for bad in [r#"{"durability": "none"}"#, r#"{"durability": true}"#] {
            let e = Config::from_file_bytes(bad.as_bytes()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{bad}");
        }
        let e = Config::from_file_bytes(br#"{"durability": "relaxed", "verify_reads": false}"#)
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("durability"), "{e}");
    }
}
