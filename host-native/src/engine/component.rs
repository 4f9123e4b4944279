//! The engine that runs the core inside the `ocicache.wasm` component
//! ([`crate::component::ComponentCache`]), over the same [`FsStorage`].

use super::{BoxedClock, BoxedLog, Engine, Handle};
use crate::component::{ComponentCache, ComponentOptions};
use crate::storage::FsStorage;
use ocicache_core::{
    CleanupReport, Clock, Config, DebugInfo, Digest, Durability, EntryInfo, IntegrityReport, Key,
    LogSink, Manifest, MediaType, MetricsSnapshot, RecoveryReport, Reference, RepairReport,
    Resolution, Result, Stats, TagHistoryEntry, TagMapping, TagUpdate,
};

/// Opens the component engine.
pub(crate) fn open(
    storage: FsStorage,
    config: Config,
    clock: Box<dyn Clock>,
    log: Box<dyn LogSink>,
    options: ComponentOptions,
) -> Result<ComponentCache> {
    ComponentCache::open(storage, BoxedClock(clock), BoxedLog(log), config, options)
}

/// Every method forwards to the `ComponentCache` method of the same name.
macro_rules! forward {
    ($(fn $name:ident(&mut self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        $(fn $name(&mut self $(, $arg: $ty)*) -> $ret {
            ComponentCache::$name(self $(, $arg)*)
        })*
    };
}

impl Engine for ComponentCache {
    forward! {
        fn refresh(&mut self) -> Result<bool>;
        fn put_manifest(&mut self, digest: &Digest, bytes: &[u8], media_type: Option<&str>) -> Result<MediaType>;
        fn get_manifest(&mut self, digest: &Digest) -> Result<Manifest>;
        fn has_manifest(&mut self, digest: &Digest) -> Result<bool>;
        fn delete_manifest(&mut self, digest: &Digest) -> Result<bool>;
        fn manifest_references(&mut self, digest: &Digest) -> Result<Vec<Key>>;
        fn put_blob(&mut self, expected: Option<&Digest>, bytes: &[u8]) -> Result<Digest>;
        fn get_blob(&mut self, digest: &Digest) -> Result<Vec<u8>>;
        fn has_blob(&mut self, digest: &Digest) -> Result<bool>;
        fn delete_blob(&mut self, digest: &Digest) -> Result<bool>;
        fn begin_blob(&mut self, expected: Option<&Digest>, size: Option<u64>) -> Result<Handle>;
        fn write_blob(&mut self, writer: Handle, chunk: &[u8]) -> Result<()>;
        fn commit_blob(&mut self, writer: Handle) -> Result<Digest>;
        fn abort_blob(&mut self, writer: Handle) -> ();
        fn keep_blob(&mut self, writer: Handle) -> ();
        fn open_blob(&mut self, digest: &Digest) -> Result<(Handle, u64)>;
        fn read_blob(&mut self, reader: Handle, buf: &mut [u8]) -> Result<usize>;
        fn close_blob(&mut self, reader: Handle) -> ();
        fn pin(&mut self, key: &Key) -> Result<u32>;
        fn unpin(&mut self, key: &Key) -> Result<u32>;
        fn delete(&mut self, key: &Key) -> Result<bool>;
        fn put_tag(&mut self, reference: &Reference, digest: &Digest) -> Result<TagUpdate>;
        fn get_tag(&mut self, reference: &Reference) -> Result<TagMapping>;
        fn has_tag(&mut self, reference: &Reference) -> Result<bool>;
        fn resolve_tag(&mut self, reference: &Reference) -> Result<Resolution>;
        fn resolve_tags(&mut self, references: &[Reference]) -> Result<Vec<Result<Resolution>>>;
        fn resolve_failed(&mut self, reference: &Reference) -> Result<Digest>;
        fn detect_movement(&mut self, reference: &Reference, remote: &Digest) -> Result<bool>;
        fn invalidate_tag(&mut self, reference: &Reference) -> Result<bool>;
        fn delete_tag(&mut self, reference: &Reference) -> Result<bool>;
        fn tag_history(&mut self, reference: &Reference) -> Result<Vec<TagHistoryEntry>>;
        fn tags(&mut self) -> Result<Vec<TagMapping>>;
        fn stats(&mut self) -> Result<Stats>;
        fn metrics(&mut self) -> Result<MetricsSnapshot>;
        fn metrics_prometheus(&mut self) -> Result<String>;
        fn size(&mut self) -> Result<u64>;
        fn contents(&mut self) -> Result<Vec<EntryInfo>>;
        fn debug_info(&mut self) -> Result<DebugInfo>;
        fn export_debug_json(&mut self) -> Result<String>;
        fn check_integrity(&mut self) -> Result<IntegrityReport>;
        fn repair(&mut self) -> Result<RepairReport>;
        fn validate_digests(&mut self) -> Result<(u64, Vec<String>)>;
        fn clear_expired(&mut self) -> Result<u64>;
        fn resume_blob(&mut self, expected: &Digest, size: Option<u64>) -> Result<Option<(Handle, u64)>>;

        fn check_room(&mut self, bytes: u64, keep: &[Key]) -> Result<()>;
        fn cleanup(&mut self) -> Result<CleanupReport>;
        fn clear(&mut self) -> Result<()>;
        fn config(&mut self) -> Result<Config>;
        fn durability(&mut self) -> Result<Durability>;
        fn recovery_report(&mut self) -> Result<RecoveryReport>;
        fn flush(&mut self) -> Result<()>;
    }

    fn close(self: Box<Self>) -> Result<()> {
        ComponentCache::close(*self)
    }
}
