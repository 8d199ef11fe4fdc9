//! stagger: simulate, tune and run staged firmware rollouts for fleets of edge gateways.
//!
//! - `scenario`: TOML scenarios, validation, distributions
//! - `sim`: the discrete-event kernel (queue, RNG streams)
//! - `world`: the simulated fleet, network, caches, management service and faults
//! - `engine`: the sans-IO rollout engine shared by simulation and live execution
//! - `simulate`: the driver that runs the engine against the world

// Errors are the cold path and carry file, line and key context on purpose.
#![allow(clippy::result_large_err)]

pub mod calibrate;
pub mod cli;
pub mod commands;
pub mod emulate;
pub mod engine;
pub mod error;
pub mod files;
pub mod fit;
pub mod live;
pub mod plot;
pub mod progress;
pub mod refit;
pub mod scenario;
pub mod sensitivity;
pub mod sim;
pub mod simulate;
pub mod stats;
pub mod sweep;
pub mod time;
pub mod tune;
pub mod world;
