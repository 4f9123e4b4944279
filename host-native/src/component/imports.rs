//! What the host lends the component: its imports, implemented over the core's host traits.

use super::bindings::ocicache::cache::{clock, hasher, log, storage};
use ocicache_core::{Clock, Level, LogSink, Storage, StorageError, TempId};
use sha2::Digest as _;
use wasmtime::component::{Linker, Resource, ResourceTable, WasmList};
use wasmtime::{AsContext, ResourceLimiter, StoreContextMut, StoreLimits};

/// A running native hash, lent to the component as a `hash-state` resource.
#[derive(Clone)]
pub enum HashState {
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-384.
    Sha384(sha2::Sha384),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

/// The store's data: the host parts behind the component's imports.
pub struct HostState {
    pub(super) storage: Box<dyn Storage>,
    pub(super) clock: Box<dyn Clock>,
    pub(super) log: Box<dyn LogSink>,
    pub(super) table: ResourceTable,
    pub(super) limits: StoreLimits,
    /// Whether `hasher.start` answers (native SHA-2) or declines (the component's own).
    pub(super) native_hashing: bool,
}

impl HostState {
    pub(super) fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limits
    }
}

fn to_wit(e: StorageError) -> storage::StorageError {
    match e {
        StorageError::NotFound(p) => storage::StorageError::NotFound(p),
        StorageError::NoSpace => storage::StorageError::NoSpace,
        StorageError::InvalidPath(p) => storage::StorageError::InvalidPath(p),
        StorageError::Io(m) => storage::StorageError::Io(m),
    }
}

impl storage::Host for HostState {
    fn create_temp(&mut self, size_hint: Option<u64>) -> Result<u64, storage::StorageError> {
        self.storage
            .create_temp(size_hint)
            .map(|t| t.0)
            .map_err(to_wit)
    }
    fn write_temp(&mut self, temp: u64, data: Vec<u8>) -> Result<(), storage::StorageError> {
        self.storage.write_temp(TempId(temp), &data).map_err(to_wit)
    }
    fn commit_temp(&mut self, temp: u64, path: String) -> Result<(), storage::StorageError> {
        self.storage
            .commit_temp(TempId(temp), &path)
            .map_err(to_wit)
    }
    fn abort_temp(&mut self, temp: u64) -> Result<(), storage::StorageError> {
        self.storage.abort_temp(TempId(temp)).map_err(to_wit)
    }
    fn append(&mut self, path: String, data: Vec<u8>) -> Result<(), storage::StorageError> {
        self.storage.append(&path, &data).map_err(to_wit)
    }
    fn read_at(
        &mut self,
        path: String,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, storage::StorageError> {
        let mut buf = vec![0u8; len as usize];
        let n = self
            .storage
            .read_at(&path, offset, &mut buf)
            .map_err(to_wit)?;
        buf.truncate(n);
        Ok(buf)
    }
    fn size(&mut self, path: String) -> Result<Option<u64>, storage::StorageError> {
        self.storage.size(&path).map_err(to_wit)
    }
    fn list(&mut self, dir: String) -> Result<Vec<String>, storage::StorageError> {
        self.storage.list(&dir).map_err(to_wit)
    }
    fn remove(&mut self, path: String) -> Result<(), storage::StorageError> {
        self.storage.remove(&path).map_err(to_wit)
    }
    fn clear_temps(&mut self) -> Result<u64, storage::StorageError> {
        self.storage.clear_temps().map_err(to_wit)
    }
}

impl clock::Host for HostState {
    fn now_millis(&mut self) -> u64 {
        self.clock.now_millis()
    }
    fn monotonic_nanos(&mut self) -> u64 {
        self.clock.monotonic_nanos()
    }
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String, fields: Vec<(String, String)>) {
        let level = match level {
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.log.log(level, &message, &fields);
    }
}

impl hasher::Host for HostState {
    fn start(&mut self, algorithm: hasher::Algorithm) -> Option<Resource<HashState>> {
        if !self.native_hashing {
            return None;
        }
        let state = match algorithm {
            hasher::Algorithm::Sha256 => HashState::Sha256(sha2::Sha256::new()),
            hasher::Algorithm::Sha384 => HashState::Sha384(sha2::Sha384::new()),
            hasher::Algorithm::Sha512 => HashState::Sha512(sha2::Sha512::new()),
        };
        // A full table is the guest leaking states; declining makes it hash on its own.
        self.table.push(state).ok()
    }
}

impl hasher::HostHashState for HostState {
    fn update(&mut self, state: Resource<HashState>, data: Vec<u8>) {
        // A handle the table does not know cannot come from a correct guest; ignoring it makes
        // the final digest wrong, which the core reports as a mismatch, never as success.
        if let Ok(state) = self.table.get_mut(&state) {
            state.update(&data);
        }
    }

    fn finish(&mut self, state: Resource<HashState>) -> Vec<u8> {
        match self.table.delete(state) {
            Ok(HashState::Sha256(h)) => h.finalize().to_vec(),
            Ok(HashState::Sha384(h)) => h.finalize().to_vec(),
            Ok(HashState::Sha512(h)) => h.finalize().to_vec(),
            Err(_) => Vec::new(),
        }
    }

    fn drop(&mut self, state: Resource<HashState>) -> wasmtime::Result<()> {
        self.table.delete(state)?;
        Ok(())
    }
}

// The `types` interface has no functions; the component imports it only for its types.
impl super::bindings::ocicache::cache::types::Host for HostState {}

/// Replaces the generated linker entries of the two imports every blob chunk goes through
/// (`hash-state.update`, `storage.write-temp`) with ones that read the chunk straight from the
/// guest's memory (`WasmList::as_le_slice`) instead of lifting it into a fresh `Vec` first: two
/// allocations and two copies of every ingested byte fewer. Everything else stays generated.
pub(super) fn add_fast_imports(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.instance("ocicache:cache/hasher@0.1.0")?.func_wrap(
        "[method]hash-state.update",
        |mut store: StoreContextMut<'_, HostState>,
         (state, data): (Resource<HashState>, WasmList<u8>)| {
            // The slice borrows the store, so the state is updated as a copy (a few hundred
            // bytes) and put back. An unknown handle is ignored, as in `update` above.
            let Ok(mut hash) = store.data().table.get(&state).cloned() else {
                return Ok(());
            };
            hash.update(data.as_le_slice(store.as_context()));
            if let Ok(slot) = store.data_mut().table.get_mut(&state) {
                *slot = hash;
            }
            Ok(())
        },
    )?;
    linker.instance("ocicache:cache/storage@0.1.0")?.func_wrap(
        "write-temp",
        |mut store: StoreContextMut<'_, HostState>, (temp, data): (u64, WasmList<u8>)| {
            // The slice borrows the store: lift the storage out for the call (a zero-sized
            // placeholder, no allocation), then put it back.
            let mut storage = std::mem::replace(&mut store.data_mut().storage, Box::new(Detached));
            let result = storage.write_temp(TempId(temp), data.as_le_slice(store.as_context()));
            store.data_mut().storage = storage;
            Ok((result.map_err(to_wit),))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

impl HashState {
    fn update(&mut self, data: &[u8]) {
        match self {
            HashState::Sha256(h) => h.update(data),
            HashState::Sha384(h) => h.update(data),
            HashState::Sha512(h) => h.update(data),
        }
    }
}

/// Stands in for the storage while a fast import has lent it out; never called.
struct Detached;

impl Storage for Detached {
    fn create_temp(&mut self, _: Option<u64>) -> Result<TempId, StorageError> {
        Err(detached())
    }
    fn write_temp(&mut self, _: TempId, _: &[u8]) -> Result<(), StorageError> {
        Err(detached())
    }
    fn commit_temp(&mut self, _: TempId, _: &str) -> Result<(), StorageError> {
        Err(detached())
    }
    fn abort_temp(&mut self, _: TempId) -> Result<(), StorageError> {
        Err(detached())
    }
    fn append(&mut self, _: &str, _: &[u8]) -> Result<(), StorageError> {
        Err(detached())
    }
    fn read_at(&mut self, _: &str, _: u64, _: &mut [u8]) -> Result<usize, StorageError> {
        Err(detached())
    }
    fn size(&mut self, _: &str) -> Result<Option<u64>, StorageError> {
        Err(detached())
    }
    fn list(&mut self, _: &str) -> Result<Vec<String>, StorageError> {
        Err(detached())
    }
    fn remove(&mut self, _: &str) -> Result<(), StorageError> {
        Err(detached())
    }
    fn clear_temps(&mut self) -> Result<u64, StorageError> {
        Err(detached())
    }
}

fn detached() -> StorageError {
    StorageError::Io("storage is lent out to another call".into())
}
