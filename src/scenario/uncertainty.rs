//! `[uncertainty]`: values of the scenario that are guesses, each with a distribution. Every
//! replication draws them once from its own seed, so all policies run on that seed see the same
//! draw (common random numbers), and predictions carry the model's uncertainty with them.

use std::borrow::Cow;

use super::dist::{self, Bounds, Dist};
use super::{overrides, raw, validate, InputError, Scenario};
use crate::sim::rng::{self, Purpose};

/// Sections whose numbers describe the fleet and its service (not policies or sweeps).
pub const SECTIONS: [&str; 7] = [
    "fleet", "firmware", "network", "install", "service", "agent", "failures",
];

#[derive(Debug, Clone)]
pub struct Uncertain {
    pub key: String,
    pub dist: Dist,
    /// The document holds an integer there: draws are rounded.
    pub integer: bool,
}

fn lookup<'a>(doc: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let mut parts = key.split('.');
    let mut v = doc.get(parts.next()?)?;
    for p in parts {
        v = v.as_table()?.get(p)?;
    }
    Some(v)
}

/// Validates the table: each key names a number of the scenario's fleet or service sections.
pub fn parse(
    table: Option<&std::collections::BTreeMap<String, toml::Value>>,
    document: &toml::Table,
) -> Result<Vec<Uncertain>, InputError> {
    let Some(table) = table else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (key, value) in table {
        let at = format!("uncertainty.{key}");
        let section = key.split('.').next().unwrap_or_default();
        if !SECTIONS.contains(&section) {
            return Err(InputError::at_key(
                &at,
                format!(
                    "`{key}` is not a value of the fleet or its service; uncertain keys live under {}",
                    SECTIONS.join(", ")
                ),
            ));
        }
        let integer = match lookup(document, key) {
            Some(toml::Value::Integer(_)) => true,
            Some(toml::Value::Float(_)) => false,
            Some(_) => {
                return Err(InputError::at_key(
                    &at,
                    format!("`{key}` must hold a single number in the scenario to be uncertain"),
                ))
            }
            None => {
                return Err(InputError::at_key(
                    &at,
                    format!("`{key}` is not set in the scenario; set it to its best guess first"),
                ))
            }
        };
        let dist = dist::parse(
            value,
            &at,
            Bounds {
                lo: f64::NEG_INFINITY,
                hi: f64::INFINITY,
            },
        )?;
        out.push(Uncertain {
            key: key.clone(),
            dist,
            integer,
        });
    }
    Ok(out)
}

/// The scenario with `values` in place of its own: re-validated, same fingerprint, and
/// nothing left uncertain (a run on it must not draw again).
pub fn with_values(s: &Scenario, values: &[(String, f64)]) -> Result<Scenario, InputError> {
    let mut doc = s.document.clone();
    doc.remove("uncertainty");
    for (key, v) in values {
        let integer = matches!(lookup(&doc, key), Some(toml::Value::Integer(_)));
        let value = if integer {
            toml::Value::Integer(v.round() as i64)
        } else {
            toml::Value::Float(*v)
        };
        overrides::apply(&mut doc, key, value)?;
    }
    let raw: raw::RawScenario = overrides::deserialize(&doc)?;
    let mut out = validate::scenario(raw, doc)?;
    out.fingerprint = s.fingerprint.clone();
    out.drawn = values.to_vec();
    Ok(out)
}

/// Every uncertain value at either end of its range must give a valid scenario, so that no
/// draw can fail during a run.
pub fn check_extremes(s: &Scenario) -> Result<(), InputError> {
    for u in &s.uncertainty {
        for v in [u.dist.min_value(), u.dist.max_value()] {
            if !v.is_finite() {
                return Err(InputError::at_key(
                    &format!("uncertainty.{}", u.key),
                    "needs a bounded distribution (give min and max)",
                ));
            }
            with_values(s, &[(u.key.clone(), v)]).map_err(|e| {
                InputError::at_key(
                    &format!("uncertainty.{}", u.key),
                    format!("at {v}, the scenario is invalid: {}", e.message),
                )
            })?;
        }
    }
    Ok(())
}

/// The values replication `seed` draws, in key order.
pub fn draw(s: &Scenario, seed: u64) -> Vec<(String, f64)> {
    s.uncertainty
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let mut r = rng::stream(seed, Purpose::Uncertainty, i as u64);
            let v = u.dist.sample(&mut r);
            (u.key.clone(), if u.integer { v.round() } else { v })
        })
        .collect()
}

/// The scenario as replication `seed` sees it: itself when nothing is uncertain.
pub fn for_seed(s: &Scenario, seed: u64) -> Cow<'_, Scenario> {
    if s.uncertainty.is_empty() {
        return Cow::Borrowed(s);
    }
    // Each value alone was checked at its extremes; a combination that still fails (two
    // uncertain values bound to each other) runs on the scenario's own values.
    match with_values(s, &draw(s, seed)) {
        Ok(drawn) => Cow::Owned(drawn),
        Err(_) => Cow::Borrowed(s),
    }
}
