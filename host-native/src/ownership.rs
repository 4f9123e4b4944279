//! Whether a directory is a cache, or may become one: opening never takes over (and so may
//! never later evict or remove) files that the cache did not write.

use crate::cache::CONFIG_FILE;
use crate::lock::{LOCK_FILE, NATIVE_DIR, NODE_LOCK_FILE};
use crate::storage::TEMP_DIR;
use ocicache_core::{Error, Result};
use std::fs;
use std::io;
use std::path::Path;

/// Names of the host's own, kept beside the core's directories.
const HOST_NAMES: [&str; 6] = [
    TEMP_DIR,
    LOCK_FILE,
    CONFIG_FILE,
    NODE_LOCK_FILE,
    NATIVE_DIR,
    crate::pull::LOCKS_DIR,
];
/// The core's directories.
const CORE_DIRS: [&str; 3] = ["index", "blobs", "manifests"];

/// Fails with `InvalidConfig`, before anything is created or changed, if `dir` holds files
/// but no cache index: anything but the host's own names and empty core directories. A
/// missing or empty directory, and a directory holding an index, pass.
pub(crate) fn refuse_foreign_directory(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // Created by the open; or not a directory, which the storage reports.
        Err(_) => return Ok(()),
    };
    // Any entry in `index/` means a cache: checked by name only, since another process may be
    // compacting it (replacing one journal by the next) while this looks, unlocked.
    if fs::read_dir(dir.join("index")).is_ok_and(|mut d| d.next().is_some()) {
        return Ok(());
    }
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if HOST_NAMES.contains(&name.as_ref()) {
            continue;
        }
        if CORE_DIRS.contains(&name.as_ref()) && !holds_file(&entry.path(), 2) {
            continue;
        }
        return Err(Error::InvalidConfig(format!(
            "{} is not an ocicache directory: it holds {name} but no cache index; nothing was \
             changed (`ocicache init` creates a cache there, adopting the blobs and manifests \
             whose bytes match their digest and leaving every other file alone)",
            dir.display()
        )));
    }
    Ok(())
}

/// Whether `path` is, or holds within `depth` levels of directories, anything but a directory.
fn holds_file(path: &Path, depth: u32) -> bool {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return e.kind() != io::ErrorKind::NotFound,
    };
    if !meta.is_dir() {
        return true;
    }
    if depth == 0 {
        return fs::read_dir(path).map_or(true, |mut d| d.next().is_some());
    }
    match fs::read_dir(path) {
        Ok(entries) => entries.flatten().any(|e| holds_file(&e.path(), depth - 1)),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_missing_and_cache_directories_pass_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        refuse_foreign_directory(&root.join("missing")).unwrap();
        refuse_foreign_directory(root).unwrap();
        // The host's own names and empty core directories are not foreign.
        fs::write(root.join("config.json"), "{}").unwrap();
        fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        fs::create_dir_all(root.join("tmp")).unwrap();
        refuse_foreign_directory(root).unwrap();
        // A blob and no index: an OCI image layout, say.
        fs::write(root.join("blobs/sha256/abc"), "x").unwrap();
        let err = refuse_foreign_directory(root).unwrap_err();
        assert!(
            err.to_string().contains("not an ocicache directory"),
            "{err}"
        );
        // With an index, it is a cache.
        fs::create_dir_all(root.join("index")).unwrap();
        fs::write(root.join("index/journal-0"), "x").unwrap();
        refuse_foreign_directory(root).unwrap();
        // Any other file, without an index.
        let other = tempfile::tempdir().unwrap();
        fs::write(other.path().join("notes.txt"), "mine").unwrap();
        assert!(refuse_foreign_directory(other.path()).is_err());
    }
}
