//! Timelines for the configurations the charts show: the references and the best of each
//! family. Recorded during the sweep (or merge), so plotting never re-simulates.

use rayon::prelude::*;

use super::aggregate::ConfigSummary;
use super::config::Config;
use super::constraints::Constraints;
use super::run::{seed_for, Spec};
use crate::engine::Family;
use crate::scenario::Scenario;
use crate::simulate::{self, Options, Timeline};
use crate::stats::quantile;
use crate::time::Time;

/// The fastest configuration of a family that meets `c`; failing that, the safest one.
pub fn best_of_family(
    configs: &[Config],
    summaries: &[ConfigSummary],
    family: Family,
    c: &Constraints,
) -> Option<usize> {
    let members: Vec<&ConfigSummary> = summaries
        .iter()
        .filter(|s| {
            configs[s.config].policy.family == family
                && !super::config::REFERENCES.contains(&configs[s.config].name.as_str())
        })
        .collect();
    let feasible = members.iter().filter(|s| c.hold(s)).min_by(|a, b| {
        a.get("makespan_s")
            .mean
            .total_cmp(&b.get("makespan_s").mean)
            .then(a.config.cmp(&b.config))
    });
    feasible
        .or_else(|| {
            members.iter().max_by(|a, b| {
                a.get("success_rate")
                    .mean
                    .total_cmp(&b.get("success_rate").mean)
                    .then(b.config.cmp(&a.config))
            })
        })
        .map(|s| s.config)
}

/// (config, role) pairs to record: references, then the best of each tunable family.
pub fn pick(configs: &[Config], summaries: &[ConfigSummary]) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = configs
        .iter()
        .filter(|c| super::config::REFERENCES.contains(&c.name.as_str()))
        .map(|c| (c.id, c.name.clone()))
        .collect();
    for family in [
        Family::Fixed,
        Family::Backoff,
        Family::Pipelined,
        Family::Adaptive,
        Family::Staged,
    ] {
        if let Some(i) = best_of_family(configs, summaries, family, &Constraints::default()) {
            if !out.iter().any(|(j, _)| *j == i) {
                out.push((i, format!("best-{}", family.name())));
            }
        }
    }
    out
}

/// CPU quantiles over replications on a fixed time grid.
pub struct Band {
    pub t_s: Vec<f64>,
    pub p5: Vec<f64>,
    pub p50: Vec<f64>,
    pub p95: Vec<f64>,
}

pub const BAND_STEP_S: f64 = 60.0;

/// Replications behind a CPU band: enough for a 5–95% band, and a fixed cap keeps a sweep's
/// memory flat however many replications it runs.
pub const BAND_REPLICATIONS: u32 = 30;

pub fn band(timelines: &[Timeline]) -> Band {
    let end = timelines
        .iter()
        .filter_map(|t| t.rows.last().map(|r| r.t_s))
        .fold(0.0, f64::max);
    let steps = (end / BAND_STEP_S).ceil() as usize + 1;
    let mut b = Band {
        t_s: Vec::new(),
        p5: Vec::new(),
        p50: Vec::new(),
        p95: Vec::new(),
    };
    let mut cursor = vec![0usize; timelines.len()];
    for k in 0..steps {
        let t = k as f64 * BAND_STEP_S;
        let mut xs: Vec<f64> = timelines
            .iter()
            .zip(cursor.iter_mut())
            .filter_map(|(tl, c)| {
                while *c + 1 < tl.rows.len() && tl.rows[*c + 1].t_s <= t {
                    *c += 1;
                }
                tl.rows.get(*c).map(|r| r.mgmt_cpu_pct)
            })
            .collect();
        xs.sort_by(f64::total_cmp);
        b.t_s.push(t);
        b.p5.push(quantile(&xs, 0.05));
        b.p50.push(quantile(&xs, 0.5));
        b.p95.push(quantile(&xs, 0.95));
    }
    b
}

/// Runs every replication of `policy` with timelines; returns them in replication order.
pub fn timelines(
    s: &Scenario,
    name: &str,
    policy: &crate::engine::Policy,
    spec: &Spec,
    reps: u32,
) -> Vec<Timeline> {
    let opts = Options {
        timeline_every: Some(Time::from_secs(BAND_STEP_S)),
    };
    (0..reps.min(BAND_REPLICATIONS))
        .into_par_iter()
        .filter_map(|r| simulate::run(s, name, policy, seed_for(spec.base_seed, r), &opts).timeline)
        .collect()
}

pub fn band_rows(label: &str, config: &str, b: &Band) -> Vec<Vec<String>> {
    (0..b.t_s.len())
        .map(|i| {
            vec![
                config.to_string(),
                label.to_string(),
                super::output::num(b.t_s[i]),
                super::output::num(super::output::round(b.p5[i])),
                super::output::num(super::output::round(b.p50[i])),
                super::output::num(super::output::round(b.p95[i])),
            ]
        })
        .collect()
}

/// A file-name-safe slug.
pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
