//! Re-tuning after the canaries: when a named stage completes, fit what the rollout has shown
//! so far, and choose the pace of the rest under the plan's constraints.
//!
//! The fitted values replace the plan's assumptions only where the observations pin them down
//! more tightly than the plan's own `[uncertainty]` did: five canaries say little about a 1%
//! failure rate, and must not make it look like 8%.
//!
//! The choice is a pace (`Policy::paced`): the same waves, gates and safety rules, with
//! concurrency scaled and waits divided. Every candidate is simulated as it would run: the
//! stage as planned, the rest at the pace. Whether the canaries look worse than the plan
//! assumed is judged first, on the plan as it stands: its safety margins (success, CPU,
//! disconnects) under the fitted scenario against under the prior, on common seeds; a mean
//! difference within twice its standard error keeps the plan as it is. When clearly worse,
//! only paces of 1 or less are candidates; when clearly better, only 1 or more. The fastest
//! candidate whose fraction of rollouts within every limit, under the fitted scenario, is at
//! least what the plan as approved reaches under its prior on the same seeds, is chosen.

use rayon::prelude::*;

use crate::engine::Policy;
use crate::fit::{self, observe::Rollout, Fit};
use crate::scenario::{self, InputError, Scenario};
use crate::sim::rng;
use crate::simulate::{self, summary::Paced, Leaning, Options, Refitted};
use crate::sweep::constraints::{Constraints, Limit, Passes};
use crate::sweep::run::{metric_index, values};

/// Paces tried when the canaries look worse than the plan assumed (slowest last).
pub const SLOWER: [f64; 5] = [1.0, 0.85, 0.7, 0.55, 0.4];
/// Paces tried otherwise.
pub const FASTER: [f64; 5] = [1.0, 1.25, 1.5, 2.0, 2.5];

/// Replications per pace and release, by default: enough for a rollout fraction's
/// difference of a few percent to show.
pub const REPLICATIONS: u32 = 100;

/// A refit stream of seeds, disjoint from the sweep's and the tuner's fresh seeds.
const REFIT_STREAM: u64 = 0x5245_4649_5431; // "REFIT1"

/// Checks that `stage` names a stage after which the plan has more to release, and
/// `replications` enough runs to judge by.
pub fn check(
    policy: &Policy,
    gateways: usize,
    stage: &str,
    replications: u32,
) -> Result<(), InputError> {
    let names = policy.stage_names();
    if !names.contains(&stage) {
        return Err(InputError::new(format!(
            "--refit-after `{stage}`: the plan has no such stage (it has: {})",
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        )));
    }
    let inventory = vec![crate::engine::GatewayInfo { region: 0, hw: 0 }; gateways];
    let plan = crate::engine::waves::plan(policy, &inventory);
    let last = plan
        .waves
        .iter()
        .rposition(|w| w.stage.as_deref() == Some(stage));
    if last.is_none_or(|w| w + 1 >= plan.waves.len()) {
        return Err(InputError::new(format!(
            "--refit-after `{stage}`: nothing is released after that stage, so there is nothing to re-tune"
        )));
    }
    if !(10..=100_000).contains(&replications) {
        return Err(InputError::new(format!(
            "--refit-replications must be between 10 and 100000 (got {replications})"
        )));
    }
    Ok(())
}

/// The paces `simulate --pace` takes: the range the ladders span, and then some.
pub const GIVEN_PACES: std::ops::RangeInclusive<f64> = 0.1..=10.0;

/// Checks a pace given for a what-if refit.
pub fn check_pace(pace: f64) -> Result<(), InputError> {
    if GIVEN_PACES.contains(&pace) {
        Ok(())
    } else {
        Err(InputError::new(format!(
            "--pace must be between {} and {} (got {pace})",
            GIVEN_PACES.start(),
            GIVEN_PACES.end()
        )))
    }
}

/// How a simulated run answers its refit: by fitting what it observed, or with a pace given
/// (`simulate --pace`) to see what choosing it would do.
#[derive(Debug, Clone)]
pub enum Answer {
    Fit(Box<Refitter>),
    Given(f64),
}

impl Answer {
    /// The refit after `stage`; `observed` is read only when there is something to fit.
    pub fn decide(
        &self,
        observed: impl FnOnce() -> Result<Rollout, InputError>,
        stage: &str,
        at_s: f64,
    ) -> Result<Refitted, InputError> {
        match self {
            Answer::Fit(r) => r.decide(&observed()?, stage, at_s),
            Answer::Given(pace) => Ok(Refitted {
                stage: stage.to_string(),
                at_s,
                leaning: Leaning::Given,
                pace: *pace,
                adopted: Vec::new(),
                kept_prior: Vec::new(),
                why: "given with --pace: nothing was fitted".into(),
                standard: None,
                tried: Vec::new(),
            }),
        }
    }
}

/// What the refit needs besides the observations.
#[derive(Debug, Clone)]
pub struct Refitter {
    /// The scenario the plan was tuned on: the prior.
    pub prior: Scenario,
    /// The plan's policy as tuned (without the refit).
    pub policy: Policy,
    pub name: String,
    pub constraints: Constraints,
    /// Replications per candidate and release.
    pub replications: u32,
    pub seed: u64,
}

/// One rollout's safety margin: the smallest of its limits' slacks, each relative to the
/// limit (1 = no load at all, 0 = at the limit, negative = beyond it).
fn margin(c: &Constraints, v: &[f64]) -> f64 {
    let at = |l: Limit| metric_index(l.metric()).and_then(|i| v.get(i).copied());
    let success = at(Limit::Success).map_or(f64::NEG_INFINITY, |s| {
        (s - c.min_success) / (1.0 - c.min_success).max(1e-9)
    });
    let cpu = at(Limit::Cpu).map_or(f64::NEG_INFINITY, |x| (c.max_cpu - x) / c.max_cpu);
    let disc = at(Limit::Disconnect).map_or(f64::NEG_INFINITY, |x| {
        (c.max_disconnect - x) / c.max_disconnect.max(1e-9)
    });
    success.min(cpu).min(disc)
}

/// Whether the plan's margins under the fitted scenario differ from under the prior, seed by
/// seed: the mean paired difference against twice its standard error.
fn compare(fitted: &[f64], prior: &[f64]) -> Leaning {
    let d: Vec<f64> = fitted
        .iter()
        .zip(prior)
        .map(|(a, b)| a - b)
        .filter(|x| x.is_finite())
        .collect();
    if d.len() < 2 {
        return Leaning::Same;
    }
    let n = d.len() as f64;
    let mean = d.iter().sum::<f64>() / n;
    let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let se = (var / n).sqrt();
    if mean.abs() <= 2.0 * se {
        Leaning::Same
    } else if mean < 0.0 {
        Leaning::Worse
    } else {
        Leaning::Better
    }
}

/// A policy's replications on a good and a bad release.
struct Runs {
    passes: Passes,
    /// Each good-release rollout's margin, in replication order.
    margins: Vec<f64>,
    makespan_s: f64,
}

impl Runs {
    fn paced(&self, pace: f64) -> Paced {
        Paced {
            pace,
            good_within: self.passes.good.k,
            bad_within: self.passes.bad.k,
            replications: self.passes.good.n,
            makespan_s: self.makespan_s,
        }
    }
}

impl Refitter {
    fn seed(&self, r: u32) -> u64 {
        rng::derive(&[self.seed, REFIT_STREAM, u64::from(r)]) >> 11
    }

    /// The plan's replications with its rest at `pace` after `stage`, as a refit answering
    /// `pace` would run it (the stage itself as planned).
    fn evaluate(&self, good: &Scenario, bad: &Scenario, stage: &str, pace: f64) -> Runs {
        let c = self.constraints;
        let mut policy = self.policy.clone();
        policy.refit_after = Some(stage.to_string());
        let milli = crate::engine::pace_milli(pace);
        let runs: Vec<(bool, Vec<f64>)> = (0..self.replications)
            .into_par_iter()
            .flat_map_iter(|r| [false, true].into_iter().map(move |b| (b, r)))
            .map(|(b, r)| {
                let s = if b { bad } else { good };
                let run = simulate::run_replanned(
                    s,
                    &self.name,
                    &policy,
                    self.seed(r),
                    &Options::default(),
                    &mut |_, _| {},
                    &mut |_, _, _| milli,
                );
                (b, values(&run.summary))
            })
            .collect();
        let good_runs: Vec<&Vec<f64>> = runs.iter().filter(|(b, _)| !b).map(|(_, v)| v).collect();
        let n = good_runs.len().max(1) as f64;
        let span = metric_index("makespan_s");
        Runs {
            passes: Passes::of_runs(&c, &runs),
            margins: good_runs.iter().map(|v| margin(&c, v)).collect(),
            makespan_s: good_runs
                .iter()
                .map(|v| span.and_then(|i| v.get(i).copied()).unwrap_or(f64::NAN))
                .sum::<f64>()
                / n,
        }
    }

    /// Fits `observed` and chooses the pace of the rest of the rollout after `stage`.
    pub fn decide(
        &self,
        observed: &Rollout,
        stage: &str,
        at_s: f64,
    ) -> Result<Refitted, InputError> {
        let fit = fit::fit(&self.prior, std::slice::from_ref(observed));
        let (fitted, adopted, kept) = fitted_scenario(&self.prior, &fit)?;
        let mut refitted = Refitted {
            stage: stage.to_string(),
            at_s,
            leaning: Leaning::Same,
            pace: 1.0,
            adopted,
            kept_prior: kept,
            why: String::new(),
            standard: None,
            tried: Vec::new(),
        };
        if refitted.adopted.is_empty() {
            // Nothing learned that the plan did not already assume: no reason to change it.
            refitted.why = "the stage pinned down nothing more precisely than the plan's scenario did: the plan as it was".into();
            return Ok(refitted);
        }
        // The bad release the plan was tuned against.
        let defect_rate = self
            .prior
            .sweep
            .as_ref()
            .and_then(|s| s.defect_rate)
            .unwrap_or(0.5);
        let bad_of =
            |s: &Scenario| s.with_value("firmware.defect_rate", toml::Value::Float(defect_rate));
        let (prior_bad, fitted_bad) = (bad_of(&self.prior)?, bad_of(&fitted)?);
        let standard = self.evaluate(&self.prior, &prior_bad, stage, 1.0);
        let as_is = self.evaluate(&fitted, &fitted_bad, stage, 1.0);
        refitted.leaning = compare(&as_is.margins, &standard.margins);
        let standard = standard.paced(1.0);
        refitted.tried.push(as_is.paced(1.0));
        let ladder: &[f64] = match refitted.leaning {
            Leaning::Same | Leaning::Given => {
                refitted.why = "under what the stage showed, the plan's safety margins are not clearly different from under its scenario: the plan as it was".into();
                refitted.standard = Some(standard);
                return Ok(refitted);
            }
            Leaning::Worse => &SLOWER,
            Leaning::Better => &FASTER,
        };
        for &pace in &ladder[1..] {
            let r = self.evaluate(&fitted, &fitted_bad, stage, pace);
            refitted.tried.push(r.paced(pace));
        }
        let meets = |c: &&Paced| {
            c.good_within >= standard.good_within && c.bad_within >= standard.bad_within
        };
        let fastest = refitted
            .tried
            .iter()
            .filter(meets)
            .min_by(|a, b| a.makespan_s.total_cmp(&b.makespan_s));
        (refitted.pace, refitted.why) = match (fastest, refitted.leaning) {
            (Some(c), _) => (
                c.pace,
                format!(
                    "the fastest pace whose rollouts stay within the limits as often as the plan's did under its prior ({} of {} good, {} of {} bad releases)",
                    standard.good_within, standard.replications, standard.bad_within, standard.replications
                ),
            ),
            (None, Leaning::Worse) => {
                // Nothing is as safe as the plan was meant to be: the safest pace tried.
                let safest = refitted
                    .tried
                    .iter()
                    .max_by(|a, b| {
                        (a.good_within + a.bad_within)
                            .cmp(&(b.good_within + b.bad_within))
                            .then(b.pace.total_cmp(&a.pace))
                    })
                    .map_or(1.0, |c| c.pace);
                (
                    safest,
                    "no pace tried is as safe as the plan under its prior: the safest one".into(),
                )
            }
            (None, _) => (
                1.0,
                "no faster pace is as safe as the plan under its prior: the plan as it was".into(),
            ),
        };
        refitted.standard = Some(standard);
        Ok(refitted)
    }
}

/// The prior with the fitted values that the observations pin down more tightly than the
/// prior's own range for them; returns it with the keys adopted and those left as they were.
pub fn fitted_scenario(
    prior: &Scenario,
    fit: &Fit,
) -> Result<(Scenario, Vec<String>, Vec<String>), InputError> {
    let range = |key: &str| {
        prior
            .uncertainty
            .iter()
            .find(|u| u.key == key)
            .map(|u| u.dist.max_value() - u.dist.min_value())
    };
    let mut adopted = Vec::new();
    let mut kept = Vec::new();
    for row in &fit.fitted {
        let width = row.interval.map_or(f64::INFINITY, |(lo, hi)| hi - lo);
        match range(&row.parameter) {
            Some(r) if width >= r => kept.push(row.parameter.clone()),
            _ => adopted.push(row.parameter.clone()),
        }
    }
    let covers = |key: &str| {
        adopted
            .iter()
            .any(|a| a == key || a.starts_with(&format!("{key}.")))
    };
    let mut applied = fit.clone();
    applied.settings.retain(|(k, _)| covers(k));
    applied.uncertainty.retain(|(k, _)| covers(k));
    let text = toml::to_string(&prior.document)
        .map_err(|e| InputError::new(format!("the plan's scenario: {e}")))?;
    let name = format!("{} (refitted)", prior.name);
    let fitted_text =
        fit::write::fitted_text(&text, &name, &applied, &["the rollout so far".into()])?;
    let s = scenario::from_text(&fitted_text, &name, &[])?;
    Ok((s, adopted, kept))
}
