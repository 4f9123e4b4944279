//! Soonest to expire first.

use super::EvictionPolicy;
use crate::clock::Millis;
use crate::index::{Entry, EntryId};
use std::collections::BTreeSet;

/// Evicts the candidate with the earliest expiry (entries that never expire go last).
#[derive(Debug, Default)]
pub struct TtlPolicy {
    order: BTreeSet<(Millis, EntryId)>,
}

impl TtlPolicy {
    /// The earliest expiry and its entry.
    pub(crate) fn first(&self) -> Option<(Millis, EntryId)> {
        self.order.first().copied()
    }
}

impl EvictionPolicy for TtlPolicy {
    fn name(&self) -> String {
        "ttl".into()
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
    fn next_victim(&self, _now: Millis) -> Option<EntryId> {
        self.first().map(|(_, id)| id)
    }
}
