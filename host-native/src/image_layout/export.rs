//! [`Cache::export`]: a cached image, written as an OCI image layout.

use super::dir::{Dir, copy_chunked, layout_error};
use super::{ExportReport, Placed};
use crate::Cache;
use crate::blob_io::error_of;
use ocicache_core::image_layout::{
    BLOBS_DIR, Descriptor, GraphWalk, INDEX_FILE, LayoutIndex, MAX_INDEX_BYTES,
    MAX_OCI_LAYOUT_BYTES, OCI_LAYOUT_FILE, check_oci_layout, oci_layout_bytes,
};
use ocicache_core::{Algorithm, Digest, Error, ErrorKind, Reference, Resolution, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

/// A cache lookup that found nothing servable: absent or expired content is missing.
fn is_missing(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Expired)
}

impl Cache {
    /// Writes the image `reference` names, as the cache holds it, into `dir` as an OCI image
    /// layout (`oci-layout`, `index.json`, `blobs/`), without any network: a tag resolves
    /// through its cached mapping (fresh or stale), a digest reference names the manifest
    /// itself. The whole graph is written: an index or Docker manifest list with every
    /// manifest it lists, each manifest's config and layers.
    ///
    /// - In `index.json`, the image's descriptor carries the tag in
    ///   `org.opencontainers.image.ref.name` (so that `skopeo … oci:DIR:TAG` finds it) and the
    ///   full reference in `io.containerd.image.name`.
    /// - Blobs are hard-linked from the cache's files when `dir` is on the same filesystem,
    ///   and read back and hashed before they are published; otherwise they are copied,
    ///   verified as they stream. Every file is written under a temp name, fsynced and renamed,
    ///   so a crash never leaves part of a blob under its digest's name; `index.json` is
    ///   written last.
    /// - Exporting into an existing layout adds to it: an entry with the same tag is replaced,
    ///   every other entry and file is kept; a blob already there is kept if its bytes match
    ///   its digest, and a mismatch is a `DigestMismatch` naming the file.
    /// - Content missing from the cache is a `NotFound` naming each missing manifest or blob,
    ///   checked before `dir` is created or changed. A directory that holds other files but
    ///   no `oci-layout` is refused (`InvalidArgument`) and left unchanged.
    pub fn export(&self, reference: &Reference, dir: impl AsRef<Path>) -> Result<ExportReport> {
        let dir = dir.as_ref();
        let (digest, tag_stale) = match reference.digest() {
            Some(d) => (d.clone(), false),
            None => match self.resolve_tag(reference)? {
                Resolution::Fresh(d) => (d, false),
                Resolution::Stale(d) => (d, true),
                Resolution::Unknown => {
                    return Err(Error::NotFound(format!(
                        "tag {reference}: not in the cache (export reads only the cache)"
                    )));
                }
            },
        };
        let root = self.get_manifest(&digest).map_err(|e| {
            if is_missing(&e) {
                Error::NotFound(format!("manifest {digest} of {reference}: {e}"))
            } else {
                e
            }
        })?;

        // Every manifest and blob, before anything is written.
        let root_descriptor = Descriptor {
            media_type: root.media_type.as_str().to_owned(),
            digest: digest.clone(),
            size: root.bytes.len() as u64,
            annotations: BTreeMap::new(),
        };
        let mut walk = GraphWalk::new(root_descriptor);
        let mut bytes_of: BTreeMap<Digest, Vec<u8>> = BTreeMap::new();
        let mut missing: Vec<String> = Vec::new();
        bytes_of.insert(digest.clone(), root.bytes);
        while let Some(next) = walk.next_manifest() {
            if !bytes_of.contains_key(&next.digest) {
                match self.get_manifest(&next.digest) {
                    Ok(m) => {
                        bytes_of.insert(next.digest.clone(), m.bytes);
                    }
                    Err(e) if is_missing(&e) => {
                        missing.push(format!("manifest {} ({})", next.digest, e.kind().code()));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            walk.add_manifest(&next, &bytes_of[&next.digest])?;
        }
        let graph = walk.finish();
        // An open reader is a lease: eviction cannot take the blob until it is written.
        let mut readers = Vec::new();
        for blob in &graph.blobs {
            match self.blob_reader(&blob.digest) {
                Ok(r) if r.size() != blob.size => {
                    return Err(Error::InvalidManifest(format!(
                        "a manifest of {reference} gives blob {} {} bytes; it has {}",
                        blob.digest,
                        blob.size,
                        r.size()
                    )));
                }
                Ok(r) => readers.push(r),
                Err(e) if is_missing(&e) => {
                    missing.push(format!("blob {} ({})", blob.digest, e.kind().code()))
                }
                Err(e) => return Err(e),
            }
        }
        if !missing.is_empty() {
            return Err(Error::NotFound(format!(
                "{reference} is not whole in the cache: missing {}",
                missing.join(", ")
            )));
        }

        // The layout: created or checked, then locked against other exports.
        let existed = dir.exists();
        let layout = Dir::create(dir)?;
        layout.lock()?;
        let index_bytes = layout.read_file(INDEX_FILE, MAX_INDEX_BYTES)?;
        match layout.read_file(OCI_LAYOUT_FILE, MAX_OCI_LAYOUT_BYTES)? {
            Some(b) => check_oci_layout(&b)?,
            None if index_bytes.is_some() || (existed && !layout.is_empty()?) => {
                return Err(Error::InvalidArgument(format!(
                    "{}: holds other files but no {OCI_LAYOUT_FILE}: not an OCI image layout \
                     (export writes into a new or empty directory, or an image layout)",
                    dir.display()
                )));
            }
            None => {
                layout.write_file(OCI_LAYOUT_FILE, |f| {
                    f.write_all(&oci_layout_bytes())
                        .map_err(|e| layout_error(&dir.join(OCI_LAYOUT_FILE), e))
                })?;
            }
        }
        let mut index = match &index_bytes {
            Some(b) => LayoutIndex::parse(b)?,
            None => LayoutIndex::new(),
        };

        let blobs_dir = layout.created_subdir(BLOBS_DIR)?;
        let mut algorithm_dirs: BTreeMap<Algorithm, Dir> = BTreeMap::new();
        let mut report = ExportReport {
            reference: reference.to_string(),
            digest: digest.clone(),
            media_type: root.media_type,
            tag: reference.tag().map(str::to_owned),
            tag_stale,
            dir: dir.to_path_buf(),
            manifests: graph.manifests.len() as u64,
            blobs: graph.blobs.len() as u64,
            bytes: graph.blobs.iter().map(|b| b.size).sum(),
            linked: 0,
            copied: 0,
            already_present: 0,
            replaced: Vec::new(),
        };
        let cache_blobs = cache_blob_dirs(self.dir());
        for (blob, mut reader) in graph.blobs.iter().zip(readers) {
            let target = algorithm_dir(&blobs_dir, &mut algorithm_dirs, &blob.digest)?;
            let name = blob.digest.hex();
            let placed = if target.check_existing(&name, &blob.digest)?.is_some() {
                Placed::Present
            } else if let Some(from) = cache_blobs.get(blob.digest.algorithm())
                && target.link_verified(from, &name, &name, &blob.digest)?
            {
                Placed::Linked
            } else {
                let path = target.path().join(&name);
                target.write_file(&name, |f| {
                    copy_chunked(&mut reader, f).map(drop).map_err(|e| {
                        error_of(&e)
                            .cloned()
                            .unwrap_or_else(|| layout_error(&path, e))
                    })
                })?;
                Placed::Copied
            };
            report.count(placed);
        }
        for (descriptor, _) in &graph.manifests {
            let target = algorithm_dir(&blobs_dir, &mut algorithm_dirs, &descriptor.digest)?;
            let name = descriptor.digest.hex();
            if target.check_existing(&name, &descriptor.digest)?.is_none() {
                let bytes = &bytes_of[&descriptor.digest];
                let path = target.path().join(&name);
                target.write_file(&name, |f| {
                    f.write_all(bytes).map_err(|e| layout_error(&path, e))
                })?;
            }
        }
        // Every blob is durable under its name before index.json points at any of them.
        for d in algorithm_dirs.values() {
            d.sync()?;
        }
        blobs_dir.sync()?;
        layout.sync()?;
        let root_size = bytes_of[&digest].len() as u64;
        let added = Descriptor::for_export(reference, &digest, root.media_type, root_size);
        report.replaced = index
            .add(added)
            .into_iter()
            .map(|d| d.digest)
            .filter(|d| *d != digest)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let index_text = index.to_bytes();
        layout.write_file(INDEX_FILE, |f| {
            f.write_all(&index_text)
                .map_err(|e| layout_error(&dir.join(INDEX_FILE), e))
        })?;
        layout.sync()?;
        Ok(report)
    }
}

/// `blobs/<algorithm>` of the layout, created and opened once per algorithm.
fn algorithm_dir<'a>(
    blobs: &Dir,
    dirs: &'a mut BTreeMap<Algorithm, Dir>,
    digest: &Digest,
) -> Result<&'a Dir> {
    use std::collections::btree_map::Entry;
    match dirs.entry(digest.algorithm()) {
        Entry::Occupied(e) => Ok(e.into_mut()),
        Entry::Vacant(e) => Ok(e.insert(blobs.created_subdir(digest.algorithm().name())?)),
    }
}

/// The cache's `blobs/<algorithm>` directories that can be opened (without following links);
/// a blob whose directory cannot be is copied instead of linked.
struct CacheBlobDirs(BTreeMap<Algorithm, Dir>);

impl CacheBlobDirs {
    fn get(&self, algorithm: Algorithm) -> Option<&Dir> {
        self.0.get(&algorithm)
    }
}

fn cache_blob_dirs(root: &Path) -> CacheBlobDirs {
    let mut dirs = BTreeMap::new();
    let blobs = Dir::open(root).ok().and_then(|r| {
        r.subdir(
            ocicache_core::layout::kind_dir(ocicache_core::Kind::Blob),
            false,
        )
        .ok()
        .flatten()
    });
    if let Some(blobs) = blobs {
        for algorithm in Algorithm::ALL {
            if let Ok(Some(d)) = blobs.subdir(algorithm.name(), false) {
                dirs.insert(algorithm, d);
            }
        }
    }
    CacheBlobDirs(dirs)
}
