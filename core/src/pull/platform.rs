//! Platforms (`os/arch[/variant]`) and the choice of manifests from an image index.

use crate::error::{Error, Result};
use std::fmt;

/// An OCI platform, as in an index's descriptors: `linux/amd64`, `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// `linux`, `windows`, …
    pub os: String,
    /// `amd64`, `arm64`, `arm`, …
    pub architecture: String,
    /// `v7`, `v8`, … if any.
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    ///
    /// ```
    /// use ocicache_core::pull::Platform;
    /// let p = Platform::parse("linux/arm/v7")?;
    /// assert_eq!((p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()), ("linux", "arm", Some("v7")));
    /// assert!(Platform::parse("linux").is_err());
    /// # Ok::<(), ocicache_core::Error>(())
    /// ```
    pub fn parse(s: &str) -> Result<Platform> {
        let bad = || Error::InvalidArgument(format!("platform {s:?}: expected os/arch[/variant]"));
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 64
                && p.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| ok(p)) {
            return Err(bad());
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }

    /// The platform of a host, from Rust's `std::env::consts::{OS, ARCH}` names (hosts pass
    /// them in: the core does not look at the machine it runs on).
    ///
    /// ```
    /// use ocicache_core::pull::Platform;
    /// assert_eq!(Platform::from_rust("linux", "x86_64").to_string(), "linux/amd64");
    /// assert_eq!(Platform::from_rust("macos", "aarch64").to_string(), "darwin/arm64");
    /// ```
    pub fn from_rust(os: &str, arch: &str) -> Platform {
        let os = match os {
            "macos" => "darwin",
            other => other,
        };
        let (architecture, variant) = match arch {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            "riscv64" => ("riscv64", None),
            "s390x" => ("s390x", None),
            other => (other, None),
        };
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// Whether an index entry's platform serves this one. A missing variant on either side
    /// matches (Docker's rule), except that `arm64` treats a missing variant as `v8`.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        if !self.os.eq_ignore_ascii_case(os)
            || !self.architecture.eq_ignore_ascii_case(architecture)
        {
            return false;
        }
        let normalize = |v: Option<&str>| -> Option<String> {
            match (self.architecture.as_str(), v) {
                ("arm64", None) => Some("v8".into()),
                (_, v) => v.map(str::to_ascii_lowercase),
            }
        };
        match (normalize(self.variant.as_deref()), normalize(variant)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Which manifests of an index a pull takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformChoice {
    /// The one manifest for this platform (hosts default to their own).
    One(Platform),
    /// Every manifest of the index.
    All,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_match_as_docker_matches_them() {
        let arm7 = Platform::parse("linux/arm/v7").unwrap();
        assert!(arm7.matches("linux", "arm", Some("v7")));
        assert!(!arm7.matches("linux", "arm", Some("v6")));
        assert!(arm7.matches("linux", "arm", None));
        let arm64 = Platform::parse("linux/arm64").unwrap();
        assert!(arm64.matches("linux", "arm64", Some("v8")));
        assert!(!arm64.matches("linux", "arm64", Some("v9")));
        assert!(!arm64.matches("linux", "amd64", None));
        assert!(!arm64.matches("windows", "arm64", None));
        for bad in ["", "linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64"] {
            assert!(Platform::parse(bad).is_err(), "{bad:?}");
        }
    }
}
