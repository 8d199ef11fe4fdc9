//! Parameter sweeps: grids × replications (common random numbers), a bad-release pass for
//! blast radius, sharding and merging, and the files the tuner and the charts read.

pub mod aggregate;
pub mod config;
pub mod constraints;
pub mod output;
pub mod representatives;
pub mod run;

use std::path::Path;

use crate::error::Failure;
use crate::files::write_file;
use crate::scenario::{self, InputError, Scenario};
use config::Config;
use output::Manifest;
use run::{Record, Shard, Spec};

/// A sweep ready to run: the scenario with a good and a bad release, and its configurations.
pub struct Prepared {
    pub path: String,
    /// The scenario file's text as read (before --set), embedded in manifests and plans.
    pub text: String,
    pub sets: Vec<String>,
    pub good: Scenario,
    pub bad: Scenario,
    pub configs: Vec<Config>,
    pub spec: Spec,
}

pub fn prepare(
    path: &str,
    sets: &[String],
    replications: Option<u32>,
    seed: Option<u64>,
) -> Result<Prepared, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(format!("cannot read scenario: {e}")).in_file(path))?;
    prepare_text(path, text, sets, replications, seed)
}

/// `prepare` on a scenario's text; `path` names it in errors and in the manifest.
pub fn prepare_text(
    path: &str,
    text: String,
    sets: &[String],
    replications: Option<u32>,
    seed: Option<u64>,
) -> Result<Prepared, InputError> {
    let good = scenario::from_text(&text, path, sets)?;
    let sweep = good.sweep.clone().unwrap_or_default();
    let spec = Spec {
        replications: replications.unwrap_or(sweep.replications.unwrap_or(10) as u32),
        defect_rate: sweep.defect_rate.unwrap_or(0.5),
        base_seed: seed.unwrap_or(sweep.seed.unwrap_or(1_000) as u64),
    };
    let bad = good
        .with_value("firmware.defect_rate", toml::Value::Float(spec.defect_rate))
        .map_err(|e| e.in_file(path))?;
    let configs = config::configs(&good).map_err(|e| e.in_file(path))?;
    Ok(Prepared {
        path: path.into(),
        text,
        sets: sets.to_vec(),
        good,
        bad,
        configs,
        spec,
    })
}

impl Prepared {
    pub fn manifest(&self) -> Manifest {
        Manifest::new(
            &self.path,
            &self.text,
            &self.good,
            &self.sets,
            &self.configs,
            &self.spec,
        )
    }
}

fn write(dir: &Path, name: &str, bytes: Result<Vec<u8>, String>) -> Result<(), Failure> {
    let bytes =
        bytes.map_err(|e| Failure::Runtime(format!("{}: {e}", dir.join(name).display())))?;
    write_file(&dir.join(name), &bytes)
}

fn runs_file<'a>(dir: &Path, p: &'a Prepared) -> Result<output::RunsWriter<'a>, Failure> {
    std::fs::create_dir_all(dir).map_err(|e| Failure::io(dir, e))?;
    let path = dir.join("runs.csv");
    let file = std::fs::File::create(&path).map_err(|e| Failure::io(&path, e))?;
    output::RunsWriter::new(Box::new(std::io::BufWriter::new(file)), &p.configs)
        .map_err(|e| Failure::Runtime(format!("{}: {e}", path.display())))
}

fn csv_err(dir: &Path) -> impl Fn(String) -> Failure + '_ {
    move |e| Failure::Runtime(format!("{}: {e}", dir.join("runs.csv").display()))
}

/// Runs a shard and writes its partial output: its runs and a manifest naming the shard.
pub fn run_shard(dir: &Path, p: &Prepared, shard: Shard, threads: usize) -> Result<(), Failure> {
    let mut w = runs_file(dir, p)?;
    run::execute_into(&p.good, &p.bad, &p.configs, &p.spec, shard, threads, |r| {
        w.write(&r).map_err(csv_err(dir))
    })?;
    w.finish().map_err(csv_err(dir))?;
    let mut m = p.manifest();
    m.shard = Some((shard.part, shard.count));
    write_file(&dir.join("manifest.json"), &m.to_json())
}

/// Runs a whole sweep, streaming runs to disk and into the summaries, then writes the rest.
pub fn run_complete(dir: &Path, p: &Prepared, threads: usize) -> Result<(), Failure> {
    complete(dir, p, threads, |sink| {
        run::execute_into(
            &p.good,
            &p.bad,
            &p.configs,
            &p.spec,
            Shard::WHOLE,
            threads,
            sink,
        )
    })
}

/// Writes the complete outputs; `feed` must hand every run to the sink in index order.
fn complete(
    dir: &Path,
    p: &Prepared,
    threads: usize,
    feed: impl FnOnce(&mut dyn FnMut(Record) -> Result<(), Failure>) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let mut w = runs_file(dir, p)?;
    let mut agg = aggregate::Aggregator::new(p.configs.len(), constraints::Constraints::default());
    feed(&mut |r: Record| {
        agg.add(&r);
        w.write(&r).map_err(csv_err(dir))
    })?;
    w.finish().map_err(csv_err(dir))?;
    let summaries = agg.finish();
    let front = aggregate::pareto(&summaries);
    write(
        dir,
        "summary.csv",
        output::summary_csv(&p.configs, &summaries),
    )?;
    write(
        dir,
        "pareto.csv",
        output::pareto_csv(&p.configs, &summaries, &front),
    )?;
    write_file(&dir.join("manifest.json"), &p.manifest().to_json())?;
    write_calibration(dir, p)?;
    write_representatives(dir, p, &summaries, threads)
}

/// The seed's reference table, when the scenario has the policies it needs.
fn write_calibration(dir: &Path, p: &Prepared) -> Result<(), Failure> {
    if !["bulk", "seed-staged", "fixed"]
        .iter()
        .all(|k| p.good.policies.contains_key(*k))
    {
        return Ok(());
    }
    let checks = crate::calibrate::table(&p.path, &p.sets, 30)?;
    write(dir, "calibration.csv", crate::calibrate::csv(&checks))
}

fn write_representatives(
    dir: &Path,
    p: &Prepared,
    summaries: &[aggregate::ConfigSummary],
    threads: usize,
) -> Result<(), Failure> {
    let picks = representatives::pick(&p.configs, summaries);
    let mut band_rows = Vec::new();
    let mut index_rows = Vec::new();
    let run_all = || {
        picks
            .iter()
            .map(|(i, role)| {
                let c = &p.configs[*i];
                let tls = representatives::timelines(
                    &p.good,
                    &c.name,
                    &c.policy,
                    &p.spec,
                    p.spec.replications,
                );
                (*i, role.clone(), tls)
            })
            .collect::<Vec<_>>()
    };
    let results = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool.install(run_all),
        Err(_) => run_all(),
    };
    for (i, role, tls) in results {
        let c = &p.configs[i];
        let b = representatives::band(&tls);
        band_rows.extend(representatives::band_rows(
            role.as_str(),
            &c.id.to_string(),
            &b,
        ));
        let file = format!("timelines/{}.csv", representatives::slug(&role));
        if let Some(first) = tls.first() {
            write(dir, &file, first.to_csv().map_err(|e| e.to_string()))?;
        }
        index_rows.push(vec![
            c.id.to_string(),
            role,
            c.name.clone(),
            c.label(),
            file,
        ]);
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut bytes = || -> Result<Vec<u8>, String> {
        w.write_record(["config", "role", "t_s", "cpu_p5", "cpu_p50", "cpu_p95"])
            .map_err(|e| e.to_string())?;
        for r in &band_rows {
            w.write_record(r).map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| e.to_string())?;
        Ok(w.get_ref().clone())
    };
    write(dir, "cpu_bands.csv", bytes())?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut bytes = || -> Result<Vec<u8>, String> {
        w.write_record(["config", "role", "policy", "label", "timeline"])
            .map_err(|e| e.to_string())?;
        for r in &index_rows {
            w.write_record(r).map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| e.to_string())?;
        Ok(w.get_ref().clone())
    };
    write(dir, "representatives.csv", bytes())
}

/// The sweep a manifest describes, prepared again: from the scenario file when it is where
/// the sweep read it (and unchanged), else from the copy the manifest embeds, so that merge
/// and tune work from any directory.
pub fn prepare_swept(m: &Manifest) -> Result<Prepared, InputError> {
    let text = match (std::fs::read_to_string(&m.scenario_path), &m.scenario_toml) {
        (Ok(text), _) => text,
        (Err(_), Some(embedded)) => embedded.clone(),
        (Err(e), None) => {
            return Err(InputError::new(format!(
                "cannot read scenario ({e}), and this sweep's manifest embeds no copy: run from the directory the sweep ran in"
            ))
            .in_file(&m.scenario_path))
        }
    };
    let p = prepare_text(
        &m.scenario_path,
        text,
        &m.sets,
        Some(m.replications),
        Some(m.base_seed),
    )?;
    if p.good.fingerprint != m.scenario_fingerprint || p.spec.defect_rate != m.defect_rate {
        return Err(InputError::new(format!(
            "the scenario {} changed since the sweep ran (fingerprint {} vs {}); sweep again",
            m.scenario_path, p.good.fingerprint, m.scenario_fingerprint
        )));
    }
    Ok(p)
}

/// Merges shard directories into complete outputs, checking that they belong together.
pub fn merge(dirs: &[std::path::PathBuf], out: &Path, threads: usize) -> Result<(), Failure> {
    let mut manifests = Vec::new();
    for d in dirs {
        manifests.push(Manifest::read(d)?);
    }
    let Some(first) = manifests.first().cloned() else {
        return Err(Failure::input("merge needs at least one sweep directory"));
    };
    let mut base = first.clone();
    base.shard = None;
    for (d, m) in dirs.iter().zip(&manifests) {
        let mut mm = m.clone();
        mm.shard = None;
        if mm != base {
            return Err(InputError::new(format!(
                "{} belongs to a different sweep (scenario, grid, seeds or version differ from {})",
                d.display(),
                dirs[0].display()
            ))
            .into());
        }
    }
    let p = prepare_swept(&first)?;
    // A k-way merge of the shards' runs (each already in index order), streamed.
    let total = first.runs_total;
    let reps = first.replications;
    let mut readers = Vec::new();
    for d in dirs {
        readers.push(output::RunsReader::open(&d.join("runs.csv"), reps)?.peekable());
    }
    complete(out, &p, threads, |sink| {
        let mut expected = 0u64;
        loop {
            let mut next: Option<(u64, usize)> = None;
            for (i, r) in readers.iter_mut().enumerate() {
                match r.peek() {
                    Some(Ok(x)) if next.is_none_or(|(best, _)| x.key.index < best) => {
                        next = Some((x.key.index, i))
                    }
                    Some(Err(e)) => return Err(e.clone().into()),
                    _ => {}
                }
            }
            let Some((index, i)) = next else { break };
            if index != expected {
                let what = if index < expected {
                    "appears twice"
                } else {
                    "is missing"
                };
                return Err(InputError::new(format!(
                    "run {expected} {what}: the shards do not add up to one sweep"
                ))
                .into());
            }
            if let Some(Ok(r)) = readers[i].next() {
                sink(r)?;
            }
            expected += 1;
        }
        if expected != total {
            return Err(InputError::new(format!(
                "{expected} of {total} runs present: a shard is missing"
            ))
            .into());
        }
        Ok(())
    })
}
