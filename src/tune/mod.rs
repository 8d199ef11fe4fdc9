//! The tuner: from a sweep, the fastest plan whose safety constraints hold conservatively
//! (the CI bound on the unsafe side). It races the leading candidates with extra
//! replications, then searches locally around the winner's numeric parameters.

mod infeasible;
pub mod plan;

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;

use crate::error::Failure;
use crate::scenario::grid::Point;
use crate::scenario::{validate, InputError};
use crate::simulate::{self, Options};
use crate::stats::mean_ci95;
use crate::sweep::aggregate::{ConfigSummary, SUMMARY_METRICS};
use crate::sweep::config::{Config, REFERENCES};
use crate::sweep::output::{Manifest, RunsReader};
use crate::sweep::representatives::Constraints;
use crate::sweep::run::{metric_index, seed_for, values};
use crate::sweep::{prepare_swept, Prepared};
use plan::{PlanConstraints, PlanFile, PlanRuns, PlanScenario, Predicted};

#[derive(Debug, Clone)]
pub struct TuneOptions {
    pub constraints: Constraints,
    /// Extra replications per raced candidate.
    pub extra_replications: u32,
    /// How many leading candidates to race.
    pub candidates: usize,
    /// Local-search rounds around the winner.
    pub rounds: usize,
    pub threads: usize,
}

/// A configuration evaluated on `n` replications (good release) and as many bad ones.
#[derive(Debug, Clone)]
pub struct Evaluated {
    pub config: Config,
    pub summary: ConfigSummary,
}

pub struct Tuned {
    pub plan: PlanFile,
    /// The swept scenario (with the sweep's sets).
    pub scenario: crate::scenario::Scenario,
    pub winner: Evaluated,
    pub references: Vec<(String, ConfigSummary)>,
    pub sweep_runs: u64,
    pub refinement_runs: u64,
    pub evaluated: usize,
}

/// Runs replications `from..to` of `config` (good and bad release); returns per-run values.
fn replicate(p: &Prepared, c: &Config, from: u32, to: u32) -> Vec<(bool, Vec<f64>)> {
    (from..to)
        .into_par_iter()
        .flat_map_iter(|r| {
            let seed = seed_for(p.spec.base_seed, r);
            [false, true].into_iter().map(move |bad| (bad, r, seed))
        })
        .map(|(bad, _, seed)| {
            let s = if bad { &p.bad } else { &p.good };
            (
                bad,
                values(&simulate::run(s, &c.name, &c.policy, seed, &Options::default()).summary),
            )
        })
        .collect()
}

fn estimate(config: usize, runs: &[(bool, Vec<f64>)]) -> ConfigSummary {
    let metrics = SUMMARY_METRICS
        .iter()
        .map(|(m, from_bad)| {
            let i = metric_index(m).unwrap_or(0);
            let xs: Vec<f64> = runs
                .iter()
                .filter(|(b, _)| b == from_bad)
                .map(|(_, v)| v[i])
                .collect();
            mean_ci95(&xs)
        })
        .collect();
    ConfigSummary {
        config,
        n: runs.iter().filter(|(b, _)| !b).count(),
        metrics,
    }
}

/// Neighbours of a point: each numeric parameter scaled down and up.
fn neighbours(point: &Point) -> Vec<Point> {
    let mut out = Vec::new();
    for (k, v) in point {
        for scale in [0.7, 1.3] {
            let nv = match v {
                toml::Value::Integer(i) => {
                    let x = ((*i as f64) * scale).round() as i64;
                    if x == *i || x < 1 {
                        continue;
                    }
                    toml::Value::Integer(x)
                }
                toml::Value::Float(f) => {
                    let mut x = f * scale;
                    if k.ends_with("fraction") || (0.0..=1.0).contains(f) && k.contains("fraction")
                    {
                        x = x.clamp(0.05, 1.0);
                    }
                    if (x - f).abs() < 1e-9 {
                        continue;
                    }
                    toml::Value::Float((x * 1000.0).round() / 1000.0)
                }
                _ => continue,
            };
            let mut q = point.clone();
            q.insert(k.clone(), nv);
            out.push(q);
        }
    }
    out
}

fn build(p: &Prepared, base: &Config, point: &Point, id: usize) -> Option<Config> {
    let mut table = match p.good.sweep.as_ref().and_then(|s| s.grids.get(&base.name)) {
        Some(g) => crate::scenario::grid::grid_base(&p.good.document, g).ok()?,
        None => crate::scenario::grid::policy_table(&p.good.document, &base.name),
    };

    for (k, v) in point {
        crate::scenario::overrides::apply(&mut table, k, v.clone()).ok()?;
    }
    let raw: crate::scenario::raw::RawPolicy =
        crate::scenario::overrides::deserialize(&table).ok()?;
    let policy = validate::policy(&raw, "policy", p.good.fleet.gateways).ok()?;
    Some(Config {
        id,
        name: base.name.clone(),
        params: point.clone(),
        raw,
        policy,
    })
}

pub fn tune(dir: &Path, o: &TuneOptions) -> Result<Tuned, Failure> {
    let m = Manifest::read(dir)?;
    if m.shard.is_some() {
        return Err(InputError::new(format!(
            "{} holds one shard; run `stagger merge` first",
            dir.display()
        ))
        .into());
    }
    let p = prepare_swept(&m)?;
    // Pass 1 over runs.csv: the summaries, streamed (memory flat in the number of runs).
    let runs_path = dir.join("runs.csv");
    let mut agg = crate::sweep::aggregate::Aggregator::new(p.configs.len());
    let mut count = 0u64;
    for r in RunsReader::open(&runs_path, m.replications)? {
        let r = r?;
        if r.key.config >= p.configs.len() {
            return Err(InputError::new(format!(
                "runs.csv names configuration {}, which the sweep does not have",
                r.key.config
            ))
            .in_file(&runs_path.display().to_string())
            .into());
        }
        agg.add(&r);
        count += 1;
    }
    if count != m.runs_total {
        return Err(
            InputError::new(format!("runs.csv has {count} of {} runs", m.runs_total))
                .in_file(&runs_path.display().to_string())
                .into(),
        );
    }
    let summaries = agg.finish();
    let c = &o.constraints;
    let mean_ok = |s: &ConfigSummary| {
        s.get("success_rate").mean >= c.min_success
            && s.get("peak_mgmt_cpu_pct").mean <= c.max_cpu
            && s.get("disconnect_rate").mean <= c.max_disconnect
            && s.get("blast_radius").mean <= c.max_blast
    };
    // Race: the fastest candidates that are feasible or close to it get more replications.
    let mut leaders: Vec<&ConfigSummary> = summaries
        .iter()
        .filter(|s| !REFERENCES.contains(&p.configs[s.config].name.as_str()))
        .filter(|s| c.hold(s) || mean_ok(s))
        .collect();
    leaders.sort_by(|a, b| {
        a.get("makespan_s")
            .mean
            .total_cmp(&b.get("makespan_s").mean)
            .then(a.config.cmp(&b.config))
    });
    leaders.truncate(o.candidates);
    let reps = m.replications;
    let total_reps = reps + o.extra_replications;
    let mut refinement_runs = 0u64;
    let mut evaluated: BTreeMap<String, Evaluated> = BTreeMap::new();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(o.threads)
        .build()
        .ok();
    let run = |cfg: &Config, from: u32| -> Vec<(bool, Vec<f64>)> {
        let go = || replicate(&p, cfg, from, total_reps);
        match &pool {
            Some(pool) => pool.install(go),
            None => go(),
        }
    };
    for s in &leaders {
        let cfg = p.configs[s.config].clone();
        // Pass 2: only this candidate's runs.
        let mut runs: Vec<(bool, Vec<f64>)> = Vec::new();
        for r in RunsReader::open(&runs_path, m.replications)? {
            let r = r?;
            if r.key.config == s.config {
                runs.push((r.key.bad_release, r.values));
            }
        }
        let extra = run(&cfg, reps);
        refinement_runs += extra.len() as u64;
        runs.extend(extra);
        let summary = estimate(cfg.id, &runs);
        evaluated.insert(
            cfg.label(),
            Evaluated {
                config: cfg,
                summary,
            },
        );
    }
    let best = |ev: &BTreeMap<String, Evaluated>| -> Option<Evaluated> {
        ev.values()
            .filter(|e| c.hold(&e.summary))
            .min_by(|a, b| {
                a.summary
                    .get("makespan_s")
                    .mean
                    .total_cmp(&b.summary.get("makespan_s").mean)
                    .then(a.config.label().cmp(&b.config.label()))
            })
            .cloned()
    };
    // Local search around the current winner's swept parameters.
    let mut next_id = p.configs.len();
    for _ in 0..o.rounds {
        let Some(current) = best(&evaluated) else {
            break;
        };
        let mut improved = false;
        for point in neighbours(&current.config.params) {
            let Some(cfg) = build(&p, &current.config, &point, next_id) else {
                continue;
            };
            if evaluated.contains_key(&cfg.label()) {
                continue;
            }
            next_id += 1;
            let runs = run(&cfg, 0);
            refinement_runs += runs.len() as u64;
            let summary = estimate(cfg.id, &runs);
            let better = c.hold(&summary)
                && summary.get("makespan_s").mean < current.summary.get("makespan_s").mean;
            improved |= better;
            evaluated.insert(
                cfg.label(),
                Evaluated {
                    config: cfg,
                    summary,
                },
            );
        }
        if !improved {
            break;
        }
    }
    let Some(winner) = best(&evaluated) else {
        // Every candidate the sweep ran, with the raced ones' sharper estimates.
        let candidates: Vec<(String, &ConfigSummary)> = summaries
            .iter()
            .filter(|s| !REFERENCES.contains(&p.configs[s.config].name.as_str()))
            .map(|s| {
                let label = p.configs[s.config].label();
                let s = evaluated.get(&label).map_or(s, |e| &e.summary);
                (label, s)
            })
            .chain(
                evaluated
                    .values()
                    .filter(|e| e.config.id >= p.configs.len())
                    .map(|e| (e.config.label(), &e.summary)),
            )
            .collect();
        return Err(Failure::Runtime(infeasible::explain(c, &candidates)));
    };
    let references = p
        .configs
        .iter()
        .filter(|cfg| REFERENCES.contains(&cfg.name.as_str()))
        .map(|cfg| (cfg.name.clone(), summaries[cfg.id].clone()))
        .collect();
    let s = &winner.summary;
    let plan = PlanFile {
        format: plan::FORMAT,
        stagger_version: env!("CARGO_PKG_VERSION").into(),
        name: winner.config.label(),
        scenario: PlanScenario {
            path: m.scenario_path.clone(),
            name: m.scenario_name.clone(),
            fingerprint: m.scenario_fingerprint.clone(),
            sets: m.sets.clone(),
            gateways: p.good.fleet.gateways,
        },
        constraints: PlanConstraints {
            min_success: c.min_success,
            max_cpu_pct: c.max_cpu,
            max_disconnect: c.max_disconnect,
            max_blast: c.max_blast,
        },
        predicted: Predicted {
            replications: s.n as u32,
            success_rate: s.get("success_rate").into(),
            peak_mgmt_cpu_pct: s.get("peak_mgmt_cpu_pct").into(),
            disconnect_rate: s.get("disconnect_rate").into(),
            manual_interventions: s.get("manual_interventions").into(),
            makespan_s: s.get("makespan_s").into(),
            blast_radius: s.get("blast_radius").into(),
        },
        runs: PlanRuns {
            sweep: m.runs_total,
            refinement: refinement_runs,
        },
        policy: winner.config.raw.clone(),
        embedded_scenario: toml::from_str(&p.text).ok(),
    };
    Ok(Tuned {
        plan,
        scenario: p.good.clone(),
        winner,
        references,
        sweep_runs: m.runs_total,
        refinement_runs,
        evaluated: evaluated.len(),
    })
}

/// The comparison printed after tuning: the plan against the references.
pub fn comparison(t: &Tuned) -> String {
    let mut rows: Vec<(String, &ConfigSummary)> = vec![("plan".into(), &t.winner.summary)];
    for (name, s) in &t.references {
        rows.push((name.clone(), s));
    }
    let mut out = String::from("| | success | peak CPU | disconnects | manual | makespan | blast radius (bad release) |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for (name, s) in rows {
        let e = |m: &str| s.get(m);
        out += &format!(
            "| {name} | {:.1}% | {:.1}% | {:.2}% | {:.1} | {:.2} h | {:.1} |\n",
            e("success_rate").mean * 100.0,
            e("peak_mgmt_cpu_pct").mean,
            e("disconnect_rate").mean * 100.0,
            e("manual_interventions").mean,
            e("makespan_s").mean / 3600.0,
            e("blast_radius").mean
        );
    }
    out
}
