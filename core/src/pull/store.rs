//! What a pull needs of a cache: [`PullStore`]. The core's [`Cache`] implements it directly;
//! a host whose cache runs elsewhere (the wasmtime host's component, say) implements it over
//! its own handle, so that one pull engine serves every host.

use crate::cache::{BlobWriter, Cache, Manifest};
use crate::clock::Millis;
use crate::digest::Digest;
use crate::error::Result;
use crate::key::Key;
use crate::manifest::MediaType;
use crate::reference::Reference;
use crate::tags::{Resolution, TagUpdate};

/// The cache operations a [`Pull`](super::Pull) performs. Each maps to the [`Cache`] method of
/// the same name.
pub trait PullStore {
    /// A blob being written (the core's [`BlobWriter`], or a host's handle to one).
    type Writer;

    /// The cache clock's wall time, in milliseconds since the epoch (token lifetimes and
    /// retry delays).
    fn now_millis(&self) -> Millis;
    /// Fresh, stale or unknown.
    fn resolve_tag(&mut self, reference: &Reference) -> Result<Resolution>;
    /// Records (or renews) a tag mapping.
    fn put_tag(&mut self, reference: &Reference, digest: &Digest) -> Result<TagUpdate>;
    /// A stored manifest, verified; `NotFound` when absent.
    fn get_manifest(&mut self, digest: &Digest) -> Result<Manifest>;
    /// Stores a manifest (verified against `digest`).
    fn put_manifest(
        &mut self,
        digest: &Digest,
        bytes: &[u8],
        media_type: Option<&str>,
    ) -> Result<MediaType>;
    /// Whether a servable blob is stored.
    fn has_blob(&mut self, digest: &Digest) -> Result<bool>;
    /// Starts a streamed, verified blob write.
    fn begin_blob(&mut self, expected: &Digest, size: Option<u64>) -> Result<Self::Writer>;
    /// Appends a chunk.
    fn write_blob(&mut self, writer: &mut Self::Writer, chunk: &[u8]) -> Result<()>;
    /// Verifies and commits.
    fn commit_blob(&mut self, writer: Self::Writer) -> Result<Digest>;
    /// Discards a writer.
    fn abort_blob(&mut self, writer: Self::Writer);
    /// Starts or continues a download whose bytes the storage keeps across pulls and
    /// processes: the writer and the bytes it already holds, or `None` if the storage keeps
    /// no partials (the default; the pull then begins an ordinary writer).
    fn resume_blob(
        &mut self,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<Option<(Self::Writer, u64)>> {
        let _ = (expected, size);
        Ok(None)
    }
    /// Keeps a writer's bytes for a later [`PullStore::resume_blob`] (the default aborts it).
    fn keep_blob(&mut self, writer: Self::Writer) {
        self.abort_blob(writer);
    }
    /// Protects an entry from eviction.
    fn pin(&mut self, key: &Key) -> Result<()>;
    /// Releases a [`PullStore::pin`].
    fn unpin(&mut self, key: &Key) -> Result<()>;
    /// Fails with `Full`, changing nothing, if `bytes` more could not fit under the cap even
    /// after evicting everything evictable but `keep`.
    fn check_room(&mut self, bytes: u64, keep: &[Key]) -> Result<()>;
}

/// A store lent by `&mut` (a runner that keeps the cache) is a store.
impl<T: PullStore + ?Sized> PullStore for &mut T {
    type Writer = T::Writer;

    fn now_millis(&self) -> Millis {
        (**self).now_millis()
    }
    fn resolve_tag(&mut self, reference: &Reference) -> Result<Resolution> {
        (**self).resolve_tag(reference)
    }
    fn put_tag(&mut self, reference: &Reference, digest: &Digest) -> Result<TagUpdate> {
        (**self).put_tag(reference, digest)
    }
    fn get_manifest(&mut self, digest: &Digest) -> Result<Manifest> {
        (**self).get_manifest(digest)
    }
    fn put_manifest(
        &mut self,
        digest: &Digest,
        bytes: &[u8],
        media_type: Option<&str>,
    ) -> Result<MediaType> {
        (**self).put_manifest(digest, bytes, media_type)
    }
    fn has_blob(&mut self, digest: &Digest) -> Result<bool> {
        (**self).has_blob(digest)
    }
    fn begin_blob(&mut self, expected: &Digest, size: Option<u64>) -> Result<T::Writer> {
        (**self).begin_blob(expected, size)
    }
    fn write_blob(&mut self, writer: &mut T::Writer, chunk: &[u8]) -> Result<()> {
        (**self).write_blob(writer, chunk)
    }
    fn commit_blob(&mut self, writer: T::Writer) -> Result<Digest> {
        (**self).commit_blob(writer)
    }
    fn abort_blob(&mut self, writer: T::Writer) {
        (**self).abort_blob(writer);
    }
    fn resume_blob(
        &mut self,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<Option<(T::Writer, u64)>> {
        (**self).resume_blob(expected, size)
    }
    fn keep_blob(&mut self, writer: T::Writer) {
        (**self).keep_blob(writer);
    }
    fn pin(&mut self, key: &Key) -> Result<()> {
        (**self).pin(key)
    }
    fn unpin(&mut self, key: &Key) -> Result<()> {
        (**self).unpin(key)
    }
    fn check_room(&mut self, bytes: u64, keep: &[Key]) -> Result<()> {
        (**self).check_room(bytes, keep)
    }
}

impl PullStore for Cache {
    type Writer = BlobWriter;

    fn now_millis(&self) -> Millis {
        self.now()
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
        Ok(Cache::has_blob(self, digest))
    }
    fn begin_blob(&mut self, expected: &Digest, size: Option<u64>) -> Result<BlobWriter> {
        Cache::begin_blob(self, Some(expected), size)
    }
    fn write_blob(&mut self, writer: &mut BlobWriter, chunk: &[u8]) -> Result<()> {
        Cache::write_blob(self, writer, chunk)
    }
    fn commit_blob(&mut self, writer: BlobWriter) -> Result<Digest> {
        Cache::commit_blob(self, writer)
    }
    fn abort_blob(&mut self, mut writer: BlobWriter) {
        Cache::abort_blob(self, &mut writer);
    }
    fn resume_blob(
        &mut self,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<Option<(BlobWriter, u64)>> {
        Ok(Cache::resume_blob(self, expected, size)?.map(|w| {
            let n = w.written();
            (w, n)
        }))
    }
    fn keep_blob(&mut self, writer: BlobWriter) {
        Cache::keep_blob(self, writer);
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
