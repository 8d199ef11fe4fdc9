//! The aws-iot-jobs backend against MiniStack, a real AWS emulator (installed by
//! scripts/test.sh into target/ministack-venv): kill -9 and resume, and dry runs.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use stagger::live::aws::Signed;

const AKID: &str = "AKIARECOGNISABLE7Q2X";
const SECRET: &str = "secret-RECOGNISABLE-aws-5k8z";

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ministack_bin() -> PathBuf {
    std::env::var("STAGGER_MINISTACK")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target/ministack-venv/bin/ministack"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn with_creds(c: &mut Command) -> &mut Command {
    c.env("AWS_ACCESS_KEY_ID", AKID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_SESSION_TOKEN")
}

/// Starts MiniStack on a free loopback port and waits for its health endpoint.
fn ministack() -> (Proc, String) {
    let bin = ministack_bin();
    assert!(bin.exists(), "MiniStack is needed: run scripts/test.sh (it installs it into target/ministack-venv), or set STAGGER_MINISTACK");
    let port = free_port();
    let guard = Proc(
        Command::new(&bin)
            .env("BIND_HOST", "127.0.0.1")
            .env("GATEWAY_PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        if ureq::get(&format!("{endpoint}/_ministack/health"))
            .call()
            .is_ok()
        {
            return (guard, endpoint);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("MiniStack did not become healthy on {endpoint}");
}

fn fleet(endpoint: &str, inv: &Path, fail: &str) -> Proc {
    let mut c = bin();
    with_creds(&mut c)
        .args([
            "emulate",
            "aws-fleet",
            "--endpoint",
            endpoint,
            "--inventory",
            inv.to_str().unwrap(),
            "--create-things",
        ])
        .args([
            "--scenario",
            &seed_scenario(),
            "--speed",
            "600",
            "--fail",
            fail,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("fleet: playing"),
        "fleet did not start: {line}"
    );
    Proc(child)
}

fn inventory(dir: &Path, n: usize) -> PathBuf {
    let mut s = String::from("device_id,region,hw\n");
    for i in 0..n {
        s += &format!(
            "gw-{i:03},{},{}\n",
            ["north", "south", "east", "west"][i % 4],
            if (i / 4) % 2 == 0 { "x86" } else { "arm" }
        );
    }
    let p = dir.join("inventory.csv");
    std::fs::write(&p, s).unwrap();
    p
}

fn rollout(plan: &Path, inv: &Path, endpoint: &str, journal: &Path, execute: bool) -> Command {
    let mut c = rollout_command("aws-iot-jobs", plan, inv, endpoint, journal, execute);
    with_creds(&mut c);
    c
}

fn client(endpoint: &str) -> Signed {
    std::env::set_var("AWS_ACCESS_KEY_ID", AKID);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET);
    std::env::set_var("AWS_REGION", "us-east-1");
    Signed::from_env(endpoint, 1.0).unwrap()
}

/// (status, queuedAt) of every execution of a thing.
fn executions(c: &mut Signed, thing: &str) -> Vec<(String, f64)> {
    let v = c
        .call("GET", &format!("/things/{thing}/jobs"), None, "iot")
        .unwrap();
    v["executionSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let e = &s["jobExecutionSummary"];
            (
                e["status"].as_str().unwrap_or("").to_string(),
                e["queuedAt"].as_f64().unwrap_or(0.0),
            )
        })
        .collect()
}

#[test]
fn ministack_kill_and_resume_updates_every_healthy_thing_exactly_once() {
    let d = tempfile::tempdir().unwrap();
    let (_ms, endpoint) = ministack();
    let inv = inventory(d.path(), 40);
    let plan = tuned_plan(d.path());
    let _fleet = fleet(&endpoint, &inv, "gw-007,gw-021");
    let journal = d.path().join("journal.jsonl");
    let mut first = rollout(&plan, &inv, &endpoint, &journal, true)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut c = client(&endpoint);
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let started = (0..40)
            .filter(|i| !executions(&mut c, &format!("gw-{i:03}")).is_empty())
            .count();
        if started >= 10 || t0.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    first.kill().unwrap(); // SIGKILL mid-way
    first.wait().unwrap();
    let o = rollout(&plan, &inv, &endpoint, &journal, true)
        .output()
        .unwrap();
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(
        matches!(o.status.code(), Some(0) | Some(3)),
        "exit {:?}\n{out}\n{err}",
        o.status.code()
    );
    assert!(err.contains("resumed"), "{err}");
    for i in 0..40 {
        let thing = format!("gw-{i:03}");
        let ex = executions(&mut c, &thing);
        let succeeded: Vec<&(String, f64)> = ex.iter().filter(|(s, _)| s == "SUCCEEDED").collect();
        if thing == "gw-007" || thing == "gw-021" {
            assert!(succeeded.is_empty(), "{thing}: {ex:?}");
            assert!(
                (2..=4).contains(&ex.len()),
                "{thing} retried {} times, outside the plan's 4 attempts: {ex:?}",
                ex.len()
            );
            assert!(
                out.contains(&format!("failed: {thing}")),
                "{thing} is not reported: {out}"
            );
        } else {
            assert_eq!(succeeded.len(), 1, "{thing}: {ex:?}");
            let last = ex.iter().map(|(_, q)| *q).fold(f64::MIN, f64::max);
            assert_eq!(
                succeeded[0].1, last,
                "{thing} started another execution after succeeding: {ex:?}"
            );
        }
    }
    let text = std::fs::read_to_string(&journal).unwrap() + &out + &err;
    assert!(
        !text.contains(SECRET) && !text.contains(AKID),
        "a credential leaked into the journal or output"
    );
}

#[test]
fn ministack_dry_run_creates_no_job() {
    let d = tempfile::tempdir().unwrap();
    let (_ms, endpoint) = ministack();
    let inv = inventory(d.path(), 12);
    let plan = tuned_plan(d.path());
    let o = rollout(&plan, &inv, &endpoint, &d.path().join("j.jsonl"), false)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("DRY RUN"));
    let mut c = client(&endpoint);
    let jobs = c.call("GET", "/jobs", None, "iot").unwrap();
    assert_eq!(
        jobs["jobs"].as_array().map_or(0, Vec::len),
        0,
        "the dry run created a job: {jobs}"
    );
    let _: Value = jobs;
}
