//! A real CNCF distribution registry (Debian's `docker-registry`, 2.8) on `127.0.0.1`,
//! behind the recording [forwarder](crate::forwarder).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tempfile::TempDir;

use crate::access_log::{AccessLog, Request};
use crate::error::{Context, Result, error};
use crate::fault::{Fault, Faults, Rule};
use crate::forwarder::{Forwarder, Shared};
use crate::tls::TestCa;
use crate::token_server::TokenServer;

/// The registry binary; `docker-registry serve CONFIG` is how Debian ships distribution.
const REGISTRY_BINARY: &str = "docker-registry";

/// How long a starting registry may take to answer `GET /v2/`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How clients must authenticate to a [`Registry`].
#[derive(Clone, Debug, Default)]
enum Auth {
    /// Anonymous access to everything.
    #[default]
    None,
    /// htpasswd Basic auth with these users and passwords.
    Htpasswd(Vec<(String, String)>),
    /// Bearer tokens from a [`TokenServer`].
    Token {
        realm: String,
        service: String,
        issuer: String,
        cert_pem: Vec<u8>,
    },
}

/// The registry a proxy-mode registry mirrors.
#[derive(Clone, Debug)]
struct Upstream {
    url: String,
    credentials: Option<(String, String)>,
    ca_pem: Option<Vec<u8>>,
}

/// Options of a [`Registry`]; [`RegistryBuilder::start`] starts it.
#[derive(Debug, Default)]
pub struct RegistryBuilder {
    auth: Auth,
    /// `Some(None)`: a CA of its own; `Some(Some(dir))`: the [`TestCa`] in `dir`.
    tls: Option<Option<PathBuf>>,
    proxy: Option<Upstream>,
    storage: Option<PathBuf>,
    port: Option<u16>,
    headers: Vec<(String, Vec<String>)>,
    redirect: Option<String>,
}

impl RegistryBuilder {
    /// Requires htpasswd Basic auth from these `(user, password)` pairs (stored as bcrypt).
    pub fn htpasswd(mut self, users: &[(&str, &str)]) -> Self {
        self.auth = Auth::Htpasswd(
            users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
        );
        self
    }

    /// Requires Bearer tokens issued by `server` (distribution's `auth.token` with the
    /// server's realm, service, issuer and certificate as `rootcertbundle`).
    pub fn token_auth(mut self, server: &TokenServer) -> Result<Self> {
        self.auth = Auth::Token {
            realm: server.realm(),
            service: server.service().to_string(),
            issuer: server.issuer().to_string(),
            cert_pem: fs::read(server.cert_file())?,
        };
        Ok(self)
    }

    /// Serves HTTPS with a certificate for `127.0.0.1` and `localhost` from a CA generated
    /// for this registry ([`Registry::ca_file`]).
    ///
    /// The recording forwarder terminates TLS (rustls, HTTP/1.1 only: no `h2` in ALPN), so
    /// that it sees the requests; the registry process behind it speaks plain HTTP on a
    /// private loopback port, told `X-Forwarded-Proto: https` so that its upload URLs say
    /// `https`.
    pub fn tls(mut self) -> Self {
        self.tls = Some(None);
        self
    }

    /// Serves HTTPS as [`RegistryBuilder::tls`] does, with `ca`'s server certificate
    /// (copied now): registries built from one CA are all trusted through its one file,
    /// [`TestCa::ca_file`].
    pub fn tls_from(mut self, ca: &TestCa) -> Self {
        self.tls = Some(Some(ca.dir().to_path_buf()));
        self
    }

    /// Adds `name: values` to every response through distribution's `http.headers` (its
    /// values are sent as repeated headers), as an operator would configure CORS.
    pub fn header(mut self, name: &str, values: &[&str]) -> Self {
        self.headers
            .push((name.into(), values.iter().map(|v| v.to_string()).collect()));
        self
    }

    /// Answers blob `GET`s with a `307` to `base_url` followed by the blob's path in the
    /// storage directory (`/docker/registry/v2/blobs/sha256/ab/abcd…/data`), through
    /// distribution's `redirect` storage middleware, as a registry on S3 or behind a CDN does.
    /// Whatever serves `base_url` must serve [`Registry::storage_dir`]'s files.
    pub fn redirect_blobs(mut self, base_url: &str) -> Self {
        self.redirect = Some(base_url.into());
        self
    }

    /// The CORS headers a browser needs to pull from this registry from `origin` (`*` for
    /// any): distribution answers the preflight `OPTIONS` itself with 200 and these headers.
    /// The same list as bindings-js/README.md's "Pulling in the browser" (`Location` is not
    /// exposed: the browser follows redirects itself).
    pub fn cors(self, origin: &str) -> Self {
        self.header("Access-Control-Allow-Origin", &[origin])
            .header("Access-Control-Allow-Methods", &["HEAD", "GET", "OPTIONS"])
            .header(
                "Access-Control-Allow-Headers",
                &["Authorization", "Accept", "Range"],
            )
            .header(
                "Access-Control-Expose-Headers",
                &[
                    "Docker-Content-Digest",
                    "WWW-Authenticate",
                    "Content-Range",
                    "Retry-After",
                ],
            )
    }

    /// Makes this a pull-through cache (`proxy.remoteurl`) of `upstream`, logging in there
    /// with `credentials` when given. A TLS upstream's CA is trusted (copied now).
    ///
    /// What distribution 2.8's proxy does, which tests must allow for:
    /// - at start it sends `GET /v2/` to the upstream (so the upstream must be running, and
    ///   its log holds that request: clear it after starting the mirror);
    /// - it sends `credentials` only to a Bearer upstream's token server, never as Basic to
    ///   the upstream itself, so an htpasswd upstream cannot be mirrored with credentials;
    /// - a blob it does not have is streamed from the upstream and, in the background,
    ///   fetched a second time to be stored: one or two upstream GETs right after the first
    ///   pull, two once stored; after that the mirror serves it alone.
    pub fn proxy(mut self, upstream: &Registry, credentials: Option<(&str, &str)>) -> Result<Self> {
        let ca_pem = match upstream.ca_file() {
            Some(path) => Some(fs::read(path)?),
            None => None,
        };
        self.proxy = Some(Upstream {
            url: upstream.url(),
            credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
            ca_pem,
        });
        Ok(self)
    }

    /// Keeps the blobs and manifests in `dir` (created if missing) instead of a temp dir, so
    /// a later registry can serve the same content.
    pub fn storage(mut self, dir: &Path) -> Self {
        self.storage = Some(dir.to_path_buf());
        self
    }

    /// Listens on this port instead of a free one (to come back where a previous registry was).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Writes the configuration and starts the registry; returns once it answers.
    pub fn start(self) -> Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("ocicache-registry-")
            .tempdir()?;
        let storage = match self.storage {
            Some(path) => path,
            None => dir.path().join("storage"),
        };
        fs::create_dir_all(&storage)?;
        let listener = TcpListener::bind(("127.0.0.1", self.port.unwrap_or(0)))
            .context(|| "binding the registry's port".into())?;
        let port = listener.local_addr()?.port();
        let tls = if let Some(shared) = &self.tls {
            let ca_dir = dir.path().join("tls");
            fs::create_dir(&ca_dir)?;
            let ca = match shared {
                Some(shared) => TestCa::at(shared).copy_to(&ca_dir)?,
                None => TestCa::generate(&ca_dir)?,
            };
            // skopeo's --cert-dir reads every *.crt in a directory as a CA.
            let cert_dir = dir.path().join("certs.d");
            fs::create_dir(&cert_dir)?;
            fs::copy(ca.ca_file(), cert_dir.join("ca.crt"))?;
            let config = ca.server_config()?;
            Some(Tls {
                ca,
                cert_dir,
                config,
            })
        } else {
            None
        };
        let mut template = config_template(dir.path(), &storage, &self.auth, self.proxy.as_ref())?;
        if let Some(base_url) = &self.redirect {
            template["middleware"] = json!({ "storage": [
                { "name": "redirect", "options": { "baseurl": base_url } },
            ] });
        }
        if !self.headers.is_empty() {
            template["http"]["headers"] = self
                .headers
                .iter()
                .map(|(n, v)| (n.clone(), json!(v)))
                .collect();
        }
        let mut env = Vec::new();
        if let Some(ca_pem) = self.proxy.as_ref().and_then(|u| u.ca_pem.as_ref()) {
            let file = dir.path().join("upstream-ca.crt");
            fs::write(&file, ca_pem)?;
            // Go reads its trust roots from here.
            env.push(("SSL_CERT_FILE".to_string(), file.display().to_string()));
        }
        let mut registry = Registry {
            log_file: dir.path().join("registry.log"),
            config_file: dir.path().join("config.json"),
            _dir: dir,
            storage,
            port,
            tls,
            template,
            env,
            process: None,
            forwarder: None,
            access_log: Arc::default(),
            faults: Arc::default(),
        };
        registry.start_with(Some(listener))?;
        Ok(registry)
    }
}

/// The TLS material of a TLS registry.
struct Tls {
    ca: TestCa,
    cert_dir: PathBuf,
    config: Arc<rustls::ServerConfig>,
}

/// A running (or stopped) distribution registry on `127.0.0.1`.
///
/// The `docker-registry` process listens on a private port; the port the tests use belongs
/// to a recording forwarder that logs every request ([`Registry::requests`]) and can inject
/// [`Fault`]s. Both stop on [`Registry::stop`] and on drop; [`Registry::start`] brings them
/// back on the same port with the same storage.
pub struct Registry {
    _dir: TempDir,
    storage: PathBuf,
    port: u16,
    tls: Option<Tls>,
    template: serde_json::Value,
    env: Vec<(String, String)>,
    log_file: PathBuf,
    config_file: PathBuf,
    process: Option<Child>,
    forwarder: Option<Forwarder>,
    access_log: Arc<AccessLog>,
    faults: Arc<Faults>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("url", &self.url())
            .field("running", &self.is_running())
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Options for a new registry: anonymous, plain HTTP, temp storage, a free port.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// Starts an anonymous plain-HTTP registry with temp storage on a free port.
    pub fn start_anonymous() -> Result<Registry> {
        Registry::builder().start()
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// `127.0.0.1:PORT`, as in a reference (`127.0.0.1:PORT/repo:tag`).
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/NAME`: a full reference for `name` (`repo:tag`, `repo@digest`).
    pub fn reference(&self, name: &str) -> String {
        format!("{}/{name}", self.host())
    }

    /// The port the registry answers on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA certificate (PEM) a client must trust, for a TLS registry.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|tls| tls.ca.ca_file())
    }

    /// A directory holding only `ca.crt`, for skopeo's `--cert-dir`, for a TLS registry.
    pub fn cert_dir(&self) -> Option<&Path> {
        self.tls.as_ref().map(|tls| tls.cert_dir.as_path())
    }

    /// Where the registry keeps blobs and manifests.
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// The registry process's own log (stdout and stderr, every start appended).
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// Whether the registry is running (between a start and a stop).
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Every request that reached the registry since it was built or since
    /// [`Registry::clear_requests`], in the order their responses arrived.
    pub fn requests(&self) -> Vec<Request> {
        self.access_log.snapshot()
    }

    /// How many requests of `method` had a path starting with `path_prefix`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.count_where(|r| r.is(method, path_prefix))
    }

    /// How many requests satisfy `predicate`.
    pub fn count_where(&self, predicate: impl Fn(&Request) -> bool) -> usize {
        self.requests().iter().filter(|r| predicate(r)).count()
    }

    /// Forgets the requests seen so far.
    pub fn clear_requests(&self) {
        self.access_log.clear();
    }

    /// Applies `fault` to the responses of the next `times` requests of `method` whose path
    /// starts with `path_prefix`.
    pub fn inject(&self, method: &str, path_prefix: &str, fault: Fault, times: usize) {
        self.faults.add(Rule {
            method: method.to_string(),
            path_prefix: path_prefix.to_string(),
            fault,
            remaining: times,
        });
    }

    /// Removes every fault not yet used up.
    pub fn clear_faults(&self) {
        self.faults.clear();
    }

    /// Starts a stopped registry on the same port and storage; a running one is left alone.
    pub fn start(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        self.start_with(None)
    }

    /// Stops and starts again (same port, same storage).
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.start()
    }

    /// Closes the port (clients see connections dropped, then refused) and kills the
    /// registry process, waiting for it. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut forwarder) = self.forwarder.take() {
            forwarder.stop();
        }
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    fn start_with(&mut self, listener: Option<TcpListener>) -> Result<()> {
        let upstream = self.spawn_registry()?;
        let listener = match listener {
            Some(listener) => listener,
            None => TcpListener::bind(("127.0.0.1", self.port))
                .context(|| format!("binding port {} again", self.port))?,
        };
        let shared = Arc::new(Shared {
            upstream,
            tls: self.tls.as_ref().map(|tls| tls.config.clone()),
            log: self.access_log.clone(),
            faults: self.faults.clone(),
        });
        self.forwarder = Some(Forwarder::start(listener, shared)?);
        Ok(())
    }

    /// Starts the process on a free private port and waits until it answers; a port taken
    /// meanwhile by someone else is retried on another.
    fn spawn_registry(&mut self) -> Result<SocketAddr> {
        let mut last_error = None;
        for _attempt in 0..3 {
            let addr = free_addr()?;
            let mut config = self.template.clone();
            config["http"]["addr"] = json!(addr.to_string());
            fs::write(&self.config_file, serde_json::to_vec_pretty(&config)?)?;
            let log_start = fs::metadata(&self.log_file).map(|m| m.len()).unwrap_or(0);
            let log = File::options()
                .create(true)
                .append(true)
                .open(&self.log_file)?;
            let mut command = Command::new(REGISTRY_BINARY);
            command
                .arg("serve")
                .arg(&self.config_file)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            // REGISTRY_* variables override the configuration file.
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("REGISTRY_") {
                    command.env_remove(name);
                }
            }
            command.envs(self.env.iter().map(|(k, v)| (k, v)));
            let child = command
                .spawn()
                .map_err(|e| error!("cannot run {REGISTRY_BINARY}: {e} (is it installed?)"))?;
            self.process = Some(child);
            match self.wait_ready(addr) {
                Ok(()) => return Ok(addr),
                Err(e) => {
                    self.stop();
                    let log = log_since(&self.log_file, log_start);
                    if !log.contains("address already in use") {
                        return Err(error!("{e}; registry log:\n{log}"));
                    }
                    last_error = Some(error!("{e}; registry log:\n{log}"));
                }
            }
        }
        Err(last_error.expect("three attempts failed"))
    }

    fn wait_ready(&mut self, addr: SocketAddr) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let process = self.process.as_mut().expect("spawned");
            if let Some(status) = process.try_wait()? {
                return Err(error!("the registry exited ({status}) while starting"));
            }
            if answers(addr) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(error!(
                    "the registry did not answer GET /v2/ on {addr} within {START_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether an HTTP server answers `GET /v2/` at `addr` (any status: 401 is up too).
fn answers(addr: SocketAddr) -> bool {
    let probe = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
        let mut start = [0; 7];
        stream.read_exact(&mut start)?;
        Ok(&start == b"HTTP/1.")
    };
    probe().unwrap_or(false)
}

fn free_addr() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn log_since(file: &Path, start: u64) -> String {
    let text = fs::read(file).unwrap_or_default();
    let start = usize::try_from(start).unwrap_or(0).min(text.len());
    String::from_utf8_lossy(&text[start..]).into_owned()
}

/// distribution's configuration, as JSON (which its YAML parser reads); `http.addr` is set
/// at each start.
fn config_template(
    dir: &Path,
    storage: &Path,
    auth: &Auth,
    proxy: Option<&Upstream>,
) -> Result<serde_json::Value> {
    let mut config = json!({
        "version": "0.1",
        // The forwarder records requests; the process's own access log would only be noise.
        "log": { "level": "info", "formatter": "text", "accesslog": { "disabled": true } },
        "storage": {
            "filesystem": { "rootdirectory": storage },
            "delete": { "enabled": true },
            "maintenance": { "uploadpurging": { "enabled": false } },
        },
        // A fixed secret: upload state survives a restart.
        "http": { "addr": "", "secret": "ocicache-registry-harness" },
    });
    match auth {
        Auth::None => {}
        Auth::Htpasswd(users) => {
            let file = dir.join("htpasswd");
            fs::write(&file, crate::htpasswd::entries(users)?)?;
            config["auth"] = json!({ "htpasswd": { "realm": "ocicache-test", "path": file } });
        }
        Auth::Token {
            realm,
            service,
            issuer,
            cert_pem,
        } => {
            let file = dir.join("token-roots.crt");
            fs::write(&file, cert_pem)?;
            config["auth"] = json!({ "token": {
                "realm": realm, "service": service, "issuer": issuer, "rootcertbundle": file,
            } });
        }
    }
    if let Some(upstream) = proxy {
        let mut section = json!({ "remoteurl": upstream.url });
        if let Some((user, password)) = &upstream.credentials {
            section["username"] = json!(user);
            section["password"] = json!(password);
        }
        config["proxy"] = section;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_that_cannot_start_fails_with_its_own_log() {
        // distribution refuses a token configuration whose root bundle holds no certificate.
        let builder = RegistryBuilder {
            auth: Auth::Token {
                realm: "http://127.0.0.1:1/token".into(),
                service: "s".into(),
                issuer: "i".into(),
                cert_pem: b"not a certificate\n".to_vec(),
            },
            ..RegistryBuilder::default()
        };
        let error = builder.start().unwrap_err().to_string();
        assert!(error.contains("exited"), "{error}");
        assert!(error.contains("registry log:"), "{error}");
        assert!(error.contains("root certificate"), "{error}");
    }
}
