//! Global sensitivity analysis by Morris elementary effects: which scenario values move each
//! metric most, over their whole plausible range, so that users know what to measure first.
//! Each factor ranges over its `[uncertainty]` distribution's support, or ±`spread` of its
//! value when the scenario declares none. Every model evaluation is the mean over the same
//! seeds (common random numbers), and the design is drawn from a fixed seed: deterministic.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::engine::Policy;
use crate::scenario::uncertainty::{with_values, SECTIONS};
use crate::scenario::{InputError, Scenario};
use crate::simulate::{self, Options};

pub const METRICS: [&str; 5] = [
    "success_rate",
    "manual_interventions",
    "disconnect_rate",
    "peak_mgmt_cpu_pct",
    "makespan_s",
];

/// Levels of the Morris grid, and the step between a point and its neighbour.
const LEVELS: f64 = 4.0;
const DELTA: f64 = LEVELS / (2.0 * (LEVELS - 1.0));

#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    pub key: String,
    pub lo: f64,
    pub hi: f64,
}

#[derive(Debug, Clone)]
pub struct Effect {
    pub factor: usize,
    /// Mean absolute elementary effect: the factor's importance, in the metric's units per
    /// full range of the factor.
    pub mu_star: f64,
    pub mu: f64,
    /// Spread of the effects: interaction or non-linearity.
    pub sigma: f64,
}

pub struct Report {
    pub factors: Vec<Factor>,
    /// Factors left out, with why.
    pub skipped: Vec<(String, String)>,
    /// Per metric (in `METRICS` order), effects ranked by μ*.
    pub effects: Vec<Vec<Effect>>,
    pub runs: u64,
}

/// The factors: `[uncertainty]`, or every number of the fleet's sections ±`spread` that stays a
/// valid scenario at both ends. With `all`, every number varies: by its `[uncertainty]` range
/// where it has one, else by ±`spread` (fitted values and the seed's own figures too).
pub fn factors(s: &Scenario, spread: f64, all: bool) -> (Vec<Factor>, Vec<(String, String)>) {
    if !s.uncertainty.is_empty() && !all {
        let f = s
            .uncertainty
            .iter()
            .map(|u| Factor {
                key: u.key.clone(),
                lo: u.dist.min_value(),
                hi: u.dist.max_value(),
            })
            .collect();
        return (f, Vec::new());
    }
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for section in SECTIONS {
        let Some(table) = s.document.get(section).and_then(toml::Value::as_table) else {
            continue;
        };
        for (name, v) in table {
            let key = format!("{section}.{name}");
            if let Some(u) = s.uncertainty.iter().find(|u| u.key == key) {
                out.push(Factor {
                    key,
                    lo: u.dist.min_value(),
                    hi: u.dist.max_value(),
                });
                continue;
            }
            let x = match v {
                toml::Value::Integer(i) => *i as f64,
                toml::Value::Float(f) => *f,
                _ => continue,
            };
            if x == 0.0 {
                skipped.push((key, "zero: a relative range is empty".into()));
                continue;
            }
            let (lo, hi) = (x * (1.0 - spread), x * (1.0 + spread));
            let (lo, hi) = (lo.min(hi), lo.max(hi));
            if matches!(v, toml::Value::Integer(_)) && lo.round() == hi.round() {
                skipped.push((key, "an integer too small to vary".into()));
                continue;
            }
            // An end outside the valid range (a probability past 1) is pulled back toward the
            // value until the scenario validates.
            let valid = |e: f64| with_values(s, &[(key.clone(), e)]).is_ok();
            let pull = |mut e: f64| {
                for _ in 0..30 {
                    if valid(e) {
                        return Some(e);
                    }
                    e = (e + x) / 2.0;
                }
                None
            };
            match (pull(lo), pull(hi)) {
                (Some(lo), Some(hi)) if hi > lo => out.push(Factor { key, lo, hi }),
                _ => skipped.push((key, "no valid range around its value".into())),
            }
        }
    }
    (out, skipped)
}

/// How much to run: trajectories, seeds per point (1..=seeds), and the design's own seed.
#[derive(Debug, Clone, Copy)]
pub struct Design {
    pub trajectories: usize,
    pub seeds: u64,
    pub seed: u64,
}

/// Runs the Morris design on `policy`, each point the mean over the design's seeds.
pub fn morris(
    s: &Scenario,
    name: &str,
    policy: &Policy,
    (factors, skipped): (Vec<Factor>, Vec<(String, String)>),
    design: Design,
) -> Result<Report, InputError> {
    let Design {
        trajectories,
        seeds,
        seed: design_seed,
    } = design;
    let k = factors.len();
    if k == 0 {
        return Err(InputError::new(
            "no factor to vary: the scenario has no numbers to study",
        ));
    }
    // The design: per trajectory a base point on the lower half of the grid, then one step of
    // +Δ per factor in a random order.
    let mut rng = rand_pcg::Pcg64::seed_from_u64(design_seed);
    let mut points: Vec<Vec<f64>> = Vec::new();
    let mut steps: Vec<Vec<usize>> = Vec::new();
    for _ in 0..trajectories {
        let mut x: Vec<f64> = (0..k)
            .map(|_| f64::from(rng.random_range(0..2u8)) / (LEVELS - 1.0))
            .collect();
        let mut order: Vec<usize> = (0..k).collect();
        order.shuffle(&mut rng);
        points.push(x.clone());
        for &i in &order {
            x[i] += DELTA;
            points.push(x.clone());
        }
        steps.push(order);
    }
    let evaluate = |x: &Vec<f64>| -> Result<Vec<f64>, InputError> {
        let values: Vec<(String, f64)> = factors
            .iter()
            .zip(x)
            .map(|(f, u)| (f.key.clone(), f.lo + u * (f.hi - f.lo)))
            .collect();
        let scenario = with_values(s, &values)?;
        let mut sums = vec![0.0; METRICS.len()];
        for seed in 1..=seeds {
            let run = simulate::run(&scenario, name, policy, seed, &Options::default());
            for (m, sum) in METRICS.iter().zip(sums.iter_mut()) {
                *sum += run.summary.metric(m).unwrap_or(f64::NAN);
            }
        }
        Ok(sums.into_iter().map(|v| v / seeds as f64).collect())
    };
    let ys: Vec<Vec<f64>> = points.par_iter().map(evaluate).collect::<Result<_, _>>()?;
    let mut effects_by_metric = Vec::new();
    for (m, _) in METRICS.iter().enumerate() {
        let mut ee: Vec<Vec<f64>> = vec![Vec::new(); k];
        let mut at = 0;
        for order in &steps {
            for &i in order {
                ee[i].push((ys[at + 1][m] - ys[at][m]) / DELTA);
                at += 1;
            }
            at += 1;
        }
        let mut effects: Vec<Effect> = ee
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let n = e.len() as f64;
                let mu = e.iter().sum::<f64>() / n;
                let mu_star = e.iter().map(|v| v.abs()).sum::<f64>() / n;
                let sigma = if e.len() > 1 {
                    (e.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
                } else {
                    0.0
                };
                Effect {
                    factor: i,
                    mu_star,
                    mu,
                    sigma,
                }
            })
            .collect();
        effects.sort_by(|a, b| {
            b.mu_star
                .total_cmp(&a.mu_star)
                .then(a.factor.cmp(&b.factor))
        });
        effects_by_metric.push(effects);
    }
    Ok(Report {
        runs: points.len() as u64 * seeds,
        factors,
        skipped,
        effects: effects_by_metric,
    })
}

/// The ranking as markdown: per metric, the `top` factors.
pub fn markdown(r: &Report, top: usize) -> String {
    let mut out = String::new();
    for (m, effects) in METRICS.iter().zip(&r.effects) {
        out += &format!(
            "\n### {m}\n\n| rank | factor | range | μ* | μ | σ |\n|---:|---|---|---:|---:|---:|\n"
        );
        for (rank, e) in effects.iter().take(top).enumerate() {
            let f = &r.factors[e.factor];
            out += &format!(
                "| {} | `{}` | {} – {} | {} | {} | {} |\n",
                rank + 1,
                f.key,
                short(f.lo),
                short(f.hi),
                short(e.mu_star),
                short(e.mu),
                short(e.sigma)
            );
        }
    }
    out
}

fn short(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}
