//! A gateway's fixed traits, drawn once per (seed, gateway) so every policy run on the same
//! seed meets the same fleet. Time-varying traits (CPU, busy, battery) are pure functions of
//! time: no events are spent on idle gateways.

use rand::Rng;

use crate::scenario::Scenario;
use crate::sim::rng::{self, Purpose};
use crate::time::Time;

#[derive(Debug, Clone)]
pub struct Profile {
    pub region: u16,
    pub hw: u16,
    pub last_mile_bps: f64,
    pub origin_rtt_ms: f64,
    pub cache_rtt_ms: f64,
    pub baseline_cpu_pct: f32,
    pub busy_fraction: f32,
    pub busy_period_s: f32,
    pub busy_phase: f32,
    pub free_disk_mb: f32,
    /// Battery level at t = 0 for battery-backed gateways.
    pub battery_pct: Option<f32>,
    /// Multiplier on link faults: chunk failures and link drops.
    pub flakiness: f32,
}

impl Profile {
    pub fn draw(s: &Scenario, seed: u64, index: u32) -> Profile {
        let mut r = rng::stream(seed, Purpose::Profile, u64::from(index));
        let f = &s.fleet;
        let region = (index as usize % f.regions.len()) as u16;
        let hw = r.random_range(0..f.hw_classes.len()) as u16;
        let battery = r.random_bool(f.battery_fraction.clamp(0.0, 1.0));
        Profile {
            region,
            hw,
            last_mile_bps: s.network.gateway_mbps.sample(&mut r) * 1e6,
            origin_rtt_ms: s.network.origin_rtt_ms.sample(&mut r),
            cache_rtt_ms: s.network.cache_rtt_ms.sample(&mut r),
            baseline_cpu_pct: f.baseline_cpu_pct.sample(&mut r) as f32,
            busy_fraction: f.busy_fraction.sample(&mut r) as f32,
            busy_period_s: f.busy_period_s.sample(&mut r).max(1.0) as f32,
            busy_phase: r.random::<f32>(),
            free_disk_mb: f.free_disk_mb.sample(&mut r) as f32,
            battery_pct: battery.then(|| f.battery_pct.sample(&mut r) as f32),
            flakiness: f.flakiness.sample(&mut r) as f32,
        }
    }

    /// Whether a critical local job is running (a periodic duty cycle).
    pub fn busy_at(&self, t: Time) -> bool {
        if self.busy_fraction <= 0.0 {
            return false;
        }
        let cycle = (t.secs() / f64::from(self.busy_period_s) + f64::from(self.busy_phase)).fract();
        cycle < f64::from(self.busy_fraction)
    }

    pub fn cpu_at(&self, t: Time, busy_cpu_pct: f64) -> f64 {
        let busy = if self.busy_at(t) { busy_cpu_pct } else { 0.0 };
        (f64::from(self.baseline_cpu_pct) + busy).min(100.0)
    }

    pub fn battery_at(&self, t: Time, charge_pct_per_h: f64) -> Option<f64> {
        self.battery_pct
            .map(|b| (f64::from(b) + charge_pct_per_h * t.secs() / 3600.0).min(100.0))
    }

    /// Per-flow throughput limit of TCP with a fixed receive window: window / RTT.
    pub fn window_cap_bps(window_kb: f64, rtt_ms: f64) -> f64 {
        if window_kb <= 0.0 {
            return f64::INFINITY;
        }
        window_kb * 1024.0 * 8.0 / (rtt_ms / 1000.0)
    }
}
