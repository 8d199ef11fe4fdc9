//! Disconnection hazard without per-gateway timers. Every connected gateway draws a budget
//! E ~ Exp(1) and disconnects when its weighted share of the fleet-wide cumulative hazard
//! H(t) = ∫ h dt exceeds it. Weights change only when a gateway changes state, so one heap
//! of thresholds on H gives the next disconnection in O(log n).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Key(f64);
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[derive(Default)]
pub struct Hazard {
    /// Cumulative hazard H so far.
    pub total: f64,
    budget: Vec<f64>,
    weight: Vec<f32>,
    mark: Vec<f64>,
    version: Vec<u32>,
    heap: BinaryHeap<Reverse<(Key, u32, u32)>>,
}

impl Hazard {
    pub fn new(n: usize) -> Hazard {
        Hazard {
            total: 0.0,
            budget: vec![f64::INFINITY; n],
            weight: vec![0.0; n],
            mark: vec![0.0; n],
            version: vec![0; n],
            heap: BinaryHeap::new(),
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
        let i = g as usize;
        self.budget[i] = budget;
        self.mark[i] = self.total;
        self.push(g);
    }

    /// Changes the exposure weight of `g` from now on.
    pub fn set_weight(&mut self, g: u32, weight: f32) {
        let i = g as usize;
        if self.weight[i] == weight {
            return;
        }
        self.budget[i] -= f64::from(self.weight[i]) * (self.total - self.mark[i]);
        self.mark[i] = self.total;
        self.weight[i] = weight;
        self.push(g);
    }

    fn push(&mut self, g: u32) {
        let i = g as usize;
        self.version[i] = self.version[i].wrapping_add(1);
        if self.weight[i] > 0.0 && self.budget[i].is_finite() {
            let threshold = self.mark[i] + self.budget[i].max(0.0) / f64::from(self.weight[i]);
            self.heap
                .push(Reverse((Key(threshold), g, self.version[i])));
        }
    }

    /// The lowest threshold on H and its gateway.
    pub fn lowest(&mut self) -> Option<(f64, u32)> {
        while let Some(&Reverse((Key(t), g, v))) = self.heap.peek() {
            if self.version[g as usize] == v {
                return Some((t, g));
            }
            self.heap.pop();
        }
        None
    }

    /// Removes `g` from exposure (it just disconnected).
    pub fn disconnect(&mut self, g: u32) {
        let i = g as usize;
        self.weight[i] = 0.0;
        self.budget[i] = f64::INFINITY;
        self.version[i] = self.version[i].wrapping_add(1);
    }
}
