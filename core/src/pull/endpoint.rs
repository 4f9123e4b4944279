//! Where a registry's requests go: its mirrors first, then the registry itself, over HTTPS, or
//! plain HTTP where that is allowed.

/// The host Docker Hub's API answers on: `docker.io` is only its name in references.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// One place to send a registry's requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `scheme://host[:port]`, without a trailing slash.
    pub base: String,
    /// Whether this is a mirror (failures fall through to the next endpoint).
    pub mirror: bool,
    /// A plain-HTTP base to fall back to when a TLS connection to `base` fails (loopback
    /// registries and ones marked insecure only).
    pub plain_fallback: Option<String>,
    /// The name its credentials are found under in [`super::PullOptions::credentials`]: the
    /// registry as references name it (`docker.io`), or a mirror's `host[:port]`.
    pub credentials_key: String,
}

/// How a pull reaches one registry: mirrors, and whether plain HTTP is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryRoute {
    /// Mirror base URLs (`https://mirror.example:5000`, or `http://` as written by the user),
    /// tried in order before the registry. Content from a mirror is verified like any other.
    pub mirrors: Vec<String>,
    /// Allow plain HTTP to the registry even though it is not a loopback address (Docker's
    /// `insecure-registries`, or `--plain-http`).
    pub plain_http: bool,
}

/// The host part of a `host[:port]` registry name (IPv6 literals keep their brackets off).
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.split(':').next().unwrap_or(registry)
}

/// Whether a registry name is a loopback address, where plain HTTP is allowed by default (as
/// Docker allows it): `localhost`, `127.0.0.0/8`, `::1`.
///
/// ```
/// use ocicache_core::pull::is_loopback;
/// assert!(is_loopback("localhost:5000") && is_loopback("127.0.0.1:5000") && is_loopback("[::1]:5000"));
/// assert!(!is_loopback("registry.example") && !is_loopback("128.0.0.1"));
/// ```
pub fn is_loopback(registry: &str) -> bool {
    let host = host_of(registry).to_ascii_lowercase();
    if host == "localhost" || host == "::1" {
        return true;
    }
    let octets: Vec<&str> = host.split('.').collect();
    octets.len() == 4
        && octets[0] == "127"
        && octets
            .iter()
            .all(|o| !o.is_empty() && o.len() <= 3 && o.parse::<u8>().is_ok())
}

/// The endpoints to try for `registry`, in order.
///
/// ```
/// use ocicache_core::pull::{endpoints, RegistryRoute};
/// let e = endpoints("docker.io", &RegistryRoute::default());
/// assert_eq!(e[0].base, "https://registry-1.docker.io");
/// assert_eq!(e[0].credentials_key, "docker.io"); // credentials are looked up as references name it
/// let e = endpoints("127.0.0.1:5000", &RegistryRoute::default());
/// assert_eq!(e[0].plain_fallback.as_deref(), Some("http://127.0.0.1:5000"));
/// ```
pub fn endpoints(registry: &str, route: &RegistryRoute) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = route
        .mirrors
        .iter()
        .map(|m| Endpoint {
            credentials_key: super::http::authority(m),
            base: m.trim_end_matches('/').to_owned(),
            mirror: true,
            plain_fallback: None,
        })
        .collect();
    let host = if registry.eq_ignore_ascii_case(crate::reference::DEFAULT_REGISTRY) {
        DOCKER_HUB_API
    } else {
        registry
    };
    out.push(Endpoint {
        base: format!("https://{host}"),
        mirror: false,
        plain_fallback: (route.plain_http || is_loopback(registry))
            .then(|| format!("http://{host}")),
        credentials_key: registry.to_ascii_lowercase(),
    });
    out
}
