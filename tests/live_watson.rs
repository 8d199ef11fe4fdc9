//! Live rollouts against the Watson v0002 emulator on loopback: crash and resume, dry runs,
//! halts that cancel, injected faults, secrets, and bad inputs.

mod common;
use common::*;
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
        let mut c = bin();
        c.args([
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
        .env("WIOTP_API_TOKEN", TOKEN);
        let (child, endpoint) = spawn_listening(&mut c, "the Watson double");
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

fn plan_limits(plan: &Path) -> (u64, u64) {
    let (_, policy) = stagger::tune::plan::PlanFile::load(plan.to_str().unwrap()).unwrap();
    (
        u64::from(policy.retry.max_attempts),
        u64::from(policy.max_concurrent),
    )
}

fn count(s: &serde_json::Value, field: &str, id: &str) -> u64 {
    s[field][id].as_u64().unwrap_or(0)
}

/// What the platform saw, judged: healthy devices updated exactly once, failing ones within
/// the budget, no overlap, nothing after success, the cap held.
fn assert_platform_safe(s: &serde_json::Value, n: usize, failing: &[&str], plan: &Path) {
    let (max_attempts, cap) = plan_limits(plan);
    assert_platform_safe_within(s, n, failing, max_attempts, cap);
}

fn assert_platform_safe_within(
    s: &serde_json::Value,
    n: usize,
    failing: &[&str],
    max_attempts: u64,
    cap: u64,
) {
    for i in 0..n {
        let id = format!("gw-{i:03}");
        let updates = count(s, "update_requests", &id);
        let downloads = count(s, "download_requests", &id);
        if failing.contains(&id.as_str()) {
            assert!(
                (1..=max_attempts).contains(&updates) && downloads <= max_attempts,
                "{id}: {downloads} downloads and {updates} updates against {max_attempts} attempts"
            );
        } else {
            assert_eq!(updates, 1, "{id} was sent {updates} updates: {s}");
            assert_eq!(downloads, 1, "{id} was sent {downloads} downloads: {s}");
            assert!(
                s["updated"].as_array().unwrap().iter().any(|v| v == &id),
                "{id} not updated: {s}"
            );
        }
    }
    assert_eq!(s["updates_after_success"], serde_json::json!({}), "{s}");
    assert_eq!(s["overlapping_updates"], serde_json::json!({}), "{s}");
    let peak = s["max_in_flight"].as_u64().unwrap();
    assert!(
        peak <= cap,
        "{peak} devices in flight against a cap of {cap}"
    );
}

/// The platform a test needs: pages of 3, no cancel, no random faults.
fn strict_emulator(inv: &Path, extra: &[&str]) -> Emulator {
    let mut args = vec!["--page-size", "3", "--set", "failures.enabled=false"];
    args.extend_from_slice(extra);
    Emulator::start(inv, &args)
}

#[test]
fn killed_at_ten_moments_then_finished_updates_each_gateway_once() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 60);
    let plan = tuned_plan(d.path(), "watson-iot");
    let failing = ["gw-007", "gw-021"];
    let emu = strict_emulator(&inv, &["--fail", "gw-007,gw-021"]);
    let journal = d.path().join("journal.jsonl");
    // Ten SIGKILLs at pseudo-random moments of the same rollout.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for k in 0..10 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let after = Duration::from_millis(400 + x % 1600);
        let mut run = rollout(&plan, &inv, &emu.endpoint, &journal, true)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(after);
        if run.try_wait().unwrap().is_none() {
            run.kill().unwrap(); // SIGKILL
        }
        run.wait().unwrap();
        let mid = emu.stats();
        if k == 0 {
            assert!(
                mid["updated"].as_array().unwrap().len() < 58,
                "the first kill came too late to test anything: {mid}"
            );
        }
    }
    let o = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .output()
        .unwrap();
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(err.contains("resumed"), "{err}");
    for id in failing {
        assert!(out.contains(&format!("failed: {id}")), "{out}");
    }
    assert_platform_safe(&emu.stats(), 60, &failing, &plan);
    let j = std::fs::read_to_string(&journal).unwrap();
    assert_no_secrets("the journal", &j);
    assert_no_secrets("the output", &(out + &err));
}

#[test]
fn a_halted_rollout_stays_halted_until_overridden() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 40);
    let plan = halting_plan(d.path());
    let emu = strict_emulator(&inv, &["--fail", "gw-000,gw-001,gw-002,gw-003"]);
    let journal = d.path().join("j.jsonl");
    let o = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("halted"), "{}", stderr(&o));
    let posts = emu.stats()["posts"].as_u64().unwrap();
    assert!(posts > 0);
    for _ in 0..2 {
        let o = rollout(&plan, &inv, &emu.endpoint, &journal, true)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{err}");
        assert!(
            err.contains("halted earlier") && err.contains("--override-halt rollback"),
            "{err}"
        );
        assert_eq!(
            emu.stats()["posts"].as_u64().unwrap(),
            posts,
            "a re-run of a halted rollout issued requests"
        );
    }
    // A wrong override is refused; the right one goes on and is journaled.
    let o = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .args(["--override-halt", "defect"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .args(["--override-halt", "rollback"])
        .output()
        .unwrap();
    assert!(
        matches!(o.status.code(), Some(0) | Some(3)),
        "{}",
        stderr(&o)
    );
    assert!(emu.stats()["posts"].as_u64().unwrap() > posts);
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(
        text.contains(r#""k":"override""#),
        "the override is journaled"
    );
}

#[test]
fn a_second_executor_on_the_same_journal_is_refused_at_once() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 24);
    let plan = tuned_plan(d.path(), "watson-iot");
    let emu = strict_emulator(&inv, &[]);
    let journal = d.path().join("j.jsonl");
    let mut first = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !journal.exists() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    let o = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .output()
        .unwrap();
    let took = t.elapsed();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("in use by another executor")
            && err.contains(journal.to_str().unwrap())
            && err.contains(&format!("pid {}", first.id())),
        "{err}"
    );
    assert!(took < Duration::from_secs(1), "refused after {took:?}");
    assert!(first.wait().unwrap().success());
    assert_platform_safe(&emu.stats(), 24, &[], &plan);
}

#[test]
fn accepted_posts_answered_500_or_too_late_lose_and_double_nothing() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 60);
    let plan = tuned_plan(d.path(), "watson-iot");
    let emu = strict_emulator(
        &inv,
        &["--faults", "post500=0.3,postslow=0.1", "--seed", "3"],
    );
    let journal = d.path().join("j.jsonl");
    let code = exit_after_reruns(|| rollout(&plan, &inv, &emu.endpoint, &journal, true), 3);
    assert_eq!(code, Some(0));
    let s = emu.stats();
    let injected = s["injected"]["post500"].as_u64().unwrap_or(0)
        + s["injected"]["postslow"].as_u64().unwrap_or(0);
    assert!(injected >= 4, "too few faults to mean anything: {s}");
    assert_platform_safe(&s, 60, &[], &plan);
}

#[test]
fn a_shortened_or_deleted_journal_updates_nobody_twice() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 24);
    let plan = tuned_plan(d.path(), "watson-iot");
    let emu = strict_emulator(&inv, &["--fail", "gw-005"]);
    let journal = d.path().join("j.jsonl");
    let o = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let posts = emu.stats()["posts"].as_u64().unwrap();
    let text = std::fs::read_to_string(&journal).unwrap();
    let half: String = text
        .lines()
        .take(text.lines().count() / 2)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&journal, half).unwrap();
    let o = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::remove_file(&journal).unwrap();
    let o = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("failed: gw-005"), "{}", stdout(&o));
    assert_eq!(
        emu.stats()["posts"].as_u64().unwrap(),
        posts,
        "{}",
        emu.stats()
    );
    assert_platform_safe(&emu.stats(), 24, &["gw-005"], &plan);
}

#[test]
fn a_dry_run_creates_nothing() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 40);
    let plan = tuned_plan(d.path(), "watson-iot");
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
    assert!(out.contains("--json lists every gateway"), "{out}");
    // The same review as one JSON object, for change review: every gateway in a wave.
    let o = rollout(&plan, &inv, &emu.endpoint, &journal, false)
        .arg("--json")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let listed: usize = v["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["gateways"].as_array().unwrap().len())
        .sum();
    assert_eq!(listed, 40, "{v}");
    assert_eq!(v["canaries"].as_array().unwrap().len(), 5, "{v}");
    let success = &v["prediction"]["success_rate"];
    assert!(
        success["lo"].as_f64().unwrap() <= success["mean"].as_f64().unwrap()
            && success["hi"].as_f64().unwrap() <= 1.0,
        "{success}"
    );
    let rules = v["rules"].as_array().unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r["signal"] == "health" && r["live"] == false),
        "{v}"
    );
    assert_eq!(emu.stats()["requests"], 0, "the dry run created a request");
    assert!(!journal.exists(), "the dry run wrote a journal");
}

/// Overlapping batches with no retries, so that a failing canary halts with later
/// batches in flight.
fn halting_plan(dir: &Path) -> std::path::PathBuf {
    let plan_text = std::fs::read_to_string(tuned_plan(dir, "watson-iot")).unwrap();
    let cut = plan_text.find("[policy]").unwrap();
    let plan_text = format!(
        "{}[policy]\nfamily = \"pipelined\"\nbatch_size = 10\nmax_concurrent = 40\ngate = {{ fraction = 0.1, state = \"downloaded\" }}\nretry = {{ max_attempts = 1 }}\nrollback = {{ below = 0.7 }}\n",
        &plan_text[..cut]
    );
    let plan = dir.join("halting.toml");
    std::fs::write(&plan, plan_text).unwrap();
    plan
}

#[test]
fn injected_faults_are_survived_without_double_triggers() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 24);
    let plan = tuned_plan(d.path(), "watson-iot");
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
    let plan = tuned_plan(d.path(), "watson-iot");
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
    // A malformed endpoint is bad input, in the dry run and with --execute.
    for execute in [false, true] {
        let o = rollout(&plan, &inv, "127.0.0.1:9", &journal, execute)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("--endpoint"), "{}", stderr(&o));
    }
    // A journal of another rollout (another plan) is refused, naming what differs.
    let other = d.path().join("other.jsonl");
    let emu = Emulator::start(&inv, &[]);
    let o = rollout(&plan, &inv, &emu.endpoint, &other, true)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The policy's cap, not the embedded scenario's keys of the same name further down.
    let mut first = true;
    let edited: String = std::fs::read_to_string(&plan)
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("max_concurrent = ") && std::mem::take(&mut first) {
                "max_concurrent = 3\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let edited_path = d.path().join("edited.toml");
    std::fs::write(&edited_path, edited).unwrap();
    let o = rollout(&edited_path, &inv, &emu.endpoint, &other, true)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("plan digest"), "{}", stderr(&o));
    // An endpoint nobody answers on is reported within seconds, with the resume command.
    let t = Instant::now();
    let o = rollout(
        &plan,
        &inv,
        "http://127.0.0.1:9",
        &d.path().join("u.jsonl"),
        true,
    )
    .output()
    .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot reach") && err.contains("Resume with") && err.contains("--execute"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
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
    let plan = tuned_plan(d.path(), "watson-iot");
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
    let text = std::fs::read_to_string(&journal).unwrap();
    let parsed = stagger::live::journal::parse(&text).unwrap();
    assert!(
        !parsed.truncated(text.len()) && !parsed.records.is_empty(),
        "the journal is whole after Ctrl-C"
    );
}

#[test]
fn rules_the_backend_cannot_feed_are_refused_unless_accepted_by_name() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 12);
    let plan = tuned_plan(d.path(), "watson-iot");
    let text = std::fs::read_to_string(&plan).unwrap();
    assert!(
        text.contains("min_battery_pct") && text.contains("[policy.defect_halt]"),
        "the tuned plan has battery pre-checks and defect halting: {text}"
    );
    let emu = strict_emulator(&inv, &[]);
    let journal = d.path().join("j.jsonl");
    let bare = |accept: &[&str]| {
        let mut c = rollout(&plan, &inv, &emu.endpoint, &journal, false);
        c.arg("--execute");
        for a in accept {
            c.args(["--accept-missing", a]);
        }
        c.output().unwrap()
    };
    let o = bare(&["prechecks"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("defect halt") && err.contains("--accept-missing health"),
        "{err}"
    );
    assert!(!err.contains("--accept-missing prechecks"), "{err}");
    assert_eq!(emu.stats()["requests"], 0, "a refused plan sent nothing");
    assert!(!journal.exists(), "a refused plan wrote no journal");
    // The dry run says which rules are live and which blind.
    let o = rollout(&plan, &inv, &emu.endpoint, &journal, false)
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(
        out.contains("BLIND  defect halt")
            && out.contains("live   pre-checks")
            && out.contains("live   rollback"),
        "{out}"
    );
}

/// Registers a device (or replaces its metadata) through the documented device API.
fn set_battery(endpoint: &str, device: &str, pct: f64, register: bool) {
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{KEY}:{TOKEN}")
        )
    );
    let metadata = serde_json::json!({ "stagger": { "battery_pct": pct } });
    let r = if register {
        ureq::post(&format!(
            "{endpoint}/api/v0002/device/types/gateway/devices"
        ))
        .set("Authorization", &auth)
        .send_json(serde_json::json!({ "deviceId": device, "metadata": metadata }))
    } else {
        ureq::put(&format!(
            "{endpoint}/api/v0002/device/types/gateway/devices/{device}"
        ))
        .set("Authorization", &auth)
        .send_json(serde_json::json!({ "metadata": metadata }))
    };
    assert!(r.is_ok(), "{device}: {r:?}");
}

#[test]
fn device_metadata_holds_back_low_battery_devices_until_they_charge() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 16);
    let plan = tuned_plan(d.path(), "watson-iot");
    let emu = strict_emulator(&inv, &[]);
    let low = ["gw-001", "gw-002", "gw-003"];
    for i in 0..16 {
        let id = format!("gw-{i:03}");
        let pct = if low.contains(&id.as_str()) {
            10.0
        } else {
            90.0
        };
        set_battery(&emu.endpoint, &id, pct, true);
    }
    let journal = d.path().join("j.jsonl");
    let run = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while emu.stats()["updated"].as_array().map_or(0, Vec::len) < 10
        && t0.elapsed() < Duration::from_secs(40)
    {
        std::thread::sleep(Duration::from_millis(250));
    }
    let s = emu.stats();
    for id in low {
        assert_eq!(
            count(&s, "download_requests", id),
            0,
            "{id} was sent a download while its metadata said 10% battery: {s}"
        );
    }
    // `status` reads the journal while the rollout holds its lock.
    let o = bin()
        .args(["status", "--journal", journal.to_str().unwrap()])
        .output()
        .unwrap();
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.contains("running") && out.contains("canary"), "{out}");
    for id in low {
        set_battery(&emu.endpoint, id, 90.0, false);
    }
    let o = run.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_platform_safe(&emu.stats(), 16, &[], &plan);
    let o = bin()
        .args(["status", "--journal", journal.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["finished"], true, "{v}");
    assert_eq!(v["states"]["succeeded"], 16, "{v}");
    assert_eq!(v["not_started"], 0, "{v}");
    assert!(v["waves"].as_array().is_some_and(|w| w.len() >= 2), "{v}");
}

#[test]
fn only_and_exclude_narrow_the_target_set() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 12);
    let plan = tuned_plan(d.path(), "watson-iot");
    let emu = strict_emulator(&inv, &[]);
    let exclude = d.path().join("exclude.txt");
    std::fs::write(&exclude, "# on site for repairs\ngw-004\n").unwrap();
    let journal = d.path().join("j.jsonl");
    let o = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .args([
            "--only",
            "region=north",
            "--exclude",
            exclude.to_str().unwrap(),
            "--log-format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = emu.stats();
    for i in 0..12 {
        let id = format!("gw-{i:03}");
        let want = u64::from(id == "gw-000" || id == "gw-008");
        assert_eq!(count(&s, "update_requests", &id), want, "{id}: {s}");
    }
    // --log-format json: every stderr line is a timestamped JSON object, in time order, with
    // a line per gateway state change.
    let err = stderr(&o);
    assert_no_secrets("the JSON log", &err);
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let ts: Vec<&str> = lines.iter().map(|v| v["ts"].as_str().unwrap()).collect();
    assert!(
        ts.iter().all(|t| t.len() == 24 && t.ends_with('Z')),
        "{ts:?}"
    );
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    let events = |kind: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|v| v["event"] == kind).collect()
    };
    assert_eq!(events("journal").len(), 1, "{err}");
    assert!(!events("wave_released").is_empty(), "{err}");
    let mut succeeded: Vec<&str> = events("gateway_succeeded")
        .iter()
        .map(|v| v["gateway"].as_str().unwrap())
        .collect();
    succeeded.sort();
    assert_eq!(succeeded, ["gw-000", "gw-008"], "{err}");
    assert_eq!(events("gateway_started").len(), 2, "{err}");
    // A filter that leaves nobody, or names an unknown key, is bad input.
    for only in ["region=nowhere", "colour=red"] {
        let o = rollout(&plan, &inv, &emu.endpoint, &journal, false)
            .args(["--only", only])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{only}: {}", stderr(&o));
        assert!(stderr(&o).contains(only), "{}", stderr(&o));
    }
}

#[test]
fn preflight_names_each_failed_check_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 6);
    let plan = tuned_plan(d.path(), "watson-iot");
    let emu = strict_emulator(&inv, &[]);
    for i in 0..5 {
        set_battery(&emu.endpoint, &format!("gw-{i:03}"), 90.0, true);
    }
    // A firmware server on loopback that answers HEAD.
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let fw = format!(
        "http://{}/fw-4.2.0.bin",
        server.server_addr().to_ip().unwrap()
    );
    std::thread::spawn(move || {
        for r in server.incoming_requests() {
            let _ = r.respond(tiny_http::Response::empty(200));
        }
    });
    let journal = d.path().join("j.jsonl");
    let preflight = |uri: &str, key: &str| {
        bin()
            .args(["rollout", "--preflight", "--backend", "watson-iot"])
            .args([
                "--plan",
                plan.to_str().unwrap(),
                "--inventory",
                inv.to_str().unwrap(),
            ])
            .args([
                "--endpoint",
                &emu.endpoint,
                "--journal",
                journal.to_str().unwrap(),
            ])
            .args(["--firmware-version", "4.2.0", "--firmware-uri", uri])
            .env("WIOTP_API_KEY", key)
            .env("WIOTP_API_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    // One device is not registered: bad input, named.
    let o = preflight(&fw, KEY);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{}", stderr(&o));
    assert!(
        out.contains("FAILED inventory devices exist") && out.contains("gw-005 (type gateway)"),
        "{out}"
    );
    assert!(out.contains("ok     firmware URI answers HEAD"), "{out}");
    set_battery(&emu.endpoint, "gw-005", 90.0, true);
    let o = preflight(&fw, KEY);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("preflight passed"));
    // Wrong credentials and a firmware URI nobody answers: run-time failures, named.
    let o = preflight("http://127.0.0.1:9/none.bin", "wrong-key");
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("FAILED credentials and endpoint") && out.contains("FAILED firmware URI"),
        "{out}"
    );
    assert_no_secrets("preflight", &format!("{out}{}", stderr(&o)));
    assert_eq!(emu.stats()["requests"], 0, "preflight created a request");
    assert!(!journal.exists(), "preflight wrote a journal");
}

#[test]
fn an_approval_gate_holds_after_the_canary_until_approved() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 12);
    let plan = tuned_plan(d.path(), "watson-iot");
    let emu = strict_emulator(&inv, &[]);
    let journal = d.path().join("j.jsonl");
    let j = journal.to_str().unwrap();
    let status = || {
        let o = bin().args(["status", "--journal", j]).output().unwrap();
        stdout(&o)
    };
    let mut run = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .args(["--pause-after", "canary"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !status().contains("PAUSED after stage `canary`") {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "never paused: {}",
            status()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Held: two more seconds are 20 minutes of plan time, past the canary's soak.
    std::thread::sleep(Duration::from_secs(2));
    let s = emu.stats();
    let updated = s["updated"].as_array().unwrap().len();
    assert_eq!(updated, 5, "only the canaries before approval: {s}");
    assert!(
        run.try_wait().unwrap().is_none(),
        "the rollout ended while paused"
    );
    let o = bin().args(["approve", "--journal", j]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("approved `canary`"));
    let code = run.wait().unwrap().code();
    assert_eq!(code, Some(0));
    assert_platform_safe(&emu.stats(), 12, &[], &plan);
    // Nothing is paused now: a bare approve is refused.
    let o = bin().args(["approve", "--journal", j]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // The approval is an input in the journal: a re-run replays it and finds nothing to do.
    let o = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .args(["--pause-after", "canary"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_platform_safe(&emu.stats(), 12, &[], &plan);
}

#[test]
fn update_requests_wait_for_the_maintenance_window() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 6);
    let plan = tuned_plan(d.path(), "watson-iot");
    // A window opening about 90 plan-minutes from now (9 s of wall time at 600×), 20 hours
    // long, with a day's lead: downloads may start at once, updates only in the window.
    let now_min = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60;
    let open = (now_min + 90) % 1440;
    let mut text = std::fs::read_to_string(&plan).unwrap();
    text += &format!(
        "\n[policy.maintenance]\nlead_h = 24.0\n\n[[policy.maintenance.windows]]\nstart = \"{:02}:{:02}\"\nduration_h = 20.0\n",
        open / 60,
        open % 60
    );
    let plan = d.path().join("windowed.toml");
    std::fs::write(&plan, text).unwrap();
    let emu = strict_emulator(&inv, &[]);
    let t0 = Instant::now();
    let run = rollout(&plan, &inv, &emu.endpoint, &d.path().join("j.jsonl"), true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // 40 plan-minutes in: the canaries have downloaded, and nobody was sent an update.
    std::thread::sleep(Duration::from_secs(4).saturating_sub(t0.elapsed()));
    let s = emu.stats();
    let total = |field: &str| {
        s[field]
            .as_object()
            .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum::<u64>())
    };
    assert!(
        total("download_requests") > 0,
        "no download before the window: {s}"
    );
    assert_eq!(
        total("update_requests"),
        0,
        "an update before the window opened: {s}"
    );
    let o = run.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        t0.elapsed() > Duration::from_secs(8),
        "finished before the window opened"
    );
    assert_platform_safe(&emu.stats(), 6, &[], &plan);
}

/// Runs `c` under a pseudo-terminal (util-linux `script`), so that progress bars draw, and
/// returns what the terminal received.
fn on_a_terminal(c: &Command) -> String {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let line: Vec<String> = std::iter::once(quote(c.get_program()))
        .chain(c.get_args().map(quote))
        .collect();
    let mut t = Command::new("script");
    t.args(["-qec", &line.join(" "), "/dev/null"]);
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            t.env(k, v);
        }
    }
    let o = t.output().expect("util-linux `script` runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn log_lines_leave_no_stale_progress_frame_on_a_terminal() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 12);
    let plan = tuned_plan(d.path(), "watson-iot");
    let emu = strict_emulator(&inv, &[]);
    let c = rollout(&plan, &inv, &emu.endpoint, &d.path().join("j.jsonl"), true);
    let out = on_a_terminal(&c);
    // The bar drew, and showed a readable rate.
    let frames = out.matches("gateways final").count();
    assert!(frames > 0, "no progress bar on a terminal: {out:?}");
    assert!(
        out.contains("/s") || out.contains("/min") || out.contains("/h"),
        "{out:?}"
    );
    // Every log line and the summary come after the bar's line was cleared: a frame is never
    // followed by other text on the same line.
    let mut pending = false;
    let mut rest = out.as_str();
    while !rest.is_empty() {
        let frame = rest.find("gateways final");
        let clear = rest.find("\x1b[2K");
        let text = rest
            .find("rollout:")
            .into_iter()
            .chain(rest.find("succeeded:"))
            .min();
        let next = [frame, clear, text].into_iter().flatten().min();
        let Some(at) = next else { break };
        if Some(at) == frame {
            pending = true;
            rest = &rest[at + "gateways final".len()..];
        } else if Some(at) == clear {
            pending = false;
            rest = &rest[at + 4..];
        } else {
            assert!(
                !pending,
                "text printed over a progress frame: {:?}",
                rest.chars().take(200).collect::<String>()
            );
            rest = &rest[at + 1..];
        }
    }
    assert!(
        !pending,
        "the last progress frame was left on the terminal: {:?}",
        out.chars()
            .rev()
            .take(300)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<String>()
    );
}

#[test]
fn a_rehearsal_journal_fits_to_the_values_the_emulated_fleet_was_given() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 100);
    let plan = tuned_plan(d.path(), "watson-iot");
    // The emulated fleet's own values: seed-200 without its uncertainty, so each is known.
    let text = std::fs::read_to_string(seed_scenario()).unwrap();
    let fleet = d.path().join("fleet.toml");
    std::fs::write(&fleet, &text[..text.find("[uncertainty]").unwrap()]).unwrap();
    let mut c = bin();
    c.args(["emulate", "watson", "--inventory", inv.to_str().unwrap()])
        .args(["--scenario", fleet.to_str().unwrap(), "--speed", "600"])
        .env("WIOTP_API_KEY", KEY)
        .env("WIOTP_API_TOKEN", TOKEN);
    let (child, endpoint) = spawn_listening(&mut c, "the Watson double");
    let _emu = Emulator { child, endpoint };
    let journal = d.path().join("journal.jsonl");
    let o = rollout(&plan, &inv, &_emu.endpoint, &journal, true)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report = json(&[
        "fit",
        journal.to_str().unwrap(),
        "--inventory",
        inv.to_str().unwrap(),
        "--scenario",
        fleet.to_str().unwrap(),
        "--json",
    ]);
    // The fleet installs in uniform(180, 300) s. When AIC prefers another family (the live
    // journal's install windows blur the edges), its parameters converge to the matching
    // moments of that uniform: mean and sd, or those of the logarithm.
    let (a, b): (f64, f64) = (180.0, 300.0);
    let e_ln = (b * b.ln() - b - (a * a.ln() - a)) / (b - a);
    let sq = |x: f64| x * (x.ln().powi(2) - 2.0 * x.ln() + 2.0);
    let sd_ln = ((sq(b) - sq(a)) / (b - a) - e_ln * e_ln).sqrt();
    let fitted = |key: &str| {
        report["fitted"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["parameter"] == key)
    };
    let install = if fitted("install.seconds.min") {
        [("install.seconds.min", a), ("install.seconds.max", b)]
    } else if fitted("install.seconds.mean") {
        [
            ("install.seconds.mean", (a + b) / 2.0),
            ("install.seconds.sd", (b - a) / 12f64.sqrt()),
        ]
    } else {
        [
            ("install.seconds.median", e_ln.exp()),
            ("install.seconds.sigma", sd_ln),
        ]
    };
    let given = [
        install[0],
        install[1],
        ("failures.verify_failure_rate", 0.01),
    ];
    for (key, truth) in given {
        let row = report["fitted"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["parameter"] == key)
            .unwrap_or_else(|| panic!("{key} not fitted: {report}"));
        let (lo, hi) = (
            row["interval90"][0].as_f64().unwrap(),
            row["interval90"][1].as_f64().unwrap(),
        );
        eprintln!(
            "{key}: {} [{lo:.3}, {hi:.3}] for the fleet's {truth} ({})",
            row["estimate"], row["observations"]
        );
        assert!(
            lo <= truth && truth <= hi,
            "{key}: [{lo}, {hi}] misses the fleet's {truth}: {report}"
        );
    }
}

/// A refit after a canary of 10, live: the journal so far is fitted (the install time is
/// identified from ten live installs), the choice is journaled, a kill -9 after it and a
/// resume replay it, and the platform sees every gateway updated once within the cap the
/// chosen pace allows. A resume without --refit-after is refused: the journal's plan differs.
#[test]
fn a_refit_after_the_canary_is_fitted_from_the_live_journal_and_replayed() {
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(d.path(), 40);
    let tuned = tuned_plan(d.path(), "watson-iot");
    let text = std::fs::read_to_string(&tuned).unwrap();
    let edited = text.replacen(
        "[policy.canary]\nsize = 5\n",
        "[policy.canary]\nsize = 10\n",
        1,
    );
    assert_ne!(edited, text, "the tuned plan has a canary of 5");
    let plan = d.path().join("plan10.toml");
    std::fs::write(&plan, edited).unwrap();
    let emu = strict_emulator(&inv, &[]);
    let journal = d.path().join("j.jsonl");
    let repaced = || {
        std::fs::read_to_string(&journal)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(r#"{"repaced":[0,"#))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let mut run = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .args(["--refit-after", "canary", "--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while repaced().is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(120) && run.try_wait().unwrap().is_none(),
            "no refit journaled"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    run.kill().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut log).unwrap();
    run.wait().unwrap();
    let refitted = log
        .lines()
        .find(|l| l.contains("\"refitted\""))
        .unwrap_or_else(|| panic!("no refitted event: {log}"));
    assert!(
        refitted.contains("fitted and used: install.seconds.min, install.seconds.max"),
        "{refitted}"
    );
    assert_no_secrets("the log", &log);

    let o = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "a resume without --refit-after: {}",
        stderr(&o)
    );
    let o = rollout(&plan, &inv, &emu.endpoint, &journal, true)
        .args(["--refit-after", "canary", "--log-format", "json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("\"refitted\""),
        "the resume refitted again: {}",
        stderr(&o)
    );
    let lines = repaced();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let milli: u64 = lines[0]
        .split(r#"{"repaced":[0,"#)
        .nth(1)
        .and_then(|r| r.split(']').next())
        .and_then(|m| m.parse().ok())
        .unwrap();
    let (max_attempts, cap) = plan_limits(&plan);
    let cap = (cap * milli.max(1000)).div_ceil(1000);
    assert_platform_safe_within(&emu.stats(), 40, &[], max_attempts, cap);
    let o = bin()
        .args(["status", "--journal", journal.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("re-tuned after stage `canary`"),
        "{}",
        stdout(&o)
    );
}
