//! The directory's OS file lock, shared by every process using one cache directory, and the
//! exclusion with the Node host, which has no `flock`.
//!
//! Exclusion with Node holds in both directions because each side announces itself before it
//! checks for the other (docs/FORMAT.md, "Sharing a directory between processes"): this host
//! keeps a marker `<root>/native/<pid>-…` while it has the directory open (from the open of a
//! [`crate::Cache`] to its close, which covers its operations, writers and readers) and,
//! after creating it and before every operation, refuses to go on while `node.lock` names a
//! live process; Node creates `node.lock`, then backs off and waits while a live marker exists.
//! Of two that start together, at least one sees the other.

use ocicache_core::{Error, Result, StorageError};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The name of the lock file in the cache root.
pub(crate) const LOCK_FILE: &str = "lock";
/// The Node host's claim on a directory (`bindings-js/src/dir-lock.js`): Node has no `flock`,
/// so it holds the directory for as long as its cache is open, and this host stays out.
pub(crate) const NODE_LOCK_FILE: &str = "node.lock";
/// The directory of this host's markers: one file per process with work in flight.
pub(crate) const NATIVE_DIR: &str = "native";

/// An exclusive `flock` on `<root>/lock`, taken around every operation that reads or mutates
/// the index.
#[derive(Debug)]
pub(crate) struct DirLock {
    file: File,
    node_lock: PathBuf,
    presence: Arc<Presence>,
}

/// Holds the lock (and this process's marker) until dropped.
pub(crate) struct DirLockGuard<'a> {
    file: &'a File,
    _announced: Announced,
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
            presence: Arc::new(Presence {
                dir: root.join(NATIVE_DIR),
                state: Mutex::new(PresenceState {
                    count: 0,
                    marker: None,
                }),
            }),
        })
    }

    /// Blocks until this process holds the lock exclusively. Fails (holding nothing) while a
    /// live Node process has the directory open.
    pub(crate) fn acquire(&self) -> Result<DirLockGuard<'_>> {
        self.file
            .lock()
            .map_err(|e| Error::Storage(StorageError::Io(format!("locking the cache: {e}"))))?;
        let announced = match self.announce() {
            Ok(a) => a,
            Err(e) => {
                let _ = self.file.unlock();
                return Err(e);
            }
        };
        test_hold::maybe_hold();
        Ok(DirLockGuard {
            file: &self.file,
            _announced: announced,
        })
    }

    /// Announces this process (its marker in `native/`, kept while any [`Announced`] lives),
    /// then checks that no live Node process has the directory open; fails, announcing nothing,
    /// if one has.
    pub(crate) fn announce(&self) -> Result<Announced> {
        let announced = self.presence.enter()?;
        if let Some(holder) = node_holder(&self.node_lock)? {
            return Err(Error::Storage(StorageError::Io(format!(
                "the directory is open in a Node process ({holder}; {}); close it first",
                self.node_lock.display()
            ))));
        }
        Ok(announced)
    }
}

/// This process's marker in `<root>/native/`: present while at least one [`Announced`] lives.
#[derive(Debug)]
struct Presence {
    dir: PathBuf,
    state: Mutex<PresenceState>,
}

#[derive(Debug)]
struct PresenceState {
    count: usize,
    marker: Option<PathBuf>,
}

/// Keeps this process's marker in place until dropped.
#[derive(Debug)]
pub(crate) struct Announced {
    presence: Arc<Presence>,
}

/// Distinguishes the markers of the caches of one process.
static MARKER_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Presence {
    fn enter(self: &Arc<Self>) -> Result<Announced> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.count == 0 {
            state.marker = Some(self.create_marker()?);
        }
        state.count += 1;
        Ok(Announced {
            presence: self.clone(),
        })
    }

    /// Creates a new marker file (JSON: `pid`, `hostname`, `start_ticks`). Not fsynced: it only
    /// has to outlive this process's work, not a crash (a dead process's marker is stale).
    fn create_marker(&self) -> Result<PathBuf> {
        match std::fs::symlink_metadata(&self.dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::Storage(StorageError::InvalidPath(format!(
                    "{}: not a directory",
                    self.dir.display()
                ))));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::create_dir(&self.dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_to_storage(e, &self.dir)),
            },
            Err(e) => return Err(io_to_storage(e, &self.dir)),
        }
        let pid = std::process::id();
        let body = serde_json::json!({
            "pid": pid,
            "hostname": hostname(),
            "start_ticks": start_ticks(),
        })
        .to_string();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let n = MARKER_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{pid}-{n}-{nanos:08x}"));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| io_to_storage(e, &path))?;
        if let Err(e) = file.write_all(body.as_bytes()) {
            let _ = std::fs::remove_file(&path);
            return Err(io_to_storage(e, &path));
        }
        Ok(path)
    }
}

impl Drop for Announced {
    fn drop(&mut self) {
        let mut state = self
            .presence
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.count -= 1;
        if state.count == 0
            && let Some(marker) = state.marker.take()
        {
            let _ = std::fs::remove_file(marker);
        }
    }
}

/// This host's name, as Node's `os.hostname()` reports it.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
}

/// When this process started, in clock ticks since boot (field 22 of `/proc/self/stat`): with
/// the pid it tells a live marker from one whose pid was reused.
fn start_ticks() -> Option<String> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(19).map(str::to_owned)
}

/// A pause for tests of the exclusion between hosts: with `OCICACHE_TEST_HOLD_LOCK=<n>:<file>`
/// in the environment, the `n`-th acquisition of a directory lock in this process (1: the
/// open) creates `<file>.held`, then holds the lock and its marker until `<file>` exists (at
/// most 60 s). Without the variable it costs one atomic increment.
mod test_hold {
    use super::*;
    use std::sync::OnceLock;

    static SPEC: OnceLock<Option<(usize, PathBuf)>> = OnceLock::new();
    static ACQUIRED: AtomicUsize = AtomicUsize::new(0);

    pub(super) fn maybe_hold() {
        let n = ACQUIRED.fetch_add(1, Ordering::Relaxed) + 1;
        let spec = SPEC.get_or_init(|| {
            let v = std::env::var("OCICACHE_TEST_HOLD_LOCK").ok()?;
            let (at, file) = v.split_once(':')?;
            Some((at.parse().ok()?, PathBuf::from(file)))
        });
        let Some((at, file)) = spec else { return };
        if *at != n {
            return;
        }
        let mut held = file.clone().into_os_string();
        held.push(".held");
        let _ = File::create(held);
        for _ in 0..6000 {
            if file.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for DirLockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Who holds `node.lock`, if it is held: a process alive on this host, or one on another host
/// (which cannot be checked, so it counts as alive, as the Node host itself decides). A lock
/// whose process is gone is stale and ignored (the next Node opener takes it over). The file is
/// opened with `O_NOFOLLOW | O_NONBLOCK`: anything but a regular file (a FIFO, a symlink) is
/// refused with an error instead of hanging or being followed.
fn node_holder(path: &Path) -> Result<Option<String>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(not_a_lock_file(path, "a symbolic link"));
        }
        Err(e) => return Err(io_to_storage(e, path)),
    };
    let kind = file
        .metadata()
        .map_err(|e| io_to_storage(e, path))?
        .file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_dir() {
            "a directory"
        } else {
            "a special file"
        };
        return Err(not_a_lock_file(path, what));
    }
    let mut text = String::new();
    // A lock is a line of JSON; anything longer is not one.
    let _ = file.take(64 << 10).read_to_string(&mut text);
    let owner = serde_json::from_str::<serde_json::Value>(&text).ok();
    let Some(pid) = owner
        .as_ref()
        .and_then(|o| o.get("pid"))
        .and_then(serde_json::Value::as_u64)
    else {
        // Being written by a Node opener right now (or damaged): live unless it has been
        // unreadable for longer than a write takes, as the Node host decides too.
        let age = std::fs::symlink_metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default();
        return Ok(
            (age < std::time::Duration::from_secs(10)).then(|| "a lock being written".into())
        );
    };
    let host = owner
        .as_ref()
        .and_then(|o| o.get("hostname"))
        .and_then(serde_json::Value::as_str);
    Ok(match (host, hostname()) {
        (Some(h), Some(here)) if h != here => Some(format!("pid {pid} on host {h}")),
        // On this host: alive while /proc knows the pid.
        _ => Path::new("/proc")
            .join(pid.to_string())
            .exists()
            .then(|| format!("pid {pid}")),
    })
}

/// The error for a `node.lock` that is not a regular file.
fn not_a_lock_file(path: &Path, what: &str) -> Error {
    Error::Storage(StorageError::Io(format!(
        "{} is {what}, not a regular file: the cache refuses to use it (remove it if it is not yours)",
        path.display()
    )))
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
