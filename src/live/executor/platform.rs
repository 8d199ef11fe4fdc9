//! The driver's calls to the platform: the survey on start, lookups of unconfirmed
//! requests, group-committed sends, cancels after a halt, and polls that turn platform state
//! into observations. Each is one try; a failure sets a retry timer of the loop.

use std::collections::{BTreeMap, BTreeSet};

use super::{io, Live, Retry, Sending, MAX_AUTH_FAILURES};
use crate::engine::{Cause, Facts, Observation};
use crate::error::Failure;
use crate::live::backend::{Backend, OpState as PlatformState};
use crate::live::http::CallError;
use crate::live::inventory::Device;
use crate::live::journal::{self, Obs, Record};
use crate::live::metrics;
use crate::live::signals::Signal;
use crate::scenario::InputError;

fn cause_of(phase: usize, phases: usize, why: &str) -> Cause {
    match why {
        "TIMED_OUT" => Cause::Timeout,
        "CANCELED" => Cause::Cancelled,
        "REJECTED" | "REMOVED" => Cause::Unreachable,
        _ if phase + 1 < phases => Cause::Download,
        _ => Cause::Install,
    }
}

impl Live<'_> {
    pub(super) fn note_call_error(&mut self, e: &CallError) -> Result<(), Failure> {
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
                self.opts
                    .log
                    .event("backend_retry", &format!("will retry: {e}"), &[]);
            }
        }
        Ok(())
    }

    pub(super) fn call_ok(&mut self) {
        self.reached = true;
        self.auth_failures = 0;
    }

    /// Asks the platform for every operation of this firmware. Unconfirmed sends are
    /// resolved by the intent they carry; operations unknown to the journal become orphans.
    pub(super) fn run_survey(&mut self) -> Result<(), Failure> {
        let wall = self.wall_ms();
        if wall < self.survey.next_ms {
            return Ok(());
        }
        let ops = match self.call("survey", |b| b.survey()) {
            Ok(ops) => ops,
            // A first contact that cannot connect at all is a setup error: say so in seconds.
            Err(e @ CallError::Unreachable(_)) if !self.reached => {
                self.survey.failures += 1;
                if self.survey.failures >= 3 {
                    return Err(Failure::Runtime(format!(
                        "cannot reach the backend ({e}); check --endpoint and the network"
                    )));
                }
                self.survey.next_ms = wall + 1000;
                return Ok(());
            }
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

    pub(super) fn poll_wall_ms(&self) -> u64 {
        ((self.opts.poll.millis() as f64 / self.scale) as u64).max(1)
    }

    /// Answers the engine's pre-checks with the device's facts, where the backend reads
    /// them; elsewhere (an accepted blind rule) the facts are unknown, which never blocks.
    pub(super) fn answer_checks(&mut self) -> Result<(), Failure> {
        let reads = self.backend.signals().contains(&Signal::Prechecks);
        let wall = self.wall_ms();
        if reads && wall < self.facts.next_ms {
            return Ok(());
        }
        for gw in self.checks.clone() {
            let facts = if reads {
                let inv = self.inv;
                match self.call("facts", |b| b.facts(&inv.devices[gw as usize])) {
                    Ok(f) => {
                        self.call_ok();
                        f
                    }
                    Err(e) => {
                        // Asked again later; the gateway waits in its check meanwhile.
                        self.note_call_error(&e)?;
                        let base = self.poll_wall_ms();
                        self.facts.fail(wall, base);
                        return Ok(());
                    }
                }
            } else {
                Facts::unknown()
            };
            let t = self.plan_now().millis();
            self.record(Record::obs(
                t,
                Obs::from(&Observation::Checked { gw, facts }),
            ))?;
        }
        self.facts = Retry::default();
        Ok(())
    }

    pub(super) fn resolve_unconfirmed(&mut self) -> Result<(), Failure> {
        let wall = self.wall_ms();
        let due: Vec<String> = self
            .unconfirmed
            .iter()
            .filter(|(_, u)| u.next_lookup_ms <= wall)
            .map(|(i, _)| i.clone())
            .collect();
        for intent in due {
            let phase = self.unconfirmed.get(&intent).map_or(0, |u| u.phase);
            match self.call("lookup", |b| b.lookup(phase, &intent)) {
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
    pub(super) fn intent(&self, phase: usize, group: &[(u32, u32)]) -> String {
        let mut parts: Vec<Vec<u8>> =
            vec![self.firmware_digest.clone().into_bytes(), vec![phase as u8]];
        for (g, a) in group {
            parts.push(self.inv.devices[*g as usize].id.clone().into_bytes());
            parts.push(a.to_le_bytes().to_vec());
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        journal::digest(&refs)[..24].to_string()
    }

    pub(super) fn send_pending(&mut self) -> Result<(), Failure> {
        let t = self.plan_now().millis();
        // Ops the halt cancelled before they were sent end here.
        let dropped: Vec<(u32, u32)> = self
            .ops
            .iter()
            .filter(|(_, op)| op.cancelled && op.sending == Sending::Pending)
            .map(|(g, op)| (*g, op.attempt))
            .collect();
        for (gw, attempt) in dropped {
            self.record(Record::obs(
                t,
                Obs::Failed {
                    gw,
                    attempt,
                    cause: "cancelled".into(),
                },
            ))?;
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
            let id = &self.inv.devices[gw as usize].id;
            self.opts.log.event(
                "adopted",
                &format!(
                    "{id} already has {reference} on the platform; taken as attempt {attempt}"
                ),
                &[("gateway", id.as_str().into()), ("attempt", attempt.into())],
            );
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
        let now = self.plan_now();
        for (g, op) in &self.ops {
            // One running attempt per gateway: wait for an earlier one to end.
            if op.sending != Sending::Pending
                || self.zombies.contains_key(g)
                || unresolved.contains(g)
            {
                continue;
            }
            // A later phase is the install request of a two-request platform (Watson's
            // update after its download): it waits for the gateway's maintenance window.
            if op.phase > 0 && !self.engine.may_install(*g, now) {
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
    pub(super) fn send(
        &mut self,
        phase: usize,
        group: &[(u32, u32)],
        intent: String,
    ) -> Result<(), Failure> {
        let inv = self.inv;
        let devices: Vec<&Device> = group
            .iter()
            .map(|(g, _)| &inv.devices[*g as usize])
            .collect();
        let result = self.call("submit", |b| b.submit(phase, &intent, &devices));
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
                self.opts.log.event(
                    "ambiguous",
                    &format!(
                        "no clear answer ({m}); will look the request up before anything else"
                    ),
                    &[],
                );
                Ok(())
            }
            Err(
                e @ (CallError::Throttled(_)
                | CallError::Transient(_)
                | CallError::Unreachable(_)
                | CallError::Auth(_)),
            ) => {
                self.note_call_error(&e)?;
                let wall = self.wall_ms();
                let base = self.poll_wall_ms();
                self.sends.fail(wall, base);
                self.record(Record::Lost { t, intent })?;
                if matches!(e, CallError::Throttled(_)) && phase == 0 {
                    // The service refused work: the engine's backoff and window hear of it.
                    for (gw, attempt) in group {
                        self.record(Record::obs(
                            t,
                            Obs::Rejected {
                                gw: *gw,
                                attempt: *attempt,
                            },
                        ))?;
                    }
                }
                Ok(())
            }
            Err(e) => Err(Failure::Input(InputError::new(format!(
                "the backend refused the request: {e}"
            )))),
        }
    }

    pub(super) fn cancel_halted(&mut self) -> Result<(), Failure> {
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
            match self.call("cancel", |b| b.cancel(&r)) {
                Ok(()) => {
                    self.call_ok();
                    self.cancelled_refs.insert(r);
                }
                Err(e) => self.note_call_error(&e)?,
            }
        }
        Ok(())
    }

    pub(super) fn poll_platform(&mut self) -> Result<(), Failure> {
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
        // The round is journaled as a look (at its start) once every ref was read: a ref
        // backing off or failing this round cannot bound when its gateways' work ended.
        let round_start = self.plan_now().millis();
        let mut every_ref_read = !refs.is_empty();
        for r in refs {
            if self.polls.get(&r).is_some_and(|p| p.next_ms > wall) {
                every_ref_read = false;
                continue;
            }
            let asked = std::time::Instant::now();
            let statuses = match self.call("status", |b| b.status(&r)) {
                Ok(s) => {
                    self.call_ok();
                    self.polls.remove(&r);
                    if self.engine.policy().adaptive.is_some() {
                        // The service's response time feeds the adaptive window (real ms).
                        let ms = asked.elapsed().as_secs_f64() * 1000.0;
                        let t = self.plan_now().millis();
                        self.record(Record::obs(t, Obs::Latency { ms }))?;
                    }
                    s
                }
                Err(e) => {
                    every_ref_read = false;
                    self.note_call_error(&e)?;
                    let base = self.poll_wall_ms();
                    self.polls.entry(r.clone()).or_default().fail(wall, base);
                    continue;
                }
            };
            for s in statuses {
                let Some(&gw) = self.index.get(&s.device) else {
                    continue;
                };
                match s.state {
                    PlatformState::Queued => {
                        self.withdraw_if_abandoned(gw, &r)?;
                        continue;
                    }
                    PlatformState::InProgress => {
                        self.note_begun(gw, &r)?;
                        continue;
                    }
                    _ => {}
                }
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
                            let mut cause = cause_of(op.phase, phases, why);
                            let last = op.phase + 1 == phases;
                            if last && self.backend.signals().contains(&Signal::Health) {
                                let device = &self.inv.devices[gw as usize];
                                match self.call("health", |b| b.health_failed(&r, device)) {
                                    Ok(true) => cause = Cause::HealthCheck,
                                    Ok(false) => {}
                                    Err(e) => {
                                        // Judged at the next poll, not guessed now.
                                        every_ref_read = false;
                                        self.note_call_error(&e)?;
                                        continue;
                                    }
                                }
                            }
                            Obs::from(&Observation::Failed {
                                gw,
                                attempt: op.attempt,
                                cause,
                            })
                        }
                        PlatformState::Queued | PlatformState::InProgress => continue,
                    };
                    self.record(Record::obs(t, o))?;
                } else if let Some(phase) = self
                    .zombies
                    .get(&gw)
                    .and_then(|z| z.iter().find(|(x, _)| *x == r))
                    .map(|(_, p)| *p)
                {
                    if s.state == PlatformState::Succeeded && phase + 1 == phases {
                        // A late success: the gateway really is updated.
                        self.record(Record::obs(t, Obs::Succeeded { gw }))?;
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
        if every_ref_read {
            self.record(Record::Look { t: round_start })?;
        }
        Ok(())
    }

    /// The device began the current attempt: the engine's queue timeout no longer applies.
    /// (Watson cannot tell queued from begun: every request in progress counts as begun.)
    fn note_begun(&mut self, gw: u32, reference: &str) -> Result<(), Failure> {
        if self.engine.policy().queue_timeout.is_none() {
            return Ok(());
        }
        let Some(op) = self.ops.get(&gw) else {
            return Ok(());
        };
        if op.begun || op.sending != Sending::Running(reference.to_string()) {
            return Ok(());
        }
        let t = self.plan_now().millis();
        let attempt = op.attempt;
        self.record(Record::obs(
            t,
            Obs::Progress {
                gw,
                attempt,
                phase: "downloading".into(),
            },
        ))
    }

    /// An attempt the engine gave up on that the device never picked up is withdrawn, so
    /// that it ends (CANCELED) and the gateway's next attempt may go.
    fn withdraw_if_abandoned(&mut self, gw: u32, reference: &str) -> Result<(), Failure> {
        let abandoned = self
            .zombies
            .get(&gw)
            .is_some_and(|z| z.iter().any(|(r, _)| r == reference));
        let key = (gw, reference.to_string());
        if !abandoned || !self.backend.can_cancel() || self.withdrawn.contains(&key) {
            return Ok(());
        }
        self.journal.sync().map_err(io)?;
        let device = &self.inv.devices[gw as usize];
        match self.call("cancel_queued", |b| b.cancel_queued(reference, device)) {
            Ok(()) => {
                self.call_ok();
                self.withdrawn.insert(key);
            }
            Err(e) => self.note_call_error(&e)?,
        }
        Ok(())
    }

    /// One backend call, counted and timed for the metrics.
    fn call<T>(
        &mut self,
        op: &'static str,
        f: impl FnOnce(&mut dyn Backend) -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        let t0 = std::time::Instant::now();
        let r = f(&mut *self.backend);
        if let Ok(mut m) = self.metrics.lock() {
            m.request(op, metrics::outcome(&r), t0.elapsed());
        }
        r
    }

    pub(super) fn tick(&mut self) -> Result<(), Failure> {
        let now = self.plan_now();
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.record(Record::Tick { t: now.millis() })?;
        }
        Ok(())
    }
}
