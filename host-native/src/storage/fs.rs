//! [`FsStorage`]: the core's [`Storage`] over a directory of the real filesystem.
//!
//! See [`FsStorage`] for its rules.

use crate::test_pause;
use ocicache_core::{Durability, Storage, StorageError, TempId};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
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

/// How a directory on the way to a path is opened: never through a symbolic link.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
/// Flags of every file opened by name: never through a symbolic link, and never waiting (a
/// FIFO planted under a cache name would otherwise block the open until a writer comes).
const FILE_FLAGS: OFlags = OFlags::NOFOLLOW
    .union(OFlags::CLOEXEC)
    .union(OFlags::NONBLOCK);
/// Mode of new files and directories (before the umask).
const FILE_MODE: Mode = Mode::from_raw_mode(0o666);
const DIR_MODE: Mode = Mode::from_raw_mode(0o777);

/// The core's storage over a root directory of the real filesystem.
///
/// - **Durable.** A temp is written through a [`File`]; committing it fsyncs the file, creates
///   missing parent directories (fsyncing the directory that received each new one), renames it
///   onto the final path and fsyncs the destination directory. An append is fsynced too (and
///   the directory, when the append created the file). A removal fsyncs the directory that
///   held the file, so that a record of the removal cannot outlive it after a power loss.
///   That is [`Durability::Strict`], the default; under [`Durability::Relaxed`]
///   ([`Storage::set_durability`]) none of these fsyncs is made (nor the early writeback of
///   large temps): renames and appends stay atomic for every process, the kernel writes them
///   back in its own time, and a power loss may lose the latest ones.
/// - **Confined.** Every path from the core is checked ([`check_path`]) before use: relative,
///   `/`-separated components of `[A-Za-z0-9._-]`, no empty, `.` or `..` component, bounded
///   length, and not one of the host's own names at the top (`tmp`, `lock`, `config.json`).
///   It is then resolved from the root's open directory, one component at a time, each
///   directory opened with `O_NOFOLLOW` and the final name used relative to its directory's
///   descriptor (`openat`, `mkdirat`, `renameat`, `unlinkat`): a symbolic link is never
///   followed, and a directory swapped for one between a check and a use cannot lead outside
///   the root. A directory component that is a symlink is refused (`InvalidPath`); a symlink
///   or special file (FIFO, socket, device) where a file is expected counts as absent, and is
///   never opened in a way that could block.
/// - **Listed as found.** [`Storage::list`] names every entry the core could address, of any
///   kind, so that the integrity check reports symlinks and special files and repair removes
///   them.
/// - **Reserving.** A temp created with a size hint reserves that much space on the device
///   (Linux `fallocate`, keeping the length at 0), so a full disk fails the write before a byte
///   is streamed (`NoSpace`); what the commit does not use is given back. Elsewhere, or on a
///   filesystem that cannot reserve, the hint is ignored.
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
    /// The root directory, open: every path is resolved from it.
    root_dir: OwnedFd,
    temps: HashMap<u64, Temp>,
    next_temp: u64,
    /// Whether commits, appends and removals fsync.
    durability: Durability,
}

#[derive(Debug)]
struct Temp {
    /// Open, written through, and `flock`ed exclusively until committed or aborted.
    file: File,
    /// The temp directory it was created in (open), and its name there.
    dir: OwnedFd,
    name: String,
    /// Bytes written so far.
    written: u64,
    /// Bytes whose writeback was started (see [`start_writeback`]).
    writeback_from: u64,
    /// Bytes reserved on the device for the announced size.
    reserved: u64,
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

/// Reserves `len` bytes of the device for `file` without changing its length; `Ok(false)` if
/// the filesystem (or the platform) cannot reserve, which leaves the size a hint only.
#[cfg(target_os = "linux")]
fn reserve(file: &File, len: u64) -> io::Result<bool> {
    match rfs::fallocate(file, rfs::FallocateFlags::KEEP_SIZE, 0, len) {
        Ok(()) => Ok(true),
        Err(Errno::OPNOTSUPP | Errno::NOSYS) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn reserve(_: &File, _: u64) -> io::Result<bool> {
    Ok(false)
}

#[cfg(test)]
thread_local! {
    /// Test-only: runs once, between a path's checks and its use (to play a racing swap).
    pub(crate) static BETWEEN_CHECK_AND_USE: std::cell::RefCell<Option<Box<dyn FnOnce()>>> =
        const { std::cell::RefCell::new(None) };
    /// Test-only: the directories fsynced by this thread.
    pub(crate) static SYNCED_DIRS: std::cell::RefCell<Vec<String>> =
        const { std::cell::RefCell::new(Vec::new()) };
    /// Test-only: the files fsynced (data or all) by this thread.
    pub(crate) static SYNCED_FILES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
fn between_check_and_use() {
    if let Some(f) = BETWEEN_CHECK_AND_USE.with(|h| h.borrow_mut().take()) {
        f();
    }
}

#[cfg(not(test))]
fn between_check_and_use() {}

/// Why a directory on the way to a path could not be opened.
enum DirError {
    /// A component is missing (and was not to be created).
    Missing,
    /// A component is a symbolic link.
    Symlink(String),
    /// A component is something else than a directory.
    NotADirectory(String),
    /// Any other failure.
    Io(io::Error, String),
}

impl FsStorage {
    /// Uses `root` as the cache directory, creating it (and `root/tmp`) if missing. Fails with
    /// `InvalidPath` if `root` exists and is not a directory.
    pub fn open(root: impl AsRef<Path>) -> Result<FsStorage, StorageError> {
        let root = root.as_ref().to_path_buf();
        match fs::metadata(&root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(not_a_directory(&root)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&root).map_err(|e| map_err(e, &root))?;
            }
            Err(e) => return Err(map_err(e, &root)),
        }
        // The root itself is the caller's choice, followed if it is a link; nothing under it is.
        let root_dir = rfs::open(&root, DIR_FLAGS.difference(OFlags::NOFOLLOW), Mode::empty())
            .map_err(|e| match e {
                Errno::NOTDIR => not_a_directory(&root),
                e => map_err(e.into(), &root),
            })?;
        let storage = FsStorage {
            root,
            root_dir,
            temps: HashMap::new(),
            next_temp: 0,
            durability: Durability::Strict,
        };
        storage.open_dir(TEMP_DIR, true)?;
        Ok(storage)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Opens the directory `dir` (relative, already checked; `""` is the root) from the root,
    /// one component at a time, never through a symbolic link. With `create`, missing
    /// components are created, fsyncing the directory that received each new one.
    fn walk(&self, dir: &str, create: bool) -> Result<OwnedFd, DirError> {
        // `None` is the root itself (opened once), so each component costs one `openat`.
        let mut at: Option<OwnedFd> = None;
        let mut walked = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            let parent = at.as_ref().map_or(self.root_dir.as_fd(), AsFd::as_fd);
            if !walked.is_empty() {
                walked.push('/');
            }
            walked.push_str(part);
            let next = match rfs::openat(parent, part, DIR_FLAGS, Mode::empty()) {
                Err(Errno::NOENT) if create => {
                    match rfs::mkdirat(parent, part, DIR_MODE) {
                        Ok(()) if self.strict() => sync_dir(parent, parent_of(&walked))
                            .map_err(|e| DirError::Io(e, walked.clone()))?,
                        Ok(()) => {}
                        Err(Errno::EXIST) => {}
                        Err(e) => return Err(DirError::Io(e.into(), walked)),
                    }
                    rfs::openat(parent, part, DIR_FLAGS, Mode::empty())
                }
                other => other,
            };
            at = Some(match next {
                Ok(fd) => fd,
                Err(Errno::NOENT) => return Err(DirError::Missing),
                // O_NOFOLLOW refuses a link (ELOOP, or ENOTDIR with O_DIRECTORY): which one it
                // was only decides the error reported.
                Err(Errno::LOOP) => return Err(DirError::Symlink(walked)),
                Err(Errno::NOTDIR) => {
                    return Err(match rfs::statat(parent, part, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                            DirError::Symlink(walked)
                        }
                        _ => DirError::NotADirectory(walked),
                    });
                }
                Err(e) => return Err(DirError::Io(e.into(), walked)),
            });
        }
        match at {
            Some(fd) => Ok(fd),
            None => rfs::openat(&self.root_dir, ".", DIR_FLAGS, Mode::empty())
                .map_err(|e| DirError::Io(e.into(), String::new())),
        }
    }

    /// [`FsStorage::walk`] for an operation on `path`, with errors in the core's vocabulary
    /// (a missing directory is `NotFound`).
    fn open_dir(&self, dir: &str, create: bool) -> Result<OwnedFd, StorageError> {
        self.walk(dir, create).map_err(|e| self.dir_error(e, dir))
    }

    fn dir_error(&self, e: DirError, dir: &str) -> StorageError {
        match e {
            DirError::Missing => StorageError::NotFound(self.root.join(dir).display().to_string()),
            DirError::Symlink(at) => {
                StorageError::InvalidPath(format!("{at}: a directory component is a symbolic link"))
            }
            DirError::NotADirectory(at) => {
                StorageError::Io(format!("{}: not a directory", self.root.join(at).display()))
            }
            DirError::Io(e, at) => map_err(e, &self.root.join(at)),
        }
    }

    /// The directory holding `path` (checked), open, or `None` if it does not exist.
    fn parent_dir(&self, path: &str) -> Result<Option<OwnedFd>, StorageError> {
        check_path(path)?;
        let dir = parent_of(path);
        match self.walk(dir, false) {
            Ok(fd) => Ok(Some(fd)),
            Err(DirError::Missing) => Ok(None),
            Err(e) => Err(self.dir_error(e, dir)),
        }
    }

    /// Opens the regular file `path` for reading, or `None` if there is none (missing, or a
    /// symlink or special file in its place).
    fn open_regular(&self, path: &str) -> Result<Option<File>, StorageError> {
        let Some(dir) = self.parent_dir(path)? else {
            return Ok(None);
        };
        between_check_and_use();
        let fd = match rfs::openat(
            &dir,
            file_name(path),
            OFlags::RDONLY | FILE_FLAGS,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::LOOP) => return Ok(None),
            Err(e) => return Err(map_err(e.into(), &self.root.join(path))),
        };
        let st = rfs::fstat(&fd).map_err(|e| map_err(e.into(), &self.root.join(path)))?;
        Ok((FileType::from_raw_mode(st.st_mode) == FileType::RegularFile).then(|| File::from(fd)))
    }

    /// Creates a uniquely named temp file in `tmp/` and locks it. A temp removed by another
    /// process's `clear_temps` between creation and locking is detected and replaced.
    fn new_temp_file(&self) -> Result<(File, OwnedFd, String), StorageError> {
        for _ in 0..16 {
            let dir = self.open_dir(TEMP_DIR, true)?;
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let name = format!("{}-{n}-{nanos:08x}.tmp", std::process::id());
            let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | FILE_FLAGS;
            let file = match rfs::openat(&dir, name.as_str(), flags, FILE_MODE) {
                Ok(fd) => File::from(fd),
                // Taken, or the directory was removed meanwhile (opened again next time).
                Err(Errno::EXIST | Errno::NOENT) => continue,
                Err(e) => return Err(map_err(e.into(), &self.root.join(TEMP_DIR).join(&name))),
            };
            if file.try_lock().is_err() {
                // Another process's clear_temps holds it and is about to remove it.
                continue;
            }
            // Still ours under that name? (It could have been removed before we locked it.)
            if same_file(&file, &dir, &name) {
                return Ok((file, dir, name));
            }
        }
        Err(StorageError::Io("could not create a temp file".into()))
    }
}

/// Whether `name` in `dir` (not followed) is the file `file` is open on.
fn same_file(file: &File, dir: &OwnedFd, name: &str) -> bool {
    match (
        rfs::fstat(file),
        rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW),
    ) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

fn not_a_directory(root: &Path) -> StorageError {
    StorageError::InvalidPath(format!("{} exists and is not a directory", root.display()))
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

/// fsyncs the open directory `dir` (`rel` under the root), so that entries created, renamed or
/// removed in it are durable.
fn sync_dir(dir: impl AsFd, rel: &str) -> io::Result<()> {
    #[cfg(test)]
    SYNCED_DIRS.with(|s| s.borrow_mut().push(rel.to_owned()));
    let _ = rel;
    rfs::fsync(dir).map_err(io::Error::from)
}

/// fsyncs `file` (`sync_data` when `data_only`: its length and bytes, not its times).
fn sync_file(file: &File, data_only: bool) -> io::Result<()> {
    #[cfg(test)]
    SYNCED_FILES.with(|n| n.set(n.get() + 1));
    if data_only {
        file.sync_data()
    } else {
        file.sync_all()
    }
}

impl FsStorage {
    /// Whether this storage fsyncs what it changes.
    fn strict(&self) -> bool {
        self.durability == Durability::Strict
    }
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

impl Storage for FsStorage {
    fn create_temp(&mut self, size_hint: Option<u64>) -> Result<TempId, StorageError> {
        let (file, dir, name) = self.new_temp_file()?;
        let mut reserved = 0;
        if let Some(n) = size_hint
            && n > 0
        {
            // Reserving surfaces a full disk before any byte is streamed.
            match reserve(&file, n) {
                Ok(true) => reserved = n,
                Ok(false) => {}
                Err(e) => {
                    let _ = rfs::unlinkat(&dir, name.as_str(), AtFlags::empty());
                    return Err(map_err(e, &self.root.join(TEMP_DIR).join(&name)));
                }
            }
        }
        self.next_temp += 1;
        let id = self.next_temp;
        self.temps.insert(
            id,
            Temp {
                file,
                dir,
                name,
                written: 0,
                writeback_from: 0,
                reserved,
            },
        );
        Ok(TempId(id))
    }

    fn write_temp(&mut self, temp: TempId, data: &[u8]) -> Result<(), StorageError> {
        let t = self
            .temps
            .get_mut(&temp.0)
            .ok_or_else(|| StorageError::Io(format!("unknown temp {}", temp.0)))?;
        t.file
            .write_all(data)
            .map_err(|e| map_err(e, &self.root.join(TEMP_DIR).join(&t.name)))?;
        t.written += data.len() as u64;
        if self.durability == Durability::Strict && t.written - t.writeback_from >= WRITEBACK_EVERY
        {
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
            check_path(path)?;
            let dest = self.root.join(path);
            if t.reserved > t.written {
                // Give back the reserved space the bytes did not use.
                t.file.set_len(t.written).map_err(|e| map_err(e, &dest))?;
            }
            if self.strict() {
                sync_file(&t.file, false).map_err(|e| map_err(e, &dest))?;
            }
            let dir = parent_of(path);
            let dest_dir = self.open_dir(dir, true)?;
            between_check_and_use();
            rfs::renameat(&t.dir, t.name.as_str(), &dest_dir, file_name(path))
                .map_err(|e| map_err(e.into(), &dest))?;
            if self.strict() {
                sync_dir(&dest_dir, dir).map_err(|e| map_err(e, &dest))?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = rfs::unlinkat(&t.dir, t.name.as_str(), AtFlags::empty());
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
            let result = rfs::unlinkat(&t.dir, t.name.as_str(), AtFlags::empty());
            drop(t);
            match result {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(map_err(e.into(), Path::new(TEMP_DIR))),
            }
        }
        Ok(())
    }

    fn open_partial(&mut self, path: &str) -> Result<Option<(TempId, u64)>, StorageError> {
        check_path(path)?;
        let full = self.root.join(path);
        let dir = self.open_dir(parent_of(path), true)?;
        between_check_and_use();
        let name = file_name(path).to_owned();
        let flags = OFlags::RDWR | OFlags::CREATE | FILE_FLAGS;
        let mut file = match rfs::openat(&dir, name.as_str(), flags, FILE_MODE) {
            Ok(fd) => File::from(fd),
            Err(e) => return Err(map_err(e.into(), &full)),
        };
        if !file.metadata().map_err(|e| map_err(e, &full))?.is_file() {
            return Err(StorageError::InvalidPath(format!(
                "{}: not a regular file",
                full.display()
            )));
        }
        if file.try_lock().is_err() {
            // Another process continues it right now: this one downloads without a partial.
            return Ok(None);
        }
        let len = std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))
            .map_err(|e| map_err(e, &full))?;
        self.next_temp += 1;
        let id = self.next_temp;
        self.temps.insert(
            id,
            Temp {
                file,
                dir,
                name,
                written: len,
                writeback_from: len,
                reserved: 0,
            },
        );
        Ok(Some((TempId(id), len)))
    }

    fn keep_partial(&mut self, temp: TempId) -> Result<(), StorageError> {
        if let Some(t) = self.temps.remove(&temp.0) {
            // Durable before the lock goes, so that the next process finds what it hashes.
            t.file
                .sync_data()
                .map_err(|e| map_err(e, &self.root.join(&t.name)))?;
        }
        Ok(())
    }

    fn append(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError> {
        check_path(path)?;
        let full = self.root.join(path);
        let dir = self.open_dir(parent_of(path), true)?;
        between_check_and_use();
        let name = file_name(path);
        let flags = OFlags::WRONLY | OFlags::APPEND | FILE_FLAGS;
        // Exclusively first: a file this append creates needs its directory synced.
        let (fd, created) =
            match rfs::openat(&dir, name, flags | OFlags::CREATE | OFlags::EXCL, FILE_MODE) {
                Ok(fd) => (fd, true),
                Err(Errno::EXIST) => (
                    rfs::openat(&dir, name, flags, Mode::empty())
                        .map_err(|e| map_err(e.into(), &full))?,
                    false,
                ),
                Err(e) => return Err(map_err(e.into(), &full)),
            };
        let st = rfs::fstat(&fd).map_err(|e| map_err(e.into(), &full))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(StorageError::Io(format!(
                "{}: not a regular file",
                full.display()
            )));
        }
        let mut file = File::from(fd);
        file.write_all(data).map_err(|e| map_err(e, &full))?;
        if !self.strict() {
            return Ok(());
        }
        sync_file(&file, true).map_err(|e| map_err(e, &full))?;
        if created {
            sync_dir(&dir, parent_of(path)).map_err(|e| map_err(e, &full))?;
        }
        Ok(())
    }

    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        // Opened per call, by name: a removed or replaced file can never serve old bytes.
        let full = || self.root.join(path);
        let file = self
            .open_regular(path)?
            .ok_or_else(|| StorageError::NotFound(full().display().to_string()))?;
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(map_err(e, &full())),
            }
        }
        Ok(filled)
    }

    fn size(&mut self, path: &str) -> Result<Option<u64>, StorageError> {
        let Some(dir) = self.parent_dir(path)? else {
            return Ok(None);
        };
        between_check_and_use();
        match rfs::statat(&dir, file_name(path), AtFlags::SYMLINK_NOFOLLOW) {
            // Only regular files count: a symlink, directory or special file is not an object.
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {
                Ok(Some(u64::try_from(st.st_size).unwrap_or(0)))
            }
            Ok(_) | Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(map_err(e.into(), &self.root.join(path))),
        }
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, StorageError> {
        check_path(dir)?;
        let fd = match self.walk(dir, false) {
            Ok(fd) => fd,
            Err(DirError::Missing) => return Ok(Vec::new()),
            // The directory itself is a file: it holds nothing (a link is refused).
            Err(DirError::NotADirectory(at)) if at == dir => return Ok(Vec::new()),
            Err(e) => return Err(self.dir_error(e, dir)),
        };
        between_check_and_use();
        let full = self.root.join(dir);
        let entries = rfs::Dir::new(fd).map_err(|e| map_err(e.into(), &full))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| map_err(e.into(), &full))?;
            // Every name the core could address, whatever its kind: the integrity check reports
            // what is not a stored file. Other names cannot be reached through us.
            if let Ok(name) = entry.file_name().to_str()
                && is_valid_component(name)
            {
                names.push(name.to_owned());
            }
        }
        names.sort_unstable();
        Ok(names)
    }

    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        let Some(dir) = self.parent_dir(path)? else {
            return Ok(());
        };
        between_check_and_use();
        match rfs::unlinkat(&dir, file_name(path), AtFlags::empty()) {
            // Durable: the directory no longer names the file after a power loss.
            Ok(()) => {
                if self.strict() {
                    sync_dir(&dir, parent_of(path))
                        .map_err(|e| map_err(e, &self.root.join(path)))?;
                }
                if test_pause::is_entry_path(path) {
                    test_pause::point("after-remove");
                }
                Ok(())
            }
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(map_err(e.into(), &self.root.join(path))),
        }
    }

    fn clear_temps(&mut self) -> Result<u64, StorageError> {
        let tmp_path = self.root.join(TEMP_DIR);
        let tmp = match self.walk(TEMP_DIR, false) {
            Ok(fd) => fd,
            Err(DirError::Missing) => return Ok(0),
            Err(e) => return Err(self.dir_error(e, TEMP_DIR)),
        };
        let entries = rfs::Dir::read_from(&tmp).map_err(|e| map_err(e.into(), &tmp_path))?;
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|e| map_err(e.into(), &tmp_path))?;
            let name = entry.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            let kind = match entry.file_type() {
                FileType::Unknown => match rfs::statat(&tmp, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode),
                    Err(_) => continue, // gone meanwhile
                },
                kind => kind,
            };
            match kind {
                FileType::Directory => {}
                FileType::RegularFile => {
                    let file =
                        match rfs::openat(&tmp, name, OFlags::RDONLY | FILE_FLAGS, Mode::empty()) {
                            Ok(fd) => File::from(fd),
                            Err(_) => continue, // gone meanwhile (committed or aborted)
                        };
                    // A live writer (this process or another) holds its temp's lock: leave it.
                    if file.try_lock().is_err() {
                        continue;
                    }
                    match rfs::unlinkat(&tmp, name, AtFlags::empty()) {
                        Ok(()) => removed += 1,
                        Err(Errno::NOENT) => {}
                        Err(e) => return Err(map_err(e.into(), &tmp_path)),
                    }
                    drop(file);
                }
                // A symlink or other special file: never ours; remove the entry itself.
                _ => {
                    if rfs::unlinkat(&tmp, name, AtFlags::empty()).is_ok() {
                        removed += 1;
                    }
                }
            }
        }
        if removed > 0 && self.strict() {
            sync_dir(&tmp, TEMP_DIR).map_err(|e| map_err(e, &tmp_path))?;
        }
        Ok(removed)
    }

    /// Honours both levels.
    fn set_durability(&mut self, level: Durability) -> Durability {
        self.durability = level;
        level
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
