//! The device-management service: a concurrency limit, a bounded queue (beyond it: 429),
//! and a CPU model. CPU demand grows with running and queued operations and with message
//! traffic; demand above capacity builds a backlog, so answers come late, heartbeats are
//! missed and gateways disconnect. That loop is what turned the seed's bulk push into an outage.

use std::collections::VecDeque;

use crate::scenario;

pub struct Service {
    cfg: scenario::Service,
    pub active: u32,
    queue: VecDeque<(u32, u32)>,
    pub queued: u32,
    /// Seconds of work waiting behind the CPU.
    backlog_s: f64,
    msgs: f64,
    reconnects: f64,
    pub cpu_pct: f64,
    pub demand_pct: f64,
    pub latency_ms: f64,
    pub peak_cpu_pct: f64,
    pub rejected: u64,
}

pub enum Admission {
    Active,
    Queued,
    Rejected,
}

impl Service {
    pub fn new(cfg: &scenario::Service) -> Service {
        Service {
            cfg: cfg.clone(),
            active: 0,
            queue: VecDeque::new(),
            queued: 0,
            backlog_s: 0.0,
            msgs: 0.0,
            reconnects: 0.0,
            cpu_pct: cfg.cpu_base_pct.min(100.0),
            demand_pct: cfg.cpu_base_pct,
            latency_ms: cfg.base_latency_ms,
            peak_cpu_pct: cfg.cpu_base_pct.min(100.0),
            rejected: 0,
        }
    }

    pub fn admit(&mut self, gw: u32, attempt: u32) -> Admission {
        self.msgs += 1.0;
        if self.active < self.cfg.max_concurrent_ops {
            self.active += 1;
            Admission::Active
        } else if self.queued < self.cfg.queue_depth {
            self.queue.push_back((gw, attempt));
            self.queued += 1;
            Admission::Queued
        } else {
            self.rejected += 1;
            Admission::Rejected
        }
    }

    /// Frees a slot. The caller then calls `next_queued` to fill it.
    pub fn release(&mut self) {
        self.active = self.active.saturating_sub(1);
    }

    /// Removes a queued entry (cancel). The queue is cleaned lazily.
    pub fn unqueue(&mut self) {
        self.queued = self.queued.saturating_sub(1);
    }

    /// Pops queued ops into free slots; `still_queued(gw, attempt)` filters stale entries.
    pub fn next_queued(
        &mut self,
        mut still_queued: impl FnMut(u32, u32) -> bool,
    ) -> Option<(u32, u32)> {
        if self.active >= self.cfg.max_concurrent_ops {
            return None;
        }
        while let Some((g, a)) = self.queue.pop_front() {
            if still_queued(g, a) {
                self.queued -= 1;
                self.active += 1;
                return Some((g, a));
            }
        }
        None
    }

    pub fn count_msgs(&mut self, n: f64) {
        self.msgs += n;
    }

    pub fn count_reconnect(&mut self) {
        self.reconnects += 1.0;
    }

    /// Closes a tick of `secs`: CPU from load and traffic, backlog, latency.
    pub fn tick(&mut self, secs: f64, connected: u32) {
        let c = &self.cfg;
        let msg_rate = self.msgs / secs + f64::from(connected) / c.heartbeat_interval_s;
        self.demand_pct = c.cpu_base_pct
            + c.cpu_per_active_op_pct * f64::from(self.active)
            + c.cpu_per_queued_op_pct * f64::from(self.queued)
            + c.cpu_per_msg_per_s_pct * msg_rate
            + c.cpu_per_reconnect_pct * self.reconnects / secs;
        let rho = self.demand_pct / 100.0;
        self.backlog_s = (self.backlog_s + (rho - 1.0) * secs).max(0.0);
        self.cpu_pct = if self.backlog_s > 0.0 {
            100.0
        } else {
            self.demand_pct.min(100.0)
        };
        self.peak_cpu_pct = self.peak_cpu_pct.max(self.cpu_pct);
        self.latency_ms = c.base_latency_ms / (1.0 - rho.min(0.95)) + self.backlog_s * 1000.0;
        self.msgs = 0.0;
        self.reconnects = 0.0;
    }

    /// Per-second hazard that a connected gateway misses `missed_heartbeats` in a row, with
    /// response times ~ Exp(mean latency) against the heartbeat deadline.
    pub fn heartbeat_hazard(&self) -> f64 {
        let c = &self.cfg;
        let mean_s = self.latency_ms / 1000.0;
        if mean_s <= 0.0 {
            return 0.0;
        }
        let miss = (-c.heartbeat_deadline_s / mean_s).exp();
        miss.powi(c.missed_heartbeats as i32) / c.heartbeat_interval_s
    }

    pub fn latency(&self) -> crate::time::Time {
        crate::time::Time::from_millis_f64(self.latency_ms)
    }
}
