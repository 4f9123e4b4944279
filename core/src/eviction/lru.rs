//! Least recently used first.

use super::EvictionPolicy;
use crate::clock::Millis;
use crate::index::{Entry, EntryId};
use std::collections::BTreeSet;

/// Evicts the candidate whose last use is oldest. Uses are ordered by a logical counter, so
/// many accesses within one millisecond keep their true order.
///
/// Almost every filing is of the entry used last (a put, a read): those go on the end of a
/// list linked through a table indexed by entry id, so a read costs an unlink and an append
/// (a few memory accesses) however many entries there are, where an ordered set costs a
/// search through a tree that no longer fits in the CPU's caches at a million entries. An
/// entry filed with an older use (it was pinned, referenced or being read at its last use)
/// goes into a small ordered set of stragglers instead; the victim is the older of the
/// list's head and the first straggler, so the order is exact.
#[derive(Debug, Default)]
pub struct LruPolicy {
    /// Per entry id: its links and last use while it is on the list.
    links: Vec<Link>,
    head: Option<u32>,
    tail: Option<u32>,
    stragglers: BTreeSet<(u64, EntryId)>,
}

/// 24 bytes: ids as `u32` with [`NIL`] for none (an `Option<u32>` takes 8).
#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    last_use: u64,
    on_list: bool,
}

/// No entry.
const NIL: u32 = u32::MAX;

impl Default for Link {
    fn default() -> Link {
        Link {
            prev: NIL,
            next: NIL,
            last_use: 0,
            on_list: false,
        }
    }
}

fn some(i: u32) -> Option<u32> {
    (i != NIL).then_some(i)
}

impl LruPolicy {
    fn link(&mut self, id: EntryId) -> &mut Link {
        let i = id.0 as usize;
        if i >= self.links.len() {
            self.links.resize(i + 1, Link::default());
        }
        &mut self.links[i]
    }

    fn append(&mut self, id: EntryId, last_use: u64) {
        let tail = self.tail;
        *self.link(id) = Link {
            prev: tail.unwrap_or(NIL),
            next: NIL,
            last_use,
            on_list: true,
        };
        match tail {
            Some(t) => self.links[t as usize].next = id.0,
            None => self.head = Some(id.0),
        }
        self.tail = Some(id.0);
    }

    /// Unlinks `id` if it is on the list; whether it was.
    fn unlink(&mut self, id: EntryId) -> bool {
        let Some(link) = self.links.get(id.0 as usize).copied().filter(|l| l.on_list) else {
            return false;
        };
        match some(link.prev) {
            Some(p) => self.links[p as usize].next = link.next,
            None => self.head = some(link.next),
        }
        match some(link.next) {
            Some(n) => self.links[n as usize].prev = link.prev,
            None => self.tail = some(link.prev),
        }
        self.links[id.0 as usize] = Link::default();
        true
    }

    fn file(&mut self, id: EntryId, last_use: u64) {
        let newest = self
            .tail
            .is_none_or(|t| self.links[t as usize].last_use <= last_use);
        if newest {
            self.append(id, last_use);
        } else {
            self.stragglers.insert((last_use, id));
        }
    }
}

impl EvictionPolicy for LruPolicy {
    fn name(&self) -> String {
        "lru".into()
    }
    fn insert(&mut self, id: EntryId, entry: &Entry) {
        self.file(id, entry.last_use());
    }
    fn remove(&mut self, id: EntryId, entry: &Entry) {
        if !self.unlink(id) {
            self.stragglers.remove(&(entry.last_use(), id));
        }
    }
    fn update(&mut self, id: EntryId, old: &Entry, new: &Entry) {
        // Only a use moves an entry in this order.
        if old.last_use() != new.last_use() {
            self.remove(id, old);
            self.insert(id, new);
        }
    }
    fn rebuild(&mut self, candidates: &[(EntryId, &Entry)]) {
        *self = LruPolicy::default();
        let mut order: Vec<(u64, EntryId)> = candidates
            .iter()
            .map(|&(id, e)| (e.last_use(), id))
            .collect();
        order.sort_unstable();
        if let Some(max) = order.iter().map(|&(_, id)| id.0 as usize).max() {
            self.links.reserve_exact(max + 1);
        }
        for (last_use, id) in order {
            self.append(id, last_use);
        }
    }
    fn next_victim(&self, _now: Millis) -> Option<EntryId> {
        let listed = self
            .head
            .map(|h| (self.links[h as usize].last_use, EntryId(h)));
        match (listed, self.stragglers.first().copied()) {
            (Some(a), Some(b)) => Some(a.min(b).1),
            (a, b) => a.or(b).map(|(_, id)| id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::key::Kind;

    fn entry(last_use: u64) -> Entry {
        Entry {
            kind: Kind::Blob,
            digest: Digest::Sha256([0; 32]),
            size: 1,
            created: 0,
            accessed: 0,
            expires: u64::MAX,
            last_use,
            access_count: 0,
            pins: 0,
            referrers: 0,
            readers: 0,
            incarnation: 0,
            media_type: None,
            quarantined: false,
            parked: false,
        }
    }

    /// Drains `policy` in eviction order.
    fn drain(policy: &mut LruPolicy, entries: &[(EntryId, u64)]) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(id) = policy.next_victim(0) {
            let last_use = entries.iter().find(|(e, _)| *e == id).unwrap().1;
            policy.remove(id, &entry(last_use));
            out.push(id.0);
        }
        out
    }

    #[test]
    fn the_order_is_by_last_use_whether_filed_in_order_or_late() {
        let mut p = LruPolicy::default();
        // Filed in use order, then two stragglers with older uses, then a newer one.
        let filed = [
            (EntryId(0), 10),
            (EntryId(7), 20),
            (EntryId(3), 30),
            (EntryId(5), 15),
            (EntryId(2), 5),
            (EntryId(9), 40),
        ];
        for &(id, u) in &filed {
            p.insert(id, &entry(u));
        }
        assert_eq!(drain(&mut p, &filed), [2, 0, 5, 7, 3, 9]);
    }

    #[test]
    fn a_use_moves_an_entry_to_the_end_and_removals_unlink_anywhere() {
        let mut p = LruPolicy::default();
        let mut uses = vec![
            (EntryId(0), 1),
            (EntryId(1), 2),
            (EntryId(2), 3),
            (EntryId(3), 4),
        ];
        for &(id, u) in &uses {
            p.insert(id, &entry(u));
        }
        // Entry 0 used again: last now.
        p.update(EntryId(0), &entry(1), &entry(5));
        uses[0].1 = 5;
        // Entry 2 (in the middle) withdrawn, then filed again with its old use: a straggler.
        p.remove(EntryId(2), &entry(3));
        p.insert(EntryId(2), &entry(3));
        assert_eq!(drain(&mut p, &uses), [1, 2, 3, 0]);
        assert_eq!(p.next_victim(0), None);
        assert!(p.head.is_none() && p.tail.is_none() && p.stragglers.is_empty());
    }

    #[test]
    fn a_rebuild_orders_everything_it_is_given() {
        let mut p = LruPolicy::default();
        p.insert(EntryId(4), &entry(100));
        let (a, b, c) = (entry(30), entry(10), entry(20));
        p.rebuild(&[(EntryId(1), &a), (EntryId(2), &b), (EntryId(3), &c)]);
        assert_eq!(
            drain(
                &mut p,
                &[(EntryId(1), 30), (EntryId(2), 10), (EntryId(3), 20)]
            ),
            [2, 3, 1]
        );
    }
}
