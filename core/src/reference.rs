//! Image references by the OCI / distribution grammar.
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path
//! domain     := host [ ":" port ]          host: DNS name, IPv4, or [IPv6]
//! path       := component ( "/" component )*
//! component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! ```
//!
//! The first path element is a domain when it contains `.` or `:`, is `localhost`, or has an
//! upper-case letter (Docker's rule: repositories are lower-case, so `X/y` names registry `X`).
//! References without a domain belong to `docker.io`, where single-element paths live under
//! `library/`; a reference with neither tag nor digest means `:latest`. The repository, once
//! normalized, has at most 255 characters (Docker's limit, `library/` included).
//!
//! Registry names are compared without regard to case and printed in lower case, except one
//! that is a domain only by its upper-case letters (`X`, `MyRegistry`): lower-cased it would
//! read as a Docker Hub namespace, so it keeps the case it was written in.
//!
//! The canonical text (its `Display` form) is the cache key. It parses back to the same
//! reference, so distinct references never share an entry, and equivalent spellings (`nginx`,
//! `docker.io/library/nginx:latest`) always do.

use crate::digest::Digest;
use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// The registry assumed when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag assumed when a reference names neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// Docker's limit on the normalized repository path.
const MAX_REPOSITORY_LEN: usize = 255;
/// A registry is a host name (at most 253 characters) with a port, or an IPv6 literal.
const MAX_REGISTRY_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;
/// The longest text that can parse: registry, repository, tag and a SHA-512 digest. Bounds the
/// work done on hostile input; canonical texts stay within it, so they always parse back.
const MAX_INPUT_LEN: usize =
    MAX_REGISTRY_LEN + 1 + MAX_REPOSITORY_LEN + 1 + MAX_TAG_LEN + 1 + 7 + 128;

/// A parsed, normalized image reference.
///
/// ```
/// use ocicache_core::Reference;
/// let r: Reference = "nginx".parse().unwrap();
/// assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
/// let r: Reference = "localhost:5000/team/app/api:v1.2".parse().unwrap();
/// assert_eq!((r.registry(), r.repository(), r.tag()), ("localhost:5000", "team/app/api", Some("v1.2")));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalizes a reference.
    pub fn parse(input: &str) -> Result<Reference> {
        let bad = |reason: &str| Error::invalid_reference(input, reason);
        if input.is_empty() {
            return Err(bad("empty reference"));
        }
        if input.len() > MAX_INPUT_LEN {
            return Err(bad("reference too long"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => (
                rest,
                Some(Digest::parse(d).map_err(|e| bad(&format!("bad digest: {e}")))?),
            ),
            None => (input, None),
        };
        // A tag is after the last ':' that follows the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(&bad)?;
        }
        if name.is_empty() {
            return Err(bad("empty name"));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if looks_like_domain(first) => {
                if first.len() > MAX_REGISTRY_LEN {
                    return Err(bad("registry longer than 255 characters"));
                }
                validate_domain(first).map_err(&bad)?;
                (normalize_registry(first), path)
            }
            _ => (DEFAULT_REGISTRY.to_owned(), name),
        };
        for component in path.split('/') {
            validate_component(component).map_err(&bad)?;
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        if repository.len() > MAX_REPOSITORY_LEN {
            return Err(bad("repository longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry host, with port when given (`docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path (`library/nginx`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (`latest` is filled in when neither tag nor digest is given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The key of the tag mapping this reference names: its canonical text. A mapping is named
    /// by a tag without a digest; a reference that pins a digest names content, not a mapping,
    /// and taking its tag alone would silently drop the digest. Every tag mapping operation
    /// checks this first; a host may call it to refuse such input before opening anything.
    ///
    /// ```
    /// use ocicache_core::{ErrorKind, Reference};
    /// let tagged: Reference = "nginx:1".parse().unwrap();
    /// assert_eq!(tagged.tag_mapping_key().unwrap(), "docker.io/library/nginx:1");
    /// let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    /// let pinned: Reference = format!("nginx:1@{d}").parse().unwrap();
    /// assert_eq!(pinned.tag_mapping_key().unwrap_err().kind(), ErrorKind::InvalidReference);
    /// ```
    pub fn tag_mapping_key(&self) -> Result<String> {
        if self.tag.is_none() {
            return Err(Error::invalid_reference(
                &self.to_string(),
                "a tag is needed",
            ));
        }
        if self.digest.is_some() {
            return Err(Error::invalid_reference(
                &self.to_string(),
                "a tag mapping is named by its tag alone, without a digest",
            ));
        }
        // Built directly rather than through `Display`: this runs on every tag lookup, and
        // the formatting machinery costs more than the lookup (in wasm most of all).
        let tag = self.tag.as_deref().unwrap_or_default();
        let mut key =
            String::with_capacity(self.registry.len() + self.repository.len() + tag.len() + 2);
        key.push_str(&self.registry);
        key.push('/');
        key.push_str(&self.repository);
        key.push(':');
        key.push_str(tag);
        Ok(key)
    }

    /// The reference without its digest (`nginx:1@sha256:…` becomes `nginx:1`). Tag mappings
    /// refuse references with a digest, so a caller that means the tag drops it explicitly.
    pub fn without_digest(&self) -> Reference {
        Reference {
            digest: None,
            ..self.clone()
        }
    }
}

fn looks_like_domain(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

fn normalize_registry(domain: &str) -> String {
    let lower = domain.to_ascii_lowercase();
    match lower.as_str() {
        "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_owned(),
        // A domain only by its upper-case letters: lower-cased, the canonical text would name
        // a Docker Hub repository instead (`X/y` would print as `x/y`, which is `docker.io/x/y`).
        _ if !looks_like_domain(&lower) => domain.to_owned(),
        _ => lower,
    }
}

fn validate_domain(domain: &str) -> std::result::Result<(), &'static str> {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err("unterminated IPv6 address");
        };
        if v6.is_empty()
            || !v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err("bad IPv6 address");
        }
        match after {
            "" => (None, None),
            p if p.starts_with(':') => (None, Some(&p[1..])),
            _ => return Err("junk after IPv6 address"),
        }
    } else {
        match domain.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        if host.is_empty() {
            return Err("empty registry host");
        }
        for label in host.split('.') {
            let b = label.as_bytes();
            let ok = !b.is_empty()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-';
            if !ok {
                return Err("bad registry host");
            }
        }
    }
    if let Some(port) = port {
        let ok = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| p <= 65535);
        if !ok {
            return Err("bad registry port");
        }
    }
    Ok(())
}

fn validate_component(c: &str) -> std::result::Result<(), &'static str> {
    let b = c.as_bytes();
    if b.is_empty() {
        return Err("empty path component");
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err("path components start and end with [a-z0-9]");
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: ".", "_", "__" or one or more "-".
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return Err("path components use only [a-z0-9._-]"),
        }
        if i == start || !b.get(i).copied().is_some_and(alnum) {
            return Err("bad separator in path component");
        }
    }
    Ok(())
}

pub(crate) fn validate_tag(tag: &str) -> std::result::Result<(), &'static str> {
    let b = tag.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    if b.is_empty() {
        return Err("empty tag");
    }
    if b.len() > MAX_TAG_LEN {
        return Err("tag longer than 128 characters");
    }
    if !word(b[0]) || !b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-') {
        return Err("tag must match [A-Za-z0-9_][A-Za-z0-9_.-]*");
    }
    Ok(())
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalizes_like_docker() {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.25", "docker.io/library/nginx:1.25"),
            ("library/nginx", "docker.io/library/nginx:latest"),
            ("index.docker.io/nginx", "docker.io/library/nginx:latest"),
            ("user/app:v1", "docker.io/user/app:v1"),
            ("ghcr.io/org/team/app:main", "ghcr.io/org/team/app:main"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:1", "localhost:5000/app:1"),
            (
                "Registry.Example.COM:443/a/b",
                "registry.example.com:443/a/b:latest",
            ),
            ("[::1]:5000/app:x", "[::1]:5000/app:x"),
            ("X/y:1", "X/y:1"),
            ("MyRegistry/team/app", "MyRegistry/team/app:latest"),
            ("x/y:1", "docker.io/x/y:1"),
            (
                "127.0.0.1:5000/a__b/c-d--e.f:T_1.2-3",
                "127.0.0.1:5000/a__b/c-d--e.f:T_1.2-3",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                Reference::parse(input).unwrap().to_string(),
                want,
                "{input}"
            );
        }
        let pinned = Reference::parse(&format!("nginx@{D}")).unwrap();
        assert_eq!(pinned.tag(), None);
        assert_eq!(pinned.to_string(), format!("docker.io/library/nginx@{D}"));
        let both = Reference::parse(&format!("nginx:1@{D}")).unwrap();
        assert_eq!(
            both.without_digest().to_string(),
            "docker.io/library/nginx:1"
        );
    }

    #[test]
    fn rejects_malformed_and_hostile_references() {
        let long_tag = format!("a:{}", "t".repeat(129));
        let long_name = format!("{}:x", "a/".repeat(130));
        let bad: &[&str] = &[
            "",
            ":latest",
            "Nginx",
            "nginx:",
            "nginx:-x",
            "nginx:.x",
            "a//b",
            "a/../b",
            "../etc/passwd",
            "a/./b",
            "a/b/",
            "/a",
            "a b",
            "a\0b",
            "a_-b",
            "a.-b",
            "a___b",
            "nginx@sha256:abc",
            "nginx@md5:d41d8cd98f00b204e9800998ecf8427e",
            "host:99999/app",
            "host:/app",
            "-host.com/app",
            "[::1/app",
            &long_tag,
            &long_name,
        ];
        for input in bad {
            let err = Reference::parse(input).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidReference, "{input:?}");
        }
    }

    #[test]
    fn distinct_references_have_distinct_keys() {
        // The seed mapped '/', ':' and '@' to '_', so these collided on one file.
        let refs = [
            "a/b:c", "a:b/c", "a/b/c", "a_b:c", "a/b_c", "a/b:c_d", "a/b_c:d",
        ];
        let mut keys = std::collections::BTreeSet::new();
        for r in refs {
            if let Ok(parsed) = Reference::parse(r) {
                assert!(keys.insert(parsed.to_string()), "{r} collided");
            }
        }
        assert!(keys.len() >= 5);
    }
}
