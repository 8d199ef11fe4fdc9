//! Disconnection hazard without per-gateway timers. Every connected gateway draws a budget
//! E ~ Exp(1) and disconnects when its weighted share of the fleet-wide cumulative hazard
//! H(t) = ∫ h dt exceeds it. Weights change only when a gateway changes state, so one heap
//! of thresholds on H gives the next disconnection in O(log n).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::sim::Key;

#[derive(Clone, Copy)]
struct Exposure {
    /// What is left of the gateway's Exp(1) budget as of `mark`.
    budget: f64,
    /// H when the budget was last settled.
    mark: f64,
    weight: f32,
    /// Bumped on every change: heap entries of older versions are stale.
    version: u32,
}

#[derive(Default)]
pub struct Hazard {
    /// Cumulative hazard H so far.
    pub total: f64,
    /// One record per gateway: a weight change touches one cache line, not four.
    gws: Vec<Exposure>,
    heap: BinaryHeap<Reverse<(Key, u32, u32)>>,
    /// The lowest threshold pushed since it was last reset (an earlier crossing may be due).
    pub fresh_min: f64,
    /// Whether thresholds are kept in the heap. A hazard whose rate is negligible keeps its
    /// weights and budgets exact but no heap, which it rebuilds once the rate rises.
    indexed: bool,
}

impl Hazard {
    pub fn new(n: usize) -> Hazard {
        Hazard {
            total: 0.0,
            gws: vec![
                Exposure {
                    budget: f64::INFINITY,
                    mark: 0.0,
                    weight: 0.0,
                    version: 0,
                };
                n
            ],
            heap: BinaryHeap::new(),
            fresh_min: f64::INFINITY,
            // Indexed by the first `reschedule` that finds the rate worth an event: a channel
            // that never matters (session drops on an idle service) never builds its heap.
            indexed: false,
        }
    }

    /// Advances H by rate × seconds.
    pub fn accumulate(&mut self, rate_per_s: f64, secs: f64) {
        if rate_per_s > 0.0 && secs > 0.0 {
            self.total += rate_per_s * secs;
        }
    }

    /// Gives gateway `g` a fresh budget (after it reconnects).
    pub fn renew(&mut self, g: u32, budget: f64) {
        let e = &mut self.gws[g as usize];
        e.budget = budget;
        e.mark = self.total;
        self.push(g);
    }

    /// The exposure weight of `g`.
    pub fn weight(&self, g: u32) -> f32 {
        self.gws[g as usize].weight
    }

    /// Changes the exposure weight of `g` from now on.
    pub fn set_weight(&mut self, g: u32, weight: f32) {
        let e = &mut self.gws[g as usize];
        if e.weight == weight {
            return;
        }
        e.budget -= f64::from(e.weight) * (self.total - e.mark);
        e.mark = self.total;
        e.weight = weight;
        self.push(g);
    }

    /// Keeps the threshold heap (`on`), or drops it while the rate is negligible.
    pub fn set_indexed(&mut self, on: bool) {
        if on == self.indexed {
            return;
        }
        self.indexed = on;
        self.heap.clear();
        if on {
            for g in 0..self.gws.len() as u32 {
                self.push(g);
            }
        } else {
            self.heap.shrink_to(1024);
        }
    }

    fn push(&mut self, g: u32) {
        let e = &mut self.gws[g as usize];
        e.version = e.version.wrapping_add(1);
        if self.indexed && e.weight > 0.0 && e.budget.is_finite() {
            let threshold = e.mark + e.budget.max(0.0) / f64::from(e.weight);
            self.fresh_min = self.fresh_min.min(threshold);
            self.heap.push(Reverse((Key(threshold), g, e.version)));
        }
    }

    /// The lowest threshold on H and its gateway.
    pub fn lowest(&mut self) -> Option<(f64, u32)> {
        while let Some(&Reverse((Key(t), g, v))) = self.heap.peek() {
            if self.gws[g as usize].version == v {
                return Some((t, g));
            }
            self.heap.pop();
        }
        None
    }

    /// Removes `g` from exposure (it just disconnected).
    pub fn disconnect(&mut self, g: u32) {
        let e = &mut self.gws[g as usize];
        e.weight = 0.0;
        e.budget = f64::INFINITY;
        e.version = e.version.wrapping_add(1);
    }
}

/// One cause of session drops: a hazard with its fleet-wide rate and the pending event that
/// fires at its next threshold crossing.
pub struct Channel {
    pub hazard: Hazard,
    /// Hazard per unit weight per second, until it is changed.
    pub rate: f64,
    since: crate::time::Time,
    pub generation: u32,
    at: crate::time::Time,
    /// The threshold the pending event is for.
    threshold: f64,
}

impl Channel {
    pub fn new(hazard: Hazard) -> Channel {
        Channel {
            hazard,
            rate: 0.0,
            since: crate::time::Time::ZERO,
            generation: 0,
            at: crate::time::Time::NEVER,
            threshold: f64::INFINITY,
        }
    }

    /// Accumulates the hazard up to `now` at the current rate.
    pub fn advance(&mut self, now: crate::time::Time) {
        self.hazard.accumulate(self.rate, (now - self.since).secs());
        self.since = now;
    }

    /// When a Disconnect event must be (re)scheduled, its time and generation: no later than
    /// the next threshold crossing (`force` after the rate changed or the event fired).
    pub fn reschedule(
        &mut self,
        now: crate::time::Time,
        force: bool,
    ) -> Option<(crate::time::Time, u32)> {
        // Below this, not one drop in a million gateway-days: no event to keep, nor a heap.
        if self.rate <= 1e-15 {
            self.hazard.set_indexed(false);
            return None;
        }
        self.hazard.set_indexed(true);
        // Nothing earlier than the pending event has been pushed: it still stands.
        if !force && self.hazard.fresh_min >= self.threshold && self.at >= now {
            return None;
        }
        self.hazard.fresh_min = f64::INFINITY;
        let Some((threshold, _)) = self.hazard.lowest() else {
            self.threshold = f64::INFINITY;
            return None;
        };
        let dt = ((threshold - self.hazard.total).max(0.0) / self.rate).min(1e9);
        let at = now + crate::time::Time::from_secs(dt);
        if force || at < self.at || self.at < now {
            self.generation = self.generation.wrapping_add(1);
            self.at = at;
            self.threshold = threshold;
            return Some((at, self.generation));
        }
        self.threshold = self.threshold.min(threshold);
        None
    }

    /// The event of `generation` fired: the gateways whose thresholds have been crossed.
    /// False when the event was superseded (nothing to do).
    pub fn due(&mut self, generation: u32, out: &mut Vec<u32>) -> bool {
        if generation != self.generation {
            return false;
        }
        self.at = crate::time::Time::NEVER;
        self.threshold = f64::INFINITY;
        while let Some((threshold, g)) = self.hazard.lowest() {
            if threshold > self.hazard.total * (1.0 + 1e-12) + 1e-12 {
                break;
            }
            self.hazard.disconnect(g);
            out.push(g);
        }
        true
    }
}
