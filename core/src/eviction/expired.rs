//! Expired entries only.

use super::{EvictionPolicy, TtlPolicy};
use crate::clock::Millis;
use crate::index::{Entry, EntryId};

/// Nominates only candidates whose TTL has passed, earliest expiry first; nominates nothing
/// otherwise. On its own it never evicts live data, so put it first in a composite.
#[derive(Debug, Default)]
pub struct ExpiredPolicy {
    by_expiry: TtlPolicy,
}

impl EvictionPolicy for ExpiredPolicy {
    fn name(&self) -> String {
        "expired".into()
    }
    fn insert(&mut self, id: EntryId, entry: &Entry) {
        self.by_expiry.insert(id, entry);
    }
    fn remove(&mut self, id: EntryId, entry: &Entry) {
        self.by_expiry.remove(id, entry);
    }
    fn rebuild(&mut self, candidates: &[(EntryId, &Entry)]) {
        self.by_expiry.rebuild(candidates);
    }
    fn update(&mut self, id: EntryId, old: &Entry, new: &Entry) {
        self.by_expiry.update(id, old, new);
    }
    fn next_victim(&self, now: Millis) -> Option<EntryId> {
        self.by_expiry
            .first()
            .filter(|&(expires, _)| expires <= now)
            .map(|(_, id)| id)
    }
}
