//! Incremental hashing, with room for a host-accelerated implementation.
//!
//! In wasm, SHA-256 runs at about a third of native speed, so a host may hand the core a
//! [`HashProvider`] backed by its own crypto (wasmtime host: native `sha2`; Node: `node:crypto`).
//! The core still decides what is hashed and when; [`BuiltinHasher`] (`sha2`) is the fallback.

use crate::digest::{Algorithm, Digest};
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
    /// A provider returning the wrong number of bytes is a host bug; it yields a digest of zeros,
    /// which then fails verification instead of being trusted.
    pub fn finish(self) -> Digest {
        let raw = self.state.finish();
        Digest::from_raw(self.algorithm, &raw).unwrap_or_else(|| {
            Digest::from_raw(self.algorithm, &[0; 64][..self.algorithm.digest_len()])
                .expect("exact length")
        })
    }
}

/// Hashes `data` in one go.
///
/// ```
/// use ocicache_core::{hashing::digest_of, Algorithm, BuiltinHasher};
/// let d = digest_of(&BuiltinHasher, Algorithm::Sha256, b"");
/// assert_eq!(d.to_string(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
/// ```
pub fn digest_of(provider: &dyn HashProvider, algorithm: Algorithm, data: &[u8]) -> Digest {
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
            assert_eq!(digest_of(&BuiltinHasher, alg, b"abc").to_string(), want);
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
            h.finish(),
            digest_of(&BuiltinHasher, Algorithm::Sha256, &data)
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
    fn a_broken_provider_never_produces_a_matching_digest() {
        let d = digest_of(&BrokenProvider, Algorithm::Sha256, b"abc");
        assert_ne!(d, digest_of(&BuiltinHasher, Algorithm::Sha256, b"abc"));
    }
}
