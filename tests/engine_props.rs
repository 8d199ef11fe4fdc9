//! Property tests: the engine against a small oracle fleet that answers commands with
//! random outcomes after random delays.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use proptest::prelude::*;
use stagger::engine::policy::{Adaptive, Canary, DeferMode, Gate, Prechecks, Retry, Stage};
use stagger::engine::{
    Cause, Command, Engine, Facts, Family, GateState, GatewayInfo, Observation, Phase, Policy,
    Status,
};
use stagger::time::Time;

#[derive(Debug, Clone, Copy)]
enum Fate {
    Succeed,
    Fail,
    Reject,
    Health,
    Silent,
}

fn fate(x: u8, gw: u32, bad_release: bool) -> Fate {
    if bad_release {
        // Every even gateway that installs the bad image fails its health check.
        return if gw.is_multiple_of(2) {
            Fate::Health
        } else {
            Fate::Succeed
        };
    }
    match x % 10 {
        0 => Fate::Fail,
        1 => Fate::Reject,
        2 if !bad_release => Fate::Silent,
        _ => Fate::Succeed,
    }
}

fn policy_strategy() -> impl Strategy<Value = Policy> {
    (
        0usize..6,
        1u32..12,
        1u32..8,
        0u64..600,
        0.0f64..1.0,
        1u32..4,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(f, cap, batch, delay, frac, attempts, checks, canary)| {
            let mut p = Policy::bulk();
            p.family = Family::ALL[f];
            p.max_concurrent = cap;
            p.retry = Retry {
                max_attempts: attempts,
                base: Time::from_secs(30.0),
                factor: 2.0,
                cap: Time::from_secs(300.0),
                jitter: 0.3,
            };
            p.op_timeout = Some(Time::from_secs(900.0));
            p.defect_halt_after = Some(2);
            p.rollback_below = Some(0.2);
            if checks {
                p.prechecks = Some(Prechecks {
                    deferred: if delay % 2 == 0 {
                        DeferMode::NextWave
                    } else {
                        DeferMode::Hold
                    },
                    max_cpu_pct: Some(50.0),
                    min_disk_mb: None,
                    min_battery_pct: None,
                    stable_link: None,
                    require_idle: false,
                    defer: Time::from_secs(120.0),
                    max_deferrals: 3,
                    max_offline_deferrals: 2,
                });
            }
            match p.family {
                Family::Bulk => p.max_concurrent = u32::MAX,
                Family::Fixed => {
                    p.batch_size = batch;
                    p.delay = Time::from_secs(delay as f64);
                }
                Family::Pipelined => {
                    p.batch_size = batch;
                    p.gate = Some(Gate {
                        fraction: frac,
                        state: GateState::Downloaded,
                        timeout: Some(Time::from_secs(600.0)),
                    });
                    p.min_gap = Time::from_secs(delay as f64);
                }
                Family::Staged => {
                    p.batch_size = batch;
                    p.gap = Time::from_secs(delay as f64);
                    p.gate = Some(Gate {
                        fraction: frac,
                        state: GateState::Succeeded,
                        timeout: Some(Time::from_secs(900.0)),
                    });
                    p.stages = vec![
                        Stage {
                            name: "canary".into(),
                            size: 2,
                            soak: Time::ZERO,
                        },
                        Stage {
                            name: "rest".into(),
                            size: 10,
                            soak: Time::from_secs(600.0),
                        },
                    ];
                }
                Family::Adaptive => {
                    p.adaptive = Some(Adaptive {
                        initial: 2.0,
                        min: 1.0,
                        max: f64::from(cap),
                        increase: 1.0,
                        decrease: 0.5,
                        interval: Time::from_secs(60.0),
                        target_latency_ms: 1000.0,
                        max_failure_rate: 0.3,
                    });
                }
                Family::Backoff => {}
            }
            if canary && p.family != Family::Staged && p.family != Family::Bulk {
                p.canary = Some(Canary {
                    size: 2,
                    soak: Time::from_secs(300.0),
                });
            }
            if delay % 3 == 0 && p.stage_names().contains(&"canary") {
                // Re-tuned after the canaries, to a pace of at most 1 (see `drive`).
                p.refit_after = Some("canary".into());
            }
            p
        })
}

/// An oracle answer due: (time, seq, gateway, attempt, luck byte).
type Pending = (Time, u64, u32, u32, u8);

struct Run {
    starts_after_success: u32,
    max_outstanding: u32,
    cap: u32,
    engine: Engine,
    starts_after_halt: u32,
}

/// Drives the engine with an oracle fleet until it is done (or a step bound is hit).
fn drive(policy: Policy, n: usize, luck: &[u8], bad_release: bool) -> Run {
    let inventory: Vec<GatewayInfo> = (0..n)
        .map(|i| GatewayInfo {
            region: (i % 3) as u16,
            hw: (i % 2) as u16,
        })
        .collect();
    let cap = policy.max_concurrent;
    let mut engine = Engine::new(policy, &inventory, 7);
    let mut events: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut succeeded = vec![false; n];
    let mut outstanding = 0i64;
    let mut run = Run {
        starts_after_success: 0,
        max_outstanding: 0,
        cap,
        engine: Engine::new(Policy::bulk(), &[], 0),
        starts_after_halt: 0,
    };
    let mut now = Time::ZERO;
    let mut k = 0usize;
    let mut halted = false;
    engine.handle_timeout(now);
    for _ in 0..100_000 {
        while let Some(cmd) = engine.poll_command() {
            match cmd {
                Command::Check { gw } => {
                    let x = luck[(k + gw as usize) % luck.len()];
                    k += 1;
                    let facts = Facts {
                        cpu_pct: Some(if x.is_multiple_of(4) { 90.0 } else { 10.0 }),
                        ..Facts::unknown()
                    };
                    engine.handle(now, Observation::Checked { gw, facts });
                }
                Command::Start { gw, attempt } => {
                    if succeeded[gw as usize] {
                        run.starts_after_success += 1;
                    }
                    if halted {
                        run.starts_after_halt += 1;
                    }
                    outstanding += 1;
                    run.max_outstanding = run.max_outstanding.max(outstanding as u32);
                    let x = luck[(k * 7 + gw as usize * 3 + attempt as usize) % luck.len()];
                    k += 1;
                    let delay = Time::from_secs(30.0 + f64::from(x) * 3.0);
                    seq += 1;
                    events.push(Reverse((now + delay, seq, gw, attempt, x)));
                }
                Command::Cancel { .. } => {}
                Command::Halt { .. } => halted = true,
                // The operator approves at once.
                Command::Paused { wave, .. } => engine.handle(now, Observation::Approved { wave }),
                // A slower pace than planned, never a faster one: the cap stays the plan's.
                Command::Refit { wave, .. } => engine.handle(
                    now,
                    Observation::Repaced {
                        wave,
                        pace_milli: 400 + u32::from(luck[0]) * 600 / 255,
                    },
                ),
                Command::Rollback { .. } | Command::WaveReleased { .. } => {}
            }
        }
        if engine.is_done() {
            break;
        }
        let next_engine = engine.poll_timeout();
        let next_event = events.peek().map(|Reverse(e)| e.0);
        let t = match (next_engine, next_event) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => break,
        };
        now = now.max(t);
        if next_event == Some(t) {
            let Reverse((_, _, gw, attempt, x)) = events.pop().unwrap();
            outstanding -= 1;
            let obs = match fate(x, gw, bad_release) {
                Fate::Succeed => {
                    succeeded[gw as usize] = true;
                    engine.handle(
                        now,
                        Observation::Progress {
                            gw,
                            attempt,
                            phase: Phase::Downloaded,
                        },
                    );
                    Some(Observation::Succeeded { gw })
                }
                Fate::Fail => Some(Observation::Failed {
                    gw,
                    attempt,
                    cause: Cause::Install,
                }),
                Fate::Reject => Some(Observation::Rejected { gw, attempt }),
                Fate::Health => Some(Observation::Failed {
                    gw,
                    attempt,
                    cause: Cause::HealthCheck,
                }),
                Fate::Silent => None, // the engine's op timeout must catch it
            };
            if let Some(o) = obs {
                engine.handle(now, o);
            }
        } else {
            engine.handle_timeout(now);
        }
        // The oracle's count can lag the engine's (timeouts end an attempt early), so the
        // engine's own count must respect the cap as well.
        run.max_outstanding = run.max_outstanding.max(engine.in_flight());
    }
    run.engine = engine;
    run
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn cap_holds_no_double_update_and_every_gateway_ends_final(
        policy in policy_strategy(),
        n in 1usize..40,
        luck in proptest::collection::vec(any::<u8>(), 16..64),
    ) {
        let r = drive(policy, n, &luck, false);
        prop_assert!(r.engine.is_done(), "engine did not finish: counts {:?}, statuses {:?}, halted {:?}, released {}", r.engine.counts(), (0..n as u32).map(|g| r.engine.status(g)).collect::<Vec<_>>(), r.engine.halted(), r.engine.waves_released());
        prop_assert_eq!(r.starts_after_success, 0, "a gateway was started again after it succeeded");
        prop_assert!(r.engine.peak_in_flight() <= r.cap, "engine peak {} over cap {}", r.engine.peak_in_flight(), r.cap);
        let counts = r.engine.counts();
        prop_assert_eq!(counts.iter().sum::<u32>() as usize, n);
        for g in 0..n as u32 {
            prop_assert!(r.engine.status(g).is_final(), "gateway {} ended {:?}", g, r.engine.status(g));
        }
    }

    #[test]
    fn a_bad_release_halts_the_rollout(
        policy in policy_strategy(),
        n in 12usize..40,
        luck in proptest::collection::vec(any::<u8>(), 16..64),
    ) {
        let r = drive(policy, n, &luck, true);
        prop_assert!(r.engine.is_done());
        prop_assert!(r.engine.halted().is_some(), "not halted; health failures {}", r.engine.health_failures());
        prop_assert_eq!(r.starts_after_halt, 0, "work was started after the halt");
        prop_assert!(r.engine.counts()[Status::Succeeded as usize] < n as u32);
    }
}

/// An operation no device begins is given up at the queue timeout, as unreachable; one
/// that begins is held to the operation timeout instead.
#[test]
fn an_operation_never_begun_ends_unreachable_at_the_queue_timeout() {
    let inventory = vec![GatewayInfo { region: 0, hw: 0 }; 2];
    let mut p = Policy::bulk();
    p.queue_timeout = Some(Time::from_secs(600.0));
    p.op_timeout = Some(Time::from_secs(3600.0));
    let mut engine = Engine::new(p, &inventory, 1);
    engine.handle_timeout(Time::ZERO);
    let mut starts = Vec::new();
    while let Some(c) = engine.poll_command() {
        if let Command::Start { gw, attempt } = c {
            starts.push((gw, attempt));
        }
    }
    assert_eq!(starts, [(0, 1), (1, 1)]);
    // Gateway 1 begins downloading; gateway 0 never does.
    engine.handle(
        Time::from_secs(60.0),
        Observation::Progress {
            gw: 1,
            attempt: 1,
            phase: Phase::Downloading,
        },
    );
    assert_eq!(engine.poll_timeout(), Some(Time::from_secs(600.0)));
    engine.handle_timeout(Time::from_secs(600.0));
    assert_eq!(engine.status(0), Status::Failed);
    assert_eq!(engine.cause(0), Some(Cause::Unreachable));
    assert_eq!(
        engine.status(1),
        Status::InFlight,
        "begun: not a queue timeout"
    );
    let cancels: Vec<Command> = std::iter::from_fn(|| engine.poll_command()).collect();
    assert_eq!(cancels, [Command::Cancel { gw: 0, attempt: 1 }]);
    // The begun one times out only at the operation timeout.
    assert_eq!(engine.poll_timeout(), Some(Time::from_secs(3600.0)));
    engine.handle_timeout(Time::from_secs(3600.0));
    assert_eq!(engine.cause(1), Some(Cause::Timeout));
}

/// An approval gate: after the canary stage completes nothing more is released, however
/// long it waits, until the operator approves; then the next wave goes.
#[test]
fn a_paused_stage_waits_for_approval() {
    let inventory = vec![GatewayInfo { region: 0, hw: 0 }; 6];
    let mut p = Policy::bulk();
    p.family = Family::Backoff;
    p.max_concurrent = 6;
    p.canary = Some(Canary {
        size: 2,
        soak: Time::from_secs(60.0),
    });
    p.pause_after = vec!["canary".into()];
    let mut engine = Engine::new(p, &inventory, 1);
    engine.handle_timeout(Time::ZERO);
    let mut starts = Vec::new();
    let drain = |engine: &mut Engine, starts: &mut Vec<u32>| {
        let mut paused = None;
        while let Some(c) = engine.poll_command() {
            match c {
                Command::Start { gw, .. } => starts.push(gw),
                Command::Paused { wave, stage } => paused = Some((wave, stage)),
                _ => {}
            }
        }
        paused
    };
    assert_eq!(drain(&mut engine, &mut starts), None);
    assert_eq!(starts.len(), 2, "the canaries");
    for &gw in &starts.clone() {
        engine.handle(Time::from_secs(10.0), Observation::Succeeded { gw });
    }
    let paused = drain(&mut engine, &mut starts);
    assert_eq!(paused, Some((0, "canary".to_string())));
    assert_eq!(engine.paused(), Some((0, "canary")));
    // A day later, still nothing more.
    engine.handle_timeout(Time::from_secs(86_400.0));
    assert_eq!(drain(&mut engine, &mut starts), None);
    assert_eq!(starts.len(), 2, "released without approval");
    engine.handle(Time::from_secs(86_400.0), Observation::Approved { wave: 0 });
    drain(&mut engine, &mut starts);
    assert_eq!(starts.len(), 6, "approval releases the rest");
    assert_eq!(engine.paused(), None);
}

/// `gateways` under backoff with cap `cap`, a canary of 2 soaking 600 s, and a refit after it.
fn refitting_engine(gateways: usize, cap: u32) -> Engine {
    let inventory = vec![GatewayInfo { region: 0, hw: 0 }; gateways];
    let mut p = Policy::bulk();
    p.family = Family::Backoff;
    p.max_concurrent = cap;
    p.canary = Some(Canary {
        size: 2,
        soak: Time::from_secs(600.0),
    });
    p.refit_after = Some("canary".into());
    Engine::new(p, &inventory, 1)
}

/// A refit: after the canary stage completes nothing more is released until the driver
/// answers with a pace; the pace then sets the cap and the soak of what is left.
#[test]
fn a_refit_holds_the_rest_until_a_pace_is_chosen_and_then_applies_it() {
    let mut engine = refitting_engine(12, 3);
    engine.handle_timeout(Time::ZERO);
    let drain = |engine: &mut Engine, starts: &mut Vec<u32>| {
        let mut refit = None;
        while let Some(c) = engine.poll_command() {
            match c {
                Command::Start { gw, .. } => starts.push(gw),
                Command::Refit { wave, stage } => refit = Some((wave, stage)),
                _ => {}
            }
        }
        refit
    };
    let mut starts = Vec::new();
    assert_eq!(drain(&mut engine, &mut starts), None);
    assert_eq!(starts.len(), 2, "the canaries");
    for &gw in &starts.clone() {
        engine.handle(Time::from_secs(10.0), Observation::Succeeded { gw });
    }
    assert_eq!(
        drain(&mut engine, &mut starts),
        Some((0, "canary".to_string()))
    );
    assert_eq!(engine.refitting(), Some((0, "canary")));
    // Long past the soak, still nothing: the refit has not answered.
    engine.handle_timeout(Time::from_secs(86_400.0));
    assert_eq!(drain(&mut engine, &mut starts), None);
    assert_eq!(starts.len(), 2, "released before the refit answered");
    // Pace 2: the soak halves (300 s from the answer's time is not waited: the stage
    // completed long ago) and the cap doubles to 6.
    engine.handle(
        Time::from_secs(86_400.0),
        Observation::Repaced {
            wave: 0,
            pace_milli: 2000,
        },
    );
    drain(&mut engine, &mut starts);
    assert_eq!(engine.refitting(), None);
    assert_eq!(engine.pace(), 2.0);
    assert_eq!(engine.cap(), 6);
    assert_eq!(starts.len(), 2 + 6, "the rest starts at the re-tuned cap");
    // A second answer changes nothing.
    engine.handle(
        Time::from_secs(86_400.0),
        Observation::Repaced {
            wave: 0,
            pace_milli: 500,
        },
    );
    assert_eq!(engine.cap(), 6);
}

/// The soak after the refit stage follows the chosen pace: pace 0.5 doubles it.
#[test]
fn a_slower_pace_waits_longer_before_the_next_wave() {
    let mut engine = refitting_engine(6, 2);
    engine.handle_timeout(Time::ZERO);
    let mut canaries = Vec::new();
    while let Some(c) = engine.poll_command() {
        if let Command::Start { gw, .. } = c {
            canaries.push(gw);
        }
    }
    for gw in canaries {
        engine.handle(Time::from_secs(10.0), Observation::Succeeded { gw });
    }
    while engine.poll_command().is_some() {}
    engine.handle(
        Time::from_secs(10.0),
        Observation::Repaced {
            wave: 0,
            pace_milli: 500,
        },
    );
    assert_eq!(engine.poll_timeout(), Some(Time::from_secs(1210.0)));
    assert_eq!(engine.cap(), 1);
}
