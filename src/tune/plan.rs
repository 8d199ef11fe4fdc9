//! Plan files: the tuned policy with its constraints, predictions and scenario fingerprint.
//! Written by `tune`, read by `simulate --plan` and `rollout`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::Policy;
use crate::scenario::raw::RawPolicy;
use crate::scenario::{locate, validate, InputError, Scenario};

/// Format 2: per-rollout constraints, predictions from fresh seeds with percentiles, and
/// the statistically tied alternatives.
pub const FORMAT: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    pub format: u32,
    pub stagger_version: String,
    pub name: String,
    pub scenario: PlanScenario,
    pub constraints: PlanConstraints,
    pub predicted: Predicted,
    pub runs: PlanRuns,
    pub selection: Selection,
    pub policy: RawPolicy,
    /// Plans statistically tied with this one on makespan, which the secondary criterion
    /// ranked lower.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Alternative>,
    /// The scenario itself (its file as swept, before `scenario.sets`), last in the file, so
    /// the plan is self-contained: `simulate --plan` and `rollout` need nothing else. Plans
    /// without it read `scenario.path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded_scenario: Option<toml::Table>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanScenario {
    pub path: String,
    pub name: String,
    pub fingerprint: String,
    pub sets: Vec<String>,
    pub gateways: u32,
}

/// The limits, and the fraction of rollouts that must meet them (judged by a one-sided
/// Clopper–Pearson bound at `bound_level`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConstraints {
    pub min_success: f64,
    pub max_cpu_pct: f64,
    pub max_disconnect: f64,
    pub max_blast: f64,
    pub confidence: f64,
    pub bound_level: f64,
}

/// A metric over fresh rollouts: its mean with a 95% interval, and its spread.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    pub mean: f64,
    pub ci95_lo: f64,
    pub ci95_hi: f64,
    pub p05: f64,
    pub p50: f64,
    pub p95: f64,
}

/// How many of the fresh rollouts met the limits, with a two-sided 95% Clopper–Pearson
/// interval on the fraction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fraction {
    pub rollouts: u64,
    pub within: u64,
    pub fraction: f64,
    pub ci95_lo: f64,
    pub ci95_hi: f64,
}

/// Predictions from seeds that selection never saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predicted {
    pub replications: u32,
    /// Where those seeds come from, so anyone can re-run them.
    pub seeds: String,
    /// Good-release rollouts within the success, CPU and disconnect limits.
    pub within_limits: Fraction,
    /// Bad-release rollouts within the blast-radius limit.
    pub bad_release_within_blast: Fraction,
    pub success_rate: Interval,
    pub peak_mgmt_cpu_pct: Interval,
    pub disconnect_rate: Interval,
    pub manual_interventions: Interval,
    pub makespan_s: Interval,
    pub blast_radius: Interval,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRuns {
    pub sweep: u64,
    pub refinement: u64,
    pub prediction: u64,
}

/// Why this plan: its evidence in selection, and the rule that picked it among ties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Replications (per release) behind the verdict.
    pub replications: u64,
    /// Lower bound on the fraction of rollouts within every limit (the weaker release).
    pub within_limits_lower: f64,
    pub makespan_s: MeanCi,
    pub criterion: String,
    /// The tune options that shaped the search, so that the plan can be made again.
    pub extra_replications: u32,
    pub max_replications: u32,
    pub candidates: usize,
    pub rounds: usize,
    /// The backend whose signals the plan's rules were limited to (`tune --backend`), with
    /// any signals accepted as missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeanCi {
    pub mean: f64,
    pub ci95_lo: f64,
    pub ci95_hi: f64,
}

/// A plan tied with the chosen one on makespan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alternative {
    pub name: String,
    pub replications: u64,
    pub within_limits_lower: f64,
    pub makespan_s: MeanCi,
    pub policy: RawPolicy,
}

impl PlanFile {
    pub fn to_toml(&self) -> Result<String, String> {
        let body = toml::to_string(self).map_err(|e| e.to_string())?;
        Ok(format!(
            "# A rollout plan written by `stagger tune`. Replay it with\n#   stagger simulate --plan THIS_FILE --seed N\n# and run it with `stagger rollout --plan THIS_FILE ...` (a dry run unless --execute).\n# The scenario it was tuned on is embedded at the end ([embedded_scenario]), so this file\n# works alone, from any directory; [scenario] records where that scenario came from.\n\n{body}"
        ))
    }

    /// Reads and validates a plan; errors name the file, key and line.
    pub fn load(path: &str) -> Result<(PlanFile, Policy), InputError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::new(format!("cannot read plan: {e}")).in_file(path))?;
        let (table, _) =
            crate::scenario::overrides::merge(&text, &[]).map_err(|e| e.in_file(path))?;
        let locator = locate::Locator::new(&text);
        let attach = |mut e: InputError| {
            if let Some((line, col)) = e.key.as_deref().and_then(|k| locator.line_of(k)) {
                e.line.get_or_insert(line);
                e.column.get_or_insert(col);
            }
            e.in_file(path)
        };
        // The format first: an older plan fails on it, not on the first field it lacks.
        match table.get("format").and_then(toml::Value::as_integer) {
            Some(f) if f == i64::from(FORMAT) => {}
            Some(f) => {
                return Err(attach(InputError::at_key(
                    "format",
                    format!(
                        "plan format {f} is not supported by this stagger (it reads format {FORMAT}); tune the sweep again to write a current plan"
                    ),
                )))
            }
            None => {
                return Err(attach(InputError::at_key(
                    "format",
                    "a plan needs an integer `format` (this stagger reads format 2)".to_string(),
                )))
            }
        }
        let plan: PlanFile = crate::scenario::overrides::deserialize(&table).map_err(attach)?;
        let policy =
            validate::policy(&plan.policy, "policy", plan.scenario.gateways).map_err(attach)?;
        let mut plan = plan;
        plan.scenario.path = resolve_beside(path, &plan.scenario.path);
        Ok((plan, policy))
    }

    /// The plan's scenario with `extra` sets after the plan's own: the embedded copy, or
    /// the file at `path` for plans that have none.
    pub fn scenario(&self, extra: &[String]) -> Result<Scenario, InputError> {
        let mut sets = self.scenario.sets.clone();
        sets.extend_from_slice(extra);
        match &self.embedded_scenario {
            Some(doc) => {
                let text = toml::to_string(doc)
                    .map_err(|e| InputError::new(format!("the plan's embedded scenario: {e}")))?;
                let name = format!("{} (embedded in the plan)", self.scenario.path);
                crate::scenario::from_text(&text, &name, &sets)
            }
            None => crate::scenario::load(&self.scenario.path, &sets),
        }
    }

    /// The scenario the plan was tuned on, checked against the plan's fingerprint.
    pub fn tuned_scenario(&self) -> Result<Scenario, InputError> {
        let s = self.scenario(&[]).map_err(|e| {
            InputError::new(format!(
                "the plan's scenario cannot be loaded (paths in a plan are relative to the plan file): {e}"
            ))
        })?;
        if s.fingerprint != self.scenario.fingerprint {
            return Err(InputError::new(format!(
                "the plan was tuned on another version of scenario {} (fingerprint {}, now {}); sweep and tune again",
                self.scenario.path, self.scenario.fingerprint, s.fingerprint
            )));
        }
        Ok(s)
    }

    /// The plan as written to `plan_path`: its scenario path relative to the plan's folder,
    /// so that the plan works from any working directory and moves with its scenario.
    pub fn for_writing_at(&self, plan_path: &Path) -> PlanFile {
        let mut p = self.clone();
        let dir = plan_path.parent().unwrap_or(Path::new("."));
        if let Some(rel) = relative_path(dir, Path::new(&self.scenario.path)) {
            p.scenario.path = rel;
        }
        p
    }
}

/// A relative path in a plan means relative to the plan file; older plans were written
/// relative to the working directory, which is kept when nothing exists beside the plan.
fn resolve_beside(plan_path: &str, target: &str) -> String {
    let t = Path::new(target);
    if t.is_absolute() {
        return target.to_string();
    }
    let dir = Path::new(plan_path).parent().unwrap_or(Path::new(""));
    let beside = dir.join(t);
    if beside.exists() || !t.exists() {
        beside.display().to_string()
    } else {
        target.to_string()
    }
}

/// `target` as seen from `dir`, through their common ancestor (None if either is missing).
fn relative_path(dir: &Path, target: &Path) -> Option<String> {
    let dir = std::fs::canonicalize(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    })
    .ok()?;
    let target = std::fs::canonicalize(target).ok()?;
    let common = dir
        .components()
        .zip(target.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut rel = PathBuf::new();
    for _ in dir.components().skip(common) {
        rel.push("..");
    }
    for c in target.components().skip(common) {
        rel.push(c);
    }
    Some(rel.display().to_string())
}

impl From<crate::stats::Estimate> for MeanCi {
    fn from(e: crate::stats::Estimate) -> Self {
        let r = crate::sweep::output::round;
        MeanCi {
            mean: r(e.mean),
            ci95_lo: r(e.lo),
            ci95_hi: r(e.hi),
        }
    }
}

impl Interval {
    /// From per-rollout values; `range` clamps the interval into the metric's range (rates
    /// in [0, 1], counts and times at least 0), where a t-interval could leave it.
    pub fn of(xs: &[f64], range: (f64, f64)) -> Interval {
        let r = crate::sweep::output::round;
        let e = crate::stats::mean_ci95(xs);
        let mut sorted = xs.to_vec();
        sorted.sort_by(f64::total_cmp);
        let q = |p| r(crate::stats::quantile(&sorted, p));
        Interval {
            mean: r(e.mean),
            ci95_lo: r(e.lo.clamp(range.0, range.1)),
            ci95_hi: r(e.hi.clamp(range.0, range.1)),
            p05: q(0.05),
            p50: q(0.5),
            p95: q(0.95),
        }
    }
}

impl From<crate::sweep::constraints::Tally> for Fraction {
    fn from(t: crate::sweep::constraints::Tally) -> Self {
        let r = crate::sweep::output::round;
        let (lo, hi) = crate::stats::cp95(t.k, t.n);
        Fraction {
            rollouts: t.n,
            within: t.k,
            fraction: r(t.fraction()),
            ci95_lo: r(lo),
            ci95_hi: r(hi),
        }
    }
}

/// The limits as the tuner and `compare` judge them.
impl From<&PlanConstraints> for crate::sweep::constraints::Constraints {
    fn from(c: &PlanConstraints) -> Self {
        crate::sweep::constraints::Constraints {
            min_success: c.min_success,
            max_cpu: c.max_cpu_pct,
            max_disconnect: c.max_disconnect,
            max_blast: c.max_blast,
            confidence: c.confidence,
        }
    }
}
