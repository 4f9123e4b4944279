//! One content entry of the index.

use crate::clock::Millis;
use crate::digest::Digest;
use crate::key::{Key, Kind};
use crate::manifest::MediaType;

/// A slot number in the index; stable while the entry lives, reused after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(pub u32);

/// What the index knows of a stored manifest or blob.
#[derive(Debug, Clone)]
pub struct Entry {
    // Kind and digest rather than a `Key`: a nested struct's padding cannot be reused, and the
    // kind packs with the small fields below (104 bytes per entry instead of 112).
    pub(crate) kind: Kind,
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    pub(crate) created: Millis,
    pub(crate) accessed: Millis,
    pub(crate) expires: Millis,
    pub(crate) last_use: u64,
    pub(crate) access_count: u32,
    pub(crate) pins: u32,
    pub(crate) referrers: u32,
    pub(crate) readers: u16,
    pub(crate) incarnation: u32,
    pub(crate) media_type: Option<MediaType>,
    pub(crate) quarantined: bool,
    /// Taken out of the eviction policy because it was being read when the policy nominated it
    /// (see [`crate::index::Index::next_victim`]); put back when its last reader is done.
    pub(crate) parked: bool,
}

impl Entry {
    /// Kind and digest.
    pub fn key(&self) -> Key {
        Key {
            kind: self.kind,
            digest: self.digest.clone(),
        }
    }
    /// Manifest or blob.
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// The digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
    /// Whether this entry is the one `key` names.
    pub fn is(&self, key: &Key) -> bool {
        self.kind == key.kind && self.digest == key.digest
    }
    pub(crate) fn fingerprint(&self) -> u64 {
        Key::fingerprint_of(self.kind, &self.digest)
    }
    /// Size in bytes (0 once quarantined: the bytes are gone).
    pub fn size(&self) -> u64 {
        self.size
    }
    /// When it was stored (ms since the epoch).
    pub fn created_at(&self) -> Millis {
        self.created
    }
    /// When it was last read or stored.
    pub fn accessed_at(&self) -> Millis {
        self.accessed
    }
    /// When its TTL ends (`u64::MAX`: never).
    pub fn expires_at(&self) -> Millis {
        self.expires
    }
    /// Logical time of the last use: larger is more recent.
    pub fn last_use(&self) -> u64 {
        self.last_use
    }
    /// Reads so far.
    pub fn access_count(&self) -> u32 {
        self.access_count
    }
    /// Pin count: pinned entries are never evicted.
    pub fn pins(&self) -> u32 {
        self.pins
    }
    /// Cached manifests referencing this entry.
    pub fn referrers(&self) -> u32 {
        self.referrers
    }
    /// Open readers.
    pub fn readers(&self) -> u16 {
        self.readers
    }
    /// Manifests only: the media type.
    pub fn media_type(&self) -> Option<MediaType> {
        self.media_type
    }
    /// Whether the entry failed verification and is no longer served.
    pub fn is_quarantined(&self) -> bool {
        self.quarantined
    }
    /// Whether its TTL has passed at `now`.
    pub fn is_expired(&self, now: Millis) -> bool {
        self.expires <= now
    }
    /// Whether eviction may take it now.
    pub fn is_candidate(&self) -> bool {
        self.readers == 0 && self.is_filed()
    }

    /// Whether the eviction policy holds it: a candidate, or one only being read (a read
    /// touches the policy once, to refile the entry as just used, instead of taking it out
    /// and putting it back; eviction passes over it while it is read).
    pub(crate) fn is_filed(&self) -> bool {
        self.pins == 0 && self.referrers == 0 && !self.quarantined && !self.parked
    }
}
