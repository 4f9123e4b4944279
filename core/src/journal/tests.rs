use super::*;
use crate::digest::Digest;
use crate::index::NewEntry;
use crate::key::Key;
use crate::storage::MemoryStorage;
use crate::tags::{TagHistoryEntry, TagState};

fn put(n: u8) -> Record {
    Record::Put {
        entry: NewEntry {
            key: Key::blob(Digest::Sha256([n; 32])),
            size: u64::from(n) * 1000,
            created: 1,
            accessed: 2,
            expires: u64::MAX,
            access_count: 3,
            pins: 1,
            media_type: None,
            quarantined: false,
        },
        references: vec![Key::manifest(Digest::Sha256([9; 32]))],
    }
}

fn collect(storage: &mut MemoryStorage, path: &str) -> (Vec<Record>, FrameEnd) {
    let mut out = Vec::new();
    let read = read_journal(storage, path, 0, |r| out.push(r)).unwrap();
    (out, read.end)
}

#[test]
fn appended_records_replay_in_order() {
    let mut s = MemoryStorage::new();
    let mut j = Journal::new(0, 0, 0);
    j.append(&mut s, &[put(1), put(2)]).unwrap();
    j.buffer(
        &mut s,
        &Record::Remove {
            key: Key::blob(Digest::Sha256([1; 32])),
        },
    )
    .unwrap();
    j.append(&mut s, &[put(3)]).unwrap();
    let (records, end) = collect(&mut s, &crate::layout::journal_path(0));
    assert_eq!(end, FrameEnd::Clean);
    assert!(matches!(records[0], Record::Header { generation: 0, .. }));
    assert!(
        matches!(records[3], Record::Remove { .. }),
        "buffered record precedes the next append"
    );
    assert_eq!(records.len(), 5);
    assert_eq!(j.records(), 5);
}

/// The end offset of every frame of `records`, encoded one after the other.
fn frame_ends(records: &[Record]) -> Vec<usize> {
    let mut out = Vec::new();
    records
        .iter()
        .map(|r| {
            r.encode_frame(&mut out);
            out.len()
        })
        .collect()
}

/// A short description of a record, to compare replays exactly.
fn describe(r: &Record) -> String {
    format!("{r:?}")
}

#[test]
fn a_torn_tail_is_detected_at_every_cut() {
    let mut s = MemoryStorage::new();
    let mut j = Journal::new(0, 0, 0);
    j.append(&mut s, &[put(1), put(2), put(3)]).unwrap();
    let path = crate::layout::journal_path(0);
    let full = s.get(&path).unwrap();
    let (all, _) = collect(&mut s, &path);
    let ends = frame_ends(&all);
    assert_eq!((all.len(), *ends.last().unwrap()), (4, full.len()));
    for cut in 0..full.len() {
        s.put(&path, &full[..cut]);
        let mut replay = Vec::new();
        let read = read_journal(&mut s, &path, 0, |r| replay.push(r)).unwrap();
        // Exactly the frames that end at or before the cut survive, in order.
        let whole = ends.iter().filter(|&&e| e <= cut).count();
        let expected: Vec<String> = all[..whole].iter().map(describe).collect();
        let got: Vec<String> = replay.iter().map(describe).collect();
        assert_eq!(got, expected, "cut at {cut}");
        let boundary = if whole == 0 { 0 } else { ends[whole - 1] };
        assert_eq!(read.valid_len, boundary as u64, "cut at {cut}");
        // A torn tail is not damage in the middle: nothing follows it.
        assert!(read.damaged.is_empty(), "cut at {cut}: {:?}", read.damaged);
        let torn = cut != boundary;
        assert_eq!(read.end == FrameEnd::Torn, torn, "cut at {cut}");
    }
    // A flipped bit inside the last frame is caught by its checksum: a damaged tail.
    s.put(&path, &full);
    s.corrupt(&path, full.len() - 3);
    let (records, end) = collect(&mut s, &path);
    assert_eq!((records.len(), end), (3, FrameEnd::Torn));
}

#[test]
fn damage_in_the_middle_is_skipped_and_the_records_after_it_kept() {
    let mut s = MemoryStorage::new();
    let mut j = Journal::new(0, 0, 0);
    j.append(&mut s, &[put(1), put(2), put(3), put(4)]).unwrap();
    let path = crate::layout::journal_path(0);
    let full = s.get(&path).unwrap();
    let (all, _) = collect(&mut s, &path);
    let ends = frame_ends(&all);
    // Every byte of the third frame (`put(2)`), flipped in turn: in its length, its checksum
    // or its body.
    for at in ends[1]..ends[2] {
        s.put(&path, &full);
        s.corrupt(&path, at);
        let mut replay = Vec::new();
        let read = read_journal(&mut s, &path, 0, |r| replay.push(r)).unwrap();
        let got: Vec<String> = replay.iter().map(describe).collect();
        let expected: Vec<String> = [&all[0], &all[1], &all[3], &all[4]]
            .into_iter()
            .map(describe)
            .collect();
        assert_eq!(got, expected, "flipped byte {at}");
        assert_eq!(read.end, FrameEnd::Clean, "flipped byte {at}");
        assert_eq!(read.valid_len, full.len() as u64);
        assert_eq!(
            read.damaged,
            vec![ends[1] as u64..ends[2] as u64],
            "flipped byte {at}"
        );
    }
    // Damage in the middle and a torn tail: the records between are kept, the tail is torn.
    s.put(&path, &full[..full.len() - 5]);
    s.corrupt(&path, ends[1] + 12);
    let mut replay = Vec::new();
    let read = read_journal(&mut s, &path, 0, |r| replay.push(r)).unwrap();
    assert_eq!(replay.len(), 3, "header, put(1), put(3)");
    assert_eq!(read.end, FrameEnd::Torn);
    assert_eq!(read.valid_len, ends[3] as u64);
    assert_eq!(read.damaged, vec![ends[1] as u64..ends[2] as u64]);
    // The writer cuts only the torn tail, not what follows the damage.
    let mut j = Journal::new(0, 3, read.valid_len);
    j.absorb(0, read.valid_len, true);
    j.append(&mut s, &[put(5)]).unwrap();
    let (records, end) = collect(&mut s, &path);
    assert_eq!(
        (records.len(), end),
        (4, FrameEnd::Clean),
        "header, 1, 3, 5"
    );
}

#[test]
fn a_frame_that_checks_by_chance_but_is_not_followed_by_one_is_not_a_resync_point() {
    let mut s = MemoryStorage::new();
    let mut j = Journal::new(0, 0, 0);
    j.append(&mut s, &[put(1)]).unwrap();
    let path = crate::layout::journal_path(0);
    let mut bytes = s.get(&path).unwrap();
    let good = bytes.len();
    // Garbage, then a whole valid frame, then more garbage to the end: the lone frame is not
    // followed by another and does not end the file, so it is taken for part of the damage.
    bytes.extend_from_slice(&[0xAB; 40]);
    put(2).encode_frame(&mut bytes);
    bytes.extend_from_slice(&[0xCD; 40]);
    s.put(&path, &bytes);
    let mut replay = Vec::new();
    let read = read_journal(&mut s, &path, 0, |r| replay.push(r)).unwrap();
    assert_eq!(replay.len(), 2, "header and put(1)");
    assert_eq!((read.end, read.valid_len), (FrameEnd::Torn, good as u64));
    assert!(read.damaged.is_empty());
}

#[test]
fn snapshots_round_trip_and_refuse_damage() {
    let mut s = MemoryStorage::new();
    let tag = Record::Tag {
        reference: "docker.io/library/a:b".into(),
        state: TagState {
            digest: Digest::Sha256([4; 32]),
            created: 1,
            updated: 2,
            validated: 3,
            fresh_until: 4,
            invalidated: true,
            access_count: 0,
            history: [TagHistoryEntry {
                digest: Digest::Sha256([4; 32]),
                changed_at: 2,
            }]
            .into(),
        },
    };
    write_snapshot(&mut s, 7, vec![put(1), put(2), tag].into_iter()).unwrap();
    let mut seen = 0;
    let c = read_snapshot(&mut s, |_| seen += 1).unwrap().unwrap();
    assert_eq!((c.generation, c.entries, c.tags, seen), (7, 2, 1, 3));
    let full = s.get(crate::layout::SNAPSHOT).unwrap();
    s.put(crate::layout::SNAPSHOT, &full[..full.len() - 1]);
    assert!(read_snapshot(&mut s, |_| {}).is_err());
    assert_eq!(s.temp_count(), 0);
}

#[test]
fn min_put_frame_is_the_smallest_put() {
    let mut frame = Vec::new();
    let Record::Put { entry, .. } = put(1) else {
        unreachable!()
    };
    Record::Put {
        entry,
        references: Vec::new(),
    }
    .encode_frame(&mut frame);
    assert_eq!(frame.len() as u64, MIN_PUT_FRAME);
}
