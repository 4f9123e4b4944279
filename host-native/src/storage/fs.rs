//! [`FsStorage`]: the core's [`Storage`] over a directory of the real filesystem.
//!
//! See [`FsStorage`] for its rules.

use crate::test_pause;
use ocicache_core::{Storage, StorageError, TempId};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The directory (under the root) holding temp objects.
pub const TEMP_DIR: &str = "tmp";
/// Longest path accepted from the core, in bytes.
pub const MAX_PATH_LEN: usize = 512;
/// Longest path component accepted, in bytes.
pub const MAX_COMPONENT_LEN: usize = 255;
/// Top-level names the host keeps for itself: the core may not address them.
pub const RESERVED_TOP_LEVEL: [&str; 3] = [TEMP_DIR, "lock", "config.json"];

/// Distinguishes temps of every `FsStorage` in this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The core's storage over a root directory of the real filesystem.
///
/// - **Durable.** A temp is written through a [`File`]; committing it fsyncs the file, creates
///   missing parent directories (fsyncing the directory that received each new one), renames it
///   onto the final path and fsyncs the destination directory. An append is fsynced too (and
///   the directory, when the append created the file).
/// - **Confined.** Every path from the core is checked ([`check_path`]) before use: relative,
///   `/`-separated components of `[A-Za-z0-9._-]`, no empty, `.` or `..` component, bounded
///   length, and not one of the host's own names at the top (`tmp`, `lock`, `config.json`).
///   Symbolic links are never followed: a directory component that is a symlink is refused
///   (`InvalidPath`), final files are opened with `O_NOFOLLOW`, and a symlink where a file is
///   expected counts as absent.
/// - **Shareable.** Several processes may use one directory. Each temp is held under an
///   exclusive `flock` by its writer for as long as it is open, and [`Storage::clear_temps`]
///   removes only the temps it can lock, i.e. those of writers that are gone.
///
/// ```
/// use ocicache::storage::FsStorage;
/// use ocicache_core::Storage;
/// let dir = tempfile::tempdir()?;
/// let mut fs = FsStorage::open(dir.path())?;
/// fs.append("index/journal-0", b"record")?;
/// assert_eq!(fs.size("index/journal-0")?, Some(6));
/// assert!(fs.append("../escape", b"x").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct FsStorage {
    root: PathBuf,
    temps: HashMap<u64, Temp>,
    next_temp: u64,
}

#[derive(Debug)]
struct Temp {
    /// Open, written through, and `flock`ed exclusively until committed or aborted.
    file: File,
    path: PathBuf,
    /// Bytes written so far.
    written: u64,
    /// Bytes whose writeback was started (see [`start_writeback`]).
    writeback_from: u64,
}

/// A temp's bytes are sent towards the disk every this many bytes while it is written, so a
/// large blob's commit does not wait for all of them at once (the fsync then finds little left).
const WRITEBACK_EVERY: u64 = 16 << 20;

/// Starts writing `len` bytes at `offset` of `file` back to the disk without waiting for it
/// (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`). Only a head start for the commit's fsync,
/// which stays the durability point; its errors are ignored here because that fsync reports
/// them (this call does not consume the file's writeback error).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: the descriptor is owned by `file`, open for the whole call; sync_file_range only
    // reads its arguments and touches no memory of this process.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &File, _: u64, _: u64) {}

impl FsStorage {
    /// Uses `root` as the cache directory, creating it (and `root/tmp`) if missing. Fails with
    /// `InvalidPath` if `root` exists and is not a directory.
    pub fn open(root: impl AsRef<Path>) -> Result<FsStorage, StorageError> {
        let root = root.as_ref().to_path_buf();
        match fs::metadata(&root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(StorageError::InvalidPath(format!(
                    "{} exists and is not a directory",
                    root.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&root).map_err(|e| map_err(e, &root))?;
            }
            Err(e) => return Err(map_err(e, &root)),
        }
        let storage = FsStorage {
            root,
            temps: HashMap::new(),
            next_temp: 0,
        };
        storage.ensure_dirs(TEMP_DIR)?;
        Ok(storage)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of a validated relative path whose directory components are real
    /// directories (or missing), never symlinks.
    fn resolve(&self, path: &str) -> Result<PathBuf, StorageError> {
        check_path(path)?;
        let mut at = self.root.clone();
        let mut parts = path.split('/').peekable();
        while let Some(part) = parts.next() {
            at.push(part);
            if parts.peek().is_some() {
                match fs::symlink_metadata(&at) {
                    Ok(m) if m.file_type().is_symlink() => {
                        return Err(StorageError::InvalidPath(format!(
                            "{path}: a directory component is a symbolic link"
                        )));
                    }
                    _ => {}
                }
            }
        }
        Ok(at)
    }

    /// Creates the directories of `dir` (relative, already trusted) that are missing, fsyncing
    /// the parent of each new one. Refuses symlinked components.
    fn ensure_dirs(&self, dir: &str) -> Result<(), StorageError> {
        let mut at = self.root.clone();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            let parent = at.clone();
            at.push(part);
            match fs::symlink_metadata(&at) {
                Ok(m) if m.is_dir() => continue,
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(StorageError::InvalidPath(format!(
                        "{dir}: a directory component is a symbolic link"
                    )));
                }
                Ok(_) => {
                    return Err(StorageError::Io(format!(
                        "{}: not a directory",
                        at.display()
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(map_err(e, &at)),
            }
            match fs::create_dir(&at) {
                Ok(()) => sync_dir(&parent)?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(map_err(e, &at)),
            }
        }
        Ok(())
    }

    /// Creates a uniquely named temp file in `tmp/` and locks it. A temp removed by another
    /// process's `clear_temps` between creation and locking is detected and replaced.
    fn new_temp_file(&self) -> Result<(File, PathBuf), StorageError> {
        let tmp = self.root.join(TEMP_DIR);
        for _ in 0..16 {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let path = tmp.join(format!("{}-{n}-{nanos:08x}.tmp", std::process::id()));
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.ensure_dirs(TEMP_DIR)?;
                    continue;
                }
                Err(e) => return Err(map_err(e, &path)),
            };
            if file.try_lock().is_err() {
                // Another process's clear_temps holds it and is about to remove it.
                continue;
            }
            // Still ours under that name? (It could have been removed before we locked it.)
            if same_file(&file, &path) {
                return Ok((file, path));
            }
        }
        Err(StorageError::Io("could not create a temp file".into()))
    }
}

/// Whether `path` (not followed) is the file `file` is open on.
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Checks a path from the core: relative, `/`-separated, components of `[A-Za-z0-9._-]`, no
/// empty, `.` or `..` component, at most [`MAX_PATH_LEN`] bytes (components at most
/// [`MAX_COMPONENT_LEN`]), and not under one of the [`RESERVED_TOP_LEVEL`] names.
///
/// ```
/// use ocicache::storage::check_path;
/// assert!(check_path("blobs/sha256/ab12").is_ok());
/// for bad in ["", "/etc/passwd", "a/../b", "a//b", "./a", "a/", "a\0b", "tmp/x", "a b", "é"] {
///     assert!(check_path(bad).is_err(), "{bad:?}");
/// }
/// ```
pub fn check_path(path: &str) -> Result<(), StorageError> {
    let bad = |why: &str| {
        let shown: String = path.chars().take(100).collect();
        Err(StorageError::InvalidPath(format!("{shown:?}: {why}")))
    };
    if path.is_empty() {
        return bad("empty");
    }
    if path.len() > MAX_PATH_LEN {
        return bad("too long");
    }
    for (i, part) in path.split('/').enumerate() {
        if !is_valid_component(part) {
            return bad("components must be non-empty [A-Za-z0-9._-], not . or ..");
        }
        if i == 0 && RESERVED_TOP_LEVEL.contains(&part) && (part == TEMP_DIR || path == part) {
            return bad("reserved for the host");
        }
    }
    Ok(())
}

/// Whether `part` is a valid path component (see [`check_path`]).
fn is_valid_component(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= MAX_COMPONENT_LEN
        && part != "."
        && part != ".."
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Maps an I/O error: full device or quota → `NoSpace`, missing → `NotFound`, a symlink where
/// `O_NOFOLLOW` refused it → `InvalidPath`, anything else → `Io`.
fn map_err(e: io::Error, path: &Path) -> StorageError {
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => StorageError::NoSpace,
        Some(libc::ENOENT) => StorageError::NotFound(path.display().to_string()),
        Some(libc::ELOOP) => {
            StorageError::InvalidPath(format!("{}: is a symbolic link", path.display()))
        }
        _ => StorageError::Io(format!("{}: {e}", path.display())),
    }
}

/// fsyncs a directory, so that entries created, renamed or removed in it are durable.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let d = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| map_err(e, dir))?;
    d.sync_all().map_err(|e| map_err(e, dir))
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

impl Storage for FsStorage {
    fn create_temp(&mut self, size_hint: Option<u64>) -> Result<TempId, StorageError> {
        let (file, path) = self.new_temp_file()?;
        if let Some(n) = size_hint
            && n > 0
        {
            // A hint only: reserving early surfaces a full disk before any byte is streamed.
            if let Err(e) = file.set_len(n).and_then(|()| file.set_len(0)) {
                let _ = fs::remove_file(&path);
                return Err(map_err(e, &path));
            }
        }
        self.next_temp += 1;
        let id = self.next_temp;
        self.temps.insert(
            id,
            Temp {
                file,
                path,
                written: 0,
                writeback_from: 0,
            },
        );
        Ok(TempId(id))
    }

    fn write_temp(&mut self, temp: TempId, data: &[u8]) -> Result<(), StorageError> {
        let t = self
            .temps
            .get_mut(&temp.0)
            .ok_or_else(|| StorageError::Io(format!("unknown temp {}", temp.0)))?;
        t.file.write_all(data).map_err(|e| map_err(e, &t.path))?;
        t.written += data.len() as u64;
        if t.written - t.writeback_from >= WRITEBACK_EVERY {
            start_writeback(&t.file, t.writeback_from, t.written - t.writeback_from);
            t.writeback_from = t.written;
        }
        Ok(())
    }

    fn commit_temp(&mut self, temp: TempId, path: &str) -> Result<(), StorageError> {
        let t = self
            .temps
            .remove(&temp.0)
            .ok_or_else(|| StorageError::Io(format!("unknown temp {}", temp.0)))?;
        let result = (|| {
            let dest = self.resolve(path)?;
            t.file.sync_all().map_err(|e| map_err(e, &t.path))?;
            let dir = parent_of(path);
            self.ensure_dirs(dir)?;
            fs::rename(&t.path, &dest).map_err(|e| map_err(e, &dest))?;
            sync_dir(dest.parent().unwrap_or(&self.root))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&t.path);
        }
        drop(t); // closing the file releases its lock
        if result.is_ok() && test_pause::is_entry_path(path) {
            test_pause::point("after-commit-rename");
        }
        result
    }

    fn abort_temp(&mut self, temp: TempId) -> Result<(), StorageError> {
        if let Some(t) = self.temps.remove(&temp.0) {
            // Remove while still locked, so no other process sees a half-removed temp.
            let result = fs::remove_file(&t.path);
            drop(t);
            match result {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(map_err(e, Path::new(TEMP_DIR))),
            }
        }
        Ok(())
    }

    fn append(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError> {
        let full = self.resolve(path)?;
        self.ensure_dirs(parent_of(path))?;
        let created = match fs::symlink_metadata(&full) {
            Ok(_) => false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => return Err(map_err(e, &full)),
        };
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&full)
            .map_err(|e| map_err(e, &full))?;
        file.write_all(data).map_err(|e| map_err(e, &full))?;
        file.sync_data().map_err(|e| map_err(e, &full))?;
        if created {
            sync_dir(full.parent().unwrap_or(&self.root))?;
        }
        Ok(())
    }

    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        let full = self.resolve(path)?;
        // Opened per call, by name: a removed or replaced file can never serve old bytes.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&full)
            .map_err(|e| map_err(e, &full))?;
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(map_err(e, &full)),
            }
        }
        Ok(filled)
    }

    fn size(&mut self, path: &str) -> Result<Option<u64>, StorageError> {
        let full = self.resolve(path)?;
        match fs::symlink_metadata(&full) {
            // Only regular files count: a symlink or directory is not one of our objects.
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(map_err(e, &full)),
        }
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, StorageError> {
        let full = self.resolve(dir)?;
        match fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(StorageError::InvalidPath(format!(
                    "{dir}: is a symbolic link"
                )));
            }
            Ok(m) if !m.is_dir() => return Ok(Vec::new()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(map_err(e, &full)),
        }
        let entries = match fs::read_dir(&full) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(map_err(e, &full)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| map_err(e, &full))?;
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            // Only names the core could address, and only files and directories: a symlink or
            // a name outside the path alphabet is not ours and cannot be reached through us.
            if !(kind.is_file() || kind.is_dir()) {
                continue;
            }
            if let Some(name) = entry.file_name().to_str()
                && is_valid_component(name)
            {
                names.push(name.to_owned());
            }
        }
        names.sort_unstable();
        Ok(names)
    }

    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        let full = self.resolve(path)?;
        match fs::remove_file(&full) {
            Ok(()) => {
                if test_pause::is_entry_path(path) {
                    test_pause::point("after-remove");
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(map_err(e, &full)),
        }
    }

    fn clear_temps(&mut self) -> Result<u64, StorageError> {
        let tmp = self.root.join(TEMP_DIR);
        let entries = match fs::read_dir(&tmp) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(map_err(e, &tmp)),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|e| map_err(e, &tmp))?;
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                continue;
            }
            if kind.is_file() {
                let file = match OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&path)
                {
                    Ok(f) => f,
                    Err(_) => continue, // gone meanwhile (committed or aborted)
                };
                // A live writer (this process or another) holds its temp's lock: leave it.
                if file.try_lock().is_err() {
                    continue;
                }
                match fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(map_err(e, &path)),
                }
                drop(file);
            } else {
                // A symlink or other special file: never ours; remove the entry itself.
                if fs::remove_file(&path).is_ok() {
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            sync_dir(&tmp)?;
        }
        Ok(removed)
    }
}

impl Drop for FsStorage {
    fn drop(&mut self) {
        // Temps still open are abandoned writes: closing releases their locks, so the next
        // `clear_temps` (of any process) removes them. They are not removed here, as a crash
        // would not remove them either.
        self.temps.clear();
    }
}

#[cfg(test)]
mod tests;
