//! `stagger compare`: a plan and named policies on the same seeds, side by side.

use rayon::prelude::*;

use crate::cli::CompareArgs;
use crate::engine::Policy;
use crate::error::Failure;
use crate::scenario::{self, InputError};
use crate::simulate::{self, Options, Summary};
use crate::stats::{cp95, mean_ci95};
use crate::sweep::constraints::{Constraints, Passes, Tally};
use crate::sweep::run::values;

fn seeds(s: &str) -> Result<(u64, u64), InputError> {
    let bad = || InputError::new(format!("--seeds `{s}`: expected FIRST..LAST, e.g. 1..30"));
    let (a, b) = s.split_once("..").ok_or_else(bad)?;
    let (a, b): (u64, u64) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if a > b || b - a >= 100_000 {
        return Err(bad());
    }
    Ok((a, b))
}

pub fn run(args: &CompareArgs) -> Result<(), Failure> {
    let path = args.scenario.display().to_string();
    let (first, last) = seeds(&args.seeds)?;
    if !(0.0..=1.0).contains(&args.bad_release) {
        return Err(Failure::input("--bad-release must be between 0 and 1"));
    }
    let good = scenario::load(&path, &args.sets)?;
    let bad = good
        .with_value("firmware.defect_rate", toml::Value::Float(args.bad_release))
        .map_err(|e| e.in_file(&path))?;
    let mut entries: Vec<(String, Policy)> = Vec::new();
    // Rollouts are judged against the plan's limits, or the tuner's defaults.
    let mut limits = Constraints::default();
    if let Some(plan) = &args.plan {
        let (pf, policy) = crate::tune::plan::PlanFile::load(&plan.display().to_string())?;
        limits = Constraints::from(&pf.constraints);
        entries.push(("plan".into(), policy));
    }
    for name in &args.policies {
        entries.push((
            name.clone(),
            good.policy(name).map_err(|e| e.in_file(&path))?.clone(),
        ));
    }
    if entries.is_empty() {
        return Err(Failure::input(
            "nothing to compare: give --plan FILE and/or --policy NAME",
        ));
    }
    println!(
        "Mean over seeds {first}..{last} with 95% CI; blast radius under defect_rate = {}.",
        args.bad_release
    );
    println!(
        "Within limits: rollouts with success ≥ {}, peak CPU ≤ {}%, disconnects ≤ {} (good release) and blast radius ≤ {} (bad release), with a 95% Clopper–Pearson interval.\n",
        limits.min_success, limits.max_cpu, limits.max_disconnect, limits.max_blast
    );
    println!(
        "| | within limits | success | peak CPU | disconnects | manual | makespan | blast radius |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, policy) in &entries {
        let run = |s: &scenario::Scenario| -> Vec<Summary> {
            (first..=last)
                .into_par_iter()
                .map(|seed| simulate::run(s, name, policy, seed, &Options::default()).summary)
                .collect()
        };
        let (g, b) = (run(&good), run(&bad));
        let est = |rs: &[Summary], f: &dyn Fn(&Summary) -> f64| {
            mean_ci95(&rs.iter().map(f).collect::<Vec<_>>())
        };
        let cell = |e: crate::stats::Estimate, scale: f64, unit: &str, digits: usize| {
            format!(
                "{:.d$}{unit} ± {:.d$}",
                e.mean * scale,
                (e.hi - e.mean) * scale,
                d = digits
            )
        };
        let mut passes = Passes::default();
        for (bad, rs) in [(false, &g), (true, &b)] {
            for s in rs {
                limits.tally(&mut passes, bad, &values(s));
            }
        }
        let within = |t: Tally| {
            let (lo, hi) = cp95(t.k, t.n);
            format!("{}/{} [{:.1}–{:.1}%]", t.k, t.n, lo * 100.0, hi * 100.0)
        };
        println!(
            "| {name} | {} · {} | {} | {} | {} | {} | {} | {} |",
            within(passes.good),
            within(passes.bad),
            cell(est(&g, &|s| s.success_rate), 100.0, "%", 1),
            cell(est(&g, &|s| s.peak_mgmt_cpu_pct), 1.0, "%", 1),
            cell(est(&g, &|s| s.disconnect_rate), 100.0, "%", 2),
            cell(est(&g, &|s| f64::from(s.manual_interventions)), 1.0, "", 1),
            cell(est(&g, &|s| s.makespan_s), 1.0 / 3600.0, " h", 2),
            cell(est(&b, &|s| f64::from(s.blast_radius)), 1.0, "", 1),
        );
    }
    Ok(())
}
