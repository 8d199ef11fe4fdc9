//! Sweep files: runs.csv, summary.csv, pareto.csv and manifest.json. Writers are pure
//! (bytes out) and number formatting is fixed, so outputs are byte-stable.

use serde::{Deserialize, Serialize};

use super::aggregate::{ConfigSummary, SUMMARY_METRICS};
use super::config::{param_columns, show_value, Config};
use super::run::{key, Record, Spec, RUN_METRICS};
use crate::scenario::InputError;

/// Shortest round-trip formatting: parsing it back gives the same f64, so merges re-emit
/// identical bytes.
pub fn num(x: f64) -> String {
    if x.is_nan() {
        return String::new();
    }
    if x == x.trunc() && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    format!("{x}")
}

fn csv_bytes(header: Vec<String>, rows: Vec<Vec<String>>) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header).map_err(|e| e.to_string())?;
    for r in rows {
        w.write_record(&r).map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

fn param_cells(c: &Config, cols: &[String]) -> Vec<String> {
    cols.iter()
        .map(|k| c.params.get(k).map(show_value).unwrap_or_default())
        .collect()
}

/// Writes runs.csv one row at a time.
pub struct RunsWriter<'a> {
    w: csv::Writer<Box<dyn std::io::Write + 'a>>,
    configs: &'a [Config],
    cols: Vec<String>,
}

impl<'a> RunsWriter<'a> {
    pub fn new(
        out: Box<dyn std::io::Write + 'a>,
        configs: &'a [Config],
    ) -> Result<RunsWriter<'a>, String> {
        let cols = param_columns(configs);
        let mut header: Vec<String> = vec![
            "index".into(),
            "config".into(),
            "policy".into(),
            "family".into(),
        ];
        header.extend(cols.iter().cloned());
        header.extend(["replication", "seed", "release"].map(String::from));
        header.extend(RUN_METRICS.iter().map(|m| m.to_string()));
        let mut w = csv::Writer::from_writer(out);
        w.write_record(&header).map_err(|e| e.to_string())?;
        Ok(RunsWriter { w, configs, cols })
    }

    pub fn write(&mut self, r: &Record) -> Result<(), String> {
        let c = &self.configs[r.key.config];
        let mut row = vec![
            r.key.index.to_string(),
            c.id.to_string(),
            c.name.clone(),
            c.policy.family.name().to_string(),
        ];
        row.extend(param_cells(c, &self.cols));
        row.push(r.key.rep.to_string());
        row.push(r.seed.to_string());
        row.push(if r.key.bad_release { "bad" } else { "good" }.to_string());
        row.extend(r.values.iter().map(|v| num(*v)));
        self.w.write_record(&row).map_err(|e| e.to_string())
    }

    pub fn finish(mut self) -> Result<(), String> {
        self.w.flush().map_err(|e| e.to_string())
    }
}

/// Streams runs.csv back in file order, one record at a time (for merge and tune).
pub struct RunsReader {
    name: String,
    rows: csv::StringRecordsIntoIter<std::fs::File>,
    index: usize,
    seed: usize,
    metrics: Vec<usize>,
    reps: u32,
    line: usize,
}

impl RunsReader {
    pub fn open(path: &std::path::Path, reps: u32) -> Result<RunsReader, InputError> {
        let name = path.display().to_string();
        let mut r = csv::Reader::from_path(path)
            .map_err(|e| InputError::new(format!("cannot read runs: {e}")).in_file(&name))?;
        let header = r
            .headers()
            .map_err(|e| InputError::new(e.to_string()).in_file(&name))?
            .clone();
        let col = |h: &str| {
            header
                .iter()
                .position(|x| x == h)
                .ok_or_else(|| InputError::new(format!("missing column `{h}`")).in_file(&name))
        };
        let (index, seed) = (col("index")?, col("seed")?);
        let metrics: Vec<usize> = RUN_METRICS
            .iter()
            .map(|m| col(m))
            .collect::<Result<_, _>>()?;
        Ok(RunsReader {
            name,
            rows: r.into_records(),
            index,
            seed,
            metrics,
            reps,
            line: 1,
        })
    }
}

impl Iterator for RunsReader {
    type Item = Result<Record, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rec = self.rows.next()?;
        self.line += 1;
        let bad = |what: &str| {
            let mut e =
                InputError::new(format!("row {}: bad {what}", self.line - 1)).in_file(&self.name);
            e.line = Some(self.line);
            e
        };
        let parse = || -> Result<Record, InputError> {
            let rec = rec.map_err(|_| bad("CSV record"))?;
            let index: u64 = rec
                .get(self.index)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad("index"))?;
            let seed: u64 = rec
                .get(self.seed)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad("seed"))?;
            let values = self
                .metrics
                .iter()
                .map(|&i| {
                    rec.get(i).and_then(|v| {
                        if v.is_empty() {
                            Some(f64::NAN)
                        } else {
                            v.parse().ok()
                        }
                    })
                })
                .collect::<Option<Vec<f64>>>()
                .ok_or_else(|| bad("number"))?;
            Ok(Record {
                key: key(index, self.reps),
                seed,
                values,
            })
        };
        Some(parse())
    }
}

/// Reads all of runs.csv (for small sweeps and tests).
pub fn read_runs(path: &std::path::Path, reps: u32) -> Result<Vec<Record>, InputError> {
    RunsReader::open(path, reps)?.collect()
}

pub fn summary_csv(configs: &[Config], summaries: &[ConfigSummary]) -> Result<Vec<u8>, String> {
    let cols = param_columns(configs);
    let mut header: Vec<String> = vec!["policy".into()];
    header.extend(cols.iter().cloned());
    header.extend(["n", "config", "family", "label"].map(String::from));
    for (m, _) in SUMMARY_METRICS {
        header.extend([
            format!("{m}_mean"),
            format!("{m}_ci95_lo"),
            format!("{m}_ci95_hi"),
        ]);
    }
    // Per-rollout verdicts against the tuner's default limits (the weaker release).
    header.extend(
        [
            "within_limits",
            "bad_within_blast",
            "within_limits_lower",
            "within_limits_upper",
        ]
        .map(String::from),
    );
    let rows = summaries
        .iter()
        .map(|s| {
            let c = &configs[s.config];
            let mut row = vec![c.name.clone()];
            row.extend(param_cells(c, &cols));
            row.extend([
                s.n.to_string(),
                c.id.to_string(),
                c.policy.family.name().to_string(),
                c.label(),
            ]);
            for e in &s.metrics {
                row.extend([num(round(e.mean)), num(round(e.lo)), num(round(e.hi))]);
            }
            let p = &s.passes;
            row.extend([
                p.good.k.to_string(),
                p.bad.k.to_string(),
                num(round(p.lower())),
                num(round(p.good.upper().min(p.bad.upper()))),
            ]);
            row
        })
        .collect();
    csv_bytes(header, rows)
}

pub fn pareto_csv(
    configs: &[Config],
    summaries: &[ConfigSummary],
    front: &[usize],
) -> Result<Vec<u8>, String> {
    let header = [
        "config",
        "policy",
        "label",
        "makespan_s_mean",
        "success_rate_mean",
        "peak_mgmt_cpu_pct_mean",
        "blast_radius_mean",
    ]
    .map(String::from)
    .to_vec();
    let rows = front
        .iter()
        .map(|&i| {
            let (c, s) = (&configs[i], &summaries[i]);
            vec![
                c.id.to_string(),
                c.name.clone(),
                c.label(),
                num(round(s.get("makespan_s").mean)),
                num(round(s.get("success_rate").mean)),
                num(round(s.get("peak_mgmt_cpu_pct").mean)),
                num(round(s.get("blast_radius").mean)),
            ]
        })
        .collect();
    csv_bytes(header, rows)
}

/// Rounds to 9 significant decimals so that sums in a different order cannot leak into bytes.
pub fn round(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    (x * 1e9).round() / 1e9
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestConfig {
    pub id: usize,
    pub policy: String,
    pub family: String,
    pub label: String,
}

/// What a sweep ran, so that merge and tune can check and reproduce it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub stagger_version: String,
    pub scenario_path: String,
    pub scenario_name: String,
    pub scenario_fingerprint: String,
    pub sets: Vec<String>,
    pub replications: u32,
    pub defect_rate: f64,
    pub base_seed: u64,
    pub seeds: Vec<u64>,
    pub runs_total: u64,
    pub shard: Option<(u64, u64)>,
    pub configs: Vec<ManifestConfig>,
    /// The scenario file's text (before `sets`), so the sweep can be tuned from anywhere.
    #[serde(default)]
    pub scenario_toml: Option<String>,
}

impl Manifest {
    pub fn new(
        path: &str,
        text: &str,
        s: &crate::scenario::Scenario,
        sets: &[String],
        configs: &[Config],
        spec: &Spec,
    ) -> Manifest {
        Manifest {
            stagger_version: env!("CARGO_PKG_VERSION").into(),
            scenario_path: path.into(),
            scenario_name: s.name.clone(),
            scenario_fingerprint: s.fingerprint.clone(),
            sets: sets.to_vec(),
            replications: spec.replications,
            defect_rate: spec.defect_rate,
            base_seed: spec.base_seed,
            seeds: (0..spec.replications)
                .map(|r| super::run::seed_for(spec.base_seed, r))
                .collect(),
            runs_total: super::run::total_runs(configs.len(), spec.replications),
            shard: None,
            configs: configs
                .iter()
                .map(|c| ManifestConfig {
                    id: c.id,
                    policy: c.name.clone(),
                    family: c.policy.family.name().into(),
                    label: c.label(),
                })
                .collect(),
            scenario_toml: Some(text.into()),
        }
    }

    pub fn spec(&self) -> Spec {
        Spec {
            replications: self.replications,
            defect_rate: self.defect_rate,
            base_seed: self.base_seed,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    pub fn read(dir: &std::path::Path) -> Result<Manifest, InputError> {
        let path = dir.join("manifest.json");
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| InputError::new(format!("not a sweep directory ({e})")).in_file(&name))?;
        serde_json::from_str(&text).map_err(|e| {
            let mut err = InputError::new(format!("invalid manifest: {e}")).in_file(&name);
            err.line = Some(e.line());
            err
        })
    }
}
