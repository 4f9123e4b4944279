//! Registry authentication: `WWW-Authenticate` challenges, credentials, and the bearer tokens a
//! pull obtains (Docker's token specification, which OCI registries follow).

use crate::clock::Millis;
use std::collections::BTreeMap;

/// What a host knows to log in to a registry, from `docker login` files or the caller.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (or a personal access token used as one).
    Basic {
        /// The user name.
        username: String,
        /// The password or token.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in Docker's `config.json`); exchanged at the
    /// token endpoint like a password, with the user name `<token>`.
    IdentityToken(String),
}

impl std::fmt::Debug for Credentials {
    // Never prints a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => {
                write!(f, "Basic {{ username: {username:?}, password: <hidden> }}")
            }
            Credentials::IdentityToken(_) => write!(f, "IdentityToken(<hidden>)"),
        }
    }
}

impl Credentials {
    /// The `Authorization: Basic …` value for these credentials.
    pub fn basic_header(&self) -> String {
        let (user, secret) = match self {
            Credentials::Basic { username, password } => (username.as_str(), password.as_str()),
            Credentials::IdentityToken(token) => ("<token>", token.as_str()),
        };
        format!("Basic {}", base64(format!("{user}:{secret}").as_bytes()))
    }
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`: send credentials with every request.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`: get a token at `realm` first.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter for the token request, if given.
        service: Option<String>,
        /// The `scope` the registry asked for, if given.
        scope: Option<String>,
    },
    /// A scheme this pull does not speak.
    Other(String),
}

/// Parses a `WWW-Authenticate` value into its challenges (RFC 9110 §11.6.1: a list of
/// `scheme [param=value, …]`, values tokens or quoted strings).
///
/// ```
/// use ocicache_core::pull::Challenge;
/// let parsed = ocicache_core::pull::parse_challenges(
///     r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:app:pull""#,
/// );
/// assert_eq!(parsed, vec![Challenge::Bearer {
///     realm: "https://auth.example/token".into(),
///     service: Some("registry.example".into()),
///     scope: Some("repository:app:pull".into()),
/// }]);
/// ```
pub fn parse_challenges(value: &str) -> Vec<Challenge> {
    // Registries send one or two; a hostile header cannot make a pull hold more.
    const MAX_CHALLENGES: usize = 16;
    let mut out = Vec::new();
    let mut p = Parser {
        s: value.as_bytes(),
        i: 0,
    };
    // Each round: a scheme, then its parameters until the next scheme.
    loop {
        p.skip_separators();
        let Some(scheme) = p.token() else {
            // Garbage: skip a byte and look again (bounded by the input's length).
            if p.i >= p.s.len() {
                break;
            }
            p.i += 1;
            continue;
        };
        let mut params: BTreeMap<String, String> = BTreeMap::new();
        loop {
            p.skip_spaces();
            let save = p.i;
            let Some(name) = p.token() else { break };
            p.skip_spaces();
            if !p.eat(b'=') {
                // Not a parameter: the next challenge's scheme.
                p.i = save;
                break;
            }
            p.skip_spaces();
            let value = if p.peek() == Some(b'"') {
                p.quoted()
            } else {
                p.token().unwrap_or_default()
            };
            params.entry(name.to_ascii_lowercase()).or_insert(value);
            p.skip_spaces();
            if !p.eat(b',') {
                break;
            }
        }
        out.push(match scheme.to_ascii_lowercase().as_str() {
            "basic" => Challenge::Basic,
            "bearer" => match params.remove("realm") {
                Some(realm) => Challenge::Bearer {
                    realm,
                    service: params.remove("service"),
                    scope: params.remove("scope"),
                },
                None => Challenge::Other(scheme),
            },
            _ => Challenge::Other(scheme),
        });
        if p.i >= p.s.len() || out.len() == MAX_CHALLENGES {
            break;
        }
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn skip_while(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }
    fn skip_spaces(&mut self) {
        self.skip_while(|c| c == b' ' || c == b'\t');
    }
    fn skip_separators(&mut self) {
        self.skip_while(|c| c == b' ' || c == b'\t' || c == b',');
    }
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        self.skip_while(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&c));
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn quoted(&mut self) -> String {
        self.eat(b'"');
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        out.push(n);
                        self.i += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Standard base64 with padding (for `Authorization: Basic`).
pub(crate) fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A token endpoint's answer (`token` or `access_token`, `expires_in` seconds).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and its lifetime in milliseconds. Docker's spec: at least 60 s when not given.
    pub(crate) fn into_token(self) -> Option<(String, u64)> {
        let token = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        let seconds = self.expires_in.unwrap_or(60).max(1);
        Some((token, seconds.saturating_mul(1000)))
    }
}

/// Bearer tokens obtained during a pull, per token endpoint, service and scope, until they
/// expire (a few seconds early, so that a token never expires in flight).
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    tokens: BTreeMap<(String, String, String), (String, Millis)>,
}

const EXPIRY_MARGIN_MS: u64 = 5_000;

impl TokenCache {
    pub(crate) fn get(&self, realm: &str, service: &str, scope: &str, now: Millis) -> Option<&str> {
        let (token, until) =
            self.tokens
                .get(&(realm.to_owned(), service.to_owned(), scope.to_owned()))?;
        (now < *until).then_some(token.as_str())
    }

    pub(crate) fn put(
        &mut self,
        realm: &str,
        service: &str,
        scope: &str,
        token: String,
        lifetime_ms: u64,
        now: Millis,
    ) {
        let until = now.saturating_add(lifetime_ms.saturating_sub(EXPIRY_MARGIN_MS).max(1_000));
        self.tokens.insert(
            (realm.to_owned(), service.to_owned(), scope.to_owned()),
            (token, until),
        );
    }

    pub(crate) fn forget(&mut self, realm: &str, service: &str, scope: &str) {
        self.tokens
            .remove(&(realm.to_owned(), service.to_owned(), scope.to_owned()));
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_as_registries_send_them() {
        // Docker Hub.
        assert_eq!(
            parse_challenges(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#
            ),
            vec![Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull".into()),
            }]
        );
        // distribution with htpasswd.
        assert_eq!(
            parse_challenges(r#"Basic realm="Registry Realm""#),
            vec![Challenge::Basic]
        );
        // Several challenges, spaces, unquoted values, escapes, unknown parameters.
        assert_eq!(
            parse_challenges(
                r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple", bearer REALM=https://t.example/x , service = s"#
            ),
            vec![
                Challenge::Other("Newauth".into()),
                Challenge::Basic,
                Challenge::Bearer {
                    realm: "https://t.example/x".into(),
                    service: Some("s".into()),
                    scope: None,
                }
            ]
        );
        // A bearer challenge without a realm cannot be answered.
        assert_eq!(
            parse_challenges("Bearer service=x"),
            vec![Challenge::Other("Bearer".into())]
        );
    }

    #[test]
    fn hostile_headers_never_panic_and_stay_bounded() {
        for input in [
            "",
            ",,,,",
            "\"",
            "Bearer realm=\"unterminated",
            "=====",
            "Bearer ,,, realm",
            "\u{feff}Bearer realm=\"é\"",
        ] {
            let parsed = parse_challenges(input);
            assert!(parsed.len() <= input.len());
        }
        let long = "a=b,".repeat(10_000);
        assert!(parse_challenges(&long).len() <= 16);
    }

    #[test]
    fn basic_credentials_encode_as_rfc_7617() {
        let c = Credentials::Basic {
            username: "Aladdin".into(),
            password: "open sesame".into(),
        };
        assert_eq!(c.basic_header(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert!(
            !format!("{c:?}").contains("sesame"),
            "secrets are never printed"
        );
    }

    #[test]
    fn tokens_are_kept_per_scope_until_they_expire() {
        let mut cache = TokenCache::default();
        cache.put("r", "s", "repository:a:pull", "t1".into(), 60_000, 0);
        assert_eq!(cache.get("r", "s", "repository:a:pull", 1_000), Some("t1"));
        assert_eq!(cache.get("r", "s", "repository:b:pull", 1_000), None);
        assert_eq!(cache.get("r", "s", "repository:a:pull", 60_000), None);
        let r: TokenResponse = serde_json::from_str(r#"{"access_token":"x"}"#).unwrap();
        assert_eq!(r.into_token(), Some(("x".into(), 60_000)));
        let r: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert_eq!(r.into_token(), None);
    }
}
