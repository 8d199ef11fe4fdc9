//! Subcommand implementations. Each turns validated arguments into output bytes.

pub mod calibrate;
pub mod compare;
pub mod emulate;
pub mod review;
pub mod rollout;
pub mod simulate;
pub mod status;
pub mod sweep;
pub mod tune;

use crate::cli::{Cli, Command};
use crate::error::Failure;

pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Simulate(args) => simulate::run(&args),
        Command::Calibrate(args) => calibrate::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Rollout(args) => rollout::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Emulate(args) => emulate::run(&args),
        Command::Plot(args) => {
            let written =
                crate::plot::plot(&args.input, args.out.as_deref(), args.plan.as_deref())?;
            eprintln!(
                "plot: wrote {} charts (PNG and SVG){}",
                written.len(),
                if args.input.is_dir() {
                    " and report.html"
                } else {
                    ""
                }
            );
            Ok(())
        }
        Command::Sweep(args) => sweep::run(&args),
        Command::Merge(args) => sweep::merge(&args),
        Command::Tune(args) => tune::run(&args),
    }
}

pub use crate::files::write_file;

/// Worker threads: the flag, or every core.
pub fn threads(flag: Option<usize>) -> Result<usize, Failure> {
    match flag {
        Some(0) => Err(Failure::input("--threads must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}
