//! What an import of an image layout stores, decided before anything is: which images of
//! `index.json`, the tag mapping each one names, and every manifest (verified, children first)
//! and blob of their graphs. Sans-I/O: the host supplies `index.json` and each manifest's
//! bytes as asked, then stores what [`ImportContent`] lists.

use super::{Descriptor, GraphWalk, INDEX_FILE, LayoutIndex, repository_name};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::MediaType;
use crate::reference::Reference;
use std::collections::{BTreeMap, BTreeSet};

/// One image an import takes from `index.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedImage {
    /// Its descriptor in `index.json`.
    pub descriptor: Descriptor,
    /// Its root manifest's media type.
    pub media_type: MediaType,
    /// The tag mapping to record for it, if the layout names one.
    pub tag: Option<Reference>,
}

/// Everything an import stores, in the order to store it: blobs, then manifests (children
/// before the indexes that list them), then tag mappings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportContent {
    /// The images taken, in `index.json` order.
    pub images: Vec<PlannedImage>,
    /// Every manifest of their graphs, each once, verified: descriptor, media type, bytes.
    pub manifests: Vec<(Descriptor, MediaType, Vec<u8>)>,
    /// Every config and layer blob, each once: stream each through the cache's blob writer
    /// with its digest and size.
    pub blobs: Vec<Descriptor>,
}

/// The walk of the images an import takes.
///
/// ```
/// use ocicache_core::image_layout::{ImportPlan, LayoutIndex};
/// let index = LayoutIndex::new();
/// let mut plan = ImportPlan::new("/layout", &index, None, None, 4 << 20)?;
/// assert!(plan.next_manifest()?.is_none(), "an empty layout has nothing to read");
/// assert!(plan.finish().images.is_empty());
/// # Ok::<(), ocicache_core::Error>(())
/// ```
#[derive(Debug)]
pub struct ImportPlan {
    /// The layout's path, for messages.
    dir: String,
    named: std::vec::IntoIter<(Descriptor, Option<Reference>)>,
    /// The image being walked, its walk, and the bytes of its manifests read so far.
    current: Option<(Descriptor, Option<Reference>, GraphWalk)>,
    bytes_of: BTreeMap<Digest, Vec<u8>>,
    max_manifest_bytes: u64,
    content: ImportContent,
    seen_manifests: BTreeSet<Digest>,
    seen_blobs: BTreeSet<Digest>,
}

impl ImportPlan {
    /// Chooses the images of `index` an import takes (with `tag`, the one image whose
    /// `org.opencontainers.image.ref.name` is `tag`: none is `NotFound`, several
    /// `InvalidArgument`) and names each one's tag mapping by [`Descriptor::tag_reference`]
    /// with `repository`; two images named by one tag are `InvalidArgument`. `dir` (the
    /// layout's path) is for messages; manifests longer than `max_manifest_bytes` are
    /// `TooLarge`.
    pub fn new(
        dir: &str,
        index: &LayoutIndex,
        tag: Option<&str>,
        repository: Option<&str>,
        max_manifest_bytes: u64,
    ) -> Result<ImportPlan> {
        if let Some(r) = repository {
            repository_name(r)?;
        }
        let selected: Vec<Descriptor> = match tag {
            Some(tag) => match index.find(tag).as_slice() {
                [one] => vec![(*one).clone()],
                [] => {
                    return Err(Error::NotFound(format!(
                        "{dir}: no image tagged {tag:?} in {INDEX_FILE}"
                    )));
                }
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "{dir}: {INDEX_FILE} tags more than one image {tag:?}"
                    )));
                }
            },
            None => index.manifests().cloned().collect(),
        };
        let mut named = Vec::new();
        let mut keys: BTreeMap<Reference, Digest> = BTreeMap::new();
        for d in selected {
            let key = d.tag_reference(repository)?;
            if let Some(k) = &key
                && let Some(other) = keys.insert(k.clone(), d.digest.clone())
                && other != d.digest
            {
                return Err(Error::InvalidArgument(format!(
                    "{dir}: {INDEX_FILE} names {k} twice, for {other} and {}",
                    d.digest
                )));
            }
            named.push((d, key));
        }
        Ok(ImportPlan {
            dir: dir.to_owned(),
            named: named.into_iter(),
            current: None,
            bytes_of: BTreeMap::new(),
            max_manifest_bytes,
            content: ImportContent::default(),
            seen_manifests: BTreeSet::new(),
            seen_blobs: BTreeSet::new(),
        })
    }

    /// The next manifest to read from the layout (`blobs/<algorithm>/<hex>`, at most its
    /// descriptor's size plus one byte), or `None` when every one has been read. A descriptor
    /// announcing more than the cache's manifest limit is `TooLarge`.
    pub fn next_manifest(&mut self) -> Result<Option<Descriptor>> {
        loop {
            if let Some((_, _, walk)) = &mut self.current {
                if let Some(next) = walk.next_manifest() {
                    if next.size > self.max_manifest_bytes {
                        return Err(Error::TooLarge {
                            size: next.size,
                            limit: self.max_manifest_bytes,
                        });
                    }
                    return Ok(Some(next));
                }
                self.finish_image();
            }
            let Some((root, key)) = self.named.next() else {
                return Ok(None);
            };
            let walk = GraphWalk::new(root.clone());
            self.current = Some((root, key, walk));
        }
    }

    /// Supplies the bytes of the manifest [`next_manifest`](Self::next_manifest) gave, checked
    /// against its descriptor (`SizeMismatch`, `DigestMismatch`, `InvalidManifest`).
    pub fn add_manifest(&mut self, descriptor: &Descriptor, bytes: Vec<u8>) -> Result<()> {
        let Some((_, _, walk)) = &mut self.current else {
            return Err(Error::InvalidArgument(format!(
                "{}: no manifest was asked for",
                self.dir
            )));
        };
        walk.add_manifest(descriptor, &bytes)?;
        self.bytes_of.insert(descriptor.digest.clone(), bytes);
        Ok(())
    }

    /// Closes the walk of the current image: its manifests and blobs join the content.
    fn finish_image(&mut self) {
        let Some((root, key, walk)) = self.current.take() else {
            return;
        };
        let graph = walk.finish();
        for (d, media_type) in graph.manifests {
            if d.digest == root.digest {
                self.content.images.push(PlannedImage {
                    descriptor: root.clone(),
                    media_type,
                    tag: key.clone(),
                });
            }
            if self.seen_manifests.insert(d.digest.clone())
                && let Some(bytes) = self.bytes_of.remove(&d.digest)
            {
                self.content.manifests.push((d, media_type, bytes));
            }
        }
        self.bytes_of.clear();
        for b in graph.blobs {
            if self.seen_blobs.insert(b.digest.clone()) {
                self.content.blobs.push(b);
            }
        }
    }

    /// What to store, once [`next_manifest`](Self::next_manifest) has said `None`.
    pub fn finish(mut self) -> ImportContent {
        self.finish_image();
        self.content
    }
}
