//! Expired entries only.

use super::EvictionPolicy;
use crate::clock::Millis;
use crate::index::{Entry, EntryId};
use std::collections::BTreeSet;

/// Nominates only candidates whose TTL has passed, earliest expiry first; nominates nothing
/// otherwise. On its own it never evicts live data, so put it first in a composite.
#[derive(Debug, Default)]
pub struct ExpiredPolicy {
    order: BTreeSet<(Millis, EntryId)>,
}

impl EvictionPolicy for ExpiredPolicy {
    fn name(&self) -> String {
        "expired".into()
    }
    fn insert(&mut self, id: EntryId, entry: &Entry) {
        self.order.insert((entry.expires_at(), id));
    }
    fn remove(&mut self, id: EntryId, entry: &Entry) {
        self.order.remove(&(entry.expires_at(), id));
    }
    fn rebuild(&mut self, candidates: &[(EntryId, &Entry)]) {
        self.order = candidates
            .iter()
            .map(|&(id, e)| (e.expires_at(), id))
            .collect();
    }
    fn update(&mut self, id: EntryId, old: &Entry, new: &Entry) {
        // Ordered by fields an access does not change: usually nothing to do.
        if old.expires_at() != new.expires_at() {
            self.remove(id, old);
            self.insert(id, new);
        }
    }
    fn next_victim(&self, now: Millis) -> Option<EntryId> {
        self.order
            .first()
            .filter(|&&(expires, _)| expires <= now)
            .map(|&(_, id)| id)
    }
}
