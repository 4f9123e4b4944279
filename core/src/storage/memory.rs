//! In-memory [`Storage`]: for tests, benchmarks, ephemeral caches and the browser fallback.

use super::{Storage, StorageError, TempId};
use crate::config::Durability;
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
    /// Appends to the object at `path`, created if missing; returns its new length.
    fn extend_file(&mut self, path: &str, data: &[u8]) -> u64 {
        let len = match self.files.get_mut(path) {
            Some(f) => {
                f.extend_from_slice(data);
                f.len() as u64
            }
            None => {
                self.files.insert(path.to_owned(), data.to_vec());
                self.dirs.add(path, data.len() as u64);
                return data.len() as u64;
            }
        };
        self.dirs.set_size(path, len);
        len
    }

    fn insert_file(&mut self, path: &str, data: Vec<u8>) {
        let len = data.len() as u64;
        if self.files.insert(path.to_owned(), data).is_none() {
            self.dirs.add(path, len);
        } else {
            self.dirs.set_size(path, len);
        }
    }

    fn remove_file(&mut self, path: &str) -> Option<Vec<u8>> {
        let data = self.files.remove(path)?;
        self.dirs.remove(path);
        Some(data)
    }
}

/// Per directory, the names directly inside it: how many objects are beneath each, and the
/// size of the object of that name if there is one. Hashed rather than ordered, so that adding
/// a file costs no string comparisons (a listing sorts), and holding sizes, so that listing
/// with sizes (reopening after a crash) reads one directory's table instead of looking every
/// path up.
#[derive(Debug, Default)]
struct Dirs(HashMap<String, Names, BuildHasherDefault<PathHasher>>);

type Names = HashMap<String, Node, BuildHasherDefault<PathHasher>>;

#[derive(Debug, Default)]
struct Node {
    /// Objects whose paths continue below this name.
    below: u64,
    /// The object of this very path.
    size: Option<u64>,
}

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
    fn node(&mut self, dir: &str, name: &str) -> &mut Node {
        if !self.0.contains_key(dir) {
            self.0.insert(dir.to_owned(), Names::default());
        }
        let names = self.0.get_mut(dir).expect("present");
        if !names.contains_key(name) {
            names.insert(name.to_owned(), Node::default());
        }
        names.get_mut(name).expect("present")
    }

    fn add(&mut self, path: &str, size: u64) {
        let mut levels = levels(path).peekable();
        while let Some((dir, name)) = levels.next() {
            let node = self.node(dir, name);
            if levels.peek().is_some() {
                node.below += 1;
            } else {
                node.size = Some(size);
            }
        }
    }

    fn set_size(&mut self, path: &str, size: u64) {
        if let Some((dir, name)) = levels(path).last() {
            self.node(dir, name).size = Some(size);
        }
    }

    fn remove(&mut self, path: &str) {
        let mut levels = levels(path).peekable();
        while let Some((dir, name)) = levels.next() {
            let Some(names) = self.0.get_mut(dir) else {
                continue;
            };
            if let Some(node) = names.get_mut(name) {
                if levels.peek().is_some() {
                    node.below = node.below.saturating_sub(1);
                } else {
                    node.size = None;
                }
                if node.below == 0 && node.size.is_none() {
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

    fn visit_sizes(&self, dir: &str, visit: &mut dyn FnMut(&str, Option<u64>)) {
        if let Some(names) = self.0.get(dir) {
            for (name, node) in names {
                visit(name, node.size);
            }
        }
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
        let mut s = self.state();
        if let Some(f) = s.files.get_mut(path) {
            f.truncate(len);
            let len = f.len() as u64;
            s.dirs.set_size(path, len);
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
            s.extend_file(&path, data);
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
        let len = s.extend_file(path, &[]);
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
        self.state().extend_file(path, data);
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

    fn visit_sizes(
        &mut self,
        dir: &str,
        visit: &mut dyn FnMut(&str, Option<u64>),
    ) -> Result<(), StorageError> {
        // In no particular order, as the trait allows (reopening sorts only what it must).
        self.state()
            .dirs
            .visit_sizes(dir.trim_end_matches('/'), visit);
        Ok(())
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

    /// Honours either level: there is nothing to sync, every call takes effect at once.
    fn set_durability(&mut self, level: Durability) -> Durability {
        level
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

    fn sizes(s: &mut MemoryStorage, dir: &str) -> Vec<(String, Option<u64>)> {
        let mut out = Vec::new();
        s.visit_sizes(dir, &mut |name, size| out.push((name.to_owned(), size)))
            .unwrap();
        out
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
        let mut sized = sizes(&mut s, "q");
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
