//! Helpers shared by the integration tests.
// Each test binary uses its own subset.
#![allow(dead_code)]

use ocicache_core::hashing::digest_of;
use ocicache_core::{Algorithm, BuiltinHasher, Digest};

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
        [kind, alg, hex] if *kind == "manifests" || *kind == "blobs" => Algorithm::from_name(alg)
            .is_some_and(|a| {
                hex.len() == a.digest_len() * 2
                    && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            }),
        _ => false,
    }
}
