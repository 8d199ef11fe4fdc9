//! Runs a sweep (or one shard of it) in parallel. Each run has a global index over
//! (configuration, replication, release); results are returned in index order, so the
//! output never depends on the thread count or on which thread finished first.

use rayon::prelude::*;

use super::config::Config;
use crate::progress;
use crate::scenario::Scenario;
use crate::sim::rng;
use crate::simulate::{self, Options, Summary};

/// Which runs this process executes: those with `index % count == part`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub part: u64,
    pub count: u64,
}

impl Shard {
    pub const WHOLE: Shard = Shard { part: 0, count: 1 };

    pub fn owns(&self, index: u64) -> bool {
        index % self.count == self.part
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    pub replications: u32,
    pub defect_rate: f64,
    pub base_seed: u64,
}

/// The seed of replication `rep`: shared by every configuration (common random numbers).
pub fn seed_for(base_seed: u64, rep: u32) -> u64 {
    rng::derive(&[base_seed, u64::from(rep)]) >> 11
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub index: u64,
    pub config: usize,
    pub rep: u32,
    pub bad_release: bool,
}

pub fn key(index: u64, reps: u32) -> Key {
    let bad_release = index % 2 == 1;
    let slot = index / 2;
    Key {
        index,
        config: (slot / u64::from(reps)) as usize,
        rep: (slot % u64::from(reps)) as u32,
        bad_release,
    }
}

pub fn total_runs(configs: usize, reps: u32) -> u64 {
    configs as u64 * u64::from(reps) * 2
}

/// One finished run, as written to runs.csv.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub key: Key,
    pub seed: u64,
    pub values: Vec<f64>,
}

/// Per-run numbers kept in runs.csv, in column order.
pub const RUN_METRICS: [&str; 16] = [
    "success_rate",
    "peak_mgmt_cpu_pct",
    "disconnect_rate",
    "manual_interventions",
    "makespan_s",
    "blast_radius",
    "succeeded",
    "failed",
    "disconnected",
    "events",
    "halted",
    "rolled_back",
    "op_timeouts",
    "rejections",
    "deferrals",
    "attempts",
];

pub fn values(s: &Summary) -> Vec<f64> {
    RUN_METRICS
        .iter()
        .map(|m| s.metric(m).unwrap_or(f64::NAN))
        .collect()
}

pub fn metric_index(name: &str) -> Option<usize> {
    RUN_METRICS.iter().position(|m| *m == name)
}

/// Runs per parallel chunk: bounds memory, while keeping both cores busy.
const CHUNK: u64 = 4096;

/// Runs every owned index in parallel chunks and hands the records to `sink` in index
/// order, so memory stays flat however many runs there are. `good` and `bad` are the
/// scenario with a good and a bad release.
#[allow(clippy::too_many_arguments)]
pub fn execute_into<E>(
    good: &Scenario,
    bad: &Scenario,
    configs: &[Config],
    spec: &Spec,
    shard: Shard,
    threads: usize,
    mut sink: impl FnMut(Record) -> Result<(), E>,
) -> Result<(), E> {
    let total = total_runs(configs.len(), spec.replications);
    let owned = (0..total).filter(|i| shard.owns(*i)).count() as u64;
    let bar = progress::bar(owned, "runs");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .ok();
    let mut start = 0;
    while start < total {
        let end = (start + CHUNK * shard.count).min(total);
        let indexes: Vec<u64> = (start..end).filter(|i| shard.owns(*i)).collect();
        let work = || {
            indexes
                .par_iter()
                .map(|&index| {
                    let k = key(index, spec.replications);
                    let c = &configs[k.config];
                    let seed = seed_for(spec.base_seed, k.rep);
                    let scenario = if k.bad_release { bad } else { good };
                    let summary =
                        simulate::run(scenario, &c.name, &c.policy, seed, &Options::default())
                            .summary;
                    bar.inc(1);
                    Record {
                        key: k,
                        seed,
                        values: values(&summary),
                    }
                })
                .collect::<Vec<_>>()
        };
        let chunk = match &pool {
            Some(pool) => pool.install(work),
            None => work(),
        };
        for r in chunk {
            sink(r)?;
        }
        start = end;
    }
    bar.finish_and_clear();
    Ok(())
}

/// All owned records in index order (for small sweeps and benchmarks).
pub fn execute(
    good: &Scenario,
    bad: &Scenario,
    configs: &[Config],
    spec: &Spec,
    shard: Shard,
    threads: usize,
) -> Vec<Record> {
    let mut out = Vec::new();
    let _ = execute_into::<()>(good, bad, configs, spec, shard, threads, |r| {
        out.push(r);
        Ok(())
    });
    out
}
