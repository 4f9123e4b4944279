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
    // A small journal gets a small buffer: zeroing 1 MiB showed in a warm CLI run.
    let left = storage
        .size(path)?
        .unwrap_or(0)
        .saturating_sub(start)
        .clamp(4096, READ_CHUNK as u64);
    let mut chunk = vec![0u8; left as usize];
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
    /// The last record of the file is `Closed`: a process shut down cleanly and none has
    /// changed content since. Before content changes, a marker must follow it (see
    /// [`Journal::mark_active`]), or a crash would later pass for a clean shutdown.
    ends_closed: bool,
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
            ends_closed: false,
        }
    }

    /// The file ends in `Closed` and nothing is buffered: closing again would record nothing new.
    pub(crate) fn closed_and_quiet(&self) -> bool {
        self.ends_closed && self.buffered_count == 0
    }

    /// Takes note of what the file's last record is, as replay or a refresh just read it.
    pub(crate) fn set_ends_closed(&mut self, closed: bool) {
        self.ends_closed = closed;
    }

    /// Before content is committed or removed: if the journal ends in `Closed`, appends a
    /// marker (a repeated `Header` of this generation), so that the next open does not take a
    /// crash in the middle of this change for a clean shutdown and trust an index that misses
    /// a committed file or lists a removed one. One synced append per clean reopen, and none
    /// for runs that only read.
    pub(crate) fn mark_active(&mut self, storage: &mut dyn Storage) -> Result<(), StorageError> {
        if self.ends_closed {
            let marker = Record::Header {
                version: FORMAT_VERSION,
                generation: self.generation,
            };
            self.append(storage, &[marker])?;
        }
        Ok(())
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

    /// Takes note of `records` records appended by another process (or replayed at open),
    /// whose last whole, valid frame ends at `end`; `torn` when bytes that are not a whole,
    /// valid frame follow it, which must be cut off before this process appends after them.
    ///
    /// The state of the tail is the one just read: a tail this process saw torn earlier may
    /// since have been cut by another process, which then appended after it.
    pub(crate) fn absorb(&mut self, records: u64, end: u64, torn: bool) {
        self.records += records;
        self.len = end;
        self.damaged = torn;
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
            // Part of it may have reached the file: cut it now, so that no process reads the
            // records of an operation that failed (or later, before the next append).
            self.damaged = true;
            let _ = self.cut_damaged_tail(storage);
            return Err(e);
        }
        self.records += u64::from(!started) + self.buffered_count as u64 + records.len() as u64;
        self.len += out.len() as u64;
        self.ends_closed = match records.last() {
            Some(Record::Closed { .. }) => true,
            Some(_) => false,
            None => self.ends_closed && started && self.buffered_count == 0,
        };
        self.buffered.clear();
        self.buffered_count = 0;
        Ok(())
    }

    /// After a failed append, or a torn one by another process: keeps the first `len` bytes
    /// of the file, the whole, valid frames this process has replayed or written (rewritten
    /// atomically through a temp object), so that the next append follows a clean tail. Rare,
    /// and bounded by compaction.
    ///
    /// Everything past `len` goes, whole frames included: the host's lock and `refresh` ensure
    /// that those bytes are this process's own failed append (an operation that failed leaves
    /// no record) or the torn append of a process that died, never records it has not replayed.
    fn cut_damaged_tail(&mut self, storage: &mut dyn Storage) -> Result<(), StorageError> {
        let path = layout::journal_path(self.generation);
        let size = storage.size(&path)?.unwrap_or(0);
        if size < self.len {
            // Not the file this process followed: another one cut or compacted it.
            return Err(StorageError::Io(format!(
                "{path} changed under this process; refresh first"
            )));
        }
        if self.len == 0 {
            storage.remove(&path)?;
        } else if self.len < size {
            // Streamed in pieces: the file's size is a stored claim, never an allocation.
            let temp = storage.create_temp(Some(self.len))?;
            let copied = (|| {
                let mut buf = vec![0u8; READ_CHUNK];
                let mut offset = 0u64;
                while offset < self.len {
                    let want = usize::try_from(self.len - offset)
                        .unwrap_or(usize::MAX)
                        .min(buf.len());
                    let n = storage.read_at(&path, offset, &mut buf[..want])?;
                    if n == 0 {
                        return Err(StorageError::Io(format!(
                            "{path} changed under this process; refresh first"
                        )));
                    }
                    storage.write_temp(temp, &buf[..n])?;
                    offset += n as u64;
                }
                Ok(())
            })();
            if let Err(e) = copied {
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

#[cfg(test)]
mod tests;
