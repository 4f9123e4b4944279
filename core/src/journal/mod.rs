//! The persisted index: an append-only journal of checksummed records plus a periodically
//! compacted snapshot. See `docs/FORMAT.md` for the byte layout and the recovery rules.

mod codec;
mod record;
mod snapshot;

use record::FrameParser;
pub(crate) use record::{FORMAT_VERSION, FrameEnd, MIN_PUT_FRAME, Record};
pub(crate) use snapshot::{SnapshotDamage, read_snapshot, write_snapshot};

use crate::layout;
use crate::storage::{Storage, StorageError};

/// Read size when replaying files.
const READ_CHUNK: usize = 1 << 20;
/// Touch records kept in memory before they are written out.
const MAX_BUFFERED_TOUCHES: usize = 4096;

/// What reading a journal found.
#[derive(Debug)]
pub(crate) struct Replay {
    /// `Torn` when the file does not end with a whole valid frame: the bytes after `valid_len`
    /// must be cut before anything is appended.
    pub(crate) end: FrameEnd,
    /// Offset just past the last whole, valid frame.
    pub(crate) valid_len: u64,
    /// Damaged byte ranges that were skipped because valid frames follow them: corruption,
    /// not a crash (their records are lost; the records after them were read). When
    /// resynchronisation gave up, the last range runs to the end of the file.
    pub(crate) damaged: Vec<std::ops::Range<u64>>,
    /// Resynchronisation gave up on the damage at the end (see `damaged`): the tail was not a
    /// plain torn append.
    pub(crate) gave_up: bool,
}

/// Streams the records of `path` to `each`, stopping at the first damaged frame (snapshots:
/// any damage invalidates the whole file); returns how the file ended.
pub(crate) fn read_records(
    storage: &mut dyn Storage,
    path: &str,
    each: impl FnMut(Record),
) -> Result<FrameEnd, StorageError> {
    read_frames(storage, path, 0, FrameParser::default(), each).map(|r| r.end)
}

/// Streams the journal records of `path` that start at byte `start` (a frame boundary) to
/// `each`, skipping damaged regions that valid frames follow; returns how the file ended and
/// the offset just past the last whole, valid frame.
pub(crate) fn read_records_from(
    storage: &mut dyn Storage,
    path: &str,
    start: u64,
    each: impl FnMut(Record),
) -> Result<(FrameEnd, u64), StorageError> {
    read_journal(storage, path, start, each).map(|r| (r.end, r.valid_len))
}

/// Like [`read_records_from`], reporting the damage skipped as well.
pub(crate) fn read_journal(
    storage: &mut dyn Storage,
    path: &str,
    start: u64,
    each: impl FnMut(Record),
) -> Result<Replay, StorageError> {
    read_frames(storage, path, start, FrameParser::resyncing(), each)
}

fn read_frames(
    storage: &mut dyn Storage,
    path: &str,
    start: u64,
    mut parser: FrameParser,
    mut each: impl FnMut(Record),
) -> Result<Replay, StorageError> {
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut offset = start;
    let stopped = loop {
        let n = storage.read_at(path, offset, &mut chunk)?;
        if n == 0 {
            parser.end_input();
        } else {
            offset += n as u64;
            parser.feed(&chunk[..n]);
        }
        let stopped = loop {
            match parser.next() {
                Ok(Some(r)) => each(r),
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        if stopped || n == 0 {
            break stopped;
        }
    };
    let mut damaged: Vec<_> = parser
        .damaged()
        .iter()
        .map(|r| start + r.start..start + r.end)
        .collect();
    let gave_up = parser.gave_up();
    if let Some(from) = gave_up {
        let size = storage.size(path)?.unwrap_or(offset).max(offset);
        damaged.push(start + from..size);
    }
    Ok(Replay {
        end: if stopped {
            FrameEnd::Torn
        } else {
            FrameEnd::Clean
        },
        valid_len: start + parser.consumed(),
        damaged,
        gave_up: gave_up.is_some(),
    })
}

/// The writer side of the journal of one generation.
pub(crate) struct Journal {
    generation: u64,
    /// Records written to this generation's file.
    records: u64,
    /// Bytes of this generation's file known to this process (written by it or replayed):
    /// where records appended by other processes sharing the directory begin.
    len: u64,
    /// Encoded touch records not yet written: access times are advisory, so they ride along
    /// with the next durable append instead of costing a synced write per read.
    buffered: Vec<u8>,
    buffered_count: usize,
    /// An append failed: the file may end in part of it (a short write), which must be cut off
    /// before anything is appended after it, or replay would stop there and lose what follows.
    damaged: bool,
}

impl Journal {
    /// The journal of `generation`, whose file holds `existing_records` records in `len` bytes.
    pub(crate) fn new(generation: u64, existing_records: u64, len: u64) -> Journal {
        Journal {
            generation,
            records: existing_records,
            len,
            buffered: Vec::new(),
            buffered_count: 0,
            damaged: false,
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    /// Bytes of the file this process knows of.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file has been created (with its header).
    pub(crate) fn is_started(&self) -> bool {
        // Every file of a generation begins with its (non-empty) header.
        self.len > 0
    }

    /// Takes note of `records` records in `len` bytes appended by another process, ending at
    /// `end`; `torn` when the file ends in a partial or damaged record, which must be cut off
    /// before this process appends after it.
    pub(crate) fn absorb(&mut self, records: u64, end: u64, torn: bool) {
        self.records += records;
        self.len = end;
        if torn {
            self.damaged = true;
        }
    }

    /// Cuts a damaged tail now, if there is one (before replaying what others appended).
    pub(crate) fn repair_tail(&mut self, storage: &mut dyn Storage) -> Result<(), StorageError> {
        if self.damaged {
            self.cut_damaged_tail(storage)?;
        }
        Ok(())
    }

    /// Durably appends `records` (after any buffered touches) in one storage call.
    pub(crate) fn append(
        &mut self,
        storage: &mut dyn Storage,
        records: &[Record],
    ) -> Result<(), StorageError> {
        if self.damaged {
            self.cut_damaged_tail(storage)?;
        }
        let mut out = Vec::new();
        let started = self.is_started();
        if !started {
            Record::Header {
                version: FORMAT_VERSION,
                generation: self.generation,
            }
            .encode_frame(&mut out);
        }
        out.extend_from_slice(&self.buffered);
        for r in records {
            r.encode_frame(&mut out);
        }
        if let Err(e) = storage.append(&layout::journal_path(self.generation), &out) {
            self.damaged = true;
            return Err(e);
        }
        self.records += u64::from(!started) + self.buffered_count as u64 + records.len() as u64;
        self.len += out.len() as u64;
        self.buffered.clear();
        self.buffered_count = 0;
        Ok(())
    }

    /// After a failed append: keeps only the whole, valid frames of the file (rewritten
    /// atomically through a temp object), so that the next append follows a clean tail. Rare,
    /// and bounded by compaction.
    fn cut_damaged_tail(&mut self, storage: &mut dyn Storage) -> Result<(), StorageError> {
        let path = layout::journal_path(self.generation);
        let data = match crate::storage::read_all(storage, &path) {
            Ok(data) => data,
            Err(StorageError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        let valid = valid_prefix(&data);
        self.len = valid as u64;
        if valid == 0 {
            storage.remove(&path)?;
        } else if valid < data.len() {
            let temp = storage.create_temp(Some(valid as u64))?;
            if let Err(e) = storage.write_temp(temp, &data[..valid]) {
                let _ = storage.abort_temp(temp);
                return Err(e);
            }
            storage.commit_temp(temp, &path)?;
        }
        self.damaged = false;
        Ok(())
    }

    /// Buffers an advisory record (an access); writes the buffer out when it grows large.
    pub(crate) fn buffer(
        &mut self,
        storage: &mut dyn Storage,
        record: &Record,
    ) -> Result<(), StorageError> {
        record.encode_frame(&mut self.buffered);
        self.buffered_count += 1;
        if self.buffered_count >= MAX_BUFFERED_TOUCHES {
            self.append(storage, &[])?;
        }
        Ok(())
    }

    /// Writes buffered records out.
    pub(crate) fn flush(&mut self, storage: &mut dyn Storage) -> Result<(), StorageError> {
        if self.buffered_count > 0 {
            self.append(storage, &[])?;
        }
        Ok(())
    }

    /// Forgets buffered records (a snapshot just captured their effect).
    pub(crate) fn discard_buffered(&mut self) {
        self.buffered.clear();
        self.buffered_count = 0;
    }
}

/// Length of the longest prefix of `data` that ends with a whole frame replay accepts
/// (damage in the middle that replay skips stays: only the tail after the last valid frame goes).
fn valid_prefix(data: &[u8]) -> usize {
    let mut parser = FrameParser::resyncing();
    parser.feed(data);
    parser.end_input();
    while let Ok(Some(_)) = parser.next() {}
    parser.consumed() as usize
}

#[cfg(test)]
mod tests;
