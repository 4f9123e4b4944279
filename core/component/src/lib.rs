//! The guest glue of the `ocicache.wasm` component: the WIT world `ocicache:cache/ocicache`
//! (`wit/ocicache.wit`) implemented over `ocicache-core`.
//!
//! Nothing here decides anything: imports become the core's `Storage`, `Clock`, `LogSink` and
//! `HashProvider`; exports check their arguments (digests arrive in binary, references as text,
//! parsed once and kept by their text) and call the core. Built for
//! `wasm32-unknown-unknown` and componentized with `wit-component` (see `host-native/build.rs`),
//! the component imports only our own interfaces — no WASI.

// wit-bindgen's generated ABI glue needs `unsafe`; this crate has no other.
#![allow(unsafe_code)]

mod convert;
mod imports;

use bindings::exports::ocicache::cache::cache::{
    BlobReader, BlobWriter, Cache as CacheHandle, Guest, GuestBlobReader, GuestBlobWriter,
    GuestCache,
};
use bindings::ocicache::cache::types as wit;
use convert::{ToWit, config_from_wit, digest_from_wit};
use ocicache_core::{Digest, Key, Kind, Reference};
use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

/// The bindings wit-bindgen generates from `wit/ocicache.wit` (documented there).
#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        world: "ocicache",
        path: "../../wit",
        generate_all,
    });
}

/// The component.
pub struct Component;

bindings::export!(Component with_types_in bindings);

type Shared = Rc<RefCell<Option<ocicache_core::Cache>>>;
type WitResult<T> = Result<T, wit::Error>;

fn closed() -> wit::Error {
    wit::Error::InvalidArgument("the cache is closed".into())
}

/// Runs `f` on the open cache, converting its result.
fn with<T, U>(
    shared: &Shared,
    f: impl FnOnce(&mut ocicache_core::Cache) -> ocicache_core::Result<T>,
) -> WitResult<U>
where
    T: ToWit<U>,
{
    let mut guard = shared.borrow_mut();
    let cache = guard.as_mut().ok_or_else(closed)?;
    f(cache).map(ToWit::to_wit).map_err(ToWit::to_wit)
}

fn digest(d: wit::Digest) -> WitResult<Digest> {
    digest_from_wit(d).map_err(ToWit::to_wit)
}

fn reference(s: &str) -> WitResult<Reference> {
    Reference::parse(s).map_err(ToWit::to_wit)
}

fn key(k: wit::Key) -> WitResult<Key> {
    let d = digest(k.digest)?;
    Ok(match k.kind {
        wit::Kind::Manifest => Key {
            kind: Kind::Manifest,
            digest: d,
        },
        wit::Kind::Blob => Key {
            kind: Kind::Blob,
            digest: d,
        },
    })
}

impl Guest for Component {
    type BlobWriter = Writer;
    type BlobReader = Reader;
    type Cache = Cache;

    fn default_config() -> wit::Config {
        ocicache_core::Config::default().to_wit()
    }
}

/// The exported `blob-writer` resource.
pub struct Writer {
    cache: Shared,
    writer: RefCell<Option<ocicache_core::BlobWriter>>,
}

impl GuestBlobWriter for Writer {
    fn write(&self, chunk: Vec<u8>) -> WitResult<()> {
        let mut slot = self.writer.borrow_mut();
        let writer = slot
            .as_mut()
            .ok_or_else(|| wit::Error::InvalidArgument("the writer is finished".into()))?;
        let result = with(&self.cache, |c| c.write_blob(writer, &chunk));
        if result.is_err() {
            // A failed write finishes the writer (the core has discarded its temp).
            slot.take();
        }
        result
    }

    fn written(&self) -> u64 {
        self.writer.borrow().as_ref().map_or(0, |w| w.written())
    }

    fn commit(&self) -> WitResult<wit::Digest> {
        let writer = self
            .writer
            .borrow_mut()
            .take()
            .ok_or_else(|| wit::Error::InvalidArgument("the writer is finished".into()))?;
        with(&self.cache, |c| c.commit_blob(writer))
    }

    fn abort(&self) {
        if let Some(mut writer) = self.writer.borrow_mut().take()
            && let Some(c) = self.cache.borrow_mut().as_mut()
        {
            c.abort_blob(&mut writer);
        }
    }

    fn keep(&self) {
        if let Some(writer) = self.writer.borrow_mut().take()
            && let Some(c) = self.cache.borrow_mut().as_mut()
        {
            c.keep_blob(writer);
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.abort();
    }
}

/// The exported `blob-reader` resource.
pub struct Reader {
    cache: Shared,
    reader: RefCell<Option<ocicache_core::BlobReader>>,
    size: u64,
}

impl GuestBlobReader for Reader {
    fn size(&self) -> u64 {
        self.size
    }

    fn position(&self) -> u64 {
        self.reader
            .borrow()
            .as_ref()
            .map_or(self.size, |r| r.position())
    }

    fn read(&self, max: u32) -> WitResult<Vec<u8>> {
        let mut slot = self.reader.borrow_mut();
        let Some(reader) = slot.as_mut() else {
            return Ok(Vec::new());
        };
        let remaining = reader.size() - reader.position();
        let want = usize::try_from(remaining.min(u64::from(max))).unwrap_or(usize::MAX);
        let mut buf = vec![0u8; want];
        let mut guard = self.cache.borrow_mut();
        let cache = guard.as_mut().ok_or_else(closed)?;
        let mut filled = 0;
        // Fill the buffer (the storage may answer in smaller pieces): fewer calls across.
        while filled < want {
            match cache.read_blob(reader, &mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => return Err(e.to_wit()),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.borrow_mut().take()
            && let Some(c) = self.cache.borrow_mut().as_mut()
        {
            c.close_blob(reader);
        }
    }
}

/// The exported `cache` resource.
pub struct Cache {
    shared: Shared,
    /// References parsed before, by their text: hosts ask about the same few tags over and
    /// over, and parsing one in wasm costs more than the lookup it names.
    references: RefCell<HashMap<String, Reference, BuildHasherDefault<TextHasher>>>,
}

/// A multiply-rotate hasher for the reference memo, several times cheaper in wasm than the
/// default SipHash. Its keys are the host's own texts and the memo is small and bounded, so
/// resistance to crafted collisions would buy nothing.
#[derive(Default)]
struct TextHasher(u64);

impl Hasher for TextHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// How many parsed references [`Cache::with_reference`] keeps (it forgets all when full).
const REFERENCE_MEMO: usize = 1024;

impl Cache {
    /// Runs `f` with `text` parsed as a reference; a text seen before is not parsed again
    /// (parsing is a pure function of the text).
    fn with_reference<T>(
        &self,
        text: String,
        f: impl FnOnce(&Reference) -> WitResult<T>,
    ) -> WitResult<T> {
        let mut memo = self.references.borrow_mut();
        if memo.len() >= REFERENCE_MEMO && !memo.contains_key(&text) {
            memo.clear();
        }
        let parsed = match memo.entry(text) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let parsed = reference(e.key())?;
                e.insert(parsed)
            }
        };
        f(parsed)
    }

    fn with<T: ToWit<U>, U>(
        &self,
        f: impl FnOnce(&mut ocicache_core::Cache) -> ocicache_core::Result<T>,
    ) -> WitResult<U> {
        with(&self.shared, f)
    }

    /// For reads that cannot fail. `close` consumes the handle, so the cache is always open
    /// here.
    fn read<T: ToWit<U>, U>(&self, f: impl FnOnce(&ocicache_core::Cache) -> T) -> U {
        let guard = self.shared.borrow();
        f(guard.as_ref().expect("close consumes the handle")).to_wit()
    }
}

impl GuestCache for Cache {
    fn open(config: wit::Config, adopt_existing: bool) -> WitResult<CacheHandle> {
        let config = config_from_wit(config).map_err(ToWit::to_wit)?;
        let cache = ocicache_core::Cache::builder(imports::HostStorage, imports::HostClock)
            .config(config)
            .log(imports::HostLog)
            .hasher(imports::HostHasher)
            .adopt_existing(adopt_existing)
            .open()
            .map_err(ToWit::to_wit)?;
        Ok(CacheHandle::new(Cache {
            shared: Rc::new(RefCell::new(Some(cache))),
            references: RefCell::new(HashMap::default()),
        }))
    }

    fn refresh(&self) -> WitResult<bool> {
        self.with(|c| c.refresh())
    }

    fn recovery_report(&self) -> wit::RecoveryReport {
        self.read(|c| c.recovery_report().clone())
    }

    fn config(&self) -> wit::Config {
        self.read(|c| c.config().clone())
    }

    fn durability(&self) -> wit::Durability {
        self.read(|c| c.durability())
    }

    fn put_manifest(
        &self,
        d: wit::Digest,
        body: Vec<u8>,
        media_type: Option<String>,
    ) -> WitResult<wit::MediaType> {
        let d = digest(d)?;
        self.with(|c| c.put_manifest(&d, &body, media_type.as_deref()))
    }

    fn get_manifest(&self, d: wit::Digest, validate: bool) -> WitResult<wit::Manifest> {
        let d = digest(d)?;
        if validate {
            self.with(|c| c.get_manifest(&d))
        } else {
            self.with(|c| c.get_manifest_bytes(&d))
        }
    }

    fn has_manifest(&self, d: wit::Digest) -> WitResult<bool> {
        let d = digest(d)?;
        Ok(self.read(|c| c.has_manifest(&d)))
    }

    fn delete_manifest(&self, d: wit::Digest) -> WitResult<bool> {
        let d = digest(d)?;
        self.with(|c| c.delete_manifest(&d))
    }

    fn manifest_references(&self, d: wit::Digest) -> WitResult<Vec<wit::Key>> {
        let d = digest(d)?;
        self.with(|c| c.manifest_references(&d))
    }

    fn begin_blob(
        &self,
        expected: Option<wit::Digest>,
        size: Option<u64>,
    ) -> WitResult<BlobWriter> {
        let expected = expected.map(digest).transpose()?;
        let mut guard = self.shared.borrow_mut();
        let cache = guard.as_mut().ok_or_else(closed)?;
        let writer = cache
            .begin_blob(expected.as_ref(), size)
            .map_err(ToWit::to_wit)?;
        Ok(BlobWriter::new(Writer {
            cache: self.shared.clone(),
            writer: RefCell::new(Some(writer)),
        }))
    }

    fn resume_blob(
        &self,
        expected: wit::Digest,
        size: Option<u64>,
    ) -> WitResult<Option<BlobWriter>> {
        let expected = digest(expected)?;
        let mut guard = self.shared.borrow_mut();
        let cache = guard.as_mut().ok_or_else(closed)?;
        let writer = cache.resume_blob(&expected, size).map_err(ToWit::to_wit)?;
        Ok(writer.map(|w| {
            BlobWriter::new(Writer {
                cache: self.shared.clone(),
                writer: RefCell::new(Some(w)),
            })
        }))
    }

    fn put_blob(&self, expected: Option<wit::Digest>, data: Vec<u8>) -> WitResult<wit::Digest> {
        let expected = expected.map(digest).transpose()?;
        self.with(|c| c.put_blob(expected.as_ref(), &data))
    }

    fn open_blob(&self, d: wit::Digest) -> WitResult<(BlobReader, u64)> {
        let d = digest(d)?;
        let mut guard = self.shared.borrow_mut();
        let cache = guard.as_mut().ok_or_else(closed)?;
        let reader = cache.open_blob(&d).map_err(ToWit::to_wit)?;
        let size = reader.size();
        let reader = BlobReader::new(Reader {
            cache: self.shared.clone(),
            size,
            reader: RefCell::new(Some(reader)),
        });
        Ok((reader, size))
    }

    fn get_blob(&self, d: wit::Digest) -> WitResult<Vec<u8>> {
        let d = digest(d)?;
        let mut guard = self.shared.borrow_mut();
        let cache = guard.as_mut().ok_or_else(closed)?;
        cache.get_blob(&d).map_err(ToWit::to_wit)
    }

    fn has_blob(&self, d: wit::Digest) -> WitResult<bool> {
        let d = digest(d)?;
        Ok(self.read(|c| c.has_blob(&d)))
    }

    fn delete_blob(&self, d: wit::Digest) -> WitResult<bool> {
        let d = digest(d)?;
        self.with(|c| c.delete_blob(&d))
    }

    fn has(&self, k: wit::Key) -> WitResult<bool> {
        let k = key(k)?;
        Ok(self.read(|c| c.has(&k)))
    }

    fn pin(&self, k: wit::Key) -> WitResult<u32> {
        let k = key(k)?;
        self.with(|c| c.pin(&k))
    }

    fn unpin(&self, k: wit::Key) -> WitResult<u32> {
        let k = key(k)?;
        self.with(|c| c.unpin(&k))
    }

    fn delete(&self, k: wit::Key) -> WitResult<bool> {
        let k = key(k)?;
        self.with(|c| c.delete(&k))
    }

    fn put_tag(&self, r: String, d: wit::Digest) -> WitResult<wit::TagUpdate> {
        let d = digest(d)?;
        self.with_reference(r, |r| self.with(|c| c.put_tag(r, &d)))
    }

    fn get_tag(&self, r: String) -> WitResult<wit::TagMapping> {
        self.with_reference(r, |r| self.with(|c| c.get_tag(r)))
    }

    fn has_tag(&self, r: String) -> WitResult<bool> {
        self.with_reference(r, |r| Ok(self.read(|c| c.has_tag(r))))
    }

    fn resolve_tag(&self, r: String) -> WitResult<wit::Resolution> {
        self.with_reference(r, |r| self.with(|c| c.resolve_tag(r)))
    }

    fn resolve_tags(&self, references: Vec<String>) -> Vec<WitResult<wit::Resolution>> {
        // Parse every reference first; resolve the valid ones in one call, in order.
        let parsed: Vec<WitResult<Reference>> = references.iter().map(|r| reference(r)).collect();
        let valid: Vec<Reference> = parsed.iter().filter_map(|r| r.clone().ok()).collect();
        let mut resolved = match self.shared.borrow_mut().as_mut() {
            Some(c) => c.resolve_tags(&valid).into_iter(),
            None => return references.iter().map(|_| Err(closed())).collect(),
        };
        parsed
            .into_iter()
            .map(|p| match p {
                Ok(_) => resolved
                    .next()
                    .expect("one result per valid reference")
                    .map(ToWit::to_wit)
                    .map_err(ToWit::to_wit),
                Err(e) => Err(e),
            })
            .collect()
    }

    fn resolve_failed(&self, r: String) -> WitResult<wit::Digest> {
        self.with_reference(r, |r| self.with(|c| c.resolve_failed(r)))
    }

    fn detect_movement(&self, r: String, remote: wit::Digest) -> WitResult<bool> {
        let remote = digest(remote)?;
        self.with_reference(r, |r| self.with(|c| c.detect_movement(r, &remote)))
    }

    fn invalidate_tag(&self, r: String) -> WitResult<bool> {
        self.with_reference(r, |r| self.with(|c| c.invalidate_tag(r)))
    }

    fn delete_tag(&self, r: String) -> WitResult<bool> {
        self.with_reference(r, |r| self.with(|c| c.delete_tag(r)))
    }

    fn tag_history(&self, r: String) -> WitResult<Vec<wit::TagHistoryEntry>> {
        self.with_reference(r, |r| self.with(|c| c.tag_history(r)))
    }

    fn tags(&self) -> Vec<wit::TagMapping> {
        self.read(|c| c.tags())
    }

    fn stats(&self) -> wit::Stats {
        self.read(|c| c.stats())
    }

    fn metrics(&self) -> wit::MetricsSnapshot {
        self.read(|c| c.metrics())
    }

    fn metrics_prometheus(&self) -> String {
        self.read(|c| c.metrics().to_prometheus())
    }

    fn size(&self) -> u64 {
        self.read(|c| c.size())
    }

    fn contents(&self) -> Vec<wit::EntryInfo> {
        self.read(|c| c.contents())
    }

    fn debug_info(&self) -> wit::DebugInfo {
        self.read(|c| c.debug_info())
    }

    fn export_debug_json(&self) -> String {
        self.read(|c| c.export_debug_json())
    }

    fn check_integrity(&self) -> WitResult<wit::IntegrityReport> {
        self.with(|c| c.check_integrity())
    }

    fn repair(&self) -> WitResult<wit::RepairReport> {
        self.with(|c| c.repair())
    }

    fn validate_digests(&self) -> WitResult<wit::DigestValidation> {
        let mut guard = self.shared.borrow_mut();
        let cache = guard.as_mut().ok_or_else(closed)?;
        let (valid, invalid) = cache.validate_digests().map_err(ToWit::to_wit)?;
        Ok(wit::DigestValidation { valid, invalid })
    }

    fn clear_expired(&self) -> WitResult<u64> {
        self.with(|c| c.clear_expired())
    }

    fn check_room(&self, bytes: u64, keep: Vec<wit::Key>) -> WitResult<()> {
        let keep = keep.into_iter().map(key).collect::<WitResult<Vec<_>>>()?;
        self.with(|c| c.check_room(bytes, &keep))
    }

    fn cleanup(&self) -> WitResult<wit::CleanupReport> {
        self.with(|c| c.cleanup())
    }

    fn clear(&self) -> WitResult<()> {
        let mut guard = self.shared.borrow_mut();
        let cache = guard.as_mut().ok_or_else(closed)?;
        cache.clear().map_err(ToWit::to_wit)
    }

    fn flush(&self) -> WitResult<()> {
        let mut guard = self.shared.borrow_mut();
        let cache = guard.as_mut().ok_or_else(closed)?;
        cache.flush().map_err(ToWit::to_wit)
    }

    fn close(this: CacheHandle) -> WitResult<()> {
        let this: Cache = this.into_inner();
        let cache = this.shared.borrow_mut().take().ok_or_else(closed)?;
        cache.close().map_err(ToWit::to_wit)
    }
}
