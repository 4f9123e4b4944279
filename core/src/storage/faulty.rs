//! A fault-injecting [`Storage`] for tests: fail the N-th call, or crash after it.

use super::{MemoryStorage, Storage, StorageError, TempId};
use crate::config::Durability;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What to do at the chosen call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Call number `n` (counting from 1) fails with `error`; every other call works.
    FailAt {
        /// Which call fails.
        n: u64,
        /// The error it fails with.
        error: StorageError,
    },
    /// Calls after number `n` all fail, as if the process died after call `n` returned. If call
    /// `n + 1` is an append, `torn_bytes` of it reach the medium first (a torn write); with 0,
    /// the append leaves no trace (a file it would create does not appear).
    CrashAfter {
        /// The last call that completes.
        n: u64,
        /// How many bytes of an append at call `n + 1` are written before the crash.
        torn_bytes: usize,
    },
}

/// Wraps a [`MemoryStorage`] and injects one [`Fault`].
///
/// After a crash the inner storage holds exactly what was durable: committed objects and
/// appended bytes (temps are abandoned, as on a real disk). Open a new cache over
/// [`FaultyStorage::inner`] to recover.
#[derive(Debug, Clone)]
pub struct FaultyStorage {
    inner: MemoryStorage,
    fault: Option<Fault>,
    calls: Arc<AtomicU64>,
}

impl FaultyStorage {
    /// Wraps `inner`; `fault: None` only counts calls.
    pub fn new(inner: MemoryStorage, fault: Option<Fault>) -> FaultyStorage {
        FaultyStorage {
            inner,
            fault,
            calls: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The storage underneath.
    pub fn inner(&self) -> &MemoryStorage {
        &self.inner
    }

    /// Calls made so far (shared by clones).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Whether the simulated process has crashed.
    pub fn crashed(&self) -> bool {
        matches!(self.fault, Some(Fault::CrashAfter { n, .. }) if self.calls() > n)
    }

    /// Counts a call and decides its fate: `Err` to fail it, `Ok(Some(k))` to tear an append
    /// after `k` bytes, `Ok(None)` to run it.
    fn gate(&self) -> Result<Option<usize>, StorageError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        match &self.fault {
            Some(Fault::FailAt { n, error }) if call == *n => Err(error.clone()),
            Some(Fault::CrashAfter { n, torn_bytes }) if call == n + 1 => Ok(Some(*torn_bytes)),
            Some(Fault::CrashAfter { n, .. }) if call > n + 1 => Err(crashed()),
            _ => Ok(None),
        }
    }

    fn run<T>(
        &mut self,
        op: impl FnOnce(&mut MemoryStorage) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        match self.gate()? {
            None => op(&mut self.inner),
            Some(_) => Err(crashed()),
        }
    }
}

fn crashed() -> StorageError {
    StorageError::Io("simulated crash".into())
}

impl Storage for FaultyStorage {
    fn create_temp(&mut self, size_hint: Option<u64>) -> Result<TempId, StorageError> {
        self.run(|s| s.create_temp(size_hint))
    }
    fn write_temp(&mut self, temp: TempId, data: &[u8]) -> Result<(), StorageError> {
        self.run(|s| s.write_temp(temp, data))
    }
    fn commit_temp(&mut self, temp: TempId, path: &str) -> Result<(), StorageError> {
        let result = self.run(|s| s.commit_temp(temp, path));
        if result.is_err() && !self.crashed() {
            // The contract: the temp is gone afterwards, whether the commit succeeds or fails
            // (after a crash it is abandoned instead, and the next open clears it).
            let _ = self.inner.abort_temp(temp);
        }
        result
    }
    fn abort_temp(&mut self, temp: TempId) -> Result<(), StorageError> {
        self.run(|s| s.abort_temp(temp))
    }
    fn append(&mut self, path: &str, data: &[u8]) -> Result<(), StorageError> {
        match self.gate()? {
            None => self.inner.append(path, data),
            Some(torn) => {
                // With no byte written, the process died before the append: not even an empty
                // file is created.
                if torn > 0 {
                    let _ = self.inner.append(path, &data[..torn.min(data.len())]);
                }
                Err(crashed())
            }
        }
    }
    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        self.run(|s| s.read_at(path, offset, buf))
    }
    fn size(&mut self, path: &str) -> Result<Option<u64>, StorageError> {
        self.run(|s| s.size(path))
    }
    fn list(&mut self, dir: &str) -> Result<Vec<String>, StorageError> {
        self.run(|s| s.list(dir))
    }
    fn remove(&mut self, path: &str) -> Result<(), StorageError> {
        self.run(|s| s.remove(path))
    }
    fn clear_temps(&mut self) -> Result<u64, StorageError> {
        self.run(|s| s.clear_temps())
    }
    /// The inner storage's answer; not a call that can fail or crash.
    fn set_durability(&mut self, level: Durability) -> Durability {
        self.inner.set_durability(level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_exactly_the_chosen_call() {
        let mut s = FaultyStorage::new(
            MemoryStorage::new(),
            Some(Fault::FailAt {
                n: 2,
                error: StorageError::NoSpace,
            }),
        );
        s.append("a", b"1").unwrap();
        assert_eq!(s.append("a", b"2"), Err(StorageError::NoSpace));
        s.append("a", b"3").unwrap();
        assert_eq!(s.inner().get("a").unwrap(), b"13");
    }

    #[test]
    fn crash_tears_the_next_append_and_stops_everything() {
        let mut s = FaultyStorage::new(
            MemoryStorage::new(),
            Some(Fault::CrashAfter {
                n: 1,
                torn_bytes: 2,
            }),
        );
        s.append("j", b"abc").unwrap();
        assert!(s.append("j", b"defg").is_err());
        assert!(s.crashed());
        assert!(s.size("j").is_err());
        assert_eq!(s.inner().get("j").unwrap(), b"abcde");
    }
}
