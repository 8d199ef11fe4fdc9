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
        Ok(Inventory {
            devices,
            regions,
            hw_classes,
        })
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
