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

/// M/M/c first come, first served: the probability that an arrival waits (Erlang C).
fn erlang_c(c: u32, offered: f64) -> f64 {
    let rho = offered / f64::from(c);
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..c {
        term *= offered / f64::from(k);
        sum += term;
    }
    let last = term * offered / f64::from(c) / (1.0 - rho);
    last / (sum + last)
}

#[test]
fn the_service_queue_meets_erlang_c_under_poisson_arrivals_and_exponential_costs() {
    use rand::Rng;
    use stagger::sim::rng::{stream, Purpose};
    use stagger::time::Time;
    use stagger::world::service::Service;

    let base = stagger::scenario::load(&data("physics.toml"), &[]).unwrap();
    let mean_cost = 10.0; // seconds of one core per request
    for (cores, rho) in [(1u32, 0.7), (2, 0.8), (4, 0.75)] {
        let cfg = stagger::scenario::Service {
            cores,
            cpu_base_pct: 0.0,
            base_latency_ms: 0.0,
            heartbeat_ms: 0.0,
            ..base.service.clone()
        };
        let mut service = Service::new(&cfg, 5.0, stream(7, Purpose::Service, 0));
        let mut arrivals = stream(7, Purpose::Luck, u64::from(cores));
        let lambda = rho * f64::from(cores) / mean_cost;
        let (mut t, mut next_tick) = (0.0_f64, 10.0);
        let (mut sum, mut n) = (0.0, 0u32);
        let (mut cpu, mut ticks) = (0.0, 0u32);
        while n < 400_000 {
            t += -(1.0 - arrivals.random::<f64>()).ln() / lambda;
            while next_tick <= t {
                service.tick(Time::from_secs(next_tick), 10.0, 0, 0);
                cpu += service.cpu_pct;
                ticks += 1;
                next_tick += 10.0;
            }
            sum += service.request_cost(Time::from_secs(t), mean_cost);
            n += 1;
        }
        let got = sum / f64::from(n);
        let offered = lambda * mean_cost;
        let want = erlang_c(cores, offered) * mean_cost / (f64::from(cores) - offered) + mean_cost;
        assert!(
            (got - want).abs() / want < 0.03,
            "{cores} cores at rho {rho}: mean response {got:.2} s, Erlang C {want:.2} s"
        );
        let utilisation = cpu / f64::from(ticks) / 100.0;
        assert!(
            (utilisation - rho).abs() / rho < 0.03,
            "{cores} cores: utilisation {utilisation:.3}, offered {rho}"
        );
    }
}

#[test]
fn a_reconnect_storm_recovers_with_backoff_and_jitter_and_stays_collapsed_without() {
    use stagger::time::Time;
    use stagger::world::{Event, World};

    // The same spike for both fleets: every session of 1,000 gateways drops at once (a broker
    // restart) on seed-200's service, with no rollout running. Only the agents differ.
    let run = |reconnect: &str| {
        let s = stagger::scenario::load(
            concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/seed-200.toml"),
            &[
                "fleet.gateways=1000".to_string(),
                "failures.link_disconnects_per_h=0".to_string(),
                format!("agent.reconnect={reconnect}"),
            ],
        )
        .unwrap();
        let mut world = World::new(&s, 1);
        let mut obs = Vec::new();
        let spike = Time::from_secs(600.0);
        let end = Time::from_secs(3.0 * 3600.0);
        let mut spiked = false;
        while let Some((t, e)) = world.pop() {
            if t > end {
                break;
            }
            if !spiked && t >= spike {
                world.drop_all_sessions(t, &mut obs);
                spiked = true;
            }
            match e {
                Event::Tick => world.on_tick(t),
                other => world.handle(t, other, &mut obs),
            }
            obs.clear();
        }
        (world.offline(), world.service.cpu_pct)
    };
    let (offline, cpu) = run("{ base_s = 10, factor = 2, cap_s = 300, jitter = 0.5 }");
    assert!(
        offline == 0 && cpu < 30.0,
        "with backoff and jitter the fleet is back: {offline} offline, CPU {cpu:.0}%"
    );
    let (offline, cpu) = run("{ base_s = 10, factor = 1, cap_s = 10, jitter = 0 }");
    assert!(
        offline > 900 && cpu > 99.0,
        "a fixed, synchronised retry keeps the service collapsed two hours on: {offline} offline, CPU {cpu:.0}%"
    );
}

#[test]
fn every_link_carries_exactly_its_share_of_bytes_with_four_regional_caches() {
    use stagger::engine::Command;
    use stagger::time::Time;
    use stagger::world::{Event, World};

    // 12 gateways in four regions behind caches: the origin carries the image once per region,
    // each uplink once (its cache's fill), each cache once per gateway of its region.
    let s = stagger::scenario::load(
        &data("physics.toml"),
        &[
            "fleet.gateways=12".into(),
            "fleet.regions=[\"a\", \"b\", \"c\", \"d\"]".into(),
            "network.origin_mbps=100".into(),
            "network.regional_caches=true".into(),
            "network.cache_mbps=30".into(),
        ],
    )
    .unwrap();
    let mut world = World::new(&s, 1);
    let mut obs = Vec::new();
    for gw in 0..12 {
        world.apply(Time::ZERO, &Command::Start { gw, attempt: 1 }, &mut obs);
    }
    while let Some((t, e)) = world.pop() {
        if t > Time::from_secs(3600.0) {
            break;
        }
        match e {
            Event::Tick => world.on_tick(t),
            other => world.handle(t, other, &mut obs),
        }
    }
    let image = 150e6 * 8.0;
    let (origin, uplinks, caches) = world.link_bits();
    let same = |got: f64, want: f64| (got - want).abs() <= want * 1e-9;
    assert!(same(origin, 4.0 * image), "origin carried {origin} bits");
    for (r, (up, cache)) in uplinks.iter().zip(&caches).enumerate() {
        assert!(same(*up, image), "region {r}: uplink carried {up} bits");
        assert!(
            same(*cache, 3.0 * image),
            "region {r}: cache carried {cache} bits"
        );
    }
}
