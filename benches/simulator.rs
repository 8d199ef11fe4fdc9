//! Speed of the simulator's parts and of whole runs and sweeps (criterion). Targets live here
//! and in the README's Performance section, never in timed tests.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use stagger::scenario;
use stagger::sim::queue::EventQueue;
use stagger::simulate::{self, Options};
use stagger::sweep::{self, run::Shard};
use stagger::time::Time;
use stagger::world::network::{Network, NO_LINK};

fn seed_200() -> scenario::Scenario {
    scenario::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/seed-200.toml"),
        &[],
    )
    .expect("seed-200 loads")
}

/// Whole 200-gateway runs; throughput in events so criterion reports events per second.
fn runs(c: &mut Criterion) {
    let s = seed_200();
    let mut g = c.benchmark_group("seed-200 run");
    g.sample_size(20);
    for name in ["bulk", "seed-staged", "backoff"] {
        let p = s.policy(name).unwrap().clone();
        let events = simulate::run(&s, name, &p, 1, &Options::default())
            .summary
            .events;
        g.throughput(Throughput::Elements(events));
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    simulate::run(&s, name, &p, 1, &Options::default())
                        .summary
                        .events,
                )
            })
        });
    }
    g.finish();
}

/// Fair sharing: n flows on one bottleneck, one flow stopping and restarting per iteration.
fn network(c: &mut Criterion) {
    let mut g = c.benchmark_group("network reshare");
    for n in [10u32, 1_000, 100_000] {
        let mut net = Network::new(vec![1e9, 1e8], n as usize);
        for i in 0..n {
            net.start(
                Time::ZERO,
                i,
                [0, if i % 2 == 0 { 1 } else { NO_LINK }],
                2e6 + f64::from(i % 7) * 1e5,
                1.2e9,
            );
        }
        net.reshare(Time::ZERO, |_| {});
        let mut t = 1u64;
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| {
                let id = (t as u32) % n;
                net.stop(Time(t), id);
                net.start(Time(t), id, [0, NO_LINK], 3e6, 1.2e9);
                net.reshare(Time(t), |x| {
                    black_box(x);
                });
                t += 1;
            })
        });
    }
    g.finish();
}

/// The event queue with n pending timers: one pop and one push per iteration.
fn queue(c: &mut Criterion) {
    let mut g = c.benchmark_group("event queue");
    for n in [10u64, 1_000, 1_000_000] {
        let mut q = EventQueue::default();
        for i in 0..n {
            q.push(Time(i * 7919 % (n * 10)), i);
        }
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("radix", n), &n, |b, &n| {
            b.iter(|| {
                let (t, e) = q.pop().unwrap();
                q.push(Time(t.0 + n * 5), e);
            })
        });
        // The baseline, measured in the same run: the binary heap the queue replaced.
        let mut h = std::collections::BinaryHeap::new();
        let mut seq = 0u64;
        for i in 0..n {
            h.push(std::cmp::Reverse((i * 7919 % (n * 10), seq, i)));
            seq += 1;
        }
        g.bench_with_input(BenchmarkId::new("binary heap", n), &n, |b, &n| {
            b.iter(|| {
                let std::cmp::Reverse((t, _, e)) = h.pop().unwrap();
                h.push(std::cmp::Reverse((t + n * 5, seq, e)));
                seq += 1;
            })
        });
    }
    g.finish();
}

/// Sweep throughput (runs per second) at 1 and 2 threads on a 4-replication seed-200 sweep.
fn sweeps(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/seed-200.toml");
    let p = sweep::prepare(path, &[], Some(4), None).unwrap();
    let total = sweep::run::total_runs(p.configs.len(), p.spec.replications);
    let mut g = c.benchmark_group("sweep");
    g.sample_size(10);
    g.throughput(Throughput::Elements(total));
    for threads in [1usize, 2] {
        g.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, &t| {
            b.iter(|| {
                black_box(
                    sweep::run::execute(&p.good, &p.bad, &p.configs, &p.spec, Shard::WHOLE, t)
                        .len(),
                )
            })
        });
    }
    g.finish();
}

/// What `--timeline` costs: a 100,000-gateway slice of fleet-1m with and without a timeline
/// sampled every 60 virtual seconds. Target: at most 1.5× the run without it.
fn timeline(c: &mut Criterion) {
    let s = scenario::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/fleet-1m.toml"),
        &["fleet.gateways=100000".into()],
    )
    .expect("fleet-1m loads");
    let name = s.default_policy.clone();
    let p = s.policy(&name).unwrap().clone();
    let mut g = c.benchmark_group("timeline 100k");
    g.sample_size(10);
    for (label, every) in [("off", None), ("every 60 s", Some(Time::from_secs(60.0)))] {
        let opts = Options {
            timeline_every: every,
        };
        g.bench_function(label, |b| {
            b.iter(|| black_box(simulate::run(&s, &name, &p, 1, &opts).summary.events))
        });
    }
    g.finish();
}

criterion_group!(benches, runs, network, queue, sweeps, timeline);
criterion_main!(benches);
