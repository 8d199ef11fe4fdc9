//! Shared links with max-min fair sharing (progressive filling). A flow's rate is the
//! minimum of its own cap (rate limit, last mile, TCP window/RTT) and its fair share of
//! every shared link it crosses. Progress is integrated lazily between rate changes.

use crate::time::Time;

pub type FlowId = u32;
pub type LinkId = u16;
pub const NO_LINK: LinkId = LinkId::MAX;

#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct Flow {
    links: [LinkId; 2],
    cap_bps: f64,
    rate_bps: f64,
    remaining_bits: f64,
    /// Bits of the current target (chunk or image), to settle what it moved.
    target_bits: f64,
    last: Time,
    /// Position in `active`, or `IDLE`.
    slot: u32,
    /// Position in each link's flow list.
    link_pos: [u32; 2],
    generation: u32,
}

/// `Flow::slot` of a flow that is not running.
const IDLE: u32 = u32::MAX;

// One cache line per flow: at a million gateways every chunk event misses on its flow, and a
// flow that straddles two lines misses twice (72 bytes cost fleet-1m about 10%).
const _: () = assert!(std::mem::size_of::<Flow>() == 64);

/// A set of shared links and the flows crossing them.
pub struct Network {
    capacity_bps: Vec<f64>,
    load_bps: Vec<f64>,
    /// Bits each link has carried, settled when a flow's target is done or it stops.
    carried_bits: Vec<f64>,
    flows: Vec<Flow>,
    active: Vec<FlowId>,
    /// The active flows crossing each link.
    link_flows: Vec<Vec<FlowId>>,
    /// Links touched since the last reshare: only their connected component is recomputed.
    dirty: Vec<LinkId>,
    /// Flows on no shared link that started since the last reshare.
    dirty_lone: Vec<FlowId>,
    // Scratch buffers reused by `reshare` so it does not allocate per event.
    order: Vec<FlowId>,
    rem: Vec<f64>,
    count: Vec<u32>,
    frozen: Vec<bool>,
    link_seen: Vec<bool>,
    flow_seen: Vec<bool>,
    links: Vec<LinkId>,
}

impl Network {
    pub fn new(capacity_bps: Vec<f64>, flows: usize) -> Network {
        let links = capacity_bps.len();
        Network {
            load_bps: vec![0.0; links],
            carried_bits: vec![0.0; links],
            capacity_bps,
            flows: vec![
                Flow {
                    links: [NO_LINK; 2],
                    cap_bps: 0.0,
                    rate_bps: 0.0,
                    remaining_bits: 0.0,
                    target_bits: 0.0,
                    last: Time::ZERO,
                    slot: IDLE,
                    link_pos: [IDLE; 2],
                    generation: 0,
                };
                flows
            ],
            active: Vec::new(),
            link_flows: vec![Vec::new(); links],
            dirty: Vec::new(),
            dirty_lone: Vec::new(),
            order: Vec::new(),
            rem: vec![0.0; links],
            count: vec![0; links],
            frozen: vec![false; flows],
            link_seen: vec![false; links],
            flow_seen: vec![false; flows],
            links: Vec::new(),
        }
    }

    /// Starts `id` with `bits` to move; call `reshare` afterwards.
    pub fn start(&mut self, now: Time, id: FlowId, links: [LinkId; 2], cap_bps: f64, bits: f64) {
        let f = &mut self.flows[id as usize];
        debug_assert!(f.slot == IDLE, "flow {id} started twice");
        f.links = links;
        f.cap_bps = cap_bps;
        f.remaining_bits = bits;
        f.target_bits = bits;
        f.last = now;
        f.rate_bps = 0.0;
        f.slot = self.active.len() as u32;
        self.active.push(id);
        for (k, l) in links.into_iter().enumerate() {
            if l != NO_LINK {
                self.flows[id as usize].link_pos[k] = self.link_flows[l as usize].len() as u32;
                self.link_flows[l as usize].push(id);
                self.dirty.push(l);
            }
        }
        if links == [NO_LINK; 2] {
            self.dirty_lone.push(id);
        }
    }

    /// Gives a running flow a new target (the next chunk) without changing any rate.
    pub fn refill(&mut self, now: Time, id: FlowId, bits: f64) {
        // Called when the target is done: it moved all of it.
        let done = self.flows[id as usize].target_bits;
        self.credit(id, done);
        let f = &mut self.flows[id as usize];
        f.last = now;
        f.remaining_bits = bits;
        f.target_bits = bits;
        f.generation = f.generation.wrapping_add(1);
    }

    /// Stops `id`; returns the bits it had left. Call `reshare` afterwards.
    pub fn stop(&mut self, now: Time, id: FlowId) -> f64 {
        if self.flows[id as usize].slot == IDLE {
            return 0.0;
        }
        self.advance_one(id, now);
        self.settle(id);
        let f = &mut self.flows[id as usize];
        let slot = f.slot as usize;
        f.slot = IDLE;
        f.rate_bps = 0.0;
        f.generation = f.generation.wrapping_add(1);
        let left = f.remaining_bits.max(0.0);
        let (links, pos) = (f.links, f.link_pos);
        self.active.swap_remove(slot);
        if let Some(&moved) = self.active.get(slot) {
            self.flows[moved as usize].slot = slot as u32;
        }
        for k in 0..2 {
            let l = links[k];
            if l == NO_LINK {
                continue;
            }
            let list = &mut self.link_flows[l as usize];
            list.swap_remove(pos[k] as usize);
            if let Some(&moved) = list.get(pos[k] as usize) {
                let m = &mut self.flows[moved as usize];
                let kk = if m.links[0] == l { 0 } else { 1 };
                m.link_pos[kk] = pos[k];
            }
            self.dirty.push(l);
        }
        left
    }

    pub fn is_active(&self, id: FlowId) -> bool {
        self.flows[id as usize].slot != IDLE
    }

    pub fn generation(&self, id: FlowId) -> u32 {
        self.flows[id as usize].generation
    }

    pub fn rate_bps(&self, id: FlowId) -> f64 {
        self.flows[id as usize].rate_bps
    }

    /// Current throughput carried by a link.
    pub fn link_load_bps(&self, link: LinkId) -> f64 {
        self.load_bps[link as usize]
    }

    pub fn active_flows(&self) -> usize {
        self.active.len()
    }

    /// When `id` will have moved all its remaining bits at its current rate.
    pub fn finish_time(&self, id: FlowId) -> Time {
        let f = &self.flows[id as usize];
        if f.rate_bps <= 0.0 {
            return Time::NEVER;
        }
        f.last + Time::from_millis_f64(f.remaining_bits.max(0.0) / f.rate_bps * 1000.0)
    }

    /// Credits the links of `id` with what it moved of its current target.
    fn settle(&mut self, id: FlowId) {
        let f = &self.flows[id as usize];
        let moved = (f.target_bits - f.remaining_bits.max(0.0)).max(0.0);
        self.credit(id, moved);
    }

    fn credit(&mut self, id: FlowId, bits: f64) {
        let [a, b] = self.flows[id as usize].links;
        if a != NO_LINK {
            self.carried_bits[a as usize] += bits;
        }
        if b != NO_LINK {
            self.carried_bits[b as usize] += bits;
        }
    }

    /// Bits a link has carried for targets that are done or stopped.
    pub fn carried_bits(&self, link: LinkId) -> f64 {
        self.carried_bits[link as usize]
    }

    fn advance_one(&mut self, id: FlowId, now: Time) {
        let f = &mut self.flows[id as usize];
        let dt = (now - f.last).secs();
        f.remaining_bits -= f.rate_bps * dt;
        f.last = now;
    }

    /// Recomputes max-min fair rates at `now`. Calls `changed(id)` for every flow whose
    /// rate changed, so the caller can reschedule its finish event.
    pub fn reshare(&mut self, now: Time, mut changed: impl FnMut(FlowId)) {
        // Flows on no shared link simply run at their cap.
        for id in std::mem::take(&mut self.dirty_lone) {
            let f = &mut self.flows[id as usize];
            if f.slot != IDLE && f.rate_bps != f.cap_bps {
                f.last = now;
                f.rate_bps = f.cap_bps;
                f.generation = f.generation.wrapping_add(1);
                changed(id);
            }
        }
        // The connected component of the touched links: nothing outside it can change.
        self.links.clear();
        self.order.clear();
        let mut queue = std::mem::take(&mut self.dirty);
        while let Some(l) = queue.pop() {
            if std::mem::replace(&mut self.link_seen[l as usize], true) {
                continue;
            }
            self.links.push(l);
            for &id in &self.link_flows[l as usize] {
                if !std::mem::replace(&mut self.flow_seen[id as usize], true) {
                    self.order.push(id);
                    for other in self.flows[id as usize].links {
                        if other != NO_LINK && !self.link_seen[other as usize] {
                            queue.push(other);
                        }
                    }
                }
            }
        }
        self.dirty = queue;
        self.links.sort_unstable();
        for &l in &self.links {
            self.link_seen[l as usize] = false;
            self.rem[l as usize] = self.capacity_bps[l as usize];
            self.count[l as usize] = 0;
        }
        for &id in &self.order {
            self.flow_seen[id as usize] = false;
        }
        for i in 0..self.order.len() {
            let id = self.order[i];
            self.advance_one(id, now);
        }
        let flows = &self.flows;
        self.order.sort_unstable_by(|a, b| {
            flows[*a as usize]
                .cap_bps
                .total_cmp(&flows[*b as usize].cap_bps)
                .then(a.cmp(b))
        });
        for &id in &self.order {
            self.frozen[id as usize] = false;
            for l in self.flows[id as usize].links {
                if l != NO_LINK {
                    self.count[l as usize] += 1;
                }
            }
        }
        let mut next_cap = 0usize; // index into `order` of the smallest unfrozen cap
        let mut left = self.order.len();
        while left > 0 {
            while next_cap < self.order.len() && self.frozen[self.order[next_cap] as usize] {
                next_cap += 1;
            }
            let cap_level = self.flows[self.order[next_cap] as usize].cap_bps;
            let mut link_level = f64::INFINITY;
            let mut bottleneck = NO_LINK;
            for &l in &self.links {
                let n = self.count[l as usize];
                if n > 0 {
                    let share = self.rem[l as usize].max(0.0) / n as f64;
                    if share < link_level {
                        link_level = share;
                        bottleneck = l;
                    }
                }
            }
            if cap_level <= link_level {
                // Freeze every unfrozen flow whose own cap is reached.
                let mut i = next_cap;
                while i < self.order.len() {
                    let id = self.order[i] as usize;
                    if !self.frozen[id] {
                        if self.flows[id].cap_bps > cap_level {
                            break;
                        }
                        self.freeze(id, cap_level, &mut changed);
                        left -= 1;
                    }
                    i += 1;
                }
            } else {
                for i in next_cap..self.order.len() {
                    let id = self.order[i] as usize;
                    if !self.frozen[id] && self.flows[id].links.contains(&bottleneck) {
                        self.freeze(id, link_level, &mut changed);
                        left -= 1;
                    }
                }
            }
        }
        for &l in &self.links {
            self.load_bps[l as usize] = self.link_flows[l as usize]
                .iter()
                .map(|&id| self.flows[id as usize].rate_bps)
                .sum();
        }
    }

    fn freeze(&mut self, id: usize, rate: f64, changed: &mut impl FnMut(FlowId)) {
        self.frozen[id] = true;
        let f = &mut self.flows[id];
        for l in f.links {
            if l != NO_LINK {
                self.rem[l as usize] -= rate;
                self.count[l as usize] -= 1;
            }
        }
        if f.rate_bps != rate {
            f.rate_bps = rate;
            f.generation = f.generation.wrapping_add(1);
            changed(id as FlowId);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: f64 = 8e6;

    /// Runs flows to completion, resharing at each finish; returns finish times in seconds.
    fn run(capacity: Vec<f64>, flows: &[([LinkId; 2], f64, f64)]) -> Vec<f64> {
        let mut net = Network::new(capacity, flows.len());
        for (i, (links, cap, bits)) in flows.iter().enumerate() {
            net.start(Time::ZERO, i as u32, *links, *cap, *bits);
        }
        net.reshare(Time::ZERO, |_| {});
        let mut done = vec![0.0; flows.len()];
        while net.active_flows() > 0 {
            let (id, t) = (0..flows.len() as u32)
                .filter(|&i| net.is_active(i))
                .map(|i| (i, net.finish_time(i)))
                .min_by_key(|&(i, t)| (t, i))
                .unwrap();
            net.stop(t, id);
            done[id as usize] = t.secs();
            net.reshare(t, |_| {});
        }
        done
    }

    #[test]
    fn lone_flow_runs_at_its_cap() {
        let t = run(vec![1e9], &[([0, NO_LINK], 10e6, 150.0 * MB)]);
        assert!((t[0] - 120.0).abs() < 0.01, "{t:?}");
    }

    #[test]
    fn fluid_law_n_equal_flows() {
        let n = 40;
        let c = 100e6;
        let s = 150.0 * MB;
        let flows: Vec<_> = (0..n).map(|_| ([0, NO_LINK], 1e12, s)).collect();
        let t = run(vec![c], &flows);
        let expect = n as f64 * s / c;
        for ti in t {
            assert!((ti - expect).abs() / expect < 0.02, "{ti} vs {expect}");
        }
    }

    #[test]
    fn max_min_fair_with_a_capped_flow() {
        // One flow capped at 10 on a 100 link with two others: they split the other 90.
        let mut net = Network::new(vec![100.0], 3);
        net.start(Time::ZERO, 0, [0, NO_LINK], 10.0, 1e9);
        net.start(Time::ZERO, 1, [0, NO_LINK], 1e9, 1e9);
        net.start(Time::ZERO, 2, [0, NO_LINK], 1e9, 1e9);
        net.reshare(Time::ZERO, |_| {});
        assert_eq!(net.rate_bps(0), 10.0);
        assert_eq!(net.rate_bps(1), 45.0);
        assert_eq!(net.rate_bps(2), 45.0);
        assert_eq!(net.link_load_bps(0), 100.0);
    }

    #[test]
    fn two_level_bottlenecks() {
        // Links: origin 100, region A 20, region B 1000. Two flows in A, two in B.
        let mut net = Network::new(vec![100.0, 20.0, 1000.0], 4);
        net.start(Time::ZERO, 0, [1, 0], 1e9, 1e9);
        net.start(Time::ZERO, 1, [1, 0], 1e9, 1e9);
        net.start(Time::ZERO, 2, [2, 0], 1e9, 1e9);
        net.start(Time::ZERO, 3, [2, 0], 1e9, 1e9);
        net.reshare(Time::ZERO, |_| {});
        assert_eq!(net.rate_bps(0), 10.0);
        assert_eq!(net.rate_bps(2), 40.0);
        assert_eq!(net.link_load_bps(0), 100.0);
    }
}
