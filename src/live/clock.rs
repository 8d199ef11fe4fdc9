//! Wall-clock time for the live driver, or a virtual clock for tests and benchmarks that
//! run a whole rollout against an in-process platform in no time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn unix_ms(&self) -> u64;
    fn sleep_ms(&self, ms: u64);
    /// Longest single sleep, so that Ctrl-C is served promptly.
    fn max_nap_ms(&self) -> u64;
}

pub struct WallClock;

impl Clock for WallClock {
    fn unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    fn sleep_ms(&self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }

    fn max_nap_ms(&self) -> u64 {
        200
    }
}

/// Time that moves only when someone sleeps. Clones share one clock.
#[derive(Clone, Default)]
pub struct VirtualClock(Arc<AtomicU64>);

impl VirtualClock {
    pub fn starting_at(unix_ms: u64) -> VirtualClock {
        VirtualClock(Arc::new(AtomicU64::new(unix_ms)))
    }

    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn unix_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    fn sleep_ms(&self, ms: u64) {
        self.advance(ms.max(1));
    }

    fn max_nap_ms(&self) -> u64 {
        u64::MAX
    }
}
