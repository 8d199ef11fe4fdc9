//! The per-run summary printed by `simulate --json` and aggregated by sweeps.
//! Field order is part of the contract: keep it stable.

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::time::Time;
use crate::world::{Truth, World};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub policy: String,
    pub seed: u64,
    pub gateways: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub success_rate: f64,
    pub manual_interventions: u32,
    pub disconnected: u32,
    pub disconnect_rate: f64,
    pub peak_mgmt_cpu_pct: f64,
    pub makespan_s: f64,
    /// Where the makespan went along the critical path (seconds; sums to `makespan_s`).
    pub makespan_breakdown_s: std::collections::BTreeMap<String, f64>,
    pub blast_radius: u32,
    pub events: u64,
    pub halted: bool,
    pub halt_reason: Option<String>,
    pub rolled_back: u32,
    pub bricked: u32,
    pub stuck: u32,
    pub op_timeouts: u64,
    pub rejections: u64,
    pub deferrals: u32,
    pub attempts: u64,
    pub peak_in_flight: u32,
    pub cache_fills: u64,
    pub truncated: bool,
    pub scenario: String,
    /// Pre-check deferrals by reason.
    pub deferred_by: std::collections::BTreeMap<String, u32>,
    /// The values this run drew for the scenario's `[uncertainty]` keys.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub uncertain: std::collections::BTreeMap<String, f64>,
    /// The engine's view per status, when a run did not finish (for diagnosis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unfinished: Option<std::collections::BTreeMap<String, u32>>,
    /// The re-tuning after a stage (`--refit-after`), when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refit: Option<Refitted>,
}

/// How the observations so far compare with what the plan assumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Leaning {
    /// The plan's safety margins are clearly smaller under what was observed: the rest may
    /// only slow down.
    Worse,
    /// No clear difference: the rest goes on as planned.
    Same,
    /// Clearly larger: the rest may only speed up.
    Better,
    /// Not judged: the pace was given (`simulate --pace`), not chosen.
    Given,
}

impl Leaning {
    pub fn name(self) -> &'static str {
        match self {
            Leaning::Worse => "worse",
            Leaning::Same => "neither better nor worse",
            Leaning::Better => "better",
            Leaning::Given => "not judged",
        }
    }
}

/// What a refit found and chose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refitted {
    pub stage: String,
    /// Plan time of the refit (the stage's completion).
    pub at_s: f64,
    pub leaning: Leaning,
    /// The pace the rest of the rollout runs at (1 = as planned).
    pub pace: f64,
    /// Fitted parameters that replaced the plan's assumptions.
    pub adopted: Vec<String>,
    /// Fitted parameters left at the plan's values: the observations were less precise
    /// than the plan's own range for them.
    pub kept_prior: Vec<String>,
    pub why: String,
    /// The plan as it was, under its prior, on the same seeds: the standard to meet (none
    /// when the stage taught nothing new and nothing was simulated).
    pub standard: Option<Paced>,
    /// Each pace tried, under the fitted scenario.
    pub tried: Vec<Paced>,
}

/// A pace's replications: how many rollouts stayed within every limit, and how long they took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paced {
    pub pace: f64,
    pub good_within: u64,
    pub bad_within: u64,
    pub replications: u64,
    pub makespan_s: f64,
}

impl Summary {
    pub fn collect(
        policy: &str,
        seed: u64,
        world: &World,
        engine: &Engine,
        end: Time,
        truncated: bool,
        breakdown: Vec<(String, f64)>,
    ) -> Summary {
        let n = world.gateways() as u32;
        let mut succeeded = 0;
        let mut bricked = 0;
        let mut stuck = 0;
        let mut rolled_back = 0;
        let mut disconnected = 0;
        for g in 0..n {
            match world.truth(g) {
                Truth::Updated => succeeded += 1,
                Truth::Bricked => bricked += 1,
                Truth::Stuck => stuck += 1,
                Truth::RolledBack => rolled_back += 1,
                Truth::Old => {}
            }
            disconnected += u32::from(world.disconnected_ever(g));
        }
        let c = &world.counters;
        Summary {
            policy: policy.to_string(),
            seed,
            gateways: n,
            succeeded,
            failed: n - succeeded,
            success_rate: round6(f64::from(succeeded) / f64::from(n.max(1))),
            manual_interventions: bricked + stuck,
            disconnected,
            disconnect_rate: round6(f64::from(disconnected) / f64::from(n.max(1))),
            peak_mgmt_cpu_pct: round6(world.service.peak_cpu_pct),
            makespan_s: end.secs(),
            makespan_breakdown_s: breakdown.into_iter().collect(),
            blast_radius: c.defective_installs as u32,
            events: world.events(),
            halted: engine.halted().is_some(),
            halt_reason: engine.halted().map(|r| r.to_string()),
            rolled_back,
            bricked,
            stuck,
            op_timeouts: c.timeouts,
            rejections: world.service.rejected,
            deferrals: engine.deferrals().iter().sum(),
            attempts: c.ops_started,
            peak_in_flight: engine.peak_in_flight(),
            cache_fills: c.cache_fills,
            truncated,
            scenario: world.scenario.fingerprint.clone(),
            deferred_by: ["offline", "cpu", "disk", "battery", "link", "busy"]
                .iter()
                .zip(engine.deferrals())
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            uncertain: world
                .scenario
                .drawn
                .iter()
                .map(|(k, v)| (k.clone(), round6(*v)))
                .collect(),
            refit: None,
            unfinished: truncated.then(|| {
                let names = [
                    "waiting",
                    "ready",
                    "checking",
                    "deferred",
                    "in_flight",
                    "retry_wait",
                    "succeeded",
                    "failed",
                    "rolled_back",
                    "skipped",
                ];
                let mut m: std::collections::BTreeMap<String, u32> = names
                    .iter()
                    .zip(engine.counts())
                    .filter(|(_, v)| *v > 0)
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                m.insert("in_flight_count".into(), engine.in_flight());
                m
            }),
        }
    }

    /// The makespan breakdown for people: largest part first, with shares and bars.
    pub fn explain(&self) -> String {
        let mut parts: Vec<(&String, &f64)> = self.makespan_breakdown_s.iter().collect();
        parts.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
        let total = self.makespan_s.max(1e-9);
        let mut s = format!(
            "where the {:.2} h went (critical path: the gateway that finished last, and the wave releases before it)\n",
            self.makespan_s / 3600.0
        );
        for (name, secs) in parts {
            let share = secs / total;
            s += &format!(
                "  {name:<14} {:>8.2} h {:>9.0} s  {:>5.1}%  {}\n",
                secs / 3600.0,
                secs,
                share * 100.0,
                "#".repeat((share * 40.0).round() as usize)
            );
        }
        s
    }

    /// A numeric field by name (see `sweep::run::RUN_METRICS`).
    pub fn metric(&self, name: &str) -> Option<f64> {
        Some(match name {
            "success_rate" => self.success_rate,
            "peak_mgmt_cpu_pct" => self.peak_mgmt_cpu_pct,
            "disconnect_rate" => self.disconnect_rate,
            "manual_interventions" => f64::from(self.manual_interventions),
            "makespan_s" => self.makespan_s,
            "blast_radius" => f64::from(self.blast_radius),
            "succeeded" => f64::from(self.succeeded),
            "events" => self.events as f64,
            "failed" => f64::from(self.failed),
            "disconnected" => f64::from(self.disconnected),
            "halted" => f64::from(u8::from(self.halted)),
            "rolled_back" => f64::from(self.rolled_back),
            "op_timeouts" => self.op_timeouts as f64,
            "rejections" => self.rejections as f64,
            "deferrals" => f64::from(self.deferrals),
            "attempts" => self.attempts as f64,
            _ => return None,
        })
    }

    /// The human-readable report printed by `simulate` without `--json`.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let h = self.makespan_s / 3600.0;
        s += &format!(
            "policy {}  seed {}  gateways {}\n",
            self.policy, self.seed, self.gateways
        );
        s += &format!(
            "  succeeded            {:>6}  ({:.1}%)\n  failed               {:>6}\n  manual interventions {:>6}  ({} bricked, {} stuck)\n",
            self.succeeded,
            self.success_rate * 100.0,
            self.failed,
            self.manual_interventions,
            self.bricked,
            self.stuck
        );
        s += &format!(
            "  disconnected         {:>6}  ({:.1}%)\n  peak mgmt CPU        {:>6.1}%\n  makespan             {:>6.2} h  ({:.0} s)\n",
            self.disconnected,
            self.disconnect_rate * 100.0,
            self.peak_mgmt_cpu_pct,
            h,
            self.makespan_s
        );
        s += &format!(
            "  blast radius         {:>6}\n  attempts {}  timeouts {}  rejections {}  deferrals {}  peak in flight {}\n",
            self.blast_radius, self.attempts, self.op_timeouts, self.rejections, self.deferrals, self.peak_in_flight
        );
        if let Some(r) = &self.halt_reason {
            s += &format!("  HALTED: {r}\n");
        }
        if let Some(r) = &self.refit {
            s += &match r.leaning {
                Leaning::Given => format!(
                    "  refit after `{}` at {:.0} s: the rest ran at {:.2}× pace ({})\n",
                    r.stage, r.at_s, r.pace, r.why
                ),
                _ => format!(
                    "  refit after `{}` at {:.0} s: the canaries look {} than the plan assumed; the rest ran at {:.2}× pace ({})\n",
                    r.stage,
                    r.at_s,
                    r.leaning.name(),
                    r.pace,
                    r.why
                ),
            };
            if !r.adopted.is_empty() {
                s += &format!("    fitted and used: {}\n", r.adopted.join(", "));
            }
            if let Some(st) = &r.standard {
                s += &format!(
                    "    standard (the plan under its prior): {}/{} good and {}/{} bad releases within the limits, {:.0} s\n",
                    st.good_within, st.replications, st.bad_within, st.replications, st.makespan_s
                );
            }
            for p in &r.tried {
                s += &format!(
                    "    pace {:.2}: {}/{} good, {}/{} bad within the limits, {:.0} s{}\n",
                    p.pace,
                    p.good_within,
                    p.replications,
                    p.bad_within,
                    p.replications,
                    p.makespan_s,
                    if p.pace == r.pace { "  <- chosen" } else { "" }
                );
            }
            if !r.kept_prior.is_empty() {
                s += &format!(
                    "    fitted, but kept at the plan's range (less precise): {}\n",
                    r.kept_prior.join(", ")
                );
            }
        }
        if self.truncated {
            s += "  warning: stopped at the virtual-time limit (60 days) before the rollout finished\n";
        }
        s += &format!("  events {}\n", self.events);
        s
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}
