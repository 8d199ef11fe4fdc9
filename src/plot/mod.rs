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
    let success = charts::pooled(d, &size, "success_rate");
    render!(
        written,
        out,
        "success_vs_batch_size",
        charts::metric_vs_param,
        "Success rate against batch size (mean and 95% CI, pooled over the other parameters)",
        "batch size / concurrency limit (gateways; backoff: max concurrent, adaptive: window max)",
        "success rate (%)",
        &success,
        100.0,
        None
    );
    let makespan = charts::pooled(d, &size, "makespan_s");
    render!(
        written,
        out,
        "makespan_vs_batch_size",
        charts::metric_vs_param,
        "Makespan against batch size (mean and 95% CI, pooled over the other parameters)",
        "batch size / concurrency limit (gateways)",
        "makespan (hours)",
        &makespan,
        1.0 / 3600.0,
        Some(0.0)
    );
    let delay = |f: &str| (f == "fixed").then_some("delay_s");
    let by_delay = charts::pooled(d, &delay, "makespan_s");
    if !by_delay.is_empty() {
        render!(
            written,
            out,
            "makespan_vs_delay",
            charts::metric_vs_param,
            "Makespan against the delay between batches (fixed batching)",
            "delay after a batch completes (s)",
            "makespan (hours)",
            &by_delay,
            1.0 / 3600.0,
            Some(0.0)
        );
    }
    let gate = |f: &str| (f == "pipelined").then_some("gate.fraction");
    let by_gate = charts::pooled(d, &gate, "makespan_s");
    if !by_gate.is_empty() {
        render!(
            written,
            out,
            "makespan_vs_gate",
            charts::metric_vs_param,
            "Makespan against overlap: the pipelined gate (fraction of a batch downloaded)",
            "gate: fraction of the previous batch downloaded before the next starts",
            "makespan (hours)",
            &by_gate,
            1.0 / 3600.0,
            Some(0.0)
        );
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
