//! The fitted scenario: the base file with fitted values in place (comments and layout kept),
//! and an `[uncertainty]` entry per fitted value drawn from its posterior.

use toml_edit::{DocumentMut, InlineTable, Item, Table, Value};

use super::{Fit, Written};
use crate::scenario::InputError;

/// Six significant digits: enough for any fitted value, and readable.
fn round(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    format!("{x:.5e}").parse().unwrap_or(x)
}

fn value(w: &Written) -> Value {
    match w {
        Written::Number(x) => Value::from(round(*x)),
        Written::Dist { dist, params } => {
            let mut t = InlineTable::new();
            t.insert("dist", Value::from(*dist));
            for (k, v) in params {
                t.insert(*k, Value::from(round(*v)));
            }
            Value::InlineTable(t)
        }
    }
}

/// `base_text` with `fit` applied, and a comment naming where the values came from.
pub fn fitted_text(
    base_text: &str,
    base_name: &str,
    fit: &Fit,
    sources: &[String],
) -> Result<String, InputError> {
    let mut doc: DocumentMut = base_text.parse().map_err(|e| {
        InputError::new(format!("cannot edit the base scenario: {e}")).in_file(base_name)
    })?;
    for (key, w) in &fit.settings {
        let (section, name) = key
            .split_once('.')
            .ok_or_else(|| InputError::new(format!("fitted key `{key}` has no section")))?;
        let table = doc
            .entry(section)
            .or_insert_with(|| Item::Table(Table::new()))
            .as_table_like_mut()
            .ok_or_else(|| InputError::at_key(section, "is not a table").in_file(base_name))?;
        table.insert(name, Item::Value(value(w)));
    }
    let fitted: Vec<&str> = fit.settings.iter().map(|(k, _)| k.as_str()).collect();
    let unc = doc
        .entry("uncertainty")
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_like_mut()
        .ok_or_else(|| InputError::at_key("uncertainty", "is not a table").in_file(base_name))?;
    // The base's guesses about what is now fitted give way to the posteriors.
    let stale: Vec<String> = unc
        .iter()
        .map(|(k, _)| k.to_string())
        .filter(|k| {
            fitted
                .iter()
                .any(|f| k == f || k.starts_with(&format!("{f}.")))
        })
        .collect();
    for k in stale {
        unc.remove(&k);
    }
    for (key, w) in &fit.uncertainty {
        unc.insert(key, Item::Value(value(w)));
    }
    let mut out = format!(
        "# Fitted by `stagger fit` from {} rollout(s) ({}) on the base {base_name}.\n# Fitted: {}. Their posteriors are in [uncertainty]; every other value is the base's.\n",
        fit.rollouts,
        sources.join(", "),
        fit.settings.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
    );
    out.push_str(&doc.to_string());
    Ok(out)
}
