use super::*;
use crate::digest::Digest;
use crate::eviction::{LruPolicy, SizePolicy};

fn key(kind: Kind, n: u8) -> Key {
    Key {
        kind,
        digest: Digest::Sha256([n; 32]),
    }
}

fn new(kind: Kind, n: u8, size: u64, expires: Millis) -> NewEntry {
    NewEntry {
        key: key(kind, n),
        size,
        created: 0,
        accessed: 0,
        expires,
        access_count: 0,
        pins: 0,
        media_type: None,
        quarantined: false,
    }
}

#[test]
fn lookups_survive_slot_reuse() {
    let mut idx = Index::new(Box::new(LruPolicy::default()));
    let a = idx.insert(new(Kind::Blob, 1, 10, u64::MAX), vec![]);
    idx.insert(new(Kind::Blob, 2, 20, u64::MAX), vec![]);
    idx.remove(a);
    let c = idx.insert(new(Kind::Manifest, 1, 5, u64::MAX), vec![]);
    assert_eq!(c, a, "slot reused");
    assert_eq!(idx.find(&key(Kind::Blob, 1)), None);
    assert_eq!(idx.find(&key(Kind::Manifest, 1)), Some(c));
    assert_eq!(idx.bytes(), 25);
    assert_eq!(
        idx.counts(),
        KindCounts {
            manifests: 1,
            blobs: 1
        }
    );
}

#[test]
fn reinserting_a_key_replaces_it_without_leaking_bytes() {
    // The seed deadlocked on re-put; here it must simply replace.
    let mut idx = Index::new(Box::new(LruPolicy::default()));
    for _ in 0..3 {
        idx.insert(new(Kind::Blob, 1, 10, u64::MAX), vec![]);
    }
    assert_eq!(idx.len(), 1);
    assert_eq!(idx.bytes(), 10);
    assert_eq!(idx.candidate_bytes(), 10);
}

#[test]
fn lru_order_follows_touches() {
    let mut idx = Index::new(Box::new(LruPolicy::default()));
    let a = idx.insert(new(Kind::Blob, 1, 1, u64::MAX), vec![]);
    let b = idx.insert(new(Kind::Blob, 2, 1, u64::MAX), vec![]);
    assert_eq!(idx.next_victim(0), Some(a));
    idx.touch(a, 0, None);
    assert_eq!(idx.next_victim(0), Some(b));
}

#[test]
fn pins_readers_and_references_withdraw_candidates() {
    let mut idx = Index::new(Box::new(SizePolicy::default()));
    let blob = idx.insert(new(Kind::Blob, 1, 100, u64::MAX), vec![]);
    idx.set_pins(blob, 1);
    assert_eq!(idx.next_victim(0), None);
    assert_eq!(idx.candidate_bytes(), 0);
    idx.set_pins(blob, 0);
    let inc = idx.begin_read(blob, 0, None);
    assert_eq!(idx.next_victim(0), None);
    idx.end_read(&key(Kind::Blob, 1), inc);
    assert_eq!(idx.next_victim(0), Some(blob));

    // A manifest referencing a blob (present, and one not yet stored) protects both.
    let m = idx.insert(
        new(Kind::Manifest, 9, 1, u64::MAX),
        vec![key(Kind::Blob, 1), key(Kind::Blob, 2)],
    );
    assert_eq!(idx.next_victim(0), Some(m));
    let later = idx.insert(new(Kind::Blob, 2, 500, u64::MAX), vec![]);
    assert_eq!(idx.get(later).referrers(), 1);
    assert_eq!(
        idx.next_victim(0),
        Some(m),
        "referenced blobs are not candidates"
    );
    idx.remove(m);
    assert_eq!(
        idx.next_victim(0),
        Some(later),
        "largest first once released"
    );
    assert_eq!(idx.candidate_bytes(), 600);
}

#[test]
fn expiry_order_and_quarantine() {
    let mut idx = Index::new(Box::new(LruPolicy::default()));
    let a = idx.insert(new(Kind::Blob, 1, 7, 50), vec![]);
    idx.insert(new(Kind::Blob, 2, 7, 100), vec![]);
    idx.insert(new(Kind::Blob, 3, 7, u64::MAX), vec![]);
    assert_eq!(idx.expired(60).collect::<Vec<_>>(), vec![a]);
    assert_eq!(idx.expired_count(100), 2);
    idx.quarantine(a);
    assert_eq!(idx.bytes(), 14);
    assert!(idx.get(a).is_quarantined());
    assert_eq!(idx.candidate_bytes(), 14);
}

/// Drains an index in eviction order, the way the cache does: (victim, candidate bytes before).
fn eviction_order(idx: &mut Index, now: Millis) -> Vec<(EntryId, u64)> {
    let mut out = Vec::new();
    while let Some(id) = idx.next_victim(now) {
        out.push((id, idx.candidate_bytes()));
        idx.remove(id);
    }
    out
}

#[test]
fn bulk_loading_builds_the_same_orders_as_inserting_one_by_one() {
    // Snapshot-like input: blobs with and without expiry, a pinned one, a re-put key, and a
    // manifest whose references protect two blobs (one stored before it, one after).
    let mut entries: Vec<(NewEntry, Vec<Key>)> = (1..=40u8)
        .map(|n| {
            let expires = if n % 7 == 0 {
                u64::MAX
            } else {
                1_000 + u64::from(n) * 37 % 50
            };
            let mut e = new(Kind::Blob, n, u64::from(n) * 3, expires);
            e.pins = u32::from(n == 5);
            (e, vec![])
        })
        .collect();
    entries.insert(
        10,
        (
            new(Kind::Manifest, 1, 7, 1_020),
            vec![key(Kind::Blob, 3), key(Kind::Blob, 30)],
        ),
    );
    entries.push((new(Kind::Blob, 8, 99, 1_010), vec![]));
    let composite = || {
        crate::eviction::from_config(&crate::config::PolicyConfig::Composite(vec![
            (0, crate::config::PolicyConfig::Expired),
            (1, crate::config::PolicyConfig::Lru),
        ]))
    };
    for policy in [composite as fn() -> Box<dyn EvictionPolicy>, || {
        Box::new(SizePolicy::default())
    }] {
        let (mut one, mut bulk) = (Index::new(policy()), Index::new(policy()));
        bulk.begin_bulk();
        for (e, refs) in &entries {
            one.insert(e.clone(), refs.clone());
            bulk.insert(e.clone(), refs.clone());
        }
        bulk.finish_bulk();
        assert_eq!(bulk.candidate_bytes(), one.candidate_bytes());
        assert_eq!(bulk.bytes(), one.bytes());
        let now = 1_025;
        assert_eq!(
            bulk.expired(now).collect::<Vec<_>>(),
            one.expired(now).collect::<Vec<_>>()
        );
        assert_eq!(
            eviction_order(&mut bulk, now),
            eviction_order(&mut one, now)
        );
    }
}

#[test]
fn a_slab_slot_stays_small() {
    // The index memory budget (≤ 256 B per entry at 100k and 1M, see the memory benchmark)
    // assumes 104-byte slots; growing Entry needs that budget re-measured.
    assert!(std::mem::size_of::<Option<Entry>>() <= 104);
}

#[test]
fn a_sliding_expiry_refiles_the_entry_in_expiry_ordered_policies() {
    use crate::eviction::ExpiredPolicy;
    let mut idx = Index::new(Box::new(ExpiredPolicy::default()));
    let a = idx.insert(new(Kind::Blob, 1, 1, 10), vec![]);
    idx.insert(new(Kind::Blob, 2, 1, 20), vec![]);
    assert_eq!(idx.next_victim(30), Some(a));
    idx.touch(a, 5, Some(100)); // extended: now expires after the other one
    assert_ne!(idx.next_victim(30), Some(a));
    assert_eq!(idx.expired_count(30), 1);
    idx.touch(a, 6, None); // an access without extension changes nothing for this policy
    assert_eq!(idx.expired(200).collect::<Vec<_>>().len(), 2);
}

/// A policy that counts how often entries are filed and withdrawn, over an LRU order.
#[derive(Default)]
struct Counting {
    lru: LruPolicy,
    calls: std::sync::Arc<std::sync::Mutex<(usize, usize)>>,
}

impl EvictionPolicy for Counting {
    fn name(&self) -> String {
        "counting".into()
    }
    fn insert(&mut self, id: EntryId, entry: &Entry) {
        self.calls.lock().unwrap().0 += 1;
        self.lru.insert(id, entry);
    }
    fn remove(&mut self, id: EntryId, entry: &Entry) {
        self.calls.lock().unwrap().1 += 1;
        self.lru.remove(id, entry);
    }
    fn update(&mut self, id: EntryId, old: &Entry, new: &Entry) {
        self.lru.update(id, old, new);
    }
    fn next_victim(&self, now: Millis) -> Option<EntryId> {
        self.lru.next_victim(now)
    }
}

#[test]
fn an_entry_being_read_stays_filed_is_passed_over_for_eviction_and_comes_back_after() {
    let policy = Counting::default();
    let calls = policy.calls.clone();
    let mut idx = Index::new(Box::new(policy));
    let a = idx.insert(new(Kind::Blob, 1, 10, u64::MAX), vec![]);
    let b = idx.insert(new(Kind::Blob, 2, 20, u64::MAX), vec![]);
    assert_eq!(idx.candidate_bytes(), 30);
    *calls.lock().unwrap() = (0, 0);

    // A read refiles the entry once (as just used), and it is not evictable meanwhile.
    let inc = idx.begin_read(b, 0, None);
    assert_eq!(
        *calls.lock().unwrap(),
        (0, 0),
        "refiled in place, not withdrawn"
    );
    assert_eq!(
        idx.next_victim(0),
        Some(a),
        "b is the most recently used now"
    );
    assert_eq!(idx.candidate_bytes(), 10);
    idx.end_read(&key(Kind::Blob, 2), inc);
    assert_eq!(
        *calls.lock().unwrap(),
        (0, 0),
        "ending the read withdraws and files nothing"
    );
    assert_eq!(idx.candidate_bytes(), 30);

    // Nominated while being read: parked (withdrawn) and the next one is given instead.
    let inc = idx.begin_read(a, 0, None);
    idx.touch(b, 0, None);
    assert_eq!(idx.next_victim(0), Some(b));
    assert!(idx.get(a).parked);
    idx.remove(b);
    assert_eq!(idx.next_victim(0), None, "a parked entry is not nominated");
    assert_eq!(idx.candidate_bytes(), 0);
    idx.end_read(&key(Kind::Blob, 1), inc);
    assert!(!idx.get(a).parked);
    assert_eq!(
        idx.next_victim(0),
        Some(a),
        "filed again once its last reader is done"
    );
    assert_eq!(idx.candidate_bytes(), 10);

    // Removing an entry while it is read and parked leaves nothing behind in the policy.
    let inc = idx.begin_read(a, 0, None);
    assert_eq!(idx.next_victim(0), None);
    idx.remove(a);
    idx.end_read(&key(Kind::Blob, 1), inc);
    assert_eq!(idx.next_victim(0), None);
    assert_eq!(idx.candidate_bytes(), 0);
}
