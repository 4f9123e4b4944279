//! Registry credentials from the host's login files, found the way `docker`, `podman` and
//! `skopeo` find them, for [`PullOptions::credentials`](ocicache_core::pull::PullOptions).
//!
//! See [`CredentialSources`] for the rules. They are the core's
//! ([`ocicache_core::pull::CredentialLookup`]), shared with the npm package; this module reads
//! the files and runs the helpers.

use ocicache_core::pull::{
    CredentialLookup, Credentials, HelperCall, HelperOutcome, LoginFile, LoginFileKind, LookupStep,
    MAX_LOGIN_BYTES as MAX_BYTES, registry_key,
};
use ocicache_core::{Error, Result};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a credential helper may take. Helpers such as `gcloud`'s or ECR's make network
/// requests of their own, so this is generous; a helper that hangs still cannot hang a pull.
pub const DEFAULT_HELPER_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a host's registry credentials are: login files and the credential helpers' search
/// path.
///
/// Sources, in order, for one registry (`host[:port]` as written in references):
///
/// 0. the file given with [`with_auth_file`](Self::with_auth_file) (a cache's `auth_file`
///    setting), in Docker's format, read as the next one;
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
    auth_file: Option<PathBuf>,
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
            auth_file: None,
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

    /// Puts a credentials file in Docker's `config.json` format before every other source:
    /// a cache directory's `auth_file` setting ([`PullConfig::auth_file`]).
    ///
    /// [`PullConfig::auth_file`]: ocicache_core::pull::PullConfig::auth_file
    pub fn with_auth_file(mut self, file: PathBuf) -> Self {
        self.auth_file = Some(file);
        self
    }

    /// The credentials for `registry` (`host[:port]` as in references, or a URL), or `None`
    /// when no source has any. Reads the files and runs helpers on every call.
    pub fn lookup(&self, registry: &str) -> Result<Option<Credentials>> {
        Ok(self
            .credentials_for(&[registry])?
            .remove(&registry_key(registry)))
    }

    /// The credentials map for a pull: each of `registries` (the reference's registry and each
    /// mirror's host) that has credentials, keyed by `host[:port]` in lower case. Docker Hub's
    /// go under both `docker.io` and `registry-1.docker.io`, the host the pull engine
    /// contacts. Each file is read once.
    pub fn credentials_for(&self, registries: &[&str]) -> Result<BTreeMap<String, Credentials>> {
        let mut lookup = CredentialLookup::new(self.load()?, registries)?;
        loop {
            match lookup.poll()? {
                LookupStep::RunHelper(call) => lookup.helper_done(self.run_helper(&call))?,
                LookupStep::Done(found) => return Ok(found),
            }
        }
    }

    /// The login files that exist, parsed, in the order they are asked.
    fn load(&self) -> Result<Vec<LoginFile>> {
        let docker = self.auth_file.iter().chain(&self.docker_config);
        let files = docker.map(|p| (p, LoginFileKind::Docker)).chain(
            self.containers_auth
                .iter()
                .map(|p| (p, LoginFileKind::Containers)),
        );
        let mut out = Vec::new();
        for (path, kind) in files {
            if let Some(bytes) = read_bounded(path)? {
                out.push(LoginFile::parse(&path.display().to_string(), kind, &bytes)?);
            }
        }
        Ok(out)
    }

    /// Runs a helper the lookup asked for: found in the search path, killed after the timeout.
    fn run_helper(&self, call: &HelperCall) -> HelperOutcome {
        let Some(path) = self
            .helper_path
            .iter()
            .map(|dir| dir.join(&call.program))
            .find(|p| is_executable(p))
        else {
            return HelperOutcome::NotInstalled;
        };
        match run_bounded(&path, call.input.as_bytes(), self.helper_timeout) {
            Ok(output) => HelperOutcome::Exited {
                success: output.status.success(),
                status: output.status.to_string(),
                stdout: output.stdout,
                stderr: output.stderr,
            },
            Err(what) => HelperOutcome::Failed(what),
        }
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
