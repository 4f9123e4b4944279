//! Tag → digest mappings: current digest, bounded history, freshness, invalidation.
//!
//! Resolution is sans-I/O: the core answers [`Resolution::Fresh`], [`Resolution::Stale`] or
//! [`Resolution::Unknown`]; the host does its own HEAD/GET against the registry and reports the
//! digest it saw with [`crate::Cache::put_tag`] (or the failure with
//! [`crate::Cache::resolve_failed`], which serves the stale digest when allowed).

use crate::clock::Millis;
use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;

/// One digest a tag pointed to, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagHistoryEntry {
    /// The digest.
    pub digest: Digest,
    /// When the tag started pointing to it (ms since the epoch).
    pub changed_at: Millis,
}

/// The stored state of one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagState {
    /// Current digest.
    pub digest: Digest,
    /// First put.
    pub created: Millis,
    /// Last change of digest.
    pub updated: Millis,
    /// Last time the digest was confirmed (put or revalidated).
    pub validated: Millis,
    /// End of the freshness window (`u64::MAX`: always fresh).
    pub fresh_until: Millis,
    /// Explicitly invalidated: answers `Invalidated` until re-put.
    pub invalidated: bool,
    /// Lookups since the cache was opened (not persisted).
    pub access_count: u64,
    /// Digests pointed to, oldest first, the current one last; bounded by `max_tag_history`.
    pub history: VecDeque<TagHistoryEntry>,
}

/// A tag mapping as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagMapping {
    /// Canonical reference (`docker.io/library/nginx:latest`).
    pub reference: String,
    /// Current digest.
    pub digest: Digest,
    /// First put (ms).
    pub created_at: Millis,
    /// Last change of digest (ms).
    pub updated_at: Millis,
    /// Last confirmation (ms).
    pub validated_at: Millis,
    /// End of the freshness window, if any (ms).
    pub fresh_until: Option<Millis>,
    /// Whether it was invalidated.
    pub invalidated: bool,
    /// Lookups since open.
    pub access_count: u64,
    /// Digests pointed to, oldest first, current last.
    pub history: Vec<TagHistoryEntry>,
}

/// The core's answer to "what does this tag point to?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "digest", rename_all = "snake_case")]
pub enum Resolution {
    /// Known and within its freshness window: use it, no network needed.
    Fresh(Digest),
    /// Known but past its freshness window: revalidate (HEAD) and report back; the digest may
    /// be used for a conditional request or, on failure, as a stale answer.
    Stale(Digest),
    /// Not cached (or invalidated): fetch and report back.
    Unknown,
}

/// What a put changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagUpdate {
    /// The digest before the put, if the tag was known.
    pub previous: Option<Digest>,
    /// Whether the tag now points elsewhere than before (false for a first put).
    pub moved: bool,
}

type DetHashMap<K, V> =
    HashMap<K, V, BuildHasherDefault<std::collections::hash_map::DefaultHasher>>;

/// All tag states, keyed by canonical reference.
#[derive(Default)]
pub(crate) struct TagStore {
    map: DetHashMap<String, TagState>,
}

impl TagStore {
    pub(crate) fn get(&self, reference: &str) -> Option<&TagState> {
        self.map.get(reference)
    }

    pub(crate) fn get_mut(&mut self, reference: &str) -> Option<&mut TagState> {
        self.map.get_mut(reference)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Sorted references (deterministic listings and snapshots).
    pub(crate) fn sorted_references(&self) -> Vec<&String> {
        let mut refs: Vec<&String> = self.map.keys().collect();
        refs.sort();
        refs
    }

    pub(crate) fn insert_state(&mut self, reference: String, state: TagState) {
        self.map.insert(reference, state);
    }

    /// Points `reference` at `digest` as of `at`.
    pub(crate) fn set(
        &mut self,
        reference: &str,
        digest: &Digest,
        at: Millis,
        fresh_until: Millis,
        max_history: usize,
    ) -> TagUpdate {
        let previous = self.map.get(reference).map(|t| t.digest.clone());
        let entry = self
            .map
            .entry(reference.to_owned())
            .or_insert_with(|| TagState {
                digest: digest.clone(),
                created: at,
                updated: at,
                validated: at,
                fresh_until,
                invalidated: false,
                access_count: 0,
                history: VecDeque::new(),
            });
        let moved = previous.as_ref().is_some_and(|p| p != digest);
        if moved {
            entry.digest = digest.clone();
            entry.updated = at;
        }
        if (moved || entry.history.is_empty()) && max_history > 0 {
            entry.history.push_back(TagHistoryEntry {
                digest: digest.clone(),
                changed_at: at,
            });
        }
        while entry.history.len() > max_history {
            entry.history.pop_front();
        }
        entry.validated = at;
        entry.fresh_until = fresh_until;
        entry.invalidated = false;
        TagUpdate { previous, moved }
    }

    pub(crate) fn invalidate(&mut self, reference: &str) -> bool {
        match self.map.get_mut(reference) {
            Some(t) => {
                t.invalidated = true;
                true
            }
            None => false,
        }
    }

    pub(crate) fn remove(&mut self, reference: &str) -> bool {
        self.map.remove(reference).is_some()
    }
}

impl TagState {
    /// The API view of this state.
    pub fn mapping(&self, reference: &str) -> TagMapping {
        TagMapping {
            reference: reference.to_owned(),
            digest: self.digest.clone(),
            created_at: self.created,
            updated_at: self.updated,
            validated_at: self.validated,
            fresh_until: (self.fresh_until != u64::MAX).then_some(self.fresh_until),
            invalidated: self.invalidated,
            access_count: self.access_count,
            history: self.history.iter().cloned().collect(),
        }
    }

    /// Whether the freshness window has passed at `now`.
    pub fn is_stale(&self, now: Millis) -> bool {
        self.fresh_until <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::Sha256([n; 32])
    }

    #[test]
    fn history_is_bounded_oldest_first_with_current_last() {
        let mut s = TagStore::default();
        let first = s.set("r", &d(0), 0, 10, 3);
        assert_eq!(
            first,
            TagUpdate {
                previous: None,
                moved: false
            }
        );
        for i in 1..6u8 {
            let u = s.set("r", &d(i), u64::from(i), 10, 3);
            assert_eq!(
                u,
                TagUpdate {
                    previous: Some(d(i - 1)),
                    moved: true
                }
            );
        }
        let h: Vec<_> = s
            .get("r")
            .unwrap()
            .history
            .iter()
            .map(|h| h.changed_at)
            .collect();
        assert_eq!(h, vec![3, 4, 5]);
        let same = s.set("r", &d(5), 9, 20, 3);
        assert_eq!(
            same,
            TagUpdate {
                previous: Some(d(5)),
                moved: false
            }
        );
        assert_eq!(
            s.get("r").unwrap().history.len(),
            3,
            "revalidation adds no history"
        );
        assert_eq!(s.get("r").unwrap().validated, 9);
    }

    #[test]
    fn invalidation_lasts_until_the_next_put() {
        let mut s = TagStore::default();
        assert!(!s.invalidate("r"));
        s.set("r", &d(1), 0, 10, 10);
        assert!(s.invalidate("r"));
        assert!(s.get("r").unwrap().invalidated);
        s.set("r", &d(1), 1, 10, 10);
        assert!(!s.get("r").unwrap().invalidated);
    }
}
