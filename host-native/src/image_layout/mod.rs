//! Export to and import from OCI image layouts (`oci-layout`, `index.json`, `blobs/`), the
//! format skopeo, umoci, oras and containerd read and write: [`Cache::export`](crate::Cache::export)
//! and [`Cache::import`](crate::Cache::import). What the files hold is the core's
//! ([`ocicache_core::image_layout`]); this module moves the bytes, never following a symbolic
//! link in the layout.

mod dir;
mod export;
mod import;

use ocicache_core::{Digest, MediaType};
use serde::Serialize;
use std::path::PathBuf;

/// What [`Cache::export`](crate::Cache::export) wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ExportReport {
    /// The reference exported, canonical (`docker.io/library/nginx:1.25`).
    pub reference: String,
    /// The root manifest's digest.
    pub digest: Digest,
    /// The root manifest's media type.
    pub media_type: MediaType,
    /// The tag written as `org.opencontainers.image.ref.name`, if the reference has one.
    pub tag: Option<String>,
    /// Whether the cached tag mapping was past its freshness window (it is exported as the
    /// cache holds it; nothing asks the registry).
    pub tag_stale: bool,
    /// The layout directory.
    pub dir: PathBuf,
    /// Manifests in the image's graph (the root, and for an index each manifest it lists).
    pub manifests: u64,
    /// Config and layer blobs in the graph.
    pub blobs: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Blobs hard-linked from the cache's files.
    pub linked: u64,
    /// Blobs copied (another filesystem, or a file that could not be linked).
    pub copied: u64,
    /// Blobs the layout already held, with the right bytes.
    pub already_present: u64,
    /// Digests the tag named in `index.json` before, now replaced (the files stay).
    pub replaced: Vec<Digest>,
}

/// How one blob got into the layout.
#[derive(Debug, Clone, Copy)]
enum Placed {
    Present,
    Linked,
    Copied,
}

impl ExportReport {
    fn count(&mut self, placed: Placed) {
        match placed {
            Placed::Present => self.already_present += 1,
            Placed::Linked => self.linked += 1,
            Placed::Copied => self.copied += 1,
        }
    }
}

/// How [`Cache::import_with`](crate::Cache::import_with) reads a layout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Import only the image whose `org.opencontainers.image.ref.name` is this tag (`DIR:TAG`
    /// on the command line); without it, every image in `index.json`.
    pub tag: Option<String>,
    /// The repository the layout's tags belong to (`ghcr.io/org/app`), for layouts that do
    /// not say (skopeo writes no `io.containerd.image.name`). When given, it is used for every
    /// tag, in place of what the layout says.
    pub repository: Option<String>,
}

impl ImportOptions {
    /// Only the image tagged `tag`.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }
    /// The repository of the layout's tags.
    pub fn repository(mut self, repository: impl Into<String>) -> Self {
        self.repository = Some(repository.into());
        self
    }
}

/// One image [`Cache::import_with`](crate::Cache::import_with) took from `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ImportedImage {
    /// Its root manifest's digest.
    pub digest: Digest,
    /// Its root manifest's media type.
    pub media_type: MediaType,
    /// The tag mapping recorded for it (canonical reference), if the layout names it.
    pub tag: Option<String>,
}

/// What [`Cache::import_with`](crate::Cache::import_with) stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ImportReport {
    /// The layout directory.
    pub dir: PathBuf,
    /// The images imported, in `index.json` order.
    pub images: Vec<ImportedImage>,
    /// Manifests stored.
    pub manifests_stored: u64,
    /// Manifests the cache held already.
    pub manifests_present: u64,
    /// Blobs stored, verified as they streamed in.
    pub blobs_stored: u64,
    /// Blobs the cache held already (not read from the layout).
    pub blobs_present: u64,
    /// Bytes of the blobs stored.
    pub bytes_stored: u64,
}
