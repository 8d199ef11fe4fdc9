//! Sampled time series of one run: service load, gateway states and link loads.
//! States are classified from the world's ground truth plus the engine's view.

use crate::engine::{Engine, Status};
use crate::time::Time;
use crate::world::{Activity, Truth, World};

/// Gateway states shown in timelines and charts, in column order.
pub const STATES: [&str; 9] = [
    "pending",
    "deferred",
    "queued",
    "downloading",
    "installing",
    "succeeded",
    "failed",
    "manual",
    "rolled_back",
];

#[derive(Debug, Clone, PartialEq)]
pub struct TimelineRow {
    pub t_s: f64,
    pub mgmt_cpu_pct: f64,
    pub active_ops: u32,
    pub queued_ops: u32,
    pub latency_ms: f64,
    pub offline: u32,
    pub states: [u32; STATES.len()],
    pub origin_mbps: f64,
    pub uplink_mbps: Vec<f64>,
    pub cache_mbps: Vec<f64>,
}

pub struct Timeline {
    pub regions: Vec<String>,
    pub rows: Vec<TimelineRow>,
    every: Time,
    next: Time,
}

fn classify(world: &World, engine: &Engine, g: u32) -> usize {
    match world.truth(g) {
        Truth::Bricked | Truth::Stuck => return 7,
        Truth::Updated if world.activity(g) != Activity::RollingBack => return 5,
        Truth::RolledBack => return 8,
        _ => {}
    }
    match world.activity(g) {
        Activity::Downloading | Activity::ChunkPause | Activity::WaitingCache => return 3,
        Activity::Installing | Activity::RollingBack => return 4,
        Activity::Dispatching => return 2,
        Activity::None => {}
    }
    if world.is_queued(g) {
        return 2;
    }
    match engine.status(g) {
        Status::Deferred => 1,
        Status::Failed | Status::Skipped => 6,
        _ => 0,
    }
}

impl Timeline {
    pub fn new(world: &World, every: Time) -> Timeline {
        Timeline {
            regions: world.scenario.fleet.regions.clone(),
            rows: Vec::new(),
            every,
            next: Time::ZERO,
        }
    }

    pub fn maybe_sample(&mut self, now: Time, world: &World, engine: &Engine) {
        if now >= self.next {
            self.sample(now, world, engine);
            self.next = now + self.every;
        }
    }

    pub fn sample(&mut self, now: Time, world: &World, engine: &Engine) {
        if self.rows.last().is_some_and(|r| r.t_s >= now.secs()) {
            return;
        }
        let mut states = [0u32; STATES.len()];
        let mut offline = 0;
        for g in 0..world.gateways() as u32 {
            states[classify(world, engine, g)] += 1;
            offline += u32::from(!world.is_online(g));
        }
        let (origin, uplinks, caches) = world.link_loads_mbps();
        self.rows.push(TimelineRow {
            t_s: now.secs(),
            mgmt_cpu_pct: world.service.cpu_pct,
            active_ops: world.service.active,
            queued_ops: world.service.queued,
            latency_ms: world.service.latency_ms,
            offline,
            states,
            origin_mbps: origin,
            uplink_mbps: uplinks,
            cache_mbps: caches,
        });
    }

    pub fn header(&self) -> Vec<String> {
        let mut h: Vec<String> = [
            "t_s",
            "mgmt_cpu_pct",
            "active_ops",
            "queued_ops",
            "latency_ms",
            "offline",
        ]
        .map(String::from)
        .to_vec();
        h.extend(STATES.iter().map(|s| s.to_string()));
        h.push("origin_mbps".into());
        h.extend(self.regions.iter().map(|r| format!("uplink_{r}_mbps")));
        h.extend(self.regions.iter().map(|r| format!("cache_{r}_mbps")));
        h
    }

    /// CSV bytes (pure: the caller writes them).
    pub fn to_csv(&self) -> Result<Vec<u8>, csv::Error> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(self.header())?;
        for r in &self.rows {
            let mut rec = vec![
                fmt(r.t_s),
                fmt(r.mgmt_cpu_pct),
                r.active_ops.to_string(),
                r.queued_ops.to_string(),
                fmt(r.latency_ms),
                r.offline.to_string(),
            ];
            rec.extend(r.states.iter().map(u32::to_string));
            rec.push(fmt(r.origin_mbps));
            rec.extend(r.uplink_mbps.iter().map(|v| fmt(*v)));
            rec.extend(r.cache_mbps.iter().map(|v| fmt(*v)));
            w.write_record(rec)?;
        }
        w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
    }
}

/// Fixed-precision number formatting so outputs are byte-stable.
pub fn fmt(x: f64) -> String {
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}
