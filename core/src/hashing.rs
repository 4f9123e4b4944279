//! Incremental hashing, with room for a host-accelerated implementation.
//!
//! In wasm, SHA-256 runs at about a third of native speed, so a host may hand the core a
//! [`HashProvider`] backed by its own crypto (wasmtime host: native `sha2`; Node: `node:crypto`).
//! The core still decides what is hashed and when; [`BuiltinHasher`] (`sha2`) is the fallback.

use crate::digest::{Algorithm, Digest};
use crate::storage::StorageError;
use sha2::Digest as _;

/// A running hash over a stream of bytes.
pub trait HashState: Send {
    /// Feeds more bytes.
    fn update(&mut self, data: &[u8]);
    /// Finishes and returns the raw digest bytes (length fixed by the algorithm).
    fn finish(self: Box<Self>) -> Vec<u8>;
}

/// Makes hash states. Implemented by hosts that can hash faster than the core's `sha2`.
pub trait HashProvider: Send {
    /// Starts a hash; `None` means "not supported here, use the built-in one".
    fn start(&self, algorithm: Algorithm) -> Option<Box<dyn HashState>>;
}

/// The built-in provider: RustCrypto `sha2`.
#[derive(Debug, Default, Clone, Copy)]
pub struct BuiltinHasher;

enum Sha2State {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl HashState for Sha2State {
    fn update(&mut self, data: &[u8]) {
        match self {
            Sha2State::Sha256(h) => h.update(data),
            Sha2State::Sha384(h) => h.update(data),
            Sha2State::Sha512(h) => h.update(data),
        }
    }

    fn finish(self: Box<Self>) -> Vec<u8> {
        match *self {
            Sha2State::Sha256(h) => h.finalize().to_vec(),
            Sha2State::Sha384(h) => h.finalize().to_vec(),
            Sha2State::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

impl HashProvider for BuiltinHasher {
    fn start(&self, algorithm: Algorithm) -> Option<Box<dyn HashState>> {
        Some(Box::new(match algorithm {
            Algorithm::Sha256 => Sha2State::Sha256(sha2::Sha256::new()),
            Algorithm::Sha384 => Sha2State::Sha384(sha2::Sha384::new()),
            Algorithm::Sha512 => Sha2State::Sha512(sha2::Sha512::new()),
        }))
    }
}

/// A hash in progress that knows its algorithm and yields a [`Digest`].
pub struct Hasher {
    algorithm: Algorithm,
    state: Box<dyn HashState>,
}

impl Hasher {
    /// Starts a hash with `provider`, falling back to the built-in one.
    pub fn new(provider: &dyn HashProvider, algorithm: Algorithm) -> Hasher {
        let state = provider
            .start(algorithm)
            .or_else(|| BuiltinHasher.start(algorithm))
            .expect("the built-in hasher supports every algorithm");
        Hasher { algorithm, state }
    }

    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.state.update(data);
    }

    /// Finishes the hash.
    ///
    /// A host hasher that failed (a JS or component host reports that as a digest of the wrong
    /// length) gives [`StorageError::Io`]: a failure of the host, like a storage failure. It is
    /// never a digest: a made-up one could name a stored blob, and a mismatch would be taken for
    /// corruption and quarantine good bytes.
    pub fn finish(self) -> Result<Digest, StorageError> {
        let raw = self.state.finish();
        Digest::from_raw(self.algorithm, &raw).ok_or_else(|| {
            StorageError::Io(format!(
                "the host's {} hasher failed (it gave {} bytes, not {})",
                self.algorithm.name(),
                raw.len(),
                self.algorithm.digest_len()
            ))
        })
    }
}

/// Hashes `data` in one go; fails only if a host hasher fails (see [`Hasher::finish`]).
///
/// ```
/// use ocicache_core::{hashing::digest_of, Algorithm, BuiltinHasher};
/// let d = digest_of(&BuiltinHasher, Algorithm::Sha256, b"").unwrap();
/// assert_eq!(d.to_string(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
/// ```
pub fn digest_of(
    provider: &dyn HashProvider,
    algorithm: Algorithm,
    data: &[u8],
) -> Result<Digest, StorageError> {
    let mut h = Hasher::new(provider, algorithm);
    h.update(data);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        let abc = [
            (
                Algorithm::Sha256,
                "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                Algorithm::Sha512,
                "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ];
        for (alg, want) in abc {
            assert_eq!(
                digest_of(&BuiltinHasher, alg, b"abc").unwrap().to_string(),
                want
            );
        }
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut h = Hasher::new(&BuiltinHasher, Algorithm::Sha256);
        for chunk in data.chunks(777) {
            h.update(chunk);
        }
        assert_eq!(
            h.finish().unwrap(),
            digest_of(&BuiltinHasher, Algorithm::Sha256, &data).unwrap()
        );
    }

    struct Broken;
    impl HashState for Broken {
        fn update(&mut self, _: &[u8]) {}
        fn finish(self: Box<Self>) -> Vec<u8> {
            vec![1, 2, 3]
        }
    }
    struct BrokenProvider;
    impl HashProvider for BrokenProvider {
        fn start(&self, _: Algorithm) -> Option<Box<dyn HashState>> {
            Some(Box::new(Broken))
        }
    }

    #[test]
    fn a_broken_provider_gives_an_error_never_a_digest() {
        let e = digest_of(&BrokenProvider, Algorithm::Sha256, b"abc").unwrap_err();
        assert!(
            matches!(e, StorageError::Io(ref m) if m.contains("hasher failed")),
            "{e}"
        );
    }
}
