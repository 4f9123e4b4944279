//! What the host lends the component: its imports, implemented over the core's host traits.

use super::bindings::ocicache::cache::{clock, hasher, log, storage};
use ocicache_core::{
    Algorithm, Clock, Durability, HashProvider, Level, LogSink, Storage, StorageError, TempId,
};
use wasmtime::component::{Linker, Resource, ResourceTable, WasmList};
use wasmtime::{AsContext, ResourceLimiter, StoreContextMut, StoreLimits};

/// A running hash lent to the component as a `hash-state` resource: the core's own `sha2`
/// state, run natively, on a helper thread once the hash is large
/// ([`ThreadedHasher`](crate::ThreadedHasher)). Empty only while the fast `update` import has
/// taken it out of the table for the call.
pub struct HashState(Option<Box<dyn ocicache_core::HashState>>);

/// The store's data: the host parts behind the component's imports.
pub struct HostState {
    /// Empty only while the fast `write-temp` import has taken it out for the call.
    pub(super) storage: Option<Box<dyn Storage>>,
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

    fn storage(&mut self) -> &mut dyn Storage {
        // Lent out only inside `write-temp`, which calls nothing else in between.
        self.storage
            .as_deref_mut()
            .expect("storage is in place between import calls")
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
        self.storage()
            .create_temp(size_hint)
            .map(|t| t.0)
            .map_err(to_wit)
    }
    fn write_temp(&mut self, temp: u64, data: Vec<u8>) -> Result<(), storage::StorageError> {
        self.storage()
            .write_temp(TempId(temp), &data)
            .map_err(to_wit)
    }
    fn commit_temp(&mut self, temp: u64, path: String) -> Result<(), storage::StorageError> {
        self.storage()
            .commit_temp(TempId(temp), &path)
            .map_err(to_wit)
    }
    fn abort_temp(&mut self, temp: u64) -> Result<(), storage::StorageError> {
        self.storage().abort_temp(TempId(temp)).map_err(to_wit)
    }
    fn append(&mut self, path: String, data: Vec<u8>) -> Result<(), storage::StorageError> {
        self.storage().append(&path, &data).map_err(to_wit)
    }
    fn read_at(
        &mut self,
        path: String,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, storage::StorageError> {
        let mut buf = vec![0u8; len as usize];
        let n = self
            .storage()
            .read_at(&path, offset, &mut buf)
            .map_err(to_wit)?;
        buf.truncate(n);
        Ok(buf)
    }
    fn size(&mut self, path: String) -> Result<Option<u64>, storage::StorageError> {
        self.storage().size(&path).map_err(to_wit)
    }
    fn list(&mut self, dir: String) -> Result<Vec<String>, storage::StorageError> {
        self.storage().list(&dir).map_err(to_wit)
    }
    fn remove(&mut self, path: String) -> Result<(), storage::StorageError> {
        self.storage().remove(&path).map_err(to_wit)
    }
    fn clear_temps(&mut self) -> Result<u64, storage::StorageError> {
        self.storage().clear_temps().map_err(to_wit)
    }
    fn open_partial(&mut self, path: String) -> Result<Option<(u64, u64)>, storage::StorageError> {
        Ok(self
            .storage()
            .open_partial(&path)
            .map_err(to_wit)?
            .map(|(t, len)| (t.0, len)))
    }
    fn keep_partial(&mut self, temp: u64) -> Result<(), storage::StorageError> {
        self.storage().keep_partial(TempId(temp)).map_err(to_wit)
    }
    fn set_durability(&mut self, level: storage::Durability) -> storage::Durability {
        let level = match level {
            storage::Durability::Strict => Durability::Strict,
            storage::Durability::Relaxed => Durability::Relaxed,
        };
        match self.storage().set_durability(level) {
            Durability::Strict => storage::Durability::Strict,
            Durability::Relaxed => storage::Durability::Relaxed,
        }
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
        let algorithm = match algorithm {
            hasher::Algorithm::Sha256 => Algorithm::Sha256,
            hasher::Algorithm::Sha384 => Algorithm::Sha384,
            hasher::Algorithm::Sha512 => Algorithm::Sha512,
        };
        let state = HashState(crate::ThreadedHasher::process_default().start(algorithm));
        // A full table is the guest leaking states; declining makes it hash on its own.
        self.table.push(state).ok()
    }
}

impl hasher::HostHashState for HostState {
    fn update(&mut self, state: Resource<HashState>, data: Vec<u8>) {
        // A handle the table does not know cannot come from a correct guest; ignoring it makes
        // the final digest wrong, which the core reports as a mismatch, never as success.
        if let Ok(HashState(Some(hash))) = self.table.get_mut(&state) {
            hash.update(&data);
        }
    }

    fn finish(&mut self, state: Resource<HashState>) -> Vec<u8> {
        match self.table.delete(state) {
            Ok(HashState(Some(hash))) => hash.finish(),
            _ => Vec::new(),
        }
    }

    fn drop(&mut self, state: Resource<HashState>) -> wasmtime::Result<()> {
        self.table.delete(state)?;
        Ok(())
    }
}

// The `types` interface has no functions; the component imports it only for its types.
impl super::bindings::ocicache::cache::types::Host for HostState {}

/// The version of the WIT package, read from the contract the bindings are generated from, so
/// that the fast imports below name the same interfaces whenever the version changes.
fn wit_version() -> &'static str {
    const WIT: &str = include_str!("../../../wit/ocicache.wit");
    WIT.lines()
        .find_map(|line| {
            line.strip_prefix("package ocicache:cache@")?
                .strip_suffix(';')
        })
        .expect("the WIT names its package")
}

/// Replaces the generated linker entries of the two imports every blob chunk goes through
/// (`hash-state.update`, `storage.write-temp`) with ones that read the chunk straight from the
/// guest's memory (`WasmList::as_le_slice`) instead of lifting it into a fresh `Vec` first: two
/// allocations and two copies of every ingested byte fewer. Everything else stays generated.
pub(super) fn add_fast_imports(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let version = wit_version();
    linker
        .instance(&format!("ocicache:cache/hasher@{version}"))?
        .func_wrap(
            "[method]hash-state.update",
            |mut store: StoreContextMut<'_, HostState>,
             (state, data): (Resource<HashState>, WasmList<u8>)| {
                // The slice borrows the store, so the state is taken out of the table for the call
                // and put back. An unknown handle is ignored, as in `update` above.
                let Some(mut hash) = store
                    .data_mut()
                    .table
                    .get_mut(&state)
                    .ok()
                    .and_then(|s| s.0.take())
                else {
                    return Ok(());
                };
                hash.update(data.as_le_slice(store.as_context()));
                if let Ok(slot) = store.data_mut().table.get_mut(&state) {
                    slot.0 = Some(hash);
                }
                Ok(())
            },
        )?;
    linker
        .instance(&format!("ocicache:cache/storage@{version}"))?
        .func_wrap(
            "write-temp",
            |mut store: StoreContextMut<'_, HostState>, (temp, data): (u64, WasmList<u8>)| {
                // The slice borrows the store: take the storage out for the call, then put it back.
                let mut storage = store
                    .data_mut()
                    .storage
                    .take()
                    .expect("storage is in place between import calls");
                let result = storage.write_temp(TempId(temp), data.as_le_slice(store.as_context()));
                store.data_mut().storage = Some(storage);
                Ok((result.map_err(to_wit),))
            },
        )?;
    linker.allow_shadowing(false);
    Ok(())
}
