//! # ocicache-js
//!
//! The wasm-bindgen face of [`ocicache_core`]: [`WasmCache`], with the core's whole operation
//! set, and [`pull::WasmPull`], its pull engine, over host parts written in JavaScript
//! (storage, clock, hasher, log sink; see [`host`]). The npm package (`bindings-js/src/`) wraps
//! them in the typed, documented `Cache` class of its Node and browser entries; this layer is
//! internal to the package.
//!
//! Conventions at the boundary:
//! - digests and references arrive as strings and are parsed here (`invalid_digest`,
//!   `invalid_reference`); the JS layer has already checked their JS types;
//! - results that are core types cross as the JSON of their serde form (`…Json` methods), so
//!   every host sees exactly the shapes of `tests/scenarios/README.md`;
//! - errors are thrown as the JS value built by the error factory the package installs with
//!   [`set_error_factory`] (an `Error` subclass with a stable `code`).

pub mod credentials;
pub mod host;
pub mod image_layout;
pub mod pull;

use host::{JsClock, JsHasher, JsLog, JsStorage};
use js_sys::{Function, Uint8Array};
use ocicache_core::{
    BlobReader, BlobWriter, Cache, Config, Digest, Error, Key, Kind, Reference, StorageError,
};
use serde::Serialize;
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::HashMap;
use wasm_bindgen::prelude::*;

thread_local! {
    static ERROR_FACTORY: RefCell<Option<Function>> = const { RefCell::new(None) };
}

/// Installs the function that turns a core error into the JS value thrown:
/// `factory(code, message, detailsJson, cause)`. Without one, a plain `Error` with a `code`
/// property is thrown.
#[wasm_bindgen(js_name = setErrorFactory)]
pub fn set_error_factory(factory: Function) {
    ERROR_FACTORY.with(|f| *f.borrow_mut() = Some(factory));
}

/// The structured fields of an error, as JSON (what `error.details` shows in JS).
pub fn error_details(e: &Error) -> Value {
    match e {
        Error::NotFound(what) | Error::Expired(what) | Error::Invalidated(what) => {
            json!({ "what": what })
        }
        Error::Corrupted { what, detail } => json!({ "what": what, "detail": detail }),
        Error::Full {
            needed,
            available,
            capacity,
        } => json!({ "needed": needed, "available": available, "capacity": capacity }),
        Error::InvalidDigest { input, reason } | Error::InvalidReference { input, reason } => {
            json!({ "input": input, "reason": reason })
        }
        Error::DigestMismatch { expected, actual } => {
            json!({ "expected": expected, "actual": actual })
        }
        Error::SizeMismatch { expected, actual } => {
            json!({ "expected": expected, "actual": actual })
        }
        Error::TooLarge { size, limit } => json!({ "size": size, "limit": limit }),
        Error::InvalidManifest(reason)
        | Error::InvalidArgument(reason)
        | Error::InvalidConfig(reason) => json!({ "reason": reason }),
        Error::Storage(s) => serde_json::to_value(s).unwrap_or(Value::Null),
        Error::Network {
            registry,
            status,
            message,
            registry_code,
        } => json!({
            "registry": registry,
            "status": status,
            "message": message,
            "registryCode": registry_code,
        }),
        Error::Unauthorized { registry, message } => {
            json!({ "registry": registry, "message": message })
        }
    }
}

/// Converts a core error to the JS value to throw.
pub(crate) fn to_js(e: Error) -> JsValue {
    let code = e.kind().code();
    let message = e.to_string();
    let details = error_details(&e).to_string();
    let cause = if matches!(e, Error::Storage(_)) {
        host::take_storage_exception().unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    };
    let factory = ERROR_FACTORY.with(|f| f.borrow().clone());
    if let Some(f) = factory {
        let args = js_sys::Array::of4(
            &JsValue::from_str(code),
            &JsValue::from_str(&message),
            &JsValue::from_str(&details),
            &cause,
        );
        if let Ok(v) = f.apply(&JsValue::NULL, &args) {
            return v;
        }
    }
    let err = js_sys::Error::new(&message);
    let _ = js_sys::Reflect::set(&err, &"code".into(), &JsValue::from_str(code));
    err.into()
}

pub(crate) type JsResult<T> = Result<T, JsValue>;

fn digest(s: &str) -> JsResult<Digest> {
    Digest::parse(s).map_err(to_js)
}

pub(crate) fn reference(s: &str) -> JsResult<Reference> {
    Reference::parse(s).map_err(to_js)
}

fn key(kind: &str, d: &str) -> JsResult<Key> {
    let kind = match kind {
        "manifest" => Kind::Manifest,
        "blob" => Kind::Blob,
        other => {
            return Err(to_js(Error::InvalidArgument(format!(
                "kind must be \"manifest\" or \"blob\", got {other:?}"
            ))));
        }
    };
    Ok(Key {
        kind,
        digest: digest(d)?,
    })
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("core results serialize to JSON")
}

/// A size or count from JS: a non-negative safe integer.
fn count(name: &str, n: f64) -> JsResult<u64> {
    if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0 {
        Ok(n as u64)
    } else {
        Err(to_js(Error::InvalidArgument(format!(
            "{name} must be a non-negative integer, got {n}"
        ))))
    }
}

fn closed() -> JsValue {
    to_js(Error::InvalidArgument("the cache is closed".into()))
}

fn no_handle(what: &str, h: u32) -> JsValue {
    to_js(Error::InvalidArgument(format!(
        "no open blob {what} with handle {h} (finished, or the cache was closed)"
    )))
}

/// The core cache, open over JS host parts. Internal to the npm package: use its `Cache`.
#[wasm_bindgen]
pub struct WasmCache {
    cache: Option<Cache>,
    writers: HashMap<u32, BlobWriter>,
    readers: HashMap<u32, BlobReader>,
    next_handle: u32,
}

#[wasm_bindgen]
impl WasmCache {
    /// Opens a cache: reads the directory's `config.json` from `config_file` (its bytes, or
    /// `undefined` if there is none; parsed by [`Config::from_file_bytes`], as the native host
    /// does), puts the settings of `config_json` (a subset of `Config`, passed in code) over
    /// it, validates the result (anything that does not deserialize or validate is
    /// `invalid_config`), replays the index and reconciles it with storage. `hasher` and `log`
    /// may be `undefined`.
    pub fn open(
        storage: JsValue,
        clock: JsValue,
        config_json: &str,
        config_file: Option<Vec<u8>>,
        hasher: JsValue,
        log: JsValue,
    ) -> JsResult<WasmCache> {
        let file = match config_file {
            Some(bytes) => Config::from_file_bytes(&bytes).map_err(to_js)?,
            None => Config::default(),
        };
        let config = file.with_overrides_json(config_json).map_err(to_js)?;
        let mut builder =
            Cache::builder(JsStorage::new(storage), JsClock::new(clock)).config(config);
        if hasher.is_object() {
            builder = builder.hasher(JsHasher::new(hasher));
        }
        if log.is_function() {
            builder = builder.log(JsLog::new(log));
        }
        Ok(WasmCache {
            cache: Some(builder.open().map_err(to_js)?),
            writers: HashMap::new(),
            readers: HashMap::new(),
            next_handle: 0,
        })
    }

    fn cache(&mut self) -> JsResult<&mut Cache> {
        self.cache.as_mut().ok_or_else(closed)
    }

    fn handle(&mut self) -> u32 {
        self.next_handle = self.next_handle.wrapping_add(1);
        self.next_handle
    }

    /// Whether the cache is open.
    #[wasm_bindgen(js_name = isOpen)]
    pub fn is_open(&self) -> bool {
        self.cache.is_some()
    }

    /// Closes readers, drops writers (their temps are cleared at the next open), records a
    /// clean shutdown. Closing twice is a no-op.
    pub fn close(&mut self) -> JsResult<()> {
        self.writers.clear();
        let readers = std::mem::take(&mut self.readers);
        if let Some(mut cache) = self.cache.take() {
            for (_, r) in readers {
                cache.close_blob(r);
            }
            cache.close().map_err(to_js)?;
        }
        Ok(())
    }

    /// Drops the cache without flushing or recording a clean shutdown, as a crash would.
    pub fn abandon(&mut self) {
        self.writers.clear();
        self.readers.clear();
        self.cache = None;
    }

    /// Writes buffered access records.
    pub fn flush(&mut self) -> JsResult<()> {
        self.cache()?.flush().map_err(to_js)
    }

    /// The configuration in force (JSON).
    #[wasm_bindgen(js_name = configJson)]
    pub fn config_json(&mut self) -> JsResult<String> {
        Ok(json(self.cache()?.config()))
    }

    /// The durability level the storage honours (`"strict"` or `"relaxed"`).
    pub fn durability(&mut self) -> JsResult<String> {
        Ok(match self.cache()?.durability() {
            ocicache_core::Durability::Strict => "strict",
            ocicache_core::Durability::Relaxed => "relaxed",
        }
        .to_owned())
    }

    /// What opening found and fixed (JSON `RecoveryReport`).
    #[wasm_bindgen(js_name = recoveryJson)]
    pub fn recovery_json(&mut self) -> JsResult<String> {
        Ok(json(self.cache()?.recovery_report()))
    }

    // ----- manifests -----

    /// Stores a manifest; returns its media type.
    #[wasm_bindgen(js_name = putManifest)]
    pub fn put_manifest(
        &mut self,
        digest_str: &str,
        bytes: &[u8],
        media_type: Option<String>,
    ) -> JsResult<String> {
        let d = digest(digest_str)?;
        let mt = self
            .cache()?
            .put_manifest(&d, bytes, media_type.as_deref())
            .map_err(to_js)?;
        Ok(mt.as_str().to_owned())
    }

    /// Returns `[digest, mediaType, bytes]` of a manifest.
    #[wasm_bindgen(js_name = getManifest)]
    pub fn get_manifest(&mut self, digest_str: &str) -> JsResult<js_sys::Array> {
        let d = digest(digest_str)?;
        let m = self.cache()?.get_manifest(&d).map_err(to_js)?;
        Ok(js_sys::Array::of3(
            &JsValue::from_str(&m.digest.to_string()),
            &JsValue::from_str(m.media_type.as_str()),
            &Uint8Array::from(m.bytes.as_slice()),
        ))
    }

    /// Whether a servable manifest is stored.
    #[wasm_bindgen(js_name = hasManifest)]
    pub fn has_manifest(&mut self, digest_str: &str) -> JsResult<bool> {
        let d = digest(digest_str)?;
        Ok(self.cache()?.has_manifest(&d))
    }

    /// Deletes a manifest; false if absent.
    #[wasm_bindgen(js_name = deleteManifest)]
    pub fn delete_manifest(&mut self, digest_str: &str) -> JsResult<bool> {
        let d = digest(digest_str)?;
        self.cache()?.delete_manifest(&d).map_err(to_js)
    }

    /// What a stored manifest references (JSON `[Key…]`).
    #[wasm_bindgen(js_name = manifestReferencesJson)]
    pub fn manifest_references_json(&mut self, digest_str: &str) -> JsResult<String> {
        let d = digest(digest_str)?;
        Ok(json(&self.cache()?.manifest_references(&d).map_err(to_js)?))
    }

    // ----- blobs -----

    /// Starts a blob writer; returns its handle. `size` (if given) must be a non-negative
    /// integer.
    #[wasm_bindgen(js_name = beginBlob)]
    pub fn begin_blob(&mut self, digest_str: Option<String>, size: Option<f64>) -> JsResult<u32> {
        let expected = digest_str.as_deref().map(digest).transpose()?;
        let size = size.map(|s| count("size", s)).transpose()?;
        let w = self
            .cache()?
            .begin_blob(expected.as_ref(), size)
            .map_err(to_js)?;
        let h = self.handle();
        self.writers.insert(h, w);
        Ok(h)
    }

    /// Writes a chunk to a writer. A failed write finishes the writer.
    #[wasm_bindgen(js_name = writeBlob)]
    pub fn write_blob(&mut self, handle: u32, chunk: &[u8]) -> JsResult<()> {
        let cache = self.cache.as_mut().ok_or_else(closed)?;
        let w = self
            .writers
            .get_mut(&handle)
            .ok_or_else(|| no_handle("writer", handle))?;
        cache.write_blob(w, chunk).map_err(to_js)
    }

    /// Verifies and commits a writer; returns the digest.
    #[wasm_bindgen(js_name = commitBlob)]
    pub fn commit_blob(&mut self, handle: u32) -> JsResult<String> {
        let cache = self.cache.as_mut().ok_or_else(closed)?;
        let w = self
            .writers
            .remove(&handle)
            .ok_or_else(|| no_handle("writer", handle))?;
        Ok(cache.commit_blob(w).map_err(to_js)?.to_string())
    }

    /// Discards a writer (a no-op for an unknown handle).
    #[wasm_bindgen(js_name = abortBlob)]
    pub fn abort_blob(&mut self, handle: u32) {
        if let (Some(cache), Some(mut w)) = (self.cache.as_mut(), self.writers.remove(&handle)) {
            cache.abort_blob(&mut w);
        }
    }

    /// Bytes written so far to a writer.
    #[wasm_bindgen(js_name = writerWritten)]
    pub fn writer_written(&self, handle: u32) -> JsResult<f64> {
        let w = self
            .writers
            .get(&handle)
            .ok_or_else(|| no_handle("writer", handle))?;
        Ok(w.written() as f64)
    }

    /// Stores a blob in one call; returns its digest.
    #[wasm_bindgen(js_name = putBlob)]
    pub fn put_blob(&mut self, digest_str: Option<String>, bytes: &[u8]) -> JsResult<String> {
        let expected = digest_str.as_deref().map(digest).transpose()?;
        let cache = self.cache()?;
        // Through a writer so that the size is announced (the temp is sized up front).
        let mut w = cache
            .begin_blob(expected.as_ref(), Some(bytes.len() as u64))
            .map_err(to_js)?;
        cache.write_blob(&mut w, bytes).map_err(to_js)?;
        Ok(cache.commit_blob(w).map_err(to_js)?.to_string())
    }

    /// Reads a whole blob, verified.
    #[wasm_bindgen(js_name = getBlob)]
    pub fn get_blob(&mut self, digest_str: &str) -> JsResult<Vec<u8>> {
        let d = digest(digest_str)?;
        self.cache()?.get_blob(&d).map_err(to_js)
    }

    /// Opens a reader; returns `[handle, size]`.
    #[wasm_bindgen(js_name = openBlob)]
    pub fn open_blob(&mut self, digest_str: &str) -> JsResult<Vec<f64>> {
        let d = digest(digest_str)?;
        let r = self.cache()?.open_blob(&d).map_err(to_js)?;
        let size = r.size() as f64;
        let h = self.handle();
        self.readers.insert(h, r);
        Ok(vec![f64::from(h), size])
    }

    /// Reads up to `max` bytes (at least 1) from a reader; empty at the end. The last chunk
    /// arrives only after the whole blob verified.
    #[wasm_bindgen(js_name = readBlob)]
    pub fn read_blob(&mut self, handle: u32, max: u32) -> JsResult<Vec<u8>> {
        let cache = self.cache.as_mut().ok_or_else(closed)?;
        let r = self
            .readers
            .get_mut(&handle)
            .ok_or_else(|| no_handle("reader", handle))?;
        let mut buf = vec![0; max.max(1) as usize];
        let mut filled = 0;
        while filled < buf.len() {
            let n = cache.read_blob(r, &mut buf[filled..]).map_err(to_js)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        Ok(buf)
    }

    /// Finishes a reader (a no-op for an unknown handle).
    #[wasm_bindgen(js_name = closeBlob)]
    pub fn close_blob(&mut self, handle: u32) {
        if let (Some(cache), Some(r)) = (self.cache.as_mut(), self.readers.remove(&handle)) {
            cache.close_blob(r);
        }
    }

    /// Whether a servable blob is stored.
    #[wasm_bindgen(js_name = hasBlob)]
    pub fn has_blob(&mut self, digest_str: &str) -> JsResult<bool> {
        let d = digest(digest_str)?;
        Ok(self.cache()?.has_blob(&d))
    }

    /// Deletes a blob; false if absent.
    #[wasm_bindgen(js_name = deleteBlob)]
    pub fn delete_blob(&mut self, digest_str: &str) -> JsResult<bool> {
        let d = digest(digest_str)?;
        self.cache()?.delete_blob(&d).map_err(to_js)
    }

    // ----- any entry -----

    /// Pins an entry; returns its pin count.
    pub fn pin(&mut self, kind: &str, digest_str: &str) -> JsResult<u32> {
        let k = key(kind, digest_str)?;
        self.cache()?.pin(&k).map_err(to_js)
    }

    /// Removes one pin; returns the pins left.
    pub fn unpin(&mut self, kind: &str, digest_str: &str) -> JsResult<u32> {
        let k = key(kind, digest_str)?;
        self.cache()?.unpin(&k).map_err(to_js)
    }

    /// Deletes an entry; false if absent.
    #[wasm_bindgen(js_name = deleteEntry)]
    pub fn delete_entry(&mut self, kind: &str, digest_str: &str) -> JsResult<bool> {
        let k = key(kind, digest_str)?;
        self.cache()?.delete(&k).map_err(to_js)
    }

    /// Whether an entry is present and servable.
    #[wasm_bindgen(js_name = hasEntry)]
    pub fn has_entry(&mut self, kind: &str, digest_str: &str) -> JsResult<bool> {
        let k = key(kind, digest_str)?;
        Ok(self.cache()?.has(&k))
    }

    // ----- tags -----

    /// Records that a tag points to a digest (JSON `TagUpdate`).
    #[wasm_bindgen(js_name = putTagJson)]
    pub fn put_tag_json(&mut self, reference_str: &str, digest_str: &str) -> JsResult<String> {
        let r = reference(reference_str)?;
        let d = digest(digest_str)?;
        Ok(json(&self.cache()?.put_tag(&r, &d).map_err(to_js)?))
    }

    /// A tag's mapping (JSON `TagMapping`).
    #[wasm_bindgen(js_name = getTagJson)]
    pub fn get_tag_json(&mut self, reference_str: &str) -> JsResult<String> {
        let r = reference(reference_str)?;
        Ok(json(&self.cache()?.get_tag(&r).map_err(to_js)?))
    }

    /// Whether a fresh, valid mapping exists.
    #[wasm_bindgen(js_name = hasTag)]
    pub fn has_tag(&mut self, reference_str: &str) -> JsResult<bool> {
        let r = reference(reference_str)?;
        Ok(self.cache()?.has_tag(&r))
    }

    /// The resolver's decision (JSON `Resolution`).
    #[wasm_bindgen(js_name = resolveTagJson)]
    pub fn resolve_tag_json(&mut self, reference_str: &str) -> JsResult<String> {
        let r = reference(reference_str)?;
        Ok(json(&self.cache()?.resolve_tag(&r).map_err(to_js)?))
    }

    /// Resolves many references: one thrown-error-or-result per reference. Returns an array
    /// whose items are either a `Resolution` JSON string or an error value (built by the error
    /// factory); a reference that does not parse is that item's `invalid_reference`.
    #[wasm_bindgen(js_name = resolveTagsJson)]
    pub fn resolve_tags_json(&mut self, references: Vec<String>) -> JsResult<js_sys::Array> {
        let cache = self.cache.as_mut().ok_or_else(closed)?;
        let mut parsed = Vec::new();
        let mut slots = Vec::new();
        for s in &references {
            match Reference::parse(s) {
                Ok(r) => {
                    slots.push(Ok(parsed.len()));
                    parsed.push(r);
                }
                Err(e) => slots.push(Err(e)),
            }
        }
        let mut results: Vec<Option<ocicache_core::Result<ocicache_core::Resolution>>> =
            cache.resolve_tags(&parsed).into_iter().map(Some).collect();
        let out = js_sys::Array::new();
        for slot in slots {
            let item = match slot {
                Ok(i) => match results[i].take().expect("one result per reference") {
                    Ok(r) => JsValue::from_str(&json(&r)),
                    Err(e) => to_js(e),
                },
                Err(e) => to_js(e),
            };
            out.push(&item);
        }
        Ok(out)
    }

    /// Revalidation failed: the stale digest to fall back on, or the mapping's error.
    #[wasm_bindgen(js_name = resolveFailed)]
    pub fn resolve_failed(&mut self, reference_str: &str) -> JsResult<String> {
        let r = reference(reference_str)?;
        Ok(self.cache()?.resolve_failed(&r).map_err(to_js)?.to_string())
    }

    /// Whether the remote digest differs from the cached one.
    #[wasm_bindgen(js_name = detectMovement)]
    pub fn detect_movement(&mut self, reference_str: &str, digest_str: &str) -> JsResult<bool> {
        let r = reference(reference_str)?;
        let d = digest(digest_str)?;
        self.cache()?.detect_movement(&r, &d).map_err(to_js)
    }

    /// Invalidates a mapping until it is put again.
    #[wasm_bindgen(js_name = invalidateTag)]
    pub fn invalidate_tag(&mut self, reference_str: &str) -> JsResult<bool> {
        let r = reference(reference_str)?;
        self.cache()?.invalidate_tag(&r).map_err(to_js)
    }

    /// Removes a mapping and its history.
    #[wasm_bindgen(js_name = deleteTag)]
    pub fn delete_tag(&mut self, reference_str: &str) -> JsResult<bool> {
        let r = reference(reference_str)?;
        self.cache()?.delete_tag(&r).map_err(to_js)
    }

    /// A tag's history, oldest first (JSON `[TagHistoryEntry…]`).
    #[wasm_bindgen(js_name = tagHistoryJson)]
    pub fn tag_history_json(&mut self, reference_str: &str) -> JsResult<String> {
        let r = reference(reference_str)?;
        Ok(json(&self.cache()?.tag_history(&r).map_err(to_js)?))
    }

    /// Every mapping (JSON `[TagMapping…]`).
    #[wasm_bindgen(js_name = tagsJson)]
    pub fn tags_json(&mut self) -> JsResult<String> {
        Ok(json(&self.cache()?.tags()))
    }

    // ----- inspection and maintenance -----

    /// JSON `Stats`.
    #[wasm_bindgen(js_name = statsJson)]
    pub fn stats_json(&mut self) -> JsResult<String> {
        Ok(json(&self.cache()?.stats()))
    }

    /// JSON `MetricsSnapshot`.
    #[wasm_bindgen(js_name = metricsJson)]
    pub fn metrics_json(&mut self) -> JsResult<String> {
        Ok(json(&self.cache()?.metrics()))
    }

    /// Metrics as Prometheus text.
    pub fn prometheus(&mut self) -> JsResult<String> {
        Ok(self.cache()?.metrics().to_prometheus())
    }

    /// Bytes of all entries.
    pub fn size(&mut self) -> JsResult<f64> {
        Ok(self.cache()?.size() as f64)
    }

    /// JSON `[EntryInfo…]`.
    #[wasm_bindgen(js_name = contentsJson)]
    pub fn contents_json(&mut self) -> JsResult<String> {
        Ok(json(&self.cache()?.contents()))
    }

    /// JSON `DebugInfo`.
    #[wasm_bindgen(js_name = debugInfoJson)]
    pub fn debug_info_json(&mut self) -> JsResult<String> {
        Ok(json(&self.cache()?.debug_info()))
    }

    /// Debug info, contents and tags as pretty JSON.
    #[wasm_bindgen(js_name = exportDebugJson)]
    pub fn export_debug_json(&mut self) -> JsResult<String> {
        Ok(self.cache()?.export_debug_json())
    }

    /// JSON `IntegrityReport` (re-hashes everything; changes nothing).
    #[wasm_bindgen(js_name = checkIntegrityJson)]
    pub fn check_integrity_json(&mut self) -> JsResult<String> {
        Ok(json(&self.cache()?.check_integrity().map_err(to_js)?))
    }

    /// JSON `{"valid": n, "invalid": [...]}`.
    #[wasm_bindgen(js_name = validateDigestsJson)]
    pub fn validate_digests_json(&mut self) -> JsResult<String> {
        let (valid, invalid) = self.cache()?.validate_digests().map_err(to_js)?;
        Ok(json(&json!({ "valid": valid, "invalid": invalid })))
    }

    /// JSON `RepairReport`.
    #[wasm_bindgen(js_name = repairJson)]
    pub fn repair_json(&mut self) -> JsResult<String> {
        Ok(json(&self.cache()?.repair().map_err(to_js)?))
    }

    /// Removes expired entries; returns how many.
    #[wasm_bindgen(js_name = clearExpired)]
    pub fn clear_expired(&mut self) -> JsResult<f64> {
        Ok(self.cache()?.clear_expired().map_err(to_js)? as f64)
    }

    /// JSON `CleanupReport`.
    #[wasm_bindgen(js_name = cleanupJson)]
    pub fn cleanup_json(&mut self) -> JsResult<String> {
        Ok(json(&self.cache()?.cleanup().map_err(to_js)?))
    }

    /// Removes every entry and tag.
    pub fn clear(&mut self) -> JsResult<()> {
        self.cache()?.clear().map_err(to_js)
    }
}

/// The codes of every core error kind, in declaration order (the JS error classes are checked
/// against this list by the package's tests).
#[wasm_bindgen(js_name = errorCodes)]
pub fn error_codes() -> Vec<String> {
    ocicache_core::ErrorKind::ALL
        .iter()
        .map(|k| k.code().to_owned())
        .collect()
}

/// Maps a storage error to its `storageKind` (`not_found`, `no_space`, `invalid_path`, `io`).
pub fn storage_kind(e: &StorageError) -> &'static str {
    match e {
        StorageError::NotFound(_) => "not_found",
        StorageError::NoSpace => "no_space",
        StorageError::InvalidPath(_) => "invalid_path",
        StorageError::Io(_) => "io",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_carry_the_structured_fields() {
        let full = Error::Full {
            needed: 10,
            available: 4,
            capacity: 8,
        };
        assert_eq!(
            error_details(&full),
            json!({"needed": 10, "available": 4, "capacity": 8})
        );
        let storage = Error::Storage(StorageError::NoSpace);
        assert_eq!(error_details(&storage)["kind"], "no_space");
        assert_eq!(storage_kind(&StorageError::NoSpace), "no_space");
    }

    #[test]
    fn every_kind_has_a_distinct_code() {
        let codes = error_codes();
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(codes.len(), unique.len());
        assert_eq!(codes.len(), ocicache_core::ErrorKind::ALL.len());
    }

    #[test]
    fn counts_refuse_negative_and_fractional_numbers() {
        // `count` builds a JS error on failure, which needs a JS engine: check only the
        // accepting side natively.
        assert_eq!(count("size", 0.0).ok(), Some(0));
        assert_eq!(count("size", 4096.0).ok(), Some(4096));
    }
}
