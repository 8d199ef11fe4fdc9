//! Emulators for rehearsals and tests. They bind to loopback only and play devices with
//! the simulator's world model (durations and fault rates), sped up by a factor.

pub mod aws;
pub mod proxy;
pub mod watson;
