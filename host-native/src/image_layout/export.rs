//! [`Cache::export`]: a cached image, written as an OCI image layout.

use super::dir::{Dir, copy_chunked, layout_error};
use super::{ExportReport, Placed};
use crate::Cache;
use crate::blob_io::error_of;
use ocicache_core::image_layout::{
    BLOBS_DIR, ExportPlan, INDEX_FILE, MAX_INDEX_BYTES, MAX_OCI_LAYOUT_BYTES, OCI_LAYOUT_FILE,
    export_root, is_missing, layout_to_export_into, oci_layout_bytes, root_lookup_error,
};
use ocicache_core::{Algorithm, Digest, Reference, Resolution, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

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
        let resolution = match reference.digest() {
            Some(_) => Resolution::Unknown,
            None => self.resolve_tag(reference)?,
        };
        let (digest, tag_stale) = export_root(reference, resolution)?;
        let root = self
            .get_manifest(&digest)
            .map_err(|e| root_lookup_error(reference, &digest, e))?;

        // Every manifest and blob, before anything is written.
        let mut plan = ExportPlan::new(reference, &digest, root.media_type, root.bytes)?;
        while let Some(next) = plan.next_manifest() {
            match self.get_manifest(&next.digest) {
                Ok(m) => plan.manifest_found(&next, m.bytes)?,
                Err(e) if is_missing(&e) => plan.manifest_missing(&next, &e),
                Err(e) => return Err(e),
            }
        }
        // An open reader is a lease: eviction cannot take the blob until it is written.
        let mut readers = Vec::new();
        for blob in plan.blobs() {
            match self.blob_reader(&blob.digest) {
                Ok(r) => {
                    plan.blob_found(&blob, r.size())?;
                    readers.push(r);
                }
                Err(e) if is_missing(&e) => plan.blob_missing(&blob, &e),
                Err(e) => return Err(e),
            }
        }
        let content = plan.finish()?;

        // The layout: created or checked, then locked against other exports.
        let existed = dir.exists();
        let layout = Dir::create(dir)?;
        layout.lock()?;
        let (mut index, write_marker) = layout_to_export_into(
            &dir.display().to_string(),
            layout
                .read_file(OCI_LAYOUT_FILE, MAX_OCI_LAYOUT_BYTES)?
                .as_deref(),
            layout.read_file(INDEX_FILE, MAX_INDEX_BYTES)?.as_deref(),
            existed && !layout.is_empty()?,
        )?;
        if write_marker {
            layout.write_file(OCI_LAYOUT_FILE, |f| {
                f.write_all(&oci_layout_bytes())
                    .map_err(|e| layout_error(&dir.join(OCI_LAYOUT_FILE), e))
            })?;
        }

        let blobs_dir = layout.created_subdir(BLOBS_DIR)?;
        let mut algorithm_dirs: BTreeMap<Algorithm, Dir> = BTreeMap::new();
        let mut report = ExportReport {
            reference: reference.to_string(),
            digest: digest.clone(),
            media_type: content.media_type,
            tag: reference.tag().map(str::to_owned),
            tag_stale,
            dir: dir.to_path_buf(),
            manifests: content.manifests.len() as u64,
            blobs: content.blobs.len() as u64,
            bytes: content.blob_bytes(),
            linked: 0,
            copied: 0,
            already_present: 0,
            replaced: Vec::new(),
        };
        let cache_blobs = cache_blob_dirs(self.dir());
        for (blob, mut reader) in content.blobs.iter().zip(readers) {
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
        for (descriptor, _, bytes) in &content.manifests {
            let target = algorithm_dir(&blobs_dir, &mut algorithm_dirs, &descriptor.digest)?;
            let name = descriptor.digest.hex();
            if target.check_existing(&name, &descriptor.digest)?.is_none() {
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
        report.replaced = content.add_to_index(&mut index);
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
