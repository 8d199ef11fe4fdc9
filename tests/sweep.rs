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

#[test]
fn the_tuned_plan_holds_on_fresh_seeds_at_a_quarter_of_the_seed_plan_time() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("sweep");
    let s = seed_scenario();
    let o = run(&["sweep", &s, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = d.path().join("plan.toml");
    let o = run(&[
        "tune",
        out.to_str().unwrap(),
        "--min-success",
        "0.97",
        "--max-cpu",
        "50",
        "--max-disconnect",
        "0.02",
        "--max-blast",
        "10",
        "--plan",
        plan.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = stdout(&o);
    assert!(
        printed.contains("seed-staged")
            && printed.contains("bulk")
            && printed.contains("refinement"),
        "{printed}"
    );
    let text = std::fs::read_to_string(&plan).unwrap();
    for key in [
        "[constraints]",
        "[predicted.success_rate]",
        "fingerprint",
        "[policy]",
        "[runs]",
    ] {
        assert!(text.contains(key), "plan lacks {key}");
    }
    // Seeds 1..=30 are fresh: sweep seeds are derived hashes of (base seed, replication).
    let p = plan.to_str().unwrap();
    let replay = ["simulate", s.as_str(), "--plan", p];
    assert!(mean(&replay, 1..=30, "success_rate") >= 0.97);
    assert!(mean(&replay, 1..=30, "peak_mgmt_cpu_pct") <= 50.0);
    assert!(mean(&replay, 1..=30, "disconnect_rate") <= 0.02);
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
        line("all together").contains("success_rate CI low")
            && line("all together").contains("peak_mgmt_cpu_pct CI high"),
        "{err}"
    );
    assert!(!never.exists(), "an infeasible tune writes no plan");
}

#[test]
fn bad_plans_exit_2_naming_the_problem() {
    let d = tempfile::tempdir().unwrap();
    let s = seed_scenario();
    let good = r#"format = 1
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
[predicted]
replications = 1
success_rate = { mean = 1.0, ci95_lo = 1.0, ci95_hi = 1.0 }
peak_mgmt_cpu_pct = { mean = 1.0, ci95_lo = 1.0, ci95_hi = 1.0 }
disconnect_rate = { mean = 1.0, ci95_lo = 1.0, ci95_hi = 1.0 }
manual_interventions = { mean = 1.0, ci95_lo = 1.0, ci95_hi = 1.0 }
makespan_s = { mean = 1.0, ci95_lo = 1.0, ci95_hi = 1.0 }
blast_radius = { mean = 1.0, ci95_lo = 1.0, ci95_hi = 1.0 }
[runs]
sweep = 1
refinement = 0
[policy]
family = "backoff"
max_concurrent = 20
retry = { max_attempts = 3 }
"#;
    let ok = write(d.path(), "ok.toml", good);
    let o = run(&["simulate", &s, "--plan", &ok, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("differs"),
        "a fingerprint mismatch is noted: {}",
        stderr(&o)
    );
    for (name, text, expect) in [
        ("format", good.replace("format = 1", "format = 9"), "format"),
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
