//! The core's [`PullStore`] over this host's [`Cache`]: every call takes the directory lock
//! and catches up with other processes first, like any other operation. Implemented for
//! `&Cache`, since a `Cache` is shared by reference (the pull's driver lends it to its
//! download threads too).

use crate::{BlobWriter, Cache};
use ocicache_core::pull::PullStore;
use ocicache_core::{
    Clock, Digest, Key, Manifest, MediaType, Millis, Reference, Resolution, Result, TagUpdate,
};

impl PullStore for &Cache {
    type Writer = BlobWriter;

    fn now_millis(&self) -> Millis {
        self.shared.clock.now_millis()
    }
    fn resolve_tag(&mut self, reference: &Reference) -> Result<Resolution> {
        Cache::resolve_tag(self, reference)
    }
    fn put_tag(&mut self, reference: &Reference, digest: &Digest) -> Result<TagUpdate> {
        Cache::put_tag(self, reference, digest)
    }
    fn get_manifest(&mut self, digest: &Digest) -> Result<Manifest> {
        Cache::get_manifest(self, digest)
    }
    fn put_manifest(
        &mut self,
        digest: &Digest,
        bytes: &[u8],
        media_type: Option<&str>,
    ) -> Result<MediaType> {
        Cache::put_manifest(self, digest, bytes, media_type)
    }
    fn has_blob(&mut self, digest: &Digest) -> Result<bool> {
        Cache::has_blob(self, digest)
    }
    fn begin_blob(&mut self, expected: &Digest, size: Option<u64>) -> Result<BlobWriter> {
        self.blob_writer(Some(expected), size)
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
    fn resume_blob(
        &mut self,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<Option<(BlobWriter, u64)>> {
        self.resume_writer(expected, size)
    }
    fn keep_blob(&mut self, writer: BlobWriter) {
        writer.keep();
    }
    fn pin(&mut self, key: &Key) -> Result<()> {
        Cache::pin(self, key).map(drop)
    }
    fn unpin(&mut self, key: &Key) -> Result<()> {
        Cache::unpin(self, key).map(drop)
    }
    fn check_room(&mut self, bytes: u64, keep: &[Key]) -> Result<()> {
        Cache::check_room(self, bytes, keep)
    }
}
