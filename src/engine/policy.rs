//! A validated rollout policy: the family and the knobs every family shares.
//! Pure data; the engine interprets it. Built from `scenario::RawPolicy` by validation.

use crate::time::Time;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Bulk,
    Fixed,
    Backoff,
    Pipelined,
    Staged,
    Adaptive,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Bulk,
        Family::Fixed,
        Family::Backoff,
        Family::Pipelined,
        Family::Staged,
        Family::Adaptive,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Bulk => "bulk",
            Family::Fixed => "fixed",
            Family::Backoff => "backoff",
            Family::Pipelined => "pipelined",
            Family::Staged => "staged",
            Family::Adaptive => "adaptive",
        }
    }

    pub fn parse(s: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// The per-gateway milestone a gate counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateState {
    Downloaded,
    Succeeded,
    Final,
}

impl GateState {
    pub fn parse(s: &str) -> Option<GateState> {
        match s {
            "downloaded" => Some(GateState::Downloaded),
            "succeeded" => Some(GateState::Succeeded),
            "final" | "complete" => Some(GateState::Final),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub fraction: f64,
    pub state: GateState,
    /// Give up waiting for the gate after this long and move on (the seed's 1800 s).
    pub timeout: Option<Time>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    pub size: u32,
    /// Wait after the previous stage completes before this one starts.
    pub soak: Time,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Canary {
    pub size: u32,
    pub soak: Time,
}

/// Retries with exponential backoff: delay = min(base·factor^n, cap) · (1 ± jitter).
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    pub max_attempts: u32,
    pub base: Time,
    pub factor: f64,
    pub cap: Time,
    pub jitter: f64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 1,
            base: Time::from_secs(60.0),
            factor: 2.0,
            cap: Time::from_secs(3600.0),
            jitter: 0.1,
        }
    }
}

/// What happens to the wave of a gateway that a pre-check defers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferMode {
    /// The gateway moves to the next wave and a peer takes its place.
    NextWave,
    /// The wave waits for it (the seed's scripts do this).
    Hold,
}

/// Pre-update checks; a gateway failing one is deferred, not failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Prechecks {
    pub deferred: DeferMode,
    pub max_cpu_pct: Option<f64>,
    pub min_disk_mb: Option<f64>,
    pub min_battery_pct: Option<f64>,
    pub stable_link: Option<Time>,
    pub require_idle: bool,
    pub defer: Time,
    pub max_deferrals: u32,
    /// Patience for a gateway that is offline at its check: a gateway that stays away
    /// this many re-checks is most likely bricked or wedged, not just reconnecting.
    pub max_offline_deferrals: u32,
}

/// AIMD on the concurrency window.
#[derive(Debug, Clone, PartialEq)]
pub struct Adaptive {
    pub initial: f64,
    pub min: f64,
    pub max: f64,
    pub increase: f64,
    pub decrease: f64,
    pub interval: Time,
    pub target_latency_ms: f64,
    pub max_failure_rate: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub family: Family,
    /// Most gateways in flight at once (checks included).
    pub max_concurrent: u32,
    pub batch_size: u32,
    /// Fixed: wait after a batch completes.
    pub delay: Time,
    /// Pipelined: least time between two batch starts.
    pub min_gap: Time,
    /// Staged: wait after a batch's gate before the next batch.
    pub gap: Time,
    pub gate: Option<Gate>,
    pub stages: Vec<Stage>,
    pub canary: Option<Canary>,
    pub retry: Retry,
    pub op_timeout: Option<Time>,
    /// An operation no device has begun within this is given up as unreachable.
    pub queue_timeout: Option<Time>,
    /// Approval gates: after each of these stages completes, nothing more is released until
    /// an operator approves.
    pub pause_after: Vec<String>,
    pub prechecks: Option<Prechecks>,
    /// Roll back a batch and halt when its success fraction is below this.
    pub rollback_below: Option<f64>,
    /// Halt after this many post-update health-check failures.
    pub defect_halt_after: Option<u32>,
    pub adaptive: Option<Adaptive>,
    /// Daily windows in which installs may start, per region.
    pub maintenance: Option<super::maintenance::Maintenance>,
    /// When this stage completes, nothing more is released until the driver delivers a
    /// re-tuned pace (`Observation::Repaced`). Set by the driver (`--refit-after`).
    pub refit_after: Option<String>,
}

impl Policy {
    /// The named stages an approval gate may follow: the canary, then a staged plan's stages.
    pub fn stage_names(&self) -> Vec<&str> {
        let canary = self.canary.as_ref().map(|_| "canary");
        canary
            .into_iter()
            .chain(self.stages.iter().map(|s| s.name.as_str()))
            .collect()
    }

    pub fn bulk() -> Policy {
        Policy {
            family: Family::Bulk,
            max_concurrent: u32::MAX,
            batch_size: u32::MAX,
            delay: Time::ZERO,
            min_gap: Time::ZERO,
            gap: Time::ZERO,
            gate: None,
            stages: Vec::new(),
            canary: None,
            retry: Retry::default(),
            op_timeout: None,
            queue_timeout: None,
            pause_after: Vec::new(),
            prechecks: None,
            rollback_below: None,
            defect_halt_after: None,
            adaptive: None,
            maintenance: None,
            refit_after: None,
        }
    }

    /// The same plan at `pace` times its speed: concurrency scaled by `pace`, waits
    /// (soaks, gaps, delays, retry and re-check backoff) divided by it. Re-check patience
    /// (wait × allowed deferrals) stays as it was, and so do the waves, gates and every
    /// safety rule: only how fast the plan goes changes, so `pace <= 1` is never more
    /// aggressive anywhere and `pace >= 1` never more cautious.
    pub fn paced(&self, pace: f64) -> Policy {
        let mut p = self.clone();
        if !(pace.is_finite() && pace > 0.0) || pace == 1.0 {
            return p;
        }
        let wait = |t: Time| Time::from_secs(t.secs() / pace);
        if p.max_concurrent != u32::MAX {
            p.max_concurrent = ((f64::from(p.max_concurrent) * pace).round() as u32).max(1);
        }
        p.delay = wait(p.delay);
        p.min_gap = wait(p.min_gap);
        p.gap = wait(p.gap);
        for s in &mut p.stages {
            s.soak = wait(s.soak);
        }
        if let Some(c) = p.canary.as_mut() {
            c.soak = wait(c.soak);
        }
        p.retry.base = wait(p.retry.base);
        if let Some(pc) = p.prechecks.as_mut() {
            pc.defer = wait(pc.defer);
            pc.max_deferrals = (f64::from(pc.max_deferrals) * pace).ceil() as u32;
            pc.max_offline_deferrals = (f64::from(pc.max_offline_deferrals) * pace).ceil() as u32;
        }
        if let Some(a) = p.adaptive.as_mut() {
            a.max = (a.max * pace).max(a.min);
            a.initial = (a.initial * pace).clamp(a.min, a.max);
        }
        p
    }
}
