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
    /// Each gateway's state column as of the last sample, and the column totals. A sample
    /// reclassifies only the gateways the world or the engine touched since: on a million
    /// gateways a full scan per sample would cost more than the run itself.
    class: Vec<u8>,
    counts: [u32; STATES.len()],
    touched: Vec<u32>,
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
        // Downloaded, waiting for its maintenance window.
        Activity::AwaitingWindow => return 1,
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

/// State totals by a full scan: the reference the incremental counts must match.
fn full_counts(world: &World, engine: &Engine) -> [u32; STATES.len()] {
    let mut counts = [0u32; STATES.len()];
    for g in 0..world.gateways() as u32 {
        counts[classify(world, engine, g)] += 1;
    }
    counts
}

impl Timeline {
    /// Starts watching `world` and `engine` for changes.
    pub fn new(world: &mut World, engine: &mut Engine, every: Time) -> Timeline {
        world.watch_changes();
        engine.watch_changes();
        let class: Vec<u8> = (0..world.gateways() as u32)
            .map(|g| classify(world, engine, g) as u8)
            .collect();
        Timeline {
            regions: world.scenario.fleet.regions.clone(),
            rows: Vec::new(),
            every,
            next: Time::ZERO,
            counts: full_counts(world, engine),
            class,
            touched: Vec::new(),
        }
    }

    /// Gateways to reclassify at the next sample, for a tracker that drains the world's and
    /// the engine's change lists first.
    pub fn touched(&mut self) -> &mut Vec<u32> {
        &mut self.touched
    }

    pub fn maybe_sample(&mut self, now: Time, world: &mut World, engine: &mut Engine) {
        if now >= self.next {
            self.sample(now, world, engine);
            self.next = now + self.every;
        }
    }

    pub fn sample(&mut self, now: Time, world: &mut World, engine: &mut Engine) {
        if self.rows.last().is_some_and(|r| r.t_s >= now.secs()) {
            return;
        }
        world.take_touched(&mut self.touched);
        engine.take_changed(&mut self.touched);
        for g in self.touched.drain(..) {
            let old = &mut self.class[g as usize];
            let new = classify(world, engine, g) as u8;
            self.counts[*old as usize] -= 1;
            self.counts[new as usize] += 1;
            *old = new;
        }
        let states = self.counts;
        debug_assert_eq!(
            states,
            full_counts(world, engine),
            "incremental timeline drifted"
        );
        let offline = world.offline();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::{run, Options};

    /// Every sample checks the incremental counts against a full scan (a debug assertion), so
    /// this runs every policy of the shipped scenario, with faults, retries and rollbacks.
    #[test]
    fn incremental_state_counts_match_a_full_scan_in_every_policy() {
        let sets = [
            "fleet.gateways=120".to_string(),
            "firmware.defect_rate=0.05".to_string(),
        ];
        let scenario = crate::scenario::load("scenarios/seed-200.toml", &sets).unwrap();
        let opts = Options {
            timeline_every: Some(Time::from_secs(30.0)),
        };
        for (name, policy) in &scenario.policies {
            for seed in 1..=3 {
                let tl = run(&scenario, name, policy, seed, &opts).timeline.unwrap();
                assert!(tl.rows.len() > 10, "{name}: {} rows", tl.rows.len());
                for r in &tl.rows {
                    assert_eq!(r.states.iter().sum::<u32>(), 120, "{name} seed {seed}");
                }
                let last = tl.rows.last().unwrap();
                assert_eq!(last.states[..5].iter().sum::<u32>(), 0, "{name}: all final");
            }
        }
    }
}
