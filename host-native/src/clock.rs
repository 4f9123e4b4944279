//! The host's clock: the system's wall clock and a monotonic clock.

use ocicache_core::{Clock, Millis};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Wall time from [`SystemTime`] (milliseconds since the Unix epoch) and monotonic time from
/// [`Instant`] (nanoseconds since this clock was made). The default clock of
/// [`crate::CacheBuilder`]; tests inject [`ocicache_core::ManualClock`] instead.
///
/// ```
/// use ocicache::SystemClock;
/// use ocicache_core::Clock;
/// let clock = SystemClock::new();
/// assert!(clock.now_millis() > 1_600_000_000_000);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose monotonic origin is now.
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now_millis(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn monotonic_nanos(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// One clock shared by the engine and the host's own use of time (a pull's token lifetimes
/// and retry delays), so that both read the same time, simulated or not.
#[derive(Clone)]
pub(crate) struct SharedClock(std::sync::Arc<std::sync::Mutex<Box<dyn Clock>>>);

impl SharedClock {
    pub(crate) fn new(clock: Box<dyn Clock>) -> SharedClock {
        SharedClock(std::sync::Arc::new(std::sync::Mutex::new(clock)))
    }
}

impl Clock for SharedClock {
    fn now_millis(&self) -> Millis {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .now_millis()
    }
    fn monotonic_nanos(&self) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .monotonic_nanos()
    }
}
