//! Progress of a rollout read off its journal alone (no lock, no platform calls), so that
//! it can be asked while the rollout runs: waves released, each gateway's latest state,
//! attempts, and whether it halted or finished.

use std::collections::BTreeMap;

use serde::Serialize;

use super::journal::{Cmd, Obs, Parsed, Record};

/// A gateway's latest state as the journal shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Its pre-checks were asked for.
    Checking,
    /// An attempt was started and has not ended.
    InFlight,
    /// The last attempt failed (the engine may retry it, within the plan's budget).
    Failed,
    Succeeded,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Checking => "checking",
            State::InFlight => "in flight",
            State::Failed => "failed (last attempt)",
            State::Succeeded => "succeeded",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Wave {
    /// 1-based.
    pub wave: usize,
    pub stage: Option<String>,
    pub size: usize,
    /// Plan time of the release, seconds.
    pub released_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub plan: String,
    pub backend: String,
    pub endpoint: String,
    pub firmware_version: String,
    pub devices: usize,
    pub started_unix_ms: u64,
    /// Plan time of the last journaled event, seconds.
    pub plan_time_s: f64,
    pub finished: bool,
    /// `kind: reason` of a halt in force, if any.
    pub halted: Option<String>,
    /// The stage whose approval gate holds the rollout, if any.
    pub paused: Option<String>,
    /// The stage after which the rest was re-tuned, and the pace chosen (1 = as planned);
    /// a pace of `None` means the refit is under way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refit: Option<(String, Option<f64>)>,
    pub waves: Vec<Wave>,
    /// Gateways per latest state; those never mentioned are `not_started`.
    pub states: BTreeMap<State, usize>,
    pub not_started: usize,
    pub attempts: u64,
    /// The journal's last line was cut (the rollout is writing it, or crashed mid-write).
    pub partial_last_line: bool,
}

/// Folds a parsed journal into its progress.
pub fn progress(parsed: &Parsed, text_len: usize) -> Progress {
    let h = &parsed.header;
    let mut states: BTreeMap<u32, State> = BTreeMap::new();
    let mut waves = Vec::new();
    let mut t_ms = 0u64;
    let mut finished = false;
    let mut halted: Option<String> = None;
    let mut paused: Option<(usize, String)> = None;
    let mut refit: Option<(String, Option<f64>)> = None;
    let mut attempts = 0u64;
    for (_, r) in &parsed.records {
        match r {
            Record::Tick { t }
            | Record::Send { t, .. }
            | Record::Sent { t, .. }
            | Record::Lost { t, .. }
            | Record::Adopt { t, .. }
            | Record::Ended { t, .. }
            | Record::Look { t } => t_ms = t_ms.max(*t),
            Record::Obs { t, o } => {
                t_ms = t_ms.max(*t);
                for o in o {
                    if let (Obs::Repaced { pace_milli, .. }, Some((_, pace))) = (o, refit.as_mut())
                    {
                        *pace = Some(f64::from(*pace_milli) / 1000.0);
                        continue;
                    }
                    if let Obs::Approved { wave } = o {
                        if paused.as_ref().is_some_and(|(w, _)| w == wave) {
                            paused = None;
                        }
                        continue;
                    }
                    let (gw, s) = match o {
                        Obs::Succeeded { gw } => (*gw, State::Succeeded),
                        Obs::Failed { gw, .. } | Obs::Rejected { gw, .. } => (*gw, State::Failed),
                        _ => continue,
                    };
                    states.insert(gw, s);
                }
            }
            Record::Cmd { c, .. } => {
                for c in c {
                    match c {
                        Cmd::Check { gw } => {
                            states.entry(*gw).or_insert(State::Checking);
                        }
                        Cmd::Start { gw, .. } => {
                            attempts += 1;
                            states.insert(*gw, State::InFlight);
                        }
                        Cmd::Wave { wave, stage, size } => waves.push(Wave {
                            wave: wave + 1,
                            stage: stage.clone(),
                            size: *size,
                            released_s: t_ms as f64 / 1000.0,
                        }),
                        Cmd::Halt { kind, reason } => halted = Some(format!("{kind}: {reason}")),
                        Cmd::Paused { wave, stage } => paused = Some((*wave, stage.clone())),
                        Cmd::Refit { stage, .. } => refit = Some((stage.clone(), None)),
                        Cmd::Cancel { .. } | Cmd::Rollback { .. } => {}
                    }
                }
            }
            Record::Override { t, .. } => {
                t_ms = t_ms.max(*t);
                halted = None;
            }
            Record::Done { t } => {
                t_ms = t_ms.max(*t);
                finished = true;
            }
        }
    }
    let mut counts: BTreeMap<State, usize> = BTreeMap::new();
    for s in states.values() {
        *counts.entry(*s).or_default() += 1;
    }
    Progress {
        plan: h.plan.clone(),
        backend: h.backend.clone(),
        endpoint: h.endpoint.clone(),
        firmware_version: h.firmware_version.clone(),
        devices: h.devices,
        started_unix_ms: h.started_unix_ms,
        plan_time_s: t_ms as f64 / 1000.0,
        finished,
        halted,
        paused: paused.map(|(_, stage)| stage),
        refit,
        waves,
        not_started: h.devices.saturating_sub(states.len()),
        states: counts,
        attempts,
        partial_last_line: parsed.truncated(text_len),
    }
}
