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

/// Format version written in every header.
pub const FORMAT_VERSION: u32 = 1;
/// File magic at the start of every header record.
pub const MAGIC: &[u8; 8] = b"OCICACHE";
/// Largest frame body accepted; anything larger is treated as a torn or corrupt frame.
pub const MAX_RECORD: usize = 64 << 20;
/// Frame header size.
pub const FRAME_HEADER: usize = 8;
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

/// Splits frames off a byte stream that arrives in chunks.
#[derive(Default)]
pub(crate) struct FrameParser {
    buf: Vec<u8>,
    start: usize,
    /// Bytes dropped from the front of `buf` by earlier feeds.
    consumed_before: usize,
}

/// Why frame parsing stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameEnd {
    /// All input consumed on a frame boundary.
    Clean,
    /// Input ended inside a frame, or a frame failed its checksum: a torn or damaged tail.
    Torn,
}

impl FrameParser {
    /// Adds input.
    pub(crate) fn feed(&mut self, data: &[u8]) {
        if self.start > 0 && (self.start == self.buf.len() || self.start > (1 << 20)) {
            self.buf.drain(..self.start);
            self.consumed_before += self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete, checksummed record; `Ok(None)` when more input is needed;
    /// `Err(FrameEnd::Torn)` on a damaged frame.
    pub(crate) fn next(&mut self) -> Result<Option<Record>, FrameEnd> {
        let avail = &self.buf[self.start..];
        if avail.len() < FRAME_HEADER {
            return Ok(None);
        }
        let len = u32::from_le_bytes(avail[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(avail[4..8].try_into().expect("4 bytes"));
        if len == 0 || len > MAX_RECORD {
            return Err(FrameEnd::Torn);
        }
        if avail.len() < FRAME_HEADER + len {
            return Ok(None);
        }
        let body = &avail[FRAME_HEADER..FRAME_HEADER + len];
        if crc32fast::hash(body) != crc {
            return Err(FrameEnd::Torn);
        }
        let record = Record::decode_body(body).map_err(|_| FrameEnd::Torn)?;
        self.start += FRAME_HEADER + len;
        Ok(Some(record))
    }

    /// Bytes of input consumed by whole, valid frames so far (total, across feeds).
    pub(crate) fn consumed(&self) -> usize {
        self.consumed_before + self.start
    }

    /// Whether unconsumed bytes remain (at end of input: a torn tail).
    pub(crate) fn has_leftover(&self) -> bool {
        self.start < self.buf.len()
    }
}
