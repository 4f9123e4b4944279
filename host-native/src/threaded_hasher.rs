//! Hashing on a helper thread, so that a large blob's SHA-2 runs beside its storage writes
//! instead of after them: the core hashes and stores every chunk in turn, and on a machine
//! where SHA-NI hashes at about memory speed, one more pass over the bytes costs 10–15 %.
//!
//! A hash starts inline (the core's [`BuiltinHasher`] state). Once it has seen more than
//! `handoff_bytes`, its state moves to a new thread, and from then on `update` only copies the
//! bytes into a recycled buffer for that thread. `finish` waits for the thread. Small hashes —
//! manifests, tags' blobs, config blobs — never pay for a thread. When `max_threads` hashes
//! already run on threads, a hash stays inline.
//!
//! ```
//! use ocicache::ThreadedHasher;
//! use ocicache::ocicache_core::{hashing::digest_of, Algorithm, BuiltinHasher};
//!
//! let hasher = ThreadedHasher::new(1, 1024);
//! let data = vec![7u8; 1 << 20];
//! assert_eq!(
//!     digest_of(&hasher, Algorithm::Sha256, &data)?,
//!     digest_of(&BuiltinHasher, Algorithm::Sha256, &data)?,
//! );
//! # Ok::<(), ocicache::StorageError>(())
//! ```

use ocicache_core::{Algorithm, BuiltinHasher, HashProvider, HashState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};

/// Bytes per buffer handed to the thread: large enough that a hand-over costs little, small
/// enough to stay in the CPU cache between the copy and the hash.
const PIECE: usize = 256 << 10;
/// Buffers queued for the thread at most; with the recycled ones, the memory a threaded hash
/// holds stays below (QUEUE + 2) × PIECE whatever the blob's size.
const QUEUE: usize = 16;

/// A [`HashProvider`] that moves large hashes to helper threads (see the module docs).
#[derive(Clone, Debug)]
pub struct ThreadedHasher {
    max_threads: usize,
    handoff_bytes: u64,
    running: Arc<AtomicUsize>,
}

impl ThreadedHasher {
    /// At most `max_threads` hashes on threads at once (0: always inline); a hash moves to a
    /// thread once it has seen more than `handoff_bytes`.
    pub fn new(max_threads: usize, handoff_bytes: u64) -> ThreadedHasher {
        ThreadedHasher {
            max_threads,
            handoff_bytes,
            running: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The process-wide hasher the engines use: one thread per core beyond the caller's (at
    /// most 4), a hand-off at 1 MiB.
    pub fn process_default() -> ThreadedHasher {
        static DEFAULT: OnceLock<ThreadedHasher> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                let cores = thread::available_parallelism().map_or(1, |n| n.get());
                ThreadedHasher::new(cores.saturating_sub(1).min(4), 1 << 20)
            })
            .clone()
    }

    /// Hashes running on threads now (a thread ends once its hash finished or was dropped).
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// A thread slot, if one is free.
    fn claim(&self) -> Option<Slot> {
        self.running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max_threads).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.running.clone()))
    }
}

impl HashProvider for ThreadedHasher {
    fn start(&self, algorithm: Algorithm) -> Option<Box<dyn HashState>> {
        let state = BuiltinHasher.start(algorithm)?;
        Some(Box::new(ThreadedState {
            owner: self.clone(),
            seen: 0,
            mode: Mode::Inline(state),
        }))
    }
}

/// A claim on one of the hasher's threads, given back when the thread ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

enum Mode {
    Inline(Box<dyn HashState>),
    Threaded(Offload),
    /// Only while switching, or after the thread could not be reached.
    Broken,
}

/// A hash running on its own thread.
struct Offload {
    pieces: SyncSender<Vec<u8>>,
    spares: Receiver<Vec<u8>>,
    thread: JoinHandle<Vec<u8>>,
}

impl Offload {
    /// Moves `state` to a new thread; gives it back if no thread could be started.
    fn start(state: Box<dyn HashState>, slot: Slot) -> Result<Offload, Box<dyn HashState>> {
        let (pieces, queued) = mpsc::sync_channel::<Vec<u8>>(QUEUE);
        let (recycle, spares) = mpsc::channel::<Vec<u8>>();
        // The state follows the spawn, so that a failed spawn leaves it with the caller.
        let (give, take) = mpsc::channel::<Box<dyn HashState>>();
        let spawned = thread::Builder::new()
            .name("ocicache-hash".into())
            .spawn(move || {
                let _slot = slot;
                let Ok(mut state) = take.recv() else {
                    return Vec::new();
                };
                for piece in queued {
                    state.update(&piece);
                    let _ = recycle.send(piece); // gone if the hash was dropped meanwhile
                }
                state.finish()
            });
        match spawned {
            Ok(thread) => {
                give.send(state).expect("the thread waits for its state");
                Ok(Offload {
                    pieces,
                    spares,
                    thread,
                })
            }
            Err(_) => Err(state),
        }
    }

    /// Copies `data` into buffers for the thread; false if the thread is gone.
    fn feed(&mut self, data: &[u8]) -> bool {
        for part in data.chunks(PIECE) {
            let mut buf = self
                .spares
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(PIECE));
            buf.clear();
            buf.extend_from_slice(part);
            if self.pieces.send(buf).is_err() {
                return false;
            }
        }
        true
    }

    fn finish(self) -> Vec<u8> {
        drop(self.pieces);
        // A panicked thread gives no digest, which the core reports as a host failure.
        self.thread.join().unwrap_or_default()
    }
}

struct ThreadedState {
    owner: ThreadedHasher,
    seen: u64,
    mode: Mode,
}

impl HashState for ThreadedState {
    fn update(&mut self, data: &[u8]) {
        self.seen += data.len() as u64;
        if self.seen > self.owner.handoff_bytes
            && matches!(self.mode, Mode::Inline(_))
            && let Some(slot) = self.owner.claim()
            && let Mode::Inline(state) = std::mem::replace(&mut self.mode, Mode::Broken)
        {
            self.mode = match Offload::start(state, slot) {
                Ok(offload) => Mode::Threaded(offload),
                Err(state) => Mode::Inline(state),
            };
        }
        match &mut self.mode {
            Mode::Inline(state) => state.update(data),
            Mode::Threaded(offload) => {
                if !offload.feed(data) {
                    self.mode = Mode::Broken;
                }
            }
            Mode::Broken => {}
        }
    }

    fn finish(self: Box<Self>) -> Vec<u8> {
        match self.mode {
            Mode::Inline(state) => state.finish(),
            Mode::Threaded(offload) => offload.finish(),
            Mode::Broken => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocicache_core::hashing::digest_of;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn both(hasher: &ThreadedHasher, algorithm: Algorithm, chunks: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
        let mut threaded = hasher.start(algorithm).expect("starts");
        let mut builtin = BuiltinHasher.start(algorithm).expect("starts");
        for c in chunks {
            threaded.update(c);
            builtin.update(c);
        }
        (threaded.finish(), builtin.finish())
    }

    #[test]
    fn equals_the_builtin_hash_around_the_handoff_and_piece_sizes() {
        let hasher = ThreadedHasher::new(1, 1000);
        let data = pattern(3 * PIECE + 12_345);
        let cases: Vec<Vec<&[u8]>> = vec![
            vec![],
            vec![&data[..1000]],
            vec![&data[..1001]],
            vec![&data[..999], &data[999..1001]],
            vec![&data[..PIECE]],
            vec![&data[..PIECE + 1]],
            data.chunks(777).collect(),
            data.chunks(PIECE).collect(),
            vec![&data[..]],
        ];
        for algorithm in [Algorithm::Sha256, Algorithm::Sha384, Algorithm::Sha512] {
            for chunks in &cases {
                let (got, want) = both(&hasher, algorithm, chunks);
                assert_eq!(got, want, "{algorithm:?}, {} chunks", chunks.len());
            }
        }
        // Every thread ended with its hash.
        assert_eq!(hasher.running(), 0);
    }

    #[test]
    fn threads_are_bounded_and_the_rest_run_inline() {
        let hasher = ThreadedHasher::new(1, 10);
        let data = pattern(200_000);
        let mut states: Vec<_> = (0..3)
            .map(|_| {
                (
                    hasher.start(Algorithm::Sha256).unwrap(),
                    BuiltinHasher.start(Algorithm::Sha256).unwrap(),
                )
            })
            .collect();
        for chunk in data.chunks(5000) {
            for (t, b) in &mut states {
                t.update(chunk);
                b.update(chunk);
            }
            assert!(hasher.running() <= 1);
        }
        assert_eq!(hasher.running(), 1);
        for (t, b) in states {
            assert_eq!(t.finish(), b.finish());
        }
        assert_eq!(hasher.running(), 0);
    }

    #[test]
    fn a_dropped_hash_ends_its_thread() {
        let hasher = ThreadedHasher::new(1, 10);
        let mut state = hasher.start(Algorithm::Sha256).unwrap();
        state.update(&pattern(100_000));
        assert_eq!(hasher.running(), 1);
        drop(state);
        // The thread drains what was queued, then ends.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while hasher.running() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the thread did not end"
            );
            thread::sleep(std::time::Duration::from_millis(1));
        }
        let data = pattern(50_000);
        assert_eq!(
            digest_of(&hasher, Algorithm::Sha256, &data).unwrap(),
            digest_of(&BuiltinHasher, Algorithm::Sha256, &data).unwrap()
        );
    }

    #[test]
    fn no_threads_means_inline() {
        let hasher = ThreadedHasher::new(0, 0);
        let mut state = hasher.start(Algorithm::Sha256).unwrap();
        state.update(&pattern(100_000));
        assert_eq!(hasher.running(), 0);
        assert_eq!(state.finish().len(), 32);
    }
}
