//! Time, supplied by the host (the WIT `clock` import).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Milliseconds since the Unix epoch, the unit of every persisted time in the cache.
pub type Millis = u64;

/// The host's clocks.
pub trait Clock: Send {
    /// Wall-clock time in milliseconds since the Unix epoch: TTLs and history times.
    fn now_millis(&self) -> Millis;
    /// A monotonic clock in nanoseconds for latency metrics; its origin is arbitrary.
    fn monotonic_nanos(&self) -> u64;
}

/// A clock that moves only when told: simulated time for tests and scenarios. Clones share the
/// same time.
///
/// ```
/// use ocicache_core::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance(500);
/// assert_eq!(clock.now_millis(), 1_500);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock showing `start` milliseconds since the epoch.
    pub fn new(start: Millis) -> ManualClock {
        ManualClock {
            millis: Arc::new(AtomicU64::new(start)),
            nanos: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Moves both clocks forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.millis.fetch_add(ms, Ordering::SeqCst);
        self.nanos
            .fetch_add(ms.saturating_mul(1_000_000), Ordering::SeqCst);
    }

    /// Sets the wall clock (it may go backwards, as real ones do).
    pub fn set(&self, ms: Millis) {
        self.millis.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> Millis {
        self.millis.load(Ordering::SeqCst)
    }
    fn monotonic_nanos(&self) -> u64 {
        self.nanos.load(Ordering::SeqCst)
    }
}
