//! One download per blob across processes: a pull holds `<root>/locks/blob-<alg>-<hex>`
//! (an exclusive `flock`) from before it asks for a blob until the blob is committed, and
//! looks in the cache once it has the lock. A second process pulling the same blob waits, then
//! finds it stored instead of downloading it again.
//!
//! Lock files exist only while someone holds them: the holder removes the name before it
//! unlocks, and a waiter that then gets the lock on the removed file sees that the name no
//! longer points at it and opens the name again.

use ocicache_core::Digest;
use rustix::fs::{FlockOperation, Mode, OFlags};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The directory of the per-blob lock files, under the cache root.
pub const LOCKS_DIR: &str = "locks";

/// How often a waiter looks again (and whether it should give up).
const POLL: Duration = Duration::from_millis(20);

/// A held per-blob lock; released (and its file removed) when dropped.
pub(crate) struct BlobLock {
    path: PathBuf,
    _fd: OwnedFd,
}

impl BlobLock {
    /// Waits for the lock on `digest` under `root`. Returns `Ok(None)` if `stop` was set
    /// while waiting.
    pub(crate) fn acquire(
        root: &Path,
        digest: &Digest,
        stop: &AtomicBool,
    ) -> io::Result<Option<BlobLock>> {
        let dir = root.join(LOCKS_DIR);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{}: not a directory",
                    dir.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
        let path = dir.join(format!(
            "blob-{}-{}",
            digest.algorithm().name(),
            digest.hex()
        ));
        loop {
            let fd = rustix::fs::open(
                &path,
                OFlags::CREATE | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            loop {
                match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                    Ok(()) => break,
                    Err(rustix::io::Errno::WOULDBLOCK) => {
                        if stop.load(Ordering::Relaxed) {
                            return Ok(None);
                        }
                        std::thread::sleep(POLL);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            // The previous holder may have removed the name after we opened it.
            let held = rustix::fs::fstat(&fd)?;
            match rustix::fs::lstat(&path) {
                Ok(now) if now.st_dev == held.st_dev && now.st_ino == held.st_ino => {
                    return Ok(Some(BlobLock { path, _fd: fd }));
                }
                Ok(_) => {}
                Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Drop for BlobLock {
    fn drop(&mut self) {
        // Removed while held, so that no lock file outlives its download.
        let _ = std::fs::remove_file(&self.path);
    }
}
