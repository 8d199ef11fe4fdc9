//! What `stagger fit` costs on many large rollouts: 100 traces of 10,000 gateways each
//! (simulated `pipelined` runs of seed-200's fleet scaled up), fitted together. The baseline,
//! measured in the same run, is reading and parsing the same files without fitting.
//!
//! `cargo bench --bench fit` runs it in full; under `cargo test` it runs a small smoke.

use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;
use stagger::fit::{self, observe, trace};
use stagger::live::journal;
use stagger::scenario;
use stagger::simulate::Options;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (journals, gateways, reps) = if full { (100, 10_000, 5) } else { (3, 500, 1) };
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/seed-200.toml");
    let s = scenario::load(root, &[format!("fleet.gateways={gateways}")]).expect("scenario");
    let policy = s.policy("pipelined").expect("policy").clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let made = Instant::now();
    let paths: Vec<PathBuf> = (0..journals as u64)
        .into_par_iter()
        .map(|seed| {
            let run = trace::simulate(&s, "pipelined", &policy, seed, &Options::default());
            let path = dir.path().join(format!("run-{seed}.jsonl"));
            std::fs::write(&path, run.trace).expect("write");
            std::fs::write(observe::sibling_inventory(&path), run.inventory).expect("write");
            path
        })
        .collect();
    let bytes: u64 = paths
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    println!(
        "{journals} traces of {gateways} gateways: {:.1} MB, made in {:.1} s",
        bytes as f64 / 1e6,
        made.elapsed().as_secs_f64()
    );
    let mut fits = Vec::new();
    let mut reads = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let n: usize = paths
            .par_iter()
            .map(|p| journal::read(p).expect("read").records.len())
            .sum();
        reads.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let rollouts: Vec<_> = paths
            .par_iter()
            .map(|p| observe::load(p, None).expect("load"))
            .collect();
        let f = fit::fit(&s, &rollouts);
        fits.push(t.elapsed().as_secs_f64());
        assert!(
            n > 0 && f.attempts >= journals * gateways / 2,
            "{} attempts",
            f.attempts
        );
    }
    let (a, b) = (median(fits), median(reads));
    println!(
        "fit: median {a:.2} s over {reps} runs; reading the same files alone: {b:.2} s ({:.2}x)",
        a / b
    );
}
