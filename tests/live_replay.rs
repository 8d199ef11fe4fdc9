//! The live driver against an in-process platform on a virtual clock: recovery by replay.
//! Judged from the platform's side: triggers per device, overlaps, triggers after success,
//! devices in flight against the cap.

mod common;

use std::path::Path;

use proptest::prelude::*;
use stagger::engine::Policy;
use stagger::live::clock::VirtualClock;
use stagger::live::executor::{Live, Options};
use stagger::live::fake::{FakePlatform, Seen};
use stagger::live::inventory::Inventory;
use stagger::live::journal::{self, Header, Journal, Record};
use stagger::time::Time;

const START_MS: u64 = 1_800_000_000_000;

fn inventory(n: usize) -> Inventory {
    let mut s = String::from("device_id,type_id,region,hw\n");
    for i in 0..n {
        s += &format!(
            "gw-{i:03},gateway,{},{}\n",
            ["north", "south", "east", "west"][i % 4],
            if (i / 4) % 2 == 0 { "x86" } else { "arm" }
        );
    }
    Inventory::parse(&s, true).unwrap()
}

fn policy(name: &str) -> Policy {
    let s = stagger::scenario::load(&common::seed_scenario(), &[]).unwrap();
    s.policy(name).unwrap().clone()
}

fn header(devices: usize) -> Header {
    Header {
        journal: "stagger".into(),
        version: journal::VERSION,
        plan: "test".into(),
        plan_digest: "p".into(),
        inventory_digest: "i".into(),
        devices,
        backend: "fake".into(),
        endpoint: "in-process".into(),
        firmware_version: "4.2.0".into(),
        firmware_digest: journal::digest(&[b"4.2.0", b"fw"]),
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

/// Runs the driver on `path` for at most `steps` rounds (None: to the end). Returns whether
/// it finished; an unfinished run ends like kill -9 (what was not synced is lost).
fn drive(
    path: &Path,
    platform: &mut FakePlatform,
    clock: &VirtualClock,
    inv: &Inventory,
    policy: &Policy,
    steps: Option<usize>,
) -> bool {
    drive_with(path, platform, clock, inv, policy, steps, options())
}

fn drive_with(
    path: &Path,
    platform: &mut FakePlatform,
    clock: &VirtualClock,
    inv: &Inventory,
    policy: &Policy,
    steps: Option<usize>,
    opts: Options,
) -> bool {
    let h = header(inv.devices.len());
    let (j, h, records) = Journal::open(path, &h).unwrap();
    let mut live = Live::new(policy.clone(), inv, platform, j, &h, clock, opts);
    live.replay(&records).unwrap();
    let mut n = 0;
    loop {
        if live.step().unwrap() {
            return true;
        }
        n += 1;
        if steps.is_some_and(|s| n >= s) {
            live.crash();
            return false;
        }
        live.wait();
    }
}

fn platform(clock: &VirtualClock, two_phase: bool, failing: &[&str]) -> FakePlatform {
    let mut p = FakePlatform::new(clock.clone(), two_phase);
    p.failing = failing.iter().map(|s| s.to_string()).collect();
    p
}

fn assert_safe(seen: &Seen, n: usize, failing: &[&str], max_attempts: u32, phases: usize) {
    assert_eq!(
        seen.overlaps, 0,
        "an operation overlapped another: {seen:?}"
    );
    assert_eq!(seen.after_success, 0, "a trigger after success: {seen:?}");
    for i in 0..n {
        let id = format!("gw-{i:03}");
        let last = seen.triggers.get(&id).map_or(0, |t| t[phases - 1]);
        if failing.contains(&id.as_str()) {
            assert_eq!(
                last, max_attempts,
                "{id} triggered {last} times against a budget of {max_attempts}"
            );
            assert_eq!(seen.updated.get(&id), None);
        } else {
            assert_eq!(seen.updated.get(&id), Some(&1), "{id}: {seen:?}");
            assert_eq!(last, 1, "{id} updated more than once");
        }
    }
}

#[test]
fn replay_reemits_exactly_the_journaled_commands() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("j.jsonl");
    let inv = inventory(60);
    let pol = policy("pipelined");
    let clock = VirtualClock::starting_at(START_MS);
    let mut p = platform(&clock, true, &["gw-007", "gw-021"]);
    assert!(drive(&path, &mut p, &clock, &inv, &pol, None));
    let parsed = journal::read(&path).unwrap();
    let journaled = parsed
        .records
        .iter()
        .map(|(_, r)| match r {
            Record::Cmd { c, .. } => c.len() as u64,
            _ => 0,
        })
        .sum::<u64>();
    assert!(
        journaled > 120,
        "too few commands to mean anything: {journaled}"
    );

    // Replaying the whole journal re-emits every command, in order, with nothing left over.
    let (j, h, records) = Journal::open(&path, &header(60)).unwrap();
    let mut again = platform(&clock, true, &[]);
    let mut live = Live::new(pol.clone(), &inv, &mut again, j, &h, &clock, options());
    let r = live.replay(&records).unwrap();
    assert_eq!(r.commands, journaled);
    let c = live.engine().counts();
    assert_eq!(
        c[stagger::engine::Status::Succeeded as usize],
        58,
        "the replayed engine ends where the live one did"
    );
    drop(live);

    // A journal whose commands differ from what the engine emits is refused, naming the line.
    let text = std::fs::read_to_string(&path).unwrap();
    let (line_no, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(r#"{"start":["#))
        .unwrap();
    let forged = line.replacen(r#",1]}"#, r#",2]}"#, 1);
    assert_ne!(forged, line);
    std::fs::write(&path, text.replacen(line, &forged, 1)).unwrap();
    let (j, h, records) = Journal::open(&path, &header(60)).unwrap();
    let mut again = platform(&clock, true, &[]);
    let mut live = Live::new(pol, &inv, &mut again, j, &h, &clock, options());
    let err = live.replay(&records).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(msg.contains(&format!(":{}", line_no + 1)), "{msg}");
}

#[test]
fn crashes_keep_budgets_caps_and_halts_and_double_nothing() {
    // Ten crashes at spread-out moments on one journal, then a run to the end.
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("j.jsonl");
    let inv = inventory(60);
    let pol = policy("pipelined");
    let failing = ["gw-007", "gw-021"];
    let clock = VirtualClock::starting_at(START_MS);
    let mut p = platform(&clock, true, &failing);
    p.ambiguous_every = 4;
    for k in 0..10 {
        assert!(!drive(&path, &mut p, &clock, &inv, &pol, Some(5 + 2 * k)));
    }
    assert!(drive(&path, &mut p, &clock, &inv, &pol, None));
    assert_safe(&p.seen, 60, &failing, pol.retry.max_attempts, 2);
    assert!(
        p.seen.max_in_flight as u32 <= pol.max_concurrent,
        "{} in flight against a cap of {}",
        p.seen.max_in_flight,
        pol.max_concurrent
    );
}

#[test]
fn a_shortened_or_deleted_journal_updates_nobody_twice() {
    let inv = inventory(40);
    let pol = policy("backoff");
    let failing = ["gw-003"];
    for keep in [None, Some(0usize), Some(25), Some(200)] {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("j.jsonl");
        let clock = VirtualClock::starting_at(START_MS);
        let mut p = platform(&clock, true, &failing);
        assert!(!drive(&path, &mut p, &clock, &inv, &pol, Some(100)));
        match keep {
            None => std::fs::remove_file(&path).unwrap(),
            Some(k) => {
                let text = std::fs::read_to_string(&path).unwrap();
                let cut: String = text.lines().take(k + 1).map(|l| format!("{l}\n")).collect();
                std::fs::write(&path, cut).unwrap();
            }
        }
        assert!(drive(&path, &mut p, &clock, &inv, &pol, None));
        assert_safe(&p.seen, 40, &failing, pol.retry.max_attempts, 2);
    }
}

fn halting_policy() -> Policy {
    let mut pol = policy("pipelined");
    pol.retry.max_attempts = 1;
    pol
}

#[test]
fn a_halt_survives_every_rerun_and_an_override_goes_on() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("j.jsonl");
    let inv = inventory(40);
    let pol = halting_policy();
    // The canary fails badly: rollback below 70%.
    let failing = ["gw-000", "gw-001", "gw-002", "gw-003", "gw-004", "gw-005"];
    let clock = VirtualClock::starting_at(START_MS);
    let mut p = platform(&clock, false, &failing);
    assert!(drive(&path, &mut p, &clock, &inv, &pol, None));
    let requests = p.seen.requests;
    assert!(requests > 0);
    let h = header(40);
    for _ in 0..2 {
        let (j, h, records) = Journal::open(&path, &h).unwrap();
        let mut live = Live::new(pol.clone(), &inv, &mut p, j, &h, &clock, options());
        let r = live.replay(&records).unwrap();
        assert_eq!(r.halted.as_ref().map(|(k, _)| k.as_str()), Some("rollback"));
        while !live.step().unwrap() {
            live.wait();
        }
        assert!(live.report(false).halted.is_some(), "still halted");
    }
    assert_eq!(
        p.seen.requests, requests,
        "a halted rollout issued new requests"
    );

    // The override is journaled: it holds for this run and every later one.
    let (j, h, records) = Journal::open(&path, &h).unwrap();
    let mut live = Live::new(pol.clone(), &inv, &mut p, j, &h, &clock, options());
    live.replay(&records).unwrap();
    live.override_halt("rollback").unwrap();
    while !live.step().unwrap() {
        live.wait();
    }
    drop(live);
    assert!(p.seen.requests > requests, "the override went on");
    let (j, h, records) = Journal::open(&path, &h).unwrap();
    let mut live = Live::new(pol, &inv, &mut p, j, &h, &clock, options());
    let r = live.replay(&records).unwrap();
    assert!(r.halted.is_none() || r.halted.as_ref().is_some_and(|(k, _)| k == "rollback"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// A crash after any number of driver rounds, with the journal kept or cut at any record,
    /// ends in the same platform state as a run without a crash.
    #[test]
    fn a_crash_anywhere_ends_in_the_same_platform_state(
        steps in 1usize..100,
        cut in proptest::option::of(0usize..600),
        two_phase in any::<bool>(),
        ambiguous in prop_oneof![Just(0u32), 3u32..9],
    ) {
        let inv = inventory(30);
        let pol = policy("backoff");
        let failing = ["gw-005", "gw-017"];
        let reference = {
            let d = tempfile::tempdir().unwrap();
            let clock = VirtualClock::starting_at(START_MS);
            let mut p = platform(&clock, two_phase, &failing);
            p.ambiguous_every = ambiguous;
            prop_assert!(drive(&d.path().join("j.jsonl"), &mut p, &clock, &inv, &pol, None));
            p.seen
        };
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("j.jsonl");
        let clock = VirtualClock::starting_at(START_MS);
        let mut p = platform(&clock, two_phase, &failing);
        p.ambiguous_every = ambiguous;
        if !drive(&path, &mut p, &clock, &inv, &pol, Some(steps)) {
            if let Some(k) = cut {
                let text = std::fs::read_to_string(&path).unwrap();
                let kept: String = text.lines().take(k + 1).map(|l| format!("{l}\n")).collect();
                std::fs::write(&path, kept).unwrap();
            }
            prop_assert!(drive(&path, &mut p, &clock, &inv, &pol, None));
        }
        let phases = if two_phase { 2 } else { 1 };
        prop_assert_eq!(&p.seen.updated, &reference.updated);
        prop_assert_eq!(p.seen.overlaps, 0);
        prop_assert_eq!(p.seen.after_success, 0);
        for i in 0..30 {
            let id = format!("gw-{i:03}");
            let last = |s: &Seen| s.triggers.get(&id).map_or(0, |t| t[phases - 1]);
            prop_assert_eq!(last(&p.seen), last(&reference), "{} triggers", id);
        }
    }
}

/// A refit that always chooses `pace`, counting its calls.
#[allow(clippy::result_large_err)] // the driver's refit hook returns input errors as they are
fn fixed_refit(pace: f64, calls: std::sync::Arc<std::sync::atomic::AtomicU32>) -> Options {
    let mut o = options();
    o.refit = Some(Box::new(move |journal: &Path, t: Time, stage: &str| {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // The journal handed over holds the stage's outcomes.
        let seen = stagger::fit::observe::load(journal, None)?;
        assert!(seen.attempts.iter().filter(|a| a.end.is_some()).count() >= 4);
        Ok(stagger::simulate::Refitted {
            stage: stage.into(),
            at_s: t.secs(),
            leaning: stagger::simulate::Leaning::Better,
            pace,
            adopted: vec![],
            kept_prior: vec![],
            why: "test".into(),
            standard: None,
            tried: vec![],
        })
    }));
    o
}

#[test]
fn a_refit_is_journaled_applied_and_replayed_not_redone() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("j.jsonl");
    let inv = inventory(60);
    let mut pol = policy("pipelined");
    pol.max_concurrent = 5;
    pol.canary = Some(stagger::engine::policy::Canary {
        size: 4,
        soak: Time::from_secs(600.0),
    });
    pol.refit_after = Some("canary".into());
    let failing = ["gw-007", "gw-021"];
    let clock = VirtualClock::starting_at(START_MS);
    let mut p = platform(&clock, true, &failing);
    p.ambiguous_every = 5;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    // Crashes before, around and after the refit.
    for k in 0..8 {
        let o = fixed_refit(2.0, calls.clone());
        assert!(!drive_with(
            &path,
            &mut p,
            &clock,
            &inv,
            &pol,
            Some(4 + 3 * k),
            o
        ));
    }
    assert!(drive_with(
        &path,
        &mut p,
        &clock,
        &inv,
        &pol,
        None,
        fixed_refit(2.0, calls.clone())
    ));
    assert_safe(&p.seen, 60, &failing, pol.retry.max_attempts, 2);
    let parsed = journal::read(&path).unwrap();
    let repaced = parsed
        .records
        .iter()
        .filter(|(_, r)| matches!(r, Record::Obs { o, .. } if o.iter().any(|o| matches!(o, journal::Obs::Repaced { pace_milli: 2000, .. }))))
        .count();
    assert_eq!(repaced, 1, "one journaled refit");
    let n = calls.load(std::sync::atomic::Ordering::SeqCst);
    assert!(n >= 1, "the refit ran");
    // The pace took effect: more than the plan's 5 in flight at once, never more than 10.
    assert!(
        p.seen.max_in_flight > 5 && p.seen.max_in_flight <= 10,
        "{} in flight at most",
        p.seen.max_in_flight
    );
    // A resume replays the journaled pace without asking for another refit.
    let (j, h, records) = Journal::open(&path, &header(60)).unwrap();
    let mut again = platform(&clock, true, &[]);
    let before = calls.load(std::sync::atomic::Ordering::SeqCst);
    let mut live = Live::new(
        pol.clone(),
        &inv,
        &mut again,
        j,
        &h,
        &clock,
        fixed_refit(2.0, calls.clone()),
    );
    live.replay(&records).unwrap();
    assert_eq!(live.engine().pace(), 2.0);
    assert!(live.step().unwrap());
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), before);
}
