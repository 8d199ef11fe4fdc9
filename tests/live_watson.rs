//! Live rollouts against the Watson v0002 emulator on loopback: crash and resume, dry runs,
//! halts that cancel, injected faults, secrets, and bad inputs.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "a-key-RECOGNISABLE-KEY-7f3e";
const TOKEN: &str = "tok-RECOGNISABLE-SECRET-91ad";

struct Emulator {
    child: Child,
    endpoint: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    fn start(inventory: &Path, extra: &[&str]) -> Emulator {
        let mut child = bin()
            .args([
                "emulate",
                "watson",
                "--inventory",
                inventory.to_str().unwrap(),
                "--scenario",
                &seed_scenario(),
                "--speed",
                "600",
            ])
            .args(extra)
            .env("WIOTP_API_KEY", KEY)
            .env("WIOTP_API_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let endpoint = line
            .trim()
            .strip_prefix("listening on ")
            .expect("emulator address")
            .to_string();
        assert!(
            endpoint.starts_with("http://127.0.0.1:"),
            "loopback only: {endpoint}"
        );
        Emulator { child, endpoint }
    }

    fn stats(&self) -> serde_json::Value {
        let body = ureq::get(&format!("{}/_emulator/stats", self.endpoint))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }
}

fn inventory(dir: &Path, n: usize) -> std::path::PathBuf {
    let mut s = String::from("device_id,type_id,region,hw\n");
    let regions = ["north", "south", "east", "west"];
    for i in 0..n {
        s += &format!(
            "gw-{i:03},gateway,{},{}\n",
            regions[i % 4],
            if (i / 4) % 2 == 0 { "x86" } else { "arm" }
        );
    }
    let p = dir.join("inventory.csv");
    std::fs::write(&p, s).unwrap();
    p
}

fn rollout(plan: &Path, inv: &Path, endpoint: &str, journal: &Path, execute: bool) -> Command {
    let mut c = rollout_command("watson-iot", plan, inv, endpoint, journal, execute);
    c.env("WIOTP_API_KEY", KEY).env("WIOTP_API_TOKEN", TOKEN);
    c
}

fn assert_no_secrets(what: &str, text: &str) {
    assert!(
        !text.contains(KEY) && !text.contains(TOKEN),
        "{what} leaks a credential"
    );
}

#[test]
fn killed_mid_rollout_then_resumed_updates_each_gateway_once() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 40);
    let plan = tuned_plan(d.path());
    let emu = Emulator::start(&inv, &["--fail", "gw-007,gw-021"]);
    let journal = d.path().join("journal.jsonl");
    // First run: SIGKILL once part of the fleet is in flight.
    let mut first = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let updates = emu.stats()["update_requests"]
            .as_object()
            .map_or(0, |m| m.len());
        if updates >= 10 || t0.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let mid = emu.stats();
    assert!(
        mid["updated"].as_array().unwrap().len() < 38,
        "the kill came too late to test anything: {mid}"
    );
    // Second run: same command, same journal.
    let o = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .output()
        .unwrap();
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(
        matches!(o.status.code(), Some(0) | Some(3)),
        "exit {:?}\n{out}\n{err}",
        o.status.code()
    );
    assert!(err.contains("resumed"), "{err}");
    let s = emu.stats();
    for i in 0..40 {
        let id = format!("gw-{i:03}");
        let n = s["update_requests"][&id].as_u64().unwrap_or(0);
        if id == "gw-007" || id == "gw-021" {
            // Retried within the plan's limit (4 attempts) and reported.
            assert!((2..=4).contains(&n), "{id}: {n} update requests");
            assert!(out.contains(&format!("failed: {id}")), "{out}");
        } else {
            let failures = s["update_failures"][&id].as_u64().unwrap_or(0);
            assert_eq!(
                n,
                1 + failures,
                "{id} was updated {n} times with {failures} failed updates"
            );
            assert!(
                s["updated"].as_array().unwrap().iter().any(|v| v == &id),
                "{id} not updated"
            );
        }
    }
    assert_eq!(
        s["updates_after_success"],
        serde_json::json!({}),
        "no second execution after success"
    );
    assert_eq!(
        s["overlapping_updates"],
        serde_json::json!({}),
        "no running update was triggered again"
    );
    let j = std::fs::read_to_string(&journal).unwrap();
    assert_no_secrets("the journal", &j);
    assert_no_secrets("the output", &(out + &err));
}

#[test]
fn a_dry_run_creates_nothing() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 40);
    let plan = tuned_plan(d.path());
    let emu = Emulator::start(&inv, &[]);
    let journal = d.path().join("j.jsonl");
    let o = rollout(&plan, &inv, &emu.endpoint, &journal, false)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("DRY RUN") && out.contains("canaries") && out.contains("predicted"),
        "{out}"
    );
    assert_eq!(emu.stats()["requests"], 0, "the dry run created a request");
    assert!(!journal.exists(), "the dry run wrote a journal");
}

#[test]
fn a_safety_halt_cancels_in_flight_work_and_exits_3() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 40);
    // Overlapping batches, so that later batches are in flight when the first one fails.
    let plan_text = std::fs::read_to_string(tuned_plan(d.path())).unwrap();
    let cut = plan_text.find("[policy]").unwrap();
    let plan_text = format!(
        "{}[policy]\nfamily = \"pipelined\"\nbatch_size = 10\nmax_concurrent = 40\ngate = {{ fraction = 0.1, state = \"downloaded\" }}\nretry = {{ max_attempts = 1 }}\nrollback = {{ below = 0.7 }}\n",
        &plan_text[..cut]
    );
    let plan = d.path().join("halting.toml");
    std::fs::write(&plan, plan_text).unwrap();
    let emu = Emulator::start(&inv, &["--fail", "gw-000,gw-001,gw-002,gw-003"]);
    let o = rollout(&plan, &inv, &emu.endpoint, &d.path().join("j.jsonl"), true)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("halted"), "{}", stderr(&o));
    assert!(
        emu.stats()["cancels"].as_u64().unwrap() >= 1,
        "in-flight work was not cancelled: {}",
        emu.stats()
    );
}

#[test]
fn injected_faults_are_survived_without_double_triggers() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 24);
    let plan = tuned_plan(d.path());
    let faults = "429=0.1,500=0.05,503=0.05,reset=0.05,garbage=0.05,slow=0.03";
    let emu = Emulator::start(&inv, &["--faults", faults, "--seed", "5"]);
    let o = rollout(&plan, &inv, &emu.endpoint, &d.path().join("j.jsonl"), true)
        .output()
        .unwrap();
    assert!(
        matches!(o.status.code(), Some(0) | Some(3)),
        "{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    let s = emu.stats();
    let injected: u64 = s["injected"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(
        injected >= 10,
        "too few faults injected to mean anything: {s}"
    );
    // Every extra update request must be a retry after a failed update, never a second
    // trigger of one that was running or had succeeded.
    for (id, n) in s["update_requests"].as_object().unwrap() {
        let failures = s["update_failures"][id].as_u64().unwrap_or(0);
        assert!(
            n.as_u64().unwrap() <= 1 + failures,
            "{id} triggered {n} times with {failures} failures: {s}"
        );
    }
    assert_eq!(
        s["overlapping_updates"],
        serde_json::json!({}),
        "a running update was triggered again"
    );
    assert_eq!(s["updates_after_success"], serde_json::json!({}));
    assert_no_secrets("the output", &(stdout(&o) + &stderr(&o)));
}

#[test]
fn bad_inventories_and_plans_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let plan = tuned_plan(d.path());
    let journal = d.path().join("j.jsonl");
    for (name, text, expect) in [
        ("missing column", "id,type_id\na,gw\n", "device_id"),
        (
            "duplicate",
            "device_id,type_id\na,gw\nb,gw\na,gw\n",
            "duplicate device_id `a`",
        ),
        ("no type for watson", "device_id\na\n", "type_id"),
    ] {
        let inv = d.path().join("bad.csv");
        std::fs::write(&inv, text).unwrap();
        let o = rollout(&plan, &inv, "http://127.0.0.1:9", &journal, false)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(expect) && stderr(&o).contains("bad.csv"),
            "{name}: {}",
            stderr(&o)
        );
    }
    // A plan tuned on another version of the scenario.
    let stale = std::fs::read_to_string(&plan).unwrap();
    let stale = stale.replacen("fingerprint = \"", "fingerprint = \"0000", 1);
    let stale_path = d.path().join("stale.toml");
    std::fs::write(&stale_path, stale).unwrap();
    let inv = inventory(d.path(), 4);
    let o = rollout(&stale_path, &inv, "http://127.0.0.1:9", &journal, false)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("another version"), "{}", stderr(&o));
    // Missing credentials are named, never printed.
    let o = rollout(&plan, &inv, "http://127.0.0.1:9", &journal, true)
        .env_remove("WIOTP_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("WIOTP_API_TOKEN"));
}

#[test]
fn ctrl_c_stops_cleanly_and_prints_the_resume_command() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 40);
    let plan = tuned_plan(d.path());
    let emu = Emulator::start(&inv, &[]);
    let journal = d.path().join("j.jsonl");
    let child = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while emu.stats()["requests"].as_u64().unwrap_or(0) < 2
        && t0.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("Resume with") && err.contains("--journal") && err.contains("--execute"),
        "{err}"
    );
    let (_, records, cut) =
        stagger::live::journal::parse(&std::fs::read_to_string(&journal).unwrap()).unwrap();
    assert!(
        !cut && !records.is_empty(),
        "the journal is whole after Ctrl-C"
    );
}
