//! The CLI contract: JSON summary, determinism, timeline columns, help and exit codes.

mod common;
use common::*;

#[test]
fn json_is_exactly_one_object_with_the_spec_fields() {
    let s = seed_scenario();
    let o = run(&["simulate", &s, "--policy", "bulk", "--seed", "3", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.trim().lines().count(), 1, "one line of JSON: {out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for key in [
        "policy",
        "seed",
        "gateways",
        "succeeded",
        "failed",
        "success_rate",
        "manual_interventions",
        "disconnected",
        "disconnect_rate",
        "peak_mgmt_cpu_pct",
        "makespan_s",
        "blast_radius",
        "events",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    let n = v["gateways"].as_f64().unwrap();
    let ok = v["succeeded"].as_f64().unwrap();
    assert_eq!(v["failed"].as_f64().unwrap(), n - ok);
    assert!((v["success_rate"].as_f64().unwrap() - ok / n).abs() < 1e-6);
    assert_eq!(v["policy"], "bulk");
    assert_eq!(v["seed"], 3);
}

#[test]
fn same_seed_same_bytes_different_seed_differs() {
    let s = seed_scenario();
    for policy in ["bulk", "seed-staged", "adaptive", "pipelined"] {
        let a = run(&["simulate", &s, "--policy", policy, "--seed", "7", "--json"]);
        let b = run(&["simulate", &s, "--policy", policy, "--seed", "7", "--json"]);
        let c = run(&["simulate", &s, "--policy", policy, "--seed", "8", "--json"]);
        assert_eq!(
            a.stdout, b.stdout,
            "{policy}: same seed must give identical bytes"
        );
        assert_ne!(
            a.stdout, c.stdout,
            "{policy}: different seeds should differ"
        );
    }
}

#[test]
fn timeline_has_the_spec_columns_at_most_60_s_apart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let s = seed_scenario();
    let o = run(&[
        "simulate",
        &s,
        "--policy",
        "fixed",
        "--timeline",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut r = csv::Reader::from_path(&path).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    for col in [
        "t_s",
        "mgmt_cpu_pct",
        "active_ops",
        "queued_ops",
        "pending",
        "downloading",
        "installing",
        "succeeded",
        "failed",
        "manual",
    ] {
        assert!(
            header.contains(&col.to_string()),
            "missing column {col}: {header:?}"
        );
    }
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert!(rows.len() > 10);
    let t: Vec<f64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(
        t.windows(2)
            .all(|w| w[1] > w[0] && w[1] - w[0] <= 60.0 + 1e-9),
        "spacing"
    );
    // Every row accounts for every gateway exactly once.
    let state_cols: Vec<usize> = [
        "pending",
        "deferred",
        "queued",
        "downloading",
        "installing",
        "succeeded",
        "failed",
        "manual",
        "rolled_back",
    ]
    .iter()
    .map(|c| header.iter().position(|h| h == c).unwrap())
    .collect();
    for row in &rows {
        let total: u32 = state_cols
            .iter()
            .map(|&i| row[i].parse::<u32>().unwrap())
            .sum();
        assert_eq!(total, 200);
    }
}

#[test]
fn human_summary_by_default() {
    let s = seed_scenario();
    let o = run(&["simulate", &s, "--policy", "fixed"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(
        out.contains("makespan") && out.contains("peak mgmt CPU"),
        "{out}"
    );
}

#[test]
fn every_subcommand_has_real_help() {
    let o = run(&["--help"]);
    assert!(o.status.success());
    let top = stdout(&o);
    assert!(top.contains("Exit codes"), "{top}");
    for (sub, flag) in [
        ("simulate", "--set"),
        ("calibrate", "--seeds"),
        ("sweep", "--shard"),
        ("merge", "--out"),
        ("tune", "--max-blast"),
        ("compare", "--plan"),
    ] {
        let o = run(&[sub, "--help"]);
        assert!(o.status.success(), "{sub} --help");
        assert!(stdout(&o).contains(flag), "{sub} --help mentions {flag}");
    }
}

#[test]
fn set_overrides_change_the_run_and_are_validated() {
    let s = seed_scenario();
    let small = json(&[
        "simulate",
        &s,
        "--policy",
        "bulk",
        "--json",
        "--set",
        "fleet.gateways=50",
    ]);
    assert_eq!(small["gateways"], 50);
    let dist = json(&[
        "simulate",
        &s,
        "--policy",
        "fixed",
        "--json",
        "--set",
        "install.seconds={ dist = \"uniform\", min = 120, max = 240 }",
    ]);
    assert_eq!(dist["gateways"], 200);
}

#[test]
fn a_bad_release_is_halted_with_a_small_blast_radius() {
    let s = seed_scenario();
    let mut total = 0;
    for seed in 1..=30 {
        let seed = seed.to_string();
        let v = json(&[
            "simulate",
            &s,
            "--policy",
            "seed-staged",
            "--seed",
            &seed,
            "--json",
            "--set",
            "firmware.defect_rate=0.5",
        ]);
        assert_eq!(v["halted"], true, "{v}");
        let blast = v["blast_radius"].as_u64().unwrap();
        // At worst the canary passes by luck and the pilot (20) installs before the halt.
        assert!(
            (1..=25).contains(&blast),
            "seed {seed}: blast radius {blast}"
        );
        assert!(v["succeeded"].as_u64().unwrap() < 25);
        total += blast;
    }
    assert!(
        total as f64 / 30.0 <= 10.0,
        "mean blast radius {}",
        total as f64 / 30.0
    );
    let good = json(&["simulate", &s, "--policy", "seed-staged", "--json"]);
    assert_eq!(good["blast_radius"], 0);
}

#[test]
fn every_subcommand_has_examples_and_completions_and_man_pages_render() {
    for sub in [
        "simulate",
        "sweep",
        "merge",
        "tune",
        "calibrate",
        "compare",
        "plot",
        "rollout",
        "status",
        "completions",
        "man",
        "emulate",
    ] {
        let o = run(&[sub, "--help"]);
        assert!(o.status.success(), "{sub}: {}", stderr(&o));
        assert!(
            stdout(&o).contains("Examples:\n  stagger"),
            "{sub} --help has no examples"
        );
    }
    let o = run(&["completions", "bash"]);
    assert!(
        o.status.success() && stdout(&o).contains("_stagger()"),
        "{}",
        stderr(&o)
    );
    let o = run(&["man"]);
    assert!(o.status.success() && stdout(&o).contains(".TH stagger 1"));
    let d = tempfile::tempdir().unwrap();
    let o = run(&["man", "--out", d.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = std::fs::read_to_string(d.path().join("stagger-rollout.1")).unwrap();
    assert!(page.contains("\\-\\-execute"), "{page}");
}

/// `stagger schema` judged by a validator we did not write (Python's jsonschema): every
/// shipped scenario passes, and a misspelt key fails.
#[test]
fn the_scenario_schema_accepts_shipped_scenarios_and_rejects_a_misspelt_key() {
    let python = std::env::var("STAGGER_MINISTACK")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/ministack-venv/bin/ministack")
        })
        .with_file_name("python");
    assert!(
        python.exists(),
        "the test venv is needed: run scripts/test.sh"
    );
    let d = tempfile::tempdir().unwrap();
    let o = run(&["schema"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let schema = d.path().join("schema.json");
    std::fs::write(&schema, &o.stdout).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let bad = d.path().join("bad.toml");
    let seed = std::fs::read_to_string(root.join("scenarios/seed-200.toml")).unwrap();
    std::fs::write(&bad, seed.replacen("gateways =", "gatways =", 1)).unwrap();
    let check = |toml: &std::path::Path| {
        std::process::Command::new(&python)
            .args([
                "-c",
                "import json, sys, tomllib, jsonschema\n\
                 s = json.load(open(sys.argv[1]))\n\
                 jsonschema.Draft202012Validator.check_schema(s)\n\
                 jsonschema.validate(tomllib.load(open(sys.argv[2], 'rb')), s)",
            ])
            .arg(&schema)
            .arg(toml)
            .output()
            .unwrap()
    };
    for f in ["seed-200.toml", "fleet-1m.toml"] {
        let o = check(&root.join("scenarios").join(f));
        assert!(
            o.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = check(&bad);
    assert!(!o.status.success(), "a misspelt key passed the schema");
    assert!(String::from_utf8_lossy(&o.stderr).contains("gatways"));
}

#[test]
fn the_makespan_breakdown_sums_to_the_makespan_and_matches_the_policy() {
    let s = seed_scenario();
    let breakdown = |extra: &[&str]| {
        let mut a = vec!["simulate", s.as_str(), "--json"];
        a.extend_from_slice(extra);
        let v = json(&a);
        let parts = v["makespan_breakdown_s"].as_object().unwrap().clone();
        (v["makespan_s"].as_f64().unwrap(), parts)
    };
    for policy in [
        "bulk",
        "seed-staged",
        "fixed",
        "backoff",
        "pipelined",
        "adaptive",
    ] {
        for seed in ["1", "2", "3"] {
            let (makespan, parts) = breakdown(&["--policy", policy, "--seed", seed]);
            let sum: f64 = parts.values().map(|v| v.as_f64().unwrap()).sum();
            assert!(
                (sum - makespan).abs() <= 0.01 * makespan,
                "{policy} seed {seed}: parts sum to {sum}, makespan {makespan}: {parts:?}"
            );
            assert!(parts.values().all(|v| v.as_f64().unwrap() > 0.0));
        }
    }
    // Closed forms. The seed's staged plan soaks 0 + 1 + 2 + 3 h before its last stage.
    let (_, parts) = breakdown(&["--policy", "seed-staged", "--seed", "1"]);
    assert_eq!(parts["soak"].as_f64(), Some(21_600.0), "{parts:?}");
    // Four batches of 50, 600 s apart once each completes: three gaps before the last.
    let (_, parts) = breakdown(&[
        "--policy",
        "fixed",
        "--set",
        "policies.fixed.delay_s=600",
        "--set",
        "failures.enabled=false",
    ]);
    assert_eq!(parts["batch_gap"].as_f64(), Some(1_800.0), "{parts:?}");
    // --explain prints it for people, largest part first.
    let o = run(&["simulate", &s, "--policy", "seed-staged", "--explain"]);
    let out = stdout(&o);
    let lines: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("where the"))
        .skip(1)
        .collect();
    assert!(lines.len() >= 4, "{out}");
    let hours = |l: &str| l.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap();
    assert!(
        lines.windows(2).all(|w| hours(w[0]) >= hours(w[1])),
        "{out}"
    );
}

/// seed-200 with `[uncertainty]` appended.
fn uncertain_scenario(dir: &std::path::Path, table: &str) -> String {
    // seed-200 with its own [uncertainty] replaced by `table`.
    let text = std::fs::read_to_string(seed_scenario()).unwrap();
    let base = text.split("\n[uncertainty]").next().unwrap();
    write(
        dir,
        "uncertain.toml",
        &format!("{base}\n[uncertainty]\n{table}\n"),
    )
}

#[test]
fn uncertain_values_are_drawn_once_per_seed_for_every_policy() {
    let d = tempfile::tempdir().unwrap();
    let s = uncertain_scenario(
        d.path(),
        r#""failures.install_failure_rate" = { dist = "uniform", min = 0.01, max = 0.04 }
"service.max_concurrent_ops" = { dist = "uniform", min = 40, max = 60 }"#,
    );
    let drawn = |policy: &str, seed: u32| {
        let v = json(&[
            "simulate",
            &s,
            "--policy",
            policy,
            "--seed",
            &seed.to_string(),
            "--json",
        ]);
        let u = &v["uncertain"];
        (
            u["failures.install_failure_rate"].as_f64().unwrap(),
            u["service.max_concurrent_ops"].as_f64().unwrap(),
        )
    };
    // Common random numbers: one draw per seed, whatever the policy.
    assert_eq!(drawn("bulk", 5), drawn("pipelined", 5));
    let draws: Vec<(f64, f64)> = (1..=60).map(|seed| drawn("fixed", seed)).collect();
    assert!(draws
        .iter()
        .all(|(r, c)| (0.01..=0.04).contains(r) && (40.0..=60.0).contains(c) && c.fract() == 0.0));
    // Uniform on [0.01, 0.04]: mean 0.025, sd 0.00866; 60 draws give a standard error of
    // 0.0011, so 4 of them is a failure by chance once in ten thousand.
    let mean = draws.iter().map(|d| d.0).sum::<f64>() / 60.0;
    assert!(
        (mean - 0.025).abs() < 4.0 * 0.00866 / 60f64.sqrt(),
        "mean {mean}"
    );
    let distinct: std::collections::BTreeSet<u64> = draws.iter().map(|d| d.0.to_bits()).collect();
    assert!(distinct.len() > 50, "seeds draw afresh");
    // A scenario without the table reports no draw.
    let text = std::fs::read_to_string(seed_scenario()).unwrap();
    let certain = write(
        d.path(),
        "certain.toml",
        text.split("\n[uncertainty]").next().unwrap(),
    );
    let plain = json(&[
        "simulate", &certain, "--policy", "fixed", "--seed", "5", "--json",
    ]);
    assert!(plain.get("uncertain").is_none());
}

#[test]
fn uncertainty_tables_are_checked_key_by_key() {
    let d = tempfile::tempdir().unwrap();
    for (table, expect) in [
        (
            r#""service.nope" = { dist = "uniform", min = 1, max = 2 }"#,
            "not set in the scenario",
        ),
        (
            r#""policies.bulk.max_concurrent" = 5"#,
            "not a value of the fleet",
        ),
        (
            r#""fleet.regions" = { dist = "uniform", min = 1, max = 2 }"#,
            "single number",
        ),
        (
            r#""failures.install_failure_rate" = { dist = "uniform", min = 0.01, max = 2 }"#,
            "at 2, the scenario is invalid",
        ),
        (
            r#""service.cpu_base_pct" = { dist = "normal", mean = 9, sd = 1 }"#,
            "bounded",
        ),
    ] {
        let s = uncertain_scenario(d.path(), table);
        let o = run(&["simulate", &s, "--policy", "fixed"]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{table}: {err}");
        assert!(
            err.contains("uncertainty.") && err.contains(expect),
            "{table}: {err}"
        );
    }
}

#[test]
fn sensitivity_ranks_the_factor_that_matters_first_and_gives_inert_ones_zero() {
    let d = tempfile::tempdir().unwrap();
    // The fixed policy is download-bound; with faults off, fault rates and the busy CPU level
    // (fixed runs no pre-checks) cannot move anything.
    let s = uncertain_scenario(
        d.path(),
        r#""failures.chunk_failure_rate" = { dist = "uniform", min = 0.001, max = 0.01 }
"fleet.busy_cpu_pct" = { dist = "uniform", min = 30, max = 60 }
"firmware.size_mb" = { dist = "uniform", min = 100, max = 200 }"#,
    );
    let args = &[
        "sensitivity",
        &s,
        "--policy",
        "fixed",
        "--set",
        "failures.enabled=false",
        "--trajectories",
        "4",
        "--seeds",
        "2",
    ];
    let o = run(args);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let section = |metric: &str| -> Vec<(String, f64)> {
        out.split(&format!("### {metric}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no {metric}: {out}"))
            .lines()
            .take_while(|l| !l.starts_with("### "))
            .filter(|l| l.starts_with("| ") && l.contains('`'))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (
                    cells[2].trim_matches('`').to_string(),
                    cells[4].parse().unwrap(),
                )
            })
            .collect()
    };
    // A bigger image takes longer, and past the fixed policy's 1200 s operation timeout it
    // also fails gateways: the image size is first for both, the others are exactly zero.
    for (metric, least) in [("makespan_s", 100.0), ("success_rate", 0.01)] {
        let ranked = section(metric);
        assert_eq!(ranked[0].0, "firmware.size_mb", "{out}");
        assert!(ranked[0].1 > least, "{metric}: {out}");
        for (factor, mu_star) in &ranked[1..] {
            assert_eq!(*mu_star, 0.0, "{factor} is inert for {metric}: {out}");
        }
    }
    // The same design twice gives the same bytes.
    assert_eq!(out, stdout(&run(args)));
}

/// `--set` reads its key as TOML does: a quoted part names one entry of `[uncertainty]`, and
/// the run draws from the new range.
#[test]
fn set_reaches_an_uncertainty_entry_by_its_quoted_key() {
    let s = seed_scenario();
    let drawn = |sets: &[&str]| {
        let mut args = vec!["simulate", s.as_str(), "--policy", "backoff", "--json"];
        for set in sets {
            args.extend(["--set", set]);
        }
        json(&args)["uncertain"]["service.op_request_ms"]
            .as_f64()
            .unwrap()
    };
    let before = drawn(&[]);
    assert!((25.0..=60.0).contains(&before), "{before}");
    let after = drawn(&[r#"uncertainty."service.op_request_ms"={dist="uniform",min=12.5,max=13}"#]);
    assert!((12.5..=13.0).contains(&after), "{after}");
}
