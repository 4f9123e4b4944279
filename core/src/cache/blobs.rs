//! Blobs by digest, streamed in and out in chunks with constant memory.

use super::Cache;
use crate::digest::{Algorithm, Digest};
use crate::error::{Error, Result};
use crate::hashing::Hasher;
use crate::key::Key;
use crate::layout;
use crate::metrics::OpClass;
use crate::storage::{StorageError, TempId};

/// A blob being written. Feed it with [`Cache::write_blob`], then [`Cache::commit_blob`] or
/// [`Cache::abort_blob`]. A writer dropped without either leaves a temp object, removed at the
/// next open; nothing ever appears under a final path without having been verified.
#[must_use = "commit or abort the writer"]
pub struct BlobWriter {
    temp: Option<TempId>,
    expected: Option<Digest>,
    expected_size: Option<u64>,
    hasher: Hasher,
    written: u64,
    /// Bytes of the cap held for this writer (its announced size) until it commits or aborts.
    reserved: u64,
    /// Begun by `resume_blob`: its bytes can be kept for a later writer.
    partial: bool,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
    /// The digest the writer was opened with, if any.
    pub fn expected_digest(&self) -> Option<&Digest> {
        self.expected.as_ref()
    }
}

/// A blob being read. Read with [`Cache::read_blob`], finish with [`Cache::close_blob`]. While
/// open, the entry is protected from eviction.
#[must_use = "close the reader"]
pub struct BlobReader {
    key: Key,
    path: String,
    size: u64,
    offset: u64,
    hasher: Option<Hasher>,
    incarnation: u32,
    id: crate::index::EntryId,
}

impl BlobReader {
    /// The blob's size.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Bytes read so far.
    pub fn position(&self) -> u64 {
        self.offset
    }
    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.key.digest
    }
}

impl Cache {
    /// Starts writing a blob. With `expected` the bytes must hash to it; without, the blob is
    /// stored under its SHA-256. With `size` the bytes must have exactly that length. A blob
    /// larger than the cap fails with `Full` before anything is written.
    ///
    /// An announced size counts against the cap from now until the writer commits or aborts:
    /// room is made for it here (evicting as a put would), and other puts of this cache count
    /// it, so that concurrent writers cannot together take usage past the cap. A size that
    /// cannot fit beside the entries that cannot be evicted and the other writers' sizes fails
    /// with `Full` before any byte is written.
    pub fn begin_blob(
        &mut self,
        expected: Option<&Digest>,
        size: Option<u64>,
    ) -> Result<BlobWriter> {
        self.begin_writer(expected, size, true)
    }

    /// [`Cache::begin_blob`]; `reserve: false` for bytes already in hand (a one-shot put), which
    /// occupy no temp while a download streams: room is made at commit, after they verified,
    /// so that bad input evicts nothing.
    fn begin_writer(
        &mut self,
        expected: Option<&Digest>,
        size: Option<u64>,
        reserve: bool,
    ) -> Result<BlobWriter> {
        // Not timed: a put's latency is measured once, at commit.
        self.counted(|c| {
            c.refuse_larger_than_cap(size)?;
            let algorithm = expected.map_or(Algorithm::Sha256, Digest::algorithm);
            // A live entry with the expected digest holds these bytes already: a re-put
            // needs no room (as at commit).
            let present = expected.is_some_and(|d| {
                c.index
                    .find(&Key::blob(d.clone()))
                    .is_some_and(|id| !c.index.get(id).is_quarantined())
            });
            let reserved = if present || !reserve {
                0
            } else {
                size.unwrap_or(0)
            };
            if reserved > 0 {
                c.make_room(reserved)?;
            }
            let temp = c.storage.create_temp(size)?;
            c.open_writers += 1;
            c.reserved += reserved;
            Ok(BlobWriter {
                temp: Some(temp),
                expected: expected.cloned(),
                expected_size: size,
                hasher: Hasher::new(c.hasher.as_ref(), algorithm),
                written: 0,
                reserved,
                partial: false,
            })
        })
    }

    /// Appends a chunk. On any error the writer is aborted and every later call fails.
    pub fn write_blob(&mut self, writer: &mut BlobWriter, chunk: &[u8]) -> Result<()> {
        let Some(temp) = writer.temp else {
            return Err(Error::InvalidArgument(
                "blob writer already finished or failed".into(),
            ));
        };
        let total = writer.written + chunk.len() as u64;
        let failure = match writer.expected_size {
            Some(expected) if total > expected => Some(Error::SizeMismatch {
                expected,
                actual: total,
            }),
            _ if total > self.config.max_bytes => Some(Error::Full {
                needed: total,
                available: self.config.max_bytes,
                capacity: self.config.max_bytes,
            }),
            _ => self.storage.write_temp(temp, chunk).err().map(Error::from),
        };
        if let Some(e) = failure {
            self.abort_blob(writer);
            let now = self.now();
            self.metrics.error(now);
            return Err(e);
        }
        writer.hasher.update(chunk);
        writer.written = total;
        Ok(())
    }

    /// Starts, or continues, a download of `expected` whose bytes a storage can keep across
    /// pulls and processes ([`crate::Storage::open_partial`]): the bytes an earlier writer
    /// kept ([`Cache::keep_blob`]) are hashed again once, and the writer stands after them
    /// ([`BlobWriter::written`]). `None` when the storage keeps no partials (use
    /// [`Cache::begin_blob`]). Otherwise as `begin_blob`: `size` is announced and reserved.
    ///
    /// ```
    /// use ocicache_core::{Cache, ManualClock, hashing::digest_of, BuiltinHasher, Algorithm};
    /// use ocicache_core::storage::MemoryStorage;
    /// let storage = MemoryStorage::new();
    /// let data = b"a download that breaks half-way";
    /// let d = digest_of(&BuiltinHasher, Algorithm::Sha256, data)?;
    /// let mut cache = Cache::builder(storage.clone(), ManualClock::new(0)).open()?;
    /// let mut w = cache.resume_blob(&d, Some(data.len() as u64))?.expect("memory keeps partials");
    /// cache.write_blob(&mut w, &data[..10])?;
    /// cache.keep_blob(w); // the connection broke
    /// drop(cache);
    /// // Another process:
    /// let mut cache = Cache::builder(storage, ManualClock::new(0)).open()?;
    /// let mut w = cache.resume_blob(&d, Some(data.len() as u64))?.unwrap();
    /// assert_eq!(w.written(), 10);
    /// cache.write_blob(&mut w, &data[10..])?;
    /// assert_eq!(cache.commit_blob(w)?, d);
    /// # Ok::<(), ocicache_core::Error>(())
    /// ```
    pub fn resume_blob(
        &mut self,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<Option<BlobWriter>> {
        self.counted(|c| {
            c.refuse_larger_than_cap(size)?;
            let path = layout::partial_path(expected);
            let Some((temp, len)) = c.storage.open_partial(&path)? else {
                return Ok(None);
            };
            let mut hasher = Hasher::new(c.hasher.as_ref(), expected.algorithm());
            let mut done = 0u64;
            let valid = size.is_none_or(|s| len <= s);
            if valid {
                // Hashed again once: what was kept is read back, never trusted blind.
                let mut buf = vec![0u8; (len.min(1 << 20) as usize).max(1)];
                while done < len {
                    let want = ((len - done) as usize).min(buf.len());
                    let n = match c.storage.read_at(&path, done, &mut buf[..want]) {
                        Ok(n) => n,
                        Err(e) => {
                            let _ = c.storage.abort_temp(temp);
                            return Err(e.into());
                        }
                    };
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    done += n as u64;
                }
            }
            if !valid || done != len {
                // Longer than the blob, or shorter than it said: start over.
                let _ = c.storage.abort_temp(temp);
                return match c.storage.open_partial(&path)? {
                    Some((temp, _)) => c.partial_writer(
                        temp,
                        expected,
                        size,
                        Hasher::new(c.hasher.as_ref(), expected.algorithm()),
                        0,
                    ),
                    None => Ok(None),
                };
            }
            c.partial_writer(temp, expected, size, hasher, len)
        })
    }

    fn partial_writer(
        &mut self,
        temp: TempId,
        expected: &Digest,
        size: Option<u64>,
        hasher: Hasher,
        written: u64,
    ) -> Result<Option<BlobWriter>> {
        let reserved = size.unwrap_or(0).saturating_sub(written);
        if reserved > 0
            && let Err(e) = self.make_room(reserved)
        {
            let _ = self.storage.keep_partial(temp);
            return Err(e);
        }
        self.open_writers += 1;
        self.reserved += reserved;
        Ok(Some(BlobWriter {
            temp: Some(temp),
            expected: Some(expected.clone()),
            expected_size: size,
            hasher,
            written,
            reserved,
            partial: true,
        }))
    }

    /// Closes a writer begun by [`Cache::resume_blob`], keeping its bytes for a later one (in
    /// this process or another); any other writer is aborted.
    pub fn keep_blob(&mut self, mut writer: BlobWriter) {
        if !writer.partial {
            return self.abort_blob(&mut writer);
        }
        if let Some(temp) = writer.temp.take() {
            self.open_writers = self.open_writers.saturating_sub(1);
            self.reserved = self.reserved.saturating_sub(writer.reserved);
            let _ = self.storage.keep_partial(temp);
        }
    }

    /// A blob announced larger than the whole cap fails with `Full` before anything is written.
    fn refuse_larger_than_cap(&self, size: Option<u64>) -> Result<()> {
        match size {
            Some(size) if size > self.config.max_bytes => Err(Error::Full {
                needed: size,
                available: self.config.max_bytes,
                capacity: self.config.max_bytes,
            }),
            _ => Ok(()),
        }
    }

    /// Discards a writer's bytes.
    pub fn abort_blob(&mut self, writer: &mut BlobWriter) {
        if let Some(temp) = writer.temp.take() {
            self.open_writers = self.open_writers.saturating_sub(1);
            self.reserved = self.reserved.saturating_sub(writer.reserved);
            let _ = self.storage.abort_temp(temp);
        }
    }

    /// Verifies size and digest and, if they match, makes the blob visible durably. On a
    /// mismatch nothing is stored.
    pub fn commit_blob(&mut self, mut writer: BlobWriter) -> Result<Digest> {
        self.timed(OpClass::Put, |c| {
            let Some(temp) = writer.temp.take() else {
                return Err(Error::InvalidArgument(
                    "blob writer already finished or failed".into(),
                ));
            };
            c.open_writers = c.open_writers.saturating_sub(1);
            // Its own size is counted as the incoming entry from here on.
            c.reserved = c.reserved.saturating_sub(writer.reserved);
            let fail = |c: &mut Cache, e: Error| {
                let _ = c.storage.abort_temp(temp);
                Err(e)
            };
            if let Some(expected) = writer.expected_size
                && writer.written != expected
            {
                return fail(
                    c,
                    Error::SizeMismatch {
                        expected,
                        actual: writer.written,
                    },
                );
            }
            let actual = match writer.hasher.finish() {
                Ok(d) => d,
                Err(e) => return fail(c, e.into()),
            };
            if let Some(expected) = &writer.expected
                && *expected != actual
            {
                return fail(
                    c,
                    Error::DigestMismatch {
                        expected: expected.to_string(),
                        actual: actual.to_string(),
                    },
                );
            }
            let key = Key::blob(actual.clone());
            if let Err(e) = c.content_changing() {
                return fail(c, e.into());
            }
            let existing = match c.prepare_put(&key, writer.written) {
                Ok(r) => r,
                Err(e) => return fail(c, e),
            };
            c.storage.commit_temp(temp, &layout::entry_path(&key))?;
            let entry = c.new_entry(key, writer.written);
            c.index_committed(entry, Vec::new(), existing)?;
            Ok(actual)
        })
    }

    /// Stores a small blob in one call.
    pub fn put_blob(&mut self, expected: Option<&Digest>, bytes: &[u8]) -> Result<Digest> {
        let mut w = self.begin_writer(expected, Some(bytes.len() as u64), false)?;
        self.write_blob(&mut w, bytes)?;
        self.commit_blob(w)
    }

    /// Opens a blob for reading. With `verify_reads` (the default) the bytes are re-hashed as
    /// they stream and a mismatch fails the final read with `Corrupted` (the entry is
    /// quarantined and never served again).
    pub fn open_blob(&mut self, digest: &Digest) -> Result<BlobReader> {
        self.timed(OpClass::Get, |c| {
            let key = Key::blob(digest.clone());
            let id = c.lookup_for_read(&key)?;
            let path = layout::entry_path(&key);
            let size = c.index.get(id).size();
            match c.storage.size(&path)? {
                Some(s) if s == size => {}
                Some(s) => {
                    return Err(c.quarantine(id, format!("{s} bytes stored, {size} expected")));
                }
                None => return Err(c.quarantine(id, "file missing".into())),
            }
            let incarnation = c.record_access(id, true);
            let hasher = c
                .config
                .verify_reads
                .then(|| Hasher::new(c.hasher.as_ref(), digest.algorithm()));
            Ok(BlobReader {
                key,
                path,
                size,
                offset: 0,
                hasher,
                incarnation,
                id,
            })
        })
    }

    /// Reads the next chunk into `buf`; `Ok(0)` at the end. The final chunk is released only
    /// after the whole blob verified.
    pub fn read_blob(&mut self, reader: &mut BlobReader, buf: &mut [u8]) -> Result<usize> {
        let remaining = reader.size - reader.offset;
        if remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let n = match self
            .storage
            .read_at(&reader.path, reader.offset, &mut buf[..want])
        {
            Ok(0) => return Err(self.reader_corrupted(reader, "file shorter than indexed".into())),
            Ok(n) => n,
            Err(StorageError::NotFound(_)) => return Err(Error::NotFound(reader.key.to_string())),
            Err(e) => return Err(e.into()),
        };
        reader.offset += n as u64;
        self.metrics.retrieved(n as u64);
        if let Some(h) = reader.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        if reader.offset == reader.size
            && let Some(h) = reader.hasher.take()
        {
            let actual = match h.finish() {
                Ok(d) => d,
                Err(e) => {
                    // The bytes were not judged: no quarantine, and the final chunk is withheld.
                    reader.offset = reader.size;
                    return Err(e.into());
                }
            };
            if actual != reader.key.digest {
                return Err(self.reader_corrupted(reader, format!("bytes hash to {actual}")));
            }
        }
        self.metrics.served(n as u64);
        Ok(n)
    }

    fn reader_corrupted(&mut self, reader: &mut BlobReader, detail: String) -> Error {
        reader.offset = reader.size;
        reader.hasher = None;
        // `read_blob` is not `timed`, so count the failed read here (as a manifest's would be).
        let now = self.now();
        self.metrics.error(now);
        match self.index.find(&reader.key) {
            Some(id) if id == reader.id && self.index.get(id).incarnation == reader.incarnation => {
                self.quarantine(id, detail)
            }
            _ => Error::Corrupted {
                what: reader.key.to_string(),
                detail,
            },
        }
    }

    /// Finishes a reader, releasing its protection from eviction.
    pub fn close_blob(&mut self, reader: BlobReader) {
        self.index.end_read(&reader.key, reader.incarnation);
    }

    /// Reads a whole (small) blob, verified before it is returned.
    pub fn get_blob(&mut self, digest: &Digest) -> Result<Vec<u8>> {
        let mut reader = self.open_blob(digest)?;
        // The recorded size only hints the capacity (capped); memory grows with bytes read.
        let hint = reader.size().min(64 << 20);
        let mut out = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
        // No bigger than the blob: zeroing a buffer costs, in wasm most of all.
        let mut buf = vec![0u8; usize::try_from(hint.clamp(1, 1 << 16)).unwrap_or(1 << 16)];
        let result = loop {
            match self.read_blob(&mut reader, &mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e),
            }
        };
        self.close_blob(reader);
        result.map(|()| out)
    }

    /// Whether a servable blob is stored.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.has(&Key::blob(digest.clone()))
    }

    /// Deletes a blob; `false` if absent.
    pub fn delete_blob(&mut self, digest: &Digest) -> Result<bool> {
        self.delete(&Key::blob(digest.clone()))
    }
}
