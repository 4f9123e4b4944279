//! The pull's settings in a cache directory's `config.json`: beside the cache's own settings
//! ([`crate::Config`]), three keys that only pulls read.
//!
//! ```json
//! {
//!   "max_bytes": 10737418240,
//!   "platform": "linux/arm64",
//!   "auth_file": "/etc/ocicache/auth.json",
//!   "registries": {
//!     "docker.io": { "mirrors": ["https://mirror.internal:5000"] },
//!     "registry.internal:5000": { "plain_http": true }
//!   }
//! }
//! ```

use super::endpoint::RegistryRoute;
use super::platform::Platform;
use crate::config::{CONFIG_FILE, MAX_CONFIG_FILE_BYTES};
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// The keys of `config.json` that belong to pulls, not to [`crate::Config`].
pub const PULL_KEYS: [&str; 3] = ["platform", "auth_file", "registries"];

/// Pull settings from `config.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PullConfig {
    /// The platform taken from an index when the caller names none (`os/arch[/variant]`);
    /// hosts default to their own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// A credentials file in Docker's `config.json` format (`auths`), read before the usual
    /// places.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_file: Option<String>,
    /// Per registry (`host[:port]` as in references; `docker.io` for Docker Hub): mirrors and
    /// plain-HTTP permission.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub registries: BTreeMap<String, RegistrySettings>,
}

/// One registry's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrySettings {
    /// Mirror base URLs tried in order before the registry (`https://…`, or `http://…` as
    /// written).
    pub mirrors: Vec<String>,
    /// Plain HTTP allowed (Docker's insecure registries); loopback registries always are.
    pub plain_http: bool,
}

impl PullConfig {
    /// Reads the pull keys of a `config.json` (every other key is the cache's, and is read by
    /// [`crate::Config::from_file_bytes`]). Fails with `InvalidConfig` naming the file.
    ///
    /// ```
    /// use ocicache_core::pull::PullConfig;
    /// let c = PullConfig::from_file_bytes(br#"{"max_bytes": 1, "registries": {"docker.io": {"mirrors": ["https://m.example"]}}}"#)?;
    /// assert_eq!(c.route("docker.io").mirrors, ["https://m.example"]);
    /// assert!(c.route("ghcr.io").mirrors.is_empty());
    /// # Ok::<(), ocicache_core::Error>(())
    /// ```
    pub fn from_file_bytes(bytes: &[u8]) -> Result<PullConfig> {
        let bad = |m: String| Error::InvalidConfig(format!("{CONFIG_FILE}: {m}"));
        if bytes.len() > MAX_CONFIG_FILE_BYTES {
            return Err(bad(format!("larger than {MAX_CONFIG_FILE_BYTES} bytes")));
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let serde_json::Value::Object(mut map) = value else {
            return Err(bad("not a JSON object".into()));
        };
        let mut pull = serde_json::Map::new();
        for key in PULL_KEYS {
            if let Some(v) = map.remove(key) {
                pull.insert(key.to_owned(), v);
            }
        }
        let config: PullConfig = serde_json::from_value(serde_json::Value::Object(pull))
            .map_err(|e| bad(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the platform, mirror URLs and registry names.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Error::InvalidConfig(format!("{CONFIG_FILE}: {m}"));
        if let Some(p) = &self.platform {
            Platform::parse(p).map_err(|e| bad(e.to_string()))?;
        }
        for (name, r) in &self.registries {
            if name.is_empty() || name.contains('/') || name.contains("://") {
                return Err(bad(format!(
                    "registries: {name:?} is not a registry name (host[:port])"
                )));
            }
            for m in &r.mirrors {
                if !(m.starts_with("https://") || m.starts_with("http://")) {
                    return Err(bad(format!(
                        "registries.{name}.mirrors: {m:?} is not an http(s) URL"
                    )));
                }
            }
        }
        Ok(())
    }

    /// How to reach `registry` (case-insensitive).
    pub fn route(&self, registry: &str) -> RegistryRoute {
        self.registries
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(registry))
            .map(|(_, r)| RegistryRoute {
                mirrors: r.mirrors.clone(),
                plain_http: r.plain_http,
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn the_cache_and_the_pull_each_read_their_keys_of_one_file() {
        let file = br#"{"max_bytes": 2048, "platform": "linux/arm/v7", "auth_file": "/a.json",
            "registries": {"Registry.Example:5000": {"plain_http": true, "mirrors": ["http://127.0.0.1:1"]}}}"#;
        let cache = crate::Config::from_file_bytes(file).unwrap();
        assert_eq!(cache.max_bytes, 2048);
        let pull = PullConfig::from_file_bytes(file).unwrap();
        assert_eq!(pull.platform.as_deref(), Some("linux/arm/v7"));
        assert_eq!(pull.auth_file.as_deref(), Some("/a.json"));
        let route = pull.route("registry.example:5000");
        assert!(route.plain_http);
        assert_eq!(route.mirrors, ["http://127.0.0.1:1"]);
        // A typo is still an error, for either reader.
        let typo = br#"{"registries": {"x": {"mirror": []}}}"#;
        assert_eq!(
            PullConfig::from_file_bytes(typo).unwrap_err().kind(),
            ErrorKind::InvalidConfig
        );
        assert!(crate::Config::from_file_bytes(br#"{"plat": 1}"#).is_err());
        for bad in [
            &br#"{"platform": "linux"}"#[..],
            br#"{"registries": {"a/b": {}}}"#,
            br#"{"registries": {"a": {"mirrors": ["ftp://x"]}}}"#,
        ] {
            let e = PullConfig::from_file_bytes(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfig);
            assert!(e.to_string().contains("config.json"), "{e}");
        }
    }
}
