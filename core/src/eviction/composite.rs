//! Several policies with priorities.

use super::EvictionPolicy;
use crate::clock::Millis;
use crate::index::{Entry, EntryId};

/// Asks its members in priority order (lowest number first); the first that nominates a
/// victim wins. Every member sees every candidate.
///
/// ```
/// use ocicache_core::eviction::{CompositePolicy, ExpiredPolicy, LruPolicy};
/// // Expired entries first, then least recently used: the default.
/// let policy = CompositePolicy::new(vec![(0, Box::new(ExpiredPolicy::default())), (1, Box::new(LruPolicy::default()))]);
/// ```
pub struct CompositePolicy {
    members: Vec<(u32, Box<dyn EvictionPolicy>)>,
}

impl CompositePolicy {
    /// Combines `members`, given as `(priority, policy)`.
    pub fn new(mut members: Vec<(u32, Box<dyn EvictionPolicy>)>) -> CompositePolicy {
        members.sort_by_key(|(p, _)| *p);
        CompositePolicy { members }
    }
}

impl EvictionPolicy for CompositePolicy {
    fn name(&self) -> String {
        let names: Vec<String> = self
            .members
            .iter()
            .map(|(p, m)| format!("{p}:{}", m.name()))
            .collect();
        format!("composite({})", names.join(","))
    }
    fn insert(&mut self, id: EntryId, entry: &Entry) {
        for (_, m) in &mut self.members {
            m.insert(id, entry);
        }
    }
    fn remove(&mut self, id: EntryId, entry: &Entry) {
        for (_, m) in &mut self.members {
            m.remove(id, entry);
        }
    }
    fn rebuild(&mut self, candidates: &[(EntryId, &Entry)]) {
        for (_, m) in &mut self.members {
            m.rebuild(candidates);
        }
    }
    fn update(&mut self, id: EntryId, old: &Entry, new: &Entry) {
        for (_, m) in &mut self.members {
            m.update(id, old, new);
        }
    }
    fn next_victim(&self, now: Millis) -> Option<EntryId> {
        self.members.iter().find_map(|(_, m)| m.next_victim(now))
    }
}
