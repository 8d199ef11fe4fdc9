//! `stagger sensitivity`: the Morris ranking as markdown.

use crate::cli::SensitivityArgs;
use crate::error::Failure;
use crate::scenario;
use crate::sensitivity;

pub fn run(args: &SensitivityArgs) -> Result<(), Failure> {
    if args.trajectories < 2 {
        return Err(Failure::input(
            "--trajectories must be at least 2 (σ needs two effects)",
        ));
    }
    if args.seeds < 1 {
        return Err(Failure::input("--seeds must be at least 1"));
    }
    if !(args.spread > 0.0 && args.spread < 1.0) {
        return Err(Failure::input(format!(
            "--spread must be between 0 and 1 (got {})",
            args.spread
        )));
    }
    let path = args.scenario.display().to_string();
    let s = scenario::load(&path, &args.sets)?;
    let name = args
        .policy
        .clone()
        .unwrap_or_else(|| s.default_policy.clone());
    let policy = s.policy(&name).map_err(|e| e.in_file(&path))?.clone();
    let chosen = sensitivity::factors(&s, args.spread, args.all);
    let source = if args.all && !s.uncertainty.is_empty() {
        format!(
            "the scenario's [uncertainty] ranges, and every other number of the fleet's sections ±{:.0}%",
            args.spread * 100.0
        )
    } else if s.uncertainty.is_empty() {
        format!(
            "every number of the fleet's sections ±{:.0}%",
            args.spread * 100.0
        )
    } else {
        "the scenario's [uncertainty] ranges".to_string()
    };
    let report = sensitivity::morris(
        &s,
        &name,
        &policy,
        chosen,
        sensitivity::Design {
            trajectories: args.trajectories,
            seeds: args.seeds,
            seed: args.seed,
        },
    )
    .map_err(|e| e.in_file(&path))?;
    println!(
        "Morris elementary effects for policy `{name}` on {} ({} factors: {source}; {} trajectories, seeds 1..={} per point, {} runs).",
        s.name,
        report.factors.len(),
        args.trajectories,
        args.seeds,
        report.runs
    );
    println!(
        "μ* is the mean absolute change of the metric when a factor moves across 2/3 of its range, scaled to the full range; σ large against μ* means interactions or a threshold."
    );
    print!("{}", sensitivity::markdown(&report, args.top));
    if !report.skipped.is_empty() {
        println!("\nNot varied:");
        for (k, why) in &report.skipped {
            println!("- `{k}`: {why}");
        }
    }
    Ok(())
}
