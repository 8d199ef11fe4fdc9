//! Sweeps, sharding, merging and tuning (the sweep/tune issue's acceptance).

mod common;
use common::*;
use std::path::Path;

fn sweep(out: &Path, extra: &[&str]) {
    let s = seed_scenario();
    let mut args = vec![
        "sweep",
        s.as_str(),
        "--replications",
        "4",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(o.status.success(), "sweep {extra:?}: {}", stderr(&o));
}

#[test]
fn outputs_are_byte_identical_for_any_threads_and_sharding() {
    let d = tempfile::tempdir().unwrap();
    let (one, two, s0, s1, merged) = (
        d.path().join("t1"),
        d.path().join("t2"),
        d.path().join("s0"),
        d.path().join("s1"),
        d.path().join("m"),
    );
    sweep(&one, &["--threads", "1"]);
    sweep(&two, &["--threads", "2"]);
    same_files(&one, &two);
    sweep(&s0, &["--shard", "1/2"]);
    sweep(&s1, &["--shard", "2/2"]);
    assert!(
        !s0.join("summary.csv").exists(),
        "a shard writes no summary"
    );
    let o = run(&[
        "merge",
        s0.to_str().unwrap(),
        s1.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    same_files(&one, &merged);
    // The summary has the SPEC's columns.
    let text = std::fs::read_to_string(one.join("summary.csv")).unwrap();
    let header = text.lines().next().unwrap();
    for col in [
        "policy",
        "n",
        "batch_size",
        "success_rate_mean",
        "success_rate_ci95_lo",
        "makespan_s_ci95_hi",
        "blast_radius_mean",
    ] {
        assert!(
            header.split(',').any(|c| c == col),
            "summary.csv lacks {col}: {header}"
        );
    }
    assert!(text.lines().count() > 40, "one row per configuration");
}

#[test]
fn merge_refuses_incomplete_or_foreign_shards() {
    let d = tempfile::tempdir().unwrap();
    let (s0, s1, other) = (d.path().join("s0"), d.path().join("s1"), d.path().join("x"));
    sweep(&s0, &["--shard", "1/2"]);
    let o = run(&[
        "merge",
        s0.to_str().unwrap(),
        "--out",
        d.path().join("m").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("missing"), "{}", stderr(&o));
    sweep(&s1, &["--shard", "2/2"]);
    sweep(&other, &["--shard", "2/2", "--seed", "77"]);
    let o = run(&[
        "merge",
        s0.to_str().unwrap(),
        other.to_str().unwrap(),
        "--out",
        d.path().join("m").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("different sweep"), "{}", stderr(&o));
    let o = run(&[
        "merge",
        s0.to_str().unwrap(),
        s0.to_str().unwrap(),
        s1.to_str().unwrap(),
        "--out",
        d.path().join("m").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("twice"), "{}", stderr(&o));
}

#[test]
fn shard_auto_reads_the_scheduler() {
    let d = tempfile::tempdir().unwrap();
    let s = seed_scenario();
    let out = d.path().join("k8s");
    let o = bin()
        .args([
            "sweep",
            &s,
            "--replications",
            "2",
            "--shard",
            "auto",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("JOB_COMPLETION_INDEX", "1")
        .env("STAGGER_SHARD_COUNT", "3")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["shard"], serde_json::json!([1, 3]));
    let o = bin()
        .args([
            "sweep",
            &s,
            "--shard",
            "auto",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

fn mean(args: &[&str], seeds: std::ops::RangeInclusive<u32>, key: &str) -> f64 {
    let n = seeds.clone().count() as f64;
    seeds
        .map(|seed| {
            let seed = seed.to_string();
            let mut a = args.to_vec();
            a.extend(["--seed", seed.as_str(), "--json"]);
            json(&a)[key].as_f64().unwrap()
        })
        .sum::<f64>()
        / n
}

/// The most failures among `n` rollouts that each fail with probability `p`, except with
/// probability `alpha`: the binomial slack of an acceptance test.
fn binomial_slack(n: u64, p: f64, alpha: f64) -> u64 {
    let mut pmf = (1.0 - p).powi(n as i32);
    let mut cdf = pmf;
    let mut f = 0;
    while 1.0 - cdf > alpha {
        pmf *= (n - f) as f64 / (f + 1) as f64 * p / (1.0 - p);
        cdf += pmf;
        f += 1;
    }
    f
}

/// `k/n` pairs of compare's "within limits" cell for `row` (good release, bad release).
fn within_limits(table: &str, row: &str) -> [(u64, u64); 2] {
    let line = table
        .lines()
        .find(|l| l.starts_with(&format!("| {row} |")))
        .unwrap_or_else(|| panic!("no {row} row: {table}"));
    let cell = line.split('|').nth(2).unwrap();
    let pairs: Vec<(u64, u64)> = cell
        .split('·')
        .map(|half| {
            let frac = half.split_whitespace().next().unwrap();
            let (k, n) = frac.split_once('/').unwrap();
            (k.parse().unwrap(), n.parse().unwrap())
        })
        .collect();
    [pairs[0], pairs[1]]
}

#[test]
fn the_tuned_plan_holds_rollout_by_rollout_on_fresh_seeds() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("sweep");
    let s = seed_scenario();
    let o = run(&["sweep", &s, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = d.path().join("plan.toml");
    let confidence = 0.95;
    let o = run(&[
        "tune",
        out.to_str().unwrap(),
        "--min-success",
        "0.96",
        // Tighter than the fastest configurations' 45.2%: the plan must be chosen, not found.
        "--max-cpu",
        "45",
        "--max-disconnect",
        "0.02",
        "--max-blast",
        "10",
        "--confidence",
        "0.95",
        "--plan",
        plan.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = stdout(&o);
    assert!(
        printed.contains("seed-staged")
            && printed.contains("bulk")
            && printed.contains("refinement")
            && printed.contains("fresh seeds"),
        "{printed}"
    );
    let text = std::fs::read_to_string(&plan).unwrap();
    for key in [
        "[constraints]",
        "confidence = 0.95",
        "[predicted.within_limits]",
        "[predicted.success_rate]",
        "p05 = ",
        "p95 = ",
        "[selection]",
        "criterion = ",
        "fingerprint",
        "[policy]",
        "[runs]",
    ] {
        assert!(text.contains(key), "plan lacks {key}");
    }
    // Seeds 1..=300 are fresh: the sweep and the race draw hashed seeds, the predictions
    // another hashed stream. Each replay is judged here, from its JSON summary, not by
    // stagger's own tally. The fraction of rollouts outside the limits may exceed
    // 1 − confidence only by binomial slack (one chance in a thousand).
    let p = plan.to_str().unwrap();
    let outside = |bad_release: bool| -> u64 {
        let judge = |seed: u32| -> bool {
            let seed = seed.to_string();
            let mut a = vec!["simulate", "--plan", p, "--seed", seed.as_str(), "--json"];
            if bad_release {
                a.extend(["--set", "firmware.defect_rate=0.5"]);
            }
            let j = json(&a);
            let v = |k: &str| j[k].as_f64().unwrap();
            if bad_release {
                v("blast_radius") > 10.0
            } else {
                v("success_rate") < 0.96
                    || v("peak_mgmt_cpu_pct") > 45.0
                    || v("disconnect_rate") > 0.02
            }
        };
        std::thread::scope(|sc| {
            let halves: Vec<_> = [1..=150, 151..=300]
                .map(|seeds| sc.spawn(move || seeds.filter(|s| judge(*s)).count() as u64))
                .into_iter()
                .collect();
            halves.into_iter().map(|h| h.join().unwrap()).sum()
        })
    };
    let (out_good, out_bad) = (outside(false), outside(true));
    let slack = binomial_slack(300, 1.0 - confidence, 0.001);
    assert!(
        out_good <= slack && out_bad <= slack,
        "outside the limits: {out_good} and {out_bad} of 300 (slack {slack})"
    );
    // `compare` counts the same rollouts the same way.
    let o = run(&["compare", &s, "--plan", p, "--seeds", "1..300"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let [(good, n), (bad, n_bad)] = within_limits(&stdout(&o), "plan");
    assert_eq!((n - good, n_bad - bad), (out_good, out_bad));
    let replay = ["simulate", s.as_str(), "--plan", p];
    let hours = mean(&replay, 1..=30, "makespan_s") / 3600.0;
    assert!(hours <= 6.0, "makespan {hours} h");
    let bad_plan = [
        "simulate",
        s.as_str(),
        "--plan",
        p,
        "--set",
        "firmware.defect_rate=0.5",
    ];
    let bad_seed = [
        "simulate",
        s.as_str(),
        "--policy",
        "seed-staged",
        "--set",
        "firmware.defect_rate=0.5",
    ];
    let blast = mean(&bad_plan, 1..=30, "blast_radius");
    let seed_blast = mean(&bad_seed, 1..=30, "blast_radius");
    assert!(
        blast <= f64::max(10.0, 1.5 * seed_blast),
        "blast {blast} vs seed-staged {seed_blast}"
    );
    // tune leaves the plan's timelines for the charts.
    assert!(out.join("timelines/plan.csv").exists() && out.join("plan_cpu_band.csv").exists());
    // Constraints no configuration meets: each is named with its closest configuration.
    let never = d.path().join("never.toml");
    let o = run(&[
        "tune",
        out.to_str().unwrap(),
        "--min-success",
        "0.9999",
        "--max-cpu",
        "5",
        "--plan",
        never.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    let line = |flag: &str| {
        err.lines()
            .find(|l| l.trim_start().starts_with(flag))
            .unwrap_or_else(|| panic!("no line for {flag}: {err}"))
            .to_string()
    };
    for flag in ["--min-success", "--max-cpu"] {
        assert!(line(flag).contains("met by none; closest "), "{err}");
    }
    for flag in ["--max-disconnect", "--max-blast"] {
        assert!(line(flag).contains(" configurations"), "{err}");
    }
    assert!(
        line("all together").contains("success_rate in ")
            && line("all together").contains("peak_mgmt_cpu_pct in "),
        "{err}"
    );
    assert!(!never.exists(), "an infeasible tune writes no plan");
}

#[test]
fn bad_plans_exit_2_naming_the_problem() {
    let d = tempfile::tempdir().unwrap();
    let s = seed_scenario();
    let iv = "{ mean = 1.0, ci95_lo = 1.0, ci95_hi = 1.0, p05 = 1.0, p50 = 1.0, p95 = 1.0 }";
    let fr = "{ rollouts = 1, within = 1, fraction = 1.0, ci95_lo = 0.0, ci95_hi = 1.0 }";
    let good = format!(
        r#"format = 2
stagger_version = "0.1.0"
name = "p"
[scenario]
path = "scenarios/seed-200.toml"
name = "seed-200"
fingerprint = "x"
sets = []
gateways = 200
[constraints]
min_success = 0.97
max_cpu_pct = 50.0
max_disconnect = 0.02
max_blast = 10.0
confidence = 0.95
bound_level = 0.95
[predicted]
replications = 1
seeds = "by hand"
within_limits = {fr}
bad_release_within_blast = {fr}
success_rate = {iv}
peak_mgmt_cpu_pct = {iv}
disconnect_rate = {iv}
manual_interventions = {iv}
makespan_s = {iv}
blast_radius = {iv}
[runs]
sweep = 1
refinement = 0
prediction = 0
[selection]
replications = 1
within_limits_lower = 0.0
makespan_s = {{ mean = 1.0, ci95_lo = 1.0, ci95_hi = 1.0 }}
criterion = "by hand"
extra_replications = 0
max_replications = 0
candidates = 0
rounds = 0
[policy]
family = "backoff"
max_concurrent = 20
retry = {{ max_attempts = 3 }}
"#
    );
    let good = good.as_str();
    let ok = write(d.path(), "ok.toml", good);
    let o = run(&["simulate", &s, "--plan", &ok, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("differs"),
        "a fingerprint mismatch is noted: {}",
        stderr(&o)
    );
    for (name, text, expect) in [
        ("format", good.replace("format = 2", "format = 9"), "format"),
        // A plan from an older stagger fails on its format, not on a missing field.
        (
            "old format",
            good.replace("format = 2", "format = 1")
                .replace("confidence = 0.95\n", ""),
            "plan format 1 is not supported",
        ),
        (
            "unknown key",
            good.replace("[runs]", "[runs]\nextra = 1"),
            "extra",
        ),
        (
            "bad policy",
            good.replace("max_concurrent = 20", "max_concurrent = 0"),
            "policy.max_concurrent",
        ),
        (
            "wrong family key",
            good.replace("max_concurrent = 20", "max_concurrent = 20\nstages = []"),
            "policy.stages",
        ),
    ] {
        let p = write(d.path(), "bad.toml", &text);
        let o = run(&["simulate", &s, "--plan", &p]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(expect) && stderr(&o).contains("bad.toml"),
            "{name}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn a_plan_works_alone_from_any_directory() {
    let d = tempfile::tempdir().unwrap();
    let (elsewhere, moved) = (d.path().join("elsewhere"), d.path().join("moved"));
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(&moved).unwrap();
    // A sweep given a relative scenario path, then tuned from a directory where that path
    // means nothing: the manifest's copy of the scenario is used.
    let sweep_dir = d.path().join("sweep");
    let o = bin()
        .current_dir(root())
        .args(["sweep", "scenarios/seed-200.toml", "--replications", "2"])
        .args(["--out", sweep_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = moved.join("plan.toml");
    let o = bin()
        .current_dir(&elsewhere)
        .args([
            "tune",
            sweep_dir.to_str().unwrap(),
            "--plan",
            plan.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "tune from elsewhere: {}", stderr(&o));
    // The plan alone (no scenario beside it), from yet another directory, replays exactly
    // as it does on the scenario file.
    let alone = bin()
        .current_dir(&elsewhere)
        .args([
            "simulate",
            "--plan",
            "../moved/plan.toml",
            "--json",
            "--seed",
            "3",
        ])
        .output()
        .unwrap();
    assert!(alone.status.success(), "{}", stderr(&alone));
    let with_file = run(&[
        "simulate",
        &seed_scenario(),
        "--plan",
        plan.to_str().unwrap(),
        "--json",
        "--seed",
        "3",
    ]);
    assert_eq!(stdout(&alone), stdout(&with_file));
    // The rollout's dry run predicts from the embedded scenario too.
    let inv = write(&elsewhere, "inv.csv", "device_id\ngw-1\ngw-2\ngw-3\n");
    let o = rollout_command(
        "aws-iot-jobs",
        Path::new("../moved/plan.toml"),
        Path::new(&inv),
        "http://127.0.0.1:1",
        &elsewhere.join("j.jsonl"),
        false,
    )
    .current_dir(&elsewhere)
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("predict"), "{}", stdout(&o));
    // An edited embedded scenario no longer matches the plan's fingerprint: refused.
    let text = std::fs::read_to_string(&plan).unwrap();
    let at = text.find("[embedded_scenario.firmware]").unwrap();
    let size = at + text[at..].find("size_mb = ").unwrap();
    let edited = format!("{}size_mb = 999\n#{}", &text[..size], &text[size..]);
    assert_ne!(text, edited);
    let edited_plan = write(&moved, "edited.toml", &edited);
    let o = rollout_command(
        "aws-iot-jobs",
        Path::new(&edited_plan),
        Path::new(&inv),
        "http://127.0.0.1:1",
        &elsewhere.join("j2.jsonl"),
        false,
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("fingerprint"), "{}", stderr(&o));
}
