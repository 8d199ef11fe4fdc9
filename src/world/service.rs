//! The device-management service: an operation limit with a bounded queue (beyond it: 429),
//! and a CPU of `cores` workers serving requests first come, first served.
//!
//! Every request has a class with a measurable mean CPU cost (ms, exponentially distributed):
//! operation lifecycle calls, reconnects (TLS, authentication and session set-up), progress
//! messages, status polls and heartbeats. The first two come from the simulator's own events
//! and go through the queue one by one; the periodic classes, too many to send one by one for a
//! million gateways, arrive as a fluid at the rate the protocol gives (gateways ÷ interval,
//! and the progress messages the last tick's chunks sent).
//!
//! The queue is the Kiefer–Wolfowitz workload vector: each core's unfinished work. A request
//! joins the core that frees first, so its response time is known when it arrives and no
//! completion event is needed. Cores are kept in a min-heap by when they free on a drain clock
//! D(t) = ∫(1 − fluid share) dt, so a request costs O(log cores) however many cores there are. Under Poisson arrivals and exponential costs this is exactly
//! M/M/c, and its mean response time is Erlang C's (`tests/physics.rs` checks it). Demand above
//! capacity builds a backlog, answers come late, heartbeats miss their deadline and sessions
//! drop. It must never decide anything for a gateway: it only answers when.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use rand_distr::{Distribution, Exp1};

use crate::scenario;
use crate::sim::rng::Stream;
use crate::sim::Key;
use crate::time::Time;

/// The request classes that go through the queue one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Create, dispatch or report of an operation.
    Lifecycle,
    /// A reconnect: TLS handshake, authentication and session set-up.
    Reconnect,
}

pub struct Service {
    cfg: scenario::Service,
    /// How often each agent with an outstanding operation polls its state (s).
    status_poll_s: f64,
    pub active: u32,
    queue: VecDeque<(u32, u32)>,
    pub queued: u32,
    /// When each core runs out of work, on the drain clock: its unfinished work is
    /// max(0, free − drained).
    free: BinaryHeap<Reverse<Key>>,
    cores: u32,
    /// The drain clock D at `at`: seconds of core time each core has worked off the queue.
    drained: f64,
    at: Time,
    /// Discrete work that arrived since the last tick, and the backlog at that tick.
    arrived_s: f64,
    backlog_s: f64,
    /// Periodic traffic (background, heartbeats, status polls) per core, in cores.
    fluid_per_core: f64,
    costs: Stream,
    /// Utilisation over the last tick window, 0–100.
    pub cpu_pct: f64,
    pub peak_cpu_pct: f64,
    /// The response time an operation request meets now, network included.
    pub latency_ms: f64,
    pub rejected: u64,
    /// Progress messages since the last tick.
    progress_msgs: f64,
}

pub enum Admission {
    Active,
    Queued,
    Rejected,
}

impl Service {
    pub fn new(cfg: &scenario::Service, status_poll_s: f64, costs: Stream) -> Service {
        let cores = cfg.cores.max(1);
        Service {
            cfg: cfg.clone(),
            status_poll_s,
            active: 0,
            queue: VecDeque::new(),
            queued: 0,
            free: (0..cores).map(|_| Reverse(Key(0.0))).collect(),
            cores,
            drained: 0.0,
            at: Time::ZERO,
            arrived_s: 0.0,
            backlog_s: 0.0,
            fluid_per_core: cfg.cpu_base_pct / 100.0,
            costs,
            cpu_pct: cfg.cpu_base_pct.min(100.0),
            peak_cpu_pct: cfg.cpu_base_pct.min(100.0),
            latency_ms: cfg.base_latency_ms + cfg.op_request_ms,
            rejected: 0,
            progress_msgs: 0.0,
        }
    }

    pub fn admit(&mut self, gw: u32, attempt: u32) -> Admission {
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

    /// Moves the drain clock to `now`: each core works off its queue at one core-second per
    /// second, less the fluid's share (negative when the fluid alone overloads it).
    fn advance(&mut self, now: Time) {
        if now <= self.at {
            return;
        }
        self.drained += (1.0 - self.fluid_per_core) * (now - self.at).secs();
        self.at = now;
    }

    /// The wait a request arriving now meets before a core takes it (s).
    fn wait_s(&self) -> f64 {
        self.free
            .peek()
            .map_or(0.0, |Reverse(Key(f))| (f - self.drained).max(0.0))
    }

    /// Every core's unfinished work, in core-seconds.
    fn backlog(&self) -> f64 {
        self.free
            .iter()
            .map(|Reverse(Key(f))| (f - self.drained).max(0.0))
            .sum()
    }

    /// Counts progress messages; they load the service as a fluid over the next tick.
    pub fn progress(&mut self, msgs: f64) {
        self.progress_msgs += msgs;
    }

    /// Sends one request at `now` and says when its answer is back: network round trip,
    /// wait for the first free core, and its own cost.
    pub fn request(&mut self, now: Time, class: Request) -> Time {
        let mean_ms = match class {
            Request::Lifecycle => self.cfg.op_request_ms,
            Request::Reconnect => self.cfg.reconnect_ms,
        };
        Time::from_secs(self.request_cost(now, mean_ms / 1000.0))
    }

    /// Queues a request with mean cost `mean_s` at `now` and returns its response time (s).
    pub fn request_cost(&mut self, now: Time, mean_s: f64) -> f64 {
        self.advance(now);
        let cost = if mean_s > 0.0 {
            mean_s * <Exp1 as Distribution<f64>>::sample(&Exp1, &mut self.costs)
        } else {
            0.0
        };
        self.arrived_s += cost;
        let Some(mut first) = self.free.peek_mut() else {
            return self.cfg.base_latency_ms / 1000.0 + cost;
        };
        let wait = (first.0 .0 - self.drained).max(0.0);
        first.0 .0 = first.0 .0.max(self.drained) + cost;
        drop(first);
        self.cfg.base_latency_ms / 1000.0 + wait + cost
    }

    /// Closes a tick of `secs` at `now`: the window's utilisation, then the periodic load
    /// until the next tick from `connected` gateways' heartbeats and `polling` gateways'
    /// status polls.
    pub fn tick(&mut self, now: Time, secs: f64, connected: u32, polling: u32) {
        self.advance(now);
        let cores = f64::from(self.cores);
        // Work done in the window: what was queued at its start, plus what arrived, less
        // what is still queued.
        let backlog = self.backlog();
        let served = self.backlog_s + self.arrived_s + self.fluid_per_core * cores * secs - backlog;
        self.cpu_pct = (100.0 * served / (cores * secs)).clamp(0.0, 100.0);
        self.peak_cpu_pct = self.peak_cpu_pct.max(self.cpu_pct);
        self.backlog_s = backlog;
        self.arrived_s = 0.0;
        // An idle core stays idle only while the drain clock runs forward: before the fluid
        // rate changes, idle cores start from now.
        let drained = self.drained;
        let free = std::mem::take(&mut self.free).into_vec();
        self.free = free
            .into_iter()
            .map(|Reverse(Key(f))| Reverse(Key(f.max(drained))))
            .collect();
        let c = &self.cfg;
        let periodic = f64::from(connected) / c.heartbeat_interval_s * c.heartbeat_ms
            + f64::from(polling) / self.status_poll_s * c.status_poll_ms
            + self.progress_msgs / secs * c.progress_ms;
        self.progress_msgs = 0.0;
        self.fluid_per_core = c.cpu_base_pct / 100.0 + periodic / 1000.0 / cores;
        self.latency_ms = c.base_latency_ms + 1000.0 * self.wait_s() + c.op_request_ms;
    }

    /// Per-second hazard that a connected gateway misses `missed_heartbeats` in a row. A
    /// heartbeat's response time is taken as exponential with the current mean (as in M/M/1),
    /// so it misses its deadline with probability exp(−deadline / mean).
    pub fn heartbeat_hazard(&self) -> f64 {
        let c = &self.cfg;
        let mean_s = c.base_latency_ms / 1000.0 + self.wait_s() + c.heartbeat_ms / 1000.0;
        if mean_s <= 0.0 {
            return 0.0;
        }
        let miss = (-c.heartbeat_deadline_s / mean_s).exp();
        miss.powi(c.missed_heartbeats as i32) / c.heartbeat_interval_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::rng::{self, Purpose};

    fn quiet(cores: u32) -> scenario::Service {
        let s = crate::scenario::from_text(
            "[fleet]\ngateways = 1\n[firmware]\nsize_mb = 1\nchunk_mb = 1\n[policies.all]\nfamily = \"bulk\"\n",
            "t.toml",
            &[],
        )
        .unwrap()
        .service;
        scenario::Service {
            cores,
            cpu_base_pct: 0.0,
            base_latency_ms: 0.0,
            ..s
        }
    }

    #[test]
    fn a_lone_request_is_answered_in_its_own_cost_and_the_next_waits_behind_it() {
        let mut s = Service::new(&quiet(1), 30.0, rng::stream(1, Purpose::Service, 0));
        let first = s.request_cost(Time::ZERO, 2.0);
        let second = s.request_cost(Time::ZERO, 2.0);
        assert!(first > 0.0);
        assert!(
            (second - first) > 0.0,
            "FCFS: the second waits for the first"
        );
        // Once the first is done and time has passed, the queue is empty again.
        let later = s.request_cost(Time::from_secs(1e6), 0.0);
        assert_eq!(later, 0.0);
    }

    #[test]
    fn two_cores_serve_two_requests_side_by_side() {
        let mut s = Service::new(&quiet(2), 30.0, rng::stream(1, Purpose::Service, 0));
        let a = s.request_cost(Time::ZERO, 1.0);
        let b = s.request_cost(Time::ZERO, 1.0);
        let c = s.request_cost(Time::ZERO, 0.0);
        assert!(a > 0.0 && b > 0.0);
        assert!(
            (c - a.min(b)).abs() < 1e-12,
            "the third waits for the first core to free"
        );
    }
}
