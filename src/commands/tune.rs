//! `stagger tune`: pick and write the plan, print the comparison, and record the plan's
//! timelines in the sweep directory for the charts.

use crate::cli::TuneArgs;
use crate::error::Failure;
use crate::sweep::representatives::{self, Constraints};
use crate::tune::{self, TuneOptions};

pub fn run(args: &TuneArgs) -> Result<(), Failure> {
    let in_unit = |name: &str, v: f64, hi: f64| {
        if v.is_finite() && (0.0..=hi).contains(&v) {
            Ok(())
        } else {
            Err(Failure::input(format!(
                "--{name} must be between 0 and {hi} (got {v})"
            )))
        }
    };
    in_unit("min-success", args.min_success, 1.0)?;
    in_unit("max-cpu", args.max_cpu, 100.0)?;
    in_unit("max-disconnect", args.max_disconnect, 1.0)?;
    in_unit("max-blast", args.max_blast, 1e9)?;
    let options = TuneOptions {
        constraints: Constraints {
            min_success: args.min_success,
            max_cpu: args.max_cpu,
            max_disconnect: args.max_disconnect,
            max_blast: args.max_blast,
        },
        extra_replications: args.extra_replications,
        candidates: args.candidates.max(1),
        rounds: args.rounds,
        threads: super::threads(args.threads)?,
    };
    let t = tune::tune(&args.sweep_dir, &options)?;
    let toml = t
        .plan
        .for_writing_at(&args.plan)
        .to_toml()
        .map_err(Failure::Runtime)?;
    super::write_file(&args.plan, toml.as_bytes())?;
    // The plan's timelines, so that `plot` can draw it without re-simulating.
    let m = crate::sweep::output::Manifest::read(&args.sweep_dir)?;
    let spec = m.spec();
    let tls = representatives::timelines(
        &t.scenario,
        "plan",
        &t.winner.config.policy,
        &spec,
        spec.replications,
    );
    if let Some(first) = tls.first() {
        let bytes = first
            .to_csv()
            .map_err(|e| Failure::Runtime(e.to_string()))?;
        super::write_file(&args.sweep_dir.join("timelines/plan.csv"), &bytes)?;
    }
    let band = representatives::band(&tls);
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut rows = vec![vec![
        "config".to_string(),
        "role".into(),
        "t_s".into(),
        "cpu_p5".into(),
        "cpu_p50".into(),
        "cpu_p95".into(),
    ]];
    rows.extend(representatives::band_rows("plan", "plan", &band));
    for r in rows {
        w.write_record(r)
            .map_err(|e| Failure::Runtime(e.to_string()))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    super::write_file(&args.sweep_dir.join("plan_cpu_band.csv"), &bytes)?;
    println!("plan: {}", t.plan.name);
    println!(
        "runs: {} in the sweep + {} in refinement ({} configurations raced or searched)",
        t.sweep_runs, t.refinement_runs, t.evaluated
    );
    println!();
    print!("{}", tune::comparison(&t));
    println!();
    println!("wrote {}", args.plan.display());
    Ok(())
}
