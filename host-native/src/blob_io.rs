//! Blob streaming through `std::io`.

use crate::cache::Shared;
use crate::engine::Handle;
use ocicache_core::{Digest, Error, ErrorKind, Result};
use std::io;
use std::sync::Arc;

/// Wraps a cache error in an `io::Error` (kind `InvalidData` for `Corrupted`, digest and size
/// mismatches, `NotFound` for `NotFound`, `StorageFull` for a full disk or cache, `Other`
/// otherwise). [`error_of`] gets it back.
pub fn to_io_error(e: Error) -> io::Error {
    let kind = match e.kind() {
        ErrorKind::Corrupted | ErrorKind::DigestMismatch | ErrorKind::SizeMismatch => {
            io::ErrorKind::InvalidData
        }
        ErrorKind::NotFound => io::ErrorKind::NotFound,
        ErrorKind::Full => io::ErrorKind::StorageFull,
        ErrorKind::Storage
            if matches!(&e, Error::Storage(ocicache_core::StorageError::NoSpace)) =>
        {
            io::ErrorKind::StorageFull
        }
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

/// The cache error inside an `io::Error` returned by a [`BlobReader`] or [`BlobWriter`], if it
/// is one.
///
/// ```
/// use ocicache::{Error, ErrorKind, error_of, to_io_error};
/// let io = to_io_error(Error::NotFound("blob".into()));
/// assert_eq!(error_of(&io).unwrap().kind(), ErrorKind::NotFound);
/// ```
pub fn error_of(e: &io::Error) -> Option<&Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<Error>())
}

/// A blob being streamed into the cache: [`io::Write`] its bytes, then [`BlobWriter::commit`].
/// Nothing becomes visible before a successful commit; dropping the writer aborts it.
/// Made by [`crate::Cache::blob_writer`].
#[must_use = "commit the writer, or it is aborted when dropped"]
pub struct BlobWriter {
    shared: Arc<Shared>,
    handle: Option<Handle>,
    written: u64,
}

impl BlobWriter {
    pub(crate) fn new(shared: Arc<Shared>, handle: Handle) -> BlobWriter {
        BlobWriter {
            shared,
            handle: Some(handle),
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Verifies size and digest and, if they match, makes the blob visible durably. On a
    /// mismatch nothing is stored (`DigestMismatch`, `SizeMismatch`).
    pub fn commit(mut self) -> Result<Digest> {
        let handle = self
            .handle
            .take()
            .ok_or_else(|| Error::InvalidArgument("blob writer already finished".into()))?;
        self.shared.locked(|e| e.commit_blob(handle))
    }

    /// Appends a chunk, with the cache's own error (the `io::Write` path wraps it).
    pub(crate) fn write_chunk(&mut self, buf: &[u8]) -> Result<()> {
        let h = self
            .handle
            .ok_or_else(|| Error::InvalidArgument("blob writer already finished".into()))?;
        if buf.is_empty() {
            return Ok(());
        }
        self.shared.locked(|e| e.write_blob(h, buf))?;
        self.written += buf.len() as u64;
        Ok(())
    }

    /// A writer that already holds `written` bytes (a resumed download).
    pub(crate) fn resumed(shared: Arc<Shared>, handle: Handle, written: u64) -> BlobWriter {
        BlobWriter {
            shared,
            handle: Some(handle),
            written,
        }
    }

    /// Keeps what was written for a later resumed download (where the storage keeps
    /// partials; otherwise as [`BlobWriter::abort`]).
    pub(crate) fn keep(mut self) {
        if let Some(h) = self.handle.take() {
            let _ = self.shared.locked(|e| {
                e.keep_blob(h);
                Ok(())
            });
        }
    }

    /// Discards what was written.
    pub fn abort(mut self) {
        self.abort_now();
    }

    fn abort_now(&mut self) {
        if let Some(h) = self.handle.take() {
            // If the lock cannot be taken, the temp stays until the cache closes (and is
            // cleared by the next open): nothing is visible either way.
            let _ = self.shared.locked(|e| {
                e.abort_blob(h);
                Ok(())
            });
        }
    }
}

impl io::Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(h) = self.handle else {
            return Err(to_io_error(Error::InvalidArgument(
                "blob writer already finished".into(),
            )));
        };
        if buf.is_empty() {
            return Ok(0);
        }
        self.shared
            .locked(|e| e.write_blob(h, buf))
            .map_err(to_io_error)?;
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        self.abort_now();
    }
}

/// A blob streamed out of the cache through [`io::Read`], verified as it streams: the last
/// bytes are delivered only after the whole blob hashed to its digest, and a mismatch is an
/// `io::Error` of kind `InvalidData` wrapping the core's `Corrupted` ([`error_of`]). Made by
/// [`crate::Cache::blob_reader`]; closed when dropped.
pub struct BlobReader {
    shared: Arc<Shared>,
    handle: Handle,
    size: u64,
    position: u64,
    digest: Digest,
}

impl BlobReader {
    pub(crate) fn new(shared: Arc<Shared>, handle: Handle, size: u64, digest: Digest) -> Self {
        BlobReader {
            shared,
            handle,
            size,
            position: 0,
            digest,
        }
    }

    /// The blob's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes read so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
}

impl io::Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let h = self.handle;
        // Any chunk may quarantine the entry (the last one on a digest mismatch, any one that
        // finds the file cut short): each runs under the directory lock.
        let n = self
            .shared
            .locked(|e| e.read_blob(h, buf))
            .map_err(to_io_error)?;
        self.position += n as u64;
        Ok(n)
    }
}

impl Drop for BlobReader {
    fn drop(&mut self) {
        let h = self.handle;
        let _ = self.shared.locked(|e| {
            e.close_blob(h);
            Ok(())
        });
    }
}
