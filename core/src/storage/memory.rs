//! In-memory [`Storage`]: for tests, benchmarks, ephemeral caches and the browser fallback.

use super::{Storage, StorageError, TempId};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

/// Storage held in memory. Clones share the same objects, so a test can keep a handle, drop the
/// cache ("crash" or close) and open a new cache over what was left.
///
/// ```
/// use ocicache_core::storage::{MemoryStorage, Storage};
/// let mut s = MemoryStorage::new();
/// s.append("a/b", b"hi").unwrap();
/// assert_eq!(s.clone().list("a").unwrap(), vec!["b".to_string()]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Hashed, not ordered: reads and writes by path are O(1) whatever the number of objects.
    files: HashMap<String, Vec<u8>, BuildHasherDefault<PathHasher>>,
    /// The directories the paths of `files` make, so that listing one costs its own entries
    /// (reopening after a crash lists every directory of a million files).
    dirs: Dirs,
    temps: BTreeMap<u64, Vec<u8>>,
    /// Open partial downloads: their bytes live in `files` under these paths.
    partials: BTreeMap<u64, String>,
    next_temp: u64,
}

impl State {
    /// The object at `path`, created empty if missing.
    fn file_mut(&mut self, path: &str) -> &mut Vec<u8> {
        if !self.files.contains_key(path) {
            self.dirs.add(path);
            self.files.insert(path.to_owned(), Vec::new());
        }
        self.files.get_mut(path).expect("present")
    }

    fn insert_file(&mut self, path: &str, data: Vec<u8>) {
        if self.files.insert(path.to_owned(), data).is_none() {
            self.dirs.add(path);
        }
    }

    fn remove_file(&mut self, path: &str) -> Option<Vec<u8>> {
        let data = self.files.remove(path)?;
        self.dirs.remove(path);
        Some(data)
    }
}

/// Per directory, the names directly inside it, each with the number of objects beneath it.
/// Hashed rather than ordered, so that adding a file costs no string comparisons; a listing
/// sorts.
#[derive(Debug, Default)]
struct Dirs(HashMap<String, Names, BuildHasherDefault<PathHasher>>);

type Names = HashMap<String, u64, BuildHasherDefault<PathHasher>>;

/// A hasher for paths, deterministic (the core takes no randomness) and a word at a time (the
/// multiply-rotate of rustc's FxHash): SipHash cost more than the lookups it served. Paths
/// here are the cache's own (digests in hex), not chosen to collide.
#[derive(Default)]
struct PathHasher(u64);

impl Hasher for PathHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// `(directory, name inside it)` for every level of `path`: `a/b/c` gives `("", "a")`,
/// `("a", "b")` and `("a/b", "c")`.
fn levels(path: &str) -> impl Iterator<Item = (&str, &str)> {
    let ends = path
        .match_indices('/')
        .map(|(i, _)| i)
        .chain(std::iter::once(path.len()));
    let mut start: usize = 0;
    ends.map(move |end| {
        let dir = &path[..start.saturating_sub(1)];
        let name = &path[start..end];
        start = end + 1;
        (dir, name)
    })
}

impl Dirs {
    fn add(&mut self, path: &str) {
        for (dir, name) in levels(path) {
            if !self.0.contains_key(dir) {
                self.0.insert(dir.to_owned(), Names::default());
            }
            let names = self.0.get_mut(dir).expect("present");
            match names.get_mut(name) {
                Some(count) => *count += 1,
                None => {
                    names.insert(name.to_owned(), 1);
                }
            }
        }
    }

    fn remove(&mut self, path: &str) {
        for (dir, name) in levels(path) {
            let Some(names) = self.0.get_mut(dir) else {
                continue;
            };
            if let Some(count) = names.get_mut(name) {
                *count -= 1;
                if *count == 0 {
                    names.remove(name);
                }
            }
            if names.is_empty() {
                self.0.remove(dir);
            }
        }
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .get(dir)
            .map(|names| names.keys().cloned().collect())
            .unwrap_or_default();
        names.sort_unstable();
        names
    }
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-updated (every method does a
        // single map operation), so a poisoned lock is safe to reuse.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The content of `path`, if any.
    pub fn get(&self, path: &str) -> Option<Vec<u8>> {
        self.state().files.get(path).cloned()
    }

    /// Writes `path` directly, bypassing temps (tests use it to plant orphans and damage).
    pub fn put(&self, path: &str, data: &[u8]) {
        self.state().insert_file(path, data.to_vec());
    }

    /// Flips every bit of the byte at `offset` of `path`; returns false if there is no such byte.
    pub fn corrupt(&self, path: &str, offset: usize) -> bool {
        match self
            .state()
            .files
            .get_mut(path)
            .and_then(|f| f.get_mut(offset))
        {
            Some(b) => {
                *b = !*b;
                true
            }
            None => false,
        }
    }

    /// Shortens `path` to `len` bytes (a torn write).
    pub fn truncate(&self, path: &str, len: usize) {
        if let Some(f) = self.state().files.get_mut(path) {
            f.truncate(len);
        }
    }

    /// Every object path, sorted.
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.state().files.keys().cloned().collect();
        paths.sort_unstable();
        paths
    }

    /// Temp objects currently open or abandoned.
    pub fn temp_count(&self) -> usize {
        self.state().temps.len()
    }

    /// Bytes held in objects (temps excluded).
    pub fn total_bytes(&self) -> u64 {
        self.state().files.values().map(|f| f.len() as u64).sum()
    }
}

impl Storage for MemoryStorage {
    fn create_temp(&mut self, size_hint: Option<u64>) -> Result<TempId, StorageError> {
        let mut data = Vec::new();
        if let Some(hint) = size_hint.and_then(|h| usize::try_from(h).ok()) {
            // Reserving up front spares the copies of a growing buffer; a hint too large to
            // reserve is simply ignored.
            let _ = data.try_reserve_exact(hint);
        }
        let mut s = self.state();
        s.next_temp += 1;
        let id = s.next_temp;
        s.temps.insert(id, data);
        Ok(TempId(id))
    }

    fn write_temp(&mut self, temp: TempId, data: &[u8]) -> Result<(), StorageError> {
        let mut s = self.state();
        if let Some(path) = s.partials.get(&temp.0).cloned() {
            s.file_mut(&path).extend_from_slice(data);
            return Ok(());
        }
        let t = s
            .temps
            .get_mut(&temp.0)
            .ok_or_else(|| StorageError::NotFound(format!("temp {}", temp.0)))?;
        t.extend_from_slice(data);
        Ok(())
    }

    fn commit_temp(&mut self, temp: TempId, path: &str) -> Result<(), StorageError> {
        check_path(path)?;
        let mut s = self.state();
        if let Some(partial) = s.partials.remove(&temp.0) {
            let data = s.remove_file(&partial).unwrap_or_default();
            s.insert_file(path, data);
            return Ok(());
        }
        let data = s
            .temps
            .remove(&temp.0)
            .ok_or_else(|| StorageError::NotFound(format!("temp {}", temp.0)))?;
        s.insert_file(path, data);
        Ok(())
    }

    fn abort_temp(&mut self, temp: TempId) -> Result<(), StorageError> {
        let mut s = self.state();
        if let Some(partial) = s.partials.remove(&temp.0) {
            s.remove_file(&partial);
        }
        s.temps.remove(&temp.0);
        Ok(())
    }

    fn open_partial(&mut self, path: &str) -> Result<Option<(TempId, u64)>, StorageError> {
        check_path(path)?;
        let mut s = self.state();
        if s.partials.values().any(|p| p == path) {
            // Open already (a file storage's lock would refuse it likewise).
            return Ok(None);
        }
        let len = s.file_mut(path).len() as u64;
        s.next_temp += 1;
        let id = s.next_temp;
        s.partials.insert(id, path.to_owned());
        Ok(Some((TempId(id), len)))
    }

    fn keep_partial(&mut self, temp: TempId) -> Result<(), StorageError> {
        self.state().partials.remove(&temp.0);
        Ok(())
    }

    fn append(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError> {
        check_path(path)?;
        self.state().file_mut(path).extend_from_slice(data);
        Ok(())
    }

    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        let s = self.state();
        let f = s
            .files
            .get(path)
            .ok_or_else(|| StorageError::NotFound(path.to_owned()))?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(f.len());
        let n = buf.len().min(f.len() - start);
        buf[..n].copy_from_slice(&f[start..start + n]);
        Ok(n)
    }

    fn size(&mut self, path: &str) -> Result<Option<u64>, StorageError> {
        Ok(self.state().files.get(path).map(|f| f.len() as u64))
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, StorageError> {
        Ok(self.state().dirs.list(dir.trim_end_matches('/')))
    }

    fn list_sizes(&mut self, dir: &str) -> Result<Vec<(String, Option<u64>)>, StorageError> {
        let dir = dir.trim_end_matches('/');
        let s = self.state();
        let mut path = String::new();
        let out: Vec<(String, Option<u64>)> = s
            .dirs
            .0
            .get(dir)
            .map(|names| {
                names
                    .keys()
                    .map(|name| {
                        path.clear();
                        path.push_str(dir);
                        path.push('/');
                        path.push_str(name);
                        (name.clone(), s.files.get(&path).map(|f| f.len() as u64))
                    })
                    .collect()
            })
            .unwrap_or_default();
        // In no particular order, as the trait allows (reopening sorts only what it must).
        Ok(out)
    }

    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        self.state().remove_file(path);
        Ok(())
    }

    fn clear_temps(&mut self) -> Result<u64, StorageError> {
        let mut s = self.state();
        let n = s.temps.len() as u64;
        s.temps.clear();
        Ok(n)
    }
}

/// The same confinement rule every host applies: relative, no empty, `.` or `..` segments.
pub(crate) fn check_path(path: &str) -> Result<(), StorageError> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains(['\0', '\\']));
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidPath(path.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temps_are_invisible_until_committed() {
        let mut s = MemoryStorage::new();
        let t = s.create_temp(Some(3)).unwrap();
        s.write_temp(t, b"abc").unwrap();
        assert_eq!(s.size("x/y").unwrap(), None);
        s.commit_temp(t, "x/y").unwrap();
        assert_eq!(s.get("x/y").unwrap(), b"abc");
        assert_eq!(s.temp_count(), 0);
    }

    #[test]
    fn list_names_direct_children_once() {
        let mut s = MemoryStorage::new();
        for p in ["d/a", "d/b/c", "d/b/d", "dd/x", "e"] {
            s.append(p, b"1").unwrap();
        }
        assert_eq!(s.list("d").unwrap(), vec!["a", "b"]);
        assert_eq!(s.list("d/b/").unwrap(), vec!["c", "d"]);
        assert!(s.list("nope").unwrap().is_empty());
        // A directory goes with its last object, and only then.
        s.remove("d/b/c").unwrap();
        assert_eq!(s.list("d").unwrap(), vec!["a", "b"]);
        s.remove("d/b/d").unwrap();
        assert_eq!(s.list("d").unwrap(), vec!["a"]);
        assert!(s.list("d/b").unwrap().is_empty());
        // Committing over an object, and a partial committed elsewhere, keep the counts right.
        let t = s.create_temp(None).unwrap();
        s.commit_temp(t, "d/a").unwrap();
        let (p, _) = s.open_partial("p/x").unwrap().unwrap();
        assert_eq!(s.list("p").unwrap(), vec!["x"]);
        s.commit_temp(p, "q/y").unwrap();
        assert!(s.list("p").unwrap().is_empty());
        assert_eq!(s.list("q").unwrap(), vec!["y"]);
        s.remove("d/a").unwrap();
        assert!(s.list("d").unwrap().is_empty());
        assert_eq!(s.list("").unwrap(), vec!["dd", "e", "q"]);
        // With sizes: files have theirs, directories none.
        s.append("q/z", b"four").unwrap();
        s.append("q/sub/w", b"1").unwrap();
        let mut sized = s.list_sizes("q").unwrap();
        sized.sort_unstable();
        assert_eq!(
            sized,
            vec![
                ("sub".into(), None),
                ("y".into(), Some(0)),
                ("z".into(), Some(4))
            ]
        );
    }

    #[test]
    fn refuses_paths_that_escape() {
        let mut s = MemoryStorage::new();
        for p in ["", "/abs", "a/../b", "a//b", "./a", "a\0b"] {
            assert!(
                matches!(s.append(p, b"x"), Err(StorageError::InvalidPath(_))),
                "{p:?}"
            );
        }
    }

    #[test]
    fn ranged_reads_stop_at_the_end() {
        let mut s = MemoryStorage::new();
        s.append("f", b"hello").unwrap();
        let mut buf = [0; 4];
        assert_eq!(s.read_at("f", 3, &mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"lo");
        assert_eq!(s.read_at("f", 99, &mut buf).unwrap(), 0);
    }
}
