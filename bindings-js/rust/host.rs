//! The core's host traits ([`Storage`], [`Clock`], [`LogSink`], [`HashProvider`]) implemented
//! over JS objects.
//!
//! The core requires its host parts to be `Send`; JS values are not. wasm32-unknown-unknown
//! without the atomics feature has exactly one thread, so instead of an `unsafe impl Send` the
//! JS objects live in a thread-local table and the Rust side holds only their slot number.

use js_sys::{Array, Function, Reflect, Uint8Array};
use ocicache_core::hashing::{HashProvider, HashState};
use ocicache_core::log::{Level, LogSink};
use ocicache_core::storage::{Storage, StorageError, TempId};
use ocicache_core::{Algorithm, Clock, Durability, Millis};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// The storage object a JS host lends the cache (see `src/index.d.ts`, `Storage`).
    #[wasm_bindgen(typescript_type = "Storage")]
    pub type JsStorageObject;
    #[wasm_bindgen(method, catch, js_name = createTemp)]
    fn create_temp(this: &JsStorageObject, size_hint: JsValue) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = writeTemp)]
    fn write_temp(this: &JsStorageObject, id: f64, data: &[u8]) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = commitTemp)]
    fn commit_temp(this: &JsStorageObject, id: f64, path: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = abortTemp)]
    fn abort_temp(this: &JsStorageObject, id: f64) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn append(this: &JsStorageObject, path: &str, data: &[u8]) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = readAt)]
    fn read_at(
        this: &JsStorageObject,
        path: &str,
        offset: f64,
        buf: &Uint8Array,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn size(this: &JsStorageObject, path: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn list(this: &JsStorageObject, dir: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn remove(this: &JsStorageObject, path: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = clearTemps)]
    fn clear_temps(this: &JsStorageObject) -> Result<JsValue, JsValue>;

    /// The clock object (`nowMillis()`, `monotonicNanos()`).
    #[wasm_bindgen(typescript_type = "Clock")]
    pub type JsClockObject;
    #[wasm_bindgen(method, catch, js_name = nowMillis)]
    fn now_millis(this: &JsClockObject) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch, js_name = monotonicNanos)]
    fn monotonic_nanos(this: &JsClockObject) -> Result<JsValue, JsValue>;

    /// The hasher object (`start(algorithm)` returning `{update, digest}` or null).
    #[wasm_bindgen(typescript_type = "Hasher")]
    pub type JsHasherObject;
    #[wasm_bindgen(method, catch)]
    fn start(this: &JsHasherObject, algorithm: &str) -> Result<JsValue, JsValue>;

    /// One running hash (`update(bytes)`, `digest()`); Node's `crypto.Hash` is one.
    pub type JsHashStateObject;
    #[wasm_bindgen(method, catch)]
    fn update(this: &JsHashStateObject, data: &[u8]) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn digest(this: &JsHashStateObject) -> Result<JsValue, JsValue>;
}

// ----- the table of JS objects -----

#[derive(Default)]
struct Table {
    items: Vec<Option<Rc<JsValue>>>,
    free: Vec<usize>,
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table::default());
    /// The exception a JS storage method threw last: attached as `cause` to the storage error
    /// that reaches JS.
    static LAST_STORAGE_EXCEPTION: RefCell<Option<JsValue>> = const { RefCell::new(None) };
}

/// A JS object kept alive in the thread-local table; released on drop. `Send` because it is
/// only a number (and wasm32-unknown-unknown has a single thread).
#[derive(Debug)]
pub struct Slot(usize);

impl Slot {
    /// Keeps `value` in the table.
    pub fn new(value: JsValue) -> Slot {
        TABLE.with(|t| {
            let mut t = t.borrow_mut();
            let value = Some(Rc::new(value));
            match t.free.pop() {
                Some(i) => {
                    t.items[i] = value;
                    Slot(i)
                }
                None => {
                    t.items.push(value);
                    Slot(t.items.len() - 1)
                }
            }
        })
    }

    /// The object (the table is not borrowed while the caller uses it, so JS may re-enter).
    pub fn get(&self) -> Rc<JsValue> {
        TABLE.with(|t| t.borrow().items[self.0].clone().expect("live slot"))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        TABLE.with(|t| {
            let mut t = t.borrow_mut();
            t.items[self.0] = None;
            t.free.push(self.0);
        });
    }
}

/// Takes the exception recorded by the last failing storage call, if any.
pub fn take_storage_exception() -> Option<JsValue> {
    LAST_STORAGE_EXCEPTION.with(|c| c.borrow_mut().take())
}

fn get_prop(v: &JsValue, name: &str) -> Option<JsValue> {
    if !v.is_object() {
        return None;
    }
    Reflect::get(v, &JsValue::from_str(name)).ok()
}

/// A thrown JS value's message, without the stack.
pub fn exception_message(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    if let Some(s) = e.as_string() {
        return s;
    }
    "a non-Error value was thrown".to_owned()
}

/// Maps an exception thrown by a JS storage method to the core's [`StorageError`]:
/// `ENOENT`/`NotFoundError` → not found, `ENOSPC`/`EDQUOT`/`QuotaExceededError` → no space,
/// `EINVALIDPATH` → invalid path, a `storageKind` property (set by our own `StorageError`)
/// as given, anything else → I/O.
fn storage_error(e: JsValue, op: &str, path: &str) -> StorageError {
    let code = get_prop(&e, "code").and_then(|v| v.as_string());
    let name = get_prop(&e, "name").and_then(|v| v.as_string());
    let kind = get_prop(&e, "storageKind").and_then(|v| v.as_string());
    let message = exception_message(&e);
    LAST_STORAGE_EXCEPTION.with(|c| *c.borrow_mut() = Some(e));
    let what = if path.is_empty() {
        op.to_owned()
    } else {
        format!("{op} {path}")
    };
    match (kind.as_deref(), code.as_deref(), name.as_deref()) {
        (Some("not_found"), _, _) | (_, Some("ENOENT"), _) | (_, _, Some("NotFoundError")) => {
            StorageError::NotFound(what)
        }
        (Some("no_space"), _, _)
        | (_, Some("ENOSPC" | "EDQUOT"), _)
        | (_, _, Some("QuotaExceededError")) => StorageError::NoSpace,
        (Some("invalid_path"), _, _) | (_, Some("EINVALIDPATH"), _) => {
            // The storage's own words say why (`…: a directory component is a symbolic link`).
            let why = message.strip_prefix("invalid path: ").unwrap_or(&message);
            StorageError::InvalidPath(if why.is_empty() { path } else { why }.to_owned())
        }
        _ => StorageError::Io(format!("{what}: {message}")),
    }
}

fn bad_return(op: &str, got: &JsValue) -> StorageError {
    StorageError::Io(format!(
        "storage.{op} returned an unexpected value ({})",
        js_type(got)
    ))
}

fn js_type(v: &JsValue) -> String {
    v.js_typeof().as_string().unwrap_or_default()
}

/// A non-negative safe integer, or `None`.
fn as_count(v: &JsValue) -> Option<u64> {
    let n = v.as_f64()?;
    (n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0).then_some(n as u64)
}

// ----- storage -----

/// [`Storage`] over a JS object with synchronous methods.
#[derive(Debug)]
pub struct JsStorage {
    slot: Slot,
}

impl JsStorage {
    /// Wraps a JS storage object.
    pub fn new(object: JsValue) -> JsStorage {
        JsStorage {
            slot: Slot::new(object),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&JsStorageObject) -> T) -> T {
        let obj = self.slot.get();
        f(obj.unchecked_ref())
    }
}

impl Storage for JsStorage {
    /// The object's optional `setDurability('strict' | 'relaxed')`, which returns the level it
    /// honours; a storage without the method, or answering anything else, stays strict.
    fn set_durability(&mut self, level: Durability) -> Durability {
        let obj = self.slot.get();
        let Some(method) =
            get_prop(&obj, "setDurability").and_then(|f| f.dyn_into::<Function>().ok())
        else {
            return Durability::Strict;
        };
        let name = match level {
            Durability::Strict => "strict",
            Durability::Relaxed => "relaxed",
        };
        let answer = method.call1(&obj, &JsValue::from_str(name));
        match answer.ok().and_then(|v| v.as_string()).as_deref() {
            Some("relaxed") => Durability::Relaxed,
            _ => Durability::Strict,
        }
    }

    fn create_temp(&mut self, size_hint: Option<u64>) -> Result<TempId, StorageError> {
        let hint = size_hint.map_or(JsValue::UNDEFINED, |h| JsValue::from_f64(h as f64));
        let v = self
            .with(|s| s.create_temp(hint))
            .map_err(|e| storage_error(e, "createTemp", ""))?;
        as_count(&v)
            .map(TempId)
            .ok_or_else(|| bad_return("createTemp", &v))
    }

    fn write_temp(&mut self, temp: TempId, data: &[u8]) -> Result<(), StorageError> {
        self.with(|s| s.write_temp(temp.0 as f64, data))
            .map(drop)
            .map_err(|e| storage_error(e, "writeTemp", ""))
    }

    fn commit_temp(&mut self, temp: TempId, path: &str) -> Result<(), StorageError> {
        self.with(|s| s.commit_temp(temp.0 as f64, path))
            .map(drop)
            .map_err(|e| storage_error(e, "commitTemp", path))
    }

    fn abort_temp(&mut self, temp: TempId) -> Result<(), StorageError> {
        self.with(|s| s.abort_temp(temp.0 as f64))
            .map(drop)
            .map_err(|e| storage_error(e, "abortTemp", ""))
    }

    fn append(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError> {
        self.with(|s| s.append(path, data))
            .map(drop)
            .map_err(|e| storage_error(e, "append", path))
    }

    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        if buf.is_empty() {
            return Ok(0);
        }
        // A view of wasm memory that the storage fills in place: no copy. Nothing allocates in
        // wasm while the JS method runs, so the view stays valid for the call.
        #[cfg(target_arch = "wasm32")]
        let view = {
            // Built from the memory's buffer (`Uint8Array::view_mut_raw` would need `unsafe`).
            let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
            Uint8Array::new_with_byte_offset_and_length(
                &memory.buffer(),
                buf.as_ptr() as u32,
                buf.len() as u32,
            )
        };
        #[cfg(not(target_arch = "wasm32"))]
        let view = Uint8Array::new_with_length(buf.len() as u32);
        let v = self
            .with(|s| s.read_at(path, offset as f64, &view))
            .map_err(|e| storage_error(e, "readAt", path))?;
        let n = as_count(&v)
            .filter(|&n| n <= buf.len() as u64)
            .ok_or_else(|| bad_return("readAt", &v))? as usize;
        #[cfg(not(target_arch = "wasm32"))]
        view.subarray(0, n as u32).copy_to(&mut buf[..n]);
        Ok(n)
    }

    fn size(&mut self, path: &str) -> Result<Option<u64>, StorageError> {
        let v = self
            .with(|s| s.size(path))
            .map_err(|e| storage_error(e, "size", path))?;
        if v.is_null() || v.is_undefined() {
            return Ok(None);
        }
        as_count(&v).map(Some).ok_or_else(|| bad_return("size", &v))
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, StorageError> {
        let v = self
            .with(|s| s.list(dir))
            .map_err(|e| storage_error(e, "list", dir))?;
        let array = v.dyn_into::<Array>().map_err(|v| bad_return("list", &v))?;
        array
            .iter()
            .map(|name| name.as_string().ok_or_else(|| bad_return("list", &name)))
            .collect()
    }

    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        self.with(|s| s.remove(path))
            .map(drop)
            .map_err(|e| storage_error(e, "remove", path))
    }

    fn clear_temps(&mut self) -> Result<u64, StorageError> {
        let v = self
            .with(|s| s.clear_temps())
            .map_err(|e| storage_error(e, "clearTemps", ""))?;
        if v.is_undefined() {
            return Ok(0);
        }
        as_count(&v).ok_or_else(|| bad_return("clearTemps", &v))
    }

    /// `openPartial(path)` returns `{id, size}`, or null when the partial is open elsewhere.
    /// A storage without the method keeps no partials (the core's default).
    fn open_partial(&mut self, path: &str) -> Result<Option<(TempId, u64)>, StorageError> {
        let Some(v) = self
            .call_optional("openPartial", &JsValue::from_str(path))
            .map_err(|e| storage_error(e, "openPartial", path))?
        else {
            return Ok(None);
        };
        if v.is_null() || v.is_undefined() {
            return Ok(None);
        }
        let field = |name: &str| get_prop(&v, name).as_ref().and_then(as_count);
        match (field("id"), field("size")) {
            (Some(id), Some(size)) => Ok(Some((TempId(id), size))),
            _ => Err(bad_return("openPartial", &v)),
        }
    }

    /// `keepPartial(id)`; a storage without it has none open, so the temp is aborted.
    fn keep_partial(&mut self, temp: TempId) -> Result<(), StorageError> {
        match self
            .call_optional("keepPartial", &JsValue::from_f64(temp.0 as f64))
            .map_err(|e| storage_error(e, "keepPartial", ""))?
        {
            Some(_) => Ok(()),
            None => self.abort_temp(temp),
        }
    }
}

impl JsStorage {
    /// Calls the storage's method `name` with one argument, or `Ok(None)` if it has none (the
    /// optional methods of the `Storage` interface).
    fn call_optional(&self, name: &str, arg: &JsValue) -> Result<Option<JsValue>, JsValue> {
        let obj = self.slot.get();
        match get_prop(&obj, name).and_then(|f| f.dyn_into::<Function>().ok()) {
            Some(f) => f.call1(&obj, arg).map(Some),
            None => Ok(None),
        }
    }
}

// ----- clock -----

/// [`Clock`] over a JS object. A method that throws or returns a non-number reads as 0.
#[derive(Debug)]
pub struct JsClock {
    slot: Slot,
}

impl JsClock {
    /// Wraps a JS clock object.
    pub fn new(object: JsValue) -> JsClock {
        JsClock {
            slot: Slot::new(object),
        }
    }
}

fn clock_value(v: Result<JsValue, JsValue>) -> u64 {
    v.ok()
        .and_then(|v| v.as_f64())
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map_or(0, |n| n as u64)
}

impl Clock for JsClock {
    fn now_millis(&self) -> Millis {
        let obj = self.slot.get();
        clock_value(obj.unchecked_ref::<JsClockObject>().now_millis())
    }

    fn monotonic_nanos(&self) -> u64 {
        let obj = self.slot.get();
        clock_value(obj.unchecked_ref::<JsClockObject>().monotonic_nanos())
    }
}

// ----- log -----

/// [`LogSink`] over a JS function `(level, message, fields) => void`; exceptions are ignored.
#[derive(Debug)]
pub struct JsLog {
    slot: Slot,
}

impl JsLog {
    /// Wraps a JS log function.
    pub fn new(function: JsValue) -> JsLog {
        JsLog {
            slot: Slot::new(function),
        }
    }
}

impl LogSink for JsLog {
    fn log(&self, level: Level, message: &str, fields: &[(&str, &str)]) {
        let f = self.slot.get();
        let Some(f) = f.dyn_ref::<Function>() else {
            return;
        };
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        let object = js_sys::Object::new();
        for (k, v) in fields {
            let _ = Reflect::set(&object, &JsValue::from_str(k), &JsValue::from_str(v));
        }
        let _ = f.call3(
            &JsValue::NULL,
            &JsValue::from_str(level),
            &JsValue::from_str(message),
            &object,
        );
    }
}

// ----- hashing -----

/// [`HashProvider`] over a JS object whose `start(algorithm)` returns an object with
/// `update(bytes)` and `digest()` (a `Uint8Array`), such as Node's `crypto.createHash`, or
/// `null` to let the core use its built-in `sha2`.
#[derive(Debug)]
pub struct JsHasher {
    slot: Slot,
}

impl JsHasher {
    /// Wraps a JS hasher object.
    pub fn new(object: JsValue) -> JsHasher {
        JsHasher {
            slot: Slot::new(object),
        }
    }
}

impl HashProvider for JsHasher {
    fn start(&self, algorithm: Algorithm) -> Option<Box<dyn HashState>> {
        let obj = self.slot.get();
        let state = obj
            .unchecked_ref::<JsHasherObject>()
            .start(algorithm.name())
            .ok()?;
        if !state.is_object() {
            return None;
        }
        Some(Box::new(JsHashState {
            slot: Slot::new(state),
            failed: false,
            finished: false,
        }))
    }
}

/// One running JS hash. If the JS side throws, the hash finishes as an empty (wrong-length)
/// digest, which the core turns into a digest that never verifies. A hash dropped unfinished
/// (an aborted blob writer) calls the state's optional `abandon()`, so a state holding a
/// resource (a `ThreadedHasher` thread) gives it back.
#[derive(Debug)]
struct JsHashState {
    slot: Slot,
    failed: bool,
    finished: bool,
}

impl Drop for JsHashState {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let obj = self.slot.get();
        if let Some(f) = get_prop(&obj, "abandon").and_then(|f| f.dyn_into::<Function>().ok()) {
            let _ = f.call0(&obj);
        }
    }
}

impl HashState for JsHashState {
    fn update(&mut self, data: &[u8]) {
        if self.failed {
            return;
        }
        let obj = self.slot.get();
        if obj
            .unchecked_ref::<JsHashStateObject>()
            .update(data)
            .is_err()
        {
            self.failed = true;
        }
    }

    fn finish(mut self: Box<Self>) -> Vec<u8> {
        if self.failed {
            return Vec::new();
        }
        self.finished = true;
        let obj = self.slot.get();
        match obj.unchecked_ref::<JsHashStateObject>().digest() {
            Ok(v) => v
                .dyn_into::<Uint8Array>()
                .map(|a| a.to_vec())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }
}
