//! [`Cache::import`]: the images of an OCI image layout, verified into the cache.

use super::dir::{Dir, copy_chunked, layout_error};
use super::{ImportOptions, ImportReport, ImportedImage};
use crate::blob_io::error_of;
use crate::{BlobReader, Cache};
use ocicache_core::image_layout::{
    BLOBS_DIR, Descriptor, GraphWalk, INDEX_FILE, LayoutIndex, MAX_INDEX_BYTES,
    MAX_OCI_LAYOUT_BYTES, OCI_LAYOUT_FILE, blob_path, check_oci_layout, repository_name,
};
use ocicache_core::{Digest, Error, MediaType, Reference, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;

/// The layout's blobs, read only by the names their digests give: `blobs/<algorithm>/<hex>`,
/// each component opened without following a link.
struct LayoutBlobs {
    layout: Dir,
    blobs: Option<Dir>,
    algorithms: BTreeMap<&'static str, Option<Dir>>,
}

impl LayoutBlobs {
    fn open(&mut self, digest: &Digest) -> Result<(File, u64)> {
        let missing = || {
            Error::NotFound(format!(
                "{}: {digest} is not in the layout",
                self.layout.path().join(blob_path(digest)).display()
            ))
        };
        let Some(blobs) = &self.blobs else {
            return Err(missing());
        };
        let name = digest.algorithm().name();
        if !self.algorithms.contains_key(name) {
            let d = blobs.subdir(name, false)?;
            self.algorithms.insert(name, d);
        }
        let Some(dir) = &self.algorithms[name] else {
            return Err(missing());
        };
        dir.open_file(&digest.hex())?.ok_or_else(missing)
    }

    fn read(&mut self, descriptor: &Descriptor, limit: u64) -> Result<Vec<u8>> {
        if descriptor.size > limit {
            return Err(Error::TooLarge {
                size: descriptor.size,
                limit,
            });
        }
        let (file, _) = self.open(&descriptor.digest)?;
        let mut bytes = Vec::with_capacity(descriptor.size as usize);
        // One byte more than announced shows a longer file; the walk reports the mismatch.
        std::io::Read::read_to_end(
            &mut std::io::Read::take(file, descriptor.size + 1),
            &mut bytes,
        )
        .map_err(|e| layout_error(&self.layout.path().join(blob_path(&descriptor.digest)), e))?;
        Ok(bytes)
    }
}

/// What an import stored so far: removed again if it fails.
#[derive(Default)]
struct Stored {
    blobs: Vec<Digest>,
    manifests: Vec<Digest>,
    /// Open readers: eviction cannot take these blobs before their manifests are stored.
    leases: Vec<BlobReader>,
}

impl Cache {
    /// Imports every image of the OCI image layout in `dir`, or with `tag` only the image
    /// whose `org.opencontainers.image.ref.name` is `tag`. See [`Cache::import_with`].
    pub fn import(&self, dir: impl AsRef<Path>, tag: Option<&str>) -> Result<ImportReport> {
        let options = ImportOptions {
            tag: tag.map(str::to_owned),
            ..ImportOptions::default()
        };
        self.import_with(dir, &options)
    }

    /// Reads an OCI image layout (`oci-layout`, `index.json`, `blobs/`), for example one
    /// written by `skopeo copy … oci:DIR:TAG`, into the cache: the offline and air-gap path.
    ///
    /// - Every blob streams through the cache's blob writer with its descriptor's digest and
    ///   size, so it is verified on the way in and never held in memory whole; every manifest
    ///   is checked against its digest before it is parsed, and stored with its media type.
    ///   Blobs the cache holds already are not read.
    /// - Tag mappings: for each image named by `org.opencontainers.image.ref.name` (with
    ///   `options.tag`, only that one), the tag is recorded in the repository
    ///   `options.repository` if given, else the one of its `io.containerd.image.name`; a
    ///   named image with neither is refused (`InvalidArgument`) before anything is stored.
    ///   See [`Descriptor::tag_reference`] for the whole rule.
    /// - Only `oci-layout`, `index.json` and the `blobs/<algorithm>/<hex>` names derived from
    ///   digests are read, each opened without following a symbolic link: a link anywhere in
    ///   the layout is refused (`InvalidArgument`).
    /// - A failure (a blob whose bytes do not match its digest is `DigestMismatch` naming it)
    ///   removes what this import stored: nothing of the layout stays in the cache.
    pub fn import_with(
        &self,
        dir: impl AsRef<Path>,
        options: &ImportOptions,
    ) -> Result<ImportReport> {
        let dir = dir.as_ref();
        if let Some(r) = &options.repository {
            repository_name(r)?;
        }
        let layout = Dir::open(dir)?;
        let not_a_layout = |what: &str| {
            Error::InvalidArgument(format!(
                "{}: no {what}: not an OCI image layout",
                dir.display()
            ))
        };
        let marker = layout
            .read_file(OCI_LAYOUT_FILE, MAX_OCI_LAYOUT_BYTES)?
            .ok_or_else(|| not_a_layout(OCI_LAYOUT_FILE))?;
        check_oci_layout(&marker)?;
        let index_bytes = layout
            .read_file(INDEX_FILE, MAX_INDEX_BYTES)?
            .ok_or_else(|| not_a_layout(INDEX_FILE))?;
        let index = LayoutIndex::parse(&index_bytes)?;

        let selected: Vec<Descriptor> = match &options.tag {
            Some(tag) => match index.find(tag).as_slice() {
                [one] => vec![(*one).clone()],
                [] => {
                    return Err(Error::NotFound(format!(
                        "{}: no image tagged {tag:?} in {INDEX_FILE}",
                        dir.display()
                    )));
                }
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "{}: {INDEX_FILE} tags more than one image {tag:?}",
                        dir.display()
                    )));
                }
            },
            None => index.manifests().cloned().collect(),
        };
        // Every tag mapping is named before anything is stored.
        let mut named: Vec<(Descriptor, Option<Reference>)> = Vec::new();
        let mut keys: BTreeMap<Reference, Digest> = BTreeMap::new();
        for d in selected {
            let key = d.tag_reference(options.repository.as_deref())?;
            if let Some(k) = &key
                && let Some(other) = keys.insert(k.clone(), d.digest.clone())
                && other != d.digest
            {
                return Err(Error::InvalidArgument(format!(
                    "{}: {INDEX_FILE} names {k} twice, for {other} and {}",
                    dir.display(),
                    d.digest
                )));
            }
            named.push((d, key));
        }

        // Every manifest, verified and parsed; the blobs they reference.
        let limit = self.config()?.max_manifest_bytes;
        let blobs_dir = layout.subdir(BLOBS_DIR, false)?;
        let mut source = LayoutBlobs {
            layout,
            blobs: blobs_dir,
            algorithms: BTreeMap::new(),
        };
        let mut manifests: Vec<(Descriptor, MediaType, Vec<u8>)> = Vec::new();
        let mut seen_manifests: BTreeSet<Digest> = BTreeSet::new();
        let mut blobs: Vec<Descriptor> = Vec::new();
        let mut seen_blobs: BTreeSet<Digest> = BTreeSet::new();
        let mut images = Vec::new();
        for (root, key) in &named {
            let mut walk = GraphWalk::new(root.clone());
            let mut bytes_of: BTreeMap<Digest, Vec<u8>> = BTreeMap::new();
            while let Some(next) = walk.next_manifest() {
                let bytes = source.read(&next, limit)?;
                walk.add_manifest(&next, &bytes)?;
                bytes_of.insert(next.digest.clone(), bytes);
            }
            let graph = walk.finish();
            for (d, media_type) in graph.manifests {
                if d.digest == root.digest {
                    images.push(ImportedImage {
                        digest: d.digest.clone(),
                        media_type,
                        tag: key.as_ref().map(Reference::to_string),
                    });
                }
                if seen_manifests.insert(d.digest.clone()) {
                    let bytes = bytes_of.remove(&d.digest).expect("walked");
                    manifests.push((d, media_type, bytes));
                }
            }
            for b in graph.blobs {
                if seen_blobs.insert(b.digest.clone()) {
                    blobs.push(b);
                }
            }
        }

        let mut report = ImportReport {
            dir: dir.to_path_buf(),
            images,
            ..ImportReport::default()
        };
        let mut stored = Stored::default();
        let result = self.store(
            &mut source,
            &blobs,
            &manifests,
            &named,
            &mut stored,
            &mut report,
        );
        if let Err(e) = result {
            // Nothing of the layout stays: manifests first, then their blobs.
            drop(std::mem::take(&mut stored.leases));
            for d in stored.manifests.iter().rev() {
                let _ = self.delete_manifest(d);
            }
            for d in stored.blobs.iter().rev() {
                let _ = self.delete_blob(d);
            }
            return Err(e);
        }
        Ok(report)
    }

    fn store(
        &self,
        source: &mut LayoutBlobs,
        blobs: &[Descriptor],
        manifests: &[(Descriptor, MediaType, Vec<u8>)],
        named: &[(Descriptor, Option<Reference>)],
        stored: &mut Stored,
        report: &mut ImportReport,
    ) -> Result<()> {
        for blob in blobs {
            if self.has_blob(&blob.digest)? {
                report.blobs_present += 1;
                stored.leases.push(self.blob_reader(&blob.digest)?);
                continue;
            }
            let (mut file, _) = source.open(&blob.digest)?;
            let path = source.layout.path().join(blob_path(&blob.digest));
            let mut writer = self.blob_writer(Some(&blob.digest), Some(blob.size))?;
            copy_chunked(&mut file, &mut writer).map_err(|e| {
                // The writer's errors are the cache's; the others are the layout's.
                error_of(&e)
                    .cloned()
                    .unwrap_or_else(|| layout_error(&path, e))
            })?;
            let digest = writer.commit()?;
            stored.blobs.push(digest.clone());
            stored.leases.push(self.blob_reader(&digest)?);
            report.blobs_stored += 1;
            report.bytes_stored += blob.size;
        }
        // Children before the indexes that list them.
        for (descriptor, media_type, bytes) in manifests {
            if self.has_manifest(&descriptor.digest)? {
                report.manifests_present += 1;
                continue;
            }
            self.put_manifest(&descriptor.digest, bytes, Some(media_type.as_str()))?;
            stored.manifests.push(descriptor.digest.clone());
            report.manifests_stored += 1;
        }
        for (root, key) in named {
            if let Some(k) = key {
                self.put_tag(k, &root.digest)?;
            }
        }
        Ok(())
    }
}
