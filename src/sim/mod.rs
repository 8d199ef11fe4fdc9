//! The discrete-event kernel: integer time, a total event order, and named RNG streams.
//! Nothing here knows about gateways or rollouts.

pub mod queue;
pub mod rng;

/// An `f64` ordered totally (`total_cmp`), for heaps keyed by time or hazard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Key(pub f64);
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
