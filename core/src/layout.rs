//! Where things live inside the cache root. Documented in `docs/FORMAT.md`.
//!
//! ```text
//! manifests/<algorithm>/<hex>   exact manifest bytes
//! blobs/<algorithm>/<hex>       exact blob bytes
//! index/snapshot                compacted index (replaced atomically)
//! index/journal-<generation>    records appended since that snapshot
//! ```
//! Every path is built from fixed words and a validated digest, so none can leave the root.

use crate::digest::{Algorithm, Digest};
use crate::key::{Key, Kind};

/// The index directory.
pub const INDEX_DIR: &str = "index";
/// The snapshot path.
pub const SNAPSHOT: &str = "index/snapshot";
const JOURNAL_PREFIX: &str = "journal-";

/// The directory holding one kind of content.
pub fn kind_dir(kind: Kind) -> &'static str {
    match kind {
        Kind::Manifest => "manifests",
        Kind::Blob => "blobs",
    }
}

/// The path of an entry's bytes.
pub fn entry_path(key: &Key) -> String {
    format!(
        "{}/{}/{}",
        kind_dir(key.kind),
        key.digest.algorithm().name(),
        key.digest.hex()
    )
}

/// Where a download that may resume in a later pull keeps its bytes (see
/// [`crate::Storage::open_partial`]).
pub fn partial_path(digest: &Digest) -> String {
    format!("{}/{}", partials_dir(digest.algorithm()), digest.hex())
}

/// The directory of one algorithm's partial downloads.
pub fn partials_dir(algorithm: Algorithm) -> String {
    format!("partials/{}", algorithm.name())
}

/// The directory listing one kind and algorithm.
pub fn algorithm_dir(kind: Kind, algorithm: Algorithm) -> String {
    format!("{}/{}", kind_dir(kind), algorithm.name())
}

/// Parses a file name found in an algorithm directory back into a digest.
pub fn parse_entry_name(algorithm: Algorithm, name: &str) -> Option<Digest> {
    // Opening parses one name per stored file: no allocation per name.
    Digest::from_hex(algorithm, name)
}

/// The journal path of a generation.
pub fn journal_path(generation: u64) -> String {
    format!("{INDEX_DIR}/{JOURNAL_PREFIX}{generation}")
}

/// The generation of a journal file name (`journal-7` → 7).
pub fn parse_journal_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(JOURNAL_PREFIX)?;
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        let d = Digest::parse(&format!("sha256:{}", "0f".repeat(32))).unwrap();
        let p = entry_path(&Key::blob(d.clone()));
        assert_eq!(p, format!("blobs/sha256/{}", "0f".repeat(32)));
        assert_eq!(
            parse_entry_name(Algorithm::Sha256, p.rsplit('/').next().unwrap()),
            Some(d)
        );
        assert_eq!(parse_journal_name("journal-12"), Some(12));
        for bad in ["journal-", "journal-01", "journal-x", "snapshot"] {
            assert_eq!(parse_journal_name(bad), None);
        }
    }

    #[test]
    fn entry_names_parse_exactly_as_digests_do() {
        let hex = "0123456789abcdef".repeat(8);
        for algorithm in Algorithm::ALL {
            for name in [
                hex[..2 * algorithm.digest_len()].to_owned(),
                hex[..2 * algorithm.digest_len() - 1].to_owned(),
                hex[..2 * algorithm.digest_len()].to_uppercase(),
                format!("{}:", &hex[..2 * algorithm.digest_len() - 1]),
                format!("{}g", &hex[..2 * algorithm.digest_len() - 1]),
                String::new(),
            ] {
                let full = format!("{}:{name}", algorithm.name());
                assert_eq!(
                    parse_entry_name(algorithm, &name),
                    Digest::parse(&full).ok(),
                    "{name:?}"
                );
            }
        }
    }
}
