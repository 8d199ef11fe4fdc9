//! `--refit-after STAGE`: a plan re-tuned when a stage completes, in simulation and in the
//! dry run. (The live driver's journaling and replay of a refit is in tests/live_replay.rs.)

mod common;

use common::{json, root, run, stderr, stdout};

fn tuned_plan() -> String {
    root()
        .join("results/seed-200/plan.toml")
        .display()
        .to_string()
}

/// The tuned plan with a 20-gateway canary: enough installs for the fit to identify the
/// install time (it needs 8).
fn plan_with_canary_of_20(dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(tuned_plan()).unwrap();
    let edited = text.replacen(
        "[policy.canary]\nsize = 5\n",
        "[policy.canary]\nsize = 20\n",
        1,
    );
    assert_ne!(edited, text, "the tuned plan has a canary of 5");
    let p = dir.join("plan20.toml");
    std::fs::write(&p, edited).unwrap();
    p.display().to_string()
}

#[test]
fn refit_after_names_a_stage_of_the_plan_or_exits_2() {
    let plan = tuned_plan();
    let o = run(&["simulate", "--plan", &plan, "--refit-after", "pilot"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no such stage") && stderr(&o).contains("canary"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "simulate",
        "--plan",
        &plan,
        "--refit-after",
        "canary",
        "--refit-replications",
        "3",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--refit-replications"),
        "{}",
        stderr(&o)
    );
    // Without a plan there is nothing to re-tune.
    let s = common::seed_scenario();
    let o = run(&["simulate", &s, "--refit-after", "canary"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// Five canaries pin nothing down more tightly than the plan's scenario did: the refit keeps
/// the plan, and the run is the plan's own, figure for figure.
#[test]
fn a_refit_that_learns_nothing_keeps_the_plan_exactly() {
    let plan = tuned_plan();
    let plain = json(&["simulate", "--plan", &plan, "--seed", "3", "--json"]);
    let mut refit = json(&[
        "simulate",
        "--plan",
        &plan,
        "--seed",
        "3",
        "--json",
        "--refit-after",
        "canary",
    ]);
    let r = refit.as_object_mut().unwrap().remove("refit").unwrap();
    assert_eq!(r["pace"], 1.0, "{r}");
    assert_eq!(r["leaning"], "same", "{r}");
    assert_eq!(r["adopted"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(plain, refit);
}

/// With 20 canaries the install time is fitted and used. The choice is deterministic, goes
/// only the way the canaries point, and is in the trace as an engine input.
#[test]
fn a_refit_is_deterministic_and_goes_only_the_way_the_canaries_point() {
    let d = tempfile::tempdir().unwrap();
    let plan = plan_with_canary_of_20(d.path());
    let mut leanings = std::collections::BTreeSet::new();
    for (truth, seeds) in [
        ("install.seconds={dist=\"uniform\",min=108,max=180}", 1..=4),
        ("install.seconds={dist=\"uniform\",min=252,max=420}", 1..=2),
    ] {
        for seed in seeds {
            let seed = seed.to_string();
            let args = [
                "simulate",
                "--plan",
                &plan,
                "--seed",
                &seed,
                "--set",
                truth,
                "--json",
                "--refit-after",
                "canary",
            ];
            let a = json(&args);
            assert_eq!(a, json(&args), "seed {seed}: the same run twice differs");
            let r = &a["refit"];
            let pace = r["pace"].as_f64().unwrap();
            let adopted: Vec<&str> = r["adopted"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert!(adopted.contains(&"install.seconds.min"), "{r}");
            match r["leaning"].as_str().unwrap() {
                "worse" => assert!(pace <= 1.0, "{r}"),
                "better" => assert!(pace >= 1.0, "{r}"),
                "same" => assert_eq!(pace, 1.0, "{r}"),
                other => panic!("leaning {other}"),
            }
            leanings.insert(r["leaning"].as_str().unwrap().to_string());
        }
    }
    // Seed 4 of the faster installs leans better and speeds up (see the README's table).
    assert!(leanings.contains("better"), "{leanings:?}");
    let faster = "install.seconds={dist=\"uniform\",min=108,max=180}";
    let seed_4 = [
        "simulate",
        "--plan",
        &plan,
        "--seed",
        "4",
        "--set",
        faster,
        "--refit-after",
        "canary",
    ];
    let chosen = json(&[&seed_4[..], &["--json"]].concat())["refit"]["pace"]
        .as_f64()
        .unwrap();
    assert!(chosen > 1.0, "seed 4 chose pace {chosen}");

    let trace = d.path().join("run.jsonl");
    let o = run(&[&seed_4[..], &["--trace", trace.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("refit after `canary`"),
        "{}",
        stdout(&o)
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(
        text.contains(r#"{"refit":[0,"canary"]}"#),
        "no refit command"
    );
    let repaced = format!(r#"{{"repaced":[0,{}]}}"#, (chosen * 1000.0).round());
    assert!(text.contains(&repaced), "no journaled pace: {repaced}");
}

#[test]
fn the_dry_run_says_what_would_be_refit_and_when() {
    let d = tempfile::tempdir().unwrap();
    let inv = d.path().join("fleet.csv");
    let mut csv = String::from("device_id,region,hw\n");
    for i in 0..200 {
        csv += &format!("gw-{i:03},{},x86\n", ["north", "south"][i % 2]);
    }
    std::fs::write(&inv, csv).unwrap();
    let o = run(&[
        "rollout",
        "--plan",
        &tuned_plan(),
        "--inventory",
        inv.to_str().unwrap(),
        "--backend",
        "aws-iot-jobs",
        "--endpoint",
        "http://127.0.0.1:9",
        "--firmware-version",
        "4.2.0",
        "--firmware-uri",
        "https://repo.example/fw-4.2.0.bin",
        "--refit-after",
        "canary",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("refit after stage `canary`") && out.contains("100 replications"),
        "{out}"
    );
}

/// `--pace` answers the refit without fitting: at 1 the run is the plan's own, figure for
/// figure; at 2 the rest runs with twice the plan's cap in flight; out of range, or without
/// `--refit-after`, it exits 2.
#[test]
fn a_given_pace_answers_the_refit_without_fitting() {
    let plan = tuned_plan();
    let base = ["simulate", "--plan", &plan, "--seed", "3", "--json"];
    let plain = json(&base);
    let given = |pace: &str| {
        let mut args = base.to_vec();
        args.extend(["--refit-after", "canary", "--pace", pace]);
        json(&args)
    };
    let mut one = given("1");
    let r = one.as_object_mut().unwrap().remove("refit").unwrap();
    assert_eq!(
        (r["leaning"].as_str(), r["pace"].as_f64()),
        (Some("given"), Some(1.0)),
        "{r}"
    );
    assert_eq!(plain, one);

    let two = given("2");
    let cap = plain["peak_in_flight"].as_u64().unwrap();
    let peak = two["peak_in_flight"].as_u64().unwrap();
    assert!(
        peak > cap && peak <= 2 * cap,
        "peak in flight {peak} against the plan's {cap}"
    );
    assert_eq!(two["refit"]["tried"].as_array().map(Vec::len), Some(0));

    for bad in [
        vec!["--refit-after", "canary", "--pace", "20"],
        vec!["--refit-after", "canary", "--pace", "0"],
        vec!["--pace", "2"],
    ] {
        let mut args = base.to_vec();
        args.extend(bad.iter().copied());
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("--pace") || stderr(&o).contains("--refit-after"),
            "{}",
            stderr(&o)
        );
    }
}
