//! The storage a host lends the core: a small content-store interface mirroring the WIT
//! `storage` import.
//!
//! Paths are relative, `/`-separated, and built by the core only from fixed words and validated
//! digests (see [`crate::layout`]); hosts must still confine them under their root. The contract
//! every host implements:
//!
//! - **Temp objects** take streamed writes and become visible only through [`Storage::commit_temp`],
//!   which atomically and *durably* replaces the final path (native: write, fsync, rename, fsync
//!   the directory). An aborted or abandoned temp never appears under a final path.
//! - [`Storage::append`] is a durable append (the journal).
//! - [`Storage::clear_temps`] removes temps left by a crashed earlier run.
//! - [`Storage::remove`] is durable too: once it returns, the object stays gone after a power
//!   loss (native: unlink, then fsync the directory), so a `Remove` record cannot outlive it.
//! - Everything else is plain: ranged reads, size, listing a directory.
//!
//! "Durably" is the [`Durability::Strict`] level, where every storage starts. The cache asks
//! for its configured level with [`Storage::set_durability`] once opening has recovered the index
//! (and for `Strict` again around each compaction of the index); a storage that honours
//! [`Durability::Relaxed`] then skips its syncs:
//! commits, appends and removals stay atomic and ordered for other readers, but a power loss may
//! undo recent ones or leave their files torn.

mod faulty;
mod memory;

pub use faulty::{Fault, FaultyStorage};
pub use memory::MemoryStorage;

use crate::config::Durability;
use serde::{Deserialize, Serialize};

/// A temp object being written, named by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TempId(pub u64);

/// A failure reported by the host's storage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum StorageError {
    /// The path does not exist.
    #[error("no such object: {0}")]
    NotFound(String),
    /// The device or quota is full.
    #[error("no space left")]
    NoSpace,
    /// The host refused a path (outside the root, malformed).
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// Any other I/O failure.
    #[error("I/O error: {0}")]
    Io(String),
}

/// What the core needs from the place it keeps its files.
pub trait Storage: Send {
    /// Creates an empty temp object. `size_hint` is the final size when the caller announced
    /// it: a host may reserve or preallocate that much (it is a hint, never a limit).
    fn create_temp(&mut self, size_hint: Option<u64>) -> Result<TempId, StorageError>;
    /// Appends bytes to a temp object.
    fn write_temp(&mut self, temp: TempId, data: &[u8]) -> Result<(), StorageError>;
    /// Atomically and (at [`Durability::Strict`]) durably makes the temp object the content of
    /// `path`, replacing any previous content. The temp is gone afterwards, whether this succeeds or fails.
    fn commit_temp(&mut self, temp: TempId, path: &str) -> Result<(), StorageError>;
    /// Discards a temp object.
    fn abort_temp(&mut self, temp: TempId) -> Result<(), StorageError>;
    /// Appends to `path`, creating it if needed; durably at [`Durability::Strict`].
    fn append(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError>;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at the end).
    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError>;
    /// The size of `path`, or `None` if it does not exist.
    fn size(&mut self, path: &str) -> Result<Option<u64>, StorageError>;
    /// The names (not paths) of the objects directly inside `dir`; empty if `dir` does not exist.
    /// A host may also name entries that are not objects (a symbolic link, a special file):
    /// [`Storage::size`] says `None` for them, and the integrity check reports them.
    fn list(&mut self, dir: &str) -> Result<Vec<String>, StorageError>;
    /// Calls `visit` with each name of [`Storage::list`] and its [`Storage::size`], in any
    /// order: what reopening after a crash needs of every content directory, in one pass and
    /// without a string kept per name. The default asks `size` per name; a host that learns
    /// sizes while listing (a `stat` relative to the open directory, a table of its own)
    /// overrides it.
    fn visit_sizes(
        &mut self,
        dir: &str,
        visit: &mut dyn FnMut(&str, Option<u64>),
    ) -> Result<(), StorageError> {
        let mut path = String::new();
        for name in self.list(dir)? {
            path.clear();
            path.push_str(dir);
            path.push('/');
            path.push_str(&name);
            let size = self.size(&path)?;
            visit(&name, size);
        }
        Ok(())
    }
    /// Removes `path`, durably at [`Durability::Strict`]; removing a missing path is not an
    /// error.
    fn remove(&mut self, path: &str) -> Result<(), StorageError>;
    /// Removes temp objects left over by earlier runs; returns how many.
    fn clear_temps(&mut self) -> Result<u64, StorageError>;

    /// Opens the partial download at `path` (`partials/<algorithm>/<hex>`, built by the core)
    /// as a temp object, created empty if absent: unlike other temps it outlives
    /// [`Storage::clear_temps`] and the process, until it is committed or aborted (or kept
    /// again with [`Storage::keep_partial`]). Writes append to it, [`Storage::read_at`] reads
    /// it at `path`. Returns its id and length, or `None` if this storage keeps no partials
    /// (the default: downloads then start over after a break in another pull).
    fn open_partial(&mut self, path: &str) -> Result<Option<(TempId, u64)>, StorageError> {
        let _ = path;
        Ok(None)
    }
    /// Closes a temp opened by [`Storage::open_partial`], keeping its bytes for a later one.
    fn keep_partial(&mut self, temp: TempId) -> Result<(), StorageError> {
        self.abort_temp(temp)
    }

    /// Asks for a durability level for the calls that follow; returns the level this storage
    /// honours from now on. A storage starts strict; the default keeps [`Durability::Strict`]
    /// whatever is asked: a storage that cannot relax stays strict and says so. The cache calls
    /// this at the end of opening (so that a new cache's index is durable before anything is
    /// stored in it) and around each compaction, so it may be called more than once.
    fn set_durability(&mut self, level: Durability) -> Durability {
        let _ = level;
        Durability::Strict
    }
}

/// Reads the first `len` bytes of an object; `Ok(None)` if it is shorter. The caller bounds
/// `len` by something other than stored bytes (a configured limit), so that no size a damaged
/// or hostile directory reports or records sizes an allocation.
pub(crate) fn read_exact(
    storage: &mut dyn Storage,
    path: &str,
    len: u64,
) -> Result<Option<Vec<u8>>, StorageError> {
    let mut out =
        vec![0; usize::try_from(len).map_err(|_| StorageError::Io("object too large".into()))?];
    let mut filled = 0;
    while filled < out.len() {
        let n = storage.read_at(path, filled as u64, &mut out[filled..])?;
        if n == 0 {
            return Ok(None);
        }
        filled += n;
    }
    Ok(Some(out))
}

/// Writes `data` to `path` through a temp object: all or nothing.
pub(crate) fn write_atomically(
    storage: &mut dyn Storage,
    path: &str,
    data: &[u8],
) -> Result<(), StorageError> {
    let temp = storage.create_temp(Some(data.len() as u64))?;
    if let Err(e) = storage.write_temp(temp, data) {
        let _ = storage.abort_temp(temp);
        return Err(e);
    }
    storage.commit_temp(temp, path)
}
