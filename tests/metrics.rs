//! Prometheus metrics of a live rollout, scraped by a real Prometheus server (Debian's
//! `prometheus`, installed by scripts/test.sh) from a rehearsal against the Watson double,
//! and read back with PromQL.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "metrics-key";
const TOKEN: &str = "metrics-token";

fn prometheus_bin() -> PathBuf {
    std::env::var("STAGGER_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/usr/bin/prometheus"))
}

/// A Prometheus server on loopback scraping `target` every second.
fn prometheus(dir: &Path, target: &str) -> (Proc, String) {
    let bin = prometheus_bin();
    assert!(
        bin.exists(),
        "Prometheus is needed: run scripts/test.sh (it installs Debian's package), or set STAGGER_PROMETHEUS"
    );
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: stagger\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let child = Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = Proc(child);
    let t0 = Instant::now();
    while ureq::get(&format!("{url}/-/ready")).call().is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "Prometheus never became ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Targets reach the scrape loop a few seconds after start: wait for its first try.
    while !scraped_once(&url) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "Prometheus never scraped"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (guard, url)
}

fn scraped_once(url: &str) -> bool {
    let Ok(r) = ureq::get(&format!("{url}/api/v1/targets")).call() else {
        return false;
    };
    let v: serde_json::Value =
        serde_json::from_str(&r.into_string().unwrap_or_default()).unwrap_or_default();
    v["data"]["activeTargets"][0]["lastScrape"]
        .as_str()
        .is_some_and(|t| !t.starts_with("0001"))
}

/// The value of a PromQL instant query with one result, if any.
fn query(url: &str, q: &str) -> Option<f64> {
    let body = ureq::get(&format!("{url}/api/v1/query"))
        .query("query", q)
        .call()
        .ok()?
        .into_string()
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn a_real_prometheus_scrapes_a_rehearsal_and_answers_promql() {
    let d = tempfile::tempdir().unwrap();
    let mut inv = String::from("device_id,type_id,region,hw\n");
    for i in 0..24 {
        inv += &format!("gw-{i:03},gateway,r{},x86\n", i % 3);
    }
    let inv_path = d.path().join("inventory.csv");
    std::fs::write(&inv_path, inv).unwrap();
    let plan = tuned_plan(d.path(), "watson-iot");
    let mut c = bin();
    c.args([
        "emulate",
        "watson",
        "--inventory",
        inv_path.to_str().unwrap(),
    ])
    .args(["--scenario", &seed_scenario(), "--speed", "600"])
    .args(["--set", "failures.enabled=false"])
    .env("WIOTP_API_KEY", KEY)
    .env("WIOTP_API_TOKEN", TOKEN);
    let (emu, endpoint) = spawn_listening(&mut c, "the Watson double");
    let _emu = Proc(emu);

    let metrics_port = free_port();
    let target = format!("127.0.0.1:{metrics_port}");
    let (_prom, url) = prometheus(d.path(), &target);
    let journal = d.path().join("j.jsonl");
    let started = Instant::now();
    let o = rollout_command("watson-iot", &plan, &inv_path, &endpoint, &journal, true)
        .args(["--metrics-addr", &target])
        .env("WIOTP_API_KEY", KEY)
        .env("WIOTP_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    let rollout_took = started.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("metrics on http://{target}/metrics")));

    // What Prometheus scraped while the rollout ran, read back with PromQL.
    let t0 = Instant::now();
    let window = "[10m]";
    let succeeded = loop {
        let v = query(
            &url,
            &format!("max_over_time(stagger_gateways{{state=\"succeeded\"}}{window})"),
        );
        if v.is_some_and(|v| v > 0.0) || t0.elapsed() > Duration::from_secs(20) {
            break v;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let up = query(&url, &format!("sum_over_time(up{window})"));
    assert!(
        succeeded.is_some_and(|v| (1.0..=24.0).contains(&v)),
        "succeeded gateways as scraped: {succeeded:?} ({up:?} good scrapes in a rollout of {rollout_took:?})"
    );
    let attempts = query(
        &url,
        &format!("max_over_time(stagger_attempts_total{window})"),
    );
    assert!(attempts.is_some_and(|v| v >= 1.0), "{attempts:?}");
    let polls = query(
        &url,
        &format!(
            "max_over_time(stagger_backend_requests_total{{op=\"status\",code=\"ok\"}}{window})"
        ),
    );
    assert!(polls.is_some_and(|v| v >= 1.0), "{polls:?}");
    let observed = query(
        &url,
        &format!("max_over_time(stagger_backend_request_seconds_count{{op=\"submit\"}}{window})"),
    );
    assert!(observed.is_some_and(|v| v >= 1.0), "{observed:?}");
    let halted = query(&url, &format!("max_over_time(stagger_halted{window})"));
    assert_eq!(halted, Some(0.0));
}
