//! Registry credentials from login files, sans-I/O: the rules by which `docker`, `podman` and
//! `skopeo` find a registry's credentials in Docker's `config.json` and containers'
//! `auth.json`, for [`PullOptions::credentials`](super::PullOptions::credentials). The host
//! reads the files ([`LoginFile::parse`] takes their bytes) and runs the credential helpers
//! that a [`CredentialLookup`] asks for; everything else is decided here, so that every host
//! finds the same credentials.
//!
//! For one registry (`host[:port]` as written in references), the files are asked in the order
//! the host gives them (the native host and Node: `config.json`'s `auth_file`, then Docker's
//! `config.json`, then containers' `auth.json` files). In each file:
//!
//! - `credHelpers[registry]` names a helper that alone answers for that registry (its `auths`
//!   entry is not used, as containers-auth.json(5) says);
//! - else `credsStore` names the helper for every registry; when it has nothing for this one,
//!   the `auths` entry is used (as podman and skopeo, which ignore `credsStore`, would);
//! - else the `auths` entry whose key is the registry: `host`, `host:port`,
//!   `https://host[:port]/…`, or for Docker Hub `https://index.docker.io/v1/` (`docker.io`,
//!   `index.docker.io` and `registry-1.docker.io` all name Docker Hub). An entry holds
//!   `identitytoken`, or `auth` (base64 of `user:password`), or `username` and `password`; an
//!   empty entry (`{}`, Docker's marker for "in the store") holds nothing. In Docker's file a
//!   key's path is ignored (`ghcr.io/x` means `ghcr.io`); in containers' files a key with a
//!   path and no scheme (`quay.io/org`) is a namespace's and does not apply to the registry.
//!
//! The first file with credentials answers. A credential helper is the program
//! `docker-credential-<name>`, run as `docker-credential-<name> get` with the server URL on
//! stdin (`https://index.docker.io/v1/` for Docker Hub, `host[:port]` otherwise); it answers
//! `{"ServerURL","Username","Secret"}` on stdout, the user name `<token>` meaning the secret is
//! an identity token. A helper that fails saying `credentials not found` has nothing; any other
//! failure is an [`Error::InvalidConfig`] naming the helper and the file that names it.
//!
//! Secrets never appear in `Debug` output or in error messages.

use super::auth::Credentials;
use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The largest login file or helper answer a host reads: a huge or hostile one is an error
/// rather than exhausted memory.
pub const MAX_LOGIN_BYTES: u64 = 1024 * 1024;

/// The key Docker's CLI files Docker Hub's credentials under, and the server URL its
/// credential helpers are asked for.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// The name Docker Hub has in references and the host its API answers on: the pull engine
/// looks credentials up by the latter.
const DOCKER_HUB_NAMES: [&str; 2] = ["docker.io", super::DOCKER_HUB_API];

/// Which format a login file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFileKind {
    /// Docker's `config.json` (and `auth_file` in a cache's `config.json`): a key's path is
    /// ignored.
    Docker,
    /// containers' `auth.json`: a key with a path and no scheme is a namespace.
    Containers,
}

/// One login file, parsed. Its `Debug` output shows no secret.
pub struct LoginFile {
    origin: String,
    kind: LoginFileKind,
    auths: BTreeMap<String, AuthEntry>,
    creds_store: Option<String>,
    cred_helpers: BTreeMap<String, String>,
}

impl std::fmt::Debug for LoginFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginFile")
            .field("origin", &self.origin)
            .field("kind", &self.kind)
            .field("auths", &self.auths.keys().collect::<Vec<_>>())
            .field("creds_store", &self.creds_store)
            .field("cred_helpers", &self.cred_helpers)
            .finish()
    }
}

impl LoginFile {
    /// Parses a login file's bytes. `origin` (its path) names the file in errors: a malformed
    /// file is an [`Error::InvalidConfig`] that says where, never what secret it held. An
    /// empty (or all-whitespace) file is an empty configuration, as Docker takes it.
    ///
    /// ```
    /// use ocicache_core::pull::{CredentialLookup, LoginFile, LoginFileKind, LookupStep};
    /// let file = LoginFile::parse("/home/u/.docker/config.json", LoginFileKind::Docker,
    ///     br#"{"auths": {"ghcr.io": {"identitytoken": "t"}}}"#)?;
    /// let mut lookup = CredentialLookup::new(vec![file], &["ghcr.io"])?;
    /// let LookupStep::Done(found) = lookup.poll()? else { unreachable!() };
    /// assert!(found.contains_key("ghcr.io"));
    /// # Ok::<(), ocicache_core::Error>(())
    /// ```
    pub fn parse(origin: &str, kind: LoginFileKind, bytes: &[u8]) -> Result<LoginFile> {
        let invalid = |what: String| Error::InvalidConfig(format!("{origin}: {what}"));
        if bytes.len() as u64 > MAX_LOGIN_BYTES {
            return Err(invalid(format!("larger than {MAX_LOGIN_BYTES} bytes")));
        }
        let mut file = LoginFile {
            origin: origin.to_owned(),
            kind,
            auths: BTreeMap::new(),
            creds_store: None,
            cred_helpers: BTreeMap::new(),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(file);
        }
        // Parsed as untyped JSON and picked apart by hand: serde's type errors quote the
        // offending value, which may be a secret. Syntax errors give only a position.
        let root: Value = serde_json::from_slice(bytes).map_err(|e| invalid(format!("{e}")))?;
        let Value::Object(root) = root else {
            return Err(invalid("not a JSON object".into()));
        };
        if let Some(auths) = object_field(&root, "auths").map_err(invalid)? {
            for (key, entry) in auths {
                let entry = AuthEntry::parse(entry)
                    .map_err(|what| invalid(format!("auths[{key:?}]: {what}")))?;
                file.auths.insert(key.clone(), entry);
            }
        }
        if let Some(helpers) = object_field(&root, "credHelpers").map_err(invalid)? {
            for (key, helper) in helpers {
                let Value::String(helper) = helper else {
                    return Err(invalid(format!("credHelpers[{key:?}] is not a string")));
                };
                file.cred_helpers.insert(key.clone(), helper.clone());
            }
        }
        match root.get("credsStore") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(Value::String(s)) => file.creds_store = Some(s.clone()),
            Some(_) => return Err(invalid("credsStore is not a string".into())),
        }
        Ok(file)
    }

    /// The path (or name) the file was parsed under.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Where this file says to look for `wanted` (a [`registry_key`]), in order.
    fn sources(&self, index: usize, wanted: &str) -> Vec<Source> {
        if let Some(helper) = self.find(&self.cred_helpers, wanted) {
            // The helper alone answers for this registry in this file.
            return vec![Source::Helper {
                file: index,
                name: helper.clone(),
                field: "credHelpers",
            }];
        }
        let mut out = Vec::new();
        if let Some(store) = &self.creds_store {
            out.push(Source::Helper {
                file: index,
                name: store.clone(),
                field: "credsStore",
            });
        }
        if let Some(c) = self
            .find(&self.auths, wanted)
            .and_then(AuthEntry::credentials)
        {
            out.push(Source::Stored(c));
        }
        out
    }

    /// The value of `map` whose key names `wanted`: the key exactly as Docker writes it first,
    /// then any key that normalizes to it (the first in key order).
    fn find<'m, T>(&self, map: &'m BTreeMap<String, T>, wanted: &str) -> Option<&'m T> {
        let canonical = if wanted == "docker.io" {
            DOCKER_HUB_SERVER
        } else {
            wanted
        };
        map.get(canonical).or_else(|| {
            map.iter()
                .find(|(k, _)| self.key_registry(k).as_deref() == Some(wanted))
                .map(|(_, v)| v)
        })
    }

    /// The registry a key of this file applies to as a whole, if it does.
    fn key_registry(&self, key: &str) -> Option<String> {
        let (rest, had_scheme) = strip_scheme(key);
        if self.kind == LoginFileKind::Containers && !had_scheme && rest.contains('/') {
            return None;
        }
        Some(registry_key(rest))
    }
}

/// `host[:port]` in lower case for a registry name or URL; Docker Hub's names
/// (`index.docker.io`, `registry-1.docker.io`) are `docker.io`.
///
/// ```
/// use ocicache_core::pull::registry_key;
/// assert_eq!(registry_key("https://Mirror.Example:5000/v2/"), "mirror.example:5000");
/// assert_eq!(registry_key("registry-1.docker.io"), "docker.io");
/// ```
pub fn registry_key(registry: &str) -> String {
    let host = strip_scheme(registry).0;
    let host = host.split('/').next().unwrap_or(host).to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        _ => host,
    }
}

/// The string without an `http://` or `https://` prefix, and whether it had one.
fn strip_scheme(s: &str) -> (&str, bool) {
    for scheme in ["https://", "http://"] {
        if s.len() >= scheme.len() && s[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return (&s[scheme.len()..], true);
        }
    }
    (s, false)
}

/// The value of an optional object-valued field (`null` counts as absent).
fn object_field<'v>(
    root: &'v Map<String, Value>,
    name: &str,
) -> std::result::Result<Option<&'v Map<String, Value>>, String> {
    match root.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(format!("{name} is not a JSON object")),
    }
}

/// An `auths` entry. No `Debug`: it holds secrets.
struct AuthEntry {
    identity_token: Option<String>,
    /// From `auth`, or else from `username` and `password`.
    basic: Option<(String, String)>,
}

impl AuthEntry {
    fn parse(value: &Value) -> std::result::Result<AuthEntry, String> {
        let Value::Object(fields) = value else {
            return Err("not a JSON object".into());
        };
        let string = |name: &str| -> std::result::Result<Option<&str>, String> {
            match fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(format!("{name} is not a string")),
            }
        };
        let identity_token = string("identitytoken")?.map(str::to_owned);
        let basic = match string("auth")? {
            Some(auth) => {
                let decoded = decode_base64(auth.as_bytes())
                    .ok_or_else(|| "auth is not valid base64".to_owned())?;
                let decoded =
                    String::from_utf8(decoded).map_err(|_| "auth is not UTF-8".to_owned())?;
                let (user, password) = decoded
                    .split_once(':')
                    .ok_or_else(|| "auth is not base64 of user:password".to_owned())?;
                // Docker trims NULs that some writers left at the end of the password.
                Some((user.to_owned(), password.trim_matches('\0').to_owned()))
            }
            None => match (string("username")?, string("password")?) {
                (Some(user), Some(password)) => Some((user.to_owned(), password.to_owned())),
                _ => None,
            },
        };
        Ok(AuthEntry {
            identity_token,
            basic,
        })
    }

    /// The entry's credentials: an identity token wins over a password, as in Docker.
    fn credentials(&self) -> Option<Credentials> {
        if let Some(token) = &self.identity_token {
            return Some(Credentials::IdentityToken(token.clone()));
        }
        self.basic
            .as_ref()
            .map(|(username, password)| Credentials::Basic {
                username: username.clone(),
                password: password.clone(),
            })
    }
}

/// Standard base64, padding optional (Docker writes it; some tools do not).
pub(crate) fn decode_base64(input: &[u8]) -> Option<Vec<u8>> {
    let trimmed = input
        .strip_suffix(b"==")
        .or_else(|| input.strip_suffix(b"="));
    let data = trimmed.unwrap_or(input);
    if data.len() % 4 == 1 || (trimmed.is_some() && !input.len().is_multiple_of(4)) {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 2);
    for chunk in data.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    Some(out)
}

/// One place a file says a registry's credentials may be.
enum Source {
    /// An `auths` entry's credentials.
    Stored(Credentials),
    /// A credential helper, named by `field` of file `file`.
    Helper {
        file: usize,
        name: String,
        field: &'static str,
    },
}

/// A credential helper to run: `program get`, found in the host's search path (absolute
/// directories only), run directly (never through a shell), with `input` on stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperCall {
    /// `docker-credential-<name>`: a file name, never a path.
    pub program: String,
    /// The server URL the helper is asked for, written to its stdin.
    pub input: String,
}

/// What running a [`HelperCall`] gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelperOutcome {
    /// The helper ran and exited; each output read up to [`MAX_LOGIN_BYTES`].
    Exited {
        /// Whether it exited with success.
        success: bool,
        /// Its exit status as the host describes it (`exit status: 3`), for the error.
        status: String,
        /// What it wrote to stdout.
        stdout: Vec<u8>,
        /// What it wrote to stderr.
        stderr: Vec<u8>,
    },
    /// No executable `program` in the search path.
    NotInstalled,
    /// It could not be run, did not answer in time, or wrote too much: what happened.
    Failed(String),
}

/// What a [`CredentialLookup`] needs next.
#[derive(Debug)]
pub enum LookupStep {
    /// Run this helper and report with [`CredentialLookup::helper_done`].
    RunHelper(HelperCall),
    /// The credentials found, keyed as [`PullOptions::credentials`](super::PullOptions) wants
    /// them: `host[:port]` in lower case; Docker Hub's under both `docker.io` and
    /// `registry-1.docker.io`, the host the pull engine contacts. Registries without
    /// credentials are absent.
    Done(BTreeMap<String, Credentials>),
}

/// The registry being looked up and where to look next.
struct Cursor {
    registry: String,
    sources: std::vec::IntoIter<Source>,
    /// The helper the host is running: its source's file and field.
    running: Option<(usize, &'static str, HelperCall)>,
}

/// The credentials for some registries from some login files, found by the rules of this
/// module. Sans-I/O: [`poll`](Self::poll) until [`LookupStep::Done`], running each helper it
/// asks for and reporting what it gave with [`helper_done`](Self::helper_done).
///
/// ```
/// use ocicache_core::pull::{
///     Credentials, CredentialLookup, HelperOutcome, LoginFile, LoginFileKind, LookupStep,
/// };
/// let file = LoginFile::parse("config.json", LoginFileKind::Docker,
///     br#"{"credsStore": "desktop"}"#)?;
/// let mut lookup = CredentialLookup::new(vec![file], &["registry.example"])?;
/// let LookupStep::RunHelper(call) = lookup.poll()? else { unreachable!() };
/// assert_eq!((call.program.as_str(), call.input.as_str()),
///            ("docker-credential-desktop", "registry.example"));
/// lookup.helper_done(HelperOutcome::Exited {
///     success: true,
///     status: "exit status: 0".into(),
///     stdout: br#"{"Username": "u", "Secret": "s"}"#.to_vec(),
///     stderr: Vec::new(),
/// })?;
/// let LookupStep::Done(found) = lookup.poll()? else { unreachable!() };
/// assert!(matches!(&found["registry.example"], Credentials::Basic { username, .. } if username == "u"));
/// # Ok::<(), ocicache_core::Error>(())
/// ```
pub struct CredentialLookup {
    files: Vec<LoginFile>,
    /// Registries still to look up, in order, as [`registry_key`]s.
    pending: std::vec::IntoIter<String>,
    current: Option<Cursor>,
    found: BTreeMap<String, Credentials>,
}

impl std::fmt::Debug for CredentialLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialLookup")
            .field("files", &self.files)
            .field("found", &self.found)
            .finish_non_exhaustive()
    }
}

impl CredentialLookup {
    /// A lookup of `registries` (`host[:port]` as in references, or URLs; each once) in
    /// `files`, in their order. An empty registry name is an [`Error::InvalidArgument`].
    pub fn new(files: Vec<LoginFile>, registries: &[&str]) -> Result<CredentialLookup> {
        let mut keys: Vec<String> = Vec::new();
        for registry in registries {
            let key = registry_key(registry);
            if key.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "no registry in {registry:?} to look credentials up for"
                )));
            }
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        Ok(CredentialLookup {
            files,
            pending: keys.into_iter(),
            current: None,
            found: BTreeMap::new(),
        })
    }

    /// The next step. Calling it while a helper's outcome is awaited is an
    /// [`Error::InvalidArgument`].
    pub fn poll(&mut self) -> Result<LookupStep> {
        loop {
            let Some(cursor) = &mut self.current else {
                let Some(registry) = self.pending.next() else {
                    return Ok(LookupStep::Done(std::mem::take(&mut self.found)));
                };
                let sources: Vec<Source> = self
                    .files
                    .iter()
                    .enumerate()
                    .flat_map(|(i, f)| f.sources(i, &registry))
                    .collect();
                self.current = Some(Cursor {
                    registry,
                    sources: sources.into_iter(),
                    running: None,
                });
                continue;
            };
            if cursor.running.is_some() {
                return Err(Error::InvalidArgument(
                    "a credential helper's outcome is awaited (helper_done)".into(),
                ));
            }
            match cursor.sources.next() {
                None => self.current = None,
                Some(Source::Stored(c)) => {
                    let registry = cursor.registry.clone();
                    self.record(registry, c);
                }
                Some(Source::Helper { file, name, field }) => {
                    let origin = &self.files[file].origin;
                    if name.is_empty()
                        || !name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                    {
                        return Err(Error::InvalidConfig(format!(
                            "{origin}: {field} names {name:?}, not a credential helper name"
                        )));
                    }
                    let input = if cursor.registry == "docker.io" {
                        DOCKER_HUB_SERVER.to_owned()
                    } else {
                        cursor.registry.clone()
                    };
                    let call = HelperCall {
                        program: format!("docker-credential-{name}"),
                        input,
                    };
                    cursor.running = Some((file, field, call.clone()));
                    return Ok(LookupStep::RunHelper(call));
                }
            }
        }
    }

    /// Reports what the helper of the last [`LookupStep::RunHelper`] gave. A helper that
    /// failed other than by saying `credentials not found`, or answered something other than
    /// the protocol's JSON, is an [`Error::InvalidConfig`] naming it, the file and field that
    /// name it, and the registry.
    pub fn helper_done(&mut self, outcome: HelperOutcome) -> Result<()> {
        let Some((file, field, call)) = self.current.as_mut().and_then(|c| c.running.take()) else {
            return Err(Error::InvalidArgument(
                "no credential helper is running".into(),
            ));
        };
        let registry = self
            .current
            .as_ref()
            .map(|c| c.registry.clone())
            .unwrap_or_default();
        let origin = &self.files[file].origin;
        let fail = |what: String| {
            Error::InvalidConfig(format!(
                "credential helper {} (from {field} in {origin}) for {registry}: {what}",
                call.program
            ))
        };
        let (stdout, stderr, status) = match outcome {
            HelperOutcome::Exited {
                success: true,
                stdout,
                ..
            } => {
                if let Some(c) = parse_helper_answer(&stdout).map_err(fail)? {
                    self.record(registry, c);
                }
                return Ok(());
            }
            HelperOutcome::Exited {
                success: false,
                status,
                stdout,
                stderr,
            } => (stdout, stderr, status),
            HelperOutcome::NotInstalled => {
                return Err(fail("not installed (not found in the search path)".into()));
            }
            HelperOutcome::Failed(what) => return Err(fail(what)),
        };
        // By the credential helpers' protocol the message is on stdout; some use stderr.
        let message = [&stdout, &stderr]
            .into_iter()
            .map(|b| String::from_utf8_lossy(b).trim().to_owned())
            .find(|m| !m.is_empty())
            .unwrap_or_default();
        if message
            .to_ascii_lowercase()
            .contains("credentials not found")
        {
            return Ok(());
        }
        Err(fail(format!("failed ({status}): {}", first_line(&message))))
    }

    /// Records `registry`'s credentials and moves on to the next registry.
    fn record(&mut self, registry: String, credentials: Credentials) {
        self.current = None;
        if registry == "docker.io" {
            for name in DOCKER_HUB_NAMES {
                self.found.insert(name.to_owned(), credentials.clone());
            }
        } else {
            self.found.insert(registry, credentials);
        }
    }
}

/// A helper's JSON answer: `None` when its secret is empty.
fn parse_helper_answer(stdout: &[u8]) -> std::result::Result<Option<Credentials>, String> {
    let answer: Value = serde_json::from_slice(stdout)
        .map_err(|e| format!("answered something other than JSON: {e}"))?;
    let string_field = |name: &str| -> std::result::Result<String, String> {
        match answer.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("answered a {name} that is not a string")),
        }
    };
    let (username, secret) = (string_field("Username")?, string_field("Secret")?);
    Ok(match (username.as_str(), secret.is_empty()) {
        (_, true) => None,
        ("<token>", false) => Some(Credentials::IdentityToken(secret)),
        (_, false) => Some(Credentials::Basic {
            username,
            password: secret,
        }),
    })
}

/// The first line of a message, at most 200 characters (a helper's message goes into an error).
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    match line.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests;
