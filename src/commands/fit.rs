//! `stagger fit`: journals or traces in, a fitted scenario and a fit report out.

use rayon::prelude::*;

use crate::cli::FitArgs;
use crate::error::Failure;
use crate::fit::{self, observe, write, Fit, Row};
use crate::scenario::{self, InputError};

pub fn run(args: &FitArgs) -> Result<(), Failure> {
    let base_path = args.scenario.display().to_string();
    let base_text = std::fs::read_to_string(&args.scenario)
        .map_err(|e| InputError::new(format!("cannot read scenario: {e}")).in_file(&base_path))?;
    let base = scenario::from_text(&base_text, &base_path, &[])?;
    // Parsed in parallel, kept in the order given: the fit does not depend on thread count.
    let rollouts = args
        .journals
        .par_iter()
        .map(|p| observe::load(p, args.inventory.as_deref()))
        .collect::<Result<Vec<_>, InputError>>()?;
    let result = fit::fit(&base, &rollouts);
    let sources: Vec<String> = args
        .journals
        .iter()
        .map(|p| {
            p.file_name()
                .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
        })
        .collect();
    let shown = if sources.len() > 4 {
        vec![format!("{} … {}", sources[0], sources[sources.len() - 1])]
    } else {
        sources
    };
    let text = write::fitted_text(&base_text, &base_path, &result, &shown)?;
    // What we write must load: a fitted scenario that fails validation is our bug.
    let out_name = args
        .out
        .as_ref()
        .map_or("(fitted scenario)".to_string(), |p| p.display().to_string());
    scenario::from_text(&text, &out_name, &[])
        .map_err(|e| Failure::Runtime(format!("the fitted scenario does not validate: {e}")))?;
    if let Some(out) = &args.out {
        crate::files::write_file(out, text.as_bytes())?;
    }
    if args.json {
        println!("{}", json(&result));
    } else {
        print!("{}", human(&result, args.out.as_deref()));
    }
    Ok(())
}

fn row_json(r: &Row) -> serde_json::Value {
    serde_json::json!({
        "parameter": r.parameter,
        "estimate": r.estimate,
        "interval90": r.interval.map(|(lo, hi)| [lo, hi]),
        "observations": r.observations,
        "quality": r.quality,
    })
}

fn json(f: &Fit) -> serde_json::Value {
    serde_json::json!({
        "rollouts": f.rollouts,
        "attempts": f.attempts,
        "fitted": f.fitted.iter().map(row_json).collect::<Vec<_>>(),
        "described": f.described.iter().map(row_json).collect::<Vec<_>>(),
        "unidentified": f.unidentified.iter().map(|(k, why)| serde_json::json!({"parameter": k, "why": why})).collect::<Vec<_>>(),
    })
}

fn num(x: f64) -> String {
    if x != 0.0 && x.abs() < 0.01 {
        format!("{x:.2e}")
    } else {
        format!("{x:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        let iv = r.interval.map_or("—".to_string(), |(lo, hi)| {
            format!("[{}, {}]", num(lo), num(hi))
        });
        out.push_str(&format!(
            "  {:<56} {:>10}  {:<24} {:<38} {}\n",
            r.parameter,
            num(r.estimate),
            iv,
            r.observations,
            r.quality
        ));
    }
    out
}

fn human(f: &Fit, out: Option<&std::path::Path>) -> String {
    let mut s = format!(
        "fit: {} rollout(s), {} update attempts; intervals are 90%\n\nfitted (written{}):\n",
        f.rollouts,
        f.attempts,
        out.map_or(String::new(), |p| format!(" to {}", p.display()))
    );
    s.push_str(&format!(
        "  {:<56} {:>10}  {:<24} {:<38} {}\n",
        "parameter", "estimate", "interval", "observations", "fit"
    ));
    s.push_str(&table(&f.fitted));
    if !f.described.is_empty() {
        s.push_str("\nmeasured (reported, not scenario values):\n");
        s.push_str(&table(&f.described));
    }
    s.push_str("\nnot identified by these data (left at the base's values):\n");
    for (k, why) in &f.unidentified {
        s.push_str(&format!("  {k:<32} {why}\n"));
    }
    s
}
