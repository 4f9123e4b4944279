//! Journal and snapshot records, and their framing.
//!
//! A frame is `len: u32 LE | crc32(body): u32 LE | body`, where `body` starts with a record type
//! byte. The layout of each record is documented in `docs/FORMAT.md`.

use super::codec::{Decoder, Encoder, Malformed};
use crate::clock::Millis;
use crate::index::NewEntry;
use crate::key::Key;
use crate::manifest::MediaType;
use crate::tags::{TagHistoryEntry, TagState};
use std::collections::VecDeque;
use std::ops::Range;

/// Format version written in every header.
pub const FORMAT_VERSION: u32 = 1;
/// File magic at the start of every header record.
pub const MAGIC: &[u8; 8] = b"OCICACHE";
/// Largest frame body accepted; anything larger is treated as a torn or corrupt frame.
pub const MAX_RECORD: usize = 64 << 20;
/// The smallest `Put` frame: header, type, SHA-256 key, six u64/u32 fields, flags, no references.
pub const MIN_PUT_FRAME: u64 = (FRAME_HEADER + 1 + 2 + 32 + 8 * 4 + 4 * 2 + 2 + 4) as u64;
/// Frame header size.
pub const FRAME_HEADER: usize = 8;
/// The highest record type byte (`Closed`).
const MAX_RECORD_TYPE: u8 = 12;
/// The smallest encoded digest (algorithm byte and a SHA-256).
const MIN_DIGEST: usize = 1 + 32;
/// The smallest encoded key (kind byte and the smallest digest).
const MIN_KEY: usize = 1 + MIN_DIGEST;

/// One change to the index, or (in snapshots) one piece of its state.
#[derive(Debug, Clone)]
pub(crate) enum Record {
    Header {
        version: u32,
        generation: u64,
    },
    Put {
        entry: NewEntry,
        references: Vec<Key>,
    },
    Touch {
        key: Key,
        accessed: Millis,
        expires: Millis,
        access_count: u32,
    },
    Remove {
        key: Key,
    },
    Pins {
        key: Key,
        pins: u32,
    },
    Quarantine {
        key: Key,
    },
    TagSet {
        reference: String,
        digest: crate::Digest,
        at: Millis,
        fresh_until: Millis,
    },
    TagInvalidate {
        reference: String,
    },
    TagRemove {
        reference: String,
    },
    Tag {
        reference: String,
        state: TagState,
    },
    End {
        entries: u64,
        tags: u64,
    },
    Closed {
        entries: u64,
        bytes: u64,
    },
}

impl Record {
    /// Appends this record's frame to `out`.
    pub(crate) fn encode_frame(&self, out: &mut Vec<u8>) {
        let mut e = Encoder::default();
        self.encode_body(&mut e);
        out.extend_from_slice(&(e.buf.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&e.buf).to_le_bytes());
        out.extend_from_slice(&e.buf);
    }

    fn encode_body(&self, e: &mut Encoder) {
        match self {
            Record::Header {
                version,
                generation,
            } => {
                e.u8(1);
                e.buf.extend_from_slice(MAGIC);
                e.u32(*version);
                e.u64(*generation);
            }
            Record::Put { entry, references } => {
                e.u8(2);
                e.key(&entry.key);
                e.u64(entry.size);
                e.u64(entry.created);
                e.u64(entry.accessed);
                e.u64(entry.expires);
                e.u32(entry.access_count);
                e.u32(entry.pins);
                e.u8(entry.media_type.map_or(0, |m| m.code()));
                e.u8(u8::from(entry.quarantined));
                e.u32(references.len() as u32);
                for r in references {
                    e.key(r);
                }
            }
            Record::Touch {
                key,
                accessed,
                expires,
                access_count,
            } => {
                e.u8(3);
                e.key(key);
                e.u64(*accessed);
                e.u64(*expires);
                e.u32(*access_count);
            }
            Record::Remove { key } => {
                e.u8(4);
                e.key(key);
            }
            Record::Pins { key, pins } => {
                e.u8(5);
                e.key(key);
                e.u32(*pins);
            }
            Record::Quarantine { key } => {
                e.u8(6);
                e.key(key);
            }
            Record::TagSet {
                reference,
                digest,
                at,
                fresh_until,
            } => {
                e.u8(7);
                e.str(reference);
                e.digest(digest);
                e.u64(*at);
                e.u64(*fresh_until);
            }
            Record::TagInvalidate { reference } => {
                e.u8(8);
                e.str(reference);
            }
            Record::TagRemove { reference } => {
                e.u8(9);
                e.str(reference);
            }
            Record::Tag { reference, state } => {
                e.u8(10);
                e.str(reference);
                e.digest(&state.digest);
                e.u64(state.created);
                e.u64(state.updated);
                e.u64(state.validated);
                e.u64(state.fresh_until);
                e.u8(u8::from(state.invalidated));
                e.u32(state.history.len() as u32);
                for h in &state.history {
                    e.digest(&h.digest);
                    e.u64(h.changed_at);
                }
            }
            Record::End { entries, tags } => {
                e.u8(11);
                e.u64(*entries);
                e.u64(*tags);
            }
            Record::Closed { entries, bytes } => {
                e.u8(12);
                e.u64(*entries);
                e.u64(*bytes);
            }
        }
    }

    /// Decodes one frame body.
    pub(crate) fn decode_body(body: &[u8]) -> Result<Record, Malformed> {
        let mut d = Decoder::new(body);
        let record = match d.u8()? {
            1 => {
                let mut magic = [0u8; 8];
                for m in &mut magic {
                    *m = d.u8()?;
                }
                if &magic != MAGIC {
                    return Err(Malformed);
                }
                Record::Header {
                    version: d.u32()?,
                    generation: d.u64()?,
                }
            }
            2 => {
                let key = d.key()?;
                let size = d.u64()?;
                let created = d.u64()?;
                let accessed = d.u64()?;
                let expires = d.u64()?;
                let access_count = d.u32()?;
                let pins = d.u32()?;
                let media_type = match d.u8()? {
                    0 => None,
                    c => Some(MediaType::from_code(c).ok_or(Malformed)?),
                };
                let quarantined = d.u8()? != 0;
                let n = d.count(MIN_KEY)?;
                let mut references = Vec::with_capacity(n);
                for _ in 0..n {
                    references.push(d.key()?);
                }
                Record::Put {
                    entry: NewEntry {
                        key,
                        size,
                        created,
                        accessed,
                        expires,
                        access_count,
                        pins,
                        media_type,
                        quarantined,
                    },
                    references,
                }
            }
            3 => Record::Touch {
                key: d.key()?,
                accessed: d.u64()?,
                expires: d.u64()?,
                access_count: d.u32()?,
            },
            4 => Record::Remove { key: d.key()? },
            5 => Record::Pins {
                key: d.key()?,
                pins: d.u32()?,
            },
            6 => Record::Quarantine { key: d.key()? },
            7 => Record::TagSet {
                reference: d.str()?,
                digest: d.digest()?,
                at: d.u64()?,
                fresh_until: d.u64()?,
            },
            8 => Record::TagInvalidate {
                reference: d.str()?,
            },
            9 => Record::TagRemove {
                reference: d.str()?,
            },
            10 => {
                let reference = d.str()?;
                let digest = d.digest()?;
                let created = d.u64()?;
                let updated = d.u64()?;
                let validated = d.u64()?;
                let fresh_until = d.u64()?;
                let invalidated = d.u8()? != 0;
                let n = d.count(MIN_DIGEST + 8)?;
                let mut history = VecDeque::with_capacity(n);
                for _ in 0..n {
                    history.push_back(TagHistoryEntry {
                        digest: d.digest()?,
                        changed_at: d.u64()?,
                    });
                }
                Record::Tag {
                    reference,
                    state: TagState {
                        digest,
                        created,
                        updated,
                        validated,
                        fresh_until,
                        invalidated,
                        access_count: 0,
                        history,
                    },
                }
            }
            11 => Record::End {
                entries: d.u64()?,
                tags: d.u64()?,
            },
            12 => Record::Closed {
                entries: d.u64()?,
                bytes: d.u64()?,
            },
            _ => return Err(Malformed),
        };
        d.finish()?;
        Ok(record)
    }
}

/// How far resynchronisation scans past the start of a damaged region for the next valid frame
/// before it takes the rest of the file for damaged.
const RESYNC_SCAN: u64 = MAX_RECORD as u64;
/// Bytes of candidate frames (decoded and checksummed) one resynchronisation may examine
/// before it gives up the same way: it bounds the work a crafted file can cause.
const RESYNC_WORK: u64 = 1 << 30;

/// Splits frames off a byte stream that arrives in chunks.
///
/// A damaged frame (length out of range, checksum mismatch, body that does not decode, or cut
/// off by the end of the input) stops a plain parser: that is how a snapshot is read, where any
/// damage makes the whole file invalid. A parser made with [`FrameParser::resyncing`] (journals)
/// instead scans forward, byte by byte, for the next position where a valid frame starts, and
/// goes on from there; the bytes skipped are reported as a damaged range. Damage that reaches
/// the end of the input with no valid frame after it is a torn tail (a crash mid-append).
///
/// Why a resynchronisation point is not found by chance: a candidate must have a length in
/// range that fits the input, a body that decodes completely (a known record type whose fields
/// use exactly its length, which alone rejects almost every position of damaged or random
/// bytes), a matching CRC-32 (one in 2^32 by chance), must not be a `Header` (only a file's
/// first frame is one), and must be followed consistently: by the end of the input, or by a
/// frame header whose length is in range (the next frame may itself be damaged). A chance match
/// is thus as unlikely as a CRC-32 collision on a body that also decodes exactly, and a candidate
/// followed by garbage is still refused. The one record this can lose is a valid one wedged
/// between damaged bytes and a frame whose length field is damaged too.
#[derive(Default)]
pub(crate) struct FrameParser {
    buf: Vec<u8>,
    /// Position in `buf` of the next byte to examine.
    start: usize,
    /// Bytes dropped from the front of `buf` by earlier feeds.
    consumed_before: usize,
    /// Offset (from the first byte fed) just past the last valid frame.
    valid_end: u64,
    /// Whether to resynchronise after damage, rather than stop.
    resync: bool,
    /// No more input will come.
    eof: bool,
    /// Parsing has stopped for good (damage without resynchronisation, or a torn tail).
    stopped: bool,
    /// Where the damaged region being skipped began.
    damaged_from: Option<u64>,
    /// Candidate bytes examined since then.
    work: u64,
    /// Damaged regions skipped so far, each followed by a valid frame.
    damaged: Vec<Range<u64>>,
    /// Resynchronisation gave up (its bounds were exceeded) at this offset.
    gave_up: Option<u64>,
}

/// Why frame parsing stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameEnd {
    /// All input consumed on a frame boundary.
    Clean,
    /// Input ended inside a frame, or damaged bytes reach the end: a torn or damaged tail, to
    /// be cut before anything is appended.
    Torn,
}

/// What the bytes at one position hold.
enum Check {
    /// A whole valid frame of this many bytes.
    Valid(Record, usize),
    /// Not decidable until more input arrives.
    NeedMore,
    /// Not a valid frame.
    Invalid,
}

/// Checks for a whole valid frame at the start of `avail` (the end of the input when `eof`).
fn check(avail: &[u8], eof: bool) -> Check {
    let undecided = if eof { Check::Invalid } else { Check::NeedMore };
    if avail.len() < FRAME_HEADER {
        return undecided;
    }
    let len = u32::from_le_bytes(avail[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(avail[4..8].try_into().expect("4 bytes"));
    if len == 0 || len > MAX_RECORD {
        return Check::Invalid;
    }
    // An unknown record type is refused before waiting for the rest of a (claimed) body.
    if avail
        .get(FRAME_HEADER)
        .is_some_and(|t| !(1..=MAX_RECORD_TYPE).contains(t))
    {
        return Check::Invalid;
    }
    if avail.len() < FRAME_HEADER + len {
        return undecided;
    }
    let body = &avail[FRAME_HEADER..FRAME_HEADER + len];
    // Decoding first rejects damaged bytes cheaply (it fails at the first impossible field);
    // the checksum, which reads every byte, only runs on bodies that decode.
    let Ok(record) = Record::decode_body(body) else {
        return Check::Invalid;
    };
    if crc32fast::hash(body) != crc {
        return Check::Invalid;
    }
    Check::Valid(record, FRAME_HEADER + len)
}

/// Whether `after` (what follows a candidate frame) continues it consistently: the end of the
/// input, or the header of a frame with a length in range (which may itself be damaged or cut
/// off by the end: a record between two damaged ones is still kept). `None`: more input needed.
fn follows(after: &[u8], eof: bool) -> Option<bool> {
    if after.len() < FRAME_HEADER {
        return if eof { Some(true) } else { None };
    }
    let len = u32::from_le_bytes(after[0..4].try_into().expect("4 bytes")) as usize;
    Some(len != 0 && len <= MAX_RECORD)
}

impl FrameParser {
    /// A parser that resynchronises after damage (for journals).
    pub(crate) fn resyncing() -> FrameParser {
        FrameParser {
            resync: true,
            ..FrameParser::default()
        }
    }

    /// Adds input.
    pub(crate) fn feed(&mut self, data: &[u8]) {
        if self.start > 0 && (self.start == self.buf.len() || self.start > (1 << 20)) {
            self.buf.drain(..self.start);
            self.consumed_before += self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Marks the end of the input: what remains undecided is decided now.
    pub(crate) fn end_input(&mut self) {
        self.eof = true;
    }

    /// Offset of the next byte to examine.
    fn position(&self) -> u64 {
        (self.consumed_before + self.start) as u64
    }

    /// The next complete, valid record; `Ok(None)` when more input is needed (or, after
    /// [`FrameParser::end_input`], at a clean end); `Err(FrameEnd::Torn)` when parsing stopped
    /// at damage that it did not (or could not) resynchronise past.
    pub(crate) fn next(&mut self) -> Result<Option<Record>, FrameEnd> {
        if self.stopped {
            return Err(FrameEnd::Torn);
        }
        loop {
            let avail = &self.buf[self.start..];
            let Some(from) = self.damaged_from else {
                if avail.is_empty() {
                    return Ok(None);
                }
                match check(avail, self.eof) {
                    Check::Valid(record, len) => {
                        self.start += len;
                        self.valid_end = self.position();
                        return Ok(Some(record));
                    }
                    Check::NeedMore => return Ok(None),
                    Check::Invalid if !self.resync => {
                        self.stopped = true;
                        return Err(FrameEnd::Torn);
                    }
                    Check::Invalid => {
                        self.damaged_from = Some(self.position());
                        self.work = 0;
                        self.start += 1;
                        continue;
                    }
                }
            };
            if avail.is_empty() {
                if self.eof {
                    // Damage that reaches the end: a torn tail.
                    self.stopped = true;
                    return Err(FrameEnd::Torn);
                }
                return Ok(None);
            }
            if self.position() - from > RESYNC_SCAN || self.work > RESYNC_WORK {
                self.gave_up = Some(from);
                self.stopped = true;
                return Err(FrameEnd::Torn);
            }
            let eof = self.eof;
            match check(avail, eof) {
                Check::NeedMore => return Ok(None),
                Check::Invalid | Check::Valid(Record::Header { .. }, _) => self.start += 1,
                Check::Valid(record, len) => {
                    self.work += len as u64;
                    match follows(&avail[len..], eof) {
                        None => return Ok(None),
                        Some(false) => self.start += 1,
                        Some(true) => {
                            self.damaged.push(from..self.position());
                            self.damaged_from = None;
                            self.start += len;
                            self.valid_end = self.position();
                            return Ok(Some(record));
                        }
                    }
                }
            }
        }
    }

    /// Offset just past the last whole, valid frame (from the first byte fed).
    pub(crate) fn consumed(&self) -> u64 {
        self.valid_end
    }

    /// The damaged ranges skipped so far, each followed by a valid frame.
    pub(crate) fn damaged(&self) -> &[Range<u64>] {
        &self.damaged
    }

    /// Where a damaged region began that resynchronisation gave up on (its bounds exceeded):
    /// from there on nothing was checked.
    pub(crate) fn gave_up(&self) -> Option<u64> {
        self.gave_up
    }
}
