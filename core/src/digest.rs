//! Content digests: `algorithm:hex`, validated strictly.
//!
//! Only `sha256`, `sha384` and `sha512` with lower-case hex of the exact length are accepted.
//! A digest is the name of stored content, so a valid [`Digest`] can never name a path outside
//! the cache: its text is one of three fixed words, a colon and hex digits.

use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the OCI default.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Algorithm; 3] = [Algorithm::Sha256, Algorithm::Sha384, Algorithm::Sha512];

    /// The name used in digest strings and storage paths.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the raw digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 32,
            Algorithm::Sha384 => 48,
            Algorithm::Sha512 => 64,
        }
    }

    /// Parses an algorithm name.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Algorithm::Sha256 => 1,
            Algorithm::Sha384 => 2,
            Algorithm::Sha512 => 3,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.code() == code)
    }
}

/// A validated content digest.
///
/// SHA-256 digests are held inline (the common case, 40 bytes in all); longer ones are boxed so
/// that the index stays small.
///
/// ```
/// use ocicache_core::Digest;
/// let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse().unwrap();
/// assert_eq!(d.algorithm().name(), "sha256");
/// assert!("sha256:E3B0".parse::<Digest>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Digest {
    /// A SHA-256 digest.
    Sha256([u8; 32]),
    /// A SHA-384 digest.
    Sha384(Box<[u8; 48]>),
    /// A SHA-512 digest.
    Sha512(Box<[u8; 64]>),
}

impl Digest {
    /// Parses and validates `algorithm:hex`.
    pub fn parse(input: &str) -> Result<Digest> {
        let Some((alg, hex)) = input.split_once(':') else {
            return Err(Error::invalid_digest(
                input,
                "expected algorithm:hex, found no ':'",
            ));
        };
        let Some(algorithm) = Algorithm::from_name(alg) else {
            return Err(Error::invalid_digest(
                input,
                "unsupported algorithm (sha256, sha384, sha512)",
            ));
        };
        let want = algorithm.digest_len() * 2;
        if hex.len() != want {
            return Err(Error::invalid_digest(
                input,
                format!(
                    "{} needs {want} hex characters, found {}",
                    algorithm.name(),
                    hex.len()
                ),
            ));
        }
        let mut bytes = [0u8; 64];
        for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
            match (hex_value(pair[0]), hex_value(pair[1])) {
                (Some(hi), Some(lo)) => bytes[i] = hi << 4 | lo,
                _ => {
                    return Err(Error::invalid_digest(
                        input,
                        "hex must be lower-case 0-9a-f",
                    ));
                }
            }
        }
        Ok(Digest::from_raw(algorithm, &bytes[..algorithm.digest_len()]).expect("length checked"))
    }

    /// Parses the bare lower-case hex of an `algorithm` digest (a stored file's name) without
    /// allocating; `None` unless it is exactly what [`Digest::parse`] accepts after the colon.
    pub(crate) fn from_hex(algorithm: Algorithm, hex: &str) -> Option<Digest> {
        let len = algorithm.digest_len();
        if hex.len() != 2 * len {
            return None;
        }
        // Table lookups and one check at the end: per-character branches on random hex
        // mispredict, and opening parses one name per stored file.
        let mut bytes = [0u8; 64];
        let mut invalid = 0u8;
        for (b, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let (hi, lo) = (
                HEX_VALUE[usize::from(pair[0])],
                HEX_VALUE[usize::from(pair[1])],
            );
            invalid |= hi | lo;
            *b = hi << 4 | lo;
        }
        if invalid > 0xf {
            return None;
        }
        Digest::from_raw(algorithm, &bytes[..len])
    }

    /// Builds a digest from raw bytes; `None` if the length does not fit the algorithm.
    pub fn from_raw(algorithm: Algorithm, raw: &[u8]) -> Option<Digest> {
        Some(match algorithm {
            Algorithm::Sha256 => Digest::Sha256(raw.try_into().ok()?),
            Algorithm::Sha384 => Digest::Sha384(Box::new(raw.try_into().ok()?)),
            Algorithm::Sha512 => Digest::Sha512(Box::new(raw.try_into().ok()?)),
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Digest::Sha256(_) => Algorithm::Sha256,
            Digest::Sha384(_) => Algorithm::Sha384,
            Digest::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Digest::Sha256(b) => b,
            Digest::Sha384(b) => &b[..],
            Digest::Sha512(b) => &b[..],
        }
    }

    /// The lower-case hex part (without `algorithm:`).
    pub fn hex(&self) -> String {
        let mut out = String::with_capacity(self.as_bytes().len() * 2);
        for b in self.as_bytes() {
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
        out
    }

    /// A well-mixed 64-bit hash for the index: digests are already uniformly random.
    pub(crate) fn fingerprint(&self) -> u64 {
        let b = self.as_bytes();
        u64::from_le_bytes(b[..8].try_into().expect("digests are at least 32 bytes"))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The value of each lower-case hex digit; 0xff for every other byte.
const HEX_VALUE: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 16 {
        table[HEX[i] as usize] = i as u8;
        i += 1;
    }
    table
};

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm().name(), self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Digest> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn round_trips_every_algorithm() {
        for alg in Algorithm::ALL {
            let text = format!("{}:{}", alg.name(), "ab".repeat(alg.digest_len()));
            let d = Digest::parse(&text).unwrap();
            assert_eq!(d.to_string(), text);
            assert_eq!(d.algorithm(), alg);
        }
        assert_eq!(Digest::parse(EMPTY).unwrap().to_string(), EMPTY);
    }

    #[test]
    fn rejects_hostile_and_malformed_digests() {
        let bad = [
            "",
            "sha256",
            "sha256:",
            "sha256:../../etc/passwd",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85\0",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8/5",
            " sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ];
        for input in bad {
            let err = Digest::parse(input).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidDigest, "{input:?}");
        }
    }

    #[test]
    fn sha256_digests_stay_small() {
        assert!(std::mem::size_of::<Digest>() <= 40);
    }
}
