//! A token server after Docker's token authentication spec, for Bearer-auth registries.
//!
//! It answers `GET /token?service=…&scope=…` with
//! `{"token", "access_token", "expires_in", "issued_at"}`. The token is a JWT signed RS256
//! with a key whose self-signed certificate is the registry's `rootcertbundle`; the header
//! carries that certificate as `x5c`, which is how distribution 2.8 finds the key
//! (`registry/auth/token`: `iss` must be the configured issuer, `aud` the service, `exp`/`nbf`
//! hold with 60 s leeway, and `access` lists what the token allows).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use tempfile::TempDir;

use crate::error::{Result, error};
use crate::tool::{arg, run};

/// One request the token server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The `service` parameter.
    pub service: Option<String>,
    /// Every scope asked for (`repository:name:pull,push`), in order.
    pub scopes: Vec<String>,
    /// The Basic-auth user, when credentials were sent (right or wrong).
    pub user: Option<String>,
    /// The status answered: 200, or 401 for missing or bad credentials.
    pub status: u16,
}

/// What a user may do.
#[derive(Clone, Debug)]
struct User {
    name: String,
    password: String,
    /// Everything asked for, or pull only.
    read_only: bool,
}

/// Options of a [`TokenServer`].
#[derive(Debug)]
pub struct TokenServerBuilder {
    users: Vec<User>,
    allow_anonymous: bool,
    expires_in: u64,
    service: String,
    issuer: String,
}

impl Default for TokenServerBuilder {
    fn default() -> Self {
        TokenServerBuilder {
            users: Vec::new(),
            allow_anonymous: true,
            expires_in: 300,
            service: "ocicache-test-registry".into(),
            issuer: "ocicache-test-token-issuer".into(),
        }
    }
}

impl TokenServerBuilder {
    /// A user granted every action asked for (pull, push, delete).
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push(User {
            name: name.into(),
            password: password.into(),
            read_only: false,
        });
        self
    }

    /// A user granted `pull` only.
    pub fn reader(mut self, name: &str, password: &str) -> Self {
        self.users.push(User {
            name: name.into(),
            password: password.into(),
            read_only: true,
        });
        self
    }

    /// Whether requests without credentials get a pull-only token (default) or a 401.
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }

    /// The tokens' lifetime in seconds (`expires_in`; default 300).
    pub fn expires_in(mut self, seconds: u64) -> Self {
        self.expires_in = seconds;
        self
    }

    /// Generates the signing key and certificate and starts serving on a free port.
    pub fn start(self) -> Result<TokenServer> {
        let dir = tempfile::Builder::new()
            .prefix("ocicache-token-server-")
            .tempdir()?;
        let key = dir.path().join("token.key");
        let cert = dir.path().join("token.crt");
        run(
            "openssl",
            [
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "3",
                "-subj",
                "/CN=ocicache test token issuer",
                "-keyout",
                arg(&key),
                "-out",
                arg(&cert),
            ],
            None,
        )?;
        let der = run(
            "openssl",
            ["x509", "-in", arg(&cert), "-outform", "DER"],
            None,
        )?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(State {
            options: self,
            key,
            x5c: STANDARD.encode(der),
            requests: Mutex::default(),
            next_id: AtomicU64::new(1),
        });
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let state = state.clone();
            let stopping = stopping.clone();
            std::thread::Builder::new()
                .name(format!("token-server-{port}"))
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stopping.load(Ordering::SeqCst) {
                            return;
                        }
                        if let Ok(stream) = stream {
                            let _ = state.serve(stream);
                        }
                    }
                })?
        };
        Ok(TokenServer {
            _dir: dir,
            cert,
            port,
            state,
            stopping,
            thread: Some(thread),
        })
    }
}

struct State {
    options: TokenServerBuilder,
    key: PathBuf,
    x5c: String,
    requests: Mutex<Vec<TokenRequest>>,
    next_id: AtomicU64,
}

/// A running token server on `127.0.0.1`; stops on drop.
///
/// Give it to [`RegistryBuilder::token_auth`](crate::RegistryBuilder::token_auth) to make a
/// registry require its tokens.
pub struct TokenServer {
    _dir: TempDir,
    cert: PathBuf,
    port: u16,
    state: Arc<State>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TokenServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenServer")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl TokenServer {
    /// Options for a new token server (anonymous pull allowed, no users, 300 s tokens).
    pub fn builder() -> TokenServerBuilder {
        TokenServerBuilder::default()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The realm a registry sends in its challenge: `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("{}/token", self.url())
    }

    /// The service name (the tokens' audience).
    pub fn service(&self) -> &str {
        &self.state.options.service
    }

    /// The issuer name (the tokens' `iss`).
    pub fn issuer(&self) -> &str {
        &self.state.options.issuer
    }

    /// The signing key's certificate (PEM): the registry's `rootcertbundle`.
    pub fn cert_file(&self) -> PathBuf {
        self.cert.clone()
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.lock().clone()
    }

    /// How many tokens were issued (requests answered 200).
    pub fn tokens_issued(&self) -> usize {
        self.requests().iter().filter(|r| r.status == 200).count()
    }

    /// Forgets the requests seen so far.
    pub fn clear_requests(&self) {
        self.state.lock().clear();
    }

    /// A token for `scopes` as `user` would get it (for tests that talk to the registry
    /// directly); `None` for an anonymous one.
    pub fn issue(&self, user: Option<&str>, scopes: &[&str]) -> Result<String> {
        let read_only = match user {
            None => true,
            Some(name) => {
                self.state
                    .options
                    .users
                    .iter()
                    .find(|u| u.name == name)
                    .ok_or_else(|| error!("no user {name}"))?
                    .read_only
            }
        };
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        self.state.token(user, &scopes, read_only)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<TokenRequest>> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers one request, then closes the connection.
    fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        let mut authorization = None;
        for _ in 0..100 {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.trim().eq_ignore_ascii_case("authorization")
            {
                authorization = Some(value.trim().to_string());
            }
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default();
        let target = parts.next().unwrap_or_default();
        let (status, body) = self.answer(method, target, authorization.as_deref());
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            _ => "Method Not Allowed",
        };
        let challenge = if status == 401 {
            "WWW-Authenticate: Basic realm=\"ocicache-test-token\"\r\n"
        } else {
            ""
        };
        let mut out = stream;
        write!(
            out,
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n{challenge}\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        out.flush()
    }

    fn answer(&self, method: &str, target: &str, authorization: Option<&str>) -> (u16, String) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path != "/token" {
            return (404, error_body("NOT_FOUND", "no such endpoint"));
        }
        if method != "GET" {
            return (405, error_body("UNSUPPORTED", "only GET /token"));
        }
        let mut service = None;
        let mut scopes = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match name {
                "service" => service = Some(value),
                // Some clients join several scopes with spaces in one parameter.
                "scope" => {
                    scopes.extend(value.split(' ').filter(|s| !s.is_empty()).map(String::from))
                }
                _ => {}
            }
        }
        let credentials = authorization.and_then(parse_basic);
        let mut record = TokenRequest {
            service: service.clone(),
            scopes: scopes.clone(),
            user: credentials.as_ref().map(|(user, _)| user.clone()),
            status: 0,
        };
        let result = (|| {
            if service
                .as_deref()
                .is_some_and(|s| s != self.options.service)
            {
                return Err((400, error_body("DENIED", "unknown service")));
            }
            let read_only = match &credentials {
                Some((name, password)) => {
                    self.options
                        .users
                        .iter()
                        .find(|u| &u.name == name && &u.password == password)
                        .ok_or_else(|| (401, error_body("UNAUTHORIZED", "bad credentials")))?
                        .read_only
                }
                None if self.options.allow_anonymous => true,
                None => {
                    return Err((401, error_body("UNAUTHORIZED", "credentials required")));
                }
            };
            let user = credentials.as_ref().map(|(name, _)| name.as_str());
            let token = self
                .token(user, &scopes, read_only)
                .map_err(|e| (500, error_body("UNKNOWN", &e.to_string())))?;
            let now = now();
            Ok(json!({
                "token": token,
                "access_token": token,
                "expires_in": self.options.expires_in,
                "issued_at": rfc3339(now),
            })
            .to_string())
        })();
        let (status, body) = match result {
            Ok(body) => (200, body),
            Err(failure) => failure,
        };
        // Recorded before the answer goes out: a client that has it finds it counted.
        record.status = status;
        self.lock().push(record);
        (status, body)
    }

    /// A signed JWT granting `scopes` (only `pull` when `read_only`).
    fn token(&self, user: Option<&str>, scopes: &[String], read_only: bool) -> Result<String> {
        let mut access = Vec::new();
        for scope in scopes {
            // type:name:actions; a name may hold ':' (a registry host with a port).
            let (kind, rest) = scope
                .split_once(':')
                .ok_or_else(|| error!("bad scope {scope}"))?;
            let (name, actions) = rest
                .rsplit_once(':')
                .ok_or_else(|| error!("bad scope {scope}"))?;
            let granted: Vec<&str> = actions
                .split(',')
                .filter(|a| !a.is_empty() && (!read_only || *a == "pull"))
                .collect();
            if !granted.is_empty() {
                access.push(json!({ "type": kind, "name": name, "actions": granted }));
            }
        }
        let now = now();
        let header = json!({ "alg": "RS256", "typ": "JWT", "x5c": [self.x5c] });
        let claims = json!({
            "iss": self.options.issuer,
            "sub": user.unwrap_or(""),
            "aud": self.options.service,
            "exp": now + self.options.expires_in,
            "nbf": now.saturating_sub(1),
            "iat": now,
            "jti": format!("ocicache-test-{}", self.next_id.fetch_add(1, Ordering::Relaxed)),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        // RS256 is RSASSA-PKCS1-v1_5 with SHA-256: what `openssl dgst -sign` does with an
        // RSA key.
        let signature = run(
            "openssl",
            ["dgst", "-sha256", "-sign", arg(&self.key)],
            Some(signing_input.as_bytes()),
        )?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

fn error_body(code: &str, message: &str) -> String {
    json!({ "errors": [{ "code": code, "message": message }] }).to_string()
}

fn parse_basic(authorization: &str) -> Option<(String, String)> {
    let (scheme, encoded) = authorization.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (days to civil date after
/// Howard Hinnant's algorithm).
fn rfc3339(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn percent_decoding_handles_scopes() {
        assert_eq!(
            percent_decode("repository%3Alib%2Fimg%3Apull%2Cpush"),
            "repository:lib/img:pull,push"
        );
        assert_eq!(percent_decode("a+b%"), "a b%");
    }
}
