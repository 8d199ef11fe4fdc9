//! `stagger fit` recovers what made the data: parameter recovery on simulated traces whose
//! true values are known (each trace's own draw of the scenario's uncertainty), and a fitted
//! scenario that predicts a policy it never saw.

mod common;

use std::collections::BTreeMap;

use stagger::fit::{self, observe, trace};
use stagger::scenario::{self, uncertainty};
use stagger::simulate::{self, Options};

/// Simulates `policy` on `s` with `seed` and writes its trace (and inventory) into `dir`.
fn traced(
    s: &scenario::Scenario,
    policy: &str,
    seed: u64,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    let p = s.policy(policy).unwrap().clone();
    let run = trace::simulate(s, policy, &p, seed, &Options::default());
    let path = dir.join(format!("{policy}-{seed}.jsonl"));
    std::fs::write(&path, run.trace).unwrap();
    std::fs::write(observe::sibling_inventory(&path), run.inventory).unwrap();
    path
}

/// The true value of a fitted parameter in the scenario that made trace `seed`.
fn truth(s: &scenario::Scenario, seed: u64, key: &str) -> f64 {
    if let Some((_, v)) = uncertainty::draw(s, seed)
        .into_iter()
        .find(|(k, _)| k == key)
    {
        return v;
    }
    let mut v = &toml::Value::Table(s.document.clone());
    for part in key.split('.') {
        v = v
            .get(part)
            .unwrap_or_else(|| panic!("{key} is not in the scenario"));
    }
    v.as_float()
        .or_else(|| v.as_integer().map(|i| i as f64))
        .unwrap()
}

#[test]
fn ninety_percent_intervals_cover_the_true_values_of_fifty_traces() {
    let s = scenario::load(&common::seed_scenario(), &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut covered: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for seed in 1..=50 {
        let path = traced(&s, "seed-staged", seed, dir.path());
        let r = observe::load(&path, None).unwrap();
        let f = fit::fit(&s, &[r]);
        for row in &f.fitted {
            let t = truth(&s, seed, &row.parameter);
            let (lo, hi) = row.interval.unwrap();
            if std::env::var("FIT_DEBUG").is_ok() && row.parameter.starts_with("failures.") {
                eprintln!(
                    "{seed} {} truth {t:.4} est {:.4} [{lo:.4}, {hi:.4}] {}",
                    row.parameter, row.estimate, row.observations
                );
            }
            let c = covered.entry(row.parameter.clone()).or_default();
            c.0 += u32::from(lo <= t && t <= hi);
            c.1 += 1;
        }
    }
    eprintln!("coverage of 90% intervals over 50 traces: {covered:?}");
    for key in [
        "install.seconds.min",
        "install.seconds.max",
        "failures.verify_failure_rate",
        "failures.install_brick_fraction",
    ] {
        let (_, n) = covered.get(key).copied().unwrap_or_default();
        assert!(n >= 40, "{key} was fitted on only {n} of 50 traces");
    }
    for (key, (c, n)) in &covered {
        let rate = f64::from(*c) / f64::from(*n);
        assert!(
            rate >= 0.8,
            "{key}: the 90% interval covers the truth in {c} of {n} traces ({:.0}%)",
            rate * 100.0
        );
    }
}

fn quantile(xs: &mut [f64], q: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    stagger::stats::quantile(xs, q)
}

#[test]
fn a_scenario_fitted_on_seed_staged_predicts_backoff_on_the_true_fleet() {
    let root = common::root()
        .join("scenarios/seed-200.toml")
        .display()
        .to_string();
    let truth = scenario::load(&root, &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let trace = traced(&truth, "seed-staged", 7, dir.path());
    let out = dir.path().join("fitted.toml");
    let o = common::run(&[
        "fit",
        trace.to_str().unwrap(),
        "--scenario",
        &root,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let fitted = scenario::load(out.to_str().unwrap(), &[]).unwrap();
    let runs = |s: &scenario::Scenario, seeds: std::ops::Range<u64>| {
        let p = s.policy("backoff").unwrap().clone();
        let mut makespan = Vec::new();
        let mut success = Vec::new();
        for seed in seeds {
            let r = simulate::run(s, "backoff", &p, seed, &Options::default()).summary;
            makespan.push(r.makespan_s);
            success.push(r.success_rate);
        }
        (makespan, success)
    };
    // The prediction from seeds the fit never saw; the truth from other seeds again.
    let (mut pm, mut ps) = runs(&fitted, 1000..1060);
    let (mut tm, mut ts) = runs(&truth, 2000..2060);
    for (name, p, t) in [
        ("makespan", &mut pm, &mut tm),
        ("success", &mut ps, &mut ts),
    ] {
        let (lo, hi) = (quantile(p, 0.05), quantile(p, 0.95));
        let median = quantile(t, 0.5);
        eprintln!("backoff {name}: predicted p05–p95 {lo:.4}–{hi:.4}, true median {median:.4}");
        assert!(
            lo <= median && median <= hi,
            "backoff {name}: true median {median} outside the predicted {lo}–{hi}"
        );
    }
}

#[test]
fn bad_or_foreign_journals_exit_2_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::root()
        .join("scenarios/seed-200.toml")
        .display()
        .to_string();
    let s = scenario::load(&root, &[]).unwrap();
    let trace = traced(&s, "seed-staged", 3, dir.path());
    let text = std::fs::read_to_string(&trace).unwrap();
    let cases = [
        (
            "corrupt.jsonl",
            text.replacen("{\"k\":\"obs\"", "{\"k\":\"obz\"", 1),
            "corrupt journal record",
        ),
        (
            "stranger.jsonl",
            text.replacen("[{\"succeeded\":", "[{\"succeeded\":999999,\"x\":", 1),
            "corrupt journal record",
        ),
        (
            "foreign.jsonl",
            "{\"not\":\"a journal\"}\n".to_string(),
            "not a stagger journal",
        ),
        (
            "huge.jsonl",
            text.replacen("\"devices\":200", "\"devices\":1000000000000", 1),
            "devices; at most",
        ),
        (
            "gateway.jsonl",
            text.replacen(
                "{\"succeeded\":",
                "{\"succeeded\":4000000000}, {\"succeeded\":",
                1,
            ),
            "not one of the journal's 200 devices",
        ),
    ];
    for (name, body, needle) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        let o = common::run(&["fit", p.to_str().unwrap(), "--scenario", &root]);
        let err = common::stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(needle), "{name}: {err}");
        // file:line, except for a foreign header, which is line 1 by nature.
        let after = err
            .split(&format!("{name}:"))
            .nth(1)
            .unwrap_or_else(|| panic!("{name} not named: {err}"));
        assert!(
            after.starts_with(|c: char| c.is_ascii_digit()),
            "{name}: no line number in {err}"
        );
    }
}

/// Response times against load: each response is counted once, in the band of the operations
/// then in flight. A policy capped at 30 never reaches the band at the service's limit of 50;
/// bulk starts all 200 at once and reaches nothing else.
#[test]
fn response_times_are_reported_by_the_operations_in_flight() {
    let s = scenario::load(&common::seed_scenario(), &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bands = |policy: &str| {
        let path = traced(&s, policy, 3, dir.path());
        let r = observe::load(&path, None).unwrap();
        let f = fit::fit(&s, std::slice::from_ref(&r));
        let count = |row: &fit::Row| -> usize {
            row.observations.split(' ').next().unwrap().parse().unwrap()
        };
        let total = f
            .described
            .iter()
            .find(|row| row.parameter.starts_with("service response ms, median"))
            .map(count)
            .unwrap();
        let by_load: Vec<(String, usize)> = f
            .described
            .iter()
            .filter(|row| row.parameter.contains("operations in flight"))
            .map(|row| (row.parameter.clone(), count(row)))
            .collect();
        assert_eq!(r.latency.len(), total, "{policy}");
        // Bands of fewer than 5 responses are left out.
        let shown: usize = by_load.iter().map(|(_, n)| n).sum();
        assert!(
            shown <= total && shown + 5 * 4 > total,
            "{policy}: {by_load:?} of {total}"
        );
        by_load
    };
    let capped = bands("backoff");
    assert!(capped.len() >= 2, "{capped:?}");
    assert!(
        capped.iter().all(|(p, _)| !p.contains("50 or more")),
        "{capped:?}"
    );
    let bulk = bands("bulk");
    assert_eq!(bulk.len(), 1, "{bulk:?}");
    assert!(bulk[0].0.contains("50 or more"), "{bulk:?}");
}
