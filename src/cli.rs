//! Command-line flags (clap). Raw flags become validated arguments in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "stagger",
    version,
    about = "Simulate, tune and run staged firmware rollouts for fleets of edge gateways",
    long_about = "Simulate, tune and run staged firmware rollouts for fleets of edge gateways.\n\n\
A deterministic discrete-event simulator models the fleet (links, regional caches, chunked \
downloads, installs, faults, and a management service with concurrency limits and CPU load). \
The same rollout engine runs against the simulator and, with `rollout --execute`, the live fleet.\n\n\
Exit codes: 0 done, 1 run-time failure, 2 bad input, 3 live rollout halted by a safety rule."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one policy on a scenario and print its outcome
    Simulate(SimulateArgs),
    /// Check the simulator against the seed's reference figures (bulk, seed-staged, caches)
    Calibrate(CalibrateArgs),
}

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Scenario with `bulk`, `seed-staged` and `fixed` policies (e.g. scenarios/seed-200.toml)
    pub scenario: PathBuf,
    /// Seeds 1..=N per policy
    #[arg(long, default_value_t = 30)]
    pub seeds: u64,
    /// Override a scenario key by dotted path; VALUE is TOML (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Exit 1 if any figure falls outside its target range
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Scenario file (TOML), e.g. scenarios/seed-200.toml
    pub scenario: PathBuf,
    /// Policy name from the scenario's [policies] (default: meta.default_policy)
    #[arg(long, conflicts_with = "plan")]
    pub policy: Option<String>,
    /// Replay a plan written by `stagger tune`
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Replication seed: same scenario, policy and seed give identical output
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Override a scenario key by dotted path; VALUE is TOML (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Print exactly one JSON summary object on stdout
    #[arg(long)]
    pub json: bool,
    /// Write a timeline CSV (one row per sampled instant)
    #[arg(long, value_name = "FILE.csv")]
    pub timeline: Option<PathBuf>,
    /// Timeline sampling interval in virtual seconds (at most 60)
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub sample_every: f64,
}
