//! AIMD concurrency window for the adaptive family: grow by `increase` per quiet interval,
//! multiply by `decrease` when the service pushes back (latency, rejections, failures).

use super::policy::Adaptive;

#[derive(Debug, Clone)]
pub struct Window {
    cfg: Adaptive,
    size: f64,
    rejections: u32,
    failures: u32,
    finals: u32,
    latency_sum: f64,
    latency_n: u32,
}

impl Window {
    pub fn new(cfg: Adaptive) -> Window {
        let size = cfg.initial.clamp(cfg.min, cfg.max);
        Window {
            cfg,
            size,
            rejections: 0,
            failures: 0,
            finals: 0,
            latency_sum: 0.0,
            latency_n: 0,
        }
    }

    /// New bounds (a re-tuned pace); the current size stays, within them.
    pub fn reconfigure(&mut self, cfg: Adaptive) {
        self.size = self.size.clamp(cfg.min, cfg.max);
        self.cfg = cfg;
    }

    pub fn cap(&self) -> u32 {
        self.size.floor().max(1.0) as u32
    }

    pub fn on_rejection(&mut self) {
        self.rejections += 1;
    }

    pub fn on_final(&mut self, failed: bool) {
        self.finals += 1;
        self.failures += u32::from(failed);
    }

    pub fn on_latency(&mut self, ms: f64) {
        if ms.is_finite() {
            self.latency_sum += ms;
            self.latency_n += 1;
        }
    }

    /// Closes one interval and adjusts the window.
    pub fn evaluate(&mut self) {
        let latency = if self.latency_n > 0 {
            self.latency_sum / self.latency_n as f64
        } else {
            0.0
        };
        let failure_rate = if self.finals > 0 {
            self.failures as f64 / self.finals as f64
        } else {
            0.0
        };
        let pushed_back = self.rejections > 0
            || latency > self.cfg.target_latency_ms
            || (self.finals >= 3 && failure_rate > self.cfg.max_failure_rate);
        self.size = if pushed_back {
            self.size * self.cfg.decrease
        } else {
            self.size + self.cfg.increase
        };
        self.size = self.size.clamp(self.cfg.min, self.cfg.max);
        self.rejections = 0;
        self.failures = 0;
        self.finals = 0;
        self.latency_sum = 0.0;
        self.latency_n = 0;
    }

    pub fn interval(&self) -> crate::time::Time {
        self.cfg.interval
    }
}
