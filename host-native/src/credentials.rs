//! Registry credentials from the host's login files, found the way `docker`, `podman` and
//! `skopeo` find them, for [`PullOptions::credentials`](ocicache_core::pull::PullOptions).
//!
//! See [`CredentialSources`] for the rules.

use ocicache_core::pull::Credentials;
use ocicache_core::{Error, Result};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The largest login file or helper answer read.
const MAX_BYTES: u64 = 1024 * 1024;

/// How long a credential helper may take. Helpers such as `gcloud`'s or ECR's make network
/// requests of their own, so this is generous; a helper that hangs still cannot hang a pull.
pub const DEFAULT_HELPER_TIMEOUT: Duration = Duration::from_secs(10);

/// The key Docker's CLI files Docker Hub's credentials under, and the server URL its
/// credential helpers are asked for.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// The name Docker Hub has in references and the host its API answers on: the pull engine
/// looks credentials up by the latter.
const DOCKER_HUB_NAMES: [&str; 2] = ["docker.io", ocicache_core::pull::DOCKER_HUB_API];

/// Where a host's registry credentials are: login files and the credential helpers' search
/// path.
///
/// Sources, in order, for one registry (`host[:port]` as written in references):
///
/// 1. Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`),
///    by the rules of Docker's CLI:
///    - `credHelpers[registry]` names a helper that alone answers for that registry (its
///      `auths` entry is not used, as containers-auth.json(5) says);
///    - else `credsStore` names the helper for every registry; when it has nothing for this
///      one, the `auths` entry is used (as podman and skopeo, which ignore `credsStore`, would);
///    - else the `auths` entry whose key is the registry: `host`, `host:port`,
///      `https://host[:port]/…`, or for Docker Hub `https://index.docker.io/v1/` (`docker.io`,
///      `index.docker.io` and `registry-1.docker.io` all name Docker Hub). An entry holds
///      `identitytoken`, or `auth` (base64 of `user:password`), or `username` and `password`;
///      an empty entry (`{}`, Docker's marker for "in the store") holds nothing.
/// 2. containers' `auth.json` (`$REGISTRY_AUTH_FILE`, else
///    `$XDG_RUNTIME_DIR/containers/auth.json`, then `$XDG_CONFIG_HOME/containers/auth.json`,
///    i.e. `~/.config/containers/auth.json`): `credHelpers` and `auths` as above; keys with a
///    path and no scheme (`quay.io/org`) are per-namespace credentials and do not apply to
///    the whole registry. Podman reads these before Docker's file; ocicache reads Docker's
///    first, as issue 10 specifies.
///
/// A credential helper is the program `docker-credential-<name>`, found in the search path
/// (`$PATH`'s absolute directories), run directly (never through a shell) as
/// `docker-credential-<name> get` with the server URL on stdin (`https://index.docker.io/v1/`
/// for Docker Hub, `host[:port]` otherwise). It answers `{"ServerURL","Username","Secret"}` on
/// stdout; the user name `<token>` means the secret is an identity token. A helper that exits
/// with failure saying `credentials not found` has nothing; any other failure, a helper that is
/// not installed, or one that does not answer within the timeout (10 s by default) is an
/// [`Error::InvalidConfig`] naming the helper and the file that names it.
///
/// Every file and every helper answer is read up to a bound (1 MiB), so that a huge or hostile
/// one is an error rather than exhausted memory. Secrets never appear in `Debug` output or in
/// error messages.
///
/// ```no_run
/// use ocicache::CredentialSources;
/// let sources = CredentialSources::from_env();
/// let credentials = sources.credentials_for(&["ghcr.io", "mirror.example:5000"])?;
/// # Ok::<(), ocicache::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CredentialSources {
    docker_config: Option<PathBuf>,
    containers_auth: Vec<PathBuf>,
    helper_path: Vec<PathBuf>,
    helper_timeout: Duration,
}

impl CredentialSources {
    /// The sources `docker`, `podman` and `skopeo` use, from the environment:
    /// `$DOCKER_CONFIG/config.json` or `$HOME/.docker/config.json`; `$REGISTRY_AUTH_FILE` or
    /// `$XDG_RUNTIME_DIR/containers/auth.json`, then `$XDG_CONFIG_HOME/containers/auth.json`
    /// (default `$HOME/.config`); helpers in `$PATH`'s absolute directories.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// Explicit sources: Docker's `config.json` (if any), containers' `auth.json` files in
    /// the order they are read, and the directories searched for `docker-credential-<name>`.
    /// Missing files hold nothing.
    pub fn new(
        docker_config: Option<PathBuf>,
        containers_auth: Vec<PathBuf>,
        helper_path: Vec<PathBuf>,
    ) -> Self {
        CredentialSources {
            docker_config,
            containers_auth,
            helper_path,
            helper_timeout: DEFAULT_HELPER_TIMEOUT,
        }
    }

    /// Sets how long a credential helper may take before it is killed and the lookup fails
    /// (default [`DEFAULT_HELPER_TIMEOUT`]).
    pub fn with_helper_timeout(mut self, timeout: Duration) -> Self {
        self.helper_timeout = timeout;
        self
    }

    /// The sources for an environment given as a lookup function (empty values count as
    /// unset, as Docker and containers treat them).
    fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Self {
        let var = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = var("HOME");
        let docker_config = var("DOCKER_CONFIG")
            .or_else(|| home.as_ref().map(|h| h.join(".docker")))
            .map(|dir| dir.join("config.json"));
        let mut containers_auth = Vec::new();
        if let Some(file) = var("REGISTRY_AUTH_FILE") {
            containers_auth.push(file);
        } else if let Some(run) = var("XDG_RUNTIME_DIR") {
            containers_auth.push(run.join("containers").join("auth.json"));
        }
        if let Some(config) = var("XDG_CONFIG_HOME").or_else(|| home.map(|h| h.join(".config"))) {
            containers_auth.push(config.join("containers").join("auth.json"));
        }
        // Relative entries (and the empty one, meaning the current directory) would run
        // whatever the working directory holds: Go's exec.LookPath refuses them too.
        let helper_path = var("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .filter(|d| d.is_absolute())
                    .collect()
            })
            .unwrap_or_default();
        CredentialSources::new(docker_config, containers_auth, helper_path)
    }

    /// The credentials for `registry` (`host[:port]` as in references, or a URL), or `None`
    /// when no source has any. Reads the files and runs helpers on every call.
    pub fn lookup(&self, registry: &str) -> Result<Option<Credentials>> {
        self.load()?.lookup(registry)
    }

    /// The credentials map for a pull: each of `registries` (the reference's registry and each
    /// mirror's host) that has credentials, keyed by `host[:port]` in lower case. Docker Hub's
    /// go under both `docker.io` and `registry-1.docker.io`, the host the pull engine
    /// contacts. Each file is read once.
    pub fn credentials_for(&self, registries: &[&str]) -> Result<BTreeMap<String, Credentials>> {
        let files = self.load()?;
        let mut out = BTreeMap::new();
        for registry in registries {
            let key = registry_key(registry);
            if out.contains_key(&key) {
                continue;
            }
            if let Some(credentials) = files.lookup(registry)? {
                if key == "docker.io" {
                    for name in DOCKER_HUB_NAMES {
                        out.insert(name.to_owned(), credentials.clone());
                    }
                } else {
                    out.insert(key, credentials);
                }
            }
        }
        Ok(out)
    }

    fn load(&self) -> Result<LoadedFiles<'_>> {
        let mut files = Vec::new();
        if let Some(path) = &self.docker_config
            && let Some(file) = AuthFile::load(path, FileKind::Docker)?
        {
            files.push(file);
        }
        for path in &self.containers_auth {
            if let Some(file) = AuthFile::load(path, FileKind::Containers)? {
                files.push(file);
            }
        }
        Ok(LoadedFiles {
            sources: self,
            files,
        })
    }
}

struct LoadedFiles<'a> {
    sources: &'a CredentialSources,
    files: Vec<AuthFile>,
}

impl LoadedFiles<'_> {
    fn lookup(&self, registry: &str) -> Result<Option<Credentials>> {
        let wanted = registry_key(registry);
        if wanted.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "no registry in {registry:?} to look credentials up for"
            )));
        }
        for file in &self.files {
            if let Some(helper) = file.find(&file.cred_helpers, &wanted) {
                if let Some(c) = self
                    .sources
                    .run_helper(helper, &wanted, file, "credHelpers")?
                {
                    return Ok(Some(c));
                }
                // The helper alone answers for this registry in this file.
                continue;
            }
            if let Some(store) = &file.creds_store
                && let Some(c) = self
                    .sources
                    .run_helper(store, &wanted, file, "credsStore")?
            {
                return Ok(Some(c));
            }
            if let Some(entry) = file.find(&file.auths, &wanted)
                && let Some(c) = entry.credentials()
            {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

/// `host[:port]` in lower case for a registry name or URL; Docker Hub's names are `docker.io`.
fn registry_key(registry: &str) -> String {
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum FileKind {
    /// Docker's `config.json`: a key's path is ignored (`ghcr.io/x` means `ghcr.io`).
    Docker,
    /// containers' `auth.json`: a key with a path and no scheme is a namespace.
    Containers,
}

/// One login file, parsed.
struct AuthFile {
    path: PathBuf,
    kind: FileKind,
    auths: BTreeMap<String, AuthEntry>,
    creds_store: Option<String>,
    cred_helpers: BTreeMap<String, String>,
}

impl AuthFile {
    /// Reads and parses a login file; `None` if it does not exist.
    fn load(path: &Path, kind: FileKind) -> Result<Option<AuthFile>> {
        let Some(bytes) = read_bounded(path)? else {
            return Ok(None);
        };
        AuthFile::parse(path, kind, &bytes).map(Some)
    }

    fn parse(path: &Path, kind: FileKind, bytes: &[u8]) -> Result<AuthFile> {
        let invalid = |what: String| Error::InvalidConfig(format!("{}: {what}", path.display()));
        let mut file = AuthFile {
            path: path.to_owned(),
            kind,
            auths: BTreeMap::new(),
            creds_store: None,
            cred_helpers: BTreeMap::new(),
        };
        // Docker accepts an empty file as an empty configuration.
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

    /// The value of `map` whose key names `wanted` (a [`registry_key`]): the key exactly as
    /// Docker writes it first, then any key that normalizes to it (the first in key order).
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
        if self.kind == FileKind::Containers && !had_scheme && rest.contains('/') {
            return None;
        }
        Some(registry_key(rest))
    }
}

/// The value of an optional object-valued field (`null` counts as absent).
fn object_field<'v>(
    root: &'v Map<String, Value>,
    name: &str,
) -> Result<Option<&'v Map<String, Value>>, String> {
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
    fn parse(value: &Value) -> Result<AuthEntry, String> {
        let Value::Object(fields) = value else {
            return Err("not a JSON object".into());
        };
        let string = |name: &str| -> Result<Option<&str>, String> {
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

/// Reads a whole file of at most [`MAX_BYTES`]; `None` if it does not exist.
fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>> {
    let invalid = |what: String| Error::InvalidConfig(format!("{}: {what}", path.display()));
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(invalid(format!("cannot be opened: {e}"))),
    };
    let meta = file
        .metadata()
        .map_err(|e| invalid(format!("cannot be read: {e}")))?;
    if meta.is_dir() {
        return Err(invalid("is a directory, not a file".into()));
    }
    // The size check refuses a huge regular file without reading it; the bounded read covers
    // devices and files that grow.
    let too_large = || invalid(format!("larger than {MAX_BYTES} bytes"));
    if meta.len() > MAX_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| invalid(format!("cannot be read: {e}")))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(too_large());
    }
    Ok(Some(bytes))
}

/// Standard base64, padding optional (Docker writes it; some tools do not).
fn decode_base64(input: &[u8]) -> Option<Vec<u8>> {
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

impl CredentialSources {
    /// Runs `docker-credential-<helper> get` for `registry`; `None` if it has nothing.
    fn run_helper(
        &self,
        helper: &str,
        registry: &str,
        file: &AuthFile,
        field: &str,
    ) -> Result<Option<Credentials>> {
        let program = format!("docker-credential-{helper}");
        let fail = |what: String| {
            Error::InvalidConfig(format!(
                "credential helper {program} (from {field} in {}) for {registry}: {what}",
                file.path.display()
            ))
        };
        if helper.is_empty()
            || !helper
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(Error::InvalidConfig(format!(
                "{}: {field} names {helper:?}, not a credential helper name",
                file.path.display()
            )));
        }
        let path = self
            .helper_path
            .iter()
            .map(|dir| dir.join(&program))
            .find(|p| is_executable(p))
            .ok_or_else(|| fail("not installed (not found in the search path)".into()))?;
        let server = if registry == "docker.io" {
            DOCKER_HUB_SERVER
        } else {
            registry
        };
        let output = run_bounded(&path, server.as_bytes(), self.helper_timeout).map_err(fail)?;
        if !output.success {
            // By the credential helpers' protocol the message is on stdout; some use stderr.
            let message = [&output.stdout, &output.stderr]
                .into_iter()
                .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                .find(|m| !m.is_empty())
                .unwrap_or_default();
            if message
                .to_ascii_lowercase()
                .contains("credentials not found")
            {
                return Ok(None);
            }
            return Err(fail(format!(
                "failed ({}): {}",
                output.status,
                first_line(&message)
            )));
        }
        let answer: Value = serde_json::from_slice(&output.stdout)
            .map_err(|e| fail(format!("answered something other than JSON: {e}")))?;
        let string_field = |name: &str| -> Result<String> {
            match answer.get(name) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(fail(format!("answered a {name} that is not a string"))),
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
}

/// The first line of a message, at most 200 characters (a helper's message goes into an error).
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    match line.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line.to_owned(),
    }
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// What a helper did.
struct Output {
    success: bool,
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs `program get` with `input` on stdin, reading at most [`MAX_BYTES`] of each output,
/// killing it after `timeout`.
fn run_bounded(program: &Path, input: &[u8], timeout: Duration) -> Result<Output, String> {
    let deadline = Instant::now() + timeout;
    let mut command = Command::new(program);
    command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn(&mut command).map_err(|e| format!("cannot be started: {e}"))?;
    let stdout = read_pipe(child.stdout.take());
    let stderr = read_pipe(child.stderr.take());
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading gives EPIPE; its exit status tells the rest.
        let _ = stdin.write_all(input);
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "did not answer within {} ms; killed",
                    timeout.as_millis()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("cannot be waited for: {e}"));
            }
        }
    };
    // A process the helper left behind may hold its pipes open: wait for them only until the
    // deadline (plus a moment for the readers to finish).
    let collect = |rx: mpsc::Receiver<std::io::Result<Vec<u8>>>, name: &str| {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        match rx.recv_timeout(wait) {
            Ok(Ok(bytes)) if bytes.len() as u64 > MAX_BYTES => {
                Err(format!("wrote more than {MAX_BYTES} bytes to {name}"))
            }
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(e)) => Err(format!("{name} could not be read: {e}")),
            Err(_) => Err(format!("did not close its {name}")),
        }
    };
    Ok(Output {
        success: status.success(),
        status,
        stdout: collect(stdout, "stdout")?,
        stderr: collect(stderr, "stderr")?,
    })
}

/// Reads a pipe to its end on a thread of its own, so that a helper filling one pipe cannot
/// block on it while the caller waits on the other. The reader stops at the bound and drops
/// the pipe: the helper then dies of SIGPIPE or gets EPIPE rather than block.
fn read_pipe<R: Read + Send + 'static>(
    pipe: Option<R>,
) -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    if let Some(pipe) = pipe {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let read = pipe.take(MAX_BYTES + 1).read_to_end(&mut bytes);
            let _ = tx.send(read.map(|_| bytes));
        });
    } else {
        let _ = tx.send(Ok(Vec::new()));
    }
    rx
}

/// Spawns, retrying briefly on `ETXTBSY`: an executable that was just written (a freshly
/// installed helper, or a test's) can be busy while another thread's fork still holds it
/// open for writing.
fn spawn(command: &mut Command) -> std::io::Result<std::process::Child> {
    let mut attempts = 0;
    loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempts < 20 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests;
