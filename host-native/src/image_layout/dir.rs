//! A directory of an image layout, used without following symbolic links: every name under it
//! is opened relative to its parent's open descriptor with `O_NOFOLLOW` (`openat`, `linkat`,
//! `renameat`), so a link planted in the layout cannot lead outside it.

use ocicache_core::hashing::Hasher;
use ocicache_core::{Algorithm, BuiltinHasher, Digest, Error, Result, StorageError};
use rustix::fs::{self as rfs, AtFlags, FileType, FlockOperation, Mode, OFlags};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Chunk size for streaming and hashing blobs.
pub(crate) const CHUNK: usize = 1 << 20;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
/// Never through a link, and never waiting on a FIFO planted under a blob's name.
const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::CLOEXEC);
const NEW_FILE_FLAGS: OFlags = OFlags::WRONLY
    .union(OFlags::CREATE)
    .union(OFlags::EXCL)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
const FILE_MODE: Mode = Mode::from_raw_mode(0o644);
const DIR_MODE: Mode = Mode::from_raw_mode(0o755);

/// Distinguishes the temps of this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An open directory and the path it was reached by (for messages).
pub(crate) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// The error for an I/O failure at `path` in a layout: a symbolic link is refused
/// (`InvalidArgument`), a full device is `NoSpace`, a missing name `NotFound`.
pub(crate) fn layout_error(path: &Path, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) => Error::InvalidArgument(format!(
            "{}: is a symbolic link; an image layout is used without following links",
            path.display()
        )),
        Some(libc::ENOTDIR) => {
            Error::InvalidArgument(format!("{}: is not a directory", path.display()))
        }
        Some(libc::ENOSPC | libc::EDQUOT) => Error::Storage(StorageError::NoSpace),
        Some(libc::ENOENT) => Error::NotFound(path.display().to_string()),
        _ => Error::Storage(StorageError::Io(format!("{}: {e}", path.display()))),
    }
}

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}

impl Dir {
    /// Opens an existing directory (the path given by the user may itself be a link).
    pub(crate) fn open(path: &Path) -> Result<Dir> {
        let fd = rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| layout_error(path, errno(e)))?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Creates the directory and its missing parents, then opens it.
    pub(crate) fn create(path: &Path) -> Result<Dir> {
        std::fs::create_dir_all(path).map_err(|e| layout_error(path, e))?;
        Dir::open(path)
    }

    /// The path it was opened by.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn child(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Holds an exclusive `flock` on the directory until `self` is dropped, so that two
    /// exports into one layout do not both rewrite `index.json` from the same old one.
    pub(crate) fn lock(&self) -> Result<()> {
        rfs::flock(&self.fd, FlockOperation::LockExclusive)
            .map_err(|e| layout_error(&self.path, errno(e)))
    }

    /// Whether the directory has no entries.
    pub(crate) fn is_empty(&self) -> Result<bool> {
        let mut entries = std::fs::read_dir(&self.path).map_err(|e| layout_error(&self.path, e))?;
        Ok(entries.next().is_none())
    }

    /// The subdirectory `name`, created first if `create`; `None` if absent. A link or other
    /// file under that name is refused.
    pub(crate) fn subdir(&self, name: &str, create: bool) -> Result<Option<Dir>> {
        let path = self.child(name);
        if create {
            match rfs::mkdirat(&self.fd, name, DIR_MODE) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(layout_error(&path, errno(e))),
            }
        }
        match rfs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Some(Dir { fd, path })),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(layout_error(&path, errno(e))),
        }
    }

    /// The subdirectory `name`, created if missing.
    pub(crate) fn created_subdir(&self, name: &str) -> Result<Dir> {
        self.subdir(name, true)?
            .ok_or_else(|| layout_error(&self.child(name), io::ErrorKind::NotFound.into()))
    }

    /// Opens the regular file `name` for reading, with its length; `None` if absent. A link,
    /// FIFO, directory or device under that name is refused.
    pub(crate) fn open_file(&self, name: &str) -> Result<Option<(File, u64)>> {
        let path = self.child(name);
        let fd = match rfs::openat(&self.fd, name, READ_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(layout_error(&path, errno(e))),
        };
        let stat = rfs::fstat(&fd).map_err(|e| layout_error(&path, errno(e)))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(Error::InvalidArgument(format!(
                "{}: is not a regular file",
                path.display()
            )));
        }
        Ok(Some((File::from(fd), stat.st_size as u64)))
    }

    /// Reads the regular file `name` whole, refusing one longer than `limit`; `None` if absent.
    pub(crate) fn read_file(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some((file, len)) = self.open_file(name)? else {
            return Ok(None);
        };
        if len > limit {
            return Err(Error::TooLarge { size: len, limit });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| layout_error(&self.child(name), e))?;
        if bytes.len() as u64 > limit {
            return Err(Error::TooLarge {
                size: bytes.len() as u64,
                limit,
            });
        }
        Ok(Some(bytes))
    }

    /// Whether the regular file `name` holds exactly the bytes of `digest`: `Ok(None)` if
    /// absent, `Ok(Some(()))` if it does, `DigestMismatch` naming the file if it does not.
    pub(crate) fn check_existing(&self, name: &str, digest: &Digest) -> Result<Option<()>> {
        let Some((mut file, _)) = self.open_file(name)? else {
            return Ok(None);
        };
        let path = self.child(name);
        let actual =
            hash_file(&mut file, digest.algorithm()).map_err(|e| layout_error(&path, e))?;
        if actual != *digest {
            return Err(Error::DigestMismatch {
                expected: digest.to_string(),
                actual: format!("{actual} in {} (left as it is)", path.display()),
            });
        }
        Ok(Some(()))
    }

    /// Creates a new temp file in this directory; returns it with its name.
    fn new_temp(&self) -> Result<(File, String)> {
        for _ in 0..100 {
            let name = format!(
                ".ocicache-{}-{}.tmp",
                std::process::id(),
                TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            match rfs::openat(&self.fd, name.as_str(), NEW_FILE_FLAGS, FILE_MODE) {
                Ok(fd) => return Ok((File::from(fd), name)),
                // Left by a killed run of a process with the same id: not ours, try another.
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(layout_error(&self.child(&name), errno(e))),
            }
        }
        Err(Error::Storage(StorageError::Io(format!(
            "{}: could not create a temp file",
            self.path.display()
        ))))
    }

    fn remove_temp(&self, temp: &str) {
        let _ = rfs::unlinkat(&self.fd, temp, AtFlags::empty());
    }

    /// Publishes the temp under `name` (replacing what is there).
    fn publish(&self, temp: &str, name: &str) -> Result<()> {
        rfs::renameat(&self.fd, temp, &self.fd, name).map_err(|e| {
            self.remove_temp(temp);
            layout_error(&self.child(name), errno(e))
        })
    }

    /// Writes `name` through a temp file: `fill` writes it, it is fsynced, then renamed onto
    /// `name`, so that a crash never leaves part of a file under that name. The directory is
    /// not fsynced here ([`Dir::sync`]).
    pub(crate) fn write_file(
        &self,
        name: &str,
        fill: impl FnOnce(&mut File) -> Result<()>,
    ) -> Result<()> {
        let (mut file, temp) = self.new_temp()?;
        let result = fill(&mut file).and_then(|()| {
            file.sync_all()
                .map_err(|e| layout_error(&self.child(&temp), e))
        });
        drop(file);
        match result {
            Ok(()) => self.publish(&temp, name),
            Err(e) => {
                self.remove_temp(&temp);
                Err(e)
            }
        }
    }

    /// Hard-links `from_name` of `from` here as `name`, if the two are on one filesystem and
    /// the linked file is a regular file holding exactly the bytes of `digest` (it is read
    /// back and hashed: the cache's file is never trusted blindly). Returns whether it did;
    /// `false` leaves nothing behind.
    pub(crate) fn link_verified(
        &self,
        from: &Dir,
        from_name: &str,
        name: &str,
        digest: &Digest,
    ) -> Result<bool> {
        let (file, temp) = self.new_temp()?;
        drop(file);
        self.remove_temp(&temp);
        // Without AT_SYMLINK_FOLLOW: a link in the cache would be linked as a link, and then
        // refused below by O_NOFOLLOW.
        if rfs::linkat(
            &from.fd,
            from_name,
            &self.fd,
            temp.as_str(),
            AtFlags::empty(),
        )
        .is_err()
        {
            return Ok(false);
        }
        let verified = match self.open_file(&temp) {
            Ok(Some((mut f, _))) => {
                hash_file(&mut f, digest.algorithm()).is_ok_and(|actual| actual == *digest)
            }
            _ => false,
        };
        if !verified {
            self.remove_temp(&temp);
            return Ok(false);
        }
        self.publish(&temp, name)?;
        Ok(true)
    }

    /// fsyncs the directory, making the names created in it durable.
    pub(crate) fn sync(&self) -> Result<()> {
        rfs::fsync(&self.fd).map_err(|e| layout_error(&self.path, errno(e)))
    }
}

/// Hashes a file from its current position to its end.
pub(crate) fn hash_file(file: &mut File, algorithm: Algorithm) -> io::Result<Digest> {
    let mut hasher = Hasher::new(&BuiltinHasher, algorithm);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
    }
    hasher.finish().map_err(io::Error::other)
}

/// Copies `from` into `to` in large chunks (the cache's writer takes its lock per write).
pub(crate) fn copy_chunked(from: &mut dyn Read, to: &mut dyn Write) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}
