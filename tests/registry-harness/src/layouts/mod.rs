//! OCI image layouts (`oci-layout`, `index.json`, `blobs/sha256/…`) with deterministic
//! content, for tests to push to a [`Registry`](crate::Registry) or to import.
//!
//! Everything derives from a seed: the same [`ImageSpec`] always gives the same digests, a
//! different seed different ones (a tag "moves" by pushing another seed under it). Layer
//! bytes are generated while written, so big layers cost no memory and no repository space.
//! Every builder returns a [`Built`] describing what it wrote, so tests can assert on bytes.

mod content;
mod tar;

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::error::Result;
use content::{SeededBytes, derive};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// The OCI empty descriptor's media type (its blob is `{}`).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker uncompressed layer.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// A blob's descriptor: digest (`sha256:…`), size and media type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// `sha256:` and 64 hex digits.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// The media type its parent gives it.
    pub media_type: String,
}

/// A JSON blob (manifest, index, config) with its exact bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// Its descriptor.
    pub blob: Blob,
    /// Its bytes, as stored and pushed.
    pub bytes: Vec<u8>,
}

/// An image's platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, `arm`.
    pub architecture: String,
    /// `v7` for `linux/arm/v7`.
    pub variant: Option<String>,
}

impl Platform {
    fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant: variant.map(Into::into),
        }
    }

    /// `os/arch` or `os/arch/variant`.
    pub fn to_path(&self) -> String {
        match &self.variant {
            Some(variant) => format!("{}/{}/{variant}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    fn to_json(&self) -> Value {
        let mut platform = json!({ "architecture": self.architecture, "os": self.os });
        if let Some(variant) = &self.variant {
            platform["variant"] = json!(variant);
        }
        platform
    }
}

/// One image (or artifact) manifest and what it points to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// The manifest.
    pub manifest: Document,
    /// The config blob (the 2-byte `{}` for an artifact).
    pub config: Document,
    /// The layers, in order.
    pub layers: Vec<Blob>,
    /// The platform, as the config (and a parent index) says.
    pub platform: Option<Platform>,
}

/// What a builder wrote under one reference of the layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    /// The `org.opencontainers.image.ref.name` in `index.json` (`oci:DIR:REF`).
    pub layout_ref: String,
    /// The top manifest or index.
    pub top: Document,
    /// The images: one for a single image or artifact, one per platform for an index or
    /// list, in its order.
    pub images: Vec<Image>,
    /// The artifact's `artifactType`, for an artifact.
    pub artifact_type: Option<String>,
}

impl Built {
    /// The top manifest's digest.
    pub fn digest(&self) -> &str {
        &self.top.blob.digest
    }

    /// The top manifest's media type.
    pub fn media_type(&self) -> &str {
        &self.top.blob.media_type
    }

    /// The image for `platform` (`os/arch[/variant]`).
    pub fn image_for(&self, platform: &str) -> Option<&Image> {
        self.images.iter().find(|image| {
            image
                .platform
                .as_ref()
                .is_some_and(|p| p.to_path() == platform)
        })
    }

    /// Every blob reachable from the top, each once: the top, then per image its manifest
    /// (for an index), config and layers.
    pub fn blobs(&self) -> Vec<Blob> {
        let mut blobs = vec![self.top.blob.clone()];
        for image in &self.images {
            for blob in [&image.manifest.blob, &image.config.blob]
                .into_iter()
                .chain(&image.layers)
            {
                if !blobs.contains(blob) {
                    blobs.push(blob.clone());
                }
            }
        }
        blobs
    }

    /// The total size of [`Built::blobs`].
    pub fn total_size(&self) -> u64 {
        self.blobs().iter().map(|b| b.size).sum()
    }
}

/// What an image holds: layer sizes and the seed their content comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSpec {
    /// Content seed; the same spec gives the same digests.
    pub seed: u64,
    /// Each layer is a tar holding one file of this many bytes.
    pub layer_sizes: Vec<u64>,
}

impl ImageSpec {
    /// Layers holding files of `layer_sizes` bytes, content from `seed`.
    pub fn new(seed: u64, layer_sizes: &[u64]) -> ImageSpec {
        ImageSpec {
            seed,
            layer_sizes: layer_sizes.to_vec(),
        }
    }
}

/// Which manifest flavour an image gets.
#[derive(Clone, Copy)]
enum Flavour {
    Oci,
    Docker,
}

/// An OCI image layout directory being filled.
#[derive(Debug)]
pub struct Layout {
    dir: PathBuf,
    _temp: Option<TempDir>,
    manifests: Vec<Value>,
}

impl Layout {
    /// A new, empty layout in a temp dir (removed on drop).
    pub fn new() -> Result<Layout> {
        let temp = tempfile::Builder::new()
            .prefix("ocicache-layout-")
            .tempdir()?;
        let mut layout = Layout::at(temp.path())?;
        layout._temp = Some(temp);
        Ok(layout)
    }

    /// A layout in `dir`, created if missing; an existing layout's references are kept
    /// (a build under the same reference replaces its entry).
    pub fn at(dir: &Path) -> Result<Layout> {
        fs::create_dir_all(dir.join("blobs/sha256"))?;
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let manifests = match fs::read(dir.join("index.json")) {
            Ok(bytes) => serde_json::from_slice::<Value>(&bytes)?["manifests"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let layout = Layout {
            dir: dir.to_path_buf(),
            _temp: None,
            manifests,
        };
        layout.write_index()?;
        Ok(layout)
    }

    /// The layout's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob `digest` is stored.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join("blobs/sha256").join(hex)
    }

    /// A single-arch (linux/amd64) OCI image: config and one uncompressed tar layer per
    /// size in `spec`.
    pub fn image(&mut self, layout_ref: &str, spec: &ImageSpec) -> Result<Built> {
        let image = self.write_image(spec, 0, amd64(), Flavour::Oci)?;
        self.finish(layout_ref, image.manifest.clone(), vec![image], None)
    }

    /// An OCI image index over linux/amd64, linux/arm64 and linux/arm/v7, each its own
    /// image with the layer sizes of `spec` and distinct content.
    pub fn multi_arch(&mut self, layout_ref: &str, spec: &ImageSpec) -> Result<Built> {
        let platforms = [
            amd64(),
            Platform::new("linux", "arm64", None),
            Platform::new("linux", "arm", Some("v7")),
        ];
        self.write_list(layout_ref, spec, &platforms, Flavour::Oci)
    }

    /// An artifact: an OCI image manifest with `artifactType`, the empty config
    /// (`application/vnd.oci.empty.v1+json`, `{}`), and one layer of `size` seeded bytes
    /// (not a tar) with media type `layer_media_type`.
    pub fn artifact(
        &mut self,
        layout_ref: &str,
        artifact_type: &str,
        layer_media_type: &str,
        size: u64,
        seed: u64,
    ) -> Result<Built> {
        let config = self.write_document(OCI_EMPTY, b"{}".to_vec())?;
        let layer = self.write_stream(layer_media_type, |out| {
            let mut content = SeededBytes::new(derive(seed, 0));
            let mut buf = vec![0u8; 64 * 1024];
            let mut left = size;
            while left > 0 {
                let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                content.fill(&mut buf[..n]);
                out.write_all(&buf[..n])?;
                left -= n as u64;
            }
            Ok(())
        })?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": descriptor(&config.blob),
            "layers": [descriptor(&layer)],
        });
        let manifest = self.write_document(OCI_MANIFEST, serde_json::to_vec(&manifest)?)?;
        let image = Image {
            manifest: manifest.clone(),
            config,
            layers: vec![layer],
            platform: None,
        };
        self.finish(layout_ref, manifest, vec![image], Some(artifact_type))
    }

    /// A single-arch (linux/amd64) Docker v2 schema 2 image: Docker media types for the
    /// manifest, config and (uncompressed tar) layers.
    pub fn docker_image(&mut self, layout_ref: &str, spec: &ImageSpec) -> Result<Built> {
        let image = self.write_image(spec, 0, amd64(), Flavour::Docker)?;
        self.finish(layout_ref, image.manifest.clone(), vec![image], None)
    }

    /// A Docker manifest list over two Docker v2 schema 2 images, linux/amd64 and
    /// linux/arm64.
    pub fn docker_list(&mut self, layout_ref: &str, spec: &ImageSpec) -> Result<Built> {
        let platforms = [amd64(), Platform::new("linux", "arm64", None)];
        self.write_list(layout_ref, spec, &platforms, Flavour::Docker)
    }

    fn write_list(
        &mut self,
        layout_ref: &str,
        spec: &ImageSpec,
        platforms: &[Platform],
        flavour: Flavour,
    ) -> Result<Built> {
        let mut images = Vec::new();
        for (index, platform) in platforms.iter().enumerate() {
            images.push(self.write_image(spec, index as u64, platform.clone(), flavour)?);
        }
        let media_type = match flavour {
            Flavour::Oci => OCI_INDEX,
            Flavour::Docker => DOCKER_LIST,
        };
        let manifests: Vec<Value> = images
            .iter()
            .map(|image| {
                let mut entry = descriptor(&image.manifest.blob);
                entry["platform"] = image.platform.as_ref().expect("platform").to_json();
                entry
            })
            .collect();
        let index = json!({ "schemaVersion": 2, "mediaType": media_type, "manifests": manifests });
        let index = self.write_document(media_type, serde_json::to_vec(&index)?)?;
        self.finish(layout_ref, index, images, None)
    }

    /// Writes config, layers and manifest of one image; `position` distinguishes the
    /// platforms of one index.
    fn write_image(
        &mut self,
        spec: &ImageSpec,
        position: u64,
        platform: Platform,
        flavour: Flavour,
    ) -> Result<Image> {
        let (manifest_type, config_type, layer_type) = match flavour {
            Flavour::Oci => (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_TAR),
            Flavour::Docker => (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_TAR),
        };
        let image_seed = derive(spec.seed, position);
        let mut layers = Vec::new();
        for (index, &size) in spec.layer_sizes.iter().enumerate() {
            let mut content = SeededBytes::new(derive(image_seed, index as u64));
            let name = format!("layer-{index}.bin");
            layers.push(self.write_stream(layer_type, |out| {
                tar::write_single_file(out, &name, size, &mut content)
            })?);
        }
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
        let mut config = platform.to_json();
        config["created"] = json!("1970-01-01T00:00:00Z");
        config["config"] = json!({ "Env": ["PATH=/usr/bin:/bin"] });
        config["rootfs"] = json!({ "type": "layers", "diff_ids": diff_ids });
        // The seed, so that two images of equal sizes differ in their config too.
        config["config"]["Labels"] = json!({ "org.ocicache.test.seed": image_seed.to_string() });
        let config = self.write_document(config_type, serde_json::to_vec(&config)?)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": descriptor(&config.blob),
            "layers": layers.iter().map(descriptor).collect::<Vec<_>>(),
        });
        let manifest = self.write_document(manifest_type, serde_json::to_vec(&manifest)?)?;
        Ok(Image {
            manifest,
            config,
            layers,
            platform: Some(platform),
        })
    }

    /// Records `top` under `layout_ref` in `index.json` (replacing an entry of that name).
    fn finish(
        &mut self,
        layout_ref: &str,
        top: Document,
        images: Vec<Image>,
        artifact_type: Option<&str>,
    ) -> Result<Built> {
        let mut entry = descriptor(&top.blob);
        entry["annotations"] = json!({ "org.opencontainers.image.ref.name": layout_ref });
        self.manifests
            .retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != json!(layout_ref));
        self.manifests.push(entry);
        self.write_index()?;
        Ok(Built {
            layout_ref: layout_ref.to_string(),
            top,
            images,
            artifact_type: artifact_type.map(Into::into),
        })
    }

    fn write_index(&self) -> Result<()> {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": self.manifests,
        });
        fs::write(self.dir.join("index.json"), serde_json::to_vec(&index)?)?;
        Ok(())
    }

    fn write_document(&self, media_type: &str, bytes: Vec<u8>) -> Result<Document> {
        let blob = self.write_stream(media_type, |out| out.write_all(&bytes))?;
        Ok(Document { blob, bytes })
    }

    /// Writes a blob produced by `write`, hashing on the way, and stores it by digest.
    fn write_stream(
        &self,
        media_type: &str,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<Blob> {
        let temp = tempfile::NamedTempFile::new_in(self.dir.join("blobs"))?;
        let mut out = HashingWriter {
            inner: BufWriter::with_capacity(256 * 1024, File::create(temp.path())?),
            hasher: Sha256::new(),
            size: 0,
        };
        write(&mut out)?;
        out.inner.flush()?;
        let digest = format!("sha256:{}", hex(&out.hasher.finalize()));
        temp.persist(self.blob_path(&digest)).map_err(|e| e.error)?;
        Ok(Blob {
            digest,
            size: out.size,
            media_type: media_type.to_string(),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn amd64() -> Platform {
    Platform::new("linux", "amd64", None)
}

fn descriptor(blob: &Blob) -> Value {
    json!({ "mediaType": blob.media_type, "digest": blob.digest, "size": blob.size })
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
