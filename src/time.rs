//! Integer time in milliseconds, shared by the engine, the simulator and the live driver.
//! Never `f64`: integer time keeps event order exact and outputs byte-identical.

use std::fmt;
use std::ops::{Add, Sub};

/// Milliseconds since the rollout started (virtual in the simulator, wall clock when live).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(pub u64);

impl Time {
    pub const ZERO: Time = Time(0);
    pub const NEVER: Time = Time(u64::MAX);

    pub fn from_secs(s: f64) -> Time {
        Time::from_millis_f64(s * 1000.0)
    }

    pub fn from_millis_f64(ms: f64) -> Time {
        if ms.is_nan() || ms <= 0.0 {
            Time(0)
        } else if ms >= u64::MAX as f64 / 2.0 {
            Time(u64::MAX / 2)
        } else {
            Time(ms.ceil() as u64)
        }
    }

    pub fn millis(self) -> u64 {
        self.0
    }

    pub fn secs(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl Add for Time {
    type Output = Time;
    fn add(self, rhs: Time) -> Time {
        Time(self.0.saturating_add(rhs.0))
    }
}

impl Sub for Time {
    type Output = Time;
    fn sub(self, rhs: Time) -> Time {
        Time(self.0.saturating_sub(rhs.0))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0 / 1000;
        write!(f, "{}h{:02}m{:02}s", s / 3600, (s / 60) % 60, s % 60)
    }
}
