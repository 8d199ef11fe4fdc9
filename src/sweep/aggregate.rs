//! Per-configuration summaries with Student-t CIs, and the Pareto front.

use super::run::{metric_index, Record};
use crate::stats::{mean_ci95, Estimate};

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

/// Summaries for configs `0..configs` from records (any order).
pub fn summarise(records: &[Record], configs: usize) -> Vec<ConfigSummary> {
    let mut by_config: Vec<(Vec<&Record>, Vec<&Record>)> = vec![(Vec::new(), Vec::new()); configs];
    for r in records {
        let slot = &mut by_config[r.key.config];
        if r.key.bad_release {
            slot.1.push(r);
        } else {
            slot.0.push(r);
        }
    }
    by_config
        .into_iter()
        .enumerate()
        .map(|(config, (mut good, mut bad))| {
            good.sort_by_key(|r| r.key.index);
            bad.sort_by_key(|r| r.key.index);
            let metrics = SUMMARY_METRICS
                .iter()
                .map(|(name, from_bad)| {
                    let i = metric_index(name).unwrap_or(0);
                    let src = if *from_bad { &bad } else { &good };
                    let xs: Vec<f64> = src.iter().map(|r| r.values[i]).collect();
                    mean_ci95(&xs)
                })
                .collect();
            ConfigSummary {
                config,
                n: good.len(),
                metrics,
            }
        })
        .collect()
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
