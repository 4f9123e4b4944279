//! Little-endian byte encoding for journal records.

use crate::digest::{Algorithm, Digest};
use crate::key::{Key, Kind};

/// Appends fields to a buffer.
#[derive(Default)]
pub(crate) struct Encoder {
    pub(crate) buf: Vec<u8>,
}

impl Encoder {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
    }
    pub(crate) fn digest(&mut self, d: &Digest) {
        self.u8(d.algorithm().code());
        self.buf.extend_from_slice(d.as_bytes());
    }
    pub(crate) fn key(&mut self, k: &Key) {
        self.u8(k.kind.code());
        self.digest(&k.digest);
    }
}

/// Reads fields back; every getter fails cleanly on short or malformed input.
pub(crate) struct Decoder<'a> {
    buf: &'a [u8],
}

/// A malformed record body (the frame's checksum passed, so this is a format bug or version skew).
#[derive(Debug)]
pub(crate) struct Malformed;

impl<'a> Decoder<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Decoder<'a> {
        Decoder { buf }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.buf.len() < n {
            return Err(Malformed);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| Malformed)?,
        ))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| Malformed)?,
        ))
    }
    /// A count of items that follow, each at least `min_item` bytes long: refused when the
    /// bytes left could not hold that many, so that no stored count sizes an allocation beyond
    /// the bytes actually read.
    pub(crate) fn count(&mut self, min_item: usize) -> Result<usize, Malformed> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item) > self.buf.len() {
            return Err(Malformed);
        }
        Ok(n)
    }
    pub(crate) fn str(&mut self) -> Result<String, Malformed> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| Malformed)
    }
    pub(crate) fn digest(&mut self) -> Result<Digest, Malformed> {
        let alg = Algorithm::from_code(self.u8()?).ok_or(Malformed)?;
        Digest::from_raw(alg, self.take(alg.digest_len())?).ok_or(Malformed)
    }
    pub(crate) fn key(&mut self) -> Result<Key, Malformed> {
        let kind = Kind::from_code(self.u8()?).ok_or(Malformed)?;
        Ok(Key {
            kind,
            digest: self.digest()?,
        })
    }
    pub(crate) fn finish(self) -> Result<(), Malformed> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Malformed)
        }
    }
}
