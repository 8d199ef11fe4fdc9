//! Subcommand implementations. Each turns validated arguments into output bytes.

pub mod calibrate;
pub mod simulate;

use crate::cli::{Cli, Command};
use crate::error::Failure;

pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Simulate(args) => simulate::run(&args),
        Command::Calibrate(args) => calibrate::run(&args),
    }
}

/// Writes bytes to a file, naming it in any error.
pub fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), Failure> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Failure::io(dir, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| Failure::io(path, e))
}
