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
    let end = read_records(storage, path, |r| out.push(r)).unwrap();
    (out, end)
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

#[test]
fn a_torn_tail_is_detected_at_every_cut() {
    let mut s = MemoryStorage::new();
    let mut j = Journal::new(0, 0, 0);
    j.append(&mut s, &[put(1), put(2)]).unwrap();
    let path = crate::layout::journal_path(0);
    let full = s.get(&path).unwrap();
    for cut in 1..full.len() {
        s.put(&path, &full[..cut]);
        let (records, end) = collect(&mut s, &path);
        assert!(records.len() < 3);
        if end == FrameEnd::Clean {
            // Only possible on an exact frame boundary.
            let mut boundary = Vec::new();
            for r in &records {
                r.encode_frame(&mut boundary);
            }
            assert_eq!(boundary.len(), cut);
        }
    }
    // A flipped bit inside a frame is caught by its checksum.
    s.put(&path, &full);
    s.corrupt(&path, full.len() - 3);
    let (records, end) = collect(&mut s, &path);
    assert_eq!((records.len(), end), (2, FrameEnd::Torn));
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
