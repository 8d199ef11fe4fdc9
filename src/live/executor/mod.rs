//! The live driver: the same engine as in simulation, fed by a real backend in wall-clock
//! time (sped up by --time-scale for rehearsals). It never decides policy: it journals
//! every input it feeds the engine and every command the engine emits, carries the
//! commands out, and turns platform state back into observations.
//!
//! Recovery is replay: the journal's inputs rebuild the engine exactly (halts, attempt
//! budgets, soak and gate timers, deferrals, the adaptive window), and the re-emitted
//! commands must equal the journaled ones. Then the platform is surveyed for every
//! operation of this firmware, so that nothing the journal lost is triggered twice.
//!
//! Waits are timers of this loop: a failing call is retried later while polls, timers and
//! Ctrl-C go on being served. Only bad input or refused credentials end a rollout early.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};

mod platform;
mod replay;

use super::backend::Backend;
use super::clock::Clock;
use super::inventory::Inventory;
use super::journal::{self, Cmd, Journal, Obs, Record};
use crate::engine::{Engine, Policy, Status};
use crate::error::Failure;
use crate::time::Time;

pub struct Options {
    pub time_scale: f64,
    /// Backend polling interval in plan time (divided by the time scale).
    pub poll: Time,
    /// Wall-clock wait before an ambiguous request is looked up on the platform: longer
    /// than the client's timeout, so that a slow but accepted request has landed.
    pub settle_ms: u64,
    /// Where state changes are logged.
    pub log: crate::live::log::Log,
    /// Re-tunes the rest when the policy's `refit_after` stage completes: given the journal
    /// so far, the plan time and the stage, the pace to go on at.
    pub refit: Option<Box<Refit>>,
}

/// See `Options::refit`.
pub type Refit = dyn FnMut(
    &std::path::Path,
    Time,
    &str,
) -> Result<crate::simulate::Refitted, crate::scenario::InputError>;

/// Consecutive refusals of the credentials after which the rollout stops (exit 1).
const MAX_AUTH_FAILURES: u32 = 5;

/// How a rollout ended.
#[derive(Debug, Default)]
pub struct Report {
    pub succeeded: Vec<String>,
    /// Attempted and given up: device, attempts, why.
    pub failed: Vec<(String, u32, String)>,
    /// Never started (skipped by a halt).
    pub not_started: Vec<String>,
    pub halted: Option<String>,
    pub interrupted: bool,
    /// Gateways that installed the new firmware in a wave that was rolled back.
    pub rollback_needed: Vec<String>,
    /// Plan time from the first start to the last journaled event (seconds).
    pub plan_time_s: f64,
}

/// What replay found.
#[derive(Debug, Default)]
pub struct Replayed {
    pub records: usize,
    pub commands: u64,
    /// The halt in force after replay, if any.
    pub halted: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Sending {
    /// Not sent yet.
    Pending,
    /// Sent; the platform's answer was lost or ambiguous.
    Unconfirmed(String),
    /// The platform has it under this reference.
    Running(String),
}

#[derive(Debug, Clone)]
struct Op {
    attempt: u32,
    phase: usize,
    sending: Sending,
    /// The engine cancelled it (a halt): send nothing more, observe it to its end.
    cancelled: bool,
    /// The device has begun it (reported once, for the engine's queue timeout).
    begun: bool,
}

#[derive(Debug, Clone)]
struct Unconfirmed {
    gws: Vec<u32>,
    phase: usize,
    /// Wall-clock time of the send.
    sent_ms: u64,
    lookups: u32,
    next_lookup_ms: u64,
}

/// A retry timer of the loop.
#[derive(Debug, Clone, Copy, Default)]
struct Retry {
    failures: u32,
    next_ms: u64,
}

impl Retry {
    fn fail(&mut self, now_ms: u64, base_ms: u64) {
        self.failures += 1;
        let factor = 1u64 << self.failures.min(6);
        self.next_ms = now_ms + base_ms.saturating_mul(factor);
    }
}

pub struct Live<'a> {
    engine: Engine,
    backend: &'a mut dyn Backend,
    journal: Journal,
    inv: &'a Inventory,
    clock: &'a dyn Clock,
    index: BTreeMap<String, u32>,
    scale: f64,
    started_ms: u64,
    firmware_digest: String,
    now: Time,
    next_cmd: u64,
    replaying: bool,
    /// Replay: commands the engine re-emitted, waiting to be matched with the journal's.
    expected: VecDeque<(u64, Cmd)>,
    ops: BTreeMap<u32, Op>,
    /// Earlier attempts still running on the platform after the engine gave up on them.
    zombies: BTreeMap<u32, Vec<(String, usize)>>,
    unconfirmed: BTreeMap<String, Unconfirmed>,
    checks: Vec<u32>,
    /// Platform operations of this firmware that the journal does not know, per gateway,
    /// in the platform's order: taken as attempts before anything new is sent.
    orphans: BTreeMap<u32, VecDeque<(usize, String)>>,
    known: BTreeSet<String>,
    cancelled_refs: BTreeSet<String>,
    /// Queued parts of abandoned attempts already withdrawn: (gateway, reference).
    withdrawn: BTreeSet<(u32, String)>,
    polls: BTreeMap<String, Retry>,
    next_poll_ms: u64,
    sends: Retry,
    /// Reading pre-check facts.
    facts: Retry,
    survey: Retry,
    surveyed: bool,
    /// Some call of this run has succeeded.
    reached: bool,
    auth_failures: u32,
    rollback: Vec<u32>,
    opts: Options,
    metrics: crate::live::metrics::Shared,
}

fn io(e: std::io::Error) -> Failure {
    Failure::Runtime(format!("journal: {e}"))
}

impl<'a> Live<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        policy: Policy,
        inv: &'a Inventory,
        backend: &'a mut dyn Backend,
        journal: Journal,
        header: &journal::Header,
        clock: &'a dyn Clock,
        opts: Options,
    ) -> Live<'a> {
        let mut policy = policy;
        if let Some(m) = policy.maintenance.as_mut() {
            // Windows are UTC times of day; plan time zero is the journaled first start, so
            // a replay places every window where the first run did.
            m.region_names = inv.regions.clone();
            m.epoch_ms_of_day = header.started_unix_ms % (24 * 3600 * 1000);
        }
        let engine = Engine::new(policy, &inv.infos(), header.seed);
        let index = inv
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.clone(), i as u32))
            .collect();
        Live {
            engine,
            backend,
            journal,
            inv,
            clock,
            index,
            scale: opts.time_scale,
            started_ms: header.started_unix_ms,
            firmware_digest: header.firmware_digest.clone(),
            now: Time::ZERO,
            next_cmd: 0,
            replaying: false,
            expected: VecDeque::new(),
            ops: BTreeMap::new(),
            zombies: BTreeMap::new(),
            withdrawn: BTreeSet::new(),
            unconfirmed: BTreeMap::new(),
            checks: Vec::new(),
            orphans: BTreeMap::new(),
            known: BTreeSet::new(),
            cancelled_refs: BTreeSet::new(),
            polls: BTreeMap::new(),
            next_poll_ms: 0,
            sends: Retry::default(),
            facts: Retry::default(),
            survey: Retry::default(),
            surveyed: false,
            reached: false,
            auth_failures: 0,
            rollback: Vec::new(),
            opts,
            metrics: Default::default(),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The rollout's metrics, for a `/metrics` server.
    pub fn metrics(&self) -> crate::live::metrics::Shared {
        std::sync::Arc::clone(&self.metrics)
    }

    fn wall_ms(&self) -> u64 {
        self.clock.unix_ms()
    }

    /// Plan time now: wall-clock time since the rollout first started, times the scale,
    /// never before the last input (so timers keep counting across restarts).
    fn plan_now(&self) -> Time {
        let wall = self.wall_ms().saturating_sub(self.started_ms) as f64 * self.scale;
        self.now.max(Time(wall as u64))
    }

    /// Wall-clock time of a plan time.
    fn wall_of(&self, t: u64) -> u64 {
        self.started_ms + (t as f64 / self.scale) as u64
    }

    /// One round of the loop; returns whether the rollout has nothing left to do.
    pub fn step(&mut self) -> Result<bool, Failure> {
        if !self.surveyed {
            self.run_survey()?;
        }
        // Observe first, then act on everything observed in one group-committed round.
        self.resolve_unconfirmed()?;
        self.poll_platform()?;
        self.tick()?;
        self.take_approval()?;
        self.take_refit()?;
        self.answer_checks()?;
        self.send_pending()?;
        self.cancel_halted()?;
        Ok(self.surveyed
            && self.engine.is_done()
            && self.ops.is_empty()
            && self.zombies.is_empty()
            && self.unconfirmed.is_empty())
    }

    /// An operator's approval of the gate the rollout is paused at, journaled as an input.
    fn take_approval(&mut self) -> Result<(), Failure> {
        let Some((wave, stage)) = self.engine.paused() else {
            return Ok(());
        };
        if crate::live::approvals::approved(self.journal.path(), stage) {
            self.opts.log.event(
                "approved",
                &format!("stage `{stage}` approved; going on"),
                &[("stage", stage.into())],
            );
            let t = self.plan_now().millis();
            self.record(Record::obs(t, Obs::Approved { wave }))?;
        }
        Ok(())
    }

    /// The refit after a completed stage: the journal so far is fitted, and the pace chosen
    /// for the rest is journaled as an input, so a resume replays it rather than refitting.
    fn take_refit(&mut self) -> Result<(), Failure> {
        let Some((wave, stage)) = self.engine.refitting() else {
            return Ok(());
        };
        let stage = stage.to_string();
        let t = self.plan_now();
        self.journal.sync().map_err(io)?;
        let path = self.journal.path().to_path_buf();
        let refitted = match self.opts.refit.as_mut() {
            Some(refit) => refit(&path, t, &stage).map_err(Failure::Input)?,
            None => {
                return Err(Failure::Runtime(format!(
                    "the journal's rollout re-tunes after stage `{stage}`: resume it with --refit-after {stage}"
                )))
            }
        };
        let pace_milli = crate::engine::pace_milli(refitted.pace);
        self.opts.log.event(
            "refitted",
            &format!(
                "re-tuned after stage `{stage}`: the stage looks {} than the plan assumed; going on at {:.2}× pace ({}){}",
                refitted.leaning.name(),
                refitted.pace,
                refitted.why,
                if refitted.adopted.is_empty() {
                    String::new()
                } else {
                    format!("; fitted and used: {}", refitted.adopted.join(", "))
                }
            ),
            &[
                ("stage", stage.as_str().into()),
                ("pace", refitted.pace.into()),
            ],
        );
        self.record(Record::obs(t.millis(), Obs::Repaced { wave, pace_milli }))
    }

    /// When the loop next has something to do (wall ms).
    fn next_wake(&mut self) -> u64 {
        let mut wake = self.next_poll_ms;
        if let Some(t) = self.engine.poll_timeout() {
            wake = wake.min(self.wall_of(t.millis()));
        }
        if !self.surveyed {
            wake = wake.min(self.survey.next_ms);
        }
        for u in self.unconfirmed.values() {
            wake = wake.min(u.next_lookup_ms);
        }
        if !self.checks.is_empty() {
            wake = wake.min(self.facts.next_ms);
        }
        let pending = self.ops.values().any(|op| op.sending == Sending::Pending);
        if pending {
            wake = wake.min(self.sends.next_ms);
        }
        wake
    }

    /// Runs until the engine is done, or `stop` is raised.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        progress: &indicatif::ProgressBar,
    ) -> Result<Report, Failure> {
        let mut interrupted = false;
        loop {
            let done = self.step()?;
            self.journal.sync().map_err(io)?;
            let c = self.engine.counts();
            if let Ok(mut m) = self.metrics.lock() {
                m.set_gateways(c, self.engine.halted().is_some());
            }
            progress.set_position(u64::from(
                c[Status::Succeeded as usize]
                    + c[Status::Failed as usize]
                    + c[Status::Skipped as usize]
                    + c[Status::RolledBack as usize],
            ));
            progress.set_message(format!(
                "in flight {}  succeeded {}  failed {}",
                self.engine.in_flight(),
                c[Status::Succeeded as usize],
                c[Status::Failed as usize],
            ));
            if done {
                let t = self.plan_now().millis();
                self.record(Record::Done { t })?;
                self.journal.sync().map_err(io)?;
                break;
            }
            if stop.load(Ordering::SeqCst) {
                interrupted = true;
                break;
            }
            self.wait();
        }
        Ok(self.report(interrupted))
    }

    /// Sleeps until the loop next has something to do.
    pub fn wait(&mut self) {
        let wait = self.next_wake().saturating_sub(self.wall_ms());
        self.clock.sleep_ms(wait.clamp(1, self.clock.max_nap_ms()));
    }

    /// Ends like a kill -9: whatever was not yet synced to the journal is lost. For tests.
    pub fn crash(self) {
        self.journal.crash();
    }

    /// Gateways with an operation the platform may still be running.
    pub fn in_flight(&self) -> Vec<String> {
        let mut gws: BTreeSet<u32> = self.ops.keys().copied().collect();
        gws.extend(self.zombies.keys().copied());
        gws.iter()
            .map(|g| self.inv.devices[*g as usize].id.clone())
            .collect()
    }

    pub fn report(&self, interrupted: bool) -> Report {
        let mut report = Report {
            plan_time_s: self.now.secs(),
            halted: self.engine.halted().map(ToString::to_string),
            interrupted,
            rollback_needed: self
                .rollback
                .iter()
                .map(|g| self.inv.devices[*g as usize].id.clone())
                .collect(),
            ..Report::default()
        };
        for (i, d) in self.inv.devices.iter().enumerate() {
            let g = i as u32;
            let attempts = self.engine.attempts(g);
            match self.engine.status(g) {
                Status::Succeeded => report.succeeded.push(d.id.clone()),
                Status::RolledBack => {
                    // It did install the new firmware; the rollback list says so.
                    report.succeeded.push(d.id.clone())
                }
                Status::Skipped if attempts == 0 => report.not_started.push(d.id.clone()),
                Status::Failed | Status::Skipped => {
                    let why = self
                        .engine
                        .cause(g)
                        .map_or_else(|| "stopped by the halt".into(), |c| format!("{c:?}"));
                    report.failed.push((d.id.clone(), attempts, why));
                }
                _ => {}
            }
        }
        report
    }
}
