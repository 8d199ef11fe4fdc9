//! The discrete-event kernel: integer time, a total event order, and named RNG streams.
//! Nothing here knows about gateways or rollouts.

pub mod queue;
pub mod rng;
