//! Least recently used first.

use super::EvictionPolicy;
use crate::clock::Millis;
use crate::index::{Entry, EntryId};
use std::collections::BTreeSet;

/// Evicts the candidate whose last use is oldest. Uses are ordered by a logical counter, so
/// many accesses within one millisecond keep their true order.
#[derive(Debug, Default)]
pub struct LruPolicy {
    order: BTreeSet<(u64, EntryId)>,
}

impl EvictionPolicy for LruPolicy {
    fn name(&self) -> String {
        "lru".into()
    }
    fn insert(&mut self, id: EntryId, entry: &Entry) {
        self.order.insert((entry.last_use(), id));
    }
    fn remove(&mut self, id: EntryId, entry: &Entry) {
        self.order.remove(&(entry.last_use(), id));
    }
    fn rebuild(&mut self, candidates: &[(EntryId, &Entry)]) {
        self.order = candidates
            .iter()
            .map(|&(id, e)| (e.last_use(), id))
            .collect();
    }
    fn next_victim(&self, _now: Millis) -> Option<EntryId> {
        self.order.first().map(|&(_, id)| id)
    }
}
