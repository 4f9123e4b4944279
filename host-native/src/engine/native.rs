//! The engine that links the core natively: `ocicache_core::Cache` over [`FsStorage`].

use super::{BoxedClock, BoxedLog, Engine, Handle};
use crate::storage::FsStorage;
use ocicache_core::{
    BlobReader, BlobWriter, CleanupReport, Clock, Config, DebugInfo, Digest, Durability, EntryInfo,
    Error, IntegrityReport, Key, LogSink, Manifest, MediaType, MetricsSnapshot, RecoveryReport,
    Reference, RepairReport, Resolution, Result, Stats, TagHistoryEntry, TagMapping, TagUpdate,
};
use std::collections::HashMap;

/// The core, linked in, with its writers and readers behind handles.
pub(crate) struct NativeEngine {
    cache: ocicache_core::Cache,
    writers: HashMap<Handle, BlobWriter>,
    readers: HashMap<Handle, BlobReader>,
    next_handle: Handle,
}

impl NativeEngine {
    /// Opens the core over `storage` (replaying and reconciling the index).
    pub(crate) fn open(
        storage: FsStorage,
        config: Config,
        clock: Box<dyn Clock>,
        log: Box<dyn LogSink>,
        adopt_existing: bool,
    ) -> Result<NativeEngine> {
        let cache = ocicache_core::Cache::builder(storage, BoxedClock(clock))
            .config(config)
            .log(BoxedLog(log))
            .hasher(crate::ThreadedHasher::process_default())
            .adopt_existing(adopt_existing)
            .open()?;
        Ok(NativeEngine {
            cache,
            writers: HashMap::new(),
            readers: HashMap::new(),
            next_handle: 0,
        })
    }

    fn handle(&mut self) -> Handle {
        self.next_handle = self.next_handle.wrapping_add(1);
        while self.writers.contains_key(&self.next_handle)
            || self.readers.contains_key(&self.next_handle)
        {
            self.next_handle = self.next_handle.wrapping_add(1);
        }
        self.next_handle
    }
}

fn bad_handle(h: Handle) -> Error {
    Error::InvalidArgument(format!("no open blob writer or reader {h}"))
}

impl Engine for NativeEngine {
    fn refresh(&mut self) -> Result<bool> {
        self.cache.refresh()
    }

    fn put_manifest(
        &mut self,
        digest: &Digest,
        bytes: &[u8],
        media_type: Option<&str>,
    ) -> Result<MediaType> {
        self.cache.put_manifest(digest, bytes, media_type)
    }
    fn get_manifest(&mut self, digest: &Digest) -> Result<Manifest> {
        self.cache.get_manifest(digest)
    }
    fn has_manifest(&mut self, digest: &Digest) -> Result<bool> {
        Ok(self.cache.has_manifest(digest))
    }
    fn delete_manifest(&mut self, digest: &Digest) -> Result<bool> {
        self.cache.delete_manifest(digest)
    }
    fn manifest_references(&mut self, digest: &Digest) -> Result<Vec<Key>> {
        self.cache.manifest_references(digest)
    }

    fn put_blob(&mut self, expected: Option<&Digest>, bytes: &[u8]) -> Result<Digest> {
        self.cache.put_blob(expected, bytes)
    }
    fn get_blob(&mut self, digest: &Digest) -> Result<Vec<u8>> {
        self.cache.get_blob(digest)
    }
    fn has_blob(&mut self, digest: &Digest) -> Result<bool> {
        Ok(self.cache.has_blob(digest))
    }
    fn delete_blob(&mut self, digest: &Digest) -> Result<bool> {
        self.cache.delete_blob(digest)
    }
    fn begin_blob(&mut self, expected: Option<&Digest>, size: Option<u64>) -> Result<Handle> {
        let w = self.cache.begin_blob(expected, size)?;
        let h = self.handle();
        self.writers.insert(h, w);
        Ok(h)
    }
    fn write_blob(&mut self, writer: Handle, chunk: &[u8]) -> Result<()> {
        let w = self.writers.get_mut(&writer).ok_or(bad_handle(writer))?;
        self.cache.write_blob(w, chunk)
    }
    fn commit_blob(&mut self, writer: Handle) -> Result<Digest> {
        let w = self.writers.remove(&writer).ok_or(bad_handle(writer))?;
        self.cache.commit_blob(w)
    }
    fn abort_blob(&mut self, writer: Handle) {
        if let Some(mut w) = self.writers.remove(&writer) {
            self.cache.abort_blob(&mut w);
        }
    }
    fn resume_blob(
        &mut self,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<Option<(Handle, u64)>> {
        let Some(w) = self.cache.resume_blob(expected, size)? else {
            return Ok(None);
        };
        let n = w.written();
        let h = self.handle();
        self.writers.insert(h, w);
        Ok(Some((h, n)))
    }
    fn keep_blob(&mut self, writer: Handle) {
        if let Some(w) = self.writers.remove(&writer) {
            self.cache.keep_blob(w);
        }
    }
    fn open_blob(&mut self, digest: &Digest) -> Result<(Handle, u64)> {
        let r = self.cache.open_blob(digest)?;
        let size = r.size();
        let h = self.handle();
        self.readers.insert(h, r);
        Ok((h, size))
    }
    fn read_blob(&mut self, reader: Handle, buf: &mut [u8]) -> Result<usize> {
        let r = self.readers.get_mut(&reader).ok_or(bad_handle(reader))?;
        self.cache.read_blob(r, buf)
    }
    fn close_blob(&mut self, reader: Handle) {
        if let Some(r) = self.readers.remove(&reader) {
            self.cache.close_blob(r);
        }
    }

    fn pin(&mut self, key: &Key) -> Result<u32> {
        self.cache.pin(key)
    }
    fn unpin(&mut self, key: &Key) -> Result<u32> {
        self.cache.unpin(key)
    }
    fn delete(&mut self, key: &Key) -> Result<bool> {
        self.cache.delete(key)
    }

    fn put_tag(&mut self, reference: &Reference, digest: &Digest) -> Result<TagUpdate> {
        self.cache.put_tag(reference, digest)
    }
    fn get_tag(&mut self, reference: &Reference) -> Result<TagMapping> {
        self.cache.get_tag(reference)
    }
    fn has_tag(&mut self, reference: &Reference) -> Result<bool> {
        Ok(self.cache.has_tag(reference))
    }
    fn resolve_tag(&mut self, reference: &Reference) -> Result<Resolution> {
        self.cache.resolve_tag(reference)
    }
    fn resolve_tags(&mut self, references: &[Reference]) -> Result<Vec<Result<Resolution>>> {
        Ok(self.cache.resolve_tags(references))
    }
    fn resolve_failed(&mut self, reference: &Reference) -> Result<Digest> {
        self.cache.resolve_failed(reference)
    }
    fn detect_movement(&mut self, reference: &Reference, remote: &Digest) -> Result<bool> {
        self.cache.detect_movement(reference, remote)
    }
    fn invalidate_tag(&mut self, reference: &Reference) -> Result<bool> {
        self.cache.invalidate_tag(reference)
    }
    fn delete_tag(&mut self, reference: &Reference) -> Result<bool> {
        self.cache.delete_tag(reference)
    }
    fn tag_history(&mut self, reference: &Reference) -> Result<Vec<TagHistoryEntry>> {
        self.cache.tag_history(reference)
    }
    fn tags(&mut self) -> Result<Vec<TagMapping>> {
        Ok(self.cache.tags())
    }

    fn stats(&mut self) -> Result<Stats> {
        Ok(self.cache.stats())
    }
    fn metrics(&mut self) -> Result<MetricsSnapshot> {
        Ok(self.cache.metrics())
    }
    fn metrics_prometheus(&mut self) -> Result<String> {
        Ok(self.cache.metrics().to_prometheus())
    }
    fn size(&mut self) -> Result<u64> {
        Ok(self.cache.size())
    }
    fn contents(&mut self) -> Result<Vec<EntryInfo>> {
        Ok(self.cache.contents())
    }
    fn debug_info(&mut self) -> Result<DebugInfo> {
        Ok(self.cache.debug_info())
    }
    fn export_debug_json(&mut self) -> Result<String> {
        Ok(self.cache.export_debug_json())
    }
    fn check_integrity(&mut self) -> Result<IntegrityReport> {
        self.cache.check_integrity()
    }
    fn repair(&mut self) -> Result<RepairReport> {
        self.cache.repair()
    }
    fn validate_digests(&mut self) -> Result<(u64, Vec<String>)> {
        self.cache.validate_digests()
    }
    fn clear_expired(&mut self) -> Result<u64> {
        self.cache.clear_expired()
    }
    fn check_room(&mut self, bytes: u64, keep: &[Key]) -> Result<()> {
        self.cache.check_room(bytes, keep)
    }
    fn cleanup(&mut self) -> Result<CleanupReport> {
        self.cache.cleanup()
    }
    fn clear(&mut self) -> Result<()> {
        self.cache.clear()
    }
    fn config(&mut self) -> Result<Config> {
        Ok(self.cache.config().clone())
    }
    fn durability(&mut self) -> Result<Durability> {
        Ok(self.cache.durability())
    }
    fn recovery_report(&mut self) -> Result<RecoveryReport> {
        Ok(self.cache.recovery_report().clone())
    }
    fn flush(&mut self) -> Result<()> {
        self.cache.flush()
    }
    fn close(mut self: Box<Self>) -> Result<()> {
        for (_, r) in std::mem::take(&mut self.readers) {
            self.cache.close_blob(r);
        }
        // Writers still open are abandoned, as the core does: their temps stay (unlocked once
        // the storage is dropped) until the next open clears them.
        drop(std::mem::take(&mut self.writers));
        self.cache.close()
    }
}
