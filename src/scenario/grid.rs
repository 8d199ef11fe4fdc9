//! Sweep grids: a base policy plus lists of values for some of its parameters, expanded
//! into the cartesian product in a fixed order.

use std::collections::BTreeMap;

use crate::scenario::raw::RawPolicy;

/// The base table of a grid: its policy with the grid's fixed `with` overrides applied.
pub fn grid_base(
    document: &toml::Table,
    grid: &crate::scenario::raw::RawGrid,
) -> Result<toml::Table, String> {
    let mut table = policy_table(document, &grid.base);
    for (k, v) in &grid.with {
        crate::scenario::overrides::apply(&mut table, k, v.clone()).map_err(|e| e.message)?;
    }
    Ok(table)
}

/// The `[policies.NAME]` table of the merged document (empty if absent), with the scenario's
/// `[maintenance]` windows when the policy has none of its own.
pub fn policy_table(document: &toml::Table, name: &str) -> toml::Table {
    let mut table = document
        .get("policies")
        .and_then(|p| p.get(name))
        .and_then(|p| p.as_table())
        .cloned()
        .unwrap_or_default();
    if let Some(m) = document.get("maintenance").and_then(|m| m.as_table()) {
        if !table.contains_key("maintenance") {
            let mut m = m.clone();
            // The simulated start time is the scenario's, not the policy's.
            m.remove("start_utc");
            table.insert("maintenance".into(), toml::Value::Table(m));
        }
    }
    table
}

/// Sets dotted `param` (e.g. `gate.fraction`) in a copy of `base` and re-reads it as a policy.
pub fn set_param(
    base: &toml::Table,
    param: &str,
    value: &toml::Value,
) -> Result<RawPolicy, String> {
    let mut table = base.clone();
    crate::scenario::overrides::apply(&mut table, param, value.clone()).map_err(|e| e.message)?;
    crate::scenario::overrides::deserialize::<RawPolicy>(&table).map_err(|e| match e.key {
        Some(k) => format!("`{k}`: {}", e.message),
        None => e.message,
    })
}

/// One point of a grid: the parameter values in the grid's key order.
pub type Point = BTreeMap<String, toml::Value>;

/// The cartesian product of `params`, first key varying slowest.
pub fn expand(params: &BTreeMap<String, Vec<toml::Value>>) -> Vec<Point> {
    let mut points = vec![Point::new()];
    for (key, values) in params {
        let mut next = Vec::with_capacity(points.len() * values.len());
        for p in &points {
            for v in values {
                let mut q = p.clone();
                q.insert(key.clone(), v.clone());
                next.push(q);
            }
        }
        points = next;
    }
    points
}
