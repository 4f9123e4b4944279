//! Eviction: which entry goes first when the cache must make room.
//!
//! The index tells a policy about *candidates* only — entries that may be evicted now (not
//! pinned, not being read, not referenced by a cached manifest, not quarantined) — so a policy
//! is an ordered set and choosing a victim is O(log n). When an entry's ordering fields change
//! (an access, a sliding-TTL extension) the policy sees `update(old, new)`.
//!
//! Implement [`EvictionPolicy`] for a custom order and pass it to
//! [`crate::CacheBuilder::policy`].

mod composite;
mod expired;
mod lru;
mod size;
mod ttl;

pub use composite::CompositePolicy;
pub use expired::ExpiredPolicy;
pub use lru::LruPolicy;
pub use size::SizePolicy;
pub use ttl::TtlPolicy;

use crate::clock::Millis;
use crate::config::PolicyConfig;
use crate::index::{Entry, EntryId};

/// An order over eviction candidates.
///
/// The cache refuses a put with `Full` *before* evicting anything when even evicting every
/// candidate would not make room. That check assumes the policy will nominate every candidate
/// in turn; a policy that declines some (such as [`ExpiredPolicy`] on its own) may let a put
/// evict what it nominates and still end `Full`. Put such policies first in a
/// [`CompositePolicy`] whose last member orders everything.
pub trait EvictionPolicy: Send {
    /// A short name for logs and debug info.
    fn name(&self) -> String;
    /// `entry` became a candidate.
    fn insert(&mut self, id: EntryId, entry: &Entry);
    /// `entry` stopped being a candidate; `entry` holds the fields it was inserted with.
    fn remove(&mut self, id: EntryId, entry: &Entry);
    /// A candidate's fields changed (an access, a sliding-TTL extension) and it stays a
    /// candidate; `old` holds the fields it was filed under. The default re-files it; a policy
    /// whose order does not depend on what changed may do nothing.
    fn update(&mut self, id: EntryId, old: &Entry, new: &Entry) {
        self.remove(id, old);
        self.insert(id, new);
    }
    /// The candidate to evict first at time `now`, or `None` if this policy nominates none.
    fn next_victim(&self, now: Millis) -> Option<EntryId>;
    /// Takes `candidates` (in no particular order) into a policy that holds nothing yet: how an
    /// index loaded in bulk at open hands them over. The default inserts them one by one; the
    /// built-in policies build their ordered sets in one sorted pass instead.
    fn rebuild(&mut self, candidates: &[(EntryId, &Entry)]) {
        for &(id, entry) in candidates {
            self.insert(id, entry);
        }
    }
}

/// Builds the policy a configuration names.
pub fn from_config(config: &PolicyConfig) -> Box<dyn EvictionPolicy> {
    match config {
        PolicyConfig::Lru => Box::new(LruPolicy::default()),
        PolicyConfig::Size => Box::new(SizePolicy::default()),
        PolicyConfig::Ttl => Box::new(TtlPolicy::default()),
        PolicyConfig::Expired => Box::new(ExpiredPolicy::default()),
        PolicyConfig::Composite(members) => Box::new(CompositePolicy::new(
            members.iter().map(|(p, c)| (*p, from_config(c))).collect(),
        )),
    }
}
