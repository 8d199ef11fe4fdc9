//! The configurations a sweep runs: every point of every grid, plus the reference policies.

use crate::engine::Policy;
use crate::scenario::grid::{self, Point};
use crate::scenario::raw::RawPolicy;
use crate::scenario::{validate, InputError, Scenario};

#[derive(Debug, Clone)]
pub struct Config {
    pub id: usize,
    /// Grid name (or reference policy name).
    pub name: String,
    pub params: Point,
    pub raw: RawPolicy,
    pub policy: Policy,
}

impl Config {
    /// A short stable label, e.g. `pipelined batch_size=20 gate.fraction=0.8`.
    pub fn label(&self) -> String {
        let mut s = self.name.clone();
        for (k, v) in &self.params {
            s += &format!(" {k}={}", show_value(v));
        }
        s
    }
}

pub fn show_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The swept parameter names across all grids, sorted: the CSV's parameter columns.
pub fn param_columns(configs: &[Config]) -> Vec<String> {
    let mut cols: Vec<String> = configs
        .iter()
        .flat_map(|c| c.params.keys().cloned())
        .collect();
    cols.sort();
    cols.dedup();
    cols
}

/// Reference policies that every sweep includes when the scenario has them.
pub const REFERENCES: [&str; 2] = ["bulk", "seed-staged"];

/// Expands the scenario's `[sweep]` grids into configurations, references first.
pub fn configs(s: &Scenario) -> Result<Vec<Config>, InputError> {
    let sweep = s.sweep.clone().unwrap_or_default();
    let mut out = Vec::new();
    for name in REFERENCES {
        if let (Some(raw), Some(policy)) = (s.raw_policies.get(name), s.policies.get(name)) {
            out.push(Config {
                id: out.len(),
                name: name.into(),
                params: Point::new(),
                raw: raw.clone(),
                policy: policy.clone(),
            });
        }
    }
    let grids = if sweep.grids.is_empty() {
        // No grid: sweep every policy of the scenario as it is.
        s.raw_policies
            .keys()
            .filter(|k| !REFERENCES.contains(&k.as_str()))
            .map(|k| {
                (
                    k.clone(),
                    crate::scenario::raw::RawGrid {
                        base: k.clone(),
                        ..Default::default()
                    },
                )
            })
            .collect()
    } else {
        sweep.grids.clone()
    };
    for (name, g) in &grids {
        let base = grid::grid_base(&s.document, g)
            .map_err(|m| InputError::at_key(&format!("sweep.grids.{name}.with"), m))?;

        for point in grid::expand(&g.params) {
            let mut table = base.clone();
            for (k, v) in &point {
                crate::scenario::overrides::apply(&mut table, k, v.clone())?;
            }
            let at = format!("sweep.grids.{name}");
            let raw: RawPolicy = crate::scenario::overrides::deserialize(&table).map_err(|e| {
                InputError::at_key(&at, format!("{}: {}", e.key.unwrap_or_default(), e.message))
            })?;
            let policy = validate::policy(&raw, &at, s.fleet.gateways)?;
            out.push(Config {
                id: out.len(),
                name: name.clone(),
                params: point,
                raw,
                policy,
            });
        }
    }
    Ok(out)
}
