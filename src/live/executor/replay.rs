//! Recovery by replay: every state change of the driver goes through `apply`, live (after
//! the record is journaled) or when a journal is replayed. Commands the engine emits are
//! journaled live, and matched against the journal in replay. Nothing here calls out.

use super::{io, Live, Op, Replayed, Sending, Unconfirmed};
use crate::engine::{Command, Status};
use crate::error::Failure;
use crate::live::journal::{self, Cmd, Obs, Record};
use crate::scenario::InputError;
use crate::time::Time;

impl Live<'_> {
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
            self.journal.append(&Record::cmd(n, c)).map_err(io)?;
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

    pub(super) fn record(&mut self, r: Record) -> Result<(), Failure> {
        if !self.replaying {
            self.journal.append(&r).map_err(io)?;
        }
        self.apply(&r).map_err(Failure::Runtime)
    }

    /// The one place where state changes, live or in replay.
    pub(super) fn apply(&mut self, r: &Record) -> Result<(), String> {
        match r {
            Record::Tick { t } => {
                self.now = self.now.max(Time(*t));
                self.engine.handle_timeout(self.now);
                self.drain()
            }
            Record::Obs { t, o } => {
                self.now = self.now.max(Time(*t));
                for o in o {
                    let obs = o.to_engine()?;
                    if !self.replaying {
                        self.log_outcome(o);
                    }
                    self.observed(o);
                    self.engine.handle(self.now, obs);
                    self.drain()?;
                }
                Ok(())
            }
            Record::Cmd { n, c } => {
                if !self.replaying {
                    return Ok(());
                }
                for (n, c) in (*n..).zip(c) {
                    match self.expected.pop_front() {
                        Some((m, ref d)) if m == n && d == c => {}
                        Some((m, d)) => {
                            return Err(format!(
                                "the engine re-emitted command {m} {d:?}, but the journal holds command {n} {c:?}"
                            ))
                        }
                        None => {
                            return Err(format!(
                                "the journal holds command {n} {c:?}, which the engine did not emit"
                            ))
                        }
                    }
                }
                Ok(())
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
                self.engine.override_halt(self.now);
                self.drain()
            }
            Record::Done { .. } | Record::Look { .. } => Ok(()),
        }
    }

    /// A gateway's outcome, for JSON logs.
    fn log_outcome(&self, o: &Obs) {
        if !self.opts.log.is_json() {
            return;
        }
        let id = |gw: &u32| self.inv.devices[*gw as usize].id.as_str();
        match o {
            Obs::Succeeded { gw } => self.opts.log.gateway(
                "gateway_succeeded",
                &format!("{}: succeeded", id(gw)),
                &[("gateway", id(gw).into())],
            ),
            Obs::Failed { gw, attempt, cause } => self.opts.log.gateway(
                "gateway_failed",
                &format!("{}: attempt {attempt} failed: {cause}", id(gw)),
                &[
                    ("gateway", id(gw).into()),
                    ("attempt", (*attempt).into()),
                    ("cause", cause.as_str().into()),
                ],
            ),
            _ => {}
        }
    }

    /// The driver's side of an observation (the engine gets it right after).
    pub(super) fn observed(&mut self, o: &Obs) {
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
            Obs::Progress { gw, attempt, phase } => {
                if let Some(op) = self.ops.get_mut(gw) {
                    if op.attempt == *attempt {
                        op.begun = true;
                        if phase == "downloaded" && op.phase == 0 {
                            // Watson: the download is done, the update request comes next.
                            op.phase = 1;
                            op.sending = Sending::Pending;
                        }
                    }
                }
            }
            Obs::Checked { gw, .. } => self.checks.retain(|g| g != gw),
            Obs::Accepted { .. }
            | Obs::Latency { .. }
            | Obs::Approved { .. }
            | Obs::Repaced { .. } => {}
        }
    }

    /// Takes the engine's commands: journals them (live) or queues them for matching (replay),
    /// and applies each to the driver's state. No external call happens here.
    pub(super) fn drain(&mut self) -> Result<(), String> {
        while let Some(cmd) = self.engine.poll_command() {
            let c = Cmd::from(&cmd);
            let n = self.next_cmd;
            self.next_cmd += 1;
            if self.replaying {
                self.expected.push_back((n, c));
            } else {
                self.journal
                    .append(&Record::cmd(n, c))
                    .map_err(|e| format!("journal: {e}"))?;
            }
            self.command(cmd);
        }
        Ok(())
    }

    pub(super) fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Start { gw, attempt } => {
                if let Ok(mut m) = self.metrics.lock() {
                    m.attempt();
                }
                if !self.replaying {
                    let id = self.inv.devices[gw as usize].id.as_str();
                    self.opts.log.gateway(
                        "gateway_started",
                        &format!("{id}: attempt {attempt} started"),
                        &[("gateway", id.into()), ("attempt", attempt.into())],
                    );
                }
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
                        begun: false,
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
                if let Ok(mut m) = self.metrics.lock() {
                    m.wave_released(wave);
                }
                if !self.replaying {
                    self.opts.log.event(
                        "wave_released",
                        &format!(
                            "wave {} released{}: {size} gateways",
                            wave + 1,
                            stage
                                .as_ref()
                                .map(|s| format!(" ({s})"))
                                .unwrap_or_default()
                        ),
                        &[
                            ("wave", (wave + 1).into()),
                            ("stage", stage.into()),
                            ("size", size.into()),
                        ],
                    );
                }
            }
            Command::Halt { reason } => {
                if !self.replaying {
                    self.opts.log.event(
                        "halted",
                        &format!("HALT: {reason}"),
                        &[("reason", journal::halt_kind(&reason).into())],
                    );
                }
            }
            Command::Refit { stage, .. } => {
                if !self.replaying {
                    self.opts.log.event(
                        "refit",
                        &format!("stage `{stage}` complete: fitting its observations and re-tuning the rest"),
                        &[("stage", stage.into())],
                    );
                }
            }
            Command::Paused { stage, .. } => {
                if !self.replaying {
                    self.opts.log.event(
                        "paused",
                        &format!(
                            "PAUSED after stage `{stage}`: approve with `stagger approve --journal {}`",
                            self.journal.path().display()
                        ),
                        &[("stage", stage.into())],
                    );
                }
            }
        }
    }

    /// An attempt the engine is done with; if the platform may still run it, keep watching.
    pub(super) fn retire(&mut self, gw: u32, op: Op) {
        if let Sending::Running(r) = op.sending {
            self.zombies.entry(gw).or_default().push((r, op.phase));
        }
    }
}
