//! Charts (PNG and SVG, plotters) and the self-contained HTML report. Plotting reads what
//! sweeps and simulations wrote; it never simulates.

pub mod charts;
pub mod data;
pub mod report;
pub mod style;

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::Failure;
use charts::ParetoPoint;
use data::{SweepData, Table};
use style::{HEIGHT, WIDTH};

/// Draws `$f(root, args…)` into `<out>/<stem>.png` and `.svg`; records the stem.
macro_rules! render {
    ($written:expr, $out:expr, $stem:expr, $f:path, $($arg:expr),*) => {{
        let png = $out.join(format!("{}.png", $stem));
        let svg = $out.join(format!("{}.svg", $stem));
        let r1 = $f(BitMapBackend::new(&png, (WIDTH, HEIGHT)).into_drawing_area(), $($arg),*);
        let r2 = $f(SVGBackend::new(&svg, (WIDTH, HEIGHT)).into_drawing_area(), $($arg),*);
        match r1.and(r2) {
            Ok(()) => $written.push($stem.to_string()),
            Err(e) => eprintln!("plot: skipped {}: {e}", $stem),
        }
    }};
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| Failure::io(path, e)
}

/// Plots a sweep directory or a timeline CSV; returns the chart stems written.
pub fn plot(input: &Path, out: Option<&Path>, plan: Option<&Path>) -> Result<Vec<String>, Failure> {
    style::fonts();
    if input.is_dir() {
        let out = out.map_or_else(|| input.to_path_buf(), Path::to_path_buf);
        std::fs::create_dir_all(&out).map_err(io(&out))?;
        let d = SweepData::load(input, plan)?;
        let written = sweep_charts(&d, &out);
        let html = report::html(&d, &out, &written)?;
        crate::files::write_file(&out.join("report.html"), html.as_bytes())?;
        Ok(written)
    } else {
        let tl = Table::read(input)?;
        if tl.col("t_s").is_none() || tl.col("mgmt_cpu_pct").is_none() {
            return Err(crate::scenario::InputError::new(
                "neither a sweep directory nor a timeline CSV (it needs t_s and mgmt_cpu_pct columns)",
            )
            .in_file(&input.display().to_string())
            .into());
        }
        let out: PathBuf = out.map_or_else(|| input.with_extension(""), Path::to_path_buf);
        std::fs::create_dir_all(&out).map_err(io(&out))?;
        let who = input
            .file_stem()
            .map_or("timeline".into(), |s| s.to_string_lossy().into_owned());
        let mut written = Vec::new();
        render!(
            written,
            out,
            "states_over_time",
            charts::states_over_time,
            &tl,
            &who
        );
        render!(
            written,
            out,
            "service_over_time",
            charts::cpu_of_timeline,
            &tl,
            &who
        );
        render!(
            written,
            out,
            "bandwidth_over_time",
            charts::bandwidth,
            &tl,
            &who
        );
        Ok(written)
    }
}

fn sweep_charts(d: &SweepData, out: &Path) -> Vec<String> {
    let mut written = Vec::new();
    render!(
        written,
        out,
        "cpu_over_time",
        charts::cpu_over_time,
        &d.bands
    );
    let size = |f: &str| Some(charts::size_param(f));
    let limits = d
        .plan
        .as_ref()
        .map_or(crate::sweep::constraints::Constraints::default(), |p| {
            p.constraints
        });
    let size_desc =
        "batch size / concurrency limit (gateways; backoff: max concurrent, adaptive: window max)";
    let by_size = |metric: &str, release: &str| charts::pooled(d, &size, metric, release);
    let metric = |title: &str, x_desc, y_desc, series, scale, limit| charts::MetricChart {
        title: title.to_string(),
        x_desc,
        y_desc,
        series,
        scale,
        y_floor: Some(0.0),
        limit,
    };
    // What concurrency is safe: the constraints that decide it, against the batch size.
    let charts_by_size = [
        (
            "peak_cpu_vs_batch_size",
            metric(
                "What concurrency is safe (1): peak management CPU against batch size",
                size_desc,
                "peak management CPU (%)",
                by_size("peak_mgmt_cpu_pct", "good"),
                1.0,
                Some((limits.max_cpu, format!("--max-cpu {}", limits.max_cpu))),
            ),
        ),
        (
            "blast_vs_batch_size",
            metric(
                "What concurrency is safe (2): blast radius of a bad release against batch size",
                size_desc,
                "gateways given the bad release (blast radius)",
                by_size("blast_radius", "bad"),
                1.0,
                Some((limits.max_blast, format!("--max-blast {}", limits.max_blast))),
            ),
        ),
        (
            "success_vs_batch_size",
            metric(
                "Success rate against batch size (mean and 95% CI, pooled over the other parameters)",
                size_desc,
                "success rate (%)",
                by_size("success_rate", "good"),
                100.0,
                Some((limits.min_success * 100.0, format!("--min-success {}", limits.min_success))),
            ),
        ),
        (
            "makespan_vs_batch_size",
            metric(
                "Makespan against batch size (mean and 95% CI)",
                size_desc,
                "makespan (hours)",
                by_size("makespan_s", "good"),
                1.0 / 3600.0,
                None,
            ),
        ),
    ];
    for (stem, spec) in &charts_by_size {
        render!(written, out, stem, charts::metric_vs_param, spec);
    }
    // What a delay between batches, and what overlap between them, buy and cost.
    let tradeoffs = [
        (
            "delay_tradeoff",
            "What a delay between batches buys and costs (fixed batching)",
            "fixed",
            "delay_s",
            "delay after a batch completes (s)",
        ),
        (
            "overlap_tradeoff",
            "What overlap buys and costs (pipelined: the next batch starts at the gate)",
            "pipelined",
            "gate.fraction",
            "gate: share of the previous batch downloaded first (lower = more overlap)",
        ),
    ];
    for (stem, title, family, param, x_desc) in tradeoffs {
        let by = |metric: &str, release: &str| {
            charts::pooled(
                d,
                &|f: &str| (f == family).then_some(param),
                metric,
                release,
            )
        };
        let panels = [
            metric(
                "cost: makespan",
                x_desc,
                "makespan (hours)",
                by("makespan_s", "good"),
                1.0 / 3600.0,
                None,
            ),
            metric(
                "peak management CPU",
                x_desc,
                "peak CPU (%)",
                by("peak_mgmt_cpu_pct", "good"),
                1.0,
                Some((limits.max_cpu, format!("--max-cpu {}", limits.max_cpu))),
            ),
            metric(
                "blast radius (bad release)",
                x_desc,
                "gateways given the bad release",
                by("blast_radius", "bad"),
                1.0,
                Some((
                    limits.max_blast,
                    format!("--max-blast {}", limits.max_blast),
                )),
            ),
        ];
        if panels[0].series.is_empty() {
            continue;
        }
        render!(written, out, stem, charts::tradeoff, title, &panels);
    }
    let (who, tl) = match d.timelines.get("plan") {
        Some(t) => (
            format!(
                "tuned plan ({})",
                d.roles.get("plan").cloned().unwrap_or_default()
            ),
            Some(t),
        ),
        None => {
            let best = d.timelines.iter().find(|(r, _)| r.starts_with("best-"));
            (
                best.map_or(String::new(), |(r, _)| {
                    d.roles.get(r).cloned().unwrap_or_default()
                }),
                best.map(|(_, t)| t),
            )
        }
    };
    if let Some(tl) = tl {
        render!(
            written,
            out,
            "states_over_time",
            charts::states_over_time,
            tl,
            &who
        );
        render!(
            written,
            out,
            "bandwidth_over_time",
            charts::bandwidth,
            tl,
            &who
        );
    }
    let (pts, marks) = pareto_points(d);
    render!(written, out, "pareto", charts::pareto, &pts, &marks);
    written
}

/// A configuration label short enough to print beside its point.
fn short_label(label: &str) -> String {
    const SHORT: [(&str, &str); 9] = [
        ("batch_size=", "batch "),
        ("max_concurrent=", "conc "),
        ("gate.fraction=", "gate "),
        ("min_gap_s=", "gap "),
        ("delay_s=", "delay "),
        ("retry.base_s=", "retry "),
        ("adaptive.max=", "max "),
        ("adaptive.increase=", "+"),
        ("adaptive.target_latency_ms=", "lat "),
    ];
    SHORT
        .iter()
        .fold(label.to_string(), |l, (long, short)| l.replace(long, short))
}

fn pareto_points(d: &SweepData) -> (Vec<ParetoPoint>, Vec<(String, f64, f64)>) {
    let s = &d.summary;
    let front: Vec<String> = Table::read(&d.dir.join("pareto.csv"))
        .map(|p| {
            p.rows
                .iter()
                .filter_map(|r| p.get(r, "config").map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let pts = s
        .rows
        .iter()
        .filter_map(|r| {
            Some(ParetoPoint {
                family: s.get(r, "family")?.to_string(),
                label: short_label(s.get(r, "label")?),
                makespan_h: s.num(r, "makespan_s_mean")? / 3600.0,
                success: s.num(r, "success_rate_mean")?,
                cpu: s.num(r, "peak_mgmt_cpu_pct_mean")?,
                front: s
                    .get(r, "config")
                    .is_some_and(|c| front.iter().any(|f| f == c)),
            })
        })
        .collect();
    let mut marks = Vec::new();
    if let Some(p) = &d.plan {
        marks.push((
            format!("tuned plan ({:.1} h)", p.makespan_s / 3600.0),
            p.makespan_s / 3600.0,
            p.success,
        ));
    }
    if let Some(r) = s
        .rows
        .iter()
        .find(|r| s.get(r, "policy") == Some("seed-staged"))
    {
        if let (Some(m), Some(q)) = (s.num(r, "makespan_s_mean"), s.num(r, "success_rate_mean")) {
            marks.push((
                format!("seed's staged plan ({:.1} h)", m / 3600.0),
                m / 3600.0,
                q,
            ));
        }
    }
    (pts, marks)
}
