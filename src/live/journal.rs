//! The durable journal of a live rollout: versioned JSON Lines. It holds every input the
//! engine was fed (ticks and observations, with their times), every command it emitted
//! (numbered: the number is the intent id), and every call the driver made to the backend
//! (before the call, and its answer after). Recovery replays it; nothing is reconstructed.
//!
//! Observations of one time share a line, and so do consecutive commands, each in a
//! compact form (`{"start":[7,1]}`): a 100,000-gateway rollout journals about 140 bytes a
//! gateway. Records are group-committed: `append` buffers, `sync` reaches the disk, and the driver
//! syncs before every call that can change the platform (a request, a cancel). Reads need
//! no sync: an observation lost in a crash is observed again. The header is created atomically, and a lock file
//! beside the journal keeps a second executor out.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::{Cause, Command, Facts, HaltReason, Observation, Phase};
use crate::scenario::InputError;
use crate::time::Time;

/// 3: observations and commands are grouped, each in a compact array form.
pub const VERSION: u32 = 3;

/// The first line: what this rollout is. A resume must match it field by field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub journal: String,
    pub version: u32,
    pub plan: String,
    /// Digest of the plan's policy as parsed (any edit that changes behaviour changes it).
    pub plan_digest: String,
    /// Digest of the inventory's devices, in order.
    pub inventory_digest: String,
    pub devices: usize,
    pub backend: String,
    pub endpoint: String,
    pub firmware_version: String,
    /// Digest of the firmware version and URI.
    pub firmware_digest: String,
    pub seed: u64,
    /// Wall-clock start (Unix ms): plan time is measured from it, so timers survive restarts.
    pub started_unix_ms: u64,
    /// The time scale of a rehearsal (1 for a real rollout).
    pub time_scale: f64,
}

impl Header {
    /// Names each field whose value differs from `other`'s (the start time is not compared).
    pub fn differences(&self, other: &Header) -> Vec<String> {
        let mut d = Vec::new();
        let mut cmp = |name: &str, a: &dyn std::fmt::Display, b: &dyn std::fmt::Display| {
            let (a, b) = (a.to_string(), b.to_string());
            if a != b {
                d.push(format!("{name}: journal has `{a}`, this run has `{b}`"));
            }
        };
        cmp("plan", &self.plan, &other.plan);
        cmp("plan digest", &self.plan_digest, &other.plan_digest);
        cmp(
            "inventory digest",
            &self.inventory_digest,
            &other.inventory_digest,
        );
        cmp("devices", &self.devices, &other.devices);
        cmp("backend", &self.backend, &other.backend);
        cmp("endpoint", &self.endpoint, &other.endpoint);
        cmp(
            "firmware version",
            &self.firmware_version,
            &other.firmware_version,
        );
        cmp(
            "firmware digest",
            &self.firmware_digest,
            &other.firmware_digest,
        );
        cmp("time scale", &self.time_scale, &other.time_scale);
        d
    }
}

/// A hex SHA-256 digest of `parts`, each length-prefixed so that boundaries count.
pub fn digest(parts: &[&[u8]]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// One record after the header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Record {
    /// Engine input: the clock advanced to `t` (plan ms).
    Tick { t: u64 },
    /// Engine inputs: observations at `t`, fed in order.
    Obs { t: u64, o: Vec<Obs> },
    /// Engine outputs numbered `n`, `n + 1`, … in emission order. The number is the
    /// command's intent id.
    Cmd { n: u64, c: Vec<Cmd> },
    /// About to ask the backend for `phase` on these gateways (each with its attempt).
    /// `intent` is the correlation key the request itself carries.
    Send {
        t: u64,
        intent: String,
        phase: u8,
        gws: Vec<u32>,
        attempts: Vec<u32>,
    },
    /// The backend has the operation of `intent`: its reference (request or job id).
    Sent {
        t: u64,
        intent: String,
        reference: String,
    },
    /// The platform never got `intent` (refused before acting, or looked up and absent).
    Lost { t: u64, intent: String },
    /// An operation found on the platform (not in this journal) taken as this attempt.
    Adopt {
        t: u64,
        gw: u32,
        attempt: u32,
        phase: u8,
        reference: String,
    },
    /// An earlier attempt that kept running after the engine gave up on it has ended.
    Ended { t: u64, gw: u32, reference: String },
    /// The operator overrode the halt named by `reason`.
    Override { t: u64, reason: String },
    /// A round of status polls began at `t`: everything it reports was seen after `t`, and
    /// what it still finds running had not ended by then. Fitting needs both bounds.
    Look { t: u64 },
    /// The rollout finished.
    Done { t: u64 },
}

impl Record {
    /// How many entries the record holds: its observations or commands, else one.
    pub fn entries(&self) -> usize {
        match self {
            Record::Obs { o, .. } => o.len(),
            Record::Cmd { c, .. } => c.len(),
            _ => 1,
        }
    }

    /// One observation at `t` (the journal gathers those of one time into a line).
    pub fn obs(t: u64, o: Obs) -> Record {
        Record::Obs { t, o: vec![o] }
    }

    /// Command number `n`.
    pub fn cmd(n: u64, c: Cmd) -> Record {
        Record::Cmd { n, c: vec![c] }
    }
}

/// An engine observation as journaled.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "ObsRow")]
pub enum Obs {
    Accepted {
        gw: u32,
        attempt: u32,
    },
    Rejected {
        gw: u32,
        attempt: u32,
    },
    Progress {
        gw: u32,
        attempt: u32,
        phase: String,
    },
    Succeeded {
        gw: u32,
    },
    Failed {
        gw: u32,
        attempt: u32,
        cause: String,
    },
    /// Facts a backend could not read are left out (unknown).
    Checked {
        gw: u32,
        online: bool,
        cpu_pct: Option<f64>,
        disk_mb: Option<f64>,
        battery_pct: Option<f64>,
        busy: Option<bool>,
        stable_ms: Option<u64>,
    },
    Latency {
        ms: f64,
    },
    /// The operator approved going on after wave `wave` (0-based).
    Approved {
        wave: usize,
    },
    /// The refit after wave `wave` chose to go on at `pace_milli / 1000` of the plan's speed.
    Repaced {
        wave: usize,
        pace_milli: u32,
    },
}

/// An engine command as journaled.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "CmdRow")]
pub enum Cmd {
    Check {
        gw: u32,
    },
    Start {
        gw: u32,
        attempt: u32,
    },
    Cancel {
        gw: u32,
        attempt: u32,
    },
    Rollback {
        gw: u32,
    },
    Wave {
        wave: usize,
        stage: Option<String>,
        size: usize,
    },
    Halt {
        kind: String,
        reason: String,
    },
    Paused {
        wave: usize,
        stage: String,
    },
    Refit {
        wave: usize,
        stage: String,
    },
}

/// An observation on disk, compact: `{"succeeded":7}`, `{"progress":[7,1,"downloaded"]}`.
/// A journal line holds many, so every byte counts against the fsync before each call.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ObsRow<S = String> {
    Accepted(u32, u32),
    Rejected(u32, u32),
    Progress(u32, u32, S),
    Succeeded(u32),
    Failed(u32, u32, S),
    /// Gateway, online, and the facts that are known (none: `null`).
    Checked(u32, bool, Option<FactsRow>),
    Latency(f64),
    Approved(usize),
    Repaced(usize, u32),
}

#[derive(Serialize, Deserialize, Default, PartialEq)]
struct FactsRow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cpu_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disk_mb: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    battery_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    busy: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stable_ms: Option<u64>,
}

impl Serialize for Obs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ObsRow::from(self).serialize(s)
    }
}

impl<'a> From<&'a Obs> for ObsRow<&'a str> {
    fn from(o: &'a Obs) -> ObsRow<&'a str> {
        match *o {
            Obs::Accepted { gw, attempt } => ObsRow::Accepted(gw, attempt),
            Obs::Rejected { gw, attempt } => ObsRow::Rejected(gw, attempt),
            Obs::Progress {
                gw,
                attempt,
                ref phase,
            } => ObsRow::Progress(gw, attempt, phase),
            Obs::Succeeded { gw } => ObsRow::Succeeded(gw),
            Obs::Failed {
                gw,
                attempt,
                ref cause,
            } => ObsRow::Failed(gw, attempt, cause),
            Obs::Checked {
                gw,
                online,
                cpu_pct,
                disk_mb,
                battery_pct,
                busy,
                stable_ms,
            } => {
                let facts = FactsRow {
                    cpu_pct,
                    disk_mb,
                    battery_pct,
                    busy,
                    stable_ms,
                };
                let known = (facts != FactsRow::default()).then_some(facts);
                ObsRow::Checked(gw, online, known)
            }
            Obs::Latency { ms } => ObsRow::Latency(ms),
            Obs::Approved { wave } => ObsRow::Approved(wave),
            Obs::Repaced { wave, pace_milli } => ObsRow::Repaced(wave, pace_milli),
        }
    }
}

impl From<ObsRow> for Obs {
    fn from(r: ObsRow) -> Obs {
        match r {
            ObsRow::Accepted(gw, attempt) => Obs::Accepted { gw, attempt },
            ObsRow::Rejected(gw, attempt) => Obs::Rejected { gw, attempt },
            ObsRow::Progress(gw, attempt, phase) => Obs::Progress { gw, attempt, phase },
            ObsRow::Succeeded(gw) => Obs::Succeeded { gw },
            ObsRow::Failed(gw, attempt, cause) => Obs::Failed { gw, attempt, cause },
            ObsRow::Checked(gw, online, facts) => {
                let f = facts.unwrap_or_default();
                Obs::Checked {
                    gw,
                    online,
                    cpu_pct: f.cpu_pct,
                    disk_mb: f.disk_mb,
                    battery_pct: f.battery_pct,
                    busy: f.busy,
                    stable_ms: f.stable_ms,
                }
            }
            ObsRow::Latency(ms) => Obs::Latency { ms },
            ObsRow::Approved(wave) => Obs::Approved { wave },
            ObsRow::Repaced(wave, pace_milli) => Obs::Repaced { wave, pace_milli },
        }
    }
}

/// A command on disk, compact: `{"check":7}`, `{"start":[7,1]}`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CmdRow<S = String> {
    Check(u32),
    Start(u32, u32),
    Cancel(u32, u32),
    Rollback(u32),
    Wave(usize, Option<S>, usize),
    Halt(S, S),
    Paused(usize, S),
    Refit(usize, S),
}

impl Serialize for Cmd {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        CmdRow::from(self).serialize(s)
    }
}

impl<'a> From<&'a Cmd> for CmdRow<&'a str> {
    fn from(c: &'a Cmd) -> CmdRow<&'a str> {
        match *c {
            Cmd::Check { gw } => CmdRow::Check(gw),
            Cmd::Start { gw, attempt } => CmdRow::Start(gw, attempt),
            Cmd::Cancel { gw, attempt } => CmdRow::Cancel(gw, attempt),
            Cmd::Rollback { gw } => CmdRow::Rollback(gw),
            Cmd::Wave {
                wave,
                ref stage,
                size,
            } => CmdRow::Wave(wave, stage.as_deref(), size),
            Cmd::Halt {
                ref kind,
                ref reason,
            } => CmdRow::Halt(kind, reason),
            Cmd::Paused { wave, ref stage } => CmdRow::Paused(wave, stage),
            Cmd::Refit { wave, ref stage } => CmdRow::Refit(wave, stage),
        }
    }
}

impl From<CmdRow> for Cmd {
    fn from(r: CmdRow) -> Cmd {
        match r {
            CmdRow::Check(gw) => Cmd::Check { gw },
            CmdRow::Start(gw, attempt) => Cmd::Start { gw, attempt },
            CmdRow::Cancel(gw, attempt) => Cmd::Cancel { gw, attempt },
            CmdRow::Rollback(gw) => Cmd::Rollback { gw },
            CmdRow::Wave(wave, stage, size) => Cmd::Wave { wave, stage, size },
            CmdRow::Halt(kind, reason) => Cmd::Halt { kind, reason },
            CmdRow::Paused(wave, stage) => Cmd::Paused { wave, stage },
            CmdRow::Refit(wave, stage) => Cmd::Refit { wave, stage },
        }
    }
}

const PHASES: [(Phase, &str); 4] = [
    (Phase::Queued, "queued"),
    (Phase::Downloading, "downloading"),
    (Phase::Downloaded, "downloaded"),
    (Phase::Installing, "installing"),
];

const CAUSES: [(Cause, &str); 9] = [
    (Cause::Timeout, "timeout"),
    (Cause::Download, "download"),
    (Cause::Verify, "verify"),
    (Cause::Install, "install"),
    (Cause::HealthCheck, "health_check"),
    (Cause::Unreachable, "unreachable"),
    (Cause::Cancelled, "cancelled"),
    (Cause::NotReady, "not_ready"),
    (Cause::Rejected, "rejected"),
];

fn name_of<T: PartialEq + Copy>(table: &[(T, &'static str)], v: T) -> String {
    table
        .iter()
        .find(|(x, _)| *x == v)
        .map_or("unknown", |(_, n)| n)
        .to_string()
}

fn value_of<T: Copy>(table: &[(T, &'static str)], name: &str) -> Result<T, String> {
    table
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(v, _)| *v)
        .ok_or_else(|| format!("unknown value `{name}`"))
}

/// The short name of a halt's kind, as `--override-halt` takes it.
pub fn halt_kind(r: &HaltReason) -> &'static str {
    match r {
        HaltReason::Rollback { .. } => "rollback",
        HaltReason::Defect { .. } => "defect",
    }
}

impl From<&Observation> for Obs {
    fn from(o: &Observation) -> Obs {
        match *o {
            Observation::Accepted { gw, attempt } => Obs::Accepted { gw, attempt },
            Observation::Rejected { gw, attempt } => Obs::Rejected { gw, attempt },
            Observation::Progress { gw, attempt, phase } => Obs::Progress {
                gw,
                attempt,
                phase: name_of(&PHASES, phase),
            },
            Observation::Succeeded { gw } => Obs::Succeeded { gw },
            Observation::Failed { gw, attempt, cause } => Obs::Failed {
                gw,
                attempt,
                cause: name_of(&CAUSES, cause),
            },
            Observation::Checked { gw, facts } => Obs::Checked {
                gw,
                online: facts.online,
                cpu_pct: facts.cpu_pct,
                disk_mb: facts.disk_mb,
                battery_pct: facts.battery_pct,
                busy: facts.busy,
                stable_ms: facts.stable_for.map(Time::millis),
            },
            Observation::Latency { ms } => Obs::Latency { ms },
            Observation::Approved { wave } => Obs::Approved { wave },
            Observation::Repaced { wave, pace_milli } => Obs::Repaced { wave, pace_milli },
        }
    }
}

impl Obs {
    pub fn to_engine(&self) -> Result<Observation, String> {
        Ok(match self {
            Obs::Accepted { gw, attempt } => Observation::Accepted {
                gw: *gw,
                attempt: *attempt,
            },
            Obs::Rejected { gw, attempt } => Observation::Rejected {
                gw: *gw,
                attempt: *attempt,
            },
            Obs::Progress { gw, attempt, phase } => Observation::Progress {
                gw: *gw,
                attempt: *attempt,
                phase: value_of(&PHASES, phase)?,
            },
            Obs::Succeeded { gw } => Observation::Succeeded { gw: *gw },
            Obs::Failed { gw, attempt, cause } => Observation::Failed {
                gw: *gw,
                attempt: *attempt,
                cause: value_of(&CAUSES, cause)?,
            },
            Obs::Checked {
                gw,
                online,
                cpu_pct,
                disk_mb,
                battery_pct,
                busy,
                stable_ms,
            } => Observation::Checked {
                gw: *gw,
                facts: Facts {
                    online: *online,
                    cpu_pct: *cpu_pct,
                    disk_mb: *disk_mb,
                    battery_pct: *battery_pct,
                    busy: *busy,
                    stable_for: stable_ms.map(Time),
                },
            },
            Obs::Latency { ms } => Observation::Latency { ms: *ms },
            Obs::Approved { wave } => Observation::Approved { wave: *wave },
            Obs::Repaced { wave, pace_milli } => Observation::Repaced {
                wave: *wave,
                pace_milli: *pace_milli,
            },
        })
    }
}

impl From<&Command> for Cmd {
    fn from(c: &Command) -> Cmd {
        match c {
            Command::Check { gw } => Cmd::Check { gw: *gw },
            Command::Start { gw, attempt } => Cmd::Start {
                gw: *gw,
                attempt: *attempt,
            },
            Command::Cancel { gw, attempt } => Cmd::Cancel {
                gw: *gw,
                attempt: *attempt,
            },
            Command::Rollback { gw } => Cmd::Rollback { gw: *gw },
            Command::WaveReleased { wave, stage, size } => Cmd::Wave {
                wave: *wave,
                stage: stage.clone(),
                size: *size,
            },
            Command::Halt { reason } => Cmd::Halt {
                kind: halt_kind(reason).into(),
                reason: reason.to_string(),
            },
            Command::Paused { wave, stage } => Cmd::Paused {
                wave: *wave,
                stage: stage.clone(),
            },
            Command::Refit { wave, stage } => Cmd::Refit {
                wave: *wave,
                stage: stage.clone(),
            },
        }
    }
}

/// Why a journal cannot be used.
#[derive(Debug)]
pub enum JournalError {
    /// Bad or foreign content (exit 2).
    Input(InputError),
    /// Another executor holds it (exit 1).
    Locked { path: PathBuf, pid: Option<u32> },
    /// The disk failed us (exit 1).
    Io { path: PathBuf, err: std::io::Error },
}

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JournalError::Input(e) => write!(f, "{e}"),
            JournalError::Locked { path, pid } => {
                write!(
                    f,
                    "journal {} is in use by another executor",
                    path.display()
                )?;
                if let Some(pid) = pid {
                    write!(f, " (pid {pid})")?;
                }
                write!(f, "; only one executor may hold a journal at a time")
            }
            JournalError::Io { path, err } => write!(f, "journal {}: {err}", path.display()),
        }
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

pub struct Journal {
    path: PathBuf,
    /// None: a journal that keeps nothing (to measure what journaling costs).
    file: Option<File>,
    /// Records appended since the last sync.
    buf: Vec<u8>,
    /// The open line of observations at one time, and of consecutive commands (with the
    /// number the next command must have to join it).
    obs: Option<(u64, Vec<u8>)>,
    cmds: Option<(u64, Vec<u8>)>,
    /// Held for the life of the journal; the OS releases it when the process dies.
    _lock: Option<File>,
}

impl Journal {
    /// Locks `path` for this process, then opens it: a new journal is created with
    /// `header` atomically; an existing one must carry the same header, and its records
    /// (with their line numbers) are returned for replay.
    #[allow(clippy::type_complexity)]
    pub fn open(
        path: &Path,
        header: &Header,
    ) -> Result<(Journal, Header, Vec<(usize, Record)>), JournalError> {
        let io = |err| JournalError::Io {
            path: path.to_path_buf(),
            err,
        };
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(lock_path(path))
            .map_err(io)?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(lock_path(path))
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                return Err(JournalError::Locked {
                    path: path.to_path_buf(),
                    pid,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        {
            let mut l = &lock_file;
            l.set_len(0).map_err(io)?;
            write!(l, "{}", std::process::id()).map_err(io)?;
        }
        let name = path.display().to_string();
        let (header, records) = if path.exists() {
            let text = std::fs::read_to_string(path).map_err(io)?;
            let parsed = parse(&text).map_err(|e| JournalError::Input(e.in_file(&name)))?;
            let diffs = parsed.header.differences(header);
            if !diffs.is_empty() {
                return Err(JournalError::Input(
                    InputError::new(format!(
                        "this journal belongs to another rollout: {}; use the original flags and files, or a new --journal",
                        diffs.join("; ")
                    ))
                    .in_file(&name),
                ));
            }
            // Keep whole records only: a cut last line is dropped, a whole one missing its
            // newline gets it back.
            let keep = parsed.whole_len;
            let mut f = OpenOptions::new().write(true).open(path).map_err(io)?;
            if (keep as u64) < text.len() as u64 {
                f.set_len(keep as u64).map_err(io)?;
            }
            if parsed.needs_newline {
                f.set_len(keep as u64).map_err(io)?;
                use std::io::Seek;
                f.seek(std::io::SeekFrom::End(0)).map_err(io)?;
                f.write_all(b"\n").map_err(io)?;
            }
            f.sync_all().map_err(io)?;
            (parsed.header, parsed.records)
        } else {
            create_atomically(path, header).map_err(io)?;
            (header.clone(), Vec::new())
        };
        let file = OpenOptions::new().append(true).open(path).map_err(io)?;
        Ok((
            Journal {
                path: path.to_path_buf(),
                file: Some(file),
                buf: Vec::with_capacity(1 << 16),
                obs: None,
                cmds: None,
                _lock: Some(lock_file),
            },
            header,
            records,
        ))
    }

    /// A journal that writes nothing: the baseline for measuring what journaling costs.
    pub fn discard() -> Journal {
        Journal {
            path: PathBuf::from("(discarded)"),
            file: None,
            buf: Vec::new(),
            obs: None,
            cmds: None,
            _lock: None,
        }
    }

    /// Appends one record (group commit: `sync` makes it durable). Observations of one
    /// time and the commands they caused are gathered into one line each: the observations'
    /// line first, then the commands', which replay matches in emission order.
    pub fn append(&mut self, r: &Record) -> std::io::Result<()> {
        if self.file.is_none() {
            return Ok(());
        }
        match r {
            // Commands waiting to be written may stay behind a new line of observations:
            // replay matches commands in emission order, whatever they sit behind.
            Record::Obs { t, o } => {
                if self.obs.as_ref().is_some_and(|(at, _)| at != t) {
                    self.write_groups()?;
                }
                let (_, line) = self.obs.get_or_insert_with(|| {
                    (*t, format!(r#"{{"k":"obs","t":{t},"o":["#).into_bytes())
                });
                push_items(line, o)?;
            }
            Record::Cmd { n, c } => {
                if self.cmds.as_ref().is_some_and(|(next, _)| next != n) {
                    self.write_groups()?;
                }
                let (next, line) = self.cmds.get_or_insert_with(|| {
                    (*n, format!(r#"{{"k":"cmd","n":{n},"c":["#).into_bytes())
                });
                *next += c.len() as u64;
                push_items(line, c)?;
            }
            other => {
                self.write_groups()?;
                self.write_line(other)?;
            }
        }
        Ok(())
    }

    fn write_groups(&mut self) -> std::io::Result<()> {
        for (_, mut line) in [self.obs.take(), self.cmds.take()].into_iter().flatten() {
            line.extend_from_slice(b"]}\n");
            self.buf.extend_from_slice(&line);
        }
        self.spill()
    }

    fn write_line(&mut self, r: &Record) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.buf, r).map_err(std::io::Error::other)?;
        self.buf.push(b'\n');
        self.spill()
    }

    fn spill(&mut self) -> std::io::Result<()> {
        if self.buf.len() > (1 << 22) {
            // Bound memory on long stretches without external calls: written, not yet synced.
            self.write_buf()?;
        }
        Ok(())
    }

    fn write_buf(&mut self) -> std::io::Result<()> {
        if let Some(f) = self.file.as_mut() {
            f.write_all(&self.buf)?;
        }
        self.buf.clear();
        Ok(())
    }

    /// Makes every appended record durable. Called before any external call.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.write_groups()?;
        if self.buf.is_empty() {
            return Ok(());
        }
        self.write_buf()?;
        match self.file.as_ref() {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }

    /// Drops what was appended but not synced, as a crash (kill -9) would. For tests.
    pub fn crash(mut self) {
        self.buf.clear();
        self.obs = None;
        self.cmds = None;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

/// Adds items to an open line, comma-separated.
fn push_items<T: Serialize>(line: &mut Vec<u8>, items: &[T]) -> std::io::Result<()> {
    for item in items {
        if line.last() != Some(&b'[') {
            line.push(b',');
        }
        serde_json::to_writer(&mut *line, item).map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// Header written to a temporary file, fsync'd, renamed into place, directory fsync'd:
/// a crash leaves either no journal or a whole header.
fn create_atomically(path: &Path, header: &Header) -> std::io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    {
        let mut f = File::create(&tmp)?;
        let mut line = serde_json::to_vec(header).map_err(std::io::Error::other)?;
        line.push(b'\n');
        f.write_all(&line)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    File::open(dir)?.sync_all()
}

/// A parsed journal.
pub struct Parsed {
    pub header: Header,
    /// Records with their 1-based line numbers.
    pub records: Vec<(usize, Record)>,
    /// Bytes that hold whole records (a cut last line is not counted).
    pub whole_len: usize,
    /// The last record is whole but lacks its newline.
    pub needs_newline: bool,
}

impl Parsed {
    /// Whether the last line was cut short by a crash.
    pub fn truncated(&self, text_len: usize) -> bool {
        self.whole_len < text_len
    }
}

/// Parses a journal; a last line cut short by a crash is tolerated and left out.
pub fn parse(text: &str) -> Result<Parsed, InputError> {
    let at = |line: usize, msg: String| {
        let mut e = InputError::new(msg);
        e.line = Some(line);
        e
    };
    let mut lines = text.split_inclusive('\n').enumerate();
    let (_, first) = lines
        .next()
        .ok_or_else(|| InputError::new("empty journal"))?;
    let value: serde_json::Value = serde_json::from_str(first.trim())
        .map_err(|e| at(1, format!("not a stagger journal header: {e}")))?;
    if value.get("journal").and_then(|v| v.as_str()) != Some("stagger") {
        return Err(at(1, "not a stagger journal".into()));
    }
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if version != u64::from(VERSION) {
        return Err(at(
            1,
            format!("journal version {version} is not supported (this stagger reads and writes {VERSION})"),
        ));
    }
    let header: Header =
        serde_json::from_value(value).map_err(|e| at(1, format!("bad journal header: {e}")))?;
    let mut records = Vec::new();
    let mut whole_len = first.len();
    let mut needs_newline = !first.ends_with('\n');
    for (i, line) in lines {
        let complete = line.ends_with('\n');
        let body = line.trim();
        if body.is_empty() {
            whole_len += line.len();
            continue;
        }
        match serde_json::from_str::<Record>(body) {
            Ok(r) => {
                records.push((i + 1, r));
                whole_len += line.len();
                needs_newline = !complete;
            }
            Err(_) if !complete => break,
            Err(e) => return Err(at(i + 1, format!("corrupt journal record: {e}"))),
        }
    }
    Ok(Parsed {
        header,
        records,
        whole_len,
        needs_newline,
    })
}

/// Reads a journal without locking it (for `status` and tests).
pub fn read(path: &Path) -> Result<Parsed, InputError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(format!("cannot read journal: {e}")).in_file(&name))?;
    parse(&text).map_err(|e| e.in_file(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            journal: "stagger".into(),
            version: VERSION,
            plan: "p".into(),
            plan_digest: "pd".into(),
            inventory_digest: "id".into(),
            devices: 2,
            backend: "watson-iot".into(),
            endpoint: "http://127.0.0.1:1".into(),
            firmware_version: "1".into(),
            firmware_digest: "fd".into(),
            seed: 1,
            started_unix_ms: 0,
            time_scale: 1.0,
        }
    }

    #[test]
    fn a_cut_last_line_is_dropped_and_a_missing_newline_restored() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j.jsonl");
        {
            let (mut j, _, recs) = Journal::open(&p, &header()).unwrap();
            assert!(recs.is_empty());
            j.append(&Record::Tick { t: 1 }).unwrap();
            j.append(&Record::obs(2, Obs::Succeeded { gw: 1 })).unwrap();
            j.sync().unwrap();
        }
        // A crash in the middle of a write.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(br#"{"k":"obs","t":4,"o":{"o":"succ"#).unwrap();
        drop(f);
        {
            let (mut j, _, recs) = Journal::open(&p, &header()).unwrap();
            assert_eq!(recs.len(), 2);
            j.append(&Record::Done { t: 5 }).unwrap();
            j.sync().unwrap();
        }
        let parsed = read(&p).unwrap();
        assert_eq!(parsed.records.len(), 3);
        assert_eq!(parsed.records[2].1, Record::Done { t: 5 });

        // A whole last record without its newline is kept, not erased.
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.trim_end()).unwrap();
        let (_, _, recs) = Journal::open(&p, &header()).unwrap();
        assert_eq!(recs.len(), 3, "the last whole record survived");
        assert!(std::fs::read_to_string(&p).unwrap().ends_with('\n'));

        // A header alone, without its newline, survives too.
        let p2 = d.path().join("h.jsonl");
        std::fs::write(&p2, serde_json::to_string(&header()).unwrap()).unwrap();
        {
            let (mut j, _, recs) = Journal::open(&p2, &header()).unwrap();
            assert!(recs.is_empty());
            j.append(&Record::Tick { t: 9 }).unwrap();
            j.sync().unwrap();
        }
        assert_eq!(read(&p2).unwrap().records.len(), 1);
    }

    #[test]
    fn observations_of_one_time_and_their_commands_share_a_line_each() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j.jsonl");
        let checked = Obs::Checked {
            gw: 0,
            online: true,
            cpu_pct: None,
            disk_mb: None,
            battery_pct: Some(10.0),
            busy: None,
            stable_ms: None,
        };
        {
            let (mut j, _, _) = Journal::open(&p, &header()).unwrap();
            j.append(&Record::Tick { t: 1 }).unwrap();
            j.append(&Record::cmd(0, Cmd::Check { gw: 0 })).unwrap();
            j.append(&Record::obs(1, checked.clone())).unwrap();
            j.append(&Record::cmd(1, Cmd::Start { gw: 0, attempt: 1 }))
                .unwrap();
            j.append(&Record::obs(1, Obs::Succeeded { gw: 1 })).unwrap();
            j.append(&Record::obs(2, Obs::Succeeded { gw: 0 })).unwrap();
            j.sync().unwrap();
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                r#"{"k":"tick","t":1}"#,
                r#"{"k":"obs","t":1,"o":[{"checked":[0,true,{"battery_pct":10.0}]},{"succeeded":1}]}"#,
                r#"{"k":"cmd","n":0,"c":[{"check":0},{"start":[0,1]}]}"#,
                r#"{"k":"obs","t":2,"o":[{"succeeded":0}]}"#,
            ]
        );
        let back: Vec<Record> = read(&p).unwrap().records.into_iter().map(|r| r.1).collect();
        assert_eq!(
            back[1],
            Record::Obs {
                t: 1,
                o: vec![checked, Obs::Succeeded { gw: 1 }]
            }
        );
    }

    #[test]
    fn another_rollouts_journal_is_refused_naming_what_differs() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j.jsonl");
        drop(Journal::open(&p, &header()).unwrap());
        let mut other = header();
        other.plan_digest = "changed".into();
        other.firmware_digest = "other".into();
        match Journal::open(&p, &other) {
            Err(JournalError::Input(e)) => {
                let m = e.to_string();
                assert!(
                    m.contains("plan digest") && m.contains("firmware digest"),
                    "{m}"
                );
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a foreign journal was accepted"),
        }
    }

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j.jsonl");
        let held = Journal::open(&p, &header()).unwrap();
        match Journal::open(&p, &header()) {
            Err(JournalError::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("two holders of one journal"),
        }
        drop(held);
        assert!(Journal::open(&p, &header()).is_ok(), "released on drop");
    }
}
