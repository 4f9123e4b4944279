//! Corruption fuzzing of the index files (issue 9): the snapshot and the journal left by a real
//! workload over `MemoryStorage` are damaged in more than 10,000 ways, and each damaged
//! directory is opened.
//!
//! - **Byte flips** at every offset of both files, one or two at a time, and **truncations** at
//!   every length. Each is compared with an oracle: the same directory with the damaged frames
//!   cut out cleanly (a damaged snapshot: without the snapshot). Opening must give exactly the
//!   oracle's state — loss is limited to the damaged records — and must report the damage: a
//!   torn tail, damage in the middle of the journal (with its exact byte count), or a damaged
//!   snapshot.
//! - **Checksum-valid mutations**: a frame's body is changed (a byte, a count or size set to an
//!   extreme, the body shortened or extended) and its checksum recomputed, or whole frames are
//!   duplicated, dropped or swapped. Nothing predicts the state, so only the safety rules below
//!   are checked.
//!
//! For every case: opening never panics and succeeds; it never deletes or changes a stored
//! file whose bytes match its name; and every blob and manifest read afterwards returns bytes
//! that hash to the digest asked for, or an error.
//!
//! Cases come from a seeded generator (xorshift), so a failure names a case that replays.

mod common;
use common::{image_manifest, pattern, sha256};
use ocicache_core::storage::MemoryStorage;
use ocicache_core::{Cache, Config, Digest, Key, ManualClock, Reference};
use std::collections::BTreeMap;
use std::ops::Range;

const T0: u64 = 1_700_000_000_000;
const SNAPSHOT: &str = "index/snapshot";
const JOURNAL: &str = "index/journal-1";

fn config() -> Config {
    Config {
        // Far above anything stored: eviction at open is not what this test is about.
        max_bytes: 1 << 40,
        ..Config::default()
    }
}

/// The directory a workload left, and what it stored.
struct Base {
    files: BTreeMap<String, Vec<u8>>,
    blobs: Vec<Digest>,
    manifests: Vec<Digest>,
}

fn reference(s: &str) -> Reference {
    s.parse().expect("a valid reference")
}

/// Puts, manifests with references, tags (moved, invalidated, deleted), pins, deletes and
/// reads; compacted once, so that both a snapshot (generation 1) and a journal with records of
/// every kind exist. Ends without `close`, so that every open reconciles with the files.
fn workload() -> Base {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(T0);
    let mut cache = Cache::builder(storage.clone(), clock.clone())
        .config(config())
        .open()
        .unwrap();
    let mut blobs = Vec::new();
    let mut put_blob = |cache: &mut Cache, i: u64| {
        clock.advance(10);
        let d = cache
            .put_blob(None, &pattern(i, 40 + 29 * i as usize))
            .unwrap();
        blobs.push(d.clone());
        d
    };
    let b: Vec<Digest> = (0..6).map(|i| put_blob(&mut cache, i)).collect();
    let mut manifests = Vec::new();
    let mut put_manifest = |cache: &mut Cache, config: &Digest, layers: &[&Digest]| {
        let bytes = image_manifest(config, layers);
        let d = sha256(&bytes);
        cache.put_manifest(&d, &bytes, None).unwrap();
        manifests.push(d.clone());
        d
    };
    let m1 = put_manifest(&mut cache, &b[0], &[&b[1], &b[2]]);
    let m2 = put_manifest(&mut cache, &b[3], &[&b[4]]);
    cache.put_tag(&reference("app:1"), &m1).unwrap();
    cache.put_tag(&reference("app:2"), &m2).unwrap();
    cache.put_tag(&reference("db:1"), &m1).unwrap();
    cache.put_tag(&reference("app:1"), &m2).unwrap();
    cache.pin(&Key::blob(b[5].clone())).unwrap();
    cache.get_blob(&b[0]).unwrap();
    assert!(cache.cleanup().unwrap().compacted);

    let b6 = put_blob(&mut cache, 6);
    let b7 = put_blob(&mut cache, 7);
    let m3 = put_manifest(&mut cache, &b6, &[&b7]);
    cache.put_tag(&reference("web:1"), &m3).unwrap();
    cache.put_tag(&reference("web:2"), &m1).unwrap();
    cache.invalidate_tag(&reference("app:2")).unwrap();
    cache.delete_tag(&reference("db:1")).unwrap();
    cache.delete_blob(&b[4]).unwrap();
    cache.pin(&Key::manifest(m3.clone())).unwrap();
    cache.unpin(&Key::blob(b[5].clone())).unwrap();
    clock.advance(10);
    cache.get_manifest(&m1).unwrap();
    cache.get_blob(&b7).unwrap();
    cache.put_tag(&reference("app:1"), &m3).unwrap();
    cache.flush().unwrap();
    drop(cache);

    let files = storage
        .paths()
        .into_iter()
        .map(|p| {
            let bytes = storage.get(&p).unwrap();
            (p, bytes)
        })
        .collect::<BTreeMap<_, _>>();
    assert!(files.contains_key(SNAPSHOT) && files.contains_key(JOURNAL));
    Base {
        files,
        blobs,
        manifests,
    }
}

/// The byte ranges of the frames of a valid file.
fn frames(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push(at..at + 8 + len);
        at += 8 + len;
    }
    assert_eq!(at, bytes.len());
    out
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// What a test can observe of the index: tags, and entries with their pins.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    tags: Vec<(String, String, bool)>,
    entries: Vec<(String, String, u32)>,
}

fn state(cache: &Cache) -> State {
    let mut tags: Vec<_> = cache
        .tags()
        .into_iter()
        .map(|t| (t.reference, t.digest.to_string(), t.invalidated))
        .collect();
    tags.sort();
    let mut entries: Vec<_> = cache
        .contents()
        .into_iter()
        .map(|e| (format!("{:?}", e.kind), e.digest.to_string(), e.pins))
        .collect();
    entries.sort();
    State { tags, entries }
}

/// xorshift64*: deterministic cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A storage holding `files`.
fn storage_of(files: &BTreeMap<String, Vec<u8>>) -> MemoryStorage {
    let s = MemoryStorage::new();
    for (p, b) in files {
        s.put(p, b);
    }
    s
}

/// Opens `files` and checks the safety rules; returns the cache's state and recovery report.
fn open_checked(
    base: &Base,
    files: &BTreeMap<String, Vec<u8>>,
    case: &str,
) -> (State, ocicache_core::RecoveryReport, MemoryStorage) {
    let storage = storage_of(files);
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Cache::builder(storage.clone(), ManualClock::new(T0 + 1_000))
            .config(config())
            .open()
    }));
    let mut cache = match opened {
        Ok(Ok(cache)) => cache,
        Ok(Err(e)) => panic!("{case}: open failed: {e}"),
        Err(_) => panic!("{case}: open panicked"),
    };
    // Never delete (or change) a stored file whose bytes match its name.
    for (path, bytes) in &base.files {
        if !path.starts_with("index/") {
            assert_eq!(
                storage.get(path).as_deref(),
                Some(bytes.as_slice()),
                "{case}: open removed or changed {path}"
            );
        }
    }
    let observed = state(&cache);
    let report = cache.recovery_report().clone();
    // Never serve wrong bytes.
    for d in &base.blobs {
        if let Ok(bytes) = cache.get_blob(d) {
            assert_eq!(
                &sha256(&bytes),
                d,
                "{case}: wrong bytes served for blob {d}"
            );
        }
    }
    for d in &base.manifests {
        if let Ok(m) = cache.get_manifest(d) {
            assert_eq!(&sha256(&m.bytes), d, "{case}: wrong bytes served for {d}");
        }
    }
    (observed, report, storage)
}

/// The oracle: `files` with the frames `cut` of `path` removed cleanly (for the snapshot: the
/// whole snapshot, which is only ever valid or invalid as a whole).
struct Oracle<'a> {
    base: &'a Base,
    cache: BTreeMap<(String, Vec<usize>), State>,
}

impl Oracle<'_> {
    fn state(&mut self, path: &str, cut: Vec<usize>) -> State {
        let key = (path.to_owned(), cut);
        if let Some(s) = self.cache.get(&key) {
            return s.clone();
        }
        let mut files = self.base.files.clone();
        if path == SNAPSHOT {
            files.remove(SNAPSHOT);
        } else {
            let bytes = &self.base.files[path];
            let kept: Vec<u8> = frames(bytes)
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !key.1.contains(i))
                .flat_map(|(_, r)| bytes[r].to_vec())
                .collect();
            files.insert(path.to_owned(), kept);
        }
        let (state, report, _) = open_checked(self.base, &files, "oracle");
        assert!(
            report.journal_damaged_regions == 0 && !report.snapshot_damaged,
            "the oracle is undamaged: {report:?}"
        );
        self.cache.insert(key, state.clone());
        state
    }
}

fn frame_of(frames: &[Range<usize>], offset: usize) -> usize {
    frames.iter().position(|r| r.contains(&offset)).unwrap()
}

#[test]
fn damaged_index_files_lose_only_the_damaged_records_and_say_so() {
    let base = workload();
    let undamaged = open_checked(&base, &base.files, "undamaged").0;
    let mut oracle = Oracle {
        base: &base,
        cache: BTreeMap::new(),
    };
    assert_eq!(oracle.state(JOURNAL, vec![]), undamaged);
    let mut rng = Rng(0x0C1C_AC4E);
    let mut cases = 0u64;

    for path in [SNAPSHOT, JOURNAL] {
        let bytes = base.files[path].clone();
        let fr = frames(&bytes);
        let last = fr.len() - 1;
        // One byte flipped, at every offset.
        for at in 0..bytes.len() {
            let mask = 1 + rng.below(255) as u8;
            let mut files = base.files.clone();
            files.get_mut(path).unwrap()[at] ^= mask;
            let case = format!("{path}: byte {at} ^= {mask:#04x}");
            let (got, report, _) = open_checked(&base, &files, &case);
            let k = frame_of(&fr, at);
            if path == SNAPSHOT {
                assert!(report.snapshot_damaged, "{case}: {report:?}");
                assert_eq!(got, oracle.state(SNAPSHOT, vec![]), "{case}");
            } else {
                assert_eq!(got, oracle.state(JOURNAL, vec![k]), "{case}");
                if k == last {
                    assert!(report.torn_tail, "{case}: {report:?}");
                    assert_eq!(report.journal_damaged_regions, 0, "{case}: {report:?}");
                } else {
                    assert!(!report.torn_tail, "{case}: {report:?}");
                    assert_eq!(
                        (report.journal_damaged_regions, report.journal_damaged_bytes),
                        (1, fr[k].len() as u64),
                        "{case}: {report:?}"
                    );
                }
            }
            cases += 1;
        }
        // Cut at every length.
        for len in 0..bytes.len() {
            let mut files = base.files.clone();
            files.get_mut(path).unwrap().truncate(len);
            let case = format!("{path}: cut at {len}");
            let (got, report, _) = open_checked(&base, &files, &case);
            if path == SNAPSHOT {
                assert!(report.snapshot_damaged, "{case}: {report:?}");
                assert_eq!(got, oracle.state(SNAPSHOT, vec![]), "{case}");
            } else {
                let lost: Vec<usize> = (0..fr.len()).filter(|&i| fr[i].end > len).collect();
                assert_eq!(got, oracle.state(JOURNAL, lost), "{case}");
                let boundary = len == 0 || fr.iter().any(|r| r.end == len);
                assert_eq!(
                    report.torn_tail,
                    len == 0 || !boundary,
                    "{case}: {report:?}"
                );
                assert_eq!(report.journal_damaged_regions, 0, "{case}: {report:?}");
            }
            cases += 1;
        }
    }

    // Two flips in two different frames of the journal: both lost, nothing else.
    let bytes = base.files[JOURNAL].clone();
    let fr = frames(&bytes);
    for _ in 0..2_000 {
        let (a, b) = (rng.below(fr.len()), rng.below(fr.len()));
        if a == b {
            continue;
        }
        let mut files = base.files.clone();
        let journal = files.get_mut(JOURNAL).unwrap();
        let (at_a, at_b) = (
            fr[a].start + rng.below(fr[a].len()),
            fr[b].start + rng.below(fr[b].len()),
        );
        journal[at_a] ^= 0x5A;
        journal[at_b] ^= 0xA5;
        let journal = journal.clone();
        let case = format!("journal: bytes {at_a} and {at_b} flipped");
        let (got, report, _) = open_checked(&base, &files, &case);
        let (first, second) = (a.min(b), a.max(b));
        let mut lost = vec![first, second];
        // A valid record wedged between two damaged ones is kept unless the length field of
        // the second is damaged too (out of range): then nothing marks where a frame follows it,
        // and it is taken for damage (see `FrameParser`).
        let second_start = fr[second].start;
        let second_len =
            u32::from_le_bytes(journal[second_start..second_start + 4].try_into().unwrap());
        let wedged_lost = second == first + 2 && (second_len == 0 || second_len > 64 << 20);
        if wedged_lost {
            lost.push(first + 1);
        }
        lost.sort_unstable();
        assert_eq!(got, oracle.state(JOURNAL, lost), "{case}");
        let tail = second == fr.len() - 1;
        let merged = second == first + 1 || wedged_lost;
        let regions = if merged { 1 } else { 2 } - u64::from(tail);
        assert_eq!(
            (report.journal_damaged_regions, report.torn_tail),
            (regions, tail),
            "{case}: {report:?}"
        );
        cases += 1;
    }

    // Checksum-valid mutations: only the safety rules apply.
    for i in 0..5_000 {
        let path = if i % 2 == 0 { SNAPSHOT } else { JOURNAL };
        let bytes = &base.files[path];
        let fr = frames(bytes);
        let mut bodies: Vec<Vec<u8>> = fr
            .iter()
            .map(|r| bytes[r.start + 8..r.end].to_vec())
            .collect();
        let k = rng.below(bodies.len());
        let what = match rng.below(7) {
            0 => {
                let at = rng.below(bodies[k].len());
                let v = rng.next() as u8;
                bodies[k][at] = v;
                format!("body byte {at} = {v}")
            }
            1 | 2 => {
                // A count, size or time set to an extreme.
                let width = if rng.below(2) == 0 { 4 } else { 8 };
                if bodies[k].len() > width {
                    let at = 1 + rng.below(bodies[k].len() - width);
                    let values: [u64; 6] =
                        [0, 1, u64::MAX, 1 << 63, bodies[k].len() as u64, rng.next()];
                    let v = values[rng.below(values.len())];
                    bodies[k][at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
                    format!("{width} bytes at {at} = {v:#x}")
                } else {
                    "unchanged".into()
                }
            }
            3 => {
                let n = rng.below(bodies[k].len());
                bodies[k].truncate(n.max(1));
                format!("body shortened to {}", n.max(1))
            }
            4 => {
                let extra = 1 + rng.below(80);
                let fill = rng.next() as u8;
                bodies[k].extend(std::iter::repeat_n(fill, extra));
                format!("body extended by {extra}")
            }
            5 => {
                let copy = bodies[k].clone();
                let at = rng.below(bodies.len() + 1);
                bodies.insert(at, copy);
                format!("duplicated to {at}")
            }
            _ => {
                let j = rng.below(bodies.len());
                bodies.swap(k, j);
                format!("swapped with frame {j}")
            }
        };
        let mut files = base.files.clone();
        files.insert(
            path.to_owned(),
            bodies.iter().flat_map(|b| frame(b)).collect(),
        );
        open_checked(&base, &files, &format!("{path}: frame {k}: {what}"));
        cases += 1;
    }
    println!("{cases} cases");
    assert!(cases >= 10_000, "{cases} cases");
}
