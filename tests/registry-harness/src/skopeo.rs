//! Filling a [`Registry`] from OCI image layouts, and reading it back, with Debian's `skopeo`.
//!
//! skopeo runs isolated from the machine's configuration: an empty auth file, an empty
//! `registries.conf`, `--insecure-policy` (no `policy.json` needed).

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

use crate::error::{Result, error};
use crate::registry::Registry;
use crate::tool::{arg, run_command};

/// Copies `oci:LAYOUT_DIR:LAYOUT_REF` to `docker://HOST/REFERENCE` with
/// `skopeo copy --all --preserve-digests`, so that the registry holds exactly the layout's
/// manifests (and every platform of an index). `reference` is `repo:tag` or `repo@digest`.
pub fn push(
    layout_dir: &Path,
    layout_ref: &str,
    registry: &Registry,
    reference: &str,
    credentials: Option<(&str, &str)>,
) -> Result<()> {
    let mut skopeo = Skopeo::new()?;
    skopeo.args(["copy", "--all", "--preserve-digests", "--quiet"]);
    skopeo.registry_flags("dest-", registry, credentials);
    let (media_type, digest) = find_ref(layout_dir, layout_ref)?;
    // skopeo's oci: transport only sees OCI media types in index.json; Docker manifests go
    // through its dir: transport, which keeps their bytes (and so their digests).
    let _dir_copy;
    if media_type.starts_with("application/vnd.docker.") {
        let dir = skopeo.config.path().join("dir");
        write_dir_transport(layout_dir, &digest, &dir)?;
        skopeo.arg(format!("dir:{}", arg(&dir)));
        _dir_copy = dir;
    } else {
        skopeo.arg(format!("oci:{}:{layout_ref}", arg(layout_dir)));
    }
    skopeo.arg(format!("docker://{}/{reference}", registry.host()));
    skopeo.run().map(drop)
}

/// The media type and digest `index.json` gives `layout_ref`.
fn find_ref(layout_dir: &Path, layout_ref: &str) -> Result<(String, String)> {
    let index: Value = serde_json::from_slice(&fs::read(layout_dir.join("index.json"))?)?;
    let entry = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == layout_ref)
        .ok_or_else(|| error!("no {layout_ref} in {}/index.json", layout_dir.display()))?;
    let field = |name: &str| entry[name].as_str().unwrap_or_default().to_string();
    Ok((field("mediaType"), field("digest")))
}

/// Lays out the manifest `digest` of `layout_dir` and everything it references as skopeo's
/// `dir:` transport reads it: `manifest.json` for the top, `HEX.manifest.json` for a list's
/// instances, `HEX` for each blob, and a `version` file.
fn write_dir_transport(layout_dir: &Path, digest: &str, dir: &Path) -> Result<()> {
    let blob = |digest: &str| {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        layout_dir.join("blobs/sha256").join(hex)
    };
    let hex = |digest: &str| digest.strip_prefix("sha256:").unwrap_or(digest).to_string();
    fs::create_dir_all(dir)?;
    fs::write(dir.join("version"), "Directory Transport Version: 1.1\n")?;
    let top = fs::read(blob(digest))?;
    fs::copy(blob(digest), dir.join("manifest.json"))?;
    let top: Value = serde_json::from_slice(&top)?;
    let mut images = Vec::new();
    match top["manifests"].as_array() {
        Some(instances) => {
            for instance in instances {
                let digest = instance["digest"].as_str().unwrap_or_default();
                fs::copy(
                    blob(digest),
                    dir.join(format!("{}.manifest.json", hex(digest))),
                )?;
                images.push(serde_json::from_slice::<Value>(&fs::read(blob(digest))?)?);
            }
        }
        None => images.push(top),
    }
    for image in images {
        let layers = image["layers"].as_array().cloned().unwrap_or_default();
        for descriptor in std::iter::once(&image["config"]).chain(&layers) {
            let digest = descriptor["digest"].as_str().unwrap_or_default();
            fs::copy(blob(digest), dir.join(hex(digest)))?;
        }
    }
    Ok(())
}

/// The manifest (or index) bytes the registry serves for `reference`, as
/// `skopeo inspect --raw` gives them.
pub fn inspect_raw(
    registry: &Registry,
    reference: &str,
    credentials: Option<(&str, &str)>,
) -> Result<Vec<u8>> {
    let mut skopeo = Skopeo::new()?;
    skopeo.args(["inspect", "--raw"]);
    skopeo.registry_flags("", registry, credentials);
    skopeo.arg(format!("docker://{}/{reference}", registry.host()));
    skopeo.run()
}

/// The manifest (or index) bytes that `skopeo inspect --raw oci:LAYOUT_DIR:LAYOUT_REF` reads
/// from an OCI image layout (one that `ocicache export` wrote, say).
pub fn inspect_layout_raw(layout_dir: &Path, layout_ref: &str) -> Result<Vec<u8>> {
    let mut skopeo = Skopeo::new()?;
    skopeo.args(["inspect", "--raw"]);
    skopeo.arg(format!("oci:{}:{layout_ref}", arg(layout_dir)));
    skopeo.run()
}

/// Copies `docker://HOST/REFERENCE` (every platform) into the OCI layout `layout_dir` as
/// `layout_ref`, as a user making an air-gap bundle would.
pub fn pull_to_layout(
    registry: &Registry,
    reference: &str,
    layout_dir: &Path,
    layout_ref: &str,
    credentials: Option<(&str, &str)>,
) -> Result<()> {
    let mut skopeo = Skopeo::new()?;
    skopeo.args(["copy", "--all", "--preserve-digests", "--quiet"]);
    skopeo.registry_flags("src-", registry, credentials);
    skopeo.arg(format!("docker://{}/{reference}", registry.host()));
    skopeo.arg(format!("oci:{}:{layout_ref}", arg(layout_dir)));
    skopeo.run().map(drop)
}

/// One skopeo command line, isolated from the machine's configuration.
struct Skopeo {
    command: Command,
    config: TempDir,
}

impl Skopeo {
    fn new() -> Result<Skopeo> {
        let config = tempfile::Builder::new()
            .prefix("ocicache-skopeo-")
            .tempdir()?;
        fs::write(config.path().join("auth.json"), "{}")?;
        fs::write(config.path().join("registries.conf"), "")?;
        let mut command = Command::new("skopeo");
        command
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                config.path().join("registries.conf"),
            )
            .env("REGISTRY_AUTH_FILE", config.path().join("auth.json"))
            .env("TMPDIR", config.path())
            .arg("--insecure-policy");
        Ok(Skopeo { command, config })
    }

    fn arg(&mut self, arg: impl AsRef<std::ffi::OsStr>) {
        self.command.arg(arg);
    }

    fn args<const N: usize>(&mut self, args: [&str; N]) {
        self.command.args(args);
    }

    /// TLS, credentials and auth file flags for the registry side `prefix` (`src-`,
    /// `dest-`, or `` for inspect).
    fn registry_flags(
        &mut self,
        prefix: &str,
        registry: &Registry,
        credentials: Option<(&str, &str)>,
    ) {
        let auth_file = self.config.path().join("auth.json");
        self.command
            .arg(format!("--{prefix}authfile"))
            .arg(auth_file);
        match registry.cert_dir() {
            Some(dir) => {
                self.command
                    .arg(format!("--{prefix}tls-verify=true"))
                    .arg(format!("--{prefix}cert-dir"))
                    .arg(dir);
            }
            None => {
                self.command.arg(format!("--{prefix}tls-verify=false"));
            }
        }
        match credentials {
            Some((user, password)) => {
                self.command
                    .arg(format!("--{prefix}creds"))
                    .arg(format!("{user}:{password}"));
            }
            None => {
                self.command.arg(format!("--{prefix}no-creds"));
            }
        }
    }

    fn run(mut self) -> Result<Vec<u8>> {
        run_command(&mut self.command, None)
    }
}
