//! The core's login-file rules ([`CredentialLookup`]) for the Node entry, which reads the files
//! and runs the credential helpers (`src/credentials.js`); and the two facts of a pull that
//! lookup needs: the hosts it may talk to and a cache's `auth_file`.

use crate::{JsResult, to_js};
use ocicache_core::Error;
use ocicache_core::pull::{
    CredentialLookup, Credentials, HelperOutcome, LoginFile, LoginFileKind, LookupStep, PullConfig,
    endpoints,
};
use serde_json::{Map, Value, json};
use wasm_bindgen::prelude::*;

/// A lookup of some registries' credentials in some login files. Internal to the npm package:
/// `cache.pull` uses it when no `credentials` are given.
#[wasm_bindgen]
pub struct WasmCredentialLookup {
    files: Vec<LoginFile>,
    lookup: Option<CredentialLookup>,
}

impl Default for WasmCredentialLookup {
    fn default() -> Self {
        Self::new()
    }
}

#[wasm_bindgen]
impl WasmCredentialLookup {
    /// A lookup with no files yet.
    #[wasm_bindgen(constructor)]
    pub fn new() -> WasmCredentialLookup {
        WasmCredentialLookup {
            files: Vec::new(),
            lookup: None,
        }
    }

    /// Adds a login file that exists: its path (for errors), `docker` (Docker's `config.json`
    /// format) or `containers` (`auth.json`), and its bytes. Files are asked in the order
    /// added. Throws `invalid_config` for a malformed file.
    #[wasm_bindgen(js_name = addFile)]
    pub fn add_file(&mut self, origin: &str, kind: &str, bytes: &[u8]) -> JsResult<()> {
        let kind = match kind {
            "docker" => LoginFileKind::Docker,
            "containers" => LoginFileKind::Containers,
            other => {
                return Err(to_js(Error::InvalidArgument(format!(
                    "login file kind {other:?}: docker or containers"
                ))));
            }
        };
        self.files
            .push(LoginFile::parse(origin, kind, bytes).map_err(to_js)?);
        Ok(())
    }

    /// Starts looking up `registries` (`host[:port]` or URLs) in the files added.
    pub fn start(&mut self, registries: Vec<String>) -> JsResult<()> {
        let names: Vec<&str> = registries.iter().map(String::as_str).collect();
        let files = std::mem::take(&mut self.files);
        self.lookup = Some(CredentialLookup::new(files, &names).map_err(to_js)?);
        Ok(())
    }

    /// The next step, as JSON: `{"run": {"program", "input"}}` (run `program get` with `input`
    /// on stdin, then report with one of the `helper…` methods) or `{"done": {host:
    /// {"username", "password"} | {"identity_token"}}}`, the form of the pull's `credentials`
    /// option.
    pub fn poll(&mut self) -> JsResult<String> {
        let step = self.lookup()?.poll().map_err(to_js)?;
        Ok(match step {
            LookupStep::RunHelper(call) => {
                json!({ "run": { "program": call.program, "input": call.input } })
            }
            LookupStep::Done(found) => {
                let found: Map<String, Value> = found
                    .into_iter()
                    .map(|(host, c)| (host, credentials_json(c)))
                    .collect();
                json!({ "done": found })
            }
        }
        .to_string())
    }

    /// The helper exited (with `status`, e.g. `exit code 3`, for errors) after writing
    /// `stdout` and `stderr`.
    #[wasm_bindgen(js_name = helperExited)]
    pub fn helper_exited(
        &mut self,
        success: bool,
        status: &str,
        stdout: &[u8],
        stderr: &[u8],
    ) -> JsResult<()> {
        self.done(HelperOutcome::Exited {
            success,
            status: status.to_owned(),
            stdout: stdout.to_vec(),
            stderr: stderr.to_vec(),
        })
    }

    /// No executable helper of that name in the search path.
    #[wasm_bindgen(js_name = helperNotInstalled)]
    pub fn helper_not_installed(&mut self) -> JsResult<()> {
        self.done(HelperOutcome::NotInstalled)
    }

    /// The helper could not be run, did not answer in time, or wrote too much: `what`.
    #[wasm_bindgen(js_name = helperFailed)]
    pub fn helper_failed(&mut self, what: &str) -> JsResult<()> {
        self.done(HelperOutcome::Failed(what.to_owned()))
    }
}

impl WasmCredentialLookup {
    fn lookup(&mut self) -> JsResult<&mut CredentialLookup> {
        self.lookup.as_mut().ok_or_else(|| {
            to_js(Error::InvalidArgument(
                "the credential lookup was not started".into(),
            ))
        })
    }

    fn done(&mut self, outcome: HelperOutcome) -> JsResult<()> {
        self.lookup()?.helper_done(outcome).map_err(to_js)
    }
}

fn credentials_json(c: Credentials) -> Value {
    match c {
        Credentials::Basic { username, password } => {
            json!({ "username": username, "password": password })
        }
        Credentials::IdentityToken(token) => json!({ "identity_token": token }),
    }
}

/// The hosts a pull of `reference` with `options_json` (the engine's options, see
/// [`crate::pull::options`]) may send requests with credentials to: its mirrors' and its
/// registry's, as [`PullOptions::credentials`](ocicache_core::pull::PullOptions) keys them.
#[wasm_bindgen(js_name = pullCredentialHosts)]
pub fn pull_credential_hosts(reference: &str, options_json: &str) -> JsResult<Vec<String>> {
    let reference = crate::reference(reference)?;
    let options = crate::pull::options(options_json).map_err(to_js)?;
    Ok(endpoints(reference.registry(), &options.route)
        .into_iter()
        .map(|e| e.credentials_key)
        .collect())
}

/// The `auth_file` setting of a cache directory's `config.json` (its bytes), if any. Throws
/// `invalid_config` for a malformed pull setting.
#[wasm_bindgen(js_name = pullAuthFile)]
pub fn pull_auth_file(config_file: &[u8]) -> JsResult<Option<String>> {
    Ok(PullConfig::from_file_bytes(config_file)
        .map_err(to_js)?
        .auth_file)
}
