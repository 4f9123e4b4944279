//! What an entry is keyed by: its kind and digest.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The kind of a content entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An image manifest or index (small, parsed, references other content).
    Manifest,
    /// A layer or config blob (large, streamed).
    Blob,
}

impl Kind {
    /// Both kinds.
    pub const ALL: [Kind; 2] = [Kind::Manifest, Kind::Blob];

    /// `manifest` or `blob`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Manifest => "manifest",
            Kind::Blob => "blob",
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Kind::Manifest => 1,
            Kind::Blob => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// A content entry's identity.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    /// Manifest or blob.
    pub kind: Kind,
    /// The digest of the content.
    pub digest: Digest,
}

impl Key {
    /// A manifest key.
    pub fn manifest(digest: Digest) -> Key {
        Key {
            kind: Kind::Manifest,
            digest,
        }
    }

    /// A blob key.
    pub fn blob(digest: Digest) -> Key {
        Key {
            kind: Kind::Blob,
            digest,
        }
    }

    pub(crate) fn fingerprint(&self) -> u64 {
        Key::fingerprint_of(self.kind, &self.digest)
    }

    pub(crate) fn fingerprint_of(kind: Kind, digest: &Digest) -> u64 {
        digest.fingerprint() ^ u64::from(kind.code())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.name(), self.digest)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
