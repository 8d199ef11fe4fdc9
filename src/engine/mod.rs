//! The rollout engine: one sans-IO state machine shared by the simulator and the live driver.
//! Observations go in through `handle`/`handle_timeout`, commands come out of `poll_command`,
//! and `poll_timeout` says when to call again. It never reads a clock, draws randomness,
//! touches I/O or spawns threads: all time and all facts are inputs.

pub mod backoff;
pub mod maintenance;
pub mod policy;
pub mod waves;
pub mod window;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

pub use policy::{Family, GateState, Policy};
pub use waves::{GatewayInfo, Plan, Release};

use crate::time::Time;
use window::Window;

/// How far a gateway's current operation has got, as reported by the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Queued,
    Downloading,
    Downloaded,
    Installing,
}

/// Why an operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    Timeout,
    Download,
    Verify,
    Install,
    HealthCheck,
    Unreachable,
    Cancelled,
    NotReady,
    Rejected,
}

/// What a pre-update check read off a gateway. `None` means the backend cannot tell,
/// and an unknown fact never blocks an update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Facts {
    pub online: bool,
    pub cpu_pct: Option<f64>,
    pub disk_mb: Option<f64>,
    pub battery_pct: Option<f64>,
    pub busy: Option<bool>,
    /// How long the link has been up without a drop.
    pub stable_for: Option<Time>,
}

impl Facts {
    pub fn unknown() -> Facts {
        Facts {
            online: true,
            cpu_pct: None,
            disk_mb: None,
            battery_pct: None,
            busy: None,
            stable_for: None,
        }
    }
}

/// Judges facts against the policy's pre-checks.
pub fn verdict(pc: &policy::Prechecks, f: &Facts) -> Result<(), Unready> {
    if !f.online {
        return Err(Unready::Offline);
    }
    if let (Some(min), Some(v)) = (pc.min_disk_mb, f.disk_mb) {
        if v < min {
            return Err(Unready::Disk);
        }
    }
    if let (Some(min), Some(v)) = (pc.min_battery_pct, f.battery_pct) {
        if v < min {
            return Err(Unready::Battery);
        }
    }
    if let (Some(max), Some(v)) = (pc.max_cpu_pct, f.cpu_pct) {
        if v > max {
            return Err(Unready::Cpu);
        }
    }
    if pc.require_idle && f.busy == Some(true) {
        return Err(Unready::Busy);
    }
    if let (Some(min), Some(v)) = (pc.stable_link, f.stable_for) {
        if v < min {
            return Err(Unready::Link);
        }
    }
    Ok(())
}

/// Why a pre-update check deferred a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unready {
    Offline,
    Cpu,
    Disk,
    Battery,
    Link,
    Busy,
}

impl Unready {
    /// Conditions that do not clear by waiting: the gateway needs an operator, so it is
    /// reported at once instead of being re-checked for hours.
    pub fn needs_operator(self) -> bool {
        self == Unready::Disk
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observation {
    /// The service accepted the operation (running or queued).
    Accepted {
        gw: u32,
        attempt: u32,
    },
    /// The service refused it (429 / queue full).
    Rejected {
        gw: u32,
        attempt: u32,
    },
    Progress {
        gw: u32,
        attempt: u32,
        phase: Phase,
    },
    Succeeded {
        gw: u32,
    },
    Failed {
        gw: u32,
        attempt: u32,
        cause: Cause,
    },
    Checked {
        gw: u32,
        facts: Facts,
    },
    /// A measured response time of the management service.
    Latency {
        ms: f64,
    },
    /// An operator approved going on after wave `wave` (0-based), which paused.
    Approved {
        wave: usize,
    },
    /// The driver re-tuned the rest of the rollout after wave `wave` (asked for by
    /// `Command::Refit`): from now on the plan runs at `pace_milli / 1000` of its speed
    /// (`Policy::paced`).
    Repaced {
        wave: usize,
        pace_milli: u32,
    },
}

/// A pace as `Observation::Repaced` carries it: in thousandths.
pub fn pace_milli(pace: f64) -> u32 {
    (pace * 1000.0).round() as u32
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run the pre-update checks on a gateway and report `Checked`.
    Check { gw: u32 },
    /// Start update attempt `attempt` (1-based) on a gateway.
    Start { gw: u32, attempt: u32 },
    /// Stop an attempt that is in flight.
    Cancel { gw: u32, attempt: u32 },
    /// Revert a gateway to its previous firmware.
    Rollback { gw: u32 },
    /// A wave was released (for progress displays and journals).
    WaveReleased {
        wave: usize,
        stage: Option<String>,
        size: usize,
    },
    /// The rollout stopped for a safety reason; no new work will be issued.
    Halt { reason: HaltReason },
    /// Wave `wave` (0-based), a stage named in `pause_after`, completed: nothing more is
    /// released until `Approved { wave }`.
    Paused { wave: usize, stage: String },
    /// Wave `wave`, the last of stage `stage` (the policy's `refit_after`), completed with
    /// its stage: nothing more is released until the driver answers with
    /// `Observation::Repaced { wave, .. }`.
    Refit { wave: usize, stage: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum HaltReason {
    Rollback { wave: usize, success: f64 },
    Defect { health_failures: u32 },
}

impl std::fmt::Display for HaltReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HaltReason::Rollback { wave, success } => {
                write!(
                    f,
                    "rollback: wave {} succeeded on {:.0}% of its gateways",
                    wave + 1,
                    success * 100.0
                )
            }
            HaltReason::Defect { health_failures } => {
                write!(
                    f,
                    "defect: {health_failures} gateways failed their post-update health check"
                )
            }
        }
    }
}

/// The engine's view of one gateway.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Waiting,
    Ready,
    Checking,
    Deferred,
    InFlight,
    RetryWait,
    Succeeded,
    Failed,
    RolledBack,
    Skipped,
}

impl Status {
    pub const COUNT: usize = 10;

    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Succeeded | Status::Failed | Status::RolledBack | Status::Skipped
        )
    }
}

#[derive(Debug, Clone, Copy)]
struct Gw {
    status: Status,
    attempts: u16,
    rejections: u16,
    deferrals: u16,
    offline_deferrals: u16,
    downloaded: bool,
    /// The current operation has not been begun by the device yet.
    queued: bool,
    wave: u32,
    wake: Time,
    started_at: Time,
    cause: Option<Cause>,
}

#[derive(Debug, Clone, Default)]
struct WaveState {
    /// An approval gate after this wave: announced (Paused emitted) and approved.
    pause_announced: bool,
    approved: bool,
    /// The refit after this wave: asked for (Refit emitted) and answered (Repaced).
    refit_asked: bool,
    repaced: bool,
    released_at: Option<Time>,
    gate_at: Option<Time>,
    completed_at: Option<Time>,
    succeeded: u32,
    downloaded: u32,
    finals: u32,
    /// Members that never got past their pre-checks: no evidence about the release.
    not_ready: u32,
    /// Current membership (deferred gateways may move to the next wave).
    size: u32,
}

/// Gives up on a gateway the service keeps refusing, so a dead backend cannot loop forever.
const MAX_REJECTIONS: u16 = 200;

pub struct Engine {
    policy: Policy,
    inventory: Vec<GatewayInfo>,
    plan: Plan,
    gws: Vec<Gw>,
    waves: Vec<WaveState>,
    released: usize,
    ready: VecDeque<u32>,
    timers: BinaryHeap<Reverse<(Time, u32)>>,
    out: VecDeque<Command>,
    busy: u32,
    peak_busy: u32,
    window: Option<Window>,
    next_eval: Time,
    halted: Option<HaltReason>,
    health_failures: u32,
    deferred_by: [u32; 6],
    finals: usize,
    counts: [u32; Status::COUNT],
    seed: u64,
    now: Time,
    /// Each region's maintenance windows (UTC, daily), if the policy has any.
    maintenance: Option<maintenance::Schedule>,
    /// Ready gateways held back until their region's window is near: (when, gateway).
    held: BinaryHeap<Reverse<(Time, u32)>>,
    /// Gateways whose status changed since the last `take_changed`, when someone watches.
    changed: Option<Vec<u32>>,
    /// `poll_timeout`'s answer until the next input: drivers ask after every event, and most
    /// events are not the engine's.
    next_timeout: Option<Option<Time>>,
    /// The last wave of the stage named by `refit_after`, when a wave follows it.
    refit_wave: Option<usize>,
    /// The pace the driver chose at the refit (1 until then).
    pace: f64,
}

impl Engine {
    /// `seed` only decorrelates retry jitter between gateways; the engine draws nothing.
    pub fn new(policy: Policy, inventory: &[GatewayInfo], seed: u64) -> Engine {
        let plan = waves::plan(&policy, inventory);
        let mut gws = vec![
            Gw {
                status: Status::Waiting,
                attempts: 0,
                rejections: 0,
                deferrals: 0,
                offline_deferrals: 0,
                downloaded: false,
                queued: false,
                wave: 0,
                wake: Time::ZERO,
                started_at: Time::ZERO,
                cause: None,
            };
            inventory.len()
        ];
        for (w, wave) in plan.waves.iter().enumerate() {
            for &g in &plan.order[wave.start..wave.start + wave.len] {
                gws[g as usize].wave = w as u32;
            }
        }
        let mut counts = [0; Status::COUNT];
        counts[Status::Waiting as usize] = inventory.len() as u32;
        let window = policy.adaptive.clone().map(Window::new);
        let maintenance = policy.maintenance.as_ref().map(maintenance::Schedule::new);
        let next_eval = window.as_ref().map_or(Time::NEVER, |w| w.interval());
        let refit_wave = policy.refit_after.as_deref().and_then(|stage| {
            let last = plan
                .waves
                .iter()
                .rposition(|w| w.stage.as_deref() == Some(stage))?;
            (last + 1 < plan.waves.len()).then_some(last)
        });
        Engine {
            refit_wave,
            pace: 1.0,
            waves: plan
                .waves
                .iter()
                .map(|w| WaveState {
                    size: w.len as u32,
                    ..WaveState::default()
                })
                .collect(),
            inventory: inventory.to_vec(),
            policy,
            plan,
            gws,
            released: 0,
            ready: VecDeque::new(),
            timers: BinaryHeap::new(),
            out: VecDeque::new(),
            busy: 0,
            peak_busy: 0,
            window,
            next_eval,
            halted: None,
            health_failures: 0,
            changed: None,
            next_timeout: None,
            maintenance,
            held: BinaryHeap::new(),
            deferred_by: [0; 6],
            finals: 0,
            counts,
            seed,
            now: Time::ZERO,
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// From now on, remember which gateways change status (for incremental timelines).
    pub fn watch_changes(&mut self) {
        self.changed.get_or_insert_with(Vec::new);
    }

    /// Moves the gateways changed since the last call into `out` (possibly repeated).
    pub fn take_changed(&mut self, out: &mut Vec<u32>) {
        if let Some(changed) = &mut self.changed {
            out.append(changed);
        }
    }

    pub fn status(&self, gw: u32) -> Status {
        self.gws[gw as usize].status
    }

    pub fn attempts(&self, gw: u32) -> u32 {
        u32::from(self.gws[gw as usize].attempts)
    }

    pub fn cause(&self, gw: u32) -> Option<Cause> {
        self.gws[gw as usize].cause
    }

    /// Gateways per status, indexed by `Status as usize`.
    pub fn counts(&self) -> [u32; Status::COUNT] {
        self.counts
    }

    /// Gateways being checked or with an attempt in flight: what the cap limits.
    pub fn in_flight(&self) -> u32 {
        self.busy
    }

    pub fn peak_in_flight(&self) -> u32 {
        self.peak_busy
    }

    /// The concurrency limit in force now.
    pub fn cap(&self) -> u32 {
        let w = self.window.as_ref().map_or(u32::MAX, Window::cap);
        self.policy.max_concurrent.min(w).max(1)
    }

    /// Deferrals so far by reason, indexed by `Unready as usize`.
    pub fn deferrals(&self) -> [u32; 6] {
        self.deferred_by
    }

    pub fn health_failures(&self) -> u32 {
        self.health_failures
    }

    pub fn halted(&self) -> Option<&HaltReason> {
        self.halted.as_ref()
    }

    /// The wave (0-based) and stage whose approval gate holds the rollout, if any.
    pub fn paused(&self) -> Option<(usize, &str)> {
        let w = self.released.checked_sub(1)?;
        let stage = self.gate_stage(w)?;
        let st = &self.waves[w];
        (st.pause_announced && !st.approved).then_some((w, stage))
    }

    /// The wave (0-based) and stage whose refit holds the rollout, if any.
    pub fn refitting(&self) -> Option<(usize, &str)> {
        let w = self.refit_wave?;
        let st = &self.waves[w];
        (st.refit_asked && !st.repaced)
            .then(|| (w, self.policy.refit_after.as_deref().unwrap_or("")))
    }

    /// The pace the rollout runs at: 1 until a refit chose another.
    pub fn pace(&self) -> f64 {
        self.pace
    }

    /// The stage name of wave `w` if the plan pauses after it (and a wave follows).
    fn gate_stage(&self, w: usize) -> Option<&str> {
        if w + 1 >= self.plan.waves.len() {
            return None;
        }
        let stage = self.plan.waves[w].stage.as_deref()?;
        self.policy
            .pause_after
            .iter()
            .any(|p| p == stage)
            .then_some(stage)
    }

    /// The wave a gateway belongs to now (deferred gateways may have moved on).
    pub fn wave_of(&self, gw: u32) -> usize {
        self.gws[gw as usize].wave as usize
    }

    /// When wave `w` was released, reached its gate, and completed (if it has).
    pub fn wave_times(&self, w: usize) -> (Option<Time>, Option<Time>, Option<Time>) {
        self.waves.get(w).map_or((None, None, None), |s| {
            (s.released_at, s.gate_at, s.completed_at)
        })
    }

    pub fn waves_released(&self) -> usize {
        self.released
    }

    /// Every gateway is final and nothing is in flight.
    pub fn is_done(&self) -> bool {
        self.finals == self.gws.len() && self.busy == 0
    }

    /// The operator overrides a safety halt: gateways skipped by it wait again and the
    /// rollout goes on from where it stopped. Like every input, it is journaled and replayed.
    pub fn override_halt(&mut self, now: Time) {
        self.next_timeout = None;
        self.now = self.now.max(now);
        if self.halted.take().is_none() {
            return;
        }
        for g in 0..self.gws.len() as u32 {
            let gw = self.gws[g as usize];
            if gw.status != Status::Skipped {
                continue;
            }
            // Skipping counted the gateway as final; it is live again.
            let w = gw.wave as usize;
            self.finals -= 1;
            self.waves[w].finals -= 1;
            self.counts[Status::Skipped as usize] -= 1;
            self.gws[g as usize].cause = None;
            let status = if w < self.released {
                self.ready.push_back(g);
                Status::Ready
            } else {
                Status::Waiting
            };
            self.counts[status as usize] += 1;
            self.gws[g as usize].status = status;
            self.note_changed(g);
        }
        for w in &mut self.waves {
            if w.finals < w.size {
                w.completed_at = None;
            }
        }
        self.handle_timeout(self.now);
    }

    pub fn poll_command(&mut self) -> Option<Command> {
        self.out.pop_front()
    }

    /// The next time the engine wants `handle_timeout`, if any.
    pub fn poll_timeout(&mut self) -> Option<Time> {
        if let Some(t) = self.next_timeout {
            return t;
        }
        let t = self.compute_timeout();
        self.next_timeout = Some(t);
        t
    }

    fn compute_timeout(&mut self) -> Option<Time> {
        if self.is_done() {
            return None;
        }
        while let Some(&Reverse((t, g))) = self.timers.peek() {
            if self.timer_valid(t, g) {
                break;
            }
            self.timers.pop();
        }
        let timer = self.timers.peek().map(|Reverse((t, _))| *t);
        let release = self.next_release_time();
        let eval = self.window.as_ref().map(|_| self.next_eval);
        let held = self.held.peek().map(|Reverse((t, _))| *t);
        [timer, release, eval, held].into_iter().flatten().min()
    }

    /// Advances the engine's clock: fires due timers, releases waves, starts work.
    pub fn handle_timeout(&mut self, now: Time) {
        self.next_timeout = None;
        self.now = self.now.max(now);
        while let Some(&Reverse((t, g))) = self.timers.peek() {
            if t > self.now {
                break;
            }
            self.timers.pop();
            if !self.timer_valid(t, g) {
                continue;
            }
            match self.gws[g as usize].status {
                Status::Deferred | Status::RetryWait => {
                    self.set_status(g, Status::Ready);
                    self.ready.push_front(g);
                }
                Status::InFlight => {
                    let attempt = self.attempts(g);
                    self.out.push_back(Command::Cancel { gw: g, attempt });
                    // Never begun: the device did not pick the operation up.
                    let cause = if self.gws[g as usize].queued {
                        Cause::Unreachable
                    } else {
                        Cause::Timeout
                    };
                    self.on_failure(g, cause);
                }
                _ => {}
            }
        }
        let mut due = Vec::new();
        while let Some(&Reverse((t, g))) = self.held.peek() {
            if t > self.now {
                break;
            }
            self.held.pop();
            due.push(g);
        }
        for g in due.into_iter().rev() {
            self.ready.push_front(g);
        }
        if let Some(w) = self.window.as_mut() {
            while self.next_eval <= self.now {
                w.evaluate();
                self.next_eval = self.next_eval + w.interval();
            }
        }
        while let Some(t) = self.next_release_time() {
            if t > self.now {
                break;
            }
            self.release_next_wave();
        }
        self.announce_pause();
        self.announce_refit();
        self.pump();
    }

    /// Feeds one observation at time `now`.
    pub fn handle(&mut self, now: Time, obs: Observation) {
        self.next_timeout = None;
        self.now = self.now.max(now);
        match obs {
            Observation::Accepted { .. } => {}
            Observation::Rejected { gw, attempt } => {
                if self.is_current(gw, attempt) {
                    self.on_rejected(gw);
                }
            }
            Observation::Progress { gw, attempt, phase } => {
                if self.is_current(gw, attempt) {
                    if phase != Phase::Queued {
                        self.mark_begun(gw);
                    }
                    if matches!(phase, Phase::Downloaded | Phase::Installing) {
                        self.mark_downloaded(gw);
                    }
                }
            }
            Observation::Succeeded { gw } => self.on_succeeded(gw),
            Observation::Failed { gw, attempt, cause } => {
                if self.is_current(gw, attempt) {
                    self.on_failure(gw, cause);
                }
            }
            Observation::Checked { gw, facts } => self.on_checked(gw, facts),
            Observation::Latency { ms } => {
                if let Some(w) = self.window.as_mut() {
                    w.on_latency(ms);
                }
            }
            Observation::Approved { wave } => {
                if let Some(st) = self.waves.get_mut(wave) {
                    st.approved = true;
                }
            }
            Observation::Repaced { wave, pace_milli } => self.repace(wave, pace_milli),
        }
        self.handle_timeout(self.now);
    }

    /// The device began its operation: from now on only the operation timeout applies.
    fn mark_begun(&mut self, g: u32) {
        let op_timeout = self.policy.op_timeout;
        if !self.gws[g as usize].queued {
            return;
        }
        let open = self.install_open_at(g, self.gws[g as usize].started_at);
        let gw = &mut self.gws[g as usize];
        gw.queued = false;
        let wake = op_timeout.map_or(Time::NEVER, |t| open + t);
        if wake != gw.wake {
            gw.wake = wake;
            if wake != Time::NEVER {
                self.timers.push(Reverse((wake, g)));
            }
        }
    }

    fn is_current(&self, gw: u32, attempt: u32) -> bool {
        self.gws
            .get(gw as usize)
            .is_some_and(|g| g.status == Status::InFlight && u32::from(g.attempts) == attempt)
    }

    fn timer_valid(&self, t: Time, g: u32) -> bool {
        let gw = &self.gws[g as usize];
        gw.wake == t
            && matches!(
                gw.status,
                Status::Deferred | Status::RetryWait | Status::InFlight
            )
    }

    fn note_changed(&mut self, g: u32) {
        if let Some(changed) = &mut self.changed {
            changed.push(g);
        }
    }

    fn set_status(&mut self, g: u32, status: Status) {
        let gw = &mut self.gws[g as usize];
        let old = gw.status;
        if old == status {
            return;
        }
        debug_assert!(
            !old.is_final() || status.is_final(),
            "gateway {g} went from {old:?} back to {status:?}"
        );
        self.counts[old as usize] -= 1;
        self.counts[status as usize] += 1;
        gw.status = status;
        if let Some(changed) = &mut self.changed {
            changed.push(g);
        }
        if status.is_final() && !old.is_final() {
            self.finals += 1;
            let w = gw.wave as usize;
            let succeeded = status == Status::Succeeded;
            self.waves[w].finals += 1;
            self.waves[w].succeeded += u32::from(succeeded);
            self.waves[w].not_ready +=
                u32::from(gw.cause == Some(Cause::NotReady) && status == Status::Failed);
            if let Some(win) = self.window.as_mut() {
                win.on_final(status == Status::Failed);
            }
            self.after_wave_progress(w);
        }
    }

    fn mark_downloaded(&mut self, g: u32) {
        let gw = &mut self.gws[g as usize];
        if !gw.downloaded {
            gw.downloaded = true;
            let w = gw.wave as usize;
            self.waves[w].downloaded += 1;
            self.after_wave_progress(w);
        }
    }

    fn after_wave_progress(&mut self, w: usize) {
        let state = &mut self.waves[w];
        let len = state.size;
        if state.gate_at.is_none() {
            if let Some(Release::AfterGate {
                fraction,
                state: gs,
                ..
            }) = self.plan.waves.get(w + 1).map(|next| &next.release)
            {
                let need = ((fraction * len as f64).ceil() as u32).min(len);
                let have = match gs {
                    GateState::Downloaded => state.downloaded,
                    GateState::Succeeded => state.succeeded,
                    GateState::Final => state.finals,
                };
                if have >= need {
                    state.gate_at = Some(self.now);
                }
            }
        }
        if state.completed_at.is_none() && state.finals == len {
            state.completed_at = Some(self.now);
            let attempted = len - state.not_ready;
            let success = if attempted == 0 {
                1.0
            } else {
                f64::from(state.succeeded) / f64::from(attempted)
            };
            if let Some(below) = self.policy.rollback_below {
                if success < below && self.halted.is_none() {
                    self.roll_back_wave(w, success);
                }
            }
        }
    }

    fn roll_back_wave(&mut self, w: usize, success: f64) {
        let members: Vec<u32> = (0..self.gws.len() as u32)
            .filter(|&g| self.gws[g as usize].wave as usize == w)
            .collect();
        for g in members {
            if self.gws[g as usize].status == Status::Succeeded {
                self.out.push_back(Command::Rollback { gw: g });
                self.set_status(g, Status::RolledBack);
            }
        }
        self.halt(HaltReason::Rollback { wave: w, success });
    }

    fn halt(&mut self, reason: HaltReason) {
        if self.halted.is_some() {
            return;
        }
        self.out.push_back(Command::Halt {
            reason: reason.clone(),
        });
        self.halted = Some(reason);
        self.ready.clear();
        for g in 0..self.gws.len() as u32 {
            match self.gws[g as usize].status {
                Status::Waiting | Status::Ready | Status::Deferred | Status::RetryWait => {
                    self.set_status(g, Status::Skipped)
                }
                Status::InFlight => {
                    let attempt = self.attempts(g);
                    self.out.push_back(Command::Cancel { gw: g, attempt });
                }
                _ => {}
            }
        }
    }

    fn on_rejected(&mut self, g: u32) {
        self.busy -= 1;
        if let Some(w) = self.window.as_mut() {
            w.on_rejection();
        }
        let gw = &mut self.gws[g as usize];
        gw.attempts = gw.attempts.saturating_sub(1);
        gw.rejections += 1;
        let n = u32::from(gw.rejections);
        if self.halted.is_some() || gw.rejections >= MAX_REJECTIONS {
            gw.cause = Some(Cause::Rejected);
            let status = if self.halted.is_some() {
                Status::Skipped
            } else {
                Status::Failed
            };
            self.set_status(g, status);
            return;
        }
        self.schedule_retry(g, n);
    }

    fn on_failure(&mut self, g: u32, cause: Cause) {
        if self.gws[g as usize].status == Status::InFlight {
            self.busy -= 1;
        }
        self.gws[g as usize].cause = Some(cause);
        if cause == Cause::HealthCheck {
            self.health_failures += 1;
            self.set_status(g, Status::Failed);
            if let Some(limit) = self.policy.defect_halt_after {
                if self.health_failures >= limit {
                    self.halt(HaltReason::Defect {
                        health_failures: self.health_failures,
                    });
                }
            }
            return;
        }
        let attempts = u32::from(self.gws[g as usize].attempts);
        if self.halted.is_some() || attempts >= self.policy.retry.max_attempts {
            self.set_status(g, Status::Failed);
        } else {
            self.schedule_retry(g, attempts);
        }
    }

    fn schedule_retry(&mut self, g: u32, n: u32) {
        let wake = self.now + backoff::delay(&self.policy.retry, n, g, self.seed);
        self.gws[g as usize].wake = wake;
        self.set_status(g, Status::RetryWait);
        self.timers.push(Reverse((wake, g)));
    }

    fn on_succeeded(&mut self, g: u32) {
        let Some(gw) = self.gws.get(g as usize) else {
            return;
        };
        match gw.status {
            Status::Succeeded | Status::RolledBack => {}
            status => {
                if matches!(status, Status::InFlight | Status::Checking) {
                    self.busy -= 1;
                }
                self.mark_downloaded(g);
                if status.is_final() {
                    // A late success after we gave up: the gateway really is updated.
                    let w = self.gws[g as usize].wave as usize;
                    self.waves[w].succeeded += 1;
                    self.counts[status as usize] -= 1;
                    self.counts[Status::Succeeded as usize] += 1;
                    self.gws[g as usize].status = Status::Succeeded;
                    self.note_changed(g);
                } else {
                    self.set_status(g, Status::Succeeded);
                }
            }
        }
    }

    fn on_checked(&mut self, g: u32, facts: Facts) {
        if self.gws.get(g as usize).map(|gw| gw.status) != Some(Status::Checking) {
            return;
        }
        self.busy -= 1;
        if self.halted.is_some() {
            self.set_status(g, Status::Skipped);
            return;
        }
        let judged = self
            .policy
            .prechecks
            .as_ref()
            .map(|pc| (verdict(pc, &facts), pc));
        match judged {
            None | Some((Ok(()), _)) => self.start(g),
            Some((Err(why), pc)) => {
                self.deferred_by[why as usize] += 1;
                let (defer, max, max_offline, mode) = (
                    pc.defer,
                    pc.max_deferrals,
                    pc.max_offline_deferrals,
                    pc.deferred,
                );
                if mode == policy::DeferMode::NextWave {
                    self.move_to_next_wave(g);
                    // Leaving its wave can complete that wave and trip the rollback rule:
                    // after a halt nothing is deferred for later.
                    if self.halted.is_some() {
                        self.set_status(g, Status::Skipped);
                        return;
                    }
                }
                let gw = &mut self.gws[g as usize];
                gw.deferrals += 1;
                gw.offline_deferrals += u16::from(why == Unready::Offline);
                if u32::from(gw.deferrals) > max
                    || u32::from(gw.offline_deferrals) > max_offline
                    || why.needs_operator()
                {
                    gw.cause = Some(Cause::NotReady);
                    self.set_status(g, Status::Failed);
                } else {
                    let wake = self.now + defer;
                    gw.wake = wake;
                    self.set_status(g, Status::Deferred);
                    self.timers.push(Reverse((wake, g)));
                }
            }
        }
    }

    /// A deferred gateway leaves its wave for the next one, and the next wave (if not yet
    /// released) lends a replacement, preferably of the same region and hardware class,
    /// so that one unready gateway cannot hold a canary or a batch open.
    fn move_to_next_wave(&mut self, g: u32) {
        let gw = self.gws[g as usize];
        let w = gw.wave as usize;
        if w + 1 >= self.waves.len() || gw.attempts > 0 || gw.downloaded {
            return;
        }
        self.waves[w].size -= 1;
        self.waves[w + 1].size += 1;
        self.gws[g as usize].wave = (w + 1) as u32;
        if self.released <= w + 1 {
            let next = &self.plan.waves[w + 1];
            let me = self.inventory[g as usize];
            let candidates = self.plan.order[next.start..next.start + next.len]
                .iter()
                .copied()
                .filter(|&c| {
                    self.gws[c as usize].status == Status::Waiting
                        && self.gws[c as usize].wave as usize == w + 1
                });
            let mut best: Option<(u8, u32)> = None;
            for c in candidates {
                let info = self.inventory[c as usize];
                let score = u8::from(info.region == me.region) * 2 + u8::from(info.hw == me.hw);
                if best.is_none_or(|(b, _)| score > b) {
                    best = Some((score, c));
                    if score == 3 {
                        break;
                    }
                }
            }
            if let Some((_, r)) = best {
                self.waves[w + 1].size -= 1;
                self.waves[w].size += 1;
                self.gws[r as usize].wave = w as u32;
                self.set_status(r, Status::Ready);
                self.ready.push_back(r);
            }
        }
        self.after_wave_progress(w);
    }

    /// When gateway `g` may install at or after `t`: its region's next window, or `t`.
    fn install_open_at(&self, g: u32, t: Time) -> Time {
        self.maintenance
            .as_ref()
            .map_or(t, |m| m.open_at(self.inventory[g as usize].region, t))
    }

    /// Whether a gateway may start installing now (its region's window is open). Drivers
    /// whose platform takes the install as a separate request ask this before sending it.
    pub fn may_install(&self, gw: u32, now: Time) -> bool {
        self.install_open_at(gw, now) <= now
    }

    /// When a ready gateway may be started: at most the lead before its window opens.
    fn start_allowed_at(&self, g: u32) -> Time {
        let lead = self.maintenance.as_ref().map_or(Time::ZERO, |m| m.lead);
        self.install_open_at(g, self.now) - lead
    }

    fn start(&mut self, g: u32) {
        self.busy += 1;
        self.peak_busy = self.peak_busy.max(self.busy);
        // The operation's timeout runs from when it may install: waiting for the window is
        // not a stall.
        let open = self.install_open_at(g, self.now);
        let gw = &mut self.gws[g as usize];
        gw.attempts += 1;
        let attempt = u32::from(gw.attempts);
        gw.started_at = self.now;
        gw.queued = self.policy.queue_timeout.is_some();
        let first = match (self.policy.queue_timeout, self.policy.op_timeout) {
            (Some(q), Some(o)) => Some((self.now + q).min(open + o)),
            (Some(q), None) => Some(self.now + q),
            (None, Some(o)) => Some(open + o),
            (None, None) => None,
        };
        if let Some(t) = first {
            gw.wake = t;
            self.timers.push(Reverse((gw.wake, g)));
        } else {
            gw.wake = Time::NEVER;
        }
        self.set_status(g, Status::InFlight);
        self.out.push_back(Command::Start { gw: g, attempt });
    }

    fn pump(&mut self) {
        if self.halted.is_some() {
            return;
        }
        let cap = self.cap();
        while self.busy < cap {
            let Some(g) = self.ready.pop_front() else {
                break;
            };
            if self.gws[g as usize].status != Status::Ready {
                continue;
            }
            let at = self.start_allowed_at(g);
            if at > self.now {
                self.held.push(Reverse((at, g)));
                continue;
            }
            if self.policy.prechecks.is_some() {
                self.busy += 1;
                self.peak_busy = self.peak_busy.max(self.busy);
                self.set_status(g, Status::Checking);
                self.out.push_back(Command::Check { gw: g });
            } else {
                self.start(g);
            }
        }
    }

    fn next_release_time(&self) -> Option<Time> {
        if self.halted.is_some() || self.released >= self.plan.waves.len() {
            return None;
        }
        let w = self.released;
        if w == 0 {
            return Some(Time::ZERO);
        }
        let prev = &self.waves[w - 1];
        let prev_start = prev.released_at?;
        if self.gate_stage(w - 1).is_some() && !(prev.completed_at.is_some() && prev.approved) {
            // An approval gate: the stage must complete, then an operator approve.
            return None;
        }
        if self.refit_wave == Some(w - 1) && !prev.repaced {
            // A refit: the stage must complete, then the driver re-tune the rest.
            return None;
        }
        match &self.plan.waves[w].release {
            Release::Now | Release::WithPrevious => Some(prev_start),
            Release::AfterComplete(wait) => prev.completed_at.map(|t| t + *wait),
            Release::AfterGate {
                timeout,
                gap,
                min_gap,
                ..
            } => {
                let timed_out = timeout.map(|t| prev_start + t);
                let gate = [prev.gate_at, timed_out, prev.completed_at]
                    .into_iter()
                    .flatten()
                    .min()?;
                Some((gate + *gap).max(prev_start + *min_gap))
            }
        }
    }

    /// Asks once for the refit, when every wave of its stage has completed.
    fn announce_refit(&mut self) {
        let Some(w) = self.refit_wave else { return };
        if self.halted.is_some() || w >= self.released || self.waves[w].refit_asked {
            return;
        }
        let stage = self.policy.refit_after.clone().unwrap_or_default();
        let complete = self
            .plan
            .waves
            .iter()
            .zip(&self.waves)
            .take(w + 1)
            .filter(|(wave, _)| wave.stage.as_deref() == Some(stage.as_str()))
            .all(|(_, st)| st.completed_at.is_some());
        if complete {
            self.waves[w].refit_asked = true;
            self.out.push_back(Command::Refit { wave: w, stage });
        }
    }

    /// Applies the driver's re-tuned pace to what has not been released yet (and to the
    /// concurrency cap, retries and re-checks from now on).
    fn repace(&mut self, wave: usize, pace_milli: u32) {
        if self.refit_wave != Some(wave) || self.waves[wave].repaced {
            return;
        }
        self.waves[wave].repaced = true;
        let pace = f64::from(pace_milli.max(1)) / 1000.0;
        self.pace = pace;
        self.policy = self.policy.paced(pace);
        let fresh = waves::plan(&self.policy, &self.inventory);
        for w in self.released..self.plan.waves.len() {
            if let Some(f) = fresh.waves.get(w) {
                self.plan.waves[w].release = f.release.clone();
            }
        }
        if let (Some(w), Some(cfg)) = (self.window.as_mut(), self.policy.adaptive.clone()) {
            w.reconfigure(cfg);
        }
    }

    /// Says once that a completed stage waits for approval.
    fn announce_pause(&mut self) {
        let Some(w) = self.released.checked_sub(1) else {
            return;
        };
        if self.halted.is_some() || self.waves[w].completed_at.is_none() {
            return;
        }
        let Some(stage) = self.gate_stage(w).map(String::from) else {
            return;
        };
        let st = &mut self.waves[w];
        if !st.pause_announced && !st.approved {
            st.pause_announced = true;
            self.out.push_back(Command::Paused { wave: w, stage });
        }
    }

    fn release_next_wave(&mut self) {
        let w = self.released;
        self.released += 1;
        self.waves[w].released_at = Some(self.now);
        let wave = self.plan.waves[w].clone();
        for i in wave.start..wave.start + wave.len {
            let g = self.plan.order[i];
            // Members lent to an earlier wave are already out; deferred ones came in.
            if self.gws[g as usize].status == Status::Waiting
                && self.gws[g as usize].wave as usize == w
            {
                self.set_status(g, Status::Ready);
                self.ready.push_back(g);
            }
        }
        let size = self.waves[w].size as usize;
        self.out.push_back(Command::WaveReleased {
            wave: w,
            stage: wave.stage,
            size,
        });

        // A gate of fraction 0 holds as soon as its wave starts.
        self.after_wave_progress(w);
    }
}
