//! HTTP as plain data: what the [`Pull`](super::Pull) asks a host to send, and what the host
//! reports back. The core never opens a connection; hosts perform these with their own client.

use std::fmt;

/// Names one request of a pull; responses are reported under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The methods a pull uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Revalidating a tag: only its headers.
    Head,
    /// Everything else.
    Get,
}

impl Method {
    /// `"HEAD"` or `"GET"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Head => "HEAD",
            Method::Get => "GET",
        }
    }
}

/// What a request fetches: for a host's progress display and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// A manifest (or a tag's revalidation).
    Manifest,
    /// A blob of the graph.
    Blob {
        /// Its digest.
        digest: crate::digest::Digest,
        /// Its size, from its descriptor.
        size: u64,
        /// Bytes already held from an earlier attempt (the `Range` start), else 0.
        offset: u64,
    },
    /// A bearer token from the registry's token endpoint.
    Token,
}

/// A request for the host to perform.
///
/// The host sends exactly these headers (it may add `User-Agent`, `Host` and the like), must not
/// follow redirects itself (the pull does, so that credentials never travel to another host),
/// and must not decompress bodies: every body byte counts toward a digest. A host that cannot
/// see redirects (a browser's `fetch` makes a manual redirect opaque) lets its client follow
/// them: the pull then sees only the final answer, and the client's rules decide which headers
/// go to the new location (the fetch standard drops `Authorization` across origins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Names the request in the responses.
    pub id: RequestId,
    /// `GET` or `HEAD`.
    pub method: Method,
    /// The absolute URL (`https://host/v2/…`).
    pub url: String,
    /// Request headers, in order (`Accept`, `Authorization`, `Range`).
    pub headers: Vec<(String, String)>,
    /// What it fetches.
    pub purpose: Purpose,
}

impl HttpRequest {
    /// The value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// The status and headers of a response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseHead {
    /// The HTTP status code.
    pub status: u16,
    /// Response headers, in order; names in any case.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// A head with a status and headers.
    pub fn new(status: u16, headers: &[(&str, &str)]) -> ResponseHead {
        ResponseHead {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Every value of a header (`WWW-Authenticate` may come several times).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Content-Length`, if present and a number.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")?.trim().parse().ok()
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Resolves a `Location` header against the URL it answered: absolute, scheme-relative,
/// absolute-path or relative-path. `None` for a location that is not http(s).
pub(crate) fn resolve_location(base: &str, location: &str) -> Option<String> {
    let location = location.trim();
    if location.starts_with("https://") || location.starts_with("http://") {
        return Some(location.to_owned());
    }
    if location.contains("://") {
        return None;
    }
    let (scheme, rest) = base.split_once("://")?;
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if let Some(after) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{after}"));
    }
    if location.starts_with('/') {
        return Some(format!("{scheme}://{authority}{location}"));
    }
    let path = &rest[authority_end..];
    let path = path.split(['?', '#']).next().unwrap_or("");
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let dir = if dir.is_empty() { "/" } else { dir };
    Some(format!("{scheme}://{authority}{dir}{location}"))
}

/// The `scheme://authority` part of a URL, lower-cased: requests go with credentials only to
/// the origin they were meant for.
pub(crate) fn origin(url: &str) -> String {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    format!("{scheme}://{}", authority(url))
}

/// The `host[:port]` of a URL (or of a bare `host[:port]`), lower-cased: what credentials and
/// mirrors are named by.
///
/// ```
/// assert_eq!(ocicache_core::pull::authority("https://Mirror.Example:5000/v2/x?y"), "mirror.example:5000");
/// ```
pub fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#'])
        .next()
        .unwrap_or(rest)
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_like_a_browser() {
        let base = "https://reg.example:5000/v2/app/blobs/sha256:ab?x=1";
        assert_eq!(
            resolve_location(base, "https://cdn.example/b?sig=1").as_deref(),
            Some("https://cdn.example/b?sig=1")
        );
        assert_eq!(
            resolve_location(base, "//cdn.example/b").as_deref(),
            Some("https://cdn.example/b")
        );
        assert_eq!(
            resolve_location(base, "/storage/b").as_deref(),
            Some("https://reg.example:5000/storage/b")
        );
        assert_eq!(
            resolve_location(base, "other").as_deref(),
            Some("https://reg.example:5000/v2/app/blobs/other")
        );
        assert_eq!(resolve_location(base, "ftp://x/y"), None);
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert_eq!(
            origin("https://Reg.Example:5000/v2/x"),
            "https://reg.example:5000"
        );
        assert_ne!(origin("http://a/x"), origin("https://a/x"));
    }
}
