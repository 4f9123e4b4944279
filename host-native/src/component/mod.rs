//! The component engine: the core compiled to `ocicache.wasm` (built by `build.rs`), run by
//! wasmtime with this host's storage, clock, log and native SHA-2 behind its imports.
//!
//! The component is compiled once per process and instantiated per cache. Guest memory is
//! capped by a `ResourceLimiter`. A trap (a guest bug, or the memory cap) fails the call with
//! the core's `storage` error and poisons the instance; the next call starts a fresh instance
//! and reopens the cache from storage, where every committed change already is.

mod compiled;
mod convert;
mod imports;

use convert::{FromWit, config_to_wit, digest_to_wit, error_from_wit, key_to_wit, reference_text};
use imports::HostState;
use ocicache_core::{
    CleanupReport, Clock, Config, DebugInfo, Digest, Durability, EntryInfo, Error, IntegrityReport,
    Key, LogSink, Manifest, MediaType, MetricsSnapshot, RecoveryReport, Reference, RepairReport,
    Resolution, Result, Stats, Storage, StorageError, TagHistoryEntry, TagMapping, TagUpdate,
};
use std::collections::HashMap;
use std::sync::OnceLock;
use wasmtime::component::{Component, Linker, ResourceAny, ResourceTable};
use wasmtime::{Engine, Store, StoreLimitsBuilder};

/// The bindings wasmtime generates from `wit/ocicache.wit` (documented there).
#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        world: "ocicache",
        path: "../wit",
        with: { "ocicache:cache/hasher.hash-state": super::imports::HashState },
    });
}

use bindings::exports::ocicache::cache::cache::Guest as CacheExports;
use bindings::ocicache::cache::types as wit;

/// The component's bytes, as built by `build.rs`.
pub const COMPONENT_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ocicache.wasm"));

/// The default cap on the component's linear memory: room for an index of several million
/// entries (about 250 bytes each) plus streaming buffers.
pub const DEFAULT_MEMORY_LIMIT: usize = 2 << 30;

/// The largest piece of a blob handed to or asked of the guest in one call (see
/// [`ComponentCache::write_blob`], [`ComponentCache::read_blob`]).
pub const GUEST_CHUNK: usize = 256 << 10;

/// How the component is run.
#[derive(Debug, Clone, Copy)]
pub struct ComponentOptions {
    /// Cap on the guest's linear memory, in bytes.
    pub memory_limit: usize,
    /// Whether the host hashes (native SHA-2) for the component; without, it uses its own.
    pub native_hashing: bool,
    /// Whether opening may create a cache over a storage that holds files but no cache index
    /// (the core's `CacheBuilder::adopt_existing`); without, such a storage is refused.
    pub adopt_existing: bool,
}

impl Default for ComponentOptions {
    fn default() -> Self {
        ComponentOptions {
            memory_limit: DEFAULT_MEMORY_LIMIT,
            native_hashing: true,
            adopt_existing: false,
        }
    }
}

/// The engine, the compiled component and the linker, shared by every cache of the process.
struct Runtime {
    engine: Engine,
    component: Component,
    pre: bindings::OcicachePre<HostState>,
}

fn runtime() -> Result<&'static Runtime> {
    static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let engine = Engine::default();
            let component = compiled::load(&engine, COMPONENT_WASM)
                .map_err(|e| format!("compiling the component: {e:#}"))?;
            let mut linker = Linker::<HostState>::new(&engine);
            bindings::Ocicache::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(
                &mut linker,
                |s| s,
            )
            .map_err(|e| format!("linking the component's imports: {e:#}"))?;
            imports::add_fast_imports(&mut linker)
                .map_err(|e| format!("linking the component's fast imports: {e:#}"))?;
            let pre = linker
                .instantiate_pre(&component.clone())
                .and_then(bindings::OcicachePre::new)
                .map_err(|e| format!("preparing the component: {e:#}"))?;
            Ok(Runtime {
                engine,
                component,
                pre,
            })
        })
        .as_ref()
        .map_err(|e| failure(e.clone()))
}

/// The typed error for a failure of the component itself (a trap, a link error).
fn failure(detail: String) -> Error {
    Error::Storage(StorageError::Io(format!("the component failed: {detail}")))
}

/// The names of the interfaces the component imports (for checking that it needs no WASI).
pub fn component_imports() -> Result<Vec<String>> {
    let rt = runtime()?;
    Ok(rt
        .component
        .component_type()
        .imports(&rt.engine)
        .map(|(name, _)| name.to_owned())
        .collect())
}

struct Instance {
    store: Store<HostState>,
    exports: bindings::Ocicache,
    cache: ResourceAny,
}

enum Stream {
    Writer(ResourceAny),
    Reader(ResourceAny),
}

/// A cache run inside the component. Blob writers and readers are addressed by handles.
pub struct ComponentCache {
    /// `None` after a trap, until the next call revives it.
    instance: Option<Instance>,
    /// The host parts of a poisoned instance, kept to start the next one.
    spare: Option<HostState>,
    config: Config,
    streams: HashMap<u32, (u64, Stream)>,
    next_handle: u32,
    /// Which instance the streams belong to: a revived instance does not know the old ones.
    generation: u64,
    adopt_existing: bool,
}

impl ComponentCache {
    /// Opens a cache over `storage` inside a fresh instance of the component.
    pub fn open(
        storage: impl Storage + 'static,
        clock: impl Clock + 'static,
        log: impl LogSink + 'static,
        config: Config,
        options: ComponentOptions,
    ) -> Result<ComponentCache> {
        let state = HostState {
            storage: Some(Box::new(storage)),
            clock: Box::new(clock),
            log: Box::new(log),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(options.memory_limit)
                .build(),
            native_hashing: options.native_hashing,
        };
        let mut cache = ComponentCache {
            instance: None,
            spare: Some(state),
            config,
            streams: HashMap::new(),
            next_handle: 0,
            generation: 0,
            adopt_existing: options.adopt_existing,
        };
        cache.revive()?;
        Ok(cache)
    }

    /// Starts an instance and opens the cache in it, from the spare host parts.
    fn revive(&mut self) -> Result<()> {
        let rt = runtime()?;
        let mut state = self.spare.take().expect("host parts kept while poisoned");
        state.table = ResourceTable::new();
        let mut store = Store::new(&rt.engine, state);
        store.limiter(|s| s.limiter());
        let exports = match rt.pre.instantiate(&mut store) {
            Ok(e) => e,
            Err(e) => {
                self.spare = Some(store.into_data());
                return Err(failure(format!("{e:#}")));
            }
        };
        let config = config_to_wit(&self.config);
        let opened = exports.ocicache_cache_cache().cache().call_open(
            &mut store,
            &config,
            self.adopt_existing,
        );
        match opened {
            Ok(Ok(cache)) => {
                self.instance = Some(Instance {
                    store,
                    exports,
                    cache,
                });
                self.generation += 1;
                Ok(())
            }
            Ok(Err(e)) => {
                self.spare = Some(store.into_data());
                Err(error_from_wit(e))
            }
            Err(trap) => {
                self.spare = Some(store.into_data());
                Err(failure(format!("{trap:#}")))
            }
        }
    }

    /// Calls into the component; a trap poisons the instance (the next call revives it).
    fn call<T>(
        &mut self,
        f: impl FnOnce(
            &CacheExports,
            &mut Store<HostState>,
            ResourceAny,
        ) -> wasmtime::Result<std::result::Result<T, wit::Error>>,
    ) -> Result<T> {
        if self.instance.is_none() {
            self.revive()?;
        }
        let inst = self.instance.as_mut().expect("revived");
        match f(
            inst.exports.ocicache_cache_cache(),
            &mut inst.store,
            inst.cache,
        ) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(error_from_wit(e)),
            Err(trap) => Err(self.poison(trap)),
        }
    }

    /// Like `call`, converting the answer to the core's type.
    fn call_into<W, T: FromWit<W>>(
        &mut self,
        f: impl FnOnce(
            &CacheExports,
            &mut Store<HostState>,
            ResourceAny,
        ) -> wasmtime::Result<std::result::Result<W, wit::Error>>,
    ) -> Result<T> {
        self.call(f).and_then(T::from_wit)
    }

    /// Like `call_into`, for functions that cannot fail in the component.
    fn get<W, T: FromWit<W>>(
        &mut self,
        f: impl FnOnce(&CacheExports, &mut Store<HostState>, ResourceAny) -> wasmtime::Result<W>,
    ) -> Result<T> {
        self.call_into(|g, s, c| f(g, s, c).map(Ok))
    }

    fn poison(&mut self, trap: wasmtime::Error) -> Error {
        if let Some(inst) = self.instance.take() {
            self.spare = Some(inst.store.into_data());
        }
        self.streams.clear();
        failure(format!("{trap:#}"))
    }

    fn add_stream(&mut self, stream: Stream) -> u32 {
        self.next_handle = self.next_handle.wrapping_add(1);
        self.streams
            .insert(self.next_handle, (self.generation, stream));
        self.next_handle
    }

    fn take_stream(&mut self, handle: u32) -> Result<Stream> {
        match self.streams.remove(&handle) {
            Some((generation, stream)) if generation == self.generation => Ok(stream),
            _ => Err(Error::InvalidArgument(format!(
                "no open blob writer or reader {handle}"
            ))),
        }
    }

    fn drop_resource(&mut self, res: ResourceAny) {
        if let Some(inst) = self.instance.as_mut()
            && let Err(trap) = res.resource_drop(&mut inst.store)
        {
            self.poison(trap);
        }
    }

    /// The settings in force.
    pub fn config(&mut self) -> Result<Config> {
        self.get(|g, s, c| g.cache().call_config(s, c))
    }

    /// The durability level the storage honours.
    pub fn durability(&mut self) -> Result<Durability> {
        self.get(|g, s, c| g.cache().call_durability(s, c))
    }

    /// Catches up with what other processes sharing the storage committed.
    pub fn refresh(&mut self) -> Result<bool> {
        self.call(|g, s, c| g.cache().call_refresh(s, c))
    }

    /// What opening found and did.
    pub fn recovery_report(&mut self) -> Result<RecoveryReport> {
        self.get(|g, s, c| g.cache().call_recovery_report(s, c))
    }

    /// Stores a manifest; returns its media type.
    pub fn put_manifest(
        &mut self,
        digest: &Digest,
        body: &[u8],
        media_type: Option<&str>,
    ) -> Result<MediaType> {
        let d = digest_to_wit(digest);
        self.call_into(|g, s, c| g.cache().call_put_manifest(s, c, &d, body, media_type))
    }

    /// The exact stored manifest, with its parsed form.
    ///
    /// The parsed form does not cross the boundary, so the host parses the body, and the
    /// component skips its own parse of verified bytes (`get-manifest` without `validate`). A
    /// body that does not parse here asks the component again with `validate`, which
    /// quarantines it as the native engine does.
    pub fn get_manifest(&mut self, digest: &Digest) -> Result<Manifest> {
        let d = digest_to_wit(digest);
        let m = self.call(|g, s, c| g.cache().call_get_manifest(s, c, &d, false))?;
        let media_type = MediaType::from_wit(m.media_type)?;
        let validated = match ocicache_core::manifest::validate(&m.body, Some(media_type.as_str()))
        {
            Ok(v) => v,
            Err(_) => {
                let m = self.call(|g, s, c| g.cache().call_get_manifest(s, c, &d, true))?;
                ocicache_core::manifest::validate(
                    &m.body,
                    Some(MediaType::from_wit(m.media_type)?.as_str()),
                )?
            }
        };
        Ok(Manifest {
            digest: digest.clone(),
            media_type: validated.media_type,
            bytes: m.body,
            parsed: validated.parsed,
        })
    }

    /// Whether a valid, unexpired manifest is cached.
    pub fn has_manifest(&mut self, digest: &Digest) -> Result<bool> {
        let d = digest_to_wit(digest);
        self.call(|g, s, c| g.cache().call_has_manifest(s, c, &d))
    }

    /// Deletes a manifest.
    pub fn delete_manifest(&mut self, digest: &Digest) -> Result<bool> {
        let d = digest_to_wit(digest);
        self.call(|g, s, c| g.cache().call_delete_manifest(s, c, &d))
    }

    /// The content a cached manifest references.
    pub fn manifest_references(&mut self, digest: &Digest) -> Result<Vec<Key>> {
        let d = digest_to_wit(digest);
        self.call_into(|g, s, c| g.cache().call_manifest_references(s, c, &d))
    }

    /// Starts writing a blob; returns the writer's handle.
    pub fn begin_blob(&mut self, expected: Option<&Digest>, size: Option<u64>) -> Result<u32> {
        let e = expected.map(digest_to_wit);
        let w = self.call(|g, s, c| g.cache().call_begin_blob(s, c, e.as_ref(), size))?;
        Ok(self.add_stream(Stream::Writer(w)))
    }

    fn writer(&self, handle: u32) -> Result<ResourceAny> {
        match self.streams.get(&handle) {
            Some((generation, Stream::Writer(w))) if *generation == self.generation => Ok(*w),
            _ => Err(Error::InvalidArgument(format!(
                "no open blob writer {handle}"
            ))),
        }
    }

    /// Writes a chunk. A failed write finishes the writer.
    ///
    /// The chunk crosses into the guest in pieces of at most [`GUEST_CHUNK`] bytes: each piece
    /// is copied into guest memory, then read from there by the host's storage and hasher, and
    /// a piece that stays in the CPU's cache between those passes makes a 1 GiB ingest about
    /// 10 % faster than 1 MiB pieces do (`benches/ingest.rs`).
    pub fn write_blob(&mut self, handle: u32, chunk: &[u8]) -> Result<()> {
        let w = self.writer(handle)?;
        let mut result = Ok(());
        for piece in chunk.chunks(GUEST_CHUNK) {
            result = self.call(|g, s, _| g.blob_writer().call_write(s, w, piece));
            if result.is_err() {
                break;
            }
        }
        if result.is_err() {
            self.abort_blob(handle);
        }
        result
    }

    /// Verifies and commits a blob; returns its digest.
    pub fn commit_blob(&mut self, handle: u32) -> Result<Digest> {
        let w = self.writer(handle)?;
        let result = self.call(|g, s, _| g.blob_writer().call_commit(s, w));
        if let Ok(Stream::Writer(w)) = self.take_stream(handle) {
            self.drop_resource(w);
        }
        Digest::from_wit(result?)
    }

    /// Discards a blob being written.
    pub fn abort_blob(&mut self, handle: u32) {
        if let Ok(stream) = self.take_stream(handle) {
            let res = match stream {
                Stream::Writer(w) | Stream::Reader(w) => w,
            };
            // Dropping the guest's writer aborts it.
            self.drop_resource(res);
        }
    }

    /// Starts or continues a download the storage keeps across processes: the writer's handle
    /// and the bytes it holds, or `None`.
    pub fn resume_blob(
        &mut self,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<Option<(u32, u64)>> {
        let e = digest_to_wit(expected);
        let Some(w) = self.call(|g, s, c| g.cache().call_resume_blob(s, c, &e, size))? else {
            return Ok(None);
        };
        let written = self.call(|g, s, _| g.blob_writer().call_written(s, w).map(Ok))?;
        Ok(Some((self.add_stream(Stream::Writer(w)), written)))
    }

    /// Closes a writer keeping its bytes for a later `resume_blob`.
    pub fn keep_blob(&mut self, handle: u32) {
        let Ok(w) = self.writer(handle) else { return };
        let _ = self.call(|g, s, _| g.blob_writer().call_keep(s, w).map(Ok));
        if let Ok(Stream::Writer(w)) = self.take_stream(handle) {
            self.drop_resource(w);
        }
    }

    /// Stores a small blob in one call.
    pub fn put_blob(&mut self, expected: Option<&Digest>, data: &[u8]) -> Result<Digest> {
        let e = expected.map(digest_to_wit);
        self.call_into(|g, s, c| g.cache().call_put_blob(s, c, e.as_ref(), data))
    }

    /// Opens a blob for reading; returns the reader's handle and the blob's size.
    pub fn open_blob(&mut self, digest: &Digest) -> Result<(u32, u64)> {
        let d = digest_to_wit(digest);
        let (r, size) = self.call(|g, s, c| g.cache().call_open_blob(s, c, &d))?;
        Ok((self.add_stream(Stream::Reader(r)), size))
    }

    /// Reads the next chunk into `buf`; 0 at the end.
    pub fn read_blob(&mut self, handle: u32, buf: &mut [u8]) -> Result<usize> {
        let r = match self.streams.get(&handle) {
            Some((generation, Stream::Reader(r))) if *generation == self.generation => *r,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "no open blob reader {handle}"
                )));
            }
        };
        // Pieces of at most `GUEST_CHUNK` bytes, as for writes: each is copied from the host's
        // storage into guest memory, hashed from there and copied back out, and a piece that
        // stays in the CPU's cache between those passes is cheaper to move.
        let max = u32::try_from(buf.len().min(GUEST_CHUNK)).unwrap_or(u32::MAX);
        let chunk = self.call(|g, s, _| g.blob_reader().call_read(s, r, max))?;
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Closes a reader.
    pub fn close_blob(&mut self, handle: u32) {
        self.abort_blob(handle);
    }

    /// Reads a small blob whole.
    pub fn get_blob(&mut self, digest: &Digest) -> Result<Vec<u8>> {
        let d = digest_to_wit(digest);
        self.call(|g, s, c| g.cache().call_get_blob(s, c, &d))
    }

    /// Whether a valid, unexpired blob is cached.
    pub fn has_blob(&mut self, digest: &Digest) -> Result<bool> {
        let d = digest_to_wit(digest);
        self.call(|g, s, c| g.cache().call_has_blob(s, c, &d))
    }

    /// Deletes a blob.
    pub fn delete_blob(&mut self, digest: &Digest) -> Result<bool> {
        let d = digest_to_wit(digest);
        self.call(|g, s, c| g.cache().call_delete_blob(s, c, &d))
    }

    /// Whether an entry is cached.
    pub fn has(&mut self, key: &Key) -> Result<bool> {
        let k = key_to_wit(key);
        self.call(|g, s, c| g.cache().call_has(s, c, &k))
    }

    /// Pins an entry; returns its pins.
    pub fn pin(&mut self, key: &Key) -> Result<u32> {
        let k = key_to_wit(key);
        self.call(|g, s, c| g.cache().call_pin(s, c, &k))
    }

    /// Removes a pin; returns the pins left.
    pub fn unpin(&mut self, key: &Key) -> Result<u32> {
        let k = key_to_wit(key);
        self.call(|g, s, c| g.cache().call_unpin(s, c, &k))
    }

    /// Deletes an entry.
    pub fn delete(&mut self, key: &Key) -> Result<bool> {
        let k = key_to_wit(key);
        self.call(|g, s, c| g.cache().call_delete(s, c, &k))
    }

    /// Records the digest a reference points to.
    pub fn put_tag(&mut self, reference: &Reference, digest: &Digest) -> Result<TagUpdate> {
        let (r, d) = (reference_text(reference), digest_to_wit(digest));
        self.call_into(|g, s, c| g.cache().call_put_tag(s, c, &r, &d))
    }

    /// A tag's mapping.
    pub fn get_tag(&mut self, reference: &Reference) -> Result<TagMapping> {
        let r = reference_text(reference);
        self.call_into(|g, s, c| g.cache().call_get_tag(s, c, &r))
    }

    /// Whether a fresh, valid mapping exists.
    pub fn has_tag(&mut self, reference: &Reference) -> Result<bool> {
        let r = reference_text(reference);
        self.call(|g, s, c| g.cache().call_has_tag(s, c, &r))
    }

    /// The resolver step.
    pub fn resolve_tag(&mut self, reference: &Reference) -> Result<Resolution> {
        let r = reference_text(reference);
        self.call_into(|g, s, c| g.cache().call_resolve_tag(s, c, &r))
    }

    /// The resolver step for many references.
    pub fn resolve_tags(&mut self, references: &[Reference]) -> Result<Vec<Result<Resolution>>> {
        let refs: Vec<String> = references.iter().map(reference_text).collect();
        let answers = self.call(|g, s, c| g.cache().call_resolve_tags(s, c, &refs).map(Ok))?;
        Ok(answers
            .into_iter()
            .map(|a| a.map_err(error_from_wit).and_then(Resolution::from_wit))
            .collect())
    }

    /// The digest to fall back on when revalidation failed.
    pub fn resolve_failed(&mut self, reference: &Reference) -> Result<Digest> {
        let r = reference_text(reference);
        self.call_into(|g, s, c| g.cache().call_resolve_failed(s, c, &r))
    }

    /// Whether the remote digest differs from the cached one.
    pub fn detect_movement(&mut self, reference: &Reference, remote: &Digest) -> Result<bool> {
        let (r, d) = (reference_text(reference), digest_to_wit(remote));
        self.call(|g, s, c| g.cache().call_detect_movement(s, c, &r, &d))
    }

    /// Invalidates a tag.
    pub fn invalidate_tag(&mut self, reference: &Reference) -> Result<bool> {
        let r = reference_text(reference);
        self.call(|g, s, c| g.cache().call_invalidate_tag(s, c, &r))
    }

    /// Deletes a tag.
    pub fn delete_tag(&mut self, reference: &Reference) -> Result<bool> {
        let r = reference_text(reference);
        self.call(|g, s, c| g.cache().call_delete_tag(s, c, &r))
    }

    /// A tag's history, oldest first.
    pub fn tag_history(&mut self, reference: &Reference) -> Result<Vec<TagHistoryEntry>> {
        let r = reference_text(reference);
        self.call_into(|g, s, c| g.cache().call_tag_history(s, c, &r))
    }

    /// Every tag mapping.
    pub fn tags(&mut self) -> Result<Vec<TagMapping>> {
        self.get(|g, s, c| g.cache().call_tags(s, c))
    }

    /// Counts describing the cache now.
    pub fn stats(&mut self) -> Result<Stats> {
        self.get(|g, s, c| g.cache().call_stats(s, c))
    }

    /// Metrics since the instance opened the cache.
    pub fn metrics(&mut self) -> Result<MetricsSnapshot> {
        self.get(|g, s, c| g.cache().call_metrics(s, c))
    }

    /// Metrics as Prometheus text.
    pub fn metrics_prometheus(&mut self) -> Result<String> {
        self.get(|g, s, c| g.cache().call_metrics_prometheus(s, c))
    }

    /// Bytes of all entries.
    pub fn size(&mut self) -> Result<u64> {
        self.get(|g, s, c| g.cache().call_size(s, c))
    }

    /// Every entry.
    pub fn contents(&mut self) -> Result<Vec<EntryInfo>> {
        self.get(|g, s, c| g.cache().call_contents(s, c))
    }

    /// State for debugging.
    pub fn debug_info(&mut self) -> Result<DebugInfo> {
        self.get(|g, s, c| g.cache().call_debug_info(s, c))
    }

    /// Debug info, contents and tags as JSON.
    pub fn export_debug_json(&mut self) -> Result<String> {
        self.get(|g, s, c| g.cache().call_export_debug_json(s, c))
    }

    /// Re-hashes every entry.
    pub fn check_integrity(&mut self) -> Result<IntegrityReport> {
        self.call_into(|g, s, c| g.cache().call_check_integrity(s, c))
    }

    /// Repairs what the integrity check finds.
    pub fn repair(&mut self) -> Result<RepairReport> {
        self.call_into(|g, s, c| g.cache().call_repair(s, c))
    }

    /// Re-hashes every entry; returns the count of valid ones and the invalid ones.
    pub fn validate_digests(&mut self) -> Result<(u64, Vec<String>)> {
        let v = self.call(|g, s, c| g.cache().call_validate_digests(s, c))?;
        Ok((v.valid, v.invalid))
    }

    /// Removes expired entries.
    pub fn clear_expired(&mut self) -> Result<u64> {
        self.call(|g, s, c| g.cache().call_clear_expired(s, c))
    }

    /// `Full`, changing nothing, if `bytes` more could not fit under the cap, keeping `keep`.
    pub fn check_room(&mut self, bytes: u64, keep: &[Key]) -> Result<()> {
        let keep: Vec<_> = keep.iter().map(key_to_wit).collect();
        self.call(|g, s, c| g.cache().call_check_room(s, c, bytes, &keep))
    }

    /// Removes expired entries, evicts to the low watermark, compacts.
    pub fn cleanup(&mut self) -> Result<CleanupReport> {
        self.call_into(|g, s, c| g.cache().call_cleanup(s, c))
    }

    /// Removes everything.
    pub fn clear(&mut self) -> Result<()> {
        self.call(|g, s, c| g.cache().call_clear(s, c))
    }

    /// Writes buffered access records.
    pub fn flush(&mut self) -> Result<()> {
        self.call(|g, s, c| g.cache().call_flush(s, c))
    }

    /// Closes open readers, abandons open writers (as the core does: their temps stay until
    /// the next open clears them) and closes the cache, recording a clean shutdown.
    ///
    /// Dropping a `ComponentCache` without `close` abandons everything, as a crash would.
    pub fn close(mut self) -> Result<()> {
        let readers: Vec<u32> = self
            .streams
            .iter()
            .filter(|(_, (_, s))| matches!(s, Stream::Reader(_)))
            .map(|(h, _)| *h)
            .collect();
        for h in readers {
            self.close_blob(h);
        }
        // Writer resources are not dropped: the guest would abort them.
        self.streams.clear();
        self.call(|g, s, c| g.cache().call_close(s, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocicache_core::hashing::{BuiltinHasher, digest_of};
    use ocicache_core::storage::MemoryStorage;
    use ocicache_core::{Algorithm, ErrorKind, ManualClock, NoLog};

    const BODY: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;

    fn raw_get_manifest(
        cache: &mut ComponentCache,
        digest: &Digest,
        validate: bool,
    ) -> Result<wit::Manifest> {
        let d = digest_to_wit(digest);
        cache.call(|g, s, c| g.cache().call_get_manifest(s, c, &d, validate))
    }

    /// `get-manifest` answers the same bytes and media type with or without the component's
    /// own parse; unverified reads are parsed either way, so garbage is quarantined.
    #[test]
    fn get_manifest_with_and_without_the_components_parse() {
        for verify_reads in [true, false] {
            let storage = MemoryStorage::new();
            let config = Config {
                verify_reads,
                ..Config::default()
            };
            let mut cache = ComponentCache::open(
                storage.clone(),
                ManualClock::new(1_000),
                NoLog,
                config,
                ComponentOptions::default(),
            )
            .unwrap();
            let d = digest_of(&BuiltinHasher, Algorithm::Sha256, BODY).unwrap();
            assert_eq!(
                cache.put_manifest(&d, BODY, None).unwrap(),
                MediaType::OciManifest
            );
            for validate in [false, true] {
                let m = raw_get_manifest(&mut cache, &d, validate).unwrap();
                assert_eq!(m.body, BODY);
                assert_eq!(m.media_type, wit::MediaType::OciManifest);
            }
            let m = cache.get_manifest(&d).unwrap();
            assert_eq!((m.digest.clone(), m.bytes.as_slice()), (d.clone(), BODY));

            let path = ocicache_core::layout::entry_path(&Key::manifest(d.clone()));
            storage.put(&path, &vec![b'x'; BODY.len()]);
            let err = raw_get_manifest(&mut cache, &d, false).unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::Corrupted,
                "verify_reads {verify_reads}"
            );
            assert!(!cache.has_manifest(&d).unwrap(), "quarantined");
        }
    }
}
