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

use super::backend::{Backend, OpState as PlatformState};
use super::clock::Clock;
use super::http::CallError;
use super::inventory::Inventory;
use super::journal::{self, Cmd, Journal, Obs, Record};
use crate::engine::{Cause, Command, Engine, Facts, Policy, Status};
use crate::error::Failure;
use crate::scenario::InputError;
use crate::time::Time;

pub struct Options {
    pub time_scale: f64,
    /// Backend polling interval in plan time (divided by the time scale).
    pub poll: Time,
    /// Wall-clock wait before an ambiguous request is looked up on the platform: longer
    /// than the client's timeout, so that a slow but accepted request has landed.
    pub settle_ms: u64,
    /// Print state changes on stderr.
    pub log: bool,
}

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
    polls: BTreeMap<String, Retry>,
    next_poll_ms: u64,
    sends: Retry,
    survey: Retry,
    surveyed: bool,
    auth_failures: u32,
    rollback: Vec<u32>,
    halted: Option<String>,
    opts: Options,
}

fn io(e: std::io::Error) -> Failure {
    Failure::Runtime(format!("journal: {e}"))
}

fn cause_of(phase: usize, phases: usize, why: &str) -> Cause {
    match why {
        "TIMED_OUT" => Cause::Timeout,
        "CANCELED" => Cause::Cancelled,
        "REJECTED" | "REMOVED" => Cause::Unreachable,
        _ if phase + 1 < phases => Cause::Download,
        _ => Cause::Install,
    }
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
            unconfirmed: BTreeMap::new(),
            checks: Vec::new(),
            orphans: BTreeMap::new(),
            known: BTreeSet::new(),
            cancelled_refs: BTreeSet::new(),
            polls: BTreeMap::new(),
            next_poll_ms: 0,
            sends: Retry::default(),
            survey: Retry::default(),
            surveyed: false,
            auth_failures: 0,
            rollback: Vec::new(),
            halted: None,
            opts,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
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

    /// Rebuilds the engine and the driver from the journal's records.
    pub fn replay(&mut self, records: &[(usize, Record)]) -> Result<Replayed, Failure> {
        self.replaying = true;
        for (line, r) in records {
            self.apply(r).map_err(|m| {
                let mut e = InputError::new(format!(
                    "{m}; the journal does not replay under this plan and this stagger (use the original plan, or a new --journal)"
                ));
                e.line = Some(*line);
                e.in_file(&self.journal.path().display().to_string())
            })?;
        }
        self.replaying = false;
        // Commands emitted after the last durable record were never acted on: journal them now.
        while let Some((n, c)) = self.expected.pop_front() {
            self.journal.append(&Record::Cmd { n, c }).map_err(io)?;
        }
        Ok(Replayed {
            records: records.len(),
            commands: self.next_cmd,
            halted: self
                .engine
                .halted()
                .map(|h| (journal::halt_kind(h).to_string(), h.to_string())),
        })
    }

    /// Overrides the halt in force, journaled so that every later replay does the same.
    pub fn override_halt(&mut self, kind: &str) -> Result<(), Failure> {
        let t = self.plan_now();
        self.record(Record::Override {
            t: t.millis(),
            reason: kind.to_string(),
        })
    }

    fn record(&mut self, r: Record) -> Result<(), Failure> {
        if !self.replaying {
            self.journal.append(&r).map_err(io)?;
        }
        self.apply(&r).map_err(Failure::Runtime)
    }

    /// The one place where state changes, live or in replay.
    fn apply(&mut self, r: &Record) -> Result<(), String> {
        match r {
            Record::Tick { t } => {
                self.now = self.now.max(Time(*t));
                self.engine.handle_timeout(self.now);
                self.drain()
            }
            Record::Obs { t, o } => {
                self.now = self.now.max(Time(*t));
                let obs = o.to_engine()?;
                self.observed(o);
                self.engine.handle(self.now, obs);
                self.drain()
            }
            Record::Cmd { n, c } => {
                if !self.replaying {
                    return Ok(());
                }
                match self.expected.pop_front() {
                    Some((m, ref d)) if m == *n && d == c => Ok(()),
                    Some((m, d)) => Err(format!(
                        "the engine re-emitted command {m} {d:?}, but the journal holds command {n} {c:?}"
                    )),
                    None => Err(format!(
                        "the journal holds command {n} {c:?}, which the engine did not emit"
                    )),
                }
            }
            Record::Send {
                t,
                intent,
                phase,
                gws,
                attempts,
            } => {
                for (g, a) in gws.iter().zip(attempts) {
                    if let Some(op) = self.ops.get_mut(g) {
                        if op.attempt == *a {
                            op.phase = usize::from(*phase);
                            op.sending = Sending::Unconfirmed(intent.clone());
                        }
                    }
                }
                let sent_ms = self.wall_of(*t);
                self.unconfirmed.insert(
                    intent.clone(),
                    Unconfirmed {
                        gws: gws.clone(),
                        phase: usize::from(*phase),
                        sent_ms,
                        lookups: 0,
                        next_lookup_ms: sent_ms + self.opts.settle_ms,
                    },
                );
                Ok(())
            }
            Record::Sent {
                intent, reference, ..
            } => {
                let (gws, phase) = self
                    .unconfirmed
                    .remove(intent)
                    .map(|u| (u.gws, u.phase))
                    .unwrap_or_default();
                for g in gws {
                    match self.ops.get_mut(&g) {
                        Some(op) if op.sending == Sending::Unconfirmed(intent.clone()) => {
                            op.sending = Sending::Running(reference.clone());
                        }
                        // The engine moved on meanwhile: the platform still runs it.
                        _ => self
                            .zombies
                            .entry(g)
                            .or_default()
                            .push((reference.clone(), phase)),
                    }
                }
                self.known.insert(reference.clone());
                Ok(())
            }
            Record::Lost { intent, .. } => {
                self.unconfirmed.remove(intent);
                for op in self.ops.values_mut() {
                    if op.sending == Sending::Unconfirmed(intent.clone()) {
                        op.sending = Sending::Pending;
                    }
                }
                Ok(())
            }
            Record::Adopt {
                gw,
                attempt,
                phase,
                reference,
                ..
            } => {
                if let Some(op) = self.ops.get_mut(gw) {
                    if op.attempt == *attempt {
                        op.phase = usize::from(*phase);
                        op.sending = Sending::Running(reference.clone());
                    }
                }
                if let Some(q) = self.orphans.get_mut(gw) {
                    q.retain(|(_, r)| r != reference);
                }
                self.known.insert(reference.clone());
                Ok(())
            }
            Record::Ended { gw, reference, .. } => {
                if let Some(z) = self.zombies.get_mut(gw) {
                    z.retain(|(r, _)| r != reference);
                    if z.is_empty() {
                        self.zombies.remove(gw);
                    }
                }
                Ok(())
            }
            Record::Override { t, .. } => {
                self.now = self.now.max(Time(*t));
                self.halted = None;
                self.engine.override_halt(self.now);
                self.drain()
            }
            Record::Done { .. } => Ok(()),
        }
    }

    /// The driver's side of an observation (the engine gets it right after).
    fn observed(&mut self, o: &Obs) {
        match o {
            Obs::Succeeded { gw } => {
                self.ops.remove(gw);
                self.zombies.remove(gw);
            }
            Obs::Failed { gw, attempt, .. } | Obs::Rejected { gw, attempt } => {
                if self.ops.get(gw).is_some_and(|op| op.attempt == *attempt) {
                    self.ops.remove(gw);
                }
            }
            Obs::Progress { gw, attempt, .. } => {
                if let Some(op) = self.ops.get_mut(gw) {
                    if op.attempt == *attempt && op.phase == 0 {
                        op.phase = 1;
                        op.sending = Sending::Pending;
                    }
                }
            }
            Obs::Checked { gw, .. } => self.checks.retain(|g| g != gw),
            Obs::Accepted { .. } | Obs::Latency { .. } => {}
        }
    }

    /// Takes the engine's commands: journals them (live) or queues them for matching (replay),
    /// and applies each to the driver's state. No external call happens here.
    fn drain(&mut self) -> Result<(), String> {
        while let Some(cmd) = self.engine.poll_command() {
            let c = Cmd::from(&cmd);
            let n = self.next_cmd;
            self.next_cmd += 1;
            if self.replaying {
                self.expected.push_back((n, c));
            } else {
                self.journal
                    .append(&Record::Cmd { n, c })
                    .map_err(|e| format!("journal: {e}"))?;
            }
            self.command(cmd);
        }
        Ok(())
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Start { gw, attempt } => {
                if let Some(old) = self.ops.remove(&gw) {
                    self.retire(gw, old);
                }
                self.ops.insert(
                    gw,
                    Op {
                        attempt,
                        phase: 0,
                        sending: Sending::Pending,
                        cancelled: false,
                    },
                );
            }
            Command::Check { gw } => self.checks.push(gw),
            Command::Cancel { gw, attempt } => {
                if self.ops.get(&gw).is_none_or(|op| op.attempt != attempt) {
                    return;
                }
                if self.engine.status(gw) == Status::InFlight && self.engine.attempts(gw) == attempt
                {
                    // A halt: the engine still awaits this attempt's end.
                    if let Some(op) = self.ops.get_mut(&gw) {
                        op.cancelled = true;
                    }
                } else if let Some(old) = self.ops.remove(&gw) {
                    // A timeout: the engine gave up, but the device may still be working.
                    self.retire(gw, old);
                }
            }
            Command::Rollback { gw } => self.rollback.push(gw),
            Command::WaveReleased { wave, stage, size } => {
                if self.opts.log && !self.replaying {
                    eprintln!(
                        "rollout: wave {} released{}: {size} gateways",
                        wave + 1,
                        stage.map(|s| format!(" ({s})")).unwrap_or_default()
                    );
                }
            }
            Command::Halt { reason } => {
                if self.opts.log && !self.replaying {
                    eprintln!("rollout: HALT: {reason}");
                }
                self.halted = Some(reason.to_string());
            }
        }
    }

    /// An attempt the engine is done with; if the platform may still run it, keep watching.
    fn retire(&mut self, gw: u32, op: Op) {
        if let Sending::Running(r) = op.sending {
            self.zombies.entry(gw).or_default().push((r, op.phase));
        }
    }

    fn note_call_error(&mut self, e: &CallError) -> Result<(), Failure> {
        match e {
            CallError::Auth(m) => {
                self.auth_failures += 1;
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    return Err(Failure::Runtime(format!(
                        "the backend keeps refusing the credentials ({m}); check them and re-run the same command to resume"
                    )));
                }
            }
            _ => {
                if self.opts.log {
                    eprintln!("rollout: will retry: {e}");
                }
            }
        }
        Ok(())
    }

    fn call_ok(&mut self) {
        self.auth_failures = 0;
    }

    /// Asks the platform for every operation of this firmware. Unconfirmed sends are
    /// resolved by the intent they carry; operations unknown to the journal become orphans.
    fn run_survey(&mut self) -> Result<(), Failure> {
        let wall = self.wall_ms();
        if wall < self.survey.next_ms {
            return Ok(());
        }
        let ops = match self.backend.survey() {
            Ok(ops) => ops,
            Err(e) => {
                self.note_call_error(&e)?;
                let base = self.poll_wall_ms();
                self.survey.fail(wall, base);
                return Ok(());
            }
        };
        self.call_ok();
        let t = self.plan_now().millis();
        for op in ops {
            if let Some(intent) = op
                .intent
                .as_ref()
                .filter(|i| self.unconfirmed.contains_key(*i))
            {
                self.record(Record::Sent {
                    t,
                    intent: intent.clone(),
                    reference: op.reference.clone(),
                })?;
                continue;
            }
            if self.known.contains(&op.reference) {
                continue;
            }
            for d in &op.devices {
                if let Some(&g) = self.index.get(&d.device) {
                    self.orphans
                        .entry(g)
                        .or_default()
                        .push_back((op.phase, op.reference.clone()));
                }
            }
        }
        // What the survey did not find is looked up again once it has had time to land.
        for u in self.unconfirmed.values_mut() {
            u.lookups = u.lookups.max(1);
            u.next_lookup_ms = u.next_lookup_ms.max(wall);
        }
        self.surveyed = true;
        Ok(())
    }

    fn poll_wall_ms(&self) -> u64 {
        ((self.opts.poll.millis() as f64 / self.scale) as u64).max(1)
    }

    fn answer_checks(&mut self) -> Result<(), Failure> {
        // No backend here reports pre-check facts yet; unknown facts never block.
        for gw in std::mem::take(&mut self.checks) {
            let t = self.plan_now().millis();
            self.record(Record::Obs {
                t,
                o: Obs::from(&crate::engine::Observation::Checked {
                    gw,
                    facts: Facts::unknown(),
                }),
            })?;
        }
        Ok(())
    }

    fn resolve_unconfirmed(&mut self) -> Result<(), Failure> {
        let wall = self.wall_ms();
        let due: Vec<String> = self
            .unconfirmed
            .iter()
            .filter(|(_, u)| u.next_lookup_ms <= wall)
            .map(|(i, _)| i.clone())
            .collect();
        for intent in due {
            let phase = self.unconfirmed.get(&intent).map_or(0, |u| u.phase);
            match self.backend.lookup(phase, &intent) {
                Ok(Some(reference)) => {
                    self.call_ok();
                    let t = self.plan_now().millis();
                    self.record(Record::Sent {
                        t,
                        intent,
                        reference,
                    })?;
                }
                Ok(None) => {
                    self.call_ok();
                    let settle = self.opts.settle_ms;
                    let Some(u) = self.unconfirmed.get_mut(&intent) else {
                        continue;
                    };
                    u.lookups += 1;
                    if u.lookups >= 2 && wall >= u.sent_ms + settle {
                        let t = self.plan_now().millis();
                        self.record(Record::Lost { t, intent })?;
                    } else {
                        u.next_lookup_ms = wall + settle;
                    }
                }
                Err(e) => {
                    self.note_call_error(&e)?;
                    let settle = self.opts.settle_ms;
                    if let Some(u) = self.unconfirmed.get_mut(&intent) {
                        u.next_lookup_ms = wall + settle;
                    }
                }
            }
        }
        Ok(())
    }

    /// Intent id of a request: a digest of everything that defines it, so that the same
    /// request after a crash or a lost journal carries the same key.
    fn intent(&self, phase: usize, group: &[(u32, u32)]) -> String {
        let mut parts: Vec<Vec<u8>> =
            vec![self.firmware_digest.clone().into_bytes(), vec![phase as u8]];
        for (g, a) in group {
            parts.push(self.inv.devices[*g as usize].id.clone().into_bytes());
            parts.push(a.to_le_bytes().to_vec());
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        journal::digest(&refs)[..24].to_string()
    }

    fn send_pending(&mut self) -> Result<(), Failure> {
        let t = self.plan_now().millis();
        // Ops the halt cancelled before they were sent end here.
        let dropped: Vec<(u32, u32)> = self
            .ops
            .iter()
            .filter(|(_, op)| op.cancelled && op.sending == Sending::Pending)
            .map(|(g, op)| (*g, op.attempt))
            .collect();
        for (gw, attempt) in dropped {
            self.record(Record::Obs {
                t,
                o: Obs::Failed {
                    gw,
                    attempt,
                    cause: "cancelled".into(),
                },
            })?;
        }
        if !self.surveyed || self.wall_ms() < self.sends.next_ms {
            return Ok(());
        }
        // Take what the platform already has (crash or lost journal) before sending anything.
        let adoptable: Vec<(u32, u32, usize, String)> = self
            .ops
            .iter()
            .filter(|(_, op)| op.sending == Sending::Pending)
            .filter_map(|(g, op)| {
                let (phase, r) = self.orphans.get(g)?.front()?;
                (*phase == op.phase).then(|| (*g, op.attempt, op.phase, r.clone()))
            })
            .collect();
        for (gw, attempt, phase, reference) in adoptable {
            if self.opts.log {
                eprintln!(
                    "rollout: {} already has {} on the platform; taken as attempt {attempt}",
                    self.inv.devices[gw as usize].id, reference
                );
            }
            self.record(Record::Adopt {
                t,
                gw,
                attempt,
                phase: phase as u8,
                reference,
            })?;
        }
        // An earlier request whose fate is still unknown may be running on these gateways.
        let unresolved: BTreeSet<u32> = self
            .unconfirmed
            .values()
            .flat_map(|u| u.gws.iter().copied())
            .collect();
        let mut groups: BTreeMap<(usize, String), Vec<(u32, u32)>> = BTreeMap::new();
        for (g, op) in &self.ops {
            // One running attempt per gateway: wait for an earlier one to end.
            if op.sending != Sending::Pending
                || self.zombies.contains_key(g)
                || unresolved.contains(g)
            {
                continue;
            }
            let key = self.backend.batch_key(&self.inv.devices[*g as usize]);
            groups
                .entry((op.phase, key))
                .or_default()
                .push((*g, op.attempt));
        }
        let max = self.backend.max_batch().max(1);
        let batches: Vec<(usize, Vec<(u32, u32)>)> = groups
            .into_iter()
            .flat_map(|((phase, _), all)| {
                all.chunks(max)
                    .map(|c| (phase, c.to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect();
        if batches.is_empty() {
            return Ok(());
        }
        // Group commit: every intent of this round is on disk before the platform hears of any.
        let mut intents = Vec::new();
        for (phase, group) in &batches {
            let intent = self.intent(*phase, group);
            self.record(Record::Send {
                t,
                intent: intent.clone(),
                phase: *phase as u8,
                gws: group.iter().map(|(g, _)| *g).collect(),
                attempts: group.iter().map(|(_, a)| *a).collect(),
            })?;
            intents.push(intent);
        }
        self.journal.sync().map_err(io)?;
        for ((phase, group), intent) in batches.iter().zip(intents) {
            if self.wall_ms() < self.sends.next_ms {
                // Backing off: these were never sent.
                let t = self.plan_now().millis();
                self.record(Record::Lost { t, intent })?;
                continue;
            }
            self.send(*phase, group, intent)?;
        }
        Ok(())
    }

    /// Sends one request whose intent is already journaled, and journals the outcome.
    fn send(&mut self, phase: usize, group: &[(u32, u32)], intent: String) -> Result<(), Failure> {
        let devices: Vec<&super::inventory::Device> = group
            .iter()
            .map(|(g, _)| &self.inv.devices[*g as usize])
            .collect();
        let result = self.backend.submit(phase, &intent, &devices);
        let t = self.plan_now().millis();
        match result {
            Ok(reference) => {
                self.call_ok();
                self.sends = Retry::default();
                self.record(Record::Sent {
                    t,
                    intent,
                    reference,
                })
            }
            // May have been created: it stays unconfirmed until it is looked up.
            Err(CallError::Ambiguous(m)) => {
                if self.opts.log {
                    eprintln!("rollout: no clear answer ({m}); will look the request up before anything else");
                }
                Ok(())
            }
            Err(e @ (CallError::Throttled(_) | CallError::Transient(_) | CallError::Auth(_))) => {
                self.note_call_error(&e)?;
                let wall = self.wall_ms();
                let base = self.poll_wall_ms();
                self.sends.fail(wall, base);
                self.record(Record::Lost { t, intent })?;
                if matches!(e, CallError::Throttled(_)) && phase == 0 {
                    // The service refused work: the engine's backoff and window hear of it.
                    for (gw, attempt) in group {
                        self.record(Record::Obs {
                            t,
                            o: Obs::Rejected {
                                gw: *gw,
                                attempt: *attempt,
                            },
                        })?;
                    }
                }
                Ok(())
            }
            Err(e) => Err(Failure::Input(InputError::new(format!(
                "the backend refused the request: {e}"
            )))),
        }
    }

    fn cancel_halted(&mut self) -> Result<(), Failure> {
        if !self.backend.can_cancel() {
            return Ok(());
        }
        let mut by_ref: BTreeMap<String, bool> = BTreeMap::new();
        for op in self.ops.values() {
            if let Sending::Running(r) = &op.sending {
                let all = by_ref.entry(r.clone()).or_insert(true);
                *all &= op.cancelled;
            }
        }
        for (r, all) in by_ref {
            if !all || self.cancelled_refs.contains(&r) {
                continue;
            }
            self.journal.sync().map_err(io)?;
            match self.backend.cancel(&r) {
                Ok(()) => {
                    self.call_ok();
                    self.cancelled_refs.insert(r);
                }
                Err(e) => self.note_call_error(&e)?,
            }
        }
        Ok(())
    }

    fn poll_platform(&mut self) -> Result<(), Failure> {
        let wall = self.wall_ms();
        if wall < self.next_poll_ms {
            return Ok(());
        }
        self.next_poll_ms = wall + self.poll_wall_ms();
        let mut refs: BTreeSet<String> = self
            .ops
            .values()
            .filter_map(|op| match &op.sending {
                Sending::Running(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        refs.extend(self.zombies.values().flatten().map(|(r, _)| r.clone()));
        let phases = self.backend.phases().len();
        for r in refs {
            if self.polls.get(&r).is_some_and(|p| p.next_ms > wall) {
                continue;
            }
            let statuses = match self.backend.status(&r) {
                Ok(s) => {
                    self.call_ok();
                    self.polls.remove(&r);
                    s
                }
                Err(e) => {
                    self.note_call_error(&e)?;
                    let base = self.poll_wall_ms();
                    self.polls.entry(r.clone()).or_default().fail(wall, base);
                    continue;
                }
            };
            for s in statuses {
                if !s.state.is_terminal() {
                    continue;
                }
                let Some(&gw) = self.index.get(&s.device) else {
                    continue;
                };
                let t = self.plan_now().millis();
                let current = self
                    .ops
                    .get(&gw)
                    .filter(|op| op.sending == Sending::Running(r.clone()))
                    .cloned();
                if let Some(op) = current {
                    let o = match &s.state {
                        PlatformState::Succeeded if op.phase + 1 < phases => {
                            if op.cancelled {
                                Obs::Failed {
                                    gw,
                                    attempt: op.attempt,
                                    cause: "cancelled".into(),
                                }
                            } else {
                                Obs::Progress {
                                    gw,
                                    attempt: op.attempt,
                                    phase: "downloaded".into(),
                                }
                            }
                        }
                        PlatformState::Succeeded => Obs::Succeeded { gw },
                        PlatformState::Failed(why) => {
                            let cause = cause_of(op.phase, phases, why);
                            Obs::from(&crate::engine::Observation::Failed {
                                gw,
                                attempt: op.attempt,
                                cause,
                            })
                        }
                        PlatformState::InProgress => continue,
                    };
                    self.record(Record::Obs { t, o })?;
                } else if let Some(phase) = self
                    .zombies
                    .get(&gw)
                    .and_then(|z| z.iter().find(|(x, _)| *x == r))
                    .map(|(_, p)| *p)
                {
                    if s.state == PlatformState::Succeeded && phase + 1 == phases {
                        // A late success: the gateway really is updated.
                        self.record(Record::Obs {
                            t,
                            o: Obs::Succeeded { gw },
                        })?;
                    } else {
                        self.record(Record::Ended {
                            t,
                            gw,
                            reference: r.clone(),
                        })?;
                    }
                }
            }
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), Failure> {
        let now = self.plan_now();
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.record(Record::Tick { t: now.millis() })?;
        }
        Ok(())
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
        self.answer_checks()?;
        self.send_pending()?;
        self.cancel_halted()?;
        Ok(self.surveyed
            && self.engine.is_done()
            && self.ops.is_empty()
            && self.zombies.is_empty()
            && self.unconfirmed.is_empty())
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
            halted: self.halted.clone(),
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
