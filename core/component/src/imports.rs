//! The host's imports (`storage`, `clock`, `log`, `hasher`) as the core's traits.

use crate::bindings::ocicache::cache::{clock, hasher, log, storage};
use ocicache_core::{Algorithm, Clock, HashProvider, HashState, Level, LogSink, Millis};
use ocicache_core::{Durability, Storage, StorageError, TempId};

/// The host's `storage` import.
pub struct HostStorage;

fn storage_error(e: storage::StorageError) -> StorageError {
    match e {
        storage::StorageError::NotFound(p) => StorageError::NotFound(p),
        storage::StorageError::NoSpace => StorageError::NoSpace,
        storage::StorageError::InvalidPath(p) => StorageError::InvalidPath(p),
        storage::StorageError::Io(m) => StorageError::Io(m),
    }
}

impl Storage for HostStorage {
    fn create_temp(&mut self, size_hint: Option<u64>) -> Result<TempId, StorageError> {
        storage::create_temp(size_hint)
            .map(TempId)
            .map_err(storage_error)
    }
    fn write_temp(&mut self, temp: TempId, data: &[u8]) -> Result<(), StorageError> {
        storage::write_temp(temp.0, data).map_err(storage_error)
    }
    fn commit_temp(&mut self, temp: TempId, path: &str) -> Result<(), StorageError> {
        storage::commit_temp(temp.0, path).map_err(storage_error)
    }
    fn abort_temp(&mut self, temp: TempId) -> Result<(), StorageError> {
        storage::abort_temp(temp.0).map_err(storage_error)
    }
    fn append(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError> {
        storage::append(path, data).map_err(storage_error)
    }
    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        let want = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let data = storage::read_at(path, offset, want).map_err(storage_error)?;
        // A host answering with more than was asked for is broken; never overrun the buffer.
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok(n)
    }
    fn size(&mut self, path: &str) -> Result<Option<u64>, StorageError> {
        storage::size(path).map_err(storage_error)
    }
    fn list(&mut self, dir: &str) -> Result<Vec<String>, StorageError> {
        storage::list(dir).map_err(storage_error)
    }
    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        storage::remove(path).map_err(storage_error)
    }
    fn clear_temps(&mut self) -> Result<u64, StorageError> {
        storage::clear_temps().map_err(storage_error)
    }
    fn open_partial(&mut self, path: &str) -> Result<Option<(TempId, u64)>, StorageError> {
        Ok(storage::open_partial(path)
            .map_err(storage_error)?
            .map(|(id, len)| (TempId(id), len)))
    }
    fn keep_partial(&mut self, temp: TempId) -> Result<(), StorageError> {
        storage::keep_partial(temp.0).map_err(storage_error)
    }
    fn set_durability(&mut self, level: Durability) -> Durability {
        let level = match level {
            Durability::Strict => storage::Durability::Strict,
            Durability::Relaxed => storage::Durability::Relaxed,
        };
        match storage::set_durability(level) {
            storage::Durability::Strict => Durability::Strict,
            storage::Durability::Relaxed => Durability::Relaxed,
        }
    }
}

/// The host's `clock` import.
pub struct HostClock;

impl Clock for HostClock {
    fn now_millis(&self) -> Millis {
        clock::now_millis()
    }
    fn monotonic_nanos(&self) -> u64 {
        clock::monotonic_nanos()
    }
}

/// The host's `log` import.
pub struct HostLog;

impl LogSink for HostLog {
    fn log(&self, level: Level, message: &str, fields: &[(&str, &str)]) {
        let level = match level {
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        log::log(level, message, &fields);
    }
}

/// The host's `hasher` import; the host may decline an algorithm, and the core then uses `sha2`.
pub struct HostHasher;

struct HostHashState(hasher::HashState);

// The component is single-threaded: the core's `Send` bound on hash states is satisfied
// trivially, as there is no other thread to send them to.
impl HashState for HostHashState {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn finish(self: Box<Self>) -> Vec<u8> {
        hasher::HashState::finish(self.0)
    }
}

impl HashProvider for HostHasher {
    fn start(&self, algorithm: Algorithm) -> Option<Box<dyn HashState>> {
        let algorithm = match algorithm {
            Algorithm::Sha256 => hasher::Algorithm::Sha256,
            Algorithm::Sha384 => hasher::Algorithm::Sha384,
            Algorithm::Sha512 => hasher::Algorithm::Sha512,
        };
        hasher::start(algorithm).map(|s| Box::new(HostHashState(s)) as Box<dyn HashState>)
    }
}
