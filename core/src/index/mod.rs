//! The in-memory index of content entries.
//!
//! Entries live in a slab addressed by [`EntryId`]; a hash table of 4-byte ids gives O(1) lookup
//! by key, and ordered sets give O(log n) expiry and eviction order. The index also keeps the
//! invariant that the eviction policy sees exactly the entries that may be evicted now, and
//! counts manifest → content references so that referenced content is never a candidate.

mod entry;

pub use entry::{Entry, EntryId};

use crate::clock::Millis;
use crate::eviction::EvictionPolicy;
use crate::key::{Key, Kind};
use crate::manifest::MediaType;
use hashbrown::HashTable;
use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasherDefault;

type DetHashMap<K, V> =
    HashMap<K, V, BuildHasherDefault<std::collections::hash_map::DefaultHasher>>;

/// What a new entry is made of.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// Its identity.
    pub key: Key,
    /// Its size in bytes.
    pub size: u64,
    /// When it was stored.
    pub created: Millis,
    /// When it was last read (or stored).
    pub accessed: Millis,
    /// When it expires (`u64::MAX`: never).
    pub expires: Millis,
    /// Reads so far.
    pub access_count: u32,
    /// Pin count.
    pub pins: u32,
    /// Manifests only: the media type.
    pub media_type: Option<MediaType>,
    /// Whether the entry failed verification (no bytes are kept for it).
    pub quarantined: bool,
}

/// Counts of the index, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCounts {
    /// Manifest entries.
    pub manifests: u64,
    /// Blob entries.
    pub blobs: u64,
}

/// The index.
pub struct Index {
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    table: HashTable<u32>,
    expiry: BTreeSet<(Millis, EntryId)>,
    policy: Box<dyn EvictionPolicy>,
    references: DetHashMap<EntryId, Box<[Key]>>,
    pending_referrers: DetHashMap<Key, u32>,
    tick: u64,
    incarnation: u32,
    bytes: u64,
    candidate_bytes: u64,
    counts: KindCounts,
    /// Loading in bulk (see [`Index::begin_bulk`]): the ordered sets are not maintained.
    bulk: bool,
}

impl Index {
    /// An empty index ordering candidates with `policy`.
    pub fn new(policy: Box<dyn EvictionPolicy>) -> Index {
        Index {
            slots: Vec::new(),
            free: Vec::new(),
            table: HashTable::new(),
            expiry: BTreeSet::new(),
            policy,
            references: DetHashMap::default(),
            pending_referrers: DetHashMap::default(),
            tick: 0,
            incarnation: 0,
            bytes: 0,
            candidate_bytes: 0,
            counts: KindCounts::default(),
            bulk: false,
        }
    }

    /// Starts loading many entries at once (a snapshot at open): until [`Index::finish_bulk`],
    /// the expiry order and the eviction policy are not updated per change but rebuilt once at
    /// the end, in one sorted pass instead of n O(log n) insertions. Lookups work meanwhile;
    /// expiry and eviction queries do not. Only for an index whose policy holds nothing yet.
    pub fn begin_bulk(&mut self) {
        debug_assert!(self.is_empty(), "bulk loading starts from an empty index");
        self.bulk = true;
    }

    /// Forgets everything loaded since [`Index::begin_bulk`] (a snapshot turned out damaged),
    /// keeping the policy, which has been told nothing yet.
    pub fn discard_bulk(&mut self) {
        debug_assert!(self.bulk, "only entries loaded in bulk can be discarded");
        self.slots.clear();
        self.free.clear();
        self.table.clear();
        self.expiry.clear();
        self.references.clear();
        self.pending_referrers.clear();
        self.bytes = 0;
        self.candidate_bytes = 0;
        self.counts = KindCounts::default();
    }

    /// Ends bulk loading: builds the expiry order and hands every candidate to the policy.
    pub fn finish_bulk(&mut self) {
        if !std::mem::take(&mut self.bulk) {
            return;
        }
        let live = || {
            self.slots
                .iter()
                .enumerate()
                .filter_map(|(i, e)| e.as_ref().map(|e| (EntryId(i as u32), e)))
        };
        // `collect` into a `BTreeSet` sorts, then builds the tree bottom-up with full nodes.
        self.expiry = live()
            .filter(|(_, e)| e.expires != u64::MAX)
            .map(|(id, e)| (e.expires, id))
            .collect();
        let filed: Vec<(EntryId, &Entry)> = live().filter(|(_, e)| e.is_filed()).collect();
        self.candidate_bytes = filed
            .iter()
            .filter(|(_, e)| e.is_candidate())
            .map(|(_, e)| e.size)
            .sum();
        self.policy.rebuild(&filed);
    }

    /// Makes room for `additional` more entries without rehashing along the way.
    pub fn reserve(&mut self, additional: usize) {
        self.slots.reserve(additional);
        let slots = &self.slots;
        self.table.reserve(additional, |&i| {
            slots[i as usize]
                .as_ref()
                .expect("indexed slot")
                .fingerprint()
        });
    }

    /// The policy's name.
    pub fn policy_name(&self) -> String {
        self.policy.name()
    }

    /// Looks an entry up.
    pub fn find(&self, key: &Key) -> Option<EntryId> {
        let slots = &self.slots;
        self.table
            .find(key.fingerprint(), |&i| {
                slots[i as usize].as_ref().is_some_and(|e| e.is(key))
            })
            .map(|&i| EntryId(i))
    }

    /// The entry behind an id. Panics on a stale id (a core bug).
    pub fn get(&self, id: EntryId) -> &Entry {
        self.slots[id.0 as usize].as_ref().expect("live entry id")
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        (self.counts.manifests + self.counts.blobs) as usize
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries by kind.
    pub fn counts(&self) -> KindCounts {
        self.counts
    }

    /// Bytes of all entries.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes that eviction could free now.
    pub fn candidate_bytes(&self) -> u64 {
        self.candidate_bytes
    }

    /// One more than the largest id in use (ids index a `Vec` of this length).
    pub fn id_bound(&self) -> usize {
        self.slots.len()
    }

    /// Bytes eviction could free if it ran to the end: everything except entries that are
    /// pinned, being read or quarantined, the entries `keep` (protected as if pinned), and the
    /// content those reference (transitively). O(n); meant for the rare case where
    /// [`Index::candidate_bytes`] alone is not enough.
    pub fn eventually_evictable_bytes_keeping(&self, keep: &[EntryId]) -> u64 {
        let mut protected = vec![false; self.slots.len()];
        let mut stack: Vec<EntryId> = self
            .iter()
            .filter(|(_, e)| e.pins > 0 || e.readers > 0 || e.quarantined)
            .map(|(id, _)| id)
            .chain(keep.iter().copied())
            .collect();
        let mut protected_bytes = 0u64;
        while let Some(id) = stack.pop() {
            if std::mem::replace(&mut protected[id.0 as usize], true) {
                continue;
            }
            protected_bytes = protected_bytes.wrapping_add(self.get(id).size);
            stack.extend(self.references(id).iter().filter_map(|k| self.find(k)));
        }
        self.bytes.wrapping_sub(protected_bytes)
    }

    /// All entries, in slab order.
    pub fn iter(&self) -> impl Iterator<Item = (EntryId, &Entry)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (EntryId(i as u32), e)))
    }

    /// Entry ids in order of last use, oldest first (how snapshots keep LRU order).
    pub fn ids_by_use(&self) -> Vec<EntryId> {
        let mut ids: Vec<(u64, EntryId)> = self.iter().map(|(id, e)| (e.last_use, id)).collect();
        ids.sort_unstable();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Entries whose expiry is at or before `now`, earliest first.
    pub fn expired(&self, now: Millis) -> impl Iterator<Item = EntryId> + '_ {
        self.expiry
            .range(..=(now, EntryId(u32::MAX)))
            .map(|&(_, id)| id)
    }

    /// How many entries have expired at `now`.
    pub fn expired_count(&self, now: Millis) -> usize {
        self.expired(now).count()
    }

    /// The references a manifest entry was stored with.
    pub fn references(&self, id: EntryId) -> &[Key] {
        self.references.get(&id).map_or(&[], |r| r)
    }

    /// The policy's next victim.
    ///
    /// An entry being read stays filed in the policy (so that a read costs one refiling, not a
    /// removal and a reinsertion); when the policy nominates one, it is parked (taken out until
    /// its last reader is done) and the policy asked again.
    pub fn next_victim(&mut self, now: Millis) -> Option<EntryId> {
        loop {
            let id = self.policy.next_victim(now)?;
            if self.get(id).readers == 0 {
                return Some(id);
            }
            self.modify(id, |e| e.parked = true);
        }
    }

    /// Inserts an entry, replacing any entry with the same key. `references` (manifests only)
    /// protect the content they name from eviction while this entry stays.
    pub fn insert(&mut self, new: NewEntry, references: Vec<Key>) -> EntryId {
        if let Some(old) = self.find(&new.key) {
            self.remove(old);
        }
        self.tick += 1;
        self.incarnation = self.incarnation.wrapping_add(1);
        let referrers = self.pending_referrers.remove(&new.key).unwrap_or(0);
        let entry = Entry {
            kind: new.key.kind,
            digest: new.key.digest,
            size: if new.quarantined { 0 } else { new.size },
            created: new.created,
            accessed: new.accessed,
            expires: new.expires,
            last_use: self.tick,
            access_count: new.access_count,
            pins: new.pins,
            referrers,
            readers: 0,
            incarnation: self.incarnation,
            media_type: new.media_type,
            quarantined: new.quarantined,
            parked: false,
        };
        let id = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        let fingerprint = entry.fingerprint();
        // Wrapping: sizes come from stored records, and a forged one must not panic before
        // opening checks it against the file (add and subtract still cancel exactly).
        self.bytes = self.bytes.wrapping_add(entry.size);
        match entry.kind {
            Kind::Manifest => self.counts.manifests += 1,
            Kind::Blob => self.counts.blobs += 1,
        }
        if entry.expires != u64::MAX && !self.bulk {
            self.expiry.insert((entry.expires, EntryId(id)));
        }
        let filed = entry.is_filed();
        self.slots[id as usize] = Some(entry);
        let slots = &self.slots;
        self.table.insert_unique(fingerprint, id, |&i| {
            slots[i as usize]
                .as_ref()
                .expect("indexed slot")
                .fingerprint()
        });
        let id = EntryId(id);
        if filed {
            self.enter_policy(id);
        }
        if !references.is_empty() {
            for r in references.iter() {
                self.add_referrer(r, 1);
            }
            self.references.insert(id, references.into_boxed_slice());
        }
        id
    }

    /// Removes every entry (the policy is told of each), keeping the counters that make entry
    /// incarnations unique: a reader opened before never matches an entry loaded after.
    pub fn clear(&mut self) {
        let ids: Vec<EntryId> = self.iter().map(|(id, _)| id).collect();
        for id in ids {
            self.remove(id);
        }
        self.slots.clear();
        self.free.clear();
    }

    /// Removes an entry and returns it.
    pub fn remove(&mut self, id: EntryId) -> Entry {
        if self.get(id).is_filed() {
            self.leave_policy(id);
        }
        let entry = self.slots[id.0 as usize].take().expect("live entry id");
        if let Ok(found) = self.table.find_entry(entry.fingerprint(), |&i| i == id.0) {
            found.remove();
        }
        self.free.push(id.0);
        self.bytes = self.bytes.wrapping_sub(entry.size);
        match entry.kind {
            Kind::Manifest => self.counts.manifests -= 1,
            Kind::Blob => self.counts.blobs -= 1,
        }
        if entry.expires != u64::MAX && !self.bulk {
            self.expiry.remove(&(entry.expires, id));
        }
        if entry.referrers > 0 {
            *self.pending_referrers.entry(entry.key()).or_default() += entry.referrers;
        }
        if let Some(refs) = self.references.remove(&id) {
            for r in refs.iter() {
                self.add_referrer(r, -1);
            }
        }
        entry
    }

    /// Records an access at `now`; `new_expiry` extends the TTL (sliding TTL).
    pub fn touch(&mut self, id: EntryId, now: Millis, new_expiry: Option<Millis>) {
        self.tick += 1;
        let tick = self.tick;
        self.modify(id, |e| Self::accessed(e, tick, now, new_expiry));
    }

    fn accessed(e: &mut Entry, tick: u64, now: Millis, new_expiry: Option<Millis>) {
        e.last_use = tick;
        e.accessed = now;
        e.access_count = e.access_count.saturating_add(1);
        if let Some(x) = new_expiry {
            e.expires = x;
        }
    }

    /// Restores persisted access state (replaying a journal `touch` record).
    ///
    /// Access records only move an entry forward: several processes buffer them and write
    /// them late, so one may land after a newer access or a renewal by another process. A
    /// record older than the entry itself (read before a re-put) is ignored, and the others
    /// never move access time, expiry or count back.
    pub fn restore_access(
        &mut self,
        id: EntryId,
        accessed: Millis,
        expires: Millis,
        access_count: u32,
    ) {
        if accessed < self.get(id).created_at() {
            return;
        }
        self.tick += 1;
        let tick = self.tick;
        self.modify(id, |e| {
            e.last_use = tick;
            e.accessed = e.accessed.max(accessed);
            e.expires = e.expires.max(expires);
            e.access_count = e.access_count.max(access_count);
        });
    }

    /// Sets the pin count.
    pub fn set_pins(&mut self, id: EntryId, pins: u32) {
        self.modify(id, |e| e.pins = pins);
    }

    /// A reader opened the entry: records the access (as [`Index::touch`]) and protects the
    /// entry from eviction until [`Index::end_read`], in one update of the orders. Returns the
    /// incarnation to hand back to `end_read`.
    pub fn begin_read(&mut self, id: EntryId, now: Millis, new_expiry: Option<Millis>) -> u32 {
        self.tick += 1;
        let tick = self.tick;
        self.modify(id, |e| {
            Self::accessed(e, tick, now, new_expiry);
            e.readers = e.readers.saturating_add(1);
        });
        self.get(id).incarnation
    }

    /// A reader of `key` opened at `incarnation` finished (ignored if the entry was replaced).
    pub fn end_read(&mut self, key: &Key, incarnation: u32) {
        if let Some(id) = self.find(key)
            && self.get(id).incarnation == incarnation
        {
            self.modify(id, |e| {
                e.readers = e.readers.saturating_sub(1);
                if e.readers == 0 {
                    e.parked = false;
                }
            });
        }
    }

    /// Marks an entry as corrupted: it keeps its key (answering `Corrupted`) but no bytes.
    pub fn quarantine(&mut self, id: EntryId) {
        self.modify(id, |e| {
            e.quarantined = true;
            e.size = 0;
        });
    }

    fn modify(&mut self, id: EntryId, f: impl FnOnce(&mut Entry)) {
        // The policy needs the fields the entry was filed under; a copy is 104 bytes (SHA-256).
        let old = self.get(id).clone();
        let e = self.slots[id.0 as usize].as_mut().expect("live entry id");
        f(e);
        let (new_expires, new_size) = (e.expires, e.size);
        self.bytes = self.bytes.wrapping_sub(old.size).wrapping_add(new_size);
        if self.bulk {
            return;
        }
        if old.expires != new_expires {
            if old.expires != u64::MAX {
                self.expiry.remove(&(old.expires, id));
            }
            if new_expires != u64::MAX {
                self.expiry.insert((new_expires, id));
            }
        }
        let e = self.slots[id.0 as usize].as_ref().expect("live entry id");
        // Evictable bytes follow candidacy; the policy follows filing (which ignores readers).
        if old.is_candidate() {
            self.candidate_bytes = self.candidate_bytes.wrapping_sub(old.size);
        }
        if e.is_candidate() {
            self.candidate_bytes = self.candidate_bytes.wrapping_add(e.size);
        }
        match (old.is_filed(), e.is_filed()) {
            (true, true) => self.policy.update(id, &old, e),
            (true, false) => self.policy.remove(id, &old),
            (false, true) => self.policy.insert(id, e),
            (false, false) => {}
        }
    }

    fn enter_policy(&mut self, id: EntryId) {
        if self.bulk {
            return;
        }
        let e = self.slots[id.0 as usize].as_ref().expect("live entry id");
        if e.is_candidate() {
            self.candidate_bytes = self.candidate_bytes.wrapping_add(e.size);
        }
        self.policy.insert(id, e);
    }

    fn leave_policy(&mut self, id: EntryId) {
        if self.bulk {
            return;
        }
        let e = self.slots[id.0 as usize].as_ref().expect("live entry id");
        if e.is_candidate() {
            self.candidate_bytes = self.candidate_bytes.wrapping_sub(e.size);
        }
        self.policy.remove(id, e);
    }

    fn add_referrer(&mut self, key: &Key, delta: i32) {
        match self.find(key) {
            Some(id) => self.modify(id, |e| {
                e.referrers = e.referrers.saturating_add_signed(delta)
            }),
            None => {
                let count = self.pending_referrers.entry(key.clone()).or_default();
                *count = count.saturating_add_signed(delta);
                if *count == 0 {
                    self.pending_referrers.remove(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
