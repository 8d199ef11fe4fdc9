//! `stagger sweep` and `stagger merge`.

use std::path::PathBuf;

use crate::cli::{MergeArgs, SweepArgs};
use crate::error::Failure;
use crate::scenario::InputError;
use crate::sweep::{self, run::Shard};

/// Parses `I/N` or `auto` (Slurm job arrays, Kubernetes Indexed Jobs).
pub fn parse_shard(s: &str, env: impl Fn(&str) -> Option<String>) -> Result<Shard, InputError> {
    let num = |name: &str, v: &str| {
        v.trim().parse::<u64>().map_err(|_| {
            InputError::new(format!("--shard auto: {name}=`{v}` is not a whole number"))
        })
    };
    let (part, count) = if s == "auto" {
        if let (Some(id), Some(n)) = (env("SLURM_ARRAY_TASK_ID"), env("SLURM_ARRAY_TASK_COUNT")) {
            let min =
                env("SLURM_ARRAY_TASK_MIN").map_or(Ok(0), |m| num("SLURM_ARRAY_TASK_MIN", &m))?;
            (
                num("SLURM_ARRAY_TASK_ID", &id)?.saturating_sub(min),
                num("SLURM_ARRAY_TASK_COUNT", &n)?,
            )
        } else if let Some(id) = env("JOB_COMPLETION_INDEX") {
            let n = env("STAGGER_SHARD_COUNT").ok_or_else(|| {
                InputError::new("--shard auto: JOB_COMPLETION_INDEX is set but STAGGER_SHARD_COUNT (the Job's completions) is not")
            })?;
            (
                num("JOB_COMPLETION_INDEX", &id)?,
                num("STAGGER_SHARD_COUNT", &n)?,
            )
        } else {
            return Err(InputError::new(
                "--shard auto: found neither SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT nor JOB_COMPLETION_INDEX/STAGGER_SHARD_COUNT",
            ));
        }
    } else {
        let (a, b) = s.split_once('/').ok_or_else(|| {
            InputError::new(format!("--shard `{s}`: expected I/N (e.g. 1/4) or auto"))
        })?;
        let (i, n) = (num("I", a)?, num("N", b)?);
        if i == 0 || i > n {
            return Err(InputError::new(format!(
                "--shard {s}: shards are numbered from 1, as in cargo-nextest and Jest: 1/{n} … {n}/{n}"
            )));
        }
        (i - 1, n)
    };
    if count == 0 || part >= count {
        return Err(InputError::new(format!(
            "--shard: part {} of {count} is out of range (parts are 1..={count})",
            part + 1
        )));
    }
    Ok(Shard { part, count })
}

pub fn run(args: &SweepArgs) -> Result<(), Failure> {
    let path = args.scenario.display().to_string();
    if args.replications == Some(0) {
        return Err(Failure::input("--replications must be at least 1"));
    }
    let threads = super::threads(args.threads)?;
    let shard = match &args.shard {
        Some(s) => parse_shard(s, |k| std::env::var(k).ok())?,
        None => Shard::WHOLE,
    };
    let p = sweep::prepare(&path, &args.sets, args.replications, args.seed)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results").join(&p.good.name));
    let total = sweep::run::total_runs(p.configs.len(), p.spec.replications);
    eprintln!(
        "sweep: {} configurations × {} replications × 2 releases = {total} runs{}",
        p.configs.len(),
        p.spec.replications,
        if shard == Shard::WHOLE {
            String::new()
        } else {
            format!(" (shard {}/{})", shard.part, shard.count)
        }
    );
    if shard == Shard::WHOLE {
        sweep::run_complete(&out, &p, threads)?;
    } else {
        sweep::run_shard(&out, &p, shard, threads)?;
    }
    eprintln!("sweep: wrote {}", out.display());
    Ok(())
}

pub fn merge(args: &MergeArgs) -> Result<(), Failure> {
    let threads = super::threads(args.threads)?;
    sweep::merge(&args.dirs, &args.out, threads)?;
    eprintln!("merge: wrote {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shards_from_flags_and_schedulers() {
        // Flags are 1-based, as in cargo-nextest and Jest.
        assert_eq!(
            parse_shard("2/4", env(&[])).unwrap(),
            Shard { part: 1, count: 4 }
        );
        assert_eq!(
            parse_shard("4/4", env(&[])).unwrap(),
            Shard { part: 3, count: 4 }
        );
        let e = parse_shard("0/4", env(&[])).unwrap_err().to_string();
        assert!(e.contains("numbered from 1") && e.contains("1/4"), "{e}");
        assert!(parse_shard("5/4", env(&[])).is_err());
        assert!(parse_shard("x", env(&[])).is_err());
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
        ];
        assert_eq!(
            parse_shard("auto", env(&slurm)).unwrap(),
            Shard { part: 2, count: 4 }
        );
        let k8s = [("JOB_COMPLETION_INDEX", "0"), ("STAGGER_SHARD_COUNT", "2")];
        assert_eq!(
            parse_shard("auto", env(&k8s)).unwrap(),
            Shard { part: 0, count: 2 }
        );
        assert!(parse_shard("auto", env(&[("JOB_COMPLETION_INDEX", "0")])).is_err());
        assert!(parse_shard("auto", env(&[])).is_err());
    }
}
