//! Turns a policy and an inventory into an ordered list of waves (batches) with the rule
//! that releases each one. Pure and deterministic; sizes scale with the inventory.

use super::policy::{Family, GateState, Policy};
use crate::time::Time;

/// What the engine knows of a gateway before the rollout: where it is and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayInfo {
    pub region: u16,
    pub hw: u16,
}

/// When a wave may start, relative to the wave before it.
#[derive(Debug, Clone, PartialEq)]
pub enum Release {
    /// The first wave: at once.
    Now,
    /// After the previous wave completes (every member final), plus a wait.
    AfterComplete(Time),
    /// After `fraction` of the previous wave reach `state` (or `timeout` since its start),
    /// plus `gap`, and no sooner than `min_gap` after the previous wave started.
    AfterGate {
        fraction: f64,
        state: GateState,
        timeout: Option<Time>,
        gap: Time,
        min_gap: Time,
    },
    /// Together with the previous wave; only the concurrency cap paces it.
    WithPrevious,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Wave {
    /// Range into `Plan::order`.
    pub start: usize,
    pub len: usize,
    pub stage: Option<String>,
    pub release: Release,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Gateway indices in rollout order: canaries first.
    pub order: Vec<u32>,
    pub waves: Vec<Wave>,
    pub canaries: usize,
}

/// Builds the rollout order and waves for `inventory`.
pub fn plan(policy: &Policy, inventory: &[GatewayInfo]) -> Plan {
    let n = inventory.len();
    let stage_sizes = stage_sizes(policy, n);
    let canary = match policy.family {
        Family::Staged => stage_sizes.first().copied().unwrap_or(0),
        _ => policy
            .canary
            .as_ref()
            .map_or(0, |c| (c.size as usize).min(n)),
    };
    let order = rollout_order(inventory, canary);
    let mut waves = Vec::new();
    let push = |len: usize, stage: Option<String>, release: Release, waves: &mut Vec<Wave>| {
        if len > 0 {
            let start = waves.last().map_or(0, |w: &Wave| w.start + w.len);
            let release = if waves.is_empty() {
                Release::Now
            } else {
                release
            };
            waves.push(Wave {
                start,
                len,
                stage,
                release,
            });
        }
    };
    let after_canary = policy.canary.as_ref().map_or(Time::ZERO, |c| c.soak);
    if policy.family != Family::Staged && canary > 0 {
        push(canary, Some("canary".into()), Release::Now, &mut waves);
    }
    let rest = n - waves.last().map_or(0, |w| w.start + w.len);
    let batch = (policy.batch_size as usize).max(1);
    match policy.family {
        Family::Bulk | Family::Backoff | Family::Adaptive => {
            push(rest, None, Release::AfterComplete(after_canary), &mut waves);
        }
        Family::Fixed | Family::Pipelined => {
            let between = between_batches(policy);
            let mut first = true;
            for len in chunks(rest, batch) {
                let release = if first {
                    Release::AfterComplete(after_canary)
                } else {
                    between.clone()
                };
                first = false;
                push(len, None, release, &mut waves);
            }
        }
        Family::Staged => {
            let between = between_batches(policy);
            for (stage, size) in policy.stages.iter().zip(&stage_sizes) {
                let mut first = true;
                for len in chunks(*size, batch) {
                    let release = if first {
                        Release::AfterComplete(stage.soak)
                    } else {
                        between.clone()
                    };
                    first = false;
                    push(len, Some(stage.name.clone()), release, &mut waves);
                }
            }
        }
    }
    Plan {
        order,
        waves,
        canaries: canary,
    }
}

fn between_batches(policy: &Policy) -> Release {
    match (&policy.gate, policy.family) {
        (Some(g), _) => Release::AfterGate {
            fraction: g.fraction,
            state: g.state,
            timeout: g.timeout,
            gap: if policy.family == Family::Staged {
                policy.gap
            } else {
                Time::ZERO
            },
            min_gap: policy.min_gap,
        },
        (None, _) => Release::AfterComplete(policy.delay),
    }
}

fn chunks(total: usize, size: usize) -> impl Iterator<Item = usize> {
    let full = total / size;
    let tail = total % size;
    std::iter::repeat_n(size, full).chain((tail > 0).then_some(tail))
}

/// Stage sizes for a fleet of `n`: the canary stays as written (it is about coverage, not
/// proportion); later stages scale with the fleet and the last one takes the remainder.
pub fn stage_sizes(policy: &Policy, n: usize) -> Vec<usize> {
    if policy.stages.is_empty() {
        return Vec::new();
    }
    let written: usize = policy.stages.iter().map(|s| s.size as usize).sum();
    let mut sizes: Vec<usize> = Vec::with_capacity(policy.stages.len());
    let mut left = n;
    let canary = (policy.stages[0].size as usize).min(left);
    sizes.push(canary);
    left -= canary;
    let later: usize = written
        .saturating_sub(policy.stages[0].size as usize)
        .max(1);
    let room = n.saturating_sub(canary);
    let last = policy.stages.len() - 1;
    for (i, s) in policy.stages.iter().enumerate().skip(1) {
        let size = if i == last {
            left
        } else {
            let scaled = (s.size as f64 * room as f64 / later as f64).round() as usize;
            scaled.clamp(1, left.max(1)).min(left)
        };
        sizes.push(size);
        left -= size;
    }
    if let Some(last) = sizes.last_mut() {
        *last += left;
    }
    sizes
}

/// Canaries first, chosen greedily to cover unseen regions and hardware classes; the rest
/// interleaved by region so that each batch spreads its load over the regional links.
pub fn rollout_order(inventory: &[GatewayInfo], canaries: usize) -> Vec<u32> {
    let n = inventory.len();
    let mut taken = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let mut regions_seen = std::collections::BTreeSet::new();
    let mut hw_seen = std::collections::BTreeSet::new();
    let mut pairs_seen = std::collections::BTreeSet::new();
    let mut all_regions = std::collections::BTreeSet::new();
    let mut all_hw = std::collections::BTreeSet::new();
    let mut all_pairs = std::collections::BTreeSet::new();
    if canaries > 0 {
        for g in inventory {
            all_regions.insert(g.region);
            all_hw.insert(g.hw);
            all_pairs.insert((g.region, g.hw));
        }
    }
    for _ in 0..canaries.min(n) {
        // The best score any gateway could still reach: stop scanning once one reaches it
        // (same pick as a full scan, without scanning a million gateways per canary).
        let achievable = u8::from(regions_seen.len() < all_regions.len()) * 2
            + u8::from(hw_seen.len() < all_hw.len()) * 2
            + u8::from(pairs_seen.len() < all_pairs.len());
        let mut best: Option<(u8, usize)> = None;
        for (i, g) in inventory.iter().enumerate() {
            if taken[i] {
                continue;
            }
            let score = u8::from(!regions_seen.contains(&g.region)) * 2
                + u8::from(!hw_seen.contains(&g.hw)) * 2
                + u8::from(!pairs_seen.contains(&(g.region, g.hw)));
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, i));
                if score >= achievable {
                    break;
                }
            }
        }
        let Some((_, i)) = best else { break };
        taken[i] = true;
        regions_seen.insert(inventory[i].region);
        hw_seen.insert(inventory[i].hw);
        pairs_seen.insert((inventory[i].region, inventory[i].hw));
        order.push(i as u32);
    }
    let regions = inventory
        .iter()
        .map(|g| g.region as usize + 1)
        .max()
        .unwrap_or(0);
    let mut by_region: Vec<std::collections::VecDeque<u32>> = vec![Default::default(); regions];
    for (i, g) in inventory.iter().enumerate() {
        if !taken[i] {
            by_region[g.region as usize].push_back(i as u32);
        }
    }
    while order.len() < n {
        for q in by_region.iter_mut() {
            if let Some(i) = q.pop_front() {
                order.push(i);
            }
        }
    }
    order
}
