//! A corpus of malformed scenarios and flags: each exits 2 with a message that names the
//! key or line, and none panics.

mod common;
use common::*;

const MINIMAL: &str = include_str!("data/minimal.toml");

/// (name, scenario text, extra flags, text the error must contain)
fn corpus() -> Vec<(&'static str, String, Vec<&'static str>, Vec<&'static str>)> {
    let edit = |from: &str, to: &str| {
        assert!(
            MINIMAL.contains(from),
            "corpus edit `{from}` does not apply"
        );
        MINIMAL.replacen(from, to, 1)
    };
    let base = || MINIMAL.to_string();
    vec![
        (
            "toml syntax",
            edit("gateways = 20", "gateways = = 20"),
            vec![],
            vec![":6:", "expected"],
        ),
        (
            "unknown table",
            edit("[fleet]", "[flet]"),
            vec![],
            vec!["flet"],
        ),
        (
            "unknown key",
            edit("gateways = 20", "gatways = 20"),
            vec![],
            vec!["gatways", "fleet"],
        ),
        (
            "zero gateways",
            edit("gateways = 20", "gateways = 0"),
            vec![],
            vec!["`fleet.gateways`", ":6:", "from 1"],
        ),
        (
            "gateways wrong type",
            edit("gateways = 20", "gateways = \"many\""),
            vec![],
            vec!["fleet.gateways", "whole number"],
        ),
        (
            "negative image",
            edit("size_mb = 150", "size_mb = -5"),
            vec![],
            vec!["firmware.size_mb", ":10:"],
        ),
        (
            "chunk larger than image",
            edit("chunk_mb = 5", "chunk_mb = 500"),
            vec![],
            vec!["firmware.chunk_mb", "larger than the image"],
        ),
        (
            "unknown dist",
            edit(
                "dist = \"uniform\", min = 5",
                "dist = \"gaussian\", min = 5",
            ),
            vec![],
            vec!["network.gateway_mbps", "gaussian"],
        ),
        (
            "uniform min > max",
            edit("min = 5, max = 10", "min = 10, max = 5"),
            vec![],
            vec!["network.gateway_mbps", "min <= max"],
        ),
        (
            "normal without sd",
            edit(
                "{ dist = \"uniform\", min = 180, max = 300 }",
                "{ dist = \"normal\", mean = 200 }",
            ),
            vec![],
            vec!["install.seconds", "sd"],
        ),
        (
            "dist stray parameter",
            edit("min = 180, max = 300", "min = 180, max = 300, mode = 2"),
            vec![],
            vec!["install.seconds.mode"],
        ),
        (
            "negative distribution",
            edit("min = 180, max = 300", "min = -10, max = 300"),
            vec![],
            vec!["install.seconds", "outside"],
        ),
        (
            "unknown family",
            edit("family = \"fixed\"", "family = \"yolo\""),
            vec![],
            vec!["policies.steady.family", "yolo"],
        ),
        (
            "key not for family",
            edit("delay_s = 60", "delay_s = 60\nstages = []"),
            vec![],
            vec!["policies.steady.stages", "does not apply"],
        ),
        (
            "fixed without delay",
            edit("delay_s = 60\n", ""),
            vec![],
            vec!["policies.steady", "delay_s"],
        ),
        (
            "gate fraction over 1",
            edit("delay_s = 60", "delay_s = 60\nrollback = { below = 1.5 }"),
            vec![],
            vec!["policies.steady.rollback.below", "between 0 and 1"],
        ),
        (
            "retry cap below base",
            edit(
                "retry = { max_attempts = 2, base_s = 60 }",
                "retry = { max_attempts = 2, base_s = 60, cap_s = 10 }",
            ),
            vec![],
            vec!["policies.steady.retry.cap_s"],
        ),
        (
            "zero attempts",
            edit("max_attempts = 2", "max_attempts = 0"),
            vec![],
            vec!["policies.steady.retry.max_attempts"],
        ),
        (
            "no policies",
            MINIMAL
                .split("[policies.steady]")
                .next()
                .unwrap()
                .replace("default_policy = \"steady\"\n", ""),
            vec![],
            vec!["policies", "no policy"],
        ),
        (
            "default policy missing",
            edit("default_policy = \"steady\"", "default_policy = \"nope\""),
            vec![],
            vec!["meta.default_policy", "nope"],
        ),
        (
            "empty regions",
            edit("regions = [\"a\", \"b\"]", "regions = []"),
            vec![],
            vec!["fleet.regions"],
        ),
        (
            "duplicate regions",
            edit("regions = [\"a\", \"b\"]", "regions = [\"a\", \"a\"]"),
            vec![],
            vec!["fleet.regions", "unique"],
        ),
        ("empty file", String::new(), vec![], vec!["fleet"]),
        (
            "binary garbage",
            "\u{0}\u{1}\u{2}garbage[[".to_string(),
            vec![],
            vec!["scenario.toml"],
        ),
        (
            "probability over 1",
            edit("install_failure_rate = 0.02", "install_failure_rate = 2"),
            vec![],
            vec!["failures.install_failure_rate", ":26:"],
        ),
        (
            "set unknown key",
            base(),
            vec!["--set", "fleet.gatways=5"],
            vec!["gatways", "--set"],
        ),
        (
            "set without equals",
            base(),
            vec!["--set", "fleet.gateways"],
            vec!["KEY=VALUE"],
        ),
        (
            "set invalid value",
            base(),
            vec!["--set", "fleet.gateways={"],
            vec!["--set", "not a TOML value"],
        ),
        (
            "set out of range",
            base(),
            vec!["--set", "fleet.gateways=-3"],
            vec!["fleet.gateways", "--set"],
        ),
        (
            "set into a number",
            base(),
            vec!["--set", "fleet.gateways.x=3"],
            vec!["fleet.gateways", "not a table"],
        ),
        (
            "unknown policy flag",
            base(),
            vec!["--policy", "nope"],
            vec!["nope", "steady"],
        ),
        (
            "bad seed flag",
            base(),
            vec!["--seed", "abc"],
            vec!["--seed"],
        ),
        (
            "bad sample spacing",
            base(),
            vec!["--timeline", "x.csv", "--sample-every", "0"],
            vec!["--sample-every"],
        ),
    ]
}

#[test]
fn malformed_inputs_exit_2_with_a_pointed_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases = corpus();
    assert!(cases.len() >= 20);
    let mut problems = Vec::new();
    for (name, text, flags, expect) in cases {
        let path = write(dir.path(), "scenario.toml", &text);
        let mut args = vec!["simulate", path.as_str()];
        args.extend(flags.iter());
        let o = run(&args);
        let err = stderr(&o);
        if o.status.code() != Some(2) {
            problems.push(format!("{name}: exit {:?}, stderr: {err}", o.status.code()));
        }
        if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
            problems.push(format!("{name}: panic: {err}"));
        }
        for e in expect {
            if !err.contains(e) {
                problems.push(format!("{name}: expected `{e}` in: {err}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_missing_scenario_file_is_named() {
    let o = run(&["simulate", "no/such/scenario.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no/such/scenario.toml"));
}

#[test]
fn an_unwritable_timeline_is_a_runtime_failure() {
    let s = data("minimal.toml");
    let o = run(&["simulate", &s, "--timeline", "/proc/no-such-dir/t.csv"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("/proc/no-such-dir"));
}

#[test]
fn a_plan_passed_as_a_scenario_says_to_use_plan() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write(
        dir.path(),
        "plan.toml",
        "format = 1\nname = \"p\"\n[scenario]\npath = \"s.toml\"\n[policy]\nfamily = \"bulk\"\n",
    );
    let o = run(&["simulate", &plan]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--plan") && err.contains("plan.toml"), "{err}");
}

/// A policy that is not selected never blocks a run: its sizes clamp to a small fleet.
#[test]
fn a_one_gateway_fleet_runs_every_policy() {
    let s = seed_scenario();
    for policy in ["bulk", "seed-staged", "adaptive", "backoff", "pipelined"] {
        let o = run(&[
            "simulate",
            &s,
            "--policy",
            policy,
            "--set",
            "fleet.gateways=1",
            "--json",
        ]);
        assert!(o.status.success(), "{policy}: {}", stderr(&o));
        assert!(stdout(&o).contains("\"gateways\":1"), "{policy}");
    }
}
