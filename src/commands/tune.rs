//! `stagger tune`: pick and write the plan, print the comparison, and record the plan's
//! timelines in the sweep directory for the charts.

use crate::cli::TuneArgs;
use crate::error::Failure;
use crate::sweep::constraints::Constraints;
use crate::sweep::representatives;
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
    in_unit("confidence", args.confidence, 1.0)?;
    if args.confidence >= 1.0 {
        return Err(Failure::input(
            "--confidence must be below 1: no finite number of rollouts proves that every rollout meets the limits",
        ));
    }
    if args.prediction_replications < 2 {
        return Err(Failure::input(
            "--prediction-replications must be at least 2",
        ));
    }
    let options = TuneOptions {
        constraints: Constraints {
            min_success: args.min_success,
            max_cpu: args.max_cpu,
            max_disconnect: args.max_disconnect,
            max_blast: args.max_blast,
            confidence: args.confidence,
        },
        extra_replications: args.extra_replications,
        max_replications: args.max_replications,
        prediction_replications: args.prediction_replications,
        candidates: args.candidates.max(1),
        rounds: args.rounds,
        threads: super::threads(args.threads)?,
        backend: args.backend.map(|b| {
            let mut provided = super::rollout::signals_of(b).to_vec();
            provided.extend_from_slice(&args.accept_missing);
            let mut name = super::rollout::backend_name(b).to_string();
            for s in &args.accept_missing {
                name += &format!(" --accept-missing {}", s.name());
            }
            (name, provided)
        }),
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
        "runs: {} in the sweep + {} in refinement ({} configurations raced or searched) + {} on fresh seeds",
        t.sweep_runs, t.refinement_runs, t.evaluated, t.prediction_runs
    );
    for alt in &t.plan.alternatives {
        println!(
            "tied on makespan: {} ({:.2} h; within limits ≥ {:.1}%)",
            alt.name,
            alt.makespan_s.mean / 3600.0,
            alt.within_limits_lower * 100.0
        );
    }
    println!();
    print!("{}", tune::comparison(&t));
    println!();
    print!("{}", tune::predictions(&t.plan.predicted));
    println!();
    println!("wrote {}", args.plan.display());
    Ok(())
}
