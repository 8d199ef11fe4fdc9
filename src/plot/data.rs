//! What the charts read: a sweep directory's CSVs (or one timeline CSV), loaded once.
//! Reading only: plotting never simulates.

use std::collections::BTreeMap;
use std::path::Path;

use crate::scenario::InputError;

/// A CSV file as header + string cells, with typed access by column name.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn read(path: &Path) -> Result<Table, InputError> {
        let name = path.display().to_string();
        let mut r = csv::Reader::from_path(path)
            .map_err(|e| InputError::new(format!("cannot read: {e}")).in_file(&name))?;
        let header = r
            .headers()
            .map_err(|e| InputError::new(e.to_string()).in_file(&name))?
            .iter()
            .map(String::from)
            .collect();
        let mut rows = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec = rec.map_err(|e| {
                let mut err = InputError::new(format!("bad CSV row: {e}")).in_file(&name);
                err.line = Some(i + 2);
                err
            })?;
            rows.push(rec.iter().map(String::from).collect());
        }
        Ok(Table { header, rows })
    }

    pub fn col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    pub fn get<'a>(&self, row: &'a [String], name: &str) -> Option<&'a str> {
        self.col(name)
            .and_then(|i| row.get(i))
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn num(&self, row: &[String], name: &str) -> Option<f64> {
        self.get(row, name).and_then(|v| v.parse().ok())
    }

    /// A numeric column as a vector (missing cells as NaN).
    pub fn column(&self, name: &str) -> Vec<f64> {
        self.rows
            .iter()
            .map(|r| self.num(r, name).unwrap_or(f64::NAN))
            .collect()
    }
}

/// A CPU band of one configuration: time (s) → p5, p50, p95.
#[derive(Debug, Clone, Default)]
pub struct Band {
    pub t_s: Vec<f64>,
    pub p5: Vec<f64>,
    pub p50: Vec<f64>,
    pub p95: Vec<f64>,
}

/// The plan tune wrote, as far as the charts need it.
#[derive(Debug, Clone)]
pub struct PlanInfo {
    pub name: String,
    /// The constraints it was tuned under (drawn as limits on the charts).
    pub constraints: crate::sweep::constraints::Constraints,
    pub success: f64,
    pub makespan_s: f64,
    pub cpu: f64,
}

pub struct SweepData {
    pub dir: std::path::PathBuf,
    pub manifest: crate::sweep::output::Manifest,
    pub summary: Table,
    pub runs: Table,
    /// role → band (bulk, seed-staged, best-<family>, plan).
    pub bands: BTreeMap<String, Band>,
    /// role → timeline table.
    pub timelines: BTreeMap<String, Table>,
    /// role → config label.
    pub roles: BTreeMap<String, String>,
    pub plan: Option<PlanInfo>,
    /// The plan file drawn with the sweep, if any.
    pub plan_path: Option<std::path::PathBuf>,
}

fn bands_from(t: &Table, out: &mut BTreeMap<String, Band>) {
    for r in &t.rows {
        let role = t.get(r, "role").unwrap_or("?").to_string();
        let b = out.entry(role).or_default();
        b.t_s.push(t.num(r, "t_s").unwrap_or(f64::NAN));
        b.p5.push(t.num(r, "cpu_p5").unwrap_or(f64::NAN));
        b.p50.push(t.num(r, "cpu_p50").unwrap_or(f64::NAN));
        b.p95.push(t.num(r, "cpu_p95").unwrap_or(f64::NAN));
    }
}

impl SweepData {
    /// Reads a sweep directory and, if given (else `DIR/plan.toml` when present), a plan
    /// tuned on the same scenario: a plan from another scenario is refused.
    pub fn load(dir: &Path, plan: Option<&Path>) -> Result<SweepData, InputError> {
        let manifest = crate::sweep::output::Manifest::read(dir)?;
        let summary = Table::read(&dir.join("summary.csv"))?;
        let runs = Table::read(&dir.join("runs.csv"))?;
        let mut bands = BTreeMap::new();
        bands_from(&Table::read(&dir.join("cpu_bands.csv"))?, &mut bands);
        let plan_band = dir.join("plan_cpu_band.csv");
        if plan_band.exists() {
            bands_from(&Table::read(&plan_band)?, &mut bands);
        }
        let reps = Table::read(&dir.join("representatives.csv"))?;
        let mut timelines = BTreeMap::new();
        let mut roles = BTreeMap::new();
        for r in &reps.rows {
            let (Some(role), Some(file)) = (reps.get(r, "role"), reps.get(r, "timeline")) else {
                continue;
            };
            roles.insert(
                role.to_string(),
                reps.get(r, "label").unwrap_or(role).to_string(),
            );
            let p = dir.join(file);
            if p.exists() {
                timelines.insert(role.to_string(), Table::read(&p)?);
            }
        }
        let plan_tl = dir.join("timelines/plan.csv");
        if plan_tl.exists() {
            timelines.insert("plan".into(), Table::read(&plan_tl)?);
        }
        let plan_path = match plan {
            Some(p) => Some(p.to_path_buf()),
            None => Some(dir.join("plan.toml")).filter(|p| p.exists()),
        };
        let plan = if let Some(path) = &plan_path {
            let name = path.display().to_string();
            let (p, _) = crate::tune::plan::PlanFile::load(&name)?;
            if p.scenario.fingerprint != manifest.scenario_fingerprint {
                return Err(InputError::new(format!(
                    "this plan was tuned on scenario {} ({}), but the sweep in {} ran {} ({}): plot a plan with the sweep it was tuned from",
                    p.scenario.name,
                    p.scenario.fingerprint,
                    dir.display(),
                    manifest.scenario_name,
                    manifest.scenario_fingerprint
                ))
                .in_file(&name));
            }
            roles.insert("plan".into(), p.name.clone());
            Some(PlanInfo {
                constraints: (&p.constraints).into(),
                name: p.name,
                success: p.predicted.success_rate.mean,
                makespan_s: p.predicted.makespan_s.mean,
                cpu: p.predicted.peak_mgmt_cpu_pct.mean,
            })
        } else {
            None
        };
        Ok(SweepData {
            dir: dir.to_path_buf(),
            manifest,
            summary,
            runs,
            bands,
            timelines,
            roles,
            plan,
            plan_path,
        })
    }
}
