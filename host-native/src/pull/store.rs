//! The core's [`PullStore`] over this host's [`Cache`]: every call takes the directory lock
//! and catches up with other processes first, like any other operation.

use crate::{BlobWriter, Cache};
use ocicache_core::pull::PullStore;
use ocicache_core::{
    Clock, Digest, Key, Manifest, MediaType, Millis, Reference, Resolution, Result, TagUpdate,
};

/// The cache a pull stores into (the pull needs `&mut`; a [`Cache`] is shared by `&`).
pub(crate) struct CacheStore<'a>(pub(crate) &'a Cache);

impl PullStore for CacheStore<'_> {
    type Writer = BlobWriter;

    fn now_millis(&self) -> Millis {
        self.0.shared.clock.now_millis()
    }
    fn resolve_tag(&mut self, reference: &Reference) -> Result<Resolution> {
        Cache::resolve_tag(self.0, reference)
    }
    fn put_tag(&mut self, reference: &Reference, digest: &Digest) -> Result<TagUpdate> {
        Cache::put_tag(self.0, reference, digest)
    }
    fn get_manifest(&mut self, digest: &Digest) -> Result<Manifest> {
        Cache::get_manifest(self.0, digest)
    }
    fn put_manifest(
        &mut self,
        digest: &Digest,
        bytes: &[u8],
        media_type: Option<&str>,
    ) -> Result<MediaType> {
        Cache::put_manifest(self.0, digest, bytes, media_type)
    }
    fn has_blob(&mut self, digest: &Digest) -> Result<bool> {
        Cache::has_blob(self.0, digest)
    }
    fn begin_blob(&mut self, expected: &Digest, size: Option<u64>) -> Result<BlobWriter> {
        self.0.blob_writer(Some(expected), size)
    }
    fn write_blob(&mut self, writer: &mut BlobWriter, chunk: &[u8]) -> Result<()> {
        writer.write_chunk(chunk)
    }
    fn commit_blob(&mut self, writer: BlobWriter) -> Result<Digest> {
        writer.commit()
    }
    fn abort_blob(&mut self, writer: BlobWriter) {
        writer.abort();
    }
    fn pin(&mut self, key: &Key) -> Result<()> {
        Cache::pin(self.0, key).map(drop)
    }
    fn unpin(&mut self, key: &Key) -> Result<()> {
        Cache::unpin(self.0, key).map(drop)
    }
    fn check_room(&mut self, bytes: u64) -> Result<()> {
        Cache::check_room(self.0, bytes)
    }
}
