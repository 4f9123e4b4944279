//! What an export of a cached image writes, decided before anything is: the root a reference
//! names in the cache, every manifest and blob of its graph (all of them must be cached), and
//! the entry `index.json` gets. Sans-I/O: the host answers from its cache as asked, then writes
//! what [`ExportContent`] lists.

use super::{Descriptor, GraphWalk, LayoutIndex};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::MediaType;
use crate::reference::Reference;
use crate::tags::Resolution;
use std::collections::{BTreeMap, BTreeSet};

/// The root manifest an export of `reference` starts from: the digest a digest reference
/// names, else the cached tag mapping's (`resolution`, from the cache's resolver), fresh or
/// stale (the second value says stale: it is exported as cached, nothing asks the registry).
/// An unknown tag is `NotFound`.
pub fn export_root(reference: &Reference, resolution: Resolution) -> Result<(Digest, bool)> {
    match (reference.digest(), resolution) {
        (Some(d), _) => Ok((d.clone(), false)),
        (None, Resolution::Fresh(d)) => Ok((d, false)),
        (None, Resolution::Stale(d)) => Ok((d, true)),
        (None, Resolution::Unknown) => Err(Error::NotFound(format!(
            "tag {reference}: not in the cache (export reads only the cache)"
        ))),
    }
}

/// The error for the root manifest [`export_root`] named when the cache cannot give it: a
/// missing one is `NotFound` naming the reference, any other error is returned as it is.
pub fn root_lookup_error(reference: &Reference, digest: &Digest, error: Error) -> Error {
    if is_missing(&error) {
        Error::NotFound(format!("manifest {digest} of {reference}: {error}"))
    } else {
        error
    }
}

/// Whether a cache lookup found nothing servable: absent or expired content is missing.
pub fn is_missing(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Expired)
}

/// Everything an export writes: blobs, then manifests, then `index.json` (see
/// [`ExportContent::add_to_index`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportContent {
    /// The reference exported.
    pub reference: Reference,
    /// The root manifest's digest.
    pub digest: Digest,
    /// The root manifest's media type.
    pub media_type: MediaType,
    /// Every manifest of the graph, children before parents, the root last: descriptor,
    /// media type, bytes.
    pub manifests: Vec<(Descriptor, MediaType, Vec<u8>)>,
    /// Every config and layer blob, each once, with the size its manifest gives (which the
    /// cached blob has).
    pub blobs: Vec<Descriptor>,
}

impl ExportContent {
    /// The bytes of all the blobs.
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }

    /// Adds the image to a layout's index: its descriptor carries the tag in
    /// `org.opencontainers.image.ref.name` and the full reference in
    /// `io.containerd.image.name` ([`Descriptor::for_export`]); an entry with the same tag is
    /// replaced. Returns the digests the tag named before and no longer does, sorted.
    pub fn add_to_index(&self, index: &mut LayoutIndex) -> Vec<Digest> {
        let size = self
            .manifests
            .last()
            .map_or(0, |(_, _, bytes)| bytes.len() as u64);
        let added = Descriptor::for_export(&self.reference, &self.digest, self.media_type, size);
        index
            .add(added)
            .into_iter()
            .map(|d| d.digest)
            .filter(|d| *d != self.digest)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

/// The walk of a cached image's graph for an export.
///
/// ```
/// use ocicache_core::image_layout::ExportPlan;
/// use ocicache_core::hashing::digest_of;
/// use ocicache_core::{Algorithm, BuiltinHasher, MediaType, Reference};
/// let config = b"{}";
/// let manifest = format!(
///     r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":2}},"layers":[]}}"#,
///     digest_of(&BuiltinHasher, Algorithm::Sha256, config).unwrap());
/// let digest = digest_of(&BuiltinHasher, Algorithm::Sha256, manifest.as_bytes()).unwrap();
/// let reference: Reference = "localhost:5000/app:v1".parse()?;
/// let mut plan = ExportPlan::new(&reference, &digest, MediaType::OciManifest, manifest.into_bytes())?;
/// while let Some(next) = plan.next_manifest() {
///     unreachable!("an image manifest has no child manifest: {next:?}");
/// }
/// let blobs = plan.blobs();
/// assert_eq!(blobs.len(), 1);
/// plan.blob_found(&blobs[0], 2)?; // the cached config's size
/// let content = plan.finish()?;
/// assert_eq!(content.manifests.len(), 1);
/// # Ok::<(), ocicache_core::Error>(())
/// ```
#[derive(Debug)]
pub struct ExportPlan {
    reference: Reference,
    digest: Digest,
    media_type: MediaType,
    walk: Option<GraphWalk>,
    bytes_of: BTreeMap<Digest, Vec<u8>>,
    manifests: Vec<(Descriptor, MediaType, Vec<u8>)>,
    blobs: Vec<Descriptor>,
    missing: Vec<String>,
}

impl ExportPlan {
    /// A walk from the root manifest (the cache's bytes and media type for the digest
    /// [`export_root`] gave), checked against its digest.
    pub fn new(
        reference: &Reference,
        digest: &Digest,
        media_type: MediaType,
        bytes: Vec<u8>,
    ) -> Result<ExportPlan> {
        let root = Descriptor {
            media_type: media_type.as_str().to_owned(),
            digest: digest.clone(),
            size: bytes.len() as u64,
            annotations: BTreeMap::new(),
        };
        let mut walk = GraphWalk::new(root);
        // The root's bytes are known: it is walked at once.
        if let Some(next) = walk.next_manifest() {
            walk.add_manifest(&next, &bytes)?;
        }
        Ok(ExportPlan {
            reference: reference.clone(),
            digest: digest.clone(),
            media_type,
            walk: Some(walk),
            bytes_of: BTreeMap::from([(digest.clone(), bytes)]),
            manifests: Vec::new(),
            blobs: Vec::new(),
            missing: Vec::new(),
        })
    }

    /// The next manifest whose cached bytes the walk needs; answer with
    /// [`manifest_found`](Self::manifest_found) or [`manifest_missing`](Self::manifest_missing).
    pub fn next_manifest(&mut self) -> Option<Descriptor> {
        self.walk.as_mut()?.next_manifest()
    }

    /// The cache holds this manifest: its bytes are checked against the descriptor.
    pub fn manifest_found(&mut self, descriptor: &Descriptor, bytes: Vec<u8>) -> Result<()> {
        let walk = self.walk.as_mut().ok_or_else(over)?;
        walk.add_manifest(descriptor, &bytes)?;
        self.bytes_of.insert(descriptor.digest.clone(), bytes);
        Ok(())
    }

    /// The cache does not hold this manifest (lookup `error`, see [`is_missing`]).
    pub fn manifest_missing(&mut self, descriptor: &Descriptor, error: &Error) {
        self.missing.push(format!(
            "manifest {} ({})",
            descriptor.digest,
            error.kind().code()
        ));
    }

    /// Every blob of the graph, once the manifests are walked; answer for each with
    /// [`blob_found`](Self::blob_found) or [`blob_missing`](Self::blob_missing).
    pub fn blobs(&mut self) -> Vec<Descriptor> {
        if let Some(walk) = self.walk.take() {
            let graph = walk.finish();
            self.blobs = graph.blobs;
            for (d, media_type) in graph.manifests {
                let bytes = self.bytes_of.remove(&d.digest).unwrap_or_default();
                self.manifests.push((d, media_type, bytes));
            }
        }
        self.blobs.clone()
    }

    /// The cache holds this blob, `size` bytes long: another size than the manifest gives is
    /// `InvalidManifest`.
    pub fn blob_found(&self, blob: &Descriptor, size: u64) -> Result<()> {
        if size != blob.size {
            return Err(Error::InvalidManifest(format!(
                "a manifest of {} gives blob {} {} bytes; it has {size}",
                self.reference, blob.digest, blob.size
            )));
        }
        Ok(())
    }

    /// The cache does not hold this blob (lookup `error`).
    pub fn blob_missing(&mut self, blob: &Descriptor, error: &Error) {
        self.missing
            .push(format!("blob {} ({})", blob.digest, error.kind().code()));
    }

    /// What to write: `NotFound` naming each missing manifest and blob if the image is not
    /// whole in the cache.
    pub fn finish(mut self) -> Result<ExportContent> {
        self.blobs();
        if !self.missing.is_empty() {
            return Err(Error::NotFound(format!(
                "{} is not whole in the cache: missing {}",
                self.reference,
                self.missing.join(", ")
            )));
        }
        Ok(ExportContent {
            reference: self.reference,
            digest: self.digest,
            media_type: self.media_type,
            manifests: self.manifests,
            blobs: self.blobs,
        })
    }
}

fn over() -> Error {
    Error::InvalidArgument("the export's manifests are walked already".into())
}
