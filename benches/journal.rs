//! What the live journal costs, measured in one run against its own baseline:
//! - a rehearsal of 100,000 gateways against the in-process platform, journaled (fsync
//!   before every external call, group commit otherwise) against the same rehearsal with a
//!   journal that keeps nothing; runs interleaved, medians and their ratio printed;
//! - replaying a journal of at least 1,000,000 records.
//!
//! `cargo bench --bench journal` runs it in full; under `cargo test` it runs a small smoke.

use std::time::Instant;

use stagger::engine::Policy;
use stagger::live::clock::VirtualClock;
use stagger::live::executor::{Live, Options};
use stagger::live::fake::FakePlatform;
use stagger::live::inventory::Inventory;
use stagger::live::journal::{self, Header, Journal};
use stagger::time::Time;

const START_MS: u64 = 1_800_000_000_000;

fn inventory(n: usize) -> Inventory {
    let mut s = String::from("device_id,type_id,region,hw\n");
    for i in 0..n {
        s += &format!("gw-{i:07},gateway,r{},hw{}\n", i % 16, i % 3);
    }
    Inventory::parse(&s, true).expect("inventory")
}

fn policy() -> Policy {
    let s = stagger::scenario::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/seed-200.toml"),
        &[],
    )
    .expect("seed-200 loads");
    let mut p = s.policy("backoff").expect("backoff").clone();
    p.max_concurrent = 2000;
    p
}

fn header(n: usize) -> Header {
    Header {
        journal: "stagger".into(),
        version: journal::VERSION,
        plan: "bench".into(),
        plan_digest: "p".into(),
        inventory_digest: "i".into(),
        devices: n,
        backend: "fake".into(),
        endpoint: "in-process".into(),
        firmware_version: "1".into(),
        firmware_digest: "f".into(),
        seed: 1,
        started_unix_ms: START_MS,
        time_scale: 1.0,
    }
}

fn options() -> Options {
    Options {
        time_scale: 1.0,
        poll: Time::from_secs(30.0),
        settle_ms: 60_000,
        log: stagger::live::log::Log::quiet(),
        refit: None,
    }
}

/// One whole rehearsal; `path = None` journals nothing. Returns (seconds, entries): every
/// observation, command and call record counts, however they are grouped into lines.
fn rehearse(inv: &Inventory, pol: &Policy, path: Option<&std::path::Path>) -> (f64, usize) {
    let clock = VirtualClock::starting_at(START_MS);
    let mut platform = FakePlatform::new(clock.clone(), true);
    let h = header(inv.devices.len());
    let t0 = Instant::now();
    let journal = match path {
        Some(p) => {
            let _ = std::fs::remove_file(p);
            Journal::open(p, &h).expect("journal").0
        }
        None => Journal::discard(),
    };
    let mut live = Live::new(
        pol.clone(),
        inv,
        &mut platform,
        journal,
        &h,
        &clock,
        options(),
    );
    while !live.step().expect("step") {
        live.wait();
    }
    drop(live);
    let secs = t0.elapsed().as_secs_f64();
    let records = path.map_or(0, |p| {
        let parsed = journal::read(p).expect("read");
        parsed.records.iter().map(|(_, r)| r.entries()).sum()
    });
    (secs, records)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (n, reps) = if full { (100_000, 7) } else { (2_000, 1) };
    let inv = inventory(n);
    let pol = policy();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.jsonl");

    let mut with = Vec::new();
    let mut without = Vec::new();
    let mut records = 0;
    for i in 0..reps {
        // Alternate which goes first, so that neither always finds the caches warm.
        if i % 2 == 1 {
            without.push(rehearse(&inv, &pol, None).0);
        }
        let (s, r) = rehearse(&inv, &pol, Some(&path));
        with.push(s);
        records = r;
        if i % 2 == 0 {
            without.push(rehearse(&inv, &pol, None).0);
        }
    }
    let (a, b) = (median(with), median(without));
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "rehearsal of {n} gateways: journaled {a:.3} s, unjournaled {b:.3} s (medians of {reps}); journaling costs {:.1}% ({records} entries, {bytes} bytes)",
        (a / b - 1.0) * 100.0
    );

    // Replay: grow the journal past a million records with more rehearsals' worth of inputs.
    let big = if full { 1_010_000 } else { 10_000 };
    let replay_n = (n * big).div_ceil(records.max(1)).max(n);
    let inv = inventory(replay_n);
    let (_, records) = rehearse(&inv, &pol, Some(&path));
    let mut times = Vec::new();
    for _ in 0..reps {
        let clock = VirtualClock::starting_at(START_MS);
        let mut platform = FakePlatform::new(clock.clone(), true);
        let t0 = Instant::now();
        let (j, h, recs) = Journal::open(&path, &header(replay_n)).expect("journal");
        let mut live = Live::new(pol.clone(), &inv, &mut platform, j, &h, &clock, options());
        live.replay(&recs).expect("replay");
        times.push(t0.elapsed().as_secs_f64());
    }
    println!(
        "replay of {records} entries ({replay_n} gateways): {:.3} s (median of {reps}, reading and parsing included)",
        median(times)
    );
}
