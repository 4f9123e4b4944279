//! In-memory [`Storage`]: for tests, benchmarks, ephemeral caches and the browser fallback.

use super::{Storage, StorageError, TempId};
use crate::config::Durability;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;
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
    /// Hashed, not ordered: reads and writes by path are O(1) whatever the number of objects;
    /// only listing (at open after a crash, in integrity checks) scans. The hasher is
    /// deterministic (SipHash with fixed keys): the core takes no randomness.
    files: HashMap<String, Vec<u8>, BuildHasherDefault<DefaultHasher>>,
    temps: BTreeMap<u64, Vec<u8>>,
    /// Open partial downloads: their bytes live in `files` under these paths.
    partials: BTreeMap<u64, String>,
    next_temp: u64,
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
        self.state().files.insert(path.to_owned(), data.to_vec());
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
            s.files.entry(path).or_default().extend_from_slice(data);
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
            let data = s.files.remove(&partial).unwrap_or_default();
            s.files.insert(path.to_owned(), data);
            return Ok(());
        }
        let data = s
            .temps
            .remove(&temp.0)
            .ok_or_else(|| StorageError::NotFound(format!("temp {}", temp.0)))?;
        s.files.insert(path.to_owned(), data);
        Ok(())
    }

    fn abort_temp(&mut self, temp: TempId) -> Result<(), StorageError> {
        let mut s = self.state();
        if let Some(partial) = s.partials.remove(&temp.0) {
            s.files.remove(&partial);
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
        let len = s.files.entry(path.to_owned()).or_default().len() as u64;
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
        self.state()
            .files
            .entry(path.to_owned())
            .or_default()
            .extend_from_slice(data);
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
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let s = self.state();
        let mut out: Vec<String> = s
            .files
            .keys()
            .filter_map(|path| path.strip_prefix(&prefix))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_owned())
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        self.state().files.remove(path);
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

    #[test]
    fn list_names_direct_children_once() {
        let mut s = MemoryStorage::new();
        for p in ["d/a", "d/b/c", "d/b/d", "dd/x", "e"] {
            s.append(p, b"1").unwrap();
        }
        assert_eq!(s.list("d").unwrap(), vec!["a", "b"]);
        assert!(s.list("nope").unwrap().is_empty());
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
