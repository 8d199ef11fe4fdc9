//! The `stagger` binary: parse flags, run the subcommand, map failures to exit codes.

#![allow(clippy::result_large_err)]

use clap::Parser;

fn main() {
    let cli = stagger::cli::Cli::parse();
    if let Err(failure) = stagger::commands::run(cli) {
        eprintln!("error: {failure}");
        std::process::exit(failure.exit_code());
    }
}
