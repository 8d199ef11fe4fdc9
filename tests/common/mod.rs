//! Helpers shared by the integration tests: run the binary, capture its output.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A child process killed when the test lets go of it (servers, fleets, proxies).
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The files a sweep writes that must be byte-identical however it was run.
pub const SWEEP_FILES: [&str; 6] = [
    "runs.csv",
    "summary.csv",
    "pareto.csv",
    "manifest.json",
    "cpu_bands.csv",
    "representatives.csv",
];

/// Asserts two sweep directories hold byte-identical outputs.
pub fn same_files(a: &Path, b: &Path) {
    for f in SWEEP_FILES {
        let x = std::fs::read(a.join(f)).unwrap_or_else(|e| panic!("{}: {e}", a.join(f).display()));
        let y = std::fs::read(b.join(f)).unwrap_or_else(|e| panic!("{}: {e}", b.join(f).display()));
        assert!(
            x == y,
            "{f} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stagger"))
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn data(name: &str) -> String {
    root().join("tests/data").join(name).display().to_string()
}

pub fn seed_scenario() -> String {
    root().join("scenarios/seed-200.toml").display().to_string()
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the stagger binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn json(args: &[&str]) -> serde_json::Value {
    let o = run(args);
    assert!(
        o.status.success(),
        "stagger {args:?} failed: {}",
        stderr(&o)
    );
    serde_json::from_slice(&o.stdout).expect("stdout is one JSON object")
}

pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write test file");
    p.display().to_string()
}

/// A plan straight from `sweep` + `tune --backend` on seed-200 (short sweep, for live tests):
/// only rules the backend can feed.
pub fn tuned_plan(dir: &Path, backend: &str) -> PathBuf {
    let out = dir.join("sweep");
    let plan = dir.join("plan.toml");
    let o = run(&[
        "sweep",
        &seed_scenario(),
        "--replications",
        "6",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[
        "tune",
        out.to_str().unwrap(),
        "--plan",
        plan.to_str().unwrap(),
        "--extra-replications",
        "6",
        "--backend",
        backend,
        // As rollout_command accepts at run time: neither backend reads health yet.
        "--accept-missing",
        "health",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    plan
}

/// `stagger rollout` for rehearsals: the plan at 600× speed, a 20 s poll and a journal.
pub fn rollout_command(
    backend: &str,
    plan: &Path,
    inv: &Path,
    endpoint: &str,
    journal: &Path,
    execute: bool,
) -> Command {
    let mut c = bin();
    c.args([
        "rollout",
        "--plan",
        plan.to_str().unwrap(),
        "--inventory",
        inv.to_str().unwrap(),
        "--backend",
        backend,
    ])
    .args([
        "--endpoint",
        endpoint,
        "--firmware-version",
        "4.2.0",
        "--firmware-uri",
        "https://fw.example/4.2.0.bin",
    ])
    .args([
        "--time-scale",
        "600",
        "--poll-s",
        "20",
        "--journal",
        journal.to_str().unwrap(),
    ]);
    if execute {
        // Neither backend reads pre-check facts or health yet: the tuned plan's rules that
        // need them run blind, by the operator's explicit leave.
        c.args([
            "--execute",
            "--accept-missing",
            "prechecks",
            "--accept-missing",
            "health",
        ]);
    }
    c
}

/// Starts a server that prints `listening on http://127.0.0.1:PORT` first, and returns it
/// with that address (asserted to be loopback).
pub fn spawn_listening(c: &mut Command, what: &str) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let endpoint = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{what} printed no address: {line}"))
        .to_string();
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "{what}: loopback only: {endpoint}"
    );
    (child, endpoint)
}

/// Runs a rollout command until it exits 0, at most `tries` times (re-runs of the same
/// command resume it); returns the last exit code.
pub fn exit_after_reruns(mut rollout: impl FnMut() -> Command, tries: usize) -> Option<i32> {
    let mut code = None;
    for _ in 0..tries {
        code = rollout().output().expect("rollout runs").status.code();
        if code == Some(0) {
            break;
        }
    }
    code
}
