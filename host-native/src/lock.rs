//! The directory's OS file lock, shared by every process using one cache directory.

use ocicache_core::{Error, Result, StorageError};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The name of the lock file in the cache root.
pub(crate) const LOCK_FILE: &str = "lock";
/// The Node host's claim on a directory (`bindings-js/src/dir-lock.js`): Node has no `flock`,
/// so it holds the directory for as long as its cache is open, and this host stays out.
pub(crate) const NODE_LOCK_FILE: &str = "node.lock";

/// An exclusive `flock` on `<root>/lock`, taken around every operation that reads or mutates
/// the index.
#[derive(Debug)]
pub(crate) struct DirLock {
    file: File,
    node_lock: PathBuf,
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
        Ok(DirLock {
            file,
            node_lock: root.join(NODE_LOCK_FILE),
        })
    }

    /// Blocks until this process holds the lock exclusively. Fails (holding nothing) while a
    /// live Node process has the directory open.
    pub(crate) fn acquire(&self) -> Result<DirLockGuard<'_>> {
        self.file
            .lock()
            .map_err(|e| Error::Storage(StorageError::Io(format!("locking the cache: {e}"))))?;
        let guard = DirLockGuard { file: &self.file };
        if let Some(holder) = node_holder(&self.node_lock) {
            return Err(Error::Storage(StorageError::Io(format!(
                "the directory is open in a Node process ({holder}; {}); close it first",
                self.node_lock.display()
            ))));
        }
        Ok(guard)
    }
}

impl Drop for DirLockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Who holds `node.lock`, if it is held: a process alive on this host, or one on another host
/// (which cannot be checked, so it counts as alive, as the Node host itself decides). A lock
/// whose process is gone is stale and ignored (the next Node opener takes it over).
fn node_holder(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let owner = serde_json::from_str::<serde_json::Value>(&text).ok();
    let Some(pid) = owner
        .as_ref()
        .and_then(|o| o.get("pid"))
        .and_then(serde_json::Value::as_u64)
    else {
        // Being written by a Node opener right now (or damaged): live unless it has been
        // unreadable for longer than a write takes, as the Node host decides too.
        let age = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default();
        return (age < std::time::Duration::from_secs(10)).then(|| "a lock being written".into());
    };
    let host = owner
        .as_ref()
        .and_then(|o| o.get("hostname"))
        .and_then(serde_json::Value::as_str);
    let here = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok();
    match (host, here) {
        (Some(h), Some(here)) if h != here => Some(format!("pid {pid} on host {h}")),
        // On this host: alive while /proc knows the pid.
        _ => Path::new("/proc")
            .join(pid.to_string())
            .exists()
            .then(|| format!("pid {pid}")),
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
