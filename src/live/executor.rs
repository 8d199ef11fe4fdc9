//! The live driver: the same engine as in simulation, fed by a real backend in wall-clock
//! time (sped up by --time-scale for rehearsals). Intents go to the journal before the call,
//! results after. On a resume it reconciles with the backend before issuing anything new.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::backend::{Backend, OpState};
use super::inventory::Inventory;
use super::journal::{self, Journal, Record};
use crate::engine::{Cause, Command, Engine, Facts, Observation, Phase, Policy, Resumed, Status};
use crate::error::Failure;
use crate::time::Time;

pub struct Options {
    pub time_scale: f64,
    /// Backend polling interval in plan time (divided by the time scale).
    pub poll: Time,
    pub seed: u64,
}

/// How a rollout ended.
#[derive(Debug)]
pub struct Report {
    pub succeeded: Vec<String>,
    pub failed: Vec<(String, u32, String)>,
    pub halted: Option<String>,
    pub interrupted: bool,
    pub rollback_needed: Vec<String>,
}

struct Track {
    attempt: u32,
    phase: usize,
    reference: Option<String>,
}

pub struct Live<'a> {
    engine: Engine,
    backend: &'a mut dyn Backend,
    journal: Journal,
    inv: &'a Inventory,
    index: BTreeMap<String, u32>,
    tracks: BTreeMap<u32, Track>,
    start: Instant,
    scale: f64,
    causes: BTreeMap<u32, String>,
    rollback: Vec<String>,
    halted: Option<String>,
}

fn io(e: std::io::Error) -> Failure {
    Failure::Runtime(format!("journal: {e}"))
}

fn backend_err(e: super::backend::BackendError) -> Failure {
    Failure::Runtime(format!("backend: {e}"))
}

impl<'a> Live<'a> {
    pub fn new(
        policy: Policy,
        inv: &'a Inventory,
        backend: &'a mut dyn Backend,
        journal: Journal,
        opts: &Options,
    ) -> Live<'a> {
        let engine = Engine::new(policy, &inv.infos(), opts.seed);
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
            index,
            tracks: BTreeMap::new(),
            start: Instant::now(),
            scale: opts.time_scale,
            causes: BTreeMap::new(),
            rollback: Vec::new(),
            halted: None,
        }
    }

    fn now(&self) -> Time {
        Time((self.start.elapsed().as_secs_f64() * 1000.0 * self.scale) as u64)
    }

    /// Rebuilds state from the journal and the backend before anything new is issued.
    pub fn reconcile(&mut self, records: &[Record]) -> Result<usize, Failure> {
        let states = journal::replay(records);
        let phases = self.backend.phases();
        let mut resumed = 0;
        for (id, st) in states {
            let Some(&g) = self.index.get(&id) else {
                continue;
            };
            let device = self.inv.devices[g as usize].clone();
            resumed += 1;
            match st.result {
                Some(true) => {
                    self.engine.resume(g, Resumed::Succeeded);
                    continue;
                }
                Some(false) => {
                    self.engine.resume(
                        g,
                        Resumed::Tried {
                            attempts: st.attempts,
                        },
                    );
                    continue;
                }
                None => {}
            }
            let mut phase = phases.iter().rposition(|p| st.references.contains_key(*p));
            let mut reference = phase.map(|i| st.references[phases[i]].clone());
            if let Some(p) = &st.unconfirmed {
                // The intent was written, but did the call happen? Ask the backend.
                if let Some(found) = self.backend.find(p, &device).map_err(backend_err)? {
                    let t = self.now().millis();
                    self.journal
                        .write(&Record::Submitted {
                            t,
                            devices: vec![id.clone()],
                            phase: p.clone(),
                            reference: found.clone(),
                        })
                        .map_err(io)?;
                    phase = phases.iter().position(|x| x == p);
                    reference = Some(found);
                } else if phase.is_none() {
                    // Never reached the backend: the attempt was not used.
                    self.engine.resume(
                        g,
                        Resumed::Tried {
                            attempts: st.attempts.saturating_sub(1),
                        },
                    );
                    continue;
                } else {
                    // The first phase ran but the next was never sent: send it again.
                    phase = phases.iter().position(|x| x == p);
                    reference = None;
                }
            }
            let Some(phase) = phase else {
                self.engine.resume(
                    g,
                    Resumed::Tried {
                        attempts: st.attempts.saturating_sub(1),
                    },
                );
                continue;
            };
            self.engine.resume(
                g,
                Resumed::InFlight {
                    attempt: st.attempts.max(1),
                },
            );
            self.tracks.insert(
                g,
                Track {
                    attempt: st.attempts.max(1),
                    phase,
                    reference,
                },
            );
        }
        Ok(resumed)
    }

    fn submit(&mut self, phase: usize, group: Vec<(u32, u32)>) -> Result<(), Failure> {
        if group.is_empty() {
            return Ok(());
        }
        let name = self.backend.phases()[phase];
        let devices: Vec<(&super::inventory::Device, u32)> = group
            .iter()
            .map(|(g, a)| (&self.inv.devices[*g as usize], *a))
            .collect();
        let ids: Vec<String> = devices.iter().map(|(d, _)| d.id.clone()).collect();
        let t = self.now().millis();
        let record = Record::Start {
            t,
            devices: ids.clone(),
            attempts: group.iter().map(|(_, a)| *a).collect(),
            phase: name.into(),
        };
        self.journal.write(&record).map_err(io)?;
        let reference = self.backend.submit(name, &devices).map_err(backend_err)?;
        let t = self.now().millis();
        self.journal
            .write(&Record::Submitted {
                t,
                devices: ids,
                phase: name.into(),
                reference: reference.clone(),
            })
            .map_err(io)?;
        for (g, attempt) in group {
            self.tracks.insert(
                g,
                Track {
                    attempt,
                    phase,
                    reference: Some(reference.clone()),
                },
            );
        }
        Ok(())
    }

    /// Cancels at the backend only the operations whose every tracked device is being
    /// cancelled (a Watson request covers a whole batch). Gateways whose result the engine
    /// still awaits (after a halt) stay tracked until the backend reports them final.
    fn cancel(&mut self, gws: &BTreeSet<u32>) -> Result<(), Failure> {
        if gws.is_empty() {
            return Ok(());
        }
        let refs: BTreeSet<String> = gws
            .iter()
            .filter_map(|g| self.tracks.get(g).and_then(|t| t.reference.clone()))
            .collect();
        for r in refs {
            let all = self
                .tracks
                .iter()
                .filter(|(_, t)| t.reference.as_deref() == Some(r.as_str()))
                .all(|(g, _)| gws.contains(g));
            if all {
                let t = self.now().millis();
                self.journal
                    .write(&Record::Cancel {
                        t,
                        reference: r.clone(),
                    })
                    .map_err(io)?;
                self.backend.cancel(&r).map_err(backend_err)?;
            }
        }
        for g in gws {
            let awaited = self.engine.status(*g) == Status::InFlight
                && self
                    .tracks
                    .get(g)
                    .is_some_and(|t| t.attempt == self.engine.attempts(*g));
            if !awaited {
                self.tracks.remove(g);
            }
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<(), Failure> {
        loop {
            let mut starts = Vec::new();
            let mut cancels = BTreeSet::new();
            let mut checks = Vec::new();
            while let Some(cmd) = self.engine.poll_command() {
                match cmd {
                    Command::Start { gw, attempt } => starts.push((gw, attempt)),
                    // No backend here reports pre-check facts; unknown facts never block.
                    Command::Check { gw } => checks.push(gw),
                    Command::Cancel { gw, attempt } => {
                        if self.tracks.get(&gw).is_some_and(|t| t.attempt == attempt) {
                            cancels.insert(gw);
                        }
                    }
                    Command::Rollback { gw } => {
                        self.rollback.push(self.inv.devices[gw as usize].id.clone())
                    }
                    Command::WaveReleased { wave, stage, size } => {
                        let t = self.now().millis();
                        self.journal
                            .write(&Record::Wave { t, wave, size })
                            .map_err(io)?;
                        eprintln!(
                            "rollout: wave {} released{}: {size} gateways",
                            wave + 1,
                            stage.map(|s| format!(" ({s})")).unwrap_or_default()
                        );
                    }
                    Command::Halt { reason } => {
                        let t = self.now().millis();
                        self.journal
                            .write(&Record::Halt {
                                t,
                                reason: reason.to_string(),
                            })
                            .map_err(io)?;
                        eprintln!("rollout: HALT: {reason}");
                        self.halted = Some(reason.to_string());
                    }
                }
            }
            self.cancel(&cancels)?;
            self.submit(0, starts)?;
            if checks.is_empty() {
                return Ok(());
            }
            let now = self.now();
            for gw in checks {
                self.engine.handle(
                    now,
                    Observation::Checked {
                        gw,
                        facts: Facts::unknown(),
                    },
                );
            }
        }
    }

    fn poll(&mut self) -> Result<(), Failure> {
        let last = self.backend.phases().len() - 1;
        let refs: BTreeSet<String> = self
            .tracks
            .values()
            .filter_map(|t| t.reference.clone())
            .collect();
        let mut next_phase: BTreeMap<usize, Vec<(u32, u32)>> = BTreeMap::new();
        // Tracks whose next phase was never sent (a crash between phases).
        for (g, t) in &self.tracks {
            if t.reference.is_none() {
                next_phase.entry(t.phase).or_default().push((*g, t.attempt));
            }
        }
        for r in refs {
            let statuses = self.backend.status(&r).map_err(backend_err)?;
            for s in statuses {
                let Some(&g) = self.index.get(&s.device) else {
                    continue;
                };
                let Some(tr) = self.tracks.get(&g) else {
                    continue;
                };
                if tr.reference.as_deref() != Some(r.as_str()) {
                    continue;
                }
                let (attempt, phase) = (tr.attempt, tr.phase);
                let now = self.now();
                match s.state {
                    OpState::InProgress => {}
                    OpState::Succeeded if phase < last => {
                        self.engine.handle(
                            now,
                            Observation::Progress {
                                gw: g,
                                attempt,
                                phase: Phase::Downloaded,
                            },
                        );
                        self.tracks.remove(&g);
                        next_phase.entry(phase + 1).or_default().push((g, attempt));
                    }
                    OpState::Succeeded => {
                        self.journal
                            .write(&Record::Result {
                                t: now.millis(),
                                device: s.device.clone(),
                                attempt,
                                ok: true,
                                cause: None,
                            })
                            .map_err(io)?;
                        self.tracks.remove(&g);
                        self.engine.handle(now, Observation::Succeeded { gw: g });
                    }
                    OpState::Failed(why) => {
                        let rec = Record::Result {
                            t: now.millis(),
                            device: s.device.clone(),
                            attempt,
                            ok: false,
                            cause: Some(why.clone()),
                        };
                        self.journal.write(&rec).map_err(io)?;
                        self.tracks.remove(&g);
                        self.causes.insert(g, why);
                        let cause = if phase == 0 {
                            Cause::Download
                        } else {
                            Cause::Install
                        };
                        self.engine.handle(
                            now,
                            Observation::Failed {
                                gw: g,
                                attempt,
                                cause,
                            },
                        );
                    }
                }
            }
        }
        for (phase, group) in next_phase {
            self.submit(phase, group)?;
        }
        Ok(())
    }

    /// Runs until the engine is done, the rollout halts, or `stop` is raised.
    pub fn run(
        &mut self,
        opts: &Options,
        stop: &Arc<AtomicBool>,
        progress: &indicatif::ProgressBar,
    ) -> Result<Report, Failure> {
        self.engine.handle_timeout(self.now());
        let mut next_poll = Time::ZERO;
        let mut interrupted = false;
        loop {
            self.drain()?;
            let now = self.now();
            if now >= next_poll {
                self.poll()?;
                self.drain()?;
                next_poll = self.now() + opts.poll;
            }
            let c = self.engine.counts();
            progress.set_position(u64::from(
                c[Status::Succeeded as usize]
                    + c[Status::Failed as usize]
                    + c[Status::Skipped as usize]
                    + c[Status::RolledBack as usize],
            ));
            progress.set_message(format!(
                "in flight {}  succeeded {}  failed {}  waiting {}",
                self.engine.in_flight(),
                c[Status::Succeeded as usize],
                c[Status::Failed as usize],
                c[Status::Waiting as usize]
                    + c[Status::Ready as usize]
                    + c[Status::RetryWait as usize]
                    + c[Status::Deferred as usize]
            ));
            if self.engine.is_done() {
                let t = self.now().millis();
                self.journal.write(&Record::Done { t }).map_err(io)?;
                break;
            }
            if stop.load(Ordering::SeqCst) {
                interrupted = true;
                break;
            }
            let wake = self
                .engine
                .poll_timeout()
                .unwrap_or(next_poll)
                .min(next_poll);
            let wait_ms = (wake - self.now()).millis() as f64 / self.scale;
            std::thread::sleep(Duration::from_millis(wait_ms.clamp(1.0, 200.0) as u64));
            self.engine.handle_timeout(self.now());
        }
        let mut report = Report {
            succeeded: Vec::new(),
            failed: Vec::new(),
            halted: self.halted.clone(),
            interrupted,
            rollback_needed: self.rollback.clone(),
        };
        for (i, d) in self.inv.devices.iter().enumerate() {
            let g = i as u32;
            match self.engine.status(g) {
                Status::Succeeded => report.succeeded.push(d.id.clone()),
                Status::Failed | Status::Skipped | Status::RolledBack => {
                    let why = self
                        .causes
                        .get(&g)
                        .cloned()
                        .or_else(|| self.engine.cause(g).map(|c| format!("{c:?}")))
                        .unwrap_or_else(|| "not started".into());
                    report
                        .failed
                        .push((d.id.clone(), self.engine.attempts(g), why));
                }
                _ => {}
            }
        }
        Ok(report)
    }
}
