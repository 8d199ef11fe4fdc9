//! What a journal (or a trace) says happened to each update attempt: when the service took
//! it, when its download began and ended, when it began installing, and how it ended.

use std::collections::HashMap;
use std::path::Path;

use crate::engine::{Cause, Observation, Phase};
use crate::live::inventory::Inventory;
use crate::live::journal::{self, Cmd, Record};
use crate::scenario::InputError;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum End {
    Succeeded,
    Failed(Cause),
}

/// The facts of a gateway's last pre-update check before an attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Checked {
    pub busy: Option<bool>,
    pub battery_pct: Option<f64>,
    pub cpu_pct: Option<f64>,
}

/// One update attempt on one gateway, times in plan ms.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    pub gw: u32,
    pub attempt: u32,
    pub started: Option<u64>,
    pub accepted: Option<u64>,
    /// The last time its download (re)started.
    pub downloading: Option<u64>,
    /// A live update request's answer: the install began between `installing` (the request)
    /// and this.
    pub installing_by: Option<u64>,
    pub downloaded: Option<u64>,
    pub installing: Option<u64>,
    pub end: Option<(u64, End)>,
    pub checked: Option<Checked>,
}

/// One rollout's observations.
pub struct Rollout {
    pub source: String,
    pub devices: usize,
    pub attempts: Vec<Attempt>,
    /// Measured service response times: (plan ms, ms).
    pub latency: Vec<(u64, f64)>,
    /// Region and hardware class of each device, when an inventory came with the journal.
    pub classes: Option<Vec<(String, String)>>,
    /// When a live driver's poll rounds began (plan ms, sorted). Empty for a simulated
    /// trace, whose times are exact.
    pub looks: Vec<u64>,
    /// Whether `looks` are journaled round starts (`look` records), or only the times of
    /// other records (journals written before rounds were journaled).
    pub rounds_journaled: bool,
}

/// The inventory beside a trace: `run.jsonl` → `run.inventory.csv`.
pub fn sibling_inventory(path: &Path) -> std::path::PathBuf {
    path.with_extension("inventory.csv")
}

/// Reads a journal or trace, with its inventory (given, or the one beside it if any).
pub fn load(path: &Path, inventory: Option<&Path>) -> Result<Rollout, InputError> {
    let name = path.display().to_string();
    let parsed = journal::read(path)?;
    let beside = sibling_inventory(path);
    let inv_path = inventory
        .map(Path::to_path_buf)
        .or_else(|| beside.exists().then_some(beside));
    of_parsed(&name, &parsed, inv_path.as_deref())
}

/// The observations of a journal or trace already read (`name` names it in errors).
pub fn of_parsed(
    name: &str,
    parsed: &journal::Parsed,
    inv_path: Option<&Path>,
) -> Result<Rollout, InputError> {
    let name = name.to_string();
    let devices = parsed.header.devices;
    // Per-device state is allocated up front: a header cannot ask for more than a fleet has.
    const MAX_DEVICES: usize = 100_000_000;
    if devices > MAX_DEVICES {
        let mut e = InputError::new(format!(
            "the header claims {devices} devices; at most {MAX_DEVICES} are supported"
        ))
        .in_file(&name);
        e.line = Some(1);
        return Err(e);
    }
    let classes = match inv_path {
        Some(p) => {
            let inv = Inventory::load(&p.display().to_string(), false)?;
            if inv.devices.len() != devices {
                return Err(InputError::new(format!(
                    "the inventory {} has {} devices, the journal's header says {devices}",
                    p.display(),
                    inv.devices.len()
                ))
                .in_file(&name));
            }
            Some(inv.devices.into_iter().map(|d| (d.region, d.hw)).collect())
        }
        None => None,
    };
    let mut r = Rollout {
        source: name.clone(),
        devices,
        attempts: Vec::new(),
        latency: Vec::new(),
        classes,
        looks: Vec::new(),
        rounds_journaled: false,
    };
    // A live request's members, by its intent, until the platform answers it.
    let mut sent: HashMap<String, Vec<usize>> = HashMap::new();
    let simulated = parsed.header.backend == "simulated";
    let mut times: Vec<u64> = Vec::new();
    let mut rounds: Vec<u64> = Vec::new();
    let at = |line: usize, msg: String| {
        let mut e = InputError::new(msg).in_file(&name);
        e.line = Some(line);
        e
    };
    let mut index: HashMap<(u32, u32), usize> = HashMap::new();
    let mut latest: Vec<Option<usize>> = vec![None; devices];
    let mut facts: Vec<Option<Checked>> = vec![None; devices];
    let mut now = 0u64;
    for (line, rec) in &parsed.records {
        let line = *line;
        let check_gw = |gw: u32| {
            if (gw as usize) < devices {
                Ok(gw as usize)
            } else {
                Err(at(
                    line,
                    format!("gateway {gw} is not one of the journal's {devices} devices"),
                ))
            }
        };
        match rec {
            Record::Tick { t } | Record::Done { t } => {
                now = now.max(*t);
                times.push(*t);
            }
            Record::Look { t } => rounds.push(*t),
            Record::Cmd { c, .. } => {
                for cmd in c {
                    if let Cmd::Start { gw, attempt } = *cmd {
                        let g = check_gw(gw)?;
                        let i = r.attempts.len();
                        r.attempts.push(Attempt {
                            gw,
                            attempt,
                            started: Some(now),
                            checked: facts[g],
                            ..Attempt::default()
                        });
                        index.insert((gw, attempt), i);
                        latest[g] = Some(i);
                    }
                }
            }
            // A live driver's request for a later phase (the update after the download) is
            // where the install begins: live platforms report no `installing` phase.
            Record::Send {
                t,
                phase,
                gws,
                attempts,
                intent,
            } => {
                now = now.max(*t);
                let mut members = Vec::new();
                for (&gw, &attempt) in gws.iter().zip(attempts) {
                    check_gw(gw)?;
                    let i = attempt_of(&mut r, &mut index, &mut latest, gw, attempt);
                    let a = &mut r.attempts[i];
                    if *phase == 0 {
                        a.started.get_or_insert(*t);
                    } else if a.installing.is_none() {
                        a.installing = Some(*t);
                        members.push(i);
                    }
                }
                if !members.is_empty() {
                    sent.insert(intent.clone(), members);
                }
            }
            Record::Sent { t, intent, .. } => {
                for i in sent.remove(intent).unwrap_or_default() {
                    r.attempts[i].installing_by.get_or_insert(*t);
                }
            }
            Record::Obs { t, o } => {
                now = now.max(*t);
                times.push(*t);
                for o in o {
                    let o = o.to_engine().map_err(|e| at(line, e))?;
                    observe(&mut r, &mut index, &mut latest, &mut facts, *t, o, check_gw)?;
                }
            }
            _ => {}
        }
    }
    if !simulated {
        r.rounds_journaled = !rounds.is_empty();
        let mut looks = if r.rounds_journaled { rounds } else { times };
        looks.sort_unstable();
        looks.dedup();
        r.looks = looks;
    }
    r.latency.sort_by_key(|(t, _)| *t);
    Ok(r)
}

impl Rollout {
    /// When something a live driver reported at `t` may have happened: after the start of
    /// the round before the one that saw it, which still found it running (the round that
    /// saw it began at or before `t`, and its calls may have taken a while). Without
    /// journaled rounds, after the journal's previous record. At `t` itself for a trace.
    pub fn happened_after(&self, t: u64) -> u64 {
        let k = if self.rounds_journaled {
            self.looks.partition_point(|&at| at <= t).checked_sub(2)
        } else {
            self.looks.partition_point(|&at| at < t).checked_sub(1)
        };
        match k {
            Some(k) => self.looks[k],
            None if self.looks.is_empty() => t,
            None => 0,
        }
    }

    /// The service's measured response time (ms) last seen at or before `t`.
    pub fn latency_at(&self, t: u64) -> f64 {
        let i = self.latency.partition_point(|(at, _)| *at <= t);
        if i > 0 {
            self.latency[i - 1].1
        } else {
            self.latency.first().map_or(0.0, |(_, ms)| *ms)
        }
    }
}

/// The attempt an observation is about, created if the journal never showed its start
/// (an attempt adopted from the platform).
fn attempt_of(
    r: &mut Rollout,
    index: &mut HashMap<(u32, u32), usize>,
    latest: &mut [Option<usize>],
    gw: u32,
    attempt: u32,
) -> usize {
    *index.entry((gw, attempt)).or_insert_with(|| {
        r.attempts.push(Attempt {
            gw,
            attempt,
            ..Attempt::default()
        });
        let i = r.attempts.len() - 1;
        latest[gw as usize] = Some(i);
        i
    })
}

fn observe(
    r: &mut Rollout,
    index: &mut HashMap<(u32, u32), usize>,
    latest: &mut [Option<usize>],
    facts: &mut [Option<Checked>],
    t: u64,
    o: Observation,
    check_gw: impl Fn(u32) -> Result<usize, InputError>,
) -> Result<(), InputError> {
    match o {
        Observation::Accepted { gw, attempt } => {
            check_gw(gw)?;
            let i = attempt_of(r, index, latest, gw, attempt);
            r.attempts[i].accepted.get_or_insert(t);
        }
        Observation::Progress { gw, attempt, phase } => {
            check_gw(gw)?;
            let i = attempt_of(r, index, latest, gw, attempt);
            let a = &mut r.attempts[i];
            match phase {
                Phase::Queued => {}
                Phase::Downloading => a.downloading = Some(t),
                Phase::Downloaded => a.downloaded = Some(t),
                Phase::Installing => a.installing = Some(t),
            }
        }
        Observation::Succeeded { gw } => {
            let g = check_gw(gw)?;
            if let Some(i) = latest[g] {
                r.attempts[i].end.get_or_insert((t, End::Succeeded));
            }
        }
        Observation::Failed { gw, attempt, cause } => {
            check_gw(gw)?;
            let i = attempt_of(r, index, latest, gw, attempt);
            r.attempts[i].end.get_or_insert((t, End::Failed(cause)));
        }
        Observation::Checked { gw, facts: f } => {
            let g = check_gw(gw)?;
            facts[g] = Some(Checked {
                busy: f.busy,
                battery_pct: f.battery_pct,
                cpu_pct: f.cpu_pct,
            });
        }
        Observation::Latency { ms } => r.latency.push((t, ms)),
        Observation::Rejected { .. }
        | Observation::Approved { .. }
        | Observation::Repaced { .. } => {}
    }
    Ok(())
}
