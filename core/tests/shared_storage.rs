//! Several caches ("processes") sharing one storage, each calling `refresh` before every
//! operation as the native host does under its file lock: every one sees what the others
//! committed, through journal appends, compactions, closes and crashes.

mod common;

use common::{pattern, sha256};
use ocicache_core::storage::MemoryStorage;
use ocicache_core::{Cache, Config, Digest, Key, ManualClock, Reference};
use proptest::prelude::*;

fn open(storage: &MemoryStorage, clock: &ManualClock, config: &Config) -> Cache {
    Cache::builder(storage.clone(), clock.clone())
        .config(config.clone())
        .open()
        .expect("open")
}

/// Entries (key, size, pins, quarantined) and tags (reference, digest, invalidated, history).
type SharedState = (
    Vec<(Key, u64, u32, bool)>,
    Vec<(String, String, bool, usize)>,
);

/// What every process must agree on: entries (not their advisory access times) and tags.
fn state(cache: &Cache) -> SharedState {
    let mut entries: Vec<_> = cache
        .contents()
        .into_iter()
        .map(|e| {
            let key = match e.kind {
                ocicache_core::Kind::Blob => Key::blob(e.digest),
                ocicache_core::Kind::Manifest => Key::manifest(e.digest),
            };
            (key, e.size, e.pins, e.quarantined)
        })
        .collect();
    entries.sort_by_key(|e| e.0.to_string());
    let mut tags: Vec<_> = cache
        .tags()
        .into_iter()
        .map(|t| {
            let r: Reference = t.reference.parse().expect("canonical reference parses");
            let history = cache.tag_history(&r).expect("history").len();
            (t.reference, t.digest.to_string(), t.invalidated, history)
        })
        .collect();
    tags.sort();
    (entries, tags)
}

fn small_config() -> Config {
    Config {
        // Compact often, so that processes must reload after each other's compactions.
        compaction_min_records: 6,
        ..Config::default()
    }
}

#[test]
fn appends_by_one_process_are_seen_by_another() {
    let (storage, clock) = (MemoryStorage::new(), ManualClock::new(1_000));
    let config = Config::default();
    let mut a = open(&storage, &clock, &config);
    let mut b = open(&storage, &clock, &config);
    assert!(!b.refresh().unwrap(), "nothing changed yet");

    let digest = a.put_blob(None, b"from a").unwrap();
    let nginx: Reference = "nginx:1.25".parse().unwrap();
    a.put_tag(&nginx, &digest).unwrap();
    a.pin(&Key::blob(digest.clone())).unwrap();
    assert!(!b.has_blob(&digest));
    assert!(b.refresh().unwrap());
    assert!(!b.refresh().unwrap(), "a second refresh finds nothing new");
    assert_eq!(b.get_blob(&digest).unwrap(), b"from a");
    assert_eq!(b.get_tag(&nginx).unwrap().digest, digest);
    assert_eq!(state(&a), state(&b));

    // And back: b deletes, a sees it.
    assert!(b.delete_tag(&nginx).unwrap());
    b.unpin(&Key::blob(digest.clone())).unwrap();
    assert!(b.delete_blob(&digest).unwrap());
    assert!(a.refresh().unwrap());
    assert!(!a.has_blob(&digest));
    assert!(!a.has_tag(&nginx));
    assert_eq!(state(&a), state(&b));
}

#[test]
fn a_compaction_by_one_process_makes_the_other_reload() {
    let (storage, clock) = (MemoryStorage::new(), ManualClock::new(1_000));
    let config = Config::default();
    let mut a = open(&storage, &clock, &config);
    let mut b = open(&storage, &clock, &config);
    let first = a.put_blob(None, b"one").unwrap();
    b.refresh().unwrap();
    // Two compactions in a row: the journal b knows is gone, and so is the next one.
    a.cleanup().unwrap();
    let second = a.put_blob(None, b"two").unwrap();
    a.cleanup().unwrap();
    assert!(b.refresh().unwrap());
    assert!(b.has_blob(&first) && b.has_blob(&second));
    // b appends to the new generation; a, which compacted it, sees that too.
    let third = b.put_blob(None, b"three").unwrap();
    assert!(a.refresh().unwrap());
    assert!(a.has_blob(&third));
    assert_eq!(state(&a), state(&b));
    // A fresh open agrees with both.
    a.close().unwrap();
    let c = open(&storage, &clock, &config);
    assert_eq!(state(&c), state(&b));
}

#[test]
fn a_torn_append_by_a_crashed_process_is_cut_before_the_next_append() {
    let (storage, clock) = (MemoryStorage::new(), ManualClock::new(1_000));
    let config = Config::default();
    let mut a = open(&storage, &clock, &config);
    let kept = a.put_blob(None, b"kept").unwrap();
    // A process died half-way through an append: a partial frame ends the journal.
    let journal = storage
        .paths()
        .into_iter()
        .find(|p| p.starts_with("index/journal-"))
        .expect("journal exists");
    let mut bytes = storage.get(&journal).unwrap();
    bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3]);
    storage.put(&journal, &bytes);

    assert!(!a.refresh().unwrap(), "a torn tail changes no record");
    // A tag lives only in the journal (a blob would be re-adopted from its file anyway).
    let tag: Reference = "app:after".parse().unwrap();
    a.put_tag(&tag, &kept).unwrap();
    drop(a); // a crash, too: no clean close
    let c = open(&storage, &clock, &config);
    assert!(c.has_blob(&kept));
    assert!(
        c.has_tag(&tag),
        "what follows a torn record must not be lost"
    );
}

#[test]
fn a_process_opening_alongside_keeps_the_others_view_valid() {
    let (storage, clock) = (MemoryStorage::new(), ManualClock::new(1_000));
    let config = Config::default();
    let mut a = open(&storage, &clock, &config);
    let d = a.put_blob(None, b"before b opened").unwrap();
    drop(a.flush());
    // b's open may compact (it does after an unclean shutdown of nobody): a must follow.
    let mut b = open(&storage, &clock, &config);
    let e = b.put_blob(None, b"after b opened").unwrap();
    a.refresh().unwrap();
    assert!(a.has_blob(&d) && a.has_blob(&e));
    assert_eq!(state(&a), state(&b));
}

#[derive(Debug, Clone)]
enum Op {
    PutBlob(u8),
    DeleteBlob(u8),
    Pin(u8),
    Unpin(u8),
    PutTag(u8, u8),
    InvalidateTag(u8),
    DeleteTag(u8),
    Cleanup,
    Reopen,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u8>().prop_map(|s| Op::PutBlob(s % 12)),
        2 => any::<u8>().prop_map(|s| Op::DeleteBlob(s % 12)),
        1 => any::<u8>().prop_map(|s| Op::Pin(s % 12)),
        1 => any::<u8>().prop_map(|s| Op::Unpin(s % 12)),
        3 => (any::<u8>(), any::<u8>()).prop_map(|(r, s)| Op::PutTag(r % 4, s % 12)),
        1 => any::<u8>().prop_map(|r| Op::InvalidateTag(r % 4)),
        1 => any::<u8>().prop_map(|r| Op::DeleteTag(r % 4)),
        1 => Just(Op::Cleanup),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

fn blob(seed: u8) -> Vec<u8> {
    pattern(u64::from(seed) + 1, 40 + usize::from(seed))
}

fn reference(r: u8) -> Reference {
    format!("registry.example:5000/team/app:v{r}")
        .parse()
        .unwrap()
}

fn apply(cache: &mut Option<Cache>, op: &Op, storage: &MemoryStorage, clock: &ManualClock) {
    let config = small_config();
    let c = cache.as_mut().expect("open");
    let digest = |s: u8| -> Digest { sha256(&blob(s)) };
    match op {
        Op::PutBlob(s) => {
            c.put_blob(None, &blob(*s)).unwrap();
        }
        Op::DeleteBlob(s) => {
            c.delete_blob(&digest(*s)).unwrap();
        }
        Op::Pin(s) => {
            let _ = c.pin(&Key::blob(digest(*s)));
        }
        Op::Unpin(s) => {
            let _ = c.unpin(&Key::blob(digest(*s)));
        }
        Op::PutTag(r, s) => {
            c.put_tag(&reference(*r), &digest(*s)).unwrap();
        }
        Op::InvalidateTag(r) => {
            c.invalidate_tag(&reference(*r)).unwrap();
        }
        Op::DeleteTag(r) => {
            c.delete_tag(&reference(*r)).unwrap();
        }
        Op::Cleanup => {
            c.cleanup().unwrap();
        }
        Op::Reopen => {
            cache.take().unwrap().close().unwrap();
            *cache = Some(open(storage, clock, &config));
        }
        Op::Crash => {
            drop(cache.take());
            *cache = Some(open(storage, clock, &config));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Random operations spread over two processes: after each one, both agree once they
    /// refresh, and a fresh open at the end agrees with them.
    #[test]
    fn two_processes_agree(steps in prop::collection::vec((any::<bool>(), op()), 1..40)) {
        let (storage, clock) = (MemoryStorage::new(), ManualClock::new(1_000));
        let config = small_config();
        let mut procs = [Some(open(&storage, &clock, &config)), Some(open(&storage, &clock, &config))];
        for (which, op) in &steps {
            let (p, q) = if *which { (0, 1) } else { (1, 0) };
            procs[p].as_mut().unwrap().refresh().unwrap();
            apply(&mut procs[p], op, &storage, &clock);
            clock.advance(10);
            procs[q].as_mut().unwrap().refresh().unwrap();
            let (sp, sq) = (state(procs[p].as_ref().unwrap()), state(procs[q].as_ref().unwrap()));
            prop_assert_eq!(sp, sq, "after {:?}", op);
        }
        let expected = state(procs[0].as_ref().unwrap());
        for p in &mut procs {
            p.take().unwrap().close().unwrap();
        }
        let fresh = open(&storage, &clock, &config);
        prop_assert_eq!(state(&fresh), expected);
        prop_assert_eq!(storage.temp_count(), 0);
    }
}
