//! The compacted snapshot: the whole index as `Put` and `Tag` records between a header and an
//! `End` trailer that counts them. Written to a temp object and committed atomically, so a
//! snapshot is either the complete old one or the complete new one.

use super::read_records;
use super::record::{FORMAT_VERSION, FrameEnd, Record};
use crate::layout;
use crate::storage::{Storage, StorageError};

const WRITE_CHUNK: usize = 1 << 20;

/// What a valid snapshot held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnapshotContents {
    pub(crate) generation: u64,
    pub(crate) entries: u64,
    pub(crate) tags: u64,
}

/// Streams `records` (only `Put` and `Tag`) into a new snapshot of `generation`.
pub(crate) fn write_snapshot(
    storage: &mut dyn Storage,
    generation: u64,
    records: impl Iterator<Item = Record>,
) -> Result<(), StorageError> {
    let temp = storage.create_temp(None)?;
    let result = (|| {
        let mut buf = Vec::with_capacity(WRITE_CHUNK + 4096);
        Record::Header {
            version: FORMAT_VERSION,
            generation,
        }
        .encode_frame(&mut buf);
        let (mut entries, mut tags) = (0u64, 0u64);
        for r in records {
            match &r {
                Record::Put { .. } => entries += 1,
                Record::Tag { .. } => tags += 1,
                _ => {}
            }
            r.encode_frame(&mut buf);
            if buf.len() >= WRITE_CHUNK {
                storage.write_temp(temp, &buf)?;
                buf.clear();
            }
        }
        Record::End { entries, tags }.encode_frame(&mut buf);
        storage.write_temp(temp, &buf)
    })();
    match result {
        Ok(()) => storage.commit_temp(temp, layout::SNAPSHOT),
        Err(e) => {
            let _ = storage.abort_temp(temp);
            Err(e)
        }
    }
}

/// Reads the snapshot, handing each `Put`/`Tag` record to `each`. Returns `Ok(None)` when
/// there is no snapshot and `Err(reason)` when it is damaged (the caller then discards what
/// `each` built and rebuilds from the stored files).
pub(crate) fn read_snapshot(
    storage: &mut dyn Storage,
    mut each: impl FnMut(Record),
) -> Result<Option<SnapshotContents>, SnapshotDamage> {
    if storage.size(layout::SNAPSHOT)?.is_none() {
        return Ok(None);
    }
    let mut header: Option<(u32, u64)> = None;
    let mut end: Option<(u64, u64)> = None;
    let (mut entries, mut tags, mut misplaced) = (0u64, 0u64, false);
    let how = read_records(storage, layout::SNAPSHOT, |r| match r {
        Record::Header {
            version,
            generation,
        } if header.is_none() => header = Some((version, generation)),
        Record::Put { .. } if header.is_some() && end.is_none() => {
            entries += 1;
            each(r);
        }
        Record::Tag { .. } if header.is_some() && end.is_none() => {
            tags += 1;
            each(r);
        }
        Record::End { entries, tags } if end.is_none() => end = Some((entries, tags)),
        _ => misplaced = true,
    })?;
    let Some((version, generation)) = header else {
        return Err(SnapshotDamage::Invalid("no header".into()));
    };
    if version != FORMAT_VERSION {
        return Err(SnapshotDamage::Invalid(format!(
            "format version {version}, expected {FORMAT_VERSION}"
        )));
    }
    if how == FrameEnd::Torn || misplaced || end != Some((entries, tags)) {
        return Err(SnapshotDamage::Invalid("damaged or incomplete".into()));
    }
    Ok(Some(SnapshotContents {
        generation,
        entries,
        tags,
    }))
}

/// Why a snapshot could not be used.
#[derive(Debug)]
pub(crate) enum SnapshotDamage {
    /// The storage failed while reading it: opening must fail, not rebuild.
    Storage(StorageError),
    /// Its bytes are not a valid snapshot.
    Invalid(String),
}

impl From<StorageError> for SnapshotDamage {
    fn from(e: StorageError) -> Self {
        SnapshotDamage::Storage(e)
    }
}
