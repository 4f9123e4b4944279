//! Model-based property test: random sequences of cache operations, checked step by step
//! against a simple reference model.
//!
//! Operations: blob puts (one-shot, streamed with or without announced digest and size, with a
//! wrong digest), manifest puts (image manifests referencing blobs, an index referencing
//! manifests), gets, deletes, pins, tag puts / resolutions / invalidations / removals, clock
//! advances, `clear_expired`, `cleanup`, `repair`, a blob reader kept open across operations,
//! reopen (a new cache over the same storage and clock, after a flush or after `close`), a
//! crash (dropped without flush or close; perhaps dying while writing its access records out,
//! torn, and perhaps dying again during the next open, at any storage call), a crash in the
//! middle of a put or a delete, and damage to a stored file. The cap is small, so eviction and `Full` happen. Each run picks an eviction
//! policy (expired-then-LRU, LRU, size, TTL), `sliding_ttl` and `verify_reads` (without it,
//! no file is damaged: damaged bytes are then served by design).
//!
//! The model knows which entries exist (with expiry, pins, last use, access counts, damage and
//! quarantine), which tags exist (digest, freshness, invalidation, history) and the pool of
//! contents. It predicts every answer exactly, including when a put fails with `Full`. Which
//! entries an eviction takes is left to the cache, but the model checks the choice: victims are
//! eviction candidates (not pinned, not being read, not referenced by a cached manifest, not
//! quarantined), in the policy's order (entries it cannot tell apart in any order), and eviction
//! stops as soon as the low watermark is reached. Since the model tracks last use across
//! reopens, this also checks that LRU order survives a flush and reopen. A crash may lose
//! access records not written yet: only those (access times and counts, sliding expiries, LRU
//! order among them) may change, never anything an operation returned `Ok` for; the operation
//! a crash cuts leaves its entry as before or as after it (a put may also have evicted), and
//! the next open indexes exactly the files stored.
//!
//! After every step: a whole-object get never returns wrong bytes (a streamed read of a damaged
//! file may hand out early chunks but never its final one), `size() <= max_bytes`, the listed
//! sizes add up to `stats().total_size`, every listed entry agrees with the model field by field,
//! storage holds exactly one file (with exactly the right bytes, unless the test damaged it) per
//! non-quarantined entry and nothing outside the layout, no temp is left, and a reopen answers
//! exactly as before.
//!
//! `PROPTEST_CASES` (default 256) and `PROPTEST_RNG_SEED` (default: a fixed seed) are honored.

mod common;
use common::{Plug, pattern, sha256};
use ocicache_core::storage::{Fault, MemoryStorage};
use ocicache_core::{
    BlobReader, Cache, Clock, Config, Digest, EntryInfo, ErrorKind, Key, Kind, ManualClock,
    PolicyConfig, Reference, Resolution,
};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use std::collections::{BTreeMap, BTreeSet};

const CAP: u64 = 6_000;
const HIGH: u64 = CAP * 95 / 100;
const LOW: u64 = CAP * 85 / 100;
const TTL: u64 = 10_000;
const TAG_TTL: u64 = 4_000;
const MAX_HISTORY: usize = 10;
const BLOBS: usize = 6;
const TAGS: [&str; 3] = [
    "example.com/app:1",
    "example.com/app:2",
    "localhost:5000/team/svc:latest",
];

/// The eviction policies the model predicts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Policy {
    /// The default: expired first, then least recently used.
    ExpiredThenLru,
    Lru,
    /// Expired first, then the largest.
    Size,
    /// Soonest to expire first.
    Ttl,
}

/// The settings a run varies.
#[derive(Debug, Clone, Copy)]
struct Variant {
    policy: Policy,
    sliding_ttl: bool,
    verify_reads: bool,
}

impl Default for Variant {
    fn default() -> Variant {
        Variant {
            policy: Policy::ExpiredThenLru,
            sliding_ttl: false,
            verify_reads: true,
        }
    }
}

fn variant_strategy() -> impl Strategy<Value = Variant> {
    (
        prop_oneof![
            Just(Policy::ExpiredThenLru),
            Just(Policy::Lru),
            Just(Policy::Size),
            Just(Policy::Ttl)
        ],
        any::<bool>(),
        prop_oneof![3 => Just(true), 1 => Just(false)],
    )
        .prop_map(|(policy, sliding_ttl, verify_reads)| Variant {
            policy,
            sliding_ttl,
            verify_reads,
        })
}

fn config(variant: &Variant) -> Config {
    Config {
        max_bytes: CAP,
        default_ttl_ms: TTL,
        tag_ttl_ms: TAG_TTL,
        max_tag_history: MAX_HISTORY as u32,
        compaction_min_records: 16,
        sliding_ttl: variant.sliding_ttl,
        verify_reads: variant.verify_reads,
        eviction: match variant.policy {
            Policy::ExpiredThenLru => Config::default().eviction,
            Policy::Lru => PolicyConfig::Lru,
            Policy::Size => PolicyConfig::Size,
            Policy::Ttl => PolicyConfig::Ttl,
        },
        ..Config::default()
    }
}

/// The contents operations choose from: 6 blobs, 3 image manifests and an index.
struct Pool {
    keys: Vec<Key>,
    bytes: Vec<Vec<u8>>,
    /// Pool indices each manifest references.
    refs: Vec<Vec<usize>>,
}

impl Pool {
    fn new() -> Pool {
        let sizes = [150, 600, 1_200, 1_800, 2_600, 3_300];
        let mut keys = Vec::new();
        let mut bytes = Vec::new();
        let mut refs = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let b = pattern(i as u64 + 1, n);
            keys.push(Key::blob(sha256(&b)));
            bytes.push(b);
            refs.push(Vec::new());
        }
        let image = |config: usize, layers: &[usize], keys: &[Key]| {
            let layers: Vec<String> = layers
                .iter()
                .map(|&l| {
                    format!(
                        r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":1}}"#,
                        keys[l].digest
                    )
                })
                .collect();
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":1}},"layers":[{}]}}"#,
                keys[config].digest,
                layers.join(",")
            )
            .into_bytes()
        };
        for (config, layers) in [(0, vec![1]), (0, vec![2, 3]), (5, vec![4])] {
            let b = image(config, &layers, &keys);
            keys.push(Key::manifest(sha256(&b)));
            bytes.push(b);
            let mut r = vec![config];
            r.extend(layers);
            refs.push(r);
        }
        let children: Vec<String> = [6, 7]
            .iter()
            .map(|&m: &usize| {
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":1}}"#,
                    keys[m].digest
                )
            })
            .collect();
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
            children.join(",")
        )
        .into_bytes();
        keys.push(Key::manifest(sha256(&index)));
        bytes.push(index);
        refs.push(vec![6, 7]);
        Pool { keys, bytes, refs }
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn size(&self, k: usize) -> u64 {
        self.bytes[k].len() as u64
    }

    fn path(&self, k: usize) -> String {
        let key = &self.keys[k];
        let dir = match key.kind {
            Kind::Blob => "blobs",
            Kind::Manifest => "manifests",
        };
        format!("{dir}/sha256/{}", key.digest.hex())
    }

    fn index_of(&self, kind: Kind, digest: &Digest) -> usize {
        self.keys
            .iter()
            .position(|k| k.kind == kind && &k.digest == digest)
            .unwrap_or_else(|| panic!("{kind:?} {digest} is not from the pool"))
    }
}

#[derive(Debug, Clone, Copy)]
enum PutHow {
    OneShot,
    /// Streamed in chunks of this size, announcing digest and size.
    Announced(usize),
    /// Streamed in chunks of this size, announcing nothing.
    Anonymous(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Put(usize, PutHow),
    PutWrongDigest(usize, usize),
    Get(usize),
    Delete(usize),
    Pin(usize),
    Unpin(usize),
    PutTag(usize, usize),
    ResolveTag(usize),
    InvalidateTag(usize),
    DeleteTag(usize),
    Advance(u64),
    ClearExpired,
    /// A new cache over the same storage and clock, after a flush; with `true`, after `close`
    /// (a clean shutdown: the next open trusts the index instead of walking the files).
    Reopen(bool),
    /// Damages one byte (at an offset) of one intact stored file (chosen among them).
    Corrupt(usize, usize),
    /// Opens a reader on a blob (closing any open one first) and keeps it across operations.
    OpenReader(usize),
    /// Reads the next chunk of at most this many bytes from the open reader.
    Read(usize),
    CloseReader,
    /// The process dies: dropped without flush or close. With `torn`, it dies while writing
    /// its buffered access records out, `torn` bytes of them reaching the journal. With
    /// `in_open`, the next open dies too, after that many storage calls; then it opens again.
    Crash {
        torn: Option<usize>,
        in_open: Option<u64>,
    },
    /// The process dies during a put or a delete, after `after` storage calls of it (if it
    /// makes that many), and a new one opens.
    CrashIn {
        cut: Cut,
        after: u64,
    },
    /// `cleanup`: expired entries go, eviction down to the low watermark if above the high
    /// one, a flush and a compaction.
    Cleanup,
    /// `repair`: corrupted and quarantined entries go.
    Repair,
}

/// An operation a crash cuts.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// A one-shot put of a pool entry.
    Put(usize),
    Delete(usize),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let key = 0..10usize;
    let how = prop_oneof![
        Just(PutHow::OneShot),
        (1..2_000usize).prop_map(PutHow::Announced),
        (1..2_000usize).prop_map(PutHow::Anonymous),
    ];
    prop_oneof![
        8 => (key.clone(), how).prop_map(|(k, h)| Op::Put(k, h)),
        1 => (key.clone(), key.clone()).prop_map(|(k, o)| Op::PutWrongDigest(k, o)),
        8 => key.clone().prop_map(Op::Get),
        2 => key.clone().prop_map(Op::Delete),
        3 => key.clone().prop_map(Op::Pin),
        2 => key.clone().prop_map(Op::Unpin),
        2 => (0..TAGS.len(), key.clone()).prop_map(|(t, k)| Op::PutTag(t, k)),
        2 => (0..TAGS.len()).prop_map(Op::ResolveTag),
        1 => (0..TAGS.len()).prop_map(Op::InvalidateTag),
        1 => (0..TAGS.len()).prop_map(Op::DeleteTag),
        3 => prop_oneof![Just(0u64), 1..3_000u64, Just(TAG_TTL), Just(TTL)].prop_map(Op::Advance),
        1 => Just(Op::ClearExpired),
        2 => any::<bool>().prop_map(Op::Reopen),
        1 => (key.clone(), any::<usize>()).prop_map(|(k, o)| Op::Corrupt(k, o)),
        2 => (0..BLOBS).prop_map(Op::OpenReader),
        6 => (1..4_000usize).prop_map(Op::Read),
        1 => Just(Op::CloseReader),
        2 => (
            prop::option::of(1..60usize),
            prop::option::weighted(0.3, 0..40u64)
        )
            .prop_map(|(torn, in_open)| Op::Crash { torn, in_open }),
        2 => (0..10usize, any::<bool>(), 0..12u64).prop_map(|(k, put, after)| Op::CrashIn {
            cut: if put { Cut::Put(k) } else { Cut::Delete(k) },
            after,
        }),
        1 => Just(Op::Cleanup),
        1 => Just(Op::Repair),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct MEntry {
    created: u64,
    accessed: u64,
    expires: u64,
    access_count: u32,
    pins: u32,
    last_use: u64,
    /// The test damaged its file; the cache does not know yet.
    corrupt: bool,
    quarantined: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct MTag {
    digest: Digest,
    fresh_until: u64,
    invalidated: bool,
    history: Vec<Digest>,
}

#[derive(Default)]
struct Model {
    entries: BTreeMap<usize, MEntry>,
    tags: BTreeMap<usize, MTag>,
    tick: u64,
    /// The entry an open reader protects from eviction (until it closes, or the entry is
    /// replaced or removed).
    reading: Option<usize>,
}

impl Model {
    fn referrers(&self, pool: &Pool, k: usize) -> u32 {
        self.entries
            .keys()
            .filter(|&&m| pool.refs[m].contains(&k))
            .count() as u32
    }

    fn size(&self, pool: &Pool, k: usize) -> u64 {
        if self.entries[&k].quarantined {
            0
        } else {
            pool.size(k)
        }
    }

    fn used(&self, pool: &Pool) -> u64 {
        self.entries.keys().map(|&k| self.size(pool, k)).sum()
    }

    fn is_candidate(&self, pool: &Pool, k: usize) -> bool {
        let e = &self.entries[&k];
        e.pins == 0 && !e.quarantined && self.reading != Some(k) && self.referrers(pool, k) == 0
    }

    /// Bytes eviction could free if it ran to the end: all but pinned, read and quarantined
    /// entries and what they reference, transitively (evicting a manifest frees what it references).
    fn eventually_evictable(&self, pool: &Pool) -> u64 {
        let mut protected = BTreeSet::new();
        let mut stack: Vec<usize> = self
            .entries
            .iter()
            .filter(|(k, e)| e.pins > 0 || e.quarantined || self.reading == Some(**k))
            .map(|(&k, _)| k)
            .collect();
        while let Some(k) = stack.pop() {
            if protected.insert(k) {
                stack.extend(pool.refs[k].iter().filter(|r| self.entries.contains_key(r)));
            }
        }
        self.used(pool) - protected.iter().map(|&k| self.size(pool, k)).sum::<u64>()
    }

    fn candidates(&self, pool: &Pool) -> Vec<usize> {
        self.entries
            .keys()
            .copied()
            .filter(|&k| self.is_candidate(pool, k))
            .collect()
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }
}

/// What the model expects a put to do.
#[derive(Debug, PartialEq)]
enum PutOutcome {
    Stored,
    Full,
}

/// What a reopen must preserve: contents, tags (without lookup counts) and `has` per key.
type Observable = (
    Vec<EntryInfo>,
    Vec<(String, Digest, bool, Option<u64>)>,
    Vec<bool>,
);

struct Harness {
    pool: Pool,
    variant: Variant,
    storage: MemoryStorage,
    /// The cache's storage: `storage`, where a crash can be aimed at a storage call.
    plug: Plug,
    clock: ManualClock,
    cache: Cache,
    model: Model,
    reader: Option<OpenReader>,
}

/// A blob reader kept open across operations.
struct OpenReader {
    k: usize,
    reader: BlobReader,
    got: Vec<u8>,
    /// Some chunk handed out differed from the blob's bytes (its file was damaged).
    damaged: bool,
}

fn open(plug: &Plug, clock: &ManualClock, variant: &Variant) -> Cache {
    Cache::builder(plug.clone(), clock.clone())
        .config(config(variant))
        .open()
        .expect("open")
}

impl Harness {
    fn new(variant: Variant) -> Harness {
        let storage = MemoryStorage::new();
        let plug = Plug::new(&storage);
        let clock = ManualClock::new(1_000_000);
        let cache = open(&plug, &clock, &variant);
        Harness {
            pool: Pool::new(),
            variant,
            plug,
            storage,
            clock,
            cache,
            model: Model::default(),
            reader: None,
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now();
        match *op {
            Op::Put(k, how) => self.put(k, how),
            Op::PutWrongDigest(k, other) => {
                let bytes = self.pool.bytes[k].clone();
                let wrong = if other == k {
                    sha256(b"nothing in the pool")
                } else {
                    self.pool.keys[other].digest.clone()
                };
                let err = match self.pool.keys[k].kind {
                    Kind::Blob => self.cache.put_blob(Some(&wrong), &bytes).unwrap_err(),
                    Kind::Manifest => self.cache.put_manifest(&wrong, &bytes, None).unwrap_err(),
                };
                assert_eq!(err.kind(), ErrorKind::DigestMismatch);
            }
            Op::Get(k) => self.get(k),
            Op::Delete(k) => {
                if self.model.reading == Some(k) {
                    self.model.reading = None;
                }
                let existed = self.model.entries.remove(&k).is_some();
                assert_eq!(self.cache.delete(&self.pool.keys[k]).unwrap(), existed);
            }
            Op::Pin(k) => {
                let got = self.cache.pin(&self.pool.keys[k]);
                match self.model.entries.get_mut(&k) {
                    None => assert_eq!(got.unwrap_err().kind(), ErrorKind::NotFound),
                    Some(e) if e.quarantined => {
                        assert_eq!(got.unwrap_err().kind(), ErrorKind::Corrupted)
                    }
                    Some(e) => {
                        e.pins += 1;
                        assert_eq!(got.unwrap(), e.pins);
                    }
                }
            }
            Op::Unpin(k) => {
                let got = self.cache.unpin(&self.pool.keys[k]);
                match self.model.entries.get_mut(&k) {
                    None => assert_eq!(got.unwrap_err().kind(), ErrorKind::NotFound),
                    Some(e) => {
                        e.pins = e.pins.saturating_sub(1);
                        assert_eq!(got.unwrap(), e.pins);
                    }
                }
            }
            Op::PutTag(t, k) => {
                let digest = self.pool.keys[k].digest.clone();
                let update = self.cache.put_tag(&reference(t), &digest).unwrap();
                let previous = self.model.tags.get(&t).map(|m| m.digest.clone());
                assert_eq!(update.previous, previous);
                assert_eq!(
                    update.moved,
                    previous.as_ref().is_some_and(|p| *p != digest)
                );
                let tag = self.model.tags.entry(t).or_insert_with(|| MTag {
                    digest: digest.clone(),
                    fresh_until: 0,
                    invalidated: false,
                    history: Vec::new(),
                });
                if update.moved || tag.history.is_empty() {
                    tag.history.push(digest.clone());
                    if tag.history.len() > MAX_HISTORY {
                        tag.history.remove(0);
                    }
                }
                tag.digest = digest;
                tag.fresh_until = now + TAG_TTL;
                tag.invalidated = false;
            }
            Op::ResolveTag(t) => {
                let want = match self.model.tags.get(&t) {
                    None => Resolution::Unknown,
                    Some(m) if m.invalidated => Resolution::Unknown,
                    Some(m) if m.fresh_until <= now => Resolution::Stale(m.digest.clone()),
                    Some(m) => Resolution::Fresh(m.digest.clone()),
                };
                assert_eq!(self.cache.resolve_tag(&reference(t)).unwrap(), want);
                let got = self.cache.get_tag(&reference(t));
                match self.model.tags.get(&t) {
                    None => assert_eq!(got.unwrap_err().kind(), ErrorKind::NotFound),
                    Some(m) if m.invalidated => {
                        assert_eq!(got.unwrap_err().kind(), ErrorKind::Invalidated)
                    }
                    Some(m) if m.fresh_until <= now => {
                        assert_eq!(got.unwrap_err().kind(), ErrorKind::Expired)
                    }
                    Some(m) => assert_eq!(got.unwrap().digest, m.digest),
                }
            }
            Op::InvalidateTag(t) => {
                let known = match self.model.tags.get_mut(&t) {
                    Some(m) => {
                        m.invalidated = true;
                        true
                    }
                    None => false,
                };
                assert_eq!(self.cache.invalidate_tag(&reference(t)).unwrap(), known);
            }
            Op::DeleteTag(t) => {
                let known = self.model.tags.remove(&t).is_some();
                assert_eq!(self.cache.delete_tag(&reference(t)).unwrap(), known);
            }
            Op::Advance(ms) => self.clock.advance(ms),
            Op::ClearExpired => {
                let victims = self.take_expired();
                let n = self.cache.clear_expired().unwrap();
                assert_eq!(n, victims.len() as u64, "expected victims {victims:?}");
            }
            Op::Reopen(clean) => self.reopen(clean),
            Op::Crash { torn, in_open } => self.crash(torn, in_open),
            Op::CrashIn { cut, after } => self.crash_in(cut, after),
            Op::Cleanup => self.cleanup(),
            Op::Repair => self.repair(),
            Op::OpenReader(k) => self.open_reader(k),
            Op::Read(n) => self.read(n),
            Op::CloseReader => self.close_reader(),
            // Without `verify_reads`, damaged bytes are served as they are (by design): the
            // model then damages nothing.
            Op::Corrupt(..) if !self.variant.verify_reads => {}
            Op::Corrupt(pick, offset) => {
                // Damages the `pick`-th intact stored file. Damage under an open reader may fall
                // before or after its position, so the file being read is left alone.
                let being_read = self.reader.as_ref().map(|r| r.k);
                let intact: Vec<usize> = self
                    .model
                    .entries
                    .iter()
                    .filter(|(k, e)| !e.quarantined && !e.corrupt && being_read != Some(**k))
                    .map(|(&k, _)| k)
                    .collect();
                if !intact.is_empty() {
                    let k = intact[pick % intact.len()];
                    let e = self.model.entries.get_mut(&k).unwrap();
                    let path = self.pool.path(k);
                    let len = self.pool.bytes[k].len();
                    assert!(self.storage.corrupt(&path, offset % len));
                    e.corrupt = true;
                }
            }
        }
    }

    fn put(&mut self, k: usize, how: PutHow) {
        let now = self.now();
        let incoming = self.pool.size(k);
        let used = self.model.used(&self.pool);
        let existing = self.model.entries.get(&k).is_some_and(|e| !e.quarantined);
        let evictable = self.model.eventually_evictable(&self.pool);
        let (expected, may_evict) = if existing || used + incoming <= HIGH {
            (PutOutcome::Stored, false)
        } else if used - evictable + incoming > CAP {
            (PutOutcome::Full, false)
        } else {
            (PutOutcome::Stored, true)
        };

        let bytes = self.pool.bytes[k].clone();
        let key = self.pool.keys[k].clone();
        let result = match (key.kind, how) {
            (Kind::Manifest, _) => self
                .cache
                .put_manifest(&key.digest, &bytes, None)
                .map(|_| key.digest.clone()),
            (Kind::Blob, PutHow::OneShot) => self.cache.put_blob(None, &bytes),
            (Kind::Blob, PutHow::Announced(chunk) | PutHow::Anonymous(chunk)) => {
                let (d, s) = match how {
                    PutHow::Announced(_) => (Some(&key.digest), Some(incoming)),
                    _ => (None, None),
                };
                // An announced size that cannot fit is refused before any byte is written.
                match self.cache.begin_blob(d, s) {
                    Err(e) => Err(e),
                    Ok(mut w) => {
                        for c in bytes.chunks(chunk) {
                            self.cache.write_blob(&mut w, c).unwrap();
                        }
                        self.cache.commit_blob(w)
                    }
                }
            }
        };
        let listed: BTreeSet<usize> = self
            .cache
            .contents()
            .iter()
            .map(|e| self.pool.index_of(e.kind, &e.digest))
            .collect();
        let removed: BTreeSet<usize> = self
            .model
            .entries
            .keys()
            .copied()
            .filter(|c| *c != k && !listed.contains(c))
            .collect();

        match expected {
            PutOutcome::Full => {
                assert_eq!(result.unwrap_err().kind(), ErrorKind::Full);
                assert!(
                    removed.is_empty(),
                    "evicted {removed:?} for an entry that cannot fit"
                );
                return;
            }
            PutOutcome::Stored => {
                let d = result.unwrap_or_else(|e| panic!("put of {k} failed: {e}"));
                assert_eq!(d, key.digest);
            }
        }
        if may_evict {
            self.check_evictions(incoming, used, &removed);
        } else {
            assert!(
                removed.is_empty(),
                "evicted {removed:?} below the high watermark"
            );
        }
        for r in &removed {
            self.model.entries.remove(r);
        }
        if self.model.reading == Some(k) {
            // The put replaced the entry: the reader no longer protects it.
            self.model.reading = None;
        }
        let tick = self.model.next_tick();
        let pins = self.model.entries.get(&k).map_or(0, |e| e.pins);
        self.model.entries.insert(
            k,
            MEntry {
                created: now,
                accessed: now,
                expires: now + TTL,
                access_count: 0,
                pins,
                last_use: tick,
                corrupt: false,
                quarantined: false,
            },
        );
    }

    /// Replays make-room against the model: the cache's victims must be exactly what the
    /// policy order yields — expired candidates first (earliest expiry), then least recently
    /// used — stopping as soon as usage plus the new entry is at the target. Evicting a manifest
    /// makes what it referenced a candidate. Candidates with equal rank (same expiry) may go in
    /// any order, so those orders are searched.
    fn check_evictions(&self, incoming: u64, used: u64, removed: &BTreeSet<usize>) {
        let sim = Model {
            entries: self.model.entries.clone(),
            tags: BTreeMap::new(),
            tick: 0,
            reading: self.model.reading,
        };
        self.check_evictions_from(sim, incoming, used, removed);
    }

    /// Checks that evicting `removed` from `sim` (using `used` bytes) to make room for
    /// `incoming` follows the policy.
    fn check_evictions_from(
        &self,
        sim: Model,
        incoming: u64,
        used: u64,
        removed: &BTreeSet<usize>,
    ) {
        // Down to the low watermark; an entry larger than that only needs room under the cap.
        let target = if incoming <= LOW { LOW } else { CAP };
        assert!(
            self.replay_eviction(sim, removed.clone(), used, incoming, target),
            "evictions {removed:?} do not follow the policy (used {used}, incoming {incoming})"
        );
    }

    fn replay_eviction(
        &self,
        sim: Model,
        left: BTreeSet<usize>,
        bytes: u64,
        incoming: u64,
        target: u64,
    ) -> bool {
        let now = self.now();
        if bytes + incoming <= target {
            return left.is_empty();
        }
        let candidates = sim.candidates(&self.pool);
        if candidates.is_empty() {
            return left.is_empty() && bytes + incoming <= CAP;
        }
        // The policy's next victim; entries it cannot tell apart form a group, any of which
        // may go first.
        let group_by = |key: &dyn Fn(usize) -> i128, among: &[usize]| -> Vec<usize> {
            let first = among.iter().map(|&c| key(c)).min();
            among
                .iter()
                .copied()
                .filter(|&c| Some(key(c)) == first)
                .collect()
        };
        let expires = |c: usize| i128::from(sim.entries[&c].expires);
        let last_use = |c: usize| i128::from(sim.entries[&c].last_use);
        let largest = |c: usize| -i128::from(sim.size(&self.pool, c));
        let expired: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|c| sim.entries[c].expires <= now)
            .collect();
        let group: Vec<usize> = match self.variant.policy {
            Policy::ExpiredThenLru if !expired.is_empty() => group_by(&expires, &expired),
            Policy::ExpiredThenLru | Policy::Lru => group_by(&last_use, &candidates),
            Policy::Size if !expired.is_empty() => group_by(&expires, &expired),
            Policy::Size => group_by(&largest, &candidates),
            Policy::Ttl => group_by(&expires, &candidates),
        };
        group.into_iter().filter(|v| left.contains(v)).any(|v| {
            let mut sim = Model {
                entries: sim.entries.clone(),
                tags: BTreeMap::new(),
                tick: 0,
                reading: sim.reading,
            };
            let mut left = left.clone();
            left.remove(&v);
            let freed = sim.size(&self.pool, v);
            sim.entries.remove(&v);
            self.replay_eviction(sim, left, bytes - freed, incoming, target)
        })
    }

    fn get(&mut self, k: usize) {
        let now = self.now();
        let key = self.pool.keys[k].clone();
        let result = match key.kind {
            Kind::Blob => self.cache.get_blob(&key.digest),
            Kind::Manifest => self.cache.get_manifest(&key.digest).map(|m| m.bytes),
        };
        // Never wrong bytes, whatever the model thinks.
        if let Ok(bytes) = &result {
            assert!(bytes == &self.pool.bytes[k], "wrong bytes served for {key}");
        }
        let Some(e) = self.model.entries.get_mut(&k) else {
            assert_eq!(result.unwrap_err().kind(), ErrorKind::NotFound);
            return;
        };
        if e.quarantined {
            assert_eq!(result.unwrap_err().kind(), ErrorKind::Corrupted);
        } else if e.expires <= now {
            assert_eq!(result.unwrap_err().kind(), ErrorKind::Expired);
        } else if e.corrupt {
            assert_eq!(result.unwrap_err().kind(), ErrorKind::Corrupted);
            if key.kind == Kind::Blob {
                // The read was under way (and counted) before the last chunk failed to verify.
                e.accessed = now;
                e.access_count += 1;
                if self.variant.sliding_ttl {
                    e.expires = now + TTL;
                }
            }
            e.corrupt = false;
            e.quarantined = true;
        } else {
            result.unwrap();
            self.model.tick += 1;
            e.last_use = self.model.tick;
            e.accessed = now;
            e.access_count += 1;
            if self.variant.sliding_ttl {
                e.expires = now + TTL;
            }
        }
    }

    fn open_reader(&mut self, k: usize) {
        self.close_reader();
        let now = self.now();
        let digest = self.pool.keys[k].digest.clone();
        let result = self.cache.open_blob(&digest);
        let Some(e) = self.model.entries.get_mut(&k) else {
            assert_eq!(result.err().unwrap().kind(), ErrorKind::NotFound);
            return;
        };
        if e.quarantined {
            assert_eq!(result.err().unwrap().kind(), ErrorKind::Corrupted);
        } else if e.expires <= now {
            assert_eq!(result.err().unwrap().kind(), ErrorKind::Expired);
        } else {
            let reader = result.unwrap_or_else(|e| panic!("open reader {k}: {e}"));
            assert_eq!(reader.size(), self.pool.size(k));
            self.model.tick += 1;
            e.last_use = self.model.tick;
            e.accessed = now;
            e.access_count += 1;
            if self.variant.sliding_ttl {
                e.expires = now + TTL;
            }
            self.model.reading = Some(k);
            self.reader = Some(OpenReader {
                k,
                reader,
                got: Vec::new(),
                damaged: false,
            });
        }
    }

    /// Streaming cannot verify before the end: a chunk of a damaged file may be handed out,
    /// but then the final chunk is never released — the read ends in `Corrupted`.
    fn read(&mut self, n: usize) {
        let Some(open) = self.reader.as_mut() else {
            return;
        };
        let k = open.k;
        let pool_bytes = &self.pool.bytes[k];
        let size = pool_bytes.len();
        let at = open.got.len();
        let want = n.min(size - at);
        // The reader reads the file at the blob's path, whatever became of the entry.
        let file = self.storage.get(&self.pool.path(k));
        let mut buf = vec![0u8; n];
        let result = self.cache.read_blob(&mut open.reader, &mut buf);
        match (result, file) {
            (Ok(0), _) => assert_eq!(at, size, "reader of {k} ended early"),
            (Ok(got), Some(file)) => {
                assert_eq!(got, want);
                let chunk = &buf[..got];
                assert!(
                    chunk == &file[at..at + got],
                    "reader of {k} misread its file"
                );
                open.damaged |= chunk != &pool_bytes[at..at + got];
                open.got.extend_from_slice(chunk);
                if at + got == size {
                    assert!(!open.damaged, "the final chunk of damaged {k} was released");
                }
            }
            (Ok(got), None) => panic!("reader of {k} got {got} bytes from no file"),
            (Err(e), None) => {
                assert_eq!(e.kind(), ErrorKind::NotFound, "reader of {k}: {e}");
                self.close_reader();
            }
            (Err(e), Some(file)) => {
                assert_eq!(e.kind(), ErrorKind::Corrupted, "reader of {k}: {e}");
                assert_eq!(at + want, size, "only the final chunk fails");
                assert!(
                    open.damaged || file[at..] != pool_bytes[at..],
                    "intact {k} failed to verify"
                );
                if self.model.reading == Some(k) {
                    // Still the entry it opened: quarantined.
                    let e = self.model.entries.get_mut(&k).unwrap();
                    e.corrupt = false;
                    e.quarantined = true;
                }
                self.close_reader();
            }
        }
    }

    fn close_reader(&mut self) {
        if let Some(open) = self.reader.take() {
            if self.model.reading == Some(open.k) {
                self.model.reading = None;
            }
            self.cache.close_blob(open.reader);
        }
    }

    fn observable(&mut self) -> Observable {
        let tags = self
            .cache
            .tags()
            .into_iter()
            .map(|t| (t.reference, t.digest, t.invalidated, t.fresh_until))
            .collect();
        let has = self.pool.keys.iter().map(|k| self.cache.has(k)).collect();
        (self.cache.contents(), tags, has)
    }

    fn reopen(&mut self, clean: bool) {
        self.close_reader();
        let before = self.observable();
        let fresh = Cache::builder(MemoryStorage::new(), self.clock.clone()).open();
        let old = std::mem::replace(&mut self.cache, fresh.expect("an empty cache"));
        if clean {
            old.close().unwrap();
        } else {
            let mut old = old;
            old.flush().unwrap();
        }
        self.cache = open(&self.plug, &self.clock, &self.variant);
        let report = self.cache.recovery_report().clone();
        assert!(!report.torn_tail && !report.snapshot_damaged, "{report:?}");
        // A clean close is trusted (the fast path); after a flush only, the open may trust
        // the index too if nothing changed since the last clean close.
        assert!(report.clean_shutdown || !clean, "{report:?}");
        assert_eq!(
            (
                report.temps_removed,
                report.orphans_adopted,
                report.orphans_removed,
                report.missing_dropped,
                report.evicted
            ),
            (0, 0, 0, 0, 0),
            "{report:?}"
        );
        let after = self.observable();
        assert_eq!(before, after, "a reopen changed the answers");
    }

    /// Removes from the model what `clear_expired` removes: expired candidates; removing an
    /// expired manifest makes the expired content it referenced a candidate too, so repeat
    /// until nothing is left.
    fn take_expired(&mut self) -> Vec<usize> {
        let now = self.now();
        let mut victims = Vec::new();
        loop {
            let pass: Vec<usize> = self
                .model
                .candidates(&self.pool)
                .into_iter()
                .filter(|k| self.model.entries[k].expires <= now)
                .collect();
            if pass.is_empty() {
                break;
            }
            for k in pass {
                self.model.entries.remove(&k);
                victims.push(k);
            }
        }
        victims
    }

    /// The process dies (no flush, no close; perhaps while writing its access records out),
    /// and a new one opens (perhaps dying in its open first, then opening again). Everything
    /// that returned `Ok` is there; only access records not written yet may be lost: the
    /// model then takes the access times and counts (and sliding expiries) the new process
    /// found, each no later than before, and LRU order by access time (ties in any order).
    fn crash(&mut self, torn: Option<usize>, in_open: Option<u64>) {
        self.close_reader();
        let (contents, tags, has) = self.observable();
        if let Some(torn_bytes) = torn {
            // Writing the buffered accesses out is the process's last call (if it has any).
            self.plug.arm(Some(Fault::CrashAfter { n: 0, torn_bytes }));
            // Fails if it had accesses to write (and dies writing them), or does nothing.
            let _ = self.cache.flush();
        }
        self.plug
            .arm(in_open.map(|n| Fault::CrashAfter { n, torn_bytes: 0 }));
        let first = Cache::builder(self.plug.clone(), self.clock.clone())
            .config(config(&self.variant))
            .open();
        let dead_in_open = self.plug.crashed();
        self.plug.arm(None);
        // The old process is gone (dropped as it was) once the new one is in place.
        self.cache = match first {
            Ok(cache) if !dead_in_open => cache,
            Ok(_) | Err(_) => open(&self.plug, &self.clock, &self.variant),
        };
        let report = self.cache.recovery_report().clone();
        // (It may trust the index, if nothing changed since a clean close: `check` compares
        // the stored files with the entries after every operation.)
        assert!(!report.snapshot_damaged, "{report:?}");
        assert_eq!(
            (
                report.orphans_adopted,
                report.orphans_removed,
                report.missing_dropped,
                report.evicted
            ),
            (0, 0, 0, 0),
            "{report:?}"
        );

        self.resync((contents, tags, has), None, 0);
    }

    /// The process dies in the middle of a put or a delete (after `after` of its storage
    /// calls), whatever it returned, and a new one opens. The entry cut may be either as
    /// before or as after the operation; a put may also have evicted candidates; the stored
    /// files must match the new process's entries exactly (`check`, after every operation).
    fn crash_in(&mut self, cut: Cut, after: u64) {
        self.close_reader();
        let before = self.observable();
        let at = self.now();
        self.plug.arm(Some(Fault::CrashAfter {
            n: after,
            torn_bytes: 0,
        }));
        let _ = match cut {
            Cut::Put(k) => {
                let (key, bytes) = (&self.pool.keys[k], &self.pool.bytes[k]);
                match key.kind {
                    Kind::Blob => self.cache.put_blob(None, bytes).map(drop),
                    Kind::Manifest => self.cache.put_manifest(&key.digest, bytes, None).map(drop),
                }
            }
            Cut::Delete(k) => self.cache.delete(&self.pool.keys[k]).map(drop),
        };
        self.plug.arm(None);
        self.cache = open(&self.plug, &self.clock, &self.variant);
        assert!(!self.cache.recovery_report().snapshot_damaged);
        self.resync(before, Some(cut), at);
    }

    /// After a crash: checks the new process's entries against what it had before (`was`),
    /// allowing only lost access records and the effects of the operation `cut` (at `at`),
    /// and takes the access fields (and the entries `cut` changed) into the model, ranking
    /// last uses by access time.
    fn resync(&mut self, was: Observable, cut: Option<Cut>, at: u64) {
        let (contents, tags, has) = was;
        let (now_contents, now_tags, now_has) = self.observable();
        assert_eq!(now_tags, tags, "a crash changed the tags");
        if let Some(cut) = cut {
            return self.resync_cut(&contents, &now_contents, cut, at);
        }
        assert_eq!(
            now_contents.len(),
            contents.len(),
            "a crash changed the entries"
        );
        for (a, b) in now_contents.iter().zip(&contents) {
            let what = format!("{:?} {} after a crash", a.kind, a.digest);
            let durable = |e: &EntryInfo| {
                let expires = (!self.variant.sliding_ttl).then_some(e.expires_at);
                (
                    e.kind,
                    e.digest.clone(),
                    e.size,
                    e.created_at,
                    expires,
                    e.pins,
                    e.referrers,
                    e.media_type.clone(),
                    e.quarantined,
                )
            };
            assert_eq!(durable(a), durable(b), "{what}");
            assert!(
                a.accessed_at <= b.accessed_at && a.accessed_at >= a.created_at,
                "{what}"
            );
            assert!(a.access_count <= b.access_count, "{what}");
            if self.variant.sliding_ttl {
                assert!(
                    a.expires_at <= b.expires_at && a.expires_at >= Some(a.created_at + TTL),
                    "{what}: expiry {:?}, was {:?}",
                    a.expires_at,
                    b.expires_at
                );
            }
        }
        if !self.variant.sliding_ttl {
            assert_eq!(now_has, has, "a crash changed what is servable");
        }
        // The model takes the access fields found, and ranks last uses by access time.
        let mut times: Vec<u64> = now_contents.iter().map(|e| e.accessed_at).collect();
        times.sort_unstable();
        times.dedup();
        for e in &now_contents {
            let k = self.pool.index_of(e.kind, &e.digest);
            let m = self.model.entries.get_mut(&k).unwrap();
            m.accessed = e.accessed_at;
            m.access_count = e.access_count;
            m.expires = e.expires_at.unwrap();
            m.last_use = times.binary_search(&e.accessed_at).unwrap() as u64 + 1;
        }
        self.model.tick = times.len() as u64;
    }

    /// [`Harness::resync`] after a crash that cut `cut`.
    fn resync_cut(&mut self, was: &[EntryInfo], now: &[EntryInfo], cut: Cut, at: u64) {
        let by_key = |list: &[EntryInfo]| -> BTreeMap<usize, EntryInfo> {
            list.iter()
                .map(|e| (self.pool.index_of(e.kind, &e.digest), e.clone()))
                .collect()
        };
        let (old, new) = (by_key(was), by_key(now));
        let keys: BTreeSet<usize> = old.keys().chain(new.keys()).copied().collect();
        for k in keys {
            let what = format!("entry {k} after a crash in {cut:?}");
            let put = matches!(cut, Cut::Put(c) if c == k);
            // A put lands as a new entry (or an adopted file): created at `at` or later.
            let fresh = |a: &EntryInfo, pins: u32| {
                a.created_at >= at && !a.quarantined && a.pins == pins && a.access_count == 0
            };
            match (old.get(&k), new.get(&k)) {
                (None, None) => {}
                (None, Some(a)) => assert!(put && fresh(a, 0), "{what}: appeared: {a:?}"),
                (Some(b), None) => {
                    let m = &self.model.entries[&k];
                    let evictable = m.pins == 0 && !m.quarantined;
                    assert!(
                        matches!(cut, Cut::Delete(c) if c == k)
                            || (matches!(cut, Cut::Put(_)) && evictable),
                        "{what}: gone: {b:?}"
                    );
                    self.model.entries.remove(&k);
                    continue;
                }
                (Some(b), Some(a)) => {
                    let same = (a.size, a.created_at, a.pins, a.quarantined)
                        == (b.size, b.created_at, b.pins, b.quarantined)
                        && a.accessed_at <= b.accessed_at
                        && a.access_count <= b.access_count;
                    assert!(
                        same || (put && fresh(a, b.pins)),
                        "{what}: was {b:?}, is {a:?}"
                    );
                }
            }
            let a = &new[&k];
            let path = self.pool.path(k);
            let intact = self
                .storage
                .get(&path)
                .is_some_and(|f| f == self.pool.bytes[k]);
            let m = self.model.entries.entry(k).or_insert(MEntry {
                created: a.created_at,
                accessed: a.accessed_at,
                expires: 0,
                access_count: 0,
                pins: a.pins,
                last_use: 0,
                corrupt: false,
                quarantined: a.quarantined,
            });
            m.created = a.created_at;
            m.accessed = a.accessed_at;
            m.expires = a.expires_at.unwrap();
            m.access_count = a.access_count;
            m.quarantined = a.quarantined;
            m.corrupt = !a.quarantined && !intact;
        }
        let mut times: Vec<u64> = now.iter().map(|e| e.accessed_at).collect();
        times.sort_unstable();
        times.dedup();
        for e in now {
            let k = self.pool.index_of(e.kind, &e.digest);
            self.model.entries.get_mut(&k).unwrap().last_use =
                times.binary_search(&e.accessed_at).unwrap() as u64 + 1;
        }
        self.model.tick = times.len() as u64;
    }

    /// `cleanup`: expired entries go (as with `clear_expired`), then eviction down to the low
    /// watermark if usage is above the high one.
    fn cleanup(&mut self) {
        let expired = self.take_expired();
        let expired_bytes: u64 = expired.iter().map(|&k| self.pool.size(k)).sum();
        let used = self.model.used(&self.pool);
        let report = self.cache.cleanup().unwrap();
        assert_eq!(
            report.expired_removed,
            expired.len() as u64,
            "expired {expired:?}"
        );
        let listed: BTreeSet<usize> = self
            .cache
            .contents()
            .iter()
            .map(|e| self.pool.index_of(e.kind, &e.digest))
            .collect();
        let evicted: BTreeSet<usize> = self
            .model
            .entries
            .keys()
            .copied()
            .filter(|k| !listed.contains(k))
            .collect();
        if used > HIGH {
            let sim = Model {
                entries: self.model.entries.clone(),
                tags: BTreeMap::new(),
                tick: 0,
                reading: self.model.reading,
            };
            self.check_evictions_from(sim, 0, used, &evicted);
        } else {
            assert!(
                evicted.is_empty(),
                "cleanup evicted {evicted:?} below the high watermark"
            );
        }
        let evicted_bytes: u64 = evicted
            .iter()
            .map(|&k| self.model.size(&self.pool, k))
            .sum();
        assert_eq!(report.evicted, evicted.len() as u64);
        assert_eq!(report.bytes_freed, expired_bytes + evicted_bytes);
        assert!(report.compacted);
        for k in evicted {
            self.model.entries.remove(&k);
        }
    }

    /// `repair`: corrupted and quarantined entries go (to be fetched again); nothing is
    /// missing or unindexed here.
    fn repair(&mut self) {
        let doomed: Vec<usize> = self
            .model
            .entries
            .iter()
            .filter(|(_, e)| e.corrupt || e.quarantined)
            .map(|(&k, _)| k)
            .collect();
        let report = self.cache.repair().unwrap();
        assert_eq!(report.removed_corrupted, doomed.len() as u64, "{report:?}");
        assert_eq!(
            (
                report.removed_missing,
                report.adopted,
                report.removed_unindexed,
                report.temps_removed
            ),
            (0, 0, 0, 0),
            "{report:?}"
        );
        for k in doomed {
            self.model.entries.remove(&k);
            if self.model.reading == Some(k) {
                self.model.reading = None;
            }
        }
    }

    /// Invariants that hold after every operation.
    fn check(&mut self) {
        let now = self.now();
        let contents = self.cache.contents();
        let stats = self.cache.stats();
        assert!(
            self.cache.size() <= CAP,
            "over the cap: {}",
            self.cache.size()
        );
        let listed: u64 = contents.iter().map(|e| e.size).sum();
        assert_eq!(listed, stats.total_size);
        assert_eq!(listed, self.cache.size());
        assert_eq!(self.storage.temp_count(), 0, "a temp was left behind");

        // The index agrees with the model, field by field.
        let mut seen = BTreeSet::new();
        for e in &contents {
            let k = self.pool.index_of(e.kind, &e.digest);
            seen.insert(k);
            let m = self
                .model
                .entries
                .get(&k)
                .unwrap_or_else(|| panic!("{k} is listed but the model does not have it"));
            assert_eq!(e.quarantined, m.quarantined, "entry {k}");
            assert_eq!(e.size, self.model.size(&self.pool, k), "entry {k}");
            assert_eq!(e.pins, m.pins, "entry {k}");
            assert_eq!(e.expires_at, Some(m.expires), "entry {k}");
            assert_eq!(e.expired, m.expires <= now, "entry {k}");
            assert_eq!(e.created_at, m.created, "entry {k}");
            assert_eq!(e.accessed_at, m.accessed, "entry {k}");
            assert_eq!(e.access_count, m.access_count, "entry {k}");
            assert_eq!(
                e.referrers,
                self.model.referrers(&self.pool, k),
                "entry {k}"
            );
        }
        let model_keys: BTreeSet<usize> = self.model.entries.keys().copied().collect();
        assert_eq!(seen, model_keys, "listed entries differ from the model");

        // Storage: exactly one file per non-quarantined entry, with exactly its bytes.
        let mut expected_files = BTreeSet::new();
        for (&k, m) in &self.model.entries {
            if m.quarantined {
                continue;
            }
            let path = self.pool.path(k);
            let stored = self
                .storage
                .get(&path)
                .unwrap_or_else(|| panic!("file of entry {k} missing"));
            if !m.corrupt {
                assert!(
                    stored == self.pool.bytes[k],
                    "file of entry {k} holds wrong bytes"
                );
            }
            expected_files.insert(path);
        }
        let mut files = BTreeSet::new();
        for p in self.storage.paths() {
            if p.starts_with("blobs/") || p.starts_with("manifests/") {
                files.insert(p);
            } else {
                let name = p
                    .strip_prefix("index/")
                    .unwrap_or_else(|| panic!("stray {p}"));
                assert!(
                    name == "snapshot"
                        || name
                            .strip_prefix("journal-")
                            .is_some_and(|g| g.parse::<u64>().is_ok()),
                    "stray {p}"
                );
            }
        }
        assert_eq!(
            files, expected_files,
            "content files differ from the entries"
        );

        // Tags.
        let tags = self.cache.tags();
        assert_eq!(tags.len(), self.model.tags.len());
        for t in tags {
            let i = TAGS
                .iter()
                .position(|r| reference_key(r) == t.reference)
                .expect("a pool tag");
            let m = &self.model.tags[&i];
            assert_eq!(t.digest, m.digest);
            assert_eq!(t.invalidated, m.invalidated);
            assert_eq!(t.fresh_until, Some(m.fresh_until));
            let history: Vec<Digest> = t.history.into_iter().map(|h| h.digest).collect();
            assert_eq!(history, m.history);
        }
    }
}

fn reference(t: usize) -> Reference {
    TAGS[t].parse().unwrap()
}

fn reference_key(r: &str) -> String {
    r.parse::<Reference>().unwrap().to_string()
}

fn run(variant: Variant, ops: &[Op]) {
    let mut h = Harness::new(variant);
    h.check();
    for op in ops {
        h.apply(op);
        h.check();
    }
    // And a last reopen: everything still agrees, and the cache is healthy.
    h.reopen(true);
    h.check();
    let report = h.cache.check_integrity().unwrap();
    let corrupt = h.model.entries.values().filter(|e| e.corrupt).count();
    let quarantined = h.model.entries.values().filter(|e| e.quarantined).count();
    assert_eq!(report.corrupted.len(), corrupt, "{report:?}");
    assert_eq!(report.quarantined.len(), quarantined, "{report:?}");
    assert!(
        report.missing.is_empty() && report.unindexed.is_empty(),
        "{report:?}"
    );
}

/// Proptest's defaults (256 cases), which already honor `PROPTEST_CASES` and
/// `PROPTEST_RNG_SEED`; without the latter the seed is fixed, so runs are reproducible.
fn proptest_config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(0x0C1C_AC4E);
    }
    config
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn cache_matches_the_model(
        variant in variant_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..60),
    ) {
        run(variant, &ops);
    }
}

#[test]
fn the_pool_is_valid_and_overflows_the_cap() {
    let pool = Pool::new();
    assert_eq!(pool.len(), 10);
    assert_eq!(
        pool.keys.iter().filter(|k| k.kind == Kind::Blob).count(),
        BLOBS
    );
    let total: u64 = (0..pool.len()).map(|k| pool.size(k)).sum();
    assert!(total > CAP, "eviction must happen");
    // Every op at least once, in a fixed order.
    let mut ops = Vec::new();
    for k in 0..pool.len() {
        ops.push(Op::Put(k, PutHow::Anonymous(100)));
        ops.push(Op::Get(k));
        ops.push(Op::Pin(k));
    }
    ops.extend([
        Op::Corrupt(0, 3),
        Op::Get(0),
        Op::PutTag(0, 7),
        Op::PutTag(0, 8),
        Op::ResolveTag(0),
        Op::InvalidateTag(0),
        Op::ResolveTag(0),
        Op::Reopen(true),
        Op::Advance(TTL),
        Op::Get(9),
        Op::Unpin(9),
        Op::ClearExpired,
        Op::DeleteTag(0),
        Op::Put(1, PutHow::Announced(7)),
        Op::PutWrongDigest(1, 2),
        Op::Delete(1),
        Op::Reopen(true),
        Op::Crash {
            torn: Some(5),
            in_open: Some(3),
        },
        Op::Cleanup,
        Op::Corrupt(0, 1),
        Op::Repair,
    ]);
    run(Variant::default(), &ops);
}
