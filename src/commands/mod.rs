//! Subcommand implementations. Each turns validated arguments into output bytes.

pub mod approve;
pub mod calibrate;
pub mod compare;
pub mod emulate;
pub mod fit;
pub mod preflight;
pub mod review;
pub mod rollout;
pub mod sensitivity;
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
        Command::Fit(args) => fit::run(&args),
        Command::Sensitivity(args) => sensitivity::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Rollout(args) => rollout::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Approve(args) => approve::run(&args),
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
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "stagger", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { out } => man(out.as_deref()),
        Command::Schema => {
            let text = serde_json::to_string_pretty(&crate::scenario::raw::schema())
                .map_err(|e| Failure::Runtime(e.to_string()))?;
            println!("{text}");
            Ok(())
        }
    }
}

/// The man page of stagger, and with `out` one page per subcommand too.
fn man(out: Option<&std::path::Path>) -> Result<(), Failure> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let render = |c: clap::Command| -> Result<Vec<u8>, Failure> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c)
            .render(&mut buf)
            .map_err(|e| Failure::Runtime(e.to_string()))?;
        Ok(buf)
    };
    let Some(dir) = out else {
        use std::io::Write;
        let page = render(cmd)?;
        return std::io::stdout()
            .write_all(&page)
            .map_err(|e| Failure::Runtime(e.to_string()));
    };
    std::fs::create_dir_all(dir).map_err(|e| Failure::io(dir, e))?;
    for sub in cmd.get_subcommands() {
        let name = format!("stagger-{}", sub.get_name());
        let page = render(sub.clone().display_name(name.clone()))?;
        write_file(&dir.join(format!("{name}.1")), &page)?;
    }
    write_file(&dir.join("stagger.1"), &render(cmd)?)?;
    eprintln!(
        "man: wrote stagger.1 and one page per subcommand in {}",
        dir.display()
    );
    Ok(())
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
