//! The aws-iot-jobs backend against MiniStack, a real AWS emulator (installed by
//! scripts/test.sh into target/ministack-venv): kill -9 and resume, and dry runs.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use stagger::live::aws::Signed;

const AKID: &str = "AKIARECOGNISABLE7Q2X";
const SECRET: &str = "secret-RECOGNISABLE-aws-5k8z";

fn ministack_bin() -> PathBuf {
    std::env::var("STAGGER_MINISTACK")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target/ministack-venv/bin/ministack"))
}

fn with_creds(c: &mut Command) -> &mut Command {
    c.env("AWS_ACCESS_KEY_ID", AKID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_SESSION_TOKEN")
}

/// MiniStack on a free loopback port, behind the SigV4-verifying proxy (botocore's signer):
/// every AWS call of these tests must verify, as it must on AWS.
struct Aws {
    _ministack: Proc,
    _proxy: Proc,
    /// The proxy: what stagger's clients talk to.
    endpoint: String,
    /// MiniStack itself: the emulated fleet's devices talk to it directly (they are not
    /// under test, and going through the verifier would slow their pickups).
    upstream: String,
}

impl Aws {
    fn sigv4_stats(&self) -> Value {
        let body = ureq::get(&format!("{}/_sigv4/stats", self.endpoint))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }

    /// Every request so far verified under botocore's signer.
    fn assert_all_verified(&self) {
        let s = self.sigv4_stats();
        assert_eq!(s["rejected"], 0, "requests failed SigV4 verification: {s}");
        assert_eq!(
            s["invalid"],
            serde_json::json!([]),
            "CreateJob bodies botocore's model rejects: {s}"
        );
        assert!(s["verified"].as_u64().unwrap() > 0, "{s}");
    }
}

fn ministack() -> Aws {
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
    let upstream = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    while ureq::get(&format!("{upstream}/_ministack/health"))
        .call()
        .is_err()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "MiniStack did not become healthy on {upstream}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let python = bin.with_file_name("python");
    let mut c = Command::new(python);
    with_creds(&mut c);
    c.arg(root().join("tests/support/sigv4_proxy.py"))
        .arg(&upstream);
    let (child, endpoint) = spawn_listening(&mut c, "the SigV4 proxy");
    Aws {
        _ministack: guard,
        _proxy: Proc(child),
        endpoint,
        upstream,
    }
}

fn fleet(endpoint: &str, inv: &Path, fail: &str) -> Proc {
    fleet_with(endpoint, inv, fail, &[])
}

fn fleet_with(endpoint: &str, inv: &Path, fail: &str, sets: &[&str]) -> Proc {
    fleet_args(endpoint, inv, fail, sets, &[])
}

fn fleet_args(endpoint: &str, inv: &Path, fail: &str, sets: &[&str], extra: &[&str]) -> Proc {
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
            "--set",
            "failures.enabled=false",
        ])
        .args(sets.iter().flat_map(|kv| ["--set", kv]))
        .args(extra)
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

/// (status, queuedAt, lastUpdatedAt, begun) of every execution of a thing, oldest first.
fn executions(c: &mut Signed, thing: &str) -> Vec<(String, f64, f64, bool)> {
    let v = c
        .call("GET", &format!("/things/{thing}/jobs"), None, "iot")
        .unwrap();
    let mut ex: Vec<(String, f64, f64, bool)> = v["executionSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let e = &s["jobExecutionSummary"];
            (
                e["status"].as_str().unwrap_or("").to_string(),
                e["queuedAt"].as_f64().unwrap_or(0.0),
                e["lastUpdatedAt"].as_f64().unwrap_or(0.0),
                e.get("startedAt").is_some_and(|t| !t.is_null()),
            )
        })
        .collect();
    ex.sort_by(|a, b| a.1.total_cmp(&b.1));
    ex
}

fn plan_limits(plan: &Path) -> usize {
    let (_, policy) = stagger::tune::plan::PlanFile::load(plan.to_str().unwrap()).unwrap();
    policy.retry.max_attempts as usize
}

/// Judged from the platform: each healthy thing began exactly one execution and it
/// succeeded (others were withdrawn before the device began them); failing ones stay
/// within the budget; no execution was queued while another of the same thing was open.
fn assert_platform_safe(c: &mut Signed, n: usize, failing: &[&str], plan: &Path) {
    let max_attempts = plan_limits(plan);
    for i in 0..n {
        let thing = format!("gw-{i:03}");
        let ex = executions(c, &thing);
        for w in ex.windows(2) {
            assert!(
                w[1].1 >= w[0].2 && !matches!(w[0].0.as_str(), "QUEUED" | "IN_PROGRESS"),
                "{thing}: an execution overlapped an open one: {ex:?}"
            );
        }
        if failing.contains(&thing.as_str()) {
            assert!(
                (1..=max_attempts).contains(&ex.len()) && ex.iter().all(|e| e.0 != "SUCCEEDED"),
                "{thing}: {} executions against {max_attempts} attempts: {ex:?}",
                ex.len()
            );
        } else {
            let begun: Vec<_> = ex.iter().filter(|e| e.3).collect();
            assert_eq!(begun.len(), 1, "{thing}: {ex:?}");
            assert_eq!(begun[0].0, "SUCCEEDED", "{thing}: {ex:?}");
            assert!(
                ex.iter().all(|e| e.3 || e.0 == "CANCELED"),
                "{thing}: {ex:?}"
            );
        }
    }
}

#[test]
fn ministack_killed_at_ten_moments_then_finished_updates_every_thing_once() {
    let d = tempfile::tempdir().unwrap();
    let aws = ministack();
    let endpoint = aws.endpoint.clone();
    let inv = inventory(d.path(), 40);
    let plan = tuned_plan(d.path(), "aws-iot-jobs");
    let failing = ["gw-007", "gw-021"];
    let _fleet = fleet(&aws.upstream, &inv, "gw-007,gw-021");
    let journal = d.path().join("journal.jsonl");
    let mut c = client(&endpoint);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..10 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut run = rollout(&plan, &inv, &endpoint, &journal, true)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300 + x % 1500));
        if run.try_wait().unwrap().is_none() {
            run.kill().unwrap(); // SIGKILL mid-way
        }
        run.wait().unwrap();
    }
    let o = rollout(&plan, &inv, &endpoint, &journal, true)
        .output()
        .unwrap();
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(err.contains("resumed"), "{err}");
    for thing in failing {
        assert!(
            out.contains(&format!("failed: {thing}")),
            "{thing} is not reported: {out}"
        );
    }
    assert_platform_safe(&mut c, 40, &failing, &plan);
    aws.assert_all_verified();
    let text = std::fs::read_to_string(&journal).unwrap() + &out + &err;
    assert!(
        !text.contains(SECRET) && !text.contains(AKID),
        "a credential leaked into the journal or output"
    );
}

fn fault_proxy(upstream: &str, faults: &str) -> (Proc, String) {
    let mut c = bin();
    c.args([
        "emulate",
        "fault-proxy",
        "--upstream",
        upstream,
        "--faults",
        faults,
        "--seed",
        "7",
    ]);
    let (child, endpoint) = spawn_listening(&mut c, "the fault proxy");
    (Proc(child), endpoint)
}

#[test]
fn ministack_writes_answered_500_or_too_late_lose_and_double_nothing() {
    let d = tempfile::tempdir().unwrap();
    let aws = ministack();
    let endpoint = aws.endpoint.clone();
    let inv = inventory(d.path(), 40);
    // Small batches, so that many jobs are created through the flaky proxy.
    let tuned = std::fs::read_to_string(tuned_plan(d.path(), "aws-iot-jobs")).unwrap();
    // The tuned plan with its policy swapped, its embedded scenario kept.
    let cut = tuned.find("[policy]").unwrap();
    let embedded = tuned.find("\n[embedded_scenario").unwrap();
    let plan = d.path().join("small-batches.toml");
    std::fs::write(
        &plan,
        format!(
            "{}[policy]\nfamily = \"pipelined\"\nbatch_size = 2\nmax_concurrent = 12\ngate = {{ fraction = 0.5, state = \"final\" }}\nretry = {{ max_attempts = 4, base_s = 60 }}\n{}",
            &tuned[..cut],
            &tuned[embedded..]
        ),
    )
    .unwrap();
    let _fleet = fleet(&aws.upstream, &inv, "");
    let (_proxy, flaky) = fault_proxy(&endpoint, "post500=0.4,postslow=0.2,postreset=0.1");
    let journal = d.path().join("journal.jsonl");
    let code = exit_after_reruns(|| rollout(&plan, &inv, &flaky, &journal, true), 3);
    assert_eq!(code, Some(0));
    let stats: Value = serde_json::from_str(
        &ureq::get(&format!("{flaky}/_proxy/stats"))
            .call()
            .unwrap()
            .into_string()
            .unwrap(),
    )
    .unwrap();
    let injected: u64 = stats["injected"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(injected >= 6, "too few faults to mean anything: {stats}");
    let mut c = client(&endpoint);
    assert_platform_safe(&mut c, 40, &[], &plan);
    aws.assert_all_verified();
}

#[test]
fn ministack_dry_run_creates_no_job() {
    let d = tempfile::tempdir().unwrap();
    let aws = ministack();
    let endpoint = aws.endpoint.clone();
    let inv = inventory(d.path(), 12);
    let plan = tuned_plan(d.path(), "aws-iot-jobs");
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
    aws.assert_all_verified();
}

/// Signs a GET over `host` and `content-type` but sends no content-type: the bug that made
/// every GET of the first version fail on real AWS.
fn signed_over_an_unsent_header(url: &str) -> Vec<(String, String)> {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let identity = Credentials::new(AKID, SECRET, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("iot")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let host = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    let claimed = [("host", host), ("content-type", "application/json")];
    let req =
        SignableRequest::new("GET", url, claimed.into_iter(), SignableBody::Bytes(b"")).unwrap();
    let (instructions, _) = sign(req, &params).unwrap().into_parts();
    instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_verifying_proxy_can_fail_and_our_signer_passes_it() {
    let aws = ministack();
    let mut c = client(&aws.endpoint);
    c.call("GET", "/jobs", None, "iot").unwrap();
    c.call("POST", "/things/probe", Some(&serde_json::json!({})), "iot")
        .unwrap();
    aws.assert_all_verified();
    let url = format!("{}/jobs", aws.endpoint);
    let mut req = ureq::get(&url);
    for (k, v) in signed_over_an_unsent_header(&url) {
        req = req.set(&k, &v);
    }
    match req.call() {
        Err(ureq::Error::Status(403, r)) => {
            let body = r.into_string().unwrap();
            assert!(body.contains("does not send"), "{body}");
        }
        other => panic!("a signature over an unsent header was accepted: {other:?}"),
    }
    assert_eq!(aws.sigv4_stats()["rejected"], 1);
}

fn set_battery(c: &mut Signed, thing: &str, pct: f64) {
    let body = serde_json::json!({ "state": { "reported": { "battery_pct": pct } } });
    c.call(
        "POST",
        &format!("/things/{thing}/shadow"),
        Some(&body),
        "iotdata",
    )
    .unwrap();
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn ministack_shadows_hold_back_low_battery_things_until_they_charge() {
    let d = tempfile::tempdir().unwrap();
    let aws = ministack();
    let endpoint = aws.endpoint.clone();
    let inv = inventory(d.path(), 20);
    let plan = tuned_plan(d.path(), "aws-iot-jobs");
    assert!(
        std::fs::read_to_string(&plan)
            .unwrap()
            .contains("min_battery_pct = 50"),
        "the plan checks batteries"
    );
    let _fleet = fleet(&aws.upstream, &inv, "");
    let mut c = client(&endpoint);
    let low = ["gw-001", "gw-002", "gw-003"];
    // Each thing's agent reports its battery every 150 plan seconds (0.25 s at 600x), as
    // a live agent must: a shadow nobody refreshes is an offline thing's.
    let charged = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let reporter = {
        let (charged, stop, endpoint) = (charged.clone(), stop.clone(), endpoint.clone());
        std::thread::spawn(move || {
            let mut c = client(&endpoint);
            while !stop.load(Ordering::SeqCst) {
                let charged = charged.load(Ordering::SeqCst);
                // gw-019's agent went silent after its first report: its full battery is
                // old news, and the thing counts as offline.
                for i in 0..19 {
                    let thing = format!("gw-{i:03}");
                    let pct = if low.contains(&thing.as_str()) && !charged {
                        10.0
                    } else {
                        90.0
                    };
                    set_battery(&mut c, &thing, pct);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    for i in 0..20 {
        let thing = format!("gw-{i:03}");
        let pct = if low.contains(&thing.as_str()) {
            10.0
        } else {
            90.0
        };
        set_battery(&mut c, &thing, pct);
    }
    // gw-019's only report must be stale (older than 1,200 plan seconds, 2 s here, on a
    // clock of whole seconds) by the time anything is checked, however fast the rollout goes.
    std::thread::sleep(Duration::from_secs(4));
    let journal = d.path().join("j.jsonl");
    let run = rollout(&plan, &inv, &endpoint, &journal, true)
        .args(["--facts-max-age-s", "1200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until most of the fleet is done; the three low batteries must not have started.
    let t0 = Instant::now();
    loop {
        let done = (0..20)
            .filter(|i| {
                executions(&mut c, &format!("gw-{i:03}"))
                    .iter()
                    .any(|e| e.0 == "SUCCEEDED")
            })
            .count();
        if done >= 12 || t0.elapsed() > Duration::from_secs(40) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    for thing in low {
        assert!(
            executions(&mut c, thing).is_empty(),
            "{thing} started while its shadow said 10% battery"
        );
    }
    let charged_at = now_s();
    charged.store(true, Ordering::SeqCst);
    let o = run.wait_with_output().unwrap();
    stop.store(true, Ordering::SeqCst);
    reporter.join().unwrap();
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.starts_with("failed: gw-019") && l.contains("NotReady")),
        "{}",
        stdout(&o)
    );
    assert!(
        executions(&mut c, "gw-019").is_empty(),
        "gw-019 was started on a shadow nobody had refreshed"
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for thing in low {
        let ex = executions(&mut c, thing);
        assert_eq!(ex.len(), 1, "{thing}: {ex:?}");
        assert_eq!(ex[0].0, "SUCCEEDED", "{thing}: {ex:?}");
        assert!(
            ex[0].1 + 1.0 >= charged_at,
            "{thing} was queued at {} before it charged at {charged_at}",
            ex[0].1
        );
    }
    aws.assert_all_verified();
}

#[test]
fn ministack_a_bad_release_halts_at_the_defect_rule() {
    let d = tempfile::tempdir().unwrap();
    let aws = ministack();
    let endpoint = aws.endpoint.clone();
    let inv = inventory(d.path(), 30);
    let plan = tuned_plan(d.path(), "aws-iot-jobs");
    let (plan_file, _) = stagger::tune::plan::PlanFile::load(plan.to_str().unwrap()).unwrap();
    let _fleet = fleet_with(&aws.upstream, &inv, "", &["firmware.defect_rate=1"]);
    let journal = d.path().join("j.jsonl");
    let o = rollout(&plan, &inv, &endpoint, &journal, true)
        .output()
        .unwrap();
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(3), "{out}\n{err}");
    assert!(err.contains("defect"), "{err}");
    let mut c = client(&endpoint);
    let installed = (0..30)
        .filter(|i| {
            executions(&mut c, &format!("gw-{i:03}"))
                .iter()
                .any(|e| e.0 == "FAILED")
        })
        .count();
    let predicted = plan_file.predicted.blast_radius.ci95_hi.ceil() as usize;
    assert!(
        (1..=predicted).contains(&installed),
        "{installed} gateways installed the bad release; the plan predicted at most {predicted}"
    );
    // Halted stays halted: a re-run creates no job.
    let jobs = |c: &mut Signed| {
        c.call("GET", "/jobs", None, "iot").unwrap()["jobs"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let before = jobs(&mut c);
    let o = rollout(&plan, &inv, &endpoint, &journal, true)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(
        jobs(&mut c),
        before,
        "a re-run of a halted rollout created jobs"
    );
    aws.assert_all_verified();
}

#[test]
fn ministack_a_thing_that_never_plays_ends_unreachable_and_the_rollout_ends() {
    let d = tempfile::tempdir().unwrap();
    let aws = ministack();
    let endpoint = aws.endpoint.clone();
    let inv = inventory(d.path(), 20);
    let plan = tuned_plan(d.path(), "aws-iot-jobs");
    // The plan gives a device 30 minutes to pick its job up.
    let text = std::fs::read_to_string(&plan).unwrap();
    let with_timeout = text.replacen("\n[policy]\n", "\n[policy]\nqueue_timeout_s = 1800.0\n", 1);
    assert_ne!(text, with_timeout);
    std::fs::write(&plan, with_timeout).unwrap();
    let (plan_file, _) = stagger::tune::plan::PlanFile::load(plan.to_str().unwrap()).unwrap();
    let predicted_s = plan_file.predicted.makespan_s.mean;
    let _fleet = fleet_args(&aws.upstream, &inv, "", &[], &["--offline", "gw-013"]);
    let journal = d.path().join("j.jsonl");
    let t0 = Instant::now();
    let mut run = rollout(&plan, &inv, &endpoint, &journal, true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Plan time is wall time × 600; give up (and fail) a little after 3× the prediction.
    let limit = Duration::from_secs_f64(3.0 * predicted_s / 600.0);
    while run.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit + Duration::from_secs(15) {
            let _ = run.kill();
            panic!("the rollout was still running after 3× its predicted makespan");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let plan_time_s = t0.elapsed().as_secs_f64() * 600.0;
    let o = run.wait_with_output().unwrap();
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(matches!(o.status.code(), Some(0 | 3)), "{out}\n{err}");
    assert!(
        plan_time_s <= 3.0 * predicted_s,
        "ended after {plan_time_s:.0} s of plan time; predicted {predicted_s:.0} s"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("failed: gw-013") && l.contains("Unreachable")),
        "{out}"
    );
    // From the platform's side: nothing of gw-013 is left queued, every execution of it
    // was withdrawn, and everyone else was updated exactly once.
    let mut c = client(&endpoint);
    let ex = executions(&mut c, "gw-013");
    assert!(
        !ex.is_empty() && ex.iter().all(|e| e.0 == "CANCELED"),
        "gw-013: {ex:?}"
    );
    assert_platform_safe(&mut c, 20, &["gw-013"], &plan);
    aws.assert_all_verified();
}

/// (success rate, makespan in seconds) of the plan simulated on `n` gateways for `seeds`.
fn simulated(plan: &Path, n: usize, seeds: std::ops::Range<u64>) -> Vec<(f64, f64)> {
    seeds
        .map(|seed| {
            let o = bin()
                .args([
                    "simulate",
                    &seed_scenario(),
                    "--plan",
                    plan.to_str().unwrap(),
                ])
                .args(["--seed", &seed.to_string(), "--json"])
                .args(["--set", &format!("fleet.gateways={n}")])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", stderr(&o));
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            (
                v["success_rate"].as_f64().unwrap(),
                v["makespan_s"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// A rehearsal meets the physics its prediction came from: the emulated fleet is the
/// simulator's world (shared links, installs, faults, batteries in shadows) in scaled time.
#[test]
fn ministack_rehearsals_of_the_tuned_plan_agree_with_its_prediction() {
    const N: usize = 60;
    let d = tempfile::tempdir().unwrap();
    let plan = tuned_plan(d.path(), "aws-iot-jobs");
    let predicted = simulated(&plan, N, 1..41);
    let band = |i: usize| {
        let v: Vec<f64> = predicted
            .iter()
            .map(|p| if i == 0 { p.0 } else { p.1 })
            .collect();
        (quantile(v.clone(), 0.05), quantile(v, 0.95))
    };
    let (success_band, makespan_band) = (band(0), band(1));
    let mut rehearsed = Vec::new();
    // Seeds the prediction never saw.
    for seed in [101u64, 102, 103] {
        let aws = ministack();
        let inv = inventory(d.path(), N);
        let mut c = bin();
        with_creds(&mut c)
            .args(["emulate", "aws-fleet", "--endpoint", &aws.upstream])
            .args(["--inventory", inv.to_str().unwrap(), "--create-things"])
            .args(["--scenario", &seed_scenario(), "--speed", "600"])
            .args(["--seed", &seed.to_string(), "--publish-facts"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("fleet: playing"), "{line}");
        let _fleet = Proc(child);
        let journal = d.path().join(format!("j{seed}.jsonl"));
        let o = rollout(&plan, &inv, &aws.endpoint, &journal, true)
            .output()
            .unwrap();
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
        let field = |prefix: &str| -> f64 {
            let l = out.lines().find(|l| l.starts_with(prefix)).unwrap();
            l[prefix.len()..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let success = field("succeeded: ") / N as f64;
        rehearsed.push((success, field("plan time: ")));
        aws.assert_all_verified();
    }
    let median = |i: usize| {
        let v: Vec<f64> = rehearsed
            .iter()
            .map(|r| if i == 0 { r.0 } else { r.1 })
            .collect();
        quantile(v, 0.5)
    };
    let (success, makespan) = (median(0), median(1));
    eprintln!(
        "rehearsed {rehearsed:?}; predicted success {success_band:?}, makespan {makespan_band:?}"
    );
    assert!(
        (success_band.0..=success_band.1).contains(&success),
        "rehearsed success {success} outside the prediction's p05–p95 {success_band:?} ({rehearsed:?})"
    );
    assert!(
        (makespan_band.0..=makespan_band.1).contains(&makespan),
        "rehearsed makespan {makespan:.0} s outside the prediction's p05–p95 {makespan_band:?} ({rehearsed:?})"
    );
}

#[test]
fn ministack_preflight_finds_a_missing_thing_through_the_verifier() {
    let d = tempfile::tempdir().unwrap();
    let aws = ministack();
    let inv = inventory(d.path(), 4);
    let plan = tuned_plan(d.path(), "aws-iot-jobs");
    let mut c = client(&aws.endpoint);
    for i in 0..3 {
        c.call(
            "POST",
            &format!("/things/gw-{i:03}"),
            Some(&serde_json::json!({})),
            "iot",
        )
        .unwrap();
    }
    let journal = d.path().join("j.jsonl");
    let mut cmd = bin();
    with_creds(&mut cmd)
        .args(["rollout", "--preflight", "--backend", "aws-iot-jobs"])
        .args([
            "--plan",
            plan.to_str().unwrap(),
            "--inventory",
            inv.to_str().unwrap(),
        ])
        .args([
            "--endpoint",
            &aws.endpoint,
            "--journal",
            journal.to_str().unwrap(),
        ])
        .args([
            "--firmware-version",
            "4.2.0",
            "--firmware-uri",
            "http://127.0.0.1:9/fw.bin",
        ]);
    let o = cmd.output().unwrap();
    let out = stdout(&o);
    assert!(
        matches!(o.status.code(), Some(1 | 2)),
        "{out}{}",
        stderr(&o)
    );
    assert!(out.contains("ok     credentials and endpoint"), "{out}");
    assert!(out.contains("1 of 4 not on the platform: gw-003"), "{out}");
    assert!(out.contains("FAILED firmware URI"), "{out}");
    aws.assert_all_verified();
}

/// The tuned plan with maintenance windows: north and east 01:00–05:00 at UTC+1, south and
/// west 02:00–05:00 at UTC−5, and a lead of a whole day so that nothing waits for real time.
fn windowed_plan(dir: &Path, regions: &str) -> PathBuf {
    let plan = tuned_plan(dir, "aws-iot-jobs");
    let mut text = std::fs::read_to_string(&plan).unwrap();
    text += &format!(
        "\n[policy.maintenance]\nlead_h = 24.0\n\n[[policy.maintenance.windows]]\nregions = {regions}\nstart = \"01:00\"\nutc_offset_h = 1.0\nduration_h = 4.0\n\n[[policy.maintenance.windows]]\nregions = [\"south\", \"west\"]\nstart = \"02:00\"\nutc_offset_h = -5.0\nduration_h = 3.0\n"
    );
    let p = dir.join(format!("windowed-{}.toml", regions.len()));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn ministack_maintenance_windows_ride_on_each_job_as_aws_models_them() {
    let d = tempfile::tempdir().unwrap();
    let aws = ministack();
    let inv = inventory(d.path(), 8);
    let plan = windowed_plan(d.path(), "[\"north\", \"east\"]");
    // The dry run shows the windows, in UTC.
    let o = rollout(
        &plan,
        &inv,
        &aws.endpoint,
        &d.path().join("dry.jsonl"),
        false,
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("maintenance window north, east: 00:00–04:00 UTC"),
        "{out}"
    );
    assert!(
        out.contains("maintenance window south, west: 07:00–10:00 UTC"),
        "{out}"
    );
    // A window for a region the inventory does not have protects nobody: refused.
    let mars = windowed_plan(d.path(), "[\"mars\"]");
    let o = rollout(&mars, &inv, &aws.endpoint, &d.path().join("m.jsonl"), false)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("`mars`"), "{}", stderr(&o));
    // Executed: each job carries its things' windows, and no job mixes window groups.
    let _fleet = fleet(&aws.upstream, &inv, "");
    let o = rollout(&plan, &inv, &aws.endpoint, &d.path().join("j.jsonl"), true)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    aws.assert_all_verified();
    let jobs = aws.sigv4_stats()["scheduling"].as_array().unwrap().clone();
    assert!(!jobs.is_empty());
    let region = |thing: &str| {
        let i: usize = thing.trim_start_matches("gw-").parse().unwrap();
        ["north", "south", "east", "west"][i % 4]
    };
    for job in &jobs {
        let things: Vec<&str> = job["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let windows = &job["schedulingConfig"]["maintenanceWindows"];
        let want = if things.iter().all(|t| matches!(region(t), "north" | "east")) {
            serde_json::json!([{ "startTime": "cron(0 0 * * ? *)", "durationInMinutes": 240 }])
        } else {
            assert!(
                things.iter().all(|t| matches!(region(t), "south" | "west")),
                "a job mixes window groups: {job}"
            );
            serde_json::json!([{ "startTime": "cron(0 7 * * ? *)", "durationInMinutes": 180 }])
        };
        assert_eq!(windows, &want, "{job}");
    }
}
