//! `--set KEY=VALUE` overrides by dotted path, and typed deserialisation with key paths.

use serde::de::DeserializeOwned;

use super::error::InputError;
use super::locate::line_col;

/// Parses `text`, applies the overrides, and returns the merged table with the set keys.
pub fn merge(text: &str, sets: &[String]) -> Result<(toml::Table, Vec<String>), InputError> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let mut err = InputError::new(e.message().to_string());
        if let Some(span) = e.span() {
            let (line, col) = line_col(text, span.start);
            err.line = Some(line);
            err.column = Some(col);
        }
        err
    })?;
    let mut keys = Vec::new();
    for set in sets {
        let (key, value) = parse_set(set)?;
        apply(&mut table, &key, value)?;
        keys.push(key);
    }
    Ok((table, keys))
}

/// Splits `KEY=VALUE` and parses VALUE as a TOML value; a bare word is taken as a string.
pub fn parse_set(set: &str) -> Result<(String, toml::Value), InputError> {
    let (key, value) = set.split_once('=').ok_or_else(|| {
        InputError::new(format!(
            "--set `{set}`: expected KEY=VALUE, e.g. fleet.gateways=500"
        ))
    })?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|s| s.trim().is_empty()) {
        return Err(InputError::new(format!(
            "--set `{set}`: the key `{key}` is not a dotted path like fleet.gateways"
        )));
    }
    Ok((
        key.to_string(),
        parse_value(value.trim()).map_err(|m| InputError::new(format!("--set `{set}`: {m}")))?,
    ))
}

pub fn parse_value(value: &str) -> Result<toml::Value, String> {
    let doc = format!("v = {value}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").ok_or_else(|| "no value".to_string()),
        Err(_)
            if !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c)) =>
        {
            Ok(toml::Value::String(value.to_string()))
        }
        Err(e) => Err(format!("VALUE is not a TOML value ({})", e.message())),
    }
}

/// The parts of a dotted key, read as TOML reads one: `uncertainty."service.heartbeat_ms"`
/// has two. A key TOML cannot read is split at every dot.
fn segments(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(mut t) = format!("{key} = 0").parse::<toml::Table>() {
        while t.len() == 1 {
            let Some((k, v)) = t.into_iter().next() else {
                break;
            };
            out.push(k);
            match v {
                toml::Value::Table(inner) => t = inner,
                _ => return out,
            }
        }
    }
    key.split('.').map(|s| s.trim().to_string()).collect()
}

/// Sets `value` at dotted `key`, creating intermediate tables. Whether the key is known
/// is decided by the schema (unknown keys fail deserialisation), not here.
pub fn apply(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), InputError> {
    let segs = segments(key);
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let mut cur = table;
    for (i, seg) in segs[..segs.len() - 1].iter().enumerate() {
        let entry = cur
            .entry(seg.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
        cur = match entry {
            toml::Value::Table(t) => t,
            other => {
                return Err(InputError::at_key(
                    &segs[..=i].join("."),
                    format!(
                        "--set {key}: `{}` is a {}, not a table",
                        segs[..=i].join("."),
                        other.type_str()
                    ),
                ))
            }
        };
    }
    cur.insert(segs[segs.len() - 1].to_string(), value);
    Ok(())
}

/// Deserialises `T` from a table; errors carry the dotted key path.
pub fn deserialize<T: DeserializeOwned>(table: &toml::Table) -> Result<T, InputError> {
    let value = toml::Value::Table(table.clone());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let msg = e.inner().to_string();
        InputError::at_key(&path, plain_types(msg.trim()))
    })
}

/// Says serde's Rust type names in the user's words.
fn plain_types(msg: &str) -> String {
    // serde_path_to_error already names the key; drop toml's trailing "in `table`" line.
    let msg = match msg.rsplit_once("\nin `") {
        Some((head, _)) => head,
        None => msg,
    };
    let mut m = msg.to_string();
    for (rust, plain) in [
        ("expected i64", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected a table"),
        ("struct RawPolicy", "a policy table"),
    ] {
        m = m.replace(rust, plain);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_part_of_a_key_is_one_part() {
        assert_eq!(segments("fleet.gateways"), ["fleet", "gateways"]);
        assert_eq!(
            segments(r#"uncertainty."service.heartbeat_ms""#),
            ["uncertainty", "service.heartbeat_ms"]
        );
        assert_eq!(
            segments("policies.seed-staged.gate.fraction"),
            ["policies", "seed-staged", "gate", "fraction"]
        );
        let mut t: toml::Table = "[uncertainty]\n\"service.heartbeat_ms\" = 1\n"
            .parse()
            .unwrap();
        apply(
            &mut t,
            r#"uncertainty."service.heartbeat_ms""#,
            toml::Value::Integer(2),
        )
        .unwrap();
        assert_eq!(
            t["uncertainty"]["service.heartbeat_ms"].as_integer(),
            Some(2)
        );
        assert_eq!(t["uncertainty"].as_table().unwrap().len(), 1);
    }
}
