//! The simulator against closed forms, with faults off (SPEC: failures.enabled = false).

mod common;
use common::*;

fn makespan(sets: &[&str]) -> f64 {
    let scenario = data("physics.toml");
    let mut args = vec!["simulate", scenario.as_str(), "--json"];
    for s in sets {
        args.push("--set");
        args.push(s);
    }
    json(&args)["makespan_s"].as_f64().unwrap()
}

fn close(got: f64, want: f64) {
    assert!(
        (got - want).abs() / want < 0.02,
        "got {got}, closed form {want}"
    );
}

#[test]
fn lone_download_at_its_rate_limit_takes_s_over_r() {
    // 150 MB at 10 Mbps: 150e6 * 8 / 10e6 = 120 s.
    close(makespan(&[]), 120.0);
    close(makespan(&["network.rate_limit_mbps=3"]), 400.0);
    close(
        makespan(&["firmware.size_mb=37", "firmware.chunk_mb=4"]),
        29.6,
    );
}

#[test]
fn n_equal_downloads_through_one_bottleneck_finish_at_n_s_over_c() {
    // 40 downloads of 150 MB through a 100 Mbps origin: 40 * 1200 Mbit / 100 Mbps = 480 s.
    let sets = [
        "fleet.gateways=40",
        "network.rate_limit_mbps=0",
        "network.origin_mbps=100",
    ];
    close(makespan(&sets), 480.0);
    // The same through a regional uplink instead of the origin.
    let sets = [
        "fleet.gateways=25",
        "network.rate_limit_mbps=0",
        "network.region_uplink_mbps=50",
    ];
    close(makespan(&sets), 25.0 * 1200.0 / 50.0);
}

#[test]
fn window_over_rtt_caps_a_single_flow() {
    // 64 KiB window over 200 ms: 2.62 Mbps; 1200 Mbit take 457.8 s.
    let sets = [
        "network.rate_limit_mbps=0",
        "network.tcp_window_kb=64",
        "network.origin_rtt_ms=200",
    ];
    close(makespan(&sets), 1200e6 / (64.0 * 1024.0 * 8.0 / 0.2));
}

#[test]
fn install_time_adds_after_the_download() {
    close(makespan(&["install.seconds=300"]), 420.0);
}

#[test]
fn a_regional_cache_fetches_once_then_serves_its_region() {
    // Uplink 100 Mbps: the cold fill takes 12 s; then 10 gateways share the 200 Mbps cache
    // link at their 10 Mbps limit: 120 s. Total 132 s.
    let sets = [
        "fleet.gateways=10",
        "network.region_uplink_mbps=100",
        "network.regional_caches=true",
        "network.cache_mbps=200",
    ];
    close(makespan(&sets), 132.0);
    let j = {
        let scenario = data("physics.toml");
        let mut args = vec!["simulate", scenario.as_str(), "--json"];
        for s in &sets {
            args.extend(["--set", s]);
        }
        json(&args)
    };
    assert_eq!(j["cache_fills"], 1);
}

#[test]
fn four_caches_filling_at_once_each_fetch_the_whole_image() {
    // Four regions fill their caches at once through a 100 Mbps origin: 25 Mbps each, so
    // each fill carries its 1,200 Mbit by 48 s (origin bits = regions × image); then each
    // region's gateway downloads at its 10 Mbps limit: 120 s. Total 168 s. A fill declared
    // warm on a stale event (before its rate was reshared) finishes the run early.
    let sets = [
        "fleet.gateways=4",
        "fleet.regions=[\"a\", \"b\", \"c\", \"d\"]",
        "network.origin_mbps=100",
        "network.regional_caches=true",
        "network.cache_mbps=100000",
    ];
    close(makespan(&sets), 168.0);
}

#[test]
fn the_concurrency_limit_serialises_into_rounds() {
    // 4 gateways, 2 service slots, queue of 2: two rounds of 120 s.
    let sets = [
        "fleet.gateways=4",
        "service.max_concurrent_ops=2",
        "service.queue_depth=2",
    ];
    close(makespan(&sets), 240.0);
}
