//! [`Cache::import`]: the images of an OCI image layout, verified into the cache.

use super::dir::{Dir, copy_chunked, layout_error};
use super::{ImportOptions, ImportReport, ImportedImage};
use crate::blob_io::error_of;
use crate::{BlobReader, Cache};
use ocicache_core::image_layout::{
    BLOBS_DIR, Descriptor, INDEX_FILE, ImportContent, ImportPlan, MAX_INDEX_BYTES,
    MAX_OCI_LAYOUT_BYTES, OCI_LAYOUT_FILE, blob_path, layout_to_import, repository_name,
};
use ocicache_core::{Digest, Error, Reference, Result};
use std::collections::BTreeMap;
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

    fn read(&mut self, descriptor: &Descriptor) -> Result<Vec<u8>> {
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
        let index = layout_to_import(
            &dir.display().to_string(),
            layout
                .read_file(OCI_LAYOUT_FILE, MAX_OCI_LAYOUT_BYTES)?
                .as_deref(),
            layout.read_file(INDEX_FILE, MAX_INDEX_BYTES)?.as_deref(),
        )?;

        // The images and their tag mappings, named before anything is stored; every
        // manifest verified and parsed, the blobs they reference.
        let limit = self.config()?.max_manifest_bytes;
        let mut plan = ImportPlan::new(
            &dir.display().to_string(),
            &index,
            options.tag.as_deref(),
            options.repository.as_deref(),
            limit,
        )?;
        let blobs_dir = layout.subdir(BLOBS_DIR, false)?;
        let mut source = LayoutBlobs {
            layout,
            blobs: blobs_dir,
            algorithms: BTreeMap::new(),
        };
        while let Some(next) = plan.next_manifest()? {
            let bytes = source.read(&next)?;
            plan.add_manifest(&next, bytes)?;
        }
        let content = plan.finish();
        let images = content
            .images
            .iter()
            .map(|i| ImportedImage {
                digest: i.descriptor.digest.clone(),
                media_type: i.media_type,
                tag: i.tag.as_ref().map(Reference::to_string),
            })
            .collect();

        let mut report = ImportReport {
            dir: dir.to_path_buf(),
            images,
            ..ImportReport::default()
        };
        let mut stored = Stored::default();
        let result = self.store(&mut source, &content, &mut stored, &mut report);
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
        content: &ImportContent,
        stored: &mut Stored,
        report: &mut ImportReport,
    ) -> Result<()> {
        for blob in &content.blobs {
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
        for (descriptor, media_type, bytes) in &content.manifests {
            if self.has_manifest(&descriptor.digest)? {
                report.manifests_present += 1;
                continue;
            }
            self.put_manifest(&descriptor.digest, bytes, Some(media_type.as_str()))?;
            stored.manifests.push(descriptor.digest.clone());
            report.manifests_stored += 1;
        }
        for image in &content.images {
            if let Some(k) = &image.tag {
                self.put_tag(k, &image.descriptor.digest)?;
            }
        }
        Ok(())
    }
}
