//! The tuner: from a sweep, the fastest plan whose rollouts meet the safety limits with the
//! stated confidence. Leading candidates get replications until their verdict is clear (a
//! sequential test on the per-rollout bound), a local search refines the winner, plans tied
//! with it on makespan are ranked by a secondary criterion, and the chosen plan's predictions
//! come from fresh seeds that no step of the selection used.

mod infeasible;
pub mod plan;

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;

use crate::error::Failure;
use crate::live::signals::{self, Signal};
use crate::scenario::grid::Point;
use crate::scenario::{validate, InputError};
use crate::sim::rng;
use crate::simulate::{self, Options};
use crate::stats::mean_ci95;
use crate::sweep::aggregate::{ConfigSummary, SUMMARY_METRICS};
use crate::sweep::config::{Config, REFERENCES};
use crate::sweep::constraints::{Constraints, Passes, BOUND_LEVEL};
use crate::sweep::output::{Manifest, RunsReader};
use crate::sweep::run::{metric_index, seed_for, values};
use crate::sweep::{prepare_swept, Prepared};
use plan::{
    Alternative, Interval, PlanConstraints, PlanFile, PlanRuns, PlanScenario, Predicted, Selection,
};

#[derive(Debug, Clone)]
pub struct TuneOptions {
    pub constraints: Constraints,
    /// Replications added to a raced candidate at a time (doubling after the first batch).
    pub extra_replications: u32,
    /// Most replications any candidate gets before its verdict stands as it is.
    pub max_replications: u32,
    /// The race stops once this many candidates are shown acceptable.
    pub candidates: usize,
    /// Local-search rounds around the winner.
    pub rounds: usize,
    /// Fresh replications behind the plan's predictions.
    pub prediction_replications: u32,
    pub threads: usize,
    /// The backend the plan is for, by name, and the signals it provides: configurations
    /// whose rules would run blind there are not candidates.
    pub backend: Option<(String, Vec<Signal>)>,
}

/// The secondary criterion among plans tied on makespan, as written into the plan.
pub const TIE_RULE: &str = "among plans whose makespan 95% intervals overlap the fastest one's, the highest lower bound on the fraction of rollouts within every limit; then the lower mean makespan";

/// Fresh seeds for predictions: a stream of its own, disjoint from the sweep's replications.
const FRESH_STREAM: u64 = 0x4652_4553_4831; // "FRESH1"

pub fn fresh_seed(base_seed: u64, i: u32) -> u64 {
    rng::derive(&[base_seed, FRESH_STREAM, u64::from(i)]) >> 11
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
    pub prediction_runs: u64,
    pub evaluated: usize,
}

type Runs = Vec<(bool, Vec<f64>)>;

/// Runs replications `from..to` of `config` on seeds from `seed` (good and bad release);
/// returns per-run values in replication order.
fn replicate(
    p: &Prepared,
    c: &Config,
    from: u32,
    to: u32,
    seed: impl Fn(u32) -> u64 + Sync,
) -> Runs {
    (from..to)
        .into_par_iter()
        .flat_map_iter(|r| [false, true].into_iter().map(move |bad| (bad, r)))
        .map(|(bad, r)| {
            let s = if bad { &p.bad } else { &p.good };
            let run = simulate::run(s, &c.name, &c.policy, seed(r), &Options::default());
            (bad, values(&run.summary))
        })
        .collect()
}

fn estimate(config: usize, runs: &Runs, c: &Constraints) -> ConfigSummary {
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
    let passes = Passes::of_runs(c, runs);
    ConfigSummary {
        config,
        n: runs.iter().filter(|(b, _)| !b).count(),
        metrics,
        passes,
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
    let c = &o.constraints;
    // A plan must be executable as tested: its rules need signals its backend provides.
    let feedable = |cfg: &Config| {
        o.backend
            .as_ref()
            .is_none_or(|(_, provided)| signals::refused(&cfg.policy, provided, &[]).is_empty())
    };
    // Pass 1 over runs.csv: the summaries, streamed (memory flat in the number of runs).
    let runs_path = dir.join("runs.csv");
    let mut agg = crate::sweep::aggregate::Aggregator::new(p.configs.len(), *c);
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
    // Race: the fastest candidates the sweep has not already ruled out.
    let mut leaders: Vec<&ConfigSummary> = summaries
        .iter()
        .filter(|s| !REFERENCES.contains(&p.configs[s.config].name.as_str()))
        .filter(|s| feedable(&p.configs[s.config]))
        .filter(|s| s.n > 0 && !c.clearly_fail(s))
        .collect();
    leaders.sort_by(|a, b| {
        a.get("makespan_s")
            .mean
            .total_cmp(&b.get("makespan_s").mean)
            .then(a.config.cmp(&b.config))
    });
    let max_reps = o.max_replications.max(m.replications);
    let mut refinement_runs = 0u64;
    let mut evaluated: BTreeMap<String, Evaluated> = BTreeMap::new();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(o.threads)
        .build()
        .ok();
    let in_pool = |go: &(dyn Fn() -> Runs + Sync)| -> Runs {
        match &pool {
            Some(pool) => pool.install(go),
            None => go(),
        }
    };
    let base_seed = p.spec.base_seed;
    // Sequential test: add replications until the bound decides, or the budget is spent.
    let settle = |cfg: &Config, mut runs: Runs, refinement_runs: &mut u64| -> ConfigSummary {
        let mut have = (runs.len() / 2) as u32;
        let mut batch = o.extra_replications.max(1);
        loop {
            let summary = estimate(cfg.id, &runs, c);
            if have >= max_reps || (have > 0 && (c.hold(&summary) || c.clearly_fail(&summary))) {
                return summary;
            }
            let to = (have + batch).min(max_reps);
            let extra = in_pool(&|| replicate(&p, cfg, have, to, |r| seed_for(base_seed, r)));
            *refinement_runs += extra.len() as u64;
            runs.extend(extra);
            have = to;
            batch = batch.saturating_mul(2);
        }
    };
    // Fastest first, until enough of them are shown acceptable (or none is left).
    let mut accepted = 0;
    for s in &leaders {
        if accepted >= o.candidates {
            break;
        }
        let cfg = p.configs[s.config].clone();
        // Pass 2: only this candidate's runs.
        let mut runs: Runs = Vec::new();
        for r in RunsReader::open(&runs_path, m.replications)? {
            let r = r?;
            if r.key.config == s.config {
                runs.push((r.key.bad_release, r.values));
            }
        }
        let summary = settle(&cfg, runs, &mut refinement_runs);
        accepted += usize::from(c.hold(&summary));
        evaluated.insert(
            cfg.label(),
            Evaluated {
                config: cfg,
                summary,
            },
        );
    }
    // Local search around the current winner's swept parameters.
    let mut next_id = p.configs.len();
    for _ in 0..o.rounds {
        let Some(current) = fastest(&evaluated, c).cloned() else {
            break;
        };
        let mut improved = false;
        for point in neighbours(&current.config.params) {
            let Some(cfg) = build(&p, &current.config, &point, next_id).filter(|c| feedable(c))
            else {
                continue;
            };
            if evaluated.contains_key(&cfg.label()) {
                continue;
            }
            next_id += 1;
            let summary = settle(&cfg, Vec::new(), &mut refinement_runs);
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
    let Some((winner, tied)) = choose(&evaluated, c) else {
        // Every candidate the sweep ran, with the raced ones' sharper estimates.
        let candidates: Vec<(String, &ConfigSummary)> = summaries
            .iter()
            .filter(|s| !REFERENCES.contains(&p.configs[s.config].name.as_str()))
            .filter(|s| feedable(&p.configs[s.config]))
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
    // Predictions on fresh seeds: none of them took part in the choice.
    let fresh = in_pool(&|| {
        replicate(&p, &winner.config, 0, o.prediction_replications, |i| {
            fresh_seed(base_seed, i)
        })
    });
    let prediction_runs = fresh.len() as u64;
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
            confidence: c.confidence,
            bound_level: BOUND_LEVEL,
        },
        predicted: predicted(&fresh, c, o.prediction_replications, base_seed),
        runs: PlanRuns {
            sweep: m.runs_total,
            refinement: refinement_runs,
            prediction: prediction_runs,
        },
        selection: Selection {
            replications: s.passes.good.n,
            within_limits_lower: crate::sweep::output::round(s.passes.lower()),
            makespan_s: s.get("makespan_s").into(),
            criterion: TIE_RULE.into(),
            extra_replications: o.extra_replications,
            max_replications: o.max_replications,
            candidates: o.candidates,
            rounds: o.rounds,
            backend: o.backend.as_ref().map(|(name, _)| name.clone()),
        },
        policy: winner.config.raw.clone(),
        alternatives: tied
            .iter()
            .map(|e| Alternative {
                name: e.config.label(),
                replications: e.summary.passes.good.n,
                within_limits_lower: crate::sweep::output::round(e.summary.passes.lower()),
                makespan_s: e.summary.get("makespan_s").into(),
                policy: e.config.raw.clone(),
            })
            .collect(),
        embedded_scenario: toml::from_str(&p.text).ok(),
    };
    Ok(Tuned {
        plan,
        scenario: p.good.clone(),
        winner,
        references,
        sweep_runs: m.runs_total,
        refinement_runs,
        prediction_runs,
        evaluated: evaluated.len(),
    })
}

fn by_makespan(a: &Evaluated, b: &Evaluated) -> std::cmp::Ordering {
    a.summary
        .get("makespan_s")
        .mean
        .total_cmp(&b.summary.get("makespan_s").mean)
        .then(a.config.label().cmp(&b.config.label()))
}

/// The acceptable plan with the lowest mean makespan.
fn fastest<'a>(ev: &'a BTreeMap<String, Evaluated>, c: &Constraints) -> Option<&'a Evaluated> {
    ev.values()
        .filter(|e| c.hold(&e.summary))
        .min_by(|a, b| by_makespan(a, b))
}

/// The plan to run and the acceptable plans tied with it on makespan ([`TIE_RULE`]).
fn choose(
    ev: &BTreeMap<String, Evaluated>,
    c: &Constraints,
) -> Option<(Evaluated, Vec<Evaluated>)> {
    let first = fastest(ev, c)?;
    let first_hi = first.summary.get("makespan_s").hi;
    let mut tied: Vec<&Evaluated> = ev
        .values()
        .filter(|e| c.hold(&e.summary) && e.summary.get("makespan_s").lo <= first_hi)
        .collect();
    tied.sort_by(|a, b| {
        b.summary
            .passes
            .lower()
            .total_cmp(&a.summary.passes.lower())
            .then(by_makespan(a, b))
    });
    let chosen = tied.remove(0).clone();
    tied.sort_by(|a, b| by_makespan(a, b));
    Some((chosen, tied.into_iter().cloned().collect()))
}

/// The plan's predictions from fresh runs (good and bad release, in replication order).
fn predicted(fresh: &Runs, c: &Constraints, replications: u32, base_seed: u64) -> Predicted {
    let passes = Passes::of_runs(c, fresh);
    let metric = |name: &str, bad: bool, range: (f64, f64)| {
        let i = metric_index(name).unwrap_or(0);
        let xs: Vec<f64> = fresh
            .iter()
            .filter(|(b, _)| *b == bad)
            .map(|(_, v)| v[i])
            .collect();
        Interval::of(&xs, range)
    };
    let unit = (0.0, 1.0);
    let nonneg = (0.0, f64::INFINITY);
    Predicted {
        replications,
        seeds: format!(
            "replications 0..{replications} of the fresh stream of base seed {base_seed}, which the sweep and the race never draw from"
        ),
        within_limits: passes.good.into(),
        bad_release_within_blast: passes.bad.into(),
        success_rate: metric("success_rate", false, unit),
        peak_mgmt_cpu_pct: metric("peak_mgmt_cpu_pct", false, (0.0, 100.0)),
        disconnect_rate: metric("disconnect_rate", false, unit),
        manual_interventions: metric("manual_interventions", false, nonneg),
        makespan_s: metric("makespan_s", false, nonneg),
        blast_radius: metric("blast_radius", true, nonneg),
    }
}

/// The comparison printed after tuning: the plan against the references, with the fraction
/// of rollouts within every limit (good release; blast radius on the bad one).
pub fn comparison(t: &Tuned) -> String {
    let mut rows: Vec<(String, &ConfigSummary)> = vec![("plan".into(), &t.winner.summary)];
    for (name, s) in &t.references {
        rows.push((name.clone(), s));
    }
    let mut out = String::from("| | within limits | success | peak CPU | disconnects | manual | makespan | blast radius (bad release) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (name, s) in rows {
        let e = |m: &str| s.get(m);
        let (g, b) = (s.passes.good, s.passes.bad);
        out += &format!(
            "| {name} | {}/{} · {}/{} | {:.1}% | {:.1}% | {:.2}% | {:.1} | {:.2} h | {:.1} |\n",
            g.k,
            g.n,
            b.k,
            b.n,
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

/// The plan's fresh-seed predictions, for people.
pub fn predictions(p: &Predicted) -> String {
    let w = &p.within_limits;
    let b = &p.bad_release_within_blast;
    let row = |name: &str, i: &Interval, scale: f64, unit: &str, digits: usize| {
        format!(
            "| {name} | {:.d$}{unit} | {:.d$}{unit} | {:.d$}{unit} | {:.d$}{unit} |\n",
            i.mean * scale,
            i.p05 * scale,
            i.p50 * scale,
            i.p95 * scale,
            d = digits
        )
    };
    let mut out = format!(
        "On {} fresh seeds: {} of {} rollouts within every limit ({:.1}%, 95% CI {:.1}–{:.1}%); bad release: {} of {} within the blast limit.\n\n| | mean | p05 | p50 | p95 |\n|---|---:|---:|---:|---:|\n",
        p.replications,
        w.within,
        w.rollouts,
        w.fraction * 100.0,
        w.ci95_lo * 100.0,
        w.ci95_hi * 100.0,
        b.within,
        b.rollouts
    );
    out += &row("success", &p.success_rate, 100.0, "%", 1);
    out += &row("peak CPU", &p.peak_mgmt_cpu_pct, 1.0, "%", 1);
    out += &row("disconnects", &p.disconnect_rate, 100.0, "%", 2);
    out += &row("manual", &p.manual_interventions, 1.0, "", 1);
    out += &row("makespan", &p.makespan_s, 1.0 / 3600.0, " h", 2);
    out += &row("blast radius", &p.blast_radius, 1.0, "", 1);
    out
}
