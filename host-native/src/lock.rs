//! The directory's OS file lock, shared by every process using one cache directory.

use ocicache_core::{Error, Result, StorageError};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The name of the lock file in the cache root.
pub(crate) const LOCK_FILE: &str = "lock";

/// An exclusive `flock` on `<root>/lock`, taken around every operation that reads or mutates
/// the index.
#[derive(Debug)]
pub(crate) struct DirLock {
    file: File,
}

/// Holds the lock until dropped.
pub(crate) struct DirLockGuard<'a> {
    file: &'a File,
}

impl DirLock {
    /// Opens (creating) the lock file; does not lock.
    pub(crate) fn open(root: &Path) -> Result<DirLock> {
        let path = root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| io_to_storage(e, &path))?;
        Ok(DirLock { file })
    }

    /// Blocks until this process holds the lock exclusively.
    pub(crate) fn acquire(&self) -> Result<DirLockGuard<'_>> {
        self.file
            .lock()
            .map_err(|e| Error::Storage(StorageError::Io(format!("locking the cache: {e}"))))?;
        Ok(DirLockGuard { file: &self.file })
    }
}

impl Drop for DirLockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Maps an I/O error on a host file (lock, config) to the core's storage error.
pub(crate) fn io_to_storage(e: io::Error, path: &Path) -> Error {
    Error::Storage(match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => StorageError::NoSpace,
        Some(libc::ENOENT) => StorageError::NotFound(path.display().to_string()),
        Some(libc::ELOOP) => {
            StorageError::InvalidPath(format!("{}: is a symbolic link", path.display()))
        }
        _ => StorageError::Io(format!("{}: {e}", path.display())),
    })
}
