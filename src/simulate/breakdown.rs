//! Where the makespan went: every gateway's time is split by what it was waiting on, and the
//! split of the gateway whose final state came last is the critical path. Its time before its
//! wave was released is split along the chain of wave releases that led to it (gates, soaks,
//! gaps). The components sum to the makespan, up to the f32 accrual's rounding.

use crate::engine::waves::Release;
use crate::engine::{Engine, Status};
use crate::time::Time;
use crate::world::{Activity, World};

/// What a gateway is waiting on or doing; the last is "final" and accrues nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Part {
    Pending,
    SlotWait,
    UnreadyWait,
    RetryBackoff,
    ServiceQueue,
    Dispatch,
    Offline,
    Download,
    Install,
    WindowWait,
    Rollback,
    Reporting,
    Final,
}

const PARTS: usize = Part::Final as usize;

/// Names of the per-gateway parts in `Part` order.
const NAMES: [&str; PARTS] = [
    "pending",
    "slot_wait",
    "unready_wait",
    "retry_backoff",
    "service_queue",
    "dispatch",
    "offline",
    "download",
    "install",
    "window_wait",
    "rollback",
    "reporting",
];

fn part(world: &World, engine: &Engine, g: u32) -> Part {
    match world.activity(g) {
        Activity::Downloading | Activity::ChunkPause | Activity::WaitingCache => {
            return Part::Download
        }
        Activity::Installing => return Part::Install,
        Activity::RollingBack => return Part::Rollback,
        Activity::AwaitingWindow => return Part::WindowWait,
        Activity::Dispatching if !world.is_online(g) => return Part::Offline,
        Activity::Dispatching => return Part::Dispatch,
        Activity::None => {}
    }
    match engine.status(g) {
        s if s.is_final() => Part::Final,
        Status::Waiting => Part::Pending,
        Status::Ready => Part::SlotWait,
        Status::Checking | Status::Deferred => Part::UnreadyWait,
        Status::RetryWait => Part::RetryBackoff,
        Status::InFlight if world.is_queued(g) => Part::ServiceQueue,
        Status::InFlight if !world.is_online(g) => Part::Offline,
        _ => Part::Reporting,
    }
}

/// One gateway's accounts, in one cache line: a million gateways touched at random would
/// otherwise miss the cache once per array.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Slot {
    since: Time,
    /// Seconds per part (f32: a 1% budget over days is far above its error).
    spent: [f32; PARTS],
    part: Part,
}

/// Tracks every gateway's parts as the run goes.
pub struct Tracker {
    slots: Vec<Slot>,
    touched: Vec<u32>,
    /// The latest final state so far: (when, gateway).
    last_final: Option<(Time, u32)>,
}

impl Tracker {
    pub fn new(world: &mut World, engine: &mut Engine) -> Tracker {
        world.watch_changes();
        engine.watch_changes();
        let n = world.gateways();
        Tracker {
            slots: (0..n as u32)
                .map(|g| Slot {
                    since: Time::ZERO,
                    spent: [0.0; PARTS],
                    part: part(world, engine, g),
                })
                .collect(),
            touched: Vec::new(),
            last_final: None,
        }
    }

    /// Reclassifies the gateways the world or the engine touched; hands them on to `also`.
    pub fn update(
        &mut self,
        now: Time,
        world: &mut World,
        engine: &mut Engine,
        also: Option<&mut Vec<u32>>,
    ) {
        world.take_touched(&mut self.touched);
        engine.take_changed(&mut self.touched);
        for &g in &self.touched {
            let new = part(world, engine, g);
            let slot = &mut self.slots[g as usize];
            let old = slot.part;
            if new == old {
                continue;
            }
            if old != Part::Final {
                slot.spent[old as usize] += (now - slot.since).secs() as f32;
            }
            slot.part = new;
            slot.since = now;
            if new == Part::Final && self.last_final.is_none_or(|(t, _)| now >= t) {
                self.last_final = Some((now, g));
            }
        }
        match also {
            Some(v) => v.append(&mut self.touched),
            None => self.touched.clear(),
        }
    }

    /// The breakdown of `makespan`, in seconds, components in a fixed order (zeros left out).
    pub fn finish(&self, engine: &Engine, makespan: Time) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = Vec::new();
        let mut add = |name: &str, s: f64| {
            if s > 0.0 {
                match out.iter_mut().find(|(n, _)| n == name) {
                    Some((_, v)) => *v += s,
                    None => out.push((name.to_string(), s)),
                }
            }
        };
        let Some((done, g)) = self.last_final else {
            add("pending", makespan.secs());
            return out;
        };
        let spent = &self.slots[g as usize].spent;
        // Before its wave's release: the chain of releases that led to it.
        let mut pending = f64::from(spent[Part::Pending as usize]);
        for (name, s) in release_chain(engine, engine.wave_of(g)) {
            let s = s.min(pending);
            add(name, s);
            pending -= s;
        }
        add("pending", pending);
        for (k, name) in NAMES.iter().enumerate().skip(1) {
            add(name, f64::from(spent[k]));
        }
        // After the last final state: physical work still finishing (rollbacks, installs).
        add("tail", (makespan - done.min(makespan)).secs());
        out.iter_mut()
            .for_each(|(_, s)| *s = (*s * 1000.0).round() / 1000.0);
        out.retain(|(_, s)| *s != 0.0);
        out
    }
}

/// From t = 0 to the release of wave `last`: per wave, the wait for the previous one's gate
/// or completion, then the soak, gap or approval that followed.
fn release_chain(engine: &Engine, last: usize) -> Vec<(&'static str, f64)> {
    let mut out = Vec::new();
    let waves = &engine.plan().waves;
    for w in 1..=last.min(waves.len().saturating_sub(1)) {
        let (Some(prev), _, _) = engine.wave_times(w - 1) else {
            break;
        };
        let (Some(released), _, _) = engine.wave_times(w) else {
            break;
        };
        let (_, gate_at, completed_at) = engine.wave_times(w - 1);
        let span = (released - prev.min(released)).secs();
        let (trigger, after) = match &waves[w].release {
            Release::Now | Release::WithPrevious => (None, "batch_gap"),
            Release::AfterComplete(_) => (
                completed_at,
                if waves[w - 1].stage.is_some() {
                    "soak"
                } else {
                    "batch_gap"
                },
            ),
            Release::AfterGate { timeout, .. } => {
                let timed_out = timeout.map(|t| prev + t);
                (
                    [gate_at, timed_out, completed_at]
                        .into_iter()
                        .flatten()
                        .min(),
                    "batch_gap",
                )
            }
        };
        let waited = trigger.map_or(0.0, |t| (t.min(released) - prev.min(t)).secs());
        out.push(("gate_wait", waited));
        out.push((after, span - waited));
    }
    out
}
