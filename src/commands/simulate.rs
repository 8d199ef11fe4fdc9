//! `stagger simulate`: one run, a human or JSON summary, and an optional timeline.

use crate::cli::SimulateArgs;
use crate::error::Failure;
use crate::fit::trace;
use crate::scenario::{self, InputError};
use crate::simulate::{self, Options};
use crate::time::Time;

pub fn run(args: &SimulateArgs) -> Result<(), Failure> {
    let plan = match &args.plan {
        Some(p) => Some(crate::tune::plan::PlanFile::load(&p.display().to_string())?),
        None => None,
    };
    let (path, scenario) = match (&args.scenario, &plan) {
        (Some(p), _) => {
            let path = p.display().to_string();
            let s = scenario::load(&path, &args.sets)?;
            (path, s)
        }
        (None, Some((plan, _))) => (plan.scenario.path.clone(), plan.scenario(&args.sets)?),
        (None, None) => return Err(Failure::input("give a SCENARIO file, or --plan")),
    };
    if !(args.sample_every > 0.0 && args.sample_every <= 60.0) {
        return Err(InputError::new(format!(
            "--sample-every must be in (0, 60] seconds (got {})",
            args.sample_every
        ))
        .into());
    }
    let mut refitter = None;
    let (name, policy) = match plan {
        Some((plan, mut policy)) => {
            if let Some(stage) = &args.refit_after {
                crate::refit::check(
                    &policy,
                    scenario.fleet.gateways as usize,
                    stage,
                    args.refit_replications,
                )?;
                refitter = Some(match args.pace {
                    Some(pace) => {
                        crate::refit::check_pace(pace)?;
                        crate::refit::Answer::Given(pace)
                    }
                    // The prior is what the plan was tuned on, whatever the run's truth.
                    None => crate::refit::Answer::Fit(Box::new(crate::refit::Refitter {
                        prior: plan.scenario(&[])?,
                        policy: policy.clone(),
                        name: "plan".into(),
                        constraints: (&plan.constraints).into(),
                        replications: args.refit_replications,
                        seed: args.seed,
                    })),
                });
                policy.refit_after = Some(stage.clone());
            }
            if plan.scenario.fingerprint != scenario.fingerprint {
                eprintln!(
                    "note: the plan was tuned on scenario {} ({}); this scenario differs ({}), by its file or by --set",
                    plan.scenario.name, plan.scenario.fingerprint, scenario.fingerprint
                );
            }
            ("plan".to_string(), policy)
        }
        None => {
            let name = args
                .policy
                .clone()
                .unwrap_or_else(|| scenario.default_policy.clone());
            let policy = scenario
                .policy(&name)
                .map_err(|e| e.in_file(&path))?
                .clone();
            (name, policy)
        }
    };
    let opts = Options {
        timeline_every: args
            .timeline
            .as_ref()
            .map(|_| Time::from_secs(args.sample_every)),
    };
    let run = match &refitter {
        None if args.trace.is_none() => None,
        None => Some(trace::simulate(&scenario, &name, &policy, args.seed, &opts)),
        Some(r) => Some(trace::simulate_refitted(
            &scenario, &name, &policy, args.seed, &opts, r,
        )?),
    };
    let outcome = match run {
        None => simulate::run(&scenario, &name, &policy, args.seed, &opts),
        Some(run) => {
            if let Some(path) = &args.trace {
                super::write_file(path, &run.trace)?;
                super::write_file(
                    &crate::fit::observe::sibling_inventory(path),
                    &run.inventory,
                )?;
            }
            run.outcome
        }
    };
    if let (Some(path), Some(tl)) = (&args.timeline, &outcome.timeline) {
        let bytes = tl
            .to_csv()
            .map_err(|e| Failure::Runtime(format!("{}: {e}", path.display())))?;
        super::write_file(path, &bytes)?;
    }
    if args.json {
        let json =
            serde_json::to_string(&outcome.summary).map_err(|e| Failure::Runtime(e.to_string()))?;
        println!("{json}");
    } else {
        print!("{}", outcome.summary.human());
    }
    if args.explain {
        // With --json the JSON stays alone on stdout.
        let text = outcome.summary.explain();
        if args.json {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    }
    Ok(())
}
