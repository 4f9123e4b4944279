//! Helpers shared by the integration tests.
// Each test binary uses its own subset.
#![allow(dead_code)]

use ocicache_core::hashing::digest_of;
use ocicache_core::storage::{Fault, FaultyStorage, MemoryStorage};
use ocicache_core::{Algorithm, BuiltinHasher, Digest, Storage, StorageError, TempId};
use std::sync::{Arc, Mutex};

/// The SHA-256 digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest {
    digest_of(&BuiltinHasher, Algorithm::Sha256, bytes).expect("the built-in hasher")
}

/// Deterministic pseudo-random bytes (xorshift), different for every `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// An OCI image manifest naming `config` and `layers`.
pub fn image_manifest(config: &Digest, layers: &[&Digest]) -> Vec<u8> {
    let layers: Vec<String> = layers
        .iter()
        .map(|d| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{d}","size":1}}"#
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1}},"layers":[{}]}}"#,
        layers.join(",")
    )
    .into_bytes()
}

/// Whether `path` is one the documented layout (docs/FORMAT.md) allows.
pub fn in_layout(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["index", "snapshot"] => true,
        ["index", name] => name
            .strip_prefix("journal-")
            .is_some_and(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit())),
        [kind, alg, hex] if *kind == "manifests" || *kind == "blobs" || *kind == "partials" => {
            Algorithm::from_name(alg).is_some_and(|a| {
                hex.len() == a.digest_len() * 2
                    && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            })
        }
        _ => false,
    }
}

/// A process's storage: a [`FaultyStorage`] over the shared memory, replaced before every step
/// to aim that step's fault (its call numbers count from the step's first call).
#[derive(Clone)]
pub struct Plug {
    shared: MemoryStorage,
    current: Arc<Mutex<FaultyStorage>>,
}

impl Plug {
    /// A plug over `shared`, with no fault.
    pub fn new(shared: &MemoryStorage) -> Plug {
        Plug {
            shared: shared.clone(),
            current: Arc::new(Mutex::new(FaultyStorage::new(shared.clone(), None))),
        }
    }

    /// Replaces the fault; call numbers count from here.
    pub fn arm(&self, fault: Option<Fault>) {
        *self.current.lock().unwrap() = FaultyStorage::new(self.shared.clone(), fault);
    }

    /// Calls made since the fault was armed.
    pub fn calls(&self) -> u64 {
        self.current.lock().unwrap().calls()
    }

    /// Whether the process died (at the fault armed last).
    pub fn crashed(&self) -> bool {
        self.current.lock().unwrap().crashed()
    }

    fn with<T>(&self, f: impl FnOnce(&mut FaultyStorage) -> T) -> T {
        f(&mut self.current.lock().unwrap())
    }
}

impl Storage for Plug {
    fn create_temp(&mut self, size_hint: Option<u64>) -> Result<TempId, StorageError> {
        self.with(|s| s.create_temp(size_hint))
    }
    fn write_temp(&mut self, temp: TempId, data: &[u8]) -> Result<(), StorageError> {
        self.with(|s| s.write_temp(temp, data))
    }
    fn commit_temp(&mut self, temp: TempId, path: &str) -> Result<(), StorageError> {
        self.with(|s| s.commit_temp(temp, path))
    }
    fn abort_temp(&mut self, temp: TempId) -> Result<(), StorageError> {
        self.with(|s| s.abort_temp(temp))
    }
    fn append(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError> {
        self.with(|s| s.append(path, data))
    }
    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        self.with(|s| s.read_at(path, offset, buf))
    }
    fn size(&mut self, path: &str) -> Result<Option<u64>, StorageError> {
        self.with(|s| s.size(path))
    }
    fn list(&mut self, dir: &str) -> Result<Vec<String>, StorageError> {
        self.with(|s| s.list(dir))
    }
    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        self.with(|s| s.remove(path))
    }
    fn clear_temps(&mut self) -> Result<u64, StorageError> {
        self.with(|s| s.clear_temps())
    }
}
