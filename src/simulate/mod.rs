//! The simulation driver: a thin loop that feeds the world's observations to the engine and
//! the engine's commands to the world, in virtual time. The live driver is the same loop
//! around a real backend. No policy logic lives here.

pub mod breakdown;
pub mod summary;
pub mod timeline;

use crate::engine::{Command, Engine, Observation, Policy};
use crate::scenario::Scenario;
use crate::time::Time;
use crate::world::{Event, World};
pub use summary::{Leaning, Refitted, Summary};
pub use timeline::{Timeline, TimelineRow};

/// A run longer than this in virtual time is stopped and reported as such.
pub const MAX_VIRTUAL: Time = Time(60 * 24 * 3600 * 1000);

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Sample a timeline row every this often (virtual); `None` = no timeline.
    pub timeline_every: Option<Time>,
}

pub struct Outcome {
    pub summary: Summary,
    pub timeline: Option<Timeline>,
}

/// An engine input or output, as a live journal records it.
pub enum Traced<'a> {
    Observation(&'a Observation),
    Command(&'a Command),
}

/// Runs `policy` named `name` on `scenario` with `seed`.
pub fn run(scenario: &Scenario, name: &str, policy: &Policy, seed: u64, opts: &Options) -> Outcome {
    run_traced(scenario, name, policy, seed, opts, &mut |_, _| {})
}

/// The driver's answer to `Command::Refit { wave, stage }` at a time: the pace (in
/// thousandths) the rest of the rollout runs at.
pub type Replan<'a> = &'a mut dyn FnMut(Time, usize, &str) -> u32;

/// `run`, handing every engine input and output to `trace` with its virtual time, in the
/// order the engine saw them.
pub fn run_traced(
    scenario: &Scenario,
    name: &str,
    policy: &Policy,
    seed: u64,
    opts: &Options,
    trace: &mut impl FnMut(Time, Traced<'_>),
) -> Outcome {
    run_replanned(scenario, name, policy, seed, opts, trace, &mut |_, _, _| {
        1000
    })
}

/// `run_traced`, asking `replan` for the pace when the policy's `refit_after` stage
/// completes.
pub fn run_replanned(
    scenario: &Scenario,
    name: &str,
    policy: &Policy,
    seed: u64,
    opts: &Options,
    trace: &mut impl FnMut(Time, Traced<'_>),
    replan: Replan<'_>,
) -> Outcome {
    // This replication's draw of the scenario's uncertain values.
    let scenario = crate::scenario::uncertainty::for_seed(scenario, seed);
    let scenario: &Scenario = &scenario;
    let mut world = World::new(scenario, seed);
    let mut policy = policy.clone();
    if let Some(m) = policy.maintenance.as_mut() {
        // The simulated fleet's regions and start time of day.
        m.region_names = scenario.fleet.regions.clone();
        m.epoch_ms_of_day = scenario
            .maintenance
            .as_ref()
            .map_or(0, |s| s.epoch_ms_of_day);
    }
    let mut engine = Engine::new(policy, &world.inventory(), seed);
    let mut timeline = opts
        .timeline_every
        .map(|every| Timeline::new(&mut world, &mut engine, every));
    let mut critical = breakdown::Tracker::new(&mut world, &mut engine);
    let mut obs = Vec::new();
    let mut now = Time::ZERO;
    let mut wake: Option<Time> = None;
    let mut done_at: Option<Time> = None;
    let mut truncated = false;
    engine.handle_timeout(now);
    loop {
        // Drain commands and their immediate answers until the engine is quiet.
        loop {
            while let Some(cmd) = engine.poll_command() {
                trace(now, Traced::Command(&cmd));
                world.apply(now, &cmd, &mut obs);
                match &cmd {
                    // Approval gates are approved at once: predictions leave out the time
                    // an operator takes.
                    Command::Paused { wave, .. } => obs.push(Observation::Approved { wave: *wave }),
                    Command::Refit { wave, stage } => obs.push(Observation::Repaced {
                        wave: *wave,
                        pace_milli: replan(now, *wave, stage),
                    }),
                    _ => {}
                }
            }
            if obs.is_empty() {
                break;
            }
            for o in obs.drain(..) {
                trace(now, Traced::Observation(&o));
                engine.handle(now, o);
            }
        }
        critical.update(
            now,
            &mut world,
            &mut engine,
            timeline.as_mut().map(Timeline::touched),
        );
        if engine.is_done() && done_at.is_none() {
            done_at = Some(now);
        }
        if engine.is_done() && !world.busy() {
            break;
        }
        if let Some(t) = engine.poll_timeout() {
            if wake != Some(t) {
                world.schedule(t.max(now), Event::EngineWake);
                wake = Some(t);
            }
        }
        let Some((t, event)) = world.pop() else { break };
        now = t;
        if now > MAX_VIRTUAL {
            truncated = true;
            break;
        }
        match event {
            Event::EngineWake => {
                if wake.is_some_and(|w| w <= now) {
                    wake = None;
                    engine.handle_timeout(now);
                }
            }
            Event::Tick => {
                world.on_tick(now);
                let latency = Observation::Latency {
                    ms: world.service.latency_ms,
                };
                trace(now, Traced::Observation(&latency));
                engine.handle(now, latency);
                if let Some(tl) = timeline.as_mut() {
                    // The tracker sees every change first and hands it on.
                    critical.update(now, &mut world, &mut engine, Some(tl.touched()));
                    tl.maybe_sample(now, &mut world, &mut engine);
                }
            }
            other => {
                world.handle(now, other, &mut obs);
                for o in obs.drain(..) {
                    trace(now, Traced::Observation(&o));
                    engine.handle(now, o);
                }
            }
        }
    }
    let end = done_at
        .unwrap_or(now)
        .max(world.counters.last_activity.min(now));
    critical.update(
        now.min(end),
        &mut world,
        &mut engine,
        timeline.as_mut().map(Timeline::touched),
    );
    if let Some(tl) = timeline.as_mut() {
        tl.sample(end, &mut world, &mut engine);
    }
    let breakdown = critical.finish(&engine, end);
    Outcome {
        summary: Summary::collect(name, seed, &world, &engine, end, truncated, breakdown),
        timeline,
    }
}
