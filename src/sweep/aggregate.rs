//! Per-configuration summaries: Student-t CIs of the means, per-rollout verdicts against the
//! constraints, and the Pareto front.

use super::constraints::{Constraints, Passes};
use super::run::{metric_index, Record};
use crate::stats::{Estimate, Running};

/// Summary metrics: (name, taken from the bad-release runs?).
pub const SUMMARY_METRICS: [(&str, bool); 7] = [
    ("success_rate", false),
    ("peak_mgmt_cpu_pct", false),
    ("disconnect_rate", false),
    ("manual_interventions", false),
    ("makespan_s", false),
    ("blast_radius", true),
    ("events", false),
];

#[derive(Debug, Clone)]
pub struct ConfigSummary {
    pub config: usize,
    pub n: usize,
    pub metrics: Vec<Estimate>,
    pub passes: Passes,
}

impl ConfigSummary {
    pub fn get(&self, name: &str) -> Estimate {
        let i = SUMMARY_METRICS
            .iter()
            .position(|(m, _)| *m == name)
            .unwrap_or(0);
        self.metrics[i]
    }
}

/// Per-configuration running statistics, fed one run at a time in index order: memory
/// grows with configurations, not with runs.
pub struct Aggregator {
    stats: Vec<[Running; SUMMARY_METRICS.len()]>,
    passes: Vec<Passes>,
    constraints: Constraints,
    columns: [usize; SUMMARY_METRICS.len()],
}

impl Aggregator {
    pub fn new(configs: usize, constraints: Constraints) -> Aggregator {
        let columns = SUMMARY_METRICS.map(|(m, _)| metric_index(m).unwrap_or(0));
        Aggregator {
            stats: vec![[Running::default(); SUMMARY_METRICS.len()]; configs],
            passes: vec![Passes::default(); configs],
            constraints,
            columns,
        }
    }

    pub fn add(&mut self, r: &Record) {
        let Some(stats) = self.stats.get_mut(r.key.config) else {
            return;
        };
        self.constraints
            .tally(&mut self.passes[r.key.config], r.key.bad_release, &r.values);
        for (k, (_, from_bad)) in SUMMARY_METRICS.iter().enumerate() {
            if *from_bad == r.key.bad_release {
                stats[k].add(r.values[self.columns[k]]);
            }
        }
    }

    pub fn finish(self) -> Vec<ConfigSummary> {
        let n_good = SUMMARY_METRICS
            .iter()
            .position(|(_, bad)| !bad)
            .unwrap_or(0);
        self.stats
            .into_iter()
            .zip(self.passes)
            .enumerate()
            .map(|(config, (st, passes))| {
                let metrics: Vec<Estimate> = st.iter().map(Running::estimate).collect();
                ConfigSummary {
                    config,
                    n: metrics[n_good].n,
                    metrics,
                    passes,
                }
            })
            .collect()
    }
}

/// Summaries for configs `0..configs` from records, taken in index order.
pub fn summarise(records: &[Record], configs: usize, c: Constraints) -> Vec<ConfigSummary> {
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by_key(|r| r.key.index);
    let mut agg = Aggregator::new(configs, c);
    sorted.into_iter().for_each(|r| agg.add(r));
    agg.finish()
}

/// Configurations not dominated in (lower makespan, higher success), by mean; sorted by makespan.
pub fn pareto(summaries: &[ConfigSummary]) -> Vec<usize> {
    let pts: Vec<(f64, f64, usize)> = summaries
        .iter()
        .filter(|s| s.n > 0)
        .map(|s| {
            (
                s.get("makespan_s").mean,
                s.get("success_rate").mean,
                s.config,
            )
        })
        .collect();
    let mut front: Vec<(f64, f64, usize)> = pts
        .iter()
        .filter(|&&(m, q, _)| {
            !pts.iter()
                .any(|&(m2, q2, _)| m2 <= m && q2 >= q && (m2 < m || q2 > q))
        })
        .copied()
        .collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
    front.into_iter().map(|p| p.2).collect()
}
