//! The fleet inventory for live rollouts: a CSV with `device_id` (required), `type_id`
//! (required for watson-iot), and optional `region` and `hw` used to pick canaries.

use std::collections::BTreeMap;

use crate::engine::GatewayInfo;
use crate::scenario::InputError;

#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: String,
    pub type_id: Option<String>,
    pub region: String,
    pub hw: String,
}

#[derive(Debug, Clone)]
pub struct Inventory {
    pub devices: Vec<Device>,
    pub regions: Vec<String>,
    pub hw_classes: Vec<String>,
}

impl Inventory {
    pub fn load(path: &str, need_type_id: bool) -> Result<Inventory, InputError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::new(format!("cannot read inventory: {e}")).in_file(path))?;
        Inventory::parse(&text, need_type_id).map_err(|e| e.in_file(path))
    }

    pub fn parse(text: &str, need_type_id: bool) -> Result<Inventory, InputError> {
        let at_line = |line: usize, msg: String| {
            let mut e = InputError::new(msg);
            e.line = Some(line);
            e
        };
        let mut r = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let header: Vec<String> = r
            .headers()
            .map_err(|e| at_line(1, format!("bad header: {e}")))?
            .iter()
            .map(String::from)
            .collect();
        let col = |name: &str| header.iter().position(|h| h == name);
        let id_col = col("device_id").ok_or_else(|| {
            at_line(
                1,
                format!(
                    "missing required column `device_id` (the header has: {})",
                    header.join(", ")
                ),
            )
        })?;
        let type_col = col("type_id");
        if need_type_id && type_col.is_none() {
            return Err(at_line(
                1,
                "missing column `type_id`, which the watson-iot backend needs".into(),
            ));
        }
        let (region_col, hw_col) = (col("region"), col("hw"));
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut devices = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let line = i + 2;
            let rec = rec.map_err(|e| at_line(line, format!("bad CSV row: {e}")))?;
            let get = |c: Option<usize>| {
                c.and_then(|c| rec.get(c))
                    .map(str::to_string)
                    .filter(|s| !s.is_empty())
            };
            let id = get(Some(id_col)).ok_or_else(|| at_line(line, "empty device_id".into()))?;
            if let Some(first) = seen.insert(id.clone(), line) {
                return Err(at_line(
                    line,
                    format!("duplicate device_id `{id}` (first on line {first})"),
                ));
            }
            let type_id = get(type_col);
            if need_type_id && type_id.is_none() {
                return Err(at_line(line, format!("device `{id}` has no type_id")));
            }
            devices.push(Device {
                id,
                type_id,
                region: get(region_col).unwrap_or_else(|| "default".into()),
                hw: get(hw_col).unwrap_or_else(|| "default".into()),
            });
        }
        if devices.is_empty() {
            return Err(at_line(2, "the inventory lists no devices".into()));
        }
        Ok(Inventory::of(devices))
    }

    fn of(devices: Vec<Device>) -> Inventory {
        let mut regions: Vec<String> = Vec::new();
        let mut hw_classes: Vec<String> = Vec::new();
        for d in &devices {
            if !regions.contains(&d.region) {
                regions.push(d.region.clone());
            }
            if !hw_classes.contains(&d.hw) {
                hw_classes.push(d.hw.clone());
            }
        }
        Inventory {
            devices,
            regions,
            hw_classes,
        }
    }

    /// Narrows the target set: `only` holds `KEY=VALUE` filters (region, hw, type; a device
    /// must match every one), `exclude` device ids to leave out. An empty result, an unknown
    /// key, or a value no device has is bad input.
    pub fn narrowed(self, only: &[String], exclude: &[String]) -> Result<Inventory, InputError> {
        let mut filters = Vec::new();
        for f in only {
            let (k, v) = f.split_once('=').ok_or_else(|| {
                InputError::new(format!(
                    "--only `{f}`: expected KEY=VALUE (region, hw or type)"
                ))
            })?;
            if !matches!(k, "region" | "hw" | "type") {
                return Err(InputError::new(format!(
                    "--only `{f}`: unknown key `{k}` (region, hw or type)"
                )));
            }
            if !self.devices.iter().any(|d| attribute(d, k) == Some(v)) {
                return Err(InputError::new(format!(
                    "--only `{f}`: no device in the inventory has {k} `{v}`"
                )));
            }
            filters.push((k.to_string(), v.to_string()));
        }
        let matches = |d: &Device| {
            filters
                .iter()
                .all(|(k, v)| attribute(d, k) == Some(v.as_str()))
        };
        let devices: Vec<Device> = self
            .devices
            .into_iter()
            .filter(|d| matches(d) && !exclude.contains(&d.id))
            .collect();
        if devices.is_empty() {
            return Err(InputError::new(
                "--only and --exclude leave no device to update",
            ));
        }
        Ok(Inventory::of(devices))
    }

    /// What the engine needs to choose canaries and spread batches.
    pub fn infos(&self) -> Vec<GatewayInfo> {
        let idx = |v: &[String], s: &str| v.iter().position(|x| x == s).unwrap_or(0) as u16;
        self.devices
            .iter()
            .map(|d| GatewayInfo {
                region: idx(&self.regions, &d.region),
                hw: idx(&self.hw_classes, &d.hw),
            })
            .collect()
    }
}

/// A device's value for an `--only` key.
fn attribute<'a>(d: &'a Device, key: &str) -> Option<&'a str> {
    match key {
        "region" => Some(&d.region),
        "hw" => Some(&d.hw),
        "type" => d.type_id.as_deref(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let inv =
            Inventory::parse("device_id,type_id,region\na,gw,north\nb,gw,south\n", true).unwrap();
        assert_eq!(inv.devices.len(), 2);
        assert_eq!(inv.regions, vec!["north", "south"]);
        let e = Inventory::parse("id,type_id\na,gw\n", false).unwrap_err();
        assert!(e.message.contains("device_id") && e.line == Some(1));
        let e = Inventory::parse("device_id,type_id\na,gw\na,gw\n", false).unwrap_err();
        assert!(e.message.contains("duplicate") && e.line == Some(3), "{e}");
        let e = Inventory::parse("device_id\na\n", true).unwrap_err();
        assert!(e.message.contains("type_id"));
    }
}
